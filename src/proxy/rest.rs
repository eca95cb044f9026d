//! REST for callers that are not MCP clients: `GET /v1/mcp/servers`, `GET /v1/mcp/tools`
//! (MCP or OpenAI format) and `POST /v1/mcp/tools/call`, all JSON.
//!
//! Owns the REST request and response shapes and [`RestError`], the one mapping of the
//! gateway's failures to HTTP statuses and the stable error body
//! `{"error": {"type", "message", "code"?}}`. It does not decide permissions or route
//! calls itself: tool calls go through [`McpHandler::handle`](super::handler::McpHandler)
//! exactly as MCP `tools/call` does, so permissions, argument problems (a `200` result
//! with `isError: true`) and error codes are the same on every face; listings filter
//! with the same [`McpHandler::level`](super::handler::McpHandler::level).
//!
//! With API keys configured every endpoint needs one (`401` with `WWW-Authenticate:
//! Bearer` otherwise). On a loopback bind every endpoint checks Host and Origin as `/mcp`
//! does (`403`: a DNS-rebound page must not reach it), and `POST` takes only
//! `Content-Type: application/json` (`415`; a page can send `text/plain` without a CORS
//! preflight). A tool the caller may not see is answered as unknown (`404`), so its
//! existence does not leak; with `server_names: private`, so is a server it may see
//! nothing of (`?server=`, `/v1/mcp/servers`, the `failures` of a listing).
//!
//! `?format=openai` names each function as OpenAI's rule (`^[a-zA-Z0-9_-]{1,64}$`)
//! allows: a tool's gateway name (`<server><sep><tool>`) when the rule takes it as it is;
//! otherwise that name with every other character as `_`, cut to 55 characters, then
//! `_` and 8 hex digits of the SHA-256 of the gateway name ([`openai_name`]). Such a name
//! is also accepted by `POST /v1/mcp/tools/call`, as is the gateway name. A mapped name
//! that is the name of another tool the caller sees, or the mapped name of one, is left
//! out of the listing and cannot be called, so every name stays unambiguous.

use std::borrow::Cow;
use std::collections::HashMap;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::handler::{ClientError, Identity, RequestContext, Scope};
use super::http_face::{is_json_content_type, local_request};
use super::AppState;
use crate::core::mcp::protocol::{
    self, INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, PARSE_ERROR,
};
use crate::core::mcp::{
    McpError, McpGateway, McpServer, PermissionLevel, ServerFailure, ServerInfo, ServerState, Tool,
    ToolDiscovery, Transport,
};

/// The face's name in metrics.
const FACE: &str = "rest";
/// The metrics method of `GET /v1/mcp/servers` (not an MCP method).
const METHOD_SERVERS_LIST: &str = "servers/list";

/// `/v1/mcp/servers`, `/v1/mcp/tools`, `/v1/mcp/tools/call`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/mcp/servers", get(list_servers))
        .route("/v1/mcp/tools", get(list_tools))
        .route("/v1/mcp/tools/call", post(call_tool))
}

/// A REST failure, answered as `{"error": {"type", "message", "code"?}}` with its status.
#[derive(Debug, Clone, PartialEq)]
pub struct RestError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable machine-readable type: `bad_request`, `invalid_params`, `unauthorized`,
    /// `forbidden` (Host/Origin), `permission_denied`, `insufficient_scope`, `not_found`,
    /// `unsupported_media_type`, `upstream_error`, `upstream_timeout`,
    /// `payload_too_large`.
    pub kind: &'static str,
    /// What went wrong, for a person.
    pub message: String,
    /// The JSON-RPC code an MCP client would have seen, when there is one.
    pub code: Option<i64>,
    /// The `WWW-Authenticate` challenge to send (401, and 403 for token scopes).
    challenge: Option<HeaderValue>,
}

impl RestError {
    pub(super) fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        RestError {
            status,
            kind,
            message: message.into(),
            code: None,
            challenge: None,
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// A body the service could not take (too large, unreadable).
    fn from_body(rejection: &BytesRejection) -> Self {
        let status = rejection.status();
        let kind = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "payload_too_large"
        } else {
            "bad_request"
        };
        Self::new(status, kind, rejection.body_text())
    }

    /// The error as the response body's JSON.
    pub fn to_value(&self) -> Value {
        let mut error = json!({"type": self.kind, "message": self.message});
        if let Some(code) = self.code {
            error["code"] = Value::from(code);
        }
        json!({"error": error})
    }
}

/// The gateway's own JSON-RPC codes, as [`McpError::jsonrpc_code`] assigns them.
const PERMISSION_DENIED: i64 = -32001;
const UPSTREAM_TIMEOUT: i64 = -32002;

impl RestError {
    /// The one mapping of the gateway's failures to REST, by the JSON-RPC code an MCP
    /// client would get, so that REST and MCP callers are told the same thing.
    /// `unknown`: the failure says that the tool or server asked for does not exist (or
    /// is hidden from the caller, which is answered alike).
    fn from_jsonrpc(code: i64, message: String, unknown: bool) -> Self {
        let (status, kind) = match code {
            INVALID_PARAMS if unknown => (StatusCode::NOT_FOUND, "not_found"),
            INVALID_PARAMS => (StatusCode::BAD_REQUEST, "invalid_params"),
            METHOD_NOT_FOUND => (StatusCode::NOT_FOUND, "not_found"),
            PARSE_ERROR | INVALID_REQUEST => (StatusCode::BAD_REQUEST, "bad_request"),
            PERMISSION_DENIED => (StatusCode::FORBIDDEN, "permission_denied"),
            UPSTREAM_TIMEOUT => (StatusCode::GATEWAY_TIMEOUT, "upstream_timeout"),
            // Upstream authentication (-32003), transport (-32004), protocol violations
            // (-32603) and the upstream's own error codes.
            _ => (StatusCode::BAD_GATEWAY, "upstream_error"),
        };
        RestError {
            code: Some(code),
            ..Self::new(status, kind, message)
        }
    }
}

impl From<ClientError> for RestError {
    fn from(error: ClientError) -> Self {
        // The handler's wording for an unknown or hidden tool.
        let unknown = error.message.starts_with("Unknown tool");
        Self::from_jsonrpc(error.code, error.message, unknown)
    }
}

impl From<McpError> for RestError {
    fn from(error: McpError) -> Self {
        let unknown = matches!(
            error,
            McpError::ServerNotFound { .. } | McpError::ToolNotFound { .. }
        );
        let ClientError { code, message, .. } = error.into();
        Self::from_jsonrpc(code, message, unknown)
    }
}

impl IntoResponse for RestError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.to_value())).into_response();
        if let Some(challenge) = self.challenge {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, challenge);
        }
        response
    }
}

/// The resource identifier path of the REST face (a token's audience must name it, the
/// gateway, or an audience the provider's settings add).
const RESOURCE_PATH: &str = "/v1/mcp";

/// The caller's identity, whose token scopes must allow `needed`; a refusal is counted
/// as an `unauthorized` (401) or `denied` (403) request. On a loopback bind the Host and
/// Origin must be local first, as on `/mcp`.
pub(super) async fn identify(
    state: &AppState,
    headers: &HeaderMap,
    method: &str,
    needed: PermissionLevel,
) -> Result<Identity, RestError> {
    if state.loopback() && !local_request(headers) {
        state.metrics().record_request(FACE, method, "denied");
        return Err(RestError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Forbidden: the Host or Origin is not local (DNS rebinding protection)",
        ));
    }
    let auth = state.auth();
    let identity = auth
        .identify(headers, RESOURCE_PATH)
        .await
        .map_err(|failure| {
            state.metrics().record_auth(&failure);
            state.metrics().record_request(FACE, method, "unauthorized");
            RestError {
                challenge: Some(auth.challenge(RESOURCE_PATH, &failure)),
                ..RestError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    auth.message(&failure),
                )
            }
        })?;
    state.metrics().record_identity(&identity);
    if let Some((challenge, message)) = auth.scope_shortfall(&identity, RESOURCE_PATH, needed) {
        state.metrics().record_request(FACE, method, "denied");
        return Err(RestError {
            challenge: Some(challenge),
            ..RestError::new(StatusCode::FORBIDDEN, "insufficient_scope", message)
        });
    }
    Ok(identity)
}

/// The `outcome` label of a finished request.
fn request_outcome<T>(result: &Result<T, RestError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(e) if e.status == StatusCode::FORBIDDEN => "denied",
        Err(_) => "error",
    }
}

/// One server in `/v1/mcp/servers`: its state flattened in as the library serializes it
/// (`state`, and `protocol_version` or `error`).
#[derive(Serialize)]
struct ServerView<'a> {
    name: &'a str,
    transport: Transport,
    enabled: bool,
    #[serde(flatten)]
    state: &'a ServerState,
    aliases: &'a [String],
}

impl<'a> From<&'a ServerInfo> for ServerView<'a> {
    fn from(info: &'a ServerInfo) -> Self {
        ServerView {
            name: &info.name,
            transport: info.transport,
            enabled: info.enabled,
            state: &info.state,
            aliases: &info.aliases,
        }
    }
}

/// `GET /v1/mcp/servers`: every registered server (with `server_names: private`, those
/// the caller may know of).
async fn list_servers(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, RestError> {
    let identity = identify(&state, &headers, METHOD_SERVERS_LIST, PermissionLevel::Read).await?;
    let servers = state.gateway().list_servers().await;
    let handler = state.handler();
    let views: Vec<ServerView<'_>> = servers
        .iter()
        .filter(|server| handler.may_know_server(&identity, &server.name))
        .map(ServerView::from)
        .collect();
    state
        .metrics()
        .record_request(FACE, METHOD_SERVERS_LIST, "ok");
    Ok(Json(json!({"servers": views})))
}

/// The query of `GET /v1/mcp/tools`.
#[derive(Debug, Deserialize)]
struct ToolsQuery {
    /// Only this server's tools (a name or an alias).
    server: Option<String>,
    /// `mcp` (default) or `openai`.
    #[serde(default)]
    format: ToolFormat,
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum ToolFormat {
    /// MCP tool JSON with `name` the qualified name, plus `server`.
    #[default]
    Mcp,
    /// OpenAI Chat Completions function tools.
    Openai,
}

/// `GET /v1/mcp/tools[?server=NAME][&format=openai]`: the tools the caller may see (level
/// `read` or more), and the servers whose list could not be fetched.
async fn list_tools(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<ToolsQuery>, QueryRejection>,
) -> Result<Json<Value>, RestError> {
    let method = protocol::METHOD_TOOLS_LIST;
    let identity = identify(&state, &headers, method, PermissionLevel::Read).await?;
    let result = tools_for(&state, &identity, query).await;
    state
        .metrics()
        .record_request(FACE, method, request_outcome(&result));
    result.map(Json)
}

async fn tools_for(
    state: &AppState,
    identity: &Identity,
    query: Result<Query<ToolsQuery>, QueryRejection>,
) -> Result<Value, RestError> {
    let Query(query) = query.map_err(|rejection| RestError::bad_request(rejection.body_text()))?;
    let gateway = state.gateway();
    let handler = state.handler();
    let discovery = match &query.server {
        None => gateway.discover_tools().await,
        Some(name) => {
            let server = gateway
                .server_now(name)
                .filter(|server| handler.may_know_server(identity, server.name()))
                .ok_or_else(|| RestError::not_found(format!("Unknown server: {name}")))?;
            discover_one(gateway, &server).await
        }
    };
    let visible = visible_tools(state, identity, &discovery);
    let tools: Vec<Value> = match query.format {
        ToolFormat::Mcp => visible
            .iter()
            .map(|(tool, server)| tool_json(tool, server))
            .collect(),
        ToolFormat::Openai => openai_names(&visible)
            .into_iter()
            .filter_map(|(tool, name)| Some(openai_function(tool, name?)))
            .collect(),
    };
    let failures: Vec<Value> = discovery
        .failures
        .iter()
        .filter(|failure| handler.may_know_server(identity, &failure.server_name))
        .map(failure_json)
        .collect();
    Ok(json!({"tools": tools, "failures": failures}))
}

/// The tools of a discovery the caller may see (level `read` or more, on a server it may
/// know of), with their server.
fn visible_tools<'d>(
    state: &AppState,
    identity: &Identity,
    discovery: &'d ToolDiscovery,
) -> Vec<(&'d Tool, &'d str)> {
    let handler = state.handler();
    discovery
        .tools
        .iter()
        .filter_map(|tool| {
            let server = tool.server_name.as_deref()?;
            (handler.may_know_server(identity, server)
                && handler.level(identity, server, &tool.name) >= PermissionLevel::Read)
                .then_some((tool, server))
        })
        .collect()
}

/// OpenAI's rule for function names: `^[a-zA-Z0-9_-]{1,64}$`.
fn openai_accepts(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The name OpenAI is given for a tool whose gateway name is `name` (see the module
/// docs): `name` itself when OpenAI accepts it, else a mapped name that it accepts.
pub fn openai_name(name: &str) -> Cow<'_, str> {
    if openai_accepts(name) {
        return Cow::Borrowed(name);
    }
    let mut mapped: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(55)
        .collect();
    let digest = Sha256::digest(name.as_bytes());
    mapped.push('_');
    for byte in digest.iter().take(4) {
        mapped.push_str(&format!("{byte:02x}"));
    }
    Cow::Owned(mapped)
}

/// Whether `name` has the shape of a mapped OpenAI name (`…_` and 8 hex digits).
fn looks_mapped(name: &str) -> bool {
    openai_accepts(name)
        && name.rsplit_once('_').is_some_and(|(head, hex)| {
            !head.is_empty()
                && hex.len() == 8
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
}

/// Each tool with its OpenAI name, or `None` when its mapped name is ambiguous among
/// these tools (the name of another, or the mapped name of another).
fn openai_names<'t>(tools: &[(&'t Tool, &str)]) -> Vec<(&'t Tool, Option<String>)> {
    let names: Vec<Cow<'_, str>> = tools
        .iter()
        .map(|(tool, _)| openai_name(tool.exposed_name()))
        .collect();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for name in &names {
        *counts.entry(name.as_ref()).or_default() += 1;
    }
    tools
        .iter()
        .zip(&names)
        .map(|((tool, _), name)| {
            let mapped = matches!(name, Cow::Owned(_));
            let unique = counts.get(name.as_ref()).copied() == Some(1);
            if mapped && !unique {
                tracing::warn!(tool = %tool.exposed_name(), name = %name, "a tool's OpenAI name is ambiguous: left out");
            }
            let name = (!mapped || unique).then(|| name.to_string());
            (*tool, name)
        })
        .collect()
}

/// The gateway name of the tool whose OpenAI name is `name`, among the tools the caller
/// sees whose gateway name OpenAI does not accept; `None` when there is none, or more
/// than one.
async fn from_openai_name(state: &AppState, identity: &Identity, name: &str) -> Option<String> {
    let discovery = state.gateway().discover_tools().await;
    let visible = visible_tools(state, identity, &discovery);
    let mut found = openai_names(&visible)
        .into_iter()
        .filter(|(tool, mapped)| {
            mapped.as_deref() == Some(name) && !openai_accepts(tool.exposed_name())
        })
        .map(|(tool, _)| tool.exposed_name().to_string());
    let first = found.next()?;
    found.next().is_none().then_some(first)
}

/// One server's tools as [`McpGateway::discover_tools`] gives them (qualified names set),
/// without asking the other servers.
async fn discover_one(gateway: &McpGateway, server: &McpServer) -> ToolDiscovery {
    let name = server.name();
    match server.list_tools().await {
        Ok(snapshot) => ToolDiscovery {
            tools: snapshot
                .tools()
                .iter()
                .map(|tool| {
                    let mut tool = tool.clone();
                    tool.qualified_name = Some(gateway.qualified_name(name, &tool.name));
                    tool.server_name = Some(name.to_string());
                    tool
                })
                .collect(),
            failures: Vec::new(),
        },
        Err(error) => ToolDiscovery {
            tools: Vec::new(),
            failures: vec![ServerFailure {
                server_name: name.to_string(),
                error,
            }],
        },
    }
}

/// A tool in MCP format: `name` its gateway name, plus `server`.
fn tool_json(tool: &Tool, server: &str) -> Value {
    let mut value = serde_json::to_value(tool).unwrap_or_else(|_| json!({}));
    if let Some(object) = value.as_object_mut() {
        object.insert("name".into(), Value::from(tool.exposed_name()));
        object.insert("server".into(), Value::from(server));
    }
    value
}

/// A tool as an OpenAI Chat Completions function named `name`.
fn openai_function(tool: &Tool, name: String) -> Value {
    let mut function = tool.to_openai_function();
    function["function"]["name"] = Value::from(name);
    function
}

fn failure_json(failure: &ServerFailure) -> Value {
    json!({"server": failure.server_name, "error": failure.error.to_string()})
}

/// The body of `POST /v1/mcp/tools/call`: `name` (`<server><separator><tool>`), or
/// `server` and `tool`; and `arguments` (an object; absent or null means `{}`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CallRequest {
    name: Option<String>,
    server: Option<String>,
    tool: Option<String>,
    arguments: Option<Value>,
}

impl CallRequest {
    /// The qualified tool name and the arguments.
    fn resolve(self, gateway: &McpGateway) -> Result<(String, Value), RestError> {
        let name = match (self.name, self.server, self.tool) {
            (Some(name), None, None) => name,
            (None, Some(server), Some(tool)) => gateway.qualified_name(&server, &tool),
            _ => {
                return Err(RestError::bad_request(format!(
                    "give either 'name' (\"<server>{sep}<tool>\") or both 'server' and 'tool'",
                    sep = gateway.separator()
                )))
            }
        };
        let arguments = match self.arguments {
            None | Some(Value::Null) => Value::Object(Map::new()),
            Some(arguments @ Value::Object(_)) => arguments,
            Some(_) => return Err(RestError::bad_request("'arguments' must be a JSON object")),
        };
        Ok((name, arguments))
    }
}

/// `POST /v1/mcp/tools/call`: the MCP `CallToolResult` (also when `isError` is true), or
/// an error.
async fn call_tool(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, RestError> {
    let method = protocol::METHOD_TOOLS_CALL;
    let identity = identify(&state, &headers, method, PermissionLevel::Execute).await?;
    if !is_json_content_type(&headers) {
        state.metrics().record_request(FACE, method, "error");
        return Err(RestError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Unsupported Media Type: send Content-Type: application/json",
        ));
    }
    let request = body
        .map_err(|rejection| RestError::from_body(&rejection))
        .and_then(|body| {
            serde_json::from_slice::<CallRequest>(&body)
                .map_err(|e| RestError::bad_request(format!("invalid request body: {e}")))
        })
        .and_then(|request| request.resolve(state.gateway()));
    let (mut name, arguments) = match request {
        Ok(request) => request,
        Err(error) => {
            state.metrics().record_request(FACE, method, "error");
            return Err(error);
        }
    };
    // The mapped OpenAI name of a tool whose gateway name OpenAI does not accept. A
    // mapped name that is also a visible tool's own name was left out of the listing and
    // is not found here, so that tool is called.
    if looks_mapped(&name) {
        if let Some(gateway_name) = from_openai_name(&state, &identity, &name).await {
            name = gateway_name;
        }
    }
    let started = Instant::now();
    let ctx = RequestContext {
        identity: &identity,
        scope: &Scope::All,
        progress: None,
    };
    let result = state
        .handler()
        .handle(ctx, method, {
            let mut params = serde_json::Map::with_capacity(2);
            params.insert("name".into(), Value::from(name.as_str()));
            params.insert("arguments".into(), arguments);
            Value::Object(params)
        })
        .await
        .map_err(RestError::from);
    let took = started.elapsed();
    let (server, tool) = audit_names(state.gateway(), &name);
    state
        .metrics()
        .audit(&identity, &server, tool, tool_outcome(&result), took);
    state
        .metrics()
        .record_request(FACE, method, request_outcome(&result));
    result.map(Json)
}

/// The server (its own name, not an alias) and tool a qualified name asks for; `-` for a
/// name that does not split.
fn audit_names<'n>(gateway: &McpGateway, name: &'n str) -> (String, &'n str) {
    match gateway.split_qualified_name(name) {
        Some((server, tool)) => {
            let server = gateway
                .server_now(server)
                .map_or_else(|| server.to_string(), |s| s.name().to_string());
            (server, tool)
        }
        None => ("-".to_string(), name),
    }
}

/// The `outcome` of a tool call, as [`Metrics::record_tool_call`](super::ops::Metrics)
/// names them.
fn tool_outcome(result: &Result<Value, RestError>) -> &'static str {
    match result {
        Ok(value) if value.get("isError").and_then(Value::as_bool) == Some(true) => "tool_error",
        Ok(_) => "ok",
        Err(e) => match e.status {
            StatusCode::NOT_FOUND => "unknown",
            StatusCode::FORBIDDEN => "denied",
            StatusCode::GATEWAY_TIMEOUT => "timeout",
            _ => "error",
        },
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;
    use crate::settings::Settings;

    fn client_error(code: i64, message: &str) -> ClientError {
        ClientError {
            code,
            message: message.into(),
            data: None,
        }
    }

    #[test]
    fn one_mapping_from_jsonrpc_codes_to_statuses() {
        for (code, message, status, kind) in [
            (-32602, "Unknown tool: fs__nope", 404, "not_found"),
            (-32602, "tools/call needs a 'name'", 400, "invalid_params"),
            (-32601, "Method not found: x", 404, "not_found"),
            (-32600, "Invalid request", 400, "bad_request"),
            (
                -32001,
                "Permission denied: calling fs__rm needs the execute level",
                403,
                "permission_denied",
            ),
            (
                -32002,
                "MCP server 'fs' did not answer 'tools/call' within 10 ms",
                504,
                "upstream_timeout",
            ),
            (
                -32003,
                "authentication with MCP server 'fs' failed: 401",
                502,
                "upstream_error",
            ),
            (
                -32004,
                "transport to MCP server 'fs' failed: refused",
                502,
                "upstream_error",
            ),
            (-32603, "internal failure", 502, "upstream_error"),
            (-32000, "the upstream's own code", 502, "upstream_error"),
        ] {
            let error = RestError::from(client_error(code, message));
            assert_eq!(
                (error.status.as_u16(), error.kind),
                (status, kind),
                "{code} {message}"
            );
            assert_eq!(
                error.to_value(),
                json!({"error": {"type": kind, "message": message, "code": code}})
            );
        }
        let denied = McpError::PermissionDenied {
            server_name: "x".into(),
            tool_name: "y".into(),
            operation: "call",
            required: PermissionLevel::Execute,
        };
        assert_eq!(denied.jsonrpc_code(), PERMISSION_DENIED);
        assert_eq!(RestError::from(denied).status, StatusCode::FORBIDDEN);
        let missing = RestError::from(McpError::ServerNotFound {
            server_name: "x".into(),
        });
        assert_eq!(missing.status, StatusCode::NOT_FOUND);
        let timeout = RestError::from(McpError::Timeout {
            server_name: "x".into(),
            method: "tools/call".into(),
            timeout_ms: 5,
        });
        assert_eq!(timeout.status, StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(timeout.code, Some(UPSTREAM_TIMEOUT));
        let upstream_not_found = RestError::from(client_error(-32602, "file not found"));
        assert_eq!(upstream_not_found.status, StatusCode::BAD_REQUEST);
    }

    async fn state_of(yaml: &str) -> AppState {
        let settings = Settings::parse(yaml, &|_| None).unwrap();
        let gateway = settings.build_gateway().await.unwrap();
        AppState::new(gateway, &settings)
    }

    /// Two servers that are never contacted by these tests; one key.
    async fn offline_state() -> AppState {
        state_of(
            "servers:\n\
             - {name: fs, url: 'http://127.0.0.1:9/mcp?token=hidden'}\n\
             - {name: db, url: 'http://127.0.0.1:9/mcp', enabled: false}\n\
             aliases: {files: fs}\n\
             api_keys: [{name: a, key: sk-a}]\n",
        )
        .await
    }

    async fn send(state: &AppState, request: Request<Body>) -> (StatusCode, HeaderMap, Value) {
        let response = super::super::app(state.clone())
            .oneshot(request)
            .await
            .unwrap();
        let (parts, body) = response.into_parts();
        let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        (
            parts.status,
            parts.headers,
            serde_json::from_slice(&body).unwrap(),
        )
    }

    fn get(path: &str, key: Option<&str>) -> Request<Body> {
        let mut request = Request::get(path);
        if let Some(key) = key {
            request = request.header("authorization", format!("Bearer {key}"));
        }
        request.body(Body::empty()).unwrap()
    }

    fn post(path: &str, key: &str, body: &str) -> Request<Body> {
        Request::post(path)
            .header("x-api-key", key)
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap()
    }

    #[test]
    fn openai_names_follow_openais_rule_and_stay_unambiguous() {
        let valid = |name: &str| {
            (1..=64).contains(&name.len())
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        assert_eq!(openai_name("fs__read_file"), "fs__read_file");
        let long = "x".repeat(10_000);
        for odd in [
            "fs__x/y",
            "fs__a\0b",
            "fs__new\nline",
            "fs__dotted.name",
            "fs__é",
            long.as_str(),
        ] {
            let mapped = openai_name(odd);
            assert!(valid(&mapped), "{odd:?} → {mapped}");
            assert_ne!(mapped, odd);
        }
        assert!(openai_name("fs__x/y").starts_with("fs__x_y_"));
        assert_ne!(openai_name("fs__x/y"), openai_name("fs__x.y"));

        // A mapped name that is another tool's name is left out; the other keeps it.
        let tool = |name: &str| {
            let mut tool: Tool = serde_json::from_value(json!({"name": name})).unwrap();
            tool.qualified_name = Some(name.to_string());
            tool
        };
        let odd = tool("fs__x/y");
        let squatter = tool(&openai_name("fs__x/y"));
        let plain = tool("fs__plain");
        let listed = openai_names(&[(&odd, "fs"), (&squatter, "fs"), (&plain, "fs")]);
        let names: Vec<Option<&str>> = listed.iter().map(|(_, n)| n.as_deref()).collect();
        assert_eq!(
            names,
            [None, Some(squatter.name.as_str()), Some("fs__plain")]
        );
        let alone = openai_names(&[(&odd, "fs")]);
        assert_eq!(alone[0].1.as_deref(), Some(openai_name("fs__x/y").as_ref()));
    }

    #[tokio::test]
    async fn every_endpoint_needs_a_valid_key() {
        let state = offline_state().await;
        for request in [
            get("/v1/mcp/servers", None),
            get("/v1/mcp/tools", None),
            Request::post("/v1/mcp/tools/call")
                .body(Body::from(r#"{"name":"fs__x"}"#))
                .unwrap(),
        ] {
            let (status, headers, body) = send(&state, request).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED);
            assert_eq!(headers[header::WWW_AUTHENTICATE], "Bearer");
            assert_eq!(body["error"]["type"], "unauthorized");
        }
        let (status, headers, body) = send(&state, get("/v1/mcp/servers", Some("sk-wrong"))).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(headers[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .starts_with("Bearer"));
        assert_eq!(body["error"]["message"], "the API key is not valid");
    }

    #[tokio::test]
    async fn servers_are_listed_with_state_and_aliases_but_no_url() {
        let state = offline_state().await;
        let (status, _, body) = send(&state, get("/v1/mcp/servers", Some("sk-a"))).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            body,
            json!({"servers": [
                {"name": "db", "transport": "http", "enabled": false, "state": "disabled", "aliases": []},
                {"name": "fs", "transport": "http", "enabled": true, "state": "idle", "aliases": ["files"]},
            ]})
        );
    }

    #[tokio::test]
    async fn malformed_calls_are_400_and_unknown_tools_404_without_contacting_anyone() {
        let state = offline_state().await;
        for body in [
            "not json",
            r#"{"name": "fs__x", "server": "fs", "tool": "x"}"#,
            r#"{"server": "fs"}"#,
            r#"{"name": "fs__x", "arguments": [1]}"#,
            r#"{"name": "fs__x", "args": {}}"#,
        ] {
            let (status, _, reply) = send(&state, post("/v1/mcp/tools/call", "sk-a", body)).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {reply}");
            assert_eq!(reply["error"]["type"], "bad_request");
        }
        for body in [
            r#"{"name": "nope__x"}"#,
            r#"{"name": "no_separator"}"#,
            r#"{"server": "db", "tool": "x"}"#,
        ] {
            let (status, _, reply) = send(&state, post("/v1/mcp/tools/call", "sk-a", body)).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{body}: {reply}");
            assert_eq!(reply["error"]["type"], "not_found");
            assert_eq!(reply["error"]["code"], -32602);
        }
        let (status, _, reply) = send(&state, get("/v1/mcp/tools?server=nope", Some("sk-a"))).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{reply}");
        let (status, _, reply) = send(&state, get("/v1/mcp/tools?format=xml", Some("sk-a"))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
        assert_eq!(reply["error"]["type"], "bad_request");
    }

    #[tokio::test]
    async fn a_failed_server_is_reported_as_data() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let state = state_of(&format!(
            "servers: [{{name: dead, url: 'http://127.0.0.1:{port}/mcp', timeout_ms: 2000}}]\n"
        ))
        .await;
        let (status, _, body) = send(&state, get("/v1/mcp/tools", None)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["tools"], json!([]));
        assert_eq!(body["failures"][0]["server"], "dead");
        assert!(body["failures"][0]["error"].as_str().is_some());
        let (_, _, body) = send(&state, get("/v1/mcp/servers", None)).await;
        assert_eq!(body["servers"][0]["state"], "failed");
        assert!(body["servers"][0]["error"].as_str().is_some(), "{body}");
    }
}
