//! The core of litellm-rs. Today it holds the MCP library, [`mcp`].
pub mod mcp;
