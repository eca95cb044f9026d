//! litellm-rs: an MCP gateway.
//!
//! A library that connects to many MCP (Model Context Protocol) servers, discovers and
//! caches their tools, validates arguments and calls tools, with upstream
//! authentication and permissions per API key, team and organisation; and a service,
//! the `litellm-mcp` binary, built on it.
//!
//! # Layout
//! - [`core::mcp`]: the library (the upstream side), as the project's seed document
//!   describes it.
//! - [`identity`]: who a downstream caller is: API keys, and access tokens from an
//!   identity provider (the gateway as an OAuth 2.1 resource server).
//! - [`proxy`]: the service (downstream faces, sessions, REST, metrics).
//! - [`store`]: run-time state in a database (SQLite, or PostgreSQL for a fleet).
//! - [`admin`]: the admin API (`/v1/admin`) and how the store's configuration reaches
//!   the running service on every replica.
//! - [`settings`]: the service's settings file: its format, parsing and validation.
//! - [`bench`]: `litellm-mcp bench`, a load generator for any MCP endpoint (raw JSON-RPC,
//!   not through the library), to measure what a call through the gateway costs.

pub mod admin;
pub mod bench;
pub mod core;
pub mod identity;
pub mod proxy;
pub mod settings;
pub mod store;
