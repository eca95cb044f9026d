//! What the library writes to the log: a stdio server's stderr arrives there, line by
//! line, tagged with the server; credentials never do, even at the most verbose level.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};

use common::{fixture_binary, ServerProcess};
use litellm_rs::core::mcp::{AuthConfig, McpGateway, McpServerConfig};
use serde_json::json;

/// Collects everything logged while it is the default subscriber.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

fn capture() -> (Captured, tracing::subscriber::DefaultGuard) {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    (captured, tracing::subscriber::set_default(subscriber))
}

// current_thread: every task of the test runs where the subscriber is the default.
#[tokio::test(flavor = "current_thread")]
async fn a_stdio_servers_stderr_goes_to_the_log_not_to_the_protocol() {
    let (logs, _guard) = capture();
    let gateway = McpGateway::new();
    let command = format!("RUST_LOG=debug {} --stdio", fixture_binary().display());
    gateway
        .register_server(McpServerConfig::stdio("kid", command))
        .await
        .unwrap();
    assert_eq!(
        gateway
            .call_tool("kid", "echo", json!({"text": "x"}))
            .await
            .unwrap()
            .text(),
        "x"
    );
    gateway.shutdown(std::time::Duration::from_secs(5)).await;
    let text = logs.text();
    let stderr_lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("stream=\"stderr\""))
        .collect();
    assert!(!stderr_lines.is_empty(), "no stderr line logged:\n{text}");
    assert!(
        stderr_lines.iter().all(|l| l.contains("server=kid")),
        "{stderr_lines:?}"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn credentials_never_reach_the_log() {
    let (logs, _guard) = capture();
    let fixture = ServerProcess::fixture(&[
        "--oauth",
        "--client-id",
        "gw",
        "--client-secret",
        "client-secret-value-1",
    ]);
    let gateway = McpGateway::new();
    gateway
        .register_server(McpServerConfig::new("o", fixture.url("/mcp")).with_auth(
            AuthConfig::oauth2("gw", "client-secret-value-1", fixture.url("/oauth/token")),
        ))
        .await
        .unwrap();
    gateway
        .register_server(
            McpServerConfig::new("b", fixture.url("/mcp"))
                .with_auth(AuthConfig::bearer("bearer-value-2"))
                .with_header("X-Static-Secret", "static-value-3"),
        )
        .await
        .unwrap();
    let stdio = format!("TOKEN=env-value-4 {} --stdio", fixture_binary().display());
    gateway
        .register_server(McpServerConfig::stdio("s", stdio))
        .await
        .unwrap();
    gateway
        .call_tool("o", "echo", json!({"text": "x"}))
        .await
        .unwrap();
    let _ = gateway.call_tool("b", "echo", json!({"text": "x"})).await; // 401: bearer is wrong here
    gateway
        .call_tool("s", "echo", json!({"text": "x"}))
        .await
        .unwrap();
    let listed = format!("{:?}", gateway.list_servers().await);
    gateway.shutdown(std::time::Duration::from_secs(5)).await;
    let text = logs.text();
    assert!(
        text.len() > 1000,
        "the log is verbose at TRACE: {} bytes",
        text.len()
    );
    for secret in [
        "client-secret-value-1",
        "bearer-value-2",
        "static-value-3",
        "env-value-4",
    ] {
        assert!(!text.contains(secret), "{secret} leaked into the log");
        assert!(
            !listed.contains(secret),
            "{secret} leaked into list_servers: {listed}"
        );
    }
    // The OAuth access token itself (fx_…) must not appear either.
    assert!(!text.contains("fx_"), "an access token leaked into the log");
}
