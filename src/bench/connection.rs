//! What a benchmark talks to ([`Target`]) and one client session with it
//! ([`Connection`]): a closed enum over the three transports, each in its own file.
//!
//! Owns the set-up of a session in either era on the framed transports (WebSocket and
//! stdio: `initialize`, then `notifications/initialized`); streamable HTTP does its own
//! ([`super::http`]), because the session lives in headers there.

use reqwest::header::{HeaderName, HeaderValue};

use super::http::{HttpSession, HttpTarget};
use super::rpc::{self, Era, Failure, Workload};
use super::stdio::StdioSession;
use super::websocket::WsSession;

/// The endpoint under test.
#[derive(Debug, Clone)]
pub enum Target {
    /// Streamable HTTP.
    Http(HttpTarget),
    /// A WebSocket URL.
    WebSocket {
        /// `ws://…` or `wss://…`.
        url: String,
        /// `--header`s, sent with the upgrade request.
        headers: Vec<(HeaderName, HeaderValue)>,
        /// The era spoken.
        era: Era,
    },
    /// A command that speaks MCP on stdin/stdout; every session starts its own process.
    Stdio {
        /// The program.
        program: String,
        /// Its arguments.
        args: Vec<String>,
        /// The era spoken.
        era: Era,
    },
}

impl Target {
    /// The transport's name, for the report.
    pub fn transport(&self) -> &'static str {
        match self {
            Target::Http(_) => "http",
            Target::WebSocket { .. } => "websocket",
            Target::Stdio { .. } => "stdio",
        }
    }

    /// The era spoken.
    pub fn era(&self) -> Era {
        match self {
            Target::Http(http) => http.era,
            Target::WebSocket { era, .. } | Target::Stdio { era, .. } => *era,
        }
    }

    /// The URL or the command line, for the report.
    pub fn address(&self) -> String {
        match self {
            Target::Http(http) => http.url.to_string(),
            Target::WebSocket { url, .. } => url.clone(),
            Target::Stdio { program, args, .. } => {
                shell_words::join(std::iter::once(program).chain(args))
            }
        }
    }

    /// Sets up one session.
    ///
    /// # Errors
    /// The [`Failure`] of the connection or the handshake.
    pub async fn connect(&self, workload: &Workload) -> Result<Connection, Failure> {
        match self {
            Target::Http(http) => Ok(Connection::Http(
                HttpSession::connect(http, workload).await?,
            )),
            Target::WebSocket { url, headers, era } => {
                let mut connection =
                    Connection::WebSocket(Box::new(WsSession::open(url, headers).await?));
                connection.handshake(*era).await?;
                Ok(connection)
            }
            Target::Stdio { program, args, era } => {
                let mut connection = Connection::Stdio(StdioSession::spawn(program, args)?);
                connection.handshake(*era).await?;
                Ok(connection)
            }
        }
    }
}

/// One client session, ready for requests.
#[derive(Debug)]
pub enum Connection {
    /// Streamable HTTP (over the target's shared pool).
    Http(HttpSession),
    /// Its own WebSocket (boxed: the stream's state is large).
    WebSocket(Box<WsSession>),
    /// Its own process.
    Stdio(StdioSession),
}

impl Connection {
    /// `initialize` (id 0) and `notifications/initialized` on a framed transport in
    /// the sessions era; nothing in the stateless era.
    async fn handshake(&mut self, era: Era) -> Result<(), Failure> {
        if era == Era::Stateless {
            return Ok(());
        }
        let initialize = rpc::initialize(0);
        match self {
            Connection::Http(_) => Ok(()),
            Connection::WebSocket(ws) => {
                ws.exchange(0, initialize).await?;
                ws.send(rpc::INITIALIZED.to_string()).await
            }
            Connection::Stdio(stdio) => {
                stdio.exchange(0, initialize).await?;
                stdio.send(rpc::INITIALIZED.to_string()).await
            }
        }
    }

    /// Sends one request of the loop and waits for its response.
    ///
    /// # Errors
    /// Why it did not succeed; [`Failure::fatal`] when the session must be set up again.
    pub async fn request(&mut self, id: u64, body: String) -> Result<(), Failure> {
        match self {
            Connection::Http(http) => http.request(id, body).await,
            Connection::WebSocket(ws) => ws.exchange(id, body).await,
            Connection::Stdio(stdio) => stdio.exchange(id, body).await,
        }
    }

    /// Ends the session: `DELETE` (unless `keep_sessions`), a close frame, or the
    /// process's end.
    pub async fn close(self, keep_sessions: bool) {
        match self {
            Connection::Http(http) => http.close(keep_sessions).await,
            Connection::WebSocket(ws) => (*ws).close().await,
            Connection::Stdio(stdio) => stdio.close().await,
        }
    }
}
