//! Real MCP clients that we did not write, through the service: the PyPI `mcp` SDK 1.x
//! and 2.x clients and the TypeScript SDK client, over streamable HTTP (`/mcp`,
//! `/mcp/<server>`) to `litellm-mcp serve`, and over stdio to `litellm-mcp stdio`, which
//! they launch themselves.
//!
//! The clients are the scripts of `tests/clients/` (`py_client.py`, `ts_client.mjs`):
//! each connects, lists every page of tools, calls a tool, optionally calls a progress
//! tool with a progress callback, and prints one JSON object with what it saw (see the
//! scripts' headers). Every client process runs under a deadline and is killed past it;
//! the fixture and the gateway stop when their `ServerProcess` drops.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use common::{fixture_binary, repo_root, run_bounded, ServerProcess};
use serde_json::Value;

const ADMIN: &str = "sk-test-admin";
const READER: &str = "sk-test-reader";
/// Seconds each client stage may take (the scripts' `--timeout`; 4× for a whole run).
const STAGE_SECS: u64 = 15;
/// The hard limit on one client process, after which it is killed.
const CLIENT_LIMIT: Duration = Duration::from_secs(4 * STAGE_SECS + 15);

/// A settings file in a fresh temporary directory, removed on drop.
struct TempConfig {
    dir: PathBuf,
    path: PathBuf,
}

impl TempConfig {
    fn new(yaml: &str) -> TempConfig {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let dir = std::env::temp_dir().join(format!(
            "litellm-service-clients-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir(&dir).unwrap();
        let path = dir.join("gateway.yaml");
        std::fs::write(&path, yaml).unwrap();
        TempConfig { dir, path }
    }
}

impl Drop for TempConfig {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Our fixture upstream over HTTP, the gateway serving it (`fx`) and a stdio fixture
/// (`fxs`), and the settings file. Field order is drop order: the gateway stops first.
struct Stack {
    gateway: ServerProcess,
    config: TempConfig,
    _fixture: ServerProcess,
}

impl Stack {
    fn start() -> Stack {
        let fixture = ServerProcess::fixture(&[]);
        let yaml = format!(
            r#"listen: 127.0.0.1:0
servers:
  - name: fx
    url: http://127.0.0.1:{port}/mcp
  - name: fxs
    command: {stdio}
    args: [--stdio]
api_keys:
  - name: admin
    key: {ADMIN}
    team: admins
  - name: reader
    key: {READER}
    team: readers
policies:
  default_level: deny
  teams:
    admins: {{default_level: execute}}
    readers: {{default_level: read}}
"#,
            port = fixture.port,
            stdio = yaml_string(&fixture_binary().display().to_string()),
        );
        let config = TempConfig::new(&yaml);
        let gateway = ServerProcess::start(
            env!("CARGO_BIN_EXE_litellm-mcp"),
            &["serve", "-c", config.path.to_str().unwrap()],
        );
        Stack {
            gateway,
            config,
            _fixture: fixture,
        }
    }

    fn url(&self, path: &str) -> String {
        self.gateway.url(path)
    }

    /// The command line that launches the gateway as a stdio MCP server.
    fn stdio_command(&self) -> String {
        format!(
            "{} stdio -c {}",
            shell_quote(env!("CARGO_BIN_EXE_litellm-mcp")),
            shell_quote(self.config.path.to_str().unwrap())
        )
    }
}

/// A YAML double-quoted string.
fn yaml_string(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// One word for a POSIX shell (and for `shlex.split` and the TS script's splitter).
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[derive(Clone, Copy, Debug)]
enum Sdk {
    /// PyPI `mcp` 1.x (`.deps/py1`).
    Py1,
    /// PyPI `mcp` 2.x (`.deps/py2`), `Client(mode="auto")` unless told otherwise.
    Py2,
    /// `@modelcontextprotocol/sdk` on Node 22.
    Ts,
}

impl Sdk {
    fn command(self) -> Command {
        let clients = repo_root().join("tests/clients");
        let (program, script) = match self {
            Sdk::Py1 => (common::python_mcp1(), clients.join("py_client.py")),
            Sdk::Py2 => (common::python_mcp2(), clients.join("py_client.py")),
            Sdk::Ts => (common::node(), clients.join("ts_client.mjs")),
        };
        assert!(script.exists(), "{} is missing", script.display());
        let mut command = Command::new(program);
        command.arg(script).current_dir(repo_root());
        command
    }
}

/// Where a client connects.
enum Target<'a> {
    /// Streamable HTTP to this URL, with this API key (if any).
    Http(&'a str, Option<&'a str>),
    /// Launch this command line; `LITELLM_MCP_API_KEY` set to the key in its environment.
    Stdio(&'a str, &'a str),
}

/// Runs one client to completion (bounded) and returns its JSON report.
fn run_client(
    sdk: Sdk,
    target: &Target<'_>,
    tool: (&str, &str),
    progress: Option<Progress<'_>>,
    extra: &[&str],
) -> Value {
    let mut command = sdk.command();
    match target {
        Target::Http(url, key) => {
            command.args(["--transport", "http", url]);
            if let Some(key) = key {
                command.args(["--key", key]);
            }
        }
        Target::Stdio(line, key) => {
            command.args(["--transport", "stdio", "--command", line]);
            command.args(["--env", &format!("LITELLM_MCP_API_KEY={key}")]);
        }
    }
    command.args(["--tool", tool.0, "--args", tool.1]);
    if let Some(Progress { tool, args, repeat }) = progress {
        command.args(["--progress-tool", tool, "--progress-args", args]);
        command.args(["--progress-repeat", &repeat.to_string()]);
    }
    command.args(["--timeout", &STAGE_SECS.to_string()]);
    command.args(extra);
    let what = format!("{sdk:?} {:?}", command.get_args().collect::<Vec<_>>());
    let (status, stdout, stderr) = run_bounded(command, CLIENT_LIMIT, &what);
    assert!(
        status.success(),
        "{what} exited with {status}\nstdout: {stdout}\nstderr: {stderr}"
    );
    let line = stdout.lines().rev().find(|l| !l.trim().is_empty());
    let mut report: Value = line
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("{what} printed no JSON\nstdout: {stdout}\nstderr: {stderr}"));
    eprintln!("{what}\n  -> {report}");
    // Kept for the failure messages of unexpected errors (the scripts print the
    // traceback of a failed stage on stderr).
    let tail = stderr.len().saturating_sub(6000);
    let tail = (tail..stderr.len())
        .find(|i| stderr.is_char_boundary(*i))
        .unwrap_or(stderr.len());
    report["stderr"] = Value::from(&stderr[tail..]);
    report
}

/// Runs several clients at once (each bounded), in order of `jobs`.
fn run_all(jobs: Vec<Box<dyn FnOnce() -> Value + Send>>) -> Vec<Value> {
    let handles: Vec<_> = jobs.into_iter().map(std::thread::spawn).collect();
    handles
        .into_iter()
        .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
        .collect()
}

fn tool_names(report: &Value) -> Vec<&str> {
    report["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("no tool list: {report}"))
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect()
}

/// The text of a CallToolResult's content, joined.
fn text_of(result: &Value) -> String {
    result["content"]
        .as_array()
        .unwrap_or_else(|| panic!("no content: {result}"))
        .iter()
        .filter_map(|c| c["text"].as_str())
        .collect()
}

fn assert_no_error(report: &Value) {
    assert!(
        report["error"].is_null(),
        "the {} {} client failed at {}: {} ({} {})\nits stderr:\n{}",
        report["sdk"],
        report["sdkVersion"],
        report["errorStage"],
        report["error"],
        report["errorType"],
        report["errorCode"],
        report["stderr"].as_str().unwrap_or_default()
    );
}

/// The full run through `/mcp` with the admin key: both servers' tools, `fx__echo`, and
/// three progress updates from `fx__progress`.
fn assert_full_run(report: &Value) {
    assert_no_error(report);
    let names = tool_names(report);
    for expected in ["fx__echo", "fxs__echo", "fx__progress"] {
        assert!(
            names.contains(&expected),
            "{expected} not listed: {names:?}"
        );
    }
    assert_ne!(report["result"]["isError"], true, "{report}");
    assert_eq!(text_of(&report["result"]), "hi", "{report}");
    // Every one of the repeated calls saw all three updates.
    assert_eq!(
        report["progressRuns"],
        serde_json::json!(vec![3; PROGRESS.repeat as usize]),
        "progress updates seen by the {} {} client in each call (the fewest: {})",
        report["sdk"],
        report["sdkVersion"],
        report["progressMessages"]
    );
    assert_eq!(text_of(&report["progressResult"]), "done", "{report}");
}

/// A progress tool to call with a progress callback, `repeat` times in a row.
#[derive(Clone, Copy)]
struct Progress<'a> {
    tool: &'a str,
    args: &'a str,
    repeat: u32,
}

const ECHO: (&str, &str) = ("fx__echo", r#"{"text":"hi"}"#);
/// Three updates, sent back to back by the fixture: the SSE reply must carry all three
/// before the response, however the upstream's reply is cut into reads. Ten calls,
/// because a loss depends on that timing.
const PROGRESS: Progress<'static> = Progress {
    tool: "fx__progress",
    args: r#"{"steps":3}"#,
    repeat: 10,
};

#[test]
fn python_1x_client_over_streamable_http() {
    let stack = Stack::start();
    let url = stack.url("/mcp");
    let report = run_client(
        Sdk::Py1,
        &Target::Http(&url, Some(ADMIN)),
        ECHO,
        Some(PROGRESS),
        &[],
    );
    assert_eq!(report["sdkVersion"], "1.30.0");
    assert_full_run(&report);
    // mcp 1.30 offers 2025-11-25, which the gateway accepts.
    assert_eq!(report["protocolVersion"], "2025-11-25");
    assert_eq!(report["serverName"], "litellm-mcp");
}

#[test]
fn python_2x_client_over_streamable_http_negotiates_the_stateless_revision() {
    let stack = Stack::start();
    let url = stack.url("/mcp");
    let report = run_client(
        Sdk::Py2,
        &Target::Http(&url, Some(ADMIN)),
        ECHO,
        Some(PROGRESS),
        &[],
    );
    assert_eq!(report["sdkVersion"], "2.3.0");
    // `Client(mode="auto")` probes `server/discover`, which /mcp answers: the client
    // adopts the 2026-07-28 revision (no initialize, no session).
    assert_eq!(report["protocolVersion"], "2026-07-28", "{report}");
    assert_full_run(&report);
}

#[test]
fn python_2x_client_in_legacy_mode_over_streamable_http() {
    let stack = Stack::start();
    let url = stack.url("/mcp");
    let report = run_client(
        Sdk::Py2,
        &Target::Http(&url, Some(ADMIN)),
        ECHO,
        Some(PROGRESS),
        &["--mode", "legacy"],
    );
    assert_eq!(report["protocolVersion"], "2025-11-25", "{report}");
    assert_eq!(report["serverName"], "litellm-mcp");
    assert_full_run(&report);
}

#[test]
fn typescript_client_over_streamable_http() {
    let stack = Stack::start();
    let url = stack.url("/mcp");
    let report = run_client(
        Sdk::Ts,
        &Target::Http(&url, Some(ADMIN)),
        ECHO,
        Some(PROGRESS),
        &[],
    );
    assert_eq!(report["sdkVersion"], "1.32.2");
    assert_full_run(&report);
    assert_eq!(report["protocolVersion"], "2025-11-25");
    assert_eq!(report["serverName"], "litellm-mcp");
}

#[test]
fn one_server_endpoint_uses_the_servers_own_names() {
    let stack = Stack::start();
    let url = stack.url("/mcp/fx");
    let jobs: Vec<Box<dyn FnOnce() -> Value + Send>> = [Sdk::Py1, Sdk::Py2, Sdk::Ts]
        .into_iter()
        .map(|sdk| {
            let url = url.clone();
            Box::new(move || {
                run_client(
                    sdk,
                    &Target::Http(&url, Some(ADMIN)),
                    ("echo", r#"{"text":"hi"}"#),
                    None,
                    &[],
                )
            }) as Box<dyn FnOnce() -> Value + Send>
        })
        .collect();
    for report in run_all(jobs) {
        assert_no_error(&report);
        let names = tool_names(&report);
        assert!(names.contains(&"echo"), "{names:?}");
        assert!(
            names.iter().all(|n| !n.contains("__")),
            "/mcp/fx lists aggregated names: {names:?}"
        );
        assert_eq!(text_of(&report["result"]), "hi", "{report}");
    }
}

#[test]
fn reader_key_lists_but_cannot_call_and_no_key_cannot_connect() {
    let stack = Stack::start();
    let url = stack.url("/mcp");
    let mut jobs: Vec<Box<dyn FnOnce() -> Value + Send>> = Vec::new();
    for sdk in [Sdk::Py1, Sdk::Py2, Sdk::Ts] {
        for key in [Some(READER), None] {
            let url = url.clone();
            jobs.push(Box::new(move || {
                run_client(sdk, &Target::Http(&url, key), ECHO, None, &[])
            }));
        }
    }
    let reports = run_all(jobs);
    for pair in reports.chunks(2) {
        let (reader, anonymous) = (&pair[0], &pair[1]);
        let sdk = reader["sdk"].as_str().unwrap();
        let major = reader["sdkVersion"].as_str().unwrap().split('.').next();

        // The reader sees the tools, and the call is refused with a JSON-RPC error
        // (-32001, "Permission denied ..."), which every SDK raises.
        let names = tool_names(reader);
        assert!(names.contains(&"fx__echo"), "{reader}");
        assert_eq!(reader["errorStage"], "call", "{reader}");
        assert!(reader["result"].is_null(), "{reader}");
        assert_eq!(reader["errorCode"], -32001, "{reader}");
        assert!(
            reader["error"]
                .as_str()
                .unwrap()
                .contains("Permission denied: calling fx__echo needs the execute level"),
            "{reader}"
        );
        let expected_type = match (sdk, major) {
            ("python-mcp", Some("1")) => "McpError",
            ("python-mcp", _) => "MCPError",
            _ => "McpError",
        };
        assert_eq!(reader["errorType"], expected_type, "{reader}");

        // Without a key the connection fails: HTTP 401, surfaced as each SDK does.
        assert_eq!(anonymous["errorStage"], "connect", "{anonymous}");
        assert!(anonymous["tools"].is_null(), "{anonymous}");
        let error = anonymous["error"].as_str().unwrap();
        match (sdk, major) {
            // httpx raises for the status.
            ("python-mcp", Some("1")) => {
                assert_eq!(anonymous["errorType"], "HTTPStatusError", "{anonymous}");
                assert!(error.contains("401"), "{anonymous}");
            }
            // 2.x turns the 401's JSON-RPC error body into an MCPError.
            ("python-mcp", _) => {
                assert_eq!(anonymous["errorType"], "MCPError", "{anonymous}");
                assert_eq!(anonymous["errorCode"], -32001, "{anonymous}");
                assert!(error.contains("API key is required"), "{anonymous}");
            }
            // The TS transport raises StreamableHTTPError with the HTTP status as code.
            _ => {
                assert_eq!(anonymous["errorType"], "StreamableHTTPError", "{anonymous}");
                assert_eq!(anonymous["errorCode"], 401, "{anonymous}");
                assert!(error.contains("API key is required"), "{anonymous}");
            }
        }
    }
}

#[test]
fn clients_that_launch_the_stdio_gateway() {
    let stack = Stack::start();
    let line = stack.stdio_command();
    // The stdio upstream's progress tool pauses between steps: the TS SDK handles a
    // progress notification on a later microtask and forgets the token once the
    // response is handled, so updates that reach it in the same read as the response
    // are dropped by the client (also against mcp-fixture directly).
    let progress = Progress {
        tool: "fxs__progress",
        args: r#"{"steps":3,"delay_ms":100}"#,
        repeat: 1,
    };
    let jobs: Vec<Box<dyn FnOnce() -> Value + Send>> = [Sdk::Py1, Sdk::Py2, Sdk::Ts]
        .into_iter()
        .map(|sdk| {
            let line = line.clone();
            Box::new(move || {
                run_client(sdk, &Target::Stdio(&line, ADMIN), ECHO, Some(progress), &[])
            }) as Box<dyn FnOnce() -> Value + Send>
        })
        .collect();
    for report in run_all(jobs) {
        assert_no_error(&report);
        assert_eq!(report["transport"], "stdio");
        let names = tool_names(&report);
        assert!(
            names.contains(&"fx__echo") && names.contains(&"fxs__echo"),
            "{names:?}"
        );
        assert_eq!(text_of(&report["result"]), "hi", "{report}");
        assert_eq!(report["progress"], 3, "{report}");
        assert_eq!(text_of(&report["progressResult"]), "done", "{report}");
        // The stdio face speaks the initialize era (a 2.x client's server/discover
        // probe is answered "method not found", and it falls back).
        assert_eq!(report["protocolVersion"], "2025-11-25", "{report}");
        assert_eq!(report["serverName"], "litellm-mcp", "{report}");
    }
}
