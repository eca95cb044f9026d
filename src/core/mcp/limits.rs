//! The bounds on what an upstream server can make the gateway hold, compute, log or
//! send, in one place. Each is a constant here; those a deployment may want to change
//! per server are also fields of [`ServerOptions`](super::ServerOptions) (with these
//! as defaults) or of [`GatewayOptions`](super::GatewayOptions).
//!
//! Past a bound the upstream costs a clear error (naming the bound), never the gateway:
//!
//! | what | bound | past it |
//! |---|---|---|
//! | one message (JSON body, SSE event's data, stdio line, WebSocket message) | [`DEFAULT_MAX_MESSAGE_BYTES`] (`ServerOptions::max_message_bytes`) | the request fails; an SSE stream or WebSocket is closed; a stdio line is skipped and logged, and the request it answers fails when the line names its id |
//! | one SSE line | the message cap + [`SSE_LINE_ALLOWANCE`] | the stream is closed with that error; parsing is linear in the bytes received |
//! | tools of one server | [`DEFAULT_MAX_TOOLS`] (`ServerOptions::max_tools`) | `tools/list` of that server fails (the others are listed) |
//! | bytes of one server's tool list | [`DEFAULT_MAX_TOOL_LIST_BYTES`] (`ServerOptions::max_tool_list_bytes`) | as above |
//! | pages of one tool list | [`MAX_TOOL_LIST_PAGES`] | as above |
//! | a stdio server's stderr in our log | [`STDERR_LINES_PER_SECOND`] lines/s (bursts of [`STDERR_BURST_LINES`]), [`STDERR_LINE_BYTES`] bytes a line | lines dropped with a "N stderr lines dropped" note; longer lines cut |
//! | redirects | [`MAX_UPSTREAM_REDIRECTS`], same origin only | the request fails, naming the other origin |
//! | idle pooled HTTP connections | [`DEFAULT_UPSTREAM_POOL_IDLE_TIMEOUT`] (`GatewayOptions::upstream_pool_idle_timeout`), [`UPSTREAM_POOL_MAX_IDLE_PER_HOST`] per host | closed |
//! | connecting to an upstream | [`UPSTREAM_CONNECT_TIMEOUT`] | the request fails (retried if safe) |
//! | messages queued for a stdio or WebSocket server | [`UPSTREAM_OUTBOX_MESSAGES`] | senders wait, within their deadline |
//! | a streamable HTTP GET stream that keeps failing | [`MAX_LISTEN_FAILURES`] in a row, pauses doubling from 0.5 s to 16 s | given up (calls are unaffected) |
//! | a call, end to end | the server's `timeout_ms` (or the call's own timeout) | [`McpError::Timeout`](super::McpError::Timeout), including time queued behind a handshake, a tool-list fetch or a blocked write |

use std::time::Duration;

/// The largest message accepted from a server by default: 16 MiB.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// Bytes an SSE line may have beyond the message cap: its field name (`data: `), with
/// room to spare.
pub const SSE_LINE_ALLOWANCE: usize = 64;

/// The most tools one server may list by default: 10,000 (servers in the wild list
/// tens to hundreds).
pub const DEFAULT_MAX_TOOLS: usize = 10_000;

/// The most bytes of tool definitions (their JSON) one server may list by default:
/// 16 MiB.
pub const DEFAULT_MAX_TOOL_LIST_BYTES: usize = 16 * 1024 * 1024;

/// The most pages of one `tools/list`.
pub const MAX_TOOL_LIST_PAGES: usize = 1000;

/// The most bytes of one stderr line written to our log; the rest is cut, and the
/// line's length noted.
pub const STDERR_LINE_BYTES: usize = 2048;

/// Stderr lines logged per second and server, on average.
pub const STDERR_LINES_PER_SECOND: u32 = 20;

/// Stderr lines that may be logged at once after a quiet spell (a stack trace).
pub const STDERR_BURST_LINES: u32 = 100;

/// Redirects one upstream request may follow, all within its origin.
pub const MAX_UPSTREAM_REDIRECTS: usize = 5;

/// How long an idle connection to an upstream stays in the pool by default: 30 s.
/// Connections to servers no longer called do not linger, and bursts of calls reuse
/// them.
pub const DEFAULT_UPSTREAM_POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The most idle connections the pool keeps per upstream host: a burst of concurrent
/// calls may open more, but only this many outlive it.
pub const UPSTREAM_POOL_MAX_IDLE_PER_HOST: usize = 32;

/// How long connecting to an upstream (TCP and TLS) may take.
pub const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Messages queued for one stdio or WebSocket upstream before senders wait (within
/// their deadline): a server that stops reading holds at most this many.
pub const UPSTREAM_OUTBOX_MESSAGES: usize = 256;

/// Failed GET streams in a row (refused, broken by a cap, or ended at once without a
/// message) after which a streamable HTTP server's GET stream is given up; the pause
/// between tries doubles from 0.5 s to 16 s.
pub const MAX_LISTEN_FAILURES: u32 = 8;
