//! The MCP streamable HTTP face: `/mcp` (every server, aggregated names) and
//! `/mcp/{server}` (one server, its own names), serving both protocol eras on one
//! endpoint.
//!
//! Owns the HTTP rules of the transport: Host/Origin checks against DNS rebinding on
//! loopback binds (`local_request`, shared by every HTTP face: `Origin: null`, a
//! repeated Host or Origin, or one with a byte that is not printable ASCII is refused),
//! API-key identity (401 with a JSON-RPC error body), the request's media type
//! (`is_json_content_type`: `application/json` with optional parameters, else 415),
//! content negotiation (JSON, or an SSE stream that carries a call's progress before its
//! response), sessions made by `initialize` (`Mcp-Session-Id`, 404 for an unknown or
//! foreign session, `MCP-Protocol-Version` checked, the GET stream for list changes,
//! DELETE), and the stateless 2026-07-28 revision (`server/discover`, per-request
//! `_meta`, the `Mcp-Method`/`Mcp-Name` header checks with `-32020`/`-32022`). With
//! `server_names: private`, `/mcp/<server>` of a server the caller may see nothing of is
//! the same 404 as that of a missing one (`admit`, shared by the SSE and WebSocket
//! faces). Messages are read with
//! [`Incoming::parse_from_client`](crate::core::mcp::protocol::Incoming::parse_from_client)
//! and written with [`protocol::encode`], so ids come back exactly as sent. What a
//! method does is the [`McpHandler`]'s business.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use base64::Engine;
use futures::{Stream, StreamExt};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::handler::{CallChannels, ClientError, Identity, Outcome, RequestContext, Scope};
use super::input_required::WaitingCalls;
use super::sessions::{ClientAddress, DownstreamSession, SessionError};
use super::{jsonrpc_error, AppState};
use crate::core::mcp::protocol::{self, Incoming};
use crate::core::mcp::{PermissionLevel, ServerNotification, ServerRequest};

const SESSION_HEADER: &str = "mcp-session-id";
const VERSION_HEADER: &str = "mcp-protocol-version";
/// Codes of the stateless revision.
const HEADER_MISMATCH: i64 = -32020;
const MISSING_CLIENT_CAPABILITY: i64 = -32021;
const UNSUPPORTED_VERSION: i64 = -32022;

/// Methods of the session era that the stateless revision removed: a stateless request
/// for one is answered HTTP 404 with `-32601`.
const REMOVED_METHODS: [&str; 5] = [
    protocol::METHOD_INITIALIZE,
    protocol::METHOD_PING,
    "logging/setLevel",
    "resources/subscribe",
    "resources/unsubscribe",
];
/// A request the client cancelled (as LSP numbers it).
const REQUEST_CANCELLED: i64 = -32800;

/// `/mcp` and `/mcp/{server}`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/mcp", post(post_all).get(get_all).delete(delete_all))
        .route(
            "/mcp/{server}",
            post(post_one).get(get_one).delete(delete_one),
        )
}

async fn post_all(
    State(state): State<AppState>,
    address: ClientAddress,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handle_post(state, None, address, headers, body).await
}

async fn post_one(
    State(state): State<AppState>,
    Path(server): Path<String>,
    address: ClientAddress,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handle_post(state, Some(server), address, headers, body).await
}

async fn get_all(State(state): State<AppState>, headers: HeaderMap) -> Response {
    handle_get(state, None, headers).await
}

async fn get_one(
    State(state): State<AppState>,
    Path(server): Path<String>,
    headers: HeaderMap,
) -> Response {
    handle_get(state, Some(server), headers).await
}

async fn delete_all(State(state): State<AppState>, headers: HeaderMap) -> Response {
    handle_delete(state, None, headers).await
}

async fn delete_one(
    State(state): State<AppState>,
    Path(server): Path<String>,
    headers: HeaderMap,
) -> Response {
    handle_delete(state, Some(server), headers).await
}

/// A JSON-RPC message as an HTTP response, written with [`protocol::encode_to_vec`] so
/// that the client's id comes back exactly as it was sent.
pub(crate) fn message_response(status: StatusCode, message: &Value) -> Response {
    (
        status,
        [(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        protocol::encode_to_vec(message),
    )
        .into_response()
}

/// A JSON-RPC error as an HTTP response.
fn error_response(status: StatusCode, id: Value, code: i64, message: &str) -> Response {
    message_response(status, &jsonrpc_error(id, code, message))
}

fn error_with_data(status: StatusCode, id: Value, error: &ClientError) -> Response {
    message_response(status, &protocol::error_reply(id, error.to_value()))
}

/// The checks every method shares: Host/Origin, identity, scope. `face` is the first
/// segment of the endpoint's path (`mcp`, `sse`, `ws`): the endpoint (`/mcp/<server>`)
/// is the resource a token must be meant for. Returns the identity and the scope, or
/// the response that refuses the request.
pub(crate) async fn admit(
    state: &AppState,
    face: &str,
    server: Option<String>,
    headers: &HeaderMap,
) -> Result<(Identity, Scope), Response> {
    if state.loopback() && !local_request(headers) {
        return Err(error_response(
            StatusCode::FORBIDDEN,
            Value::Null,
            -32600,
            "Forbidden: the Host or Origin is not local (DNS rebinding protection)",
        ));
    }
    let path = endpoint_path(face, server.as_deref());
    let auth = state.auth();
    let identity = match auth.identify(headers, &path).await {
        Ok(identity) => identity,
        Err(failure) => {
            state.metrics().record_auth(&failure);
            state
                .metrics()
                .record_request(metrics_face(face), "-", "unauthorized");
            let mut response = error_response(
                StatusCode::UNAUTHORIZED,
                Value::Null,
                -32001,
                &auth.message(&failure),
            );
            response
                .headers_mut()
                .insert("www-authenticate", auth.challenge(&path, &failure));
            return Err(response);
        }
    };
    state.metrics().record_identity(&identity);
    if let Some(refusal) = scope_refusal(state, face, &identity, &path, PermissionLevel::Read) {
        return Err(refusal);
    }
    let scope = match server {
        None => Scope::All,
        // With private server names, a server the caller may see nothing of is answered
        // as one that does not exist.
        Some(name) => match state
            .gateway()
            .server_now(&name)
            .filter(|server| state.handler().may_know_server(&identity, server.name()))
        {
            Some(server) => Scope::Server(server.name().to_string()),
            None => {
                return Err(error_response(
                    StatusCode::NOT_FOUND,
                    Value::Null,
                    -32600,
                    &format!("Unknown MCP server: {name}"),
                ))
            }
        },
    };
    Ok((identity, scope))
}

/// The path of an endpoint: `/<face>` or `/<face>/<server>`.
pub(crate) fn endpoint_path(face: &str, server: Option<&str>) -> String {
    match server {
        Some(server) => format!("/{face}/{server}"),
        None => format!("/{face}"),
    }
}

/// The metrics label of the face whose endpoint path starts with `face`.
fn metrics_face(face: &str) -> &str {
    match face {
        "mcp" => "http",
        other => other,
    }
}

/// The 403 `insufficient_scope` answer when the caller's token scopes do not reach
/// `needed` (RFC 6750 §3.1; the client may ask for more and retry).
pub(crate) fn scope_refusal(
    state: &AppState,
    face: &str,
    identity: &Identity,
    path: &str,
    needed: PermissionLevel,
) -> Option<Response> {
    let (challenge, message) = state.auth().scope_shortfall(identity, path, needed)?;
    state
        .metrics()
        .record_request(metrics_face(face), "-", "denied");
    let mut response = error_response(StatusCode::FORBIDDEN, Value::Null, -32001, &message);
    response.headers_mut().insert("www-authenticate", challenge);
    Some(response)
}

/// Whether Host and Origin name this machine (checked on loopback binds, where DNS
/// rebinding lets any web page reach the service under a name of its own). A header given
/// twice, or with a byte that is not printable ASCII, is not local; neither is `Origin:
/// null`, which any page can make a browser send (a sandboxed iframe, a `file://` page,
/// a redirect), and which WebSocket upgrades are not protected from by CORS.
pub(crate) fn local_request(headers: &HeaderMap) -> bool {
    let local_host = |authority: &str| {
        let host = match authority.rsplit_once(':') {
            Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
            _ => authority,
        };
        matches!(host, "127.0.0.1" | "localhost" | "[::1]")
    };
    let host_ok = match single_header(headers, "host") {
        HeaderCount::Absent => true,
        HeaderCount::One(host) => local_host(host),
        HeaderCount::Unusable => false,
    };
    let origin_ok = match single_header(headers, "origin") {
        HeaderCount::Absent => true,
        HeaderCount::One(origin) => origin
            .split_once("://")
            .is_some_and(|(_, authority)| local_host(authority.trim_end_matches('/'))),
        HeaderCount::Unusable => false,
    };
    host_ok && origin_ok
}

/// A header that must be given at most once.
enum HeaderCount<'h> {
    Absent,
    One(&'h str),
    /// Given more than once, or not printable ASCII.
    Unusable,
}

fn single_header<'h>(headers: &'h HeaderMap, name: &str) -> HeaderCount<'h> {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (None, _) => HeaderCount::Absent,
        (Some(value), None) => value
            .to_str()
            .map_or(HeaderCount::Unusable, HeaderCount::One),
        (Some(_), Some(_)) => HeaderCount::Unusable,
    }
}

/// Whether the request's `Content-Type` is `application/json`, given once, with
/// optional parameters (`name=value`; a `charset` must be UTF-8, which JSON is): not
/// `application/jsonx`, `application/json-seq` or `text/plain`.
pub(crate) fn is_json_content_type(headers: &HeaderMap) -> bool {
    let HeaderCount::One(value) = single_header(headers, "content-type") else {
        return false;
    };
    let mut parts = value.split(';');
    let essence = parts.next().unwrap_or_default().trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        return false;
    }
    parts.map(str::trim).all(|parameter| {
        if parameter.is_empty() {
            return true;
        }
        let Some((name, value)) = parameter.split_once('=') else {
            return false;
        };
        let token = |t: &str| {
            !t.is_empty()
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        };
        let unquoted = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        token(name)
            && token(unquoted)
            && (!name.eq_ignore_ascii_case("charset")
                || unquoted.eq_ignore_ascii_case("utf-8")
                || unquoted.eq_ignore_ascii_case("utf8"))
    })
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn accepts_sse(headers: &HeaderMap) -> bool {
    header(headers, "accept").is_some_and(|a| a.contains("text/event-stream"))
}

async fn handle_post(
    state: AppState,
    server: Option<String>,
    address: ClientAddress,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = endpoint_path("mcp", server.as_deref());
    let (identity, scope) = match admit(&state, "mcp", server.clone(), &headers).await {
        Ok(admitted) => admitted,
        Err(response) => return response,
    };
    if !is_json_content_type(&headers) {
        return error_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Value::Null,
            -32600,
            "Unsupported Media Type: send Content-Type: application/json",
        );
    }
    let accept = header(&headers, "accept").unwrap_or("*/*");
    if !(accept.contains("application/json")
        || accept.contains("text/event-stream")
        || accept.contains("*/*"))
    {
        return error_response(
            StatusCode::NOT_ACCEPTABLE,
            Value::Null,
            -32600,
            "Not Acceptable: accept application/json and text/event-stream",
        );
    }
    if body.trim_ascii_start().first() == Some(&b'[') {
        if let Some(response) = batch(
            &state,
            server.as_deref(),
            address,
            &headers,
            &identity,
            &scope,
            &body,
        )
        .await
        {
            return response;
        }
    }
    let message = match Incoming::parse_from_client(&body) {
        Ok(message) => message,
        Err(refusal) => {
            state.metrics().record_request("http", "-", "error");
            return message_response(StatusCode::BAD_REQUEST, &refusal.to_response());
        }
    };
    let session_id = header(&headers, SESSION_HEADER).map(str::to_string);
    let session = match &session_id {
        Some(id) => match state.sessions().get(id, identity.digest.as_ref(), &scope) {
            Some(session) => Some(session),
            None => {
                return error_response(
                    StatusCode::NOT_FOUND,
                    Value::Null,
                    -32001,
                    "Session not found",
                )
            }
        },
        None => None,
    };
    match message {
        Incoming::Response { id, outcome } => {
            // The client's answer to a request an upstream made during a call.
            match session {
                Some(session) if session.answer(&id, outcome) => {
                    StatusCode::ACCEPTED.into_response()
                }
                _ => error_response(
                    StatusCode::NOT_FOUND,
                    id,
                    -32600,
                    "No request of this session has that id",
                ),
            }
        }
        Incoming::Notification { method, params } => {
            if method == protocol::NOTIFICATION_CANCELLED {
                if let (Some(session), Some(id)) = (&session, params.get("requestId")) {
                    session.cancel(id);
                }
            }
            StatusCode::ACCEPTED.into_response()
        }
        Incoming::Request { id, method, params } => {
            if method == protocol::METHOD_TOOLS_CALL {
                if let Some(refusal) =
                    scope_refusal(&state, "mcp", &identity, &path, PermissionLevel::Execute)
                {
                    return refusal;
                }
            }
            let ctx = PostContext {
                state,
                identity,
                scope,
                headers,
                address,
            };
            // `initialize` under a stateless revision's header is a removed method.
            let modern_header = header(&ctx.headers, VERSION_HEADER)
                .is_some_and(|v| !protocol::is_supported_session_version(v));
            match session {
                Some(session) => ctx.in_session(session, id, method, params).await,
                None if method == protocol::METHOD_INITIALIZE && !modern_header => {
                    ctx.initialize(id, &params)
                }
                None => ctx.stateless(id, method, params).await,
            }
        }
    }
}

/// Messages one batch may hold.
pub const MAX_BATCH: usize = 64;

/// A JSON-RPC batch (an array) in a session that negotiated 2025-03-26, the one revision
/// that has them: each message is handled as if POSTed alone (answered as JSON), and the
/// answers come back as one array (HTTP 202 when there are none). `None` for anything
/// else, which is then refused as a single message would be.
async fn batch(
    state: &AppState,
    server: Option<&str>,
    address: ClientAddress,
    headers: &HeaderMap,
    identity: &Identity,
    scope: &Scope,
    body: &Bytes,
) -> Option<Response> {
    let id = header(headers, SESSION_HEADER)?;
    let session = state.sessions().get(id, identity.digest.as_ref(), scope)?;
    if session.protocol_version != "2025-03-26" {
        return None;
    }
    let items: Vec<Box<serde_json::value::RawValue>> = serde_json::from_slice(body).ok()?;
    if items.is_empty() || items.len() > MAX_BATCH {
        return Some(error_response(
            StatusCode::BAD_REQUEST,
            Value::Null,
            protocol::INVALID_REQUEST,
            &format!("Invalid Request: a batch holds 1 to {MAX_BATCH} messages"),
        ));
    }
    let mut one = headers.clone();
    one.insert(
        axum::http::header::ACCEPT,
        HeaderValue::from_static("application/json"),
    );
    let mut answers: Vec<Bytes> = Vec::new();
    for item in items {
        let response = Box::pin(handle_post(
            state.clone(),
            server.map(str::to_string),
            address,
            one.clone(),
            Bytes::from(item.get().to_string()),
        ))
        .await;
        if response.status() == StatusCode::ACCEPTED {
            continue;
        }
        // Bounded: a message's answer is at most what one call may return.
        match axum::body::to_bytes(response.into_body(), usize::MAX).await {
            Ok(bytes) if !bytes.is_empty() => answers.push(bytes),
            _ => {}
        }
    }
    if answers.is_empty() {
        return Some(StatusCode::ACCEPTED.into_response());
    }
    let mut out =
        Vec::with_capacity(answers.iter().map(Bytes::len).sum::<usize>() + answers.len() + 1);
    out.push(b'[');
    for (i, answer) in answers.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(answer);
    }
    out.push(b']');
    Some(
        (
            StatusCode::OK,
            [(
                axum::http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            out,
        )
            .into_response(),
    )
}

/// Everything a request's handling needs.
struct PostContext {
    state: AppState,
    identity: Identity,
    scope: Scope,
    headers: HeaderMap,
    /// The client's address: without a key, its sessions count against its address.
    address: ClientAddress,
}

impl PostContext {
    fn initialize(self, id: Value, params: &Value) -> Response {
        let requested = params
            .get("protocolVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let result = self.state.handler().initialize_result(requested);
        let version = result["protocolVersion"]
            .as_str()
            .unwrap_or(protocol::LATEST_SESSION_VERSION);
        let session = match self.state.sessions().create(
            self.identity.digest,
            self.address,
            self.scope.clone(),
            version,
        ) {
            Ok(session) => session,
            Err(SessionError::TooMany | SessionError::TooManyInFlight) => {
                return error_response(
                    StatusCode::TOO_MANY_REQUESTS,
                    id,
                    -32600,
                    "Too many sessions for this API key: close one (DELETE) or wait for idle ones to expire",
                )
            }
        };
        self.state
            .metrics()
            .record_request("http", protocol::METHOD_INITIALIZE, "ok");
        session.set_client_capabilities(
            params
                .get("capabilities")
                .cloned()
                .unwrap_or_else(|| json!({})),
        );
        tracing::info!(key = %self.identity.name, session = %session.id, %version, "downstream session opened");
        let mut response = message_response(StatusCode::OK, &protocol::response(id, result));
        if let Ok(value) = HeaderValue::from_str(&session.id) {
            response.headers_mut().insert(SESSION_HEADER, value);
        }
        response
    }

    async fn in_session(
        self,
        session: std::sync::Arc<DownstreamSession>,
        id: Value,
        method: String,
        params: Value,
    ) -> Response {
        if let Some(version) = header(&self.headers, VERSION_HEADER) {
            if version != session.protocol_version
                && !protocol::is_supported_session_version(version)
            {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    id,
                    -32600,
                    &format!("Bad Request: unsupported MCP-Protocol-Version '{version}'"),
                );
            }
        }
        if method == protocol::METHOD_INITIALIZE {
            return error_response(
                StatusCode::BAD_REQUEST,
                id,
                -32600,
                "Bad Request: the session is already initialized",
            );
        }
        if matches!(
            method.as_str(),
            "resources/subscribe" | "resources/unsubscribe"
        ) {
            return self.subscription(session, id, &method, &params).await;
        }
        if method == "logging/setLevel" {
            if let Some(rank) = params
                .get("level")
                .and_then(Value::as_str)
                .and_then(super::handler::log_rank)
            {
                session.set_log_level(rank);
            }
        }
        let cancel = match session.begin(&id) {
            Ok(cancel) => cancel,
            Err(_) => {
                self.state
                    .metrics()
                    .record_request("http", &method, "error");
                return error_response(
                    StatusCode::TOO_MANY_REQUESTS,
                    id,
                    super::sessions::TOO_MANY_IN_FLIGHT,
                    &super::sessions::too_many_in_flight_message(),
                );
            }
        };
        self.run(id, method, params, Some(session), Some(cancel))
            .await
    }

    /// Subscriptions belong to the session: its GET stream carries the updates.
    async fn subscription(
        self,
        session: std::sync::Arc<DownstreamSession>,
        id: Value,
        method: &str,
        params: &Value,
    ) -> Response {
        let on = method == "resources/subscribe";
        let ctx = RequestContext {
            identity: &self.identity,
            scope: &self.scope,
            progress: None,
        };
        let outcome = self.state.handler().subscribe(&ctx, params, on).await;
        self.state.metrics().record_request(
            "http",
            method,
            if outcome.is_ok() { "ok" } else { "error" },
        );
        match outcome {
            Ok((server, original)) => {
                let uri = self
                    .state
                    .handler()
                    .client_uri(&self.scope, &server, &original);
                session.set_subscribed(&uri, on);
                message_response(StatusCode::OK, &protocol::response(id, json!({})))
            }
            Err(error) => error_with_data(StatusCode::OK, id, &error),
        }
    }

    async fn stateless(self, id: Value, method: String, params: Value) -> Response {
        let meta_version = params
            .pointer("/_meta/io.modelcontextprotocol~1protocolVersion")
            .and_then(Value::as_str)
            .map(str::to_string);
        let header_version = header(&self.headers, VERSION_HEADER).map(str::to_string);
        let modern = meta_version.is_some()
            || header_version
                .as_deref()
                .is_some_and(|v| !protocol::is_supported_session_version(v));
        if !modern {
            return error_response(
                StatusCode::BAD_REQUEST,
                id,
                -32600,
                "Bad Request: Mcp-Session-Id header is required (send initialize first, or use protocol 2026-07-28)",
            );
        }
        if REMOVED_METHODS.contains(&method.as_str()) {
            return error_response(
                StatusCode::NOT_FOUND,
                id,
                protocol::METHOD_NOT_FOUND,
                &format!("Method not found: {method}"),
            );
        }
        let Some(requested) = meta_version else {
            return error_response(
                StatusCode::BAD_REQUEST,
                id,
                protocol::INVALID_PARAMS,
                "Invalid params: _meta['io.modelcontextprotocol/protocolVersion'] is required",
            );
        };
        // A header that disagrees with `_meta` is a mismatch before it is a version
        // question (checked first, as the spec orders them).
        if let Some(v) = header_version.as_deref().filter(|v| *v != requested) {
            return error_response(
                StatusCode::BAD_REQUEST,
                id,
                HEADER_MISMATCH,
                &format!(
                    "MCP-Protocol-Version '{v}' does not match _meta protocolVersion '{requested}'"
                ),
            );
        }
        if requested != protocol::STATELESS_VERSION {
            let error = ClientError {
                code: UNSUPPORTED_VERSION,
                message: format!("Unsupported protocol version: {requested}"),
                data: Some(
                    json!({"supported": [protocol::STATELESS_VERSION], "requested": requested}),
                ),
            };
            return error_with_data(StatusCode::BAD_REQUEST, id, &error);
        }
        if params
            .pointer("/_meta/io.modelcontextprotocol~1clientCapabilities")
            .is_none()
        {
            return error_response(
                StatusCode::BAD_REQUEST,
                id,
                protocol::INVALID_PARAMS,
                "Invalid params: _meta['io.modelcontextprotocol/clientCapabilities'] is required",
            );
        }
        if let Err(message) = check_modern_headers(&self.headers, &requested, &method, &params) {
            return error_response(StatusCode::BAD_REQUEST, id, HEADER_MISMATCH, &message);
        }
        if method == protocol::METHOD_DISCOVER {
            self.state.metrics().record_request("http", &method, "ok");
            return message_response(
                StatusCode::OK,
                &protocol::response(id, self.state.handler().discover_result()),
            );
        }
        if method == super::listen::METHOD {
            return super::listen::serve(&self.state, self.identity, self.scope, id, &params).await;
        }
        // A client that can answer questions, calling a session-era upstream, is bridged
        // (its questions become our `input_required` rounds); a stateless upstream's own
        // rounds pass through `run` as they are.
        if method == protocol::METHOD_TOOLS_CALL
            && asks_input(&params)
            && (WaitingCalls::is_retry(&params)
                || !self
                    .state
                    .handler()
                    .call_goes_stateless(&self.identity, &self.scope, &params)
                    .await)
        {
            return self.call_with_input(id, params).await;
        }
        self.run(id, method, params, None, None).await
    }

    /// A stateless client that can answer questions (it declared elicitation, sampling
    /// or roots): the upstream's questions during the call come back as
    /// `input_required` results, and the client's retry carries the answers.
    async fn call_with_input(self, id: Value, params: Value) -> Response {
        let started = Instant::now();
        let tool = params
            .get("name")
            .and_then(Value::as_str)
            .map(str::to_string);
        let waiting = self.state.waiting().clone();
        let outcome = if WaitingCalls::is_retry(&params) {
            waiting.resume(self.identity.digest.as_ref(), &params).await
        } else {
            let (asker, questions) = mpsc::unbounded_channel();
            let (done, outcome) = tokio::sync::oneshot::channel();
            let handler = self.state.handler().clone();
            let identity = self.identity.clone();
            let scope = self.scope.clone();
            // The call outlives this request when it must wait for answers; it is
            // dropped (cancelled upstream) as soon as nobody waits for its outcome any
            // more: the client went away, or never came back for its retry.
            self.state.spawn(async move {
                let mut done = done;
                let ctx = RequestContext {
                    identity: &identity,
                    scope: &scope,
                    progress: None,
                };
                let call = handler.handle_call(
                    ctx,
                    protocol::METHOD_TOOLS_CALL,
                    params,
                    CallChannels {
                        asker: Some(asker),
                        notifications: None,
                    },
                );
                tokio::select! {
                    result = call => {
                        let _ = done.send(result);
                    }
                    () = done.closed() => {}
                }
            });
            waiting
                .begin(self.identity.digest, questions, outcome)
                .await
        };
        let asked = outcome
            .as_ref()
            .is_ok_and(|r| r.get("resultType").and_then(Value::as_str) == Some("input_required"));
        if !asked {
            record(
                &self.state,
                &self.identity,
                &self.scope,
                protocol::METHOD_TOOLS_CALL,
                tool.as_deref(),
                &outcome,
                started.elapsed(),
            );
        }
        json_reply(id, outcome, true)
    }

    /// Runs a method, answering as JSON or (when the client asked for progress and
    /// accepts it) as an SSE stream that carries the progress first.
    /// Runs a method. The reply is JSON unless something must reach the client before
    /// the response (the call's progress, or a request from the upstream such as an
    /// elicitation) and the client accepts SSE: then it is an SSE stream that carries
    /// those messages, then the response. The choice waits for whichever comes first.
    async fn run(
        self,
        id: Value,
        method: String,
        params: Value,
        session: Option<std::sync::Arc<DownstreamSession>>,
        cancel: Option<super::sessions::InFlight>,
    ) -> Response {
        let stateless = session.is_none();
        let sse = accepts_sse(&self.headers);
        let progress_token = params
            .pointer("/_meta/progressToken")
            .cloned()
            .filter(|_| sse);
        let (progress_tx, progress_rx) = match progress_token {
            Some(_) => {
                let (tx, rx) = mpsc::unbounded_channel();
                (Some(tx), Some(rx))
            }
            None => (None, None),
        };
        // Requests from the upstream need a session to answer on.
        let (asker_tx, asker_rx) = match (&session, sse) {
            (Some(_), true) => {
                let (tx, rx) = mpsc::unbounded_channel();
                (Some(tx), Some(rx))
            }
            _ => (None, None),
        };
        let (notes_tx, notes_rx) = match sse {
            true => {
                let (tx, rx) = mpsc::unbounded_channel();
                (Some(tx), Some(rx))
            }
            false => (None, None),
        };
        let handler = self.state.handler().clone();
        let state = self.state.clone();
        let identity = self.identity.clone();
        let scope = self.scope.clone();
        let method_for_call = method.clone();
        let call = async move {
            let started = Instant::now();
            let tool = params
                .get("name")
                .and_then(Value::as_str)
                .map(str::to_string);
            let ctx = RequestContext {
                identity: &identity,
                scope: &scope,
                progress: progress_tx,
            };
            let channels = CallChannels {
                asker: asker_tx,
                notifications: notes_tx,
            };
            let mut outcome = handler
                .handle_call(ctx, &method_for_call, params, channels)
                .await;
            if stateless {
                if let Ok(result) = &mut outcome {
                    cacheable(&method_for_call, result);
                }
            }
            record(
                &state,
                &identity,
                &scope,
                &method_for_call,
                tool.as_deref(),
                &outcome,
                started.elapsed(),
            );
            outcome
        };
        // `cancel` lives in the call: the request stops being in flight when the call
        // finishes or is dropped (the client went away).
        let call = async move {
            match cancel {
                Some(in_flight) => tokio::select! {
                    () = in_flight.token().cancelled() => Err(ClientError { code: REQUEST_CANCELLED, message: "Request cancelled".into(), data: None }),
                    outcome = call => outcome,
                },
                None => call.await,
            }
        };
        // The call may outlive the handler (inside an SSE body): keep it in the
        // request's span, so its log lines carry the request id.
        let mut call = Box::pin(tracing::Instrument::instrument(
            call,
            tracing::Span::current(),
        ));
        let mut events = Events {
            progress: progress_rx,
            asker: asker_rx,
            notes: notes_rx,
            token: progress_token.unwrap_or(Value::Null),
            session,
        };
        // Messages the upstream sent together with its response are already queued when
        // the call finishes: they go out first, so nothing is lost to the race.
        let first: VecDeque<Value> = tokio::select! {
            biased;
            Some(event) = events.next() => VecDeque::from([event]),
            outcome = &mut call => {
                let mut queued = events.drain();
                if queued.is_empty() {
                    return json_reply(id, outcome, stateless);
                }
                queued.push_back(reply_body(id, outcome, stateless));
                let all: Vec<_> = queued.iter().map(sse_event).collect();
                return Sse::new(futures::stream::iter(all)).into_response();
            }
        };
        let stream = futures::stream::unfold(
            (Some(call), events, id, first),
            move |(mut call, mut events, id, mut queue)| async move {
                if let Some(message) = queue.pop_front() {
                    return Some((sse_event(&message), (call, events, id, queue)));
                }
                let running = call.as_mut()?;
                tokio::select! {
                    biased;
                    Some(event) = events.next() => Some((sse_event(&event), (call, events, id, queue))),
                    outcome = running => {
                        let mut queue = events.drain();
                        queue.push_back(reply_body(id.clone(), outcome, stateless));
                        let first = queue.pop_front()?;
                        Some((sse_event(&first), (None, events, id, queue)))
                    }
                }
            },
        );
        Sse::new(stream).into_response()
    }
}

/// What reaches the client during a call, before its response: progress under the
/// client's own token, and the upstream's requests under ids of this session.
struct Events {
    progress: Option<mpsc::UnboundedReceiver<Value>>,
    asker: Option<mpsc::UnboundedReceiver<ServerRequest>>,
    notes: Option<mpsc::UnboundedReceiver<ServerNotification>>,
    token: Value,
    session: Option<std::sync::Arc<DownstreamSession>>,
}

impl Events {
    /// The next message for the client; pends forever when there can be none.
    async fn next(&mut self) -> Option<Value> {
        loop {
            let message = tokio::select! {
                Some(update) = recv(&mut self.progress) => self.progress_message(update),
                Some(note) = recv(&mut self.notes) => self.note_message(note),
                Some(request) = recv(&mut self.asker) => self.request_message(request),
                else => std::future::pending::<Option<Value>>().await,
            };
            if message.is_some() {
                return message;
            }
        }
    }

    /// Everything already queued, in the order of the channels (progress, then log
    /// messages, then requests).
    fn drain(&mut self) -> VecDeque<Value> {
        let mut queued = VecDeque::new();
        while let Some(update) = self.progress.as_mut().and_then(|r| r.try_recv().ok()) {
            queued.extend(self.progress_message(update));
        }
        while let Some(note) = self.notes.as_mut().and_then(|r| r.try_recv().ok()) {
            queued.extend(self.note_message(note));
        }
        while let Some(request) = self.asker.as_mut().and_then(|r| r.try_recv().ok()) {
            queued.extend(self.request_message(request));
        }
        queued
    }

    fn progress_message(&self, mut update: Value) -> Option<Value> {
        update["progressToken"] = self.token.clone();
        Some(protocol::notification(
            protocol::NOTIFICATION_PROGRESS,
            Some(update),
        ))
    }

    /// A notification that came with the call; log messages below the level the
    /// client asked for are dropped.
    fn note_message(&self, note: ServerNotification) -> Option<Value> {
        if note.method == "notifications/message" {
            let rank = note
                .params
                .get("level")
                .and_then(Value::as_str)
                .and_then(super::handler::log_rank);
            if let (Some(session), Some(rank)) = (&self.session, rank) {
                if !session.wants_log(rank) {
                    return None;
                }
            }
        }
        Some(protocol::notification(&note.method, Some(note.params)))
    }

    /// An upstream's request, relayed under an id of this session.
    fn request_message(&self, request: ServerRequest) -> Option<Value> {
        let session = self.session.as_ref()?;
        let request = super::handler::relay_if_declared(request, session.client_capabilities())?;
        let id = session.ask(request.reply);
        Some(protocol::request_with_id(
            Value::from(id),
            &request.method,
            Some(request.params),
        ))
    }
}

async fn recv<T>(receiver: &mut Option<mpsc::UnboundedReceiver<T>>) -> Option<T> {
    match receiver {
        Some(receiver) => receiver.recv().await,
        None => None,
    }
}

/// Whether a stateless request's client can answer an upstream's questions.
fn asks_input(params: &Value) -> bool {
    params
        .pointer("/_meta/io.modelcontextprotocol~1clientCapabilities")
        .and_then(Value::as_object)
        .is_some_and(|c| {
            ["elicitation", "sampling", "roots"]
                .iter()
                .any(|k| c.contains_key(*k))
        })
}

/// The stateless revision requires `ttlMs` and `cacheScope` on lists and reads. What
/// the gateway lists depends on the caller's key, so nothing is shared: `private`, and
/// no freshness promised.
fn cacheable(method: &str, result: &mut Value) {
    let cacheable = matches!(
        method,
        "tools/list"
            | "prompts/list"
            | "resources/list"
            | "resources/templates/list"
            | "resources/read"
    );
    if let (true, Some(object)) = (cacheable, result.as_object_mut()) {
        object.entry("ttlMs").or_insert_with(|| Value::from(0));
        object.insert("cacheScope".into(), Value::from("private"));
    }
}

fn sse_event(message: &Value) -> Result<Event, Infallible> {
    Ok(Event::default()
        .event("message")
        .data(protocol::encode(message)))
}

fn reply_body(id: Value, outcome: Outcome, stateless: bool) -> Value {
    match outcome {
        Ok(mut result) => {
            if let Some(object) = result.as_object_mut() {
                if stateless {
                    object
                        .entry("resultType")
                        .or_insert_with(|| Value::from("complete"));
                } else {
                    super::duplex::session_era_result(object);
                }
            }
            protocol::response(id, result)
        }
        Err(error) => protocol::error_reply(id, error.to_value()),
    }
}

/// A JSON reply; in the stateless revision an unknown method is also an HTTP 404, and
/// the revision's own errors (header mismatch, missing client capability, unsupported
/// version, whoever raised them) an HTTP 400.
fn json_reply(id: Value, outcome: Outcome, stateless: bool) -> Response {
    let status = match &outcome {
        Err(e) if stateless && e.code == protocol::METHOD_NOT_FOUND => StatusCode::NOT_FOUND,
        Err(e)
            if stateless
                && [
                    HEADER_MISMATCH,
                    MISSING_CLIENT_CAPABILITY,
                    UNSUPPORTED_VERSION,
                ]
                .contains(&e.code) =>
        {
            StatusCode::BAD_REQUEST
        }
        _ => StatusCode::OK,
    };
    message_response(status, &reply_body(id, outcome, stateless))
}

/// Metrics for every request, and the audit record of a tool call, as every face
/// records them (a cancelled call counts as `cancelled`).
fn record(
    state: &AppState,
    identity: &Identity,
    scope: &Scope,
    method: &str,
    tool: Option<&str>,
    outcome: &Outcome,
    took: Duration,
) {
    let outcome = match outcome {
        Err(e) if e.code == REQUEST_CANCELLED => None,
        other => Some(other),
    };
    super::duplex::record(state, identity, scope, "http", method, tool, outcome, took);
}

/// The header rules of the stateless revision over HTTP.
fn check_modern_headers(
    headers: &HeaderMap,
    version: &str,
    method: &str,
    params: &Value,
) -> Result<(), String> {
    match header(headers, VERSION_HEADER) {
        Some(v) if v == version => {}
        Some(v) => {
            return Err(format!(
                "MCP-Protocol-Version '{v}' does not match _meta protocolVersion '{version}'"
            ))
        }
        None => return Err("the MCP-Protocol-Version header is required".to_string()),
    }
    match header(headers, "mcp-method") {
        Some(m) if m == method => {}
        Some(m) => {
            return Err(format!(
                "Mcp-Method '{m}' does not match the body's method '{method}'"
            ))
        }
        None => return Err("the Mcp-Method header is required".to_string()),
    }
    let named = match method {
        "tools/call" | "prompts/get" => params.get("name"),
        "resources/read" => params.get("uri"),
        _ => None,
    };
    if let Some(expected) = named.and_then(Value::as_str) {
        match header(headers, "mcp-name").map(decode_header_value) {
            Some(Some(name)) if name == expected => {}
            Some(_) => return Err(format!("Mcp-Name does not match '{expected}'")),
            None => return Err("the Mcp-Name header is required".to_string()),
        }
    }
    Ok(())
}

/// Decodes `=?base64?…?=` header values; plain values pass through.
fn decode_header_value(value: &str) -> Option<String> {
    match value
        .strip_prefix("=?base64?")
        .and_then(|v| v.strip_suffix("?="))
    {
        Some(encoded) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .ok()?;
            String::from_utf8(bytes).ok()
        }
        None => Some(value.to_string()),
    }
}

async fn handle_get(state: AppState, server: Option<String>, headers: HeaderMap) -> Response {
    let (identity, scope) = match admit(&state, "mcp", server, &headers).await {
        Ok(admitted) => admitted,
        Err(response) => return response,
    };
    let Some(id) = header(&headers, SESSION_HEADER) else {
        return error_response(
            StatusCode::METHOD_NOT_ALLOWED,
            Value::Null,
            -32600,
            "Method Not Allowed: GET needs an Mcp-Session-Id (stateless clients use subscriptions/listen)",
        );
    };
    let Some(session) = state.sessions().get(id, identity.digest.as_ref(), &scope) else {
        return error_response(
            StatusCode::NOT_FOUND,
            Value::Null,
            -32001,
            "Session not found",
        );
    };
    if !accepts_sse(&headers) {
        return error_response(
            StatusCode::NOT_ACCEPTABLE,
            Value::Null,
            -32600,
            "Not Acceptable: accept text/event-stream",
        );
    }
    Sse::new(announcements(&state, session, scope, identity))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

/// The GET stream: the `list_changed` notifications of the servers in scope, until the
/// session or the service ends.
fn announcements(
    state: &AppState,
    session: std::sync::Arc<DownstreamSession>,
    scope: Scope,
    identity: Identity,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let receiver = state.announcements();
    let shutdown = state.shutdown_token();
    let handler = state.handler().clone();
    futures::stream::unfold(receiver, move |mut receiver| {
        let identity = identity.clone();
        let session = session.clone();
        let scope = scope.clone();
        let shutdown = shutdown.clone();
        let handler = handler.clone();
        async move {
            loop {
                let next = tokio::select! {
                    () = session.closed.cancelled() => return None,
                    () = shutdown.cancelled() => return None,
                    next = receiver.recv() => next,
                };
                match next {
                    Ok(a) if scope == Scope::All || scope == Scope::Server(a.server.clone()) => {
                        if a.method == "notifications/resources/updated" {
                            // Only to the sessions that subscribed, under their name of it.
                            let original = a
                                .params
                                .get("uri")
                                .and_then(Value::as_str)
                                .unwrap_or_default();
                            let uri = handler.client_uri(&scope, &a.server, original);
                            if !session.is_subscribed(&uri) {
                                continue;
                            }
                            let mut params = a.params.clone();
                            params["uri"] = Value::from(uri);
                            let note = protocol::notification(&a.method, Some(params));
                            return Some((sse_event(&note), receiver));
                        }
                        if !handler.may_see_server(&identity, &a.server) {
                            continue;
                        }
                        let note = protocol::notification(&a.method, None);
                        return Some((sse_event(&note), receiver));
                    }
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                }
            }
        }
    })
    .boxed()
}

async fn handle_delete(state: AppState, server: Option<String>, headers: HeaderMap) -> Response {
    let (identity, _scope) = match admit(&state, "mcp", server, &headers).await {
        Ok(admitted) => admitted,
        Err(response) => return response,
    };
    let Some(id) = header(&headers, SESSION_HEADER) else {
        return error_response(
            StatusCode::BAD_REQUEST,
            Value::Null,
            -32600,
            "Bad Request: Mcp-Session-Id header is required",
        );
    };
    if let Some(session) = state.sessions().remove(id, identity.digest.as_ref()) {
        state
            .handler()
            .release_subscriptions(&session.scope, &session.subscriptions())
            .await;
        StatusCode::OK.into_response()
    } else {
        error_response(
            StatusCode::NOT_FOUND,
            Value::Null,
            -32001,
            "Session not found",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_rebinding_is_refused() {
        let mut headers = HeaderMap::new();
        headers.insert("host", "127.0.0.1:4000".parse().unwrap());
        assert!(local_request(&headers));
        headers.insert("origin", "http://localhost:3000".parse().unwrap());
        assert!(local_request(&headers));
        headers.insert("origin", "http://evil.example".parse().unwrap());
        assert!(!local_request(&headers));
        let mut headers = HeaderMap::new();
        headers.insert("host", "evil.example:4000".parse().unwrap());
        assert!(!local_request(&headers));
    }

    #[test]
    fn unusual_hosts_and_origins_are_not_local() {
        let refused = |pairs: &[(&'static str, &[u8])]| {
            let mut headers = HeaderMap::new();
            for (name, value) in pairs {
                headers.append(*name, HeaderValue::from_bytes(value).unwrap());
            }
            !local_request(&headers)
        };
        assert!(refused(&[("origin", b"null")]));
        assert!(refused(&[("host", b"localhost\xff")]));
        assert!(refused(&[("origin", b"http://localhost\xc3\xa9")]));
        assert!(refused(&[
            ("host", b"evil.example"),
            ("host", b"localhost")
        ]));
        assert!(refused(&[("host", b"localhost"), ("host", b"localhost")]));
        assert!(refused(&[
            ("origin", b"http://localhost"),
            ("origin", b"http://evil.example")
        ]));
        assert!(refused(&[("host", b"localhost.evil.example")]));
        assert!(!refused(&[
            ("host", b"[::1]:4000"),
            ("origin", b"http://[::1]:3000")
        ]));
        assert!(!refused(&[]));
    }

    #[test]
    fn only_application_json_is_json() {
        let is_json = |values: &[&str]| {
            let mut headers = HeaderMap::new();
            for value in values {
                headers.append("content-type", value.parse().unwrap());
            }
            is_json_content_type(&headers)
        };
        for good in [
            "application/json",
            "Application/JSON",
            "application/json; charset=utf-8",
            "application/json;charset=\"UTF-8\"",
            "application/json; profile=x",
        ] {
            assert!(is_json(&[good]), "{good}");
        }
        for bad in [
            "application/jsonx",
            "application/json-seq",
            "application/json x",
            "text/plain",
            "application/json; charset=latin1",
            "application/json; junk",
            "",
        ] {
            assert!(!is_json(&[bad]), "{bad}");
        }
        assert!(!is_json(&[]));
        assert!(!is_json(&["application/json", "application/json"]));
    }

    #[test]
    fn modern_headers_must_match_the_body() {
        let mut headers = HeaderMap::new();
        let params = json!({"name": "fs__read"});
        assert!(check_modern_headers(&headers, "2026-07-28", "tools/call", &params).is_err());
        headers.insert(VERSION_HEADER, "2026-07-28".parse().unwrap());
        headers.insert("mcp-method", "tools/call".parse().unwrap());
        assert!(
            check_modern_headers(&headers, "2026-07-28", "tools/call", &params)
                .unwrap_err()
                .contains("Mcp-Name")
        );
        headers.insert("mcp-name", "=?base64?ZnNfX3JlYWQ=?=".parse().unwrap());
        assert!(check_modern_headers(&headers, "2026-07-28", "tools/call", &params).is_ok());
        headers.insert("mcp-method", "tools/list".parse().unwrap());
        assert!(check_modern_headers(&headers, "2026-07-28", "tools/call", &params).is_err());
    }
}
