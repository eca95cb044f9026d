//! [`McpServer`]: the gateway's side of one upstream MCP server.
//!
//! Owns the one shared session with the server (connected lazily, on first use, by one
//! caller while the others wait), its protocol handshake and the era detection,
//! reconnection with capped exponential backoff after a failure (a crashed stdio process
//! is restarted this way), re-initialization when the server forgot the session, retries
//! of transient failures, request timeouts, and the tool cache with its bounds
//! (`max_tools`, `max_tool_list_bytes`).
//!
//! A request's deadline (the server's `timeout_ms`, or the call's own timeout) bounds it
//! end to end: time spent queued behind another caller's handshake or tool-list fetch,
//! in a full outbox, in retries and in waiting for the answer all count.
//!
//! It knows nothing of aliases, names across servers or permissions: that is the
//! gateway's.

mod era;
mod session;
mod tool_cache;

use crate::core::mcp::config::Secret;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde_json::{json, Map, Value};
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use era::{ClientEra, SESSION_CHANNEL_RETRY};
pub use session::{ServerNotification, ServerRequest};
pub use tool_cache::ToolSnapshot;

use self::session::{Dispatcher, Negotiation, RequestError, RequestExtras, Session};
use self::tool_cache::ToolCache;
use super::auth::UpstreamAuth;
use super::config::{McpServerConfig, Transport};
use super::error::{McpError, McpResult};
use super::limits::{
    DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_MAX_TOOLS, DEFAULT_MAX_TOOL_LIST_BYTES, MAX_TOOL_LIST_PAGES,
};
use super::protocol;
use super::tools::{Tool, ToolResult};
use super::transport::{ConnectParams, Connection, Limits, Negotiated};

/// Capped exponential backoff with full jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// The pause before the first retry (before jitter).
    pub base_delay: Duration,
    /// The longest pause.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// The pause before retry number `attempt` (1 = the first retry): a random time up
    /// to `min(max_delay, base_delay · 2^(attempt-1))`.
    pub fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self
            .base_delay
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
            .min(self.max_delay);
        let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rand::random_range(millis / 2..=millis.max(1)))
    }
}

/// Options every server of a gateway shares.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// How long a tool list stays cached when the server gives no `ttlMs`.
    pub tool_cache_ttl: Duration,
    /// Retries of transient failures, and reconnection backoff.
    pub retry: RetryPolicy,
    /// The largest message accepted from a server (a JSON body, an SSE event's data, a
    /// stdio line, a WebSocket message); [`DEFAULT_MAX_MESSAGE_BYTES`] by default.
    pub max_message_bytes: usize,
    /// The most tools the server may list; past it, its `tools/list` fails with
    /// [`McpError::Protocol`] naming the bound ([`DEFAULT_MAX_TOOLS`] by default).
    pub max_tools: usize,
    /// The most bytes of tool definitions (their JSON, all pages) the server may list;
    /// past it, as for `max_tools` ([`DEFAULT_MAX_TOOL_LIST_BYTES`] by default).
    pub max_tool_list_bytes: usize,
    /// `clientInfo` sent in the handshake.
    pub client_name: String,
    /// How long the first `server/discover` may take before the server is taken to
    /// predate the stateless revision.
    pub discover_probe_timeout: Duration,
    /// Which protocol era to speak: detect it (the default), or insist on one.
    pub protocol: ProtocolPreference,
}

/// Which protocol era a server is spoken to in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProtocolPreference {
    /// Probe with `server/discover` and fall back to `initialize`, as the spec's
    /// backward-compatibility rules describe; remember the answer.
    #[default]
    Auto,
    /// Only `initialize` and sessions (2024-11-05 … 2025-11-25).
    Sessions,
    /// Only the stateless revision (2026-07-28).
    Stateless,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            tool_cache_ttl: Duration::from_secs(300),
            retry: RetryPolicy::default(),
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            max_tools: DEFAULT_MAX_TOOLS,
            max_tool_list_bytes: DEFAULT_MAX_TOOL_LIST_BYTES,
            client_name: "litellm-rs".to_string(),
            discover_probe_timeout: Duration::from_secs(3),
            protocol: ProtocolPreference::Auto,
        }
    }
}

/// Options of one tool call.
#[derive(Debug, Default)]
pub struct CallOptions {
    /// Receives the params of each `notifications/progress` the server sends for this
    /// call (their `progressToken` is the gateway's own).
    pub progress: Option<mpsc::UnboundedSender<Value>>,
    /// Overrides the server's timeout for this call.
    pub timeout: Option<Duration>,
    /// Extra `_meta` entries to send with the call.
    pub meta: Option<Map<String, Value>>,
    /// Receives the requests the server makes during this call (elicitation, sampling,
    /// roots); without it they are answered "not supported".
    pub server_requests: Option<mpsc::UnboundedSender<ServerRequest>>,
    /// Return a stateless server's `input_required` results to the caller as they are
    /// (its keys, all its questions, its `requestState`) instead of answering them
    /// through `server_requests`: for a caller that answers them itself (a client of the
    /// stateless revision, whose retry carries `input`).
    pub pass_input_required: bool,
    /// The `inputResponses` and `requestState` of such a caller's retry, sent with the
    /// call unchanged (an object with either or both keys; other keys are ignored).
    pub input: Option<Map<String, Value>>,
    /// Receives the notifications that come with this call (`notifications/message`
    /// on its own reply stream); without it they go to [`McpServer::notifications`].
    pub notifications: Option<mpsc::UnboundedSender<ServerNotification>>,
    /// A bearer credential for this call only, sent in place of the server's configured
    /// one (for example a user's token exchanged on their behalf). HTTP and SSE servers
    /// only: over WebSocket or stdio the call fails with
    /// [`McpError::AuthenticationError`] rather than go out under other credentials.
    pub credential: Option<Secret>,
}

/// The state of a server's connection, for listings and health checks.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ServerState {
    /// Not contacted yet, or closed.
    Idle,
    /// Connected; the protocol revision in use.
    Connected {
        /// The negotiated protocol version.
        protocol_version: String,
    },
    /// The last attempt failed.
    Failed {
        /// Why.
        error: String,
    },
    /// `enabled: false`.
    Disabled,
}

/// What the era probe remembered about a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Era {
    Unknown,
    Sessions,
    Stateless,
}

/// One upstream MCP server. Cheap to clone: clones share the connection and the cache.
#[derive(Clone)]
pub struct McpServer {
    inner: Arc<Inner>,
    /// The era of whoever makes requests through this handle: it picks the channel
    /// (see [`McpServer::for_client_era`]).
    client_era: ClientEra,
}

impl std::fmt::Debug for McpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpServer")
            .field("name", &self.inner.config.name)
            .field("transport", &self.inner.config.transport)
            .field("state", &self.state())
            .finish()
    }
}

struct Inner {
    config: McpServerConfig,
    options: ServerOptions,
    http: reqwest::Client,
    auth: Arc<UpstreamAuth>,
    /// The live session; replaced when it dies.
    session: RwLock<Option<Arc<Session>>>,
    /// Serializes connecting, and holds the reconnection backoff.
    connect: tokio::sync::Mutex<Backoff>,
    /// The shared `initialize` session beside a stateless primary channel, for callers
    /// of the session era (`era.rs`).
    session_channel: SessionChannel,
    era: Mutex<Era>,
    /// Set when a server configured for streamable HTTP speaks only legacy SSE.
    legacy_sse: std::sync::atomic::AtomicBool,
    last_error: Mutex<Option<String>>,
    tools: Arc<ToolCache>,
    notifications: broadcast::Sender<ServerNotification>,
    next_id: AtomicU64,
    tasks: TaskTracker,
    cancel: CancellationToken,
}

/// The second channel of a dual-era upstream: one shared session for session-era callers.
#[derive(Default)]
struct SessionChannel {
    session: RwLock<Option<Arc<Session>>>,
    /// Serializes opening it.
    connect: tokio::sync::Mutex<()>,
    /// Until when the upstream's refusal of `initialize` stands.
    refused_until: Mutex<Option<Instant>>,
}

#[derive(Debug, Default)]
struct Backoff {
    failures: u32,
    retry_at: Option<Instant>,
}

impl McpServer {
    /// Prepares a server; nothing is contacted until the first request.
    ///
    /// # Errors
    /// [`McpError::InvalidConfig`] for an invalid configuration.
    pub fn new(
        config: McpServerConfig,
        http: reqwest::Client,
        options: ServerOptions,
        tasks: TaskTracker,
        cancel: CancellationToken,
    ) -> McpResult<Self> {
        config.validate()?;
        let auth = UpstreamAuth::new(
            &config.name,
            &config.url,
            config.auth.clone(),
            if config.transport == Transport::Stdio {
                &EMPTY_HEADERS
            } else {
                &config.static_headers
            },
            http.clone(),
        )?;
        let (notifications, _) = broadcast::channel(64);
        let era = match options.protocol {
            ProtocolPreference::Auto => Era::Unknown,
            ProtocolPreference::Sessions => Era::Sessions,
            ProtocolPreference::Stateless => Era::Stateless,
        };
        Ok(McpServer {
            inner: Arc::new(Inner {
                tools: Arc::new(ToolCache::new(options.tool_cache_ttl)),
                config,
                options,
                http,
                auth: Arc::new(auth),
                session: RwLock::new(None),
                connect: tokio::sync::Mutex::new(Backoff::default()),
                session_channel: SessionChannel::default(),
                era: Mutex::new(era),
                legacy_sse: std::sync::atomic::AtomicBool::new(false),
                last_error: Mutex::new(None),
                notifications,
                next_id: AtomicU64::new(1),
                tasks,
                cancel,
            }),
            client_era: ClientEra::Unspecified,
        })
    }

    /// This server as seen by a client of `era`: requests made through the returned
    /// handle go through the upstream channel of that era. For an upstream that speaks
    /// both eras, a [`ClientEra::Sessions`] caller gets the shared `initialize` session
    /// (server-to-client requests, subscriptions, log levels work as they do directly),
    /// and a [`ClientEra::Stateless`] caller the stateless requests. The handle shares
    /// everything else (connections, the tool cache) with `self`.
    #[must_use]
    pub fn for_client_era(&self, era: ClientEra) -> McpServer {
        McpServer {
            inner: self.inner.clone(),
            client_era: era,
        }
    }

    /// The server's name.
    pub fn name(&self) -> &str {
        &self.inner.config.name
    }

    /// The server's configuration.
    pub fn config(&self) -> &McpServerConfig {
        &self.inner.config
    }

    /// Whether the server is enabled.
    pub fn is_enabled(&self) -> bool {
        self.inner.config.enabled
    }

    /// The connection's state.
    pub fn state(&self) -> ServerState {
        if !self.inner.config.enabled {
            return ServerState::Disabled;
        }
        if let Some(session) = self.live_session() {
            if let Some(n) = session.negotiation.get() {
                return ServerState::Connected {
                    protocol_version: n.protocol_version.clone(),
                };
            }
        }
        match self.inner.last_error.lock().ok().and_then(|e| e.clone()) {
            Some(error) => ServerState::Failed { error },
            None => ServerState::Idle,
        }
    }

    /// The negotiated protocol version, once connected.
    pub fn protocol_version(&self) -> Option<String> {
        self.negotiation().map(|n| n.protocol_version)
    }

    /// Whether this handle's channel speaks the stateless revision, once connected
    /// (see [`McpServer::for_client_era`]).
    pub fn speaks_stateless(&self) -> Option<bool> {
        self.negotiation().map(|n| n.stateless)
    }

    /// The server's capabilities, once connected.
    pub fn capabilities(&self) -> Option<Value> {
        self.negotiation().map(|n| n.capabilities)
    }

    /// The server's `serverInfo`, once connected.
    pub fn server_info(&self) -> Option<Value> {
        self.negotiation().map(|n| n.server_info)
    }

    /// Notifications the server sends outside calls (`list_changed`, log messages).
    pub fn notifications(&self) -> broadcast::Receiver<ServerNotification> {
        self.inner.notifications.subscribe()
    }

    /// Connects now instead of on first use.
    ///
    /// # Errors
    /// Why the connection or the handshake failed.
    pub async fn connect(&self) -> McpResult<()> {
        self.ensure_enabled()?;
        let deadline = self.deadline(None);
        self.within(
            deadline,
            protocol::METHOD_INITIALIZE,
            None,
            self.session(deadline),
        )
        .await
        .map(|_| ())
    }

    /// Sends `ping` and waits for the answer.
    ///
    /// # Errors
    /// Why the server could not be reached.
    pub async fn ping(&self) -> McpResult<()> {
        self.ensure_enabled()?;
        let deadline = self.deadline(None);
        self.within(deadline, protocol::METHOD_PING, None, async {
            let session = self.session(deadline).await?;
            // The stateless revision has no `ping`; `server/discover` is its cheap request.
            let stateless = session.negotiation.get().is_some_and(|n| n.stateless);
            let method = if stateless {
                protocol::METHOD_DISCOVER
            } else {
                protocol::METHOD_PING
            };
            self.request_until(method, None, deadline, None)
                .await
                .map(|_| ())
        })
        .await
    }

    /// The server's tools: from the cache while it is fresh, else fetched (every page).
    ///
    /// # Errors
    /// Why the list could not be fetched.
    pub async fn list_tools(&self) -> McpResult<Arc<ToolSnapshot>> {
        self.ensure_enabled()?;
        let deadline = self.deadline(None);
        self.within(
            deadline,
            protocol::METHOD_TOOLS_LIST,
            None,
            self.snapshot(Freshness::Fresh, deadline),
        )
        .await
    }

    /// The tool list: cached while acceptable, else fetched once for all waiting
    /// callers (single flight). The caller bounds the wait with `deadline`.
    async fn snapshot(&self, wanted: Freshness, deadline: Instant) -> McpResult<Arc<ToolSnapshot>> {
        self.ensure_enabled()?;
        let acceptable = || match wanted {
            Freshness::Fresh => self.inner.tools.fresh(),
            Freshness::Any => self.inner.tools.any(),
        };
        match acceptable() {
            Some(snapshot) => Ok(snapshot),
            None => Box::pin(self.refresh_tools(acceptable, deadline)).await,
        }
    }

    /// Fetches the tool list, unless another caller's fetch made an acceptable one.
    async fn refresh_tools(
        &self,
        acceptable: impl Fn() -> Option<Arc<ToolSnapshot>>,
        deadline: Instant,
    ) -> McpResult<Arc<ToolSnapshot>> {
        let _leader = self.inner.tools.refresh.lock().await;
        if let Some(snapshot) = acceptable() {
            return Ok(snapshot);
        }
        // Connect first: a new session invalidates the cache, and the list fetched on
        // it must not count as stale for that.
        self.session(deadline).await?;
        let generation = self.inner.tools.generation();
        let (tools, ttl) = self.fetch_all_tools(deadline).await?;
        Ok(self.inner.tools.store(tools, generation, ttl))
    }

    /// The cached tool list, fresh or stale, without contacting the server.
    pub fn cached_tools(&self) -> Option<Arc<ToolSnapshot>> {
        self.inner.tools.any()
    }

    /// Drops the cached tool list.
    pub fn invalidate_tools(&self) {
        self.inner.tools.invalidate();
    }

    /// Calls a tool after checking its arguments against its `inputSchema`.
    ///
    /// # Errors
    /// [`McpError::ToolNotFound`], [`McpError::InvalidArguments`] (nothing sent),
    /// [`McpError::ToolExecutionError`] for a JSON-RPC error, or the transport's error.
    pub async fn call_tool(&self, tool: &str, arguments: Value) -> McpResult<ToolResult> {
        self.call_tool_with(tool, arguments, CallOptions::default())
            .await
    }

    /// [`McpServer::call_tool`] with progress routing, a timeout or `_meta`.
    ///
    /// # Errors
    /// As [`McpServer::call_tool`].
    pub async fn call_tool_with(
        &self,
        tool: &str,
        arguments: Value,
        options: CallOptions,
    ) -> McpResult<ToolResult> {
        self.check_credential_fits(options.credential.as_ref())?;
        let deadline = self.deadline(options.timeout);
        // One deadline over everything the call waits for: the tool list, a handshake
        // other callers started, a full outbox, the answer.
        self.within(
            deadline,
            protocol::METHOD_TOOLS_CALL,
            options.timeout,
            Box::pin(self.call_tool_until(tool, arguments, options, deadline)),
        )
        .await
    }

    async fn call_tool_until(
        &self,
        tool: &str,
        arguments: Value,
        options: CallOptions,
        deadline: Instant,
    ) -> McpResult<ToolResult> {
        // Checking a call needs the tool's schema, not a fresh list: a stale snapshot
        // serves (a server's `ttlMs: 0` must not cost a `tools/list` per call), and a
        // tool missing from it triggers one refresh below.
        let snapshot = self.snapshot(Freshness::Any, deadline).await?;
        let snapshot = match snapshot.get(tool) {
            Some(_) => snapshot,
            // The server may have added the tool without telling us: look once more,
            // unless the list is brand new.
            None if snapshot.fetched_at().elapsed() > Duration::from_secs(1) => {
                self.invalidate_tools();
                self.snapshot(Freshness::Fresh, deadline).await?
            }
            None => snapshot,
        };
        let Some(validator) = snapshot.validator(tool) else {
            return Err(McpError::ToolNotFound {
                server_name: self.name().to_string(),
                tool_name: tool.to_string(),
            });
        };
        // A null argument for a header parameter is left out of the headers (SEP-2243),
        // not refused here: the schema's type check skips it.
        let checked = match (&arguments, snapshot.get(tool)) {
            (Value::Object(map), Some(t)) if !t.header_properties().is_empty() => {
                let headers = t.header_properties();
                let mut map = map.clone();
                map.retain(|k, v| !(v.is_null() && headers.contains(&k.as_str())));
                std::borrow::Cow::Owned(Value::Object(map))
            }
            _ => std::borrow::Cow::Borrowed(&arguments),
        };
        validator
            .validate(&checked)
            .map_err(|e| McpError::InvalidArguments {
                server_name: self.name().to_string(),
                tool_name: tool.to_string(),
                field: e.field,
                message: e.message,
            })?;
        let mut params = Map::new();
        params.insert("name".into(), Value::from(tool));
        params.insert("arguments".into(), arguments);
        // (`params` gains `inputResponses`/`requestState` in later rounds.)
        if let Some(meta) = options.meta {
            params.insert("_meta".into(), Value::Object(meta));
        }
        for (key, value) in options.input.into_iter().flatten() {
            if key == "inputResponses" || key == "requestState" {
                params.insert(key, value);
            }
        }
        let pass_input_required = options.pass_input_required;
        let asker = options.server_requests.clone();
        let extras = Extras {
            name: Some(tool),
            progress: options.progress,
            asker: options.server_requests,
            listener: options.notifications,
            idempotent: false,
            param_headers: snapshot
                .get(tool)
                .map(|t| param_headers(t, &params["arguments"]))
                .unwrap_or_default(),
            credential: options.credential,
        };
        // The stateless revision asks for input with `input_required` results: get the
        // answers from whoever answers this call's requests and send the call again
        // with them (and the server's `requestState`), a bounded number of times.
        for _round in 0..MAX_INPUT_ROUNDS {
            let outcome = self
                .request_inner(
                    protocol::METHOD_TOOLS_CALL,
                    Some(Value::Object(params.clone())),
                    extras.clone(),
                    deadline,
                )
                .await;
            match outcome {
                Ok(result)
                    if pass_input_required
                        && result.get("resultType").and_then(Value::as_str)
                            == Some("input_required") =>
                {
                    return Ok(ToolResult::from_value(result));
                }
                Ok(result)
                    if result.get("resultType").and_then(Value::as_str)
                        == Some("input_required") =>
                {
                    let Some(asker) = &asker else {
                        return Err(self.tool_error(
                            tool,
                            "the server asked for input (elicitation, sampling or roots) that this caller cannot provide",
                            result.get("inputRequests").cloned(),
                        ));
                    };
                    let answers = self.gather_input(tool, asker, &result, deadline).await?;
                    params.insert("inputResponses".into(), answers);
                    match result.get("requestState") {
                        Some(state) => params.insert("requestState".into(), state.clone()),
                        None => params.remove("requestState"),
                    };
                }
                Ok(result) => return Ok(ToolResult::from_value(result)),
                Err(McpError::Rpc {
                    code,
                    message,
                    data,
                    ..
                }) => {
                    return Err(McpError::ToolExecutionError {
                        server_name: self.name().to_string(),
                        tool_name: tool.to_string(),
                        message,
                        code: Some(code),
                        data,
                    })
                }
                Err(other) => return Err(other),
            }
        }
        Err(self.tool_error(
            tool,
            &format!("the server still asked for input after {MAX_INPUT_ROUNDS} rounds"),
            None,
        ))
    }

    fn tool_error(&self, tool: &str, message: &str, data: Option<Value>) -> McpError {
        McpError::ToolExecutionError {
            server_name: self.name().to_string(),
            tool_name: tool.to_string(),
            message: message.to_string(),
            code: None,
            data,
        }
    }

    /// Answers the `inputRequests` of an `input_required` result through `asker`:
    /// `{key: result}` for each.
    async fn gather_input(
        &self,
        tool: &str,
        asker: &mpsc::UnboundedSender<ServerRequest>,
        result: &Value,
        deadline: Instant,
    ) -> McpResult<Value> {
        let mut answers = Map::new();
        let requests = result
            .get("inputRequests")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        for (key, request) in requests {
            let method = request
                .get("method")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let (reply, answer) = tokio::sync::oneshot::channel();
            let ask = ServerRequest {
                method: method.to_string(),
                params: request.get("params").cloned().unwrap_or(Value::Null),
                reply,
            };
            if asker.send(ask).is_err() {
                return Err(self.tool_error(
                    tool,
                    "nobody can answer the server's request for input",
                    None,
                ));
            }
            match tokio::time::timeout_at(deadline, answer).await {
                Ok(Ok(Ok(mut value))) => {
                    if method == "elicitation/create" {
                        if let Some(params) = request.get("params") {
                            protocol::fill_elicitation_defaults(params, &mut value);
                        }
                    }
                    answers.insert(key, value);
                }
                Ok(Ok(Err(error))) => {
                    return Err(self.tool_error(
                        tool,
                        &format!("the client refused '{method}': {}", error.message),
                        error.data,
                    ))
                }
                Ok(Err(_)) => {
                    return Err(self.tool_error(
                        tool,
                        &format!("the client did not answer '{method}'"),
                        None,
                    ))
                }
                Err(_) => return Err(self.timeout_error(protocol::METHOD_TOOLS_CALL)),
            }
        }
        Ok(Value::Object(answers))
    }

    /// Sends any request (`resources/list`, `prompts/get`, …) and returns its result.
    /// Idempotent methods are retried on transient failures; `tools/call` should go
    /// through [`McpServer::call_tool`].
    ///
    /// # Errors
    /// [`McpError::Rpc`] for a JSON-RPC error, or the transport's error.
    pub async fn request(&self, method: &str, params: Option<Value>) -> McpResult<Value> {
        self.request_as(method, params, None).await
    }

    /// [`McpServer::request`] with `credential` in place of the server's configured one
    /// for this request only (see [`CallOptions::credential`]).
    ///
    /// # Errors
    /// As [`McpServer::request`].
    pub async fn request_as(
        &self,
        method: &str,
        params: Option<Value>,
        credential: Option<Secret>,
    ) -> McpResult<Value> {
        self.ensure_enabled()?;
        self.check_credential_fits(credential.as_ref())?;
        self.request_until(method, params, self.deadline(None), credential)
            .await
    }

    async fn request_until(
        &self,
        method: &str,
        params: Option<Value>,
        deadline: Instant,
        credential: Option<Secret>,
    ) -> McpResult<Value> {
        let name: Option<String> = params
            .as_ref()
            .and_then(|p| p.get("name").or_else(|| p.get("uri")))
            .and_then(Value::as_str)
            .map(str::to_string);
        let extras = Extras {
            name: name.as_deref(),
            progress: None,
            asker: None,
            listener: None,
            idempotent: method != protocol::METHOD_TOOLS_CALL,
            param_headers: Vec::new(),
            credential,
        };
        self.request_inner(method, params, extras, deadline).await
    }

    /// Closes the sessions (DELETE, close frame, or stopping the process).
    pub async fn close(&self) {
        for slot in [&self.inner.session, &self.inner.session_channel.session] {
            let session = slot.write().ok().and_then(|mut s| s.take());
            if let Some(session) = session {
                session.close().await;
            }
        }
    }

    /// A per-call credential travels only over HTTP and SSE (per-request headers).
    fn check_credential_fits(&self, credential: Option<&Secret>) -> McpResult<()> {
        match (credential, self.inner.config.transport) {
            (Some(_), Transport::WebSocket | Transport::Stdio) => {
                Err(McpError::AuthenticationError {
                    server_name: self.name().to_string(),
                    message: "a per-call credential needs an HTTP or SSE transport".to_string(),
                })
            }
            _ => Ok(()),
        }
    }

    fn ensure_enabled(&self) -> McpResult<()> {
        if self.inner.config.enabled {
            Ok(())
        } else {
            Err(McpError::ServerDisabled {
                server_name: self.name().to_string(),
            })
        }
    }

    fn deadline(&self, timeout: Option<Duration>) -> Instant {
        Instant::now() + timeout.unwrap_or(Duration::from_millis(self.inner.config.timeout_ms))
    }

    fn timeout_error(&self, method: &str) -> McpError {
        McpError::Timeout {
            server_name: self.name().to_string(),
            method: method.to_string(),
            timeout_ms: self.inner.config.timeout_ms,
        }
    }

    /// Runs `work` until `deadline`; past it, the work is dropped (cancelling what it
    /// sent) and the answer is [`McpError::Timeout`] for `method` (with `timeout`, the
    /// call's own, when it had one).
    async fn within<T>(
        &self,
        deadline: Instant,
        method: &str,
        timeout: Option<Duration>,
        work: impl std::future::Future<Output = McpResult<T>>,
    ) -> McpResult<T> {
        match tokio::time::timeout_at(deadline, work).await {
            Ok(outcome) => outcome,
            Err(_) => Err(McpError::Timeout {
                server_name: self.name().to_string(),
                method: method.to_string(),
                timeout_ms: timeout.map_or(self.inner.config.timeout_ms, |t| {
                    u64::try_from(t.as_millis()).unwrap_or(u64::MAX)
                }),
            }),
        }
    }

    fn negotiation(&self) -> Option<Negotiation> {
        if self.client_era == ClientEra::Sessions {
            if let Some(session) = live(&self.inner.session_channel.session) {
                return session.negotiation.get().cloned();
            }
        }
        self.live_session()?.negotiation.get().cloned()
    }

    fn live_session(&self) -> Option<Arc<Session>> {
        live(&self.inner.session)
    }

    /// Every page of `tools/list`, within the server's bounds on tools and bytes: past
    /// either, the list fails with an error that names the bound.
    async fn fetch_all_tools(&self, deadline: Instant) -> McpResult<(Vec<Tool>, Option<Duration>)> {
        // A bound passed is an error, not a truncated list: a list cut at an arbitrary
        // point hides tools without anyone noticing (which ones depends on the server's
        // order), while an error shows in discovery failures and the server's state,
        // names the bound, and leaves every other server listed.
        let options = &self.inner.options;
        let mut tools = Vec::new();
        let mut listed = 0usize;
        let mut bytes = 0usize;
        let mut cursor: Option<String> = None;
        let mut ttl = None;
        for _ in 0..MAX_TOOL_LIST_PAGES {
            let params = cursor.as_ref().map(|c| json!({ "cursor": c }));
            let extras = Extras {
                name: None,
                progress: None,
                asker: None,
                listener: None,
                idempotent: true,
                param_headers: Vec::new(),
                credential: None,
            };
            let mut page = self
                .request_inner(protocol::METHOD_TOOLS_LIST, params, extras, deadline)
                .await?;
            let Some(Value::Array(items)) = page.get_mut("tools").map(Value::take) else {
                return Err(McpError::Protocol {
                    server_name: self.name().to_string(),
                    message: "tools/list result has no 'tools' array".to_string(),
                });
            };
            listed = listed.saturating_add(items.len());
            if listed > options.max_tools {
                return Err(self.tool_list_bound(format!(
                    "the server lists more than {} tools, the bound on one server's tool list",
                    options.max_tools
                )));
            }
            for item in items {
                bytes = bytes.saturating_add(json_size(&item));
                if bytes > options.max_tool_list_bytes {
                    return Err(self.tool_list_bound(format!(
                        "the server's tool list is larger than {} bytes, the bound on one server's tool list",
                        options.max_tool_list_bytes
                    )));
                }
                match serde_json::from_value::<Tool>(item) {
                    Ok(tool) if tool.param_header_problem().is_some() => {
                        let problem = tool.param_header_problem().unwrap_or_default();
                        tracing::warn!(server = %self.name(), tool = %tool.name, %problem, "left a tool out of the list: its x-mcp-header annotations are unusable (SEP-2243)")
                    }
                    Ok(tool) => tools.push(tool),
                    Err(error) => {
                        tracing::warn!(server = %self.name(), %error, "skipped a tool that does not parse")
                    }
                }
            }
            // Each page has its own TTL; the list is as fresh as its stalest page.
            if let Some(ms) = page.get("ttlMs").and_then(Value::as_f64) {
                let page_ttl = Duration::from_millis(ms.max(0.0) as u64);
                ttl = Some(ttl.map_or(page_ttl, |t: Duration| t.min(page_ttl)));
            }
            match page.get("nextCursor").and_then(Value::as_str) {
                Some(next) if !next.is_empty() => {
                    if cursor.as_deref() == Some(next) {
                        return Err(McpError::Protocol {
                            server_name: self.name().to_string(),
                            message: "tools/list returned the same cursor twice".to_string(),
                        });
                    }
                    cursor = Some(next.to_string());
                }
                _ => return Ok((tools, ttl)),
            }
        }
        Err(McpError::Protocol {
            server_name: self.name().to_string(),
            message: format!("tools/list has more than {MAX_TOOL_LIST_PAGES} pages"),
        })
    }

    fn tool_list_bound(&self, message: String) -> McpError {
        tracing::warn!(server = %self.name(), %message, "refused the server's tool list");
        McpError::Protocol {
            server_name: self.name().to_string(),
            message,
        }
    }

    /// Sends a request with the whole policy: a deadline over everything, a new session
    /// when the server forgot ours (once), and retries of transient failures where safe.
    async fn request_inner(
        &self,
        method: &str,
        params: Option<Value>,
        extras: Extras<'_>,
        deadline: Instant,
    ) -> McpResult<Value> {
        let retry = self.inner.options.retry;
        let mut attempt = 1;
        let mut renewed = false;
        loop {
            // Boxed, as are the slow paths below: a call's future holds only what
            // the steady state needs, so moving it does not copy kilobytes
            // (docs/benchmarks.md).
            let outcome = tokio::time::timeout_at(
                deadline,
                Box::pin(self.attempt(method, params.clone(), &extras, deadline)),
            )
            .await
            .unwrap_or_else(|_| Err(Attempt::Failed(self.timeout_error(method))));
            let error = match outcome {
                Ok(value) => return Ok(value),
                Err(Attempt::SessionExpired) if !renewed => {
                    renewed = true;
                    tracing::info!(server = %self.name(), "the server forgot our session; initializing a new one");
                    continue;
                }
                Err(Attempt::SessionExpired) => McpError::Transport {
                    server_name: self.name().to_string(),
                    message: "the server keeps forgetting the session".to_string(),
                    maybe_delivered: true,
                },
                Err(Attempt::Failed(error)) => error,
            };
            let retryable = matches!(error, McpError::Transport { .. })
                && (extras.idempotent || error.certainly_not_delivered());
            if !retryable || attempt >= retry.max_attempts {
                return Err(error);
            }
            let pause = retry.delay(attempt);
            if Instant::now() + pause >= deadline {
                return Err(error);
            }
            tracing::debug!(server = %self.name(), %method, attempt, error = %error, "retrying after a transient failure");
            tokio::time::sleep(pause).await;
            attempt += 1;
        }
    }

    async fn attempt(
        &self,
        method: &str,
        params: Option<Value>,
        extras: &Extras<'_>,
        deadline: Instant,
    ) -> Result<Value, Attempt> {
        let session = self.session(deadline).await.map_err(Attempt::Failed)?;
        let params = self.with_era_meta(&session, params);
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let request_extras = RequestExtras {
            name: extras.name,
            progress: extras.progress.clone(),
            asker: extras.asker.clone(),
            listener: extras.listener.clone(),
            cancellable: true,
            param_headers: extras.param_headers.clone(),
            credential: extras.credential.clone(),
        };
        match session.request(id, method, params, request_extras).await {
            Ok(value) => Ok(value),
            Err(RequestError::Rpc(e)) => Err(Attempt::Failed(McpError::Rpc {
                server_name: self.name().to_string(),
                method: method.to_string(),
                code: e.code,
                message: e.message,
                data: e.data,
            })),
            Err(RequestError::SessionExpired) => {
                self.drop_session(&session);
                Err(Attempt::SessionExpired)
            }
            Err(RequestError::Failed(error)) => {
                if !session.is_alive() {
                    self.drop_session(&session);
                }
                Err(Attempt::Failed(error))
            }
        }
    }

    /// Adds the per-request `_meta` of the stateless revision: the protocol version, and
    /// the client's capabilities and info unless the caller's own `_meta` carries them
    /// (a stateless client's declaration reaches the upstream as it was made).
    fn with_era_meta(&self, session: &Session, params: Option<Value>) -> Option<Value> {
        let stateless = session.negotiation.get().is_some_and(|n| n.stateless);
        if !stateless {
            return params;
        }
        let mut map = match params {
            Some(Value::Object(map)) => map,
            _ => Map::new(),
        };
        let declared = era::declared_capabilities(&map);
        let own_info = map
            .get("_meta")
            .and_then(|m| m.get("io.modelcontextprotocol/clientInfo"))
            .is_some();
        for (key, value) in era::stateless_meta(&self.inner.options.client_name, declared.as_ref())
        {
            if key == "io.modelcontextprotocol/clientInfo" && own_info {
                continue;
            }
            session::with_meta(&mut map, key, value);
        }
        Some(Value::Object(map))
    }

    fn drop_session(&self, dead: &Arc<Session>) {
        for slot in [&self.inner.session, &self.inner.session_channel.session] {
            if let Ok(mut slot) = slot.write() {
                if slot.as_ref().is_some_and(|s| Arc::ptr_eq(s, dead)) {
                    *slot = None;
                }
            }
        }
        let dead = dead.clone();
        self.inner.tasks.spawn(async move { dead.close().await });
    }

    /// The live session of this caller's channel, connecting (once, for all waiting
    /// callers) when there is none: the primary one, or, for a session-era caller of a
    /// stateless upstream, the shared `initialize` session beside it (`era.rs`).
    async fn session(&self, deadline: Instant) -> McpResult<Arc<Session>> {
        let primary = match self.live_session() {
            Some(session) => session,
            None => Box::pin(self.open_shared_session(deadline)).await?,
        };
        let stateless = primary.negotiation.get().is_some_and(|n| n.stateless);
        let only_stateless = self.inner.options.protocol == ProtocolPreference::Stateless;
        if self.client_era != ClientEra::Sessions || !stateless || only_stateless {
            return Ok(primary);
        }
        match Box::pin(self.session_channel(deadline)).await {
            Some(session) => Ok(session),
            None => Ok(primary),
        }
    }

    /// The shared `initialize` session for session-era callers of a stateless upstream,
    /// opened on first use; `None` while the upstream refuses `initialize`.
    async fn session_channel(&self, deadline: Instant) -> Option<Arc<Session>> {
        let channel = &self.inner.session_channel;
        if let Some(session) = live(&channel.session) {
            return Some(session);
        }
        let refused = |until: &Option<Instant>| until.is_some_and(|t| Instant::now() < t);
        if channel.refused_until.lock().map_or(true, |u| refused(&u)) {
            return None;
        }
        let _opening = tokio::time::timeout_at(deadline, channel.connect.lock())
            .await
            .ok()?;
        if let Some(session) = live(&channel.session) {
            return Some(session);
        }
        match tokio::time::timeout_at(deadline, self.open_session_as(Some(Era::Sessions))).await {
            Ok(Ok(session)) => {
                tracing::info!(server = %self.name(), "session-era callers get a shared session beside the stateless channel");
                if let Ok(mut slot) = channel.session.write() {
                    *slot = Some(session.clone());
                }
                Some(session)
            }
            outcome => {
                let error = match outcome {
                    Ok(Err(error)) => error.to_string(),
                    Err(_) => "timed out".to_string(),
                    Ok(Ok(_)) => String::new(),
                };
                tracing::info!(server = %self.name(), %error, "no session beside the stateless channel; session-era callers are translated");
                if let Ok(mut until) = channel.refused_until.lock() {
                    *until = Some(Instant::now() + SESSION_CHANNEL_RETRY);
                }
                None
            }
        }
    }

    /// Opens the shared session, once for all waiting callers, with backoff after
    /// failures.
    async fn open_shared_session(&self, deadline: Instant) -> McpResult<Arc<Session>> {
        let mut backoff = self.inner.connect.lock().await;
        if let Some(session) = self.live_session() {
            return Ok(session);
        }
        if let Some(retry_at) = backoff.retry_at {
            if retry_at > deadline {
                let last = self
                    .inner
                    .last_error
                    .lock()
                    .ok()
                    .and_then(|e| e.clone())
                    .unwrap_or_default();
                return Err(McpError::Transport {
                    server_name: self.name().to_string(),
                    message: format!(
                        "reconnecting after {} failures; next attempt in {} ms (last error: {last})",
                        backoff.failures,
                        retry_at.saturating_duration_since(Instant::now()).as_millis()
                    ),
                    maybe_delivered: false,
                });
            }
            tokio::time::sleep_until(retry_at).await;
        }
        match tokio::time::timeout_at(deadline, self.open_session_as(None)).await {
            Ok(Ok(session)) => {
                *backoff = Backoff::default();
                if let Ok(mut e) = self.inner.last_error.lock() {
                    *e = None;
                }
                if let Ok(mut slot) = self.inner.session.write() {
                    *slot = Some(session.clone());
                }
                Ok(session)
            }
            outcome => {
                let error = match outcome {
                    Ok(Err(error)) => error,
                    _ => self.timeout_error(protocol::METHOD_INITIALIZE),
                };
                backoff.failures += 1;
                backoff.retry_at =
                    Some(Instant::now() + self.inner.options.retry.delay(backoff.failures));
                if let Ok(mut e) = self.inner.last_error.lock() {
                    *e = Some(error.to_string());
                }
                Err(error)
            }
        }
    }

    /// Opens a connection and runs the handshake of the server's era, or of `forced`
    /// (which is then not remembered as the server's era).
    async fn open_session_as(&self, forced: Option<Era>) -> McpResult<Arc<Session>> {
        let cancel = self.inner.cancel.child_token();
        let dispatcher = Arc::new(Dispatcher::new(
            self.name(),
            self.inner.tools.clone(),
            self.inner.notifications.clone(),
            self.inner.tasks.clone(),
        ));
        let legacy_sse = self.inner.legacy_sse.load(Ordering::Relaxed);
        let transport = if legacy_sse {
            Transport::Sse
        } else {
            self.inner.config.transport
        };
        let connection = Connection::open(ConnectParams {
            server_name: self.name(),
            config: &self.inner.config,
            transport,
            http: self.inner.http.clone(),
            auth: self.inner.auth.clone(),
            inbound: dispatcher.clone(),
            tasks: self.inner.tasks.clone(),
            cancel: cancel.clone(),
            limits: Limits {
                max_message_bytes: self.inner.options.max_message_bytes,
            },
        })
        .await?;
        let session = Session::new(connection, dispatcher, cancel, self.inner.tasks.clone());
        match self.handshake(&session, forced).await {
            Ok(negotiation) => {
                tracing::info!(server = %self.name(), version = %negotiation.protocol_version, "connected");
                let listen = negotiation
                    .stateless
                    .then(|| listen_filter(&negotiation.capabilities))
                    .flatten();
                let _ = session.negotiation.set(negotiation);
                if let Some(filter) = listen {
                    self.inner
                        .tasks
                        .spawn(self.clone().listen(session.clone(), filter));
                }
                // A new session may see a different tool list.
                self.inner.tools.invalidate();
                Ok(session)
            }
            Err(error) => {
                session.close().await;
                // A server configured for streamable HTTP that refuses both probes with
                // 400/404/405 may speak the legacy HTTP+SSE transport at the same URL
                // (the spec's backward-compatibility rule); try that once, and remember.
                let refused = matches!(&error, McpError::Transport { message, .. }
                    if ["HTTP 400", "HTTP 404", "HTTP 405"].iter().any(|s| message.contains(s)));
                if transport == Transport::Http && refused && forced.is_none() {
                    tracing::info!(server = %self.name(), %error, "trying the legacy HTTP+SSE transport");
                    self.inner.legacy_sse.store(true, Ordering::Relaxed);
                    self.remember_era(Era::Sessions);
                    let fallback = Box::pin(self.open_session_as(None)).await;
                    if fallback.is_err() {
                        self.inner.legacy_sse.store(false, Ordering::Relaxed);
                        self.remember_era(Era::Unknown);
                        return Err(error);
                    }
                    return fallback;
                }
                Err(error)
            }
        }
    }

    async fn handshake(
        &self,
        session: &Arc<Session>,
        forced: Option<Era>,
    ) -> McpResult<Negotiation> {
        let remembered = self.inner.era.lock().map(|e| *e).unwrap_or(Era::Unknown);
        let era = forced.unwrap_or(remembered);
        if era != Era::Sessions {
            // Legacy servers may never answer an unknown method before `initialize`, so
            // the probe gets a short budget of its own (once the era is known, the
            // request has the whole timeout).
            let budget = match era {
                Era::Stateless => Duration::from_millis(self.inner.config.timeout_ms),
                _ => self.inner.options.discover_probe_timeout,
            };
            let probe = tokio::time::timeout(budget, self.discover(session))
                .await
                .unwrap_or_else(|_| Err(self.timeout_error(protocol::METHOD_DISCOVER)));
            match probe {
                Ok(negotiation) => {
                    self.remember_era(Era::Stateless);
                    return Ok(negotiation);
                }
                Err(error) if era == Era::Stateless => return Err(error),
                Err(error) if falls_back_to_initialize(&error) => {
                    tracing::debug!(server = %self.name(), %error, "no stateless discovery; using initialize");
                    // A probe cut off by its budget left its headers and maybe a session id.
                    session.connection.set_negotiated(Negotiated::default());
                    session.connection.reset_session();
                }
                Err(error) => return Err(error),
            }
        }
        let negotiation = self.initialize(session).await?;
        if forced.is_none() {
            self.remember_era(Era::Sessions);
        }
        Ok(negotiation)
    }

    /// Keeps a `subscriptions/listen` request open on a stateless session, so that
    /// `list_changed` notifications arrive; opens it again (with backoff) when the
    /// stream ends, until the session closes.
    async fn listen(self, session: Arc<Session>, filter: Value) {
        let mut failures = 0u32;
        while session.is_alive() {
            let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
            let mut params = Map::new();
            params.insert("notifications".into(), filter.clone());
            let params = self.with_era_meta(&session, Some(Value::Object(params)));
            let extras = RequestExtras {
                name: None,
                progress: None,
                asker: None,
                listener: None,
                cancellable: true,
                param_headers: Vec::new(),
                credential: None,
            };
            let outcome = tokio::select! {
                () = session.cancel.cancelled() => return,
                outcome = session.request(id, "subscriptions/listen", params, extras) => outcome,
            };
            match outcome {
                Ok(_) => failures = 0,
                Err(RequestError::Rpc(error)) => {
                    tracing::debug!(server = %self.name(), code = error.code, "the server refused subscriptions/listen");
                    return;
                }
                Err(_) => failures += 1,
            }
            if failures > 8 {
                return;
            }
            tokio::select! {
                () = session.cancel.cancelled() => return,
                () = tokio::time::sleep(self.inner.options.retry.delay(failures.max(1))) => {}
            }
        }
    }

    fn remember_era(&self, era: Era) {
        if let Ok(mut current) = self.inner.era.lock() {
            *current = era;
        }
    }

    async fn handshake_request(
        &self,
        session: &Arc<Session>,
        method: &str,
        params: Value,
    ) -> McpResult<Value> {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let extras = RequestExtras {
            name: None,
            progress: None,
            asker: None,
            listener: None,
            cancellable: false,
            param_headers: Vec::new(),
            credential: None,
        };
        match session.request(id, method, Some(params), extras).await {
            Ok(value) => Ok(value),
            Err(RequestError::Rpc(e)) => Err(McpError::Rpc {
                server_name: self.name().to_string(),
                method: method.to_string(),
                code: e.code,
                message: e.message,
                data: e.data,
            }),
            Err(RequestError::SessionExpired) => Err(McpError::Protocol {
                server_name: self.name().to_string(),
                message: format!("the server rejected '{method}' with 404"),
            }),
            Err(RequestError::Failed(error)) => Err(error),
        }
    }

    /// The stateless revision's `server/discover`.
    async fn discover(&self, session: &Arc<Session>) -> McpResult<Negotiation> {
        let mut params = Map::new();
        for (key, value) in era::stateless_meta(&self.inner.options.client_name, None) {
            session::with_meta(&mut params, key, value);
        }
        session.connection.set_negotiated(Negotiated {
            protocol_version: Some(protocol::STATELESS_VERSION.to_string()),
            stateless: true,
        });
        let params = Value::Object(params);
        let mut result = self
            .handshake_request(session, protocol::METHOD_DISCOVER, params.clone())
            .await;
        // -32022 whose `supported` lists the stateless revision we sent: the spec's "pick
        // a version from `supported` that you also speak and retry", once.
        if matches!(&result, Err(error) if refused_but_supports(error, protocol::STATELESS_VERSION))
        {
            result = self
                .handshake_request(session, protocol::METHOD_DISCOVER, params)
                .await;
        }
        let result = match result {
            Ok(result) => result,
            Err(error) => {
                session.connection.set_negotiated(Negotiated::default());
                session.connection.reset_session();
                return Err(error);
            }
        };
        let versions: Vec<&str> = result
            .get("supportedVersions")
            .and_then(Value::as_array)
            .map(|v| v.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        // Only a result that names the stateless revision among its versions proves a
        // stateless server: one without `supportedVersions` (a server that answers any
        // method with something) is not proof, and `initialize` decides.
        if !versions.contains(&protocol::STATELESS_VERSION) {
            session.connection.set_negotiated(Negotiated::default());
            session.connection.reset_session();
            return Err(McpError::Rpc {
                server_name: self.name().to_string(),
                method: protocol::METHOD_DISCOVER.to_string(),
                code: protocol::METHOD_NOT_FOUND,
                message: if versions.is_empty() {
                    "server/discover named no supportedVersions".to_string()
                } else {
                    format!("the server supports only {versions:?}")
                },
                data: None,
            });
        }
        Ok(Negotiation {
            protocol_version: protocol::STATELESS_VERSION.to_string(),
            stateless: true,
            capabilities: result.get("capabilities").cloned().unwrap_or(Value::Null),
            server_info: result
                .get("serverInfo")
                .or_else(|| result.pointer("/_meta/io.modelcontextprotocol~1serverInfo"))
                .cloned()
                .unwrap_or(Value::Null),
        })
    }

    /// `initialize`, version negotiation and `notifications/initialized`.
    async fn initialize(&self, session: &Arc<Session>) -> McpResult<Negotiation> {
        let params = json!({
            "protocolVersion": protocol::LATEST_SESSION_VERSION,
            "capabilities": {"roots": {"listChanged": false}, "sampling": {}, "elicitation": {}},
            "clientInfo": {"name": self.inner.options.client_name, "version": env!("CARGO_PKG_VERSION")},
        });
        let result = self
            .handshake_request(session, protocol::METHOD_INITIALIZE, params)
            .await?;
        let version = result
            .get("protocolVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if !protocol::is_supported_session_version(&version) {
            return Err(McpError::Protocol {
                server_name: self.name().to_string(),
                message: format!("the server chose protocol version '{version}', which this client does not support"),
            });
        }
        session.connection.set_negotiated(Negotiated {
            protocol_version: Some(version.clone()),
            stateless: false,
        });
        session
            .notify(protocol::NOTIFICATION_INITIALIZED, None)
            .await
            .map_err(|e| match e {
                super::transport::SendError::Failed(error) => error,
                super::transport::SendError::SessionExpired => McpError::Protocol {
                    server_name: self.name().to_string(),
                    message: "the server forgot the session right after initialize".to_string(),
                },
            })?;
        session.connection.start_listening().await;
        Ok(Negotiation {
            protocol_version: version,
            stateless: false,
            capabilities: result.get("capabilities").cloned().unwrap_or(Value::Null),
            server_info: result.get("serverInfo").cloned().unwrap_or(Value::Null),
        })
    }
}

/// Whether `error` is an UnsupportedProtocolVersion (`-32022`) whose `supported` lists
/// `version`.
fn refused_but_supports(error: &McpError, version: &str) -> bool {
    matches!(error, McpError::Rpc { code: -32022, data: Some(data), .. }
        if data
            .get("supported")
            .and_then(Value::as_array)
            .is_some_and(|v| v.iter().any(|s| s.as_str() == Some(version))))
}

/// Whether a failed `server/discover` means "this server predates the stateless
/// revision; use `initialize`". The spec's rule: a recognised error of the stateless
/// revision (`-32020` header mismatch, `-32021` missing capability, `-32022`
/// unsupported version) means a modern server, so falling back would be wrong;
/// anything else the server says, an HTTP 4xx, or silence means a legacy server.
fn falls_back_to_initialize(error: &McpError) -> bool {
    match error {
        // -32022 naming a session-era version we speak: a dual-era server that wants
        // `initialize` (the spec's "pick a common version from `supported` and retry").
        McpError::Rpc {
            code: -32022,
            data: Some(data),
            ..
        } => data
            .get("supported")
            .and_then(Value::as_array)
            .is_some_and(|v| {
                v.iter()
                    .filter_map(Value::as_str)
                    .any(protocol::is_supported_session_version)
            }),
        McpError::Rpc { code, .. } => !(-32022..=-32020).contains(code),
        McpError::Protocol { .. } | McpError::Timeout { .. } => true,
        McpError::Transport { message, .. } => message.contains("HTTP 4"),
        _ => false,
    }
}

/// What to subscribe to on a stateless server: the `list_changed` notifications its
/// capabilities announce; `None` when it announces none.
fn listen_filter(capabilities: &Value) -> Option<Value> {
    let mut filter = Map::new();
    for (capability, key) in [
        ("tools", "toolsListChanged"),
        ("prompts", "promptsListChanged"),
        ("resources", "resourcesListChanged"),
    ] {
        if capabilities.pointer(&format!("/{capability}/listChanged")) == Some(&Value::Bool(true)) {
            filter.insert(key.into(), Value::Bool(true));
        }
    }
    (!filter.is_empty()).then_some(Value::Object(filter))
}

/// The `Mcp-Param-*` headers of a call: one per argument whose property is marked
/// `x-mcp-header`, leaving out null and missing values.
fn param_headers(tool: &Tool, arguments: &Value) -> Vec<(String, String)> {
    let mut headers = Vec::new();
    for (property, schema) in tool.input_schema.properties() {
        let Some(name) = schema.get("x-mcp-header").and_then(Value::as_str) else {
            continue;
        };
        let value = match arguments.get(property) {
            None | Some(Value::Null) => continue,
            Some(Value::String(text)) => text.clone(),
            Some(other) => other.to_string(),
        };
        headers.push((name.to_string(), value));
    }
    headers
}

/// The live session of a slot.
fn live(slot: &RwLock<Option<Arc<Session>>>) -> Option<Arc<Session>> {
    slot.read().ok()?.as_ref().filter(|s| s.is_alive()).cloned()
}

/// The length of a value's JSON text, without writing it anywhere.
fn json_size(value: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

static EMPTY_HEADERS: std::sync::LazyLock<std::collections::HashMap<String, String>> =
    std::sync::LazyLock::new(std::collections::HashMap::new);

/// How fresh a tool list a caller needs.
#[derive(Clone, Copy)]
enum Freshness {
    /// Within its TTL and not invalidated (listing).
    Fresh,
    /// Any complete list (checking a call's arguments).
    Any,
}

/// How one attempt failed.
enum Attempt {
    SessionExpired,
    Failed(McpError),
}

/// Rounds of `input_required` answered for one call before giving up.
const MAX_INPUT_ROUNDS: usize = 8;

/// Per-request options of [`McpServer::request_inner`].
#[derive(Clone)]
struct Extras<'a> {
    name: Option<&'a str>,
    progress: Option<mpsc::UnboundedSender<Value>>,
    asker: Option<mpsc::UnboundedSender<ServerRequest>>,
    listener: Option<mpsc::UnboundedSender<ServerNotification>>,
    idempotent: bool,
    param_headers: Vec<(String, String)>,
    credential: Option<Secret>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsupported_version_naming_a_session_version_falls_back_to_initialize() {
        let rpc = |code: i64, data: Option<Value>| McpError::Rpc {
            server_name: "s".into(),
            method: "server/discover".into(),
            code,
            message: "m".into(),
            data,
        };
        let common = rpc(
            -32022,
            Some(json!({"supported": ["2025-11-25"], "requested": "2026-07-28"})),
        );
        assert!(falls_back_to_initialize(&common));
        let none_common = rpc(-32022, Some(json!({"supported": ["2031-01-01"]})));
        assert!(!falls_back_to_initialize(&none_common));
        assert!(!falls_back_to_initialize(&rpc(-32022, None)));
        assert!(!falls_back_to_initialize(&rpc(-32020, None)));
        assert!(falls_back_to_initialize(&rpc(-32601, None)));
        let stateless = rpc(
            -32022,
            Some(json!({"supported": ["2026-07-28"], "requested": "2026-07-28"})),
        );
        assert!(refused_but_supports(&stateless, "2026-07-28"));
        assert!(!refused_but_supports(&common, "2026-07-28"));
        assert!(!refused_but_supports(&rpc(-32022, None), "2026-07-28"));
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let policy = RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(400),
        };
        for _ in 0..50 {
            let first = policy.delay(1);
            assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
            let late = policy.delay(10);
            assert!(late >= Duration::from_millis(200) && late <= Duration::from_millis(400));
        }
    }
}
