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

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
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
    http: reqwest::Client,
    mirrored: tokio::sync::Mutex<Option<(Instant, Value)>>,
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
    /// A resource server with these settings. Nothing is fetched until a token needs it.
    pub fn new(settings: &OAuthSettings) -> Self {
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
            mirrored: tokio::sync::Mutex::new(None),
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

    /// Where the protected-resource metadata of the endpoint at `path` is.
    pub fn metadata_url(&self, path: &str) -> String {
        format!(
            "{}/.well-known/oauth-protected-resource{path}",
            self.public_url()
        )
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

    /// The scopes that grant at least `level`, space-separated (empty when scopes are
    /// not configured).
    pub fn scopes_granting(&self, level: PermissionLevel) -> String {
        self.scopes
            .iter()
            .filter(|(_, l)| *l >= level)
            .map(|(s, _)| s.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The `WWW-Authenticate` value of a refusal at the endpoint `path`: `error` is
    /// `None` when no credential was presented, `Some(("invalid_token", why))` for a bad
    /// one, `Some(("insufficient_scope", why))` when the token's scopes are too narrow
    /// for `needed`.
    pub fn challenge(
        &self,
        path: &str,
        error: Option<(&str, &str)>,
        needed: PermissionLevel,
    ) -> String {
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
        let scope = self.scopes_granting(needed);
        if !scope.is_empty() {
            parts.push(format!("scope=\"{}\"", quoted_string_safe(&scope)));
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
                let verified = Arc::new(self.verify(token).await?);
                self.cache.insert(*digest, Arc::clone(&verified));
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

    async fn verify(&self, token: &str) -> Result<VerifiedToken, String> {
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
        let mut refusal =
            "the credential is neither a known API key nor an access token this gateway accepts"
                .to_string();
        for (index, provider) in self.providers.iter().enumerate() {
            let Some(settings) = &provider.settings.introspection else {
                continue;
            };
            match introspect(
                &self.http,
                settings,
                &provider.settings.issuer,
                token,
                provider.settings.timeout,
            )
            .await
            {
                Ok(claims) => {
                    let exp = claims.get("exp").and_then(Value::as_u64).unwrap_or(0);
                    let valid_until = exp.min(unix_now().saturating_add(settings.cache.as_secs()));
                    if exp.saturating_add(provider.settings.leeway.as_secs()) < unix_now() {
                        return Err("the token has expired".to_string());
                    }
                    return self.verified(index, &claims, valid_until);
                }
                Err(why) => refusal = why,
            }
        }
        Err(refusal)
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
        let group =
            |claim: &Option<String>| claim.as_ref().and_then(|c| group_claim(claims.get(c)));
        let scopes = token_scopes(claims);
        let max_level = self.level_of_scopes(&scopes);
        let identity = Identity {
            caller: Caller {
                api_key: None,
                team: group(&names.team),
                organization: group(&names.organization),
            },
            digest: Some(KeyDigest::of(&format!("{}\n{subject}", settings.issuer))),
            name: clean_name(subject),
            max_level,
            via: Via::Token,
            token: None,
            expires_at: claims.get("exp").and_then(Value::as_u64),
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
            Some((at, document)) if at.elapsed() < MIRRORED_METADATA_TTL => document.clone(),
            _ => {
                let document = discovery::discover(
                    &self.http,
                    &provider.settings.issuer,
                    provider.settings.timeout,
                )
                .await?;
                *cached = Some((Instant::now(), document.clone()));
                document
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

/// A team or organisation claim: a string, or the first string of a list; at most 128
/// characters, none of them control characters.
fn group_claim(value: Option<&Value>) -> Option<String> {
    let text = match value? {
        Value::String(s) => s.as_str(),
        Value::Array(items) => items.iter().find_map(Value::as_str)?,
        _ => return None,
    };
    (!text.trim().is_empty() && text.len() <= 128 && !text.chars().any(char::is_control))
        .then(|| text.to_string())
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
    use crate::identity::config::ClaimNames;

    fn server(scopes: &[(&str, PermissionLevel)]) -> ResourceServer {
        let mut provider = ProviderSettings::new("https://id.example");
        provider.claims = ClaimNames {
            subject: "sub".into(),
            team: Some("groups".into()),
            organization: Some("org".into()),
        };
        provider.audiences = vec!["api://gateway".into()];
        ResourceServer::new(&OAuthSettings {
            public_url: Some("https://mcp.example.com/".into()),
            scopes: scopes.iter().map(|(s, l)| (s.to_string(), *l)).collect(),
            providers: vec![provider],
            registration: None,
        })
    }

    #[test]
    fn metadata_and_challenges_name_the_endpoint() {
        let rs = server(&[
            ("mcp:read", PermissionLevel::Read),
            ("mcp:call", PermissionLevel::Execute),
        ]);
        let metadata = rs.protected_resource_metadata("/mcp/fs");
        assert_eq!(metadata["resource"], "https://mcp.example.com/mcp/fs");
        assert_eq!(
            metadata["authorization_servers"],
            json!(["https://id.example"])
        );
        assert_eq!(
            metadata["scopes_supported"],
            json!(["mcp:read", "mcp:call"])
        );
        assert_eq!(
            rs.challenge("/mcp", None, PermissionLevel::Read),
            "Bearer resource_metadata=\"https://mcp.example.com/.well-known/oauth-protected-resource/mcp\", scope=\"mcp:read mcp:call\""
        );
        assert_eq!(
            rs.challenge(
                "/ws",
                Some(("insufficient_scope", "say \"call\"\n")),
                PermissionLevel::Execute
            ),
            "Bearer error=\"insufficient_scope\", error_description=\"say ?call??\", resource_metadata=\"https://mcp.example.com/.well-known/oauth-protected-resource/ws\", scope=\"mcp:call\""
        );
    }

    #[test]
    fn claims_make_the_identity_and_scopes_bound_its_level() {
        let rs = server(&[
            ("mcp:read", PermissionLevel::Read),
            ("mcp:call", PermissionLevel::Execute),
        ]);
        let claims = json!({"sub": "alice\u{7}", "groups": ["blue", "x"], "org": "acme",
                            "scope": "openid mcp:read", "aud": ["https://mcp.example.com/mcp", "y"]});
        let verified = rs.verified(0, claims.as_object().unwrap(), 10).unwrap();
        assert_eq!(verified.identity.name, "alice");
        assert_eq!(verified.identity.caller.team.as_deref(), Some("blue"));
        assert_eq!(
            verified.identity.caller.organization.as_deref(),
            Some("acme")
        );
        assert_eq!(verified.identity.max_level, PermissionLevel::Read);
        assert!(rs.audience_fits(&verified, "/mcp"));
        assert!(!rs.audience_fits(&verified, "/ws"));
        let scp = json!({"sub": "b", "scp": ["mcp:call"], "aud": "api://gateway/"});
        let verified = rs.verified(0, scp.as_object().unwrap(), 10).unwrap();
        assert_eq!(verified.identity.max_level, PermissionLevel::Execute);
        assert!(rs.audience_fits(&verified, "/sse/anything"));
        let none = json!({"sub": "c", "aud": "https://mcp.example.com"});
        let verified = rs.verified(0, none.as_object().unwrap(), 10).unwrap();
        assert_eq!(verified.identity.max_level, PermissionLevel::Deny);
        assert!(rs.audience_fits(&verified, "/mcp"));
        let other = json!({"sub": "d", "aud": "https://mcp.example.com.evil/mcp"});
        let verified = rs.verified(0, other.as_object().unwrap(), 10).unwrap();
        assert!(!rs.audience_fits(&verified, "/mcp"));
        assert!(rs
            .verified(0, json!({"aud": "x"}).as_object().unwrap(), 10)
            .unwrap_err()
            .contains("no subject"));
        // Without configured scopes, tokens are not limited by them.
        assert_eq!(server(&[]).level_of_scopes(&[]), PermissionLevel::Admin);
    }
}
