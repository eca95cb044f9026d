//! Sessions any replica continues (issue 13, phase 3): three replicas on PostgreSQL
//! behind HAProxy balancing round-robin without stickiness. The official TypeScript and
//! Python SDK clients (`tests/fleet/ts_session.mjs`, `tests/fleet/py_session.py`) each
//! run a whole session (initialize, a subscription, lists, calls with progress, DELETE)
//! whose requests land on every replica (counted per replica and per client from each
//! replica's `/metrics`); halfway, one replica is killed with SIGKILL and both clients
//! carry on through the others to the end.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod fleet;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::ServerProcess;
use fleet::{fresh_dir, Haproxy, Postgres, Replica};
use serde_json::Value;

const ROUNDS: usize = 8;

fn settings(fixture: &ServerProcess) -> String {
    format!(
        "servers:\n\
         - {{name: fx, url: '{}'}}\n\
         api_keys:\n\
         - {{name: ts, key: sk-ts}}\n\
         - {{name: py, key: sk-py}}\n",
        fixture.url("/mcp")
    )
}

/// Requests each client (by key name) made to one replica so far.
async fn served(replica: &Replica, caller: &str) -> u64 {
    let text = reqwest::get(replica.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| {
            l.starts_with("litellm_mcp_caller_requests_total{")
                && l.contains(&format!("caller=\"{caller}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

fn wait_for(file: &Path, limit: Duration) {
    let started = Instant::now();
    while !file.exists() {
        assert!(
            started.elapsed() < limit,
            "{} did not appear",
            file.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_sessions_cross_three_replicas_without_stickiness_and_survive_a_kill() {
    let pg = Postgres::start("sessions");
    // A session-era upstream, which takes resource subscriptions.
    let fixture = ServerProcess::fixture(&["--era", "legacy"]);
    let dir = fresh_dir("sessions");
    let text = settings(&fixture);
    let a = Replica::start(&dir, "a", &pg.url(), &text);
    let mut b = Replica::start(&dir, "b", &pg.url(), &text);
    let c = Replica::start(&dir, "c", &pg.url(), &text);
    let haproxy = Haproxy::start(&dir, &[a.port, b.port, c.port]);
    let url = haproxy.url("/mcp");

    let clients = common::repo_root().join("tests/fleet");
    let mut ts = Command::new(common::node());
    ts.arg(clients.join("ts_session.mjs"));
    let mut py = Command::new(common::python_mcp1());
    py.arg(clients.join("py_session.py"));
    let mut children = Vec::new();
    for (mut command, name, key) in [(ts, "ts", "sk-ts"), (py, "py", "sk-py")] {
        command
            .args([
                url.as_str(),
                key,
                dir.to_str().unwrap(),
                name,
                &ROUNDS.to_string(),
            ])
            .current_dir(common::repo_root())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(
                std::fs::File::create(dir.join(format!("{name}.err"))).unwrap(),
            ));
        children.push((name, command.spawn().unwrap()));
    }

    // Halfway: every replica has served both clients.
    for (name, _) in &children {
        wait_for(
            &dir.join(format!("{name}.halfway")),
            Duration::from_secs(90),
        );
    }
    let mut before_kill = Vec::new();
    for replica in [&a, &b, &c] {
        for caller in ["ts", "py"] {
            let n = served(replica, caller).await;
            assert!(
                n > 0,
                "replica {} served no request of {caller}",
                replica.name
            );
            before_kill.push(((replica.name.clone(), caller), n));
        }
    }
    eprintln!("requests per (replica, client) at halfway: {before_kill:?}");

    // kill -9 one replica in the middle of both sessions; they go on.
    b.kill();
    for (name, _) in &children {
        std::fs::write(dir.join(format!("{name}.go")), "").unwrap();
    }
    for (name, child) in children {
        let output = tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let mut child = child;
            loop {
                if child.try_wait().unwrap().is_some() {
                    return child.wait_with_output().unwrap();
                }
                if started.elapsed() > Duration::from_secs(120) {
                    let _ = child.kill();
                    return child.wait_with_output().unwrap();
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        })
        .await
        .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).to_string();
        let stderr = std::fs::read_to_string(dir.join(format!("{name}.err"))).unwrap_or_default();
        let report: Value = serde_json::from_str(stdout.lines().last().unwrap_or("null"))
            .unwrap_or_else(|e| panic!("{name}: no report ({e}): {stdout}\n{stderr}"));
        eprintln!("{name}: {report}");
        assert_eq!(
            report["errors"],
            serde_json::json!([]),
            "{name}: {report}\n{stderr}"
        );
        assert_eq!(report["rounds"], ROUNDS, "{name}: {report}");
        assert!(
            report["progress"]
                .as_array()
                .unwrap()
                .iter()
                .all(|p| p.as_u64() >= Some(1)),
            "{name}: progress arrived on every call: {report}"
        );
        assert!(
            report["sessionId"].as_str().unwrap().starts_with("s1."),
            "{name}: a sealed session id: {report}"
        );
        assert_eq!(report["closed"], true, "{name}: {report}");
        assert!(
            report["subscribed"].is_string(),
            "{name}: subscribed: {report}"
        );
    }
    // The survivors carried the second half.
    for replica in [&a, &c] {
        for caller in ["ts", "py"] {
            let at_halfway = before_kill
                .iter()
                .find(|((r, c), _)| r == &replica.name && *c == caller)
                .map(|(_, n)| *n)
                .unwrap();
            assert!(
                served(replica, caller).await > at_halfway,
                "replica {} served nothing of {caller} after the kill",
                replica.name
            );
        }
    }
}
