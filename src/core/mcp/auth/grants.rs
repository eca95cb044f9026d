//! The requests of the OAuth grants: the authorization URL (PKCE `S256`, `state`,
//! `scope`, `resource`), the checks on the redirect back (`state`, RFC 9207 `iss`), and
//! the token requests (authorization code, client credentials, refresh) with each way a
//! client authenticates (`none`, `client_secret_basic`, `client_secret_post`,
//! `private_key_jwt`).
//!
//! The protocol mechanics (PKCE, form encoding, client authentication, token response
//! parsing) are the `oauth2` crate's; this file feeds it through the gateway's HTTP
//! client (redirects only within the origin, [`MAX_TOKEN_RESPONSE_BYTES`],
//! [`TOKEN_TIMEOUT`]) and signs client assertions with `jsonwebtoken`. Errors name the
//! OAuth `error` code, never a token, code or secret.

use std::time::Duration;

use oauth2::basic::BasicClient;
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, RefreshToken, RequestTokenError, Scope, TokenResponse, TokenUrl,
};

use super::config::TokenEndpointAuthMethod;
use super::error::OAuthError;
use super::read_capped;
use crate::core::mcp::config::Secret;

/// The largest token response read.
pub const MAX_TOKEN_RESPONSE_BYTES: usize = 64 * 1024;
/// The timeout of a token or registration request.
pub const TOKEN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a signed client assertion is valid.
const ASSERTION_LIFETIME: Duration = Duration::from_secs(60);
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A client as one authorization server knows it, and how it proves it.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct ClientIdentity {
    pub(crate) client_id: String,
    pub(crate) method: TokenEndpointAuthMethod,
    pub(crate) secret: Option<Secret>,
    /// For `private_key_jwt`: the PEM key and the algorithm name.
    pub(crate) private_key: Option<(Secret, String)>,
}

impl std::fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientIdentity")
            .field("client_id", &self.client_id)
            .field("method", &self.method)
            .finish_non_exhaustive()
    }
}

/// What a token endpoint granted.
pub(crate) struct GrantedTokens {
    pub(crate) access_token: Secret,
    pub(crate) refresh_token: Option<Secret>,
    pub(crate) lifetime: Option<Duration>,
    pub(crate) scopes: Option<Vec<String>>,
}

/// Where tokens come from and what they are for.
pub(crate) struct TokenEndpoint<'a> {
    pub(crate) http: &'a reqwest::Client,
    pub(crate) token_url: &'a str,
    /// The authorization server's issuer (the audience of client assertions).
    pub(crate) issuer: &'a str,
    /// RFC 8707 `resource`.
    pub(crate) resource: Option<&'a str>,
}

/// One authorization request in flight: the URL for the person, and what the redirect
/// back is checked against and the code redeemed with.
pub(crate) struct PendingAuthorization {
    pub(crate) url: url::Url,
    pub(crate) state: CsrfToken,
    pub(crate) verifier: PkceCodeVerifier,
}

/// The failure of one HTTP exchange with a token endpoint.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct HttpFailure(String);

async fn send(
    http: reqwest::Client,
    request: oauth2::HttpRequest,
) -> Result<oauth2::HttpResponse, HttpFailure> {
    let (parts, body) = request.into_parts();
    let url = reqwest::Url::parse(&parts.uri.to_string())
        .map_err(|e| HttpFailure(format!("invalid endpoint: {e}")))?;
    let response = http
        .request(parts.method, url)
        .headers(parts.headers)
        .body(body)
        .timeout(TOKEN_TIMEOUT)
        .send()
        .await
        .map_err(|e| HttpFailure(super::without_url(&e)))?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = read_capped(response, MAX_TOKEN_RESPONSE_BYTES)
        .await
        .map_err(HttpFailure)?;
    let mut builder = http::Response::builder().status(status);
    for (name, value) in &headers {
        builder = builder.header(name, value);
    }
    builder
        .body(body)
        .map_err(|e| HttpFailure(format!("unusable response: {e}")))
}

fn token_error(
    error: RequestTokenError<HttpFailure, oauth2::basic::BasicErrorResponse>,
) -> OAuthError {
    match error {
        RequestTokenError::ServerResponse(response) => OAuthError::TokenRefused {
            error: response.error().to_string(),
            description: response.error_description().cloned(),
        },
        RequestTokenError::Request(failure) => OAuthError::TokenRequest { reason: failure.0 },
        // The body may hold a token: only the parser's reason is kept.
        RequestTokenError::Parse(parse, _) => OAuthError::TokenRequest {
            reason: format!("the token response is not valid: {}", parse.inner()),
        },
        RequestTokenError::Other(other) => OAuthError::TokenRequest { reason: other },
    }
}

fn granted(response: &oauth2::basic::BasicTokenResponse) -> GrantedTokens {
    GrantedTokens {
        access_token: Secret::new(response.access_token().secret().clone()),
        refresh_token: response
            .refresh_token()
            .map(|t| Secret::new(t.secret().clone())),
        lifetime: response.expires_in(),
        scopes: response
            .scopes()
            .map(|scopes| scopes.iter().map(|s| s.to_string()).collect()),
    }
}

/// A signed `private_key_jwt` assertion (RFC 7523 §3): issued and subject by the
/// client, for the authorization server, valid a minute.
///
/// # Errors
/// [`OAuthError::Config`] for an unknown algorithm or a key that does not fit it.
pub(crate) fn client_assertion(
    client_id: &str,
    audience: &str,
    key_pem: &Secret,
    algorithm: &str,
) -> Result<String, OAuthError> {
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    let alg: Algorithm = algorithm
        .parse()
        .map_err(|_| OAuthError::config(format!("unknown signing algorithm '{algorithm}'")))?;
    let pem = key_pem.expose().as_bytes();
    let key = match alg {
        Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(pem),
        Algorithm::RS256
        | Algorithm::RS384
        | Algorithm::RS512
        | Algorithm::PS256
        | Algorithm::PS384
        | Algorithm::PS512 => EncodingKey::from_rsa_pem(pem),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(pem),
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
            return Err(OAuthError::config(
                "private_key_jwt needs an asymmetric algorithm",
            ))
        }
    }
    .map_err(|_| OAuthError::config(format!("the private key is not a PEM key for {algorithm}")))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let claims = serde_json::json!({
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "iat": now,
        "exp": now + ASSERTION_LIFETIME.as_secs(),
        "jti": format!("{:032x}", rand::random::<u128>()),
    });
    jsonwebtoken::encode(&Header::new(alg), &claims, &key)
        .map_err(|e| OAuthError::config(format!("cannot sign the client assertion: {e}")))
}

/// Adds the extra fields of [`TokenEndpoint::extra_params`] to one of the `oauth2`
/// crate's token requests (each grant has its own type, with the same methods), sends it
/// through [`send`] and reads the answer.
macro_rules! send_token_request {
    ($endpoint:expr, $identity:expr, $request:expr) => {{
        let mut request = $request;
        for (name, value) in $endpoint.extra_params($identity)? {
            request = request.add_extra_param(name, value);
        }
        let http = $endpoint.http.clone();
        let response = request
            .request_async(&|r| send(http.clone(), r))
            .await
            .map_err(token_error)?;
        Ok(granted(&response))
    }};
}

impl TokenEndpoint<'_> {
    fn client(
        &self,
        identity: &ClientIdentity,
    ) -> Result<
        oauth2::basic::BasicClient<
            oauth2::EndpointNotSet,
            oauth2::EndpointNotSet,
            oauth2::EndpointNotSet,
            oauth2::EndpointNotSet,
            oauth2::EndpointSet,
        >,
        OAuthError,
    > {
        let token_url = TokenUrl::new(self.token_url.to_string())
            .map_err(|e| OAuthError::config(format!("invalid token endpoint: {e}")))?;
        let mut client = BasicClient::new(ClientId::new(identity.client_id.clone()))
            .set_token_uri(token_url)
            .set_auth_type(match identity.method {
                TokenEndpointAuthMethod::ClientSecretBasic => AuthType::BasicAuth,
                _ => AuthType::RequestBody,
            });
        if matches!(
            identity.method,
            TokenEndpointAuthMethod::ClientSecretBasic | TokenEndpointAuthMethod::ClientSecretPost
        ) {
            if let Some(secret) = &identity.secret {
                client = client.set_client_secret(ClientSecret::new(secret.expose().to_string()));
            }
        }
        Ok(client)
    }

    /// The extra form fields every token request carries: `resource`, and for
    /// `private_key_jwt` the assertion.
    fn extra_params(&self, identity: &ClientIdentity) -> Result<Vec<(String, String)>, OAuthError> {
        let mut params = Vec::new();
        if let Some(resource) = self.resource {
            params.push(("resource".to_string(), resource.to_string()));
        }
        if identity.method == TokenEndpointAuthMethod::PrivateKeyJwt {
            let Some((key, algorithm)) = &identity.private_key else {
                return Err(OAuthError::config("private_key_jwt without a private key"));
            };
            params.push((
                "client_assertion_type".to_string(),
                ASSERTION_TYPE.to_string(),
            ));
            params.push((
                "client_assertion".to_string(),
                client_assertion(&identity.client_id, self.issuer, key, algorithm)?,
            ));
        }
        Ok(params)
    }

    /// The client credentials grant.
    ///
    /// # Errors
    /// [`OAuthError::TokenRefused`] / [`OAuthError::TokenRequest`] as the endpoint
    /// answered; [`OAuthError::Config`] for an unusable key or endpoint.
    pub(crate) async fn client_credentials(
        &self,
        identity: &ClientIdentity,
        scopes: &[String],
    ) -> Result<GrantedTokens, OAuthError> {
        let client = self.client(identity)?;
        let request = client
            .exchange_client_credentials()
            .add_scopes(scopes.iter().cloned().map(Scope::new));
        send_token_request!(self, identity, request)
    }

    /// Redeems an authorization code with its PKCE verifier.
    ///
    /// # Errors
    /// As [`TokenEndpoint::client_credentials`].
    pub(crate) async fn authorization_code(
        &self,
        identity: &ClientIdentity,
        code: String,
        verifier: PkceCodeVerifier,
        redirect_uri: &str,
    ) -> Result<GrantedTokens, OAuthError> {
        let redirect = RedirectUrl::new(redirect_uri.to_string())
            .map_err(|e| OAuthError::config(format!("invalid redirect URI: {e}")))?;
        let client = self.client(identity)?.set_redirect_uri(redirect);
        let request = client
            .exchange_code(AuthorizationCode::new(code))
            .set_pkce_verifier(verifier);
        send_token_request!(self, identity, request)
    }

    /// Exchanges a refresh token for new tokens.
    ///
    /// # Errors
    /// As [`TokenEndpoint::client_credentials`].
    pub(crate) async fn refresh(
        &self,
        identity: &ClientIdentity,
        refresh_token: &Secret,
    ) -> Result<GrantedTokens, OAuthError> {
        let client = self.client(identity)?;
        let token = RefreshToken::new(refresh_token.expose().to_string());
        let request = client.exchange_refresh_token(&token);
        send_token_request!(self, identity, request)
    }
}

/// Builds the authorization URL: `response_type=code`, `client_id`, `redirect_uri`, a
/// fresh `state` and PKCE `S256` challenge, `scope` (left out when empty) and
/// `resource`.
///
/// # Errors
/// [`OAuthError::Config`] for an endpoint or redirect URI that is not a URL.
pub(crate) fn authorization_url(
    authorization_endpoint: &str,
    client_id: &str,
    redirect_uri: &str,
    scopes: &[String],
    resource: Option<&str>,
) -> Result<PendingAuthorization, OAuthError> {
    let auth_url = AuthUrl::new(authorization_endpoint.to_string())
        .map_err(|e| OAuthError::config(format!("invalid authorization endpoint: {e}")))?;
    let redirect = RedirectUrl::new(redirect_uri.to_string())
        .map_err(|e| OAuthError::config(format!("invalid redirect URI: {e}")))?;
    let client = BasicClient::new(ClientId::new(client_id.to_string()))
        .set_auth_uri(auth_url)
        .set_redirect_uri(redirect);
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = client
        .authorize_url(CsrfToken::new_random)
        .add_scopes(scopes.iter().cloned().map(Scope::new))
        .set_pkce_challenge(challenge);
    if let Some(resource) = resource {
        request = request.add_extra_param("resource", resource);
    }
    let (url, state) = request.url();
    Ok(PendingAuthorization {
        url,
        state,
        verifier,
    })
}

/// [`authorization_url`] at the authorization server `metadata` describes, after
/// checking that it advertises PKCE `S256` (the MCP specification has clients refuse
/// otherwise) and names an authorization endpoint.
///
/// # Errors
/// [`OAuthError::PkceUnsupported`]; [`OAuthError::Fetch`] without an endpoint; as
/// [`authorization_url`].
pub(crate) fn start_authorization(
    metadata: &super::discovery::ServerMetadata,
    client_id: &str,
    redirect_uri: &str,
    scopes: &[String],
    resource: Option<&str>,
) -> Result<PendingAuthorization, OAuthError> {
    let supports_s256 = metadata
        .code_challenge_methods_supported
        .as_ref()
        .is_some_and(|m| m.iter().any(|m| m == "S256"));
    if !supports_s256 {
        return Err(OAuthError::PkceUnsupported);
    }
    let endpoint = metadata.authorization_endpoint.as_deref().ok_or_else(|| {
        OAuthError::fetch(
            "the authorization endpoint",
            "the authorization server names none",
        )
    })?;
    authorization_url(endpoint, client_id, redirect_uri, scopes, resource)
}

/// The code of a redirect back from the authorization server, after its checks: an
/// `error` refuses; `state` must be the one sent; `iss` (RFC 9207), when present or
/// when the server advertises it, must be exactly the server's issuer (simple string
/// comparison, no normalization).
///
/// # Errors
/// [`OAuthError::AuthorizationResponse`] saying which check failed.
pub(crate) fn code_from_redirect(
    redirect: &str,
    expected_state: &CsrfToken,
    issuer: &str,
    iss_advertised: bool,
) -> Result<String, OAuthError> {
    let url =
        url::Url::parse(redirect).map_err(|_| OAuthError::response("the redirect is not a URL"))?;
    let mut code = None;
    let mut state = None;
    let mut iss = None;
    let mut error = None;
    for (name, value) in url.query_pairs() {
        match name.as_ref() {
            "code" => code = Some(value.into_owned()),
            "state" => state = Some(value.into_owned()),
            "iss" => iss = Some(value.into_owned()),
            "error" => error = Some(value.into_owned()),
            _ => {}
        }
    }
    match (&iss, iss_advertised) {
        (Some(iss), _) if iss != issuer => {
            return Err(OAuthError::response(format!(
                "its iss '{iss}' is not the authorization server's issuer '{issuer}' (RFC 9207)"
            )))
        }
        (None, true) => {
            return Err(OAuthError::response(
                "the authorization server advertises the iss parameter but sent none (RFC 9207)",
            ))
        }
        _ => {}
    }
    if let Some(error) = error {
        return Err(OAuthError::response(format!(
            "the authorization server answered '{error}'"
        )));
    }
    if state.as_deref() != Some(expected_state.secret().as_str()) {
        return Err(OAuthError::response("its state is not the one sent"));
    }
    code.ok_or_else(|| OAuthError::response("it carries no code"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_url_carries_pkce_state_scope_and_resource() {
        let pending = authorization_url(
            "http://127.0.0.1:1/authorize",
            "cid",
            "http://127.0.0.1:2/cb",
            &["a".to_string(), "b".to_string()],
            Some("http://127.0.0.1:3/mcp"),
        )
        .unwrap();
        let pairs: std::collections::HashMap<String, String> =
            pending.url.query_pairs().into_owned().collect();
        assert_eq!(pairs["response_type"], "code");
        assert_eq!(pairs["client_id"], "cid");
        assert_eq!(pairs["code_challenge_method"], "S256");
        assert_eq!(pairs["scope"], "a b");
        assert_eq!(pairs["resource"], "http://127.0.0.1:3/mcp");
        assert_eq!(&pairs["state"], pending.state.secret());
        use base64::Engine;
        use sha2::Digest;
        let expected = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(sha2::Sha256::digest(pending.verifier.secret().as_bytes()));
        assert_eq!(pairs["code_challenge"], expected);
        let none = authorization_url("http://a/authorize", "c", "http://b/cb", &[], None).unwrap();
        assert!(!none
            .url
            .query_pairs()
            .any(|(k, _)| k == "scope" || k == "resource"));
    }

    #[test]
    fn redirect_checks_state_and_iss_exactly() {
        let state = CsrfToken::new("st".to_string());
        let ok = "http://127.0.0.1:2/cb?code=c1&state=st&iss=http%3A%2F%2Fas%3A1";
        assert_eq!(
            code_from_redirect(ok, &state, "http://as:1", true).unwrap(),
            "c1"
        );
        assert_eq!(
            code_from_redirect("http://x/cb?code=c2&state=st", &state, "http://as:1", false)
                .unwrap(),
            "c2"
        );
        let refused = [
            ("http://x/cb?code=c&state=st", true),
            (
                "http://x/cb?code=c&state=st&iss=http%3A%2F%2Fas%3A1%2F",
                false,
            ),
            (
                "http://x/cb?code=c&state=st&iss=https%3A%2F%2Fevil.example",
                false,
            ),
            ("http://x/cb?code=c&state=other", false),
            ("http://x/cb?error=access_denied&state=st", false),
            ("http://x/cb?state=st", false),
        ];
        for (redirect, advertised) in refused {
            assert!(
                code_from_redirect(redirect, &state, "http://as:1", advertised).is_err(),
                "{redirect}"
            );
        }
    }

    #[test]
    fn assertion_is_signed_for_the_issuer() {
        // A P-256 key in PKCS#8 made for this test only.
        let pem = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgBVlkKHfl9gTNROzW\noWE+T9x9x4/uJWkDhjYkdkvLcOihRANCAAS7aQBK12F+yXES/b1MSHf6gth+JK3k\n6LS7nkO3wyajEd7D3X5yrHVRnYUw8V5OAldPhziHTwoG3/h4api33WE7\n-----END PRIVATE KEY-----\n";
        let jwt = client_assertion("cid", "http://as:1", &Secret::new(pem), "ES256").unwrap();
        let header = jsonwebtoken::decode_header(&jwt).unwrap();
        assert_eq!(header.alg, jsonwebtoken::Algorithm::ES256);
        let payload = jwt.split('.').nth(1).unwrap();
        use base64::Engine;
        let claims: serde_json::Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(claims["iss"], "cid");
        assert_eq!(claims["sub"], "cid");
        assert_eq!(claims["aud"], "http://as:1");
        assert!(client_assertion("cid", "a", &Secret::new("junk"), "ES256").is_err());
        assert!(client_assertion("cid", "a", &Secret::new(pem), "HS256").is_err());
    }
}
