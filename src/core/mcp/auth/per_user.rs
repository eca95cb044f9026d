//! Per-user upstream tokens: each downstream identity authorizes an upstream server once
//! (authorization code with PKCE), and its calls then carry its own token, refreshed as
//! needed, never another identity's.
//!
//! Owns the two halves of an authorization that a service hosts across HTTP requests
//! ([`UserAuthorizations::begin`] gives the URL to send the person to;
//! [`UserAuthorizations::complete`] takes the redirect back to the service's callback),
//! and the tokens of each (subject, server) in a [`TokenStore`]. The store gets opaque
//! blobs to seal and keep: encryption at rest is the store's job (the service's database
//! store encrypts; [`MemoryTokenStore`] keeps them in memory only). Without a token a
//! subject's [`UserAuthorizations::token`] fails with
//! [`OAuthError::NotAuthorized`], which the service turns into "authorize at …".
//!
//! Bounds: at most [`MAX_PENDING`] authorizations wait for their redirect, each for
//! [`PENDING_LIFETIME`]; refreshes of one server run one at a time (single flight, so a
//! rotating refresh token is never used twice). Subjects are never logged: the service
//! derives them from credentials.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;
use oauth2::{CsrfToken, PkceCodeVerifier};
use serde::{Deserialize, Serialize};
use url::Url;

use super::client::{DEFAULT_TOKEN_LIFETIME, EXPIRY_MARGIN};
use super::config::{AuthorizationHandler, AuthorizationRequest, OAuthConfig};
use super::discovery::{self, ServerMetadata};
use super::error::OAuthError;
use super::grants::{self, ClientIdentity, GrantedTokens, TokenEndpoint};
use super::registration;
use crate::core::mcp::config::Secret;

/// The most authorizations that may wait for their redirect at once, per server.
pub const MAX_PENDING: usize = 1024;
/// How long an authorization waits for its redirect.
pub const PENDING_LIFETIME: Duration = Duration::from_secs(600);
/// The most (subject, server) entries [`MemoryTokenStore`] keeps.
pub const MAX_MEMORY_TOKENS: usize = 100_000;

/// Where per-user tokens live: opaque blobs by (subject, server). Implementations seal
/// (encrypt) what they keep at rest.
pub trait TokenStore: Send + Sync {
    /// The blob of `subject` for `server`, if any.
    ///
    /// # Errors
    /// Why the store could not be read.
    fn get<'a>(
        &'a self,
        subject: &'a str,
        server: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<u8>>, String>>;
    /// Keeps `blob` for `subject` and `server`, replacing what was there.
    ///
    /// # Errors
    /// Why the store could not be written.
    fn put<'a>(
        &'a self,
        subject: &'a str,
        server: &'a str,
        blob: Vec<u8>,
    ) -> BoxFuture<'a, Result<(), String>>;
    /// Forgets the blob; whether there was one.
    ///
    /// # Errors
    /// Why the store could not be written.
    fn remove<'a>(
        &'a self,
        subject: &'a str,
        server: &'a str,
    ) -> BoxFuture<'a, Result<bool, String>>;
}

/// A [`TokenStore`] in memory (tests, and services without a database): nothing at rest,
/// at most [`MAX_MEMORY_TOKENS`] entries.
#[derive(Default)]
pub struct MemoryTokenStore {
    blobs: Mutex<HashMap<(String, String), Vec<u8>>>,
}

impl TokenStore for MemoryTokenStore {
    fn get<'a>(
        &'a self,
        subject: &'a str,
        server: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<u8>>, String>> {
        let found = self
            .blobs
            .lock()
            .map(|b| b.get(&(subject.to_string(), server.to_string())).cloned())
            .map_err(|_| "the token store is poisoned".to_string());
        Box::pin(async move { found })
    }

    fn put<'a>(
        &'a self,
        subject: &'a str,
        server: &'a str,
        blob: Vec<u8>,
    ) -> BoxFuture<'a, Result<(), String>> {
        let done = match self.blobs.lock() {
            Ok(mut blobs) => {
                let key = (subject.to_string(), server.to_string());
                if blobs.len() >= MAX_MEMORY_TOKENS && !blobs.contains_key(&key) {
                    Err(format!(
                        "the token store is full ({MAX_MEMORY_TOKENS} entries)"
                    ))
                } else {
                    blobs.insert(key, blob);
                    Ok(())
                }
            }
            Err(_) => Err("the token store is poisoned".to_string()),
        };
        Box::pin(async move { done })
    }

    fn remove<'a>(
        &'a self,
        subject: &'a str,
        server: &'a str,
    ) -> BoxFuture<'a, Result<bool, String>> {
        let removed = self
            .blobs
            .lock()
            .map(|mut b| {
                b.remove(&(subject.to_string(), server.to_string()))
                    .is_some()
            })
            .map_err(|_| "the token store is poisoned".to_string());
        Box::pin(async move { removed })
    }
}

/// What the store keeps for one (subject, server).
#[derive(Serialize, Deserialize)]
struct StoredTokens {
    access_token: String,
    refresh_token: Option<String>,
    /// Seconds since the epoch after which the access token is refreshed.
    refresh_after: u64,
    issuer: String,
}

/// One authorization waiting for its redirect.
struct Pending {
    subject: String,
    verifier: PkceCodeVerifier,
    issuer: String,
    created: Instant,
}

/// Where tokens come from, as discovered once.
#[derive(Clone)]
struct Source {
    metadata: ServerMetadata,
    resource: Option<String>,
    scopes: Vec<String>,
    client: ClientIdentity,
}

/// The per-user authorizations of one upstream server.
pub struct UserAuthorizations {
    server_name: String,
    server_url: Url,
    redirect_uri: String,
    config: OAuthConfig,
    http: reqwest::Client,
    store: Arc<dyn TokenStore>,
    source: tokio::sync::Mutex<Option<Source>>,
    pending: Mutex<HashMap<String, Pending>>,
    /// Serializes refreshes (single flight).
    refreshing: tokio::sync::Mutex<()>,
}

/// The handler of per-user configurations: never asks a person from inside a request
/// (the service sends them to [`UserAuthorizations::begin`]'s URL instead), so it only
/// refuses.
pub struct NoHandler;

impl AuthorizationHandler for NoHandler {
    fn authorize<'a>(
        &'a self,
        _request: &'a AuthorizationRequest,
    ) -> BoxFuture<'a, Result<String, String>> {
        Box::pin(async { Err("per-user servers are authorized through the service".to_string()) })
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl UserAuthorizations {
    /// Per-user authorization of the server at `server_url`; the authorization server
    /// sends people back to `redirect_uri` (the service's callback). `registration`
    /// says how the service is known there (a pre-registered client, a metadata
    /// document, else dynamic registration) and which scopes to ask for; its grant is
    /// not used.
    ///
    /// # Errors
    /// [`OAuthError::Config`] when `server_url` is not a URL.
    pub fn new(
        server_name: &str,
        server_url: &str,
        redirect_uri: &str,
        registration: Option<OAuthConfig>,
        http: reqwest::Client,
        store: Arc<dyn TokenStore>,
    ) -> Result<Self, OAuthError> {
        let server_url = Url::parse(server_url)
            .map_err(|e| OAuthError::config(format!("invalid server url: {e}")))?;
        let base = OAuthConfig::authorization_code(redirect_uri, Arc::new(NoHandler));
        let config = match registration {
            Some(given) => OAuthConfig {
                grant: base.grant,
                ..given
            },
            None => base,
        };
        Ok(UserAuthorizations {
            server_name: server_name.to_string(),
            server_url,
            redirect_uri: redirect_uri.to_string(),
            config,
            http,
            store,
            source: tokio::sync::Mutex::new(None),
            pending: Mutex::new(HashMap::new()),
            refreshing: tokio::sync::Mutex::new(()),
        })
    }

    /// Discovers (once) the authorization server and the service's client there.
    async fn source(&self) -> Result<Source, OAuthError> {
        let mut cached = self.source.lock().await;
        if let Some(source) = cached.as_ref() {
            return Ok(source.clone());
        }
        let resource = discovery::resource_metadata(&self.http, &self.server_url, None).await?;
        let (issuer, resource_id, scopes) = match resource {
            Some(r) => (
                r.authorization_servers.first().cloned().ok_or_else(|| {
                    OAuthError::fetch(
                        "the protected-resource metadata",
                        "it names no authorization server",
                    )
                })?,
                Some(r.resource),
                r.scopes_supported.unwrap_or_default(),
            ),
            None => (
                discovery::origin_of(&self.server_url),
                Some(self.server_url.to_string()),
                Vec::new(),
            ),
        };
        let metadata = discovery::server_metadata(&self.http, &issuer).await?;
        let mut scopes = self.config.scopes.clone().unwrap_or(scopes);
        if self.config.offline_access
            && metadata
                .scopes_supported
                .as_ref()
                .is_some_and(|s| s.iter().any(|s| s == "offline_access"))
            && !scopes.iter().any(|s| s == "offline_access")
        {
            scopes.push("offline_access".to_string());
        }
        let client = registration::client_for(&self.http, &self.config, &metadata, &scopes).await?;
        let source = Source {
            metadata,
            resource: resource_id,
            scopes,
            client,
        };
        *cached = Some(source.clone());
        Ok(source)
    }

    /// Starts an authorization for `subject`: the URL to send the person to.
    ///
    /// # Errors
    /// Discovery or registration failures; [`OAuthError::Config`] when too many
    /// authorizations are waiting.
    pub async fn begin(&self, subject: &str) -> Result<Url, OAuthError> {
        let source = self.source().await?;
        let pending = grants::start_authorization(
            &source.metadata,
            &source.client.client_id,
            &self.redirect_uri,
            &source.scopes,
            source.resource.as_deref(),
        )?;
        let mut waiting = self
            .pending
            .lock()
            .map_err(|_| OAuthError::config("the pending authorizations are poisoned"))?;
        waiting.retain(|_, p| p.created.elapsed() < PENDING_LIFETIME);
        if waiting.len() >= MAX_PENDING {
            return Err(OAuthError::config(format!(
                "{MAX_PENDING} authorizations are already waiting for their redirect"
            )));
        }
        waiting.insert(
            pending.state.secret().clone(),
            Pending {
                subject: subject.to_string(),
                verifier: pending.verifier,
                issuer: source.metadata.issuer.clone(),
                created: Instant::now(),
            },
        );
        Ok(pending.url)
    }

    /// Finishes the authorization the redirect `redirect` (the full callback URL, with
    /// `code`, `state`, maybe `iss`) belongs to; returns whose it was.
    ///
    /// # Errors
    /// [`OAuthError::AuthorizationResponse`] for an unknown or expired `state` or a
    /// failed check; token endpoint failures; the store's failure.
    pub async fn complete(&self, redirect: &str) -> Result<String, OAuthError> {
        let url =
            Url::parse(redirect).map_err(|_| OAuthError::response("the redirect is not a URL"))?;
        let state = url
            .query_pairs()
            .find(|(k, _)| k == "state")
            .map(|(_, v)| v.into_owned())
            .ok_or_else(|| OAuthError::response("it carries no state"))?;
        let pending = self
            .pending
            .lock()
            .map_err(|_| OAuthError::config("the pending authorizations are poisoned"))?
            .remove(&state)
            .filter(|p| p.created.elapsed() < PENDING_LIFETIME)
            .ok_or_else(|| OAuthError::response("no authorization is waiting for this state"))?;
        let source = self.source().await?;
        if source.metadata.issuer != pending.issuer {
            return Err(OAuthError::response(
                "the authorization server changed meanwhile",
            ));
        }
        let code = grants::code_from_redirect(
            redirect,
            &CsrfToken::new(state),
            &pending.issuer,
            source
                .metadata
                .authorization_response_iss_parameter_supported,
        )?;
        let token_url = self.token_url(&source)?;
        let endpoint = self.endpoint(&source, &token_url);
        let granted = endpoint
            .authorization_code(&source.client, code, pending.verifier, &self.redirect_uri)
            .await?;
        self.keep(&pending.subject, granted, &pending.issuer, None)
            .await?;
        tracing::info!(server = %self.server_name, "a user authorized the server");
        Ok(pending.subject)
    }

    fn endpoint<'a>(&'a self, source: &'a Source, token_url: &'a str) -> TokenEndpoint<'a> {
        TokenEndpoint {
            http: &self.http,
            token_url,
            issuer: &source.metadata.issuer,
            resource: source.resource.as_deref(),
        }
    }

    /// The token endpoint: configured, else discovered.
    fn token_url(&self, source: &Source) -> Result<String, OAuthError> {
        self.config
            .token_url
            .clone()
            .or_else(|| source.metadata.token_endpoint.clone())
            .ok_or_else(|| {
                OAuthError::fetch("the token endpoint", "the authorization server names none")
            })
    }

    async fn keep(
        &self,
        subject: &str,
        granted: GrantedTokens,
        issuer: &str,
        previous_refresh: Option<String>,
    ) -> Result<Secret, OAuthError> {
        let lifetime = granted.lifetime.unwrap_or(DEFAULT_TOKEN_LIFETIME);
        let margin = EXPIRY_MARGIN.min(lifetime / 10);
        let stored = StoredTokens {
            access_token: granted.access_token.expose().to_string(),
            refresh_token: granted
                .refresh_token
                .map(|t| t.expose().to_string())
                .or(previous_refresh),
            refresh_after: now_secs() + lifetime.saturating_sub(margin).as_secs(),
            issuer: issuer.to_string(),
        };
        let blob = serde_json::to_vec(&stored).map_err(|e| OAuthError::config(e.to_string()))?;
        self.store
            .put(subject, &self.server_name, blob)
            .await
            .map_err(|reason| OAuthError::config(format!("the token store failed: {reason}")))?;
        Ok(granted.access_token)
    }

    fn not_authorized(&self) -> OAuthError {
        OAuthError::NotAuthorized {
            server: self.server_name.clone(),
        }
    }

    /// `subject`'s access token for the server, refreshed when it is about to expire.
    ///
    /// # Errors
    /// [`OAuthError::NotAuthorized`] when the subject has not authorized the server, or
    /// its refresh token was refused (its tokens are then forgotten); the store's
    /// failure.
    pub async fn token(&self, subject: &str) -> Result<Secret, OAuthError> {
        let stored = self.load(subject).await?;
        if now_secs() < stored.refresh_after {
            return Ok(Secret::new(stored.access_token));
        }
        let _single = self.refreshing.lock().await;
        // Another caller may have refreshed meanwhile.
        let stored = self.load(subject).await?;
        if now_secs() < stored.refresh_after {
            return Ok(Secret::new(stored.access_token));
        }
        let Some(refresh) = stored.refresh_token.clone() else {
            self.forget(subject).await?;
            return Err(self.not_authorized());
        };
        let source = self.source().await?;
        let secret = Secret::new(refresh.clone());
        let token_url = self.token_url(&source)?;
        let endpoint = self.endpoint(&source, &token_url);
        let refreshed = endpoint.refresh(&source.client, &secret).await;
        match refreshed {
            Ok(granted) => {
                self.keep(subject, granted, &stored.issuer, Some(refresh))
                    .await
            }
            Err(error) => {
                tracing::info!(server = %self.server_name, %error, "a user's refresh token was refused; they must authorize again");
                self.forget(subject).await?;
                Err(self.not_authorized())
            }
        }
    }

    async fn load(&self, subject: &str) -> Result<StoredTokens, OAuthError> {
        let blob = self
            .store
            .get(subject, &self.server_name)
            .await
            .map_err(|reason| OAuthError::config(format!("the token store failed: {reason}")))?
            .ok_or_else(|| self.not_authorized())?;
        serde_json::from_slice(&blob).map_err(|_| self.not_authorized())
    }

    /// Forgets `subject`'s tokens for the server; whether there were any.
    ///
    /// # Errors
    /// The store's failure.
    pub async fn forget(&self, subject: &str) -> Result<bool, OAuthError> {
        self.store
            .remove(subject, &self.server_name)
            .await
            .map_err(|reason| OAuthError::config(format!("the token store failed: {reason}")))
    }
}
