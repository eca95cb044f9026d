//! The gateway as an OAuth 2.1 resource server, against a real OpenID provider (npm
//! `oidc-provider`, `tests/idp/provider.mjs`) on loopback and the official SDK clients
//! (`tests/clients/ts_oauth_client.mjs`, `py_oauth_client.py`) doing the whole MCP
//! authorization flow: protected-resource metadata, discovery, registration, authorization
//! code with PKCE (headless), then lists and calls through `/mcp`, with the permissions of
//! the user's team. Bad tokens of every kind, each refused with its reason; the provider's
//! keys down or slow; opaque tokens through introspection; the registration handout.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::ServerProcess;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// How long one SDK client run may take.
const CLIENT_LIMIT: Duration = Duration::from_secs(60);

/// The test provider, with the gateway's introspection client.
fn start_provider(extra: &[&str]) -> ServerProcess {
    let script = common::repo_root().join("tests/idp/provider.mjs");
    let mut args = vec![
        script.to_str().unwrap().to_string(),
        "--client".to_string(),
        r#"{"client_id":"gateway-introspect","client_secret":"intro"}"#.to_string(),
        "--exit-on-stdin-eof".to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ServerProcess::start(common::node(), &args)
}

/// A gateway served in-process on a free port; stops when dropped.
struct Gateway {
    inner: common::InProcessGateway,
    _upstream: ServerProcess,
}

impl Gateway {
    /// Two servers of our fixture (`fx`, `other`); team `blue` may call `fx` only, team
    /// `red` may only read; the key `sk-ci` (team blue) beside tokens of `idp`.
    async fn start(idp: &ServerProcess, oauth_extra: &str) -> Gateway {
        Self::start_with(idp, "", oauth_extra).await
    }

    /// [`Gateway::start`] with more servers (YAML list items).
    async fn start_with(idp: &ServerProcess, servers_extra: &str, oauth_extra: &str) -> Gateway {
        let upstream = ServerProcess::fixture(&[]);
        let issuer = idp.url("");
        let yaml = format!(
            r#"
listen: 127.0.0.1:0
servers:
  - {{name: fx, url: "http://127.0.0.1:{port}/mcp"}}
  - {{name: other, url: "http://127.0.0.1:{port}/mcp"}}
{servers_extra}
api_keys:
  - {{name: ci, key: sk-ci, team: blue}}
policies:
  default_level: deny
  teams:
    blue: {{default_level: execute, rules: [{{server: other, level: deny}}]}}
    red: {{default_level: read}}
oauth:
  scopes: {{"mcp:read": read, "mcp:call": execute}}
  providers:
    - issuer: "{issuer}"
      claims: {{team: team, organization: org}}
      timeout_ms: 2000
      jwks_min_refetch_secs: 1
      introspection:
        url: "{issuer}/token/introspection"
        client_id: gateway-introspect
        client_secret: intro
{oauth_extra}"#,
            port = upstream.port,
        );
        Gateway {
            inner: common::InProcessGateway::serve(&yaml).await,
            _upstream: upstream,
        }
    }

    fn url(&self, path: &str) -> String {
        self.inner.url(path)
    }

    /// A JSON-RPC request on `path` with `credential`; the status, headers and body.
    async fn rpc(
        &self,
        path: &str,
        credential: Option<&str>,
        method: &str,
        params: Value,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let mut request = reqwest::Client::new()
            .post(self.url(path))
            .header("Content-Type", "application/json")
            .header("Accept", "application/json, text/event-stream")
            .header("MCP-Protocol-Version", "2026-07-28")
            .header("Mcp-Method", method);
        let name = params.get("name").or_else(|| params.get("uri"));
        if let Some(name) = name.and_then(Value::as_str) {
            request = request.header("Mcp-Name", name);
        }
        if let Some(credential) = credential {
            request = request.header("Authorization", format!("Bearer {credential}"));
        }
        let mut params = params;
        params["_meta"] = json!({
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {},
        });
        let response = request
            .json(&json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.json().await.unwrap_or(Value::Null);
        (status, headers, body)
    }
}

/// POSTs JSON to the provider's test endpoints.
async fn idp_post(idp: &ServerProcess, path: &str, body: Value) -> Value {
    let response = reqwest::Client::new()
        .post(idp.url(path))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
    response.json().await.unwrap()
}

/// A token of `kind` from the provider's `/test/mint`.
async fn mint(idp: &ServerProcess, kind: &str, aud: &str, extra: Value) -> String {
    let mut body = json!({"kind": kind, "aud": aud});
    if let Value::Object(extra) = extra {
        body.as_object_mut().unwrap().extend(extra);
    }
    idp_post(idp, "/test/mint", body).await["token"]
        .as_str()
        .unwrap()
        .to_string()
}

fn tool_names(body: &Value) -> Vec<String> {
    body["result"]["tools"]
        .as_array()
        .map(|tools| {
            tools
                .iter()
                .filter_map(|t| t["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Runs an OAuth client script (bounded) and returns its JSON report.
fn run_oauth_client(python: bool, url: &str, args: &[&str]) -> Value {
    let clients = common::repo_root().join("tests/clients");
    let mut command = if python {
        let mut c = Command::new(common::python_mcp2());
        c.arg(clients.join("py_oauth_client.py"));
        c
    } else {
        let mut c = Command::new(common::node());
        c.arg(clients.join("ts_oauth_client.mjs"));
        c
    };
    command.arg(url).args(args);
    let what = format!(
        "{} OAuth client {url} {args:?}",
        if python { "python" } else { "ts" }
    );
    let (_, stdout, stderr) = common::run_bounded(command, CLIENT_LIMIT, &what);
    let line = stdout.lines().rev().find(|l| !l.trim().is_empty());
    let report: Value = line
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no JSON report\nstdout: {stdout}\nstderr: {stderr}"));
    eprintln!(
        "{} {url} {args:?}\n  -> {report}",
        if python { "python" } else { "ts" }
    );
    if report["error"] != Value::Null {
        eprintln!("client stderr:\n{stderr}");
    }
    report
}

/// The client flags of a call of `fx__echo` with `text`.
fn echo_args(text: &str) -> Vec<String> {
    vec![
        "--tool".into(),
        "fx__echo".into(),
        "--args".into(),
        json!({ "text": text }).to_string(),
    ]
}

async fn run_client_async(python: bool, url: String, args: Vec<String>) -> Value {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_oauth_client(python, &url, &args)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_clients_sign_in_with_the_provider_and_see_what_their_team_may() {
    let idp = start_provider(&[]);
    let gw = Gateway::start(&idp, "").await;
    let mcp = gw.url("/mcp");

    // What a client discovers: the 401 challenge and the protected-resource metadata.
    let (status, headers, body) = gw.rpc("/mcp", None, "tools/list", json!({})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let challenge = headers["www-authenticate"].to_str().unwrap();
    let metadata_url = gw.url("/.well-known/oauth-protected-resource/mcp");
    assert_eq!(
        challenge,
        format!("Bearer resource_metadata=\"{metadata_url}\", scope=\"mcp:read mcp:call\"")
    );
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("authentication is required"));
    let metadata = common::get_json(&metadata_url).await;
    assert_eq!(metadata["resource"], mcp);
    assert_eq!(metadata["authorization_servers"], json!([idp.url("")]));
    assert_eq!(
        metadata["scopes_supported"],
        json!(["mcp:read", "mcp:call"])
    );
    for (path, resource) in [
        ("/mcp/fx", "/mcp/fx"),
        ("/mcp/no-such-server", "/mcp/no-such-server"),
        ("/sse", "/sse"),
        ("/ws/fx", "/ws/fx"),
        ("/v1/mcp", "/v1/mcp"),
        ("", ""),
    ] {
        let metadata =
            common::get_json(&gw.url(&format!("/.well-known/oauth-protected-resource{path}")))
                .await;
        assert_eq!(metadata["resource"], gw.url(resource), "{path}");
    }
    let missing = reqwest::get(gw.url("/.well-known/oauth-protected-resource/admin"))
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);

    // alice (team blue) with the TypeScript SDK; bob (team red) and alice with Python.
    let ts_alice = run_client_async(false, mcp.clone(), echo_args("hi")).await;
    assert_eq!(ts_alice["error"], Value::Null, "{ts_alice}");
    assert_eq!(ts_alice["registered"], true);
    assert_eq!(ts_alice["resource"], mcp);
    assert_eq!(ts_alice["authorizationServer"], idp.url(""));
    let names: Vec<&str> = ts_alice["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(names.contains(&"fx__echo"), "{names:?}");
    assert!(!names.iter().any(|n| n.starts_with("other__")), "{names:?}");
    assert_eq!(ts_alice["result"]["content"][0]["text"], "hi");

    idp_post(&idp, "/test/login-as", json!({"sub": "bob"})).await;
    let py_bob = run_client_async(true, mcp.clone(), echo_args("hi")).await;
    // bob may see both servers' tools and call none.
    let names: Vec<&str> = py_bob["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        names.contains(&"fx__echo") && names.contains(&"other__echo"),
        "{py_bob}"
    );
    assert_eq!(py_bob["errorStage"], "call", "{py_bob}");
    assert!(
        py_bob["error"]
            .as_str()
            .unwrap()
            .contains("Permission denied"),
        "{py_bob}"
    );

    idp_post(&idp, "/test/login-as", json!({"sub": "alice"})).await;
    let py_alice = run_client_async(true, mcp.clone(), echo_args("py")).await;
    assert_eq!(py_alice["error"], Value::Null, "{py_alice}");
    assert_eq!(py_alice["result"]["content"][0]["text"], "py");

    // The API key works beside tokens, and metrics name the callers.
    let (status, _, body) = gw.rpc("/mcp", Some("sk-ci"), "tools/list", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(tool_names(&body).contains(&"fx__echo".to_string()));
    let metrics = reqwest::get(gw.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for series in [
        r#"litellm_mcp_caller_requests_total{via="token",caller="alice"}"#,
        r#"litellm_mcp_caller_requests_total{via="token",caller="bob"}"#,
        r#"litellm_mcp_caller_requests_total{via="api_key",caller="ci"}"#,
        r#"litellm_mcp_authentications_total{result="missing"}"#,
    ] {
        assert!(metrics.contains(series), "{series} in\n{metrics}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_each_get_a_401_with_their_reason() {
    let idp = start_provider(&[]);
    let gw = Gateway::start(&idp, "").await;
    let mcp = gw.url("/mcp");

    let good = mint(&idp, "valid", &mcp, json!({})).await;
    let (status, _, body) = gw.rpc("/mcp", Some(&good), "tools/list", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(tool_names(&body).contains(&"fx__echo".to_string()));
    let no_kid = mint(&idp, "no_kid", &mcp, json!({})).await;
    assert_eq!(
        gw.rpc("/mcp", Some(&no_kid), "server/discover", json!({}))
            .await
            .0,
        StatusCode::OK
    );

    let mut cases = Vec::new();
    for (kind, reason) in [
        ("expired", "has expired"),
        ("not_yet_valid", "not valid yet"),
        ("wrong_issuer", "issuer is not trusted"),
        ("wrong_audience", "another resource"),
        ("alg_none", "algorithm none is not accepted"),
        ("hs256_public_key", "algorithm HS256 is not accepted"),
        ("unknown_kid", "a key the provider does not publish"),
        ("tampered", "signature is not valid"),
    ] {
        cases.push((mint(&idp, kind, &mcp, json!({})).await, reason));
    }
    // Valid tokens, but for another endpoint of ours and for another server.
    for aud in [gw.url("/ws"), "http://127.0.0.1:1/mcp".to_string()] {
        cases.push((
            mint(&idp, "valid", &aud, json!({})).await,
            "another resource",
        ));
    }
    cases.push(("not-a-token-nor-a-key".to_string(), "not active"));
    for (token, reason) in &cases {
        let (status, headers, body) = gw.rpc("/mcp", Some(token), "tools/list", json!({})).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{reason}: {body}");
        let challenge = headers["www-authenticate"].to_str().unwrap();
        assert!(
            challenge.starts_with("Bearer error=\"invalid_token\", error_description=\""),
            "{challenge}"
        );
        assert!(challenge.contains(reason), "{reason}: {challenge}");
        assert!(challenge.contains("resource_metadata="), "{challenge}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(reason), "{reason}: {message}");
        assert!(!message.contains(token.as_str()), "the token is not echoed");
        assert!(body.get("result").is_none());
    }

    // An unknown credential is introspected once, then refused from memory for a while:
    // made-up credentials cannot make the gateway send a request each.
    idp_post(&idp, "/test/stats/reset", json!({})).await;
    for _ in 0..5 {
        let (status, _, _) = gw
            .rpc(
                "/mcp",
                Some("made-up-credential"),
                "server/discover",
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let stats = common::get_json(&idp.url("/test/stats")).await;
    assert_eq!(stats["introspections"], 1, "{stats}");

    // A token for /mcp is not one for /mcp/fx, and the other way round.
    let (status, headers, _) = gw
        .rpc("/mcp/fx", Some(&good), "server/discover", json!({}))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(headers["www-authenticate"]
        .to_str()
        .unwrap()
        .contains(&gw.url("/.well-known/oauth-protected-resource/mcp/fx")));
    let fx_token = mint(&idp, "valid", &gw.url("/mcp/fx"), json!({})).await;
    let (status, _, body) = gw
        .rpc("/mcp/fx", Some(&fx_token), "tools/list", json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(tool_names(&body).contains(&"echo".to_string()));
    // A token for the gateway itself serves every endpoint.
    let gateway_token = mint(&idp, "valid", &gw.url(""), json!({})).await;
    assert_eq!(
        gw.rpc(
            "/mcp/fx",
            Some(&gateway_token),
            "server/discover",
            json!({})
        )
        .await
        .0,
        StatusCode::OK
    );

    // Scopes: mcp:read lists but gets 403 insufficient_scope on a call; no mapped scope
    // gets 403 on everything, naming the scopes to ask for.
    let reader = mint(&idp, "valid", &mcp, json!({"scope": "mcp:read"})).await;
    let (status, _, body) = gw.rpc("/mcp", Some(&reader), "tools/list", json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert!(tool_names(&body).contains(&"fx__echo".to_string()));
    let (status, headers, body) = gw
        .rpc(
            "/mcp",
            Some(&reader),
            "tools/call",
            json!({"name": "fx__echo", "arguments": {"text": "x"}}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let challenge = headers["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.starts_with("Bearer error=\"insufficient_scope\""),
        "{challenge}"
    );
    // It keeps the scope the token has and adds the one needed.
    assert!(
        challenge.ends_with("scope=\"mcp:read mcp:call\""),
        "{challenge}"
    );
    let none = mint(&idp, "valid", &mcp, json!({"scope": "openid"})).await;
    let (status, headers, _) = gw
        .rpc("/mcp", Some(&none), "server/discover", json!({}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(headers["www-authenticate"]
        .to_str()
        .unwrap()
        .ends_with("scope=\"mcp:read\""));

    // Access tokens travel in `Authorization: Bearer` only: in x-api-key (or a
    // WebSocket's ?api_key=) a token is just an unknown key, never sent to the provider.
    let response = reqwest::Client::new()
        .post(gw.url("/mcp"))
        .header("x-api-key", &good)
        .header("Content-Type", "application/json")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"server/discover"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let body: Value = response.json().await.unwrap();
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("API key is not valid"));

    // REST takes tokens for /v1/mcp, with the same checks.
    let rest_token = mint(&idp, "valid", &gw.url("/v1/mcp"), json!({})).await;
    let client = reqwest::Client::new();
    let call = |token: String| {
        client
            .post(gw.url("/v1/mcp/tools/call"))
            .bearer_auth(token)
            .json(&json!({"name": "fx__echo", "arguments": {"text": "rest"}}))
            .send()
    };
    let response = call(rest_token).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let result: Value = response.json().await.unwrap();
    assert_eq!(result["content"][0]["text"], "rest");
    let response = call(good.clone()).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let rest_reader = mint(
        &idp,
        "valid",
        &gw.url("/v1/mcp"),
        json!({"scope": "mcp:read"}),
    )
    .await;
    let response = call(rest_reader).await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "insufficient_scope");

    // The legacy SSE face: the stream opens with a token for /sse, not with one for /mcp.
    let sse_token = mint(&idp, "valid", &gw.url("/sse"), json!({})).await;
    let response = client
        .get(gw.url("/sse"))
        .bearer_auth(&sse_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    drop(response);
    let response = client
        .get(gw.url("/sse"))
        .bearer_auth(&good)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    // Opaque tokens are introspected: bob's (team red) lists, a revoked or unknown one is
    // refused, one for another resource too.
    let opaque = mint(&idp, "opaque", &mcp, json!({"sub": "bob"})).await;
    let (status, _, body) = gw.rpc("/mcp", Some(&opaque), "tools/list", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(tool_names(&body).contains(&"other__echo".to_string()));
    let opaque_elsewhere = mint(&idp, "opaque", "http://127.0.0.1:1/mcp", json!({})).await;
    let (status, _, body) = gw
        .rpc(
            "/mcp",
            Some(&opaque_elsewhere),
            "server/discover",
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("another resource"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_providers_keys_down_or_slow_cost_nothing_to_known_keys_and_never_hang() {
    let idp = start_provider(&[]);
    let gw = Gateway::start(&idp, "").await;
    let mcp = gw.url("/mcp");
    let first = mint(&idp, "valid", &mcp, json!({})).await;
    assert_eq!(
        gw.rpc("/mcp", Some(&first), "server/discover", json!({}))
            .await
            .0,
        StatusCode::OK
    );

    for mode in ["slow", "down"] {
        idp_post(&idp, "/test/jwks-mode", json!({"mode": mode})).await;
        // A new token under a known key: verified with the cached key, no wait.
        let fresh = mint(&idp, "valid", &mcp, json!({"sub": format!("user-{mode}")})).await;
        let started = Instant::now();
        assert_eq!(
            gw.rpc("/mcp", Some(&fresh), "server/discover", json!({}))
                .await
                .0,
            StatusCode::OK
        );
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{mode}: {:?}",
            started.elapsed()
        );
        // An unknown key: refused within the provider timeout (2 s), saying why.
        tokio::time::sleep(Duration::from_millis(1100)).await; // past jwks_min_refetch_secs
        let stray = mint(&idp, "unknown_kid", &mcp, json!({})).await;
        let started = Instant::now();
        let (status, _, body) = gw
            .rpc("/mcp", Some(&stray), "server/discover", json!({}))
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{mode}: {:?}",
            started.elapsed()
        );
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("keys are unavailable"),
            "{mode}: {message}"
        );
    }

    // Made-up key ids cost at most one fetch per jwks_min_refetch_secs.
    idp_post(&idp, "/test/jwks-mode", json!({"mode": "ok"})).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    idp_post(&idp, "/test/stats/reset", json!({})).await;
    for _ in 0..20 {
        let stray = mint(&idp, "unknown_kid", &mcp, json!({})).await;
        assert_eq!(
            gw.rpc("/mcp", Some(&stray), "server/discover", json!({}))
                .await
                .0,
            StatusCode::UNAUTHORIZED
        );
    }
    let fetches = common::get_json(&idp.url("/test/stats")).await["jwks_fetches"]
        .as_u64()
        .unwrap();
    assert!(
        (1..=3).contains(&fetches),
        "{fetches} fetches for 20 unknown key ids"
    );

    // A rotated key is fetched on its first token.
    idp_post(&idp, "/test/rotate", json!({})).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let rotated = mint(&idp, "valid", &mcp, json!({})).await;
    let (status, _, body) = gw
        .rpc("/mcp", Some(&rotated), "server/discover", json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_insists_on_registering_gets_the_pre_registered_client() {
    // A provider that lets no client register itself; the gateway hands out test-client.
    let idp = start_provider(&["--no-registration"]);
    let gw = Gateway::start(&idp, "  registration: {client_id: test-client}\n").await;
    let metadata = common::get_json(&gw.url("/.well-known/oauth-protected-resource/mcp")).await;
    assert_eq!(metadata["authorization_servers"], json!([gw.url("")]));
    let mirrored = common::get_json(&gw.url("/.well-known/oauth-authorization-server")).await;
    assert_eq!(mirrored["issuer"], gw.url(""));
    assert_eq!(mirrored["registration_endpoint"], gw.url("/oauth/register"));
    assert_eq!(mirrored["token_endpoint"], idp.url("/token"));

    let report = run_client_async(false, gw.url("/mcp"), echo_args("handout")).await;
    assert_eq!(report["error"], Value::Null, "{report}");
    assert_eq!(report["registered"], true);
    assert_eq!(report["clientId"], "test-client");
    assert_eq!(report["result"]["content"][0]["text"], "handout");

    let response = reqwest::Client::new()
        .post(gw.url("/oauth/register"))
        .body("[1]")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client_metadata");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_exchange_calls_an_upstream_on_behalf_of_the_signed_in_user() {
    let idp = start_provider(&[
        "--client",
        r#"{"client_id":"gateway","client_secret":"s3cret","grant_types":["client_credentials","urn:ietf:params:oauth:grant-type:token-exchange"]}"#,
    ]);
    let issuer = idp.url("");
    let script = common::repo_root().join("tests/servers/ts_protected_server.mjs");
    let protected = ServerProcess::start(
        common::node(),
        &[
            script.to_str().unwrap(),
            "--issuer",
            &issuer,
            "--exit-on-stdin-eof",
        ],
    );
    let upstream = protected.url("/mcp");
    // The gateway's own credentials (client credentials for the upstream) serve the
    // handshake and the lists; each call carries the caller's token exchanged for one
    // meant for the upstream.
    let servers = format!(
        r#"  - name: crm
    url: "{upstream}"
    auth: {{type: oauth2, client_id: gateway, client_secret: s3cret, token_url: "{issuer}/token", resource: "{upstream}", scopes: ["mcp:read"]}}
    token_exchange: {{token_url: "{issuer}/token", client_id: gateway, client_secret: s3cret}}"#
    );
    let gw = Gateway::start_with(&idp, &servers, "").await;
    let mcp = gw.url("/mcp");
    let whoami = |body: &Value| -> Value {
        let text = body["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or_else(|| panic!("{body}"));
        serde_json::from_str(text).unwrap()
    };

    let alice = mint(&idp, "valid", &mcp, json!({})).await;
    let (status, _, body) = gw.rpc("/mcp", Some(&alice), "tools/list", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        tool_names(&body).contains(&"crm__whoami".to_string()),
        "{body}"
    );
    idp_post(&idp, "/test/stats/reset", json!({})).await;
    for _ in 0..2 {
        let (status, _, body) = gw
            .rpc(
                "/mcp",
                Some(&alice),
                "tools/call",
                json!({"name": "crm__whoami", "arguments": {}}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let seen = whoami(&body);
        // The upstream saw a token for itself, of alice, obtained by the gateway: never
        // the token alice presented to the gateway.
        assert_eq!(seen["sub"], "alice", "{seen}");
        assert_eq!(seen["aud"], upstream, "{seen}");
        assert_eq!(seen["act"], json!({"sub": "gateway"}), "{seen}");
        assert_eq!(seen["team"], "blue");
    }
    let stats = common::get_json(&idp.url("/test/stats")).await;
    assert_eq!(
        stats["token_exchanges"], 1,
        "the exchanged token is reused: {stats}"
    );
    // Reads, prompts and completions for a caller carry the caller's exchanged token too,
    // never the gateway's own credentials.
    let (_, _, body) = gw
        .rpc(
            "/mcp",
            Some(&alice),
            "resources/read",
            json!({"uri": "mcpgw://crm/whoami://me"}),
        )
        .await;
    let text = body["result"]["contents"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"));
    let seen: Value = serde_json::from_str(text).unwrap();
    assert_eq!(seen["sub"], "alice", "{seen}");
    assert_eq!(seen["act"], json!({"sub": "gateway"}), "{seen}");
    let (_, _, body) = gw
        .rpc(
            "/mcp",
            Some(&alice),
            "prompts/get",
            json!({"name": "crm__whoami"}),
        )
        .await;
    let text = body["result"]["messages"][0]["content"]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"));
    let seen: Value = serde_json::from_str(text).unwrap();
    assert_eq!(seen["sub"], "alice", "{seen}");
    // An API key reads nothing there either.
    let (_, _, body) = gw
        .rpc(
            "/mcp",
            Some("sk-ci"),
            "resources/read",
            json!({"uri": "mcpgw://crm/whoami://me"}),
        )
        .await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("acts on behalf of signed-in users"),
        "{body}"
    );

    let bob = mint(&idp, "valid", &mcp, json!({"sub": "bob"})).await;
    let (_, _, body) = gw
        .rpc(
            "/mcp",
            Some(&bob),
            "tools/call",
            json!({"name": "crm__whoami", "arguments": {}}),
        )
        .await;
    // bob's team may only read: refused before any exchange.
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Permission denied"),
        "{body}"
    );
    let carol = mint(&idp, "valid", &mcp, json!({"sub": "carol", "team": "blue"})).await;
    let (_, _, body) = gw
        .rpc(
            "/mcp",
            Some(&carol),
            "tools/call",
            json!({"name": "crm__whoami", "arguments": {}}),
        )
        .await;
    assert_eq!(whoami(&body)["sub"], "carol", "{body}");

    // An API key has no token to exchange: a clear error, and nothing goes upstream.
    let (status, _, body) = gw
        .rpc(
            "/mcp",
            Some("sk-ci"),
            "tools/call",
            json!({"name": "crm__whoami", "arguments": {}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("acts on behalf of signed-in users"),
        "{message}"
    );
}

/// A WebSocket to the gateway's `path` with a bearer credential.
async fn ws_connect(
    gw: &Gateway,
    path: &str,
    token: &str,
) -> Result<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    tokio_tungstenite::tungstenite::Error,
> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = gw
        .url(path)
        .replace("http://", "ws://")
        .into_client_request()
        .unwrap();
    let headers = request.headers_mut();
    headers.insert("sec-websocket-protocol", "mcp".parse().unwrap());
    headers.insert("authorization", format!("Bearer {token}").parse().unwrap());
    tokio_tungstenite::connect_async(request)
        .await
        .map(|(socket, _)| socket)
}

/// Sends one JSON-RPC request on a WebSocket and reads messages until its answer.
async fn ws_call(
    socket: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    id: u64,
    method: &str,
    params: Value,
) -> Value {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let request = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
    socket
        .send(Message::text(request.to_string()))
        .await
        .unwrap();
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("an answer within 10 s")
            .expect("the socket is open")
            .unwrap();
        if let Message::Text(text) = message {
            let value: Value = serde_json::from_str(&text).unwrap();
            if value["id"] == json!(id) {
                return value;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_session_lives_no_longer_than_its_token() {
    let idp = start_provider(&[]);
    let gw = Gateway::start(&idp, "").await;
    // A token for /mcp does not open /ws.
    let for_mcp = mint(&idp, "valid", &gw.url("/mcp"), json!({})).await;
    match ws_connect(&gw, "/ws", &for_mcp).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
            let challenge = response.headers()["www-authenticate"].to_str().unwrap();
            assert!(
                challenge.contains("oauth-protected-resource/ws"),
                "{challenge}"
            );
        }
        other => panic!("expected a 401, got {:?}", other.map(|_| ())),
    }
    // One for /ws, valid 3 more seconds (the provider's leeway aside).
    let short = mint(&idp, "valid", &gw.url("/ws"), json!({"exp_in": 3})).await;
    let mut socket = ws_connect(&gw, "/ws", &short).await.unwrap();
    let init = json!({"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}});
    let answer = ws_call(&mut socket, 1, "initialize", init).await;
    assert_eq!(
        answer["result"]["protocolVersion"], "2025-11-25",
        "{answer}"
    );
    let answer = ws_call(&mut socket, 2, "tools/list", json!({})).await;
    assert!(
        tool_names(&answer).contains(&"fx__echo".to_string()),
        "{answer}"
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    let answer = ws_call(&mut socket, 3, "tools/list", json!({})).await;
    assert_eq!(answer["error"]["code"], -32001, "{answer}");
    assert!(answer["error"]["message"]
        .as_str()
        .unwrap()
        .contains("has expired"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_of_each_configured_provider_are_accepted_with_their_own_claims() {
    let first = start_provider(&[]);
    let second = start_provider(&[]);
    // The second provider names teams in another claim and is told apart by its issuer.
    let extra = format!(
        "    - issuer: \"{}\"\n      claims: {{subject: sub, team: org}}\n      jwks_min_refetch_secs: 1\n",
        second.url("")
    );
    let gw = Gateway::start(&first, &extra).await;
    let mcp = gw.url("/mcp");
    let from_first = mint(&first, "valid", &mcp, json!({"sub": "alice"})).await;
    let (status, _, body) = gw
        .rpc("/mcp", Some(&from_first), "tools/list", json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(tool_names(&body).contains(&"fx__echo".to_string()));
    assert!(!tool_names(&body).iter().any(|n| n.starts_with("other__")));
    // On the second provider the team is read from `org`: `red` may read both servers.
    let from_second = mint(&second, "valid", &mcp, json!({"sub": "dave", "org": "red"})).await;
    let (status, _, body) = gw
        .rpc("/mcp", Some(&from_second), "tools/list", json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        tool_names(&body).contains(&"other__echo".to_string()),
        "{body}"
    );
    // The two providers' keys are told apart: a token claiming the first issuer but
    // signed by the second provider's key is refused.
    let forged = mint(&second, "valid", &mcp, json!({})).await;
    let (header, rest) = forged.split_once('.').unwrap();
    let (payload, signature) = rest.split_once('.').unwrap();
    use base64::Engine;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut claims: Value = serde_json::from_slice(&engine.decode(payload).unwrap()).unwrap();
    claims["iss"] = json!(first.url(""));
    let forged = format!("{header}.{}.{signature}", engine.encode(claims.to_string()));
    let (status, _, body) = gw
        .rpc("/mcp", Some(&forged), "server/discover", json!({}))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("does not publish") || message.contains("signature"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legacy_sse_session_acts_with_each_posts_own_token() {
    let idp = start_provider(&[]);
    let gw = Gateway::start(&idp, "").await;
    let sse = gw.url("/sse");
    // The stream is opened with a token that expires in 2 s.
    let opening = mint(&idp, "valid", &sse, json!({"exp_in": 2})).await;
    let client = reqwest::Client::new();
    let response = client
        .get(&sse)
        .bearer_auth(&opening)
        .header("Accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut stream = response.bytes_stream();
    let mut buffer = String::new();
    async fn next_data(
        stream: &mut (impl futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin),
        buffer: &mut String,
    ) -> String {
        use futures::StreamExt;
        loop {
            if let Some(end) = buffer.find("\n\n") {
                let event: String = buffer.drain(..end + 2).collect();
                return event
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .map(str::trim)
                    .collect::<String>();
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), stream.next())
                .await
                .expect("an event within 10 s")
                .expect("the stream is open")
                .unwrap();
            buffer.push_str(&String::from_utf8_lossy(&chunk).replace("\r\n", "\n"));
        }
    }
    let endpoint = next_data(&mut stream, &mut buffer).await;
    assert!(endpoint.starts_with("/messages?sessionId="), "{endpoint}");
    // After it expired, a POST with a fresh token of the same user is served: the session
    // acts with the POST's own credential.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let fresh = mint(&idp, "valid", &sse, json!({})).await;
    let post = |token: String, body: Value| {
        client
            .post(gw.url(&endpoint))
            .bearer_auth(token)
            .json(&body)
            .send()
    };
    let status = post(
        fresh.clone(),
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}),
    )
    .await
    .unwrap()
    .status();
    assert_eq!(status, StatusCode::ACCEPTED);
    let answer: Value = serde_json::from_str(&next_data(&mut stream, &mut buffer).await).unwrap();
    assert!(
        tool_names(&answer).contains(&"fx__echo".to_string()),
        "{answer}"
    );
    // Another user's token does not reach this session.
    let bob = mint(&idp, "valid", &sse, json!({"sub": "bob"})).await;
    let status = post(
        bob,
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}),
    )
    .await
    .unwrap()
    .status();
    assert_eq!(status, StatusCode::NOT_FOUND);
}
