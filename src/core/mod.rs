//! The library's core.
pub mod mcp;
