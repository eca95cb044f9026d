//! The public configuration of discovered OAuth ([`OAuthConfig`]) and the hook for the
//! step that needs a person ([`AuthorizationHandler`]).
//!
//! Owns what a library user chooses: the grant (client credentials, or authorization
//! code through a handler), how the client is known to the authorization server
//! (pre-registered id and credential, a Client ID Metadata Document URL, or dynamic
//! registration), scopes, and the limits. It does no I/O. Secrets are [`Secret`]s, and
//! the hand-written `Debug` prints neither them nor the handler.

use std::fmt;
use std::sync::Arc;

use futures::future::BoxFuture;

use crate::core::mcp::config::Secret;

/// How many authorizations one request may cause (its first one and step-ups) before the
/// request fails: the bound against a server that keeps asking for more scope.
pub const DEFAULT_MAX_AUTHORIZATIONS: u32 = 3;

/// The redirect URI used when none is configured: a loopback address, as for native
/// applications (RFC 8252 §7.3).
pub const DEFAULT_REDIRECT_URI: &str = "http://127.0.0.1:8976/callback";

/// What the person (or a headless stand-in) is asked to do: open `url`, sign in and
/// consent, and hand back where the authorization server redirected to.
#[derive(Debug, Clone)]
pub struct AuthorizationRequest {
    /// The authorization URL, with `state`, the PKCE challenge, `scope` and `resource`.
    pub url: url::Url,
    /// The redirect URI the server will send the browser to.
    pub redirect_uri: String,
    /// The MCP server this authorization is for.
    pub server_name: String,
}

/// The step that needs a person: supplied by the library's user. Given the authorization
/// URL, return the full URL the authorization server redirected to (with `code`,
/// `state` and possibly `iss`). The library checks `state` and `iss` and redeems the
/// code itself.
pub trait AuthorizationHandler: Send + Sync {
    /// Runs the authorization step.
    ///
    /// # Errors
    /// A description of why no redirect could be obtained (the person declined, a
    /// timeout); it ends the request with an authentication error.
    fn authorize<'a>(
        &'a self,
        request: &'a AuthorizationRequest,
    ) -> BoxFuture<'a, Result<String, String>>;
}

/// How a client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenEndpointAuthMethod {
    /// A public client: `client_id` in the body, no secret.
    None,
    /// `Authorization: Basic` with the id and secret (RFC 6749 §2.3.1).
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the body.
    ClientSecretPost,
    /// A JWT signed with the client's private key (RFC 7523 §2.2).
    PrivateKeyJwt,
}

impl TokenEndpointAuthMethod {
    /// The method's name in metadata and registration documents.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenEndpointAuthMethod::None => "none",
            TokenEndpointAuthMethod::ClientSecretBasic => "client_secret_basic",
            TokenEndpointAuthMethod::ClientSecretPost => "client_secret_post",
            TokenEndpointAuthMethod::PrivateKeyJwt => "private_key_jwt",
        }
    }

    /// The method a metadata or registration name stands for.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "none" => TokenEndpointAuthMethod::None,
            "client_secret_basic" => TokenEndpointAuthMethod::ClientSecretBasic,
            "client_secret_post" => TokenEndpointAuthMethod::ClientSecretPost,
            "private_key_jwt" => TokenEndpointAuthMethod::PrivateKeyJwt,
            _ => return None,
        })
    }
}

/// The credential of a pre-registered client.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum ClientCredential {
    /// A public client.
    None,
    /// A client secret, sent the way `method` says or (unset) the way the authorization
    /// server prefers.
    Secret {
        secret: Secret,
        method: Option<TokenEndpointAuthMethod>,
    },
    /// A private key (PEM, PKCS#8) that signs client assertions with `algorithm`.
    PrivateKey { key_pem: Secret, algorithm: String },
}

/// A client the authorization server already knows.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct RegisteredClient {
    pub(crate) client_id: String,
    pub(crate) credential: ClientCredential,
}

/// Which grant obtains tokens.
#[derive(Clone)]
pub(crate) enum Grant {
    /// Client credentials (SEP-1046): the gateway acts as itself.
    ClientCredentials,
    /// Authorization code with PKCE: a person authorizes through the handler.
    AuthorizationCode {
        redirect_uri: String,
        handler: Arc<dyn AuthorizationHandler>,
    },
}

/// OAuth 2.1 for one MCP server, as the MCP authorization specification describes: the
/// token endpoint and the rest are discovered from the server's `401` challenge
/// (protected-resource metadata, RFC 9728; authorization-server metadata, RFC 8414 or
/// OpenID discovery), tokens are asked for the server as `resource` (RFC 8707), cached,
/// shared by concurrent requests and refreshed before they expire.
///
/// ```
/// use litellm_rs::core::mcp::{AuthConfig, McpServerConfig};
/// use litellm_rs::core::mcp::auth::OAuthConfig;
///
/// let config = McpServerConfig::new("crm", "https://crm.example.com/mcp")
///     .with_auth(AuthConfig::oauth(OAuthConfig::client_credentials("gateway", "s3cret")));
/// ```
#[derive(Clone)]
pub struct OAuthConfig {
    pub(crate) grant: Grant,
    /// A pre-registered client; without one, a metadata document or registration.
    pub(crate) client: Option<RegisteredClient>,
    /// The URL of this client's Client ID Metadata Document, used as its `client_id`
    /// where the authorization server accepts them.
    pub(crate) metadata_document: Option<String>,
    /// `client_name` in dynamic registration.
    pub(crate) client_name: String,
    /// Scopes that replace the discovered ones.
    pub(crate) scopes: Option<Vec<String>>,
    /// A token endpoint that replaces the discovered one.
    pub(crate) token_url: Option<String>,
    /// Whether to ask for `offline_access` (a refresh token) where the authorization
    /// server offers it, in the authorization code flow.
    pub(crate) offline_access: bool,
    /// The most authorizations one request may cause.
    pub(crate) max_authorizations: u32,
}

impl OAuthConfig {
    fn with_grant(grant: Grant, client: Option<RegisteredClient>) -> Self {
        OAuthConfig {
            grant,
            client,
            metadata_document: None,
            client_name: "litellm-rs MCP gateway".to_string(),
            scopes: None,
            token_url: None,
            offline_access: true,
            max_authorizations: DEFAULT_MAX_AUTHORIZATIONS,
        }
    }

    /// Client credentials with a client secret, sent as the authorization server
    /// prefers (`client_secret_basic` unless it only takes `client_secret_post`).
    pub fn client_credentials(
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> Self {
        Self::with_grant(
            Grant::ClientCredentials,
            Some(RegisteredClient {
                client_id: client_id.into(),
                credential: ClientCredential::Secret {
                    secret: Secret::new(client_secret),
                    method: None,
                },
            }),
        )
    }

    /// Client credentials with `private_key_jwt` (RFC 7523): each token request carries
    /// a short-lived JWT signed with `private_key_pem` (PKCS#8 PEM) using `algorithm`
    /// (`ES256`, `ES384`, `RS256`, `RS384`, `RS512`, `PS256`, `PS384`, `PS512`, `EdDSA`).
    pub fn client_credentials_private_key_jwt(
        client_id: impl Into<String>,
        private_key_pem: impl Into<String>,
        algorithm: impl Into<String>,
    ) -> Self {
        Self::with_grant(
            Grant::ClientCredentials,
            Some(RegisteredClient {
                client_id: client_id.into(),
                credential: ClientCredential::PrivateKey {
                    key_pem: Secret::new(private_key_pem),
                    algorithm: algorithm.into(),
                },
            }),
        )
    }

    /// The authorization code flow with PKCE: `handler` takes the person through the
    /// authorization URL; the browser comes back to `redirect_uri`. The client is
    /// registered dynamically unless [`OAuthConfig::with_client`] or
    /// [`OAuthConfig::with_client_metadata_document`] says otherwise.
    pub fn authorization_code(
        redirect_uri: impl Into<String>,
        handler: Arc<dyn AuthorizationHandler>,
    ) -> Self {
        Self::with_grant(
            Grant::AuthorizationCode {
                redirect_uri: redirect_uri.into(),
                handler,
            },
            None,
        )
    }

    /// A pre-registered client: its id and, for a confidential client, its secret.
    #[must_use]
    pub fn with_client(
        mut self,
        client_id: impl Into<String>,
        client_secret: Option<String>,
    ) -> Self {
        self.client = Some(RegisteredClient {
            client_id: client_id.into(),
            credential: match client_secret {
                Some(secret) => ClientCredential::Secret {
                    secret: Secret::new(secret),
                    method: None,
                },
                None => ClientCredential::None,
            },
        });
        self
    }

    /// How the pre-registered client's secret is sent (default: as the authorization
    /// server prefers).
    #[must_use]
    pub fn with_token_endpoint_auth(mut self, chosen: TokenEndpointAuthMethod) -> Self {
        if let Some(RegisteredClient {
            credential: ClientCredential::Secret { method, .. },
            ..
        }) = &mut self.client
        {
            *method = Some(chosen);
        }
        self
    }

    /// The HTTPS URL of this client's Client ID Metadata Document: used as `client_id`
    /// wherever the authorization server says `client_id_metadata_document_supported`.
    #[must_use]
    pub fn with_client_metadata_document(mut self, url: impl Into<String>) -> Self {
        self.metadata_document = Some(url.into());
        self
    }

    /// The `client_name` sent in dynamic registration.
    #[must_use]
    pub fn with_client_name(mut self, name: impl Into<String>) -> Self {
        self.client_name = name.into();
        self
    }

    /// Scopes to ask for, instead of those of the challenge or the metadata.
    #[must_use]
    pub fn with_scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes
            .get_or_insert_with(Vec::new)
            .extend(scopes.into_iter().map(Into::into));
        self
    }

    /// A token endpoint to use instead of the discovered one.
    #[must_use]
    pub fn with_token_url(mut self, token_url: impl Into<String>) -> Self {
        self.token_url = Some(token_url.into());
        self
    }

    /// Never ask for `offline_access` (by default it is asked for where offered, so
    /// that a refresh token spares the person a new authorization).
    #[must_use]
    pub fn without_offline_access(mut self) -> Self {
        self.offline_access = false;
        self
    }

    /// The most authorizations one request may cause (default
    /// [`DEFAULT_MAX_AUTHORIZATIONS`], at least 1).
    #[must_use]
    pub fn with_max_authorizations(mut self, max: u32) -> Self {
        self.max_authorizations = max.max(1);
        self
    }

    /// The scopes configured to replace the discovered ones, extended by `extra`.
    pub(crate) fn extend_scopes(&mut self, extra: Vec<String>) {
        self.scopes.get_or_insert_with(Vec::new).extend(extra);
    }

    /// The id of the pre-registered client, if any.
    pub fn client_id(&self) -> Option<&str> {
        self.client.as_ref().map(|c| c.client_id.as_str())
    }
}

impl PartialEq for OAuthConfig {
    fn eq(&self, other: &Self) -> bool {
        let grants = match (&self.grant, &other.grant) {
            (Grant::ClientCredentials, Grant::ClientCredentials) => true,
            (
                Grant::AuthorizationCode {
                    redirect_uri: a,
                    handler: h,
                },
                Grant::AuthorizationCode {
                    redirect_uri: b,
                    handler: k,
                },
            ) => a == b && Arc::ptr_eq(h, k),
            _ => false,
        };
        grants
            && self.client == other.client
            && self.metadata_document == other.metadata_document
            && self.client_name == other.client_name
            && self.scopes == other.scopes
            && self.token_url == other.token_url
            && self.offline_access == other.offline_access
            && self.max_authorizations == other.max_authorizations
    }
}

impl Eq for OAuthConfig {}

impl fmt::Debug for OAuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let grant = match &self.grant {
            Grant::ClientCredentials => "client_credentials",
            Grant::AuthorizationCode { .. } => "authorization_code",
        };
        let credential = self.client.as_ref().map(|c| match &c.credential {
            ClientCredential::None => "none",
            ClientCredential::Secret { .. } => "secret(***)",
            ClientCredential::PrivateKey { .. } => "private_key(***)",
        });
        f.debug_struct("OAuthConfig")
            .field("grant", &grant)
            .field("client_id", &self.client_id())
            .field("credential", &credential)
            .field("metadata_document", &self.metadata_document)
            .field("scopes", &self.scopes)
            .field("token_url", &self.token_url)
            .field("offline_access", &self.offline_access)
            .field("max_authorizations", &self.max_authorizations)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Never;
    impl AuthorizationHandler for Never {
        fn authorize<'a>(
            &'a self,
            _request: &'a AuthorizationRequest,
        ) -> BoxFuture<'a, Result<String, String>> {
            Box::pin(async { Err("no person here".to_string()) })
        }
    }

    #[test]
    fn debug_never_shows_secrets_or_keys() {
        let secret = OAuthConfig::client_credentials("id", "s3cr3t-value");
        let key =
            OAuthConfig::client_credentials_private_key_jwt("id", "-----PEM-body-----", "ES256");
        let code = OAuthConfig::authorization_code("http://127.0.0.1:1/cb", Arc::new(Never))
            .with_client("cli", Some("other-s3cret".to_string()));
        for (config, hidden) in [
            (secret, "s3cr3t-value"),
            (key, "PEM-body"),
            (code, "other-s3cret"),
        ] {
            let printed = format!("{config:?}");
            assert!(!printed.contains(hidden), "{printed}");
            assert!(
                printed.contains("\"id\"") || printed.contains("\"cli\""),
                "{printed}"
            );
        }
    }

    #[test]
    fn equality_compares_handlers_by_identity() {
        let handler: Arc<dyn AuthorizationHandler> = Arc::new(Never);
        let a = OAuthConfig::authorization_code("http://x/cb", handler.clone());
        let b = OAuthConfig::authorization_code("http://x/cb", handler);
        let c = OAuthConfig::authorization_code("http://x/cb", Arc::new(Never));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(
            TokenEndpointAuthMethod::parse("client_secret_post"),
            Some(TokenEndpointAuthMethod::ClientSecretPost)
        );
        assert_eq!(
            TokenEndpointAuthMethod::PrivateKeyJwt.as_str(),
            "private_key_jwt"
        );
    }
}
