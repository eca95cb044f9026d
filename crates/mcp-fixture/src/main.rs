//! mcp-fixture: a real MCP server used by our integration tests and benchmarks. This file
//! owns the command line (clap), logging setup (stderr only), the tokio runtime, and the
//! choice between stdio mode and the network mode (HTTP, legacy SSE, WebSocket).

// Handlers return `Err(Response)` for early HTTP answers, as axum code usually does.
#![allow(clippy::result_large_err)]

mod app;
mod conn;
mod dispatch;
mod framing;
mod hostile;
mod http;
mod oauth;
mod protocol;
mod relay;
mod rpc;
mod run;
mod scope;
mod server;
mod session;
mod sse;
mod stats;
mod stdio;
mod tools;
mod ws;

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;

use crate::app::{App, Config};
use crate::protocol::EraMode;

/// The gateway's allocator, so that a baseline measured against the fixture is not
/// slowed by glibc's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// An MCP test server: faults, slowness, WebSocket edge cases, OAuth and raw speed.
#[derive(Parser, Debug)]
#[command(name = "mcp-fixture", version)]
struct Args {
    /// Serve newline-delimited JSON-RPC on stdin/stdout instead of HTTP.
    #[arg(long)]
    stdio: bool,
    /// TCP port on 127.0.0.1 (0 = any free port; printed as `LISTENING <port>`).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Extra generated tools `tool_0..tool_{N-1}` (each echoes `text`).
    #[arg(long, default_value_t = 0)]
    tools: usize,
    /// tools/list page size (0 = no pagination).
    #[arg(long, default_value_t = 0)]
    page_size: usize,
    /// Streamable HTTP answers every request with application/json (no SSE).
    #[arg(long)]
    json_response: bool,
    /// Require OAuth bearer tokens from POST /oauth/token (client credentials).
    #[arg(long)]
    oauth: bool,
    /// Lifetime of issued access tokens, in seconds.
    #[arg(long, default_value_t = 3600)]
    token_ttl_secs: u64,
    /// OAuth client id accepted by /oauth/token.
    #[arg(long, default_value = "fixture-client")]
    client_id: String,
    /// OAuth client secret accepted by /oauth/token.
    #[arg(long, default_value = "fixture-secret")]
    client_secret: String,
    /// "Name: value" every MCP request must carry (repeatable), else 401.
    #[arg(long = "require-header", value_parser = parse_header)]
    require_header: Vec<(String, String)>,
    /// Newest initialize-era protocol version supported (emulates older servers).
    #[arg(long, default_value = "2025-11-25", value_parser = parse_version)]
    max_version: &'static str,
    /// Which protocol eras to speak.
    #[arg(long, value_enum, default_value_t = EraMode::Both)]
    era: EraMode,
    /// Delay before answering tools/list, in milliseconds.
    #[arg(long, default_value_t = 0)]
    list_delay_ms: u64,
    /// `ttlMs` cache hint on modern list results, in milliseconds.
    #[arg(long, default_value_t = 0)]
    ttl_ms: u64,
    /// Be a plain HTTP relay to this URL instead of an MCP server (benchmarks' floor).
    #[arg(long, value_name = "URL")]
    relay: Option<String>,
    /// Be a hostile upstream instead (see `hostile/mod.rs`).
    #[arg(long, value_enum)]
    hostile: Option<hostile::Mode>,
    /// `--hostile stdio-tool-bomb`: pages of tools/list.
    #[arg(long, default_value_t = 200)]
    pages: usize,
    /// `--hostile stdio-tool-bomb`: tools per page.
    #[arg(long, default_value_t = 5000)]
    page_tools: usize,
    /// `--hostile http`: where `/cross` redirects.
    #[arg(long, value_name = "URL")]
    redirect_to: Option<String>,
}

fn parse_header(s: &str) -> Result<(String, String), String> {
    let (name, value) = s
        .split_once(':')
        .ok_or_else(|| format!("expected \"Name: value\", got {s:?}"))?;
    let name = name.trim().to_ascii_lowercase();
    axum::http::HeaderName::from_bytes(name.as_bytes())
        .map_err(|e| format!("bad header name {name:?}: {e}"))?;
    Ok((name, value.trim().to_owned()))
}

fn parse_version(s: &str) -> Result<&'static str, String> {
    protocol::LEGACY_VERSIONS
        .iter()
        .copied()
        .find(|v| *v == s)
        .ok_or_else(|| format!("supported: {}", protocol::LEGACY_VERSIONS.join(", ")))
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    if let Some(mode) = args.hostile {
        return run_hostile(mode, args);
    }
    let cfg = Config {
        stdio: args.stdio,
        json_response: args.json_response,
        page_size: args.page_size,
        list_delay_ms: args.list_delay_ms,
        ttl_ms: args.ttl_ms,
        oauth: args.oauth,
        token_ttl_secs: args.token_ttl_secs,
        client_id: args.client_id,
        client_secret: args.client_secret,
        require_headers: args.require_header,
        max_version: args.max_version,
        era: args.era,
    };
    let app = Arc::new(App::new(cfg, args.tools));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mcp-fixture: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if args.stdio {
        let code = runtime.block_on(stdio::run(app));
        // Don't wait for the blocking stdin reader thread.
        std::process::exit(code);
    }
    let served = match args.relay {
        Some(target) => runtime.block_on(relay::run(target, args.port)),
        None => runtime.block_on(server::run(app, args.port)),
    };
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mcp-fixture: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_hostile(mode: hostile::Mode, args: Args) -> ExitCode {
    let options = hostile::Options {
        pages: args.pages,
        page_tools: args.page_tools,
        redirect_to: args.redirect_to,
    };
    if mode != hostile::Mode::Http {
        std::process::exit(hostile::stdio::run(mode, &options));
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mcp-fixture: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(hostile::http::run(options, args.port)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mcp-fixture: {e}");
            ExitCode::FAILURE
        }
    }
}
