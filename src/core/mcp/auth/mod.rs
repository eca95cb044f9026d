//! Upstream credentials on the wire: the headers that [`AuthConfig`] and
//! `static_headers` put on every request to one server, the OAuth 2.0
//! client-credentials token cache of [`AuthConfig::OAuth2`] (a configured `token_url`),
//! and the OAuth 2.1 client of [`AuthConfig::OAuth`] (everything discovered).
//!
//! # Layout
//! - this file: [`UpstreamAuth`] (headers, refusals, the legacy client-credentials
//!   cache), the redirect policy, capped body reads.
//! - [`config`]: the public [`OAuthConfig`] and the [`AuthorizationHandler`] hook.
//! - `challenge`: the `WWW-Authenticate: Bearer` challenge.
//! - `discovery`: protected-resource and authorization-server metadata.
//! - `registration`: pre-registered clients, metadata documents, dynamic registration.
//! - `grants`: PKCE, the authorization URL and redirect checks, token requests.
//! - `client`: one server's token cache and the flow that fills it.
//! - [`per_user`]: per-user tokens, authorized through the service, in a [`per_user::TokenStore`].
//! - [`error`]: the typed failures, [`OAuthError`].
//!
//! Token caches: a token is cached until shortly before it expires;
//! concurrent callers share one fetch (the fetch runs under an async mutex and callers
//! that waited re-read the cache); after a 401 the transport reports the refusal with
//! the token it used ([`UpstreamAuth::refused`]), and the next
//! [`UpstreamAuth::headers`] fetches a fresh one.
//!
//! Every header value built from a credential is marked sensitive, so `reqwest` and
//! `http` never print it.
//!
//! Redirects never carry a credential to another origin: every HTTP client that sends
//! upstream credentials follows redirects only within the origin (scheme, host, port) of
//! the request's own URL, at most [`MAX_UPSTREAM_REDIRECTS`] of them
//! ([`same_origin_redirects`]; the identity provider's client uses it too). A redirect elsewhere fails the request with an error
//! that names the other origin. Stripping the credentials and following would not do:
//! `reqwest` strips only `Authorization` and cookies, not an API key header or a static
//! header, and would send the body (tool arguments, a client secret) to the other
//! origin on a 307/308 anyway.

mod challenge;
mod client;
pub mod config;
mod discovery;
pub mod error;
mod grants;
pub mod per_user;
mod registration;

pub use client::{DEFAULT_TOKEN_LIFETIME, EXPIRY_MARGIN};
pub use config::{
    AuthorizationHandler, AuthorizationRequest, OAuthConfig, TokenEndpointAuthMethod,
    DEFAULT_MAX_AUTHORIZATIONS, DEFAULT_REDIRECT_URI,
};
pub use discovery::{MAX_METADATA_BYTES, METADATA_TIMEOUT};
pub use error::OAuthError;
pub use grants::{MAX_TOKEN_RESPONSE_BYTES, TOKEN_TIMEOUT};

use std::time::{Duration, Instant};

use base64::Engine;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION};

use self::challenge::Challenge;
use self::client::OAuthClient;
use super::config::{AuthConfig, Secret};
use super::error::{McpError, McpResult};
#[cfg(doc)]
use super::limits::MAX_UPSTREAM_REDIRECTS;

/// The most of a token response we read.
const MAX_TOKEN_RESPONSE: usize = MAX_TOKEN_RESPONSE_BYTES;

/// The redirect policy of every HTTP client that carries credentials: follow within the
/// origin of the request's own URL, at most `max` times (the upstream client:
/// [`MAX_UPSTREAM_REDIRECTS`]); fail on a redirect to another origin (with a message
/// that names it).
pub(crate) fn same_origin_redirects(max: usize) -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(move |attempt| {
        let Some(first) = attempt.previous().first() else {
            return attempt.follow();
        };
        let from = first.origin();
        let to = attempt.url().origin();
        if to != from {
            let message = format!(
                "the server redirected to another origin ({}); redirects are followed only within {} so that credentials never leave it",
                to.ascii_serialization(),
                from.ascii_serialization()
            );
            return attempt.error(message);
        }
        if attempt.previous().len() > max {
            return attempt.error(format!("more than {max} redirects"));
        }
        attempt.follow()
    })
}

#[derive(Clone)]
struct CachedToken {
    token: Secret,
    refresh_at: Instant,
}

/// The credentials of one upstream server, ready to put on requests.
pub(crate) struct UpstreamAuth {
    server_name: String,
    auth: Option<AuthConfig>,
    static_headers: HeaderMap,
    http: reqwest::Client,
    /// The cached OAuth token; the async mutex makes concurrent callers share a fetch.
    token: tokio::sync::Mutex<Option<CachedToken>>,
    /// The OAuth 2.1 client of [`AuthConfig::OAuth`].
    oauth: Option<OAuthClient>,
}

impl std::fmt::Debug for UpstreamAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamAuth")
            .field("server_name", &self.server_name)
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

impl UpstreamAuth {
    /// Prepares the credentials of a server.
    ///
    /// # Errors
    /// [`McpError::InvalidConfig`] when a static header's name or value is not valid
    /// in HTTP.
    pub(crate) fn new(
        server_name: &str,
        server_url: &str,
        auth: Option<AuthConfig>,
        static_headers: &std::collections::HashMap<String, String>,
        http: reqwest::Client,
    ) -> McpResult<Self> {
        let mut headers = HeaderMap::new();
        for (name, value) in static_headers {
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                McpError::config(format!(
                    "server '{server_name}': invalid header name '{name}'"
                ))
            })?;
            let mut value = HeaderValue::from_str(value).map_err(|_| {
                McpError::config(format!(
                    "server '{server_name}': invalid value for header '{name}'"
                ))
            })?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        if let Some(AuthConfig::ApiKey { header, .. }) = &auth {
            HeaderName::from_bytes(header.as_bytes()).map_err(|_| {
                McpError::config(format!(
                    "server '{server_name}': invalid API key header name '{header}'"
                ))
            })?;
        }
        let oauth = match &auth {
            Some(AuthConfig::OAuth(config)) => {
                let url = url::Url::parse(server_url).map_err(|e| {
                    McpError::config(format!("server '{server_name}': invalid url: {e}"))
                })?;
                Some(OAuthClient::new(
                    server_name,
                    url,
                    config.clone(),
                    http.clone(),
                ))
            }
            _ => None,
        };
        Ok(UpstreamAuth {
            server_name: server_name.to_string(),
            auth,
            static_headers: headers,
            http,
            token: tokio::sync::Mutex::new(None),
            oauth,
        })
    }

    /// Whether a 401 is worth one retry with fresh credentials (only OAuth tokens can
    /// be refreshed).
    pub(crate) fn can_refresh(&self) -> bool {
        matches!(
            self.auth,
            Some(AuthConfig::OAuth2 { .. } | AuthConfig::OAuth(_))
        )
    }

    /// How many times one request may be sent again after a refusal (401, or 403 for
    /// want of scope) with new credentials: once for a configured token endpoint, up to
    /// the configured number of authorizations for discovered OAuth, never otherwise.
    pub(crate) fn max_retries(&self) -> u32 {
        match (&self.auth, &self.oauth) {
            (_, Some(oauth)) => oauth.max_authorizations(),
            (Some(AuthConfig::OAuth2 { .. }), _) => 1,
            _ => 0,
        }
    }

    /// Takes note of a refusal (`status` 401 or 403, with the response's headers) of a
    /// request sent with the credentials `used`. Returns whether sending it again with
    /// new credentials may help.
    pub(crate) async fn refused(
        &self,
        used: &HeaderMap,
        status: u16,
        response_headers: &HeaderMap,
    ) -> bool {
        if let Some(oauth) = &self.oauth {
            let sent = used
                .get(AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "));
            return oauth
                .refused(sent, status, Challenge::from_headers(response_headers))
                .await;
        }
        if status == 401 && self.can_refresh() {
            self.invalidate(used).await;
            return true;
        }
        false
    }

    /// The headers for the next request: static headers, then the credential.
    ///
    /// # Errors
    /// [`McpError::AuthenticationError`] when an OAuth token cannot be obtained.
    pub(crate) async fn headers(&self) -> McpResult<HeaderMap> {
        let mut headers = self.static_headers.clone();
        match &self.auth {
            None => {}
            Some(AuthConfig::Bearer { token }) => {
                headers.insert(AUTHORIZATION, bearer_value(token)?);
            }
            Some(AuthConfig::ApiKey { key, header }) => {
                let name = HeaderName::from_bytes(header.as_bytes()).map_err(|_| {
                    self.auth_error("the API key header name is invalid".to_string())
                })?;
                headers.insert(name, sensitive(key.expose())?);
            }
            Some(AuthConfig::Basic { username, password }) => {
                let encoded = base64::engine::general_purpose::STANDARD
                    .encode(format!("{username}:{}", password.expose()));
                headers.insert(AUTHORIZATION, sensitive(&format!("Basic {encoded}"))?);
            }
            Some(AuthConfig::OAuth2 { .. }) => {
                let token = self.oauth_token().await?;
                headers.insert(AUTHORIZATION, bearer_value(&token)?);
            }
            Some(AuthConfig::OAuth(_)) => {
                if let Some(oauth) = &self.oauth {
                    let token = oauth
                        .bearer()
                        .await
                        .map_err(|e| self.auth_error(e.to_string()))?;
                    if let Some(token) = token {
                        headers.insert(AUTHORIZATION, bearer_value(&token)?);
                    }
                }
            }
        }
        Ok(headers)
    }

    /// [`UpstreamAuth::headers`], with `credential` (one request's own bearer token, such
    /// as a user's token exchanged on their behalf) in place of the configured one.
    ///
    /// # Errors
    /// As [`UpstreamAuth::headers`].
    pub(crate) async fn headers_for(&self, credential: Option<&Secret>) -> McpResult<HeaderMap> {
        match credential {
            None => self.headers().await,
            Some(credential) => {
                let mut headers = self.static_headers.clone();
                if let Some(AuthConfig::ApiKey { header, .. }) = &self.auth {
                    headers.remove(header.as_str());
                }
                headers.insert(AUTHORIZATION, bearer_value(credential)?);
                Ok(headers)
            }
        }
    }

    /// Forgets the cached OAuth token if it is still `used` (a 401 answered it), so the
    /// next [`UpstreamAuth::headers`] fetches a new one. A token another caller already
    /// replaced is kept.
    pub(crate) async fn invalidate(&self, used: &HeaderMap) {
        if let Some(oauth) = &self.oauth {
            let sent = used
                .get(AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "));
            oauth.refused(sent, 401, Challenge::default()).await;
            return;
        }
        let mut cached = self.token.lock().await;
        let stale = match (&*cached, used.get(AUTHORIZATION)) {
            (Some(current), Some(sent)) => {
                sent.as_bytes() == format!("Bearer {}", current.token.expose()).as_bytes()
            }
            _ => true,
        };
        if stale {
            *cached = None;
        }
    }

    async fn oauth_token(&self) -> McpResult<Secret> {
        let mut cached = self.token.lock().await;
        if let Some(token) = cached.as_ref().filter(|t| Instant::now() < t.refresh_at) {
            return Ok(token.token.clone());
        }
        let fresh = self.fetch_token().await?;
        let token = fresh.token.clone();
        *cached = Some(fresh);
        Ok(token)
    }

    async fn fetch_token(&self) -> McpResult<CachedToken> {
        let Some(AuthConfig::OAuth2 {
            client_id,
            client_secret,
            token_url,
            scopes,
            resource,
        }) = &self.auth
        else {
            return Err(self.auth_error("no OAuth configuration".to_string()));
        };
        let mut form: Vec<(&str, &str)> = vec![("grant_type", "client_credentials")];
        let scope = scopes.join(" ");
        if !scope.is_empty() {
            form.push(("scope", &scope));
        }
        if let Some(resource) = resource {
            form.push(("resource", resource));
        }
        let body = form
            .iter()
            .map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let started = Instant::now();
        let response = self
            .http
            .post(token_url)
            .basic_auth(client_id, Some(client_secret.expose()))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("Accept", "application/json")
            .body(body)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(|e| {
                self.auth_error(format!(
                    "the OAuth token endpoint could not be reached: {}",
                    without_url(&e)
                ))
            })?;
        let status = response.status();
        let bytes = read_capped(response, MAX_TOKEN_RESPONSE)
            .await
            .map_err(|m| self.auth_error(format!("reading the OAuth token response: {m}")))?;
        let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| {
            self.auth_error(format!(
                "the OAuth token endpoint answered {status} with a body that is not JSON"
            ))
        })?;
        if !status.is_success() {
            let error = value
                .get("error")
                .and_then(|v| v.as_str())
                .unwrap_or("unknown");
            return Err(self.auth_error(format!(
                "the OAuth token endpoint refused the client credentials ({status}, error '{error}')"
            )));
        }
        let token = value
            .get("access_token")
            .and_then(|v| v.as_str())
            .ok_or_else(|| {
                self.auth_error("the OAuth token response has no access_token".to_string())
            })?;
        let lifetime = value
            .get("expires_in")
            .and_then(|v| {
                v.as_u64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            })
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_TOKEN_LIFETIME);
        let margin = EXPIRY_MARGIN.min(lifetime / 10);
        tracing::debug!(server = %self.server_name, lifetime_s = lifetime.as_secs(), "fetched an OAuth token");
        Ok(CachedToken {
            token: Secret::new(token),
            refresh_at: started + lifetime.saturating_sub(margin),
        })
    }

    pub(crate) fn auth_error(&self, message: String) -> McpError {
        McpError::AuthenticationError {
            server_name: self.server_name.clone(),
            message,
        }
    }
}

fn bearer_value(token: &Secret) -> McpResult<HeaderValue> {
    sensitive(&format!("Bearer {}", token.expose()))
}

fn sensitive(value: &str) -> McpResult<HeaderValue> {
    let mut value = HeaderValue::from_str(value).map_err(|_| {
        McpError::config("a credential contains characters not allowed in HTTP headers")
    })?;
    value.set_sensitive(true);
    Ok(value)
}

/// `application/x-www-form-urlencoded` encoding of one key or value.
fn form_encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// A reqwest error's text without its URL (URLs may carry credentials in queries), with
/// the cause of a failed connection or a refused redirect.
pub(crate) fn without_url(error: &reqwest::Error) -> String {
    let mut message = error.to_string();
    if let Some(url) = error.url() {
        message = message.replace(url.as_str(), "<url>");
    }
    if error.is_redirect() {
        // Why [`same_origin_redirects`] refused it.
        if let Some(reason) = std::error::Error::source(error) {
            message = format!("{message}: {reason}");
        }
    } else if error.is_connect() {
        let mut source = std::error::Error::source(error);
        while let Some(inner) = source {
            let text = inner.to_string();
            if !message.contains(&text) {
                message = format!("{message}: {text}");
            }
            source = inner.source();
        }
    }
    message
}

/// Reads a response body up to `cap` bytes.
///
/// # Errors
/// A description when the body is larger than `cap` or the stream fails.
pub(crate) async fn read_capped(
    mut response: reqwest::Response,
    cap: usize,
) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| without_url(&e))? {
        if body.len() + chunk.len() > cap {
            return Err(format!("the body is larger than {cap} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn builds_each_kind_of_header() {
        let http = reqwest::Client::new();
        let mut statics = std::collections::HashMap::new();
        statics.insert("X-Team".to_string(), "blue".to_string());
        let cases = [
            (AuthConfig::bearer("t0k"), "authorization", "Bearer t0k"),
            (AuthConfig::api_key("k3y"), "x-api-key", "k3y"),
            (
                AuthConfig::api_key_in_header("k3y", "X-Custom-Key"),
                "x-custom-key",
                "k3y",
            ),
            (
                AuthConfig::basic("user", "pass"),
                "authorization",
                "Basic dXNlcjpwYXNz",
            ),
        ];
        for (auth, header, expected) in cases {
            let upstream = UpstreamAuth::new(
                "s",
                "http://127.0.0.1:1/mcp",
                Some(auth),
                &statics,
                http.clone(),
            )
            .unwrap();
            let headers = upstream.headers().await.unwrap();
            assert_eq!(headers[header], expected);
            assert!(headers[header].is_sensitive());
            assert_eq!(headers["x-team"], "blue");
            assert!(!format!("{headers:?}").contains(expected));
        }
    }

    #[test]
    fn bad_static_headers_are_config_errors() {
        let mut statics = std::collections::HashMap::new();
        statics.insert("Bad Header".to_string(), "x".to_string());
        let err = UpstreamAuth::new(
            "s",
            "http://127.0.0.1:1/mcp",
            None,
            &statics,
            reqwest::Client::new(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("invalid header name"), "{err}");
    }

    #[tokio::test]
    async fn discovered_oauth_waits_for_a_challenge_and_hides_its_secret() {
        let auth = UpstreamAuth::new(
            "s",
            "http://127.0.0.1:1/mcp",
            Some(AuthConfig::oauth_client_credentials("gw", "s3cr3t-value")),
            &std::collections::HashMap::new(),
            reqwest::Client::new(),
        )
        .unwrap();
        assert!(!format!("{auth:?}").contains("s3cr3t-value"));
        // Before the server asks, nothing is fetched and no Authorization is sent.
        let headers = auth.headers().await.unwrap();
        assert!(headers.get(AUTHORIZATION).is_none());
        assert_eq!(auth.max_retries(), DEFAULT_MAX_AUTHORIZATIONS);
        assert!(auth.can_refresh());
        // Static credentials are never retried.
        let bearer = UpstreamAuth::new(
            "s",
            "http://127.0.0.1:1/mcp",
            Some(AuthConfig::bearer("t")),
            &std::collections::HashMap::new(),
            reqwest::Client::new(),
        )
        .unwrap();
        assert_eq!(bearer.max_retries(), 0);
        assert!(
            !bearer
                .refused(&HeaderMap::new(), 401, &HeaderMap::new())
                .await
        );
    }
}
