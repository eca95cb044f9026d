//! Per-user upstream tokens through the service: a server configured `per_user` in front
//! of a third-party MCP server that checks tokens (`tests/servers/ts_protected_server.mjs`)
//! of a real OpenID provider (`tests/idp/provider.mjs`). Two API keys authorize it
//! separately through `POST /v1/mcp/servers/<name>/authorize` and the gateway's
//! `/oauth/callback`, each call carries its own user's token, a key that has not
//! authorized gets an error that says how, and a user can remove its authorization.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::ServerProcess;
use serde_json::{json, Value};

fn start(script: &str, args: &[&str]) -> ServerProcess {
    let path = common::repo_root().join(script);
    let mut all = vec![path.to_str().unwrap(), "--exit-on-stdin-eof"];
    all.extend_from_slice(args);
    ServerProcess::start(common::node(), &all)
}

/// Follows the provider's headless sign-in from `url` (keeping its cookies) and returns
/// the query of the redirect to `redirect_uri`.
async fn sign_in(url: &str, redirect_uri: &'static str) -> String {
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.url().as_str().starts_with(redirect_uri) || attempt.previous().len() > 10 {
                attempt.stop()
            } else {
                attempt.follow()
            }
        }))
        .build()
        .unwrap();
    let response = http.get(url).send().await.unwrap();
    let location = response.headers()["location"].to_str().unwrap();
    let redirect = response.url().join(location).unwrap();
    assert!(redirect.as_str().starts_with(redirect_uri), "{redirect}");
    redirect.query().unwrap().to_string()
}

async fn post_json(url: &str, key: &str, body: Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(url)
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_key_authorizes_the_server_once_and_calls_carry_its_own_token() {
    const CALLBACK: &str = "http://127.0.0.1:1/oauth/callback";
    let idp = start(
        "tests/idp/provider.mjs",
        &[
            "--client",
            r#"{"client_id":"gw","client_secret":"s3cret","grant_types":["client_credentials"]}"#,
        ],
    );
    let protected = start(
        "tests/servers/ts_protected_server.mjs",
        &["--issuer", &idp.url("")],
    );
    let upstream = protected.url("/mcp");
    // The gateway's own credentials (client credentials, discovered) serve the session;
    // each call carries its caller's token.
    let yaml = format!(
        r#"
listen: 127.0.0.1:0
servers:
  - name: crm
    url: "{upstream}"
    auth: {{type: oauth2, client_id: gw, client_secret: s3cret}}
    per_user: {{redirect_uri: "{CALLBACK}"}}
api_keys:
  - {{name: alice, key: sk-alice}}
  - {{name: bob, key: sk-bob}}
  - {{name: carol, key: sk-carol}}
"#
    );
    let gateway = common::InProcessGateway::serve(&yaml).await;
    let call = gateway.url("/v1/mcp/tools/call");
    let whoami = json!({"name": "crm__whoami", "arguments": {}});

    // Not authorized yet: the error says how.
    let (status, body) = post_json(&call, "sk-alice", whoami.clone()).await;
    let text = body.to_string();
    assert_ne!(status, 200, "{text}");
    assert!(text.contains("/v1/mcp/servers/crm/authorize"), "{text}");

    for (key, user) in [("sk-alice", "alice"), ("sk-bob", "bob")] {
        let (_, _) = post_json(&idp.url("/test/login-as"), key, json!({"sub": user})).await;
        let authorize = gateway.url("/v1/mcp/servers/crm/authorize");
        let (status, body) = post_json(&authorize, key, json!({})).await;
        assert_eq!(status, 200, "{body}");
        let url = body["authorization_url"].as_str().unwrap().to_string();
        let query = sign_in(&url, CALLBACK).await;
        let done = reqwest::get(gateway.url(&format!("/oauth/callback?{query}")))
            .await
            .unwrap();
        assert_eq!(done.status(), 200, "{}", done.text().await.unwrap());
    }

    let claims = |body: &Value| -> Value {
        let text = body["result"]["content"][0]["text"]
            .as_str()
            .or_else(|| body["content"][0]["text"].as_str())
            .unwrap_or_else(|| panic!("{body}"));
        serde_json::from_str(text).unwrap()
    };
    let (status, body) = post_json(&call, "sk-alice", whoami.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(claims(&body)["sub"], "alice", "{body}");
    let (status, body) = post_json(&call, "sk-bob", whoami.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(claims(&body)["sub"], "bob", "{body}");
    assert_eq!(claims(&body)["aud"], upstream.as_str(), "{body}");

    // A key that has not authorized never gets another user's token.
    let (status, body) = post_json(&call, "sk-carol", whoami.clone()).await;
    assert_ne!(status, 200, "{body}");
    assert!(body.to_string().contains("authorize"), "{body}");

    // Removed by its user: bob's calls need a new authorization, alice's go on.
    let response = reqwest::Client::new()
        .delete(gateway.url("/v1/mcp/servers/crm/authorize"))
        .bearer_auth("sk-bob")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap()["removed"], true);
    let (status, _) = post_json(&call, "sk-bob", whoami.clone()).await;
    assert_ne!(status, 200);
    let (status, body) = post_json(&call, "sk-alice", whoami).await;
    assert_eq!(status, 200, "{body}");

    // A callback nobody waits for is refused.
    let stray = reqwest::get(gateway.url("/oauth/callback?code=x&state=y"))
        .await
        .unwrap();
    assert_eq!(stray.status(), 400);
}
