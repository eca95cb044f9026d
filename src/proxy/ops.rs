//! Operations: `/health` (alive), `/ready` (no enabled upstream has failed), `/metrics`
//! (Prometheus/OpenMetrics text), the [`Metrics`] the faces record into, and the audit
//! record of every tool call.
//!
//! Owns the metric names, their labels and buckets, and the bounds on label values: a
//! label value a client controls (an MCP method, a tool name it made up) never becomes a
//! series of its own, so no client can grow the registry without limit. Gauges that
//! describe current state (upstreams up, sessions open) are computed at scrape time, not
//! kept in step by the code that changes that state.
//!
//! These endpoints need no API key. They never reveal URLs, credentials or error texts
//! (an upstream's last error is on the authenticated `/v1/mcp/servers`). With
//! `server_names: public` they name every server (and `/metrics` every tool and caller it
//! has counted); with `server_names: private` `/ready` and `/metrics` name only the
//! servers, tools and callers the caller's credential may see (its own caller series,
//! the servers it may know of, the tools it may see), and nothing without a valid
//! credential: `/ready` then answers `{"ready"}` alone, and `/metrics` keeps only the
//! series without such labels. `/health` names nothing. The audit record names the
//! caller, the tool, the outcome and the duration, and never argument values or results.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use serde_json::{json, Value};

use super::AppState;
use crate::core::mcp::{PermissionLevel, ServerInfo, ServerState};
use crate::identity::{AuthFailure, Identity};

/// The prefix of every metric name.
const PREFIX: &str = "litellm_mcp";
/// The `Content-Type` of what `prometheus-client` encodes.
const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Upper bounds of the tool-call duration buckets, in seconds: 1 ms to 60 s.
const DURATION_BUCKETS: [f64; 15] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
/// The label value that stands for every value not kept as a label of its own.
const OTHER: &str = "other";
/// The label value of a tool call's server and tool when they are not kept (an unknown
/// tool, or past [`MAX_TOOL_SERIES`]).
const UNNAMED: &str = "-";
/// Distinct `(server, tool)` pairs kept as labels. Upstream catalogs are finite, but a
/// misbehaving upstream can change its list endlessly; past this, calls are counted under
/// `-`.
const MAX_TOOL_SERIES: usize = 4096;
/// Distinct callers (key names, token subjects) kept as label values; past this, calls
/// are counted under `other`.
const MAX_CALLER_SERIES: usize = 1000;
/// Faces kept as label values.
const FACES: [&str; 5] = ["http", "sse", "ws", "stdio", "rest"];
/// Methods kept as label values: the MCP methods the service answers, the notifications
/// clients send, `-` (not known yet) and the REST-only `servers/list`. Anything else a
/// client sends is counted as `other`.
const METHODS: [&str; 21] = [
    "-",
    "initialize",
    "ping",
    "server/discover",
    "subscriptions/listen",
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "prompts/list",
    "prompts/get",
    "completion/complete",
    "logging/setLevel",
    "notifications/initialized",
    "notifications/cancelled",
    "notifications/progress",
    "notifications/roots/list_changed",
    "servers/list",
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    face: String,
    method: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ToolCallLabels {
    server: String,
    tool: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ToolLabels {
    server: String,
    tool: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AuthLabels {
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallerLabels {
    via: String,
    caller: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServerLabels {
    server: String,
}

type DurationFamily = Family<ToolLabels, Histogram, fn() -> Histogram>;

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

/// The service's metrics: counters and a histogram recorded as requests happen, in a
/// registry that `/metrics` encodes together with gauges computed at scrape time.
#[derive(Debug)]
pub struct Metrics {
    /// Holds the families below; only read after construction.
    registry: Registry,
    /// `litellm_mcp_requests_total{face,method,outcome}`.
    requests: Family<RequestLabels, Counter>,
    /// `litellm_mcp_tool_calls_total{server,tool,outcome}`.
    tool_calls: Family<ToolCallLabels, Counter>,
    /// `litellm_mcp_tool_call_duration_seconds{server,tool}`.
    tool_call_duration: DurationFamily,
    /// The `(server, tool)` pairs that have series, bounded by [`MAX_TOOL_SERIES`].
    tool_series: Mutex<HashSet<(String, String)>>,
    /// `litellm_mcp_authentications_total{result}`.
    authentications: Family<AuthLabels, Counter>,
    /// `litellm_mcp_caller_requests_total{via,caller}`.
    caller_requests: Family<CallerLabels, Counter>,
    /// The callers that have series, bounded by [`MAX_CALLER_SERIES`].
    caller_series: Mutex<HashSet<String>>,
    /// Where tool-call audit records go besides the log, in a fleet (the store).
    audit_sink: crate::store::audit::AuditSink,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix(PREFIX);
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Downstream requests by face, method and outcome",
            requests.clone(),
        );
        let tool_calls = Family::<ToolCallLabels, Counter>::default();
        registry.register(
            "tool_calls",
            "Tool calls by upstream server, tool and outcome",
            tool_calls.clone(),
        );
        let tool_call_duration: DurationFamily =
            Family::new_with_constructor(duration_histogram as fn() -> Histogram);
        registry.register_with_unit(
            "tool_call_duration",
            "Duration of tool calls, from the gateway's view",
            Unit::Seconds,
            tool_call_duration.clone(),
        );
        let authentications = Family::<AuthLabels, Counter>::default();
        registry.register(
            "authentications",
            "Downstream requests by how their caller was identified (api_key, token, \
             anonymous) or why not (missing, unknown_key, invalid_token)",
            authentications.clone(),
        );
        let caller_requests = Family::<CallerLabels, Counter>::default();
        registry.register(
            "caller_requests",
            "Identified downstream requests by caller: an API key's name or a token's subject",
            caller_requests.clone(),
        );
        Metrics {
            registry,
            requests,
            tool_calls,
            tool_call_duration,
            tool_series: Mutex::new(HashSet::new()),
            authentications,
            caller_requests,
            caller_series: Mutex::new(HashSet::new()),
            audit_sink: crate::store::audit::AuditSink::default(),
        }
    }
}

impl Metrics {
    /// Counts one downstream request: the face (`http`, `sse`, `ws`, `stdio`, `rest`), the
    /// MCP method, and its outcome (`ok`, `error`, `denied`, `unauthorized`). A face or
    /// method outside the known set is counted as `other`.
    pub fn record_request(&self, face: &str, method: &str, outcome: &str) {
        let labels = RequestLabels {
            face: known_or_other(face, &FACES),
            method: known_or_other(method, &METHODS),
            outcome: outcome.to_string(),
        };
        self.requests.get_or_create(&labels).inc();
    }

    /// Counts a request whose caller was identified, under its way and its name.
    pub fn record_identity(&self, identity: &Identity) {
        let via = identity.via.as_str();
        self.authentications
            .get_or_create(&AuthLabels {
                result: via.to_string(),
            })
            .inc();
        let caller = match self.caller_series.lock() {
            Ok(seen) if seen.contains(&identity.name) => identity.name.clone(),
            Ok(mut seen) if seen.len() < MAX_CALLER_SERIES => {
                seen.insert(identity.name.clone());
                identity.name.clone()
            }
            _ => OTHER.to_string(),
        };
        self.caller_requests
            .get_or_create(&CallerLabels {
                via: via.to_string(),
                caller,
            })
            .inc();
    }

    /// Counts a request refused for its credential.
    pub fn record_auth(&self, failure: &AuthFailure) {
        let result = match failure {
            AuthFailure::Missing => "missing",
            AuthFailure::UnknownKey => "unknown_key",
            AuthFailure::InvalidToken(_) => "invalid_token",
        };
        self.authentications
            .get_or_create(&AuthLabels {
                result: result.to_string(),
            })
            .inc();
    }

    /// Records one tool call: server, tool, outcome (`ok`, `tool_error`, `error`,
    /// `timeout`, `denied`, `unknown`) and its duration. An `unknown` call is counted with
    /// server and tool `-` (the names are whatever the client sent).
    pub fn record_tool_call(&self, server: &str, tool: &str, outcome: &str, duration: Duration) {
        let (server, tool) = self.tool_labels(server, tool, outcome);
        self.tool_calls
            .get_or_create(&ToolCallLabels {
                server: server.clone(),
                tool: tool.clone(),
                outcome: outcome.to_string(),
            })
            .inc();
        self.tool_call_duration
            .get_or_create(&ToolLabels { server, tool })
            .observe(duration.as_secs_f64());
    }

    /// Writes the audit record of one tool call (target `litellm_mcp::audit`: who, which
    /// server and tool, the outcome, the duration; never arguments or results) and
    /// records it with [`Metrics::record_tool_call`].
    pub fn audit(
        &self,
        identity: &Identity,
        server: &str,
        tool: &str,
        outcome: &str,
        duration: Duration,
    ) {
        let duration_ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        tracing::info!(
            target: "litellm_mcp::audit",
            key = %identity.name,
            via = identity.via.as_str(),
            server,
            tool,
            outcome,
            duration_ms,
            "tool call"
        );
        self.record_tool_call(server, tool, outcome, duration);
        if self.audit_sink.is_connected() {
            self.audit_sink
                .send(crate::store::audit::AuditRecord::tool_call(
                    &identity.name,
                    identity.via.as_str(),
                    server,
                    tool,
                    outcome,
                    duration_ms,
                ));
        }
    }

    /// Where tool-call audit records also go (the store, in a fleet).
    pub fn audit_sink(&self) -> &crate::store::audit::AuditSink {
        &self.audit_sink
    }

    /// The metrics as OpenMetrics text, with the scrape-time gauges:
    /// `litellm_mcp_upstream_up{server}` (1 when connected) and
    /// `litellm_mcp_sessions_open`.
    ///
    /// # Errors
    /// Only if formatting into a `String` fails, which it does not.
    pub fn encode(
        &self,
        upstreams: &[ServerInfo],
        sessions_open: usize,
    ) -> Result<String, std::fmt::Error> {
        self.encode_with_live(upstreams, sessions_open, &[])
    }

    /// [`Metrics::encode`] with more scrape-time gauges, each `(name, help, value)`:
    /// the service's `tasks` and `connections_open`.
    ///
    /// # Errors
    /// Only if formatting into a `String` fails, which it does not.
    pub fn encode_with_live(
        &self,
        upstreams: &[ServerInfo],
        sessions_open: usize,
        live: &[(&str, &str, usize)],
    ) -> Result<String, std::fmt::Error> {
        self.encode_replica(upstreams, sessions_open, live, None)
    }

    /// [`Metrics::encode_with_live`] with, for a replica of a fleet,
    /// `litellm_mcp_replica_info{replica}`.
    ///
    /// # Errors
    /// Only if formatting into a `String` fails, which it does not.
    pub fn encode_replica(
        &self,
        upstreams: &[ServerInfo],
        sessions_open: usize,
        live: &[(&str, &str, usize)],
        replica: Option<&str>,
    ) -> Result<String, std::fmt::Error> {
        let mut now = Registry::with_prefix(PREFIX);
        if let Some(replica) = replica {
            now.register(
                "replica",
                "Which replica of the fleet answered",
                prometheus_client::metrics::info::Info::new(vec![(
                    "replica".to_string(),
                    replica.to_string(),
                )]),
            );
        }
        for (name, help, value) in live {
            let gauge = Gauge::<i64>::default();
            gauge.set(i64::try_from(*value).unwrap_or(i64::MAX));
            now.register(*name, *help, gauge);
        }
        let up = Family::<ServerLabels, Gauge>::default();
        for server in upstreams {
            let connected = matches!(server.state, ServerState::Connected { .. });
            up.get_or_create(&ServerLabels {
                server: server.name.clone(),
            })
            .set(i64::from(connected));
        }
        now.register(
            "upstream_up",
            "Whether the gateway is connected to the upstream server (1) or not (0)",
            up,
        );
        let sessions = Gauge::<i64>::default();
        sessions.set(i64::try_from(sessions_open).unwrap_or(i64::MAX));
        now.register("sessions_open", "Open downstream sessions", sessions);

        let mut text = String::new();
        encode_registry(&mut text, &self.registry)?;
        encode_registry(&mut text, &now)?;
        encode_eof(&mut text)?;
        Ok(text)
    }

    /// The labels a tool call is counted under.
    fn tool_labels(&self, server: &str, tool: &str, outcome: &str) -> (String, String) {
        let unnamed = || (UNNAMED.to_string(), UNNAMED.to_string());
        if outcome == "unknown" {
            return unnamed();
        }
        let pair = (server.to_string(), tool.to_string());
        let Ok(mut seen) = self.tool_series.lock() else {
            return unnamed();
        };
        if seen.contains(&pair) {
            return pair;
        }
        if seen.len() >= MAX_TOOL_SERIES {
            return unnamed();
        }
        seen.insert(pair.clone());
        pair
    }
}

fn known_or_other(value: &str, known: &[&str]) -> String {
    if known.contains(&value) {
        value.to_string()
    } else {
        OTHER.to_string()
    }
}

/// `/health`, `/ready`, `/metrics`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
}

/// The process is alive and serving; in a fleet, which replica answered and whether its
/// store answers.
async fn health(State(state): State<AppState>) -> Json<Value> {
    let mut body = json!({"status": "ok"});
    if let Some(fleet) = state.fleet() {
        fleet.describe(&mut body);
    }
    Json(body)
}

/// Which names a caller of an operational endpoint may read (see the module docs).
enum Readable {
    /// Server names are public.
    All,
    /// Those its identity may see.
    Of(Box<Identity>),
    /// None: names are private and it has no valid credential.
    Nothing,
}

impl Readable {
    /// Decided from the request's credential, without counting it (scrapers and probes
    /// call often, usually without one).
    async fn of(state: &AppState, headers: &HeaderMap, path: &str) -> Readable {
        if !state.handler().server_names_are_private() {
            return Readable::All;
        }
        match state.auth().identify(headers, path).await {
            Ok(identity) => Readable::Of(Box::new(identity)),
            Err(_) => Readable::Nothing,
        }
    }

    fn server(&self, state: &AppState, server: &str) -> bool {
        match self {
            Readable::All => true,
            Readable::Of(identity) => state.handler().may_know_server(identity, server),
            Readable::Nothing => false,
        }
    }

    fn tool(&self, state: &AppState, server: &str, tool: &str) -> bool {
        match self {
            Readable::All => true,
            Readable::Of(identity) => {
                state.handler().may_know_server(identity, server)
                    && state.handler().level(identity, server, tool) >= PermissionLevel::Read
            }
            Readable::Nothing => false,
        }
    }

    fn caller(&self, caller: &str) -> bool {
        match self {
            Readable::All => true,
            Readable::Of(identity) => identity.name == caller,
            Readable::Nothing => false,
        }
    }

    /// Whether a sample with these labels may be shown (`-` stands for no name).
    fn sample(&self, state: &AppState, labels: &[(String, String)]) -> bool {
        let get = |name: &str| {
            labels
                .iter()
                .find(|(label, _)| label == name)
                .map(|(_, value)| value.as_str())
        };
        let server_ok = match (get("server"), get("tool")) {
            (None | Some(UNNAMED), _) => true,
            (Some(server), None | Some(UNNAMED)) => self.server(state, server),
            (Some(server), Some(tool)) => self.tool(state, server, tool),
        };
        server_ok && get("caller").is_none_or(|caller| self.caller(caller))
    }
}

/// Ready unless an enabled upstream's last attempt failed. Upstreams are not contacted
/// here: an idle server (not used yet) counts as ready.
async fn ready(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let servers = state.gateway().list_servers().await;
    // A replica whose store is down serves with the configuration it has, but is not
    // ready: a balancer should prefer the others.
    let store_up = state.fleet().is_none_or(|f| f.store().is_up());
    let ready = store_up
        && !servers
            .iter()
            .any(|s| s.enabled && matches!(s.state, ServerState::Failed { .. }));
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let readable = Readable::of(&state, &headers, "/ready").await;
    let mut body = json!({"ready": ready});
    if let Some(fleet) = state.fleet() {
        fleet.describe(&mut body);
    }
    if matches!(readable, Readable::Nothing) {
        return (status, Json(body)).into_response();
    }
    let listed: Vec<Value> = servers
        .iter()
        .filter(|s| readable.server(&state, &s.name))
        .map(readiness_of)
        .collect();
    body["servers"] = json!(listed);
    (status, Json(body)).into_response()
}

/// One server in `/ready`: name, transport, enabled, and its state as the library
/// serializes it (`state`, and `protocol_version` when connected), without the error
/// text of a failed state.
fn readiness_of(server: &ServerInfo) -> Value {
    let mut entry = json!({
        "name": server.name,
        "transport": server.transport,
        "enabled": server.enabled,
    });
    if let (Some(entry), Ok(Value::Object(state))) =
        (entry.as_object_mut(), serde_json::to_value(&server.state))
    {
        entry.extend(state.into_iter().filter(|(key, _)| key != "error"));
    }
    entry
}

async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let upstreams = state.gateway().list_servers().await;
    let readable = Readable::of(&state, &headers, "/metrics").await;
    let mut live = vec![
        (
            "tasks",
            "Background tasks of the service still running (connections, HTTP/2 streams, sessions' helpers)",
            state.live_tasks(),
        ),
        (
            "connections_open",
            "Client connections open, WebSockets included",
            state.open_connections(),
        ),
    ];
    if let Some(fleet) = state.fleet() {
        live.extend(fleet.gauges(state.metrics().audit_sink().dropped()));
    }
    let replica = state.fleet().map(|f| f.store().replica().to_string());
    match state.metrics().encode_replica(
        &upstreams,
        state.sessions().len(),
        &live,
        replica.as_deref(),
    ) {
        Ok(text) => {
            let text = match readable {
                Readable::All => text,
                readable => only_samples(&text, |labels| readable.sample(&state, labels)),
            };
            ([(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)], text).into_response()
        }
        Err(error) => {
            tracing::error!(%error, "encoding the metrics failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "encoding the metrics failed",
            )
                .into_response()
        }
    }
}

/// The OpenMetrics text with only the samples whose labels `keep` allows (comments and
/// samples without labels stay).
fn only_samples(text: &str, keep: impl Fn(&[(String, String)]) -> bool) -> String {
    let mut kept = String::with_capacity(text.len());
    for line in text.lines() {
        let shown = line.starts_with('#')
            || match sample_labels(line) {
                Some(labels) => keep(&labels),
                // A sample whose labels cannot be read is not shown.
                None => !line.contains('{'),
            };
        if shown {
            kept.push_str(line);
            kept.push('\n');
        }
    }
    kept
}

/// The labels of a sample line (`name{a="x",b="y"} 1`), values unescaped; `None` when it
/// has none or they cannot be read.
fn sample_labels(line: &str) -> Option<Vec<(String, String)>> {
    let (_, mut rest) = line.split_once('{')?;
    let mut labels = Vec::new();
    loop {
        if rest.starts_with('}') {
            return Some(labels);
        }
        let (name, after) = rest.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next()? {
                (i, '"') => break i,
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                (_, c) => value.push(c),
            }
        };
        labels.push((name.trim_start_matches(',').to_string(), value));
        rest = after.get(end + 1..)?;
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;
    use crate::core::mcp::Transport;
    use crate::settings::Settings;

    fn info(name: &str, state: ServerState) -> ServerInfo {
        ServerInfo {
            name: name.into(),
            url: "http://127.0.0.1:9/mcp".into(),
            transport: Transport::Http,
            enabled: state != ServerState::Disabled,
            state,
            aliases: vec![],
        }
    }

    #[test]
    fn encoding_has_every_series_and_bounds_client_controlled_labels() {
        let metrics = Metrics::default();
        metrics.record_request("http", "tools/call", "ok");
        metrics.record_request("http", "made/up\"method", "error");
        metrics.record_tool_call("fs", "read_file", "ok", Duration::from_millis(3));
        metrics.record_tool_call(
            "fs",
            "no_such_tool_abc",
            "unknown",
            Duration::from_millis(1),
        );
        let upstreams = [
            info(
                "fs",
                ServerState::Connected {
                    protocol_version: "2025-11-25".into(),
                },
            ),
            info(
                "db",
                ServerState::Failed {
                    error: "refused".into(),
                },
            ),
        ];
        let text = metrics.encode(&upstreams, 2).unwrap();
        for line in [
            r#"litellm_mcp_requests_total{face="http",method="tools/call",outcome="ok"} 1"#,
            r#"litellm_mcp_requests_total{face="http",method="other",outcome="error"} 1"#,
            r#"litellm_mcp_tool_calls_total{server="fs",tool="read_file",outcome="ok"} 1"#,
            r#"litellm_mcp_tool_calls_total{server="-",tool="-",outcome="unknown"} 1"#,
            r#"litellm_mcp_tool_call_duration_seconds_bucket{le="0.005",server="fs",tool="read_file"} 1"#,
            r#"litellm_mcp_tool_call_duration_seconds_bucket{le="0.0025",server="fs",tool="read_file"} 0"#,
            r#"litellm_mcp_upstream_up{server="fs"} 1"#,
            r#"litellm_mcp_upstream_up{server="db"} 0"#,
            "litellm_mcp_sessions_open 2",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
        assert!(!text.contains("made/up"), "{text}");
        assert!(!text.contains("no_such_tool_abc"), "{text}");
        assert_eq!(text.matches("# EOF").count(), 1);
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn samples_are_kept_by_their_labels() {
        let text = "# TYPE a counter\n\
                    a_total{server=\"fs\",tool=\"x\\\",server=\\\"db\"} 1\n\
                    a_total{server=\"db\",tool=\"y\"} 2\n\
                    b 3\n\
                    c{caller=\"alice\"} 4\n\
                    # EOF\n";
        assert_eq!(
            sample_labels(r#"a_total{server="fs",tool="x\",server=\"db"} 1"#).unwrap(),
            [
                ("server".to_string(), "fs".to_string()),
                ("tool".to_string(), "x\",server=\"db".to_string())
            ]
        );
        let only_fs = only_samples(text, |labels| {
            labels
                .iter()
                .all(|(name, value)| name != "server" || value == "fs")
        });
        assert!(only_fs.contains("a_total{server=\"fs\""), "{only_fs}");
        assert!(!only_fs.contains("a_total{server=\"db\""), "{only_fs}");
        assert!(
            only_fs.contains("b 3") && only_fs.contains("c{caller"),
            "{only_fs}"
        );
        assert!(only_fs.starts_with("# TYPE") && only_fs.ends_with("# EOF\n"));
    }

    #[test]
    fn tool_series_are_capped() {
        let metrics = Metrics::default();
        for i in 0..MAX_TOOL_SERIES + 10 {
            metrics.record_tool_call("s", &format!("t{i}"), "ok", Duration::ZERO);
        }
        let text = metrics.encode(&[], 0).unwrap();
        assert!(
            text.contains(r#"litellm_mcp_tool_calls_total{server="-",tool="-",outcome="ok"} 10"#)
        );
        assert!(text.contains(r#"tool="t0""#));
        assert!(!text.contains(&format!(r#"tool="t{MAX_TOOL_SERIES}""#)));
    }

    async fn state_of(yaml: &str) -> AppState {
        let settings = Settings::parse(yaml, &|_| None).unwrap();
        let gateway = settings.build_gateway().await.unwrap();
        AppState::new(gateway, &settings)
    }

    async fn get_json(state: &AppState, path: &str) -> (StatusCode, Value) {
        let response = super::super::app(state.clone())
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn health_needs_no_key() {
        let state = state_of("api_keys: [{name: a, key: sk-a}]\n").await;
        let (status, body) = get_json(&state, "/health").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, json!({"status": "ok"}));
    }

    #[tokio::test]
    async fn ready_turns_503_when_an_enabled_server_has_failed() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let state = state_of(&format!(
            "api_keys: [{{name: a, key: sk-a}}]\n\
             servers:\n\
             - {{name: dead, url: 'http://127.0.0.1:{port}/mcp?token=hidden', timeout_ms: 2000}}\n\
             - {{name: off, url: 'http://127.0.0.1:{port}/mcp', enabled: false}}\n"
        ))
        .await;
        let (status, body) = get_json(&state, "/ready").await;
        assert_eq!(status, StatusCode::OK, "not contacted yet: {body}");
        assert_eq!(body["ready"], true);
        assert_eq!(body["servers"][0]["name"], "dead");
        assert_eq!(body["servers"][0]["state"], "idle");

        let discovery = state.gateway().discover_tools().await;
        assert_eq!(discovery.failures.len(), 1);
        let (status, body) = get_json(&state, "/ready").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(body["ready"], false);
        let dead = &body["servers"][0];
        assert_eq!(
            (
                &dead["name"],
                &dead["state"],
                &dead["transport"],
                &dead["enabled"]
            ),
            (
                &json!("dead"),
                &json!("failed"),
                &json!("http"),
                &json!(true)
            )
        );
        assert!(dead.get("error").is_none(), "{dead}");
        assert_eq!(body["servers"][1]["state"], "disabled");
        let text = body.to_string();
        assert!(
            !text.contains("hidden") && !text.contains("127.0.0.1"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn metrics_are_openmetrics_text_without_a_key() {
        let state = state_of(
            "api_keys: [{name: a, key: sk-a}]\n\
             servers: [{name: fs, url: 'http://127.0.0.1:9/mcp'}]\n",
        )
        .await;
        state.metrics().record_tool_call(
            "fs",
            "read_file",
            "tool_error",
            Duration::from_millis(20),
        );
        let response = super::super::app(state.clone())
            .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            OPENMETRICS_CONTENT_TYPE
        );
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let text = String::from_utf8(body.to_vec()).unwrap();
        for line in [
            r#"litellm_mcp_tool_calls_total{server="fs",tool="read_file",outcome="tool_error"} 1"#,
            r#"litellm_mcp_upstream_up{server="fs"} 0"#,
            "litellm_mcp_sessions_open 0",
            "# TYPE litellm_mcp_tool_call_duration_seconds histogram",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
    }
}
