//! The validated settings of the gateway as an OAuth 2.1 resource server: its public
//! address, the scopes it knows, the identity providers whose tokens it accepts, and an
//! optional client to hand out to clients that insist on registering.
//!
//! Owns only the shapes and their defaults; the settings file is checked and converted
//! into them by `crate::settings`. No secret reaches `Debug` (they are [`Secret`]s).

use std::time::Duration;

use jsonwebtoken::Algorithm;

use crate::core::mcp::{PermissionLevel, Secret};

/// How long fetched signing keys are used before they are fetched again (in the
/// background; requests keep using the keys they have).
pub const DEFAULT_JWKS_REFRESH: Duration = Duration::from_secs(600);
/// The least time between two fetches of a provider's keys caused by tokens with an
/// unknown key id, so that made-up key ids cannot make us hammer the provider.
pub const DEFAULT_JWKS_MIN_REFETCH: Duration = Duration::from_secs(10);
/// How long a request to a provider (discovery, keys, introspection) may take.
pub const DEFAULT_PROVIDER_TIMEOUT: Duration = Duration::from_secs(5);
/// Clock skew tolerated on `exp` and `nbf`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
/// How long an introspection answer is reused.
pub const DEFAULT_INTROSPECTION_CACHE: Duration = Duration::from_secs(60);

/// The algorithms accepted when a provider does not list its own: asymmetric only, so
/// that no public key can ever be used as an HMAC secret.
pub const DEFAULT_ALGORITHMS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// The `oauth` section of the settings.
#[derive(Debug, Clone)]
pub struct OAuthSettings {
    /// Where clients reach the gateway (`https://mcp.example.com`, no trailing slash):
    /// the resource identifiers are this plus an endpoint's path. `None`: the address
    /// the service is bound to, as `http://IP:port`.
    pub public_url: Option<String>,
    /// Scopes and the highest level each grants, in file order. Empty: tokens are not
    /// limited by their scopes.
    pub scopes: Vec<(String, PermissionLevel)>,
    /// The providers whose tokens are accepted.
    pub providers: Vec<ProviderSettings>,
    /// A client handed out to clients that insist on registering, when the provider
    /// does not let them register themselves.
    pub registration: Option<RegistrationSettings>,
}

/// One identity provider (an OAuth 2.1 authorization server).
#[derive(Debug, Clone)]
pub struct ProviderSettings {
    /// Its issuer identifier, exactly as tokens carry it in `iss`.
    pub issuer: String,
    /// Where its signing keys are; `None`: from its discovery document.
    pub jwks_url: Option<String>,
    /// Audiences accepted besides the gateway's own resource identifiers.
    pub audiences: Vec<String>,
    /// The signature algorithms accepted.
    pub algorithms: Vec<Algorithm>,
    /// Clock skew tolerated on `exp` and `nbf`.
    pub leeway: Duration,
    /// Which claims say who the caller is.
    pub claims: ClaimNames,
    /// Opaque tokens are checked here (RFC 7662), when set.
    pub introspection: Option<IntrospectionSettings>,
    /// How long fetched keys are used before they are fetched again.
    pub jwks_refresh: Duration,
    /// The least time between two fetches caused by unknown key ids.
    pub jwks_min_refetch: Duration,
    /// How long a request to the provider may take.
    pub timeout: Duration,
}

impl ProviderSettings {
    /// A provider with every default.
    pub fn new(issuer: impl Into<String>) -> Self {
        ProviderSettings {
            issuer: issuer.into(),
            jwks_url: None,
            audiences: Vec::new(),
            algorithms: DEFAULT_ALGORITHMS.to_vec(),
            leeway: DEFAULT_LEEWAY,
            claims: ClaimNames::default(),
            introspection: None,
            jwks_refresh: DEFAULT_JWKS_REFRESH,
            jwks_min_refetch: DEFAULT_JWKS_MIN_REFETCH,
            timeout: DEFAULT_PROVIDER_TIMEOUT,
        }
    }
}

/// The claims that name the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimNames {
    /// The subject (default `sub`).
    pub subject: String,
    /// The team, if any: a string, or a list whose first string is taken.
    pub team: Option<String>,
    /// The organisation, if any: the same forms as the team.
    pub organization: Option<String>,
}

impl Default for ClaimNames {
    fn default() -> Self {
        ClaimNames {
            subject: "sub".to_string(),
            team: None,
            organization: None,
        }
    }
}

/// Where and how opaque tokens are introspected.
#[derive(Debug, Clone)]
pub struct IntrospectionSettings {
    /// The introspection endpoint.
    pub url: String,
    /// The gateway's client at the provider.
    pub client_id: String,
    /// Its secret (sent with HTTP Basic authentication).
    pub client_secret: Secret,
    /// How long an answer is reused (0: never).
    pub cache: Duration,
}

/// A pre-registered public client (PKCE, no secret) handed out by the gateway's
/// registration endpoint.
#[derive(Debug, Clone)]
pub struct RegistrationSettings {
    /// The client's id at the provider.
    pub client_id: String,
}

/// `servers[].token_exchange`: on each call, the caller's access token is exchanged
/// (RFC 8693) at the provider for one meant for the upstream server, and the call carries
/// that one.
#[derive(Debug, Clone)]
pub struct TokenExchangeSettings {
    /// The issuer whose tokens are exchanged (the only provider, when there is one);
    /// tokens of other providers are not sent to `token_url`.
    pub issuer: Option<String>,
    /// The provider's token endpoint.
    pub token_url: String,
    /// The gateway's client at the provider.
    pub client_id: String,
    /// Its secret (sent with HTTP Basic authentication).
    pub client_secret: Secret,
    /// The `resource` asked for (default: the server's URL, unless `audience` is set).
    pub resource: Option<String>,
    /// The `audience` asked for, when the provider names audiences rather than URLs.
    pub audience: Option<String>,
    /// The scopes asked for; empty: the provider decides (usually the subject token's).
    pub scopes: Vec<String>,
}
