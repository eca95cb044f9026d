//! The `litellm-mcp` binary.
fn main() {}
