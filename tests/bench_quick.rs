//! `scripts/bench.sh --quick` in the test suite: the benchmark harness (the `bench`
//! command over every transport, the fixture, the gateway configs it generates, its
//! clean-up) keeps working. Figures are printed, never judged: only the exit status and
//! the presence of every scenario's lines are asserted.
//!
//! The script builds with the `dev` profile here (`BENCH_PROFILE`, unless the
//! environment sets it), reusing what `cargo test` just built: a release build would
//! add minutes to every run of the suite for figures nobody reads in CI.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Far above a quick run (~15 s plus an incremental build); only a hang reaches it.
const LIMIT: Duration = Duration::from_secs(900);

#[test]
fn quick_benchmark_runs_every_scenario() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let profile = std::env::var("BENCH_PROFILE").unwrap_or_else(|_| "dev".to_string());
    let mut child = Command::new("bash")
        .arg(root.join("scripts/bench.sh"))
        .arg("--quick")
        .current_dir(&root)
        .env("BENCH_PROFILE", &profile)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("bash runs");
    // Drain both pipes on threads so the script never blocks on a full pipe.
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > LIMIT {
            // SIGTERM lets the script's trap stop the servers it started.
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            std::thread::sleep(Duration::from_secs(15));
            let _ = child.kill();
            let _ = child.wait();
            panic!("scripts/bench.sh --quick ran for more than {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stdout = out.join().unwrap();
    let stderr = err.join().unwrap();
    println!("{stdout}");
    assert!(
        status.success(),
        "scripts/bench.sh --quick failed ({status}):\n{stdout}\n{stderr}"
    );
    for expected in [
        "scenario 1 | http      | c=1   | direct",
        "scenario 1 | http      | c=1   | gateway  /mcp/fx-http",
        "scenario 1 | http      | c=32  | gateway  /mcp/fx-http",
        "scenario 1 | http      | c=32  | gateway  /mcp fx-http__echo",
        "scenario 2 | stdio     | c=1   | gateway  /mcp/fx-stdio",
        "scenario 2 | stdio     | c=32  | direct",
        "scenario 2 | websocket | c=1   | gateway  /mcp/fx-ws",
        "scenario 2 | websocket | c=32  | direct",
        "scenario 2 | websocket | c=32  | gateway  /ws/fx-ws (WS face)",
        "scenario 3 | upstream tools/list (fixture /stats):",
        " to fill the caches, 0 while the gateway served",
        "scenario 4 | gateway RSS",
        "scenario 6 | 20 servers",
        "scenario 7 | http      | c=32  | 3 replicas via HAProxy",
        "scenario 7 | c=1   | fleet / one replica:",
        "bench.sh: done",
    ] {
        assert!(
            stdout.contains(expected),
            "no line with '{expected}' in:\n{stdout}\n{stderr}"
        );
    }
    // Every gateway figure carries its ratio to the baseline.
    let gateway_rows = stdout
        .lines()
        .filter(|l| l.starts_with("scenario 1") || l.starts_with("scenario 2"))
        .filter(|l| l.contains("gateway"))
        .collect::<Vec<_>>();
    assert_eq!(gateway_rows.len(), 10, "{stdout}");
    assert!(gateway_rows.iter().all(|l| l.contains("x) |")), "{stdout}");
}
