//! One upstream server's OAuth client: the token cache and the flow that fills it.
//!
//! Owns the order of things. A request goes out with the cached access token, or with
//! none before the server has asked for one (its `401` challenge is what names the
//! protected-resource metadata and the scope). After a `401` or a `403
//! insufficient_scope` the next request authorizes: it discovers the authorization
//! server again (so a server that moved to another one is followed, and a client
//! registered at the old one is never shown to the new one), tries the refresh token
//! when only the token went stale, else registers if needed and runs the grant with the
//! scope chosen from the configuration, the challenge (with the scopes already held,
//! for a step-up) or `scopes_supported`.
//!
//! Invariants: the state sits behind one async mutex, so concurrent callers share one
//! fetch, refresh or authorization (single flight) and then read its result; a token is
//! refreshed [`EXPIRY_MARGIN`] (at most a tenth of its lifetime) before it expires;
//! tokens and secrets live only in [`Secret`]s and no log line names one.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use url::Url;

use super::challenge::Challenge;
use super::config::{AuthorizationRequest, Grant, OAuthConfig};
use super::discovery::{self, is_secure_endpoint, ServerMetadata};
use super::error::OAuthError;
use super::grants::{self, ClientIdentity, GrantedTokens, TokenEndpoint};
use super::registration;
use crate::core::mcp::config::Secret;

/// Tokens are refreshed this long before they expire (at most a tenth of the lifetime).
pub const EXPIRY_MARGIN: Duration = Duration::from_secs(30);
/// Lifetime assumed for a token whose response has no `expires_in`.
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(300);

/// The cached tokens.
struct Tokens {
    access: Secret,
    refresh: Option<Secret>,
    refresh_at: Instant,
    /// The scopes the token holds (granted, else asked for).
    scopes: Vec<String>,
    /// The authorization server that issued them.
    issuer: String,
}

/// Where tokens come from, as last discovered.
#[derive(Clone)]
struct Discovered {
    metadata: ServerMetadata,
    /// RFC 8707 `resource`: the protected-resource metadata's, else the server URL.
    resource: Option<String>,
    /// The protected resource's `scopes_supported`.
    resource_scopes: Option<Vec<String>>,
}

#[derive(Default)]
struct State {
    tokens: Option<Tokens>,
    /// Set by a refusal: the next request authorizes.
    must_authorize: bool,
    /// The last challenge the server sent.
    challenge: Challenge,
    /// Scopes a step-up asks for (the held ones and the challenge's).
    step_up: Option<Vec<String>>,
    /// Clients by issuer: a registration never leaves its authorization server.
    clients: HashMap<String, ClientIdentity>,
}

/// The OAuth client of one upstream server.
pub(crate) struct OAuthClient {
    server_name: String,
    server_url: Url,
    config: OAuthConfig,
    http: reqwest::Client,
    state: tokio::sync::Mutex<State>,
}

impl OAuthClient {
    /// A client with nothing cached.
    pub(crate) fn new(
        server_name: &str,
        server_url: Url,
        config: OAuthConfig,
        http: reqwest::Client,
    ) -> Self {
        OAuthClient {
            server_name: server_name.to_string(),
            server_url,
            config,
            http,
            state: tokio::sync::Mutex::new(State::default()),
        }
    }

    /// The most authorizations one request may cause.
    pub(crate) fn max_authorizations(&self) -> u32 {
        self.config.max_authorizations
    }

    /// The access token for the next request: the cached one, a refreshed one, or a new
    /// one when a refusal asked for it; `None` before the server has asked for any.
    ///
    /// # Errors
    /// Any [`OAuthError`] of discovery, registration or the grant.
    pub(crate) async fn bearer(&self) -> Result<Option<Secret>, OAuthError> {
        let mut state = self.state.lock().await;
        let proactive = state.tokens.is_none()
            && matches!(self.config.grant, Grant::ClientCredentials)
            && self.config.token_url.is_some();
        if !state.must_authorize && !proactive {
            match &state.tokens {
                None => return Ok(None),
                Some(tokens) if Instant::now() < tokens.refresh_at => {
                    return Ok(Some(tokens.access.clone()))
                }
                Some(_) => {}
            }
        }
        self.authorize(&mut state).await?;
        Ok(state.tokens.as_ref().map(|t| t.access.clone()))
    }

    /// Takes note of a refusal of a request that carried `used` (the bearer token, or
    /// none). Returns whether a retry with new credentials may help.
    pub(crate) async fn refused(
        &self,
        used: Option<&str>,
        status: u16,
        challenge: Challenge,
    ) -> bool {
        let mut state = self.state.lock().await;
        let current = state.tokens.as_ref().map(|t| t.access.expose().to_string());
        // Another caller already replaced the refused token: just retry with the new one.
        let stale = used.is_none() || used == current.as_deref();
        match status {
            401 => {
                if stale {
                    if let Some(tokens) = &mut state.tokens {
                        tokens.refresh_at = Instant::now();
                    }
                    state.must_authorize = true;
                    state.challenge = challenge;
                }
                true
            }
            403 if challenge.is_insufficient_scope() || challenge.scope.is_some() => {
                if stale {
                    let mut wanted = state
                        .tokens
                        .as_ref()
                        .map(|t| t.scopes.clone())
                        .unwrap_or_default();
                    for scope in challenge.scope.iter().flatten() {
                        if !wanted.contains(scope) {
                            wanted.push(scope.clone());
                        }
                    }
                    state.step_up = Some(wanted);
                    state.must_authorize = true;
                    state.challenge = challenge;
                }
                true
            }
            _ => false,
        }
    }

    /// Discovers where tokens come from now.
    async fn discover(&self, challenge: &Challenge) -> Result<Discovered, OAuthError> {
        if let (Grant::ClientCredentials, Some(token_url)) =
            (&self.config.grant, &self.config.token_url)
        {
            let issuer = Url::parse(token_url)
                .map(|u| discovery::origin_of(&u))
                .map_err(|e| OAuthError::config(format!("invalid token_url: {e}")))?;
            return Ok(Discovered {
                metadata: ServerMetadata {
                    issuer,
                    token_endpoint: Some(token_url.clone()),
                    ..ServerMetadata::default()
                },
                resource: None,
                resource_scopes: None,
            });
        }
        let resource = discovery::resource_metadata(
            &self.http,
            &self.server_url,
            challenge.resource_metadata.as_deref(),
        )
        .await?;
        match resource {
            Some(resource) => {
                let issuer = resource.authorization_servers.first().ok_or_else(|| {
                    OAuthError::fetch(
                        "the protected-resource metadata",
                        "it names no authorization server",
                    )
                })?;
                let metadata = discovery::server_metadata(&self.http, issuer).await?;
                Ok(Discovered {
                    metadata,
                    resource: Some(resource.resource),
                    resource_scopes: resource.scopes_supported,
                })
            }
            None => {
                // A server of the 2025-03-26 revision: its origin is its authorization
                // server, with the default endpoints where it has no metadata.
                let origin = discovery::origin_of(&self.server_url);
                let metadata = match discovery::server_metadata(&self.http, &origin).await {
                    Ok(metadata) => metadata,
                    Err(OAuthError::Fetch { .. }) => ServerMetadata::defaults_at(&self.server_url),
                    Err(other) => return Err(other),
                };
                Ok(Discovered {
                    metadata,
                    resource: Some(self.server_url.to_string()),
                    resource_scopes: None,
                })
            }
        }
    }

    /// The scopes to ask for: configured, else a step-up's, else the challenge's, else
    /// the resource's `scopes_supported`; plus `offline_access` for the authorization
    /// code flow where the authorization server offers it.
    fn scopes(&self, state: &State, found: &Discovered) -> Vec<String> {
        let mut scopes = self
            .config
            .scopes
            .clone()
            .or_else(|| state.step_up.clone())
            .or_else(|| state.challenge.scope.clone())
            .or_else(|| found.resource_scopes.clone())
            .unwrap_or_default();
        let offered = found
            .metadata
            .scopes_supported
            .as_ref()
            .is_some_and(|s| s.iter().any(|s| s == "offline_access"));
        if self.config.offline_access
            && offered
            && matches!(self.config.grant, Grant::AuthorizationCode { .. })
            && !scopes.iter().any(|s| s == "offline_access")
        {
            scopes.push("offline_access".to_string());
        }
        scopes
    }

    /// Fills the cache: refresh where that is enough, else the full flow.
    async fn authorize(&self, state: &mut State) -> Result<(), OAuthError> {
        let challenge = state.challenge.clone();
        let found = self.discover(&challenge).await?;
        let issuer = found.metadata.issuer.clone();
        if state.tokens.as_ref().is_some_and(|t| t.issuer != issuer) {
            // The server moved to another authorization server: its tokens are void.
            state.tokens = None;
        }
        let token_url = self
            .config
            .token_url
            .clone()
            .or_else(|| found.metadata.token_endpoint.clone())
            .ok_or_else(|| {
                OAuthError::fetch("the token endpoint", "the authorization server names none")
            })?;
        if !is_secure_endpoint(&token_url) {
            return Err(OAuthError::config(format!(
                "the token endpoint {token_url} is neither HTTPS nor loopback"
            )));
        }
        let endpoint = TokenEndpoint {
            http: &self.http,
            token_url: &token_url,
            issuer: &issuer,
            resource: found.resource.as_deref(),
        };
        let scopes = self.scopes(state, &found);
        let client = match state.clients.get(&issuer) {
            Some(client) => client.clone(),
            None => {
                let client =
                    registration::client_for(&self.http, &self.config, &found.metadata, &scopes)
                        .await?;
                state.clients.insert(issuer.clone(), client.clone());
                client
            }
        };
        let refresh = state
            .tokens
            .as_ref()
            .filter(|_| state.step_up.is_none())
            .and_then(|t| t.refresh.clone());
        if let Some(refresh) = refresh {
            match endpoint.refresh(&client, &refresh).await {
                Ok(granted) => {
                    let held = state
                        .tokens
                        .as_ref()
                        .map(|t| t.scopes.clone())
                        .unwrap_or_default();
                    self.store(state, granted, held, &issuer, Some(refresh));
                    tracing::debug!(server = %self.server_name, "refreshed the OAuth token");
                    return Ok(());
                }
                Err(error) => {
                    tracing::info!(server = %self.server_name, %error, "the refresh token was refused; authorizing again");
                    state.tokens = None;
                }
            }
        }
        let granted = match &self.config.grant {
            Grant::ClientCredentials => endpoint.client_credentials(&client, &scopes).await?,
            Grant::AuthorizationCode {
                redirect_uri,
                handler,
            } => {
                let pending = grants::start_authorization(
                    &found.metadata,
                    &client.client_id,
                    redirect_uri,
                    &scopes,
                    found.resource.as_deref(),
                )?;
                let request = AuthorizationRequest {
                    url: pending.url,
                    redirect_uri: redirect_uri.clone(),
                    server_name: self.server_name.clone(),
                };
                let redirect = handler
                    .authorize(&request)
                    .await
                    .map_err(|reason| OAuthError::Handler { reason })?;
                let code = grants::code_from_redirect(
                    &redirect,
                    &pending.state,
                    &issuer,
                    found
                        .metadata
                        .authorization_response_iss_parameter_supported,
                )?;
                endpoint
                    .authorization_code(&client, code, pending.verifier, redirect_uri)
                    .await?
            }
        };
        self.store(state, granted, scopes, &issuer, None);
        tracing::debug!(server = %self.server_name, %issuer, "obtained an OAuth token");
        Ok(())
    }

    /// Caches what the token endpoint granted; `asked` are the scopes asked for (kept
    /// when the answer does not name the granted ones), `previous_refresh` the refresh
    /// token to keep when a refresh answer brings no new one.
    fn store(
        &self,
        state: &mut State,
        granted: GrantedTokens,
        asked: Vec<String>,
        issuer: &str,
        previous_refresh: Option<Secret>,
    ) {
        let lifetime = granted.lifetime.unwrap_or(DEFAULT_TOKEN_LIFETIME);
        let margin = EXPIRY_MARGIN.min(lifetime / 10);
        state.tokens = Some(Tokens {
            access: granted.access_token,
            refresh: granted.refresh_token.or(previous_refresh),
            refresh_at: Instant::now() + lifetime.saturating_sub(margin),
            scopes: granted.scopes.unwrap_or(asked),
            issuer: issuer.to_string(),
        });
        state.must_authorize = false;
        state.step_up = None;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use axum::routing::{get, post};
    use serde_json::json;

    use super::*;

    /// A protected resource and its authorization server on one loopback port; counts
    /// token requests, each of which takes 50 ms.
    async fn authorization_server(
        tokens: Arc<AtomicUsize>,
    ) -> (String, tokio::task::JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let prm = json!({"resource": format!("{base}/mcp"), "authorization_servers": [base]});
        let metadata = json!({
            "issuer": base,
            "token_endpoint": format!("{base}/token"),
            "token_endpoint_auth_methods_supported": ["client_secret_post"],
        });
        let app = axum::Router::new()
            .route(
                "/.well-known/oauth-protected-resource/mcp",
                get(move || async move { axum::Json(prm) }),
            )
            .route(
                "/.well-known/oauth-authorization-server",
                get(move || async move { axum::Json(metadata) }),
            )
            .route(
                "/token",
                post(move |body: String| async move {
                    let n = tokens.fetch_add(1, Ordering::SeqCst) + 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    assert!(body.contains("client_secret=s3cret"), "{body}");
                    assert!(body.contains("grant_type=client_credentials"), "{body}");
                    axum::Json(json!({
                        "access_token": format!("token-{n}"),
                        "token_type": "Bearer",
                        "expires_in": 3600,
                    }))
                }),
            );
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (base, task)
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_token_request_and_a_refusal_fetches_once_more() {
        let tokens = Arc::new(AtomicUsize::new(0));
        let (base, server) = authorization_server(tokens.clone()).await;
        let client = Arc::new(OAuthClient::new(
            "s",
            Url::parse(&format!("{base}/mcp")).unwrap(),
            OAuthConfig::client_credentials("gw", "s3cret"),
            reqwest::Client::new(),
        ));
        // Before the server asks, requests go out without a token.
        assert!(client.bearer().await.unwrap().is_none());
        assert!(client.refused(None, 401, Challenge::default()).await);
        let callers = (0..8).map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.bearer().await.unwrap().unwrap() })
        });
        for token in futures::future::join_all(callers).await {
            assert_eq!(token.unwrap().expose(), "token-1");
        }
        assert_eq!(tokens.load(Ordering::SeqCst), 1);
        // A 401 for a token another caller already replaced changes nothing…
        assert!(
            client
                .refused(Some("token-0"), 401, Challenge::default())
                .await
        );
        assert_eq!(client.bearer().await.unwrap().unwrap().expose(), "token-1");
        // …one for the current token fetches a new one, once.
        assert!(
            client
                .refused(Some("token-1"), 401, Challenge::default())
                .await
        );
        let (a, b) = tokio::join!(client.bearer(), client.bearer());
        assert_eq!(a.unwrap().unwrap().expose(), "token-2");
        assert_eq!(b.unwrap().unwrap().expose(), "token-2");
        assert_eq!(tokens.load(Ordering::SeqCst), 2);
        // A 403 that is not about scope is not worth a retry.
        assert!(
            !client
                .refused(Some("token-2"), 403, Challenge::default())
                .await
        );
        server.abort();
    }

    #[tokio::test]
    async fn step_up_asks_for_the_held_scopes_and_the_challenged_ones() {
        let client = OAuthClient::new(
            "s",
            Url::parse("http://127.0.0.1:1/mcp").unwrap(),
            OAuthConfig::client_credentials("gw", "s3cret"),
            reqwest::Client::new(),
        );
        let mut state = client.state.lock().await;
        state.tokens = Some(Tokens {
            access: Secret::new("t"),
            refresh: None,
            refresh_at: Instant::now() + Duration::from_secs(60),
            scopes: vec!["a".to_string()],
            issuer: "http://127.0.0.1:1".to_string(),
        });
        drop(state);
        let challenge =
            Challenge::parse(r#"Bearer error="insufficient_scope", scope="b a""#).unwrap();
        assert!(client.refused(Some("t"), 403, challenge).await);
        let state = client.state.lock().await;
        assert_eq!(state.step_up, Some(vec!["a".to_string(), "b".to_string()]));
        assert!(state.must_authorize);
        let found = Discovered {
            metadata: ServerMetadata {
                scopes_supported: Some(vec!["offline_access".to_string()]),
                ..ServerMetadata::default()
            },
            resource: None,
            resource_scopes: Some(vec!["x".to_string()]),
        };
        // Client credentials never ask for offline_access.
        assert_eq!(client.scopes(&state, &found), ["a", "b"]);
    }
}
