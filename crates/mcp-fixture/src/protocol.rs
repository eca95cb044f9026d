//! Protocol versions and eras: which revisions exist, `initialize` version negotiation
//! (legacy era), per-request `_meta` validation (modern, stateless 2026-07-28 era), the
//! server's identity and capabilities, and how results are finished for each era.

use serde_json::{json, Map, Value};

use crate::rpc::{RpcError, INVALID_PARAMS, UNSUPPORTED_PROTOCOL_VERSION};

/// Initialize-based revisions, oldest first.
pub const LEGACY_VERSIONS: [&str; 4] = ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];
/// Stateless revisions (per-request `_meta`).
pub const MODERN_VERSIONS: [&str; 1] = ["2026-07-28"];

/// The `_meta` keys of the modern revision.
pub const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
pub const META_CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
pub const META_LOG_LEVEL: &str = "io.modelcontextprotocol/logLevel";
pub const META_SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";
pub const META_SUBSCRIPTION_ID: &str = "io.modelcontextprotocol/subscriptionId";

/// Methods a modern (2026-07-28) server implements.
pub const MODERN_METHODS: [&str; 9] = [
    "server/discover",
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/read",
    "resources/templates/list",
    "prompts/list",
    "prompts/get",
    "subscriptions/listen",
];

/// Which eras the server speaks (`--era`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EraMode {
    /// Whatever the client uses (dual-era server).
    Both,
    /// Only initialize-based sessions.
    Legacy,
    /// Only the stateless 2026-07-28 revision.
    Modern,
}

impl EraMode {
    pub fn legacy(self) -> bool {
        self != EraMode::Modern
    }
    pub fn modern(self) -> bool {
        self != EraMode::Legacy
    }
}

/// The era (and version) a single request is served under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Era {
    Legacy(&'static str),
    Modern(&'static str),
}

impl Era {
    pub fn is_modern(self) -> bool {
        matches!(self, Era::Modern(_))
    }
    pub fn version(self) -> &'static str {
        match self {
            Era::Legacy(v) | Era::Modern(v) => v,
        }
    }
    /// Whether the revision is `v` or newer (dates compare as strings).
    pub fn at_least(self, v: &str) -> bool {
        self.version() >= v
    }
}

/// The implementation info (`serverInfo`).
pub fn server_info() -> Value {
    json!({"name": "mcp-fixture", "title": "MCP test fixture", "version": env!("CARGO_PKG_VERSION")})
}

/// Server capabilities (same set in both eras).
pub fn capabilities() -> Value {
    json!({"tools": {"listChanged": true}, "resources": {}, "prompts": {}, "logging": {}})
}

pub const INSTRUCTIONS: &str =
    "mcp-fixture: a test server. Tools echo, add, slow, hang, crash, garbage, fail, rpc_error, progress, change_tools, env, headers, mixed, routed.";

/// Legacy versions this server accepts, newest first, capped at `max`.
pub fn legacy_supported(max: &str) -> impl Iterator<Item = &'static str> + '_ {
    LEGACY_VERSIONS
        .iter()
        .rev()
        .copied()
        .filter(move |v| *v <= max)
}

/// Every version the server supports in `mode`, newest first (for `server/discover` and
/// `UnsupportedProtocolVersionError.data.supported`).
pub fn supported_versions(mode: EraMode, max_legacy: &str) -> Vec<&'static str> {
    let mut v = Vec::with_capacity(5);
    if mode.modern() {
        v.extend(MODERN_VERSIONS.iter().rev().copied());
    }
    if mode.legacy() {
        v.extend(legacy_supported(max_legacy));
    }
    v
}

/// A legacy version string as a `'static` one if this server supports it.
pub fn lookup_legacy(v: &str, max: &str) -> Option<&'static str> {
    legacy_supported(max).find(|s| *s == v)
}

/// A modern version string as a `'static` one if this server supports it.
pub fn lookup_modern(v: &str) -> Option<&'static str> {
    MODERN_VERSIONS.iter().copied().find(|s| *s == v)
}

/// Version negotiation for `initialize`: echo the client's version if supported, else the
/// newest one we support.
pub fn negotiate(requested: &str, max: &'static str) -> &'static str {
    lookup_legacy(requested, max)
        .or_else(|| legacy_supported(max).next())
        .unwrap_or(LEGACY_VERSIONS[0])
}

/// Handles the body of a legacy `initialize`: returns the negotiated version and the result.
pub fn initialize(
    params: Option<&Value>,
    max: &'static str,
) -> Result<(&'static str, Value), RpcError> {
    let requested = params
        .and_then(|p| p.get("protocolVersion"))
        .and_then(Value::as_str)
        .ok_or_else(|| {
            RpcError::new(
                INVALID_PARAMS,
                "initialize: params.protocolVersion (string) is required",
            )
        })?;
    let version = negotiate(requested, max);
    let mut info = server_info();
    if version < "2025-06-18" {
        if let Some(o) = info.as_object_mut() {
            o.remove("title");
        }
    }
    let result = json!({
        "protocolVersion": version,
        "capabilities": capabilities(),
        "serverInfo": info,
        "instructions": INSTRUCTIONS,
    });
    Ok((version, result))
}

/// The error a modern-only server returns to `initialize`: it names the versions it supports
/// (versioning page, backward-compatibility section).
pub fn reject_initialize(params: Option<&Value>) -> RpcError {
    let requested = params
        .and_then(|p| p.get("protocolVersion"))
        .and_then(Value::as_str)
        .unwrap_or("");
    RpcError::new(
        UNSUPPORTED_PROTOCOL_VERSION,
        format!(
            "Unsupported protocol version: this server only speaks the stateless revision {} (no initialize handshake)",
            MODERN_VERSIONS.join(", ")
        ),
    )
    .with_data(json!({"supported": MODERN_VERSIONS, "requested": requested}))
}

/// Whether a request carries the modern per-request protocol version in `_meta`.
pub fn has_modern_meta(params: Option<&Value>) -> bool {
    params
        .and_then(|p| p.get("_meta"))
        .and_then(|m| m.get(META_PROTOCOL_VERSION))
        .is_some()
}

/// The validated per-request metadata of a modern request.
#[derive(Debug, Clone, Copy)]
pub struct ModernMeta<'a> {
    /// As sent (not yet checked against the supported list).
    pub version: &'a str,
    /// Minimum log level index (see [`level_index`]) if the client opted in to logs.
    pub log_level: Option<u8>,
}

/// Checks the required `_meta` fields are present and well-formed (-32602 otherwise).
pub fn parse_modern_meta(params: Option<&Value>) -> Result<ModernMeta<'_>, RpcError> {
    let meta = params
        .and_then(|p| p.get("_meta"))
        .and_then(Value::as_object);
    let Some(meta) = meta else {
        return Err(RpcError::new(
            INVALID_PARAMS,
            format!("Invalid params: missing params._meta with {META_PROTOCOL_VERSION} and {META_CLIENT_CAPABILITIES}"),
        ));
    };
    let version = meta
        .get(META_PROTOCOL_VERSION)
        .and_then(Value::as_str)
        .ok_or_else(|| {
            RpcError::new(
                INVALID_PARAMS,
                format!("Invalid params: missing _meta {META_PROTOCOL_VERSION}"),
            )
        })?;
    if !meta
        .get(META_CLIENT_CAPABILITIES)
        .is_some_and(Value::is_object)
    {
        return Err(RpcError::new(
            INVALID_PARAMS,
            format!("Invalid params: missing _meta {META_CLIENT_CAPABILITIES}"),
        ));
    }
    let log_level = match meta.get(META_LOG_LEVEL) {
        None => None,
        Some(v) => Some(v.as_str().and_then(level_index).ok_or_else(|| {
            RpcError::new(
                INVALID_PARAMS,
                format!("Invalid params: bad _meta {META_LOG_LEVEL}"),
            )
        })?),
    };
    Ok(ModernMeta { version, log_level })
}

/// Checks a modern version against what this server supports (-32022 otherwise).
pub fn check_modern_version(
    version: &str,
    mode: EraMode,
    max: &str,
) -> Result<&'static str, RpcError> {
    if mode.modern() {
        if let Some(v) = lookup_modern(version) {
            return Ok(v);
        }
    }
    Err(unsupported_version(version, mode, max))
}

/// `UnsupportedProtocolVersionError`.
pub fn unsupported_version(requested: &str, mode: EraMode, max: &str) -> RpcError {
    RpcError::new(UNSUPPORTED_PROTOCOL_VERSION, "Unsupported protocol version")
        .with_data(json!({"supported": supported_versions(mode, max), "requested": requested}))
}

/// Log levels in RFC 5424 order (index 0 = debug).
pub const LEVELS: [&str; 8] = [
    "debug",
    "info",
    "notice",
    "warning",
    "error",
    "critical",
    "alert",
    "emergency",
];

pub fn level_index(name: &str) -> Option<u8> {
    LEVELS
        .iter()
        .position(|l| *l == name)
        .and_then(|i| u8::try_from(i).ok())
}

/// Adds what a modern result must carry (`resultType`, `_meta.serverInfo`); legacy results
/// are returned unchanged (those revisions have no `resultType`).
pub fn finish(era: Era, mut result: Map<String, Value>) -> Value {
    if era.is_modern() {
        result
            .entry("resultType")
            .or_insert_with(|| Value::from("complete"));
        let meta = result
            .entry("_meta")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(m) = meta.as_object_mut() {
            m.insert(META_SERVER_INFO.into(), server_info());
        }
    }
    Value::Object(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation() {
        assert_eq!(negotiate("2025-06-18", "2025-11-25"), "2025-06-18");
        assert_eq!(negotiate("2099-01-01", "2025-11-25"), "2025-11-25");
        assert_eq!(negotiate("2025-11-25", "2025-03-26"), "2025-03-26");
        assert_eq!(negotiate("2024-11-05", "2025-03-26"), "2024-11-05");
    }

    #[test]
    fn supported_lists() {
        assert_eq!(
            supported_versions(EraMode::Both, "2025-06-18"),
            vec!["2026-07-28", "2025-06-18", "2025-03-26", "2024-11-05"]
        );
        assert_eq!(
            supported_versions(EraMode::Modern, "2025-11-25"),
            vec!["2026-07-28"]
        );
    }

    #[test]
    fn modern_meta() {
        let ok =
            json!({"_meta": {META_PROTOCOL_VERSION: "2026-07-28", META_CLIENT_CAPABILITIES: {}}});
        assert!(parse_modern_meta(Some(&ok)).is_ok());
        let missing = json!({"_meta": {META_PROTOCOL_VERSION: "2026-07-28"}});
        assert!(parse_modern_meta(Some(&missing)).is_err());
        assert!(check_modern_version("1900-01-01", EraMode::Both, "2025-11-25").is_err());
    }
}
