//! litellm-rs: an MCP gateway.
pub mod core;
