//! The store and the admin API in one process (issue 13, phase 1), over a SQLite file:
//! changes through `/v1/admin` take effect without a restart; invalid changes are refused
//! with the settings file's place-by-place problems and change nothing; a new key's
//! secret is shown once and a revoked key is refused; the audit trail records who did
//! what; per-user tokens are stored sealed; and a restart (in process, then of the real
//! binary) keeps what the admin API created.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod fleet;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::ServerProcess;
use fleet::fresh_dir;
use litellm_rs::admin::Fleet;
use litellm_rs::proxy::{app, AppState};
use litellm_rs::settings::Settings;
use litellm_rs::store::Store;
use serde_json::{json, Value};
use tower::ServiceExt;

/// `root` administers; `reader` (team readers) may only read; everyone else executes.
fn settings_text(fixture: &ServerProcess) -> String {
    format!(
        "listen: 127.0.0.1:0\n\
         store: {{sqlite_file: state.db}}\n\
         servers:\n\
         - {{name: fx, url: '{}'}}\n\
         api_keys:\n\
         - {{name: root, key: sk-root}}\n\
         - {{name: reader, key: sk-reader, team: readers}}\n\
         policies:\n\
         \x20 default_level: execute\n\
         \x20 keys: {{root: {{default_level: admin}}}}\n\
         \x20 teams: {{readers: {{default_level: read}}}}\n",
        fixture.url("/mcp")
    )
}

/// The service as `serve` builds it: the file seeds the store, the store rules.
async fn open(dir: &Path, text: &str) -> AppState {
    let path = dir.join("gateway.yaml");
    std::fs::write(&path, text).unwrap();
    let file = Settings::load(&path).unwrap();
    let store = Store::open(file.store.as_ref().unwrap()).await.unwrap();
    let (fleet, settings) = Fleet::open(store, text, &file).await.unwrap();
    let gateway = settings.build_gateway().await.unwrap();
    let state = AppState::new(gateway, &settings);
    state.attach_fleet(fleet);
    state
}

async fn send(
    state: &AppState,
    method: &str,
    path: &str,
    key: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(path);
    if !key.is_empty() {
        request = request.header("authorization", format!("Bearer {key}"));
    }
    let request = match body {
        Some(body) => request
            .header("content-type", "application/json")
            .body(Body::from(body.to_string())),
        None => request.body(Body::empty()),
    }
    .unwrap();
    let response = app(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn tool_names(listing: &Value) -> Vec<String> {
    listing["tools"]
        .as_array()
        .map(|tools| {
            tools
                .iter()
                .map(|t| t["name"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn fleet_of(state: &AppState) -> Arc<Fleet> {
    state.fleet().unwrap().clone()
}

#[tokio::test]
async fn the_admin_api_needs_the_admin_level() {
    let fixture = ServerProcess::fixture(&[]);
    let dir = fresh_dir("levels");
    let state = open(&dir, &settings_text(&fixture)).await;
    let (status, body) = send(&state, "GET", "/v1/admin/servers", "", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, body) = send(&state, "GET", "/v1/admin/servers", "sk-reader", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = send(&state, "GET", "/v1/admin/servers", "sk-root", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["servers"][0]["name"], "fx",
        "seeded from the file: {body}"
    );
    state.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn servers_aliases_keys_and_policies_change_without_a_restart() {
    let fixture = ServerProcess::fixture(&[]);
    let dir = fresh_dir("changes");
    let state = open(&dir, &settings_text(&fixture)).await;

    // A server added at run time, with a credential that must not be stored in clear.
    let spec = json!({"url": fixture.url("/mcp"), "headers": {"X-Secret": "hunter2-header"}});
    let (status, body) = send(&state, "PUT", "/v1/admin/servers/fy", "sk-root", Some(spec)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(state.gateway().server_names().contains(&"fy".to_string()));
    let (_, listing) = send(&state, "GET", "/v1/mcp/tools", "sk-reader", None).await;
    assert!(
        tool_names(&listing).contains(&"fy__echo".to_string()),
        "{listing}"
    );
    let (_, shown) = send(&state, "GET", "/v1/admin/servers/fy", "sk-root", None).await;
    assert_eq!(shown["spec"]["headers"]["X-Secret"], "***", "{shown}");
    let raw = std::fs::read(dir.join("state.db")).unwrap();
    assert!(
        !String::from_utf8_lossy(&raw).contains("hunter2-header"),
        "a server's spec is sealed in the database"
    );

    // An alias, used by a call.
    let (status, body) = send(
        &state,
        "PUT",
        "/v1/admin/aliases/files",
        "sk-root",
        Some(json!({"server": "fy"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = send(
        &state,
        "POST",
        "/v1/mcp/tools/call",
        "sk-root",
        Some(json!({"server": "files", "tool": "echo", "arguments": {"text": "hi"}})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // A new key: its secret once, then it works; its listing never shows it.
    let (status, created) = send(
        &state,
        "POST",
        "/v1/admin/keys",
        "sk-root",
        Some(json!({"name": "ci", "team": "readers"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let secret = created["key"].as_str().unwrap().to_string();
    let (status, _) = send(&state, "GET", "/v1/mcp/tools", &secret, None).await;
    assert_eq!(status, StatusCode::OK);
    let (_, keys) = send(&state, "GET", "/v1/admin/keys", "sk-root", None).await;
    assert!(!keys.to_string().contains(&secret), "{keys}");
    assert!(keys.to_string().contains("\"ci\""), "{keys}");

    // A tightened policy: the team may no longer see fy's tools.
    let policy = json!({"default_level": "read", "rules": [{"server": "fy", "level": "deny"}]});
    let (status, body) = send(
        &state,
        "PUT",
        "/v1/admin/teams/readers",
        "sk-root",
        Some(policy),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, listing) = send(&state, "GET", "/v1/mcp/tools", &secret, None).await;
    let names = tool_names(&listing);
    assert!(!names.iter().any(|n| n.starts_with("fy__")), "{names:?}");
    assert!(names.contains(&"fx__echo".to_string()), "{names:?}");

    // Revoked: refused from the next request on.
    let (status, body) = send(&state, "DELETE", "/v1/admin/keys/ci", "sk-root", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = send(&state, "GET", "/v1/mcp/tools", &secret, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // The server goes (its alias first, or the change is refused).
    let (status, body) = send(&state, "DELETE", "/v1/admin/servers/fy", "sk-root", None).await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "an alias and a rule name it: {body}"
    );
    send(&state, "DELETE", "/v1/admin/aliases/files", "sk-root", None).await;
    let policy = json!({"default_level": "read"});
    send(
        &state,
        "PUT",
        "/v1/admin/teams/readers",
        "sk-root",
        Some(policy),
    )
    .await;
    let (status, body) = send(&state, "DELETE", "/v1/admin/servers/fy", "sk-root", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(!state.gateway().server_names().contains(&"fy".to_string()));

    // The audit trail: who did what, newest first, filtered.
    let (status, audit) = send(
        &state,
        "GET",
        "/v1/admin/audit?actor=root&action=key.revoke",
        "sk-root",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{audit}");
    let events = audit["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{audit}");
    assert_eq!(events[0]["target"], "ci");
    let (_, all) = send(&state, "GET", "/v1/admin/audit?limit=100", "sk-root", None).await;
    let actions: Vec<&str> = all["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions.first(), Some(&"server.delete"), "{actions:?}");
    assert!(
        actions.contains(&"server.put") && actions.contains(&"key.create"),
        "{actions:?}"
    );
    assert!(
        !all.to_string().contains(&secret),
        "no secret in the audit trail"
    );
    state.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn invalid_changes_get_place_by_place_problems_and_change_nothing() {
    let fixture = ServerProcess::fixture(&[]);
    let dir = fresh_dir("invalid");
    let state = open(&dir, &settings_text(&fixture)).await;
    let fleet = fleet_of(&state);
    let before = (fleet.version(), fleet.entities().await);

    let cases: Vec<(&str, &str, Option<Value>, &str, &str)> = vec![
        // Wrong types.
        (
            "PUT",
            "/v1/admin/servers/bad",
            Some(json!({"url": 5, "timeout_ms": "soon"})),
            "servers.bad.url",
            "",
        ),
        // A policy naming a server that does not exist.
        (
            "PUT",
            "/v1/admin/policies/keys/reader",
            Some(json!({"rules": [{"server": "nowhere", "level": "read"}]})),
            "policies.keys.reader.rules[0].server",
            "",
        ),
        // An alias of an alias (a cycle in the making) and an alias of nothing.
        (
            "PUT",
            "/v1/admin/aliases/again",
            Some(json!({"server": "files"})),
            "aliases.again",
            "",
        ),
        // A duplicate name: an alias that is a server's name; a key name taken.
        (
            "PUT",
            "/v1/admin/aliases/fx",
            Some(json!({"server": "fx"})),
            "aliases.fx",
            "already the name of a server",
        ),
        (
            "POST",
            "/v1/admin/keys",
            Some(json!({"name": "root"})),
            "api_keys.root.name",
            "duplicate",
        ),
        // A level that is not one.
        (
            "PUT",
            "/v1/admin/policies/default_level",
            Some(json!({"level": "superuser"})),
            "policies.default_level",
            "",
        ),
    ];
    for (method, path, body, place, words) in cases {
        let (status, answer) = send(&state, method, path, "sk-root", body).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{method} {path}: {answer}"
        );
        let problems = answer["error"]["problems"].as_array().unwrap();
        assert!(
            problems
                .iter()
                .any(|p| p["path"] == place && p["message"].as_str().unwrap().contains(words)),
            "{method} {path}: expected a problem at {place}: {answer}"
        );
    }
    // Wrong types are all reported, not only the first.
    let (_, answer) = send(
        &state,
        "PUT",
        "/v1/admin/servers/bad",
        "sk-root",
        Some(json!({"url": 5, "timeout_ms": "soon"})),
    )
    .await;
    let paths: Vec<&str> = answer["error"]["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["path"].as_str().unwrap())
        .collect();
    assert!(paths.contains(&"servers.bad.timeout_ms"), "{paths:?}");
    let (status, _) = send(&state, "PUT", "/v1/admin/servers/bad", "sk-root", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "no body is not JSON");

    assert_eq!(
        (fleet.version(), fleet.entities().await),
        before,
        "nothing was changed"
    );
    assert_eq!(
        fleet.store().load().await.unwrap().version,
        before.0,
        "nothing was written"
    );
    assert_eq!(state.gateway().server_names(), vec!["fx".to_string()]);
    state.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn a_restart_keeps_what_the_admin_api_created() {
    let fixture = ServerProcess::fixture(&[]);
    let dir = fresh_dir("restart");
    let text = settings_text(&fixture);
    let state = open(&dir, &text).await;
    let spec = json!({"url": fixture.url("/mcp")});
    send(&state, "PUT", "/v1/admin/servers/fz", "sk-root", Some(spec)).await;
    let (_, created) = send(
        &state,
        "POST",
        "/v1/admin/keys",
        "sk-root",
        Some(json!({"name": "late"})),
    )
    .await;
    let secret = created["key"].as_str().unwrap().to_string();
    send(&state, "DELETE", "/v1/admin/keys/reader", "sk-root", None).await;
    state.shutdown(Duration::from_secs(2)).await;
    fleet_of(&state).store().close().await;
    drop(state);

    // The same file again: the store rules (the file's `reader` stays revoked).
    let state = open(&dir, &text).await;
    assert_eq!(
        state.gateway().server_names(),
        vec!["fx".to_string(), "fz".to_string()]
    );
    let (status, _) = send(&state, "GET", "/v1/mcp/tools", &secret, None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = send(&state, "GET", "/v1/mcp/tools", "sk-reader", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    state.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn the_binary_restarted_on_its_sqlite_file_keeps_admin_changes() {
    let fixture = ServerProcess::fixture(&[]);
    let dir = fresh_dir("binary");
    let config = dir.join("gateway.yaml");
    std::fs::write(&config, settings_text(&fixture)).unwrap();
    let client = reqwest::Client::new();
    let secret = {
        let gateway = ServerProcess::start(
            env!("CARGO_BIN_EXE_litellm-mcp"),
            &["serve", "-c", config.to_str().unwrap()],
        );
        let created: Value = client
            .post(gateway.url("/v1/admin/keys"))
            .bearer_auth("sk-root")
            .json(&json!({"name": "kept"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let status = client
            .put(gateway.url("/v1/admin/servers/fw"))
            .bearer_auth("sk-root")
            .json(&json!({"url": fixture.url("/mcp")}))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, reqwest::StatusCode::CREATED);
        created["key"].as_str().unwrap().to_string()
    };
    assert!(
        dir.join("state.db").exists(),
        "the SQLite file lives where the settings say"
    );
    let gateway = ServerProcess::start(
        env!("CARGO_BIN_EXE_litellm-mcp"),
        &["serve", "-c", config.to_str().unwrap()],
    );
    let listing: Value = client
        .get(gateway.url("/v1/mcp/tools"))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        tool_names(&listing).contains(&"fw__echo".to_string()),
        "{listing}"
    );
}

#[tokio::test]
async fn user_tokens_are_stored_sealed_and_bound_to_their_row() {
    let dir = fresh_dir("tokens");
    let store = Store::open(&litellm_rs::store::config::StoreSettings::sqlite(
        dir.join("t.db"),
    ))
    .await
    .unwrap();
    store
        .put_user_token("alice", "fs", b"refresh-token-plaintext")
        .await
        .unwrap();
    assert_eq!(
        store.user_token("alice", "fs").await.unwrap().as_deref(),
        Some(&b"refresh-token-plaintext"[..])
    );
    assert_eq!(store.user_token("bob", "fs").await.unwrap(), None);
    let raw = std::fs::read(dir.join("t.db")).unwrap();
    assert!(!String::from_utf8_lossy(&raw).contains("refresh-token-plaintext"));
    assert!(store.delete_user_token("alice", "fs").await.unwrap());
    assert_eq!(store.user_token("alice", "fs").await.unwrap(), None);
    assert!(!store.delete_user_token("alice", "fs").await.unwrap());
    store.close().await;
}
