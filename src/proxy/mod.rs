//! The service: the downstream side of the gateway, serving the aggregated upstream
//! servers to MCP clients and plain HTTP clients.
//!
//! # Layout
//! - [`handler`]: the MCP methods, shared by every face.
//! - [`input_required`]: upstream questions during a call, for stateless clients.
//! - [`sessions`]: downstream sessions.
//! - [`session_seal`]: sealed session ids any replica of a fleet continues.
//! - [`well_known`]: protected-resource metadata (RFC 9728) and the optional
//!   registration handout, when the gateway is an OAuth resource server.
//! - [`http_face`]: MCP streamable HTTP at `/mcp` and `/mcp/{server}`, both eras.
//! - [`ops`]: `/health`, `/ready`, `/metrics`, and the metrics themselves.
//! - [`rest`]: `/v1/mcp/*` for callers that are not MCP clients.
//! - [`duplex`]: one session over a pair of message channels, the engine of the
//!   stdio, WebSocket and SSE faces.
//! - [`stdio_face`]: the gateway as a stdio MCP server (`litellm-mcp stdio`).
//! - [`ws_face`]: MCP over WebSocket at `/ws` and `/ws/{server}` (subprotocol `mcp`).
//! - [`sse_face`]: the legacy HTTP+SSE transport at `/sse`, `/sse/{server}` and
//!   `/messages`.
//! - [`listener`]: the accept loop and the bounds on client connections (cap, header,
//!   body, idle and write-stall timeouts), HTTP/1.1 and h2c.
//!
//! [`app`] builds the router from an [`AppState`], so tests drive it with `oneshot`;
//! [`serve`] runs it on a listener until a shutdown future resolves. The state owns one
//! root `CancellationToken` and a `TaskTracker` for its background tasks (session
//! reaping, forwarding upstream `list_changed` to clients, stateless calls waiting for
//! their client's answers); the connection tasks are the [`listener`]'s, counted with
//! them in `litellm_mcp_tasks`.

pub mod duplex;
pub mod handler;
pub mod http_face;
pub mod input_required;
pub mod listen;
pub mod listener;
pub mod ops;
pub mod per_user;
pub mod rest;
pub mod session_seal;
pub mod sessions;
pub mod sse_face;
pub mod stdio_face;
pub mod well_known;
pub mod ws_face;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::extract::State;
use axum::Router;
use serde_json::Value;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::handler::McpHandler;
pub use self::listener::ConnectionLimits;
use self::ops::Metrics;
use self::sessions::SessionStore;
use crate::core::mcp::permissions::LivePermissions;
use crate::core::mcp::{McpGateway, McpServer};
use crate::identity::exchange::TokenExchanger;
use crate::identity::{Authenticator, KeyRing, ResourceServer};
use crate::settings::{ServerNames, Settings};

/// A change an upstream announced, as downstream clients receive it.
#[derive(Debug, Clone)]
pub struct Announcement {
    /// The upstream server it came from.
    pub server: String,
    /// The downstream notification (`notifications/tools/list_changed`, …).
    pub method: String,
    /// Its params as the upstream sent them (`{uri}` for `resources/updated`).
    pub params: Value,
    /// Heard from another replica through the store (not told to the others again).
    pub relayed: bool,
}

/// Everything the faces share. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<StateInner>,
}

struct StateInner {
    handler: McpHandler,
    auth: Authenticator,
    sessions: SessionStore,
    metrics: Metrics,
    announcements: broadcast::Sender<Announcement>,
    waiting: input_required::WaitingCalls,
    max_body_bytes: usize,
    loopback: bool,
    cancel: CancellationToken,
    tasks: TaskTracker,
    /// The connection side's live counts (sockets open, connection tasks).
    live: Arc<listener::Live>,
    /// The store and the admin API, when the settings configure a store.
    fleet: std::sync::OnceLock<Arc<crate::admin::Fleet>>,
}

impl AppState {
    /// The state of a service over a gateway built from `settings`.
    pub fn new(gateway: McpGateway, settings: &Settings) -> Self {
        let (announcements, _) = broadcast::channel(256);
        // One slot of permissions for the handler and the resource server, so that the
        // admin API swaps both at once.
        let permissions = LivePermissions::new(settings.permissions.clone());
        let state = AppState {
            inner: Arc::new(StateInner {
                handler: McpHandler::new(gateway, permissions.clone())
                    .with_token_exchanges(
                        settings
                            .servers
                            .iter()
                            .filter_map(|s| {
                                let exchange = s.token_exchange.clone()?;
                                let name = s.config.name.clone();
                                Some((name.clone(), TokenExchanger::new(&name, exchange)))
                            })
                            .collect(),
                    )
                    .with_per_user(per_user::PerUserServers::new(settings))
                    .with_private_server_names(settings.server_names == ServerNames::Private),
                auth: Authenticator::new(
                    KeyRing::new(settings.api_keys.clone()),
                    settings
                        .oauth
                        .as_ref()
                        .map(|oauth| Arc::new(ResourceServer::new(oauth, permissions.clone()))),
                ),
                sessions: SessionStore::new(
                    settings.max_sessions_per_key,
                    settings.session_idle_timeout,
                ),
                metrics: Metrics::default(),
                announcements,
                waiting: input_required::WaitingCalls::default(),
                max_body_bytes: settings.max_body_bytes,
                loopback: settings.listen.ip().is_loopback(),
                cancel: CancellationToken::new(),
                tasks: TaskTracker::new(),
                live: Arc::default(),
                fleet: std::sync::OnceLock::new(),
            }),
        };
        state.start_background(settings.session_idle_timeout);
        state
    }

    /// The request handler.
    pub fn handler(&self) -> &McpHandler {
        &self.inner.handler
    }

    /// The gateway.
    pub fn gateway(&self) -> &McpGateway {
        self.inner.handler.gateway()
    }

    /// Who callers are: API keys and, when configured, access tokens.
    pub fn auth(&self) -> &Authenticator {
        &self.inner.auth
    }

    /// The downstream sessions.
    pub fn sessions(&self) -> &SessionStore {
        &self.inner.sessions
    }

    /// Calls of stateless clients waiting for their answers to an upstream's questions.
    pub fn waiting(&self) -> &input_required::WaitingCalls {
        &self.inner.waiting
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Upstream changes, for the streams that tell clients about them.
    pub fn announcements(&self) -> broadcast::Receiver<Announcement> {
        self.inner.announcements.subscribe()
    }

    /// Whether the service listens on a loopback address (Host/Origin checks apply).
    pub fn loopback(&self) -> bool {
        self.inner.loopback
    }

    /// Background tasks still running: the state's own and the connection side's
    /// (one per client connection, plus HTTP/2 streams). `litellm_mcp_tasks`.
    pub fn live_tasks(&self) -> usize {
        self.inner.tasks.len() + self.inner.live.tasks() + self.inner.waiting.parked()
    }

    /// Client sockets open, WebSockets included. `litellm_mcp_connections_open`.
    pub fn open_connections(&self) -> usize {
        self.inner.live.connections()
    }

    /// Tracks a task of the service, so shutdown waits for it and `/metrics` counts it.
    pub(crate) fn spawn<F>(&self, task: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.inner.tasks.spawn(task);
    }

    /// Fires at shutdown.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.inner.cancel.clone()
    }

    fn start_background(&self, idle: Duration) {
        let cancel = self.inner.cancel.clone();
        let state = self.clone();
        let period = (idle / 4).clamp(Duration::from_secs(1), Duration::from_secs(60));
        self.inner.tasks.spawn(async move {
            let mut tick = tokio::time::interval(period);
            loop {
                tokio::select! {
                    () = cancel.cancelled() => return,
                    _ = tick.tick() => {
                        let reaped = state.sessions().reap();
                        if !reaped.is_empty() {
                            tracing::info!(reaped = reaped.len(), "closed idle downstream sessions");
                        }
                        for session in reaped {
                            state
                                .handler()
                                .release_subscriptions(&session.scope, &session.subscriptions())
                                .await;
                        }
                    }
                }
            }
        });
        for name in self.gateway().server_names() {
            if let Some(server) = self.gateway().server_now(&name) {
                self.forward_announcements(&server);
            }
        }
    }

    /// Forwards `server`'s `list_changed` and `resources/updated` notifications to the
    /// streams that tell clients (until the server is closed or the service stops).
    pub(crate) fn forward_announcements(&self, server: &McpServer) {
        let mut notifications = server.notifications();
        let sender = self.inner.announcements.clone();
        let cancel = self.inner.cancel.clone();
        self.inner.tasks.spawn(async move {
            loop {
                let notification = tokio::select! {
                    () = cancel.cancelled() => return,
                    n = notifications.recv() => n,
                };
                match notification {
                    Ok(n)
                        if n.method.ends_with("/list_changed")
                            || n.method == "notifications/resources/updated" =>
                    {
                        let _ = sender.send(Announcement {
                            server: n.server_name,
                            method: n.method,
                            params: n.params,
                            relayed: false,
                        });
                    }
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
    }

    /// Tells this replica's clients of a change (one heard from another replica).
    pub(crate) fn announce(&self, announcement: Announcement) {
        let _ = self.inner.announcements.send(announcement);
    }

    /// Attaches the store and the admin API, keeps per-user tokens in the store, and starts
    /// the fleet's background work (change notices, store health, audit retention). Once;
    /// later calls do nothing.
    pub fn attach_fleet(&self, fleet: Arc<crate::admin::Fleet>) {
        if self.inner.fleet.set(fleet.clone()).is_ok() {
            // Per-user tokens in the database from now on (sealed, shared by the replicas).
            self.inner
                .handler
                .per_user()
                .keep_tokens_in(Arc::new(fleet.store().clone()));
            let (seal, ended) = session_seal::SessionSeal::new(fleet.store().seal().clone());
            let seal = Arc::new(seal);
            self.inner.sessions.set_seal(seal.clone());
            let (audit, records) =
                tokio::sync::mpsc::channel(crate::admin::MAX_PENDING_AUDIT_RECORDS);
            self.inner.metrics.audit_sink().connect(audit);
            let writer = fleet.clone();
            let cancel = self.inner.cancel.clone();
            self.inner
                .tasks
                .spawn(async move { writer.write_audit(records, cancel).await });
            let state = self.clone();
            let cancel = self.inner.cancel.clone();
            self.inner
                .tasks
                .spawn(async move { fleet.run(state, cancel, seal, ended).await });
        }
    }

    /// The store and the admin API, when attached.
    pub fn fleet(&self) -> Option<&Arc<crate::admin::Fleet>> {
        self.inner.fleet.get()
    }

    /// Stops background tasks, ends sessions, and closes the upstream connections
    /// (stdio servers are stopped), within `grace`.
    pub async fn shutdown(&self, grace: Duration) {
        self.inner.cancel.cancel();
        self.inner.sessions.close_all();
        self.inner.tasks.close();
        let _ = tokio::time::timeout(grace, self.inner.tasks.wait()).await;
        self.gateway().shutdown(grace).await;
    }
}

/// The service's router.
pub fn app(state: AppState) -> Router {
    let limit = state.inner.max_body_bytes;
    Router::new()
        .merge(http_face::routes())
        .merge(ws_face::routes())
        .merge(sse_face::routes())
        .merge(rest::routes())
        .merge(per_user::routes())
        .merge(ops::routes())
        .merge(well_known::routes())
        .merge(crate::admin::routes())
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            with_replica,
        ))
        .layer(axum::middleware::from_fn(with_request_id))
        .with_state(state)
}

/// Gives every request an id (the client's `x-request-id` when it is short and
/// printable, else a new one), runs it inside a `tracing` span that carries it, and
/// returns it in `x-request-id`, so one request's log lines can be found together.
async fn with_request_id(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use tracing::Instrument;
    let id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(|| format!("{:016x}", rand::random::<u64>()));
    let span = tracing::info_span!("request", request_id = %id, method = %request.method(), path = %request.uri().path());
    let mut response = next.run(request).instrument(span).await;
    if let Ok(value) = axum::http::HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

/// Names the replica that answered in `x-litellm-replica`, when the service is part of a
/// fleet (has a store).
async fn with_replica(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let mut response = next.run(request).await;
    if let Some(fleet) = state.fleet() {
        if let Ok(value) = axum::http::HeaderValue::from_str(fleet.store().replica()) {
            response.headers_mut().insert("x-litellm-replica", value);
        }
    }
    response
}

/// Serves `app(state)` on `listener` with the default [`ConnectionLimits`] until
/// `shutdown` resolves; see [`serve_with`].
///
/// # Errors
/// None today; the `Result` is kept for listener errors a future version may report.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    serve_with(
        listener,
        state,
        shutdown,
        grace,
        ConnectionLimits::default(),
    )
    .await
}

/// Serves `app(state)` on `listener`, within `limits`, until `shutdown` resolves; then
/// stops accepting, lets in-flight requests finish (bounded by `grace`) and shuts the
/// state down.
///
/// # Errors
/// None today (accept errors are logged and retried); the `Result` is kept for
/// listener errors a future version may report.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    grace: Duration,
    limits: ConnectionLimits,
) -> std::io::Result<()> {
    let local: Option<SocketAddr> = listener.local_addr().ok();
    if let (Some(address), Some(oauth)) = (local, state.auth().resource_server()) {
        oauth.set_bound_address(address);
    }
    tracing::info!(
        address = ?local,
        max_connections = limits.max_connections,
        header_timeout_s = limits.header_read_timeout.as_secs_f64(),
        body_timeout_s = limits.body_read_timeout.as_secs_f64(),
        write_stall_timeout_s = limits.write_stall_timeout.as_secs_f64(),
        "litellm-mcp listening"
    );
    let token = state.shutdown_token();
    let stop_accepting = CancellationToken::new();
    let live = state.inner.live.clone();
    let accepting = listener::accept_loop(
        listener,
        app(state.clone()),
        limits,
        stop_accepting.clone(),
        live.clone(),
    );
    tokio::select! {
        () = accepting => {}
        () = shutdown => {}
    }
    tracing::info!("shutting down: no new connections; waiting for requests in flight");
    // Streams that would never end (GET streams) end on this token.
    token.cancel();
    stop_accepting.cancel();
    live.tracker().close();
    if tokio::time::timeout(grace, live.tracker().wait())
        .await
        .is_err()
    {
        tracing::warn!(
            grace_s = grace.as_secs_f64(),
            "requests still in flight after the grace period were dropped"
        );
    }
    state.shutdown(grace).await;
    Ok(())
}

/// A JSON-RPC error body (`id` null when the request's id is unknown).
pub(crate) fn jsonrpc_error(id: Value, code: i64, message: &str) -> Value {
    serde_json::json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
}
