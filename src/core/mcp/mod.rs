//! The MCP gateway library: connections to many MCP servers over four transports, tool
//! discovery and caching, validated tool calls, upstream authentication and
//! permissions.
//!
//! This module is the *upstream* side: it speaks to MCP servers as a client. It never
//! handles requests from downstream clients; the service does.
//!
//! # Layout
//! - [`config`]: [`McpServerConfig`], [`Transport`], [`AuthConfig`].
//! - [`error`]: [`McpError`], [`McpResult`], and the mapping to JSON-RPC codes.
//! - [`protocol`]: the JSON-RPC envelope, method names, protocol versions.
//! - [`auth`]: credentials on the wire, the OAuth 2.1 client (discovery, registration,
//!   grants, token cache), the redirect policy.
//! - [`limits`]: every bound on what an upstream can make the gateway hold or do.
//! - `transport`: streamable HTTP, legacy SSE, WebSocket and stdio connections.
//! - [`tools`]: [`tools::Tool`] and its schemas, results, validation, OpenAI format.
//! - [`server`]: [`McpServer`], one upstream: session, handshake, retries, tool cache.
//! - [`gateway`]: [`McpGateway`], the registry and the operations across servers.
//! - [`permissions`]: levels, policies, and the [`permissions::PermissionManager`].

pub mod auth;
pub mod config;
pub mod error;
pub mod gateway;
pub mod limits;
pub mod permissions;
pub mod protocol;
pub mod server;
pub mod tools;
pub(crate) mod transport;

pub(crate) use auth::same_origin_redirects;

pub use config::{AuthConfig, McpServerConfig, Secret, Transport};
pub use error::{McpError, McpResult, ServerFailure};
pub use gateway::{GatewayOptions, McpGateway, ServerInfo, ToolDiscovery};
pub use permissions::{
    Caller, PermissionLevel, PermissionManager, PermissionPolicy, PermissionRule,
};
pub use server::{
    CallOptions, ClientEra, McpServer, ProtocolPreference, RetryPolicy, ServerNotification,
    ServerOptions, ServerRequest, ServerState,
};
pub use tools::{PropertySchema, Tool, ToolInputSchema, ToolResult};
pub use transport::stdio::CommandLine;
