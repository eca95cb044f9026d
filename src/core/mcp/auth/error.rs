//! The typed failures of the OAuth client: discovery, registration, authorization and
//! token requests.
//!
//! Owns the wording of every OAuth failure. No variant carries a credential: token
//! endpoint errors keep only the `error` code and `error_description` the server sent,
//! and URLs named here are metadata and endpoint URLs, never ones with a code or token.
//! At the boundary of the library they become [`crate::core::mcp::McpError`]s
//! (`AuthenticationError`, naming the server).

/// Why obtaining an OAuth token failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OAuthError {
    /// A metadata document could not be fetched or read.
    #[error("{what} could not be fetched: {reason}")]
    Fetch {
        /// Which document (protected-resource metadata, authorization-server metadata…).
        what: &'static str,
        /// Why, for each place tried.
        reason: String,
    },
    /// The protected-resource metadata is for another resource (RFC 9728 §3.3).
    #[error("the protected-resource metadata names resource '{resource}', which is neither {server_url} nor a parent of it")]
    ResourceMismatch {
        /// The `resource` the metadata named.
        resource: String,
        /// The MCP server's URL.
        server_url: String,
    },
    /// The authorization-server metadata names another issuer (RFC 8414 §3.3).
    #[error("the authorization-server metadata names issuer '{found}', expected '{expected}'")]
    IssuerMismatch {
        /// The issuer the metadata was looked up for.
        expected: String,
        /// The issuer it named.
        found: String,
    },
    /// The authorization server does not advertise PKCE with `S256`.
    #[error("the authorization server does not advertise PKCE with S256 (code_challenge_methods_supported), so the authorization code flow is refused")]
    PkceUnsupported,
    /// No way to obtain a client id at this authorization server.
    #[error("no client registration for {issuer}: configure a client id, or use a server that accepts client metadata documents or dynamic registration")]
    NoRegistration {
        /// The authorization server.
        issuer: String,
    },
    /// Dynamic client registration (RFC 7591) failed.
    #[error("dynamic client registration failed: {reason}")]
    Registration {
        /// Why.
        reason: String,
    },
    /// The redirect back from the authorization server is not acceptable.
    #[error("the authorization response was refused: {reason}")]
    AuthorizationResponse {
        /// Why (a state or `iss` mismatch, an error the server sent, no code).
        reason: String,
    },
    /// The user-supplied handler could not complete the authorization step.
    #[error("the authorization handler failed: {reason}")]
    Handler {
        /// What the handler said.
        reason: String,
    },
    /// The token endpoint answered with an OAuth error.
    #[error("the token endpoint refused the request: {error}{}", description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    TokenRefused {
        /// The `error` code.
        error: String,
        /// The `error_description`, when there was one.
        description: Option<String>,
    },
    /// The token request could not be made or its answer not read.
    #[error("the token request failed: {reason}")]
    TokenRequest {
        /// Why.
        reason: String,
    },
    /// The server kept refusing after this many authorizations for one request.
    #[error("the server still refuses access after {attempts} authorizations for one request")]
    TooManyAuthorizations {
        /// How many were made.
        attempts: u32,
    },
    /// The user has not authorized the server (or must again: the refresh token was
    /// refused).
    #[error(
        "this user has not authorized '{server}' (or the authorization ended): authorize it first"
    )]
    NotAuthorized {
        /// The server.
        server: String,
    },
    /// The configuration cannot work.
    #[error("invalid OAuth configuration: {reason}")]
    Config {
        /// What is wrong.
        reason: String,
    },
}

impl OAuthError {
    pub(crate) fn fetch(what: &'static str, reason: impl Into<String>) -> Self {
        OAuthError::Fetch {
            what,
            reason: reason.into(),
        }
    }

    pub(crate) fn config(reason: impl Into<String>) -> Self {
        OAuthError::Config {
            reason: reason.into(),
        }
    }

    pub(crate) fn response(reason: impl Into<String>) -> Self {
        OAuthError::AuthorizationResponse {
            reason: reason.into(),
        }
    }
}
