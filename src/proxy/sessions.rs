//! Downstream sessions: the `Mcp-Session-Id`s the gateway hands to clients that
//! `initialize` (protocol revisions up to 2025-11-25).
//!
//! Owns the store: creation with a cap per API key — or, for clients without a key, per
//! client IP address, so that anonymous clients do not share one cap — lookup that only
//! finds a session for the key that made it (another key's session id is answered as
//! unknown), the requests in flight per session (at most [`MAX_IN_FLIGHT_PER_SESSION`],
//! so `notifications/cancelled` can stop them), and reaping of idle sessions.
//!
//! In a fleet (a store is attached) the ids are sealed records
//! ([`super::session_seal`]): an id this replica does not hold is resumed from what it
//! says, for its owner on its endpoint, and counted against the owner's cap here.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use tokio_util::sync::CancellationToken;

use super::handler::Scope;
use crate::core::mcp::protocol::RpcError;

/// Where a client's answer to a relayed request goes.
pub type Answer = tokio::sync::oneshot::Sender<Result<serde_json::Value, RpcError>>;
use crate::core::mcp::permissions::KeyDigest;

/// The most requests one client session may have in flight at once, on every face
/// (`/mcp` sessions, WebSocket, legacy SSE, stdio); one more is answered at once with
/// [`TOO_MANY_IN_FLIGHT`] and never reaches an upstream.
pub const MAX_IN_FLIGHT_PER_SESSION: usize = 64;

/// The JSON-RPC error code of a request refused because its session is busy: too many
/// requests in flight, or (legacy SSE) a client that does not read its stream.
pub const TOO_MANY_IN_FLIGHT: i64 = -32029;

/// The message of a request refused for [`MAX_IN_FLIGHT_PER_SESSION`].
pub fn too_many_in_flight_message() -> String {
    format!(
        "Too many requests in flight on this session (at most {MAX_IN_FLIGHT_PER_SESSION}): wait for some to finish"
    )
}

/// The client's IP address (from the connection), for the session cap of clients
/// without an API key. `None` when the service runs without a listener of its own
/// (a router driven by `oneshot` in tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddress {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddress(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|info| info.0.ip().to_canonical()),
        ))
    }
}

/// Whose cap a session counts against: its key's, or (no key) its client address's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Quota {
    /// The API key (or token subject digest) that made it.
    Key(KeyDigest),
    /// The IP address of a client without a key.
    Address(IpAddr),
    /// A client without a key whose address is unknown (no listener: tests).
    Anonymous,
}

impl Quota {
    fn of(owner: Option<KeyDigest>, address: Option<IpAddr>) -> Self {
        match (owner, address) {
            (Some(key), _) => Quota::Key(key),
            (None, Some(address)) => Quota::Address(address),
            (None, None) => Quota::Anonymous,
        }
    }
}

/// One downstream session.
#[derive(Debug)]
pub struct DownstreamSession {
    /// The id sent in `Mcp-Session-Id`.
    pub id: String,
    /// The key that made it; only that key may use it.
    pub owner: Option<KeyDigest>,
    /// The cap it counts against.
    quota: Quota,
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
    /// The capabilities the client declared in `initialize` (issue 9: an upstream's
    /// request for one it lacks is refused upstream).
    client_capabilities: std::sync::OnceLock<serde_json::Value>,
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
        // Idle time counts from the end of the last request, not its start: a request
        // that ran longer than the idle timeout must not leave the session to be reaped
        // before the client's next request arrives.
        self.session.touch();
    }
}

impl DownstreamSession {
    fn new(
        id: String,
        owner: Option<KeyDigest>,
        quota: Quota,
        scope: Scope,
        protocol_version: &str,
    ) -> DownstreamSession {
        DownstreamSession {
            id,
            owner,
            quota,
            scope,
            protocol_version: protocol_version.to_string(),
            last_seen: Mutex::new(Instant::now()),
            in_flight: Mutex::new(HashMap::new()),
            next_call: std::sync::atomic::AtomicU64::new(0),
            asked: Mutex::new(HashMap::new()),
            next_ask: std::sync::atomic::AtomicU64::new(1),
            log_level: std::sync::atomic::AtomicUsize::new(0),
            subscribed: Mutex::new(std::collections::HashSet::new()),
            client_capabilities: std::sync::OnceLock::new(),
            closed: CancellationToken::new(),
        }
    }

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
    ///
    /// # Errors
    /// [`SessionError::TooManyInFlight`] when [`MAX_IN_FLIGHT_PER_SESSION`] requests
    /// are in flight already.
    pub fn begin(
        self: &Arc<Self>,
        request_id: &serde_json::Value,
    ) -> Result<InFlight, SessionError> {
        let key = request_id.to_string();
        let number = self
            .next_call
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let token = self.closed.child_token();
        let mut in_flight = self
            .in_flight
            .lock()
            .map_err(|_| SessionError::TooManyInFlight)?;
        if in_flight.len() >= MAX_IN_FLIGHT_PER_SESSION && !in_flight.contains_key(&key) {
            return Err(SessionError::TooManyInFlight);
        }
        in_flight.insert(key.clone(), (number, token.clone()));
        drop(in_flight);
        Ok(InFlight {
            session: self.clone(),
            key,
            number,
            token,
        })
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

    /// Records the capabilities the client declared in `initialize` (once).
    pub fn set_client_capabilities(&self, capabilities: serde_json::Value) {
        let _ = self.client_capabilities.set(capabilities);
    }

    /// The capabilities the client declared in `initialize`, once recorded.
    pub fn client_capabilities(&self) -> Option<&serde_json::Value> {
        self.client_capabilities.get()
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

    /// How long the session has been idle: zero while a request of it is in flight (a
    /// call longer than the idle timeout must not see its session reaped under it).
    fn idle_for(&self) -> Duration {
        let busy = self
            .in_flight
            .lock()
            .map(|f| !f.is_empty())
            .unwrap_or(false);
        if busy {
            return Duration::ZERO;
        }
        self.last_seen
            .lock()
            .map(|seen| seen.elapsed())
            .unwrap_or_default()
    }
}

/// Why a session could not be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionError {
    /// The key (or, without a key, the client address) has as many sessions as it may.
    TooMany,
    /// The session has [`MAX_IN_FLIGHT_PER_SESSION`] requests in flight.
    TooManyInFlight,
}

/// A connection-bound session (WebSocket, legacy SSE) counted against its key's (or
/// address's) cap while it lives.
#[derive(Debug)]
pub struct SessionSlot {
    quota: Quota,
    connections: Arc<Mutex<HashMap<Quota, usize>>>,
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        if let Ok(mut connections) = self.connections.lock() {
            if let Some(count) = connections.get_mut(&self.quota) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    connections.remove(&self.quota);
                }
            }
        }
    }
}

/// All downstream sessions.
#[derive(Debug)]
pub struct SessionStore {
    sessions: RwLock<HashMap<String, Arc<DownstreamSession>>>,
    /// Connection-bound sessions per key or address (WebSocket, legacy SSE).
    connections: Arc<Mutex<HashMap<Quota, usize>>>,
    max_per_key: usize,
    idle_timeout: Duration,
    /// Seals ids so that other replicas resume them (a fleet); plain random ids without.
    seal: std::sync::OnceLock<Arc<super::session_seal::SessionSeal>>,
}

impl SessionStore {
    /// An empty store.
    pub fn new(max_per_key: usize, idle_timeout: Duration) -> Self {
        SessionStore {
            sessions: RwLock::new(HashMap::new()),
            connections: Arc::default(),
            max_per_key,
            idle_timeout,
            seal: std::sync::OnceLock::new(),
        }
    }

    /// Seals the ids of new sessions and resumes sealed ids made elsewhere (once).
    pub fn set_seal(&self, seal: Arc<super::session_seal::SessionSeal>) {
        let _ = self.seal.set(seal);
    }

    /// Makes a session for `owner`, a client at `address`: counted against the key's
    /// cap, or without a key against the address's.
    ///
    /// # Errors
    /// [`SessionError::TooMany`] when the key (or address) is at its cap.
    pub fn create(
        &self,
        owner: Option<KeyDigest>,
        address: ClientAddress,
        scope: Scope,
        protocol_version: &str,
    ) -> Result<Arc<DownstreamSession>, SessionError> {
        let quota = Quota::of(owner, address.0);
        let mut sessions = self.sessions.write().map_err(|_| SessionError::TooMany)?;
        let owned = sessions.values().filter(|s| s.quota == quota).count() + self.connected(&quota);
        if owned >= self.max_per_key {
            return Err(SessionError::TooMany);
        }
        let id = match self.seal.get() {
            Some(seal) => seal.issue(owner.as_ref(), &scope, protocol_version),
            None => new_session_id(),
        };
        let session = Arc::new(DownstreamSession::new(
            id,
            owner,
            quota,
            scope,
            protocol_version,
        ));
        sessions.insert(session.id.clone(), session.clone());
        Ok(session)
    }

    /// A session another replica made, from its sealed id, when it belongs to `owner`
    /// on `scope` and the owner's cap allows one more here.
    fn resume(
        &self,
        id: &str,
        owner: Option<&KeyDigest>,
        scope: &Scope,
    ) -> Option<Arc<DownstreamSession>> {
        let resumable = self.seal.get()?.open(id)?;
        if resumable.owner.as_ref() != owner || resumable.scope != *scope {
            return None;
        }
        let quota = Quota::of(resumable.owner, None);
        let mut sessions = self.sessions.write().ok()?;
        if let Some(existing) = sessions.get(id) {
            return Some(existing.clone());
        }
        let owned = sessions.values().filter(|s| s.quota == quota).count() + self.connected(&quota);
        if owned >= self.max_per_key {
            return None;
        }
        let session = Arc::new(DownstreamSession::new(
            id.to_string(),
            resumable.owner,
            quota,
            resumable.scope,
            &resumable.protocol_version,
        ));
        sessions.insert(session.id.clone(), session.clone());
        tracing::info!(session = %id, "resumed a session made by another replica");
        Some(session)
    }

    fn connected(&self, quota: &Quota) -> usize {
        self.connections
            .lock()
            .map(|c| c.get(quota).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    /// Counts a connection-bound session (WebSocket, legacy SSE) of `owner`, a client at
    /// `address`, against the key's (or, without a key, the address's) cap for as long
    /// as the returned slot lives.
    ///
    /// # Errors
    /// [`SessionError::TooMany`] when the key (or address) is at its cap.
    pub fn reserve(
        &self,
        owner: Option<KeyDigest>,
        address: ClientAddress,
    ) -> Result<SessionSlot, SessionError> {
        let quota = Quota::of(owner, address.0);
        let sessions = self.sessions.read().map_err(|_| SessionError::TooMany)?;
        let mut connections = self.connections.lock().map_err(|_| SessionError::TooMany)?;
        let owned = sessions.values().filter(|s| s.quota == quota).count()
            + connections.get(&quota).copied().unwrap_or(0);
        if owned >= self.max_per_key {
            return Err(SessionError::TooMany);
        }
        *connections.entry(quota).or_insert(0) += 1;
        Ok(SessionSlot {
            quota,
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
        let held = self.sessions.read().ok()?.get(id).cloned();
        let session = match held {
            Some(session) => session,
            None => self.resume(id, owner, scope)?,
        };
        (session.owner.as_ref() == owner && session.scope == *scope).then(|| {
            session.touch();
            session
        })
    }

    /// Ends a session; returns it when it existed for this owner.
    pub fn remove(&self, id: &str, owner: Option<&KeyDigest>) -> Option<Arc<DownstreamSession>> {
        let held = self.sessions.read().ok()?.contains_key(id);
        if !held {
            // Made elsewhere: resumed here to be ended (its endpoint is in the id).
            let scope = self.seal.get()?.open(id)?.scope;
            self.resume(id, owner, &scope)?;
        }
        let mut sessions = self.sessions.write().ok()?;
        match sessions.get(id) {
            Some(session) if session.owner.as_ref() == owner => {
                session.closed.cancel();
                if let Some(seal) = self.seal.get() {
                    seal.end(id);
                }
                sessions.remove(id)
            }
            _ => None,
        }
    }

    /// Ends the session another replica ended (its id's digest, hex), if this replica
    /// holds it; returns it.
    pub fn remove_ended(&self, digest_hex: &str) -> Option<Arc<DownstreamSession>> {
        let mut sessions = self.sessions.write().ok()?;
        let id = sessions
            .keys()
            .find(|id| super::session_seal::digest_hex(id) == digest_hex)?
            .clone();
        let session = sessions.remove(&id)?;
        session.closed.cancel();
        Some(session)
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

    const NOWHERE: ClientAddress = ClientAddress(None);

    #[test]
    fn without_keys_each_client_address_has_its_own_cap() {
        let store = SessionStore::new(2, Duration::from_secs(60));
        let here = ClientAddress(Some(IpAddr::from([127, 0, 0, 1])));
        let there = ClientAddress(Some(IpAddr::from([127, 0, 0, 2])));
        store.create(None, here, Scope::All, "2025-11-25").unwrap();
        let _slot = store.reserve(None, here).unwrap();
        assert_eq!(
            store
                .create(None, here, Scope::All, "2025-11-25")
                .unwrap_err(),
            SessionError::TooMany
        );
        assert_eq!(
            store.reserve(None, here).unwrap_err(),
            SessionError::TooMany
        );
        // Another client without a key is not locked out by the first.
        store.create(None, there, Scope::All, "2025-11-25").unwrap();
        assert!(store.reserve(None, there).is_ok());
        // A key's cap is its own wherever its clients are.
        let key = Some(KeyDigest::of("k"));
        store.create(key, here, Scope::All, "2025-11-25").unwrap();
        store.create(key, there, Scope::All, "2025-11-25").unwrap();
        assert_eq!(
            store
                .create(key, here, Scope::All, "2025-11-25")
                .unwrap_err(),
            SessionError::TooMany
        );
    }

    #[test]
    fn a_session_with_a_request_in_flight_is_not_reaped() {
        let store = SessionStore::new(2, Duration::from_millis(1));
        let busy = store
            .create(None, NOWHERE, Scope::All, "2025-11-25")
            .unwrap();
        let idle = store
            .create(None, NOWHERE, Scope::All, "2025-11-25")
            .unwrap();
        let call = busy.begin(&serde_json::json!(1)).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        let reaped: Vec<String> = store.reap().iter().map(|s| s.id.clone()).collect();
        assert_eq!(reaped, std::slice::from_ref(&idle.id));
        assert!(!call.token().is_cancelled());
        drop(call);
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(store.reap().len(), 1, "idle again once the call ended");
    }

    #[test]
    fn a_session_takes_at_most_its_cap_of_requests_in_flight() {
        let store = SessionStore::new(2, Duration::from_secs(60));
        let s = store
            .create(None, NOWHERE, Scope::All, "2025-11-25")
            .unwrap();
        let calls: Vec<InFlight> = (0..MAX_IN_FLIGHT_PER_SESSION)
            .map(|n| s.begin(&serde_json::json!(n)).unwrap())
            .collect();
        assert_eq!(
            s.begin(&serde_json::json!("one more")).unwrap_err(),
            SessionError::TooManyInFlight
        );
        drop(calls);
        assert!(s.begin(&serde_json::json!("one more")).is_ok());
    }

    #[test]
    fn sessions_belong_to_their_key_and_are_capped() {
        let store = SessionStore::new(2, Duration::from_secs(60));
        let alice = Some(KeyDigest::of("alice"));
        let bob = KeyDigest::of("bob");
        let s = store
            .create(alice, NOWHERE, Scope::All, "2025-11-25")
            .unwrap();
        assert!(store.get(&s.id, alice.as_ref(), &Scope::All).is_some());
        assert!(
            store.get(&s.id, Some(&bob), &Scope::All).is_none(),
            "another key's session is unknown"
        );
        assert!(store
            .get(&s.id, alice.as_ref(), &Scope::Server("x".into()))
            .is_none());
        store
            .create(alice, NOWHERE, Scope::All, "2025-11-25")
            .unwrap();
        assert_eq!(
            store
                .create(alice, NOWHERE, Scope::All, "2025-11-25")
                .unwrap_err(),
            SessionError::TooMany
        );
        assert!(store
            .create(Some(bob), NOWHERE, Scope::All, "2025-11-25")
            .is_ok());
        assert!(store.remove(&s.id, Some(&bob)).is_none());
        assert!(store.remove(&s.id, alice.as_ref()).is_some());
        assert!(s.closed.is_cancelled());
        assert_eq!(store.len(), 2);
    }

    #[test]
    fn connection_sessions_count_against_the_cap_while_they_live() {
        let store = SessionStore::new(2, Duration::from_secs(60));
        let key = Some(KeyDigest::of("k"));
        let slot = store.reserve(key, NOWHERE).unwrap();
        store
            .create(key, NOWHERE, Scope::All, "2025-11-25")
            .unwrap();
        assert_eq!(
            store.reserve(key, NOWHERE).unwrap_err(),
            SessionError::TooMany
        );
        assert_eq!(
            store
                .create(key, NOWHERE, Scope::All, "2025-11-25")
                .unwrap_err(),
            SessionError::TooMany
        );
        assert_eq!(store.len(), 2);
        drop(slot);
        assert_eq!(store.len(), 1);
        assert!(store.reserve(key, NOWHERE).is_ok());
    }

    #[test]
    fn idle_sessions_are_reaped_and_cancellation_finds_requests() {
        let store = SessionStore::new(10, Duration::ZERO);
        let s = store
            .create(None, NOWHERE, Scope::All, "2025-11-25")
            .unwrap();
        let call = s.begin(&serde_json::json!(7)).unwrap();
        assert!(s.cancel(&serde_json::json!(7)));
        assert!(call.token().is_cancelled());
        assert!(!s.cancel(&serde_json::json!(8)));
        // A call that ends, or is dropped, leaves nothing behind.
        let other = s.begin(&serde_json::json!("x")).unwrap();
        assert_eq!(s.in_flight(), 1);
        drop(other);
        assert_eq!(s.in_flight(), 0);
        // Id 7 was cancelled and is reused: the old call ending leaves the new one.
        let again = s.begin(&serde_json::json!(7)).unwrap();
        drop(call);
        assert_eq!(s.in_flight(), 1);
        assert!(s.cancel(&serde_json::json!(7)));
        assert!(again.token().is_cancelled());
        drop(again);
        assert_eq!(store.reap().len(), 1);
        assert!(store.is_empty());
    }
}
