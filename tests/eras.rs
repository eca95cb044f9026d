//! Issue 9, shown with clients we did not write: the PyPI `mcp` SDK clients of both eras
//! (1.x; 2.x in `legacy` mode; 2.x in `2026-07-28` mode) through `/mcp/<server>` of the
//! `litellm-mcp` binary to a dual-era Python SDK 2.x server
//! (`tests/servers/py2_conformance_server.py`). The client script is
//! `tests/clients/py_eras_client.py`: it declares sampling, elicitation and roots and
//! answers them, and reports, per call, the result, the progress it saw (under its own
//! token, through the SDK's progress callback) and what the server asked of it.
//!
//! Session-era clients go through the upstream's shared session (the server's sampling
//! and elicitation requests reach them during the call); the 2026-07-28 client gets the
//! upstream's `input_required` round with all three questions at once, under the
//! upstream's keys, and its retry completes the call.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::{python_mcp1, python_mcp2, repo_root, run_bounded, test_server_script, ServerProcess};
use serde_json::Value;

/// The most one client run may take.
const CLIENT_LIMIT: Duration = Duration::from_secs(90);

/// The dual-era upstream and the gateway in front of it (field order = drop order).
struct Stack {
    gateway: ServerProcess,
    _upstream: ServerProcess,
    config: PathBuf,
}

impl Stack {
    fn start() -> Stack {
        let upstream = ServerProcess::start(
            python_mcp2(),
            &[
                test_server_script("py2_conformance_server.py")
                    .to_str()
                    .unwrap(),
                "--port",
                "0",
                "--exit-on-stdin-eof",
            ],
        );
        let config = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "eras-{}-{}.yaml",
            std::process::id(),
            upstream.port
        ));
        std::fs::write(
            &config,
            format!(
                "listen: 127.0.0.1:0\nservers:\n  - name: conf\n    url: http://127.0.0.1:{}/mcp\n",
                upstream.port
            ),
        )
        .unwrap();
        let gateway = ServerProcess::start(
            env!("CARGO_BIN_EXE_litellm-mcp"),
            &["serve", "-c", config.to_str().unwrap()],
        );
        Stack {
            gateway,
            _upstream: upstream,
            config,
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.config);
    }
}

/// Runs the client with `python`, `extra` arguments and these calls; its report.
fn client(python: PathBuf, url: &str, extra: &[&str], calls: &[&str]) -> Value {
    let mut command = Command::new(python);
    command.arg(repo_root().join("tests/clients/py_eras_client.py"));
    command.arg(url).args(extra);
    for call in calls {
        command.args(["--call", call]);
    }
    let what = format!("{:?}", command.get_args().collect::<Vec<_>>());
    let (status, stdout, stderr) = run_bounded(command, CLIENT_LIMIT, &what);
    assert!(status.success(), "{what}: {status}\n{stderr}");
    let report: Value = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("{what} printed no report\n{stdout}\n{stderr}"));
    assert_eq!(report["error"], Value::Null, "{what}: {report}\n{stderr}");
    eprintln!("{what}\n  -> {report}");
    report
}

fn text(call: &Value) -> String {
    call["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Progress 0, 50, 100 of 100, as the tool reports it, reached the client's callback.
fn assert_progress(call: &Value) {
    let seen: Vec<f64> = call["progress"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["progress"].as_f64().unwrap())
        .collect();
    assert_eq!(seen, vec![0.0, 50.0, 100.0], "{call}");
}

#[test]
fn session_era_clients_get_the_dual_era_servers_requests_during_the_call() {
    let stack = Stack::start();
    let url = stack.gateway.url("/mcp/conf");
    let calls = [
        r#"test_sampling={"prompt":"What is the capital of France?"}"#,
        r#"test_elicitation={"message":"Who are you?"}"#,
        "test_elicitation_sep1034_defaults={}",
        "test_tool_with_progress={}",
    ];
    for (python, extra) in [
        (python_mcp1(), vec![]),
        (python_mcp2(), vec!["--mode", "legacy"]),
    ] {
        let report = client(python, &url, &extra, &calls);
        assert_eq!(report["protocolVersion"], "2025-11-25", "{report}");
        let calls = report["calls"].as_array().unwrap();
        assert_eq!(calls.len(), 4, "{report}");
        assert_eq!(
            calls[0]["asked"],
            serde_json::json!(["sampling/createMessage"])
        );
        assert_eq!(text(&calls[0]), "LLM response: Paris");
        assert_eq!(calls[1]["asked"], serde_json::json!(["elicitation/create"]));
        assert!(
            text(&calls[1]).starts_with("User response: action=accept"),
            "{}",
            calls[1]
        );
        // SEP-1034: the client answered only `name`; the schema's defaults fill the rest.
        let defaults = text(&calls[2]);
        assert!(
            defaults.contains(r#""name": "Ada""#) && defaults.contains(r#""age": 30"#),
            "{defaults}"
        );
        assert_progress(&calls[3]);
    }
}

#[test]
fn a_stateless_client_gets_the_upstreams_own_rounds_and_its_progress() {
    let stack = Stack::start();
    let url = stack.gateway.url("/mcp/conf");
    let report = client(
        python_mcp2(),
        &url,
        &["--mode", "2026-07-28"],
        &[
            "test_input_required_result_multiple_inputs={}",
            "test_input_required_result_multi_round={}",
            "test_tool_with_progress={}",
        ],
    );
    assert_eq!(report["protocolVersion"], "2026-07-28", "{report}");
    let calls = report["calls"].as_array().unwrap();
    // One round with the upstream's three questions (the upstream checks its own keys
    // and its requestState before it completes).
    let mut asked: Vec<&str> = calls[0]["asked"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    asked.sort_unstable();
    assert_eq!(
        asked,
        vec!["elicitation/create", "roots/list", "sampling/createMessage"]
    );
    assert_eq!(text(&calls[0]), "all inputs received");
    // Two rounds, the state evolving between them.
    assert_eq!(
        calls[1]["asked"],
        serde_json::json!(["elicitation/create", "elicitation/create"])
    );
    assert_eq!(text(&calls[1]), "multi-round complete");
    assert_progress(&calls[2]);
}

/// The 2.x client's `Client.listen` through `/mcp/conf`: the gateway's acknowledgement
/// is what the SDK accepts, naming the tools flag and the resource it subscribed over the
/// upstream's shared session; a second listen after the first closed is served too.
#[test]
fn a_stateless_clients_listen_is_acknowledged() {
    let stack = Stack::start();
    let url = stack.gateway.url("/mcp/conf");
    let mut command = Command::new(python_mcp2());
    command
        .arg(repo_root().join("tests/clients/py2_listen_client.py"))
        .args([url.as_str(), "test://static-text"]);
    let (status, stdout, stderr) = run_bounded(command, CLIENT_LIMIT, "py2_listen_client.py");
    assert!(status.success(), "{status}\n{stderr}");
    let report: Value = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no report\n{stdout}\n{stderr}"));
    assert_eq!(report["error"], Value::Null, "{report}\n{stderr}");
    assert_eq!(
        report["honored"],
        serde_json::json!({"toolsListChanged": true, "resourceSubscriptions": ["test://static-text"]}),
        "{report}"
    );
    assert_eq!(
        report["again"],
        serde_json::json!({"promptsListChanged": true}),
        "{report}"
    );
}
