//! JSON-RPC 2.0 wire handling: parsing one incoming message (request, notification or
//! response), the error codes MCP uses, and builders for responses and notifications.

use std::borrow::Cow;

use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer};
use serde_json::{json, Map, Value};

/// Invalid JSON was received.
pub const PARSE_ERROR: i64 = -32700;
/// The JSON sent is not a valid request object.
pub const INVALID_REQUEST: i64 = -32600;
/// The method does not exist or is not available.
pub const METHOD_NOT_FOUND: i64 = -32601;
/// Invalid method parameters (also: unknown tool, missing modern `_meta`).
pub const INVALID_PARAMS: i64 = -32602;
/// Internal error.
pub const INTERNAL_ERROR: i64 = -32603;
/// Legacy (2025-11-25 and earlier) "resource not found".
pub const RESOURCE_NOT_FOUND_LEGACY: i64 = -32002;
/// Implementation-defined transport error used by the legacy HTTP paths (bad session etc.).
pub const SERVER_ERROR: i64 = -32000;
/// Modern (2026-07-28): HTTP headers do not match the body, or are missing.
pub const HEADER_MISMATCH: i64 = -32020;
/// Modern (2026-07-28): a required client capability was not declared.
#[allow(dead_code)]
pub const MISSING_REQUIRED_CLIENT_CAPABILITY: i64 = -32021;
/// Modern (2026-07-28): the requested protocol version is not supported.
pub const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;

/// A JSON-RPC error object (without the envelope).
#[derive(Debug, Clone)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
    pub data: Option<Value>,
}

impl RpcError {
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            data: None,
        }
    }

    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }

    /// The full error response for request `id`.
    pub fn into_response(self, id: Value) -> Value {
        error_response(id, self.code, self.message, self.data)
    }
}

/// A request that expects a response.
#[derive(Debug)]
pub struct Request {
    pub id: Value,
    pub method: String,
    pub params: Option<Value>,
}

/// One decoded incoming message.
#[derive(Debug)]
pub enum Incoming {
    Request(Request),
    Notification {
        method: String,
        params: Option<Value>,
    },
    /// A response from the peer (we never send requests, so these are ignored).
    Response,
}

#[derive(Deserialize)]
struct Wire<'a> {
    #[serde(borrow, default)]
    jsonrpc: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "present")]
    id: Option<Value>,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    params: Option<Value>,
    #[serde(default)]
    result: Option<IgnoredAny>,
    #[serde(default)]
    error: Option<IgnoredAny>,
}

/// Distinguishes an explicit `"id": null` (Some(Null)) from a missing id (None).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// Parses one message. On failure returns the error response to send back.
pub fn parse(bytes: &[u8]) -> Result<Incoming, Value> {
    let wire: Wire<'_> = match serde_json::from_slice(bytes) {
        Ok(w) => w,
        Err(_) => {
            // Valid JSON of the wrong shape (an array = batch, a number...) is an invalid
            // request; anything else is a parse error.
            return Err(match serde_json::from_slice::<IgnoredAny>(bytes) {
                Ok(_) => {
                    let msg = if bytes.trim_ascii_start().first() == Some(&b'[') {
                        "Invalid Request: JSON-RPC batches are not supported"
                    } else {
                        "Invalid Request: not a JSON-RPC message object"
                    };
                    error_response(Value::Null, INVALID_REQUEST, msg, None)
                }
                Err(e) => {
                    error_response(Value::Null, PARSE_ERROR, format!("Parse error: {e}"), None)
                }
            });
        }
    };
    let id = wire.id;
    let bad = |id: Option<Value>, msg: &str| {
        error_response(
            id.unwrap_or(Value::Null),
            INVALID_REQUEST,
            format!("Invalid Request: {msg}"),
            None,
        )
    };
    if wire.jsonrpc.as_deref() != Some("2.0") {
        return Err(bad(id, "jsonrpc must be \"2.0\""));
    }
    match (wire.method, id) {
        (Some(method), Some(id)) => {
            let id_ok = id.is_string() || id.is_i64() || id.is_u64();
            if !id_ok {
                let shown = if id.is_null() { None } else { Some(id) };
                return Err(bad(shown, "id must be a string or an integer"));
            }
            if !matches!(wire.params, None | Some(Value::Object(_))) {
                return Err(bad(Some(id), "params must be an object"));
            }
            Ok(Incoming::Request(Request {
                id,
                method,
                params: wire.params,
            }))
        }
        (Some(method), None) => Ok(Incoming::Notification {
            method,
            params: wire.params,
        }),
        (None, id) => {
            if wire.result.is_some() || wire.error.is_some() {
                Ok(Incoming::Response)
            } else {
                Err(bad(id, "missing method"))
            }
        }
    }
}

/// A success response.
pub fn result_response(id: Value, result: Value) -> Value {
    let mut m = Map::with_capacity(3);
    m.insert("jsonrpc".into(), Value::from("2.0"));
    m.insert("id".into(), id);
    m.insert("result".into(), result);
    Value::Object(m)
}

/// An error response.
pub fn error_response(
    id: Value,
    code: i64,
    message: impl Into<String>,
    data: Option<Value>,
) -> Value {
    let mut err = Map::with_capacity(3);
    err.insert("code".into(), Value::from(code));
    err.insert("message".into(), Value::from(message.into()));
    if let Some(d) = data {
        err.insert("data".into(), d);
    }
    json!({"jsonrpc": "2.0", "id": id, "error": Value::Object(err)})
}

/// A notification message.
pub fn notification(method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "method": method, "params": params})
}

/// The error code of a response message, if it is an error response.
pub fn error_code(msg: &Value) -> Option<i64> {
    msg.get("error")?.get("code")?.as_i64()
}

/// `params` as an object reference (empty when absent).
pub fn param<'a>(params: Option<&'a Value>, key: &str) -> Option<&'a Value> {
    params?.as_object()?.get(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_messages() {
        assert!(matches!(
            parse(br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#),
            Ok(Incoming::Request(_))
        ));
        assert!(matches!(
            parse(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#),
            Ok(Incoming::Notification { .. })
        ));
        assert!(matches!(
            parse(br#"{"jsonrpc":"2.0","id":1,"result":{}}"#),
            Ok(Incoming::Response)
        ));
        let e = parse(b"this is not json").err().unwrap_or_default();
        assert_eq!(error_code(&e), Some(PARSE_ERROR));
        let e = parse(b"[1,2]").err().unwrap_or_default();
        assert_eq!(error_code(&e), Some(INVALID_REQUEST));
        let e = parse(br#"{"jsonrpc":"2.0","id":null,"method":"x"}"#)
            .err()
            .unwrap_or_default();
        assert_eq!(error_code(&e), Some(INVALID_REQUEST));
    }
}
