//! The seed document's quick start, unchanged: register a server, discover its tools,
//! call one. Point it at a real server by editing the URL; `cargo build --examples`
//! keeps it compiling.
#[rustfmt::skip]
use litellm_rs::core::mcp::{McpGateway, McpServerConfig, AuthConfig};
#[rustfmt::skip]
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Create gateway
    let gateway = McpGateway::new();
    // Register an MCP server
    let config = McpServerConfig::new("filesystem", "https://mcp.example.com/fs")
        .with_auth(AuthConfig::bearer("your-token"))
        .with_timeout(30000);
    gateway.register_server(config).await?;
    // Discover tools
    let tools = gateway.list_all_tools().await?;
    println!("Available tools: {:?}", tools);
    // Invoke a tool
    let result = gateway.call_tool(
        "filesystem",
        "read_file",
        serde_json::json!({"path": "/etc/hostname"})
    ).await?;
    println!("Result: {:?}", result);
    Ok(())
}
