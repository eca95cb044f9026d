//! `subscriptions/listen` on the gateway's 2026-07-28 face (`/mcp` and `/mcp/<server>`),
//! against the dual-era Rust fixture: the acknowledgement first (with the agreed subset
//! of the filter), list changes tagged with the subscription id, resource subscriptions
//! made upstream and given back when the client disconnects, and `server/discover`
//! advertising what is served.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{InProcessGateway, ServerProcess};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::sync::mpsc::UnboundedReceiver;

fn meta() -> Value {
    json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"}})
}

fn modern(base: &str, path: &str, id: u64, method: &str, params: Value) -> reqwest::RequestBuilder {
    let mut params = params;
    params["_meta"] = meta();
    let mut request = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .header("Content-Type", "application/json")
        .header("Accept", "application/json, text/event-stream")
        .header("MCP-Protocol-Version", "2026-07-28")
        .header("Mcp-Method", method);
    if let Some(name) = params.get("name").and_then(Value::as_str) {
        request = request.header("Mcp-Name", name.to_string());
    }
    request.json(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
}

/// Opens a listen stream; its messages arrive on the receiver, and dropping the task's
/// handle (abort) disconnects.
async fn listen(
    base: &str,
    path: &str,
    id: u64,
    filter: Value,
) -> (
    UnboundedReceiver<(String, String)>,
    tokio::task::JoinHandle<()>,
) {
    let response = modern(
        base,
        path,
        id,
        "subscriptions/listen",
        json!({"notifications": filter}),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    sse_events(response)
}

/// The `(event, data)` of each SSE event of `response`, until it ends or the task is
/// aborted (which disconnects).
fn sse_events(
    mut response: reqwest::Response,
) -> (
    UnboundedReceiver<(String, String)>,
    tokio::task::JoinHandle<()>,
) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let mut buffer = String::new();
        while let Ok(Some(chunk)) = response.chunk().await {
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find("\n\n") {
                let block: String = buffer.drain(..end + 2).collect();
                let field = |name: &str| {
                    block
                        .lines()
                        .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
                        .unwrap_or_default()
                };
                let _ = tx.send((field("event:"), field("data:")));
            }
        }
    });
    (rx, task)
}

/// The next JSON-RPC message on a listen stream (keep-alive comments skipped).
async fn next(rx: &mut UnboundedReceiver<(String, String)>) -> Value {
    loop {
        let (_, data) = next_event(rx).await;
        if let Ok(message) = serde_json::from_str(&data) {
            return message;
        }
    }
}

/// Polls the fixture's `/stats` until `check` holds (10 s).
async fn wait_stats(upstream: &ServerProcess, what: &str, check: impl Fn(&Value) -> bool) {
    for _ in 0..500 {
        if check(&common::get_json(&upstream.url("/stats")).await) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "{what}: {}",
        common::get_json(&upstream.url("/stats")).await
    );
}

/// The dual-era Rust fixture, and a gateway in front of it as `fx`.
async fn gateway() -> (ServerProcess, InProcessGateway) {
    let upstream = ServerProcess::fixture(&[]);
    let gw = InProcessGateway::serve(&format!(
        "listen: 127.0.0.1:0\nservers:\n  - name: fx\n    url: http://127.0.0.1:{}/mcp\n",
        upstream.port
    ))
    .await;
    (upstream, gw)
}

#[tokio::test]
async fn listen_acknowledges_tags_and_gives_back_its_subscriptions() {
    let (upstream, gw) = gateway().await;
    let base = gw.base.clone();

    // What discover advertises is what is served.
    let discovered: Value = modern(&base, "/mcp", 1, "server/discover", json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let capabilities = &discovered["result"]["capabilities"];
    assert_eq!(capabilities["tools"]["listChanged"], true, "{capabilities}");
    assert_eq!(
        capabilities["prompts"]["listChanged"], true,
        "{capabilities}"
    );
    assert_eq!(
        capabilities["resources"]["subscribe"], true,
        "{capabilities}"
    );
    assert!(capabilities.get("logging").is_none(), "{capabilities}");

    // A bad filter is -32602.
    let bad = modern(
        &base,
        "/mcp",
        2,
        "subscriptions/listen",
        json!({"notifications": []}),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    assert_eq!(bad.json::<Value>().await.unwrap()["error"]["code"], -32602);

    // /mcp/fx: tools only, one known resource and one unknown.
    let (mut one, one_task) = listen(
        &base,
        "/mcp/fx",
        7,
        json!({"toolsListChanged": true, "resourceSubscriptions": ["fixture://hello", "fixture://nothing"]}),
    )
    .await;
    let ack = next(&mut one).await;
    assert_eq!(
        ack["method"], "notifications/subscriptions/acknowledged",
        "{ack}"
    );
    assert_eq!(
        ack["params"]["notifications"],
        json!({"toolsListChanged": true, "resourceSubscriptions": ["fixture://hello"]}),
        "{ack}"
    );
    assert_eq!(
        ack["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        7
    );
    wait_stats(&upstream, "the resource subscribed upstream", |s| {
        s["methods"]["resources/subscribe"].as_u64() >= Some(1)
    })
    .await;

    // /mcp: prompts only (so a tools change is not for it), under a string id.
    let (mut all, all_task) = listen(&base, "/mcp", 8, json!({"promptsListChanged": true})).await;
    let ack = next(&mut all).await;
    assert_eq!(
        ack["params"]["notifications"],
        json!({"promptsListChanged": true})
    );

    // The gateway's own stream of upstream changes must be open before the change.
    wait_stats(
        &upstream,
        "the gateway's change stream to the upstream",
        |s| s["get_streams"].as_u64() >= Some(1) || s["listen_streams"].as_u64() >= Some(1),
    )
    .await;
    let changed: Value = modern(
        &base,
        "/mcp/fx",
        3,
        "tools/call",
        json!({"name": "change_tools", "arguments": {}}),
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(
        changed["result"]["content"][0]["text"], "changed",
        "{changed}"
    );
    let note = next(&mut one).await;
    assert_eq!(note["method"], "notifications/tools/list_changed", "{note}");
    assert_eq!(
        note["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        7
    );
    assert!(note.get("id").is_none());
    // The prompts-only stream got nothing of it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        all.try_recv().is_err(),
        "a tools change reached a prompts-only listen"
    );

    // The client goes away: its resource subscription is given back upstream.
    one_task.abort();
    drop(one);
    wait_stats(&upstream, "the resource unsubscribed upstream", |s| {
        s["methods"]["resources/unsubscribe"].as_u64() >= Some(1)
    })
    .await;
    all_task.abort();
    gw.stop().await;
}

/// A legacy HTTP+SSE client that subscribes and then drops its stream gives its
/// subscription back upstream (issue 9's left-over).
#[tokio::test]
async fn an_sse_client_that_disconnects_gives_up_its_subscriptions() {
    let (upstream, gw) = gateway().await;
    let stream = reqwest::Client::new()
        .get(gw.url("/sse"))
        .header("Accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    let (mut rx, reader) = sse_events(stream);
    let (event, endpoint) = next_event(&mut rx).await;
    assert_eq!(event, "endpoint");
    let post = |body: Value| {
        reqwest::Client::new()
            .post(gw.url(&endpoint))
            .header("Content-Type", "application/json")
            .json(&body)
            .send()
    };
    post(json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}))
    .await
    .unwrap();
    let (_, initialized) = next_event(&mut rx).await;
    assert!(initialized.contains("\"protocolVersion\""), "{initialized}");
    post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .await
        .unwrap();
    post(
        json!({"jsonrpc": "2.0", "id": 2, "method": "resources/subscribe",
        "params": {"uri": "mcpgw://fx/fixture://hello"}}),
    )
    .await
    .unwrap();
    let (_, subscribed) = next_event(&mut rx).await;
    let subscribed: Value = serde_json::from_str(&subscribed).unwrap();
    assert_eq!(subscribed["id"], 2);
    assert_eq!(subscribed["result"], json!({}), "{subscribed}");
    assert!(common::method_count(&upstream, "resources/subscribe").await >= 1);
    assert_eq!(
        common::method_count(&upstream, "resources/unsubscribe").await,
        0
    );
    reader.abort();
    wait_stats(&upstream, "the SSE client's subscription given back", |s| {
        s["methods"]["resources/unsubscribe"].as_u64() >= Some(1)
    })
    .await;
    gw.stop().await;
}

async fn next_event(rx: &mut UnboundedReceiver<(String, String)>) -> (String, String) {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("an SSE event within 10 s")
        .expect("the SSE stream is open")
}
