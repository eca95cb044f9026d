//! `litellm-mcp bench`: a load generator for any MCP endpoint — streamable HTTP (either
//! era), WebSocket, or a stdio command — used to measure what a call through the
//! gateway costs against a call straight to the server behind it.
//!
//! N client sessions are each set up once (`initialize` and
//! `notifications/initialized`, or nothing in the stateless era), then each runs a
//! closed loop of `tools/call` (or `tools/list`) for a duration or a request count,
//! after a warm-up. The report gives requests per second, latency percentiles (HDR
//! histogram) and errors by kind, as text or JSON; a progress line goes to stderr.
//!
//! Must not: go through the library's client ([`crate::core::mcp`]), its tool cache or
//! its argument validation. The generator writes raw JSON-RPC over a shared `reqwest`
//! client, `tokio-tungstenite` or a child's pipes, so that what it measures is the
//! endpoint and not our client.
//!
//! # Layout
//! - [`rpc`]: request bodies, the handshake messages, reading a response, error kinds.
//! - [`connection`]: the [`connection::Target`] and one session over it, a closed enum
//!   over the transports, each in its file: [`http`] (streamable HTTP: JSON or SSE
//!   answers, session or stateless headers), [`websocket`], and [`stdio`] (a process
//!   per session).
//! - [`driver`]: set-up, the closed loops, warm-up, stop, progress.
//! - [`report`]: recording, percentiles, text and JSON.

pub mod connection;
pub mod driver;
pub mod http;
pub mod report;
pub mod rpc;
pub mod stdio;
pub mod websocket;

use std::time::Duration;

use reqwest::header::{HeaderName, HeaderValue};
use serde_json::Value;

use self::connection::Target;
use self::driver::{Plan, Stop};
use self::http::HttpTarget;
pub use self::report::Report;
use self::rpc::{Era, Workload};

/// The `bench` command line.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("endpoint").required(true).args(["url", "stdio"])))]
#[command(group(clap::ArgGroup::new("request").required(true).args(["tool", "list"])))]
pub struct BenchArgs {
    /// The endpoint: `http(s)://…` (streamable HTTP) or `ws(s)://…` (WebSocket).
    pub url: Option<String>,
    /// Instead of a URL: a command line that speaks MCP on stdin/stdout (each session
    /// starts its own process), e.g. 'mcp-fixture --stdio'.
    #[arg(long, value_name = "COMMAND")]
    pub stdio: Option<String>,
    /// The protocol era: `sessions` (initialize; 2025-11-25) or `stateless`
    /// (2026-07-28).
    #[arg(long, value_enum, default_value_t = Era::Sessions)]
    pub era: Era,
    /// Client sessions, each running its own closed loop.
    #[arg(short, long, default_value_t = 1)]
    pub concurrency: usize,
    /// Call this tool (`tools/call`).
    #[arg(long)]
    pub tool: Option<String>,
    /// The tool's arguments, a JSON object.
    #[arg(long, default_value = "{}", requires = "tool")]
    pub args: String,
    /// List tools (`tools/list`) instead of calling one.
    #[arg(long)]
    pub list: bool,
    /// How long to measure (`10s`, `500ms`, `2m`, or seconds); with `--requests`, the
    /// most the run may take (default 600 s then).
    #[arg(short, long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Stop after this many measured requests (0: only set the sessions up).
    #[arg(short = 'n', long)]
    pub requests: Option<u64>,
    /// How long the loops run before measuring starts.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// The longest one request or one session set-up may take.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// A header for every HTTP request or the WebSocket upgrade, `Name: value`
    /// (repeatable), e.g. 'Authorization: Bearer sk-…'.
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE", value_parser = parse_header)]
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Leave HTTP sessions open at the end (no DELETE): to measure idle sessions.
    #[arg(long)]
    pub keep_sessions: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// No progress line on stderr.
    #[arg(short, long)]
    pub quiet: bool,
}

/// Why `bench` could not run, or ran without success.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The command line names something unusable.
    #[error("{message}")]
    Usage {
        /// What is wrong.
        message: String,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {source}")]
    Client {
        /// The cause.
        #[from]
        source: reqwest::Error,
    },
    /// No session could be set up, or requests were asked for and none succeeded.
    #[error("no {what} succeeded (see the report's errors)")]
    NothingSucceeded {
        /// `session` or `request`.
        what: &'static str,
    },
}

fn usage(message: impl Into<String>) -> BenchError {
    BenchError::Usage {
        message: message.into(),
    }
}

/// Parses `10s`, `250ms`, `2m`, `1.5` (seconds).
///
/// # Errors
/// A description of the accepted forms.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60.0)
    } else {
        (text, 1.0)
    };
    number
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|n| n.is_finite() && *n >= 0.0)
        .and_then(|n| Duration::try_from_secs_f64(n * scale).ok())
        .ok_or_else(|| format!("'{text}' is not a duration (10s, 250ms, 2m, or seconds)"))
}

/// Parses `Name: value`.
///
/// # Errors
/// When it is not a valid header name and value.
pub fn parse_header(text: &str) -> Result<(HeaderName, HeaderValue), String> {
    let (name, value) = text
        .split_once(':')
        .ok_or_else(|| format!("'{text}' is not 'Name: value'"))?;
    let name = HeaderName::try_from(name.trim()).map_err(|e| format!("header name: {e}"))?;
    let mut value =
        HeaderValue::try_from(value.trim()).map_err(|e| format!("header value: {e}"))?;
    value.set_sensitive(true);
    Ok((name, value))
}

impl BenchArgs {
    /// The run the arguments describe.
    ///
    /// # Errors
    /// [`BenchError::Usage`] for a bad URL, command line or arguments.
    pub fn plan(&self) -> Result<Plan, BenchError> {
        let arguments: Value = serde_json::from_str(&self.args)
            .map_err(|e| usage(format!("--args is not JSON: {e}")))?;
        if !arguments.is_object() {
            return Err(usage("--args must be a JSON object"));
        }
        if self.concurrency == 0 {
            return Err(usage("--concurrency must be at least 1"));
        }
        let tool = if self.list {
            None
        } else {
            self.tool.as_deref()
        };
        let workload = Workload::new(tool, &arguments, self.era);
        let target = match (&self.url, &self.stdio) {
            (Some(url), _) => {
                let parsed = url::Url::parse(url).map_err(|e| usage(format!("{url}: {e}")))?;
                match parsed.scheme() {
                    "http" | "https" => {
                        Target::Http(HttpTarget::new(parsed, &self.headers, self.era)?)
                    }
                    "ws" | "wss" => Target::WebSocket {
                        url: url.clone(),
                        headers: self.headers.clone(),
                        era: self.era,
                    },
                    other => {
                        return Err(usage(format!(
                            "{url}: scheme '{other}' is not http(s) or ws(s)"
                        )))
                    }
                }
            }
            (None, Some(command)) => {
                let mut words = shell_words::split(command)
                    .map_err(|e| usage(format!("--stdio: {e}")))?
                    .into_iter();
                let program = words
                    .next()
                    .ok_or_else(|| usage("--stdio: the command line is empty"))?;
                Target::Stdio {
                    program,
                    args: words.collect(),
                    era: self.era,
                }
            }
            (None, None) => return Err(usage("give a URL or --stdio COMMAND")),
        };
        let stop = match (self.requests, self.duration) {
            (Some(count), cap) => Stop::Count(count, cap.unwrap_or(driver::COUNT_MODE_CAP)),
            (None, duration) => Stop::After(duration.unwrap_or(Duration::from_secs(10))),
        };
        Ok(Plan {
            target,
            workload,
            concurrency: self.concurrency,
            warmup: self.warmup,
            stop,
            timeout: self.timeout,
            keep_sessions: self.keep_sessions,
            progress: !self.quiet,
        })
    }
}

/// Runs `litellm-mcp bench` and prints its report on stdout.
///
/// # Errors
/// [`BenchError::Usage`] before running; [`BenchError::NothingSucceeded`] after
/// printing the report when no session, or no asked-for request, succeeded.
pub async fn main(args: BenchArgs) -> Result<Report, BenchError> {
    let plan = args.plan()?;
    let wanted_requests = !matches!(plan.stop, Stop::Count(0, _));
    let report = driver::run(plan).await;
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{report}");
    }
    if report.sessions_ok == 0 {
        return Err(BenchError::NothingSucceeded { what: "session" });
    }
    if wanted_requests && report.requests == 0 {
        return Err(BenchError::NothingSucceeded { what: "request" });
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_headers_parse() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-1s").is_err());
        let (name, value) = parse_header("Authorization: Bearer sk-1").unwrap();
        assert_eq!(name, "authorization");
        assert_eq!(value, "Bearer sk-1");
        assert!(value.is_sensitive());
        assert!(parse_header("no colon").is_err());
    }
}
