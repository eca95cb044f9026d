//! The library against servers built with the official Python SDK (PyPI `mcp`): 2.x over
//! streamable HTTP in both protocol eras, 1.x over WebSocket, legacy SSE and streamable
//! HTTP. Tools: add (structured output), echo, greet (a default), progress, fail,
//! whoami (the Authorization header the server saw).

#![allow(clippy::unwrap_used)]

mod common;

use common::{python_mcp1, python_mcp2, test_server_script, ServerProcess};
use litellm_rs::core::mcp::{
    AuthConfig, CallOptions, McpError, McpGateway, McpServerConfig, ProtocolPreference,
    ServerOptions, Transport,
};
use serde_json::json;

fn py2(args: &[&str]) -> ServerProcess {
    let script = test_server_script("py2_http_server.py");
    let mut all = vec![script.to_str().unwrap()];
    all.extend_from_slice(args);
    ServerProcess::start(python_mcp2(), &all)
}

fn py1(script: &str) -> ServerProcess {
    let script = test_server_script(script);
    ServerProcess::start(python_mcp1(), &[script.to_str().unwrap()])
}

/// Lists, calls add/echo/greet/fail/progress on the server registered as `name`.
async fn exercise(gateway: &McpGateway, name: &str, streams_progress: bool) {
    let server = gateway.get_server(name).await.unwrap();
    let tools = server.list_tools().await.unwrap();
    let names: Vec<&str> = tools.tools().iter().map(|t| t.name.as_str()).collect();
    for expected in ["add", "echo", "greet", "progress", "fail"] {
        assert!(
            names.contains(&expected),
            "{name}: {expected} missing from {names:?}"
        );
    }

    let sum = gateway
        .call_tool(name, "add", json!({"a": 2, "b": 40}))
        .await
        .unwrap();
    assert!(!sum.is_error());
    assert_eq!(sum.text(), "42", "{name}: {sum:?}");
    assert_eq!(
        sum.structured_content(),
        Some(&json!({"result": 42})),
        "{name}: {sum:?}"
    );

    let echo = gateway
        .call_tool(name, "echo", json!({"text": "héllo \"world\""}))
        .await
        .unwrap();
    assert_eq!(echo.text(), "héllo \"world\"");

    let greet = gateway
        .call_tool(name, "greet", json!({"name": "Ada"}))
        .await
        .unwrap();
    assert!(greet.text().contains("Ada"), "{greet:?}");

    let failed = gateway.call_tool(name, "fail", json!({})).await.unwrap();
    assert!(
        failed.is_error(),
        "a tool that raises is a result with isError: {failed:?}"
    );

    // Validation happens before anything is sent.
    let bad = gateway
        .call_tool(name, "add", json!({"a": "two", "b": 1}))
        .await;
    match bad {
        Err(McpError::InvalidArguments { field, .. }) => assert_eq!(field, "/a"),
        other => panic!("{name}: expected InvalidArguments, got {other:?}"),
    }
    let unknown = gateway.call_tool(name, "nope", json!({})).await;
    assert!(
        matches!(unknown, Err(McpError::ToolNotFound { .. })),
        "{unknown:?}"
    );

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let done = gateway
        .call_tool_with(
            name,
            "progress",
            json!({"steps": 3}),
            CallOptions {
                progress: Some(tx),
                ..CallOptions::default()
            },
        )
        .await
        .unwrap();
    assert!(!done.is_error(), "{done:?}");
    let mut updates = Vec::new();
    while let Ok(update) = rx.try_recv() {
        updates.push(update);
    }
    if streams_progress {
        assert_eq!(updates.len(), 3, "{name}: progress updates {updates:?}");
        assert_eq!(updates[2]["progress"].as_f64(), Some(3.0));
        assert_eq!(updates[2]["total"].as_f64(), Some(3.0));
    } else {
        // A server answering with plain JSON has no stream to carry notifications.
        assert!(updates.is_empty());
    }
}

#[tokio::test]
async fn python_2x_streamable_http_in_the_session_era_and_the_stateless_era() {
    for (args, sse) in [
        (vec![], true),
        (vec!["--json-response"], false),
        (vec!["--stateless"], true),
    ] {
        let server = py2(&args);
        let gateway = McpGateway::new();
        gateway
            .register_server(McpServerConfig::new("py", server.url("/mcp")))
            .await
            .unwrap();
        exercise(&gateway, "py", sse).await;
        let version = gateway
            .get_server("py")
            .await
            .unwrap()
            .protocol_version()
            .unwrap();
        assert_eq!(
            version, "2026-07-28",
            "mcp 2.x speaks the stateless revision"
        );
        gateway.shutdown(std::time::Duration::from_secs(2)).await;

        // The same server, spoken to in the session era (initialize, Mcp-Session-Id).
        let gateway = McpGateway::new();
        let sessions = ServerOptions {
            protocol: ProtocolPreference::Sessions,
            ..ServerOptions::default()
        };
        gateway
            .register_server_with_options(McpServerConfig::new("py", server.url("/mcp")), sessions)
            .await
            .unwrap();
        exercise(&gateway, "py", sse).await;
        let version = gateway
            .get_server("py")
            .await
            .unwrap()
            .protocol_version()
            .unwrap();
        assert_eq!(version, "2025-11-25", "{args:?}");
        gateway.shutdown(std::time::Duration::from_secs(2)).await;
    }
}

#[tokio::test]
async fn python_1x_over_websocket_sse_and_streamable_http() {
    let ws = py1("py1_ws_server.py");
    let sse = py1("py1_sse_server.py");
    let http = py1("py1_http_server.py");
    let gateway = McpGateway::new();
    gateway
        .register_server(McpServerConfig::new("ws", ws.ws_url("/ws")))
        .await
        .unwrap();
    gateway
        .register_server(
            McpServerConfig::new("sse", sse.url("/sse")).with_transport(Transport::Sse),
        )
        .await
        .unwrap();
    gateway
        .register_server(McpServerConfig::new("http", http.url("/mcp")))
        .await
        .unwrap();
    for name in ["ws", "sse", "http"] {
        exercise(&gateway, name, true).await;
        let version = gateway
            .get_server(name)
            .await
            .unwrap()
            .protocol_version()
            .unwrap();
        assert!(
            version.starts_with("202") && version != "2026-07-28",
            "{name}: {version}"
        );
    }
    let all = gateway.list_all_tools().await.unwrap();
    assert!(all
        .iter()
        .any(|t| t.qualified_name.as_deref() == Some("ws__add")));
    assert!(all
        .iter()
        .any(|t| t.qualified_name.as_deref() == Some("sse__add")));
    gateway.shutdown(std::time::Duration::from_secs(2)).await;
}

#[tokio::test]
async fn credentials_reach_the_server() {
    let server = py2(&[]);
    let gateway = McpGateway::new();
    gateway
        .register_server(
            McpServerConfig::new("py", server.url("/mcp"))
                .with_auth(AuthConfig::bearer("t0ken-123")),
        )
        .await
        .unwrap();
    let seen = gateway.call_tool("py", "whoami", json!({})).await.unwrap();
    assert_eq!(seen.text(), "Bearer t0ken-123", "{seen:?}");
}

#[tokio::test]
async fn a_servers_requests_for_input_reach_the_caller_in_both_eras() {
    let server = py2(&[]);
    for preference in [ProtocolPreference::Stateless, ProtocolPreference::Sessions] {
        let gateway = McpGateway::new();
        let options = ServerOptions {
            protocol: preference,
            ..ServerOptions::default()
        };
        gateway
            .register_server_with_options(McpServerConfig::new("py", server.url("/mcp")), options)
            .await
            .unwrap();
        // The caller answers the elicitation the tool needs.
        let (asks, mut asked) =
            tokio::sync::mpsc::unbounded_channel::<litellm_rs::core::mcp::ServerRequest>();
        let answering = tokio::spawn(async move {
            let mut methods = Vec::new();
            while let Some(request) = asked.recv().await {
                methods.push(request.method.clone());
                let _ = request
                    .reply
                    .send(Ok(json!({"action": "accept", "content": {"name": "Ada"}})));
            }
            methods
        });
        let options = CallOptions {
            server_requests: Some(asks),
            ..CallOptions::default()
        };
        let result = gateway
            .call_tool_with("py", "welcome", json!({}), options)
            .await
            .unwrap();
        assert_eq!(result.text(), "Welcome, Ada!", "{preference:?}: {result:?}");
        let version = gateway
            .get_server("py")
            .await
            .unwrap()
            .protocol_version()
            .unwrap();
        gateway.shutdown(std::time::Duration::from_secs(2)).await;
        let methods = answering.await.unwrap();
        assert_eq!(
            methods,
            vec!["elicitation/create"],
            "{preference:?} ({version})"
        );
        // Without anyone to answer, the call fails clearly.
        let gateway = McpGateway::new();
        gateway
            .register_server_with_options(
                McpServerConfig::new("py", server.url("/mcp")),
                ServerOptions {
                    protocol: preference,
                    ..ServerOptions::default()
                },
            )
            .await
            .unwrap();
        assert!(
            gateway.call_tool("py", "welcome", json!({})).await.is_err(),
            "{preference:?}"
        );
        gateway.shutdown(std::time::Duration::from_secs(2)).await;
    }
}
