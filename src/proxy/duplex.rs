//! The engine of the duplex faces (stdio, WebSocket, legacy HTTP+SSE): one downstream
//! session over a pair of message channels, whatever carries the messages.
//!
//! Owns the session's protocol: parsing incoming messages (a JSON-RPC error for each one
//! that is malformed, and the session goes on), answering `initialize`, running requests
//! concurrently, cancelling one on the client's `notifications/cancelled` (no response
//! is sent for it then), writing a call's progress under the client's own token before
//! its response, forwarding the upstreams' `list_changed` notifications in scope once the
//! client has sent `notifications/initialized`, relaying the requests an upstream makes
//! during a call (elicitation, sampling, roots) to the client under ids of this session
//! (`gw-<n>`) and its answers back, a call's log messages at or above the level the
//! client set (`logging/setLevel`), `notifications/resources/updated` for the resources
//! the client subscribed to (under its name of them), and the metrics and audit record
//! of every request. A session runs at most
//! [`MAX_IN_FLIGHT_PER_SESSION`](super::sessions::MAX_IN_FLIGHT_PER_SESSION) requests at
//! once; one more is answered at once with
//! [`TOO_MANY_IN_FLIGHT`](super::sessions::TOO_MANY_IN_FLIGHT) and never reaches an
//! upstream. A message that is not UTF-8 is answered `-32700`, never read lossily.
//! What a method does is the [`McpHandler`](super::handler::McpHandler)'s
//! business; framing, identity and the transport's own rules are the face's.
//!
//! Invariants: everything a session runs is owned by [`run`]'s future, so dropping it
//! (the client went away) drops every request in flight, which cancels them upstream;
//! no task is spawned. When the incoming messages end (or the service shuts down), the
//! requests in flight still finish and are answered (an upstream's request to the client
//! is refused then, as no answer can come); when nobody reads the outgoing channel any
//! more, they are dropped at once. A session that ends (rather than being dropped)
//! gives up its resource subscriptions.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::FuturesUnordered;
use futures::{Stream, StreamExt};
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::handler::{log_rank, CallChannels, Identity, Outcome, RequestContext, Scope};
use super::sessions::{too_many_in_flight_message, MAX_IN_FLIGHT_PER_SESSION, TOO_MANY_IN_FLIGHT};
use super::{jsonrpc_error, Announcement, AppState};
use crate::core::mcp::protocol::{self, Incoming, RpcError};
use crate::core::mcp::{ServerNotification, ServerRequest};

/// One message as the face's framing delivered it.
#[derive(Debug, Clone, PartialEq)]
pub enum IncomingLine {
    /// The text of one message (a line, a text frame), not parsed yet.
    Text(String),
    /// A message the face has already parsed as JSON (an HTTP body it checked).
    Parsed(Value),
    /// The text of one message that came with its own credential of the session's
    /// owner (a legacy SSE POST): from it on, the session acts with that identity (a
    /// refreshed token, its scopes and team), not the one the stream was opened with.
    TextAs(String, Box<Identity>),
    /// A message over the face's size cap, not read; answered with `-32600`.
    TooLarge,
    /// A message that is not valid UTF-8 (a binary WebSocket frame, a stdio line);
    /// answered with `-32700`.
    NotUtf8,
}

/// How long a session that ends waits for its upstreams to hear its unsubscriptions.
const UNSUBSCRIBE_WAIT: Duration = Duration::from_secs(5);

/// A request in flight; resolves to its key in the in-flight table and the change it
/// made to the session's subscriptions.
type Running = Pin<Box<dyn Future<Output = (String, Option<Subscription>)> + Send>>;

/// A resource the client subscribed to (`true`) or unsubscribed from, as it names it.
type Subscription = (String, bool);

/// Serves one downstream session: reads `incoming` until it ends (or the service shuts
/// down), answers on `outgoing`, then lets the requests in flight finish while
/// `outgoing` is read. Returns when nothing is left to do, or at once when `outgoing`
/// is closed.
///
/// `face` is the metrics label (`stdio`, `ws`, `sse`).
pub async fn run(
    state: AppState,
    identity: Identity,
    scope: Scope,
    face: &'static str,
    incoming: impl Stream<Item = IncomingLine>,
    outgoing: mpsc::Sender<Value>,
) {
    let incoming = incoming.fuse();
    tokio::pin!(incoming);
    let shutdown = state.shutdown_token();
    let (asks, mut asked_by_upstreams) = mpsc::unbounded_channel();
    let mut session = Session {
        state,
        identity,
        scope,
        face,
        outgoing: outgoing.clone(),
        in_flight: HashMap::new(),
        running: FuturesUnordered::new(),
        announcements: None,
        asks,
        asked: HashMap::new(),
        next_ask: 1,
        subscribed: HashSet::new(),
        log_level: Arc::new(AtomicUsize::new(0)),
        client_capabilities: None,
    };
    let mut reading = true;
    loop {
        if !reading && session.running.is_empty() {
            break;
        }
        tokio::select! {
            // Nobody will read an answer: drop what is in flight (cancelling it upstream).
            () = outgoing.closed() => break,
            () = shutdown.cancelled(), if reading => {
                reading = false;
                session.stop_asking();
            }
            line = incoming.next(), if reading => match line {
                Some(line) => session.take(line).await,
                None => {
                    reading = false;
                    session.stop_asking();
                }
            },
            Some(ask) = asked_by_upstreams.recv() => session.relay(ask, reading).await,
            Some((key, subscription)) = session.running.next(), if !session.running.is_empty() => {
                session.in_flight.remove(&key);
                match subscription {
                    Some((uri, true)) => { session.subscribed.insert(uri); }
                    Some((uri, false)) => { session.subscribed.remove(&uri); }
                    None => {}
                }
            }
            Some(announcement) = next_announcement(&mut session.announcements), if reading => {
                session.announce(announcement).await;
            }
        }
    }
    // What is still in flight here has nobody to answer to.
    session.running.clear();
    session.unsubscribe_all().await;
}

/// The state of one session, owned by [`run`]. Its async methods take `&mut self`: the
/// requests in flight are not `Sync`, so neither is a `Session`, and a `&Session` held
/// across an await would make [`run`]'s future not `Send`.
struct Session {
    /// The service.
    state: AppState,
    /// Who the client is, as the face established it.
    identity: Identity,
    /// The servers the endpoint exposes.
    scope: Scope,
    /// The metrics label of the face.
    face: &'static str,
    /// Where answers and notifications go.
    outgoing: mpsc::Sender<Value>,
    /// The requests in flight by the client's id (as JSON text), to cancel them.
    in_flight: HashMap<String, CancellationToken>,
    /// The requests in flight themselves.
    running: FuturesUnordered<Running>,
    /// Upstream list changes, once the client is initialized.
    announcements: Option<broadcast::Receiver<Announcement>>,
    /// Given to every request, for the requests its upstream makes during a call.
    asks: mpsc::UnboundedSender<ServerRequest>,
    /// Where the client's answers to relayed requests go, by the id they went out under.
    asked: HashMap<String, oneshot::Sender<Result<Value, RpcError>>>,
    /// Numbers the relayed requests.
    next_ask: u64,
    /// The resources the client subscribed to, as it names them.
    subscribed: HashSet<String>,
    /// The least severe log level the client wants, as a `log_rank`.
    log_level: Arc<AtomicUsize>,
    /// The capabilities the client declared in `initialize`: an upstream's request that
    /// needs one it lacks is refused upstream, not relayed.
    client_capabilities: Option<Value>,
}

impl Session {
    /// Handles one incoming message.
    async fn take(&mut self, line: IncomingLine) {
        // Parsed strictly, as every face does (`protocol::Incoming::parse_from_client`).
        let parsed = match line {
            IncomingLine::Text(text) => Incoming::parse_from_client(text.as_bytes()),
            IncomingLine::Parsed(value) => Incoming::from_client_value(value),
            IncomingLine::TextAs(text, identity) => {
                self.identity = *identity;
                Incoming::parse_from_client(text.as_bytes())
            }
            IncomingLine::TooLarge => {
                return self
                    .refuse(
                        protocol::INVALID_REQUEST,
                        "Invalid Request: the message is larger than the gateway accepts",
                    )
                    .await
            }
            IncomingLine::NotUtf8 => {
                return self
                    .refuse(
                        protocol::PARSE_ERROR,
                        "Parse error: the message is not valid UTF-8",
                    )
                    .await
            }
        };
        let message = match parsed {
            Ok(message) => message,
            Err(refusal) => {
                self.state.metrics().record_request(self.face, "-", "error");
                let _ = self.outgoing.send(refusal.to_response()).await;
                return;
            }
        };
        match message {
            Incoming::Response { id, outcome } => self.answered(&id, outcome),
            Incoming::Notification { method, params } => self.notified(&method, &params),
            Incoming::Request { id, method, params } => self.request(id, method, params).await,
        }
    }

    /// Sends an upstream's request to the client under an id of this session; refused
    /// (its reply dropped) when no answer can come any more.
    async fn relay(&mut self, ask: ServerRequest, reading: bool) {
        if !reading {
            return;
        }
        let Some(ask) = super::handler::relay_if_declared(ask, self.client_capabilities.as_ref())
        else {
            return;
        };
        let id = format!("gw-{}", self.next_ask);
        self.next_ask += 1;
        let request =
            protocol::request_with_id(Value::from(id.as_str()), &ask.method, Some(ask.params));
        self.asked.insert(id, ask.reply);
        let _ = self.outgoing.send(request).await;
    }

    /// Hands the client's answer to the upstream that asked.
    fn answered(&mut self, id: &Value, outcome: Result<Value, RpcError>) {
        match id.as_str().and_then(|id| self.asked.remove(id)) {
            Some(reply) => {
                let _ = reply.send(outcome);
            }
            None => tracing::debug!(face = self.face, %id, "a response to no request of ours"),
        }
    }

    /// Refuses every relayed request still waiting: its answer cannot come any more.
    fn stop_asking(&mut self) {
        self.asked.clear();
    }

    /// Answers a message that could not be read, with a null id.
    async fn refuse(&mut self, code: i64, message: &str) {
        self.refuse_request(Value::Null, "-", "error", code, message)
            .await;
    }

    /// Answers request `id` with an error, counted under `method` and `outcome`.
    async fn refuse_request(
        &mut self,
        id: Value,
        method: &str,
        outcome: &str,
        code: i64,
        message: &str,
    ) {
        self.state
            .metrics()
            .record_request(self.face, method, outcome);
        let _ = self.outgoing.send(jsonrpc_error(id, code, message)).await;
    }

    fn notified(&mut self, method: &str, params: &Value) {
        match method {
            protocol::NOTIFICATION_CANCELLED => {
                let key = params
                    .get("requestId")
                    .map(Value::to_string)
                    .unwrap_or_default();
                if let Some(token) = self.in_flight.get(&key) {
                    token.cancel();
                }
            }
            protocol::NOTIFICATION_INITIALIZED if self.announcements.is_none() => {
                self.announcements = Some(self.state.announcements());
            }
            _ => {}
        }
    }

    async fn request(&mut self, id: Value, method: String, params: Value) {
        // A session outlives nothing of its credential: once the token it was opened
        // with has expired, requests are refused until the client reconnects.
        if self.identity.expired() {
            return self
                .refuse_request(
                    id,
                    &method,
                    "unauthorized",
                    -32001,
                    "the access token this session was opened with has expired: reconnect with a new one",
                )
                .await;
        }
        if method == "logging/setLevel" {
            let level = params.get("level").and_then(Value::as_str);
            if let Some(rank) = level.and_then(log_rank) {
                self.log_level.store(rank, Ordering::Relaxed);
            }
        }
        if method == protocol::METHOD_INITIALIZE {
            self.client_capabilities = Some(
                params
                    .get("capabilities")
                    .cloned()
                    .unwrap_or_else(|| Value::Object(Default::default())),
            );
            let requested = params
                .get("protocolVersion")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let result = self.state.handler().initialize_result(requested);
            self.state
                .metrics()
                .record_request(self.face, &method, "ok");
            tracing::debug!(face = self.face, key = %self.identity.name, "downstream session initialized");
            let _ = self.outgoing.send(protocol::response(id, result)).await;
            return;
        }
        let key = id.to_string();
        if self.in_flight.contains_key(&key) {
            return self
                .refuse_request(
                    id,
                    &method,
                    "error",
                    protocol::INVALID_REQUEST,
                    "Invalid Request: a request with this id is still in flight",
                )
                .await;
        }
        if self.in_flight.len() >= MAX_IN_FLIGHT_PER_SESSION {
            return self
                .refuse_request(
                    id,
                    &method,
                    "error",
                    TOO_MANY_IN_FLIGHT,
                    &too_many_in_flight_message(),
                )
                .await;
        }
        let cancel = CancellationToken::new();
        self.in_flight.insert(key.clone(), cancel.clone());
        let request = Request {
            asks: self.asks.clone(),
            log_level: self.log_level.clone(),
            state: self.state.clone(),
            identity: self.identity.clone(),
            scope: self.scope.clone(),
            face: self.face,
            outgoing: self.outgoing.clone(),
            id,
            method,
        };
        self.running.push(Box::pin(async move {
            let subscription = request.run(params, cancel).await;
            (key, subscription)
        }));
    }

    /// Forwards an upstream's change when its server is in scope: list changes to every
    /// client, a resource's update to the client that subscribed to it, under the
    /// client's name of it.
    async fn announce(&mut self, announcement: Announcement) {
        let in_scope = match &self.scope {
            Scope::All => true,
            Scope::Server(name) => *name == announcement.server,
        };
        if !in_scope {
            return;
        }
        let note = if announcement.method.ends_with("/list_changed") {
            if !self
                .state
                .handler()
                .may_see_server(&self.identity, &announcement.server)
            {
                return;
            }
            protocol::notification(&announcement.method, None)
        } else if announcement.method == "notifications/resources/updated" {
            let original = announcement
                .params
                .get("uri")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let uri = self
                .state
                .handler()
                .client_uri(&self.scope, &announcement.server, original);
            if !self.subscribed.contains(&uri) {
                return;
            }
            let mut params = announcement.params;
            params["uri"] = Value::from(uri);
            protocol::notification(&announcement.method, Some(params))
        } else {
            return;
        };
        let _ = self.outgoing.send(note).await;
    }

    /// Gives up the session's subscriptions, so an upstream stops sending updates
    /// nobody reads (bounded by [`UNSUBSCRIBE_WAIT`]).
    async fn unsubscribe_all(mut self) {
        let subscribed = std::mem::take(&mut self.subscribed);
        if subscribed.is_empty() {
            return;
        }
        let ctx = RequestContext {
            identity: &self.identity,
            scope: &self.scope,
            progress: None,
        };
        let handler = self.state.handler();
        let all = futures::future::join_all(subscribed.iter().map(|uri| {
            let params = json!({"uri": uri});
            let ctx = &ctx;
            async move {
                let _ = handler.subscribe(ctx, &params, false).await;
            }
        }));
        let _ = tokio::time::timeout(UNSUBSCRIBE_WAIT, all).await;
    }
}

impl Drop for Session {
    /// A session dropped before [`run`] finished (the legacy SSE face drives it inside
    /// the client's stream, which goes when the client disconnects) still gives its
    /// subscriptions back upstream, in the background.
    fn drop(&mut self) {
        if self.subscribed.is_empty() {
            return;
        }
        let uris: Vec<String> = self.subscribed.drain().collect();
        let handler = self.state.handler().clone();
        let scope = self.scope.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let release = handler.release_subscriptions(&scope, &uris);
                let _ = tokio::time::timeout(UNSUBSCRIBE_WAIT, release).await;
            });
        }
    }
}

/// The next upstream change for an initialized client; pending forever before that (or
/// once the service stops announcing).
async fn next_announcement(
    receiver: &mut Option<broadcast::Receiver<Announcement>>,
) -> Option<Announcement> {
    let Some(rx) = receiver.as_mut() else {
        return std::future::pending().await;
    };
    loop {
        match rx.recv().await {
            Ok(announcement) => return Some(announcement),
            Err(broadcast::error::RecvError::Lagged(_)) => {}
            Err(broadcast::error::RecvError::Closed) => {
                *receiver = None;
                return std::future::pending().await;
            }
        }
    }
}

/// One request in flight, with what it needs to run on its own.
struct Request {
    /// Where the upstream's requests during a call go, to be relayed to the client.
    asks: mpsc::UnboundedSender<ServerRequest>,
    /// The session's log level, which the call's log messages are filtered by.
    log_level: Arc<AtomicUsize>,
    state: AppState,
    identity: Identity,
    scope: Scope,
    face: &'static str,
    outgoing: mpsc::Sender<Value>,
    id: Value,
    method: String,
}

impl Request {
    /// Runs the method, writing its progress and log messages then its response; writes
    /// nothing when the client cancelled it. Returns the change it made to the session's
    /// subscriptions.
    async fn run(self, params: Value, cancel: CancellationToken) -> Option<Subscription> {
        let started = Instant::now();
        let tool = params
            .get("name")
            .and_then(Value::as_str)
            .map(str::to_string);
        let token = params.pointer("/_meta/progressToken").cloned();
        let (progress, mut updates) = match token {
            Some(_) => {
                let (tx, rx) = mpsc::unbounded_channel::<Value>();
                (Some(tx), Some(rx))
            }
            None => (None, None),
        };
        let token = token.unwrap_or(Value::Null);
        let (notes_tx, notes_rx) = mpsc::unbounded_channel::<ServerNotification>();
        let mut notes = Some(notes_rx);
        let ctx = RequestContext {
            identity: &self.identity,
            scope: &self.scope,
            progress,
        };
        let channels = CallChannels {
            asker: Some(self.asks.clone()),
            notifications: Some(notes_tx),
        };
        let call = self.call(ctx, params, channels);
        tokio::pin!(call);
        let finished = loop {
            tokio::select! {
                () = cancel.cancelled() => break None,
                Some(update) = next_of(&mut updates) => self.progress(update, &token).await,
                Some(note) = next_of(&mut notes) => self.log(note).await,
                finished = &mut call => break Some(finished),
            }
        };
        let outcome = finished.as_ref().map(|(outcome, _)| outcome);
        record(
            &self.state,
            &self.identity,
            &self.scope,
            self.face,
            &self.method,
            tool.as_deref(),
            outcome,
            started.elapsed(),
        );
        let (outcome, subscription) = finished?;
        // What the upstream sent just before its response goes out first.
        if let Some(rx) = updates.as_mut() {
            while let Ok(update) = rx.try_recv() {
                self.progress(update, &token).await;
            }
        }
        if let Some(rx) = notes.as_mut() {
            while let Ok(note) = rx.try_recv() {
                self.log(note).await;
            }
        }
        let reply = match outcome {
            Ok(mut result) => {
                if let Some(object) = result.as_object_mut() {
                    session_era_result(object);
                }
                protocol::response(self.id.clone(), result)
            }
            Err(error) => protocol::error_reply(self.id.clone(), error.to_value()),
        };
        let _ = self.outgoing.send(reply).await;
        subscription
    }

    /// The handler's answer; a subscription's also says what the session now watches.
    async fn call(
        &self,
        ctx: RequestContext<'_>,
        params: Value,
        channels: CallChannels,
    ) -> (Outcome, Option<Subscription>) {
        let handler = self.state.handler();
        let on = match self.method.as_str() {
            "resources/subscribe" => true,
            "resources/unsubscribe" => false,
            method => {
                return (
                    handler.handle_call(ctx, method, params, channels).await,
                    None,
                )
            }
        };
        match handler.subscribe(&ctx, &params, on).await {
            Ok((server, original)) => {
                let uri = handler.client_uri(&self.scope, &server, &original);
                (Ok(json!({})), Some((uri, on)))
            }
            Err(error) => (Err(error), None),
        }
    }

    /// Writes a notification that came with the call (a log message, when its level is
    /// one the client wants).
    async fn log(&self, note: ServerNotification) {
        if note.method == "notifications/message" {
            let rank = note
                .params
                .get("level")
                .and_then(Value::as_str)
                .and_then(log_rank);
            if rank.is_some_and(|rank| rank < self.log_level.load(Ordering::Relaxed)) {
                return;
            }
        }
        let note = protocol::notification(&note.method, Some(note.params));
        let _ = self.outgoing.send(note).await;
    }

    /// Writes one progress update under the client's token.
    async fn progress(&self, mut update: Value, token: &Value) {
        update["progressToken"] = token.clone();
        let note = protocol::notification(protocol::NOTIFICATION_PROGRESS, Some(update));
        let _ = self.outgoing.send(note).await;
    }
}

/// The next message on a call's channel; pending forever when it has none (or once the
/// channel is closed).
async fn next_of<T>(channel: &mut Option<mpsc::UnboundedReceiver<T>>) -> Option<T> {
    match channel.as_mut() {
        Some(rx) => match rx.recv().await {
            Some(message) => Some(message),
            None => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

/// A result as a session-era client expects it: without the stateless revision's
/// `resultType` (a stateless upstream's `complete`; the gateway answers other kinds
/// itself in this era).
pub(crate) fn session_era_result(result: &mut serde_json::Map<String, Value>) {
    if result.get("resultType").and_then(Value::as_str) == Some("complete") {
        result.remove("resultType");
    }
}

/// Metrics for a request, and the audit record of a tool call (who, what, outcome,
/// duration; never the arguments). `outcome` is `None` for a request the client
/// cancelled.
#[allow(clippy::too_many_arguments)] // one record, told everything once
pub(crate) fn record(
    state: &AppState,
    identity: &Identity,
    scope: &Scope,
    face: &'static str,
    method: &str,
    tool: Option<&str>,
    outcome: Option<&Outcome>,
    took: Duration,
) {
    let label = match outcome {
        Some(Ok(_)) => "ok",
        Some(Err(_)) | None => "error",
    };
    state.metrics().record_request(face, method, label);
    let (true, Some(name)) = (method == protocol::METHOD_TOOLS_CALL, tool) else {
        return;
    };
    let (server, tool) = match scope {
        Scope::All => state
            .gateway()
            .split_qualified_name(name)
            .unwrap_or(("", name)),
        Scope::Server(server) => (server.as_str(), name),
    };
    let tool_outcome = match outcome {
        None => "cancelled",
        Some(Ok(result)) if result.get("isError").and_then(Value::as_bool) == Some(true) => {
            "tool_error"
        }
        Some(Ok(_)) => "ok",
        Some(Err(e)) if e.code == protocol::INVALID_PARAMS => "unknown",
        Some(Err(e)) if e.code == -32001 => "denied",
        Some(Err(e)) if e.code == -32002 => "timeout",
        Some(Err(_)) => "error",
    };
    state
        .metrics()
        .audit(identity, server, tool, tool_outcome, took);
}
