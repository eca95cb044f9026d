//! The JSON-RPC 2.0 envelope as MCP uses it, method names, and protocol versions.
//!
//! Owns the parsing of incoming messages into requests, notifications and responses,
//! and the construction of outgoing ones. Params and results stay `serde_json::Value`
//! so that every field a peer sends travels on unchanged; only the envelope is typed.
//! It performs no I/O.

use serde_json::{json, Map, Value};

/// `initialize`: the first request of a session (eras up to 2025-11-25).
pub const METHOD_INITIALIZE: &str = "initialize";
/// Sent by the client after a successful `initialize`.
pub const NOTIFICATION_INITIALIZED: &str = "notifications/initialized";
/// Discovery request of the stateless 2026-07-28 revision.
pub const METHOD_DISCOVER: &str = "server/discover";
/// Liveness check, either direction.
pub const METHOD_PING: &str = "ping";
/// Lists tools (paginated).
pub const METHOD_TOOLS_LIST: &str = "tools/list";
/// Calls a tool.
pub const METHOD_TOOLS_CALL: &str = "tools/call";
/// Cancels a request in flight.
pub const NOTIFICATION_CANCELLED: &str = "notifications/cancelled";
/// Progress of a request that carried a progress token.
pub const NOTIFICATION_PROGRESS: &str = "notifications/progress";
/// The server's tool list changed.
pub const NOTIFICATION_TOOLS_LIST_CHANGED: &str = "notifications/tools/list_changed";

/// JSON-RPC: the body is not JSON.
pub const PARSE_ERROR: i64 = -32700;
/// JSON-RPC: not a valid request object.
pub const INVALID_REQUEST: i64 = -32600;
/// JSON-RPC: the method does not exist.
pub const METHOD_NOT_FOUND: i64 = -32601;
/// JSON-RPC: invalid method parameters.
pub const INVALID_PARAMS: i64 = -32602;
/// JSON-RPC: internal error.
pub const INTERNAL_ERROR: i64 = -32603;

/// The protocol revisions this library speaks, newest first.
pub const SUPPORTED_VERSIONS: &[&str] = &[
    STATELESS_VERSION,
    "2025-11-25",
    "2025-06-18",
    "2025-03-26",
    "2024-11-05",
];

/// The newest revision that uses `initialize` and sessions.
pub const LATEST_SESSION_VERSION: &str = "2025-11-25";

/// The stateless revision: no `initialize`, `server/discover`, per-request `_meta`.
pub const STATELESS_VERSION: &str = "2026-07-28";

/// Whether `version` is one of the `initialize`-era revisions we accept.
pub fn is_supported_session_version(version: &str) -> bool {
    SUPPORTED_VERSIONS[1..].contains(&version)
}

/// A JSON-RPC error object.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    /// The error code.
    pub code: i64,
    /// The message.
    pub message: String,
    /// Optional data.
    pub data: Option<Value>,
}

impl RpcError {
    fn from_value(value: &Value) -> RpcError {
        RpcError {
            code: value
                .get("code")
                .and_then(Value::as_i64)
                .unwrap_or(INTERNAL_ERROR),
            message: value
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("error without a message")
                .to_string(),
            data: value.get("data").cloned(),
        }
    }
}

/// One message received from a peer.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// A request the peer wants us to answer.
    Request {
        /// Its id, as sent.
        id: Value,
        /// The method.
        method: String,
        /// The params, `Null` when absent.
        params: Value,
    },
    /// A notification.
    Notification {
        /// The method.
        method: String,
        /// The params, `Null` when absent.
        params: Value,
    },
    /// The answer to one of our requests.
    Response {
        /// The id of our request, as the peer echoed it.
        id: Value,
        /// The result, or the error.
        outcome: Result<Value, RpcError>,
    },
}

impl Incoming {
    /// Classifies a JSON value as a JSON-RPC message.
    ///
    /// # Errors
    /// A description of what is wrong when the value is not a JSON-RPC message.
    pub fn from_value(value: Value) -> Result<Incoming, String> {
        let Value::Object(mut object) = value else {
            return Err("a JSON-RPC message must be an object".to_string());
        };
        let id = object.remove("id");
        let params = object.remove("params").unwrap_or(Value::Null);
        match object.remove("method") {
            Some(Value::String(method)) => Ok(match id {
                Some(id) if !id.is_null() => Incoming::Request { id, method, params },
                _ => Incoming::Notification { method, params },
            }),
            Some(_) => Err("the method of a JSON-RPC message must be a string".to_string()),
            None => {
                let id = id.ok_or("a JSON-RPC response must have an id")?;
                if let Some(result) = object.remove("result") {
                    Ok(Incoming::Response {
                        id,
                        outcome: Ok(result),
                    })
                } else if let Some(error) = object.get("error") {
                    Ok(Incoming::Response {
                        id,
                        outcome: Err(RpcError::from_value(error)),
                    })
                } else {
                    Err("a JSON-RPC response needs a result or an error".to_string())
                }
            }
        }
    }

    /// Parses one JSON text that holds a message or a batch of messages.
    ///
    /// # Errors
    /// A description when the text is not JSON or holds something else.
    pub fn parse_all(text: &[u8]) -> Result<Vec<Incoming>, String> {
        let value: Value =
            serde_json::from_slice(text).map_err(|e| format!("invalid JSON: {e}"))?;
        match value {
            Value::Array(items) => items.into_iter().map(Incoming::from_value).collect(),
            other => Incoming::from_value(other).map(|m| vec![m]),
        }
    }
}

// The builders below move their values into place: `json!` would serialize an
// interpolated `Value` into a fresh copy, which for a large result (a page of tools)
// costs as much as sending it.

/// A request to send: `{"jsonrpc":"2.0","id":…,"method":…,"params":…}`.
pub fn request(id: u64, method: &str, params: Option<Value>) -> Value {
    request_with_id(Value::from(id), method, params)
}

/// A request to send under an id of any JSON type.
pub fn request_with_id(id: Value, method: &str, params: Option<Value>) -> Value {
    let mut object = Map::with_capacity(4);
    object.insert("jsonrpc".into(), Value::from("2.0"));
    object.insert("id".into(), id);
    object.insert("method".into(), Value::from(method));
    if let Some(params) = params {
        object.insert("params".into(), params);
    }
    Value::Object(object)
}

/// A notification to send.
pub fn notification(method: &str, params: Option<Value>) -> Value {
    let mut object = Map::with_capacity(3);
    object.insert("jsonrpc".into(), Value::from("2.0"));
    object.insert("method".into(), Value::from(method));
    if let Some(params) = params {
        object.insert("params".into(), params);
    }
    Value::Object(object)
}

/// A successful response to a peer's request.
pub fn response(id: Value, result: Value) -> Value {
    reply(id, "result", result)
}

/// An error response whose error object is already built.
pub fn error_reply(id: Value, error: Value) -> Value {
    reply(id, "error", error)
}

fn reply(id: Value, field: &str, value: Value) -> Value {
    let mut object = Map::with_capacity(3);
    object.insert("jsonrpc".into(), Value::from("2.0"));
    object.insert("id".into(), id);
    object.insert(field.into(), value);
    Value::Object(object)
}

/// An error response to a peer's request.
pub fn error_response(id: Value, code: i64, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
}

/// The id we sent, when a peer echoes it back (as a number or, leniently, a numeric
/// string).
pub fn our_id(id: &Value) -> Option<u64> {
    match id {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_every_kind_of_message() {
        let msgs = Incoming::parse_all(
            br#"[{"jsonrpc":"2.0","id":1,"result":{"x":1}},
                 {"jsonrpc":"2.0","id":"a","method":"ping"},
                 {"jsonrpc":"2.0","method":"notifications/progress","params":{"progress":1}},
                 {"jsonrpc":"2.0","id":2,"error":{"code":-32601,"message":"nope"}}]"#,
        )
        .unwrap();
        assert_eq!(
            msgs[0],
            Incoming::Response {
                id: json!(1),
                outcome: Ok(json!({"x":1}))
            }
        );
        assert!(matches!(&msgs[1], Incoming::Request { method, .. } if method == "ping"));
        assert!(
            matches!(&msgs[2], Incoming::Notification { params, .. } if params["progress"] == 1)
        );
        assert!(
            matches!(&msgs[3], Incoming::Response { outcome: Err(e), .. } if e.code == -32601 && e.message == "nope")
        );
    }

    #[test]
    fn rejects_what_is_not_json_rpc() {
        assert!(Incoming::parse_all(b"this is not json").is_err());
        assert!(Incoming::parse_all(b"42").is_err());
        assert!(Incoming::parse_all(br#"{"id":1}"#).is_err());
        assert!(Incoming::parse_all(br#"{"method":7}"#).is_err());
    }

    #[test]
    fn ids_round_trip() {
        let r = request(7, "tools/list", None);
        assert_eq!(r, json!({"jsonrpc":"2.0","id":7,"method":"tools/list"}));
        assert_eq!(our_id(&json!(7)), Some(7));
        assert_eq!(our_id(&json!("7")), Some(7));
        assert_eq!(our_id(&json!(null)), None);
    }
}
