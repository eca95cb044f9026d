//! Hostile and broken clients against the real `litellm-mcp serve` binary (and `stdio`)
//! over loopback: idle and dripping sockets, a connection flood past the cap, the HTTP/2
//! preface, a legacy SSE client that stops reading, too many calls in flight on one
//! session, anonymous clients filling the session cap, clients that vanish mid-call, and
//! WebSocket/stdio frames that break the protocol or UTF-8.
//!
//! Each test measures what it claims — time to the error, `/health` latency throughout,
//! the gateway's descriptors (`/proc/<pid>/fd`), RSS (`/proc/<pid>/status`) and live
//! tasks (`litellm_mcp_tasks`) before and after — and prints the figures. The bounds of
//! `proxy::listener` are shortened for most tests through their environment variables;
//! one test waits for the default header timeout.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{get_json, ServerProcess};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// The per-session cap on requests in flight (`proxy::sessions`).
const IN_FLIGHT_CAP: usize = litellm_rs::proxy::sessions::MAX_IN_FLIGHT_PER_SESSION;

/// The gateway binary on a settings file, with extra environment; killed on drop.
struct Gateway {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Gateway {
    /// `litellm-mcp serve` over one fixture upstream (`fx`), anonymous clients allowed
    /// to call, at most 5 sessions per key (or address).
    fn start(upstream: &ServerProcess, env: &[(&str, &str)]) -> Gateway {
        Self::start_limited(upstream, env, None)
    }

    /// Like [`Gateway::start`], with the file descriptor limit (`RLIMIT_NOFILE`) set
    /// to `descriptors` when given.
    fn start_limited(
        upstream: &ServerProcess,
        env: &[(&str, &str)],
        descriptors: Option<u64>,
    ) -> Gateway {
        let yaml = format!(
            // `protocol: stateless`: these tests measure the gateway's downstream bounds
            // in messages per call; over the session a session-era client would get on
            // this dual-era fixture, it also logs each call (a second message).
            "listen: 127.0.0.1:0\nmax_sessions_per_key: 5\nservers:\n  - name: fx\n    url: http://127.0.0.1:{}/mcp\n    protocol: stateless\npolicies:\n  default_level: execute\n",
            upstream.port
        );
        let dir = std::env::temp_dir().join(format!(
            "litellm-hostile-{}-{}",
            std::process::id(),
            rand_suffix()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("gateway.yaml");
        std::fs::write(&config, yaml).unwrap();
        let binary = env!("CARGO_BIN_EXE_litellm-mcp");
        let config = config.to_str().unwrap();
        // The shell sets the limit and execs the gateway: same process, same pid.
        let script = match descriptors {
            Some(n) => format!("ulimit -n {n} && exec \"$0\" serve -c \"$1\" --grace-secs 2"),
            None => "exec \"$0\" serve -c \"$1\" --grace-secs 2".to_string(),
        };
        let mut child = Command::new("sh")
            .args(["-c", &script, binary, config])
            .envs(env.iter().copied())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let port = common::listening_port(child.stdout.take().unwrap(), Duration::from_secs(60));
        Gateway { child, port, dir }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Open file descriptors of the gateway process.
    fn fds(&self) -> usize {
        common::proc_fds(self.pid())
    }

    /// Resident memory of the gateway process, in KiB.
    fn rss_kib(&self) -> u64 {
        common::proc_rss_kib(self.pid())
    }

    /// A gauge from `/metrics`.
    async fn gauge(&self, name: &str) -> i64 {
        let text = fresh_client()
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} is not in /metrics:\n{text}"))
    }

    /// How long `/health` takes on a new connection; fails past 2 s.
    async fn health(&self) -> Duration {
        let started = Instant::now();
        let response = tokio::time::timeout(
            Duration::from_secs(2),
            fresh_client().get(self.url("/health")).send(),
        )
        .await
        .expect("/health answered within 2 s")
        .expect("/health answered");
        assert_eq!(response.status(), 200);
        started.elapsed()
    }

    /// Waits (up to `limit`) until the descriptors are back to at most `target`.
    async fn fds_back_to(&self, target: usize, limit: Duration) -> usize {
        let deadline = Instant::now() + limit;
        loop {
            let now = self.fds();
            if now <= target || Instant::now() > deadline {
                return now;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Client connections the gateway holds open (its sockets on its own port,
    /// established or half-closed by the client), from `/proc/net/tcp{,6}`.
    fn client_sockets(&self) -> usize {
        let port = format!("{:04X}", self.port);
        ["/proc/net/tcp", "/proc/net/tcp6"]
            .iter()
            .filter_map(|path| std::fs::read_to_string(path).ok())
            .flat_map(|table| {
                table
                    .lines()
                    .skip(1)
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .filter(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let local_port = fields.get(1).and_then(|a| a.rsplit(':').next());
                let state = fields.get(3).copied();
                local_port == Some(port.as_str()) && matches!(state, Some("01" | "08"))
            })
            .count()
    }

    /// Waits (up to `limit`) until `litellm_mcp_tasks` is back to at most `target`.
    async fn tasks_back_to(&self, target: i64, limit: Duration) -> i64 {
        let deadline = Instant::now() + limit;
        loop {
            let now = self.gauge("litellm_mcp_tasks").await;
            if now <= target || Instant::now() > deadline {
                return now;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(Instant::now().elapsed().as_nanos());
    hasher.finish()
}

/// A client that opens a new connection for every request.
fn fresh_client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

/// Reads from `socket` until it is closed (or `limit` passes); returns what arrived and
/// how long until the close.
async fn until_closed(socket: &mut TcpStream, limit: Duration) -> (Vec<u8>, Option<Duration>) {
    let started = Instant::now();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = limit.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, socket.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (seen, Some(started.elapsed())),
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
            Err(_) => return (seen, None),
        }
    }
}

fn call_tool(id: u64, name: &str, arguments: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": name, "arguments": arguments}})
}

fn initialize(id: u64) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "hostile", "version": "1"}}})
}

/// POSTs a JSON-RPC message to `/mcp`.
fn mcp_post(
    client: &reqwest::Client,
    gw: &Gateway,
    body: &Value,
    session: Option<&str>,
) -> reqwest::RequestBuilder {
    let mut request = client
        .post(gw.url("/mcp"))
        .header("Content-Type", "application/json")
        .header("Accept", "application/json, text/event-stream")
        .json(body);
    if let Some(session) = session {
        request = request.header("Mcp-Session-Id", session);
    }
    request
}

/// The fixture's count of cancelled requests.
async fn cancelled(upstream: &ServerProcess) -> usize {
    get_json(&upstream.url("/stats")).await["cancelled"]
        .as_array()
        .map_or(0, Vec::len)
}

/// Waits (up to `limit`) for `check` on the fixture's stats; returns how long it took.
async fn upstream_until(
    upstream: &ServerProcess,
    limit: Duration,
    check: impl Fn(&Value) -> bool,
) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if check(&get_json(&upstream.url("/stats")).await) {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

#[tokio::test]
async fn idle_dripping_and_flooding_clients_are_closed_while_health_answers() {
    let upstream = ServerProcess::fixture(&[]);
    let gw = Gateway::start(
        &upstream,
        &[
            ("LITELLM_MCP_HEADER_TIMEOUT_MS", "1500"),
            ("LITELLM_MCP_BODY_TIMEOUT_MS", "1500"),
            ("LITELLM_MCP_MAX_CONNECTIONS", "32"),
        ],
    );
    gw.health().await;
    let fds_before = gw.fds();
    let tasks_before = gw.gauge("litellm_mcp_tasks").await;
    let started = Instant::now();
    // 60 idle sockets against a cap of 32.
    // Each is watched from its connect: how long until the gateway closes it.
    let mut idle = Vec::new();
    for _ in 0..60 {
        let mut socket = TcpStream::connect(("127.0.0.1", gw.port)).await.unwrap();
        idle.push(tokio::spawn(async move {
            until_closed(&mut socket, Duration::from_secs(6)).await.1
        }));
    }
    // A client dripping its request head, one byte every 400 ms.
    let port = gw.port;
    let head_drip = tokio::spawn(async move {
        let mut socket = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let started = Instant::now();
        for byte in b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" {
            if socket.write_all(&[*byte]).await.is_err() {
                return started.elapsed();
            }
            let mut buf = [0u8; 64];
            match tokio::time::timeout(Duration::from_millis(400), socket.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return started.elapsed(),
                _ => {}
            }
        }
        panic!("the whole dripped head was taken");
    });
    // A client dripping its body, one byte every 400 ms.
    let body_drip = tokio::spawn(async move {
        let mut socket = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let head = format!("POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nAccept: application/json\r\nContent-Length: 200\r\n\r\n{{");
        socket.write_all(head.as_bytes()).await.unwrap();
        let started = Instant::now();
        let mut seen = Vec::new();
        loop {
            let mut buf = [0u8; 1024];
            match tokio::time::timeout(Duration::from_millis(400), socket.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return (started.elapsed(), seen),
                Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
                Err(_) => {}
            }
            if socket.write_all(b" ").await.is_err() || started.elapsed() > Duration::from_secs(10)
            {
                return (started.elapsed(), seen);
            }
        }
    });
    // /health answers throughout, on new connections.
    let mut slowest_health = Duration::ZERO;
    while started.elapsed() < Duration::from_millis(2500) {
        slowest_health = slowest_health.max(gw.health().await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut latest_close = Duration::ZERO;
    for socket in idle {
        let closed = socket.await.unwrap().expect("every idle socket was closed");
        latest_close = latest_close.max(closed);
    }
    let head_closed = head_drip.await.unwrap();
    let (body_closed, answer) = body_drip.await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    let fds_after = gw.fds_back_to(fds_before, Duration::from_secs(3)).await;
    let tasks_after = gw.tasks_back_to(tasks_before, Duration::from_secs(3)).await;
    println!(
        "idle: 60 sockets (cap 32) all closed by {latest_close:?} after connecting; head drip closed after {head_closed:?}; body drip answered after {body_closed:?}: {:?}; slowest /health {slowest_health:?}; fds {fds_before} -> {fds_after}; tasks {tasks_before} -> {tasks_after}",
        answer.lines().next()
    );
    assert!(
        latest_close < Duration::from_millis(2000),
        "idle sockets closed within the header timeout (1.5 s): {latest_close:?}"
    );
    assert!(
        head_closed >= Duration::from_millis(1200) && head_closed < Duration::from_millis(2500),
        "the dripping head was cut at the header timeout: {head_closed:?}"
    );
    assert!(
        answer.starts_with("HTTP/1.1 408"),
        "the dripping body got 408: {answer}"
    );
    assert!(answer.contains("-32600"), "with a JSON-RPC error: {answer}");
    assert!(
        body_closed < Duration::from_millis(2500),
        "the body timeout answered in time: {body_closed:?}"
    );
    assert!(
        slowest_health < Duration::from_millis(1000),
        "/health stayed quick: {slowest_health:?}"
    );
    assert!(
        fds_after <= fds_before,
        "descriptors back: {fds_before} -> {fds_after}"
    );
    assert!(
        tasks_after <= tasks_before,
        "tasks back: {tasks_before} -> {tasks_after}"
    );
}

#[tokio::test]
async fn with_256_descriptors_300_idle_sockets_leave_health_answering() {
    let upstream = ServerProcess::fixture(&[]);
    // The cap is fitted to the limit (half of it: 128); no cap is set here.
    let gw = Gateway::start_limited(
        &upstream,
        &[("LITELLM_MCP_HEADER_TIMEOUT_MS", "2000")],
        Some(256),
    );
    gw.health().await;
    let fds_before = gw.fds();
    let started = Instant::now();
    let mut idle = Vec::new();
    for _ in 0..300 {
        let mut socket = TcpStream::connect(("127.0.0.1", gw.port)).await.unwrap();
        idle.push(tokio::spawn(async move {
            until_closed(&mut socket, Duration::from_secs(8)).await.1
        }));
    }
    let mut fds_peak = gw.fds();
    let mut slowest_health = Duration::ZERO;
    let mut checks = 0;
    // While more connections wait for a place than the listener keeps waiting (64), a
    // newcomer may be closed at once (the README's bound); a probe then tries again, as
    // a client would.
    let mut refused_probes = 0;
    while started.elapsed() < Duration::from_millis(3000) {
        let mut answered = None;
        for _ in 0..3 {
            let probe = Instant::now();
            let response = tokio::time::timeout(
                Duration::from_secs(2),
                fresh_client().get(gw.url("/health")).send(),
            )
            .await
            .expect("/health answered or refused within 2 s");
            match response {
                Ok(r) if r.status() == 200 => {
                    answered = Some(probe.elapsed());
                    break;
                }
                _ => refused_probes += 1,
            }
        }
        let took = answered.expect("/health answered within three tries");
        slowest_health = slowest_health.max(took);
        fds_peak = fds_peak.max(gw.fds());
        checks += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        refused_probes <= checks,
        "most /health probes were answered at once: {refused_probes} refused of {checks}"
    );
    let mut latest_close = Duration::ZERO;
    for socket in idle {
        let closed = socket.await.unwrap().expect("every idle socket was closed");
        latest_close = latest_close.max(closed);
    }
    let fds_after = gw.fds_back_to(fds_before, Duration::from_secs(3)).await;
    println!(
        "256 descriptors: 300 idle sockets; {checks} /health checks meanwhile ({refused_probes} tries closed at once), slowest {slowest_health:?}; all idle sockets closed by {latest_close:?}; fds {fds_before} -> peak {fds_peak} -> {fds_after}"
    );
    assert!(
        slowest_health < Duration::from_millis(1000),
        "/health stayed quick: {slowest_health:?}"
    );
    assert!(
        fds_peak < 200,
        "descriptors stayed under the limit: peak {fds_peak}"
    );
    assert!(
        latest_close < Duration::from_millis(3000),
        "idle sockets closed by the header timeout: {latest_close:?}"
    );
    assert!(
        fds_after <= fds_before,
        "descriptors back: {fds_before} -> {fds_after}"
    );
}

#[tokio::test]
async fn streams_that_stay_open_outlive_the_idle_bound() {
    let upstream = ServerProcess::fixture(&[]);
    let gw = Gateway::start(&upstream, &[("LITELLM_MCP_HEADER_TIMEOUT_MS", "1000")]);
    // A legacy SSE stream, quiet for 2.5 s, then used.
    let client = reqwest::Client::new();
    let mut stream = client
        .get(gw.url("/sse"))
        .header("Accept", "text/event-stream")
        .send()
        .await
        .unwrap()
        .bytes_stream();
    let mut text = String::new();
    let endpoint = loop {
        text.push_str(&String::from_utf8_lossy(
            &stream.next().await.unwrap().unwrap(),
        ));
        if let Some(line) = text.lines().find_map(|l| l.strip_prefix("data: ")) {
            break gw.url(line.trim());
        }
    };
    // A WebSocket, quiet for 2.5 s, then used.
    let mut request = format!("ws://127.0.0.1:{}/ws", gw.port)
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("sec-websocket-protocol", "mcp".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let status = client
        .post(&endpoint)
        .header("Content-Type", "application/json")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 202, "the SSE session is still there");
    let answer = loop {
        let chunk = tokio::time::timeout(Duration::from_secs(3), stream.next())
            .await
            .expect("the stream still carries answers")
            .unwrap()
            .unwrap();
        let chunk = String::from_utf8_lossy(&chunk).to_string();
        if chunk.contains("\"id\":1") {
            break chunk;
        }
    };
    ws.send(Message::Text(
        json!({"jsonrpc": "2.0", "id": 2, "method": "ping"})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(3), ws.next())
        .await
        .expect("the WebSocket still answers")
        .unwrap()
        .unwrap();
    println!(
        "open streams: SSE answered after 2.5 s idle ({}), WebSocket answered ({reply})",
        answer.trim()
    );
    assert!(reply.to_string().contains("\"id\":2"));
}

#[tokio::test]
async fn at_the_cap_with_every_connection_busy_a_newcomer_gets_503_within_the_admission_wait() {
    let upstream = ServerProcess::fixture(&[]);
    let gw = Gateway::start(&upstream, &[("LITELLM_MCP_MAX_CONNECTIONS", "4")]);
    // Four SSE streams: busy connections, never closed to make room.
    let mut streams = Vec::new();
    for _ in 0..4 {
        let mut socket = TcpStream::connect(("127.0.0.1", gw.port)).await.unwrap();
        socket
            .write_all(
                format!(
                    "GET /sse HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAccept: text/event-stream\r\n\r\n",
                    gw.port
                )
                .as_bytes(),
            )
            .await
            .unwrap();
        let mut first = [0u8; 12];
        socket.read_exact(&mut first).await.unwrap();
        assert_eq!(&first, b"HTTP/1.1 200");
        streams.push(socket);
    }
    let started = Instant::now();
    let mut newcomer = TcpStream::connect(("127.0.0.1", gw.port)).await.unwrap();
    newcomer
        .write_all(
            format!(
                "GET /health HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\r\n",
                gw.port
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let (answer, closed) = until_closed(&mut newcomer, Duration::from_secs(5)).await;
    let took = closed.expect("the newcomer was answered and closed");
    let answer = String::from_utf8_lossy(&answer).to_string();
    // A stream ends: room again.
    drop(streams.pop());
    let deadline = Instant::now() + Duration::from_secs(3);
    let health_back = loop {
        match tokio::time::timeout(
            Duration::from_secs(2),
            fresh_client().get(gw.url("/health")).send(),
        )
        .await
        {
            Ok(Ok(response)) if response.status() == 200 => break started.elapsed(),
            _ if Instant::now() > deadline => panic!("/health never came back"),
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    println!(
        "cap 4, all busy: newcomer answered {:?} after {took:?}; /health 200 again {health_back:?} after the newcomer came (a stream had ended)",
        answer.lines().next()
    );
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        answer.contains("-32000") && answer.contains("connection cap"),
        "{answer}"
    );
    assert!(
        took < Duration::from_millis(1500),
        "within the admission wait: {took:?}"
    );
}

#[tokio::test]
async fn an_idle_socket_is_closed_by_the_default_header_timeout() {
    let upstream = ServerProcess::fixture(&[]);
    let gw = Gateway::start(&upstream, &[]);
    let mut socket = TcpStream::connect(("127.0.0.1", gw.port)).await.unwrap();
    let (seen, closed) = until_closed(&mut socket, Duration::from_secs(15)).await;
    let closed = closed.expect("the idle socket was closed");
    println!("default header timeout: idle socket closed after {closed:?}");
    assert!(seen.is_empty());
    let default = litellm_rs::proxy::listener::HEADER_READ_TIMEOUT;
    assert!(
        closed >= default - Duration::from_millis(200) && closed < default + Duration::from_secs(2),
        "closed after {closed:?}, the default is {default:?}"
    );
}

#[tokio::test]
async fn the_http2_preface_is_answered_as_h2c() {
    let upstream = ServerProcess::fixture(&[]);
    let gw = Gateway::start(&upstream, &[("LITELLM_MCP_HEADER_TIMEOUT_MS", "1500")]);
    // A real HTTP/2 client with prior knowledge.
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let started = Instant::now();
    let response = tokio::time::timeout(Duration::from_secs(3), h2.get(gw.url("/health")).send())
        .await
        .expect("answered in time")
        .unwrap();
    let took = started.elapsed();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), 200);
    // The bare preface: the server's SETTINGS frame comes back at once, and the
    // connection, with no stream opened, is closed at the header timeout.
    let mut socket = TcpStream::connect(("127.0.0.1", gw.port)).await.unwrap();
    socket
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut first = [0u8; 9];
    tokio::time::timeout(Duration::from_secs(2), socket.read_exact(&mut first))
        .await
        .expect("a frame came back")
        .unwrap();
    let settings_after = started.elapsed();
    assert_eq!(first[3], 0x4, "the first frame is SETTINGS: {first:?}");
    let (_, closed) = until_closed(&mut socket, Duration::from_secs(5)).await;
    let closed = closed.expect("the idle h2 connection was closed");
    println!("h2c: /health over HTTP/2 in {took:?}; bare preface answered with SETTINGS in {settings_after:?}, closed after {closed:?}");
    assert!(settings_after < Duration::from_millis(500));
    assert!(closed < Duration::from_secs(3));
}

/// What one SSE non-reader cost and got.
struct NonReader {
    accepted: usize,
    accepted_late: usize,
    refused: usize,
    slowest_post: Duration,
    session_closed_after: Duration,
    rss_after_first_round: u64,
    rss_after_second_round: u64,
}

/// Opens `/sse` on a socket with a small receive buffer, reads up to the endpoint, then
/// reads nothing more; POSTs two rounds of 400 calls with 32 KiB answers (16 at a
/// time), then waits for the session to be closed. Checks every POST's answer.
async fn sse_non_reader(gw: &Gateway) -> NonReader {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket
        .connect(format!("127.0.0.1:{}", gw.port).parse().unwrap())
        .await
        .unwrap();
    let mut stream = tokio::io::BufReader::new(stream);
    stream
        .get_mut()
        .write_all(
            format!(
                "GET /sse HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAccept: text/event-stream\r\n\r\n",
                gw.port
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut endpoint = None;
    while endpoint.is_none() {
        let mut line = String::new();
        stream.read_line(&mut line).await.unwrap();
        if let Some(path) = line.trim().strip_prefix("data: ") {
            endpoint = Some(path.to_string());
        }
    }
    let endpoint = gw.url(&endpoint.unwrap());
    let client = reqwest::Client::new();
    let text = "x".repeat(32 * 1024);
    let round = |first: u64| {
        let client = client.clone();
        let endpoint = endpoint.clone();
        let text = text.clone();
        futures::stream::iter(first..first + 400)
            .map(move |n| {
                let request = client
                    .post(&endpoint)
                    .header("Content-Type", "application/json")
                    .json(&call_tool(n, "fx__echo", json!({"text": text})));
                async move {
                    let started = Instant::now();
                    let response = tokio::time::timeout(Duration::from_secs(5), request.send())
                        .await
                        .expect("no POST hangs")
                        .unwrap();
                    let status = response.status().as_u16();
                    let body = response.json::<Value>().await.unwrap_or(Value::Null);
                    (status, started.elapsed(), body)
                }
            })
            .buffer_unordered(16)
            .collect::<Vec<(u16, Duration, Value)>>()
    };
    // The first round fills what the session may hold; the second must all be refused.
    let first = round(0).await;
    let rss_after_first_round = gw.rss_kib();
    let second = round(1000).await;
    let rss_after_second_round = gw.rss_kib();
    let accepted = first.iter().chain(&second).filter(|r| r.0 == 202).count();
    let accepted_late = second.iter().filter(|r| r.0 == 202).count();
    let refused: Vec<_> = first.iter().chain(&second).filter(|r| r.0 == 503).collect();
    let mut statuses: Vec<u16> = first.iter().chain(&second).map(|r| r.0).collect();
    statuses.sort_unstable();
    statuses.dedup();
    assert_eq!(
        accepted + refused.len(),
        800,
        "every POST was 202 or 503: {statuses:?}"
    );
    // What a session that does not read can take is bounded by its queues: the
    // messages waiting for it (64), its calls in flight (64), the answers waiting for
    // the stream (256), and the POSTs on their way (16 at a time). How much of it the
    // first round fills depends on the machine's speed, so the bound is on both rounds.
    assert!(
        accepted <= 64 + 64 + 256 + 16,
        "a session that does not read takes a bounded number of messages: {accepted} accepted ({accepted_late} in the second round)"
    );
    for (_, _, body) in &refused {
        assert_eq!(body["error"]["code"], -32029, "{body}");
    }
    let slowest_post = first.iter().chain(&second).map(|r| r.1).max().unwrap();
    // The stalled stream is closed after the write-stall timeout; the session is gone.
    let stalled = Instant::now();
    let session_closed_after = loop {
        let status = client
            .post(&endpoint)
            .header("Content-Type", "application/json")
            .json(&json!({"jsonrpc": "2.0", "id": 9999, "method": "ping"}))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        if status == 404 {
            break stalled.elapsed();
        }
        assert!(
            stalled.elapsed() < Duration::from_secs(8),
            "the session was never closed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    NonReader {
        accepted,
        accepted_late,
        refused: refused.len(),
        slowest_post,
        session_closed_after,
        rss_after_first_round,
        rss_after_second_round,
    }
}

#[tokio::test]
async fn a_legacy_sse_client_that_stops_reading_gets_prompt_refusals_then_loses_its_session() {
    let upstream = ServerProcess::fixture(&[]);
    let gw = Gateway::start(&upstream, &[("LITELLM_MCP_WRITE_STALL_TIMEOUT_MS", "3000")]);
    gw.health().await;
    let fds_before = gw.fds();
    let rss_before = gw.rss_kib();
    let tasks_before = gw.gauge("litellm_mcp_tasks").await;
    let once = sse_non_reader(&gw).await;
    let sockets_after_once = {
        let deadline = Instant::now() + Duration::from_secs(3);
        while gw.client_sockets() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        gw.client_sockets()
    };
    let rss_after_once = gw.rss_kib();
    // The same attack again: what the first one held was given back for reuse.
    let twice = sse_non_reader(&gw).await;
    gw.health().await;
    let tasks_after = gw.tasks_back_to(tasks_before, Duration::from_secs(3)).await;
    let rss_after_twice = gw.rss_kib();
    let fds_after = gw.fds();
    for (n, run) in [&once, &twice].iter().enumerate() {
        println!(
            "sse non-reader #{}: {} POSTs accepted ({} of them in the second round), {} refused 503, slowest POST {:?}; session closed {:?} after the last POST; RSS after round 1 {} KiB, after round 2 {} KiB",
            n + 1,
            run.accepted,
            run.accepted_late,
            run.refused,
            run.slowest_post,
            run.session_closed_after,
            run.rss_after_first_round,
            run.rss_after_second_round
        );
        assert!(
            run.slowest_post < Duration::from_secs(1),
            "POSTs were answered promptly: {:?}",
            run.slowest_post
        );
        assert!(
            run.session_closed_after < Duration::from_secs(5),
            "closed within the stall timeout: {:?}",
            run.session_closed_after
        );
        assert!(
            // 400 refused POSTs carried 12.5 MiB; allocator granularity aside, they
            // leave nothing behind.
            run.rss_after_second_round < run.rss_after_first_round + 8 * 1024,
            "refused POSTs cost no memory: {} -> {} KiB",
            run.rss_after_first_round,
            run.rss_after_second_round
        );
    }
    println!(
        "sse non-reader: RSS {rss_before} -> {rss_after_once} (after one) -> {rss_after_twice} KiB (after two); client sockets after one: {sockets_after_once}; fds {fds_before} -> {fds_after} (the rest: idle upstream connections in the pool); tasks {tasks_before} -> {tasks_after}"
    );
    assert_eq!(sockets_after_once, 0, "every client connection was closed");
    assert!(
        // The first attack costs about 40 MB that the allocator keeps; a second one
        // adds little (a leak would add as much again).
        rss_after_twice < rss_after_once + 16 * 1024,
        "a second attack reuses the memory of the first: {rss_after_once} -> {rss_after_twice} KiB"
    );
    assert!(
        fds_after <= fds_before + IN_FLIGHT_CAP,
        "descriptors bounded: {fds_before} -> {fds_after}"
    );
    assert!(
        tasks_after <= tasks_before,
        "tasks back: {tasks_before} -> {tasks_after}"
    );
}

#[tokio::test]
async fn one_websocket_gets_at_most_the_cap_of_calls_in_flight() {
    let upstream = ServerProcess::fixture(&[]);
    let gw = Gateway::start(&upstream, &[]);
    gw.health().await;
    let fds_before = gw.fds();
    let mut request = format!("ws://127.0.0.1:{}/ws", gw.port)
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("sec-websocket-protocol", "mcp".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let sent = Instant::now();
    for n in 0..1000u64 {
        ws.feed(Message::Text(
            call_tool(n, "fx__slow", json!({"ms": 1500}))
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
    }
    ws.flush().await.unwrap();
    let mut refused = 0;
    let mut last_refusal = Duration::ZERO;
    let mut done = 0;
    let mut first_result = None;
    let mut fds_peak = 0;
    while refused + done < 1000 {
        let message = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("every call was answered")
            .unwrap()
            .unwrap();
        fds_peak = fds_peak.max(gw.fds());
        let Message::Text(text) = message else {
            continue;
        };
        let value: Value = serde_json::from_str(&text).unwrap();
        if value["error"]["code"] == -32029 {
            refused += 1;
            last_refusal = sent.elapsed();
        } else if value["result"]["content"][0]["text"] == "slept 1500" {
            done += 1;
            first_result.get_or_insert(sent.elapsed());
        } else {
            panic!("unexpected answer: {value}");
        }
    }
    let reached = get_json(&upstream.url("/stats")).await["methods"]["tools/call"]
        .as_u64()
        .unwrap();
    drop(ws);
    println!(
        "ws: 1000 slow calls -> {done} ran ({reached} reached the upstream), {refused} refused with -32029 by {last_refusal:?}; first result after {:?}; fds {fds_before} -> peak {fds_peak}",
        first_result.unwrap()
    );
    assert_eq!(done, IN_FLIGHT_CAP);
    assert_eq!(refused, 1000 - IN_FLIGHT_CAP);
    assert_eq!(
        reached, IN_FLIGHT_CAP as u64,
        "only the admitted calls reached the upstream"
    );
    assert!(
        last_refusal < Duration::from_secs(1),
        "refusals were immediate: {last_refusal:?}"
    );
    assert!(
        fds_peak <= fds_before + IN_FLIGHT_CAP + 8,
        "descriptors bounded by the cap: {fds_before} -> {fds_peak}"
    );
}

#[tokio::test]
async fn an_mcp_session_gets_at_most_the_cap_of_calls_in_flight() {
    let upstream = ServerProcess::fixture(&[]);
    let gw = Gateway::start(&upstream, &[]);
    let client = reqwest::Client::new();
    let init = mcp_post(&client, &gw, &initialize(0), None)
        .send()
        .await
        .unwrap();
    let session = init.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_string();
    let started = Instant::now();
    let calls = (1..=100u64).map(|n| {
        let request = mcp_post(
            &client,
            &gw,
            &call_tool(n, "fx__slow", json!({"ms": 1500})),
            Some(&session),
        );
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let body = response.text().await.unwrap();
            (status, started.elapsed(), body)
        }
    });
    let results = futures::future::join_all(calls).await;
    let refused: Vec<_> = results.iter().filter(|r| r.0 == 429).collect();
    let ran = results
        .iter()
        .filter(|r| r.0 == 200 && r.2.contains("slept 1500"))
        .count();
    let slowest_refusal = refused.iter().map(|r| r.1).max().unwrap_or_default();
    println!("/mcp session: 100 slow calls -> {ran} ran, {} refused 429 (slowest refusal {slowest_refusal:?})", refused.len());
    assert_eq!(ran, IN_FLIGHT_CAP);
    assert_eq!(refused.len(), 100 - IN_FLIGHT_CAP);
    assert!(refused.iter().all(|r| r.2.contains("-32029")));
    assert!(slowest_refusal < Duration::from_secs(1));
}

#[tokio::test]
async fn anonymous_sessions_are_capped_per_client_address() {
    let upstream = ServerProcess::fixture(&[]);
    let gw = Gateway::start(&upstream, &[]);
    let here = reqwest::Client::new();
    let there = reqwest::Client::builder()
        .local_address(IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    // Five abandoned initializes from one address use up its cap (max_sessions_per_key: 5).
    for n in 0..5 {
        let status = mcp_post(&here, &gw, &initialize(n), None)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 200);
    }
    let sixth = mcp_post(&here, &gw, &initialize(5), None)
        .send()
        .await
        .unwrap();
    assert_eq!(sixth.status(), 429);
    let ws_here = ws_from(&gw, IpAddr::from([127, 0, 0, 1])).await;
    // Another client without a key is not locked out, on /mcp nor on /ws.
    let other = mcp_post(&there, &gw, &initialize(6), None)
        .send()
        .await
        .unwrap();
    let other_status = other.status();
    let ws_there = ws_from(&gw, IpAddr::from([127, 0, 0, 2])).await;
    println!("per address: 127.0.0.1 6th initialize {}, /ws {ws_here:?}; 127.0.0.2 initialize {other_status}, /ws {ws_there:?}", sixth.status());
    assert_eq!(ws_here, Err(429));
    assert_eq!(other_status, 200);
    assert_eq!(ws_there, Ok(()));
}

/// Opens `/ws` from a given local address: `Ok` when upgraded, else the HTTP status.
async fn ws_from(gw: &Gateway, local: IpAddr) -> Result<(), u16> {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind((local, 0).into()).unwrap();
    let stream = socket
        .connect(format!("127.0.0.1:{}", gw.port).parse().unwrap())
        .await
        .unwrap();
    let mut request = format!("ws://127.0.0.1:{}/ws", gw.port)
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("sec-websocket-protocol", "mcp".parse().unwrap());
    match tokio_tungstenite::client_async(request, stream).await {
        Ok(_) => Ok(()),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            Err(response.status().as_u16())
        }
        Err(other) => panic!("{other}"),
    }
}

#[tokio::test]
async fn a_vanished_sse_clients_call_is_cancelled_upstream() {
    let upstream = ServerProcess::fixture(&[]);
    let gw = Gateway::start(&upstream, &[]);
    let client = reqwest::Client::new();
    let mut stream = client
        .get(gw.url("/sse"))
        .header("Accept", "text/event-stream")
        .send()
        .await
        .unwrap()
        .bytes_stream();
    let mut text = String::new();
    let endpoint = loop {
        text.push_str(&String::from_utf8_lossy(
            &stream.next().await.unwrap().unwrap(),
        ));
        if let Some(line) = text.lines().find_map(|l| l.strip_prefix("data: ")) {
            break gw.url(line.trim());
        }
    };
    let status = client
        .post(&endpoint)
        .header("Content-Type", "application/json")
        .json(&call_tool(1, "fx__hang", json!({})))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 202);
    upstream_until(&upstream, Duration::from_secs(5), |s| {
        s["methods"]["tools/call"] == 1
    })
    .await
    .expect("the call reached the upstream");
    let before = cancelled(&upstream).await;
    drop(stream);
    let took = upstream_until(&upstream, Duration::from_secs(5), |s| {
        s["cancelled"].as_array().map_or(0, Vec::len) > before
    })
    .await;
    println!("sse vanish: upstream saw the cancellation after {took:?}");
    assert!(took.expect("the call was cancelled upstream") < Duration::from_millis(1000));
}

#[tokio::test]
async fn a_vanished_stateless_client_that_declared_elicitation_has_its_call_cancelled() {
    let upstream = ServerProcess::fixture(&[]);
    let gw = Gateway::start(&upstream, &[]);
    let meta = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {"elicitation": {}}});
    let tasks_before = gw.gauge("litellm_mcp_tasks").await;
    let client = reqwest::Client::new();
    let call = client
        .post(gw.url("/mcp"))
        .header("Content-Type", "application/json")
        .header("Accept", "application/json, text/event-stream")
        .header("MCP-Protocol-Version", "2026-07-28")
        .header("Mcp-Method", "tools/call")
        .header("Mcp-Name", "fx__hang")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "fx__hang", "arguments": {}, "_meta": meta}}))
        .timeout(Duration::from_secs(30))
        .send();
    let call = tokio::spawn(call);
    upstream_until(&upstream, Duration::from_secs(5), |s| {
        s["methods"]["tools/call"] == 1
    })
    .await
    .expect("the call reached the upstream");
    let before = cancelled(&upstream).await;
    call.abort();
    let _ = call.await;
    let took = upstream_until(&upstream, Duration::from_secs(5), |s| {
        s["cancelled"].as_array().map_or(0, Vec::len) > before
    })
    .await;
    drop(client);
    let tasks_after = gw.tasks_back_to(tasks_before, Duration::from_secs(3)).await;
    println!("stateless elicitation vanish: upstream saw the cancellation after {took:?}; tasks {tasks_before} -> {tasks_after}");
    assert!(took.expect("the call was cancelled upstream") < Duration::from_millis(1000));
    assert!(
        tasks_after <= tasks_before,
        "the call's task ended: {tasks_before} -> {tasks_after}"
    );
}

/// A masked client frame.
fn client_frame(first: u8, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126);
    let mask = [1u8, 2, 3, 4];
    let mut frame = vec![first, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

/// A raw WebSocket to `/ws`, past the handshake.
async fn raw_ws(gw: &Gateway) -> TcpStream {
    let mut socket = TcpStream::connect(("127.0.0.1", gw.port)).await.unwrap();
    let request = format!("GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mcp\r\n\r\n", gw.port);
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        socket.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    socket
}

/// The next server frame: opcode and payload.
async fn server_frame(socket: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut head = [0u8; 2];
    tokio::time::timeout(Duration::from_secs(3), socket.read_exact(&mut head))
        .await
        .expect("a frame came")
        .unwrap();
    let len = match head[1] & 0x7f {
        126 => {
            let mut ext = [0u8; 2];
            socket.read_exact(&mut ext).await.unwrap();
            usize::from(u16::from_be_bytes(ext))
        }
        127 => {
            let mut ext = [0u8; 8];
            socket.read_exact(&mut ext).await.unwrap();
            usize::try_from(u64::from_be_bytes(ext)).unwrap()
        }
        n => usize::from(n),
    };
    let mut payload = vec![0u8; len];
    socket.read_exact(&mut payload).await.unwrap();
    (head[0] & 0x0f, payload)
}

#[tokio::test]
async fn websocket_violations_close_with_1002_and_1007_and_bad_utf8_in_binary_is_a_parse_error() {
    let upstream = ServerProcess::fixture(&[]);
    let gw = Gateway::start(&upstream, &[]);
    // A binary frame that is not UTF-8: -32700, and the socket stays open.
    let mut socket = raw_ws(&gw).await;
    socket
        .write_all(&client_frame(
            0x82,
            b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"pi\xffng\"}",
        ))
        .await
        .unwrap();
    let (opcode, payload) = server_frame(&mut socket).await;
    assert_eq!(opcode, 0x1);
    let answer: Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(answer["error"]["code"], -32700, "{answer}");
    socket
        .write_all(&client_frame(
            0x81,
            br#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#,
        ))
        .await
        .unwrap();
    let (_, payload) = server_frame(&mut socket).await;
    let answer: Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(answer["id"], 2, "still open: {answer}");
    // A text frame that is not UTF-8: closed with 1007.
    socket
        .write_all(&client_frame(0x81, b"{\"a\":\"\xff\xfe\"}"))
        .await
        .unwrap();
    let (opcode, payload) = server_frame(&mut socket).await;
    assert_eq!(opcode, 0x8, "a close frame");
    let utf8_code = u16::from_be_bytes([payload[0], payload[1]]);
    // A frame with a reserved bit set (no extension negotiated): closed with 1002.
    let mut socket = raw_ws(&gw).await;
    socket.write_all(&client_frame(0xC1, b"{}")).await.unwrap();
    let (opcode, payload) = server_frame(&mut socket).await;
    assert_eq!(opcode, 0x8, "a close frame");
    let protocol_code = u16::from_be_bytes([payload[0], payload[1]]);
    println!("ws: bad UTF-8 text -> close {utf8_code}; reserved bit -> close {protocol_code}; bad UTF-8 binary -> -32700");
    assert_eq!(utf8_code, 1007);
    assert_eq!(protocol_code, 1002);
}

#[tokio::test]
async fn stdio_answers_bad_utf8_with_a_parse_error_and_caps_calls_in_flight() {
    let upstream = ServerProcess::fixture(&[]);
    let dir = std::env::temp_dir().join(format!("litellm-hostile-stdio-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("gateway.yaml");
    std::fs::write(
        &config,
        format!(
            "servers:\n  - name: fx\n    url: http://127.0.0.1:{}/mcp\npolicies:\n  default_level: execute\n",
            upstream.port
        ),
    )
    .unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_litellm-mcp"))
        .args(["stdio", "-c", config.to_str().unwrap()])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    stdin
        .write_all(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"pi\xffng\"}\n")
        .await
        .unwrap();
    let line = tokio::time::timeout(Duration::from_secs(10), stdout.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let answer: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(answer["error"]["code"], -32700, "{answer}");
    let sent = Instant::now();
    let mut calls = String::new();
    for n in 0..100u64 {
        calls.push_str(&call_tool(100 + n, "fx__slow", json!({"ms": 1500})).to_string());
        calls.push('\n');
    }
    stdin.write_all(calls.as_bytes()).await.unwrap();
    let (mut refused, mut ran, mut last_refusal) = (0, 0, Duration::ZERO);
    while refused + ran < 100 {
        let line = tokio::time::timeout(Duration::from_secs(10), stdout.next_line())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let value: Value = serde_json::from_str(&line).unwrap();
        if value["error"]["code"] == -32029 {
            refused += 1;
            last_refusal = sent.elapsed();
        } else if value["result"]["content"][0]["text"] == "slept 1500" {
            ran += 1;
        }
    }
    println!("stdio: bad UTF-8 -> -32700; 100 slow calls -> {ran} ran, {refused} refused by {last_refusal:?}");
    assert_eq!(ran, IN_FLIGHT_CAP);
    assert_eq!(refused, 100 - IN_FLIGHT_CAP);
    assert!(last_refusal < Duration::from_secs(1));
    drop(stdin);
    let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
    let _ = std::fs::remove_dir_all(&dir);
}
