//! Graceful shutdown of `litellm-mcp serve`: on SIGTERM it stops accepting, lets the
//! call in flight finish, stops its stdio servers (no process left behind) and exits 0.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{eventually, fixture_binary, processes_with_env};
use serde_json::{json, Value};

#[tokio::test]
async fn sigterm_lets_calls_finish_and_stops_stdio_servers() {
    let dir = std::env::temp_dir().join(format!("litellm-mcp-shutdown-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("gateway.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:0\nservers:\n  - name: kid\n    command: {}\n    args: [--stdio]\n    env: {{SHUTDOWN_MARKER: \"{}\"}}\n",
            fixture_binary().display(),
            std::process::id()
        ),
    )
    .unwrap();
    let mut gateway = Command::new(env!("CARGO_BIN_EXE_litellm-mcp"))
        .args([
            "serve",
            "-c",
            config.to_str().unwrap(),
            "--grace-secs",
            "10",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(gateway.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port: u16 = line
        .trim()
        .strip_prefix("LISTENING ")
        .unwrap()
        .parse()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}/mcp");
    let client = reqwest::Client::new();
    let post = |body: Value, session: Option<&str>| {
        let mut request = client
            .post(&base)
            .header("Content-Type", "application/json")
            .header("Accept", "application/json, text/event-stream")
            .json(&body);
        if let Some(session) = session {
            request = request.header("Mcp-Session-Id", session);
        }
        request.send()
    };
    let init = post(
        json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}),
        None,
    )
    .await
    .unwrap();
    let session = init.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_string();
    // Warm up: the stdio server is started by the first call.
    let warm: Value = post(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "kid__echo", "arguments": {"text": "x"}}}), Some(&session))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(warm["result"]["content"][0]["text"], "x");
    let marker = format!("SHUTDOWN_MARKER={}", std::process::id());
    // The fixture speaks both eras: the gateway's stateless channel to it is one process,
    // and the shared session this session-era client goes through is another
    // (docs/protocol-eras.md); shutdown must stop both.
    assert_eq!(processes_with_env(&marker).len(), 2);

    let slow = post(
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "kid__slow", "arguments": {"ms": 1500}}}),
        Some(&session),
    );
    let slow = tokio::spawn(slow);
    tokio::time::sleep(Duration::from_millis(300)).await;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(gateway.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();

    let answer: Value = slow.await.unwrap().unwrap().json().await.unwrap();
    assert_eq!(
        answer["result"]["content"][0]["text"], "slept 1500",
        "the call in flight finished: {answer}"
    );
    let status = tokio::task::spawn_blocking(move || gateway.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "exit status {status}");
    assert!(
        eventually(Duration::from_secs(5), || processes_with_env(&marker)
            .is_empty())
        .await,
        "the stdio server was stopped with the gateway"
    );
    // New connections are refused.
    assert!(post(
        json!({"jsonrpc": "2.0", "id": 3, "method": "ping"}),
        Some(&session)
    )
    .await
    .is_err());
    let _ = std::fs::remove_dir_all(&dir);
}
