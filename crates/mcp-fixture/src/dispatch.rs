//! Method dispatch shared by every transport: the per-request context (`Cx`), what a
//! transport must emit (`Out`, `Outcome`), and the handlers for every MCP method except
//! `initialize` (routed by the transports) and `tools/call` (in `run.rs`).

use std::sync::Arc;

use axum::http::HeaderMap;
use serde_json::{json, Map, Value};
use tokio::sync::{broadcast, mpsc};

use crate::app::App;
use crate::protocol::{self, Era, LEVELS, META_SUBSCRIPTION_ID};
use crate::rpc::{self, RpcError, INVALID_PARAMS, METHOD_NOT_FOUND, RESOURCE_NOT_FOUND_LEGACY};
use crate::scope::Scope;
use crate::tools;

/// Which transport a request arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Stdio,
    /// Streamable HTTP (`/mcp`).
    Http,
    /// Legacy HTTP+SSE (`/sse` + `/messages`).
    Sse,
    Ws,
}

/// One item a transport writes, in order.
#[derive(Debug)]
pub enum Out {
    Json(Value),
    /// A line/frame/event that is not JSON (the `garbage` tool).
    Raw(&'static str),
    /// Kill the transport without answering (the `crash` tool).
    Crash,
}

pub const GARBAGE: &str = "this is not json";

/// How a request ended.
#[derive(Debug)]
pub enum Outcome {
    Reply(Value),
    /// No answer (cancelled).
    Silent,
    Crash,
    /// Send [`GARBAGE`] and then this answer.
    Garbage(Value),
}

impl Outcome {
    pub fn emit(self, out: &mpsc::UnboundedSender<Out>) {
        // A closed channel means the peer is gone; nothing to do.
        let _ = match self {
            Outcome::Reply(v) => out.send(Out::Json(v)),
            Outcome::Silent => Ok(()),
            Outcome::Crash => out.send(Out::Crash),
            Outcome::Garbage(v) => out
                .send(Out::Raw(GARBAGE))
                .and_then(|()| out.send(Out::Json(v))),
        };
    }
}

/// Everything a handler needs to know about the request it serves.
#[derive(Clone)]
pub struct Cx {
    pub app: Arc<App>,
    pub era: Era,
    pub transport: Transport,
    /// HTTP headers of the request (HTTP, SSE and WebSocket transports).
    pub headers: Option<Arc<HeaderMap>>,
    /// The legacy session/connection, if any.
    pub scope: Option<Arc<Scope>>,
    /// Where request-related notifications go (None: they are dropped).
    pub out: Option<mpsc::UnboundedSender<Out>>,
    /// Modern per-request log threshold from `_meta`.
    pub modern_log: Option<u8>,
}

impl Cx {
    pub fn notify(&self, msg: Value) {
        if let Some(o) = &self.out {
            let _ = o.send(Out::Json(msg));
        }
    }

    /// Sends `notifications/message` if the client opted in at `level` (index into LEVELS).
    pub fn log(&self, level: u8, data: Value) {
        let threshold = match self.era {
            Era::Modern(_) => self.modern_log,
            Era::Legacy(_) => self.scope.as_ref().and_then(|s| s.log_threshold()),
        };
        if threshold.is_some_and(|t| level >= t) && self.out.is_some() {
            let name = LEVELS.get(usize::from(level)).copied().unwrap_or("info");
            self.notify(rpc::notification(
                "notifications/message",
                json!({"level": name, "logger": "mcp-fixture", "data": data}),
            ));
        }
    }

    /// `"public"` unless the server requires credentials.
    fn cache_scope(&self) -> &'static str {
        if self.app.cfg.oauth || !self.app.cfg.require_headers.is_empty() {
            "private"
        } else {
            "public"
        }
    }

    /// Adds the modern `CacheableResult` fields.
    fn cacheable(&self, m: &mut Map<String, Value>) {
        if self.era.is_modern() {
            m.insert("ttlMs".into(), Value::from(self.app.cfg.ttl_ms));
            m.insert("cacheScope".into(), Value::from(self.cache_scope()));
        }
    }

    pub fn reply(&self, id: Value, result: Map<String, Value>) -> Outcome {
        Outcome::Reply(rpc::result_response(id, protocol::finish(self.era, result)))
    }
}

fn method_not_found(method: &str) -> RpcError {
    RpcError::new(METHOD_NOT_FOUND, format!("Method not found: {method}"))
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// Serves one request (not `initialize`).
pub async fn request(cx: &Cx, id: Value, method: &str, params: Option<Value>) -> Outcome {
    let modern = cx.era.is_modern();
    let p = params.as_ref();
    let result = match method {
        "tools/call" => return crate::run::call_tool(cx, id, params).await,
        "tools/list" => return list_tools(cx, id, p).await,
        "subscriptions/listen" if modern => return listen(cx, id, p).await,
        "ping" if !modern => Ok(Map::new()),
        "server/discover" if modern => Ok(discover(cx)),
        "resources/list" => Ok(list_resources(cx)),
        "resources/templates/list" => {
            let mut m = obj(json!({"resourceTemplates": []}));
            cx.cacheable(&mut m);
            Ok(m)
        }
        "resources/read" => read_resource(cx, p),
        // Session era only: the stateless revision subscribes through subscriptions/listen.
        "resources/subscribe" | "resources/unsubscribe" if !modern => Ok(Map::new()),
        "prompts/list" => Ok(list_prompts(cx)),
        "prompts/get" => get_prompt(p),
        "logging/setLevel" if !modern => set_level(cx, p),
        "initialize" => Err(RpcError::new(
            rpc::INVALID_REQUEST,
            "Invalid Request: already initialized",
        )),
        _ => Err(method_not_found(method)),
    };
    match result {
        Ok(m) => cx.reply(id, m),
        Err(e) => Outcome::Reply(e.into_response(id)),
    }
}

/// Handles a client notification (any era, any transport).
pub fn notification(app: &App, scope: Option<&Scope>, method: &str, params: Option<&Value>) {
    app.stats.method(method);
    if method == "notifications/cancelled" {
        if let Some(id) = rpc::param(params, "requestId") {
            app.stats.cancelled(id.clone());
            if let Some(s) = scope {
                s.cancel(id);
            }
        }
    }
}

async fn list_tools(cx: &Cx, id: Value, p: Option<&Value>) -> Outcome {
    let offset = match rpc::param(p, "cursor") {
        None | Some(Value::Null) => 0,
        Some(c) => match c.as_str().and_then(tools::decode_cursor) {
            Some(o) => o,
            None => {
                return Outcome::Reply(
                    RpcError::new(INVALID_PARAMS, "Invalid params: invalid cursor")
                        .into_response(id),
                )
            }
        },
    };
    let delay = cx.app.cfg.list_delay_ms;
    if delay > 0 {
        let reg = cx.scope.as_ref().map(|s| s.register(&id));
        let sleep = tokio::time::sleep(std::time::Duration::from_millis(delay));
        match reg {
            Some(r) => tokio::select! {
                () = sleep => {}
                () = r.token.cancelled() => return Outcome::Silent,
            },
            None => sleep.await,
        }
    }
    let tier = match cx.era {
        Era::Modern(_) => 2,
        Era::Legacy(v) => tools::tier(v),
    };
    let snap = cx.app.catalog.snapshot();
    let (page, next) = snap.page(tier, offset, cx.app.cfg.page_size);
    let mut m = Map::with_capacity(4);
    m.insert("tools".into(), Value::Array(page));
    if let Some(n) = next {
        m.insert("nextCursor".into(), Value::from(tools::encode_cursor(n)));
    }
    cx.cacheable(&mut m);
    cx.reply(id, m)
}

fn discover(cx: &Cx) -> Map<String, Value> {
    let cfg = &cx.app.cfg;
    let mut m = obj(json!({
        "supportedVersions": protocol::supported_versions(cfg.era, cfg.max_version),
        "capabilities": protocol::capabilities(),
        "serverInfo": protocol::server_info(),
        "instructions": protocol::INSTRUCTIONS,
    }));
    cx.cacheable(&mut m);
    m
}

pub const HELLO_URI: &str = "fixture://hello";
pub const HELLO_TEXT: &str = "Hello from mcp-fixture";

fn list_resources(cx: &Cx) -> Map<String, Value> {
    let mut r = json!({
        "uri": HELLO_URI,
        "name": "hello",
        "description": "A fixed greeting",
        "mimeType": "text/plain"
    });
    if cx.era.at_least("2025-06-18") {
        if let Some(o) = r.as_object_mut() {
            o.insert("title".into(), Value::from("Hello"));
        }
    }
    let mut m = obj(json!({ "resources": [r] }));
    cx.cacheable(&mut m);
    m
}

fn read_resource(cx: &Cx, p: Option<&Value>) -> Result<Map<String, Value>, RpcError> {
    let uri = rpc::param(p, "uri")
        .and_then(Value::as_str)
        .ok_or_else(|| RpcError::new(INVALID_PARAMS, "Invalid params: uri (string) is required"))?;
    if uri != HELLO_URI {
        // -32002 up to 2025-11-25; the modern revision uses -32602.
        let code = if cx.era.is_modern() {
            INVALID_PARAMS
        } else {
            RESOURCE_NOT_FOUND_LEGACY
        };
        return Err(RpcError::new(code, "Resource not found").with_data(json!({"uri": uri})));
    }
    let mut m = obj(json!({
        "contents": [{"uri": HELLO_URI, "mimeType": "text/plain", "text": HELLO_TEXT}]
    }));
    cx.cacheable(&mut m);
    Ok(m)
}

fn list_prompts(cx: &Cx) -> Map<String, Value> {
    let mut m = obj(json!({
        "prompts": [{
            "name": "greeting",
            "description": "Greets someone by name",
            "arguments": [{"name": "name", "description": "Who to greet", "required": true}]
        }]
    }));
    cx.cacheable(&mut m);
    m
}

fn get_prompt(p: Option<&Value>) -> Result<Map<String, Value>, RpcError> {
    let name = rpc::param(p, "name")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            RpcError::new(INVALID_PARAMS, "Invalid params: name (string) is required")
        })?;
    if name != "greeting" {
        return Err(RpcError::new(
            INVALID_PARAMS,
            format!("Unknown prompt: {name}"),
        ));
    }
    let who = rpc::param(p, "arguments")
        .and_then(|a| a.get("name"))
        .and_then(Value::as_str)
        .ok_or_else(|| RpcError::new(INVALID_PARAMS, "Missing required argument: name"))?;
    Ok(obj(json!({
        "description": "Greets someone by name",
        "messages": [{"role": "user", "content": {"type": "text", "text": format!("Hello, {who}!")}}]
    })))
}

fn set_level(cx: &Cx, p: Option<&Value>) -> Result<Map<String, Value>, RpcError> {
    let level = rpc::param(p, "level")
        .and_then(Value::as_str)
        .and_then(protocol::level_index)
        .ok_or_else(|| RpcError::new(INVALID_PARAMS, "Invalid params: unknown log level"))?;
    if let Some(s) = &cx.scope {
        s.set_log_level(level);
    }
    Ok(Map::new())
}

/// Modern `subscriptions/listen`: acknowledge, then forward tool-list changes (tagged with
/// the subscription id) until the client cancels or goes away.
async fn listen(cx: &Cx, id: Value, p: Option<&Value>) -> Outcome {
    let Some(filter) = rpc::param(p, "notifications").and_then(Value::as_object) else {
        return Outcome::Reply(
            RpcError::new(
                INVALID_PARAMS,
                "Invalid params: notifications (object) is required",
            )
            .into_response(id),
        );
    };
    if cx.out.is_none() {
        return Outcome::Reply(
            RpcError::new(rpc::INTERNAL_ERROR, "listen needs a stream").into_response(id),
        );
    }
    let tools = filter.get("toolsListChanged").and_then(Value::as_bool) == Some(true);
    let mut agreed = Map::new();
    if tools {
        agreed.insert("toolsListChanged".into(), Value::Bool(true));
    }
    cx.app.stats.listen_streams.inc();
    let mut changes = cx.app.changes.subscribe();
    let reg = cx.scope.as_ref().map(|s| s.register(&id));
    cx.notify(rpc::notification(
        "notifications/subscriptions/acknowledged",
        json!({"_meta": {META_SUBSCRIPTION_ID: id}, "notifications": agreed}),
    ));
    let cancelled = async {
        match &reg {
            Some(r) => r.cancelled_or_shutdown().await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(cancelled);
    loop {
        tokio::select! {
            r = changes.recv() => match r {
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {
                    if tools {
                        cx.notify(rpc::notification(
                            "notifications/tools/list_changed",
                            json!({"_meta": {META_SUBSCRIPTION_ID: id}}),
                        ));
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return Outcome::Silent,
            },
            () = &mut cancelled => return Outcome::Silent,
        }
    }
}
