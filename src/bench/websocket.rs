//! One benchmark session over WebSocket: one connection, one JSON-RPC message per text
//! frame, subprotocol `mcp` offered.
//!
//! Owns only the framing; the handshake of either era is the caller's
//! ([`super::connection`]), over [`WsSession::send`] and [`WsSession::exchange`].

use futures::{SinkExt, StreamExt};
use reqwest::header::{HeaderName, HeaderValue};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::rpc::{self, ErrorKind, Failure, Reading};

/// A connected WebSocket.
pub struct WsSession {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl std::fmt::Debug for WsSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsSession").finish_non_exhaustive()
    }
}

impl WsSession {
    /// Opens the connection with the `--header`s.
    ///
    /// # Errors
    /// [`ErrorKind::Connect`] when the handshake fails.
    pub async fn open(url: &str, headers: &[(HeaderName, HeaderValue)]) -> Result<Self, Failure> {
        let mut request = url
            .into_client_request()
            .map_err(|e| Failure::fatal(ErrorKind::Connect, e.to_string()))?;
        request
            .headers_mut()
            .insert("sec-websocket-protocol", HeaderValue::from_static("mcp"));
        for (name, value) in headers {
            request.headers_mut().insert(name.clone(), value.clone());
        }
        let (socket, _) = tokio_tungstenite::connect_async(request)
            .await
            .map_err(|e| Failure::fatal(ErrorKind::Connect, e.to_string()))?;
        Ok(WsSession { socket })
    }

    /// Sends a message without waiting for anything (a notification).
    ///
    /// # Errors
    /// [`ErrorKind::Closed`] when the connection is gone.
    pub async fn send(&mut self, body: String) -> Result<(), Failure> {
        self.socket
            .send(Message::text(body))
            .await
            .map_err(|e| Failure::fatal(ErrorKind::Closed, e.to_string()))
    }

    /// Sends a request and reads frames until its response.
    ///
    /// # Errors
    /// Why it did not succeed.
    pub async fn exchange(&mut self, id: u64, body: String) -> Result<(), Failure> {
        self.send(body).await?;
        loop {
            let message = match self.socket.next().await {
                Some(Ok(message)) => message,
                Some(Err(e)) => return Err(Failure::fatal(ErrorKind::Closed, e.to_string())),
                None => {
                    return Err(Failure::fatal(
                        ErrorKind::Closed,
                        "the server closed the connection",
                    ))
                }
            };
            let reading = match &message {
                Message::Text(text) => rpc::read(text.as_bytes(), id),
                Message::Binary(bytes) => rpc::read(bytes, id),
                Message::Close(_) => {
                    return Err(Failure::fatal(
                        ErrorKind::Closed,
                        "the server closed the connection",
                    ))
                }
                _ => Reading::Other,
            };
            if let Reading::Answer(outcome) = reading {
                return outcome;
            }
        }
    }

    /// Closes the connection; errors are ignored.
    pub async fn close(mut self) {
        let _ = self.socket.close(None).await;
    }
}
