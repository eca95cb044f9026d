//! `--relay URL`: a plain HTTP relay, the floor of what any HTTP gateway costs. Every
//! request is sent on to `URL` (same method, body and MCP headers) with `reqwest`, and
//! the answer comes back whole (status, content type, session id, body). No JSON is
//! parsed, nothing is checked; it is built on the stack the gateway uses (hyper server,
//! reqwest client), so benchmarks can set the gateway's cost against it.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};

/// Request headers that cross, besides the body.
const FORWARDED: [&str; 8] = [
    "content-type",
    "accept",
    "mcp-session-id",
    "mcp-protocol-version",
    "mcp-method",
    "mcp-name",
    "last-event-id",
    "authorization",
];

#[derive(Clone)]
struct Relay {
    client: reqwest::Client,
    target: String,
}

/// Serves the relay on 127.0.0.1:`port` until the process ends.
pub async fn run(target: String, port: u16) -> std::io::Result<()> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .map_err(std::io::Error::other)?;
    let app = axum::Router::new()
        .fallback(relay)
        .with_state(Relay { client, target });
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await?;
    println!("LISTENING {}", listener.local_addr()?.port());
    axum::serve(listener, app).await
}

async fn relay(
    State(relay): State<Relay>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut request = relay.client.request(method, &relay.target).body(body);
    for name in FORWARDED {
        if let Some(value) = headers.get(name) {
            request = request.header(name, value);
        }
    }
    let upstream = match request.send().await {
        Ok(upstream) => upstream,
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let status = upstream.status();
    let mut back = HeaderMap::new();
    for name in ["content-type", "mcp-session-id"] {
        if let Some(value) = upstream.headers().get(name) {
            back.insert(name, value.clone());
        }
    }
    match upstream.bytes().await {
        Ok(body) => (status, back, body).into_response(),
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}
