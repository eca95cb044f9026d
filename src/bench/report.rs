//! What a run measured: per-session recorders ([`Recorder`], no sharing in the loop),
//! merged into one [`Report`], printed as text or JSON.
//!
//! Latency is recorded in microseconds in an HDR histogram (3 significant digits, 1 µs
//! to 1 h) and covers successful requests only; failures are counted by kind, each with
//! the first description seen. Requests per second is successful requests over the
//! measured window: from the end of the warm-up to the last measured response.

use std::collections::BTreeMap;
use std::fmt::{self, Write};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

use super::rpc::{ErrorKind, Failure};

const HIGHEST_MICROS: u64 = 3_600_000_000;

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIGHEST_MICROS, 3).expect(
        "constant bounds that hdrhistogram accepts (low >= 1, high >= 2 * low, sigfig <= 5)",
    )
}

/// One session's measurements.
#[derive(Debug)]
pub struct Recorder {
    latency_micros: Histogram<u64>,
    ok: u64,
    warmup: u64,
    errors: BTreeMap<ErrorKind, (u64, String)>,
    last_done: Option<Instant>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            latency_micros: new_histogram(),
            ok: 0,
            warmup: 0,
            errors: BTreeMap::new(),
            last_done: None,
        }
    }
}

impl Recorder {
    /// Records a measured request that ended at `done`.
    pub fn record(&mut self, outcome: &Result<(), Failure>, latency: Duration, done: Instant) {
        match outcome {
            Ok(()) => {
                let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
                self.latency_micros
                    .saturating_record(micros.clamp(1, HIGHEST_MICROS));
                self.ok += 1;
            }
            Err(failure) => self.failure(failure),
        }
        self.last_done = Some(self.last_done.map_or(done, |last| last.max(done)));
    }

    /// Counts a request of the warm-up (not measured).
    pub fn warmup(&mut self) {
        self.warmup += 1;
    }

    /// Counts a failure outside a request (a session that could not be set up again).
    pub fn failure(&mut self, failure: &Failure) {
        let entry = self
            .errors
            .entry(failure.kind)
            .or_insert_with(|| (0, failure.detail.clone()));
        entry.0 += 1;
    }

    /// Adds another session's measurements.
    pub fn merge(&mut self, other: Recorder) {
        let _ = self.latency_micros.add(&other.latency_micros);
        self.ok += other.ok;
        self.warmup += other.warmup;
        for (kind, (count, detail)) in other.errors {
            self.errors.entry(kind).or_insert((0, detail)).0 += count;
        }
        self.last_done = match (self.last_done, other.last_done) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }

    /// When the last measured request ended.
    pub fn last_done(&self) -> Option<Instant> {
        self.last_done
    }
}

/// The run, as printed.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The URL or command line.
    pub target: String,
    /// `http`, `websocket` or `stdio`.
    pub transport: &'static str,
    /// `sessions` or `stateless`.
    pub era: String,
    /// `tools/call` or `tools/list`.
    pub method: &'static str,
    /// The tool called.
    pub tool: Option<String>,
    /// Client sessions.
    pub concurrency: usize,
    /// Seconds of warm-up before measuring.
    pub warmup_secs: f64,
    /// Sessions set up.
    pub sessions_ok: usize,
    /// Sessions whose set-up failed.
    pub sessions_failed: usize,
    /// Wall time of setting every session up, in seconds.
    pub setup_secs: f64,
    /// Successful measured requests.
    pub requests: u64,
    /// Failed measured requests (and sessions lost for good).
    pub errors: u64,
    /// Requests answered during the warm-up (not measured), so that a caller can
    /// divide the CPU time a server used by every request it served.
    pub warmup_requests: u64,
    /// Failures by kind: count and the first description.
    pub errors_by_kind: BTreeMap<String, ErrorCount>,
    /// The measured window, in seconds.
    pub elapsed_secs: f64,
    /// `requests / elapsed_secs`.
    pub requests_per_sec: f64,
    /// Latency of successful requests, in microseconds.
    pub latency_us: Latency,
}

/// One kind of failure.
#[derive(Debug, Serialize)]
pub struct ErrorCount {
    /// How often.
    pub count: u64,
    /// The first description seen.
    pub example: String,
}

/// Latency percentiles in microseconds (0 when nothing succeeded).
#[derive(Debug, Serialize)]
pub struct Latency {
    /// Fastest.
    pub min: u64,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Slowest.
    pub max: u64,
}

/// Everything about the run except its measurements.
#[derive(Debug)]
pub struct RunFacts {
    /// The URL or command line.
    pub target: String,
    /// `http`, `websocket` or `stdio`.
    pub transport: &'static str,
    /// `sessions` or `stateless`.
    pub era: String,
    /// `tools/call` or `tools/list`.
    pub method: &'static str,
    /// The tool called.
    pub tool: Option<String>,
    /// Client sessions asked for.
    pub concurrency: usize,
    /// Warm-up.
    pub warmup: Duration,
    /// Sessions set up.
    pub sessions_ok: usize,
    /// Sessions whose set-up failed.
    pub sessions_failed: usize,
    /// Time to set them up.
    pub setup: Duration,
    /// Where the measured window starts.
    pub measure_start: Instant,
}

impl Report {
    /// Combines the facts of the run with its merged measurements.
    pub fn new(facts: RunFacts, recorder: Recorder) -> Report {
        let elapsed = recorder
            .last_done()
            .map(|last| last.saturating_duration_since(facts.measure_start))
            .unwrap_or_default()
            .as_secs_f64();
        let h = &recorder.latency_micros;
        let latency = if recorder.ok == 0 {
            Latency {
                min: 0,
                mean: 0.0,
                p50: 0,
                p90: 0,
                p99: 0,
                max: 0,
            }
        } else {
            Latency {
                min: h.min(),
                mean: (h.mean() * 10.0).round() / 10.0,
                p50: h.value_at_quantile(0.50),
                p90: h.value_at_quantile(0.90),
                p99: h.value_at_quantile(0.99),
                max: h.max(),
            }
        };
        let errors = recorder.errors.values().map(|(count, _)| count).sum();
        Report {
            target: facts.target,
            transport: facts.transport,
            era: facts.era,
            method: facts.method,
            tool: facts.tool,
            concurrency: facts.concurrency,
            warmup_secs: facts.warmup.as_secs_f64(),
            sessions_ok: facts.sessions_ok,
            sessions_failed: facts.sessions_failed,
            setup_secs: facts.setup.as_secs_f64(),
            requests: recorder.ok,
            errors,
            warmup_requests: recorder.warmup,
            errors_by_kind: recorder
                .errors
                .into_iter()
                .map(|(kind, (count, example))| (kind.to_string(), ErrorCount { count, example }))
                .collect(),
            elapsed_secs: elapsed,
            requests_per_sec: if elapsed > 0.0 {
                recorder.ok as f64 / elapsed
            } else {
                0.0
            },
            latency_us: latency,
        }
    }

    /// The report as one JSON object.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

fn ms(micros: u64) -> String {
    format!("{:.3} ms", micros as f64 / 1000.0)
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut workload = self.method.to_string();
        if let Some(tool) = &self.tool {
            let _ = write!(workload, " {tool}");
        }
        writeln!(
            f,
            "target     {} ({}, {})",
            self.target, self.transport, self.era
        )?;
        writeln!(
            f,
            "workload   {workload}, {} sessions, {:.1} s warm-up",
            self.concurrency, self.warmup_secs
        )?;
        writeln!(
            f,
            "sessions   {} set up in {:.3} s, {} failed",
            self.sessions_ok, self.setup_secs, self.sessions_failed
        )?;
        writeln!(
            f,
            "requests   {} ok, {} errors in {:.2} s: {:.1} requests/s",
            self.requests, self.errors, self.elapsed_secs, self.requests_per_sec
        )?;
        let l = &self.latency_us;
        writeln!(
            f,
            "latency    p50 {}  p90 {}  p99 {}  max {}  (min {}, mean {})",
            ms(l.p50),
            ms(l.p90),
            ms(l.p99),
            ms(l.max),
            ms(l.min),
            ms(l.mean.round() as u64)
        )?;
        if self.errors_by_kind.is_empty() {
            writeln!(f, "errors     none")?;
        } else {
            for (kind, count) in &self.errors_by_kind {
                writeln!(
                    f,
                    "errors     {kind}: {} (first: {})",
                    count.count, count.example
                )?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorders_merge_and_report() {
        let start = Instant::now();
        let mut a = Recorder::default();
        let mut b = Recorder::default();
        for micros in 1..=100 {
            a.record(
                &Ok(()),
                Duration::from_micros(micros * 10),
                start + Duration::from_millis(500),
            );
        }
        b.record(
            &Err(Failure::new(ErrorKind::HttpStatus(502), "bad gateway")),
            Duration::from_millis(1),
            start + Duration::from_secs(1),
        );
        b.record(
            &Err(Failure::new(ErrorKind::HttpStatus(502), "again")),
            Duration::from_millis(1),
            start + Duration::from_secs(1),
        );
        a.merge(b);
        let facts = RunFacts {
            target: "http://127.0.0.1:1/mcp".into(),
            transport: "http",
            era: "sessions".into(),
            method: "tools/call",
            tool: Some("echo".into()),
            concurrency: 2,
            warmup: Duration::ZERO,
            sessions_ok: 2,
            sessions_failed: 0,
            setup: Duration::from_millis(3),
            measure_start: start,
        };
        let report = Report::new(facts, a);
        assert_eq!(report.requests, 100);
        assert_eq!(report.errors, 2);
        assert_eq!(report.errors_by_kind["http_502"].example, "bad gateway");
        assert!((report.requests_per_sec - 100.0).abs() < 1.0);
        assert!((495..=505).contains(&report.latency_us.p50));
        assert!((995..=1005).contains(&report.latency_us.max));
        let text = report.to_string();
        assert!(text.contains("requests   100 ok, 2 errors"), "{text}");
        let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
        assert_eq!(json["latency_us"]["max"], report.latency_us.max);
    }
}
