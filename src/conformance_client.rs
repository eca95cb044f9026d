//! `litellm-mcp conformance-client URL`: the client the official conformance suite
//! drives (`npx @modelcontextprotocol/conformance client --command "litellm-mcp
//! conformance-client"`), written only against the library's public API.
//!
//! The suite's contract: the server URL is the last argument; `MCP_CONFORMANCE_SCENARIO`
//! names the scenario, `MCP_CONFORMANCE_PROTOCOL_VERSION` the revision to speak (the
//! stateless era for `2026-07-28`, sessions otherwise), and `MCP_CONFORMANCE_CONTEXT`
//! carries a scenario's credentials as JSON. The step that needs a person is headless
//! here: the authorization URL is fetched without following the redirect, and the
//! `Location` it redirects to (with `code`, `state`, `iss`) is handed back to the
//! library. Exit status 0 when every step worked, 1 otherwise (with the error on
//! stderr): scenarios that expect the client to refuse count on that.

use std::sync::Arc;

use anyhow::Context;
use futures::future::BoxFuture;
use litellm_rs::core::mcp::auth::{AuthorizationHandler, AuthorizationRequest, OAuthConfig};
use litellm_rs::core::mcp::protocol::RpcError;
use litellm_rs::core::mcp::{
    AuthConfig, CallOptions, McpServer, McpServerConfig, ProtocolPreference, ServerOptions,
    ServerRequest,
};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The Client ID Metadata Document URL the suite's authorization servers accept.
const METADATA_DOCUMENT_URL: &str = "https://conformance-test.local/client-metadata.json";
/// The redirect URI registered for the authorization code flow (never listened on: the
/// headless handler takes the redirect from `Location`).
const REDIRECT_URI: &str = "http://localhost:3000/callback";

/// The headless stand-in for a person: GET the authorization URL, do not follow the
/// redirect, return its `Location`.
struct HeadlessAuthorization {
    http: reqwest::Client,
}

impl AuthorizationHandler for HeadlessAuthorization {
    fn authorize<'a>(
        &'a self,
        request: &'a AuthorizationRequest,
    ) -> BoxFuture<'a, Result<String, String>> {
        Box::pin(async move {
            let response = self
                .http
                .get(request.url.clone())
                .send()
                .await
                .map_err(|e| format!("the authorization endpoint could not be reached: {e}"))?;
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| {
                    format!(
                        "the authorization endpoint answered {} without a redirect",
                        response.status()
                    )
                })?;
            request
                .url
                .join(location)
                .map(|u| u.to_string())
                .map_err(|e| format!("the redirect is not a URL: {e}"))
        })
    }
}

fn context() -> Value {
    std::env::var("MCP_CONFORMANCE_CONTEXT")
        .ok()
        .and_then(|raw| serde_json::from_str(&raw).ok())
        .unwrap_or(Value::Null)
}

fn text(context: &Value, field: &str) -> anyhow::Result<String> {
    context
        .get(field)
        .and_then(Value::as_str)
        .map(str::to_string)
        .with_context(|| format!("MCP_CONFORMANCE_CONTEXT has no '{field}'"))
}

/// The credentials a scenario calls for.
fn auth_for(scenario: &str, context: &Value) -> anyhow::Result<Option<AuthConfig>> {
    let headless = Arc::new(HeadlessAuthorization {
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()?,
    });
    let config = match scenario {
        "auth/client-credentials-basic" => OAuthConfig::client_credentials(
            text(context, "client_id")?,
            text(context, "client_secret")?,
        ),
        "auth/client-credentials-jwt" => OAuthConfig::client_credentials_private_key_jwt(
            text(context, "client_id")?,
            text(context, "private_key_pem")?,
            text(context, "signing_algorithm").unwrap_or_else(|_| "ES256".to_string()),
        ),
        "auth/pre-registration" => OAuthConfig::authorization_code(REDIRECT_URI, headless)
            .with_client(
                text(context, "client_id")?,
                text(context, "client_secret").ok(),
            ),
        other if other.starts_with("auth/") => {
            OAuthConfig::authorization_code(REDIRECT_URI, headless)
                .with_client_metadata_document(METADATA_DOCUMENT_URL)
                .with_client_name("litellm-rs conformance client")
        }
        _ => return Ok(None),
    };
    Ok(Some(AuthConfig::oauth(config)))
}

/// Runs the scenario named in the environment against `url`.
///
/// # Errors
/// Whatever step failed, for stderr and exit status 1.
pub(crate) async fn run(url: &str) -> anyhow::Result<()> {
    let scenario = std::env::var("MCP_CONFORMANCE_SCENARIO").unwrap_or_default();
    let version = std::env::var("MCP_CONFORMANCE_PROTOCOL_VERSION").unwrap_or_default();
    let context = context();
    let mut config = McpServerConfig::new("conformance", url).with_timeout(20_000);
    if let Some(auth) = auth_for(&scenario, &context)? {
        config = config.with_auth(auth);
    }
    let options = ServerOptions {
        protocol: if version.as_str() >= "2026" {
            ProtocolPreference::Stateless
        } else {
            ProtocolPreference::Sessions
        },
        client_name: "litellm-rs-conformance-client".to_string(),
        ..ServerOptions::default()
    };
    let tasks = TaskTracker::new();
    let cancel = CancellationToken::new();
    let server = McpServer::new(
        config,
        reqwest::Client::new(),
        options,
        tasks.clone(),
        cancel.clone(),
    )?;
    let outcome = exercise(&server, &scenario, &context).await;
    server.close().await;
    cancel.cancel();
    tasks.close();
    tasks.wait().await;
    outcome
}

/// Lists the tools and calls the ones the scenario is about: those of the context's
/// `toolCalls` when it names some, else every listed tool with arguments made from its
/// schema. Every call is made even when one fails; the first failure is returned.
async fn exercise(server: &McpServer, scenario: &str, context: &Value) -> anyhow::Result<()> {
    server.connect().await.context("connect")?;
    let tools = server.list_tools().await.context("tools/list")?;
    let calls: Vec<(String, Value)> = match context.get("toolCalls").and_then(Value::as_array) {
        Some(calls) => calls
            .iter()
            .filter_map(|c| {
                let name = c.get("name")?.as_str()?.to_string();
                Some((
                    name,
                    c.get("arguments").cloned().unwrap_or_else(|| json!({})),
                ))
            })
            .collect(),
        None => tools
            .tools()
            .iter()
            .map(|t| {
                let schema = serde_json::to_value(&t.input_schema).unwrap_or(Value::Null);
                (t.name.clone(), arguments_for(&schema))
            })
            .collect(),
    };
    eprintln!(
        "scenario {scenario}: calls {:?}",
        calls.iter().map(|c| &c.0).collect::<Vec<_>>()
    );
    let (asker, mut asked) = tokio::sync::mpsc::unbounded_channel::<ServerRequest>();
    let answering = tokio::spawn(async move {
        while let Some(request) = asked.recv().await {
            let answer = answer(&request.method, &request.params);
            let _ = request.reply.send(answer);
        }
    });
    let mut first_failure = None;
    for (name, arguments) in calls {
        let options = CallOptions {
            server_requests: Some(asker.clone()),
            ..CallOptions::default()
        };
        match server.call_tool_with(&name, arguments, options).await {
            Ok(result) => eprintln!("tools/call {name}: isError={}", result.is_error()),
            Err(error) => {
                eprintln!("tools/call {name} failed: {error}");
                first_failure.get_or_insert(anyhow::anyhow!("tools/call {name}: {error}"));
            }
        }
    }
    drop(asker);
    let _ = answering.await;
    match first_failure {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

/// Arguments that fit a tool's input schema: each required property's `default`, else
/// a value of its type.
fn arguments_for(schema: &Value) -> Value {
    let mut arguments = serde_json::Map::new();
    let properties = schema.get("properties").and_then(Value::as_object);
    let required = schema.get("required").and_then(Value::as_array);
    for name in required.into_iter().flatten().filter_map(Value::as_str) {
        let property = properties.and_then(|p| p.get(name)).unwrap_or(&Value::Null);
        arguments.insert(name.to_string(), example_of(property));
    }
    Value::Object(arguments)
}

fn example_of(property: &Value) -> Value {
    if let Some(default) = property.get("default") {
        return default.clone();
    }
    if let Some(first) = property
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
    {
        return first.clone();
    }
    match property.get("type").and_then(Value::as_str) {
        Some("integer") => json!(1),
        Some("number") => json!(1.5),
        Some("boolean") => json!(true),
        Some("array") => json!([]),
        Some("object") => arguments_for(property),
        _ => json!("conformance"),
    }
}

/// What the client answers a server's request: elicitation is accepted with the
/// schema's defaults applied (SEP-1034), sampling gets a fixed text, roots none.
fn answer(method: &str, params: &Value) -> Result<Value, RpcError> {
    match method {
        "elicitation/create" => {
            let mut content = serde_json::Map::new();
            let properties = params
                .pointer("/requestedSchema/properties")
                .and_then(Value::as_object);
            for (name, property) in properties.into_iter().flatten() {
                if let Some(default) = property.get("default") {
                    content.insert(name.clone(), default.clone());
                }
            }
            Ok(json!({"action": "accept", "content": content}))
        }
        "sampling/createMessage" => Ok(json!({
            "role": "assistant",
            "content": {"type": "text", "text": "conformance"},
            "model": "litellm-rs-conformance",
            "stopReason": "endTurn"
        })),
        "roots/list" => Ok(json!({"roots": []})),
        other => Err(RpcError {
            code: -32601,
            message: format!("no handler for {other}"),
            data: None,
        }),
    }
}
