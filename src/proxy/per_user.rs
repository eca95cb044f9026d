//! Per-user upstream authorization in the service: the servers configured `per_user`,
//! the REST endpoints where a caller starts (`POST /v1/mcp/servers/<name>/authorize`, which
//! answers the URL to open) or removes (`DELETE` on the same path) its authorization, and
//! the callback the authorization server sends the browser back to (`GET
//! /oauth/callback`).
//!
//! Owns the mapping from a downstream identity to the subject its upstream tokens are
//! kept under: the hex digest of its API key, or of its token's issuer and subject, so
//! that no key and no name reaches the token store. The OAuth work and the tokens are the
//! library's ([`UserAuthorizations`] over a [`TokenStore`]). Where the tokens live is
//! [`ServiceTokens`]: in memory until the service attaches its store (the `store:`
//! section), in the store's database (sealed) from then on.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::future::BoxFuture;
use serde_json::{json, Value};

use super::handler::Identity;
use super::rest::{identify, RestError};
use super::AppState;
use crate::core::mcp::auth::per_user::{MemoryTokenStore, TokenStore, UserAuthorizations};
use crate::core::mcp::auth::OAuthError;
use crate::core::mcp::{McpError, PermissionLevel, Secret};
use crate::settings::Settings;

/// The path of the callback, under the gateway's base URL.
pub const CALLBACK_PATH: &str = "/oauth/callback";
const METHOD_AUTHORIZE: &str = "servers/authorize";

/// Where the service keeps per-user tokens: in memory (at most
/// [`crate::core::mcp::auth::per_user::MAX_MEMORY_TOKENS`], lost at restart) until a
/// durable store is attached, in that store from then on. The service attaches its
/// database store before it serves, so no token is kept in both.
#[derive(Default)]
pub struct ServiceTokens {
    durable: OnceLock<Arc<dyn TokenStore>>,
    memory: MemoryTokenStore,
}

impl ServiceTokens {
    fn current(&self) -> &dyn TokenStore {
        match self.durable.get() {
            Some(durable) => durable.as_ref(),
            None => &self.memory,
        }
    }

    /// Keeps tokens in `store` from now on; once (later calls change nothing). Returns
    /// whether this call attached it.
    pub fn attach(&self, store: Arc<dyn TokenStore>) -> bool {
        self.durable.set(store).is_ok()
    }

    /// Whether tokens are kept in an attached store (rather than in memory).
    pub fn is_durable(&self) -> bool {
        self.durable.get().is_some()
    }
}

impl TokenStore for ServiceTokens {
    fn get<'a>(
        &'a self,
        subject: &'a str,
        server: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<u8>>, String>> {
        self.current().get(subject, server)
    }

    fn put<'a>(
        &'a self,
        subject: &'a str,
        server: &'a str,
        blob: Vec<u8>,
    ) -> BoxFuture<'a, Result<(), String>> {
        self.current().put(subject, server, blob)
    }

    fn remove<'a>(
        &'a self,
        subject: &'a str,
        server: &'a str,
    ) -> BoxFuture<'a, Result<bool, String>> {
        self.current().remove(subject, server)
    }
}

/// The servers whose calls carry each caller's own token.
#[derive(Default)]
pub struct PerUserServers {
    servers: HashMap<String, Arc<UserAuthorizations>>,
    /// Where callers are told to go: the gateway's base URL.
    base_url: String,
    /// Where the tokens live.
    tokens: Arc<ServiceTokens>,
}

impl PerUserServers {
    /// The per-user servers of `settings`, their tokens in memory until
    /// [`PerUserServers::keep_tokens_in`] attaches a store.
    pub fn new(settings: &Settings) -> Self {
        let tokens = Arc::new(ServiceTokens::default());
        let store: Arc<dyn TokenStore> = tokens.clone();
        let base_url = settings
            .oauth
            .as_ref()
            .and_then(|o| o.public_url.clone())
            .and_then(|u| url::Url::parse(&u).ok())
            .map(|u| u.origin().ascii_serialization())
            .unwrap_or_else(|| format!("http://{}", settings.listen));
        let mut servers = HashMap::new();
        for server in &settings.servers {
            let Some(per_user) = &server.per_user else {
                continue;
            };
            let redirect_uri = per_user
                .redirect_uri
                .clone()
                .unwrap_or_else(|| format!("{base_url}{CALLBACK_PATH}"));
            match UserAuthorizations::new(
                &server.config.name,
                &server.config.url,
                &redirect_uri,
                per_user.registration.clone(),
                reqwest::Client::new(),
                store.clone(),
            ) {
                Ok(users) => {
                    servers.insert(server.config.name.clone(), Arc::new(users));
                }
                Err(error) => {
                    tracing::error!(server = %server.config.name, %error, "per-user authorization is not available");
                }
            }
        }
        PerUserServers {
            servers,
            base_url,
            tokens,
        }
    }

    /// Keeps the tokens in `store` (sealed in the service's database) from now on; once.
    pub fn keep_tokens_in(&self, store: Arc<dyn TokenStore>) -> bool {
        self.tokens.attach(store)
    }

    /// Where the tokens live.
    pub fn tokens(&self) -> &ServiceTokens {
        &self.tokens
    }

    /// Whether `server` is per-user.
    pub fn contains(&self, server: &str) -> bool {
        self.servers.contains_key(server)
    }

    /// The caller's token for `server`, or `None` when the server is not per-user.
    ///
    /// # Errors
    /// [`McpError::AuthenticationError`] saying where to authorize, when the caller has
    /// not (or must again).
    pub async fn credential(
        &self,
        identity: &Identity,
        server: &str,
    ) -> Result<Option<Secret>, McpError> {
        let Some(users) = self.servers.get(server) else {
            return Ok(None);
        };
        let how = format!(
            "authorize it once: POST {}/v1/mcp/servers/{server}/authorize with your credentials and open the authorization_url it answers",
            self.base_url
        );
        let Some(subject) = subject_of(identity) else {
            return Err(McpError::AuthenticationError {
                server_name: server.to_string(),
                message: format!(
                    "'{server}' acts for each user: sign in with a key or token, then {how}"
                ),
            });
        };
        users.token(&subject).await.map(Some).map_err(|error| McpError::AuthenticationError {
            server_name: server.to_string(),
            message: match error {
                OAuthError::NotAuthorized { .. } => format!("you have not authorized '{server}' yet (or the authorization ended): {how}"),
                other => other.to_string(),
            },
        })
    }
}

/// The subject a caller's upstream tokens are kept under.
fn subject_of(identity: &Identity) -> Option<String> {
    identity.digest.as_ref().map(|digest| {
        digest
            .as_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    })
}

/// `/v1/mcp/servers/{name}/authorize` and `/oauth/callback`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/mcp/servers/{name}/authorize",
            post(begin).delete(remove),
        )
        .route(CALLBACK_PATH, get(callback))
}

/// The caller's subject and the per-user server `name`, for the REST endpoints.
async fn caller_at(
    state: &AppState,
    headers: &HeaderMap,
    name: &str,
) -> Result<(String, Arc<UserAuthorizations>), RestError> {
    let identity = identify(state, headers, METHOD_AUTHORIZE, PermissionLevel::Read).await?;
    let users = state
        .handler()
        .per_user()
        .servers
        .get(name)
        .cloned()
        .ok_or_else(|| {
            RestError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no per-user server '{name}'"),
            )
        })?;
    let subject = subject_of(&identity).ok_or_else(|| {
        RestError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "per-user authorization needs a key or a token",
        )
    })?;
    Ok((subject, users))
}

/// `POST /v1/mcp/servers/{name}/authorize`: the URL where the caller authorizes the server.
async fn begin(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, RestError> {
    let (subject, users) = caller_at(&state, &headers, &name).await?;
    let url = users.begin(&subject).await.map_err(|error| {
        RestError::new(StatusCode::BAD_GATEWAY, "upstream_error", error.to_string())
    })?;
    Ok(Json(
        json!({"server": name, "authorization_url": url.as_str()}),
    ))
}

/// `DELETE /v1/mcp/servers/{name}/authorize`: forgets the caller's tokens for the server.
async fn remove(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, RestError> {
    let (subject, users) = caller_at(&state, &headers, &name).await?;
    let removed = users.forget(&subject).await.map_err(|error| {
        RestError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "store_error",
            error.to_string(),
        )
    })?;
    Ok(Json(json!({"server": name, "removed": removed})))
}

/// `GET /oauth/callback?code=…&state=…`: the browser comes back from an authorization
/// server. The `state` names the authorization (and so the caller and server) it ends.
async fn callback(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> (StatusCode, String) {
    let query = query.unwrap_or_default();
    let redirect = format!("http://gateway.invalid{CALLBACK_PATH}?{query}");
    for (name, users) in &state.handler().per_user().servers {
        match users.complete(&redirect).await {
            Ok(_) => {
                return (
                    StatusCode::OK,
                    format!("'{name}' is authorized; you may close this page.\n"),
                );
            }
            Err(OAuthError::AuthorizationResponse { reason })
                if reason.contains("no authorization is waiting") =>
            {
                continue
            }
            Err(error) => {
                return (
                    StatusCode::BAD_REQUEST,
                    format!("the authorization of '{name}' failed: {error}\n"),
                )
            }
        }
    }
    (
        StatusCode::BAD_REQUEST,
        "no authorization is waiting for this redirect\n".to_string(),
    )
}
