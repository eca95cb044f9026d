//! Placeholder; replaced by the fixture server.
fn main() {}
