//! Hostile upstreams (`--hostile MODE`): small MCP servers that answer the handshake
//! and then misbehave on purpose, for the gateway's tests of its bounds
//! (`tests/hostile_upstreams.rs`). They share nothing with the well-behaved fixture but
//! the command line.
//!
//! - `stdio`: a stdio server whose tools misbehave on request: overlong and non-UTF-8
//!   lines on stdout and stderr, stderr floods with and without newlines.
//! - `stdio-deaf`: a stdio server that never reads stdin and never answers.
//! - `stdio-tool-bomb`: a stdio server whose `tools/list` has `--pages` pages of
//!   `--page-tools` tools each.
//! - `http`: streamable HTTP and legacy SSE whose streams send a line that never ends
//!   (at full speed, or a byte at a time), plus redirects to the same origin and to
//!   `--redirect-to`.
//!
//! Every mode is bounded by its peer: a stream ends when the gateway hangs up, a stdio
//! server when its stdin closes or it is killed.

pub mod http;
pub mod stdio;

use serde_json::{json, Value};

/// Which hostile server to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// A stdio server with misbehaving tools.
    Stdio,
    /// A stdio server that never reads stdin.
    StdioDeaf,
    /// A stdio server with a huge tool list.
    StdioToolBomb,
    /// Streamable HTTP and legacy SSE with endless lines, and redirects.
    Http,
}

/// Options of the hostile modes.
#[derive(Debug, Clone)]
pub struct Options {
    /// Pages of the tool bomb.
    pub pages: usize,
    /// Tools per page of the tool bomb.
    pub page_tools: usize,
    /// Where `/cross` redirects (another origin).
    pub redirect_to: Option<String>,
}

/// A JSON-RPC result.
pub fn result(id: &Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

/// A JSON-RPC error.
pub fn error(id: &Value, code: i64, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
}

/// A text tool result.
pub fn text(text: &str) -> Value {
    json!({"content": [{"type": "text", "text": text}]})
}

/// A tool that takes any arguments.
pub fn tool(name: &str) -> Value {
    json!({"name": name, "description": format!("hostile: {name}"), "inputSchema": {"type": "object"}})
}

/// The `initialize` result, echoing the client's version.
pub fn initialize_result(request: &Value) -> Value {
    let version = request
        .pointer("/params/protocolVersion")
        .and_then(Value::as_str)
        .unwrap_or("2025-06-18");
    json!({
        "protocolVersion": version,
        "capabilities": {"tools": {}},
        "serverInfo": {"name": "mcp-fixture-hostile", "version": env!("CARGO_PKG_VERSION")}
    })
}

/// What a request of the handshake gets, shared by every mode: `None` for the
/// methods a mode answers itself.
pub fn common_answer(request: &Value) -> Option<Value> {
    let id = request.get("id")?;
    let method = request.get("method").and_then(Value::as_str)?;
    match method {
        "initialize" => Some(result(id, initialize_result(request))),
        "ping" => Some(result(id, json!({}))),
        "server/discover" => Some(error(id, -32601, "method not found")),
        "tools/list" | "tools/call" => None,
        _ => Some(error(id, -32601, "method not found")),
    }
}
