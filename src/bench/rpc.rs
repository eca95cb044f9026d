//! The JSON-RPC text the load generator sends and the little it reads back.
//!
//! Owns the request bodies (rendered once per run as a prefix and a suffix around the
//! id, so a request costs one `format!`), the `initialize` handshake messages, and the
//! classification of a received message: our response (success, JSON-RPC error, tool
//! error), or something else to skip (a notification, a request from the server, the
//! response to another id).
//!
//! Must not: validate results against MCP schemas or keep them. A benchmark reads only
//! what tells success from failure (`error`, `result.isError`), and skips the rest of
//! the response unparsed ([`serde::de::IgnoredAny`]).

use std::fmt::{self, Write};

use serde::Deserialize;
use serde_json::{json, Map, Value};

/// The newest session-era revision; what `initialize` asks for.
pub const SESSION_VERSION: &str = "2025-11-25";
/// The stateless revision.
pub const STATELESS_VERSION: &str = "2026-07-28";

/// Which protocol era the client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Era {
    /// `initialize`, `notifications/initialized`, then requests in that session
    /// (revisions 2024-11-05 … 2025-11-25).
    Sessions,
    /// No set-up; every request carries its protocol version in `_meta` (2026-07-28).
    Stateless,
}

impl fmt::Display for Era {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Era::Sessions => "sessions",
            Era::Stateless => "stateless",
        })
    }
}

/// What each request of the loop does, rendered once.
#[derive(Debug, Clone)]
pub struct Workload {
    /// `tools/call` or `tools/list`.
    pub method: &'static str,
    /// The tool called, for the `Mcp-Name` header of stateless HTTP.
    pub tool: Option<String>,
    /// The body up to the id: `{"jsonrpc":"2.0","method":"…","params":…,"id":`.
    prefix: String,
}

impl Workload {
    /// `tools/call` of `tool` with `arguments` (a JSON object), or `tools/list` when
    /// `tool` is `None`, in `era`.
    pub fn new(tool: Option<&str>, arguments: &Value, era: Era) -> Workload {
        let (method, mut params) = match tool {
            Some(tool) => ("tools/call", json!({"name": tool, "arguments": arguments})),
            None => ("tools/list", json!({})),
        };
        if era == Era::Stateless {
            params["_meta"] = stateless_meta();
        }
        let prefix = format!(r#"{{"jsonrpc":"2.0","method":"{method}","params":{params},"id":"#);
        Workload {
            method,
            tool: tool.map(str::to_string),
            prefix,
        }
    }

    /// The request with this id.
    pub fn body(&self, id: u64) -> String {
        let mut body = String::with_capacity(self.prefix.len() + 24);
        body.push_str(&self.prefix);
        let _ = write!(body, "{id}}}");
        body
    }
}

/// `_meta` of every stateless request.
pub fn stateless_meta() -> Value {
    let mut meta = Map::new();
    meta.insert(
        "io.modelcontextprotocol/protocolVersion".into(),
        Value::from(STATELESS_VERSION),
    );
    meta.insert(
        "io.modelcontextprotocol/clientCapabilities".into(),
        json!({}),
    );
    Value::Object(meta)
}

/// The `initialize` request (id 0).
pub fn initialize(id: u64) -> String {
    json!({
        "jsonrpc": "2.0",
        "id": id,
        "method": "initialize",
        "params": {
            "protocolVersion": SESSION_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "litellm-mcp-bench", "version": env!("CARGO_PKG_VERSION")},
        },
    })
    .to_string()
}

/// `notifications/initialized`.
pub const INITIALIZED: &str = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;

/// Why a request did not succeed, as the report groups it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ErrorKind {
    /// The connection (TCP, WebSocket handshake, process spawn) could not be made.
    Connect,
    /// No answer within `--timeout`.
    Timeout,
    /// An HTTP status other than 200 (or 202 for a notification).
    HttpStatus(u16),
    /// A JSON-RPC error response, by code.
    JsonRpc(i64),
    /// A `tools/call` result with `isError: true`.
    ToolError,
    /// A body that is not what MCP promises (not JSON, no response in the stream, …).
    Protocol,
    /// The connection or process closed, or a read or write failed.
    Closed,
    /// The session could not be set up (again); the session stopped.
    Setup,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::Connect => f.write_str("connect"),
            ErrorKind::Timeout => f.write_str("timeout"),
            ErrorKind::HttpStatus(status) => write!(f, "http_{status}"),
            ErrorKind::JsonRpc(code) => write!(f, "jsonrpc_{code}"),
            ErrorKind::ToolError => f.write_str("tool_error"),
            ErrorKind::Protocol => f.write_str("protocol"),
            ErrorKind::Closed => f.write_str("closed"),
            ErrorKind::Setup => f.write_str("setup"),
        }
    }
}

/// A request that failed: its kind, a description of the first occurrence, and
/// whether the connection is unusable afterwards (the session then sets up anew).
#[derive(Debug, Clone)]
pub struct Failure {
    /// How the report groups it.
    pub kind: ErrorKind,
    /// What happened, for the report's example of the kind.
    pub detail: String,
    /// The session must be set up again before its next request.
    pub fatal: bool,
}

impl Failure {
    /// A failure after which the connection is still usable.
    pub fn new(kind: ErrorKind, detail: impl Into<String>) -> Failure {
        Failure {
            kind,
            detail: detail.into(),
            fatal: false,
        }
    }

    /// A failure that ends the connection.
    pub fn fatal(kind: ErrorKind, detail: impl Into<String>) -> Failure {
        Failure {
            kind,
            detail: detail.into(),
            fatal: true,
        }
    }
}

/// What a received message is to the request that waits for `id`.
#[derive(Debug)]
pub enum Reading {
    /// The response to that request: success, or why not.
    Answer(Result<(), Failure>),
    /// Something else (a notification, a server request, another id): keep reading.
    Other,
}

/// The fields a benchmark looks at; everything else is skipped unparsed.
#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    id: Option<Value>,
    #[serde(default)]
    method: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    error: Option<ErrorObject>,
    #[serde(default)]
    result: Option<ResultHead>,
}

#[derive(Deserialize)]
struct ErrorObject {
    #[serde(default)]
    code: i64,
    #[serde(default)]
    message: String,
}

#[derive(Deserialize)]
struct ResultHead {
    #[serde(default, rename = "isError")]
    is_error: Option<bool>,
}

/// Classifies one JSON-RPC message received while waiting for the response to `id`.
pub fn read(text: &[u8], id: u64) -> Reading {
    let envelope: Envelope = match serde_json::from_slice(text) {
        Ok(envelope) => envelope,
        Err(e) => {
            return Reading::Answer(Err(Failure::new(
                ErrorKind::Protocol,
                format!("not a JSON-RPC message: {e}"),
            )))
        }
    };
    if envelope.method.is_some() || envelope.id.as_ref().and_then(Value::as_u64) != Some(id) {
        return Reading::Other;
    }
    if let Some(error) = envelope.error {
        return Reading::Answer(Err(Failure::new(
            ErrorKind::JsonRpc(error.code),
            error.message,
        )));
    }
    match envelope.result {
        Some(ResultHead {
            is_error: Some(true),
        }) => Reading::Answer(Err(Failure::new(
            ErrorKind::ToolError,
            "the tool answered isError: true",
        ))),
        Some(_) => Reading::Answer(Ok(())),
        None => Reading::Answer(Err(Failure::new(
            ErrorKind::Protocol,
            "a response with neither result nor error",
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(text: &str, id: u64) -> Option<Result<(), ErrorKind>> {
        match read(text.as_bytes(), id) {
            Reading::Answer(outcome) => Some(outcome.map_err(|f| f.kind)),
            Reading::Other => None,
        }
    }

    #[test]
    fn bodies_are_json_rpc_requests() {
        let workload = Workload::new(Some("echo"), &json!({"text": "hi"}), Era::Stateless);
        let body: Value = serde_json::from_str(&workload.body(42)).unwrap_or_default();
        assert_eq!(body["id"], 42);
        assert_eq!(body["method"], "tools/call");
        assert_eq!(body["params"]["arguments"]["text"], "hi");
        assert_eq!(
            body["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"],
            STATELESS_VERSION
        );
        let list = Workload::new(None, &Value::Null, Era::Sessions);
        let body: Value = serde_json::from_str(&list.body(7)).unwrap_or_default();
        assert_eq!(body["method"], "tools/list");
        assert_eq!(body["params"], json!({}));
    }

    #[test]
    fn responses_are_classified() {
        assert_eq!(
            answer(r#"{"jsonrpc":"2.0","id":3,"result":{"content":[]}}"#, 3),
            Some(Ok(()))
        );
        assert_eq!(
            answer(r#"{"jsonrpc":"2.0","id":3,"result":{"isError":true}}"#, 3),
            Some(Err(ErrorKind::ToolError))
        );
        assert_eq!(
            answer(
                r#"{"jsonrpc":"2.0","id":3,"error":{"code":-32602,"message":"no"}}"#,
                3
            ),
            Some(Err(ErrorKind::JsonRpc(-32602)))
        );
        assert_eq!(answer(r#"{"jsonrpc":"2.0","id":4,"result":{}}"#, 3), None);
        assert_eq!(
            answer(r#"{"jsonrpc":"2.0","method":"notifications/message"}"#, 3),
            None
        );
        assert_eq!(
            answer(r#"{"jsonrpc":"2.0","id":3,"method":"ping"}"#, 3),
            None
        );
        assert_eq!(
            answer("this is not json", 3),
            Some(Err(ErrorKind::Protocol))
        );
    }
}
