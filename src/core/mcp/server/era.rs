//! Which protocol era a caller of an [`McpServer`](super::McpServer) speaks, and the
//! upstream channel that serves it: the one place that decides between an upstream's
//! shared session and its stateless requests.
//!
//! An upstream that speaks both eras (it answers `server/discover` and `initialize` on one
//! URL) is reached over two shared channels at most: the primary one the era probe chose
//! (stateless requests for a dual-era server), and, beside it, one shared session opened
//! with `initialize` for callers of the session era ([`ClientEra::Sessions`]), who need
//! what only a session carries (server-to-client requests during a call, resource
//! subscriptions, log levels). Never one per caller. When the upstream refuses
//! `initialize` (a stateless-only server), session-era callers go through the primary
//! channel, and the proxy translates; the refusal is remembered for
//! [`SESSION_CHANNEL_RETRY`]. A server configured `protocol: stateless`
//! ([`ProtocolPreference::Stateless`](super::ProtocolPreference)) gets no session channel.
//!
//! Also here: the `_meta` every stateless request carries, with the capabilities the
//! calling client declared rather than the gateway's own (design: `docs/protocol-eras.md`).

use std::time::Duration;

use serde_json::{json, Map, Value};

use super::super::protocol;

/// How long an upstream's refusal of `initialize` keeps session-era callers on its
/// stateless channel before the gateway tries a session again.
pub const SESSION_CHANNEL_RETRY: Duration = Duration::from_secs(60);

/// The protocol era of whoever makes a request through an [`McpServer`](super::McpServer).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ClientEra {
    /// Not said (the library used directly): the primary channel, whatever it speaks.
    #[default]
    Unspecified,
    /// A client of the `initialize` era (2024-11-05 … 2025-11-25): served through the
    /// upstream's shared session where the upstream has one to offer.
    Sessions,
    /// A client of the stateless revision (2026-07-28): served through stateless
    /// requests where the upstream speaks them.
    Stateless,
}

/// The `_meta` entries every request of the stateless revision carries. `capabilities`
/// are the calling client's own when it declared them (a stateless client's
/// `io.modelcontextprotocol/clientCapabilities`, or what a session client sent in
/// `initialize`); without them, the gateway's: all it can relay.
pub(crate) fn stateless_meta(
    client_name: &str,
    capabilities: Option<&Value>,
) -> [(&'static str, Value); 3] {
    [
        (
            "io.modelcontextprotocol/protocolVersion",
            Value::from(protocol::STATELESS_VERSION),
        ),
        (
            "io.modelcontextprotocol/clientCapabilities",
            capabilities
                .cloned()
                .unwrap_or_else(|| json!({"elicitation": {}, "sampling": {}, "roots": {}})),
        ),
        (
            "io.modelcontextprotocol/clientInfo",
            json!({"name": client_name, "version": env!("CARGO_PKG_VERSION")}),
        ),
    ]
}

/// The client capabilities a request's own `_meta` declares, if any.
pub(crate) fn declared_capabilities(params: &Map<String, Value>) -> Option<Value> {
    params
        .get("_meta")
        .and_then(|m| m.get("io.modelcontextprotocol/clientCapabilities"))
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_capabilities_are_the_callers_when_declared() {
        let declared = json!({"sampling": {}});
        let meta = stateless_meta("gw", Some(&declared));
        assert_eq!(meta[1].1, declared);
        let meta = stateless_meta("gw", None);
        assert_eq!(
            meta[1].1,
            json!({"elicitation": {}, "sampling": {}, "roots": {}})
        );
        let mut params = Map::new();
        assert_eq!(declared_capabilities(&params), None);
        params.insert(
            "_meta".into(),
            json!({"io.modelcontextprotocol/clientCapabilities": {"roots": {}}}),
        );
        assert_eq!(declared_capabilities(&params), Some(json!({"roots": {}})));
    }
}
