//! The shared server state (`App`): configuration from the command line, counters, the tool
//! catalog, session tables, issued OAuth tokens, and the tools-changed broadcast that feeds
//! `notifications/tools/list_changed` to every open stream.

use std::sync::atomic::{AtomicU16, Ordering};

use tokio::sync::broadcast;

use crate::oauth::TokenStore;
use crate::protocol::EraMode;
use crate::session::Sessions;
use crate::sse::SseSessions;
use crate::stats::Stats;
use crate::tools::Catalog;

/// Settings from the command line.
#[derive(Debug, Clone)]
pub struct Config {
    pub stdio: bool,
    pub json_response: bool,
    pub page_size: usize,
    pub list_delay_ms: u64,
    pub ttl_ms: u64,
    pub oauth: bool,
    pub token_ttl_secs: u64,
    pub client_id: String,
    pub client_secret: String,
    /// (lower-case header name, exact value) pairs every MCP request must carry.
    pub require_headers: Vec<(String, String)>,
    pub max_version: &'static str,
    pub era: EraMode,
}

pub struct App {
    pub cfg: Config,
    pub stats: Stats,
    pub catalog: Catalog,
    pub sessions: Sessions,
    pub sse_sessions: SseSessions,
    pub tokens: TokenStore,
    /// Sends the name of each added tool.
    pub changes: broadcast::Sender<String>,
    port: AtomicU16,
}

impl App {
    pub fn new(cfg: Config, numbered_tools: usize) -> Self {
        let (changes, _) = broadcast::channel(64);
        Self {
            catalog: Catalog::new(numbered_tools, cfg.stdio),
            cfg,
            stats: Stats::default(),
            sessions: Sessions::default(),
            sse_sessions: SseSessions::default(),
            tokens: TokenStore::default(),
            changes,
            port: AtomicU16::new(0),
        }
    }

    /// Adds a tool `extra_<k>` and notifies every listener; returns the new tool's name.
    pub fn change_tools(&self) -> String {
        let name = self.catalog.add_extra();
        // No receivers is fine: nobody is listening.
        let _ = self.changes.send(name.clone());
        tracing::info!(tool = %name, "tool list changed");
        name
    }

    pub fn set_port(&self, port: u16) {
        self.port.store(port, Ordering::Relaxed);
    }

    /// `http://127.0.0.1:<port>` of the running server.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port.load(Ordering::Relaxed))
    }
}
