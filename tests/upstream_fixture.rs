//! The library against our own fixture server (`crates/mcp-fixture`), for what
//! third-party servers cannot show: one shared session under concurrency, pagination and
//! cache invalidation, dead and slow servers, timeouts with cancellation, forgotten
//! sessions, crashes and garbage on every transport, stdio supervision, every kind of
//! upstream credential, and results that keep every field.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{
    closed_port, eventually, fixture_binary, get_json, method_count, post_empty, process_state,
    processes_with_env, ServerProcess,
};
use litellm_rs::core::mcp::{
    AuthConfig, McpError, McpGateway, McpServerConfig, ProtocolPreference, ServerOptions, Transport,
};
use serde_json::json;

fn sessions_only() -> ServerOptions {
    ServerOptions {
        protocol: ProtocolPreference::Sessions,
        ..ServerOptions::default()
    }
}

fn stdio_command(marker: &str) -> String {
    format!(
        "FIXTURE_MARKER={marker} {} --stdio",
        fixture_binary().display()
    )
}

/// A gateway with one server named `s`.
async fn gateway_with(config: McpServerConfig, options: Option<ServerOptions>) -> McpGateway {
    let gateway = McpGateway::new();
    match options {
        Some(options) => gateway
            .register_server_with_options(config, options)
            .await
            .unwrap(),
        None => gateway.register_server(config).await.unwrap(),
    }
    gateway
}

#[tokio::test]
async fn one_session_is_shared_by_concurrent_callers_in_both_eras() {
    for (options, handshake) in [
        (None, "server/discover"),
        (Some(sessions_only()), "initialize"),
    ] {
        let fixture = ServerProcess::fixture(&[]);
        let gateway = gateway_with(McpServerConfig::new("s", fixture.url("/mcp")), options).await;
        let calls = (0..40).map(|i| {
            let gateway = gateway.clone();
            async move {
                gateway
                    .call_tool("s", "echo", json!({"text": format!("call {i}")}))
                    .await
            }
        });
        let results = futures::future::join_all(calls).await;
        for (i, result) in results.into_iter().enumerate() {
            assert_eq!(
                result.unwrap().text(),
                format!("call {i}"),
                "answers reach their own callers"
            );
        }
        let stats = get_json(&fixture.url("/stats")).await;
        assert_eq!(
            stats["methods"][handshake], 1,
            "one handshake for 40 calls: {stats}"
        );
        assert_eq!(stats["methods"]["tools/call"], 40);
        assert_eq!(
            stats["methods"]["tools/list"], 1,
            "the tool list is fetched once"
        );
        if handshake == "initialize" {
            assert_eq!(stats["sessions_created"], 1);
            assert_eq!(stats["methods"]["notifications/initialized"], 1);
        }
    }
}

#[tokio::test]
async fn every_page_is_fetched_and_the_list_is_cached() {
    let fixture =
        ServerProcess::fixture(&["--tools", "25", "--page-size", "10", "--ttl-ms", "600000"]);
    let gateway = gateway_with(McpServerConfig::new("s", fixture.url("/mcp")), None).await;
    let tools = gateway.list_all_tools().await.unwrap();
    assert!(
        tools.iter().any(|t| t.name == "tool_24"),
        "the last page arrived"
    );
    assert!(tools.iter().all(|t| t.server_name.as_deref() == Some("s")));
    let pages = method_count(&fixture, "tools/list").await;
    assert_eq!(pages as usize, tools.len().div_ceil(10));
    let again = gateway.list_all_tools().await.unwrap();
    assert_eq!(again.len(), tools.len());
    assert_eq!(
        method_count(&fixture, "tools/list").await,
        pages,
        "no request while the cache is fresh"
    );
    gateway
        .call_tool("s", "tool_24", json!({"text": "x"}))
        .await
        .unwrap();
    assert_eq!(
        method_count(&fixture, "tools/list").await,
        pages,
        "calls use the cached list"
    );

    // A zero TTL means every listing asks again: the gateway's own TTL for servers of
    // the session era, the server's `ttlMs` (here 0, the fixture's default) otherwise.
    let uncached = ServerOptions {
        tool_cache_ttl: Duration::ZERO,
        ..sessions_only()
    };
    let gateway = gateway_with(
        McpServerConfig::new("s", fixture.url("/mcp")),
        Some(uncached),
    )
    .await;
    gateway.list_all_tools().await.unwrap();
    gateway.list_all_tools().await.unwrap();
    assert_eq!(method_count(&fixture, "tools/list").await, pages * 3);
    let zero_ttl = ServerProcess::fixture(&[]);
    let gateway = gateway_with(McpServerConfig::new("z", zero_ttl.url("/mcp")), None).await;
    gateway.list_all_tools().await.unwrap();
    gateway.list_all_tools().await.unwrap();
    assert_eq!(
        method_count(&zero_ttl, "tools/list").await,
        2,
        "ttlMs 0 is honoured"
    );
    // …but calls do not pay for it: a stale list still checks arguments.
    gateway
        .call_tool("z", "echo", json!({"text": "x"}))
        .await
        .unwrap();
    assert_eq!(method_count(&zero_ttl, "tools/list").await, 2);
}

#[tokio::test]
async fn list_changed_drops_the_cache_on_every_transport() {
    let fixture = ServerProcess::fixture(&[]);
    let configs = [
        McpServerConfig::new("http", fixture.url("/mcp")),
        McpServerConfig::new("sse", fixture.url("/sse")).with_transport(Transport::Sse),
        McpServerConfig::new("ws", fixture.ws_url("/ws")),
        McpServerConfig::stdio("stdio", stdio_command("list-changed")),
    ];
    for config in configs {
        let name = config.name.clone();
        let gateway = gateway_with(config, Some(sessions_only())).await;
        let server = gateway.get_server(&name).await.unwrap();
        let before = server.list_tools().await.unwrap().tools().len();
        if name == "http" {
            // Streamable HTTP delivers server-initiated messages on the GET stream,
            // opened in the background after the handshake.
            let stats_url = fixture.url("/stats");
            let mut ok = false;
            for _ in 0..250 {
                if get_json(&stats_url).await["get_streams"].as_u64() == Some(1) {
                    ok = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            assert!(ok, "the GET stream opened");
        }
        let mut notifications = server.notifications();
        let changed = gateway
            .call_tool(&name, "change_tools", json!({}))
            .await
            .unwrap();
        assert_eq!(changed.text(), "changed");
        let notice = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let n = notifications.recv().await.unwrap();
                if n.method == "notifications/tools/list_changed" {
                    return n;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{name}: no list_changed"));
        assert_eq!(notice.server_name, name);
        let after = server.list_tools().await.unwrap();
        assert!(
            after.tools().len() > before,
            "{name}: the new tool is listed"
        );
        assert!(
            after.tools().iter().any(|t| t.name.starts_with("extra_")),
            "{name}"
        );
        gateway.shutdown(Duration::from_secs(5)).await;
    }
}

#[tokio::test]
async fn dead_and_slow_servers_cost_their_timeout_and_fail_alone() {
    let good = ServerProcess::fixture(&[]);
    let slow = ServerProcess::fixture(&["--list-delay-ms", "60000"]);
    let gateway = McpGateway::new();
    gateway
        .register_server(McpServerConfig::new("good", good.url("/mcp")))
        .await
        .unwrap();
    gateway
        .register_server(
            McpServerConfig::new("dead", format!("http://127.0.0.1:{}/mcp", closed_port()))
                .with_timeout(1000),
        )
        .await
        .unwrap();
    gateway
        .register_server(McpServerConfig::new("slow", slow.url("/mcp")).with_timeout(800))
        .await
        .unwrap();
    let started = Instant::now();
    let discovery = gateway.discover_tools().await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "bounded by the timeouts, took {took:?}"
    );
    assert!(discovery
        .tools
        .iter()
        .any(|t| t.qualified_name.as_deref() == Some("good__echo")));
    let mut failed: Vec<(&str, &McpError)> = discovery
        .failures
        .iter()
        .map(|f| (f.server_name.as_str(), &f.error))
        .collect();
    failed.sort_by_key(|(name, _)| *name);
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert!(
        matches!(
            failed[0],
            (
                "dead",
                McpError::Transport {
                    maybe_delivered: false,
                    ..
                }
            )
        ),
        "{failed:?}"
    );
    assert!(
        matches!(failed[1], ("slow", McpError::Timeout { .. })),
        "{failed:?}"
    );
    // list_all_tools succeeds with what answered, and the good server keeps serving.
    assert!(!gateway.list_all_tools().await.unwrap().is_empty());
    assert_eq!(
        gateway
            .call_tool("good", "echo", json!({"text": "still here"}))
            .await
            .unwrap()
            .text(),
        "still here"
    );
    // When every server fails, it is an error that names them all.
    let only_dead = McpGateway::new();
    only_dead
        .register_server(
            McpServerConfig::new("dead", format!("http://127.0.0.1:{}/mcp", closed_port()))
                .with_timeout(500),
        )
        .await
        .unwrap();
    match only_dead.list_all_tools().await {
        Err(McpError::DiscoveryFailed { failures }) => assert_eq!(failures[0].server_name, "dead"),
        other => panic!("expected DiscoveryFailed, got {other:?}"),
    }
}

#[tokio::test]
async fn a_timeout_cancels_the_call_upstream() {
    let fixture = ServerProcess::fixture(&[]);
    for (name, options) in [("modern", None), ("legacy", Some(sessions_only()))] {
        let gateway = gateway_with(
            McpServerConfig::new(name, fixture.url("/mcp")).with_timeout(700),
            options,
        )
        .await;
        gateway.list_all_tools().await.unwrap();
        let before = get_json(&fixture.url("/stats")).await["cancelled"]
            .as_array()
            .unwrap()
            .len();
        let started = Instant::now();
        match gateway.call_tool(name, "hang", json!({})).await {
            Err(McpError::Timeout {
                timeout_ms, method, ..
            }) => {
                assert_eq!(timeout_ms, 700);
                assert_eq!(method, "tools/call");
            }
            other => panic!("{name}: expected a timeout, got {other:?}"),
        }
        assert!(started.elapsed() < Duration::from_secs(5));
        let mut cancelled = 0;
        for _ in 0..100 {
            cancelled = get_json(&fixture.url("/stats")).await["cancelled"]
                .as_array()
                .unwrap()
                .len();
            if cancelled > before {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            cancelled > before,
            "{name}: the server heard of the cancellation"
        );
        // The session survives a timeout.
        assert_eq!(
            gateway
                .call_tool(name, "echo", json!({"text": "ok"}))
                .await
                .unwrap()
                .text(),
            "ok"
        );
    }
}

#[tokio::test]
async fn a_forgotten_session_is_initialized_again_once() {
    let fixture = ServerProcess::fixture(&[]);
    let gateway = gateway_with(
        McpServerConfig::new("s", fixture.url("/mcp")),
        Some(sessions_only()),
    )
    .await;
    gateway
        .call_tool("s", "echo", json!({"text": "one"}))
        .await
        .unwrap();
    post_empty(&fixture.url("/admin/forget-sessions")).await;
    assert_eq!(
        gateway
            .call_tool("s", "echo", json!({"text": "two"}))
            .await
            .unwrap()
            .text(),
        "two"
    );
    assert_eq!(method_count(&fixture, "initialize").await, 2);
    let headers = get_json(&fixture.url("/stats")).await["last_headers"].clone();
    assert_eq!(headers["mcp-protocol-version"], "2025-11-25");
    assert!(headers["mcp-session-id"].is_string());
    assert!(headers["accept"]
        .as_str()
        .unwrap()
        .contains("text/event-stream"));
}

#[tokio::test]
async fn old_servers_negotiate_their_version() {
    for version in ["2024-11-05", "2025-03-26", "2025-06-18"] {
        let fixture = ServerProcess::fixture(&["--era", "legacy", "--max-version", version]);
        let gateway = gateway_with(McpServerConfig::new("s", fixture.url("/mcp")), None).await;
        assert_eq!(
            gateway
                .call_tool("s", "echo", json!({"text": "v"}))
                .await
                .unwrap()
                .text(),
            "v"
        );
        let server = gateway.get_server("s").await.unwrap();
        assert_eq!(server.protocol_version().as_deref(), Some(version));
        // The era is remembered: a new session does not probe again.
        post_empty(&fixture.url("/admin/forget-sessions")).await;
        gateway
            .call_tool("s", "echo", json!({"text": "v"}))
            .await
            .unwrap();
        assert_eq!(
            method_count(&fixture, "server/discover").await,
            1,
            "{version}"
        );
        assert_eq!(method_count(&fixture, "initialize").await, 2, "{version}");
    }
    let modern = ServerProcess::fixture(&["--era", "modern"]);
    let gateway = gateway_with(McpServerConfig::new("s", modern.url("/mcp")), None).await;
    let sum = gateway
        .call_tool("s", "add", json!({"a": 1, "b": 2}))
        .await
        .unwrap();
    assert_eq!(sum.structured_content().unwrap()["sum"].as_f64(), Some(3.0));
    // The `headers` tool answers with the headers of its own request (the last request
    // the fixture saw may be the background subscriptions/listen).
    let seen = gateway.call_tool("s", "headers", json!({})).await.unwrap();
    let headers: serde_json::Value = serde_json::from_str(&seen.text()).unwrap();
    assert_eq!(headers["mcp-method"], "tools/call", "{headers}");
    assert_eq!(headers["mcp-name"], "headers");
    assert_eq!(headers["mcp-protocol-version"], "2026-07-28");
    assert_eq!(method_count(&modern, "initialize").await, 0);
}

#[tokio::test]
async fn results_keep_every_field_and_errors_are_typed_on_every_transport() {
    let fixture = ServerProcess::fixture(&[]);
    let configs = [
        McpServerConfig::new("http", fixture.url("/mcp")),
        McpServerConfig::new("sse", fixture.url("/sse")).with_transport(Transport::Sse),
        McpServerConfig::new("ws", fixture.ws_url("/ws")),
        McpServerConfig::stdio("stdio", stdio_command("fields")),
    ];
    for config in configs {
        let name = config.name.clone();
        let gateway = gateway_with(config, None).await;
        let mixed = gateway.call_tool(&name, "mixed", json!({})).await.unwrap();
        let kinds: Vec<&str> = mixed
            .content()
            .iter()
            .map(|c| c["type"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, vec!["text", "image", "resource"], "{name}");
        assert_eq!(mixed.as_value()["_meta"]["fixture"], true, "{name}");
        assert_eq!(mixed.as_value()["x-extra"], 1, "{name}");

        let failed = gateway.call_tool(&name, "fail", json!({})).await.unwrap();
        assert!(failed.is_error() && failed.text() == "it failed", "{name}");

        match gateway.call_tool(&name, "rpc_error", json!({})).await {
            Err(McpError::ToolExecutionError {
                code,
                message,
                tool_name,
                ..
            }) => {
                assert_eq!(
                    (code, message.as_str(), tool_name.as_str()),
                    (Some(-32603), "internal failure", "rpc_error")
                );
            }
            other => panic!("{name}: {other:?}"),
        }
        match gateway
            .call_tool(&name, "echo", json!({"txt": "typo"}))
            .await
        {
            Err(McpError::InvalidArguments { field, .. }) => assert_eq!(field, "/text", "{name}"),
            other => panic!("{name}: {other:?}"),
        }
        assert!(matches!(
            gateway.call_tool(&name, "no_such_tool", json!({})).await,
            Err(McpError::ToolNotFound { .. })
        ));
        // Garbage on the wire: skipped on streams (the answer still arrives), a protocol
        // error where the garbage is the answer itself.
        let garbage = gateway.call_tool(&name, "garbage", json!({})).await;
        if name == "http" {
            assert!(
                matches!(garbage, Err(McpError::Protocol { .. })),
                "{garbage:?}"
            );
        } else {
            assert_eq!(garbage.unwrap().text(), "ok", "{name}");
        }
        assert_eq!(
            gateway
                .call_tool(&name, "echo", json!({"text": "after"}))
                .await
                .unwrap()
                .text(),
            "after"
        );
        gateway.shutdown(Duration::from_secs(5)).await;
    }
}

#[tokio::test]
async fn a_crash_fails_the_call_in_flight_and_the_next_call_reconnects() {
    let fixture = ServerProcess::fixture(&[]);
    let configs = [
        McpServerConfig::new("http", fixture.url("/mcp")),
        McpServerConfig::new("sse", fixture.url("/sse")).with_transport(Transport::Sse),
        McpServerConfig::new("ws", fixture.ws_url("/ws")),
        McpServerConfig::stdio("stdio", stdio_command("crash")),
    ];
    for config in configs {
        let name = config.name.clone();
        let gateway = gateway_with(config.with_timeout(10_000), Some(sessions_only())).await;
        gateway
            .call_tool(&name, "echo", json!({"text": "warm"}))
            .await
            .unwrap();
        let started = Instant::now();
        let crashed = gateway.call_tool(&name, "crash", json!({})).await;
        assert!(
            matches!(
                crashed,
                Err(McpError::Transport {
                    maybe_delivered: true,
                    ..
                })
            ),
            "{name}: {crashed:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{name}: fails at once, not at the timeout"
        );
        // Not retried: the server may have acted on it.
        let after = gateway
            .call_tool(&name, "echo", json!({"text": "back"}))
            .await;
        assert_eq!(after.unwrap().text(), "back", "{name}: reconnected");
        gateway.shutdown(Duration::from_secs(5)).await;
    }
    let stats = get_json(&fixture.url("/stats")).await;
    assert!(stats["methods"]["tools/call"].as_u64().unwrap() >= 9);
}

#[tokio::test]
async fn stdio_children_are_supervised_and_reaped() {
    let marker = "supervised-7f3a";
    let gateway = McpGateway::new();
    let config = McpServerConfig::stdio(
        "kid",
        format!("GREETING='hello world' {}", stdio_command(marker)),
    )
    .with_header("FROM_STATIC", "static-value");
    gateway.register_server(config).await.unwrap();
    // Environment: the command line's assignments and static_headers, not the gateway's.
    let env = |name: &'static str| {
        let gateway = gateway.clone();
        async move {
            gateway
                .call_tool("kid", "env", json!({"name": name}))
                .await
                .unwrap()
                .text()
        }
    };
    assert_eq!(env("GREETING").await, "hello world");
    assert_eq!(env("FROM_STATIC").await, "static-value");
    assert_eq!(
        env("CARGO_MANIFEST_DIR").await,
        "",
        "the gateway's environment is not inherited"
    );
    assert!(!env("PATH").await.is_empty());

    let needle = format!("FIXTURE_MARKER={marker}");
    let pids = processes_with_env(&needle);
    assert_eq!(pids.len(), 1, "one process however many calls: {pids:?}");
    let first = pids[0];

    // A crash: the call fails with the exit status, the process is reaped, and the
    // next call starts a new one.
    match gateway.call_tool("kid", "crash", json!({})).await {
        Err(McpError::Transport { message, .. }) => {
            assert!(message.contains("exit status: 3"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    assert!(
        eventually(Duration::from_secs(5), || process_state(first).is_none()).await,
        "reaped, no zombie"
    );
    assert_eq!(env("GREETING").await, "hello world");
    let second = processes_with_env(&needle);
    assert_eq!(second.len(), 1);
    assert_ne!(second[0], first);

    // Unregistering stops it.
    assert!(gateway.unregister_server("kid").await);
    assert!(
        eventually(Duration::from_secs(8), || process_state(second[0])
            .is_none())
        .await,
        "stopped and reaped"
    );
}

#[tokio::test]
async fn a_stdio_server_that_cannot_start_is_a_clear_error_and_retries_back_off() {
    let gateway = McpGateway::new();
    gateway
        .register_server(
            McpServerConfig::stdio("ghost", "/nonexistent/mcp-server --stdio").with_timeout(2000),
        )
        .await
        .unwrap();
    match gateway.call_tool("ghost", "x", json!({})).await {
        Err(McpError::Transport {
            message,
            maybe_delivered: false,
            ..
        }) => {
            assert!(
                message.contains("cannot start '/nonexistent/mcp-server'"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    let server = gateway.get_server("ghost").await.unwrap();
    assert!(matches!(
        server.state(),
        litellm_rs::core::mcp::ServerState::Failed { .. }
    ));
}

#[tokio::test]
async fn each_kind_of_credential_reaches_the_server() {
    let cases = [
        (
            "Authorization: Bearer t0k",
            AuthConfig::bearer("t0k"),
            AuthConfig::bearer("wrong"),
        ),
        (
            "X-API-Key: k3y",
            AuthConfig::api_key("k3y"),
            AuthConfig::api_key("nope"),
        ),
        (
            "X-Custom: k3y",
            AuthConfig::api_key_in_header("k3y", "X-Custom"),
            AuthConfig::api_key("k3y"),
        ),
        (
            "Authorization: Basic dXNlcjpwYXNz",
            AuthConfig::basic("user", "pass"),
            AuthConfig::basic("user", "no"),
        ),
    ];
    for (required, good, bad) in cases {
        let fixture = ServerProcess::fixture(&[
            "--require-header",
            required,
            "--require-header",
            "X-Team: blue",
        ]);
        for transport_url in [fixture.url("/mcp"), fixture.ws_url("/ws")] {
            let config =
                McpServerConfig::new("s", transport_url.clone()).with_header("X-Team", "blue");
            let gateway = gateway_with(config.clone().with_auth(good.clone()), None).await;
            let result = gateway.call_tool("s", "echo", json!({"text": "in"})).await;
            assert_eq!(
                result.unwrap().text(),
                "in",
                "{required} over {transport_url}"
            );
            let gateway = gateway_with(config.with_auth(bad.clone()), None).await;
            match gateway.call_tool("s", "echo", json!({"text": "in"})).await {
                Err(McpError::AuthenticationError {
                    server_name,
                    message,
                }) => {
                    assert_eq!(server_name, "s");
                    assert!(
                        !message.contains("wrong") && !message.contains("nope"),
                        "no secret in errors: {message}"
                    );
                }
                other => panic!("{required} over {transport_url}: {other:?}"),
            }
        }
    }
}

#[tokio::test]
async fn oauth_tokens_are_fetched_once_shared_and_refreshed() {
    let fixture =
        ServerProcess::fixture(&["--oauth", "--client-id", "gw", "--client-secret", "s3cret"]);
    let token_url = fixture.url("/oauth/token");
    let gateway = McpGateway::new();
    for transport_url in [fixture.url("/mcp"), fixture.ws_url("/ws")] {
        let name = if transport_url.starts_with("ws") {
            "ws"
        } else {
            "http"
        };
        gateway
            .register_server(
                McpServerConfig::new(name, transport_url).with_auth(AuthConfig::oauth2(
                    "gw",
                    "s3cret",
                    token_url.clone(),
                )),
            )
            .await
            .unwrap();
    }
    let calls = (0..20).map(|i| {
        let gateway = gateway.clone();
        async move {
            gateway
                .call_tool("http", "echo", json!({"text": format!("{i}")}))
                .await
        }
    });
    for result in futures::future::join_all(calls).await {
        result.unwrap();
    }
    let stats = get_json(&fixture.url("/stats")).await;
    assert_eq!(
        stats["tokens_issued"], 1,
        "20 concurrent callers share one token fetch"
    );
    gateway
        .call_tool("ws", "echo", json!({"text": "ws"}))
        .await
        .unwrap();
    assert_eq!(
        get_json(&fixture.url("/stats")).await["tokens_issued"],
        2,
        "one token per server"
    );

    // Wrong client credentials: an AuthenticationError that shows no secret.
    let wrong = gateway_with(
        McpServerConfig::new("w", fixture.url("/mcp")).with_auth(AuthConfig::oauth2(
            "gw",
            "not-it",
            token_url.clone(),
        )),
        None,
    )
    .await;
    match wrong.call_tool("w", "echo", json!({"text": "x"})).await {
        Err(McpError::AuthenticationError { message, .. }) => {
            assert!(message.contains("invalid_client"), "{message}");
            assert!(!message.contains("not-it"));
        }
        other => panic!("{other:?}"),
    }

    // Tokens that expire at once: each request finds its token stale, fetches a new one,
    // and a 401 is answered by one refresh.
    let expiring = ServerProcess::fixture(&["--oauth", "--token-ttl-secs", "0"]);
    let gateway = gateway_with(
        McpServerConfig::new("e", expiring.url("/mcp")).with_auth(AuthConfig::oauth2(
            "fixture-client",
            "fixture-secret",
            expiring.url("/oauth/token"),
        )),
        None,
    )
    .await;
    match gateway.call_tool("e", "echo", json!({"text": "x"})).await {
        Err(McpError::AuthenticationError { message, .. }) => {
            assert!(message.contains("401"), "{message}")
        }
        other => panic!("a token that is never valid ends in AuthenticationError: {other:?}"),
    }
    let issued = get_json(&expiring.url("/stats")).await["tokens_issued"]
        .as_u64()
        .unwrap();
    assert!(
        issued >= 2,
        "the 401 was answered by a refresh before giving up: {issued}"
    );
}

#[tokio::test]
async fn stateless_servers_announce_changes_through_subscriptions_listen() {
    let fixture = ServerProcess::fixture(&["--ttl-ms", "600000"]);
    let configs = [
        McpServerConfig::new("http", fixture.url("/mcp")),
        McpServerConfig::new("ws", fixture.ws_url("/ws")),
        McpServerConfig::stdio("stdio", stdio_command("listen")),
    ];
    for config in configs {
        let name = config.name.clone();
        let gateway = gateway_with(config, None).await;
        let server = gateway.get_server(&name).await.unwrap();
        let mut notifications = server.notifications();
        let before = server.list_tools().await.unwrap().tools().len();
        assert_eq!(server.protocol_version().as_deref(), Some("2026-07-28"));
        // Wait for the subscription to be acknowledged before changing anything.
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if notifications.recv().await.unwrap().method
                    == "notifications/subscriptions/acknowledged"
                {
                    return;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{name}: the listen subscription was not acknowledged"));
        gateway
            .call_tool(&name, "change_tools", json!({}))
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if notifications.recv().await.unwrap().method == "notifications/tools/list_changed"
                {
                    return;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{name}: no list_changed"));
        let after = server.list_tools().await.unwrap();
        assert!(
            after.tools().len() > before,
            "{name}: the cache was dropped despite a long ttlMs"
        );
        gateway.shutdown(Duration::from_secs(5)).await;
    }
}

#[tokio::test]
async fn arguments_marked_x_mcp_header_travel_as_headers() {
    let fixture = ServerProcess::fixture(&[]);
    let gateway = gateway_with(McpServerConfig::new("s", fixture.url("/mcp")), None).await;
    // Connect, and let the background subscriptions/listen start, so that the last
    // request the fixture sees is ours.
    gateway
        .call_tool("s", "echo", json!({"text": "warm"}))
        .await
        .unwrap();
    let stats_url = fixture.url("/stats");
    let mut listening = false;
    for _ in 0..250 {
        if get_json(&stats_url).await["listen_streams"].as_u64() >= Some(1) {
            listening = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(listening, "the listen stream opened");
    for region in ["eu-west-1", "zürich"] {
        let routed = gateway
            .call_tool("s", "routed", json!({"region": region}))
            .await
            .unwrap();
        assert_eq!(routed.text(), format!("region={region}"), "{routed:?}");
    }
    let headers = get_json(&fixture.url("/stats")).await["last_headers"].clone();
    assert_eq!(headers["mcp-param-region"], "=?base64?esO8cmljaA==?=");
    assert_eq!(headers["mcp-name"], "routed");
}

#[tokio::test]
async fn a_streamable_http_url_that_speaks_only_legacy_sse_falls_back() {
    let fixture = ServerProcess::fixture(&[]);
    // Configured as streamable HTTP (inferred from the URL), served as legacy SSE only.
    let gateway = gateway_with(McpServerConfig::new("old", fixture.url("/sse")), None).await;
    let echo = gateway
        .call_tool("old", "echo", json!({"text": "via sse"}))
        .await
        .unwrap();
    assert_eq!(echo.text(), "via sse");
    let stats = get_json(&fixture.url("/stats")).await;
    assert_eq!(stats["sse_connections"], 1, "{stats}");
    // Remembered: a new session goes straight to SSE, without the two refused POSTs.
    let requests_before = stats["http_requests"].as_u64().unwrap();
    post_empty(&fixture.url("/admin/forget-sessions")).await;
    gateway
        .call_tool("old", "echo", json!({"text": "again"}))
        .await
        .unwrap();
    let stats = get_json(&fixture.url("/stats")).await;
    assert_eq!(stats["sse_connections"], 2, "{stats}");
    assert_eq!(stats["methods"]["initialize"], 2, "{stats}");
    // forget-sessions (which also ends the stream, so the gateway knows the session is
    // gone), GET /sse, initialize, initialized, tools/call: no refused POST first.
    assert_eq!(
        stats["http_requests"].as_u64().unwrap() - requests_before,
        5,
        "{stats}"
    );
}
