//! Configuration of one upstream MCP server: [`McpServerConfig`], [`Transport`] and
//! [`AuthConfig`].
//!
//! Owns the seed's public configuration types and their builders. It does not open
//! connections and does not read files (the service's settings module turns a config
//! file into these values).
//!
//! Invariants: `McpServerConfig` has exactly the seven public fields of the seed, so the
//! seed's struct literal compiles; credentials live in [`Secret`]s and never reach `Debug`
//! output or log lines.
//!
//! # The `url` of a stdio server
//!
//! For [`Transport::Stdio`], `url` is the command line of the server process, split into
//! words the way a POSIX shell would (quotes and backslashes work; no expansion, no
//! pipes). Leading words of the form `NAME=value` set environment variables for the child,
//! as in `sh`:
//!
//! ```text
//! GITHUB_TOKEN=abc LOG_LEVEL=debug node /opt/server/index.js --stdio
//! ```
//!
//! The child does not inherit the gateway's whole environment (that would leak the
//! gateway's own secrets to every tool server); it gets only `HOME`, `LOGNAME`, `PATH`,
//! `SHELL`, `TERM`, `USER`, `LANG`, `LC_ALL`, `TMPDIR` and `SYSTEMROOT` where they are set,
//! then the `NAME=value` words, then the entries of `static_headers`, which for a stdio
//! server are environment variables.

use std::collections::HashMap;
use std::fmt;

use super::auth::OAuthConfig;
use super::error::{McpError, McpResult};

/// The default timeout of a request to an upstream server, in milliseconds.
pub const DEFAULT_TIMEOUT_MS: u64 = 30_000;

/// The header that carries an API key when none is named.
pub const DEFAULT_API_KEY_HEADER: &str = "X-API-Key";

/// How the gateway talks to one upstream MCP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    /// Streamable HTTP (MCP 2025-03-26 and later): JSON-RPC in HTTP POSTs, answered with
    /// JSON or an SSE stream.
    #[serde(alias = "streamable_http", alias = "streamable-http")]
    Http,
    /// The legacy HTTP+SSE transport (MCP 2024-11-05): an SSE stream for replies and an
    /// endpoint for POSTs that the stream announces.
    Sse,
    /// JSON-RPC in WebSocket text frames, subprotocol `mcp`.
    #[serde(alias = "websocket", alias = "ws")]
    WebSocket,
    /// A local process speaking newline-delimited JSON-RPC on stdin/stdout.
    Stdio,
}

impl Transport {
    /// The transport a URL implies: `ws://`/`wss://` → WebSocket, `http(s)://` → HTTP,
    /// anything without a scheme → stdio (a command line).
    pub fn infer_from_url(url: &str) -> Transport {
        let lower = url.trim_start().to_ascii_lowercase();
        if lower.starts_with("ws://") || lower.starts_with("wss://") {
            Transport::WebSocket
        } else if lower.starts_with("http://") || lower.starts_with("https://") {
            Transport::Http
        } else {
            Transport::Stdio
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Transport::Http => "http",
            Transport::Sse => "sse",
            Transport::WebSocket => "websocket",
            Transport::Stdio => "stdio",
        })
    }
}

/// A credential: its `Debug` and `Display` print `***`, never the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a credential.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The credential itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret::new(value)
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

/// How the gateway authenticates to one upstream server.
///
/// These are the gateway's own credentials; a downstream client's credentials are never
/// forwarded.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthConfig {
    /// `Authorization: Bearer <token>`.
    Bearer {
        /// The token.
        token: Secret,
    },
    /// An API key in a header (`X-API-Key` unless another is named).
    ApiKey {
        /// The key.
        key: Secret,
        /// The header that carries it.
        header: String,
    },
    /// HTTP Basic authentication.
    Basic {
        /// The user name.
        username: String,
        /// The password.
        password: Secret,
    },
    /// OAuth 2.0 client credentials: a token is fetched from `token_url`, cached until
    /// shortly before it expires, and sent as a bearer token.
    OAuth2 {
        /// The client id.
        client_id: String,
        /// The client secret.
        client_secret: Secret,
        /// The token endpoint.
        token_url: String,
        /// Scopes to ask for (space-joined in the request); empty for none.
        scopes: Vec<String>,
        /// The resource the token is for (RFC 8707 `resource`), when the authorization
        /// server wants one.
        resource: Option<String>,
    },
    /// OAuth 2.1 as the MCP authorization specification describes: endpoints
    /// discovered from the server's challenge, registration, the client credentials or
    /// authorization code grant, refresh and step-up (see [`OAuthConfig`]).
    OAuth(OAuthConfig),
}

impl AuthConfig {
    /// A bearer token.
    pub fn bearer(token: impl Into<String>) -> Self {
        AuthConfig::Bearer {
            token: Secret::new(token),
        }
    }

    /// An API key sent in the `X-API-Key` header.
    pub fn api_key(key: impl Into<String>) -> Self {
        Self::api_key_in_header(key, DEFAULT_API_KEY_HEADER)
    }

    /// An API key sent in the named header.
    pub fn api_key_in_header(key: impl Into<String>, header: impl Into<String>) -> Self {
        AuthConfig::ApiKey {
            key: Secret::new(key),
            header: header.into(),
        }
    }

    /// HTTP Basic authentication.
    pub fn basic(username: impl Into<String>, password: impl Into<String>) -> Self {
        AuthConfig::Basic {
            username: username.into(),
            password: Secret::new(password),
        }
    }

    /// OAuth 2.0 client credentials against `token_url`.
    pub fn oauth2(
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
        token_url: impl Into<String>,
    ) -> Self {
        AuthConfig::OAuth2 {
            client_id: client_id.into(),
            client_secret: Secret::new(client_secret),
            token_url: token_url.into(),
            scopes: Vec::new(),
            resource: None,
        }
    }

    /// Discovered OAuth 2.1 (see [`OAuthConfig`]).
    pub fn oauth(config: OAuthConfig) -> Self {
        AuthConfig::OAuth(config)
    }

    /// OAuth 2.0 client credentials with the token endpoint discovered from the
    /// server (`client_secret_basic` or `client_secret_post`, as the authorization
    /// server prefers).
    pub fn oauth_client_credentials(
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> Self {
        AuthConfig::OAuth(OAuthConfig::client_credentials(client_id, client_secret))
    }

    /// Adds OAuth 2.0 scopes; other kinds of credentials are returned unchanged.
    #[must_use]
    pub fn with_scopes<I, S>(mut self, new_scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        match &mut self {
            AuthConfig::OAuth2 { scopes, .. } => {
                scopes.extend(new_scopes.into_iter().map(Into::into));
            }
            AuthConfig::OAuth(config) => {
                config.extend_scopes(new_scopes.into_iter().map(Into::into).collect());
            }
            _ => {}
        }
        self
    }

    /// Asks OAuth 2.0 tokens for `resource` (RFC 8707: the authorization server binds
    /// the token's audience to it); other kinds of credentials are returned unchanged.
    #[must_use]
    pub fn with_resource(mut self, new_resource: impl Into<String>) -> Self {
        if let AuthConfig::OAuth2 { resource, .. } = &mut self {
            *resource = Some(new_resource.into());
        }
        self
    }
}

/// The configuration of one upstream MCP server.
///
/// Exactly the seed's seven fields. Build it with [`McpServerConfig::new`] and the
/// `with_*` methods, or as a struct literal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McpServerConfig {
    /// The server's name: letters, digits, `_` and `-`; unique in a gateway.
    pub name: String,
    /// The endpoint (`https://…/mcp`, `https://…/sse`, `wss://…`), or for
    /// [`Transport::Stdio`] the command line (see the module docs).
    pub url: String,
    /// How to talk to the server.
    pub transport: Transport,
    /// Disabled servers are registered but never contacted.
    pub enabled: bool,
    /// Bounds every request to the server, in milliseconds.
    pub timeout_ms: u64,
    /// The gateway's credentials for the server.
    pub auth: Option<AuthConfig>,
    /// Headers sent with every HTTP request (HTTP, SSE, WebSocket handshake); for a
    /// stdio server, environment variables of the child process.
    pub static_headers: HashMap<String, String>,
}

impl McpServerConfig {
    /// A server with the transport its URL implies ([`Transport::infer_from_url`]),
    /// enabled, with the default timeout of 30 s and no credentials.
    pub fn new(name: impl Into<String>, url: impl Into<String>) -> Self {
        let url = url.into();
        McpServerConfig {
            name: name.into(),
            transport: Transport::infer_from_url(&url),
            url,
            enabled: true,
            timeout_ms: DEFAULT_TIMEOUT_MS,
            auth: None,
            static_headers: HashMap::new(),
        }
    }

    /// A local server started from `command_line` (see the module docs for its form).
    pub fn stdio(name: impl Into<String>, command_line: impl Into<String>) -> Self {
        Self::new(name, command_line).with_transport(Transport::Stdio)
    }

    /// Sets the credentials.
    #[must_use]
    pub fn with_auth(mut self, auth: AuthConfig) -> Self {
        self.auth = Some(auth);
        self
    }

    /// Sets the timeout of every request, in milliseconds.
    #[must_use]
    pub fn with_timeout(mut self, timeout_ms: u64) -> Self {
        self.timeout_ms = timeout_ms;
        self
    }

    /// Sets the transport.
    #[must_use]
    pub fn with_transport(mut self, transport: Transport) -> Self {
        self.transport = transport;
        self
    }

    /// Adds a static header (an environment variable for stdio servers).
    #[must_use]
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.static_headers.insert(name.into(), value.into());
        self
    }

    /// Enables or disables the server.
    #[must_use]
    pub fn with_enabled(mut self, enabled: bool) -> Self {
        self.enabled = enabled;
        self
    }

    /// Checks the values that do not need a connection: the name's characters, a
    /// non-zero timeout, a URL that parses for network transports, a command line that
    /// splits for stdio.
    ///
    /// # Errors
    /// [`McpError::InvalidConfig`] naming the server and the bad value.
    pub fn validate(&self) -> McpResult<()> {
        validate_server_name(&self.name)?;
        if self.timeout_ms == 0 {
            return Err(McpError::config(format!(
                "server '{}': timeout_ms must be greater than 0",
                self.name
            )));
        }
        match self.transport {
            Transport::Stdio => {
                crate::core::mcp::transport::stdio::CommandLine::parse(&self.url).map_err(
                    |message| McpError::config(format!("server '{}': {message}", self.name)),
                )?;
            }
            Transport::Http | Transport::Sse | Transport::WebSocket => {
                let parsed = url::Url::parse(&self.url).map_err(|e| {
                    McpError::config(format!("server '{}': invalid url: {e}", self.name))
                })?;
                let allowed: &[&str] = match self.transport {
                    Transport::WebSocket => &["ws", "wss", "http", "https"],
                    _ => &["http", "https"],
                };
                if !allowed.contains(&parsed.scheme()) {
                    return Err(McpError::config(format!(
                        "server '{}': url scheme '{}' does not fit transport {}",
                        self.name,
                        parsed.scheme(),
                        self.transport
                    )));
                }
            }
        }
        let token_url = match &self.auth {
            Some(AuthConfig::OAuth2 { token_url, .. }) => Some(token_url.as_str()),
            Some(AuthConfig::OAuth(config)) => {
                if !matches!(
                    self.transport,
                    Transport::Http | Transport::Sse | Transport::WebSocket
                ) {
                    return Err(McpError::config(format!(
                        "server '{}': OAuth needs a network transport",
                        self.name
                    )));
                }
                config.token_url.as_deref()
            }
            _ => None,
        };
        if let Some(token_url) = token_url {
            url::Url::parse(token_url).map_err(|e| {
                McpError::config(format!(
                    "server '{}': invalid OAuth token_url: {e}",
                    self.name
                ))
            })?;
        }
        Ok(())
    }
}

/// Server names are non-empty, at most 64 characters of `[A-Za-z0-9_-]`.
///
/// # Errors
/// [`McpError::InvalidConfig`] saying which rule the name breaks.
pub fn validate_server_name(name: &str) -> McpResult<()> {
    if name.is_empty() || name.len() > 64 {
        return Err(McpError::config(format!(
            "server name '{name}' must be 1 to 64 characters long"
        )));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
    {
        return Err(McpError::config(format!(
            "server name '{name}' contains '{bad}': use letters, digits, '_' and '-'"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_infers_the_transport_and_defaults() {
        let c = McpServerConfig::new("fs", "https://mcp.example.com/fs");
        assert_eq!(c.transport, Transport::Http);
        assert!(c.enabled);
        assert_eq!(c.timeout_ms, 30_000);
        assert_eq!(
            McpServerConfig::new("w", "wss://x/y").transport,
            Transport::WebSocket
        );
        assert_eq!(
            McpServerConfig::new("p", "node server.js").transport,
            Transport::Stdio
        );
    }

    #[test]
    fn secrets_never_reach_debug_output() {
        let c = McpServerConfig::new("fs", "https://x").with_auth(AuthConfig::oauth2(
            "id",
            "s3cr3t-value",
            "https://auth/token",
        ));
        let printed = format!("{c:?}");
        assert!(!printed.contains("s3cr3t-value"), "{printed}");
        assert!(printed.contains("id"));
        for auth in [
            AuthConfig::bearer("tok-value"),
            AuthConfig::api_key("tok-value"),
            AuthConfig::basic("user", "tok-value"),
        ] {
            assert!(!format!("{auth:?}").contains("tok-value"));
        }
    }

    #[test]
    fn validation_names_the_bad_value() {
        let err = McpServerConfig::new("bad name", "https://x")
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("contains ' '"), "{err}");
        let err = McpServerConfig::new("ok", "ftp://x")
            .with_transport(Transport::Http)
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("ftp"), "{err}");
        assert!(McpServerConfig::new("ok", "http://127.0.0.1:1/mcp")
            .validate()
            .is_ok());
        let err = McpServerConfig::new("ok", "http://x")
            .with_timeout(0)
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("timeout_ms"));
    }
}
