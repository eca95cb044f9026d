//! Token exchange (RFC 8693) on behalf of the caller: for a server configured with
//! `token_exchange`, each call goes upstream with a token the provider issued for that
//! server in exchange for the caller's own access token — never with the caller's token
//! itself (no token passthrough), and never with the gateway's own credentials.
//!
//! Owns the exchange request (the gateway's client authenticated with HTTP Basic,
//! `subject_token` of type `access_token`, `resource`/`audience`/`scope` from the
//! settings) and a cache of exchanged tokens per caller token, used until shortly before
//! they expire (and never past the caller's own token). Bounds: at most
//! [`MAX_EXCHANGED`] tokens per server (when full, expired ones are dropped, then all),
//! an exchange takes at most [`EXCHANGE_TIMEOUT`], its answer is read up to
//! [`MAX_DOCUMENT_BYTES`](super::discovery::MAX_DOCUMENT_BYTES). Neither token appears in
//! an error or a log line.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;

use crate::core::mcp::permissions::KeyDigest;
use crate::core::mcp::Secret;

use super::config::TokenExchangeSettings;
use super::discovery::{self, MAX_DOCUMENT_BYTES};
use super::token_cache::unix_now;
use super::{Identity, Via};

/// The most exchanged tokens kept per server.
pub const MAX_EXCHANGED: usize = 10_000;
/// How long one exchange may take.
pub const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);
/// Lifetime assumed for an exchanged token whose answer has no `expires_in`.
const DEFAULT_LIFETIME_SECS: u64 = 300;

const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// Exchanges callers' tokens for one upstream server.
#[derive(Debug)]
pub struct TokenExchanger {
    server: String,
    settings: TokenExchangeSettings,
    http: reqwest::Client,
    cache: Mutex<HashMap<KeyDigest, (Secret, u64)>>,
    /// Held while exchanging: callers with the same token wait for one exchange.
    exchanging: tokio::sync::Mutex<()>,
}

impl TokenExchanger {
    /// An exchanger for `server`.
    pub fn new(server: &str, settings: TokenExchangeSettings) -> Self {
        TokenExchanger {
            server: server.to_string(),
            settings,
            http: discovery::credential_client(),
            cache: Mutex::default(),
            exchanging: tokio::sync::Mutex::new(()),
        }
    }

    fn cached(&self, digest: &KeyDigest, now: u64) -> Option<Secret> {
        let cache = self.cache.lock().ok()?;
        cache
            .get(digest)
            .filter(|(_, until)| *until > now)
            .map(|(token, _)| token.clone())
    }

    /// Forgets the token exchanged for `identity`'s (the upstream refused it), so the
    /// next call exchanges again.
    pub fn forget(&self, identity: &Identity) {
        if let (Some(subject), Ok(mut cache)) = (&identity.token, self.cache.lock()) {
            cache.remove(&KeyDigest::of(subject.expose()));
        }
    }

    /// The token this server's calls by `identity` carry.
    ///
    /// # Errors
    /// Why there is none: the caller did not sign in with a token (an API key has nothing
    /// to exchange), or the provider refused or could not be reached.
    pub async fn token_for(&self, identity: &Identity) -> Result<Secret, String> {
        let subject = match (&identity.token, identity.via) {
            (Some(token), Via::Token) => token,
            _ => {
                return Err(format!(
                    "server '{}' acts on behalf of signed-in users: call it with an access token \
                     from the identity provider, not an API key",
                    self.server
                ))
            }
        };
        if self
            .settings
            .issuer
            .as_ref()
            .is_some_and(|issuer| identity.issuer.as_ref() != Some(issuer))
        {
            return Err(format!(
                "server '{}' exchanges tokens of another identity provider than the caller's",
                self.server
            ));
        }
        let digest = KeyDigest::of(subject.expose());
        if let Some(token) = self.cached(&digest, unix_now()) {
            return Ok(token);
        }
        let _exchanging = self.exchanging.lock().await;
        let now = unix_now();
        if let Some(token) = self.cached(&digest, now) {
            return Ok(token);
        }
        let (token, lifetime) = tokio::time::timeout(EXCHANGE_TIMEOUT, self.exchange(subject))
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "the identity provider did not answer the token exchange within {EXCHANGE_TIMEOUT:?}"
                ))
            })?;
        let margin = (lifetime / 10).min(30);
        let mut until = now.saturating_add(lifetime.saturating_sub(margin));
        if let Some(expires) = identity.expires_at {
            until = until.min(expires);
        }
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= MAX_EXCHANGED {
                cache.retain(|_, (_, until)| *until > now);
                if cache.len() >= MAX_EXCHANGED {
                    cache.clear();
                }
            }
            cache.insert(digest, (token.clone(), until));
        }
        Ok(token)
    }

    async fn exchange(&self, subject: &Secret) -> Result<(Secret, u64), String> {
        let settings = &self.settings;
        let scope = settings.scopes.join(" ");
        let mut form = vec![
            ("grant_type", GRANT_TYPE),
            ("subject_token", subject.expose()),
            ("subject_token_type", ACCESS_TOKEN_TYPE),
            ("requested_token_type", ACCESS_TOKEN_TYPE),
        ];
        if let Some(resource) = &settings.resource {
            form.push(("resource", resource));
        }
        if let Some(audience) = &settings.audience {
            form.push(("audience", audience));
        }
        if !scope.is_empty() {
            form.push(("scope", &scope));
        }
        let (id, secret) =
            discovery::basic_credentials(&settings.client_id, settings.client_secret.expose());
        let response = self
            .http
            .post(&settings.token_url)
            .basic_auth(id, Some(secret))
            .header("accept", "application/json")
            .form(&form)
            .send()
            .await
            .map_err(|_| "the identity provider's token endpoint cannot be reached".to_string())?;
        let status = response.status();
        let answer = discovery::read_json_any_status(
            response,
            "the token exchange answer",
            MAX_DOCUMENT_BYTES,
        )
        .await?;
        if !status.is_success() {
            let error = answer
                .get("error")
                .and_then(Value::as_str)
                .map(super::jwt::printable)
                .unwrap_or_else(|| format!("HTTP {}", status.as_u16()));
            return Err(format!(
                "the identity provider refused to exchange the caller's token for server '{}' ({error})",
                self.server
            ));
        }
        if answer
            .get("token_type")
            .and_then(Value::as_str)
            .is_some_and(|t| !t.eq_ignore_ascii_case("bearer") && !t.eq_ignore_ascii_case("n_a"))
        {
            return Err("the token exchange answer is not a bearer token".to_string());
        }
        let token = answer
            .get("access_token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or("the token exchange answer has no access_token")?;
        let lifetime = answer
            .get("expires_in")
            .and_then(Value::as_u64)
            .unwrap_or(DEFAULT_LIFETIME_SECS);
        Ok((Secret::new(token), lifetime))
    }
}
