//! The tool list of one server, cached: the snapshot of the last complete `tools/list`
//! (all pages), an index by name, and argument validators compiled lazily, once per
//! tool and snapshot.
//!
//! A snapshot is fresh until its TTL passes (the gateway's, or the server's `ttlMs`
//! when it sent one) or a `notifications/tools/list_changed` bumps the generation.
//! Refreshing is single-flight: callers that find the cache stale queue on one async
//! mutex and re-check after the leader's fetch.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

use crate::core::mcp::tools::{ArgumentValidator, Tool};

/// One complete tool list of a server.
#[derive(Debug)]
pub struct ToolSnapshot {
    tools: Vec<Tool>,
    index: HashMap<String, usize>,
    validators: Vec<OnceLock<ArgumentValidator>>,
    json: OnceLock<Vec<serde_json::Value>>,
    generation: u64,
    fetched_at: Instant,
    ttl: Duration,
}

impl ToolSnapshot {
    /// The tools, in the server's order.
    pub fn tools(&self) -> &[Tool] {
        &self.tools
    }

    /// A tool by name.
    pub fn get(&self, name: &str) -> Option<&Tool> {
        self.index.get(name).and_then(|&i| self.tools.get(i))
    }

    /// The tools as JSON, in the server's order: converted once per snapshot, so that
    /// answering `tools/list` from the cache copies values rather than serializing
    /// every tool again.
    pub fn tools_json(&self) -> &[serde_json::Value] {
        self.json.get_or_init(|| {
            self.tools
                .iter()
                .map(|tool| serde_json::to_value(tool).unwrap_or(serde_json::Value::Null))
                .collect()
        })
    }

    /// The validator of a tool, compiled on first use.
    pub(crate) fn validator(&self, name: &str) -> Option<&ArgumentValidator> {
        let i = *self.index.get(name)?;
        let tool = self.tools.get(i)?;
        Some(
            self.validators
                .get(i)?
                .get_or_init(|| ArgumentValidator::compile(tool)),
        )
    }

    /// When the list was fetched.
    pub fn fetched_at(&self) -> Instant {
        self.fetched_at
    }
}

/// The cache of one server's tool list.
#[derive(Debug)]
pub(crate) struct ToolCache {
    generation: AtomicU64,
    snapshot: RwLock<Option<Arc<ToolSnapshot>>>,
    pub(crate) refresh: tokio::sync::Mutex<()>,
    default_ttl: Duration,
}

impl ToolCache {
    pub(crate) fn new(default_ttl: Duration) -> Self {
        ToolCache {
            generation: AtomicU64::new(0),
            snapshot: RwLock::new(None),
            refresh: tokio::sync::Mutex::new(()),
            default_ttl,
        }
    }

    /// The snapshot, if it is still fresh.
    pub(crate) fn fresh(&self) -> Option<Arc<ToolSnapshot>> {
        let snapshot = self.snapshot.read().ok()?.clone()?;
        let current = self.generation.load(Ordering::Acquire);
        (snapshot.generation == current && snapshot.fetched_at.elapsed() < snapshot.ttl)
            .then_some(snapshot)
    }

    /// The snapshot, fresh or not.
    pub(crate) fn any(&self) -> Option<Arc<ToolSnapshot>> {
        self.snapshot.read().ok()?.clone()
    }

    /// The generation a fetch starting now must record.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Marks the cache stale (the server said its list changed, or it reconnected).
    pub(crate) fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Stores a complete list fetched while the cache was at `generation`; if the
    /// server announced a change meanwhile, the snapshot is stored already stale.
    pub(crate) fn store(
        &self,
        tools: Vec<Tool>,
        generation: u64,
        server_ttl: Option<Duration>,
    ) -> Arc<ToolSnapshot> {
        let mut index = HashMap::with_capacity(tools.len());
        for (i, tool) in tools.iter().enumerate() {
            index.entry(tool.name.clone()).or_insert(i);
        }
        let validators = tools.iter().map(|_| OnceLock::new()).collect();
        let snapshot = Arc::new(ToolSnapshot {
            tools,
            index,
            validators,
            json: OnceLock::new(),
            generation,
            fetched_at: Instant::now(),
            ttl: server_ttl.unwrap_or(self.default_ttl),
        });
        if let Ok(mut slot) = self.snapshot.write() {
            *slot = Some(snapshot.clone());
        }
        snapshot
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_until_invalidated_or_expired() {
        let cache = ToolCache::new(Duration::from_secs(60));
        assert!(cache.fresh().is_none());
        let generation = cache.generation();
        cache.store(vec![Tool::new("a", "A")], generation, None);
        assert!(cache.fresh().unwrap().get("a").is_some());
        cache.invalidate();
        assert!(cache.fresh().is_none());
        assert!(cache.any().is_some());
        // A list fetched before a change notification is stale at once.
        cache.store(vec![], generation, None);
        assert!(cache.fresh().is_none());
        cache.store(vec![], cache.generation(), Some(Duration::ZERO));
        assert!(cache.fresh().is_none());
    }
}
