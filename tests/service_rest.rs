//! The service's REST face (`/v1/mcp/*`) and operations endpoints against a live
//! upstream (our fixture), through `proxy::app` with `oneshot`: listings in both formats
//! filtered by each key's policy, calls that succeed, fail as tools, are refused, are
//! unknown, time out or meet an upstream error, and the metrics those calls leave.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::ServerProcess;
use litellm_rs::proxy::{app, AppState};
use litellm_rs::settings::Settings;
use serde_json::{json, Value};
use tower::ServiceExt;

/// `fx` and `fxslow` are the same fixture; `fxslow` gives up after 500 ms.
/// `admin` may do anything; `reader` may only read; `blocked` may not see `fx`'s `echo`.
fn settings_for(fixture: &ServerProcess) -> Settings {
    let url = fixture.url("/mcp");
    let yaml = format!(
        "servers:\n\
         - {{name: fx, url: '{url}'}}\n\
         - {{name: fxslow, url: '{url}', timeout_ms: 500}}\n\
         api_keys:\n\
         - {{name: admin, key: sk-admin}}\n\
         - {{name: reader, key: sk-reader}}\n\
         - {{name: blocked, key: sk-blocked}}\n\
         policies:\n\
         \x20 default_level: execute\n\
         \x20 keys:\n\
         \x20   reader: {{default_level: read}}\n\
         \x20   blocked:\n\
         \x20     rules: [{{server: fx, tool: echo, level: deny}}]\n"
    );
    Settings::parse(&yaml, &|_| None).unwrap()
}

async fn state_for(fixture: &ServerProcess) -> AppState {
    let settings = settings_for(fixture);
    let gateway = settings.build_gateway().await.unwrap();
    AppState::new(gateway, &settings)
}

async fn send(state: &AppState, request: Request<Body>) -> (StatusCode, String) {
    let response = app(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

async fn get(state: &AppState, path: &str, key: &str) -> (StatusCode, Value) {
    let request = Request::get(path)
        .header("authorization", format!("Bearer {key}"))
        .body(Body::empty())
        .unwrap();
    let (status, body) = send(state, request).await;
    (status, serde_json::from_str(&body).unwrap())
}

async fn call(state: &AppState, key: &str, body: Value) -> (StatusCode, Value) {
    let request = Request::post("/v1/mcp/tools/call")
        .header("x-api-key", key)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let (status, body) = send(state, request).await;
    (status, serde_json::from_str(&body).unwrap())
}

fn names(listing: &Value) -> Vec<String> {
    listing["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            t.get("function")
                .map_or(&t["name"], |f| &f["name"])
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

#[tokio::test]
async fn tools_are_listed_per_key_in_mcp_and_openai_formats() {
    let fixture = ServerProcess::fixture(&[]);
    let state = state_for(&fixture).await;

    let (status, all) = get(&state, "/v1/mcp/tools", "sk-admin").await;
    assert_eq!(status, StatusCode::OK, "{all}");
    assert_eq!(all["failures"], json!([]));
    let echo = all["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "fx__echo")
        .unwrap();
    assert_eq!(echo["server"], "fx");
    assert_eq!(echo["inputSchema"]["required"], json!(["text"]));
    assert!(names(&all).contains(&"fxslow__echo".to_string()));

    let (status, openai) = get(&state, "/v1/mcp/tools?format=openai&server=fx", "sk-admin").await;
    assert_eq!(status, StatusCode::OK, "{openai}");
    let function = openai["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["function"]["name"] == "fx__echo")
        .unwrap();
    assert_eq!(function["type"], "function");
    assert_eq!(function["function"]["parameters"]["type"], "object");
    assert!(
        names(&openai).iter().all(|n| n.starts_with("fx__")),
        "only fx: {openai}"
    );

    let (_, read_only) = get(&state, "/v1/mcp/tools", "sk-reader").await;
    assert_eq!(names(&read_only), names(&all), "read is enough to see");

    let (_, blocked) = get(&state, "/v1/mcp/tools", "sk-blocked").await;
    let blocked = names(&blocked);
    assert!(!blocked.contains(&"fx__echo".to_string()), "{blocked:?}");
    assert!(blocked.contains(&"fx__add".to_string()));
    assert!(blocked.contains(&"fxslow__echo".to_string()));

    let (status, servers) = get(&state, "/v1/mcp/servers", "sk-reader").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(servers["servers"][0]["name"], "fx");
    assert_eq!(servers["servers"][0]["state"], "connected");
    assert!(servers["servers"][0]["protocol_version"].is_string());
    state.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn calls_answer_like_mcp_with_rest_statuses() {
    let fixture = ServerProcess::fixture(&[]);
    let state = state_for(&fixture).await;

    let (status, result) = call(
        &state,
        "sk-admin",
        json!({"name": "fx__echo", "arguments": {"text": "hi"}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{result}");
    assert_eq!(result["content"][0]["text"], "hi");
    assert_ne!(result["isError"], true);

    let (status, result) = call(
        &state,
        "sk-admin",
        json!({"server": "fx", "tool": "add", "arguments": {"a": 2, "b": 3}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{result}");
    assert_eq!(result["structuredContent"]["sum"], 5.0);

    // Argument problems are tool errors, so a model can correct its call.
    let (status, result) = call(
        &state,
        "sk-admin",
        json!({"name": "fx__echo", "arguments": {"wrong": 1}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{result}");
    assert_eq!(result["isError"], true);
    assert!(
        result["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("Invalid arguments"),
        "{result}"
    );

    let (status, result) = call(&state, "sk-admin", json!({"name": "fx__fail"})).await;
    assert_eq!(status, StatusCode::OK, "{result}");
    assert_eq!(result["isError"], true);

    let (status, error) = call(&state, "sk-admin", json!({"name": "fx__nope"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{error}");
    assert_eq!(error["error"]["type"], "not_found");
    assert_eq!(error["error"]["code"], -32602);

    let (status, error) = call(
        &state,
        "sk-reader",
        json!({"name": "fx__echo", "arguments": {"text": "hi"}}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{error}");
    assert_eq!(error["error"]["type"], "permission_denied");
    assert_eq!(error["error"]["code"], -32001);

    // Hidden is answered as unknown.
    let (status, error) = call(
        &state,
        "sk-blocked",
        json!({"name": "fx__echo", "arguments": {"text": "hi"}}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{error}");
    assert_eq!(error["error"]["message"], "Unknown tool: fx__echo");

    let (status, error) = call(&state, "sk-admin", json!({"name": "fx__rpc_error"})).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{error}");
    assert_eq!(error["error"]["type"], "upstream_error");
    assert_eq!(error["error"]["message"], "internal failure");

    let (status, error) = call(
        &state,
        "sk-admin",
        json!({"name": "fxslow__slow", "arguments": {"ms": 5000}}),
    )
    .await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{error}");
    assert_eq!(error["error"]["type"], "upstream_timeout");

    for key in [None, Some("sk-wrong")] {
        let mut request = Request::post("/v1/mcp/tools/call");
        if let Some(key) = key {
            request = request.header("authorization", format!("Bearer {key}"));
        }
        let request = request
            .body(Body::from(json!({"name": "fx__echo"}).to_string()))
            .unwrap();
        let response = app(state.clone()).oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{key:?}");
        assert!(response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer"));
    }

    let (status, text) = send(
        &state,
        Request::get("/metrics").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    for line in [
        r#"litellm_mcp_tool_calls_total{server="fx",tool="echo",outcome="ok"} 1"#,
        r#"litellm_mcp_tool_calls_total{server="fx",tool="echo",outcome="tool_error"} 1"#,
        r#"litellm_mcp_tool_calls_total{server="fx",tool="echo",outcome="denied"} 1"#,
        r#"litellm_mcp_tool_calls_total{server="fx",tool="fail",outcome="tool_error"} 1"#,
        r#"litellm_mcp_tool_calls_total{server="fx",tool="rpc_error",outcome="error"} 1"#,
        r#"litellm_mcp_tool_calls_total{server="fxslow",tool="slow",outcome="timeout"} 1"#,
        r#"litellm_mcp_tool_calls_total{server="-",tool="-",outcome="unknown"} 2"#,
        r#"litellm_mcp_tool_call_duration_seconds_count{server="fx",tool="add"} 1"#,
        r#"litellm_mcp_requests_total{face="rest",method="tools/call",outcome="ok"} 4"#,
        r#"litellm_mcp_requests_total{face="rest",method="tools/call",outcome="denied"} 1"#,
        r#"litellm_mcp_requests_total{face="rest",method="tools/call",outcome="unauthorized"} 2"#,
        r#"litellm_mcp_upstream_up{server="fx"} 1"#,
        "litellm_mcp_sessions_open 0",
    ] {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }

    let (status, ready) = send(&state, Request::get("/ready").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{ready}");
    state.shutdown(Duration::from_secs(2)).await;
}
