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
//! Bearer` otherwise). A tool the caller may not see is answered as unknown (`404`), so
//! its existence does not leak.

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

use super::handler::{ClientError, Identity, RequestContext, Scope};
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
    /// `permission_denied`, `insufficient_scope`, `not_found`, `upstream_error`,
    /// `upstream_timeout`, `payload_too_large`.
    pub kind: &'static str,
    /// What went wrong, for a person.
    pub message: String,
    /// The JSON-RPC code an MCP client would have seen, when there is one.
    pub code: Option<i64>,
    /// The `WWW-Authenticate` challenge to send (401, and 403 for token scopes).
    challenge: Option<HeaderValue>,
}

impl RestError {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
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
/// as an `unauthorized` (401) or `denied` (403) request.
async fn identify(
    state: &AppState,
    headers: &HeaderMap,
    method: &str,
    needed: PermissionLevel,
) -> Result<Identity, RestError> {
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

/// `GET /v1/mcp/servers`: every registered server (names are not secret).
async fn list_servers(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, RestError> {
    identify(&state, &headers, METHOD_SERVERS_LIST, PermissionLevel::Read).await?;
    let servers = state.gateway().list_servers().await;
    let views: Vec<ServerView<'_>> = servers.iter().map(ServerView::from).collect();
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
    let discovery = match &query.server {
        None => gateway.discover_tools().await,
        Some(name) => {
            let server = gateway
                .server_now(name)
                .ok_or_else(|| RestError::not_found(format!("Unknown server: {name}")))?;
            discover_one(gateway, &server).await
        }
    };
    let handler = state.handler();
    let tools: Vec<Value> = discovery
        .tools
        .iter()
        .filter_map(|tool| {
            let server = tool.server_name.as_deref()?;
            (handler.level(identity, server, &tool.name) >= PermissionLevel::Read)
                .then(|| tool_json(tool, server, query.format))
        })
        .collect();
    let failures: Vec<Value> = discovery.failures.iter().map(failure_json).collect();
    Ok(json!({"tools": tools, "failures": failures}))
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

fn tool_json(tool: &Tool, server: &str, format: ToolFormat) -> Value {
    match format {
        ToolFormat::Openai => tool.to_openai_function(),
        ToolFormat::Mcp => {
            let mut value = serde_json::to_value(tool).unwrap_or_else(|_| json!({}));
            if let Some(object) = value.as_object_mut() {
                object.insert("name".into(), Value::from(tool.exposed_name()));
                object.insert("server".into(), Value::from(server));
            }
            value
        }
    }
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
    let request = body
        .map_err(|rejection| RestError::from_body(&rejection))
        .and_then(|body| {
            serde_json::from_slice::<CallRequest>(&body)
                .map_err(|e| RestError::bad_request(format!("invalid request body: {e}")))
        })
        .and_then(|request| request.resolve(state.gateway()));
    let (name, arguments) = match request {
        Ok(request) => request,
        Err(error) => {
            state.metrics().record_request(FACE, method, "error");
            return Err(error);
        }
    };
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
