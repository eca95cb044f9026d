//! Issue 8, the hostile caller's cases, over loopback on every face (streamable HTTP in
//! both eras, WebSocket, legacy SSE, stdio, REST): what must not leak (a page whose
//! Origin is `null`, a DNS-rebound page on REST, hidden prompts, resources, completions
//! and tools, server names) and what must be refused or kept exactly (ids, `jsonrpc`,
//! content types, Host and Origin headers, OpenAI function names).
//!
//! Each test shows the accepted path next to the refused one, so that a check that
//! refuses everything fails too.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{method_count, python_mcp1, InProcessGateway, ServerProcess};
use futures::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};

/// How long a test waits for any one answer.
const WAIT: Duration = Duration::from_secs(15);
/// The protocol revision of the session-era requests here.
const SESSION_VERSION: &str = "2025-11-25";
/// The stateless revision.
const STATELESS_VERSION: &str = "2026-07-28";
/// An id no 64-bit integer holds.
const BIG_ID: &str = "123456789012345678901234567890";

/// Settings with our fixture as `fx` and again as `secret`; `alice` may do anything,
/// `limited` may not see `fx`'s prompt `greeting`, resource `fixture://hello` and tool
/// `echo`, nor anything of `secret`; `files` is an alias of `fx`. `extra` is appended
/// (top-level keys).
fn settings_yaml(upstream: &ServerProcess, extra: &str) -> String {
    format!(
        r#"
listen: 127.0.0.1:0
servers:
  - name: fx
    url: http://127.0.0.1:{port}/mcp
  - name: secret
    url: http://127.0.0.1:{port}/mcp
aliases: {{files: fx}}
api_keys:
  - {{name: alice, key: sk-alice, team: admins}}
  - {{name: limited, key: sk-limited, team: limited}}
policies:
  default_level: deny
  teams:
    admins: {{default_level: execute}}
    limited:
      default_level: execute
      rules:
        - {{server: fx, tool: greeting, level: deny}}
        - {{server: fx, tool: "fixture://hello", level: deny}}
        - {{server: fx, tool: echo, level: deny}}
        - {{server: secret, level: deny}}
{extra}"#,
        port = upstream.port,
    )
}

/// A gateway in-process on a free port of 127.0.0.1, its fixture upstream, and the
/// settings text (for a stdio child).
struct Gateway {
    inner: InProcessGateway,
    upstream: ServerProcess,
    yaml: String,
}

impl Gateway {
    async fn start(extra: &str) -> Gateway {
        let upstream = ServerProcess::fixture(&[]);
        let yaml = settings_yaml(&upstream, extra);
        Self::on(yaml, upstream).await
    }

    async fn on(yaml: String, upstream: ServerProcess) -> Gateway {
        let inner = InProcessGateway::serve(&yaml).await;
        Gateway {
            inner,
            upstream,
            yaml,
        }
    }

    fn url(&self, path: &str) -> String {
        self.inner.url(path)
    }

    fn port(&self) -> u16 {
        self.inner.port
    }

    /// A JSON POST with `key`.
    fn post(&self, path: &str, key: Option<&str>) -> reqwest::RequestBuilder {
        let mut request = reqwest::Client::new()
            .post(self.url(path))
            .header("Content-Type", "application/json")
            .header("Accept", "application/json, text/event-stream");
        if let Some(key) = key {
            request = request.header("Authorization", format!("Bearer {key}"));
        }
        request
    }

    fn get(&self, path: &str, key: Option<&str>) -> reqwest::RequestBuilder {
        let mut request = reqwest::Client::new().get(self.url(path));
        if let Some(key) = key {
            request = request.header("Authorization", format!("Bearer {key}"));
        }
        request
    }

    async fn stop(self) {
        self.inner.stop().await;
    }
}

fn initialize_text(id: u64) -> String {
    json!({"jsonrpc": "2.0", "id": id, "method": "initialize",
        "params": {"protocolVersion": SESSION_VERSION, "capabilities": {},
            "clientInfo": {"name": "hostile", "version": "1"}}})
    .to_string()
}

/// The faces a client can speak MCP through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Face {
    /// `/mcp` with a session (`initialize`, `Mcp-Session-Id`).
    HttpSession,
    /// `/mcp` in the stateless revision.
    HttpStateless,
    /// `/ws`.
    WebSocket,
    /// `/sse` + `/messages`.
    Sse,
    /// The `litellm-mcp stdio` binary, its key from the environment.
    Stdio,
}

const EVERY_FACE: [Face; 5] = [
    Face::HttpSession,
    Face::HttpStateless,
    Face::WebSocket,
    Face::Sse,
    Face::Stdio,
];

type SseBody = std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>;
type WsSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// One client on one face, initialized, that sends a message and reads the answer's raw
/// text.
struct Client {
    face: Face,
    base: String,
    key: String,
    connection: Connection,
}

enum Connection {
    Http {
        session: Option<String>,
    },
    WebSocket(Box<WsSocket>),
    Sse {
        endpoint: String,
        body: SseBody,
        buffer: String,
    },
    Stdio(Box<StdioChild>),
}

/// The `litellm-mcp stdio` process of a client.
struct StdioChild {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    stdout: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    _dir: TempDir,
}

/// A directory removed on drop.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "litellm-hostile-{tag}-{}-{:x}",
            std::process::id(),
            rand_suffix()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(std::process::id().into());
    hasher.finish()
}

impl Client {
    async fn open(gw: &Gateway, face: Face, key: &str) -> Client {
        let connection = match face {
            Face::HttpSession => {
                let response = gw
                    .post("/mcp", Some(key))
                    .body(initialize_text(0))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), StatusCode::OK, "initialize on /mcp");
                let session = response.headers()["mcp-session-id"]
                    .to_str()
                    .unwrap()
                    .to_string();
                Connection::Http {
                    session: Some(session),
                }
            }
            Face::HttpStateless => Connection::Http { session: None },
            Face::WebSocket => {
                let mut request = format!("ws://127.0.0.1:{}/ws", gw.port())
                    .into_client_request()
                    .unwrap();
                let headers = request.headers_mut();
                headers.insert("sec-websocket-protocol", "mcp".parse().unwrap());
                headers.insert("authorization", format!("Bearer {key}").parse().unwrap());
                let (socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
                Connection::WebSocket(Box::new(socket))
            }
            Face::Sse => {
                let response = gw
                    .get("/sse", Some(key))
                    .header("Accept", "text/event-stream")
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), StatusCode::OK, "GET /sse");
                let mut connection = Connection::Sse {
                    endpoint: String::new(),
                    body: Box::pin(response.bytes_stream()),
                    buffer: String::new(),
                };
                let (event, data) = next_sse_event(&mut connection).await;
                assert_eq!(event, "endpoint");
                if let Connection::Sse { endpoint, .. } = &mut connection {
                    *endpoint = data;
                }
                connection
            }
            Face::Stdio => {
                let dir = TempDir::new("stdio");
                let config = dir.0.join("gateway.yaml");
                std::fs::write(&config, &gw.yaml).unwrap();
                let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_litellm-mcp"))
                    .arg("stdio")
                    .arg("-c")
                    .arg(&config)
                    .env("LITELLM_MCP_API_KEY", key)
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::null())
                    .kill_on_drop(true)
                    .spawn()
                    .unwrap();
                let stdin = child.stdin.take().unwrap();
                let stdout = BufReader::new(child.stdout.take().unwrap()).lines();
                Connection::Stdio(Box::new(StdioChild {
                    child,
                    stdin,
                    stdout,
                    _dir: dir,
                }))
            }
        };
        let mut client = Client {
            face,
            base: gw.url(""),
            key: key.to_string(),
            connection,
        };
        if matches!(face, Face::WebSocket | Face::Sse | Face::Stdio) {
            let init: Value =
                serde_json::from_str(&client.send(&initialize_text(0)).await).unwrap();
            assert_eq!(
                init["result"]["protocolVersion"], SESSION_VERSION,
                "{face:?}: {init}"
            );
            client
                .notify(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#)
                .await;
        }
        client
    }

    /// Sends a notification (no answer expected).
    async fn notify(&mut self, text: &str) {
        match &mut self.connection {
            Connection::WebSocket(socket) => socket.send(Message::text(text)).await.unwrap(),
            Connection::Sse { endpoint, .. } => {
                let endpoint = endpoint.clone();
                let status = self.post_message(&endpoint, text).await.0;
                assert_eq!(status, StatusCode::ACCEPTED);
            }
            Connection::Stdio(stdio) => {
                let stdin = &mut stdio.stdin;
                stdin
                    .write_all(format!("{text}\n").as_bytes())
                    .await
                    .unwrap();
            }
            Connection::Http { .. } => {}
        }
    }

    async fn post_message(&self, endpoint: &str, text: &str) -> (StatusCode, String) {
        let response = reqwest::Client::new()
            .post(format!("{}{endpoint}", self.base))
            .header("Authorization", format!("Bearer {}", self.key))
            .header("Content-Type", "application/json")
            .body(text.to_string())
            .send()
            .await
            .unwrap();
        (response.status(), response.text().await.unwrap())
    }

    /// A request with `id_text` as its id, written as is; the stateless face adds its
    /// `_meta`.
    fn request_text(&self, id_text: &str, method: &str, params: Value) -> String {
        let mut params = params;
        if self.face == Face::HttpStateless {
            params["_meta"] = json!({
                "io.modelcontextprotocol/protocolVersion": STATELESS_VERSION,
                "io.modelcontextprotocol/clientCapabilities": {},
            });
        }
        format!(
            r#"{{"jsonrpc":"2.0","id":{id_text},"method":{},"params":{params}}}"#,
            json!(method)
        )
    }

    /// Sends a request made by [`Client::request_text`] and returns the answer parsed.
    async fn call(&mut self, method: &str, params: Value) -> Value {
        let text = self.request_text("7", method, params);
        let answer = self.send(&text).await;
        serde_json::from_str(&answer).unwrap_or_else(|e| panic!("{answer}: {e}"))
    }

    /// Sends one message's text and returns the raw text of the answer to it (the HTTP
    /// body of a refused one).
    async fn send(&mut self, text: &str) -> String {
        match &mut self.connection {
            Connection::Http { session } => {
                let mut request = reqwest::Client::new()
                    .post(format!("{}/mcp", self.base))
                    .header("Authorization", format!("Bearer {}", self.key))
                    .header("Content-Type", "application/json")
                    .header("Accept", "application/json, text/event-stream")
                    .body(text.to_string());
                match session {
                    Some(session) => {
                        request = request
                            .header("Mcp-Session-Id", session.as_str())
                            .header("MCP-Protocol-Version", SESSION_VERSION);
                    }
                    None => {
                        request = request.header("MCP-Protocol-Version", STATELESS_VERSION);
                        // The headers the revision requires, from the body when it reads.
                        if let Ok(body) = serde_json::from_str::<Value>(text) {
                            if let Some(method) = body["method"].as_str() {
                                request = request.header("Mcp-Method", method);
                            }
                            let name = body["params"]["name"]
                                .as_str()
                                .or_else(|| body["params"]["uri"].as_str());
                            if let Some(name) = name {
                                request = request.header("Mcp-Name", name);
                            }
                        }
                    }
                }
                let response = request.send().await.unwrap();
                let sse = response
                    .headers()
                    .get("content-type")
                    .is_some_and(|v| v.to_str().unwrap().starts_with("text/event-stream"));
                let body = response.text().await.unwrap();
                if sse {
                    body.lines()
                        .filter_map(|l| l.strip_prefix("data: "))
                        .find(|data| is_answer(data))
                        .unwrap_or_else(|| panic!("no answer in {body}"))
                        .to_string()
                } else {
                    body
                }
            }
            Connection::WebSocket(socket) => {
                socket.send(Message::text(text)).await.unwrap();
                loop {
                    let frame = tokio::time::timeout(WAIT, socket.next())
                        .await
                        .expect("an answer within the wait")
                        .expect("the socket is open")
                        .unwrap();
                    if let Message::Text(data) = frame {
                        if is_answer(data.as_str()) {
                            return data.as_str().to_string();
                        }
                    }
                }
            }
            Connection::Sse { endpoint, .. } => {
                let endpoint = endpoint.clone();
                let (status, body) = self.post_message(&endpoint, text).await;
                if status != StatusCode::ACCEPTED {
                    return body;
                }
                loop {
                    let (event, data) = next_sse_event(&mut self.connection).await;
                    if event == "message" && is_answer(&data) {
                        return data;
                    }
                }
            }
            Connection::Stdio(stdio) => {
                let StdioChild { stdin, stdout, .. } = &mut **stdio;
                stdin
                    .write_all(format!("{text}\n").as_bytes())
                    .await
                    .unwrap();
                loop {
                    let line = tokio::time::timeout(WAIT, stdout.next_line())
                        .await
                        .expect("an answer within the wait")
                        .unwrap()
                        .expect("stdout is open");
                    if is_answer(&line) {
                        return line;
                    }
                }
            }
        }
    }

    async fn close(self) {
        if let Connection::Stdio(stdio) = self.connection {
            let StdioChild {
                mut child, stdin, ..
            } = *stdio;
            drop(stdin);
            let _ = tokio::time::timeout(WAIT, child.wait()).await;
        }
    }
}

/// Whether a message's text is a response (not a notification or a request to us).
fn is_answer(text: &str) -> bool {
    serde_json::from_str::<Value>(text).is_ok_and(|m| {
        m.get("method").is_none() && (m.get("result").is_some() || m.get("error").is_some())
    })
}

async fn next_sse_event(connection: &mut Connection) -> (String, String) {
    let Connection::Sse { body, buffer, .. } = connection else {
        panic!("not an SSE connection");
    };
    loop {
        if let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let mut event = String::from("message");
            let mut data = Vec::new();
            for line in block.lines() {
                if let Some(name) = line.strip_prefix("event:") {
                    event = name.trim().to_string();
                } else if let Some(value) = line.strip_prefix("data:") {
                    data.push(value.strip_prefix(' ').unwrap_or(value).to_string());
                }
            }
            if data.is_empty() {
                continue;
            }
            return (event, data.join("\n"));
        }
        let chunk = tokio::time::timeout(WAIT, body.next())
            .await
            .expect("an event within the wait")
            .expect("the stream is open")
            .unwrap();
        buffer.push_str(&String::from_utf8_lossy(&chunk));
    }
}

/// Sends raw bytes as one HTTP/1.1 request to the gateway and returns the status and
/// body. The request must ask for `Connection: close`.
async fn raw_http(port: u16, request: &[u8]) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(WAIT, stream.read_to_end(&mut answer)).await;
    assert!(
        read.is_ok(),
        "the gateway answered and closed within the wait"
    );
    let text = String::from_utf8_lossy(&answer).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// The body of a GET.
async fn text_of(gw: &Gateway, path: &str, key: Option<&str>) -> String {
    gw.get(path, key)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Asserts that two answers are the same error, once the missing item's name is
/// replaced by the hidden one's.
fn assert_same_error(
    what: &str,
    hidden: &Value,
    missing: &Value,
    hidden_name: &str,
    missing_name: &str,
) {
    assert!(
        hidden.get("error").is_some() && missing.get("error").is_some(),
        "{what}: both must be errors\nhidden:  {hidden}\nmissing: {missing}"
    );
    let renamed: Value = serde_json::from_str(
        &missing["error"]
            .to_string()
            .replace(missing_name, hidden_name),
    )
    .unwrap();
    assert_eq!(
        hidden["error"], renamed,
        "{what}: a hidden item must be answered as a missing one\nhidden:  {hidden}\nmissing: {missing}"
    );
}

// ---------------------------------------------------------------------------------------
// Information that leaks
// ---------------------------------------------------------------------------------------

/// "Origin: null counts as local": with no keys configured, a sandboxed iframe or a
/// `file://` page (both send `Origin: null`) must not reach /ws, /mcp, /sse or REST.
#[tokio::test]
async fn origin_null_is_not_local_on_any_face() {
    let upstream = ServerProcess::fixture(&[]);
    let yaml = format!(
        "listen: 127.0.0.1:0\nservers:\n  - name: fx\n    url: http://127.0.0.1:{}/mcp\n",
        upstream.port
    );
    let gw = Gateway::on(yaml, upstream).await;
    let calls_before = method_count(&gw.upstream, "tools/call").await;
    for origin in [None, Some("null")] {
        let refused = origin.is_some();
        let with = |request: reqwest::RequestBuilder| match origin {
            Some(origin) => request.header("Origin", origin),
            None => request,
        };
        let expect = |what: &str, status: StatusCode, ok: StatusCode| {
            if refused {
                assert_eq!(status, StatusCode::FORBIDDEN, "{what} with Origin: null");
            } else {
                assert_eq!(status, ok, "{what} without an Origin");
            }
        };
        let mcp = with(gw.post("/mcp", None))
            .body(initialize_text(1))
            .send()
            .await
            .unwrap();
        expect("POST /mcp", mcp.status(), StatusCode::OK);
        let sse = with(gw.get("/sse", None).header("Accept", "text/event-stream"))
            .send()
            .await
            .unwrap();
        expect("GET /sse", sse.status(), StatusCode::OK);
        drop(sse);
        let messages = with(gw.post("/messages?sessionId=0123", None))
            .body(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)
            .send()
            .await
            .unwrap();
        expect("POST /messages", messages.status(), StatusCode::NOT_FOUND);
        let tools = with(gw.get("/v1/mcp/tools", None)).send().await.unwrap();
        expect("GET /v1/mcp/tools", tools.status(), StatusCode::OK);
        let call = with(gw.post("/v1/mcp/tools/call", None))
            .body(r#"{"name":"fx__echo","arguments":{"text":"from a sandboxed page"}}"#)
            .send()
            .await
            .unwrap();
        expect("POST /v1/mcp/tools/call", call.status(), StatusCode::OK);

        let mut request = format!("ws://127.0.0.1:{}/ws", gw.port())
            .into_client_request()
            .unwrap();
        request
            .headers_mut()
            .insert("sec-websocket-protocol", "mcp".parse().unwrap());
        if let Some(origin) = origin {
            request
                .headers_mut()
                .insert("origin", origin.parse().unwrap());
        }
        match tokio_tungstenite::connect_async(request).await {
            Err(tungstenite::Error::Http(response)) => {
                assert!(
                    refused,
                    "/ws refused without an Origin: {}",
                    response.status()
                );
                assert_eq!(response.status().as_u16(), 403, "/ws with Origin: null");
            }
            Err(other) => panic!("/ws: {other}"),
            Ok((mut socket, _)) => {
                assert!(!refused, "/ws accepted a WebSocket from Origin: null");
                let _ = socket.close(None).await;
            }
        }
    }
    // Only the call without an Origin reached the upstream.
    let calls_after = method_count(&gw.upstream, "tools/call").await;
    assert_eq!(calls_after, calls_before + 1, "the refused call never ran");
    gw.stop().await;
}

/// "REST does no Host/Origin check": a DNS-rebound page POSTs /v1/mcp/tools/call as
/// text/plain (no preflight). REST now has /mcp's Host/Origin rules and takes only JSON.
#[tokio::test]
async fn rest_checks_host_origin_and_takes_only_json() {
    let upstream = ServerProcess::fixture(&[]);
    let yaml = format!(
        "listen: 127.0.0.1:0\nservers:\n  - name: fx\n    url: http://127.0.0.1:{}/mcp\n",
        upstream.port
    );
    let gw = Gateway::on(yaml, upstream).await;
    let calls_before = method_count(&gw.upstream, "tools/call").await;
    let body = r#"{"name":"fx__echo","arguments":{"text":"rebound"}}"#;
    let port = gw.port();
    let request = |host: &str, content_type: &str| {
        format!(
            "POST /v1/mcp/tools/call HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    };
    // The rebound page: its own name in Host, text/plain to avoid a preflight.
    let (status, answer) = raw_http(
        port,
        request(&format!("attacker.example:{port}"), "text/plain").as_bytes(),
    )
    .await;
    assert_eq!(status, 403, "{answer}");
    assert_eq!(
        serde_json::from_str::<Value>(&answer).unwrap()["error"]["type"],
        "forbidden"
    );
    let (status, _) = raw_http(
        port,
        request(&format!("attacker.example:{port}"), "application/json").as_bytes(),
    )
    .await;
    assert_eq!(status, 403, "a foreign Host is refused whatever the body");
    // A foreign Origin on a local Host, on every REST endpoint.
    for path in ["/v1/mcp/servers", "/v1/mcp/tools"] {
        let listed = gw
            .get(path, None)
            .header("Origin", "http://attacker.example")
            .send()
            .await
            .unwrap();
        assert_eq!(listed.status(), StatusCode::FORBIDDEN, "{path}");
    }
    // A local Host but not JSON: 415.
    for content_type in [
        "text/plain",
        "application/jsonx",
        "application/x-www-form-urlencoded",
    ] {
        let (status, answer) = raw_http(
            port,
            request(&format!("127.0.0.1:{port}"), content_type).as_bytes(),
        )
        .await;
        assert_eq!(status, 415, "{content_type}: {answer}");
        assert_eq!(
            serde_json::from_str::<Value>(&answer).unwrap()["error"]["type"],
            "unsupported_media_type"
        );
    }
    assert_eq!(
        method_count(&gw.upstream, "tools/call").await,
        calls_before,
        "no refused request reached the upstream"
    );
    // The local caller with JSON is served.
    let (status, answer) = raw_http(
        port,
        request(
            &format!("127.0.0.1:{port}"),
            "application/json; charset=utf-8",
        )
        .as_bytes(),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        serde_json::from_str::<Value>(&answer).unwrap()["content"][0]["text"],
        "rebound"
    );
    gw.stop().await;
}

/// "Hidden prompts, resources and completions can be told from missing ones": on every
/// face, a hidden prompt, resource, completion reference or tool is answered exactly as
/// a missing one.
#[tokio::test]
async fn hidden_items_are_answered_as_missing_ones_on_every_face() {
    let gw = Gateway::start("").await;
    let prompt = |name: &str| json!({"name": name, "arguments": {"name": "Ada"}});
    let uri = |u: &str| json!({"uri": u});
    let complete_prompt = |name: &str| json!({"ref": {"type": "ref/prompt", "name": name}, "argument": {"name": "name", "value": "A"}});
    let complete_resource = |u: &str| json!({"ref": {"type": "ref/resource", "uri": u}, "argument": {"name": "x", "value": "A"}});
    let tool = |name: &str| json!({"name": name, "arguments": {"text": "x"}});
    for face in EVERY_FACE {
        // The key that may see everything does see them: they exist.
        let mut alice = Client::open(&gw, face, "sk-alice").await;
        let got = alice.call("prompts/get", prompt("fx__greeting")).await;
        assert!(
            got["result"]["messages"].to_string().contains("Ada"),
            "{face:?}: {got}"
        );
        let read = alice
            .call("resources/read", uri("mcpgw://fx/fixture://hello"))
            .await;
        assert!(read["result"]["contents"].is_array(), "{face:?}: {read}");
        alice.close().await;

        let mut limited = Client::open(&gw, face, "sk-limited").await;
        let mut cases: Vec<(&str, &str, Value, Value, &str, &str)> = vec![
            (
                "prompts/get",
                "prompts/get",
                prompt("fx__greeting"),
                prompt("fx__nope"),
                "fx__greeting",
                "fx__nope",
            ),
            (
                "resources/read",
                "resources/read",
                uri("mcpgw://fx/fixture://hello"),
                uri("mcpgw://fx/fixture://nope"),
                "fixture://hello",
                "fixture://nope",
            ),
            (
                "completion/complete of a prompt",
                "completion/complete",
                complete_prompt("fx__greeting"),
                complete_prompt("fx__nope"),
                "fx__greeting",
                "fx__nope",
            ),
            (
                "completion/complete of a resource",
                "completion/complete",
                complete_resource("mcpgw://fx/fixture://hello"),
                complete_resource("mcpgw://fx/fixture://nope"),
                "fixture://hello",
                "fixture://nope",
            ),
            (
                "tools/call",
                "tools/call",
                tool("fx__echo"),
                tool("fx__nope"),
                "fx__echo",
                "fx__nope",
            ),
            // Rules name servers, not aliases: an alias hides the same things.
            (
                "prompts/get through an alias",
                "prompts/get",
                prompt("files__greeting"),
                prompt("files__nope"),
                "files__greeting",
                "files__nope",
            ),
            (
                "resources/read through an alias",
                "resources/read",
                uri("mcpgw://files/fixture://hello"),
                uri("mcpgw://files/fixture://nope"),
                "fixture://hello",
                "fixture://nope",
            ),
            // A server the caller may see nothing of, and one that does not exist.
            (
                "prompts/get on a hidden server",
                "prompts/get",
                prompt("secret__greeting"),
                prompt("nope__greeting"),
                "secret",
                "nope",
            ),
        ];
        if face != Face::HttpStateless {
            // The stateless revision subscribes with subscriptions/listen.
            cases.push((
                "resources/subscribe",
                "resources/subscribe",
                uri("mcpgw://fx/fixture://hello"),
                uri("mcpgw://fx/fixture://nope"),
                "fixture://hello",
                "fixture://nope",
            ));
        }
        for (what, method, hidden, missing, hidden_name, missing_name) in cases {
            let hidden_answer = limited.call(method, hidden).await;
            let missing_answer = limited.call(method, missing).await;
            assert_same_error(
                &format!("{face:?} {what}"),
                &hidden_answer,
                &missing_answer,
                hidden_name,
                missing_name,
            );
        }
        // Unsubscribing from a hidden resource is as harmless as from a missing one.
        if face != Face::HttpStateless {
            let hidden = limited
                .call("resources/unsubscribe", uri("mcpgw://fx/fixture://hello"))
                .await;
            let missing = limited
                .call("resources/unsubscribe", uri("mcpgw://fx/fixture://nope"))
                .await;
            assert_eq!(hidden, missing, "{face:?} resources/unsubscribe");
        }
        limited.close().await;
    }

    // REST: a hidden tool and a missing one, by gateway name and by server and tool.
    for (hidden, missing) in [
        (json!({"name": "fx__echo"}), json!({"name": "fx__nope"})),
        (
            json!({"server": "fx", "tool": "echo"}),
            json!({"server": "fx", "tool": "nope"}),
        ),
    ] {
        let mut answers = Vec::new();
        for body in [hidden, missing] {
            let response = gw
                .post("/v1/mcp/tools/call", Some("sk-limited"))
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = response.status();
            answers.push((status, response.json::<Value>().await.unwrap()));
        }
        assert_eq!(answers[0].0, StatusCode::NOT_FOUND, "{answers:?}");
        assert_eq!(answers[0].0, answers[1].0);
        let renamed: Value =
            serde_json::from_str(&answers[1].1.to_string().replace("fx__nope", "fx__echo"))
                .unwrap();
        assert_eq!(answers[0].1, renamed, "REST: hidden must read as missing");
    }
    gw.stop().await;
}

/// "Server names": with `server_names: private`, a server the caller may not see is
/// answered like a missing one everywhere, and the operational endpoints name nothing
/// without a key (with a key: only what that key may see). The default is `public` on a
/// loopback `listen` (names are not secret there) and `private` otherwise.
#[tokio::test]
async fn private_server_names_are_answered_like_missing_ones_everywhere() {
    let gw = Gateway::start("server_names: private\n").await;
    // Something to count for both servers.
    for name in ["fx__add", "secret__add"] {
        let called = gw
            .post("/v1/mcp/tools/call", Some("sk-alice"))
            .json(&json!({"name": name, "arguments": {"a": 1, "b": 2}}))
            .send()
            .await
            .unwrap();
        assert_eq!(called.status(), StatusCode::OK, "{name}");
    }
    // The endpoints of one server.
    for face in ["mcp", "sse", "ws"] {
        let mut answers = Vec::new();
        for (key, server) in [
            ("sk-limited", "secret"),
            ("sk-limited", "nope"),
            ("sk-alice", "secret"),
        ] {
            let path = format!("/{face}/{server}");
            let response = match face {
                "mcp" => gw
                    .post(&path, Some(key))
                    .body(initialize_text(1))
                    .send()
                    .await
                    .unwrap(),
                "sse" => gw
                    .get(&path, Some(key))
                    .header("Accept", "text/event-stream")
                    .send()
                    .await
                    .unwrap(),
                _ => gw
                    .get(&path, Some(key))
                    .header("Connection", "Upgrade")
                    .header("Upgrade", "websocket")
                    .header("Sec-WebSocket-Version", "13")
                    .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
                    .header("Sec-WebSocket-Protocol", "mcp")
                    .send()
                    .await
                    .unwrap(),
            };
            let status = response.status();
            let body = if status.is_success() || status == StatusCode::SWITCHING_PROTOCOLS {
                String::new()
            } else {
                response.text().await.unwrap()
            };
            answers.push((status, body));
        }
        assert_eq!(
            answers[0].0,
            StatusCode::NOT_FOUND,
            "/{face}/secret for limited: {answers:?}"
        );
        assert_eq!(answers[0].0, answers[1].0, "/{face}: {answers:?}");
        assert_eq!(
            answers[0].1,
            answers[1].1.replace("nope", "secret"),
            "/{face}: the same body"
        );
        assert!(
            answers[2].0.is_success() || answers[2].0 == StatusCode::SWITCHING_PROTOCOLS,
            "/{face}/secret for alice: {answers:?}"
        );
    }
    // REST: ?server= and the server list.
    let mut bodies = Vec::new();
    for server in ["secret", "nope"] {
        let listed = gw
            .get(
                &format!("/v1/mcp/tools?server={server}"),
                Some("sk-limited"),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(listed.status(), StatusCode::NOT_FOUND, "?server={server}");
        bodies.push(listed.text().await.unwrap());
    }
    assert_eq!(bodies[0], bodies[1].replace("nope", "secret"));
    for (key, expected) in [
        ("sk-limited", vec!["fx"]),
        ("sk-alice", vec!["fx", "secret"]),
    ] {
        let body: Value = gw
            .get("/v1/mcp/servers", Some(key))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let names: Vec<&str> = body["servers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, expected, "/v1/mcp/servers for {key}");
    }
    // MCP lists name no hidden server.
    let mut limited = Client::open(&gw, Face::HttpSession, "sk-limited").await;
    let listed = limited.call("tools/list", json!({})).await.to_string();
    assert!(
        listed.contains("fx__add") && !listed.contains("secret"),
        "{listed}"
    );

    // /ready and /metrics: nothing without a key, the key's own view with one.
    for path in ["/ready", "/metrics"] {
        let anonymous = text_of(&gw, path, None).await;
        assert!(
            !anonymous.contains("fx") && !anonymous.contains("secret"),
            "{path} without a key:\n{anonymous}"
        );
        assert!(
            !anonymous.contains("alice"),
            "{path} names no caller:\n{anonymous}"
        );
        let wrong = text_of(&gw, path, Some("sk-wrong")).await;
        assert!(
            !wrong.contains("fx") && !wrong.contains("secret"),
            "{path} with a wrong key:\n{wrong}"
        );
        let limited = text_of(&gw, path, Some("sk-limited")).await;
        assert!(
            limited.contains("fx") && !limited.contains("secret"),
            "{path} for limited:\n{limited}"
        );
        assert!(
            !limited.contains("alice"),
            "{path} for limited names only itself:\n{limited}"
        );
        let alice = text_of(&gw, path, Some("sk-alice")).await;
        assert!(
            alice.contains("fx") && alice.contains("secret"),
            "{path} for alice:\n{alice}"
        );
    }
    let ready: Value = gw
        .get("/ready", None)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready, json!({"ready": true}));
    let metrics = text_of(&gw, "/metrics", None).await;
    assert!(
        metrics.contains("litellm_mcp_sessions_open") && metrics.ends_with("# EOF\n"),
        "{metrics}"
    );
    let health = text_of(&gw, "/health", None).await;
    assert_eq!(
        serde_json::from_str::<Value>(&health).unwrap(),
        json!({"status": "ok"})
    );
    gw.stop().await;

    // The default on loopback is public: the same key opens /mcp/secret (and finds
    // nothing of it), and /ready names every server.
    let gw = Gateway::start("").await;
    let opened = gw
        .post("/mcp/secret", Some("sk-limited"))
        .body(initialize_text(1))
        .send()
        .await
        .unwrap();
    assert_eq!(opened.status(), StatusCode::OK, "public names on loopback");
    assert!(text_of(&gw, "/ready", None).await.contains("secret"));
    gw.stop().await;

    // Off loopback (the service binds 127.0.0.1 here, but believes its `listen`), the
    // default is private.
    let upstream = ServerProcess::fixture(&[]);
    let yaml = settings_yaml(&upstream, "").replace("listen: 127.0.0.1:0", "listen: 0.0.0.0:4000");
    let gw = Gateway::on(yaml, upstream).await;
    let hidden = gw
        .post("/mcp/secret", Some("sk-limited"))
        .body(initialize_text(1))
        .send()
        .await
        .unwrap();
    assert_eq!(
        hidden.status(),
        StatusCode::NOT_FOUND,
        "private names off loopback by default"
    );
    assert!(!text_of(&gw, "/ready", None).await.contains("secret"));
    gw.stop().await;
}

// ---------------------------------------------------------------------------------------
// Protocol strictness
// ---------------------------------------------------------------------------------------

/// "Ids that are objects, arrays, floats or booleans, jsonrpc missing or '1.0' are
/// accepted on every face (must be -32600)".
#[tokio::test]
async fn bad_ids_and_versions_are_invalid_requests_on_every_face() {
    let gw = Gateway::start("").await;
    let bad = [
        r#"{"jsonrpc":"2.0","id":{"n":1},"method":"tools/list","params":{}}"#,
        r#"{"jsonrpc":"2.0","id":[1],"method":"tools/list","params":{}}"#,
        r#"{"jsonrpc":"2.0","id":1.5,"method":"tools/list","params":{}}"#,
        r#"{"jsonrpc":"2.0","id":2.0,"method":"tools/list","params":{}}"#,
        r#"{"jsonrpc":"2.0","id":1e2,"method":"tools/list","params":{}}"#,
        r#"{"jsonrpc":"2.0","id":true,"method":"tools/list","params":{}}"#,
        r#"{"jsonrpc":"2.0","id":false,"method":"tools/list","params":{}}"#,
        r#"{"jsonrpc":"2.0","id":null,"method":"tools/list","params":{}}"#,
        r#"{"id":3,"method":"tools/list","params":{}}"#,
        r#"{"jsonrpc":"1.0","id":3,"method":"tools/list","params":{}}"#,
        r#"{"jsonrpc":2,"id":3,"method":"tools/list","params":{}}"#,
    ];
    for face in EVERY_FACE {
        let mut client = Client::open(&gw, face, "sk-alice").await;
        for text in bad {
            let answer = client.send(text).await;
            let answer: Value = serde_json::from_str(&answer)
                .unwrap_or_else(|e| panic!("{face:?} {text}: {answer}: {e}"));
            assert_eq!(answer["error"]["code"], -32600, "{face:?} {text}: {answer}");
            assert!(answer.get("result").is_none(), "{face:?} {text}: {answer}");
        }
        // A well-formed request is still served on the same connection.
        let listed = client.call("tools/list", json!({})).await;
        assert!(listed["result"]["tools"].is_array(), "{face:?}: {listed}");
        client.close().await;
    }
    gw.stop().await;
}

/// "A 30-digit id comes back as 1.2345678901234568e+29": ids come back exactly as sent,
/// on every face, for requests that succeed and that fail.
#[tokio::test]
async fn ids_beyond_64_bits_come_back_exactly_on_every_face() {
    let gw = Gateway::start("").await;
    for face in EVERY_FACE {
        let mut client = Client::open(&gw, face, "sk-alice").await;
        for id in [
            BIG_ID,
            "-99999999999999999999",
            "18446744073709551615",
            "\"s-1\"",
        ] {
            for (method, params) in [
                ("tools/list", json!({})),
                (
                    "tools/call",
                    json!({"name": "fx__echo", "arguments": {"text": "exact"}}),
                ),
                ("prompts/get", json!({"name": "fx__nope"})),
            ] {
                let text = client.request_text(id, method, params);
                let answer = client.send(&text).await;
                assert!(
                    answer.contains(&format!(r#""id":{id}"#)),
                    "{face:?} {method}: the id {id} must come back as sent: {answer}"
                );
            }
        }
        client.close().await;
    }
    gw.stop().await;
}

/// "Content-Type: application/jsonx is taken as JSON": only `application/json`, with
/// optional parameters, on /mcp, /messages and REST.
#[tokio::test]
async fn only_application_json_is_json_on_every_http_face() {
    let gw = Gateway::start("").await;
    let mut sse = Client::open(&gw, Face::Sse, "sk-alice").await;
    let Connection::Sse { endpoint, .. } = &sse.connection else {
        unreachable!()
    };
    let endpoint = endpoint.clone();
    let ping = r#"{"jsonrpc":"2.0","id":5,"method":"ping"}"#;
    let call = r#"{"name":"fx__add","arguments":{"a":1,"b":1}}"#;
    for (content_type, accepted) in [
        ("application/jsonx", false),
        ("application/json-seq", false),
        ("text/plain", false),
        ("application/json; charset=latin1", false),
        ("application/json", true),
        ("application/json; charset=utf-8", true),
    ] {
        for (path, body) in [
            ("/mcp", initialize_text(1)),
            (endpoint.as_str(), ping.to_string()),
            ("/v1/mcp/tools/call", call.to_string()),
        ] {
            let status = reqwest::Client::new()
                .post(gw.url(path))
                .header("Authorization", "Bearer sk-alice")
                .header("Content-Type", content_type)
                .header("Accept", "application/json, text/event-stream")
                .body(body)
                .send()
                .await
                .unwrap()
                .status();
            if accepted {
                assert!(status.is_success(), "{path} {content_type}: {status}");
            } else {
                assert_eq!(
                    status,
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "{path} {content_type}"
                );
            }
        }
    }
    // The accepted pings were answered on the stream.
    for _ in 0..2 {
        let (event, data) = next_sse_event(&mut sse.connection).await;
        assert_eq!(
            (
                event.as_str(),
                serde_json::from_str::<Value>(&data).unwrap()["id"].as_u64()
            ),
            ("message", Some(5))
        );
    }
    gw.stop().await;
}

/// "A Host or Origin with a non-ASCII byte, or a second Host header, skips the
/// rebinding check": refused on /mcp, /sse, /ws and REST.
#[tokio::test]
async fn an_unusual_host_or_origin_is_refused_on_every_face() {
    let gw = Gateway::start("").await;
    let port = gw.port();
    let local = format!("Host: 127.0.0.1:{port}\r\n");
    let body = initialize_text(1);
    let head = |path: &str, method: &str| {
        match (path, method) {
        ("/ws", _) => "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade, close\r\n\
                       Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                       Sec-WebSocket-Protocol: mcp\r\n"
            .to_string(),
        (_, "GET") => format!("GET {path} HTTP/1.1\r\nAccept: text/event-stream\r\nConnection: close\r\n"),
        _ => format!(
            "POST {path} HTTP/1.1\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\n\
             Content-Length: {}\r\nConnection: close\r\n",
            body.len()
        ),
    }
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("a non-ASCII Host", b"Host: localhost\xff\r\n".to_vec()),
        (
            "a non-ASCII Origin",
            [local.as_bytes(), b"Origin: http://localhost\xc3\xa9\r\n"].concat(),
        ),
        (
            "a second Host",
            format!("Host: attacker.example\r\n{local}").into_bytes(),
        ),
        (
            "a second Host after a local one",
            format!("{local}Host: attacker.example\r\n").into_bytes(),
        ),
        (
            "a second Origin",
            format!("{local}Origin: http://localhost\r\nOrigin: http://attacker.example\r\n")
                .into_bytes(),
        ),
        (
            "Origin: null",
            format!("{local}Origin: null\r\n").into_bytes(),
        ),
    ];
    for (path, method) in [
        ("/mcp", "POST"),
        ("/sse", "GET"),
        ("/ws", "GET"),
        ("/v1/mcp/tools", "GET"),
    ] {
        let send = |extra: &[u8]| {
            let mut request = head(path, method).into_bytes();
            request.extend_from_slice(b"Authorization: Bearer sk-alice\r\n");
            request.extend_from_slice(extra);
            request.extend_from_slice(b"\r\n");
            if method == "POST" {
                request.extend_from_slice(body.as_bytes());
            }
            request
        };
        for (what, extra) in &cases {
            let (status, answer) = raw_http(port, &send(extra)).await;
            assert_eq!(status, 403, "{method} {path} with {what}: {answer}");
            assert!(
                answer.contains("DNS rebinding"),
                "{method} {path} with {what}: {answer}"
            );
        }
        // The same request from a local page is served.
        if path != "/ws" && path != "/sse" {
            let (status, answer) = raw_http(
                port,
                &send(format!("{local}Origin: http://localhost:3000\r\n").as_bytes()),
            )
            .await;
            assert_eq!(status, 200, "{method} {path} from a local page: {answer}");
        }
    }
    gw.stop().await;
}

/// "?format=openai emits function names OpenAI rejects (x/y, NUL, newline, 10,000
/// characters)": every name follows `^[a-zA-Z0-9_-]{1,64}$`, no two are alike, and both
/// the OpenAI name and the gateway name call the tool.
#[tokio::test]
async fn openai_function_names_follow_openais_rule_and_stay_callable() {
    const SCRIPT: &str = r#"
import json, sys
NAMES = ["plain", "x/y", "x.y", "nul\u0000name", "new\nline", "a" * 10000, "dotted.name", "sp ace"]
for line in sys.stdin:
    if not line.strip():
        continue
    message = json.loads(line)
    if "id" not in message:
        continue
    method = message.get("method")
    if method == "initialize":
        result = {"protocolVersion": message["params"]["protocolVersion"],
                  "capabilities": {"tools": {}}, "serverInfo": {"name": "odd", "version": "1"}}
    elif method == "tools/list":
        result = {"tools": [{"name": n, "description": "odd", "inputSchema": {"type": "object", "properties": {}}} for n in NAMES]}
    elif method == "tools/call":
        result = {"content": [{"type": "text", "text": "called " + message["params"]["name"]}]}
    elif method == "ping":
        result = {}
    else:
        print(json.dumps({"jsonrpc": "2.0", "id": message["id"], "error": {"code": -32601, "message": "Method not found"}}), flush=True)
        continue
    print(json.dumps({"jsonrpc": "2.0", "id": message["id"], "result": result}), flush=True)
"#;
    let dir = TempDir::new("odd");
    let script = dir.0.join("odd_names.py");
    std::fs::write(&script, SCRIPT).unwrap();
    let upstream = ServerProcess::fixture(&[]);
    let yaml = format!(
        "listen: 127.0.0.1:0\nservers:\n  - name: odd\n    command: {}\n    args: [{}]\n    protocol: sessions\n",
        python_mcp1().display(),
        script.display()
    );
    let gw = Gateway::on(yaml, upstream).await;
    let listed: Value = gw
        .get("/v1/mcp/tools?format=openai", None)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<String> = listed["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("{listed}"))
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names.len(), 8, "every tool is representable: {names:?}");
    for name in &names {
        assert!(
            (1..=64).contains(&name.len())
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
            "OpenAI rejects {name:?}"
        );
    }
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        names.len(),
        "no two functions share a name: {names:?}"
    );
    assert!(
        names.contains(&"odd__plain".to_string()),
        "a valid name is kept as it is"
    );
    assert!(
        names.iter().any(|n| n.starts_with("odd__x_y_")),
        "{names:?}"
    );
    // Each OpenAI name calls its own tool; so does each gateway name.
    let mcp: Value = gw
        .get("/v1/mcp/tools", None)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let gateway_names: Vec<String> = mcp["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    for (openai, gateway_name) in names.iter().zip(&gateway_names) {
        let tool = gateway_name.strip_prefix("odd__").unwrap();
        for name in [openai, gateway_name] {
            let response = gw
                .post("/v1/mcp/tools/call", None)
                .json(&json!({"name": name}))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK, "{name:?}");
            let result: Value = response.json().await.unwrap();
            assert_eq!(
                result["content"][0]["text"],
                format!("called {tool}"),
                "{name:?}"
            );
        }
    }
    // A name of the mapped shape that maps to nothing is unknown.
    let unknown = gw
        .post("/v1/mcp/tools/call", None)
        .json(&json!({"name": "odd__x_y_00000000"}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    gw.stop().await;
}
