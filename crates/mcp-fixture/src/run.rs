//! `tools/call`: argument checks, the modern `x-mcp-header` validation, and the behaviour
//! of every tool (echo, add, slow, hang, crash, garbage, fail, rpc_error, progress,
//! change_tools, env, headers, mixed, routed, stats, tool_k/extra_k).

use std::time::Duration;

use serde_json::{json, Map, Number, Value};

use crate::dispatch::{Cx, Outcome, Transport};
use crate::rpc::{self, RpcError, HEADER_MISMATCH, INTERNAL_ERROR, INVALID_PARAMS};
use crate::scope::Registration;
use crate::stats::headers_json;
use crate::tools::{Kind, ToolDef};

/// A 1x1 PNG.
pub const TINY_PNG: &str =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==";

enum ToolResult {
    Ok(Map<String, Value>),
    Err(RpcError),
    Cancelled,
}

fn text(s: impl Into<String>) -> Map<String, Value> {
    let mut m = Map::with_capacity(2);
    m.insert(
        "content".into(),
        json!([{"type": "text", "text": s.into()}]),
    );
    m
}

/// An error the model can see (`isError: true`), used for bad arguments too.
fn tool_error(s: impl Into<String>) -> ToolResult {
    let mut m = text(s);
    m.insert("isError".into(), Value::Bool(true));
    ToolResult::Ok(m)
}

fn str_arg<'a>(args: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    args.get(key).and_then(Value::as_str)
}

/// Waits until the request is cancelled (or forever when it cannot be).
async fn cancelled(reg: Option<&Registration>) {
    match reg {
        Some(r) => r.token.cancelled().await,
        None => std::future::pending().await,
    }
}

pub async fn call_tool(cx: &Cx, id: Value, params: Option<Value>) -> Outcome {
    let p = params.as_ref();
    let Some(name) = rpc::param(p, "name").and_then(Value::as_str) else {
        let e = RpcError::new(
            INVALID_PARAMS,
            "Invalid params: tools/call requires params.name",
        );
        return Outcome::Reply(e.into_response(id));
    };
    let empty = Map::new();
    let args = match rpc::param(p, "arguments") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(m)) => m,
        Some(_) => {
            let e = RpcError::new(
                INVALID_PARAMS,
                "Invalid params: arguments must be an object",
            );
            return Outcome::Reply(e.into_response(id));
        }
    };
    let snap = cx.app.catalog.snapshot();
    let Some(def) = snap.get(name) else {
        let e = RpcError::new(INVALID_PARAMS, format!("Unknown tool: {name}"));
        return Outcome::Reply(e.into_response(id));
    };
    if cx.transport == Transport::Http && cx.era.is_modern() {
        if let Err(e) = check_header_params(cx, def, args) {
            return Outcome::Reply(e.into_response(id));
        }
    }
    // Faults happen before anything is sent for the request.
    match def.kind {
        Kind::Crash => return Outcome::Crash,
        Kind::Garbage => {
            return match cx.reply(id, text("ok")) {
                Outcome::Reply(v) => Outcome::Garbage(v),
                other => other,
            }
        }
        _ => {}
    }
    cx.log(1, Value::from(format!("tools/call {name}")));
    let reg = cx.scope.as_ref().map(|s| s.register(&id));
    let result = run(cx, def, args, p, reg.as_ref()).await;
    drop(reg);
    match result {
        ToolResult::Ok(m) => cx.reply(id, m),
        ToolResult::Err(e) => Outcome::Reply(e.into_response(id)),
        ToolResult::Cancelled => Outcome::Silent,
    }
}

async fn run(
    cx: &Cx,
    def: &ToolDef,
    args: &Map<String, Value>,
    params: Option<&Value>,
    token: Option<&Registration>,
) -> ToolResult {
    match def.kind {
        Kind::Echo | Kind::Numbered => match str_arg(args, "text") {
            Some(t) => ToolResult::Ok(text(t)),
            None => tool_error("invalid arguments: `text` (string) is required"),
        },
        Kind::Add => add(cx, args),
        Kind::Slow => {
            let Some(ms) = args.get("ms").and_then(Value::as_u64) else {
                return tool_error("invalid arguments: `ms` (non-negative integer) is required");
            };
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(ms)) => ToolResult::Ok(text(format!("slept {ms}"))),
                () = cancelled(token) => ToolResult::Cancelled,
            }
        }
        Kind::Hang => {
            match token {
                Some(r) => r.cancelled_or_shutdown().await,
                None => std::future::pending().await,
            }
            ToolResult::Cancelled
        }
        Kind::Fail => tool_error("it failed"),
        Kind::RpcError => ToolResult::Err(RpcError::new(INTERNAL_ERROR, "internal failure")),
        Kind::Progress => progress(cx, args, params, token).await,
        Kind::ChangeTools => {
            cx.app.change_tools();
            ToolResult::Ok(text("changed"))
        }
        Kind::Env => match str_arg(args, "name") {
            Some(n) => ToolResult::Ok(text(std::env::var(n).unwrap_or_default())),
            None => tool_error("invalid arguments: `name` (string) is required"),
        },
        Kind::Headers => {
            let h = cx
                .headers
                .as_deref()
                .map_or_else(|| json!({}), headers_json);
            ToolResult::Ok(text(h.to_string()))
        }
        Kind::Mixed => ToolResult::Ok(mixed()),
        Kind::Routed => match str_arg(args, "region") {
            Some(r) => ToolResult::Ok(text(format!("region={r}"))),
            None => tool_error("invalid arguments: `region` (string) is required"),
        },
        Kind::Stats => ToolResult::Ok(text(cx.app.stats.snapshot().to_string())),
        // Handled before `run`.
        Kind::Crash | Kind::Garbage => {
            ToolResult::Err(RpcError::new(INTERNAL_ERROR, "unreachable"))
        }
    }
}

fn add(cx: &Cx, args: &Map<String, Value>) -> ToolResult {
    let (Some(a), Some(b)) = (args.get("a"), args.get("b")) else {
        return tool_error("invalid arguments: `a` and `b` (numbers) are required");
    };
    let sum = match (a.as_i64(), b.as_i64()) {
        (Some(x), Some(y)) if x.checked_add(y).is_some() => Some(Number::from(x.saturating_add(y))),
        _ => match (a.as_f64(), b.as_f64()) {
            (Some(x), Some(y)) => Number::from_f64(x + y),
            _ => None,
        },
    };
    let Some(sum) = sum else {
        return tool_error("invalid arguments: `a` and `b` must be finite numbers");
    };
    let structured = json!({"sum": sum});
    let mut m = text(structured.to_string());
    // structuredContent/outputSchema exist from 2025-06-18 on.
    if cx.era.at_least("2025-06-18") {
        m.insert("structuredContent".into(), structured);
    }
    ToolResult::Ok(m)
}

async fn progress(
    cx: &Cx,
    args: &Map<String, Value>,
    params: Option<&Value>,
    token: Option<&Registration>,
) -> ToolResult {
    let Some(steps) = args.get("steps").and_then(Value::as_u64) else {
        return tool_error("invalid arguments: `steps` (non-negative integer) is required");
    };
    let steps = steps.min(100_000);
    let delay = args.get("delay_ms").and_then(Value::as_u64).unwrap_or(0);
    let progress_token = params
        .and_then(|p| p.get("_meta"))
        .and_then(|m| m.get("progressToken"))
        .filter(|t| t.is_string() || t.is_i64() || t.is_u64());
    for i in 1..=steps {
        if let Some(t) = progress_token {
            cx.notify(rpc::notification(
                "notifications/progress",
                json!({"progressToken": t, "progress": i, "total": steps, "message": format!("step {i} of {steps}")}),
            ));
        }
        if delay > 0 {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(delay)) => {}
                () = cancelled(token) => return ToolResult::Cancelled,
            }
        }
    }
    ToolResult::Ok(text("done"))
}

fn mixed() -> Map<String, Value> {
    let mut m = Map::with_capacity(3);
    m.insert(
        "content".into(),
        json!([
            {"type": "text", "text": "mixed content"},
            {"type": "image", "data": TINY_PNG, "mimeType": "image/png"},
            {"type": "resource", "resource": {
                "uri": crate::dispatch::HELLO_URI,
                "mimeType": "text/plain",
                "text": crate::dispatch::HELLO_TEXT
            }}
        ]),
    );
    m.insert("_meta".into(), json!({"fixture": true}));
    m.insert("x-extra".into(), Value::from(1));
    m
}

/// The string form a client mirrors into a header (streamable-http "Value Encoding").
fn header_form(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        _ => None,
    }
}

/// Modern Streamable HTTP: `Mcp-Param-*` headers must mirror the annotated arguments.
fn check_header_params(cx: &Cx, def: &ToolDef, args: &Map<String, Value>) -> Result<(), RpcError> {
    let Some(headers) = cx.headers.as_deref() else {
        return Ok(());
    };
    for (arg, suffix) in def.header_params {
        let header_name = format!("mcp-param-{}", suffix.to_ascii_lowercase());
        let Some(body) = args.get(*arg).filter(|v| !v.is_null()) else {
            continue;
        };
        let Some(raw) = headers.get(header_name.as_str()) else {
            return Err(RpcError::new(
                HEADER_MISMATCH,
                format!("Header mismatch: missing Mcp-Param-{suffix} header for argument '{arg}'"),
            ));
        };
        let decoded = raw
            .to_str()
            .ok()
            .and_then(crate::framing::decode_header_value);
        let expected = header_form(body);
        if decoded.is_none() || decoded != expected {
            return Err(RpcError::new(
                HEADER_MISMATCH,
                format!(
                    "Header mismatch: Mcp-Param-{suffix} header does not match argument '{arg}'"
                ),
            ));
        }
    }
    Ok(())
}
