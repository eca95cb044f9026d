//! Counters since start, served as JSON by GET `/stats` (and the stdio `stats` tool):
//! per-method counts, HTTP requests, sessions, tokens, WebSocket/SSE connections, the ids
//! of cancelled requests, and the headers of the last MCP request.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use axum::http::HeaderMap;
use serde_json::{json, Map, Value};

/// Methods with a lock-free counter (everything else goes to a locked map).
const KNOWN: [&str; 17] = [
    "initialize",
    "notifications/initialized",
    "ping",
    "tools/list",
    "tools/call",
    "server/discover",
    "resources/list",
    "resources/read",
    "resources/templates/list",
    "prompts/list",
    "prompts/get",
    "notifications/cancelled",
    "logging/setLevel",
    "subscriptions/listen",
    "completion/complete",
    "resources/subscribe",
    "resources/unsubscribe",
];

#[derive(Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

pub struct Stats {
    started: Instant,
    known: [Counter; KNOWN.len()],
    other: Mutex<HashMap<String, u64>>,
    pub http_requests: Counter,
    pub sessions_created: Counter,
    pub tokens_issued: Counter,
    pub ws_connections: Counter,
    pub sse_connections: Counter,
    pub get_streams: Counter,
    pub listen_streams: Counter,
    cancelled: Mutex<Vec<Value>>,
    last_headers: Mutex<Option<Arc<HeaderMap>>>,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            known: Default::default(),
            other: Mutex::new(HashMap::new()),
            http_requests: Counter::default(),
            sessions_created: Counter::default(),
            tokens_issued: Counter::default(),
            ws_connections: Counter::default(),
            sse_connections: Counter::default(),
            get_streams: Counter::default(),
            listen_streams: Counter::default(),
            cancelled: Mutex::new(Vec::new()),
            last_headers: Mutex::new(None),
        }
    }
}

impl Stats {
    /// Counts one received JSON-RPC request or notification.
    pub fn method(&self, method: &str) {
        match KNOWN.iter().position(|k| *k == method) {
            Some(i) => self.known[i].inc(),
            None => {
                let mut m = self.other.lock().unwrap_or_else(PoisonError::into_inner);
                *m.entry(method.to_owned()).or_insert(0) += 1;
            }
        }
    }

    /// Records the id of a cancelled request.
    pub fn cancelled(&self, id: Value) {
        self.cancelled
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(id);
    }

    /// Remembers the headers of the latest MCP request.
    pub fn set_last_headers(&self, headers: Arc<HeaderMap>) {
        *self
            .last_headers
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(headers);
    }

    pub fn snapshot(&self) -> Value {
        let mut methods = Map::new();
        for (name, c) in KNOWN.iter().zip(self.known.iter()) {
            methods.insert((*name).to_owned(), Value::from(c.get()));
        }
        {
            let other = self.other.lock().unwrap_or_else(PoisonError::into_inner);
            for (k, v) in other.iter() {
                methods.insert(k.clone(), Value::from(*v));
            }
        }
        let cancelled = self
            .cancelled
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let last = self
            .last_headers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let last_headers = last.map_or_else(|| json!({}), |h| headers_json(&h));
        json!({
            "methods": methods,
            "http_requests": self.http_requests.get(),
            "sessions_created": self.sessions_created.get(),
            "tokens_issued": self.tokens_issued.get(),
            "ws_connections": self.ws_connections.get(),
            "sse_connections": self.sse_connections.get(),
            "get_streams": self.get_streams.get(),
            "listen_streams": self.listen_streams.get(),
            "cancelled": cancelled,
            "last_headers": last_headers,
            "uptime_ms": u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
        })
    }
}

/// Headers as a JSON object with lower-case names (repeated headers joined with ", ").
pub fn headers_json(h: &HeaderMap) -> Value {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in h.iter() {
        let v = String::from_utf8_lossy(value.as_bytes());
        out.entry(name.as_str().to_owned())
            .and_modify(|s| {
                s.push_str(", ");
                s.push_str(&v);
            })
            .or_insert_with(|| v.into_owned());
    }
    json!(out)
}
