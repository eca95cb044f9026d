//! Hostile upstreams against the real binary (`litellm-mcp serve`): every one costs a
//! clear error within the configured bounds, never the gateway.
//!
//! Each test starts the gateway with a hostile upstream (`mcp-fixture --hostile …`)
//! next to a healthy one, attacks, and measures what it claims from outside: the time
//! to the error, the gateway's CPU time (`/proc/<pid>/stat`), its open fds
//! (`/proc/<pid>/fd`), threads and RSS (`/proc/<pid>/status`) before and after, the
//! latency of `/health` and of calls to the healthy server throughout, and what reached
//! the log. The figures are printed (`--nocapture`) and every bound is asserted.
//!
//! `HOSTILE_GATEWAY_BIN=target/release/litellm-mcp` runs them against another build.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{eventually, fixture_binary, processes_with_env, ServerProcess};
use litellm_rs::core::mcp::limits::{STDERR_BURST_LINES, STDERR_LINES_PER_SECOND};
use serde_json::{json, Value};

/// What the gateway wrote to stderr (its log): the byte count, and the text up to a cap.
#[derive(Default)]
struct LogSink {
    bytes: usize,
    text: Vec<u8>,
}

const LOG_KEPT: usize = 8 << 20;

/// `litellm-mcp serve` on a settings file; killed on drop.
struct Gateway {
    child: Child,
    pid: u32,
    base: String,
    log: Arc<Mutex<LogSink>>,
    client: reqwest::Client,
    dir: std::path::PathBuf,
}

impl Gateway {
    /// Starts the gateway with `servers` (YAML list items) and waits for `LISTENING`.
    fn start(name: &str, servers: &str) -> Gateway {
        let dir =
            std::env::temp_dir().join(format!("litellm-hostile-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("gateway.yaml");
        let yaml = format!("listen: 127.0.0.1:0\nallow_unauthenticated: true\nservers:\n{servers}");
        std::fs::write(&config, yaml).unwrap();
        let mut child = Command::new(gateway_binary())
            .args(["serve", "-c", config.to_str().unwrap()])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(LogSink::default()));
        let mut stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            let mut buffer = vec![0u8; 64 * 1024];
            while let Ok(n) = stderr.read(&mut buffer) {
                if n == 0 {
                    break;
                }
                let mut sink = sink.lock().unwrap();
                sink.bytes += n;
                let room = LOG_KEPT.saturating_sub(sink.text.len()).min(n);
                sink.text.extend_from_slice(&buffer[..room]);
            }
        });
        let port = common::listening_port(child.stdout.take().unwrap(), Duration::from_secs(30));
        Gateway {
            pid: child.id(),
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
            client: reqwest::Client::new(),
            dir,
        }
    }

    /// The gateway's CPU time (user + system, all threads).
    fn cpu(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).unwrap();
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .collect();
        // After the command name: state is field 3, utime 14, stime 15 (1-based).
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        Duration::from_millis(ticks * 1000 / clock_ticks())
    }

    fn fds(&self) -> usize {
        common::proc_fds(self.pid)
    }

    fn rss_mib(&self) -> f64 {
        common::proc_rss_kib(self.pid) as f64 / 1024.0
    }

    fn threads(&self) -> u64 {
        common::proc_status_field(self.pid, "Threads:")
    }

    fn snapshot(&self) -> Resources {
        Resources {
            fds: self.fds(),
            rss_mib: self.rss_mib(),
            threads: self.threads(),
        }
    }

    fn log_bytes(&self) -> usize {
        self.log.lock().unwrap().bytes
    }

    fn log_text(&self) -> String {
        String::from_utf8_lossy(&self.log.lock().unwrap().text).into_owned()
    }

    /// `POST /v1/mcp/tools/call`: (time taken, HTTP status, body).
    async fn call(&self, server: &str, tool: &str, arguments: Value) -> (Duration, u16, Value) {
        call_on(&self.client, &self.base, server, tool, arguments).await
    }

    /// Polls `/health` every 100 ms until the returned watch is stopped.
    fn watch_health(&self) -> Watch {
        let stop = Arc::new(AtomicBool::new(false));
        let url = format!("{}/health", self.base);
        let client = self.client.clone();
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let mut figures = WatchFigures::default();
            while !flag.load(Ordering::Relaxed) {
                let started = Instant::now();
                let ok = tokio::time::timeout(Duration::from_secs(2), client.get(&url).send())
                    .await
                    .is_ok_and(|r| r.is_ok_and(|r| r.status().is_success()));
                figures.record(started.elapsed(), ok);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            figures
        });
        Watch { stop, task }
    }

    /// Calls `server`'s `echo` every 100 ms until the returned watch is stopped.
    fn watch_calls(&self, server: &'static str) -> Watch {
        let stop = Arc::new(AtomicBool::new(false));
        let base = self.base.clone();
        let client = self.client.clone();
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let mut figures = WatchFigures::default();
            while !flag.load(Ordering::Relaxed) {
                let (took, status, body) =
                    call_on(&client, &base, server, "echo", json!({"text": "ping"})).await;
                figures.record(took, status == 200 && body["content"][0]["text"] == "ping");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            figures
        });
        Watch { stop, task }
    }
}

impl Drop for Gateway {
    /// SIGTERM first, so that the gateway stops its stdio children even when a test
    /// failed half-way (SIGKILL would leave them to init); SIGKILL after 10 s.
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.pid) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn call_on(
    client: &reqwest::Client,
    base: &str,
    server: &str,
    tool: &str,
    arguments: Value,
) -> (Duration, u16, Value) {
    let started = Instant::now();
    let response = client
        .post(format!("{base}/v1/mcp/tools/call"))
        .json(&json!({"server": server, "tool": tool, "arguments": arguments}))
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    (started.elapsed(), status, body)
}

/// The binary under test: `HOSTILE_GATEWAY_BIN` (to measure a release build, or an
/// older one), else the one cargo built for this test.
fn gateway_binary() -> std::path::PathBuf {
    std::env::var_os("HOSTILE_GATEWAY_BIN")
        .map(Into::into)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_litellm-mcp").into())
}

fn clock_ticks() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100)
    })
}

#[derive(Debug, Clone, Copy)]
struct Resources {
    fds: usize,
    rss_mib: f64,
    threads: u64,
}

#[derive(Debug, Default)]
struct WatchFigures {
    count: usize,
    failures: usize,
    max: Duration,
}

impl WatchFigures {
    fn record(&mut self, took: Duration, ok: bool) {
        self.count += 1;
        self.failures += usize::from(!ok);
        self.max = self.max.max(took);
    }
}

struct Watch {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<WatchFigures>,
}

impl Watch {
    async fn finish(self) -> WatchFigures {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap()
    }
}

/// Asserts that `/health` answered every time, each within `max`.
fn assert_answered(what: &str, figures: &WatchFigures, max: Duration) {
    println!("{what}: {figures:?}");
    assert!(figures.count > 0, "{what}: never polled");
    assert_eq!(figures.failures, 0, "{what}: failed {figures:?}");
    assert!(
        figures.max <= max,
        "{what}: slowest {:?} > {max:?}",
        figures.max
    );
}

/// Asserts that fds, threads and RSS came back near where they started.
fn assert_back_near(what: &str, before: Resources, after: Resources, rss_slack_mib: f64) {
    println!("{what}: before {before:?}, after {after:?}");
    assert!(
        after.fds <= before.fds + 4,
        "{what}: fds {} → {}",
        before.fds,
        after.fds
    );
    assert!(
        after.threads <= before.threads + 2,
        "{what}: threads {} → {}",
        before.threads,
        after.threads
    );
    assert!(
        after.rss_mib <= before.rss_mib + rss_slack_mib,
        "{what}: RSS {:.1} → {:.1} MiB",
        before.rss_mib,
        after.rss_mib
    );
}

/// Waits until the resources come back near `before` (freed memory and closed sockets
/// take a moment), then asserts it. `children` upstream processes that started since
/// `before` and still run are allowed their pipes.
async fn settle(
    gateway: &Gateway,
    what: &str,
    mut before: Resources,
    rss_slack_mib: f64,
    children: usize,
) {
    before.fds += 4 * children;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let now = gateway.snapshot();
        if now.fds <= before.fds + 4
            && now.threads <= before.threads + 2
            && now.rss_mib <= before.rss_mib + rss_slack_mib
        {
            break;
        }
        // Requests give the allocator the chance to return what was freed.
        for _ in 0..20 {
            let _ = gateway
                .call("good", "echo", json!({"text": "settle"}))
                .await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_back_near(what, before, gateway.snapshot(), rss_slack_mib);
}

fn message(body: &Value) -> String {
    body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn stdio_server(name: &str, args: &[&str], extra: &str) -> String {
    let args: Vec<String> = args.iter().map(|a| format!("\"{a}\"")).collect();
    format!(
        "  - name: {name}\n    command: {}\n    args: [{}]\n{extra}",
        fixture_binary().display(),
        args.join(", ")
    )
}

fn http_server(name: &str, url: &str, extra: &str) -> String {
    format!("  - name: {name}\n    url: {url}\n{extra}")
}

/// A healthy stdio server to call while another one attacks.
fn healthy() -> String {
    stdio_server("good", &["--stdio"], "")
}

// ---------------------------------------------------------------------------------------
// SSE: a line that never ends.

#[tokio::test]
async fn an_endless_sse_line_costs_a_clear_error_little_cpu_and_the_timeout_holds() {
    let hostile = ServerProcess::fixture(&["--hostile", "http"]);
    let servers = [
        // Streamable HTTP whose GET stream (opened after the handshake) never ends a line.
        http_server(
            "evil",
            &hostile.url("/mcp-listen"),
            "    timeout_ms: 3000\n    protocol: sessions\n",
        ),
        http_server(
            "legacy",
            &hostile.url("/sse"),
            "    transport: sse\n    timeout_ms: 3000\n",
        ),
        healthy(),
    ]
    .concat();
    let gateway = Gateway::start("sse", &servers);
    for server in ["evil", "legacy", "good"] {
        let (_, status, body) = gateway.call(server, "echo", json!({"text": "warm"})).await;
        assert_eq!(status, 200, "{server}: {body}");
    }
    let before = gateway.snapshot();
    let cpu_before = gateway.cpu();
    let started = Instant::now();
    let health = gateway.watch_health();
    let calls = gateway.watch_calls("good");

    // A reply stream (streamable HTTP) that sends an endless line at full speed.
    let (took, status, body) = gateway.call("evil", "attack", json!({})).await;
    println!("streamable attack: {took:?} {status} {body}");
    assert_ne!(status, 200, "{body}");
    assert!(message(&body).contains("SSE line longer than"), "{body}");
    assert!(took < Duration::from_secs(2), "the error took {took:?}");

    // The legacy stream: the same line ends the stream, and the call in flight on it.
    let (took, status, body) = gateway.call("legacy", "attack", json!({})).await;
    println!("legacy attack: {took:?} {status} {body}");
    assert_ne!(status, 200, "{body}");
    assert!(message(&body).contains("SSE line longer than"), "{body}");
    assert!(took < Duration::from_secs(2), "the error took {took:?}");
    // The next call opens a new stream and works.
    let (_, status, body) = gateway
        .call("legacy", "echo", json!({"text": "again"}))
        .await;
    assert_eq!(
        (status, &body["content"][0]["text"]),
        (200, &json!("again")),
        "{body}"
    );

    // A line that grows a byte at a time never reaches the cap: the timeout holds.
    let (took, status, body) = gateway.call("evil", "drip", json!({})).await;
    println!("drip: {took:?} {status} {body}");
    assert_eq!(body["error"]["type"], "upstream_timeout", "{body}");
    assert!(
        took >= Duration::from_millis(2900) && took < Duration::from_millis(4000),
        "timeout_ms 3000, the call took {took:?}"
    );

    // Let the GET stream reconnect a few times (each attempt reads the cap, then backs off).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let wall = started.elapsed();
    let cpu = gateway.cpu() - cpu_before;
    let stats = common::get_json(&hostile.url("/stats")).await;
    println!(
        "CPU {cpu:?} in {wall:?}; hostile stats {stats}; log {} bytes",
        gateway.log_bytes()
    );
    assert_answered("health", &health.finish().await, Duration::from_millis(500));
    assert_answered(
        "calls to the healthy server",
        &calls.finish().await,
        Duration::from_millis(750),
    );
    assert!(
        cpu < wall / 4,
        "the gateway used {cpu:?} of CPU in {wall:?} (a quadratic parser pins a core)"
    );
    assert!(
        stats["listen_streams"].as_u64().unwrap() <= 6,
        "the endless GET stream is reopened with backoff: {stats}"
    );
    assert!(gateway.log_text().contains("the GET stream was dropped"));
    settle(&gateway, "sse", before, 16.0, 0).await;
}

// ---------------------------------------------------------------------------------------
// Stdio: unreadable lines.

#[tokio::test]
async fn unreadable_stdio_lines_are_skipped_and_the_child_lives() {
    let servers = [
        stdio_server("evil", &["--hostile", "stdio"], "    timeout_ms: 20000\n"),
        healthy(),
    ]
    .concat();
    let gateway = Gateway::start("stdio-lines", &servers);
    let (_, status, _) = gateway.call("good", "echo", json!({"text": "warm"})).await;
    assert_eq!(status, 200);
    let (_, status, body) = gateway.call("evil", "pid", json!({})).await;
    assert_eq!(status, 200, "{body}");
    let pid = body["content"][0]["text"].as_str().unwrap().to_string();
    let before = gateway.snapshot();
    let health = gateway.watch_health();
    let calls = gateway.watch_calls("good");
    let cpu_before = gateway.cpu();

    let attacks = [
        ("stderr_line", json!({"bytes": 10 * 1024})),
        ("stderr_non_utf8", json!({})),
        ("stdout_non_utf8", json!({})),
        ("stdout_junk_line", json!({"bytes": 17 << 20})),
        ("stderr_flood", json!({"bytes": 50 << 20, "line_bytes": 0})),
    ];
    for (tool, arguments) in attacks {
        let (took, status, body) = gateway.call("evil", tool, arguments).await;
        println!(
            "{tool}: {took:?} {status}, RSS {:.1} MiB",
            gateway.rss_mib()
        );
        assert_eq!(status, 200, "{tool}: {body}");
        assert_eq!(body["content"][0]["text"], "ok", "{tool}: {body}");
        // Every tool logs to stderr first: a closed pipe would have killed the child.
        let (_, _, body) = gateway.call("evil", "pid", json!({})).await;
        assert_eq!(
            body["content"][0]["text"],
            pid.as_str(),
            "after {tool} the child is still the same process"
        );
    }
    // A response over the cap fails its call at once, with the reason, whichever end
    // names the id.
    for at in ["head", "tail"] {
        let (took, status, body) = gateway
            .call(
                "evil",
                "stdout_overlong",
                json!({"bytes": 17 << 20, "at": at}),
            )
            .await;
        println!(
            "stdout_overlong at {at}: {took:?} {status} {body}, RSS {:.1} MiB",
            gateway.rss_mib()
        );
        assert!(
            message(&body).contains("larger than the cap of 16777216 bytes"),
            "{body}"
        );
        assert!(
            took < Duration::from_secs(5),
            "{took:?}: it did not wait for the 20 s timeout"
        );
    }
    let (_, _, body) = gateway.call("evil", "pid", json!({})).await;
    assert_eq!(body["content"][0]["text"], pid.as_str());
    let cpu = gateway.cpu() - cpu_before;
    println!("CPU {cpu:?} for ~120 MB of hostile output");
    assert!(cpu < Duration::from_secs(3), "CPU {cpu:?}");

    let log = gateway.log_text();
    assert!(
        log.contains("(cut: the line has 10240 bytes)"),
        "the 10 KiB line is logged, cut"
    );
    assert!(
        log.contains("not UTF-8: \u{fffd}\u{fffd}"),
        "the non-UTF-8 line is logged"
    );
    assert!(log.contains("skipped a stdout line that is not JSON-RPC"));
    assert!(log.contains("skipped a stdout line longer than the cap"));
    assert!(
        log.contains("(cut: the line has 52428800 bytes)"),
        "50 MB without a newline is one cut line"
    );
    assert_answered("health", &health.finish().await, Duration::from_millis(500));
    assert_answered(
        "calls to the healthy server",
        &calls.finish().await,
        Duration::from_millis(1000),
    );
    // The allocator may keep a block or two of the size of the cap for reuse; what a
    // leak would look like is growth with every attack, so attack again and compare.
    let slack = 2.0 * 16.0 + 4.0;
    settle(&gateway, "stdio lines", before, slack, 0).await;
    for _ in 0..3 {
        let (_, status, _) = gateway
            .call("evil", "stdout_junk_line", json!({"bytes": 17 << 20}))
            .await;
        assert_eq!(status, 200);
        let (_, status, _) = gateway
            .call("evil", "stdout_overlong", json!({"bytes": 17 << 20}))
            .await;
        assert_ne!(status, 200);
    }
    settle(&gateway, "stdio lines, attacked again", before, slack, 0).await;
}

#[tokio::test]
async fn an_upstreams_stderr_reaches_our_log_rate_limited() {
    let servers = stdio_server("noisy", &["--hostile", "stdio"], "    timeout_ms: 30000\n");
    let gateway = Gateway::start("stderr-flood", &servers);
    let (_, status, _) = gateway.call("noisy", "pid", json!({})).await;
    assert_eq!(status, 200);
    let log_before = gateway.log_bytes();
    let cpu_before = gateway.cpu();
    let started = Instant::now();
    // 100 MB in lines of 100 bytes: a million lines.
    let (took, status, body) = gateway
        .call(
            "noisy",
            "stderr_flood",
            json!({"bytes": 100_000_000, "line_bytes": 100}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // The note about dropped lines comes within a second.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let logged = gateway.log_bytes() - log_before;
    let cpu = gateway.cpu() - cpu_before;
    println!("100 MB of stderr in {took:?}: {logged} bytes logged, CPU {cpu:?}");
    assert!(logged < 200_000, "{logged} bytes reached the log");
    // Every line was either logged or counted in a note.
    let log = gateway.log_text();
    let noisy: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("server=noisy") && l.contains("stream=\"stderr\""))
        .collect();
    let dropped: u64 = noisy
        .iter()
        .filter_map(|l| {
            l.split_once(" dropped=")
                .and_then(|(_, n)| n.split_whitespace().next()?.parse::<u64>().ok())
        })
        .sum();
    let logged = noisy.iter().filter(|l| !l.contains(" dropped=")).count() as u64;
    println!(
        "{logged} stderr lines logged, {dropped} dropped, e.g. {:?}",
        noisy.iter().find(|l| l.contains("dropped"))
    );
    assert!(dropped > 0, "a note says how many lines were dropped");
    // 1,000,000 lines of the flood, its last newline, and the tool's own log lines.
    assert!(
        (1_000_000..=1_000_010).contains(&(logged + dropped)),
        "{logged} + {dropped}"
    );
    let seconds = u32::try_from(started.elapsed().as_secs()).unwrap() + 1;
    let allowed = u64::from(STDERR_BURST_LINES + STDERR_LINES_PER_SECOND * seconds);
    assert!(
        logged <= allowed,
        "{logged} lines logged in {seconds} s, more than {allowed}"
    );
}

// ---------------------------------------------------------------------------------------
// Tool lists without end.

#[tokio::test]
async fn a_tool_list_without_end_is_refused_with_a_clear_error() {
    let servers = [
        stdio_server(
            "bomb",
            &[
                "--hostile",
                "stdio-tool-bomb",
                "--pages",
                "200",
                "--page-tools",
                "5000",
            ],
            "",
        ),
        healthy(),
    ]
    .concat();
    let gateway = Gateway::start("tool-bomb", &servers);
    let (_, status, _) = gateway.call("good", "echo", json!({"text": "warm"})).await;
    assert_eq!(status, 200);
    let before = gateway.snapshot();
    let health = gateway.watch_health();
    for round in 0..2 {
        let started = Instant::now();
        let listing: Value = gateway
            .client
            .get(format!("{}/v1/mcp/tools", gateway.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let took = started.elapsed();
        let peak = gateway.rss_mib();
        let text = listing.to_string();
        println!(
            "listing {round}: {took:?}, RSS {peak:.1} MiB, {} bytes",
            text.len()
        );
        assert!(text.contains("good__echo"), "the healthy server is listed");
        assert!(!text.contains("t0_0"), "no tool of the bomb is listed");
        assert!(
            text.contains("more than 10000 tools"),
            "the failure names the bound: {}",
            &text[..text.len().min(2000)]
        );
        assert!(took < Duration::from_secs(5), "listing took {took:?}");
        assert!(
            peak < before.rss_mib + 200.0,
            "RSS {:.1} → {peak:.1} MiB",
            before.rss_mib
        );
    }
    assert_answered(
        "health",
        &health.finish().await,
        Duration::from_millis(1000),
    );
    settle(&gateway, "tool bomb", before, 16.0, 1).await;
}

// ---------------------------------------------------------------------------------------
// Calls queued behind a handshake that never ends.

#[tokio::test]
async fn calls_queued_behind_a_hung_handshake_keep_their_timeout() {
    let marker = format!("HOSTILE_DEAF={}", std::process::id());
    let servers = [
        stdio_server(
            "deaf",
            &["--hostile", "stdio-deaf"],
            &format!(
                "    timeout_ms: 3000\n    env: {{HOSTILE_DEAF: \"{}\"}}\n",
                std::process::id()
            ),
        ),
        healthy(),
    ]
    .concat();
    let gateway = Gateway::start("deaf", &servers);
    let (_, status, _) = gateway.call("good", "echo", json!({"text": "warm"})).await;
    assert_eq!(status, 200);
    let before = gateway.snapshot();
    let health = gateway.watch_health();
    let calls = gateway.watch_calls("good");
    // Every deaf child seen, by pid, while the calls run.
    let children = Arc::new(Mutex::new(std::collections::HashSet::new()));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (seen, on, marker) = (children.clone(), sampling.clone(), marker.clone());
        tokio::task::spawn_blocking(move || {
            while on.load(Ordering::Relaxed) {
                seen.lock().unwrap().extend(processes_with_env(&marker));
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let started = Instant::now();
    // A client of their own: its 200 connections close when it is dropped.
    let callers = reqwest::Client::new();
    let results = futures::future::join_all((0..200).map(|i| {
        let (client, base) = (callers.clone(), gateway.base.clone());
        async move { call_on(&client, &base, "deaf", "anything", json!({"i": i})).await }
    }))
    .await;
    let all = started.elapsed();
    drop(callers);
    sampling.store(false, Ordering::Relaxed);
    sampler.await.unwrap();
    let mut took: Vec<Duration> = results.iter().map(|r| r.0).collect();
    took.sort();
    let (median, slowest) = (took[took.len() / 2], took[took.len() - 1]);
    let started_children = children.lock().unwrap().len();
    println!(
        "200 calls: median {median:?}, slowest {slowest:?}, all in {all:?}; {started_children} deaf children started; e.g. {}",
        results[0].2
    );
    for (_, status, body) in &results {
        assert_ne!(*status, 200, "{body}");
        // A timeout, or (for a call whose deadline falls before the next attempt) the
        // backoff, naming the timeout.
        assert!(
            body["error"]["type"] == "upstream_timeout"
                || message(body).contains("did not answer 'initialize' within 3000 ms"),
            "{body}"
        );
    }
    // The timeout plus the time 200 requests take to reach a busy gateway.
    assert!(
        slowest < Duration::from_millis(4500),
        "timeout_ms 3000; the slowest call took {slowest:?}"
    );
    assert!(median >= Duration::from_millis(2900), "median {median:?}");
    // One handshake at a time, for all the calls queued behind it (a second one may
    // start for the calls whose deadline falls after the first one failed).
    assert!(
        (1..=2).contains(&started_children),
        "{started_children} deaf children started for 200 calls"
    );
    // The process whose handshake timed out is stopped (stdin closed, SIGTERM).
    assert!(
        eventually(Duration::from_secs(8), || processes_with_env(&marker)
            .is_empty())
        .await,
        "the deaf child is stopped"
    );
    assert_answered("health", &health.finish().await, Duration::from_millis(500));
    assert_answered(
        "calls to the healthy server",
        &calls.finish().await,
        Duration::from_millis(750),
    );
    settle(&gateway, "deaf", before, 16.0, 0).await;
}

// ---------------------------------------------------------------------------------------
// Redirects and credentials.

/// A listener on another origin that records every connection's first bytes.
async fn recorder() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let record = record.clone();
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut buffer = vec![0u8; 8192];
                let n = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buffer))
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .unwrap_or(0);
                record
                    .lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&buffer[..n]).into_owned());
                let _ = stream
                    .write_all(b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    (port, seen)
}

#[tokio::test]
async fn credentials_never_follow_a_redirect_to_another_origin() {
    let (other, seen) = recorder().await;
    let hostile = ServerProcess::fixture(&[
        "--hostile",
        "http",
        "--redirect-to",
        &format!("http://127.0.0.1:{other}/mcp"),
    ]);
    let auth = "    protocol: sessions\n    headers: {X-Static: static-s3cret}\n    auth: {type: api_key, key: key-s3cret}\n";
    let servers = [
        http_server("same", &hostile.url("/same"), auth),
        http_server("cross", &hostile.url("/cross"), auth),
        http_server(
            "token",
            &hostile.url("/mcp"),
            &format!(
                "    protocol: sessions\n    auth: {{type: oauth2, client_id: gw, client_secret: oauth-s3cret, token_url: \"{}\"}}\n",
                hostile.url("/cross")
            ),
        ),
    ]
    .concat();
    let gateway = Gateway::start("redirect", &servers);

    // Within the origin, a redirect is followed and the credentials arrive.
    let (_, status, body) = gateway.call("same", "headers", json!({})).await;
    assert_eq!(status, 200, "{body}");
    let names = body["content"][0]["text"].as_str().unwrap();
    assert!(
        names.contains("x-api-key") && names.contains("x-static"),
        "{names}"
    );

    // To another origin: refused, with the reason; the other origin sees nothing.
    let (took, status, body) = gateway.call("cross", "echo", json!({"text": "x"})).await;
    println!("cross: {took:?} {status} {body}");
    assert_ne!(status, 200);
    assert!(
        message(&body).contains("redirected to another origin"),
        "{body}"
    );
    let (_, status, body) = gateway.call("token", "echo", json!({"text": "x"})).await;
    println!("token: {status} {body}");
    assert_ne!(status, 200);
    assert!(
        message(&body).contains("redirected to another origin"),
        "{body}"
    );
    let seen = seen.lock().unwrap().clone();
    assert!(seen.is_empty(), "the other origin received: {seen:?}");
    assert!(
        !gateway.log_text().contains("s3cret"),
        "no secret in the log"
    );
}

// ---------------------------------------------------------------------------------------
// The upstream connection pool.

/// This process's established TCP connections to 127.0.0.1:`port`.
fn connections_to(port: u16) -> usize {
    let ours: std::collections::HashSet<String> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| {
            l.to_str()?
                .strip_prefix("socket:[")?
                .strip_suffix(']')
                .map(str::to_string)
        })
        .collect();
    let table = std::fs::read_to_string("/proc/self/net/tcp").unwrap();
    let remote = format!("0100007F:{port:04X}");
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            f.len() > 9 && f[2] == remote && f[3] == "01" && ours.contains(f[9])
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_upstream_connections_are_capped_and_closed() {
    use litellm_rs::core::mcp::limits::UPSTREAM_POOL_MAX_IDLE_PER_HOST;
    use litellm_rs::core::mcp::{
        GatewayOptions, McpGateway, McpServerConfig, ProtocolPreference, ServerOptions,
    };
    let fixture = ServerProcess::fixture(&["--json-response"]);
    let gateway = McpGateway::with_options(GatewayOptions {
        upstream_pool_idle_timeout: Duration::from_secs(1),
        ..GatewayOptions::default()
    })
    .unwrap();
    gateway
        .register_server_with_options(
            McpServerConfig::new("up", fixture.url("/mcp")),
            ServerOptions {
                protocol: ProtocolPreference::Sessions,
                ..ServerOptions::default()
            },
        )
        .await
        .unwrap();
    gateway
        .call_tool("up", "echo", json!({"text": "warm"}))
        .await
        .unwrap();
    let at_rest = connections_to(fixture.port);
    // 64 calls at once open about as many connections.
    let peak = Arc::new(AtomicUsize::new(0));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (peak, on, port) = (peak.clone(), sampling.clone(), fixture.port);
        tokio::task::spawn_blocking(move || {
            while on.load(Ordering::Relaxed) {
                peak.fetch_max(connections_to(port), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let results = futures::future::join_all(
        (0..64).map(|_| gateway.call_tool("up", "slow", json!({"ms": 400}))),
    )
    .await;
    sampling.store(false, Ordering::Relaxed);
    sampler.await.unwrap();
    assert!(results.iter().all(Result::is_ok));
    let after_burst = connections_to(fixture.port);
    let peak = peak.load(Ordering::Relaxed);
    println!("connections: {at_rest} at rest, {peak} at the peak, {after_burst} after the burst");
    assert!(
        peak > UPSTREAM_POOL_MAX_IDLE_PER_HOST,
        "the burst opened {peak} connections"
    );
    // Past the burst, the pool keeps at most its cap of idle connections (and the GET
    // stream, when the server offers one) …
    assert!(
        after_burst <= UPSTREAM_POOL_MAX_IDLE_PER_HOST + at_rest,
        "{after_burst} kept"
    );
    // … and closes them once idle for the timeout.
    let started = Instant::now();
    assert!(
        eventually(Duration::from_secs(5), || connections_to(fixture.port)
            <= at_rest.saturating_sub(1))
        .await,
        "idle connections still open: {}",
        connections_to(fixture.port)
    );
    println!("idle connections closed after {:?}", started.elapsed());
    gateway.shutdown(Duration::from_secs(2)).await;
}
