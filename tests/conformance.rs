//! The official MCP conformance suite (npm `@modelcontextprotocol/conformance`
//! 0.2.0-alpha.12, its server scenarios, on Node 22) under both requirement sets
//! (`--requirements 2025-11-25` and `--requirements 2026-07-28`) against a dual-era
//! third-party upstream (`tests/servers/py2_conformance_server.py`, the Python SDK 2.x),
//! once directly and once through the service's `/mcp/<server>`: every scenario that passes
//! directly must pass through the gateway, besides the regressions listed in
//! `tests/conformance/known-gaps.txt` (a list that may only shrink). The work is
//! `tests/conformance/run.sh`; this test runs it with the `litellm-mcp` binary cargo built
//! for the tests, bounds its time, and shows its tables with the scored counts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A normal run takes about 30 s; run.sh bounds each of its suite runs (4 × 60 s at
/// worst), so this only catches a run that hangs outside them.
const LIMIT: Duration = Duration::from_secs(300);

#[test]
fn conformance_scenarios_pass_through_the_gateway_as_they_pass_directly() {
    common::deps();
    common::node();
    common::python_mcp2();
    let script = common::repo_root().join("tests/conformance/run.sh");
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("conformance");
    let started = Instant::now();
    let mut child = Command::new("bash")
        .arg(&script)
        .env("LITELLM_MCP_BIN", env!("CARGO_BIN_EXE_litellm-mcp"))
        .env("CONFORMANCE_OUT", &out)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so a timeout can stop the script and all it started.
        .process_group(0)
        .spawn()
        .expect("bash runs");
    let pid = child.id();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > LIMIT {
            // TERM lets the script's trap stop the fixture and the gateway; KILL after.
            let group = format!("-{pid}");
            let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
            std::thread::sleep(Duration::from_secs(5));
            let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let table = out_reader.join().unwrap();
    let log = err_reader.join().unwrap();
    println!("{table}");
    eprintln!("{log}");
    println!(
        "conformance run took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let status = status.unwrap_or_else(|| {
        panic!(
            "tests/conformance/run.sh did not finish within {LIMIT:?}\n{table}\n{log}\nresults in {}",
            out.display()
        )
    });
    assert!(
        status.success(),
        "tests/conformance/run.sh failed ({status}): a scenario does worse through the gateway \
         than directly, or the run broke\n{table}\n{log}\nresults in {}",
        out.display()
    );
}
