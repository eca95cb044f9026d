//! Downstream sessions: the `Mcp-Session-Id`s the gateway hands to clients that
//! `initialize` (protocol revisions up to 2025-11-25).
//!
//! Owns the store: creation with a cap per API key, lookup that only finds a session for
//! the key that made it (another key's session id is answered as unknown), the requests
//! in flight per session (so `notifications/cancelled` can stop them), and reaping of
//! idle sessions.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::handler::Scope;
use crate::core::mcp::protocol::RpcError;

/// Where a client's answer to a relayed request goes.
pub type Answer = tokio::sync::oneshot::Sender<Result<serde_json::Value, RpcError>>;
use crate::core::mcp::permissions::KeyDigest;

/// One downstream session.
#[derive(Debug)]
pub struct DownstreamSession {
    /// The id sent in `Mcp-Session-Id`.
    pub id: String,
    /// The key that made it; only that key may use it.
    pub owner: Option<KeyDigest>,
    /// The endpoint it was made on.
    pub scope: Scope,
    /// The negotiated protocol version.
    pub protocol_version: String,
    last_seen: Mutex<Instant>,
    /// Requests in flight by the client's id, each with the number of its registration
    /// (a later request may reuse an id).
    in_flight: Mutex<HashMap<String, (u64, CancellationToken)>>,
    next_call: std::sync::atomic::AtomicU64,
    /// Requests relayed from upstreams to this client, waiting for its answer.
    asked: Mutex<HashMap<String, Answer>>,
    /// Numbers the relayed requests.
    next_ask: std::sync::atomic::AtomicU64,
    /// The resources the client subscribed to, as it names them.
    subscribed: Mutex<std::collections::HashSet<String>>,
    /// The least severe log level the client wants (`logging/setLevel`), as a rank.
    log_level: std::sync::atomic::AtomicUsize,
    /// Fires when the session ends (DELETE, reaping, shutdown).
    pub closed: CancellationToken,
}

/// A request in flight in a session (see [`DownstreamSession::begin`]).
#[derive(Debug)]
pub struct InFlight {
    session: Arc<DownstreamSession>,
    key: String,
    number: u64,
    token: CancellationToken,
}

impl InFlight {
    /// Fires when the client cancels the request or the session ends.
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Ok(mut in_flight) = self.session.in_flight.lock() {
            // Only this registration: the id may already belong to a newer request.
            if in_flight
                .get(&self.key)
                .is_some_and(|(n, _)| *n == self.number)
            {
                in_flight.remove(&self.key);
            }
        }
    }
}

impl DownstreamSession {
    /// Records activity.
    pub fn touch(&self) {
        if let Ok(mut seen) = self.last_seen.lock() {
            *seen = Instant::now();
        }
    }

    /// Registers a request in flight under the client's id. Its token fires when the
    /// client cancels it; the registration ends when the returned guard is dropped,
    /// which is when the call finishes or when it is dropped because the client went
    /// away.
    pub fn begin(self: &Arc<Self>, request_id: &serde_json::Value) -> InFlight {
        let key = request_id.to_string();
        let number = self
            .next_call
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let token = self.closed.child_token();
        if let Ok(mut in_flight) = self.in_flight.lock() {
            in_flight.insert(key.clone(), (number, token.clone()));
        }
        InFlight {
            session: self.clone(),
            key,
            number,
            token,
        }
    }

    /// How many requests are in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight.lock().map(|f| f.len()).unwrap_or(0)
    }

    /// Cancels a request in flight (the client's `notifications/cancelled`).
    pub fn cancel(&self, request_id: &serde_json::Value) -> bool {
        let token = self
            .in_flight
            .lock()
            .ok()
            .and_then(|mut f| f.remove(&request_id.to_string()));
        token.map(|(_, t)| t.cancel()).is_some()
    }

    /// Registers a request relayed to the client; returns the id it goes out under.
    pub fn ask(&self, reply: Answer) -> String {
        let n = self
            .next_ask
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id = format!("gw-{n}");
        if let Ok(mut asked) = self.asked.lock() {
            asked.insert(id.clone(), reply);
        }
        id
    }

    /// Hands the client's answer to the upstream that asked; false when no relayed
    /// request has that id.
    pub fn answer(
        &self,
        id: &serde_json::Value,
        outcome: Result<serde_json::Value, RpcError>,
    ) -> bool {
        let Some(id) = id.as_str() else { return false };
        let reply = self.asked.lock().ok().and_then(|mut a| a.remove(id));
        reply.map(|r| r.send(outcome)).is_some()
    }

    /// Records a subscription (or its end) to a resource, as the client names it.
    pub fn set_subscribed(&self, uri: &str, on: bool) {
        if let Ok(mut subscribed) = self.subscribed.lock() {
            if on {
                subscribed.insert(uri.to_string());
            } else {
                subscribed.remove(uri);
            }
        }
    }

    /// The resources the client subscribed to, as it names them.
    pub fn subscriptions(&self) -> Vec<String> {
        self.subscribed
            .lock()
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Whether the client subscribed to this resource.
    pub fn is_subscribed(&self, uri: &str) -> bool {
        self.subscribed.lock().is_ok_and(|s| s.contains(uri))
    }

    /// Records the level the client asked for (a rank, see `handler::log_rank`).
    pub fn set_log_level(&self, rank: usize) {
        self.log_level
            .store(rank, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether a log message of this rank reaches the client.
    pub fn wants_log(&self, rank: usize) -> bool {
        rank >= self.log_level.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn idle_for(&self) -> Duration {
        self.last_seen
            .lock()
            .map(|seen| seen.elapsed())
            .unwrap_or_default()
    }
}

/// Why a session could not be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionError {
    /// The key has as many sessions as it may.
    TooMany,
}

/// A connection-bound session (WebSocket, legacy SSE) counted against its key's cap
/// while it lives.
#[derive(Debug)]
pub struct SessionSlot {
    owner: Option<KeyDigest>,
    connections: Arc<Mutex<HashMap<Option<KeyDigest>, usize>>>,
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        if let Ok(mut connections) = self.connections.lock() {
            if let Some(count) = connections.get_mut(&self.owner) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    connections.remove(&self.owner);
                }
            }
        }
    }
}

/// All downstream sessions.
#[derive(Debug)]
pub struct SessionStore {
    sessions: RwLock<HashMap<String, Arc<DownstreamSession>>>,
    /// Connection-bound sessions per key (WebSocket, legacy SSE).
    connections: Arc<Mutex<HashMap<Option<KeyDigest>, usize>>>,
    max_per_key: usize,
    idle_timeout: Duration,
}

impl SessionStore {
    /// An empty store.
    pub fn new(max_per_key: usize, idle_timeout: Duration) -> Self {
        SessionStore {
            sessions: RwLock::new(HashMap::new()),
            connections: Arc::default(),
            max_per_key,
            idle_timeout,
        }
    }

    /// Makes a session for `owner`.
    ///
    /// # Errors
    /// [`SessionError::TooMany`] when the key is at its cap.
    pub fn create(
        &self,
        owner: Option<KeyDigest>,
        scope: Scope,
        protocol_version: &str,
    ) -> Result<Arc<DownstreamSession>, SessionError> {
        let mut sessions = self.sessions.write().map_err(|_| SessionError::TooMany)?;
        let owned = sessions.values().filter(|s| s.owner == owner).count() + self.connected(&owner);
        if owned >= self.max_per_key {
            return Err(SessionError::TooMany);
        }
        let session = Arc::new(DownstreamSession {
            id: new_session_id(),
            owner,
            scope,
            protocol_version: protocol_version.to_string(),
            last_seen: Mutex::new(Instant::now()),
            in_flight: Mutex::new(HashMap::new()),
            next_call: std::sync::atomic::AtomicU64::new(0),
            asked: Mutex::new(HashMap::new()),
            next_ask: std::sync::atomic::AtomicU64::new(1),
            log_level: std::sync::atomic::AtomicUsize::new(0),
            subscribed: Mutex::new(std::collections::HashSet::new()),
            closed: CancellationToken::new(),
        });
        sessions.insert(session.id.clone(), session.clone());
        Ok(session)
    }

    fn connected(&self, owner: &Option<KeyDigest>) -> usize {
        self.connections
            .lock()
            .map(|c| c.get(owner).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    /// Counts a connection-bound session (WebSocket, legacy SSE) against the key's cap
    /// for as long as the returned slot lives.
    ///
    /// # Errors
    /// [`SessionError::TooMany`] when the key is at its cap.
    pub fn reserve(&self, owner: Option<KeyDigest>) -> Result<SessionSlot, SessionError> {
        let sessions = self.sessions.read().map_err(|_| SessionError::TooMany)?;
        let mut connections = self.connections.lock().map_err(|_| SessionError::TooMany)?;
        let owned = sessions.values().filter(|s| s.owner == owner).count()
            + connections.get(&owner).copied().unwrap_or(0);
        if owned >= self.max_per_key {
            return Err(SessionError::TooMany);
        }
        *connections.entry(owner).or_insert(0) += 1;
        Ok(SessionSlot {
            owner,
            connections: self.connections.clone(),
        })
    }

    /// The session with this id, if it exists, belongs to `owner` and was made on the
    /// same endpoint.
    pub fn get(
        &self,
        id: &str,
        owner: Option<&KeyDigest>,
        scope: &Scope,
    ) -> Option<Arc<DownstreamSession>> {
        let session = self.sessions.read().ok()?.get(id).cloned()?;
        (session.owner.as_ref() == owner && session.scope == *scope).then(|| {
            session.touch();
            session
        })
    }

    /// Ends a session; returns it when it existed for this owner.
    pub fn remove(&self, id: &str, owner: Option<&KeyDigest>) -> Option<Arc<DownstreamSession>> {
        let mut sessions = self.sessions.write().ok()?;
        match sessions.get(id) {
            Some(session) if session.owner.as_ref() == owner => {
                session.closed.cancel();
                sessions.remove(id)
            }
            _ => None,
        }
    }

    /// Ends every session idle for longer than the timeout; returns them.
    pub fn reap(&self) -> Vec<Arc<DownstreamSession>> {
        let Ok(mut sessions) = self.sessions.write() else {
            return Vec::new();
        };
        let idle: Vec<String> = sessions
            .iter()
            .filter(|(_, s)| s.idle_for() >= self.idle_timeout)
            .map(|(id, _)| id.clone())
            .collect();
        idle.iter()
            .filter_map(|id| sessions.remove(id))
            .inspect(|s| s.closed.cancel())
            .collect()
    }

    /// How many sessions are open, connection-bound ones included.
    pub fn len(&self) -> usize {
        let connected: usize = self
            .connections
            .lock()
            .map(|c| c.values().sum())
            .unwrap_or(0);
        self.sessions.read().map(|s| s.len()).unwrap_or(0) + connected
    }

    /// Whether no session is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Ends every session (shutdown).
    pub fn close_all(&self) {
        if let Ok(mut sessions) = self.sessions.write() {
            for session in sessions.values() {
                session.closed.cancel();
            }
            sessions.clear();
        }
    }
}

/// 128 random bits, hex: unguessable, visible ASCII as the spec asks.
fn new_session_id() -> String {
    let bits: u128 = rand::random();
    format!("{bits:032x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_belong_to_their_key_and_are_capped() {
        let store = SessionStore::new(2, Duration::from_secs(60));
        let alice = Some(KeyDigest::of("alice"));
        let bob = KeyDigest::of("bob");
        let s = store.create(alice, Scope::All, "2025-11-25").unwrap();
        assert!(store.get(&s.id, alice.as_ref(), &Scope::All).is_some());
        assert!(
            store.get(&s.id, Some(&bob), &Scope::All).is_none(),
            "another key's session is unknown"
        );
        assert!(store
            .get(&s.id, alice.as_ref(), &Scope::Server("x".into()))
            .is_none());
        store.create(alice, Scope::All, "2025-11-25").unwrap();
        assert_eq!(
            store.create(alice, Scope::All, "2025-11-25").unwrap_err(),
            SessionError::TooMany
        );
        assert!(store.create(Some(bob), Scope::All, "2025-11-25").is_ok());
        assert!(store.remove(&s.id, Some(&bob)).is_none());
        assert!(store.remove(&s.id, alice.as_ref()).is_some());
        assert!(s.closed.is_cancelled());
        assert_eq!(store.len(), 2);
    }

    #[test]
    fn connection_sessions_count_against_the_cap_while_they_live() {
        let store = SessionStore::new(2, Duration::from_secs(60));
        let key = Some(KeyDigest::of("k"));
        let slot = store.reserve(key).unwrap();
        store.create(key, Scope::All, "2025-11-25").unwrap();
        assert_eq!(store.reserve(key).unwrap_err(), SessionError::TooMany);
        assert_eq!(
            store.create(key, Scope::All, "2025-11-25").unwrap_err(),
            SessionError::TooMany
        );
        assert_eq!(store.len(), 2);
        drop(slot);
        assert_eq!(store.len(), 1);
        assert!(store.reserve(key).is_ok());
    }

    #[test]
    fn idle_sessions_are_reaped_and_cancellation_finds_requests() {
        let store = SessionStore::new(10, Duration::ZERO);
        let s = store.create(None, Scope::All, "2025-11-25").unwrap();
        let call = s.begin(&serde_json::json!(7));
        assert!(s.cancel(&serde_json::json!(7)));
        assert!(call.token().is_cancelled());
        assert!(!s.cancel(&serde_json::json!(8)));
        // A call that ends, or is dropped, leaves nothing behind.
        let other = s.begin(&serde_json::json!("x"));
        assert_eq!(s.in_flight(), 1);
        drop(other);
        assert_eq!(s.in_flight(), 0);
        // Id 7 was cancelled and is reused: the old call ending leaves the new one.
        let again = s.begin(&serde_json::json!(7));
        drop(call);
        assert_eq!(s.in_flight(), 1);
        assert!(s.cancel(&serde_json::json!(7)));
        assert!(again.token().is_cancelled());
        drop(again);
        assert_eq!(store.reap().len(), 1);
        assert!(store.is_empty());
    }
}
