//! Error types of the MCP library: [`McpError`] and [`McpResult`].
//!
//! Owns every way a library call can fail and the one mapping of those failures to
//! JSON-RPC error codes ([`McpError::jsonrpc_code`]). It must not know about HTTP
//! requests from downstream clients; the service maps these errors to its faces.
//!
//! Invariants: no variant carries a credential (messages are built from redacted
//! values), and every `Display` text says what failed and what the caller can do.

use serde_json::Value;

/// Convenient alias for results of the MCP library.
pub type McpResult<T> = Result<T, McpError>;

/// Every failure of the MCP library.
///
/// The first five variants are the ones the seed document matches on; the rest cover
/// timeouts, transports, protocol violations, argument validation and permissions.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum McpError {
    /// No server (or alias) of that name is registered.
    #[error("MCP server '{server_name}' not found: register it first or check the name/alias")]
    ServerNotFound {
        /// The name or alias that was asked for.
        server_name: String,
    },

    /// The server does not offer a tool of that name (or the caller may not see it).
    #[error("tool '{tool_name}' not found on MCP server '{server_name}'")]
    ToolNotFound {
        /// The server that was asked.
        server_name: String,
        /// The tool that was asked for.
        tool_name: String,
    },

    /// The upstream refused our credentials (HTTP 401/403 that persisted after a refresh),
    /// or credentials could not be obtained (an OAuth token endpoint refused us).
    #[error("authentication with MCP server '{server_name}' failed: {message}")]
    AuthenticationError {
        /// The server whose authentication failed.
        server_name: String,
        /// What went wrong; never contains the credential itself.
        message: String,
    },

    /// The upstream answered `tools/call` with a JSON-RPC error. (A tool that ran and
    /// failed is not an error: its result has `isError: true`.)
    #[error("tool '{tool_name}' on MCP server '{server_name}' failed: {message}")]
    ToolExecutionError {
        /// The server that ran the tool.
        server_name: String,
        /// The tool that failed.
        tool_name: String,
        /// The upstream's error message.
        message: String,
        /// The upstream's JSON-RPC error code, when it sent one.
        code: Option<i64>,
        /// The upstream's JSON-RPC error data, when it sent some.
        data: Option<Value>,
    },

    /// A request to the server took longer than its timeout; a `notifications/cancelled`
    /// was sent upstream.
    #[error("MCP server '{server_name}' did not answer '{method}' within {timeout_ms} ms")]
    Timeout {
        /// The server that was slow.
        server_name: String,
        /// The JSON-RPC method that timed out.
        method: String,
        /// The timeout that fired, in milliseconds.
        timeout_ms: u64,
    },

    /// The connection to the server failed: refused, dropped, a crashed process, an HTTP
    /// status that is not part of the protocol.
    #[error("transport to MCP server '{server_name}' failed: {message}")]
    Transport {
        /// The server whose transport failed.
        server_name: String,
        /// What happened.
        message: String,
        /// Whether the request can have reached the server. Only requests that cannot
        /// have reached it are retried when they are not idempotent (`tools/call`).
        maybe_delivered: bool,
    },

    /// The server broke the protocol: a body that is not JSON-RPC, a response without a
    /// result, an unsupported protocol version.
    #[error("MCP server '{server_name}' broke the protocol: {message}")]
    Protocol {
        /// The server that misbehaved.
        server_name: String,
        /// What was wrong.
        message: String,
    },

    /// The server answered a request other than `tools/call` with a JSON-RPC error.
    #[error("MCP server '{server_name}' answered '{method}' with error {code}: {message}")]
    Rpc {
        /// The server that answered.
        server_name: String,
        /// The method that was called.
        method: String,
        /// The JSON-RPC error code.
        code: i64,
        /// The JSON-RPC error message.
        message: String,
        /// The JSON-RPC error data.
        data: Option<Value>,
    },

    /// The arguments do not match the tool's `inputSchema`; nothing was sent.
    #[error("invalid arguments for tool '{tool_name}' on '{server_name}': {field}: {message}")]
    InvalidArguments {
        /// The server of the tool.
        server_name: String,
        /// The tool whose schema rejected the arguments.
        tool_name: String,
        /// The offending field as a JSON pointer (`/city`), or `arguments` for the whole.
        field: String,
        /// What is wrong with it.
        message: String,
    },

    /// The caller's permission level is too low for the operation.
    #[error("permission denied: {operation} on '{server_name}/{tool_name}' needs {required}")]
    PermissionDenied {
        /// The server of the tool.
        server_name: String,
        /// The tool.
        tool_name: String,
        /// What was attempted (`call`, `list`).
        operation: &'static str,
        /// The level that would have been needed.
        required: crate::core::mcp::permissions::PermissionLevel,
    },

    /// The server exists but is disabled (`enabled: false`).
    #[error("MCP server '{server_name}' is disabled")]
    ServerDisabled {
        /// The disabled server.
        server_name: String,
    },

    /// A configuration value is invalid (a bad name, a duplicate, an alias cycle).
    #[error("invalid configuration: {message}")]
    InvalidConfig {
        /// What is wrong, naming the value.
        message: String,
    },

    /// Every enabled server failed during tool discovery.
    #[error("tool discovery failed on every server: {}", describe_failures(.failures))]
    DiscoveryFailed {
        /// Each failed server and why.
        failures: Vec<ServerFailure>,
    },
}

/// One server that failed during a fan-out (discovery across servers), and why.
#[derive(Debug)]
pub struct ServerFailure {
    /// The server that failed.
    pub server_name: String,
    /// Why it failed.
    pub error: McpError,
}

fn describe_failures(failures: &[ServerFailure]) -> String {
    failures
        .iter()
        .map(|f| format!("{}: {}", f.server_name, f.error))
        .collect::<Vec<_>>()
        .join("; ")
}

impl McpError {
    /// The JSON-RPC error code a downstream client should see for this error.
    ///
    /// Unknown tools and bad arguments are `-32602` (invalid params) as the MCP spec
    /// asks; an upstream's own code is passed through; everything else is `-32603`
    /// (internal error) or one of the gateway's codes in the implementation range.
    pub fn jsonrpc_code(&self) -> i64 {
        match self {
            McpError::ToolNotFound { .. } | McpError::InvalidArguments { .. } => -32602,
            McpError::ServerNotFound { .. } => -32602,
            McpError::ToolExecutionError { code: Some(c), .. } => *c,
            McpError::Rpc { code, .. } => *code,
            McpError::PermissionDenied { .. } => -32001,
            McpError::Timeout { .. } => -32002,
            McpError::AuthenticationError { .. } => -32003,
            McpError::Transport { .. } | McpError::DiscoveryFailed { .. } => -32004,
            _ => -32603,
        }
    }

    /// Whether retrying the same request may succeed: the failure was in reaching the
    /// server, not in what the server answered.
    pub fn is_transient(&self) -> bool {
        matches!(self, McpError::Transport { .. } | McpError::Timeout { .. })
    }

    /// Whether the request certainly did not reach the server, so that even a
    /// non-idempotent request (`tools/call`) may be sent again.
    pub fn certainly_not_delivered(&self) -> bool {
        matches!(
            self,
            McpError::Transport {
                maybe_delivered: false,
                ..
            }
        )
    }

    /// The server this error concerns, when there is one.
    pub fn server_name(&self) -> Option<&str> {
        match self {
            McpError::ServerNotFound { server_name }
            | McpError::ToolNotFound { server_name, .. }
            | McpError::AuthenticationError { server_name, .. }
            | McpError::ToolExecutionError { server_name, .. }
            | McpError::Timeout { server_name, .. }
            | McpError::Transport { server_name, .. }
            | McpError::Protocol { server_name, .. }
            | McpError::Rpc { server_name, .. }
            | McpError::InvalidArguments { server_name, .. }
            | McpError::PermissionDenied { server_name, .. }
            | McpError::ServerDisabled { server_name } => Some(server_name),
            McpError::InvalidConfig { .. } | McpError::DiscoveryFailed { .. } => None,
        }
    }

    pub(crate) fn config(message: impl Into<String>) -> Self {
        McpError::InvalidConfig {
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_the_spec_for_unknown_tools_and_bad_arguments() {
        let e = McpError::ToolNotFound {
            server_name: "s".into(),
            tool_name: "t".into(),
        };
        assert_eq!(e.jsonrpc_code(), -32602);
        assert_eq!(e.to_string(), "tool 't' not found on MCP server 's'");
        let e = McpError::ToolExecutionError {
            server_name: "s".into(),
            tool_name: "t".into(),
            message: "boom".into(),
            code: Some(-32000),
            data: None,
        };
        assert_eq!(e.jsonrpc_code(), -32000);
    }

    #[test]
    fn only_undelivered_transport_failures_may_be_resent() {
        let refused = McpError::Transport {
            server_name: "s".into(),
            message: "connection refused".into(),
            maybe_delivered: false,
        };
        let dropped = McpError::Transport {
            server_name: "s".into(),
            message: "stream dropped".into(),
            maybe_delivered: true,
        };
        assert!(refused.certainly_not_delivered());
        assert!(!dropped.certainly_not_delivered());
        assert!(dropped.is_transient());
    }
}
