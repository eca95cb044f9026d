//! The `litellm-mcp` binary.
//!
//! Today it exposes the library from a shell: `tools` lists what one server offers and
//! `call` calls one of its tools. The service (`serve`, `stdio`, `check`, …) comes with
//! the gateway-service work. `anyhow` lives here only.

use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use litellm_rs::core::mcp::{McpGateway, McpServerConfig, Transport};

#[derive(Parser)]
#[command(name = "litellm-mcp", version, about = "An MCP gateway")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
struct Target {
    /// The server: an http(s):// or ws(s):// URL, or a stdio command line.
    #[arg(long)]
    url: String,
    /// The transport; inferred from the URL when omitted.
    #[arg(long, value_parser = parse_transport)]
    transport: Option<Transport>,
    /// Timeout of each request, in milliseconds.
    #[arg(long, default_value_t = 30_000)]
    timeout_ms: u64,
}

#[derive(Subcommand)]
enum Command {
    /// List a server's tools as JSON.
    Tools {
        #[command(flatten)]
        target: Target,
    },
    /// Call a tool with JSON arguments and print the result as JSON.
    Call {
        #[command(flatten)]
        target: Target,
        /// The tool's name.
        tool: String,
        /// The arguments, a JSON object.
        #[arg(default_value = "{}")]
        arguments: String,
    },
}

fn parse_transport(text: &str) -> Result<Transport, String> {
    serde_json::from_value(serde_json::Value::from(text))
        .map_err(|_| "expected http, sse, websocket or stdio".to_string())
}

async fn gateway_for(target: &Target) -> anyhow::Result<McpGateway> {
    let mut config = McpServerConfig::new("server", &target.url).with_timeout(target.timeout_ms);
    if let Some(transport) = target.transport {
        config = config.with_transport(transport);
    }
    let gateway = McpGateway::new();
    gateway.register_server(config).await?;
    Ok(gateway)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let (gateway, output) = match cli.command {
        Command::Tools { target } => {
            let gateway = gateway_for(&target).await?;
            let tools = gateway.get_server("server").await?.list_tools().await?;
            (gateway, serde_json::to_value(tools.tools())?)
        }
        Command::Call {
            target,
            tool,
            arguments,
        } => {
            let arguments: serde_json::Value =
                serde_json::from_str(&arguments).context("the arguments are not JSON")?;
            let gateway = gateway_for(&target).await?;
            let result = gateway.call_tool("server", &tool, arguments).await?;
            (gateway, result.into_value())
        }
    };
    println!("{}", serde_json::to_string_pretty(&output)?);
    gateway.shutdown(Duration::from_secs(5)).await;
    Ok(())
}
