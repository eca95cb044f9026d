//! The service's own accept loop and the bounds on downstream connections: how many are
//! open, how long a client may take to send a request's head and body, how long a
//! connection may sit idle, and how long a client may leave our writes unread.
//!
//! Owns the listener, one task per connection (in a `TaskTracker`, so shutdown can wait
//! for them and `/metrics` can count them), and the wrapper around every accepted socket
//! ([`ConnIo`]) that holds the connection's permit and bounds stalled writes. Connections
//! are served by hyper-util's `auto::Builder`: HTTP/1.1 (with upgrades, for WebSocket)
//! or HTTP/2 with prior knowledge (h2c), whichever the client's first bytes say. What a
//! request means is the router's business; this module never looks inside one, except
//! to give it the peer's address (`ConnectInfo`) and a deadline on its body.
//!
//! Invariants:
//! - At most [`ConnectionLimits::max_connections`] sockets are served at once. An
//!   upgraded connection (WebSocket) keeps its permit for as long as it lives. When the
//!   cap is reached, the connection idle the longest (no request in flight) is closed to
//!   make room; a newcomer that still finds no room within [`ADMISSION_WAIT`] is answered
//!   `503` with a JSON-RPC error and closed. At most [`MAX_WAITING_CONNECTIONS`] wait so;
//!   beyond that a newcomer is closed at once.
//! - A connection with no request in flight is closed after
//!   [`ConnectionLimits::header_read_timeout`]: a socket that never sends a byte, one
//!   that drips its request head (HTTP/1 or the HTTP/2 preface), and an idle keep-alive
//!   connection alike.
//! - A request body must arrive whole within [`ConnectionLimits::body_read_timeout`] of
//!   the request's head; past that the request is answered `408` and the connection
//!   closed.
//! - A write that makes no progress for [`ConnectionLimits::write_stall_timeout`] (the
//!   client stopped reading) fails, which closes the connection and drops whatever it
//!   was serving (an SSE stream's session, a WebSocket's session: their calls are
//!   cancelled upstream).
//! - Streams that legitimately stay open (SSE GET streams, WebSockets) count as a
//!   request in flight, so the idle bound never closes them.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, Response, StatusCode};
use axum::response::IntoResponse;
use axum::Router;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::jsonrpc_error;

/// How long a client has to send a request's head once its connection is idle (just
/// accepted, or after its last response): past that the connection is closed. It is
/// also the HTTP/1.1 keep-alive idle timeout and the idle timeout of an HTTP/2
/// connection with no stream open.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a request's body may take to arrive whole, from the end of its head.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a write to a client may make no progress (the client stopped reading)
/// before the connection is closed.
pub const WRITE_STALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The most client connections served at once (before fitting to the process's file
/// descriptor limit, see [`ConnectionLimits::fitted_to_descriptors`]).
pub const MAX_CONNECTIONS: usize = 1024;

/// How long a connection that arrives at the cap waits for a free place (while the
/// longest-idle connection is closed) before it is answered `503`.
pub const ADMISSION_WAIT: Duration = Duration::from_secs(1);

/// How often a connection waiting at the cap closes the longest-idle one again.
const EVICTION_RETRY: Duration = Duration::from_millis(50);

/// How many connections may wait for a free place at once; more are closed at once.
pub const MAX_WAITING_CONNECTIONS: usize = 64;

/// Streams (requests) an HTTP/2 client may have open at once on one connection.
pub const H2_MAX_CONCURRENT_STREAMS: u32 = 64;

/// How often an HTTP/2 connection is pinged, and how long the client has to answer.
pub const H2_KEEP_ALIVE: Duration = Duration::from_secs(20);

/// How long the refusal of a connection that found no room may take to write.
const REFUSAL_WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// How long the accept loop pauses after an accept error (out of file descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The share of the process's file descriptors that client connections may take; the
/// rest is for upstream connections, stdio servers and files.
const DESCRIPTOR_SHARE: u64 = 2;

/// The bounds on client connections. [`Default`] is the documented constants;
/// [`ConnectionLimits::from_env`] lets an operator (or a test) change them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// See [`HEADER_READ_TIMEOUT`].
    pub header_read_timeout: Duration,
    /// See [`BODY_READ_TIMEOUT`].
    pub body_read_timeout: Duration,
    /// See [`WRITE_STALL_TIMEOUT`].
    pub write_stall_timeout: Duration,
    /// See [`MAX_CONNECTIONS`].
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_read_timeout: HEADER_READ_TIMEOUT,
            body_read_timeout: BODY_READ_TIMEOUT,
            write_stall_timeout: WRITE_STALL_TIMEOUT,
            max_connections: MAX_CONNECTIONS,
        }
    }
}

/// A bound in the environment that is not a positive integer.
#[derive(Debug, thiserror::Error)]
#[error("{name} must be a positive integer, not {value:?}")]
pub struct LimitsError {
    /// The variable.
    pub name: &'static str,
    /// What it held.
    pub value: String,
}

impl ConnectionLimits {
    /// The defaults, with any of `LITELLM_MCP_HEADER_TIMEOUT_MS`,
    /// `LITELLM_MCP_BODY_TIMEOUT_MS`, `LITELLM_MCP_WRITE_STALL_TIMEOUT_MS` and
    /// `LITELLM_MCP_MAX_CONNECTIONS` that are set.
    ///
    /// # Errors
    /// A variable that is set but is not a positive integer.
    pub fn from_env() -> Result<Self, LimitsError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, LimitsError> {
        let number = |name: &'static str| -> Result<Option<u64>, LimitsError> {
            match lookup(name) {
                None => Ok(None),
                Some(value) => match value.trim().parse::<u64>() {
                    Ok(n) if n > 0 => Ok(Some(n)),
                    _ => Err(LimitsError { name, value }),
                },
            }
        };
        let mut limits = ConnectionLimits::default();
        if let Some(ms) = number("LITELLM_MCP_HEADER_TIMEOUT_MS")? {
            limits.header_read_timeout = Duration::from_millis(ms);
        }
        if let Some(ms) = number("LITELLM_MCP_BODY_TIMEOUT_MS")? {
            limits.body_read_timeout = Duration::from_millis(ms);
        }
        if let Some(ms) = number("LITELLM_MCP_WRITE_STALL_TIMEOUT_MS")? {
            limits.write_stall_timeout = Duration::from_millis(ms);
        }
        if let Some(n) = number("LITELLM_MCP_MAX_CONNECTIONS")? {
            limits.max_connections = usize::try_from(n).unwrap_or(usize::MAX);
        }
        Ok(limits)
    }

    /// The cap lowered, when needed, to half the process's file descriptor limit
    /// (`RLIMIT_NOFILE`), so that client connections can never take the descriptors the
    /// gateway needs for its upstreams, its logs and `/health`'s own connection.
    #[must_use]
    pub fn fitted_to_descriptors(mut self) -> Self {
        if let Ok((soft, _)) =
            nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        {
            let share = usize::try_from(soft / DESCRIPTOR_SHARE).unwrap_or(usize::MAX);
            if share < self.max_connections {
                tracing::warn!(
                    descriptors = soft,
                    max_connections = share.max(1),
                    "the file descriptor limit lowers the connection cap"
                );
                self.max_connections = share.max(1);
            }
        }
        self
    }
}

/// Live counts of the connection side, for `/metrics`.
#[derive(Debug, Default)]
pub struct Live {
    /// Client sockets open (upgraded ones included).
    connections: AtomicUsize,
    /// One task per connection, plus the HTTP/2 stream tasks hyper spawns.
    tasks: TaskTracker,
}

impl Live {
    /// Client sockets open, upgraded ones (WebSocket) included.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    /// Tasks of the connection side still running.
    pub fn tasks(&self) -> usize {
        self.tasks.len()
    }

    /// The tracker of the connection tasks (closed and waited for at shutdown).
    pub(super) fn tracker(&self) -> &TaskTracker {
        &self.tasks
    }
}

/// Spawns hyper's background futures (HTTP/2 streams) into the connection tracker.
#[derive(Clone)]
struct TrackedExecutor(TaskTracker);

impl<F> hyper::rt::Executor<F> for TrackedExecutor
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, future: F) {
        self.0.spawn(future);
    }
}

/// Accepts connections until `stop` fires, serving each with `router`.
pub(super) async fn accept_loop(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    stop: CancellationToken,
    live: Arc<Live>,
) {
    let server = Arc::new(Server {
        builder: builder(&limits, live.tracker().clone()),
        router,
        limits,
        stop: stop.clone(),
        live: live.clone(),
        open: OpenConnections::default(),
    });
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let waiting = Arc::new(Semaphore::new(MAX_WAITING_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // EMFILE and friends: pause rather than spin; the backlog waits.
                tracing::warn!(%error, "accepting a connection failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        // Without it, an SSE reply (head, then its events in small writes) waits for the
        // client's delayed ACK: one call in ten took ~45 ms through a session-era
        // upstream (docs/benchmarks.md, "The 40 ms stall").
        let _ = stream.set_nodelay(true);
        let server = server.clone();
        match permits.clone().try_acquire_owned() {
            Ok(permit) => {
                // Registered before its task runs, so a flood finds it idle at once.
                let registered = server.open.register();
                live.tracker()
                    .spawn(async move { server.serve(stream, peer, permit, registered).await });
            }
            Err(_) => {
                server.open.close_longest_idle();
                let Ok(place) = waiting.clone().try_acquire_owned() else {
                    tracing::warn!(%peer, "connection cap reached and too many waiting: closed");
                    continue;
                };
                let permits = permits.clone();
                live.tracker().spawn(async move {
                    let _place = place;
                    match admit(&permits, &server.open).await {
                        Some(permit) => {
                            let registered = server.open.register();
                            server.serve(stream, peer, permit, registered).await;
                        }
                        None => refuse(stream, peer).await,
                    }
                });
            }
        }
    }
}

/// Waits up to [`ADMISSION_WAIT`] for a place under the cap, closing the longest-idle
/// connection again every [`EVICTION_RETRY`] while none is free (the one closed before
/// may have gone to another newcomer).
async fn admit(permits: &Arc<Semaphore>, open: &OpenConnections) -> Option<OwnedSemaphorePermit> {
    let deadline = Instant::now() + ADMISSION_WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        let wait = left.min(EVICTION_RETRY);
        if let Ok(Ok(permit)) = tokio::time::timeout(wait, permits.clone().acquire_owned()).await {
            return Some(permit);
        }
        open.close_longest_idle();
    }
}

/// The HTTP/1.1 + HTTP/2 connection builder with the bounds applied.
fn builder(limits: &ConnectionLimits, tasks: TaskTracker) -> auto::Builder<TrackedExecutor> {
    let mut builder = auto::Builder::new(TrackedExecutor(tasks));
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(H2_MAX_CONCURRENT_STREAMS)
        .keep_alive_interval(H2_KEEP_ALIVE)
        .keep_alive_timeout(H2_KEEP_ALIVE);
    builder
}

/// Answers a connection that found no room: `503` with a JSON-RPC error, then closes.
async fn refuse(mut stream: TcpStream, peer: SocketAddr) {
    tracing::warn!(%peer, "connection cap reached: refused with 503");
    let body = jsonrpc_error(
        Value::Null,
        -32000,
        "Service Unavailable: the gateway is at its connection cap; retry shortly",
    )
    .to_string();
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ =
        tokio::time::timeout(REFUSAL_WRITE_TIMEOUT, stream.write_all(response.as_bytes())).await;
}

/// What every connection task shares.
struct Server {
    /// hyper-util's builder, with the bounds set.
    builder: auto::Builder<TrackedExecutor>,
    /// The service's router.
    router: Router,
    /// The bounds.
    limits: ConnectionLimits,
    /// Fires at shutdown: connections finish what is in flight and close.
    stop: CancellationToken,
    /// Counts for `/metrics`.
    live: Arc<Live>,
    /// The connections served, to find the longest idle one at the cap.
    open: OpenConnections,
}

impl Server {
    /// Serves one connection until it ends, is closed for idleness, or shutdown ends it.
    async fn serve(
        self: Arc<Self>,
        stream: TcpStream,
        peer: SocketAddr,
        permit: OwnedSemaphorePermit,
        (activity, _registration): (Arc<Activity>, Registration),
    ) {
        let io = ConnIo::new(
            stream,
            permit,
            self.limits.write_stall_timeout,
            self.live.clone(),
        );
        let router = TowerToHyperService::new(self.router.clone());
        let body_timeout = self.limits.body_read_timeout;
        let service_activity = activity.clone();
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            let request_guard = RequestGuard::new(service_activity.clone());
            let router = router.clone();
            async move {
                Ok::<_, Infallible>(
                    handle(request, router, peer, body_timeout, request_guard).await,
                )
            }
        });
        let connection = self
            .builder
            .serve_connection_with_upgrades(TokioIo::new(io), service);
        tokio::pin!(connection);
        let idle_limit = self.limits.header_read_timeout;
        // Once asked to make room (or to shut down), the request then in flight finishes
        // first; the asks are taken once.
        let mut asked_to_close = false;
        let mut shutting_down = false;
        loop {
            let idle_at = activity.idle_deadline(idle_limit);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(error) = result {
                        tracing::debug!(%peer, %error, "client connection ended with an error");
                    }
                    return;
                }
                () = activity.close.cancelled(), if !asked_to_close && !shutting_down => {
                    asked_to_close = true;
                    if activity.idle_for().is_some() {
                        // Nothing in flight to finish: dropped at once, so its place is
                        // free now (a connection still reading its first bytes would
                        // not notice a graceful shutdown until more came).
                        tracing::debug!(%peer, "closed the longest-idle connection to make room");
                        return;
                    }
                    connection.as_mut().graceful_shutdown();
                }
                () = self.stop.cancelled(), if !shutting_down => {
                    // The shutdown's own grace bounds what is left to finish.
                    shutting_down = true;
                    if activity.idle_for().is_some() {
                        return;
                    }
                    connection.as_mut().graceful_shutdown();
                }
                () = activity.changed.notified() => {}
                () = sleep_until(idle_at), if idle_at.is_some() => {
                    if activity.idle_for().is_some_and(|idle| idle >= idle_limit) {
                        // Nothing in flight: dropping it loses nothing.
                        tracing::debug!(%peer, idle_s = idle_limit.as_secs_f64(), "closed an idle client connection");
                        return;
                    }
                }
            }
        }
    }
}

/// Sleeps until `at`; pending forever for `None`.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// One request: gives it the peer's address and a deadline on its body, runs the
/// router, and keeps the connection counted busy until the response's body is done.
async fn handle(
    request: Request<Incoming>,
    router: TowerToHyperService<Router>,
    peer: SocketAddr,
    body_timeout: Duration,
    guard: RequestGuard,
) -> Response<Body> {
    use hyper::service::Service;
    let expired = Arc::new(AtomicBool::new(false));
    let (mut parts, body) = request.into_parts();
    parts.extensions.insert(ConnectInfo(peer));
    let body = DeadlineBody::new(body, body_timeout, expired.clone());
    let request = Request::from_parts(parts, Body::new(body));
    let response = match router.call(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    let response = if expired.load(Ordering::Relaxed) {
        body_timeout_response(body_timeout)
    } else {
        response
    };
    response.map(|body| {
        Body::new(GuardedBody {
            inner: body,
            _guard: guard,
        })
    })
}

/// `408` for a body that did not arrive in time; the connection is closed after it.
fn body_timeout_response(limit: Duration) -> Response<Body> {
    let message = format!(
        "Request Timeout: the request body did not arrive within {} s",
        limit.as_secs_f64()
    );
    let mut response = (
        StatusCode::REQUEST_TIMEOUT,
        axum::Json(jsonrpc_error(Value::Null, -32600, &message)),
    )
        .into_response();
    response.headers_mut().insert(
        axum::http::header::CONNECTION,
        axum::http::HeaderValue::from_static("close"),
    );
    response
}

/// The connections being served (not the upgraded ones, which hyper no longer serves).
#[derive(Default)]
struct OpenConnections {
    /// Each connection's activity, by a number of its own.
    by_number: Arc<Mutex<HashMap<u64, Arc<Activity>>>>,
    /// Numbers the connections.
    next: AtomicU64,
}

impl OpenConnections {
    /// Adds a connection; the registration removes it when dropped.
    fn register(&self) -> (Arc<Activity>, Registration) {
        let number = self.next.fetch_add(1, Ordering::Relaxed);
        let activity = Arc::new(Activity::new());
        if let Ok(mut open) = self.by_number.lock() {
            open.insert(number, activity.clone());
        }
        let registration = Registration {
            open: self.by_number.clone(),
            number,
        };
        (activity, registration)
    }

    /// Asks the connection idle the longest (no request in flight) to close.
    fn close_longest_idle(&self) {
        let Ok(open) = self.by_number.lock() else {
            return;
        };
        let longest = open
            .values()
            .filter(|a| !a.close.is_cancelled())
            .filter_map(|a| a.idle_for().map(|idle| (idle, a)))
            .max_by_key(|(idle, _)| *idle);
        if let Some((_, activity)) = longest {
            activity.close.cancel();
        }
    }
}

/// Removes a connection from [`OpenConnections`] when its task ends.
struct Registration {
    open: Arc<Mutex<HashMap<u64, Arc<Activity>>>>,
    number: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Ok(mut open) = self.open.lock() {
            open.remove(&self.number);
        }
    }
}

/// Whether a connection has requests in flight, and since when it has had none.
struct Activity {
    /// Requests whose response is not done yet (streams included).
    in_flight: AtomicUsize,
    /// When the last request ended (or the connection was accepted).
    idle_since: Mutex<Instant>,
    /// Fires to ask the connection to close (to make room at the cap).
    close: CancellationToken,
    /// Wakes the connection's task when a request starts or ends.
    changed: Notify,
}

impl Activity {
    fn new() -> Self {
        Activity {
            in_flight: AtomicUsize::new(0),
            idle_since: Mutex::new(Instant::now()),
            close: CancellationToken::new(),
            changed: Notify::new(),
        }
    }

    /// How long the connection has had no request in flight; `None` while it has one.
    fn idle_for(&self) -> Option<Duration> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        self.idle_since.lock().ok().map(|since| since.elapsed())
    }

    /// When the connection will have been idle for `limit`; `None` while busy.
    fn idle_deadline(&self, limit: Duration) -> Option<Instant> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        self.idle_since.lock().ok().map(|since| *since + limit)
    }
}

/// Counts a request in flight on its connection until dropped (with its response body).
struct RequestGuard(Arc<Activity>);

impl RequestGuard {
    fn new(activity: Arc<Activity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        activity.changed.notify_one();
        RequestGuard(activity)
    }
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            if let Ok(mut since) = self.0.idle_since.lock() {
                *since = Instant::now();
            }
        }
        self.0.changed.notify_one();
    }
}

/// A response body that keeps its request counted in flight until it is done.
struct GuardedBody {
    inner: Body,
    _guard: RequestGuard,
}

impl http_body::Body for GuardedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A request body that fails once its deadline has passed, recording that it did.
struct DeadlineBody {
    inner: Incoming,
    /// Armed only for a body that has something to read.
    deadline: Option<Pin<Box<Sleep>>>,
    expired: Arc<AtomicBool>,
}

impl DeadlineBody {
    fn new(inner: Incoming, limit: Duration, expired: Arc<AtomicBool>) -> Self {
        use http_body::Body as _;
        let deadline = (!inner.is_end_stream()).then(|| Box::pin(tokio::time::sleep(limit)));
        DeadlineBody {
            inner,
            deadline,
            expired,
        }
    }
}

/// The error of a body that did not arrive in time.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time")]
struct BodyTimedOut;

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => Poll::Ready(frame.map(|f| f.map_err(Into::into))),
            Poll::Pending => {
                let passed = this
                    .deadline
                    .as_mut()
                    .is_some_and(|deadline| deadline.as_mut().poll(cx).is_ready());
                if passed {
                    this.expired.store(true, Ordering::Relaxed);
                    Poll::Ready(Some(Err(Box::new(BodyTimedOut))))
                } else {
                    Poll::Pending
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// An accepted socket: holds the connection's place under the cap for as long as the
/// socket lives (an upgraded WebSocket included), counts itself in [`Live`], and fails a
/// write that makes no progress for the stall timeout.
struct ConnIo {
    stream: TcpStream,
    /// Running while a write (or flush) is blocked.
    stall: Option<Pin<Box<Sleep>>>,
    stall_limit: Duration,
    _permit: OwnedSemaphorePermit,
    live: Arc<Live>,
}

impl ConnIo {
    fn new(
        stream: TcpStream,
        permit: OwnedSemaphorePermit,
        stall_limit: Duration,
        live: Arc<Live>,
    ) -> Self {
        live.connections.fetch_add(1, Ordering::Relaxed);
        ConnIo {
            stream,
            stall: None,
            stall_limit,
            _permit: permit,
            live,
        }
    }

    /// After a blocked write: pending, or the stall error once the limit has passed.
    fn stalled<T>(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<T>> {
        let limit = self.stall_limit;
        let stall = self
            .stall
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        if stall.as_mut().poll(cx).is_ready() {
            Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the client has not read what it was sent",
            )))
        } else {
            Poll::Pending
        }
    }

    fn progressed<T>(
        &mut self,
        result: Poll<std::io::Result<T>>,
        cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<T>> {
        match result {
            Poll::Ready(result) => {
                self.stall = None;
                Poll::Ready(result)
            }
            Poll::Pending => self.stalled(cx),
        }
    }
}

impl Drop for ConnIo {
    fn drop(&mut self) {
        self.live.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

impl AsyncRead for ConnIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for ConnIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let result = Pin::new(&mut self.stream).poll_write(cx, buf);
        self.progressed(result, cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let result = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.progressed(result, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let result = Pin::new(&mut self.stream).poll_flush(cx);
        self.progressed(result, cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let result = Pin::new(&mut self.stream).poll_shutdown(cx);
        self.progressed(result, cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_come_from_the_environment_or_the_constants() {
        let none = ConnectionLimits::from_lookup(|_| None).unwrap_or_default();
        assert_eq!(none, ConnectionLimits::default());
        assert_eq!(none.header_read_timeout, HEADER_READ_TIMEOUT);
        let set = ConnectionLimits::from_lookup(|name| match name {
            "LITELLM_MCP_HEADER_TIMEOUT_MS" => Some("1500".to_string()),
            "LITELLM_MCP_MAX_CONNECTIONS" => Some("7".to_string()),
            _ => None,
        })
        .unwrap_or_default();
        assert_eq!(set.header_read_timeout, Duration::from_millis(1500));
        assert_eq!(set.max_connections, 7);
        assert_eq!(set.body_read_timeout, BODY_READ_TIMEOUT);
        for bad in ["0", "-1", "ten", ""] {
            let error = ConnectionLimits::from_lookup(|name| {
                (name == "LITELLM_MCP_BODY_TIMEOUT_MS").then(|| bad.to_string())
            });
            assert!(error.is_err(), "{bad:?} is refused");
        }
    }

    #[test]
    fn the_longest_idle_connection_is_the_one_closed() {
        let open = OpenConnections::default();
        let (old, _a) = open.register();
        std::thread::sleep(Duration::from_millis(5));
        let (busy, _b) = open.register();
        let _request = RequestGuard::new(busy.clone());
        let (young, _c) = open.register();
        // The oldest is busy now: it is never chosen while a request is in flight.
        let _old_request = RequestGuard::new(old.clone());
        open.close_longest_idle();
        assert!(young.close.is_cancelled());
        assert!(!old.close.is_cancelled() && !busy.close.is_cancelled());
    }
}
