//! The service's MCP streamable HTTP face, spoken to raw over loopback: the protocol's
//! HTTP rules and every kind of bad input, each answered with a clear JSON-RPC error
//! while the gateway keeps serving everyone else. (Real SDK clients are in
//! `tests/service_clients.rs`.)

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{closed_port, fixture_binary, InProcessGateway, ServerProcess};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// A gateway served in-process on a free port; stops when dropped.
struct Gateway {
    base: String,
    inner: InProcessGateway,
    _upstream: ServerProcess,
}

impl Gateway {
    async fn start(extra: &str) -> Gateway {
        let upstream = ServerProcess::fixture(&[]);
        let yaml = format!(
            r#"
listen: 127.0.0.1:0
max_body_bytes: 65536
max_sessions_per_key: 3
servers:
  - name: fx
    url: http://127.0.0.1:{port}/mcp
  - name: fxl
    url: http://127.0.0.1:{port}/mcp
    protocol: sessions
  - name: kid
    command: {fixture}
    args: [--stdio]
  - name: dead
    url: http://127.0.0.1:{dead}/mcp
    timeout_ms: 1000
  - name: ev
    command: {node}
    args: [{everything}, stdio]
api_keys:
  - {{name: alice, key: sk-alice, team: admins}}
  - {{name: bob, key: sk-bob, team: admins}}
  - {{name: reader, key: sk-reader, team: readers}}
  - {{name: outsider, key: sk-outsider, team: outsiders}}
policies:
  default_level: deny
  teams:
    admins: {{default_level: execute, rules: [{{server: fx, tool: crash, level: deny}}]}}
    readers: {{default_level: read}}
    outsiders: {{default_level: deny}}
{extra}"#,
            port = upstream.port,
            fixture = fixture_binary().display(),
            dead = closed_port(),
            node = common::node().display(),
            everything = common::server_everything().display(),
        );
        Gateway::serve(&yaml, upstream).await
    }

    /// A gateway on this configuration, whose upstream is `upstream`.
    async fn serve(yaml: &str, upstream: ServerProcess) -> Gateway {
        let inner = InProcessGateway::serve(yaml).await;
        Gateway {
            base: inner.base.clone(),
            inner,
            _upstream: upstream,
        }
    }

    fn post(&self, path: &str, key: Option<&str>) -> reqwest::RequestBuilder {
        let mut request = reqwest::Client::new()
            .post(format!("{}{path}", self.base))
            .header("Content-Type", "application/json")
            .header("Accept", "application/json, text/event-stream");
        if let Some(key) = key {
            request = request.header("Authorization", format!("Bearer {key}"));
        }
        request
    }

    /// `initialize` on `path`, declaring `elicitation`; returns the session id.
    async fn session(&self, path: &str, key: &str) -> String {
        self.session_declaring(path, key, json!({"elicitation": {}}))
            .await
    }

    /// `initialize` on `path` with these client capabilities; returns the session id.
    async fn session_declaring(&self, path: &str, key: &str, capabilities: Value) -> String {
        let response = self
            .post(path, Some(key))
            .json(&json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
                "params": {"protocolVersion": "2025-11-25", "capabilities": capabilities, "clientInfo": {"name": "t", "version": "1"}}}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let id = response.headers()["mcp-session-id"]
            .to_str()
            .unwrap()
            .to_string();
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["result"]["protocolVersion"], "2025-11-25");
        id
    }

    /// A request in a session; returns the status and the JSON body, or, when the
    /// gateway answered with an SSE stream (what the upstream sent during the call came
    /// first, e.g. its log messages on a dual-era upstream's session), the response in it.
    async fn call(&self, path: &str, key: &str, session: &str, body: Value) -> (StatusCode, Value) {
        let response = self
            .post(path, Some(key))
            .header("Mcp-Session-Id", session)
            .header("MCP-Protocol-Version", "2025-11-25")
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        let reply = serde_json::from_str(&text).ok().or_else(|| {
            text.lines()
                .filter_map(|line| line.strip_prefix("data:"))
                .filter_map(|data| serde_json::from_str::<Value>(data.trim()).ok())
                .find(|message| message.get("id").is_some() && message.get("method").is_none())
        });
        (status, reply.unwrap_or(Value::Null))
    }

    async fn stop(self) {
        self.inner.stop().await;
    }
}

fn call_tool(id: u64, name: &str, arguments: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": name, "arguments": arguments}})
}

#[tokio::test]
async fn sessions_lists_and_calls_with_permissions() {
    let gw = Gateway::start("").await;
    let alice = gw.session("/mcp", "sk-alice").await;
    let (status, listed) = gw
        .call(
            "/mcp",
            "sk-alice",
            &alice,
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> = listed["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"fx__echo") && names.contains(&"kid__echo"),
        "{names:?}"
    );
    assert!(!names.contains(&"fx__crash"), "a denied tool is not listed");
    assert!(names.contains(&"kid__crash"), "the deny rule names only fx");

    let (_, echoed) = gw
        .call(
            "/mcp",
            "sk-alice",
            &alice,
            call_tool(2, "fx__echo", json!({"text": "hi"})),
        )
        .await;
    assert_eq!(echoed["result"]["content"][0]["text"], "hi");
    // The upstream speaks the stateless revision; a session-era client does not see
    // its `resultType`.
    assert!(echoed["result"].get("resultType").is_none(), "{echoed}");
    // A denied tool is answered exactly as an unknown one.
    let (_, denied) = gw
        .call(
            "/mcp",
            "sk-alice",
            &alice,
            call_tool(3, "fx__crash", json!({})),
        )
        .await;
    let (_, unknown) = gw
        .call(
            "/mcp",
            "sk-alice",
            &alice,
            call_tool(3, "fx__nope", json!({})),
        )
        .await;
    assert_eq!(denied["error"]["code"], unknown["error"]["code"]);
    assert_eq!(denied["error"]["message"], "Unknown tool: fx__crash");
    // Bad arguments come back as a tool error the model can read.
    let (_, bad) = gw
        .call(
            "/mcp",
            "sk-alice",
            &alice,
            call_tool(4, "fx__echo", json!({"text": 5})),
        )
        .await;
    assert_eq!(bad["result"]["isError"], true, "{bad}");
    assert!(bad["result"]["content"][0]["text"]
        .as_str()
        .unwrap()
        .contains("/text"));

    // A reader sees but cannot call.
    let reader = gw.session("/mcp", "sk-reader").await;
    let (_, listed) = gw
        .call(
            "/mcp",
            "sk-reader",
            &reader,
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
        )
        .await;
    assert!(!listed["result"]["tools"].as_array().unwrap().is_empty());
    let (_, refused) = gw
        .call(
            "/mcp",
            "sk-reader",
            &reader,
            call_tool(2, "fx__echo", json!({"text": "hi"})),
        )
        .await;
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Permission denied"),
        "{refused}"
    );

    // One server, its own names.
    let one = gw.session("/mcp/fx", "sk-alice").await;
    let (_, own) = gw
        .call(
            "/mcp/fx",
            "sk-alice",
            &one,
            call_tool(5, "echo", json!({"text": "own"})),
        )
        .await;
    assert_eq!(own["result"]["content"][0]["text"], "own");
    gw.stop().await;
}

#[tokio::test]
async fn sessions_are_private_to_their_key_and_capped() {
    let gw = Gateway::start("").await;
    let alice = gw.session("/mcp", "sk-alice").await;
    // Bob cannot use, or end, Alice's session: it does not exist for him.
    let (status, body) = gw
        .call(
            "/mcp",
            "sk-bob",
            &alice,
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["message"], "Session not found");
    let delete = reqwest::Client::new()
        .delete(format!("{}/mcp", gw.base))
        .header("Authorization", "Bearer sk-bob")
        .header("Mcp-Session-Id", &alice)
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status(), StatusCode::NOT_FOUND);
    // A session made on /mcp is not one of /mcp/fx.
    let (status, _) = gw
        .call(
            "/mcp/fx",
            "sk-alice",
            &alice,
            json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The cap: 3 sessions per key (alice has 1).
    gw.session("/mcp", "sk-alice").await;
    gw.session("/mcp", "sk-alice").await;
    let over = gw
        .post("/mcp", Some("sk-alice"))
        .json(&json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(over.status(), StatusCode::TOO_MANY_REQUESTS);
    // DELETE frees one, and the session is gone after it.
    let delete = reqwest::Client::new()
        .delete(format!("{}/mcp", gw.base))
        .header("Authorization", "Bearer sk-alice")
        .header("Mcp-Session-Id", &alice)
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status(), StatusCode::OK);
    let (status, _) = gw
        .call(
            "/mcp",
            "sk-alice",
            &alice,
            json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    gw.session("/mcp", "sk-alice").await;
    gw.stop().await;
}

#[tokio::test]
async fn bad_input_gets_clear_errors_and_the_gateway_keeps_serving() {
    let gw = Gateway::start("").await;
    let alice = gw.session("/mcp", "sk-alice").await;
    let raw = |body: &'static str| {
        gw.post("/mcp", Some("sk-alice"))
            .header("Mcp-Session-Id", alice.clone())
            .body(body)
    };
    let cases: Vec<(reqwest::RequestBuilder, StatusCode, i64)> = vec![
        (raw("{not json"), StatusCode::BAD_REQUEST, -32700),
        (
            raw(r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#),
            StatusCode::BAD_REQUEST,
            -32600,
        ),
        (
            raw(r#"{"jsonrpc":"2.0","id":1}"#),
            StatusCode::BAD_REQUEST,
            -32600,
        ),
        (
            raw(r#"{"jsonrpc":"2.0","id":1,"method":"no/such"}"#),
            StatusCode::OK,
            -32601,
        ),
        (
            raw(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}"#),
            StatusCode::OK,
            -32602,
        ),
    ];
    for (i, (request, status, code)) in cases.into_iter().enumerate() {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), status, "case {i}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], code, "case {i}: {body}");
    }
    // No key, a wrong key: 401 with a JSON-RPC body and a challenge.
    // RFC 6750: a presented but wrong key is an invalid token.
    for (key, challenge) in [
        (None, "Bearer"),
        (Some("sk-wrong"), "Bearer error=\"invalid_token\""),
    ] {
        let response = gw
            .post("/mcp", key)
            .body(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.headers()["www-authenticate"], challenge);
        let body: Value = response.json().await.unwrap();
        assert!(body["error"]["message"].is_string());
    }
    // An unknown session: 404. No session and not the stateless revision: 400.
    let (status, _) = gw
        .call(
            "/mcp",
            "sk-alice",
            "0123",
            json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let response = gw
        .post("/mcp", Some("sk-alice"))
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    // A bad protocol version header.
    let response = gw
        .post("/mcp", Some("sk-alice"))
        .header("Mcp-Session-Id", &alice)
        .header("MCP-Protocol-Version", "1999-01-01")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    // Wrong content type; a body over the limit.
    let response = reqwest::Client::new()
        .post(format!("{}/mcp", gw.base))
        .header("Authorization", "Bearer sk-alice")
        .header("Content-Type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let huge = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"fx__echo","arguments":{{"text":"{}"}}}}}}"#,
        "x".repeat(100_000)
    );
    let response = gw
        .post("/mcp", Some("sk-alice"))
        .header("Mcp-Session-Id", &alice)
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // DNS rebinding: a foreign Origin is refused.
    let response = gw
        .post("/mcp", Some("sk-alice"))
        .header("Origin", "http://evil.example")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    // A dead upstream: a clear error, quickly; a crashing stdio upstream: an error, then it is back.
    let (_, dead) = gw
        .call(
            "/mcp",
            "sk-alice",
            &alice,
            call_tool(9, "dead__echo", json!({"text": "x"})),
        )
        .await;
    assert!(
        dead["error"]["message"].as_str().unwrap().contains("dead"),
        "{dead}"
    );
    let (_, crashed) = gw
        .call(
            "/mcp",
            "sk-alice",
            &alice,
            call_tool(10, "kid__crash", json!({})),
        )
        .await;
    assert!(
        crashed["error"]["message"]
            .as_str()
            .unwrap()
            .contains("exit"),
        "{crashed}"
    );
    // …and everyone else is still served.
    let (_, ok) = gw
        .call(
            "/mcp",
            "sk-alice",
            &alice,
            call_tool(11, "kid__echo", json!({"text": "alive"})),
        )
        .await;
    assert_eq!(ok["result"]["content"][0]["text"], "alive");
    let (_, ok) = gw
        .call(
            "/mcp",
            "sk-alice",
            &alice,
            call_tool(12, "fx__echo", json!({"text": "alive"})),
        )
        .await;
    assert_eq!(ok["result"]["content"][0]["text"], "alive");
    gw.stop().await;
}

#[tokio::test]
async fn the_stateless_revision_on_the_same_endpoint() {
    let gw = Gateway::start("").await;
    let meta = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}});
    let modern = |method: &str, name: Option<&str>, params: Value| {
        let mut request = gw
            .post("/mcp", Some("sk-alice"))
            .header("MCP-Protocol-Version", "2026-07-28")
            .header("Mcp-Method", method);
        if let Some(name) = name {
            request = request.header("Mcp-Name", name);
        }
        request.json(&json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))
    };
    let discovered: Value = modern("server/discover", None, json!({"_meta": meta}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(discovered["result"]["supportedVersions"]
        .as_array()
        .unwrap()
        .contains(&json!("2026-07-28")));
    let response = modern(
        "tools/call",
        Some("fx__echo"),
        json!({"name": "fx__echo", "arguments": {"text": "m"}, "_meta": meta}),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["result"]["content"][0]["text"], "m");
    assert_eq!(body["result"]["resultType"], "complete");
    // Header checks.
    let mismatch = modern(
        "tools/call",
        Some("fx__other"),
        json!({"name": "fx__echo", "arguments": {"text": "m"}, "_meta": meta}),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(mismatch.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        mismatch.json::<Value>().await.unwrap()["error"]["code"],
        -32020
    );
    let old_meta = json!({"io.modelcontextprotocol/protocolVersion": "2030-01-01", "io.modelcontextprotocol/clientCapabilities": {}});
    let unsupported = gw
        .post("/mcp", Some("sk-alice"))
        .header("MCP-Protocol-Version", "2030-01-01")
        .header("Mcp-Method", "tools/list")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": old_meta}}))
        .send()
        .await
        .unwrap();
    assert_eq!(unsupported.status(), StatusCode::BAD_REQUEST);
    let body: Value = unsupported.json().await.unwrap();
    assert_eq!(body["error"]["code"], -32022);
    assert_eq!(body["error"]["data"]["supported"][0], "2026-07-28");
    let unknown = modern("no/such", None, json!({"_meta": meta}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    // A header that disagrees with `_meta` is a mismatch (-32020), checked before the
    // version itself (which would be -32022 here).
    let disagreeing = gw
        .post("/mcp", Some("sk-alice"))
        .header("MCP-Protocol-Version", "2026-07-28")
        .header("Mcp-Method", "tools/list")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": old_meta}}))
        .send()
        .await
        .unwrap();
    assert_eq!(disagreeing.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        disagreeing.json::<Value>().await.unwrap()["error"]["code"],
        -32020
    );
    // Methods the revision removed, `initialize` under its header among them: 404 -32601.
    for method in [
        "initialize",
        "ping",
        "logging/setLevel",
        "resources/subscribe",
        "resources/unsubscribe",
    ] {
        let params = json!({"uri": "x://y", "level": "info", "protocolVersion": "2025-11-25",
            "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}, "_meta": meta});
        let removed = modern(method, None, params).send().await.unwrap();
        assert_eq!(removed.status(), StatusCode::NOT_FOUND, "{method}");
        let body: Value = removed.json().await.unwrap();
        assert_eq!(body["error"]["code"], -32601, "{method}: {body}");
        assert!(body.get("result").is_none(), "{method}: {body}");
    }
    // What discover advertises is what this revision serves here: no logging;
    // list_changed and subscribe on subscriptions/listen (tests/service_listen.rs).
    let capabilities = &discovered["result"]["capabilities"];
    assert!(capabilities.get("logging").is_none(), "{capabilities}");
    assert_eq!(capabilities["tools"]["listChanged"], true, "{capabilities}");
    assert_eq!(
        capabilities["resources"]["subscribe"], true,
        "{capabilities}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn progress_streams_to_the_caller_and_cancellation_reaches_upstream() {
    let gw = Gateway::start("").await;
    let alice = gw.session("/mcp", "sk-alice").await;
    let response = gw
        .post("/mcp", Some("sk-alice"))
        .header("Mcp-Session-Id", &alice)
        .json(&json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
            "params": {"name": "fx__progress", "arguments": {"steps": 3}, "_meta": {"progressToken": "mine"}}}))
        .send()
        .await
        .unwrap();
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let text = response.text().await.unwrap();
    let messages: Vec<Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str::<Value>(d).unwrap())
        // The fixture speaks both eras; a session client goes through its session, where
        // it also logs each call (`notifications/message`), as it does directly.
        .filter(|m| m["method"] != "notifications/message")
        .collect();
    assert_eq!(messages.len(), 4, "{text}");
    for (i, note) in messages[..3].iter().enumerate() {
        assert_eq!(note["method"], "notifications/progress");
        assert_eq!(
            note["params"]["progressToken"], "mine",
            "the client's own token"
        );
        assert_eq!(note["params"]["progress"].as_f64(), Some(i as f64 + 1.0));
    }
    assert_eq!(messages[3]["id"], 7);
    assert_eq!(messages[3]["result"]["content"][0]["text"], "done");

    // Cancel a hanging call: the client's notifications/cancelled stops it here and
    // the gateway cancels it upstream.
    let client = gw
        .post("/mcp", Some("sk-alice"))
        .header("Mcp-Session-Id", &alice);
    let hanging = tokio::spawn(client.json(&call_tool(8, "kid__hang", json!({}))).send());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let cancelled = gw
        .post("/mcp", Some("sk-alice"))
        .header("Mcp-Session-Id", &alice)
        .json(&json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 8}}))
        .send()
        .await
        .unwrap();
    assert_eq!(cancelled.status(), StatusCode::ACCEPTED);
    let answer = tokio::time::timeout(Duration::from_secs(5), hanging)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["error"]["code"], -32800, "{body}");
    let (_, stats) = gw
        .call(
            "/mcp",
            "sk-alice",
            &alice,
            call_tool(9, "kid__stats", json!({})),
        )
        .await;
    let stats: Value =
        serde_json::from_str(stats["result"]["content"][0]["text"].as_str().unwrap()).unwrap();
    assert!(
        !stats["cancelled"].as_array().unwrap().is_empty(),
        "upstream heard the cancellation: {stats}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn an_upstreams_elicitation_reaches_the_calling_client_and_its_answer_goes_back() {
    let gw = Gateway::start("").await;
    let alice = gw.session("/mcp", "sk-alice").await;
    // The reference server asks for input while it runs this tool.
    let mut response = gw
        .post("/mcp", Some("sk-alice"))
        .header("Mcp-Session-Id", &alice)
        .json(&call_tool(1, "ev__trigger-elicitation-request", json!({})))
        .send()
        .await
        .unwrap();
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let mut seen = String::new();
    let request = loop {
        let chunk = tokio::time::timeout(Duration::from_secs(10), response.chunk())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
        if let Some(data) = seen.lines().find_map(|l| l.strip_prefix("data: ")) {
            break serde_json::from_str::<Value>(data).unwrap();
        }
    };
    assert_eq!(request["method"], "elicitation/create", "{request}");
    assert!(request["params"]["requestedSchema"]["properties"]["name"].is_object());
    // Another key cannot answer it.
    let bob = gw.session("/mcp", "sk-bob").await;
    let answer = json!({"jsonrpc": "2.0", "id": request["id"], "result": {"action": "accept", "content": {"name": "Mallory"}}});
    let (status, _) = gw.call("/mcp", "sk-bob", &bob, answer).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The caller answers; the tool finishes with what it was told.
    let answer = json!({"jsonrpc": "2.0", "id": request["id"], "result": {"action": "accept", "content": {"name": "Ada", "check": true}}});
    let (status, _) = gw.call("/mcp", "sk-alice", &alice, answer).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let rest = tokio::time::timeout(Duration::from_secs(10), response.text())
        .await
        .unwrap()
        .unwrap();
    let result: Value = rest
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str::<Value>(d).unwrap())
        .find(|m| m["id"] == 1)
        .expect("the call's response");
    let text = result["result"]["content"].to_string();
    assert!(text.contains("Name: Ada"), "{result}");
    // A client that declared no elicitation never sees the request: the gateway refuses
    // it upstream (-32601), and the call ends with what the upstream makes of that.
    let carol = gw.session_declaring("/mcp", "sk-alice", json!({})).await;
    let response = gw
        .post("/mcp", Some("sk-alice"))
        .header("Mcp-Session-Id", &carol)
        .json(&call_tool(2, "ev__trigger-elicitation-request", json!({})))
        .send()
        .await
        .unwrap();
    let text = tokio::time::timeout(Duration::from_secs(10), response.text())
        .await
        .unwrap()
        .unwrap();
    let messages: Vec<Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .chain(serde_json::from_str::<Value>(&text).ok())
        .collect();
    assert!(
        messages.iter().all(|m| m["method"] != "elicitation/create"),
        "{text}"
    );
    let reply = messages
        .iter()
        .find(|m| m["id"] == 2)
        .expect("the call's response");
    assert!(
        reply.to_string().contains("elicitation"),
        "the upstream heard why: {reply}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn resources_prompts_and_completions_cross_with_namespaced_names() {
    let gw = Gateway::start("").await;
    let alice = gw.session("/mcp", "sk-alice").await;
    let rpc = |id: u64, method: &str, params: Value| json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
    let (_, listed) = gw
        .call(
            "/mcp",
            "sk-alice",
            &alice,
            rpc(1, "resources/list", json!({})),
        )
        .await;
    let uris: Vec<String> = listed["result"]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["uri"].as_str().unwrap().to_string())
        .collect();
    let ours = uris
        .iter()
        .find(|u| u.starts_with("mcpgw://fx/"))
        .expect("the fixture's resource");
    let theirs = uris
        .iter()
        .find(|u| u.starts_with("mcpgw://ev/demo://"))
        .expect("a server-everything resource");
    for uri in [ours, theirs] {
        let (_, read) = gw
            .call(
                "/mcp",
                "sk-alice",
                &alice,
                rpc(2, "resources/read", json!({"uri": uri})),
            )
            .await;
        let contents = &read["result"]["contents"][0];
        assert_eq!(
            contents["uri"],
            uri.as_str(),
            "the read goes to the right server and comes back namespaced: {read}"
        );
    }
    let (_, missing) = gw
        .call(
            "/mcp",
            "sk-alice",
            &alice,
            rpc(3, "resources/read", json!({"uri": "mcpgw://nope/x"})),
        )
        .await;
    // The spec's resource-not-found for session-era clients (-32602 in 2026-07-28).
    assert_eq!(missing["error"]["code"], -32002, "{missing}");
    assert_eq!(missing["error"]["data"]["uri"], "mcpgw://nope/x");

    let (_, prompts) = gw
        .call(
            "/mcp",
            "sk-alice",
            &alice,
            rpc(4, "prompts/list", json!({})),
        )
        .await;
    let names: Vec<&str> = prompts["result"]["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"fx__greeting") && names.contains(&"ev__simple-prompt"),
        "{names:?}"
    );
    let (_, got) = gw
        .call(
            "/mcp",
            "sk-alice",
            &alice,
            rpc(
                5,
                "prompts/get",
                json!({"name": "fx__greeting", "arguments": {"name": "Ada"}}),
            ),
        )
        .await;
    assert!(
        got["result"]["messages"].to_string().contains("Ada"),
        "{got}"
    );

    let (_, completed) = gw
        .call(
            "/mcp",
            "sk-alice",
            &alice,
            rpc(6, "completion/complete", json!({"ref": {"type": "ref/prompt", "name": "ev__completable-prompt"}, "argument": {"name": "department", "value": "Eng"}})),
        )
        .await;
    assert_eq!(
        completed["result"]["completion"]["values"],
        json!(["Engineering"]),
        "{completed}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let gw = Gateway::start("").await;
    let response = gw
        .post("/mcp", Some("sk-alice"))
        .body("{}")
        .send()
        .await
        .unwrap();
    let generated = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(generated.len(), 16);
    let response = gw
        .post("/mcp", Some("sk-alice"))
        .header("x-request-id", "trace-me-42")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["x-request-id"],
        "trace-me-42",
        "the client's id is kept"
    );
    let health = reqwest::get(format!("{}/health", gw.base)).await.unwrap();
    assert!(health.headers().contains_key("x-request-id"));
    gw.stop().await;
}

#[tokio::test]
async fn a_stateless_client_answers_an_upstreams_question_through_input_required() {
    let gw = Gateway::start("").await;
    let meta = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {"elicitation": {}}});
    let call = |key: &'static str, params: Value| {
        gw.post("/mcp", Some(key))
            .header("MCP-Protocol-Version", "2026-07-28")
            .header("Mcp-Method", "tools/call")
            .header("Mcp-Name", "ev__trigger-elicitation-request")
            .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params}))
            .send()
    };
    let first: Value = call(
        "sk-alice",
        json!({"name": "ev__trigger-elicitation-request", "arguments": {}, "_meta": meta}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let result = &first["result"];
    assert_eq!(result["resultType"], "input_required", "{first}");
    let (key, question) = result["inputRequests"]
        .as_object()
        .unwrap()
        .iter()
        .next()
        .unwrap();
    assert_eq!(question["method"], "elicitation/create");
    let state = result["requestState"].as_str().unwrap();
    let retry = json!({"name": "ev__trigger-elicitation-request", "arguments": {}, "_meta": meta,
        "requestState": state, "inputResponses": {key.as_str(): {"action": "accept", "content": {"name": "Ada"}}}});
    // Another key cannot resume it.
    let foreign: Value = call("sk-bob", retry.clone())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(foreign["error"]["code"], -32602, "{foreign}");
    let done: Value = call("sk-alice", retry).await.unwrap().json().await.unwrap();
    assert_eq!(done["result"]["resultType"], "complete", "{done}");
    assert!(
        done["result"]["content"].to_string().contains("Name: Ada"),
        "{done}"
    );
    gw.stop().await;
}

/// Opens the GET stream of a session; returns a receiver of the messages it carries.
async fn listen(
    gw: &Gateway,
    key: &str,
    session: &str,
) -> tokio::sync::mpsc::UnboundedReceiver<Value> {
    let mut response = reqwest::Client::new()
        .get(format!("{}/mcp", gw.base))
        .header("Authorization", format!("Bearer {key}"))
        .header("Mcp-Session-Id", session)
        .header("Accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut buffer = String::new();
        while let Ok(Some(chunk)) = response.chunk().await {
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find("\n\n") {
                let event: String = buffer.drain(..end + 2).collect();
                for data in event.lines().filter_map(|l| l.strip_prefix("data: ")) {
                    if let Ok(message) = serde_json::from_str(data) {
                        let _ = tx.send(message);
                    }
                }
            }
        }
    });
    rx
}

#[tokio::test]
async fn list_changes_reach_the_clients_that_can_see_the_server() {
    let gw = Gateway::start("").await;
    let alice = gw.session("/mcp", "sk-alice").await;
    let outsider = gw.session("/mcp", "sk-outsider").await;
    let (_, listed) = gw
        .call(
            "/mcp",
            "sk-outsider",
            &outsider,
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
        )
        .await;
    assert_eq!(
        listed["result"]["tools"],
        json!([]),
        "the outsider sees nothing"
    );
    gw.call(
        "/mcp",
        "sk-alice",
        &alice,
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
    )
    .await;
    let mut alice_stream = listen(&gw, "sk-alice", &alice).await;
    let mut outsider_stream = listen(&gw, "sk-outsider", &outsider).await;
    // The gateway's stream of upstream changes must be open first (the fixture counts it).
    gw.call(
        "/mcp",
        "sk-alice",
        &alice,
        call_tool(2, "fx__echo", json!({"text": "warm"})),
    )
    .await;
    let stats = gw._upstream.url("/stats");
    let mut open = false;
    for _ in 0..250 {
        let counts = common::get_json(&stats).await;
        // A GET stream (session era) or a subscriptions/listen stream (stateless).
        if counts["get_streams"].as_u64() >= Some(1) || counts["listen_streams"].as_u64() >= Some(1)
        {
            open = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(open, "the gateway's change stream to the upstream opened");
    let (_, changed) = gw
        .call(
            "/mcp",
            "sk-alice",
            &alice,
            call_tool(3, "fx__change_tools", json!({})),
        )
        .await;
    assert_eq!(changed["result"]["content"][0]["text"], "changed");
    let note = tokio::time::timeout(Duration::from_secs(10), alice_stream.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(note["method"], "notifications/tools/list_changed");
    // The outsider's stream carries nothing (it gets the notification only if it could see).
    assert!(
        tokio::time::timeout(Duration::from_millis(500), outsider_stream.recv())
            .await
            .is_err()
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_deleted_session_gives_up_its_subscriptions() {
    let gw = Gateway::start("").await;
    let alice = gw.session("/mcp", "sk-alice").await;
    let bob = gw.session("/mcp", "sk-bob").await;
    let subscribe = json!({"jsonrpc": "2.0", "id": 1, "method": "resources/subscribe", "params": {"uri": "mcpgw://fxl/fixture://hello"}});
    let (_, a) = gw.call("/mcp", "sk-alice", &alice, subscribe.clone()).await;
    let (_, b) = gw.call("/mcp", "sk-bob", &bob, subscribe).await;
    assert_eq!(
        (&a["result"], &b["result"]),
        (&json!({}), &json!({})),
        "{a} {b}"
    );
    let unsubscribes =
        || async { common::method_count(&gw._upstream, "resources/unsubscribe").await };
    let delete = |key: &'static str, session: String| {
        reqwest::Client::new()
            .delete(format!("{}/mcp", gw.base))
            .header("Authorization", format!("Bearer {key}"))
            .header("Mcp-Session-Id", session)
            .send()
    };
    assert_eq!(
        delete("sk-alice", alice).await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(unsubscribes().await, 0, "bob still holds the subscription");
    assert_eq!(
        delete("sk-bob", bob).await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(
        unsubscribes().await,
        1,
        "the last holder's end unsubscribes upstream"
    );
    gw.stop().await;
}

/// The gateway's own pagination of an aggregated, permission-filtered list: walking the
/// cursors gives every tool the caller may see exactly once, in server order, and
/// nothing it may not see.
#[tokio::test]
async fn tools_list_pages_cover_exactly_the_visible_tools() {
    let upstream = ServerProcess::fixture(&["--tools", "150", "--page-size", "40"]);
    let yaml = format!(
        r#"
listen: 127.0.0.1:0
servers:
  - {{name: a, url: "http://127.0.0.1:{port}/mcp"}}
  - {{name: b, url: "http://127.0.0.1:{port}/mcp"}}
  - {{name: c, url: "http://127.0.0.1:{port}/mcp"}}
api_keys:
  - {{name: all, key: sk-all}}
  - {{name: some, key: sk-some}}
policies:
  default_level: execute
  keys:
    some:
      default_level: read
      rules:
        - {{server: b, tool: "tool_1*", level: deny}}
        - {{server: c, tool: "tool_*", level: deny}}
        - {{server: c, tool: echo, level: execute}}
"#,
        port = upstream.port
    );
    let gw = Gateway::serve(&yaml, upstream).await;
    let walk = |key: &'static str| {
        let gw = &gw;
        async move {
            let session = gw.session("/mcp", key).await;
            let (mut names, mut cursor, mut pages) = (Vec::new(), Value::Null, 0);
            loop {
                let params = match &cursor {
                    Value::Null => json!({}),
                    cursor => json!({"cursor": cursor}),
                };
                let (status, body) = gw
                    .call("/mcp", key, &session, json!({"jsonrpc": "2.0", "id": pages + 1, "method": "tools/list", "params": params}))
                    .await;
                assert_eq!(status, StatusCode::OK, "{body}");
                for tool in body["result"]["tools"].as_array().unwrap() {
                    assert!(tool["inputSchema"].is_object(), "{tool}");
                    names.push(tool["name"].as_str().unwrap().to_string());
                }
                pages += 1;
                cursor = body["result"]["nextCursor"].clone();
                if cursor.is_null() {
                    break;
                }
            }
            (names, pages)
        }
    };
    let (all, pages) = walk("sk-all").await;
    // The fixture's own tools plus tool_0..tool_149, on each of three servers.
    let per_server = all.iter().filter(|n| n.starts_with("a__")).count();
    assert!(per_server > 150, "{per_server}");
    assert_eq!(all.len(), 3 * per_server);
    assert_eq!(pages, all.len().div_ceil(200));
    let unique: std::collections::HashSet<_> = all.iter().collect();
    assert_eq!(unique.len(), all.len(), "a tool was listed twice");
    assert!(all[..per_server].iter().all(|n| n.starts_with("a__")));

    let (some, _) = walk("sk-some").await;
    let expected: Vec<String> = all
        .iter()
        .filter(|n| match n.split_once("__").unwrap() {
            ("b", tool) => !tool.starts_with("tool_1"),
            ("c", tool) => !tool.starts_with("tool_"),
            _ => true,
        })
        .cloned()
        .collect();
    assert!(expected.len() < all.len() - per_server);
    assert_eq!(some, expected);

    // A cursor that is not the gateway's is refused.
    let session = gw.session("/mcp", "sk-all").await;
    let (_, body) = gw
        .call("/mcp", "sk-all", &session, json!({"jsonrpc": "2.0", "id": 9, "method": "tools/list", "params": {"cursor": "garbage"}}))
        .await;
    assert_eq!(body["error"]["code"], -32602);
    gw.stop().await;
}

/// JSON-RPC batches are served only in a session that negotiated 2025-03-26.
#[tokio::test]
async fn batches_only_for_2025_03_26_sessions() {
    let gw = Gateway::start("").await;
    let response = gw
        .post("/mcp/fx", Some("sk-alice"))
        .json(&json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {"protocolVersion": "2025-03-26", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}))
        .send()
        .await
        .unwrap();
    let old = response.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_string();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["result"]["protocolVersion"], "2025-03-26");
    let batch = json!([
        {"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": "b", "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "in a batch"}}}
    ]);
    let send = |session: String, version: &'static str| {
        gw.post("/mcp/fx", Some("sk-alice"))
            .header("Mcp-Session-Id", session)
            .header("MCP-Protocol-Version", version)
            .json(&batch)
            .send()
    };
    let answered = send(old, "2025-03-26").await.unwrap();
    assert_eq!(answered.status(), StatusCode::OK);
    let answers: Value = answered.json().await.unwrap();
    let answers = answers.as_array().expect("an array of answers");
    assert_eq!(answers.len(), 2, "{answers:?}");
    assert_eq!(answers[0]["id"], 1);
    assert!(answers[0]["result"]["tools"].is_array(), "{answers:?}");
    assert_eq!(answers[1]["id"], "b");
    assert_eq!(answers[1]["result"]["content"][0]["text"], "in a batch");
    // A 2025-11-25 session: refused as before.
    let new = gw.session("/mcp/fx", "sk-alice").await;
    let refused = send(new, "2025-11-25").await.unwrap();
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        refused.json::<Value>().await.unwrap()["error"]["code"],
        -32600
    );
    gw.stop().await;
}
