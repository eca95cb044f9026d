//! The gateway as an OAuth 2.1 resource server: which access tokens it accepts, who they
//! name, and what it tells clients about itself.
//!
//! Owns:
//! - **Resource identifiers.** Every MCP endpoint is a resource: `<public_url>/mcp`,
//!   `<public_url>/mcp/<server>`, `/sse…`, `/ws…`. Its protected-resource metadata
//!   (RFC 9728) is at `<public_url>/.well-known/oauth-protected-resource<path>`.
//! - **Token checks.** A JWT goes to the provider named by its `iss` ([`super::jwt`]);
//!   any other token is introspected by the providers that allow it
//!   ([`super::introspection`]). A token is accepted at an endpoint only when its
//!   audience names that endpoint, the gateway itself (`<public_url>`), or an audience
//!   the provider's settings add (RFC 8707): a token minted for another resource is
//!   refused.
//! - **Identity from claims.** Subject, team and organisation from the provider's
//!   configured claims; the token's scopes bound the caller's level (the highest level
//!   any of its scopes grants, `deny` when none does), and the permission manager decides
//!   the rest exactly as for an API key.
//! - **Challenges.** The `WWW-Authenticate` values of 401 and 403 answers.
//!
//! It never forwards a client's token anywhere but to the provider's introspection
//! endpoint; nothing here logs a token.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use crate::core::mcp::permissions::{Caller, KeyDigest};
use crate::core::mcp::PermissionLevel;

use super::config::{OAuthSettings, ProviderSettings, RegistrationSettings};
use super::discovery;
use super::introspection::introspect;
use super::jwks::KeySource;
use super::jwt;
use super::token_cache::{unix_now, TokenCache, VerifiedToken};
use super::{Identity, Via};

/// The metadata of the provider that the registration handout mirrors is fetched again
/// after this long.
const MIRRORED_METADATA_TTL: Duration = Duration::from_secs(300);
/// After the provider's metadata could not be fetched, the failure is answered for this
/// long without asking again.
const MIRRORED_FAILURE_TTL: Duration = Duration::from_secs(5);
/// Introspection requests in flight at once; more wait (within the provider's timeout).
pub const MAX_CONCURRENT_INTROSPECTIONS: usize = 16;
/// A credential that introspection refused is refused without asking again for this
/// long, so that made-up credentials cannot make the gateway send a request each.
pub const REFUSAL_CACHE: Duration = Duration::from_secs(30);
/// The most refused credentials remembered.
const MAX_REFUSALS: usize = 10_000;
/// Prefixes the digest that owns a token's sessions, so that it shares no space with
/// API-key digests.
const SUBJECT_DIGEST_DOMAIN: &str = "litellm-mcp token subject\0";

struct Provider {
    settings: ProviderSettings,
    keys: Arc<KeySource>,
}

/// The resource server.
pub struct ResourceServer {
    scopes: Vec<(String, PermissionLevel)>,
    providers: Vec<Provider>,
    registration: Option<RegistrationSettings>,
    public_url: OnceLock<String>,
    cache: TokenCache,
    /// For documents (discovery, keys): a few redirects, no credential.
    http: reqwest::Client,
    /// For requests that carry a credential (introspection): no redirect.
    http_no_redirect: reqwest::Client,
    /// Which teams and organisations have policies (to choose one from a list claim).
    permissions: crate::core::mcp::permissions::LivePermissions,
    /// The provider's metadata as the registration handout mirrors it, or the failure.
    mirrored: tokio::sync::Mutex<Option<(Instant, Result<Value, String>)>>,
    /// Credentials introspection refused, until when, and why.
    refused: Mutex<HashMap<KeyDigest, (u64, String)>>,
    introspections: tokio::sync::Semaphore,
}

impl std::fmt::Debug for ResourceServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResourceServer")
            .field("public_url", &self.public_url.get())
            .field("scopes", &self.scopes)
            .field(
                "issuers",
                &self
                    .providers
                    .iter()
                    .map(|p| &p.settings.issuer)
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl ResourceServer {
    /// A resource server with these settings; `permissions` tells which teams and
    /// organisations have policies. Nothing is fetched until a token needs it.
    pub fn new(
        settings: &OAuthSettings,
        permissions: impl Into<crate::core::mcp::permissions::LivePermissions>,
    ) -> Self {
        let http = discovery::provider_client();
        let public_url = OnceLock::new();
        if let Some(url) = &settings.public_url {
            let _ = public_url.set(url.trim_end_matches('/').to_string());
        }
        ResourceServer {
            scopes: settings.scopes.clone(),
            providers: settings
                .providers
                .iter()
                .map(|p| Provider {
                    settings: p.clone(),
                    keys: KeySource::new(p, http.clone()),
                })
                .collect(),
            registration: settings.registration.clone(),
            public_url,
            cache: TokenCache::default(),
            http,
            http_no_redirect: discovery::credential_client(),
            permissions: permissions.into(),
            mirrored: tokio::sync::Mutex::new(None),
            refused: Mutex::default(),
            introspections: tokio::sync::Semaphore::new(MAX_CONCURRENT_INTROSPECTIONS),
        }
    }

    /// Sets the public URL to `http://<address>` unless the settings gave one (the
    /// service calls it once bound, so that a port chosen by the system is known).
    pub fn set_bound_address(&self, address: SocketAddr) {
        let _ = self.public_url.set(format!("http://{address}"));
    }

    /// Where clients reach the gateway, without a trailing slash.
    pub fn public_url(&self) -> &str {
        self.public_url
            .get()
            .map_or("http://127.0.0.1", String::as_str)
    }

    /// The resource identifier of the endpoint at `path` (`/mcp`, `/ws/fs`).
    pub fn resource(&self, path: &str) -> String {
        format!("{}{path}", self.public_url())
    }

    /// Where the protected-resource metadata of the endpoint at `path` is: the
    /// well-known segment inserted between the host and the resource's path (RFC 9728
    /// §3.1), so a `public_url` with a path prefix keeps it after the segment.
    pub fn metadata_url(&self, path: &str) -> String {
        let public = self.public_url();
        let (origin, prefix) = split_origin(public);
        format!("{origin}/.well-known/oauth-protected-resource{prefix}{path}")
    }

    /// The path prefix of `public_url` (empty, or `/gateway`).
    pub fn path_prefix(&self) -> &str {
        split_origin(self.public_url()).1
    }

    /// The protected-resource metadata (RFC 9728) of the endpoint at `path`.
    pub fn protected_resource_metadata(&self, path: &str) -> Value {
        let authorization_servers: Vec<String> = if self.registration.is_some() {
            vec![self.public_url().to_string()]
        } else {
            self.providers
                .iter()
                .map(|p| p.settings.issuer.clone())
                .collect()
        };
        let mut metadata = json!({
            "resource": self.resource(path),
            "authorization_servers": authorization_servers,
            "bearer_methods_supported": ["header"],
            "resource_name": "litellm-mcp",
        });
        if !self.scopes.is_empty() {
            metadata["scopes_supported"] =
                json!(self.scopes.iter().map(|(s, _)| s).collect::<Vec<_>>());
        }
        metadata
    }

    /// The scopes to ask for to reach `level`: those of the lowest configured level
    /// that is at least `level` (empty when scopes are not configured or none reaches it).
    pub fn scopes_for(&self, level: PermissionLevel) -> Vec<&str> {
        let Some(lowest) = self
            .scopes
            .iter()
            .map(|(_, l)| *l)
            .filter(|l| *l >= level)
            .min()
        else {
            return Vec::new();
        };
        self.scopes
            .iter()
            .filter(|(_, l)| *l == lowest)
            .map(|(s, _)| s.as_str())
            .collect()
    }

    /// The `WWW-Authenticate` value of a 401 at the endpoint `path`: `error` is `None`
    /// when no credential was presented, else `(code, description)`. It asks for the
    /// scopes that let a client list and call (`read`, then `execute`), not more.
    pub fn challenge(&self, path: &str, error: Option<(&str, &str)>) -> String {
        let mut scopes = self.scopes_for(PermissionLevel::Read);
        for scope in self.scopes_for(PermissionLevel::Execute) {
            if !scopes.contains(&scope) {
                scopes.push(scope);
            }
        }
        self.bearer_challenge(path, error, &scopes)
    }

    /// The `WWW-Authenticate` value of a 403 `insufficient_scope` at `path`: the scopes
    /// the token has (that `oauth.scopes` names) and those `needed` asks for, so that a
    /// client asking again loses none (the MCP specification's step-up).
    pub fn step_up_challenge(
        &self,
        path: &str,
        description: &str,
        needed: PermissionLevel,
        granted: &[String],
    ) -> String {
        let mut scopes: Vec<&str> = granted.iter().map(String::as_str).collect();
        for scope in self.scopes_for(needed) {
            if !scopes.contains(&scope) {
                scopes.push(scope);
            }
        }
        self.bearer_challenge(path, Some(("insufficient_scope", description)), &scopes)
    }

    fn bearer_challenge(&self, path: &str, error: Option<(&str, &str)>, scopes: &[&str]) -> String {
        let mut parts = Vec::new();
        if let Some((code, description)) = error {
            parts.push(format!("error=\"{code}\""));
            parts.push(format!(
                "error_description=\"{}\"",
                quoted_string_safe(description)
            ));
        }
        parts.push(format!(
            "resource_metadata=\"{}\"",
            quoted_string_safe(&self.metadata_url(path))
        ));
        if !scopes.is_empty() {
            parts.push(format!(
                "scope=\"{}\"",
                quoted_string_safe(&scopes.join(" "))
            ));
        }
        format!("Bearer {}", parts.join(", "))
    }

    /// The identity an access token names at the endpoint `path`. `digest` is the
    /// token's SHA-256 (the cache's key).
    ///
    /// # Errors
    /// Why the token is refused, fit for `error_description`.
    pub async fn authenticate(
        &self,
        token: &str,
        digest: &KeyDigest,
        path: &str,
    ) -> Result<Identity, String> {
        let verified = match self.cache.get(digest) {
            Some(verified) => verified,
            None => {
                let verified = Arc::new(self.verify(token, digest).await?);
                if verified.valid_until > unix_now() {
                    self.cache.insert(*digest, Arc::clone(&verified));
                }
                verified
            }
        };
        if !self.audience_fits(&verified, path) {
            return Err(
                "the token was issued for another resource (its audience does not name this endpoint)"
                    .to_string(),
            );
        }
        Ok(verified.identity.clone())
    }

    fn audience_fits(&self, verified: &VerifiedToken, path: &str) -> bool {
        let resource = self.resource(path);
        let extra = self
            .providers
            .get(verified.provider)
            .map(|p| p.settings.audiences.as_slice())
            .unwrap_or_default();
        let same = |a: &str, b: &str| a.trim_end_matches('/') == b.trim_end_matches('/');
        verified.audiences.iter().any(|aud| {
            same(aud, &resource)
                || same(aud, self.public_url())
                || extra.iter().any(|e| same(aud, e))
        })
    }

    async fn verify(&self, token: &str, digest: &KeyDigest) -> Result<VerifiedToken, String> {
        if let Some(unverified) = jwt::peek(token) {
            let issuer = unverified
                .issuer
                .as_deref()
                .ok_or("the token has no issuer (iss)")?;
            let (index, provider) = self
                .providers
                .iter()
                .enumerate()
                .find(|(_, p)| p.settings.issuer == issuer)
                .ok_or("the token's issuer is not trusted")?;
            let claims =
                jwt::verify(token, &unverified, &provider.settings, &provider.keys).await?;
            let exp = claims.get("exp").and_then(Value::as_u64).unwrap_or(0);
            let valid_until = exp.saturating_add(provider.settings.leeway.as_secs());
            return self.verified(index, &claims, valid_until);
        }
        // An opaque token: the provider that introspects (the settings allow one).
        let Some((index, provider, settings)) = self
            .providers
            .iter()
            .enumerate()
            .find_map(|(i, p)| p.settings.introspection.as_ref().map(|s| (i, p, s)))
        else {
            return Err(
                "the credential is neither a known API key nor an access token this gateway accepts"
                    .to_string(),
            );
        };
        let now = unix_now();
        if let Some(why) = self.refused_recently(digest, now) {
            return Err(why);
        }
        let timeout = provider.settings.timeout;
        let Ok(Ok(_permit)) = tokio::time::timeout(timeout, self.introspections.acquire()).await
        else {
            return Err(
                "the token could not be checked: the identity provider is busy".to_string(),
            );
        };
        let answer = introspect(
            &self.http_no_redirect,
            settings,
            &provider.settings.issuer,
            token,
            timeout,
        )
        .await;
        let claims = match answer {
            Ok(claims) => claims,
            Err(why) => {
                self.remember_refusal(*digest, now, &why);
                return Err(why);
            }
        };
        let exp = claims.get("exp").and_then(Value::as_u64).unwrap_or(0);
        if exp.saturating_add(provider.settings.leeway.as_secs()) < now {
            return Err("the token has expired".to_string());
        }
        let valid_until = exp.min(now.saturating_add(settings.cache.as_secs()));
        self.verified(index, &claims, valid_until)
    }

    fn refused_recently(&self, digest: &KeyDigest, now: u64) -> Option<String> {
        let refused = self.refused.lock().ok()?;
        refused
            .get(digest)
            .filter(|(until, _)| *until >= now)
            .map(|(_, why)| why.clone())
    }

    fn remember_refusal(&self, digest: KeyDigest, now: u64, why: &str) {
        let Ok(mut refused) = self.refused.lock() else {
            return;
        };
        if refused.len() >= MAX_REFUSALS {
            refused.retain(|_, (until, _)| *until >= now);
            if refused.len() >= MAX_REFUSALS {
                refused.clear();
            }
        }
        refused.insert(
            digest,
            (now.saturating_add(REFUSAL_CACHE.as_secs()), why.to_string()),
        );
    }

    fn verified(
        &self,
        provider: usize,
        claims: &Map<String, Value>,
        valid_until: u64,
    ) -> Result<VerifiedToken, String> {
        let settings = &self
            .providers
            .get(provider)
            .ok_or("the token's issuer is not trusted")?
            .settings;
        let names = &settings.claims;
        let subject = claims
            .get(&names.subject)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                format!(
                    "the token has no subject ({})",
                    jwt::printable(&names.subject)
                )
            })?;
        if claims.contains_key("nonce")
            || claims
                .get("typ")
                .and_then(Value::as_str)
                .is_some_and(|t| !t.eq_ignore_ascii_case("bearer"))
        {
            return Err(
                "the token is an ID token (or another kind), not an access token".to_string(),
            );
        }
        let team = match &names.team {
            Some(claim) => choose_group(claims.get(claim), "team", |t| {
                self.permissions.load().has_team_policy(t)
            })?,
            None => None,
        };
        let organization = match &names.organization {
            Some(claim) => choose_group(claims.get(claim), "organization", |o| {
                self.permissions.load().has_organization_policy(o)
            })?,
            None => None,
        };
        let scopes = token_scopes(claims);
        let max_level = self.level_of_scopes(&scopes);
        let identity = Identity {
            caller: Caller {
                api_key: None,
                team,
                organization,
            },
            digest: Some(KeyDigest::of(&format!(
                "{SUBJECT_DIGEST_DOMAIN}{}\n{subject}",
                settings.issuer
            ))),
            name: clean_name(subject),
            max_level,
            via: Via::Token,
            token: None,
            expires_at: claims.get("exp").and_then(Value::as_u64),
            issuer: Some(settings.issuer.clone()),
            scopes: scopes
                .into_iter()
                .filter(|s| self.scopes.iter().any(|(c, _)| c == s))
                .collect(),
        };
        let audiences = match claims.get("aud") {
            Some(Value::String(aud)) => vec![aud.clone()],
            Some(Value::Array(auds)) => auds
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            _ => Vec::new(),
        };
        Ok(VerifiedToken {
            identity,
            audiences,
            provider,
            valid_until,
        })
    }

    /// The highest level any of `scopes` grants (`Admin` when scopes are not
    /// configured: then tokens are not limited by them).
    fn level_of_scopes(&self, scopes: &[String]) -> PermissionLevel {
        if self.scopes.is_empty() {
            return PermissionLevel::Admin;
        }
        self.scopes
            .iter()
            .filter(|(s, _)| scopes.iter().any(|t| t == s))
            .map(|(_, l)| *l)
            .max()
            .unwrap_or(PermissionLevel::Deny)
    }

    /// How many verified tokens are cached.
    pub fn cached_tokens(&self) -> usize {
        self.cache.len()
    }

    /// The registration handout's client, when configured.
    pub fn registration(&self) -> Option<&RegistrationSettings> {
        self.registration.as_ref()
    }

    /// The first provider's authorization-server metadata as the registration handout
    /// serves it: its endpoints, with the gateway as issuer and the gateway's
    /// registration endpoint. Fetched once per [`MIRRORED_METADATA_TTL`].
    ///
    /// # Errors
    /// Why the provider's metadata is unavailable.
    pub async fn mirrored_authorization_server_metadata(&self) -> Result<Value, String> {
        let provider = self.providers.first().ok_or("no provider is configured")?;
        let mut cached = self.mirrored.lock().await;
        let document = match &*cached {
            Some((at, Ok(document))) if at.elapsed() < MIRRORED_METADATA_TTL => document.clone(),
            Some((at, Err(why))) if at.elapsed() < MIRRORED_FAILURE_TTL => return Err(why.clone()),
            _ => {
                let timeout = provider.settings.timeout;
                let fetched = tokio::time::timeout(
                    timeout,
                    discovery::discover(&self.http, &provider.settings.issuer, timeout),
                )
                .await
                .unwrap_or_else(|_| {
                    Err(format!(
                        "the provider's metadata did not arrive within {timeout:?}"
                    ))
                });
                *cached = Some((Instant::now(), fetched.clone()));
                fetched?
            }
        };
        drop(cached);
        let mut document = match document {
            Value::Object(map) => map,
            _ => return Err("the provider's metadata is not an object".to_string()),
        };
        document.insert("issuer".into(), json!(self.public_url()));
        document.insert(
            "registration_endpoint".into(),
            json!(format!("{}/oauth/register", self.public_url())),
        );
        // The provider names itself in authorization responses (RFC 9207); that is not
        // the issuer above, so the parameter is not announced.
        document.remove("authorization_response_iss_parameter_supported");
        Ok(Value::Object(document))
    }
}

/// A token's scopes: `scope` (a space-separated string, or a list), else `scp`.
fn token_scopes(claims: &Map<String, Value>) -> Vec<String> {
    let claim = claims.get("scope").or_else(|| claims.get("scp"));
    match claim {
        Some(Value::String(s)) => s.split_whitespace().map(str::to_string).collect(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

/// A team or organisation from its claim: a string is taken as it is; from a list (such
/// as `groups`), the one entry that has a policy, or the only entry. A list with several
/// entries that have policies is refused: which one decides would depend on the order the
/// provider happens to list them in, and leaving the team out could grant more than
/// either allows. Names are at most 128 characters, without control characters.
fn choose_group(
    value: Option<&Value>,
    what: &str,
    has_policy: impl Fn(&str) -> bool,
) -> Result<Option<String>, String> {
    let usable = |text: &str| {
        !text.trim().is_empty() && text.len() <= 128 && !text.chars().any(char::is_control)
    };
    match value {
        Some(Value::String(text)) if usable(text) => Ok(Some(text.clone())),
        Some(Value::Array(items)) => {
            let names: Vec<&str> = items
                .iter()
                .filter_map(Value::as_str)
                .filter(|t| usable(t))
                .collect();
            let with_policy: Vec<&str> = names.iter().copied().filter(|n| has_policy(n)).collect();
            match (with_policy.as_slice(), names.as_slice()) {
                ([one], _) | ([], [one]) => Ok(Some((*one).to_string())),
                ([], _) => Ok(None),
                (several, _) => Err(format!(
                    "the token names {} {what}s that have policies ({}); the gateway cannot choose one",
                    several.len(),
                    several.iter().take(4).map(|n| jwt::printable(n)).collect::<Vec<_>>().join(", ")
                )),
            }
        }
        _ => Ok(None),
    }
}

/// A URL split into its origin and its path (without a trailing slash).
fn split_origin(url: &str) -> (&str, &str) {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url[after_scheme..].find('/') {
        Some(slash) => url.split_at(after_scheme + slash),
        None => (url, ""),
    }
}

/// A subject as it appears in logs and metrics: control characters removed, at most 128
/// characters.
fn clean_name(subject: &str) -> String {
    subject
        .chars()
        .filter(|c| !c.is_control())
        .take(128)
        .collect()
}

/// Text made safe inside an HTTP quoted-string: printable ASCII without `"` or `\`.
fn quoted_string_safe(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::mcp::{PermissionManager, PermissionPolicy};
    use crate::identity::config::ClaimNames;

    fn server(scopes: &[(&str, PermissionLevel)]) -> ResourceServer {
        let mut provider = ProviderSettings::new("https://id.example");
        provider.claims = ClaimNames {
            subject: "sub".into(),
            team: Some("groups".into()),
            organization: Some("org".into()),
        };
        provider.audiences = vec!["api://gateway".into()];
        let mut permissions = PermissionManager::new();
        for team in ["blue", "red"] {
            permissions.set_team_policy(
                team,
                PermissionPolicy {
                    name: team.into(),
                    default_level: PermissionLevel::Read,
                    rules: Vec::new(),
                },
            );
        }
        ResourceServer::new(
            &OAuthSettings {
                public_url: Some("https://mcp.example.com/".into()),
                scopes: scopes.iter().map(|(s, l)| (s.to_string(), *l)).collect(),
                providers: vec![provider],
                registration: None,
            },
            Arc::new(permissions),
        )
    }

    const SCOPES: [(&str, PermissionLevel); 3] = [
        ("mcp:read", PermissionLevel::Read),
        ("mcp:call", PermissionLevel::Execute),
        ("mcp:admin", PermissionLevel::Admin),
    ];

    #[test]
    fn metadata_and_challenges_name_the_endpoint_and_the_scopes_needed() {
        let rs = server(&SCOPES);
        let metadata = rs.protected_resource_metadata("/mcp/fs");
        assert_eq!(metadata["resource"], "https://mcp.example.com/mcp/fs");
        assert_eq!(
            metadata["authorization_servers"],
            json!(["https://id.example"])
        );
        assert_eq!(
            metadata["scopes_supported"],
            json!(["mcp:read", "mcp:call", "mcp:admin"])
        );
        // A 401 asks for what lists and calls, not for admin.
        assert_eq!(
            rs.challenge("/mcp", None),
            "Bearer resource_metadata=\"https://mcp.example.com/.well-known/oauth-protected-resource/mcp\", scope=\"mcp:read mcp:call\""
        );
        // A 403 keeps what the token has and adds what is needed.
        assert_eq!(
            rs.step_up_challenge(
                "/ws",
                "say \"call\"\n",
                PermissionLevel::Execute,
                &["mcp:read".to_string()]
            ),
            "Bearer error=\"insufficient_scope\", error_description=\"say ?call??\", resource_metadata=\"https://mcp.example.com/.well-known/oauth-protected-resource/ws\", scope=\"mcp:read mcp:call\""
        );
        assert_eq!(rs.scopes_for(PermissionLevel::Admin), ["mcp:admin"]);
        assert!(server(&[]).scopes_for(PermissionLevel::Read).is_empty());
    }

    #[test]
    fn a_path_prefix_follows_the_well_known_segment() {
        let mut settings = OAuthSettings {
            public_url: Some("https://example.com/gw".into()),
            scopes: Vec::new(),
            providers: vec![ProviderSettings::new("https://id.example")],
            registration: None,
        };
        let rs = ResourceServer::new(&settings, Arc::default());
        assert_eq!(rs.resource("/mcp"), "https://example.com/gw/mcp");
        assert_eq!(
            rs.metadata_url("/mcp"),
            "https://example.com/.well-known/oauth-protected-resource/gw/mcp"
        );
        assert_eq!(rs.path_prefix(), "/gw");
        settings.public_url = Some("http://127.0.0.1:4000".into());
        let rs = ResourceServer::new(&settings, Arc::default());
        assert_eq!(rs.path_prefix(), "");
        assert_eq!(
            rs.metadata_url(""),
            "http://127.0.0.1:4000/.well-known/oauth-protected-resource"
        );
    }

    #[test]
    fn claims_make_the_identity_and_scopes_bound_its_level() {
        let rs = server(&SCOPES);
        let claims = json!({"sub": "alice\u{7}", "groups": ["x", "blue", "y"], "org": "acme",
                            "scope": "openid mcp:read", "aud": ["https://mcp.example.com/mcp", "y"]});
        let verified = rs.verified(0, claims.as_object().unwrap(), 10).unwrap();
        assert_eq!(verified.identity.name, "alice");
        // The one group that has a policy.
        assert_eq!(verified.identity.caller.team.as_deref(), Some("blue"));
        assert_eq!(
            verified.identity.caller.organization.as_deref(),
            Some("acme")
        );
        assert_eq!(verified.identity.max_level, PermissionLevel::Read);
        assert_eq!(verified.identity.scopes, ["mcp:read"]);
        assert_eq!(
            verified.identity.issuer.as_deref(),
            Some("https://id.example")
        );
        assert!(rs.audience_fits(&verified, "/mcp"));
        assert!(!rs.audience_fits(&verified, "/ws"));
        let scp =
            json!({"sub": "b", "scp": ["mcp:call"], "aud": "api://gateway/", "groups": ["z"]});
        let verified = rs.verified(0, scp.as_object().unwrap(), 10).unwrap();
        assert_eq!(verified.identity.max_level, PermissionLevel::Execute);
        assert_eq!(verified.identity.caller.team.as_deref(), Some("z"));
        assert!(rs.audience_fits(&verified, "/sse/anything"));
        let none = json!({"sub": "c", "aud": "https://mcp.example.com", "groups": ["p", "q"]});
        let verified = rs.verified(0, none.as_object().unwrap(), 10).unwrap();
        assert_eq!(verified.identity.max_level, PermissionLevel::Deny);
        assert_eq!(verified.identity.caller.team, None);
        assert!(rs.audience_fits(&verified, "/mcp"));
        let other = json!({"sub": "d", "aud": "https://mcp.example.com.evil/mcp"});
        let verified = rs.verified(0, other.as_object().unwrap(), 10).unwrap();
        assert!(!rs.audience_fits(&verified, "/mcp"));
        // Refused: no subject; two teams with policies; an ID token.
        for (claims, why) in [
            (json!({"aud": "x"}), "no subject"),
            (
                json!({"sub": "e", "groups": ["red", "blue"]}),
                "cannot choose",
            ),
            (json!({"sub": "f", "nonce": "n"}), "ID token"),
            (json!({"sub": "g", "typ": "ID"}), "ID token"),
        ] {
            let error = rs.verified(0, claims.as_object().unwrap(), 10).unwrap_err();
            assert!(error.contains(why), "{error}");
        }
        assert!(rs
            .verified(
                0,
                json!({"sub": "h", "typ": "Bearer"}).as_object().unwrap(),
                10
            )
            .is_ok());
        // Without configured scopes, tokens are not limited by them.
        assert_eq!(server(&[]).level_of_scopes(&[]), PermissionLevel::Admin);
    }
}
