//! A fleet on PostgreSQL (issue 13, phase 2): three replicas of the gateway (the binary)
//! on one PostgreSQL server of the test's own. A change made through one replica is in
//! force on the others within a second (LISTEN/NOTIFY, then a reload); a revoked key is
//! refused everywhere; a tool-list change one replica hears makes the others drop their
//! cached list; with the store down, `/ready` fails, admin writes are refused clearly and
//! calls keep working on the configuration in force; `/health`, `/ready` and `/metrics`
//! say which replica answered and how its store is.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod fleet;

use std::time::Duration;

use common::ServerProcess;
use fleet::{fresh_dir, within, Postgres, Replica};
use litellm_rs::store::config::{Database, StoreSettings};
use litellm_rs::store::notify::Notice;
use litellm_rs::store::seal::SealKey;
use litellm_rs::store::Store;
use reqwest::StatusCode;
use serde_json::{json, Value};

fn settings(fixture: &ServerProcess) -> String {
    format!(
        "servers:\n\
         - {{name: fx, url: '{}'}}\n\
         api_keys:\n\
         - {{name: root, key: sk-root}}\n\
         - {{name: user, key: sk-user, team: users}}\n\
         policies:\n\
         \x20 default_level: execute\n\
         \x20 keys: {{root: {{default_level: admin}}}}\n",
        fixture.url("/mcp")
    )
}

async fn tools(
    client: &reqwest::Client,
    replica: &Replica,
    key: &str,
) -> (StatusCode, Vec<String>) {
    let response = client
        .get(replica.url("/v1/mcp/tools"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    let names = body["tools"]
        .as_array()
        .map(|t| {
            t.iter()
                .filter_map(|t| t["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    (status, names)
}

async fn admin(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = client.request(method, url).bearer_auth("sk-root");
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// `PUT /v1/admin/servers/{name}` through `replica`: `fixture` under another name.
async fn put_server(
    client: &reqwest::Client,
    replica: &Replica,
    name: &str,
    fixture: &ServerProcess,
) -> (StatusCode, Value) {
    admin(
        client,
        reqwest::Method::PUT,
        replica.url(&format!("/v1/admin/servers/{name}")),
        Some(json!({"url": fixture.url("/mcp")})),
    )
    .await
}

const SECOND: Duration = Duration::from_secs(1);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_through_one_replica_are_in_force_on_the_others_within_a_second() {
    let pg = Postgres::start("changes");
    let fixture = ServerProcess::fixture(&[]);
    let dir = fresh_dir("replicas-changes");
    let text = settings(&fixture);
    let a = Replica::start(&dir, "a", &pg.url(), &text);
    let b = Replica::start(&dir, "b", &pg.url(), &text);
    let c = Replica::start(&dir, "c", &pg.url(), &text);
    let client = reqwest::Client::new();

    // Which replica answered, and its store.
    for replica in [&a, &b, &c] {
        let response = client.get(replica.url("/health")).send().await.unwrap();
        assert_eq!(
            response.headers()["x-litellm-replica"],
            replica.name.as_str()
        );
        let health: Value = response.json().await.unwrap();
        assert_eq!(health["replica"], replica.name.as_str(), "{health}");
        assert_eq!(health["store"]["backend"], "postgres", "{health}");
        let ready: Value = client
            .get(replica.url("/ready"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(ready["ready"], true, "{ready}");
        assert_eq!(ready["store"]["up"], true, "{ready}");
        let metrics = client
            .get(replica.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            metrics.contains(&format!(
                "litellm_mcp_replica_info{{replica=\"{}\"}} 1",
                replica.name
            )),
            "{metrics}"
        );
        assert!(metrics.contains("litellm_mcp_store_up 1"), "{metrics}");
    }

    // A new server through A: on C within a second.
    let (status, body) = put_server(&client, &a, "fy", &fixture).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let took = within(SECOND, || async {
        tools(&client, &c, "sk-user")
            .await
            .1
            .contains(&"fy__echo".to_string())
    })
    .await;
    assert!(
        took.is_some(),
        "the new server was not on C within a second"
    );
    eprintln!("new server on C after {took:?}");

    // A key made through B, revoked through A: refused everywhere within a second.
    let (status, created) = admin(
        &client,
        reqwest::Method::POST,
        b.url("/v1/admin/keys"),
        Some(json!({"name": "temp"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let secret = created["key"].as_str().unwrap().to_string();
    let took = within(SECOND, || async {
        tools(&client, &c, &secret).await.0 == StatusCode::OK
    })
    .await;
    assert!(
        took.is_some(),
        "the new key did not work on C within a second"
    );
    let (status, body) = admin(
        &client,
        reqwest::Method::DELETE,
        a.url("/v1/admin/keys/temp"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for replica in [&a, &b, &c] {
        let took = within(SECOND, || async {
            tools(&client, replica, &secret).await.0 == StatusCode::UNAUTHORIZED
        })
        .await;
        assert!(
            took.is_some(),
            "the revoked key still worked on {} after a second",
            replica.name
        );
        eprintln!("revoked key refused on {} after {took:?}", replica.name);
    }

    // A tightened policy through C: in force on A within a second.
    let (status, body) = admin(
        &client,
        reqwest::Method::PUT,
        c.url("/v1/admin/teams/users"),
        Some(json!({"default_level": "execute", "rules": [{"server": "fy", "level": "deny"}]})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let took = within(SECOND, || async {
        let names = tools(&client, &a, "sk-user").await.1;
        !names.is_empty() && !names.iter().any(|n| n.starts_with("fy__"))
    })
    .await;
    assert!(
        took.is_some(),
        "the tightened policy was not in force on A within a second"
    );

    // Every replica is at the same version.
    let mut versions = Vec::new();
    for replica in [&a, &b, &c] {
        let (_, status) = admin(
            &client,
            reqwest::Method::GET,
            replica.url("/v1/admin/status"),
            None,
        )
        .await;
        versions.push(status["version"].clone());
    }
    assert!(versions.windows(2).all(|w| w[0] == w[1]), "{versions:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_list_change_heard_by_one_replica_invalidates_the_others_caches() {
    let pg = Postgres::start("tools");
    // Lists are cached for ten minutes (the modern era's `ttlMs`).
    let fixture = ServerProcess::fixture(&["--ttl-ms", "600000"]);
    let dir = fresh_dir("replicas-tools");
    let text = settings(&fixture);
    let b = Replica::start(&dir, "b", &pg.url(), &text);
    let c = Replica::start(&dir, "c", &pg.url(), &text);
    let client = reqwest::Client::new();

    // C's list is cached: a second listing does not ask the upstream.
    assert_eq!(tools(&client, &c, "sk-user").await.0, StatusCode::OK);
    let asked = common::method_count(&fixture, "tools/list").await;
    tools(&client, &c, "sk-user").await;
    assert_eq!(
        common::method_count(&fixture, "tools/list").await,
        asked,
        "cached"
    );

    // Another replica (here the test, on the same store) heard `list_changed` from fx:
    // C drops its cached list and asks the upstream again on its next listing.
    let store = Store::open(&StoreSettings {
        database: Database::Postgres {
            url: pg.url().as_str().into(),
        },
        seal_keys: vec![SealKey::from_base64(&fleet::seal_key()).unwrap()],
        replica: Some("x".into()),
        audit_retention: Duration::from_secs(86_400),
    })
    .await
    .unwrap();
    store
        .announce(Notice::ToolsChanged {
            server: "fx".into(),
        })
        .await
        .unwrap();
    let took = within(SECOND, || async {
        tools(&client, &c, "sk-user").await;
        common::method_count(&fixture, "tools/list").await > asked
    })
    .await;
    assert!(
        took.is_some(),
        "C did not drop its cached list within a second"
    );

    // End to end: a tool added at the upstream through B is listed by C within a second.
    let (status, _) = {
        let response = client
            .post(b.url("/v1/mcp/tools/call"))
            .bearer_auth("sk-user")
            .json(&json!({"server": "fx", "tool": "change_tools", "arguments": {}}))
            .send()
            .await
            .unwrap();
        (response.status(), ())
    };
    assert_eq!(status, StatusCode::OK);
    let took = within(SECOND, || async {
        tools(&client, &c, "sk-user")
            .await
            .1
            .iter()
            .any(|n| n.starts_with("fx__extra_"))
    })
    .await;
    assert!(
        took.is_some(),
        "C did not list the new tool within a second"
    );
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_store_down_calls_keep_working_ready_fails_and_writes_refuse() {
    let pg = Postgres::start("down");
    let fixture = ServerProcess::fixture(&[]);
    let dir = fresh_dir("replicas-down");
    let a = Replica::start(&dir, "a", &pg.url(), &settings(&fixture));
    let client = reqwest::Client::new();
    assert_eq!(tools(&client, &a, "sk-user").await.0, StatusCode::OK);

    pg.halt();
    let took = within(Duration::from_secs(5), || async {
        client.get(a.url("/ready")).send().await.unwrap().status()
            == StatusCode::SERVICE_UNAVAILABLE
    })
    .await;
    assert!(took.is_some(), "/ready did not fail with the store down");
    let ready: Value = client
        .get(a.url("/ready"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["store"]["up"], false, "{ready}");
    let metrics = client
        .get(a.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("litellm_mcp_store_up 0"), "{metrics}");

    let (status, body) = put_server(&client, &a, "fy", &fixture).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["type"], "store_unavailable", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nothing was changed"),
        "{body}"
    );

    let response = client
        .post(a.url("/v1/mcp/tools/call"))
        .bearer_auth("sk-user")
        .json(&json!({"server": "fx", "tool": "echo", "arguments": {"text": "still here"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "calls work on the configuration in force"
    );

    pg.resume();
    let took = within(Duration::from_secs(10), || async {
        client.get(a.url("/ready")).send().await.unwrap().status() == StatusCode::OK
    })
    .await;
    assert!(took.is_some(), "/ready did not recover with the store back");
    let (status, body) = put_server(&client, &a, "fy", &fixture).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

/// A JSON-RPC POST to `/mcp` of `replica` in session `session` (when given).
async fn rpc(
    client: &reqwest::Client,
    replica: &Replica,
    session: Option<&str>,
    body: Value,
) -> reqwest::Response {
    let mut request = client
        .post(replica.url("/mcp"))
        .bearer_auth("sk-user")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-06-18")
        .json(&body);
    if let Some(session) = session {
        request = request.header("mcp-session-id", session);
    }
    request.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_made_on_one_replica_is_continued_on_another_and_ended_everywhere() {
    let pg = Postgres::start("ended");
    let fixture = ServerProcess::fixture(&[]);
    let dir = fresh_dir("replicas-ended");
    let text = settings(&fixture);
    let a = Replica::start(&dir, "a", &pg.url(), &text);
    let b = Replica::start(&dir, "b", &pg.url(), &text);
    let c = Replica::start(&dir, "c", &pg.url(), &text);
    let client = reqwest::Client::new();

    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let response = rpc(&client, &a, None, init).await;
    assert_eq!(response.status(), StatusCode::OK);
    let session = response.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(session.starts_with("s1."), "{session}");
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    let response = rpc(&client, &c, Some(&session), list.clone()).await;
    assert_eq!(response.status(), StatusCode::OK, "C continues A's session");
    assert!(response.text().await.unwrap().contains("fx__echo"));

    // Another key cannot use it; an altered id is unknown.
    let response = client
        .post(c.url("/mcp"))
        .bearer_auth("sk-root")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", &session)
        .json(&list)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::NOT_FOUND,
        "another owner's id"
    );
    let altered = format!("{}x", session);
    let response = rpc(&client, &c, Some(&altered), list.clone()).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND, "an altered id");

    // Ended through B (which never saw it): refused on C within a second, and on A.
    let response = client
        .delete(b.url("/mcp"))
        .bearer_auth("sk-user")
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    for replica in [&c, &a] {
        let took = within(SECOND, || async {
            rpc(&client, replica, Some(&session), list.clone())
                .await
                .status()
                == StatusCode::NOT_FOUND
        })
        .await;
        assert!(
            took.is_some(),
            "the ended session still worked on {}",
            replica.name
        );
    }
}
