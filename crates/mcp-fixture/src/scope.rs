//! Per-peer state shared by every transport: one `Scope` per stdio process, WebSocket
//! connection, legacy SSE session or Streamable HTTP session. Holds the legacy negotiated
//! version, the legacy log level, the registry of cancellable in-flight requests (for
//! `notifications/cancelled`), and a shutdown token for long waits (hang, listen streams).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::protocol::LEGACY_VERSIONS;

const UNSET: u8 = u8::MAX;

pub struct Scope {
    /// 0 = not initialized, otherwise index + 1 into `LEGACY_VERSIONS`.
    version: AtomicU8,
    /// Legacy `logging/setLevel` level index, or `UNSET`.
    log_level: AtomicU8,
    /// Whether log lines are sent by default (before any `logging/setLevel`).
    default_logs: bool,
    inflight: Mutex<HashMap<String, CancellationToken>>,
    /// Cancelled when the peer goes away (stdin EOF, socket closed, session deleted).
    pub shutdown: CancellationToken,
}

impl Scope {
    pub fn new(default_logs: bool) -> Arc<Self> {
        Arc::new(Self {
            version: AtomicU8::new(0),
            log_level: AtomicU8::new(UNSET),
            default_logs,
            inflight: Mutex::new(HashMap::new()),
            shutdown: CancellationToken::new(),
        })
    }

    /// A scope that is already initialized at `version` (Streamable HTTP sessions).
    pub fn initialized(version: &'static str, default_logs: bool) -> Arc<Self> {
        let s = Self::new(default_logs);
        s.set_legacy_version(version);
        s
    }

    pub fn legacy_version(&self) -> Option<&'static str> {
        match self.version.load(Ordering::Acquire) {
            0 => None,
            n => LEGACY_VERSIONS.get(usize::from(n - 1)).copied(),
        }
    }

    pub fn set_legacy_version(&self, v: &'static str) {
        if let Some(i) = LEGACY_VERSIONS.iter().position(|x| *x == v) {
            let n = u8::try_from(i + 1).unwrap_or(0);
            self.version.store(n, Ordering::Release);
        }
    }

    pub fn set_log_level(&self, level: u8) {
        self.log_level.store(level, Ordering::Relaxed);
    }

    /// Minimum level index for `notifications/message` in legacy sessions, or None for "off".
    pub fn log_threshold(&self) -> Option<u8> {
        match self.log_level.load(Ordering::Relaxed) {
            UNSET if self.default_logs => Some(1),
            UNSET => None,
            n => Some(n),
        }
    }

    /// Registers an in-flight request so `notifications/cancelled` can stop it.
    pub fn register(self: &Arc<Self>, id: &Value) -> Registration {
        let key = id.to_string();
        let token = CancellationToken::new();
        self.lock().insert(key.clone(), token.clone());
        Registration {
            scope: Arc::clone(self),
            key,
            token,
        }
    }

    /// Cancels the in-flight request `id`; false when it is unknown or already done.
    pub fn cancel(&self, id: &Value) -> bool {
        let token = self.lock().remove(&id.to_string());
        match token {
            Some(t) => {
                t.cancel();
                true
            }
            None => false,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, CancellationToken>> {
        self.inflight.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// An in-flight request's cancellation handle; unregisters itself on drop.
pub struct Registration {
    scope: Arc<Scope>,
    key: String,
    /// Cancelled by `notifications/cancelled` for this request.
    pub token: CancellationToken,
}

impl Registration {
    /// Resolves when the request is cancelled or the peer goes away (for waits that would
    /// otherwise never end: `hang`, listen streams). Other work finishes after a shutdown.
    pub async fn cancelled_or_shutdown(&self) {
        tokio::select! {
            () = self.token.cancelled() => {}
            () = self.scope.shutdown.cancelled() => {}
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.scope.lock().remove(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_and_cancel() {
        let s = Scope::new(false);
        assert_eq!(s.legacy_version(), None);
        s.set_legacy_version("2025-06-18");
        assert_eq!(s.legacy_version(), Some("2025-06-18"));
        let id = Value::from(7);
        let reg = s.register(&id);
        assert!(s.cancel(&id));
        assert!(reg.token.is_cancelled());
        assert!(!s.cancel(&id));
        assert_eq!(s.log_threshold(), None);
    }
}
