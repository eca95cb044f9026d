//! The JSON-RPC 2.0 envelope as MCP uses it, method names, and protocol versions.
//!
//! Owns the parsing of incoming messages into requests, notifications and responses,
//! and the construction of outgoing ones. Params and results stay `serde_json::Value`
//! so that every field a peer sends travels on unchanged; only the envelope is typed.
//! It performs no I/O.
//!
//! Two parsers, for two kinds of peer:
//! - [`Incoming::from_value`] / [`Incoming::parse_all`] read what an *upstream* server
//!   sends the library; they are lenient, as a client of servers in the wild must be.
//! - [`Incoming::parse_from_client`] reads what a *downstream* client sends the gateway,
//!   strictly: `jsonrpc` must be `"2.0"`; a request's id must be a string or an integer
//!   (`null`, booleans, floats such as `1.0` or `1e3`, objects and arrays are
//!   `-32600`); `params` must be an object or an array; one message, not a batch. Every
//!   face calls it, so they all refuse the same things with the same codes.
//!
//! Ids are kept exactly as the client wrote them. A string or an integer that fits in 64
//! bits is an ordinary `Value`. An integer that does not (or that `Value` would write
//! differently, like `-0`) travels through the gateway as an *exact id*, a one-key
//! object `{"$exact-id": "<its digits>"}` (a client cannot send an object id: it is
//! refused), which [`encode`] writes back as the digits. Every face writes the messages
//! it sends with [`encode`] (or [`encode_to_vec`]), never with `Value::to_string`.
//! (serde_json's `arbitrary_precision` would do this too, but it is a global feature that
//! changes how every number in the program, and in every dependency, is parsed.)

use serde::de::IgnoredAny;
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
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

/// Why a client's message was refused: the JSON-RPC error to answer it with.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    /// [`PARSE_ERROR`] (not JSON) or [`INVALID_REQUEST`] (JSON, but not one valid
    /// JSON-RPC message).
    pub code: i64,
    /// What is wrong, starting with `Parse error:` or `Invalid Request:`.
    pub message: String,
    /// The request's id when it could be read (so the client can match the error to its
    /// request), else `null`.
    pub id: Value,
}

impl Refusal {
    fn parse_error(error: &serde_json::Error) -> Refusal {
        Refusal {
            code: PARSE_ERROR,
            message: format!("Parse error: {error}"),
            id: Value::Null,
        }
    }

    fn invalid(message: impl std::fmt::Display) -> Refusal {
        Refusal {
            code: INVALID_REQUEST,
            message: format!("Invalid Request: {message}"),
            id: Value::Null,
        }
    }

    fn with_id(mut self, id: Value) -> Refusal {
        self.id = id;
        self
    }

    /// The error response that answers the refused message.
    pub fn to_response(&self) -> Value {
        error_response(self.id.clone(), self.code, &self.message)
    }
}

/// The envelope of a client's message as read from its text: the id is kept as the
/// client wrote it; every other member the gateway acts on is a `Value`. A member that is
/// present (even `null`) is `Some`.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(default, deserialize_with = "present")]
    jsonrpc: Option<Value>,
    #[serde(default, borrow, deserialize_with = "present_raw")]
    id: Option<&'a RawValue>,
    #[serde(default, deserialize_with = "present")]
    method: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    params: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    result: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    error: Option<Value>,
}

fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

fn present_raw<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<&'de RawValue>, D::Error> {
    <&'de RawValue>::deserialize(deserializer).map(Some)
}

/// The `requestId` of a `notifications/cancelled`, as the client wrote it.
#[derive(Deserialize)]
struct CancelledEnvelope<'a> {
    #[serde(borrow)]
    params: CancelledParams<'a>,
}

#[derive(Deserialize)]
struct CancelledParams<'a> {
    #[serde(borrow, rename = "requestId")]
    request_id: &'a RawValue,
}

/// The key of an exact id (see the module docs).
const EXACT_ID_KEY: &str = "$exact-id";

impl Incoming {
    /// Parses one message a downstream client sent, strictly (see the module docs).
    ///
    /// # Errors
    /// The [`Refusal`] to answer with: `-32700` when the text is not JSON, `-32600` when
    /// it is not one valid JSON-RPC 2.0 message as MCP allows it.
    pub fn parse_from_client(text: &[u8]) -> Result<Incoming, Refusal> {
        let first = text.iter().find(|b| !b.is_ascii_whitespace());
        if first != Some(&b'{') {
            // Not an object: a parse error if it is not JSON at all.
            return Err(match serde_json::from_slice::<IgnoredAny>(text) {
                Err(e) => Refusal::parse_error(&e),
                Ok(_) if first == Some(&b'[') => Refusal::invalid(
                    "JSON-RPC batches are not accepted (protocol 2025-06-18 and later removed them)",
                ),
                Ok(_) => Refusal::invalid("a JSON-RPC message must be an object"),
            });
        }
        let envelope: Envelope<'_> = serde_json::from_slice(text).map_err(|e| {
            if e.is_data() {
                // Valid JSON of the wrong shape (such as a member given twice).
                Refusal::invalid(e)
            } else {
                Refusal::parse_error(&e)
            }
        })?;
        let mut message = Self::from_envelope(envelope)?;
        if let Incoming::Notification { method, params } = &mut message {
            if method == NOTIFICATION_CANCELLED
                && params.get("requestId").is_some_and(Value::is_number)
            {
                // The id it names must be kept as exactly as the request's own was.
                let exact = serde_json::from_slice::<CancelledEnvelope<'_>>(text)
                    .ok()
                    .and_then(|c| client_id(c.params.request_id));
                if let (Some(exact), Some(object)) = (exact, params.as_object_mut()) {
                    object.insert("requestId".into(), exact);
                }
            }
        }
        Ok(message)
    }

    /// [`Incoming::parse_from_client`] for a message a face has already parsed into a
    /// `Value` (an integer id beyond 64 bits has lost its digits then, and is refused
    /// like a float).
    ///
    /// # Errors
    /// The [`Refusal`] to answer with (`-32600`).
    pub fn from_client_value(value: Value) -> Result<Incoming, Refusal> {
        let text = serde_json::to_vec(&value).map_err(Refusal::invalid)?;
        Self::parse_from_client(&text)
    }

    fn from_envelope(envelope: Envelope<'_>) -> Result<Incoming, Refusal> {
        let id = envelope
            .id
            .map(|raw| client_id(raw).ok_or_else(|| raw.get()));
        // The id is echoed in a refusal when it is itself valid.
        let valid_id = match &id {
            Some(Ok(id)) => id.clone(),
            _ => Value::Null,
        };
        match &envelope.jsonrpc {
            Some(Value::String(version)) if version == "2.0" => {}
            Some(other) => {
                return Err(
                    Refusal::invalid(format!("jsonrpc must be \"2.0\", not {other}"))
                        .with_id(valid_id),
                )
            }
            None => return Err(Refusal::invalid("jsonrpc \"2.0\" is required").with_id(valid_id)),
        }
        let params = match envelope.params {
            None | Some(Value::Null) => Value::Null,
            Some(params @ (Value::Object(_) | Value::Array(_))) => params,
            Some(_) => {
                return Err(
                    Refusal::invalid("params must be an object or an array").with_id(valid_id)
                )
            }
        };
        match envelope.method {
            Some(Value::String(method)) => match id {
                None => Ok(Incoming::Notification { method, params }),
                Some(Ok(id)) => Ok(Incoming::Request { id, method, params }),
                Some(Err(raw)) => Err(Refusal::invalid(format!(
                    "a request id must be a string or an integer, not {}",
                    shorten(raw)
                ))),
            },
            Some(_) => Err(Refusal::invalid("the method must be a string").with_id(valid_id)),
            None => {
                let id = match id {
                    None => return Err(Refusal::invalid("a JSON-RPC response must have an id")),
                    Some(Ok(id)) => id,
                    // An error response may carry a null id.
                    Some(Err("null")) => Value::Null,
                    Some(Err(raw)) => {
                        return Err(Refusal::invalid(format!(
                            "a response id must be a string, an integer or null, not {}",
                            shorten(raw)
                        )))
                    }
                };
                match (envelope.result, envelope.error) {
                    (Some(result), None) => Ok(Incoming::Response {
                        id,
                        outcome: Ok(result),
                    }),
                    (None, Some(error)) if error.is_object() => Ok(Incoming::Response {
                        id,
                        outcome: Err(RpcError::from_value(&error)),
                    }),
                    (None, Some(_)) => Err(Refusal::invalid("the error must be an object")),
                    (Some(_), Some(_)) => Err(Refusal::invalid(
                        "a JSON-RPC response has a result or an error, not both",
                    )),
                    (None, None) => Err(Refusal::invalid(
                        "a JSON-RPC message needs a method, or a result or an error",
                    )),
                }
            }
        }
    }
}

/// A client's id as the gateway keeps it, or `None` when it is not a string or an
/// integer (see the module docs).
fn client_id(raw: &RawValue) -> Option<Value> {
    let text = raw.get();
    match text.as_bytes().first()? {
        b'"' => serde_json::from_str::<String>(text).ok().map(Value::String),
        b'-' | b'0'..=b'9' => {
            let digits = text.strip_prefix('-').unwrap_or(text);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None; // a fraction or an exponent: not an integer
            }
            let value = text
                .parse::<i64>()
                .map(Value::from)
                .or_else(|_| text.parse::<u64>().map(Value::from))
                .ok();
            // `-0` parses, but would be written as `0`.
            let written = value.as_ref().map(Value::to_string);
            match value {
                Some(value) if written.as_deref() == Some(text) => Some(value),
                _ => {
                    let mut exact = Map::with_capacity(1);
                    exact.insert(EXACT_ID_KEY.into(), Value::from(text));
                    Some(Value::Object(exact))
                }
            }
        }
        _ => None,
    }
}

/// At most 40 characters of a client's text, for an error message.
fn shorten(text: &str) -> String {
    match text.char_indices().nth(40) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

/// The digits of an exact id (see the module docs).
fn exact_digits(id: &Value) -> Option<&str> {
    let object = id.as_object()?;
    if object.len() != 1 {
        return None;
    }
    let digits = object.get(EXACT_ID_KEY)?.as_str()?;
    let unsigned = digits.strip_prefix('-').unwrap_or(digits);
    (!unsigned.is_empty() && unsigned.bytes().all(|b| b.is_ascii_digit())).then_some(digits)
}

/// A message whose exact id is written as its digits.
struct WithExactId<'a> {
    message: &'a Map<String, Value>,
    id: &'a RawValue,
}

impl Serialize for WithExactId<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.message.len()))?;
        for (key, value) in self.message {
            if key == "id" {
                map.serialize_entry(key, self.id)?;
            } else {
                map.serialize_entry(key, value)?;
            }
        }
        map.end()
    }
}

/// The JSON text of a message the gateway sends a client, with its id exactly as the
/// client wrote it (see the module docs).
pub fn encode(message: &Value) -> String {
    let bytes = encode_to_vec(message);
    // serde_json writes UTF-8.
    String::from_utf8(bytes).unwrap_or_default()
}

/// [`encode`] as bytes (for an HTTP body).
pub fn encode_to_vec(message: &Value) -> Vec<u8> {
    let exact = match message {
        Value::Object(object) => object
            .get("id")
            .and_then(exact_digits)
            .and_then(|digits| RawValue::from_string(digits.to_string()).ok())
            .map(|id| (object, id)),
        _ => None,
    };
    let written = match exact {
        Some((object, id)) => serde_json::to_vec(&WithExactId {
            message: object,
            id: &id,
        }),
        None => serde_json::to_vec(message),
    };
    written.unwrap_or_default()
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

/// SEP-1034: in an accepted `elicitation/create` answer, the fields the answer leaves
/// out get the `default` the requested schema gives them. `request_params` are the
/// elicitation's params (with `requestedSchema`); other answers are left as they are.
pub fn fill_elicitation_defaults(request_params: &Value, result: &mut Value) {
    if result.get("action").and_then(Value::as_str) != Some("accept") {
        return;
    }
    let Some(properties) = request_params
        .pointer("/requestedSchema/properties")
        .and_then(Value::as_object)
    else {
        return;
    };
    let Some(object) = result.as_object_mut() else {
        return;
    };
    let content = object
        .entry("content")
        .or_insert_with(|| Value::Object(serde_json::Map::new()));
    let Some(content) = content.as_object_mut() else {
        return;
    };
    for (name, schema) in properties {
        if let Some(default) = schema.get("default") {
            content
                .entry(name.clone())
                .or_insert_with(|| default.clone());
        }
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

    fn refused(text: &str) -> Refusal {
        match Incoming::parse_from_client(text.as_bytes()) {
            Err(refusal) => refusal,
            Ok(message) => panic!("{text} was accepted as {message:?}"),
        }
    }

    #[test]
    fn a_client_must_speak_json_rpc_2_0_with_string_or_integer_ids() {
        for (text, code) in [
            ("{not json", PARSE_ERROR),
            (r#"{"jsonrpc":"2.0","id":1,"method":"ping"} x"#, PARSE_ERROR),
            ("42", INVALID_REQUEST),
            (
                r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#,
                INVALID_REQUEST,
            ),
            (r#"{"id":1,"method":"ping"}"#, INVALID_REQUEST),
            (
                r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#,
                INVALID_REQUEST,
            ),
            (r#"{"jsonrpc":2.0,"id":1,"method":"ping"}"#, INVALID_REQUEST),
            (
                r#"{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}"#,
                INVALID_REQUEST,
            ),
            (
                r#"{"jsonrpc":"2.0","id":[1],"method":"ping"}"#,
                INVALID_REQUEST,
            ),
            (
                r#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#,
                INVALID_REQUEST,
            ),
            (
                r#"{"jsonrpc":"2.0","id":1.0,"method":"ping"}"#,
                INVALID_REQUEST,
            ),
            (
                r#"{"jsonrpc":"2.0","id":1e3,"method":"ping"}"#,
                INVALID_REQUEST,
            ),
            (
                r#"{"jsonrpc":"2.0","id":true,"method":"ping"}"#,
                INVALID_REQUEST,
            ),
            (
                r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#,
                INVALID_REQUEST,
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}"#,
                INVALID_REQUEST,
            ),
            (r#"{"jsonrpc":"2.0","id":1,"method":7}"#, INVALID_REQUEST),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"ping","params":3}"#,
                INVALID_REQUEST,
            ),
            (r#"{"jsonrpc":"2.0","id":1}"#, INVALID_REQUEST),
            (
                r#"{"jsonrpc":"2.0","id":1,"result":{},"error":{}}"#,
                INVALID_REQUEST,
            ),
            (
                r#"{"jsonrpc":"2.0","id":true,"result":{}}"#,
                INVALID_REQUEST,
            ),
        ] {
            assert_eq!(refused(text).code, code, "{text}");
        }
        // A valid id is echoed in the refusal; an invalid one is not.
        assert_eq!(
            refused(r#"{"jsonrpc":"1.0","id":"a","method":"ping"}"#).id,
            json!("a")
        );
        assert_eq!(
            refused(r#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#).id,
            Value::Null
        );
        for (text, id) in [
            (r#"{"jsonrpc":"2.0","id":"x","method":"ping"}"#, json!("x")),
            (r#"{"jsonrpc":"2.0","id":-7,"method":"ping"}"#, json!(-7)),
            (
                r#"{"jsonrpc":"2.0","id":18446744073709551615,"method":"ping"}"#,
                json!(u64::MAX),
            ),
        ] {
            let message = Incoming::parse_from_client(text.as_bytes()).unwrap();
            assert!(
                matches!(&message, Incoming::Request { id: got, .. } if *got == id),
                "{text}"
            );
        }
        assert!(matches!(
            Incoming::parse_from_client(
                br#"{"jsonrpc":"2.0","method":"notifications/initialized","params":null}"#
            ),
            Ok(Incoming::Notification {
                params: Value::Null,
                ..
            })
        ));
        assert!(matches!(
            Incoming::parse_from_client(
                br#"{"jsonrpc":"2.0","id":null,"error":{"code":-1,"message":"m"}}"#
            ),
            Ok(Incoming::Response {
                id: Value::Null,
                outcome: Err(_)
            })
        ));
    }

    #[test]
    fn ids_beyond_64_bits_come_back_exactly() {
        for digits in [
            "123456789012345678901234567890",
            "-99999999999999999999",
            "-0",
        ] {
            let text = format!(r#"{{"jsonrpc":"2.0","id":{digits},"method":"ping"}}"#);
            let Ok(Incoming::Request { id, .. }) = Incoming::parse_from_client(text.as_bytes())
            else {
                panic!("{text} refused")
            };
            let reply = encode(&response(id.clone(), json!({})));
            assert_eq!(
                reply,
                format!(r#"{{"id":{digits},"jsonrpc":"2.0","result":{{}}}}"#)
            );
            // A cancellation names it the same way.
            let cancel = format!(
                r#"{{"jsonrpc":"2.0","method":"notifications/cancelled","params":{{"requestId":{digits}}}}}"#
            );
            let Ok(Incoming::Notification { params, .. }) =
                Incoming::parse_from_client(cancel.as_bytes())
            else {
                panic!("{cancel} refused")
            };
            assert_eq!(params["requestId"], id);
        }
        // A client cannot forge an exact id: an object id is refused.
        assert_eq!(
            refused(r#"{"jsonrpc":"2.0","id":{"$exact-id":"1"},"method":"ping"}"#).code,
            INVALID_REQUEST
        );
        // Other messages are written as they are.
        let plain = response(json!({"$exact-id": "1x"}), json!({}));
        assert_eq!(encode(&plain), plain.to_string());
    }

    #[test]
    fn ids_round_trip() {
        let r = request(7, "tools/list", None);
        assert_eq!(r, json!({"jsonrpc":"2.0","id":7,"method":"tools/list"}));
        assert_eq!(our_id(&json!(7)), Some(7));
        assert_eq!(our_id(&json!("7")), Some(7));
        assert_eq!(our_id(&json!(null)), None);
    }

    #[test]
    fn an_accepted_elicitation_gets_the_schema_defaults_it_left_out() {
        let params = serde_json::json!({"requestedSchema": {"type": "object", "properties": {
            "name": {"type": "string", "default": "John Doe"},
            "age": {"type": "integer", "default": 30},
            "email": {"type": "string"}}}});
        let mut answer = serde_json::json!({"action": "accept", "content": {"name": "Ann"}});
        fill_elicitation_defaults(&params, &mut answer);
        assert_eq!(
            answer["content"],
            serde_json::json!({"name": "Ann", "age": 30})
        );
        let mut declined = serde_json::json!({"action": "decline"});
        fill_elicitation_defaults(&params, &mut declined);
        assert_eq!(declined, serde_json::json!({"action": "decline"}));
        let mut empty = serde_json::json!({"action": "accept"});
        fill_elicitation_defaults(&params, &mut empty);
        assert_eq!(
            empty["content"],
            serde_json::json!({"name": "John Doe", "age": 30})
        );
    }
}
