//! One live session with an upstream server: a [`Connection`], the [`Dispatcher`] that
//! correlates JSON-RPC responses with waiting callers, and what the handshake
//! negotiated.
//!
//! Owns request/response correlation, progress routing, answers to the server's own
//! requests (`ping`, `roots/list`), and cancellation: a request whose caller stops
//! waiting (timeout, or the future was dropped) is removed from the pending map and a
//! `notifications/cancelled` goes upstream. It does not reconnect; the server layer
//! replaces a session whose dispatcher reports it closed.

use crate::core::mcp::config::Secret;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use serde_json::{json, Map, Value};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::tool_cache::ToolCache;
use crate::core::mcp::error::McpError;
use crate::core::mcp::protocol::{self, Incoming, RpcError};
use crate::core::mcp::transport::{Connection, Inbound, Outgoing, SendError};

/// A notification the server sent outside any call (e.g. `notifications/tools/list_changed`),
/// as subscribers of [`super::McpServer::notifications`] receive it.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerNotification {
    /// The server that sent it.
    pub server_name: String,
    /// The method.
    pub method: String,
    /// The params.
    pub params: Value,
}

/// A request the server sent while one of our calls was running (elicitation,
/// sampling, roots), handed to that call's owner to answer.
#[derive(Debug)]
pub struct ServerRequest {
    /// The method (`elicitation/create`, `sampling/createMessage`, `roots/list`, …).
    pub method: String,
    /// Its params, as the server sent them.
    pub params: Value,
    /// Where the answer goes: a result, or a JSON-RPC error.
    pub reply: oneshot::Sender<Result<Value, RpcError>>,
}

/// How long the owner of a call has to answer a server's request.
const SERVER_REQUEST_ANSWER_WAIT: std::time::Duration = std::time::Duration::from_secs(600);

/// How a request on a session failed.
#[derive(Debug)]
pub(crate) enum RequestError {
    /// The server answered with a JSON-RPC error.
    Rpc(RpcError),
    /// The session is gone (the server forgot it, the process died, the stream dropped).
    SessionExpired,
    /// Anything else.
    Failed(McpError),
}

/// What a waiting request receives: the server's answer (a result or a JSON-RPC
/// error), or why its answer could not be read.
type Reply = Result<Result<Value, RpcError>, String>;

/// Correlates what a transport receives with the requests waiting for it.
pub(crate) struct Dispatcher {
    server_name: String,
    pending: Mutex<HashMap<u64, oneshot::Sender<Reply>>>,
    progress: Mutex<HashMap<u64, mpsc::UnboundedSender<Value>>>,
    /// Calls whose owners take the notifications that come with them (log messages on
    /// the call's own stream), by our request id.
    listeners: Mutex<HashMap<u64, mpsc::UnboundedSender<ServerNotification>>>,
    /// Calls whose owners answer the server's requests, by our request id.
    askers: Mutex<HashMap<u64, mpsc::UnboundedSender<ServerRequest>>>,
    closed: Mutex<Option<String>>,
    is_closed: AtomicBool,
    tools: Arc<ToolCache>,
    notifications: broadcast::Sender<ServerNotification>,
    /// The session, to answer the server's requests; set once the session exists.
    session: OnceLock<Weak<Session>>,
    tasks: TaskTracker,
}

impl Dispatcher {
    pub(crate) fn new(
        server_name: &str,
        tools: Arc<ToolCache>,
        notifications: broadcast::Sender<ServerNotification>,
        tasks: TaskTracker,
    ) -> Self {
        Dispatcher {
            server_name: server_name.to_string(),
            pending: Mutex::new(HashMap::new()),
            progress: Mutex::new(HashMap::new()),
            askers: Mutex::new(HashMap::new()),
            listeners: Mutex::new(HashMap::new()),
            closed: Mutex::new(None),
            is_closed: AtomicBool::new(false),
            tools,
            notifications,
            session: OnceLock::new(),
            tasks,
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.is_closed.load(Ordering::Acquire)
    }

    fn closed_reason(&self) -> String {
        self.closed
            .lock()
            .ok()
            .and_then(|r| r.clone())
            .unwrap_or_else(|| "the connection closed".to_string())
    }

    /// Answers a request the server sent: handed to the call it belongs to (the one
    /// whose HTTP response stream carried it, or the only call that can answer), else
    /// answered here (`ping`, an empty `roots/list`, or "not supported").
    fn answer_server_request(&self, id: Value, method: String, params: Value, origin: Option<u64>) {
        let asker = self.askers.lock().ok().and_then(|askers| match origin {
            Some(origin) => askers.get(&origin).cloned(),
            None if askers.len() == 1 => askers.values().next().cloned(),
            None => None,
        });
        let Some(session) = self.session.get().and_then(Weak::upgrade) else {
            return;
        };
        let local = |method: &str| match method {
            protocol::METHOD_PING => Ok(json!({})),
            "roots/list" => Ok(json!({"roots": []})),
            other => Err(RpcError {
                code: protocol::METHOD_NOT_FOUND,
                message: format!("no client can answer '{other}' here"),
                data: None,
            }),
        };
        // SEP-1034: an accepted elicitation gets the schema's defaults for what it left out.
        let elicited = (method == "elicitation/create").then(|| params.clone());
        let outcome = match asker {
            Some(asker) if method != protocol::METHOD_PING => {
                let (reply, answer) = oneshot::channel();
                let request = ServerRequest {
                    method: method.clone(),
                    params,
                    reply,
                };
                match asker.send(request) {
                    Ok(()) => Some(answer),
                    Err(_) => None,
                }
            }
            _ => None,
        };
        self.tasks.spawn(async move {
            let answer = match outcome {
                Some(answer) => {
                    match tokio::time::timeout(SERVER_REQUEST_ANSWER_WAIT, answer).await {
                        Ok(Ok(answer)) => answer,
                        _ => Err(RpcError {
                            code: protocol::INTERNAL_ERROR,
                            message: format!("the client did not answer '{method}'"),
                            data: None,
                        }),
                    }
                }
                None => local(&method),
            };
            let answer = answer.map(|mut result| {
                if let Some(request) = &elicited {
                    protocol::fill_elicitation_defaults(request, &mut result);
                }
                result
            });
            let response = match answer {
                Ok(result) => protocol::response(id, result),
                Err(error) => {
                    let mut body = protocol::error_response(id, error.code, &error.message);
                    if let Some(data) = error.data {
                        body["error"]["data"] = data;
                    }
                    body
                }
            };
            let outgoing = Outgoing {
                message: &response,
                method: "",
                name: None,
                awaiting: None,
                param_headers: &[],
                credential: None,
            };
            let _ = session.connection.send(outgoing).await;
        });
    }
}

impl Inbound for Dispatcher {
    fn deliver(&self, message: Incoming, origin: Option<u64>) {
        match message {
            Incoming::Response { id, outcome } => {
                let waiter = protocol::our_id(&id)
                    .and_then(|id| self.pending.lock().ok().and_then(|mut p| p.remove(&id)));
                match waiter {
                    Some(waiter) => {
                        let _ = waiter.send(Ok(outcome));
                    }
                    None => {
                        tracing::debug!(server = %self.server_name, %id, "dropped a response nobody waits for")
                    }
                }
            }
            Incoming::Notification { method, params } => match method.as_str() {
                protocol::NOTIFICATION_PROGRESS => {
                    let token = params.get("progressToken").and_then(protocol::our_id);
                    let route = token
                        .and_then(|t| self.progress.lock().ok().and_then(|p| p.get(&t).cloned()));
                    if let Some(route) = route {
                        let _ = route.send(params);
                    }
                }
                _ => {
                    if method == protocol::NOTIFICATION_TOOLS_LIST_CHANGED {
                        tracing::debug!(server = %self.server_name, "tool list changed");
                        self.tools.invalidate();
                    }
                    let notification = ServerNotification {
                        server_name: self.server_name.clone(),
                        method,
                        params,
                    };
                    // A notification that came on a call's own stream belongs to that call.
                    let listener = origin
                        .and_then(|o| self.listeners.lock().ok().and_then(|l| l.get(&o).cloned()));
                    match listener {
                        Some(listener) => {
                            let _ = listener.send(notification);
                        }
                        None => {
                            let _ = self.notifications.send(notification);
                        }
                    }
                }
            },
            Incoming::Request { id, method, params } => {
                self.answer_server_request(id, method, params, origin)
            }
        }
    }

    fn closed(&self, reason: &str) {
        if let Ok(mut closed) = self.closed.lock() {
            if closed.is_none() {
                *closed = Some(reason.to_string());
            }
        }
        self.is_closed.store(true, Ordering::Release);
        // Dropping the senders wakes every waiter with "closed".
        let waiters: Vec<_> = self
            .pending
            .lock()
            .map(|mut p| p.drain().collect())
            .unwrap_or_default();
        drop(waiters);
    }

    fn reject(&self, id: u64, reason: &str) {
        let waiter = self.pending.lock().ok().and_then(|mut p| p.remove(&id));
        match waiter {
            Some(waiter) => {
                let _ = waiter.send(Err(reason.to_string()));
            }
            None => {
                tracing::debug!(server = %self.server_name, id, "an unreadable response for a request nobody waits for")
            }
        }
    }
}

/// What the handshake established.
#[derive(Debug, Clone)]
pub(crate) struct Negotiation {
    /// The protocol revision in use.
    pub(crate) protocol_version: String,
    /// Whether it is the stateless revision.
    pub(crate) stateless: bool,
    /// The server's capabilities.
    pub(crate) capabilities: Value,
    /// The server's `serverInfo`.
    pub(crate) server_info: Value,
}

/// One live session.
pub(crate) struct Session {
    pub(crate) connection: Connection,
    pub(crate) dispatcher: Arc<Dispatcher>,
    pub(crate) negotiation: OnceLock<Negotiation>,
    pub(crate) cancel: CancellationToken,
    pub(crate) tasks: TaskTracker,
}

/// Per-request extras.
#[derive(Default)]
pub(crate) struct RequestExtras<'a> {
    /// The tool/resource/prompt name, for the `Mcp-Name` header.
    pub(crate) name: Option<&'a str>,
    /// Where progress notifications of this request go.
    pub(crate) progress: Option<mpsc::UnboundedSender<Value>>,
    /// Who answers the server's requests made during this request.
    pub(crate) asker: Option<mpsc::UnboundedSender<ServerRequest>>,
    /// Who takes the notifications that come with this request.
    pub(crate) listener: Option<mpsc::UnboundedSender<ServerNotification>>,
    /// Whether a cancellation may be sent when the caller stops waiting.
    pub(crate) cancellable: bool,
    /// `Mcp-Param-*` headers (stateless revision over HTTP).
    pub(crate) param_headers: Vec<(String, String)>,
    /// This request's own bearer credential (HTTP transports).
    pub(crate) credential: Option<Secret>,
}

impl Session {
    pub(crate) fn new(
        connection: Connection,
        dispatcher: Arc<Dispatcher>,
        cancel: CancellationToken,
        tasks: TaskTracker,
    ) -> Arc<Session> {
        let session = Arc::new(Session {
            connection,
            dispatcher,
            negotiation: OnceLock::new(),
            cancel,
            tasks,
        });
        let _ = session.dispatcher.session.set(Arc::downgrade(&session));
        session
    }

    pub(crate) fn is_alive(&self) -> bool {
        !self.dispatcher.is_closed() && !self.cancel.is_cancelled()
    }

    /// Sends a request and waits for its response (no timeout here: the caller bounds
    /// it, and dropping the future cancels the request upstream).
    pub(crate) async fn request(
        self: &Arc<Self>,
        id: u64,
        method: &str,
        params: Option<Value>,
        extras: RequestExtras<'_>,
    ) -> Result<Value, RequestError> {
        let params = match (params, &extras.progress) {
            (Some(Value::Object(mut map)), Some(_)) => {
                with_meta(&mut map, "progressToken", Value::from(id));
                Some(Value::Object(map))
            }
            (None, Some(_)) => {
                let mut map = Map::new();
                with_meta(&mut map, "progressToken", Value::from(id));
                Some(Value::Object(map))
            }
            (params, _) => params,
        };
        let message = protocol::request(id, method, params);
        let (tx, rx) = oneshot::channel();
        {
            let Ok(mut pending) = self.dispatcher.pending.lock() else {
                return Err(RequestError::SessionExpired);
            };
            if self.dispatcher.is_closed() {
                return Err(RequestError::SessionExpired);
            }
            pending.insert(id, tx);
        }
        let mut guard = PendingGuard {
            session: self,
            id,
            cancellable: extras.cancellable,
            sent: false,
            done: false,
            has_progress: extras.progress.is_some(),
            has_asker: extras.asker.is_some(),
            has_listener: extras.listener.is_some(),
        };
        if let Some(listener) = extras.listener {
            if let Ok(mut listeners) = self.dispatcher.listeners.lock() {
                listeners.insert(id, listener);
            }
        }
        if let Some(asker) = extras.asker {
            if let Ok(mut askers) = self.dispatcher.askers.lock() {
                askers.insert(id, asker);
            }
        }
        if let Some(progress) = extras.progress {
            if let Ok(mut routes) = self.dispatcher.progress.lock() {
                routes.insert(id, progress);
            }
        }
        let outgoing = Outgoing {
            message: &message,
            method,
            name: extras.name,
            awaiting: Some(id),
            param_headers: &extras.param_headers,
            credential: extras.credential.as_ref(),
        };
        // Streamable HTTP reads the reply inside `send`, so the request counts as sent
        // (and a caller that stops waiting must cancel it) from here on.
        guard.sent = true;
        match self.connection.send(outgoing).await {
            Ok(()) => {}
            Err(SendError::SessionExpired) => {
                guard.done = true;
                return Err(RequestError::SessionExpired);
            }
            Err(SendError::Failed(error)) => {
                guard.done = true;
                return Err(RequestError::Failed(error));
            }
        }
        let outcome = rx.await;
        guard.done = true;
        match outcome {
            Ok(Ok(Ok(result))) => Ok(result),
            Ok(Ok(Err(error))) => Err(RequestError::Rpc(error)),
            Ok(Err(reason)) => Err(RequestError::Failed(McpError::Transport {
                server_name: self.dispatcher.server_name.clone(),
                message: reason,
                maybe_delivered: true,
            })),
            Err(_) => Err(RequestError::Failed(McpError::Transport {
                server_name: self.dispatcher.server_name.clone(),
                message: self.dispatcher.closed_reason(),
                maybe_delivered: true,
            })),
        }
    }

    /// Sends a notification.
    pub(crate) async fn notify(
        &self,
        method: &str,
        params: Option<Value>,
    ) -> Result<(), SendError> {
        let message = protocol::notification(method, params);
        self.connection
            .send(Outgoing {
                message: &message,
                method,
                name: None,
                awaiting: None,
                param_headers: &[],
                credential: None,
            })
            .await
    }

    /// Closes the connection and waits for it to finish.
    pub(crate) async fn close(&self) {
        self.connection.close().await;
        self.cancel.cancel();
        self.dispatcher.closed("the session was closed");
    }
}

impl Drop for Session {
    /// A session dropped without [`Session::close`] (a handshake that ran out of time)
    /// still stops its connection's tasks: a stdio process is shut down, an HTTP GET
    /// stream stops.
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Adds `key` to `params._meta`.
pub(crate) fn with_meta(params: &mut Map<String, Value>, key: &str, value: Value) {
    let meta = params
        .entry("_meta")
        .or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    if let Value::Object(meta) = meta {
        meta.insert(key.to_string(), value);
    }
}

/// Removes a request's routes when its caller stops waiting, and tells the server to
/// stop working on it when it was sent and never answered.
struct PendingGuard<'a> {
    session: &'a Arc<Session>,
    id: u64,
    cancellable: bool,
    sent: bool,
    done: bool,
    has_progress: bool,
    has_asker: bool,
    has_listener: bool,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        let dispatcher = &self.session.dispatcher;
        if let Ok(mut pending) = dispatcher.pending.lock() {
            pending.remove(&self.id);
        }
        if self.has_listener {
            if let Ok(mut listeners) = dispatcher.listeners.lock() {
                listeners.remove(&self.id);
            }
        }
        if self.has_asker {
            if let Ok(mut askers) = dispatcher.askers.lock() {
                askers.remove(&self.id);
            }
        }
        if self.has_progress {
            if let Ok(mut routes) = dispatcher.progress.lock() {
                routes.remove(&self.id);
            }
        }
        if self.sent && !self.done && self.cancellable && self.session.is_alive() {
            let session = self.session.clone();
            let id = self.id;
            self.session.tasks.spawn(async move {
                let params = json!({"requestId": id, "reason": "the caller stopped waiting (timeout or cancellation)"});
                let _ = tokio::time::timeout(
                    std::time::Duration::from_secs(5),
                    session.notify(protocol::NOTIFICATION_CANCELLED, Some(params)),
                )
                .await;
            });
        }
    }
}
