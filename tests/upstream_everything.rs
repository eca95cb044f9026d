//! The library against the official TypeScript reference server, npm
//! `@modelcontextprotocol/server-everything`, over stdio, legacy SSE and streamable HTTP:
//! its tools are listed with every field intact, and echo, get-sum, a tool that reports
//! progress, one that returns an image and one with structured content are called.

#![allow(clippy::unwrap_used)]

mod common;

use common::{node, server_everything, ServerProcess};
use litellm_rs::core::mcp::{CallOptions, McpGateway, McpServerConfig, Transport};
use serde_json::json;

/// Starts server-everything over a network transport, bound to loopback through
/// `tests/servers/loopback.cjs` (which also prints `LISTENING <port>`).
fn everything_over(mode: &str) -> ServerProcess {
    let shim = common::test_server_script("loopback.cjs");
    ServerProcess::start_with_env(
        node(),
        &[
            "--require",
            shim.to_str().unwrap(),
            server_everything().to_str().unwrap(),
            mode,
        ],
        &[("PORT", "0")],
    )
}

async fn exercise(gateway: &McpGateway, name: &str) {
    let server = gateway.get_server(name).await.unwrap();
    let tools = server.list_tools().await.unwrap();
    let structured = tools
        .get("get-structured-content")
        .expect("get-structured-content listed");
    // Fields we do not model travel on untouched.
    assert_eq!(structured.extra["title"], "Get Structured Content Tool");
    assert_eq!(structured.extra["annotations"]["readOnlyHint"], true);
    assert_eq!(structured.extra["outputSchema"]["type"], "object");
    assert!(structured
        .input_schema
        .properties()
        .contains_key("location"));

    let echo = gateway
        .call_tool(name, "echo", json!({"message": "hi there"}))
        .await
        .unwrap();
    assert_eq!(echo.text(), "Echo: hi there");

    let sum = gateway
        .call_tool(name, "get-sum", json!({"a": 2, "b": 3}))
        .await
        .unwrap();
    assert_eq!(sum.text(), "The sum of 2 and 3 is 5.");

    let image = gateway
        .call_tool(name, "get-tiny-image", json!({}))
        .await
        .unwrap();
    let picture = image
        .content()
        .iter()
        .find(|c| c["type"] == "image")
        .expect("an image item");
    assert_eq!(picture["mimeType"], "image/png");
    let data = picture["data"].as_str().unwrap();
    assert!(
        data.len() > 100 && data.starts_with("iVBOR"),
        "base64 PNG: {}",
        &data[..20]
    );

    let weather = gateway
        .call_tool(
            name,
            "get-structured-content",
            json!({"location": "Chicago"}),
        )
        .await
        .unwrap();
    let content = weather.structured_content().expect("structuredContent");
    assert!(
        content["temperature"].is_number() && content["conditions"].is_string(),
        "{weather:?}"
    );

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let long = gateway
        .call_tool_with(
            name,
            "trigger-long-running-operation",
            json!({"duration": 0.3, "steps": 3}),
            CallOptions {
                progress: Some(tx),
                ..CallOptions::default()
            },
        )
        .await
        .unwrap();
    assert!(!long.is_error(), "{long:?}");
    let mut steps = Vec::new();
    while let Ok(update) = rx.try_recv() {
        steps.push(update["progress"].as_f64().unwrap());
    }
    assert_eq!(steps, vec![1.0, 2.0, 3.0]);

    // The server's own validation still answers what ours lets through: a JSON Schema
    // that accepts the arguments (here, none) and a server that rejects them.
    let bad = gateway
        .call_tool(name, "get-sum", json!({"a": "x", "b": 1}))
        .await;
    assert!(bad.is_err());
}

#[tokio::test]
async fn server_everything_over_stdio() {
    let command = format!(
        "{} {} stdio",
        node().display(),
        server_everything().display()
    );
    let gateway = McpGateway::new();
    gateway
        .register_server(McpServerConfig::stdio("everything", command))
        .await
        .unwrap();
    exercise(&gateway, "everything").await;
    gateway.shutdown(std::time::Duration::from_secs(5)).await;
}

#[tokio::test]
async fn server_everything_over_sse() {
    let server = everything_over("sse");
    let gateway = McpGateway::new();
    gateway
        .register_server(
            McpServerConfig::new("everything", server.url("/sse")).with_transport(Transport::Sse),
        )
        .await
        .unwrap();
    exercise(&gateway, "everything").await;
    gateway.shutdown(std::time::Duration::from_secs(5)).await;
}

#[tokio::test]
async fn server_everything_over_streamable_http() {
    let server = everything_over("streamableHttp");
    let gateway = McpGateway::new();
    gateway
        .register_server(McpServerConfig::new("everything", server.url("/mcp")))
        .await
        .unwrap();
    exercise(&gateway, "everything").await;
    let version = gateway
        .get_server("everything")
        .await
        .unwrap()
        .protocol_version()
        .unwrap();
    assert_eq!(version, "2025-11-25");
    gateway.shutdown(std::time::Duration::from_secs(5)).await;
}
