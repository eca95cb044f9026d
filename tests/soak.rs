//! A soak of the real binary: mixed traffic on every face for a while — calls and lists
//! over streamable HTTP (sessions and the stateless revision), WebSocket, legacy SSE and
//! REST; sessions abandoned without a DELETE; clients that vanish in the middle of a call;
//! calls to a dead upstream — with healthy upstreams (HTTP and stdio) beside failing
//! ones. At the end, once idle sessions have been reaped, the gateway's file descriptors,
//! background tasks and resident memory must be back within a stated margin of where
//! they were after the warm-up, every healthy call must have been answered correctly,
//! `/health` must have answered throughout, and the log must hold no panic. Hostile
//! upstreams run beside the healthy ones (`mcp-fixture --hostile`): one whose reply
//! streams never end a line, one that never reads its stdin, one that floods its stderr,
//! one whose tool list has no end; calls to them must fail within their bounds while the
//! healthy servers keep answering.
//!
//! CI runs it for `SOAK_SECS` (default 60); `SOAK_SECS=600 cargo test --release --test
//! soak -- --nocapture` is the longer run.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{closed_port, fixture_binary, ServerProcess};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

const KEY: &str = "sk-soak";
/// Idle sessions end after this (short, so the abandoned ones are reaped in the run).
const IDLE_SECS: u64 = 3;
/// Margins at the end, against the measures taken after the warm-up.
const FD_MARGIN: usize = 16;
const TASK_MARGIN: i64 = 16;
const RSS_MARGIN_KIB: u64 = 24 * 1024;

/// What the workers count.
#[derive(Default)]
struct Tally {
    /// Healthy calls answered correctly.
    answered: AtomicU64,
    /// Healthy calls that failed or answered wrongly.
    failed: AtomicU64,
    /// Calls to the dead upstream that got their error.
    dead_refused: AtomicU64,
    /// Calls to hostile upstreams that failed within their bound, as they should.
    hostile_refused: AtomicU64,
    /// Clients that vanished mid-call.
    vanished: AtomicU64,
    /// Sessions abandoned without a DELETE.
    abandoned: AtomicU64,
    /// `/health` probes that failed or took more than 2 s.
    health_failures: AtomicU64,
    /// The first failure, for the message.
    first_failure: std::sync::Mutex<Option<String>>,
}

impl Tally {
    fn ok(&self) {
        self.answered.fetch_add(1, Ordering::Relaxed);
    }
    fn fail(&self, what: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first_failure.lock().unwrap();
        if first.is_none() {
            *first = Some(what);
        }
    }
}

struct Gateway {
    child: Child,
    port: u16,
    log: std::path::PathBuf,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Gateway {
    fn start(upstream: &ServerProcess, hostile: &ServerProcess) -> Gateway {
        let dir = std::env::temp_dir().join(format!("litellm-mcp-soak-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("gateway.yaml");
        std::fs::write(
            &config,
            format!(
                r#"listen: 127.0.0.1:0
session_idle_timeout_secs: {IDLE_SECS}
max_sessions_per_key: 10000
servers:
  - {{name: ok, url: "http://127.0.0.1:{port}/mcp"}}
  - {{name: kid, command: "{fixture}", args: [--stdio]}}
  - {{name: dead, url: "http://127.0.0.1:{dead}/mcp", timeout_ms: 1000}}
  - {{name: hx, url: "http://127.0.0.1:{hostile}/mcp", timeout_ms: 3000}}
  - {{name: hs, command: "{fixture}", args: [--hostile, stdio]}}
  - {{name: deaf, command: "{fixture}", args: [--hostile, stdio-deaf], timeout_ms: 1000}}
  - {{name: bomb, command: "{fixture}", args: [--hostile, stdio-tool-bomb, --pages, "3", --page-tools, "5000"]}}
api_keys:
  - {{name: soak, key: {KEY}}}
"#,
                port = upstream.port,
                fixture = fixture_binary().display(),
                dead = closed_port(),
                hostile = hostile.port,
            ),
        )
        .unwrap();
        let log = dir.join("gateway.log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_litellm-mcp"))
            .args(["serve", "-c", config.to_str().unwrap()])
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let port = common::listening_port(child.stdout.take().unwrap(), Duration::from_secs(60));
        Gateway { child, port, log }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn fds(&self) -> usize {
        common::proc_fds(self.child.id())
    }

    fn rss_kib(&self) -> u64 {
        common::proc_rss_kib(self.child.id())
    }

    /// `litellm_mcp_tasks` from `/metrics`, when the service exposes it.
    async fn tasks(&self) -> Option<i64> {
        let text = reqwest::get(self.url("/metrics"))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.lines()
            .find(|l| l.starts_with("litellm_mcp_tasks ") || l.starts_with("litellm_mcp_tasks{"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .map(|v| v as i64)
    }

    /// Open sessions, from `/metrics`.
    async fn sessions_open(&self) -> Option<i64> {
        let text = reqwest::get(self.url("/metrics"))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.lines()
            .find(|l| l.starts_with("litellm_mcp_sessions_open"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .map(|v| v as i64)
    }
}

fn text_of(answer: &Value) -> Option<&str> {
    answer["result"]["content"][0]["text"].as_str()
}

/// One stateless (2026-07-28) request to `/mcp`.
async fn stateless(client: &reqwest::Client, gw: &str, method: &str, params: Value) -> Value {
    let mut params = params;
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
    });
    let mut request = client
        .post(gw)
        .bearer_auth(KEY)
        .header("Accept", "application/json, text/event-stream")
        .header("MCP-Protocol-Version", "2026-07-28")
        .header("Mcp-Method", method);
    if let Some(name) = params.get("name").and_then(Value::as_str) {
        request = request.header("Mcp-Name", name);
    }
    let response = request
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))
        .timeout(Duration::from_secs(10))
        .send()
        .await;
    match response {
        Ok(response) => response.json().await.unwrap_or(Value::Null),
        Err(e) => json!({"transport_error": e.to_string()}),
    }
}

/// The JSON-RPC response in a streamable HTTP reply, which may be JSON or an SSE stream
/// (the gateway streams when the upstream sends notifications during the call, such as
/// the fixture's log line for each call over a session): the one message with an `id`.
async fn reply_of(response: reqwest::Response) -> Result<Value, String> {
    let body = response.text().await.map_err(|e| e.to_string())?;
    if let Ok(v) = serde_json::from_str::<Value>(&body) {
        return Ok(v);
    }
    body.lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .filter_map(|data| serde_json::from_str::<Value>(data.trim()).ok())
        .find(|v| v.get("id").is_some())
        .ok_or_else(|| format!("no response in the reply: {body:.200}"))
}

/// Streamable HTTP in the session era: initialize, list, call; DELETE or abandon.
async fn http_session(client: &reqwest::Client, gw: &str, n: u64, tally: &Tally) {
    let post = |body: Value, session: Option<String>| {
        let mut request = client
            .post(gw)
            .bearer_auth(KEY)
            .header("Accept", "application/json, text/event-stream")
            .timeout(Duration::from_secs(10))
            .json(&body);
        if let Some(session) = session {
            request = request
                .header("Mcp-Session-Id", session)
                .header("MCP-Protocol-Version", "2025-11-25");
        }
        request.send()
    };
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "soak", "version": "1"}}});
    let Ok(response) = post(init, None).await else {
        tally.fail("http initialize: transport".into());
        return;
    };
    let Some(session) = response
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
    else {
        tally.fail(format!("http initialize: {}", response.status()));
        return;
    };
    let _ = post(
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        Some(session.clone()),
    )
    .await;
    let list = post(
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}),
        Some(session.clone()),
    )
    .await;
    match list {
        Ok(r) => match reply_of(r).await {
            Ok(v)
                if v["result"]["tools"]
                    .as_array()
                    .is_some_and(|t| !t.is_empty()) =>
            {
                tally.ok()
            }
            other => tally.fail(format!("http tools/list: {other:?}")),
        },
        Err(e) => tally.fail(format!("http tools/list: {e}")),
    }
    let text = format!("session-{n}");
    let call = post(
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "ok__echo", "arguments": {"text": text}}}),
        Some(session.clone()),
    )
    .await;
    match call {
        Ok(r) => match reply_of(r).await {
            Ok(v) if text_of(&v) == Some(text.as_str()) => tally.ok(),
            other => tally.fail(format!("http session call: {other:?}")),
        },
        Err(e) => tally.fail(format!("http session call: {e}")),
    }
    if n % 3 == 0 {
        tally.abandoned.fetch_add(1, Ordering::Relaxed);
    } else {
        let _ = client
            .delete(gw)
            .bearer_auth(KEY)
            .header("Mcp-Session-Id", session)
            .send()
            .await;
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn ws_answer(socket: &mut Ws, id: u64) -> Option<Value> {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .ok()??
            .ok()?;
        if let Message::Text(text) = message {
            let value: Value = serde_json::from_str(&text).ok()?;
            if value["id"] == json!(id) {
                return Some(value);
            }
        }
    }
}

/// WebSocket: initialize, a call; every fourth client vanishes in a slow call.
async fn websocket(gw: &Gateway, n: u64, tally: &Tally) {
    let mut request = format!("ws://127.0.0.1:{}/ws", gw.port)
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("sec-websocket-protocol", "mcp".parse().unwrap());
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {KEY}").parse().unwrap());
    let Ok((mut socket, _)) = tokio_tungstenite::connect_async(request).await else {
        tally.fail("ws connect".into());
        return;
    };
    let send = |id: u64, method: &str, params: Value| {
        Message::text(
            json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string(),
        )
    };
    let _ = socket
        .send(send(0, "initialize", json!({"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "soak", "version": "1"}})))
        .await;
    if ws_answer(&mut socket, 0).await.is_none() {
        tally.fail("ws initialize".into());
        return;
    }
    let server = if n % 2 == 0 { "ok" } else { "kid" };
    let text = format!("ws-{n}");
    let _ = socket
        .send(send(
            1,
            "tools/call",
            json!({"name": format!("{server}__echo"), "arguments": {"text": text}}),
        ))
        .await;
    match ws_answer(&mut socket, 1).await {
        Some(v) if text_of(&v) == Some(text.as_str()) => tally.ok(),
        other => tally.fail(format!("ws call on {server}: {other:?}")),
    }
    if n % 4 == 0 {
        let _ = socket
            .send(send(
                2,
                "tools/call",
                json!({"name": "ok__slow", "arguments": {"ms": 1500}}),
            ))
            .await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        tally.vanished.fetch_add(1, Ordering::Relaxed);
        drop(socket); // no close frame: gone
    } else {
        let _ = socket.close(None).await;
    }
}

/// Legacy SSE: open the stream, initialize and call over POSTs; every fourth client
/// vanishes in a slow call.
async fn sse(client: &reqwest::Client, gw: &Gateway, n: u64, tally: &Tally) {
    let Ok(response) = client
        .get(gw.url("/sse"))
        .bearer_auth(KEY)
        .header("Accept", "text/event-stream")
        .send()
        .await
    else {
        tally.fail("sse open".into());
        return;
    };
    let mut stream = response.bytes_stream();
    let mut buffer = String::new();
    // Reads SSE events until `want` says one is the answer.
    async fn next_event(
        stream: &mut (impl futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin),
        buffer: &mut String,
    ) -> Option<(String, String)> {
        loop {
            if let Some(end) = buffer.find("\n\n") {
                let event: String = buffer.drain(..end + 2).collect();
                let mut name = String::from("message");
                let mut data = String::new();
                for line in event.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        name = v.trim().to_string();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                return Some((name, data));
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), stream.next())
                .await
                .ok()??
                .ok()?;
            buffer.push_str(&String::from_utf8_lossy(&chunk).replace("\r\n", "\n"));
        }
    }
    let Some((_, endpoint)) = next_event(&mut stream, &mut buffer).await else {
        tally.fail("sse endpoint".into());
        return;
    };
    let post = |body: Value| {
        client
            .post(gw.url(&endpoint))
            .bearer_auth(KEY)
            .timeout(Duration::from_secs(10))
            .json(&body)
            .send()
    };
    async fn answer(
        stream: &mut (impl futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin),
        buffer: &mut String,
        id: u64,
    ) -> Option<Value> {
        loop {
            let (_, data) = next_event(stream, buffer).await?;
            let value: Value = serde_json::from_str(&data).ok()?;
            if value["id"] == json!(id) {
                return Some(value);
            }
        }
    }
    let _ = post(json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2024-11-05", "capabilities": {}, "clientInfo": {"name": "soak", "version": "1"}}}))
    .await;
    if answer(&mut stream, &mut buffer, 0).await.is_none() {
        tally.fail("sse initialize".into());
        return;
    }
    let text = format!("sse-{n}");
    let _ = post(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "ok__echo", "arguments": {"text": text}}}))
    .await;
    match answer(&mut stream, &mut buffer, 1).await {
        Some(v) if text_of(&v) == Some(text.as_str()) => tally.ok(),
        other => tally.fail(format!("sse call: {other:?}")),
    }
    if n % 4 == 0 {
        let _ = post(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
            "params": {"name": "ok__slow", "arguments": {"ms": 1500}}}))
        .await;
        tally.vanished.fetch_add(1, Ordering::Relaxed);
    }
    drop(stream);
}

/// REST: a call to a healthy server (HTTP or stdio), and one to the dead one.
async fn rest(client: &reqwest::Client, gw: &Gateway, n: u64, tally: &Tally) {
    let server = if n % 2 == 0 { "ok" } else { "kid" };
    let text = format!("rest-{n}");
    let response = client
        .post(gw.url("/v1/mcp/tools/call"))
        .bearer_auth(KEY)
        .timeout(Duration::from_secs(10))
        .json(&json!({"name": format!("{server}__echo"), "arguments": {"text": text}}))
        .send()
        .await;
    match response {
        Ok(r) => match r.json::<Value>().await {
            Ok(v) if v["content"][0]["text"] == json!(text) => tally.ok(),
            other => tally.fail(format!("rest call on {server}: {other:?}")),
        },
        Err(e) => tally.fail(format!("rest call: {e}")),
    }
    if n % 5 == 0 {
        let started = Instant::now();
        let response = client
            .post(gw.url("/v1/mcp/tools/call"))
            .bearer_auth(KEY)
            .timeout(Duration::from_secs(10))
            .json(&json!({"server": "dead", "tool": "echo", "arguments": {"text": "x"}}))
            .send()
            .await;
        match response {
            Ok(r) if !r.status().is_success() && started.elapsed() < Duration::from_secs(5) => {
                tally.dead_refused.fetch_add(1, Ordering::Relaxed);
            }
            other => tally.fail(format!(
                "dead upstream: {:?} after {:?}",
                other.map(|r| r.status()),
                started.elapsed()
            )),
        }
    }
}

/// Calls to hostile upstreams fail within their bounds; one that merely floods its
/// stderr still answers; the aggregated list still names the healthy servers' tools.
async fn hostile(client: &reqwest::Client, gw: &Gateway, n: u64, tally: &Tally) {
    let call = |name: &str, arguments: Value| {
        client
            .post(gw.url("/v1/mcp/tools/call"))
            .bearer_auth(KEY)
            .timeout(Duration::from_secs(15))
            .json(&json!({"name": name, "arguments": arguments}))
            .send()
    };
    for (name, arguments) in [
        ("hx__attack", json!({})),
        ("deaf__echo", json!({"text": "x"})),
    ] {
        let started = Instant::now();
        let result = call(name, arguments).await;
        let failed = match &result {
            Ok(r) => !r.status().is_success(),
            Err(_) => false,
        };
        if failed && started.elapsed() < Duration::from_secs(6) {
            tally.hostile_refused.fetch_add(1, Ordering::Relaxed);
        } else {
            tally.fail(format!(
                "{name}: {:?} after {:?}",
                result.map(|r| r.status()),
                started.elapsed()
            ));
        }
    }
    let flood = call(
        "hs__stderr_flood",
        json!({"bytes": 200_000, "line_bytes": 100}),
    )
    .await;
    match flood {
        Ok(r) if r.status().is_success() => tally.ok(),
        other => tally.fail(format!("hs__stderr_flood: {:?}", other.map(|r| r.status()))),
    }
    let list = stateless(client, &gw.url("/mcp"), "tools/list", json!({})).await;
    let names: Vec<&str> = list["result"]["tools"]
        .as_array()
        .map(|t| t.iter().filter_map(|t| t["name"].as_str()).collect())
        .unwrap_or_default();
    if names.contains(&"ok__echo") && names.contains(&"kid__echo") {
        tally.ok();
    } else {
        tally.fail(format!("aggregated tools/list {n}: {list}"));
    }
}

/// Runs every kind of client, `per_kind` at once, until `until`.
async fn traffic(gw: Arc<Gateway>, tally: Arc<Tally>, until: Instant, per_kind: u64) {
    let client = reqwest::Client::new();
    let mut workers = Vec::new();
    for kind in 0..6u64 {
        for w in 0..per_kind {
            let (gw, tally, client) = (gw.clone(), tally.clone(), client.clone());
            workers.push(tokio::spawn(async move {
                let mut n = w;
                while Instant::now() < until {
                    match kind {
                        0 => http_session(&client, &gw.url("/mcp"), n, &tally).await,
                        1 => {
                            let text = format!("stateless-{n}");
                            let answer = stateless(
                                &client,
                                &gw.url("/mcp"),
                                "tools/call",
                                json!({"name": "ok__echo", "arguments": {"text": text}}),
                            )
                            .await;
                            if text_of(&answer) == Some(text.as_str()) {
                                tally.ok();
                            } else {
                                tally.fail(format!("stateless call: {answer}"));
                            }
                        }
                        2 => websocket(&gw, n, &tally).await,
                        3 => sse(&client, &gw, n, &tally).await,
                        4 => rest(&client, &gw, n, &tally).await,
                        _ if w == 0 => hostile(&client, &gw, n, &tally).await,
                        _ => return,
                    }
                    n += per_kind;
                }
            }));
        }
    }
    for worker in workers {
        worker.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_traffic_with_vanishing_clients_leaves_nothing_behind() {
    let secs: u64 = std::env::var("SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let upstream = ServerProcess::fixture(&[]);
    let hostile = ServerProcess::fixture(&["--hostile", "http"]);
    let gw = Arc::new(Gateway::start(&upstream, &hostile));
    let tally = Arc::new(Tally::default());

    // Warm-up: the same traffic briefly, so pools and caches hold what they will hold.
    traffic(
        gw.clone(),
        tally.clone(),
        Instant::now() + Duration::from_secs(5),
        2,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(IDLE_SECS + 3)).await;
    let fds_before = gw.fds();
    let rss_before = gw.rss_kib();
    let tasks_before = gw.tasks().await;
    eprintln!("after warm-up: {fds_before} fds, {rss_before} KiB, tasks {tasks_before:?}");

    // /health throughout.
    let until = Instant::now() + Duration::from_secs(secs);
    let health = {
        let (gw, tally) = (gw.clone(), tally.clone());
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            while Instant::now() < until {
                let ok = client
                    .get(gw.url("/health"))
                    .timeout(Duration::from_secs(2))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                if !ok {
                    tally.health_failures.fetch_add(1, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    };
    traffic(gw.clone(), tally.clone(), until, 3).await;
    health.await.unwrap();

    // Idle sessions (the abandoned ones) are reaped; vanished calls are cancelled.
    let settle = Instant::now() + Duration::from_secs(IDLE_SECS * 3 + 10);
    while Instant::now() < settle && gw.sessions_open().await.unwrap_or(0) > 0 {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (fds_after, rss_after, tasks_after) = (gw.fds(), gw.rss_kib(), gw.tasks().await);
    let count = |c: &AtomicU64| c.load(Ordering::Relaxed);
    eprintln!(
        "after {secs} s: {} healthy calls answered, {} failed, {} dead-upstream refusals, {} hostile-upstream refusals, {} vanished, {} abandoned; {fds_after} fds, {rss_after} KiB, tasks {tasks_after:?}, sessions open {:?}",
        count(&tally.answered),
        count(&tally.failed),
        count(&tally.dead_refused),
        count(&tally.hostile_refused),
        count(&tally.vanished),
        count(&tally.abandoned),
        gw.sessions_open().await,
    );
    assert_eq!(
        count(&tally.failed),
        0,
        "every healthy call is answered; first failure: {:?}",
        tally.first_failure.lock().unwrap()
    );
    assert!(count(&tally.answered) > 100, "the soak did work");
    assert!(
        count(&tally.vanished) > 0 && count(&tally.abandoned) > 0 && count(&tally.dead_refused) > 0
    );
    assert_eq!(
        count(&tally.health_failures),
        0,
        "/health answered throughout"
    );
    assert_eq!(
        gw.sessions_open().await,
        Some(0),
        "idle sessions were reaped"
    );
    assert!(
        fds_after <= fds_before + FD_MARGIN,
        "fds {fds_before} -> {fds_after} (margin {FD_MARGIN})"
    );
    assert!(
        rss_after <= rss_before + RSS_MARGIN_KIB,
        "RSS {rss_before} -> {rss_after} KiB (margin {RSS_MARGIN_KIB} KiB)"
    );
    if let (Some(before), Some(after)) = (tasks_before, tasks_after) {
        assert!(after <= before + TASK_MARGIN, "tasks {before} -> {after}");
    }
    let log = std::fs::read_to_string(&gw.log).unwrap();
    assert!(!log.contains("panicked"), "a panic in the log");
}
