//! The run: set every session up, then a closed loop per session (send, wait for the
//! response, send the next), a warm-up that is not measured, and a stop by time or by
//! request count.
//!
//! Invariants: every loop is bounded (by the deadline, and in count mode also by the
//! tickets); every task is in a `JoinSet` that the run awaits; sessions record into
//! their own [`Recorder`] and share only counters for the progress line.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::connection::{Connection, Target};
use super::report::{Recorder, Report, RunFacts};
use super::rpc::{ErrorKind, Failure, Workload};

/// How many sessions are set up at once (a bound on connections opened together).
const SETUP_PARALLELISM: usize = 64;
/// The longest a count-bounded run may take when no duration is given.
pub const COUNT_MODE_CAP: Duration = Duration::from_secs(600);

/// When a run stops measuring.
#[derive(Debug, Clone, Copy)]
pub enum Stop {
    /// After this long.
    After(Duration),
    /// After this many measured requests, or after the duration, whichever is first.
    Count(u64, Duration),
}

/// A run, fully described.
#[derive(Debug)]
pub struct Plan {
    /// The endpoint.
    pub target: Target,
    /// What each request does.
    pub workload: Workload,
    /// Client sessions, each with its own closed loop.
    pub concurrency: usize,
    /// How long the loops run before measuring starts.
    pub warmup: Duration,
    /// When measuring stops.
    pub stop: Stop,
    /// The longest one request (or one session set-up) may take.
    pub timeout: Duration,
    /// Leave HTTP sessions open at the end (no `DELETE`).
    pub keep_sessions: bool,
    /// Print a progress line on stderr.
    pub progress: bool,
}

/// What the sessions share.
struct Shared {
    target: Target,
    workload: Workload,
    timeout: Duration,
    keep_sessions: bool,
    measure_start: Instant,
    deadline: Instant,
    /// Measured requests still to send in count mode (`u64::MAX` otherwise).
    tickets: AtomicU64,
    /// For the progress line.
    ok: AtomicU64,
    failed: AtomicU64,
}

/// Runs the plan and reports.
pub async fn run(plan: Plan) -> Report {
    let ready = Arc::new(AtomicUsize::new(0));
    let progress = CancellationToken::new();
    let mut ticker = JoinSet::new();

    let setup_started = Instant::now();
    if plan.progress {
        ticker.spawn(setup_progress(
            ready.clone(),
            plan.concurrency,
            progress.clone(),
        ));
    }
    let connected: Vec<Result<Connection, Failure>> = futures::stream::iter(0..plan.concurrency)
        .map(|_| {
            let ready = ready.clone();
            let (target, workload, timeout) = (&plan.target, &plan.workload, plan.timeout);
            async move {
                let outcome = connect(target, workload, timeout).await;
                ready.fetch_add(1, Ordering::Relaxed);
                outcome
            }
        })
        .buffer_unordered(SETUP_PARALLELISM)
        .collect()
        .await;
    let setup = setup_started.elapsed();
    progress.cancel();
    while ticker.join_next().await.is_some() {}

    let mut setup_failures = Recorder::default();
    let mut connections = Vec::with_capacity(connected.len());
    for outcome in connected {
        match outcome {
            Ok(connection) => connections.push(connection),
            Err(failure) => setup_failures.failure(&Failure::new(
                ErrorKind::Setup,
                format!("{}: {}", failure.kind, failure.detail),
            )),
        }
    }
    let sessions_ok = connections.len();
    let sessions_failed = plan.concurrency - sessions_ok;

    let start = Instant::now();
    let measure_start = start + plan.warmup;
    let (limit, tickets) = match plan.stop {
        Stop::After(duration) => (duration, u64::MAX),
        Stop::Count(count, cap) => (cap, count),
    };
    let shared = Arc::new(Shared {
        target: plan.target.clone(),
        workload: plan.workload.clone(),
        timeout: plan.timeout,
        keep_sessions: plan.keep_sessions,
        measure_start,
        deadline: measure_start + limit,
        tickets: AtomicU64::new(tickets),
        ok: AtomicU64::new(0),
        failed: AtomicU64::new(0),
    });
    let progress = CancellationToken::new();
    if plan.progress {
        ticker.spawn(loop_progress(shared.clone(), progress.clone()));
    }
    let mut sessions = JoinSet::new();
    for connection in connections {
        sessions.spawn(session_loop(shared.clone(), connection));
    }
    let mut recorder = setup_failures;
    while let Some(joined) = sessions.join_next().await {
        match joined {
            Ok(session) => recorder.merge(session),
            Err(e) => recorder.failure(&Failure::new(
                ErrorKind::Closed,
                format!("a session task ended abnormally: {e}"),
            )),
        }
    }
    progress.cancel();
    while ticker.join_next().await.is_some() {}

    let facts = RunFacts {
        target: plan.target.address(),
        transport: plan.target.transport(),
        era: plan.target.era().to_string(),
        method: plan.workload.method,
        tool: plan.workload.tool.clone(),
        concurrency: plan.concurrency,
        warmup: plan.warmup,
        sessions_ok,
        sessions_failed,
        setup,
        measure_start,
    };
    Report::new(facts, recorder)
}

async fn connect(
    target: &Target,
    workload: &Workload,
    timeout: Duration,
) -> Result<Connection, Failure> {
    match tokio::time::timeout(timeout, target.connect(workload)).await {
        Ok(outcome) => outcome,
        Err(_) => Err(Failure::fatal(
            ErrorKind::Timeout,
            format!("no session within {timeout:?}"),
        )),
    }
}

/// One session's closed loop.
async fn session_loop(shared: Arc<Shared>, connection: Connection) -> Recorder {
    let mut recorder = Recorder::default();
    let mut connection = Some(connection);
    let mut next_id: u64 = 1;
    while let Some(live) = connection.as_mut() {
        let now = Instant::now();
        if now >= shared.deadline {
            break;
        }
        let measured = now >= shared.measure_start;
        if measured
            && shared
                .tickets
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| t.checked_sub(1))
                .is_err()
        {
            break;
        }
        let id = next_id;
        next_id += 1;
        let body = shared.workload.body(id);
        let started = Instant::now();
        let outcome = match tokio::time::timeout(shared.timeout, live.request(id, body)).await {
            Ok(outcome) => outcome,
            // A response may still be on its way: start a clean session.
            Err(_) => Err(Failure::fatal(
                ErrorKind::Timeout,
                format!("no response within {:?}", shared.timeout),
            )),
        };
        let done = Instant::now();
        if measured {
            recorder.record(&outcome, done - started, done);
            let counter = if outcome.is_ok() {
                &shared.ok
            } else {
                &shared.failed
            };
            counter.fetch_add(1, Ordering::Relaxed);
        } else {
            recorder.warmup();
        }
        if let Err(failure) = outcome {
            if failure.fatal {
                if let Some(old) = connection.take() {
                    old.close(shared.keep_sessions).await;
                }
                if Instant::now() >= shared.deadline {
                    break;
                }
                match connect(&shared.target, &shared.workload, shared.timeout).await {
                    Ok(fresh) => connection = Some(fresh),
                    Err(failure) => recorder.failure(&Failure::new(
                        ErrorKind::Setup,
                        format!("{}: {}", failure.kind, failure.detail),
                    )),
                }
            }
        }
    }
    if let Some(connection) = connection {
        connection.close(shared.keep_sessions).await;
    }
    recorder
}

/// Writes a progress line to stderr: rewritten in place on a terminal, one line per
/// tick otherwise.
fn show(line: &str, last: bool) {
    let mut stderr = std::io::stderr().lock();
    if stderr.is_terminal() {
        let _ = write!(stderr, "\r\x1b[2K{line}");
        if last {
            let _ = writeln!(stderr);
        }
    } else {
        let _ = writeln!(stderr, "{line}");
    }
    let _ = stderr.flush();
}

async fn setup_progress(ready: Arc<AtomicUsize>, total: usize, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = tick.tick() => show(&format!("bench: setting up sessions {}/{total}", ready.load(Ordering::Relaxed)), false),
        }
    }
}

async fn loop_progress(shared: Arc<Shared>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let mut last_ok = 0;
    loop {
        let finished = tokio::select! {
            () = stop.cancelled() => true,
            _ = tick.tick() => false,
        };
        let now = Instant::now();
        let ok = shared.ok.load(Ordering::Relaxed);
        let failed = shared.failed.load(Ordering::Relaxed);
        let line = if now < shared.measure_start {
            format!(
                "bench: warming up, {:.1} s left",
                (shared.measure_start - now).as_secs_f64()
            )
        } else {
            format!(
                "bench: {:6.1} s  {ok} ok  {failed} errors  {} requests/s in the last second",
                (now - shared.measure_start).as_secs_f64(),
                ok - last_ok
            )
        };
        last_ok = ok;
        if finished {
            if now >= shared.measure_start {
                show(&format!("bench: done, {ok} ok, {failed} errors"), true);
            }
            break;
        }
        show(&line, false);
    }
}
