//! The library's OAuth 2.1 client against real parts: a certified OpenID provider (npm
//! `oidc-provider`, `tests/idp/provider.mjs`) as the authorization server, in front of a
//! third-party MCP server that verifies its tokens (the TypeScript SDK's bearer-auth
//! middleware, `tests/servers/ts_protected_server.mjs`). Everything is discovered from
//! the server's 401: its protected-resource metadata, the provider's metadata, dynamic
//! registration; then client credentials, or the authorization code flow with PKCE
//! through a headless sign-in, and a refresh when the token expires.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::ServerProcess;
use futures::future::BoxFuture;
use litellm_rs::core::mcp::auth::per_user::{MemoryTokenStore, TokenStore, UserAuthorizations};
use litellm_rs::core::mcp::auth::{
    AuthorizationHandler, AuthorizationRequest, OAuthConfig, OAuthError,
};
use litellm_rs::core::mcp::{AuthConfig, CallOptions, McpGateway, McpServerConfig, Secret};
use serde_json::{json, Value};

fn provider(extra: &[&str]) -> ServerProcess {
    let script = common::repo_root().join("tests/idp/provider.mjs");
    let mut args = vec![script.to_str().unwrap(), "--exit-on-stdin-eof"];
    args.extend_from_slice(extra);
    ServerProcess::start(common::node(), &args)
}

fn protected_server(issuer: &str) -> ServerProcess {
    let script = common::repo_root().join("tests/servers/ts_protected_server.mjs");
    ServerProcess::start(
        common::node(),
        &[
            script.to_str().unwrap(),
            "--issuer",
            issuer,
            "--exit-on-stdin-eof",
        ],
    )
}

/// The claims of the token the server verified, from its `whoami` tool.
async fn whoami(gateway: &McpGateway) -> Value {
    whoami_as(gateway, None).await
}

/// [`whoami`] with a call's own credential.
async fn whoami_as(gateway: &McpGateway, credential: Option<Secret>) -> Value {
    let options = CallOptions {
        credential,
        ..CallOptions::default()
    };
    let result = gateway
        .call_tool_with("crm", "whoami", json!({}), options)
        .await
        .unwrap();
    let value = serde_json::to_value(&result).unwrap();
    let text = value["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("{value}"));
    serde_json::from_str(text).unwrap()
}

/// Signs in at the test provider as its current user without a browser: follows the
/// provider's own redirects (keeping its cookies) and stops at the redirect URI.
struct HeadlessSignIn {
    calls: AtomicUsize,
}

impl AuthorizationHandler for HeadlessSignIn {
    fn authorize<'a>(
        &'a self,
        request: &'a AuthorizationRequest,
    ) -> BoxFuture<'a, Result<String, String>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Box::pin(sign_in(request.url.clone(), request.redirect_uri.clone()))
    }
}

/// The headless sign-in: follows the provider's redirects from `url` (keeping its
/// cookies) and returns the redirect to `redirect_uri`.
async fn sign_in(url: url::Url, redirect_uri: String) -> Result<String, String> {
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.url().as_str().starts_with(&redirect_uri) {
                attempt.stop()
            } else if attempt.previous().len() > 10 {
                attempt.error("too many redirects")
            } else {
                attempt.follow()
            }
        }))
        .build()
        .map_err(|e| e.to_string())?;
    let response = http.get(url).send().await.map_err(|e| e.to_string())?;
    let location = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| format!("no redirect back ({})", response.status()))?;
    response
        .url()
        .join(location)
        .map(|u| u.to_string())
        .map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_credentials_with_a_discovered_token_endpoint() {
    let idp = provider(&[
        "--client",
        r#"{"client_id":"gw","client_secret":"s3cret","grant_types":["client_credentials"]}"#,
    ]);
    let issuer = idp.url("");
    let server = protected_server(&issuer);
    let url = server.url("/mcp");
    let gateway = McpGateway::new();
    gateway
        .register_server(
            McpServerConfig::new("crm", &url)
                .with_auth(AuthConfig::oauth_client_credentials("gw", "s3cret")),
        )
        .await
        .unwrap();
    let claims = whoami(&gateway).await;
    assert_eq!(claims["sub"], "gw", "{claims}");
    assert_eq!(claims["client_id"], "gw", "{claims}");
    // RFC 8707: the token is for this server (the PRM's `resource`), by the provider.
    assert_eq!(claims["aud"], url, "{claims}");
    assert_eq!(claims["iss"], issuer, "{claims}");
    // The PRM's scopes_supported were asked for.
    assert_eq!(claims["scope"], "mcp:read mcp:call", "{claims}");

    // A wrong secret ends in an authentication error that names the refusal, not the secret.
    let refused = McpGateway::new();
    refused
        .register_server(McpServerConfig::new("crm", &url).with_auth(
            AuthConfig::oauth_client_credentials("gw", "wrong-s3cret-value"),
        ))
        .await
        .unwrap();
    let error = refused
        .call_tool("crm", "whoami", json!({}))
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(text.contains("invalid_client"), "{text}");
    assert!(!text.contains("wrong-s3cret-value"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorization_code_with_registration_pkce_and_refresh() {
    // Tokens live 4 s, so the library refreshes them (30 s margin capped at a tenth).
    let idp = provider(&["--access-token-ttl", "4", "--user", "bob"]);
    let issuer = idp.url("");
    let server = protected_server(&issuer);
    let url = server.url("/mcp");
    let handler = Arc::new(HeadlessSignIn {
        calls: AtomicUsize::new(0),
    });
    let config = OAuthConfig::authorization_code("http://127.0.0.1:1/callback", handler.clone())
        .with_client_name("upstream_oauth test");
    let gateway = McpGateway::new();
    gateway
        .register_server(McpServerConfig::new("crm", &url).with_auth(AuthConfig::oauth(config)))
        .await
        .unwrap();

    let claims = whoami(&gateway).await;
    assert_eq!(claims["sub"], "bob", "{claims}");
    assert_eq!(claims["team"], "red", "{claims}");
    assert_eq!(claims["aud"], url, "{claims}");
    assert_eq!(handler.calls.load(Ordering::SeqCst), 1);

    // Concurrent calls share the cached token: no new sign-in.
    let calls = (0..6).map(|_| whoami(&gateway));
    for claims in futures::future::join_all(calls).await {
        assert_eq!(claims["sub"], "bob", "{claims}");
    }
    assert_eq!(handler.calls.load(Ordering::SeqCst), 1);

    // After expiry the refresh token gets a new access token, still without a person.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let claims = whoami(&gateway).await;
    assert_eq!(claims["sub"], "bob", "{claims}");
    assert_eq!(
        handler.calls.load(Ordering::SeqCst),
        1,
        "refreshed, not signed in again"
    );
}

async fn login_as(idp: &ServerProcess, sub: &str) {
    let response = reqwest::Client::new()
        .post(idp.url("/test/login-as"))
        .json(&json!({"sub": sub}))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_user_authorizes_once_and_their_calls_carry_their_own_token() {
    let idp = provider(&[
        "--access-token-ttl",
        "4",
        "--client",
        r#"{"client_id":"gw","client_secret":"s3cret","grant_types":["client_credentials"]}"#,
    ]);
    let server = protected_server(&idp.url(""));
    let url = server.url("/mcp");
    // The gateway's own credentials serve the session; each call carries its user's token.
    let gateway = McpGateway::new();
    gateway
        .register_server(
            McpServerConfig::new("crm", &url)
                .with_auth(AuthConfig::oauth_client_credentials("gw", "s3cret")),
        )
        .await
        .unwrap();
    let store = Arc::new(MemoryTokenStore::default());
    let callback = "http://127.0.0.1:1/oauth/callback";
    let users = UserAuthorizations::new(
        "crm",
        &url,
        callback,
        None,
        reqwest::Client::new(),
        store.clone(),
    )
    .unwrap();

    let error = users.token("key-alice").await.unwrap_err();
    assert!(matches!(error, OAuthError::NotAuthorized { .. }), "{error}");
    assert!(error.to_string().contains("authorize"), "{error}");

    let mut redirects = Vec::new();
    for (subject, user) in [("key-alice", "alice"), ("key-bob", "bob")] {
        login_as(&idp, user).await;
        let authorize = users.begin(subject).await.unwrap();
        let redirect = sign_in(authorize, callback.to_string()).await.unwrap();
        assert_eq!(users.complete(&redirect).await.unwrap(), subject);
        redirects.push(redirect);
    }
    // A redirect is good once.
    assert!(users.complete(&redirects[0]).await.is_err());

    let alice = users.token("key-alice").await.unwrap();
    let bob = users.token("key-bob").await.unwrap();
    assert_ne!(alice.expose(), bob.expose());
    assert_eq!(
        whoami_as(&gateway, Some(alice.clone())).await["sub"],
        "alice"
    );
    assert_eq!(whoami_as(&gateway, Some(bob)).await["sub"], "bob");
    assert_eq!(whoami(&gateway).await["sub"], "gw");

    // The store holds each (subject, server) apart; a refresh keeps the user.
    assert!(store.get("key-alice", "crm").await.unwrap().is_some());
    tokio::time::sleep(Duration::from_secs(5)).await;
    let refreshed = users.token("key-alice").await.unwrap();
    assert_ne!(
        refreshed.expose(),
        alice.expose(),
        "a new access token after expiry"
    );
    assert_eq!(whoami_as(&gateway, Some(refreshed)).await["sub"], "alice");

    // Removed by the user: their calls need a new authorization; the other user's not.
    assert!(users.forget("key-bob").await.unwrap());
    let error = users.token("key-bob").await.unwrap_err();
    assert!(matches!(error, OAuthError::NotAuthorized { .. }), "{error}");
    assert!(users.token("key-alice").await.is_ok());

    // A refresh token the provider refuses ends in "authorize again", and the tokens are
    // gone. (The blob is the library's own JSON; the store only keeps it.)
    let blob = store.get("key-alice", "crm").await.unwrap().unwrap();
    let mut kept: Value = serde_json::from_slice(&blob).unwrap();
    kept["refresh_token"] = json!("not-a-refresh-token");
    kept["refresh_after"] = json!(0);
    store
        .put("key-alice", "crm", serde_json::to_vec(&kept).unwrap())
        .await
        .unwrap();
    let error = users.token("key-alice").await.unwrap_err();
    assert!(matches!(error, OAuthError::NotAuthorized { .. }), "{error}");
    assert!(store.get("key-alice", "crm").await.unwrap().is_none());
}
