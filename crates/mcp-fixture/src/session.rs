//! Streamable HTTP sessions (legacy era): the `Mcp-Session-Id` table, each session's
//! negotiated version and scope, the one-GET-stream-per-session rule, and random ids.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use crate::scope::Scope;

/// A fresh random id (128 bits, hex): visible ASCII as the spec requires.
pub fn new_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

pub struct Session {
    pub id: String,
    pub version: &'static str,
    pub scope: Arc<Scope>,
    get_open: AtomicBool,
}

impl Session {
    /// Ends the session: closes its GET stream and releases waiting requests.
    pub fn close(&self) {
        self.scope.shutdown.cancel();
    }

    /// Claims the session's single GET stream; None if one is already open.
    pub fn claim_get(self: &Arc<Self>) -> Option<GetClaim> {
        if self.get_open.swap(true, Ordering::AcqRel) {
            return None;
        }
        Some(GetClaim(Arc::clone(self)))
    }
}

/// Held by an open GET stream; frees the slot on drop.
pub struct GetClaim(pub Arc<Session>);

impl Drop for GetClaim {
    fn drop(&mut self) {
        self.0.get_open.store(false, Ordering::Release);
    }
}

#[derive(Default)]
pub struct Sessions {
    map: RwLock<HashMap<String, Arc<Session>>>,
}

impl Sessions {
    pub fn create(&self, version: &'static str) -> Arc<Session> {
        let s = Arc::new(Session {
            id: new_id(),
            version,
            // Log lines go on SSE response streams by default.
            scope: Scope::initialized(version, true),
            get_open: AtomicBool::new(false),
        });
        self.map
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(s.id.clone(), Arc::clone(&s));
        s
    }

    pub fn get(&self, id: &str) -> Option<Arc<Session>> {
        self.map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .cloned()
    }

    pub fn remove(&self, id: &str) -> Option<Arc<Session>> {
        let s = self
            .map
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
        if let Some(s) = &s {
            s.close();
        }
        s
    }

    /// Drops every session; returns how many there were.
    pub fn clear(&self) -> usize {
        let all: Vec<_> = self
            .map
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .drain()
            .map(|(_, s)| s)
            .collect();
        for s in &all {
            s.close();
        }
        all.len()
    }
}
