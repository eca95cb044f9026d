//! The seed document's snippets, each compiled unchanged inside a test, and run where
//! they need no network: the struct literal, the auth constructors, the permission
//! example (with the decisions its comments promise), custom tools, and the error
//! match. The snippets that talk to servers run against live servers in
//! `tests/upstream_*.rs`; here they are compiled and run against local addresses.
#![allow(
    unused_variables,
    unused_imports,
    clippy::unwrap_used,
    clippy::let_and_return
)]

use std::collections::HashMap;

use litellm_rs::core::mcp::permissions::{PermissionLevel, PermissionManager};
use litellm_rs::core::mcp::{McpGateway, McpServerConfig};

#[test]
#[rustfmt::skip]
fn struct_literal_has_exactly_the_seven_fields() {
use litellm_rs::core::mcp::{McpServerConfig, Transport, AuthConfig};
let config = McpServerConfig {
    name: "my-server".to_string(),
    url: "https://mcp.example.com".to_string(),
    transport: Transport::Http,
    enabled: true,
    timeout_ms: 30000,
    auth: Some(AuthConfig::bearer("token")),
    static_headers: HashMap::new(),
};
    assert!(config.validate().is_ok());
    assert!(!format!("{config:?}").contains("\"token\""));
}

#[test]
#[rustfmt::skip]
fn auth_constructors() {
    use litellm_rs::core::mcp::AuthConfig;
    let all = [
// Bearer Token
AuthConfig::bearer("your-jwt-token"),
// API Key
AuthConfig::api_key("your-api-key"),
// Basic Auth
AuthConfig::basic("username", "password"),
// OAuth 2.0
AuthConfig::oauth2("client_id", "client_secret", "https://auth.example.com/token"),
    ];
    let printed = format!("{all:?}");
    for secret in ["your-jwt-token", "your-api-key", "\"password\"", "client_secret\""] {
        assert!(!printed.contains(secret), "{secret} leaked: {printed}");
    }
}

#[test]
#[rustfmt::skip]
fn permission_levels_are_ordered() {
use litellm_rs::core::mcp::permissions::{PermissionLevel, PermissionManager};
// Hierarchy: Admin > Execute > Read > Deny
let levels = [
PermissionLevel::Admin, // Full access including configuration
PermissionLevel::Execute, // Can invoke tools
PermissionLevel::Read, // Can list tools but not invoke
PermissionLevel::Deny, // No access
];
    assert!(levels.windows(2).all(|w| w[0] > w[1]));
}

#[rustfmt::skip]
fn production_policy_from_the_seed() -> litellm_rs::core::mcp::permissions::PermissionPolicy {
use litellm_rs::core::mcp::permissions::{PermissionPolicy, PermissionRule};
let policy = PermissionPolicy {
    name: "production".to_string(),
    default_level: PermissionLevel::Deny,
    rules: vec![
        // Allow specific tool
        PermissionRule::new("filesystem", "read_file", PermissionLevel::Execute),
        // Allow all tools from a server
        PermissionRule::new("database", "*", PermissionLevel::Execute),
        // Deny dangerous operations
        PermissionRule::new("*", "delete_*", PermissionLevel::Deny),
    ],
};
    policy
}

#[test]
#[rustfmt::skip]
fn permission_manager_decides_as_the_seed_says() {
    let production_policy = production_policy_from_the_seed();
    let development_policy = litellm_rs::core::mcp::permissions::PermissionPolicy {
        name: "development".to_string(),
        default_level: PermissionLevel::Execute,
        rules: vec![],
    };
let mut manager = PermissionManager::new();
manager.set_default_level(PermissionLevel::Read);
// Set policy for specific API key
manager.set_key_policy("sk-prod-123", production_policy);
manager.set_key_policy("sk-dev-456", development_policy);
// Check access
let can_execute = manager.check_tool_access(
    Some("sk-prod-123"),
    "filesystem",
    "read_file"
);
    assert!(can_execute);
    let prod = Some("sk-prod-123");
    assert!(manager.check_tool_access(prod, "database", "run_query"));
    assert!(!manager.check_tool_access(prod, "database", "delete_table"));
    assert!(!manager.check_tool_access(prod, "filesystem", "delete_file"));
    assert!(!manager.check_tool_access(prod, "filesystem", "write_file"));
    assert!(!manager.check_tool_access(prod, "web", "fetch"));
    assert!(manager.check_tool_access(Some("sk-dev-456"), "web", "fetch"));
    // Unknown keys get the default level, Read: they may list but not call.
    assert!(!manager.check_tool_access(Some("sk-unknown"), "web", "fetch"));
}

#[test]
#[rustfmt::skip]
fn custom_tool_definition() {
use litellm_rs::core::mcp::tools::{Tool, ToolInputSchema, PropertySchema};
let tool = Tool::new("get_weather", "Get current weather for a location")
    .with_input_schema(
        ToolInputSchema::new()
            .with_property("city", PropertySchema::string("City name"))
            .with_property("units", PropertySchema::string("Temperature units (celsius/fahrenheit)"))
            .with_required(vec!["city".to_string()])
    );
    let function = tool.to_openai_function();
    assert_eq!(function["function"]["name"], "get_weather");
    assert_eq!(function["function"]["parameters"]["properties"]["city"]["type"], "string");
    assert_eq!(function["function"]["parameters"]["required"][0], "city");
}

/// The OpenAI conversion snippet, run by the live tests with a gateway that has servers.
#[rustfmt::skip]
pub async fn openai_functions(gateway: &McpGateway) -> Result<Vec<serde_json::Value>, Box<dyn std::error::Error>> {
let tools = gateway.list_all_tools().await?;
// Convert to OpenAI functions
let functions: Vec<serde_json::Value> = tools
    .iter()
    .map(|t| t.to_openai_function())
    .collect();
    Ok(functions)
}

#[tokio::test]
#[rustfmt::skip]
async fn registry_snippet() -> Result<(), Box<dyn std::error::Error>> {
    let filesystem_config = McpServerConfig::new("filesystem", "http://127.0.0.1:9/mcp");
    let database_config = McpServerConfig::new("database", "ws://127.0.0.1:9/ws");
    let api_config = McpServerConfig::new("api", "http://127.0.0.1:9/sse")
        .with_transport(litellm_rs::core::mcp::Transport::Sse);
let gateway = McpGateway::new();
// Register multiple servers
gateway.register_server(filesystem_config).await?;
gateway.register_server(database_config).await?;
gateway.register_server(api_config).await?;
// List all servers
let servers = gateway.list_servers().await;
// Get specific server
let server = gateway.get_server("filesystem").await?;
    assert_eq!(servers.len(), 3);
    assert_eq!(server.name(), "filesystem");
// Unregister
gateway.unregister_server("filesystem").await;
    assert!(gateway.get_server("filesystem").await.is_err());
    assert_eq!(gateway.list_servers().await.len(), 2);
    Ok(())
}

#[tokio::test]
#[rustfmt::skip]
async fn alias_and_error_snippets() -> Result<(), Box<dyn std::error::Error>> {
    let gateway = McpGateway::new();
    gateway
        .register_server(McpServerConfig::new("filesystem", "http://127.0.0.1:9/mcp").with_timeout(2000))
        .await?;
    let args = serde_json::json!({"path": "/etc/hostname"});
// Add alias for convenience
gateway.add_alias("fs", "filesystem").await?;
    // Nothing listens on port 9: the call through the alias reaches the server's
    // transport and fails there, not with ServerNotFound.
    let through_alias = gateway.call_tool("fs", "read_file", args.clone()).await;
    assert!(matches!(through_alias, Err(litellm_rs::core::mcp::McpError::Transport { .. })), "{through_alias:?}");
    let mut seen = String::new();
use litellm_rs::core::mcp::error::McpError;
match gateway.call_tool("server", "tool", args).await {
    Ok(result) => println!("Success: {:?}", result),
    Err(McpError::ServerNotFound { server_name }) => {
        println!("Server {} not found", server_name);
        seen = server_name;
    }
    Err(McpError::ToolNotFound { server_name, tool_name }) => {
        println!("Tool {} not found on {}", tool_name, server_name);
    }
    Err(McpError::AuthenticationError { server_name, message }) => {
        println!("Auth failed for {}: {}", server_name, message);
    }
    Err(McpError::ToolExecutionError { tool_name, message, .. }) => {
        println!("Tool {} failed: {}", tool_name, message);
    }
    Err(e) => println!("Other error: {}", e),
}
    assert_eq!(seen, "server");
    Ok(())
}
