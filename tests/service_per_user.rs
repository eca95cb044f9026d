//! Per-user upstream tokens through the service: a server configured `per_user` in front
//! of a third-party MCP server that checks tokens (`tests/servers/ts_protected_server.mjs`)
//! of a real OpenID provider (`tests/idp/provider.mjs`). Two API keys authorize it
//! separately through `POST /v1/mcp/servers/<name>/authorize` and the gateway's
//! `/oauth/callback`, each call carries its own user's token, a key that has not
//! authorized gets an error that says how, and a user can remove its authorization.
//! With a `store:` section (a SQLite file), the tokens survive a restart of the binary and
//! are not in the database's files in clear text.

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

const CALLBACK: &str = "http://127.0.0.1:1/oauth/callback";

/// `key` (signed in at the provider as `user`) authorizes `crm` through the gateway at
/// `base`: the authorize endpoint, the provider's sign-in, the gateway's callback.
async fn authorize(idp: &ServerProcess, base: &str, key: &str, user: &str) {
    let (_, _) = post_json(&idp.url("/test/login-as"), key, json!({"sub": user})).await;
    let (status, body) = post_json(
        &format!("{base}/v1/mcp/servers/crm/authorize"),
        key,
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let url = body["authorization_url"].as_str().unwrap().to_string();
    let query = sign_in(&url, CALLBACK).await;
    let done = reqwest::get(format!("{base}/oauth/callback?{query}"))
        .await
        .unwrap();
    assert_eq!(done.status(), 200, "{}", done.text().await.unwrap());
}

/// The claims of the token a `whoami` call carried upstream.
fn claims(body: &Value) -> Value {
    let text = body["result"]["content"][0]["text"]
        .as_str()
        .or_else(|| body["content"][0]["text"].as_str())
        .unwrap_or_else(|| panic!("{body}"));
    serde_json::from_str(text).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_key_authorizes_the_server_once_and_calls_carry_its_own_token() {
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
        authorize(&idp, &gateway.base, key, user).await;
    }

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

/// Every byte of the files in `dir` whose name starts with `prefix` (the database, its
/// `-wal` and `-shm`).
fn bytes_of(dir: &std::path::Path, prefix: &str) -> Vec<(String, Vec<u8>)> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap())
        .filter(|entry| entry.file_name().to_string_lossy().starts_with(prefix))
        .map(|entry| {
            (
                entry.file_name().to_string_lossy().into_owned(),
                std::fs::read(entry.path()).unwrap(),
            )
        })
        .collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_store_tokens_survive_a_restart_and_are_sealed_at_rest() {
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
    let dir = std::env::temp_dir().join(format!("litellm-per-user-store-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("gateway.yaml");
    std::fs::write(
        &config,
        format!(
            r#"
listen: 127.0.0.1:0
store: {{sqlite_file: tokens.db}}
servers:
  - name: crm
    url: "{upstream}"
    auth: {{type: oauth2, client_id: gw, client_secret: s3cret}}
    per_user: {{redirect_uri: "{CALLBACK}"}}
api_keys:
  - {{name: alice, key: sk-alice}}
  - {{name: bob, key: sk-bob}}
"#
        ),
    )
    .unwrap();
    let serve = || {
        ServerProcess::start(
            env!("CARGO_BIN_EXE_litellm-mcp"),
            &["serve", "-c", config.to_str().unwrap()],
        )
    };
    let whoami = json!({"name": "crm__whoami", "arguments": {}});

    {
        let gateway = serve();
        authorize(&idp, &gateway.url(""), "sk-alice", "alice").await;
        let (status, body) = post_json(
            &gateway.url("/v1/mcp/tools/call"),
            "sk-alice",
            whoami.clone(),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(claims(&body)["sub"], "alice", "{body}");
    }

    // A new process over the same file: alice's call carries her token without a new
    // authorization; bob, who never authorized, still gets none.
    let gateway = serve();
    let call = gateway.url("/v1/mcp/tools/call");
    let (status, body) = post_json(&call, "sk-alice", whoami.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(claims(&body)["sub"], "alice", "{body}");
    let (status, body) = post_json(&call, "sk-bob", whoami).await;
    assert_ne!(status, 200, "{body}");
    assert!(body.to_string().contains("authorize"), "{body}");
    drop(gateway);

    // What the files hold, read before the test opens the store itself.
    let files = bytes_of(&dir, "tokens.db");
    assert!(files.iter().any(|(name, _)| name == "tokens.db"), "{dir:?}");
    let store = litellm_rs::store::Store::open(&litellm_rs::store::config::StoreSettings::sqlite(
        dir.join("tokens.db"),
    ))
    .await
    .unwrap();
    let subject = litellm_rs::core::mcp::permissions::KeyDigest::of("sk-alice").to_hex();
    let blob = store.user_token(&subject, "crm").await.unwrap().unwrap();
    store.close().await;
    let kept: Value = serde_json::from_slice(&blob).unwrap();
    let access = kept["access_token"].as_str().unwrap();
    assert!(access.len() > 16, "{access}");
    let mut secrets = vec![access.to_string()];
    if let Some(refresh) = kept["refresh_token"].as_str() {
        secrets.push(refresh.to_string());
    }
    for (name, bytes) in &files {
        for secret in &secrets {
            assert!(
                !contains(bytes, secret.as_bytes()),
                "{name} holds a token in clear text"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
