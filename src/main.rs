//! The `litellm-mcp` binary: wires the settings file, logging, signals and the listener
//! to the library and the service. `anyhow` lives here only.
//!
//! Commands: `serve` (the HTTP service), `stdio` (the gateway as a stdio MCP server, for
//! desktop clients that launch it), `check` (validate a settings file), `tools` (what the
//! configured servers offer), `call` (call one tool), `hash-key` (the digest to put in
//! `api_keys[].key_hash`), `conformance-client` (the client the official conformance
//! suite drives, in `conformance_client.rs`).
//!
//! `serve` takes the bounds on client connections from the environment when set
//! (`LITELLM_MCP_HEADER_TIMEOUT_MS`, `LITELLM_MCP_BODY_TIMEOUT_MS`,
//! `LITELLM_MCP_WRITE_STALL_TIMEOUT_MS`, `LITELLM_MCP_MAX_CONNECTIONS`; see
//! `proxy::listener`), and fits the connection cap to the file descriptor limit.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use litellm_rs::core::mcp::permissions::KeyDigest;
use litellm_rs::core::mcp::McpGateway;
use litellm_rs::proxy::{self, AppState};
use litellm_rs::settings::Settings;

mod conformance_client;

/// mimalloc: glibc's allocator showed as about 12% of the gateway's CPU under load, with
/// its arena locks contended between worker threads (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "litellm-mcp",
    version,
    about = "An MCP gateway: many MCP servers behind one endpoint"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
struct Config {
    /// The settings file (YAML).
    #[arg(short, long, env = "LITELLM_MCP_CONFIG")]
    config: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the configured servers over HTTP (MCP at /mcp, REST at /v1/mcp).
    Serve {
        #[command(flatten)]
        config: Config,
        /// Seconds that requests in flight get to finish at shutdown.
        #[arg(long, default_value_t = 10)]
        grace_secs: u64,
    },
    /// Serve the configured servers as an MCP server on stdin/stdout.
    Stdio {
        #[command(flatten)]
        config: Config,
    },
    /// Check a settings file and print every problem with its place.
    Check {
        #[command(flatten)]
        config: Config,
    },
    /// List the tools of the configured servers as JSON.
    Tools {
        #[command(flatten)]
        config: Config,
    },
    /// Call a tool and print the result as JSON.
    Call {
        #[command(flatten)]
        config: Config,
        /// The server (or alias).
        server: String,
        /// The tool.
        tool: String,
        /// The arguments, a JSON object.
        #[arg(default_value = "{}")]
        arguments: String,
    },
    /// Print the digest of an API key (read from stdin) for `api_keys[].key_hash`.
    HashKey,
    /// Load-test an MCP endpoint: streamable HTTP, WebSocket or a stdio command.
    Bench(litellm_rs::bench::BenchArgs),
    /// The client of the official conformance suite's client scenarios (the scenario
    /// comes from `MCP_CONFORMANCE_SCENARIO`).
    ConformanceClient {
        /// The MCP server's URL.
        url: String,
    },
}

/// Logs go to stderr: stdout is protocol (`stdio`), JSON (`tools`, `call`) or the
/// `LISTENING <port>` line (`serve`). A writer thread does the writing, so that a
/// request (and its audit line) never waits on a slow terminal or pipe; when its queue
/// is full, loggers wait rather than lines being dropped. Lines still queued are
/// written when the returned guard is dropped.
fn init_logging() -> tracing_appender::non_blocking::WorkerGuard {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("litellm-mcp-log")
        // Buffered: the writer thread flushes whenever its queue is empty, so under load
        // many lines go out in one write.
        .finish(std::io::BufWriter::new(std::io::stderr()));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(writer)
        .init();
    guard
}

fn load(config: &Config) -> anyhow::Result<Settings> {
    Settings::load(&config.config).map_err(|e| anyhow::anyhow!("{}:\n{e}", config.config.display()))
}

/// The settings file, and with a `store` section the store: seeded from the file when
/// empty, then ruling servers, aliases, keys and policies (`litellm_rs::admin`).
async fn load_with_store(
    config: &Config,
) -> anyhow::Result<(Settings, Option<std::sync::Arc<litellm_rs::admin::Fleet>>)> {
    let file = load(config)?;
    let Some(store_settings) = file.store.clone() else {
        return Ok((file, None));
    };
    let text = std::fs::read_to_string(&config.config)
        .with_context(|| format!("reading {}", config.config.display()))?;
    let store = litellm_rs::store::Store::open(&store_settings)
        .await
        .context("opening the store")?;
    let (fleet, settings) = litellm_rs::admin::Fleet::open(store, &text, &file)
        .await
        .context("loading the configuration from the store")?;
    Ok((settings, Some(fleet)))
}

async fn gateway(settings: &Settings) -> anyhow::Result<McpGateway> {
    settings
        .build_gateway()
        .await
        .context("building the gateway")
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::ConformanceClient { url } => {
            let _logs = init_logging();
            conformance_client::run(&url).await?;
        }
        Command::Bench(args) => {
            litellm_rs::bench::main(args).await?;
        }
        Command::Check { config } => {
            let settings = load(&config)?;
            println!(
                "{}: ok ({} servers, {} API keys, listen {})",
                config.config.display(),
                settings.servers.len(),
                settings.api_keys.len(),
                settings.listen
            );
        }
        Command::HashKey => {
            let mut key = String::new();
            std::io::stdin()
                .read_line(&mut key)
                .context("reading the key from stdin")?;
            let key = key.trim();
            anyhow::ensure!(!key.is_empty(), "no key on stdin");
            println!("sha256:{}", KeyDigest::of(key).to_hex());
        }
        Command::Serve { config, grace_secs } => {
            let _logging = init_logging();
            let (settings, fleet) = load_with_store(&config).await?;
            let gateway = gateway(&settings).await?;
            let listener = tokio::net::TcpListener::bind(settings.listen)
                .await
                .with_context(|| format!("binding {}", settings.listen))?;
            // Stdout carries one line, for scripts and tests that bind port 0.
            println!("LISTENING {}", listener.local_addr()?.port());
            let state = AppState::new(gateway, &settings);
            if let Some(fleet) = fleet {
                state.attach_fleet(fleet);
            }
            let limits = proxy::ConnectionLimits::from_env()?.fitted_to_descriptors();
            proxy::serve_with(
                listener,
                state,
                shutdown_signal(),
                Duration::from_secs(grace_secs),
                limits,
            )
            .await?;
        }
        Command::Stdio { config } => {
            let _logging = init_logging();
            let (settings, fleet) = load_with_store(&config).await?;
            let gateway = gateway(&settings).await?;
            let state = AppState::new(gateway, &settings);
            if let Some(fleet) = fleet {
                state.attach_fleet(fleet);
            }
            proxy::stdio_face::serve(state, tokio::io::stdin(), tokio::io::stdout()).await?;
        }
        Command::Tools { config } => {
            let _logging = init_logging();
            let settings = load(&config)?;
            let gateway = gateway(&settings).await?;
            let discovery = gateway.discover_tools().await;
            let tools: Vec<serde_json::Value> = discovery
                .tools
                .iter()
                .map(|t| {
                    let mut value = serde_json::to_value(t).unwrap_or_default();
                    value["name"] = serde_json::Value::from(t.exposed_name());
                    value
                })
                .collect();
            let failures: Vec<serde_json::Value> = discovery
                .failures
                .iter()
                .map(|f| serde_json::json!({"server": f.server_name, "error": f.error.to_string()}))
                .collect();
            println!(
                "{}",
                serde_json::to_string_pretty(
                    &serde_json::json!({"tools": tools, "failures": failures})
                )?
            );
            gateway.shutdown(Duration::from_secs(5)).await;
        }
        Command::Call {
            config,
            server,
            tool,
            arguments,
        } => {
            let _logging = init_logging();
            let arguments: serde_json::Value =
                serde_json::from_str(&arguments).context("the arguments are not JSON")?;
            let settings = load(&config)?;
            let gateway = gateway(&settings).await?;
            let result = gateway.call_tool(&server, &tool, arguments).await;
            gateway.shutdown(Duration::from_secs(5)).await;
            println!("{}", serde_json::to_string_pretty(&result?.into_value())?);
        }
    }
    Ok(())
}
