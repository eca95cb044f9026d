//! The service's duplex faces, spoken to over loopback: WebSocket (`/ws`), the legacy
//! HTTP+SSE transport (`/sse` + `/messages`) and stdio (in-process over pipes, and the
//! `litellm-mcp stdio` binary), raw and through the Python SDK 1.x clients.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{
    closed_port, fixture_binary, python_mcp1, repo_root, InProcessGateway, ServerProcess,
};
use futures::{SinkExt, StreamExt};
use litellm_rs::proxy::{self, AppState};
use litellm_rs::settings::Settings;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};

/// How long a test waits for any one message.
const WAIT: Duration = Duration::from_secs(10);

/// The settings of every gateway here: our fixture over HTTP (`fx`) and over stdio
/// (`kid`), a dead server, keys with different rights; `more_servers` are YAML list
/// items appended to `servers`.
fn settings_yaml(upstream_port: u16, more_servers: &str) -> String {
    format!(
        r#"
listen: 127.0.0.1:0
max_body_bytes: 65536
servers:
  - name: fx
    url: http://127.0.0.1:{port}/mcp
  - name: kid
    command: {fixture}
    args: [--stdio]
  - name: dead
    url: http://127.0.0.1:{dead}/mcp
    timeout_ms: 1000
{more_servers}
api_keys:
  - {{name: alice, key: sk-alice, team: admins}}
  - {{name: bob, key: sk-bob, team: admins}}
  - {{name: reader, key: sk-reader, team: readers}}
policies:
  default_level: deny
  teams:
    admins: {{default_level: execute, rules: [{{server: fx, tool: crash, level: deny}}]}}
    readers: {{default_level: read}}
"#,
        port = upstream_port,
        fixture = fixture_binary().display(),
        dead = closed_port(),
    )
}

/// A gateway served in-process on a free port; stops when dropped.
struct Gateway {
    base: String,
    port: u16,
    inner: InProcessGateway,
    _upstreams: Vec<ServerProcess>,
}

impl Gateway {
    async fn start() -> Gateway {
        Self::start_with("", Vec::new()).await
    }

    /// With the reference server over stdio as `ev` too.
    async fn with_everything() -> Gateway {
        let ev = format!(
            "  - name: ev\n    command: {}\n    args: [{}, stdio]",
            common::node().display(),
            common::server_everything().display()
        );
        Self::start_with(&ev, Vec::new()).await
    }

    /// With the conformance suite's upstream (resources to subscribe to, a tool that
    /// logs) over streamable HTTP as `conf` too.
    async fn with_conformance_fixture() -> Gateway {
        let script = repo_root().join("tests/conformance/fixture-server.cjs");
        let conf = ServerProcess::start(common::node(), &[script.to_str().unwrap()]);
        let entry = format!(
            "  - name: conf\n    url: http://127.0.0.1:{}/mcp",
            conf.port
        );
        Self::start_with(&entry, vec![conf]).await
    }

    async fn start_with(more_servers: &str, mut upstreams: Vec<ServerProcess>) -> Gateway {
        let upstream = ServerProcess::fixture(&[]);
        let yaml = settings_yaml(upstream.port, more_servers);
        let inner = InProcessGateway::serve(&yaml).await;
        upstreams.push(upstream);
        Gateway {
            base: inner.base.clone(),
            port: inner.port,
            inner,
            _upstreams: upstreams,
        }
    }

    async fn stop(self) {
        self.inner.stop().await;
    }

    async fn metrics(&self) -> String {
        reqwest::get(format!("{}/metrics", self.base))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// A WebSocket to `path`, offering subprotocol `mcp`, with the key and Origin given.
    async fn ws(
        &self,
        path: &str,
        key: Option<&str>,
        origin: Option<&str>,
    ) -> Result<Ws, tungstenite::Error> {
        let mut request = format!("ws://127.0.0.1:{}{path}", self.port)
            .into_client_request()
            .unwrap();
        let headers = request.headers_mut();
        headers.insert("sec-websocket-protocol", "mcp".parse().unwrap());
        if let Some(key) = key {
            headers.insert("authorization", format!("Bearer {key}").parse().unwrap());
        }
        if let Some(origin) = origin {
            headers.insert("origin", origin.parse().unwrap());
        }
        let (socket, response) = tokio_tungstenite::connect_async(request).await?;
        assert_eq!(
            response.headers()["sec-websocket-protocol"],
            "mcp",
            "the gateway chose the subprotocol the client offered"
        );
        Ok(Ws { socket })
    }

    /// Opens an SSE session on `path`; returns it with the endpoint to POST to.
    async fn sse(&self, path: &str, key: &str) -> SseStream {
        let response = reqwest::Client::new()
            .get(format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {key}"))
            .header("Accept", "text/event-stream")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream"));
        let mut stream = SseStream {
            body: Box::pin(response.bytes_stream()),
            buffer: String::new(),
            endpoint: String::new(),
        };
        let (event, data) = stream.next_event().await;
        assert_eq!(event, "endpoint", "the first event names the endpoint");
        stream.endpoint = data;
        stream
    }

    /// POSTs one message (raw text) to an SSE session's endpoint with `key`.
    async fn post_message(&self, endpoint: &str, key: &str, body: &str) -> reqwest::Response {
        reqwest::Client::new()
            .post(format!("{}{endpoint}", self.base))
            .header("Authorization", format!("Bearer {key}"))
            .header("Content-Type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap()
    }
}

/// A client's WebSocket to the gateway.
struct Ws {
    socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl Ws {
    async fn send(&mut self, message: &Value) {
        self.send_text(&message.to_string()).await;
    }

    async fn send_text(&mut self, text: &str) {
        self.socket.send(Message::text(text)).await.unwrap();
    }

    /// The next JSON-RPC message.
    async fn recv(&mut self) -> Value {
        loop {
            let frame = tokio::time::timeout(WAIT, self.socket.next())
                .await
                .expect("a message within the wait")
                .expect("the socket is open")
                .unwrap();
            match frame {
                Message::Text(text) => return serde_json::from_str(text.as_str()).unwrap(),
                Message::Ping(_) | Message::Pong(_) => {}
                other => panic!("unexpected frame {other:?}"),
            }
        }
    }

    /// Reads until the response to `id`; returns the messages before it and it.
    async fn response(&mut self, id: u64) -> (Vec<Value>, Value) {
        let mut before = Vec::new();
        loop {
            let message = self.recv().await;
            if message["id"] == id && message.get("method").is_none() {
                return (before, message);
            }
            before.push(message);
        }
    }

    /// Sends a request and waits for its response.
    async fn call(&mut self, request: Value) -> Value {
        let id = request["id"].as_u64().unwrap();
        self.send(&request).await;
        self.response(id).await.1
    }

    /// `initialize` and `notifications/initialized`, declaring `elicitation` (what the upstream may ask of it).
    async fn initialize(&mut self) -> Value {
        let result = self
            .call(json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
                "params": {"protocolVersion": "2025-11-25", "capabilities": {"elicitation": {}}, "clientInfo": {"name": "t", "version": "1"}}}))
            .await;
        self.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
        result
    }
}

/// A client's SSE session.
struct SseStream {
    body: std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buffer: String,
    /// Where to POST, as the `endpoint` event named it.
    endpoint: String,
}

impl SseStream {
    /// The next event (name, data), skipping comments.
    async fn next_event(&mut self) -> (String, String) {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
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
                    continue; // a keep-alive comment
                }
                return (event, data.join("\n"));
            }
            let chunk = tokio::time::timeout(WAIT, self.body.next())
                .await
                .expect("an event within the wait")
                .expect("the stream is open")
                .unwrap();
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// The next `message` event's JSON-RPC message.
    /// The next message, past the fixture's log messages: it speaks both eras, and on
    /// the session a session-era client goes through it logs each call, as it does
    /// directly.
    async fn next_message(&mut self) -> Value {
        loop {
            let (event, data) = self.next_event().await;
            assert_eq!(event, "message");
            let message: Value = serde_json::from_str(&data).unwrap();
            if message["method"] != "notifications/message" {
                return message;
            }
        }
    }
}

fn call_tool(id: u64, name: &str, arguments: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": name, "arguments": arguments}})
}

fn tool_names(listed: &Value) -> Vec<String> {
    listed["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

/// The fixture's counters, from `kid__stats`.
async fn kid_stats(ws: &mut Ws, id: u64) -> Value {
    let stats = ws.call(call_tool(id, "kid__stats", json!({}))).await;
    serde_json::from_str(stats["result"]["content"][0]["text"].as_str().unwrap()).unwrap()
}

#[tokio::test]
async fn websocket_sessions_list_call_stream_progress_and_cancel() {
    let gw = Gateway::start().await;
    let mut ws = gw.ws("/ws", Some("sk-alice"), None).await.unwrap();
    let init = ws.initialize().await;
    assert_eq!(init["result"]["protocolVersion"], "2025-11-25");
    assert_eq!(init["result"]["serverInfo"]["name"], "litellm-mcp");

    let names = tool_names(
        &ws.call(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
            .await,
    );
    assert!(names.contains(&"fx__echo".to_string()), "{names:?}");
    assert!(
        !names.contains(&"fx__crash".to_string()),
        "a denied tool is not listed"
    );
    let echoed = ws
        .call(call_tool(2, "fx__echo", json!({"text": "over ws"})))
        .await;
    assert_eq!(echoed["result"]["content"][0]["text"], "over ws");
    assert!(echoed["result"].get("resultType").is_none(), "{echoed}");

    // Progress under the client's own token, before the response.
    ws.send(&json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": {"name": "fx__progress", "arguments": {"steps": 3}, "_meta": {"progressToken": "mine"}}}))
        .await;
    let (before, done) = ws.response(3).await;
    assert_eq!(done["result"]["content"][0]["text"], "done");
    let progress: Vec<&Value> = before
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .collect();
    assert_eq!(progress.len(), 3, "{before:?}");
    for (i, note) in progress.iter().enumerate() {
        assert_eq!(note["params"]["progressToken"], "mine");
        assert_eq!(note["params"]["progress"].as_f64(), Some(i as f64 + 1.0));
    }

    // Requests run concurrently: a hanging call does not hold up the next one, and the
    // client's notifications/cancelled stops it here and upstream, without a response.
    // (A first call opens the session a session-era client gets on this dual-era
    // upstream: a second stdio process, beside the stateless one. Opened before the hang,
    // so the hang is sent before it is cancelled.)
    kid_stats(&mut ws, 99).await;
    ws.send(&call_tool(4, "kid__hang", json!({}))).await;
    let quick = ws
        .call(call_tool(5, "fx__echo", json!({"text": "meanwhile"})))
        .await;
    assert_eq!(quick["result"]["content"][0]["text"], "meanwhile");
    ws.send(
        &json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 4}}),
    )
    .await;
    let mut heard = false;
    for attempt in 0..20u64 {
        let stats = kid_stats(&mut ws, 100 + attempt).await;
        if !stats["cancelled"].as_array().unwrap().is_empty() {
            heard = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(heard, "upstream heard the cancellation");
    // No response to the cancelled request came (kid__stats answers were all we read).

    // An upstream's list change reaches the initialized client.
    ws.send(&call_tool(6, "kid__change_tools", json!({}))).await;
    let mut announced = false;
    let mut answered = false;
    while !(announced && answered) {
        let message = ws.recv().await;
        assert_ne!(message["id"], 4, "a cancelled request gets no response");
        announced |= message["method"] == "notifications/tools/list_changed";
        answered |= message["id"] == 6;
    }

    // A client that goes away takes its calls with it: they are cancelled upstream.
    let cancelled_before = kid_stats(&mut ws, 200).await["cancelled"]
        .as_array()
        .unwrap()
        .len();
    let mut leaving = gw.ws("/ws", Some("sk-alice"), None).await.unwrap();
    leaving.initialize().await;
    leaving.send(&call_tool(1, "kid__hang", json!({}))).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(leaving);
    let mut heard = false;
    for attempt in 0..20u64 {
        let stats = kid_stats(&mut ws, 300 + attempt).await;
        if stats["cancelled"].as_array().unwrap().len() > cancelled_before {
            heard = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        heard,
        "upstream heard the cancellation of the departed client's call"
    );

    // One server, its own names.
    let mut one = gw.ws("/ws/fx", Some("sk-alice"), None).await.unwrap();
    one.initialize().await;
    let own = one.call(call_tool(1, "echo", json!({"text": "own"}))).await;
    assert_eq!(own["result"]["content"][0]["text"], "own");

    let metrics = gw.metrics().await;
    assert!(
        metrics.contains(r#"face="ws",method="tools/call",outcome="ok""#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"server="kid",tool="hang",outcome="cancelled""#));

    // Shutdown closes the open sockets, and they do not hold it up.
    let stopping = std::time::Instant::now();
    gw.stop().await;
    assert!(stopping.elapsed() < Duration::from_millis(1900));
    for socket in [&mut ws, &mut one] {
        let ended = tokio::time::timeout(WAIT, async {
            while let Some(Ok(frame)) = socket.socket.next().await {
                if matches!(frame, Message::Close(_)) {
                    break;
                }
            }
        })
        .await;
        assert!(ended.is_ok(), "the socket was closed");
    }
}

#[tokio::test]
async fn websocket_bad_input_is_answered_and_the_socket_keeps_working() {
    let gw = Gateway::start().await;
    let mut ws = gw.ws("/ws", Some("sk-alice"), None).await.unwrap();
    ws.initialize().await;
    let cases = [
        ("{not json", -32700),
        (r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#, -32600),
        (r#"{"jsonrpc":"2.0","id":1}"#, -32600),
        ("42", -32600),
    ];
    for (text, code) in cases {
        ws.send_text(text).await;
        let error = ws.recv().await;
        assert_eq!(error["error"]["code"], code, "{text}: {error}");
        assert_eq!(error["id"], Value::Null);
    }
    let unknown = ws
        .call(json!({"jsonrpc": "2.0", "id": 1, "method": "no/such"}))
        .await;
    assert_eq!(unknown["error"]["code"], -32601);
    // A binary frame holding JSON is read as text.
    ws.socket
        .send(Message::binary(
            br#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#.to_vec(),
        ))
        .await
        .unwrap();
    assert_eq!(ws.response(2).await.1["result"], json!({}));
    // A reader sees but cannot call.
    let mut reader = gw.ws("/ws", Some("sk-reader"), None).await.unwrap();
    reader.initialize().await;
    let refused = reader
        .call(call_tool(1, "fx__echo", json!({"text": "x"})))
        .await;
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Permission denied"),
        "{refused}"
    );

    // A message over max_body_bytes cannot be skipped: the connection closes with 1009.
    let huge = call_tool(3, "fx__echo", json!({"text": "x".repeat(100_000)}));
    let _ = ws.socket.send(Message::text(huge.to_string())).await;
    let ending = tokio::time::timeout(WAIT, async {
        loop {
            match ws.socket.next().await {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| f.code),
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return None,
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(ending, Some(CloseCode::Size));

    // The handshake is refused like an HTTP request on /mcp.
    let status = |result: Result<Ws, tungstenite::Error>| match result {
        Err(tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("the handshake was accepted"),
    };
    assert_eq!(status(gw.ws("/ws", None, None).await), 401);
    assert_eq!(status(gw.ws("/ws", Some("sk-wrong"), None).await), 401);
    assert_eq!(
        status(
            gw.ws("/ws", Some("sk-alice"), Some("http://evil.example"))
                .await
        ),
        403
    );
    assert_eq!(status(gw.ws("/ws/nope", Some("sk-alice"), None).await), 404);
    // A local Origin is fine.
    gw.ws("/ws", Some("sk-alice"), Some("http://localhost:3000"))
        .await
        .unwrap();
    // A plain GET is not an upgrade.
    let plain = reqwest::Client::new()
        .get(format!("{}/ws", gw.base))
        .header("Authorization", "Bearer sk-alice")
        .send()
        .await
        .unwrap();
    assert!(plain.status().is_client_error());
    gw.stop().await;
}

#[tokio::test]
async fn sse_sessions_answer_on_the_stream_and_belong_to_their_key() {
    let gw = Gateway::start().await;
    let mut sse = gw.sse("/sse", "sk-alice").await;
    assert!(
        sse.endpoint.starts_with("/messages?sessionId="),
        "{}",
        sse.endpoint
    );
    let endpoint = sse.endpoint.clone();
    let initialize = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": "2024-11-05", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let posted = gw
        .post_message(&endpoint, "sk-alice", &initialize.to_string())
        .await;
    assert_eq!(posted.status(), StatusCode::ACCEPTED);
    let init = sse.next_message().await;
    assert_eq!(init["id"], 0);
    assert_eq!(init["result"]["protocolVersion"], "2024-11-05");
    let posted = gw
        .post_message(
            &endpoint,
            "sk-alice",
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        )
        .await;
    assert_eq!(posted.status(), StatusCode::ACCEPTED);
    let call = call_tool(1, "fx__echo", json!({"text": "over sse"}));
    let posted = gw
        .post_message(&endpoint, "sk-alice", &call.to_string())
        .await;
    assert_eq!(posted.status(), StatusCode::ACCEPTED);
    let echoed = sse.next_message().await;
    assert_eq!(echoed["id"], 1);
    assert_eq!(echoed["result"]["content"][0]["text"], "over sse");
    // Progress before the response, on the stream.
    let progress = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "fx__progress", "arguments": {"steps": 2}, "_meta": {"progressToken": 9}}});
    gw.post_message(&endpoint, "sk-alice", &progress.to_string())
        .await;
    for step in 1..=2 {
        let note = sse.next_message().await;
        assert_eq!(note["method"], "notifications/progress");
        assert_eq!(note["params"]["progressToken"], 9);
        assert_eq!(note["params"]["progress"].as_f64(), Some(f64::from(step)));
    }
    assert_eq!(sse.next_message().await["id"], 2);

    // Another key's POST, an unknown session, a session of another endpoint: 404.
    let ping = r#"{"jsonrpc":"2.0","id":3,"method":"ping"}"#;
    let foreign = gw.post_message(&endpoint, "sk-bob", ping).await;
    assert_eq!(foreign.status(), StatusCode::NOT_FOUND);
    let unknown = gw
        .post_message("/messages?sessionId=0123", "sk-alice", ping)
        .await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let elsewhere = endpoint.replace("/messages?", "/messages/fx?");
    assert_eq!(
        gw.post_message(&elsewhere, "sk-alice", ping).await.status(),
        StatusCode::NOT_FOUND
    );
    // No key: 401. Malformed JSON, a batch: 400, and nothing reaches the session.
    let anonymous = reqwest::Client::new()
        .post(format!("{}{endpoint}", gw.base))
        .header("Content-Type", "application/json")
        .body(ping)
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let malformed = gw.post_message(&endpoint, "sk-alice", "{not json").await;
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        malformed.json::<Value>().await.unwrap()["error"]["code"],
        -32700
    );
    let batch = gw
        .post_message(&endpoint, "sk-alice", &format!("[{ping}]"))
        .await;
    assert_eq!(batch.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        batch.json::<Value>().await.unwrap()["error"]["code"],
        -32600
    );
    let huge = call_tool(4, "fx__echo", json!({"text": "x".repeat(100_000)}));
    let too_big = gw
        .post_message(&endpoint, "sk-alice", &huge.to_string())
        .await;
    assert_eq!(too_big.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // The session still works.
    assert_eq!(
        gw.post_message(&endpoint, "sk-alice", ping).await.status(),
        StatusCode::ACCEPTED
    );
    assert_eq!(sse.next_message().await["id"], 3);

    // One server: its endpoint, its own names.
    let mut one = gw.sse("/sse/fx", "sk-alice").await;
    assert!(
        one.endpoint.starts_with("/messages/fx?sessionId="),
        "{}",
        one.endpoint
    );
    let own = call_tool(1, "echo", json!({"text": "own"}));
    let posted = gw
        .post_message(&one.endpoint.clone(), "sk-alice", &own.to_string())
        .await;
    assert_eq!(posted.status(), StatusCode::ACCEPTED);
    assert_eq!(
        one.next_message().await["result"]["content"][0]["text"],
        "own"
    );

    // The stream's end ends the session.
    drop(sse);
    let mut gone = false;
    for _ in 0..50 {
        if gw.post_message(&endpoint, "sk-alice", ping).await.status() == StatusCode::NOT_FOUND {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(gone, "the session ended with its stream");

    // The same checks as /mcp on opening.
    let refused = reqwest::Client::new()
        .get(format!("{}/sse", gw.base))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let rebinding = reqwest::Client::new()
        .get(format!("{}/sse", gw.base))
        .header("Authorization", "Bearer sk-alice")
        .header("Origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(rebinding.status(), StatusCode::FORBIDDEN);

    let metrics = gw.metrics().await;
    assert!(
        metrics.contains(r#"face="sse",method="tools/call",outcome="ok""#),
        "{metrics}"
    );

    // Shutdown ends the open streams, and they do not hold it up.
    let stopping = std::time::Instant::now();
    gw.stop().await;
    assert!(stopping.elapsed() < Duration::from_millis(1900));
    let ended = tokio::time::timeout(WAIT, async {
        while let Some(Ok(_)) = one.body.next().await {}
    })
    .await;
    assert!(ended.is_ok(), "the stream ended");
}

/// A stdio session over in-process pipes: its input and its output, line by line.
struct StdioSession {
    input: tokio::io::DuplexStream,
    output: tokio::io::Lines<BufReader<tokio::io::DuplexStream>>,
    served: tokio::task::JoinHandle<std::io::Result<()>>,
    _upstream: ServerProcess,
}

impl StdioSession {
    /// `stdio_face::serve` over a gateway without keys whose callers may call.
    async fn start() -> StdioSession {
        let upstream = ServerProcess::fixture(&[]);
        let yaml = format!(
            "servers:\n  - name: fx\n    url: http://127.0.0.1:{}/mcp\npolicies:\n  default_level: execute\n",
            upstream.port
        );
        let settings = Settings::parse(&yaml, &|_| None).unwrap();
        let gateway = settings.build_gateway().await.unwrap();
        let state = AppState::new(gateway, &settings);
        let (input, server_input) = tokio::io::duplex(64 * 1024);
        let (server_output, output) = tokio::io::duplex(64 * 1024);
        let served = tokio::spawn(proxy::stdio_face::serve(state, server_input, server_output));
        StdioSession {
            input,
            output: BufReader::new(output).lines(),
            served,
            _upstream: upstream,
        }
    }

    async fn send_line(&mut self, line: &str) {
        self.input.write_all(line.as_bytes()).await.unwrap();
        self.input.write_all(b"\n").await.unwrap();
    }

    /// The next message, past the fixture's log messages (see `next_message`).
    async fn recv(&mut self) -> Value {
        loop {
            let line = tokio::time::timeout(WAIT, self.output.next_line())
                .await
                .expect("a line within the wait")
                .unwrap()
                .expect("stdout is open");
            let message: Value = serde_json::from_str(&line).unwrap();
            if message["method"] != "notifications/message" {
                return message;
            }
        }
    }
}

#[tokio::test]
async fn stdio_serves_lines_and_skips_bad_ones() {
    let mut stdio = StdioSession::start().await;
    stdio
        .send_line(r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#)
        .await;
    let init = stdio.recv().await;
    assert_eq!(init["result"]["protocolVersion"], "2025-06-18");
    stdio
        .send_line(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#)
        .await;
    stdio
        .send_line(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#)
        .await;
    let listed = stdio.recv().await;
    assert!(tool_names(&listed).contains(&"fx__echo".to_string()));
    // A garbage line, a blank line, a line over 16 MiB: errors, and the session goes on.
    stdio.send_line("this is not json").await;
    let garbage = stdio.recv().await;
    assert_eq!(garbage["error"]["code"], -32700);
    stdio.send_line("   ").await;
    let long = "x".repeat(16 * 1024 * 1024 + 10);
    stdio.send_line(&long).await;
    let too_long = stdio.recv().await;
    assert_eq!(too_long["error"]["code"], -32600, "{too_long}");
    stdio
        .send_line(&call_tool(2, "fx__echo", json!({"text": "over stdio"})).to_string())
        .await;
    let echoed = stdio.recv().await;
    assert_eq!(echoed["id"], 2);
    assert_eq!(echoed["result"]["content"][0]["text"], "over stdio");
    // stdin ends with a call in flight: it is still answered, then serve returns.
    stdio
        .send_line(&call_tool(3, "fx__slow", json!({"ms": 300})).to_string())
        .await;
    stdio.input.shutdown().await.unwrap();
    let slow = stdio.recv().await;
    assert_eq!(slow["id"], 3);
    assert_eq!(slow["result"]["content"][0]["text"], "slept 300");
    let served = tokio::time::timeout(Duration::from_secs(15), stdio.served)
        .await
        .unwrap()
        .unwrap();
    assert!(served.is_ok());
}

#[tokio::test]
async fn the_stdio_binary_takes_its_key_from_the_environment() {
    let upstream = ServerProcess::fixture(&[]);
    let dir = std::env::temp_dir().join(format!("litellm-faces-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("gateway.yaml");
    std::fs::write(&config, settings_yaml(upstream.port, "")).unwrap();
    let run = |key: &str| {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_litellm-mcp"))
            .arg("stdio")
            .arg("-c")
            .arg(&config)
            .env("LITELLM_MCP_API_KEY", key)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap()
    };
    // The reader's key: it sees the tools and may not call them.
    let mut child = run("sk-reader");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let requests = [
        json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
        call_tool(2, "fx__echo", json!({"text": "x"})),
    ];
    for request in &requests {
        stdin
            .write_all(format!("{request}\n").as_bytes())
            .await
            .unwrap();
    }
    let mut answers = std::collections::HashMap::new();
    while answers.len() < 3 {
        let line = tokio::time::timeout(Duration::from_secs(30), stdout.next_line())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let message: Value = serde_json::from_str(&line).unwrap();
        answers.insert(message["id"].as_u64().unwrap(), message);
    }
    assert_eq!(answers[&0]["result"]["serverInfo"]["name"], "litellm-mcp");
    assert!(tool_names(&answers[&1]).contains(&"fx__echo".to_string()));
    assert!(answers[&2]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Permission denied"));
    drop(stdin);
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "stdin's end is a clean exit");
    // A key that is not configured: the process refuses to start.
    let mut child = run("sk-wrong");
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(!status.success());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn the_python_sdk_1x_clients_over_websocket_and_sse() {
    let gw = Gateway::start().await;
    let script = repo_root().join("tests/clients/py1_ws_sse_client.py");
    let output = tokio::time::timeout(
        Duration::from_secs(90),
        tokio::process::Command::new(python_mcp1())
            .arg(&script)
            .args(["--base", &gw.base, "--key", "sk-alice"])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the Python client finishes")
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "py1 client failed\nstdout: {stdout}\nstderr: {stderr}"
    );
    let summary: Value = serde_json::from_str(stdout.trim()).unwrap();
    for face in ["ws", "sse"] {
        let s = &summary[face];
        assert_eq!(s["server"], "litellm-mcp", "{face}: {s}");
        assert!(
            s["tools"].as_array().unwrap().contains(&json!("fx__echo")),
            "{face}: {s}"
        );
        assert_eq!(s["echo"], "hello from py1", "{face}: {s}");
        assert_eq!(s["echo_is_error"], false);
        assert_eq!(s["progress_result"], "done");
        assert_eq!(
            s["progress"].as_array().unwrap().len(),
            3,
            "{face}: progress reached the SDK's callback: {s}"
        );
    }
    assert_eq!(summary["ws"]["subprotocol"], "mcp");
    gw.stop().await;
}

#[tokio::test]
async fn an_upstreams_elicitation_is_relayed_over_websocket_and_answered_back() {
    let gw = Gateway::with_everything().await;
    let mut ws = gw.ws("/ws", Some("sk-alice"), None).await.unwrap();
    ws.initialize().await;
    ws.send(&call_tool(1, "ev__trigger-elicitation-request", json!({})))
        .await;
    // (The reference server also announces list changes now and then.)
    let request = loop {
        let message = ws.recv().await;
        if message.get("id").is_some() {
            break message;
        }
    };
    assert_eq!(request["method"], "elicitation/create", "{request}");
    assert!(
        request["id"].as_str().unwrap().starts_with("gw-"),
        "{request}"
    );
    assert!(request["params"]["requestedSchema"]["properties"]["name"].is_object());
    // An answer to no request of ours is ignored.
    ws.send(&json!({"jsonrpc": "2.0", "id": "gw-999", "result": {}}))
        .await;
    ws.send(&json!({"jsonrpc": "2.0", "id": request["id"], "result": {"action": "accept", "content": {"name": "Ada", "check": true}}}))
        .await;
    let (_, result) = ws.response(1).await;
    let text = result["result"]["content"].to_string();
    assert!(text.contains("Name: Ada"), "{result}");
    gw.stop().await;
}

#[tokio::test]
async fn subscriptions_and_log_levels_belong_to_the_websocket_session() {
    let gw = Gateway::with_conformance_fixture().await;
    let mut ws = gw.ws("/ws", Some("sk-alice"), None).await.unwrap();
    ws.initialize().await;
    let mut other = gw.ws("/ws", Some("sk-alice"), None).await.unwrap();
    other.initialize().await;

    // The fixture "changes" a resource right after it is subscribed to: the update
    // reaches the subscriber, under its name of the resource, and nobody else.
    let uri = "mcpgw://conf/test://watched-resource";
    let subscribed = ws
        .call(json!({"jsonrpc": "2.0", "id": 1, "method": "resources/subscribe", "params": {"uri": uri}}))
        .await;
    assert_eq!(subscribed["result"], json!({}), "{subscribed}");
    let updated = loop {
        let message = ws.recv().await;
        if message["method"] == "notifications/resources/updated" {
            break message;
        }
    };
    assert_eq!(updated["params"]["uri"], uri);
    let (before, _) = {
        other
            .send(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}))
            .await;
        other.response(1).await
    };
    assert!(
        before
            .iter()
            .all(|m| m["method"] != "notifications/resources/updated"),
        "{before:?}"
    );
    // An unknown resource cannot be subscribed to.
    let unknown = ws
        .call(json!({"jsonrpc": "2.0", "id": 2, "method": "resources/subscribe", "params": {"uri": "mcpgw://nope/x"}}))
        .await;
    assert!(unknown["error"].is_object(), "{unknown}");

    // A call's log messages come before its response, down to the level the session set.
    ws.send(&call_tool(3, "conf__test_tool_with_logging", json!({})))
        .await;
    let (before, done) = ws.response(3).await;
    assert!(done["result"].is_object(), "{done}");
    let logs = before
        .iter()
        .filter(|m| m["method"] == "notifications/message")
        .count();
    assert_eq!(logs, 3, "{before:?}");
    let set = ws
        .call(json!({"jsonrpc": "2.0", "id": 4, "method": "logging/setLevel", "params": {"level": "error"}}))
        .await;
    assert_eq!(set["result"], json!({}), "{set}");
    ws.send(&call_tool(5, "conf__test_tool_with_logging", json!({})))
        .await;
    let (before, _) = ws.response(5).await;
    assert!(
        before
            .iter()
            .all(|m| m["method"] != "notifications/message"),
        "info is below error: {before:?}"
    );
    gw.stop().await;
}
