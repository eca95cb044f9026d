//! Who is calling: one [`Identity`] for every downstream request, whatever proves it —
//! one of our API keys, or an access token from the organisation's identity provider
//! (the gateway as an OAuth 2.1 resource server).
//!
//! Owns the credential a request presents (`Authorization: Bearer …`, else
//! `x-api-key`), the order in which it is tried (a configured API key first, by digest in
//! constant time; then, when `oauth` is configured, as an access token), and the refusals
//! with their `WWW-Authenticate` challenges. The permission manager decides on the
//! identity alike for keys and tokens; a token's scopes only bound the level
//! ([`Identity::max_level`]).
//!
//! It never forwards a client's credential upstream (no token passthrough): upstream
//! credentials are the gateway's own.
//!
//! # Layout
//! - [`api_keys`]: the configured keys.
//! - [`config`]: the settings of the resource server and its providers.
//! - [`resource`]: the resource server: token checks, identity from claims, metadata,
//!   challenges.
//! - [`jwt`], [`jwks`]: verifying JWTs with the provider's keys.
//! - [`introspection`]: opaque tokens (RFC 7662).
//! - [`exchange`]: the caller's token exchanged for an upstream's (RFC 8693).
//! - [`discovery`]: fetching the provider's documents, with their bounds.
//! - `token_cache`: tokens already verified.

pub mod api_keys;
pub mod config;
pub mod discovery;
pub mod exchange;
pub mod introspection;
pub mod jwks;
pub mod jwt;
pub mod resource;
mod token_cache;

use std::sync::Arc;

use axum::http::{HeaderMap, HeaderValue};

use crate::core::mcp::permissions::{Caller, KeyDigest};
use crate::core::mcp::{PermissionLevel, Secret};

pub use self::api_keys::KeyRing;
pub use self::resource::ResourceServer;
pub(crate) use self::token_cache::unix_now;
pub use self::token_cache::MAX_CACHED_TOKENS;

/// Who is asking, as the face established it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The caller (team, organisation) for permission decisions.
    pub caller: Caller,
    /// Whose it is: the digest of the caller's API key (which selects the key's policy),
    /// or for a token the digest of its issuer and subject (which matches no key).
    /// Sessions belong to it.
    pub digest: Option<KeyDigest>,
    /// A name for logs, audit records and metrics: the key's configured name, the
    /// token's subject, or `anonymous`.
    pub name: String,
    /// The highest level the credential allows, whatever the policies say: `Admin` for
    /// keys; for tokens, what their scopes grant.
    pub max_level: PermissionLevel,
    /// What proved it.
    pub via: Via,
    /// The access token presented, kept for token exchange only (never forwarded).
    pub token: Option<Secret>,
    /// When the access token expires (Unix seconds); a session opened with it ends
    /// its use there.
    pub expires_at: Option<u64>,
    /// The provider that issued the access token.
    pub issuer: Option<String>,
    /// The token's scopes that `oauth.scopes` names (for step-up challenges).
    pub scopes: Vec<String>,
}

/// What proved an identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// Nothing: the gateway requires no credential.
    Anonymous,
    /// One of the configured API keys.
    ApiKey,
    /// An access token from an identity provider.
    Token,
}

impl Via {
    /// The label used in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Anonymous => "anonymous",
            Via::ApiKey => "api_key",
            Via::Token => "token",
        }
    }
}

impl Identity {
    /// A caller without a key (a gateway configured without API keys).
    pub fn anonymous() -> Self {
        Identity {
            caller: Caller::default(),
            digest: None,
            name: "anonymous".to_string(),
            max_level: PermissionLevel::Admin,
            via: Via::Anonymous,
            token: None,
            expires_at: None,
            issuer: None,
            scopes: Vec::new(),
        }
    }

    /// Whether the credential has expired (a token's `exp` has passed).
    pub fn expired(&self) -> bool {
        self.expires_at.is_some_and(|at| at < unix_now())
    }
}

/// Why a request has no identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthFailure {
    /// No credential was presented.
    Missing,
    /// The credential is not one of our keys (and no provider is configured).
    UnknownKey,
    /// The credential is an access token that is refused; the text says why.
    InvalidToken(String),
}

/// Turns a request's credential into an identity.
#[derive(Debug, Clone, Default)]
pub struct Authenticator {
    keys: KeyRing,
    oauth: Option<Arc<ResourceServer>>,
}

impl Authenticator {
    /// An authenticator over the configured keys and, if any, the resource server.
    pub fn new(keys: KeyRing, oauth: Option<Arc<ResourceServer>>) -> Self {
        Authenticator { keys, oauth }
    }

    /// Whether callers must present a credential.
    pub fn requires_credentials(&self) -> bool {
        self.keys.requires_key() || self.oauth.is_some()
    }

    /// The API keys (the admin API replaces them).
    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }

    /// The resource server, when `oauth` is configured.
    pub fn resource_server(&self) -> Option<&Arc<ResourceServer>> {
        self.oauth.as_ref()
    }

    /// The identity of a request to the endpoint at `path` (`/mcp`, `/ws/fs`, …), from
    /// its headers.
    ///
    /// # Errors
    /// [`AuthFailure`] when credentials are required and none, or a bad one, was given.
    pub async fn identify(&self, headers: &HeaderMap, path: &str) -> Result<Identity, AuthFailure> {
        if !self.requires_credentials() {
            return Ok(Identity::anonymous());
        }
        let (presented, source) = presented_credential(headers).ok_or(AuthFailure::Missing)?;
        match source {
            CredentialSource::Bearer => self.identify_credential(presented, path).await,
            // Access tokens travel in `Authorization: Bearer` only (the metadata says
            // `bearer_methods_supported: ["header"]`; never in a query string).
            CredentialSource::ApiKeyHeader => self
                .keys
                .find(&KeyDigest::of(presented))
                .ok_or(AuthFailure::UnknownKey),
        }
    }

    /// The identity a credential (a key, or a token as if sent in `Authorization:
    /// Bearer`) proves at the endpoint `path`.
    ///
    /// # Errors
    /// [`AuthFailure`] when it proves none.
    pub async fn identify_credential(
        &self,
        presented: &str,
        path: &str,
    ) -> Result<Identity, AuthFailure> {
        let digest = KeyDigest::of(presented);
        if let Some(identity) = self.keys.find(&digest) {
            return Ok(identity);
        }
        match &self.oauth {
            Some(oauth) => {
                let mut identity = oauth
                    .authenticate(presented, &digest, path)
                    .await
                    .map_err(AuthFailure::InvalidToken)?;
                identity.token = Some(Secret::new(presented));
                Ok(identity)
            }
            None => Err(AuthFailure::UnknownKey),
        }
    }

    /// The message for the client.
    pub fn message(&self, failure: &AuthFailure) -> String {
        match (failure, &self.oauth) {
            (AuthFailure::Missing, None) => {
                "an API key is required: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'"
                    .to_string()
            }
            (AuthFailure::Missing, Some(_)) => {
                "authentication is required: send 'Authorization: Bearer <token>' with an access \
                 token from the identity provider named in the protected-resource metadata \
                 (see WWW-Authenticate), or an API key"
                    .to_string()
            }
            (AuthFailure::UnknownKey, _) => "the API key is not valid".to_string(),
            (AuthFailure::InvalidToken(why), _) => format!("the access token is not valid: {why}"),
        }
    }

    /// The `WWW-Authenticate` value of a refusal at the endpoint `path` (RFC 6750; with
    /// the protected-resource metadata and the scopes needed when `oauth` is configured).
    pub fn challenge(&self, path: &str, failure: &AuthFailure) -> HeaderValue {
        let value = match (&self.oauth, failure) {
            (None, AuthFailure::Missing) => "Bearer".to_string(),
            (None, _) => "Bearer error=\"invalid_token\"".to_string(),
            (Some(oauth), AuthFailure::Missing) => oauth.challenge(path, None),
            (Some(oauth), AuthFailure::UnknownKey) => {
                oauth.challenge(path, Some(("invalid_token", "the API key is not valid")))
            }
            (Some(oauth), AuthFailure::InvalidToken(why)) => {
                oauth.challenge(path, Some(("invalid_token", why)))
            }
        };
        HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("Bearer"))
    }

    /// When `identity` may not reach `needed` because of its token's scopes (while a
    /// policy might allow it): the 403 `insufficient_scope` challenge at `path` and its
    /// message. `None` when the scopes are not what stops it.
    pub fn scope_shortfall(
        &self,
        identity: &Identity,
        path: &str,
        needed: PermissionLevel,
    ) -> Option<(HeaderValue, String)> {
        let oauth = self.oauth.as_ref()?;
        if identity.via != Via::Token || identity.max_level >= needed {
            return None;
        }
        let scopes = oauth.scopes_for(needed).join(" ");
        let message = format!(
            "the access token's scopes do not allow this ({needed} needs the scope {scopes})"
        );
        let value = oauth.step_up_challenge(path, &message, needed, &identity.scopes);
        let value =
            HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("Bearer"));
        Some((value, message))
    }
}

/// Where a credential came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialSource {
    /// `Authorization: Bearer`: an API key or an access token.
    Bearer,
    /// `x-api-key` (or a WebSocket upgrade's `?api_key=`): an API key only.
    ApiKeyHeader,
}

/// The credential a request presents: `Authorization: Bearer <credential>`, else
/// `x-api-key`.
pub fn presented_credential(headers: &HeaderMap) -> Option<(&str, CredentialSource)> {
    let bearer = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then_some(rest.trim())
        })
        .filter(|k| !k.is_empty());
    match bearer {
        Some(bearer) => Some((bearer, CredentialSource::Bearer)),
        None => headers
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(|k| (k, CredentialSource::ApiKeyHeader)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::ApiKey;

    fn keys() -> KeyRing {
        KeyRing::new(vec![ApiKey {
            name: "ci".into(),
            digest: KeyDigest::of("sk-ci"),
            team: Some("platform".into()),
            organization: Some("acme".into()),
        }])
    }

    #[tokio::test]
    async fn keys_come_from_either_header() {
        let auth = Authenticator::new(keys(), None);
        let mut headers = HeaderMap::new();
        assert_eq!(
            auth.identify(&headers, "/mcp").await.unwrap_err(),
            AuthFailure::Missing
        );
        assert_eq!(auth.challenge("/mcp", &AuthFailure::Missing), "Bearer");
        headers.insert("authorization", "Bearer sk-ci".parse().unwrap());
        assert_eq!(auth.identify(&headers, "/mcp").await.unwrap().name, "ci");
        let mut headers = HeaderMap::new();
        headers.insert("x-api-key", "sk-ci".parse().unwrap());
        assert_eq!(auth.identify(&headers, "/mcp").await.unwrap().name, "ci");
        headers.insert("x-api-key", "sk-wrong".parse().unwrap());
        let failure = auth.identify(&headers, "/mcp").await.unwrap_err();
        assert_eq!(failure, AuthFailure::UnknownKey);
        assert_eq!(
            auth.challenge("/mcp", &failure),
            "Bearer error=\"invalid_token\""
        );
        let open = Authenticator::default();
        assert_eq!(
            open.identify(&HeaderMap::new(), "/mcp").await.unwrap().name,
            "anonymous"
        );
    }
}
