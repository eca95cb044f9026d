//! Finding an MCP server's authorization server: protected-resource metadata (RFC 9728)
//! from the challenge's `resource_metadata` or the well-known locations, then the
//! authorization server's metadata (RFC 8414, or OpenID Connect discovery), with the
//! path variants the MCP authorization specification lists.
//!
//! Owns the order in which locations are tried and the checks on what comes back: the
//! metadata's `resource` must be the server's URL or a parent of it on the same origin,
//! and the authorization server's `issuer` must be the one it was looked up for. Every
//! document is read within [`MAX_METADATA_BYTES`] and [`METADATA_TIMEOUT`]; no request
//! here carries a credential.

use std::time::Duration;

use serde::Deserialize;
use url::Url;

use super::error::OAuthError;
use super::read_capped;

/// The largest metadata document read.
pub const MAX_METADATA_BYTES: usize = 64 * 1024;
/// The timeout of each metadata request.
pub const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// Protected-resource metadata (RFC 9728 §2), the fields the client uses.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ResourceMetadata {
    /// The resource identifier: the `resource` of token requests.
    pub(crate) resource: String,
    /// The authorization servers; the first is used.
    #[serde(default)]
    pub(crate) authorization_servers: Vec<String>,
    /// The scopes the resource knows.
    #[serde(default)]
    pub(crate) scopes_supported: Option<Vec<String>>,
}

/// Authorization-server metadata (RFC 8414 §2), the fields the client uses.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct ServerMetadata {
    pub(crate) issuer: String,
    #[serde(default)]
    pub(crate) authorization_endpoint: Option<String>,
    #[serde(default)]
    pub(crate) token_endpoint: Option<String>,
    #[serde(default)]
    pub(crate) registration_endpoint: Option<String>,
    #[serde(default)]
    pub(crate) scopes_supported: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) token_endpoint_auth_methods_supported: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) code_challenge_methods_supported: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) client_id_metadata_document_supported: bool,
    #[serde(default)]
    pub(crate) authorization_response_iss_parameter_supported: bool,
}

impl ServerMetadata {
    /// The endpoints the 2025-03-26 revision assumed for a server without metadata: the
    /// default paths on the server's own origin.
    pub(crate) fn defaults_at(origin: &Url) -> ServerMetadata {
        let at = |path: &str| origin.join(path).ok().map(|u| u.to_string());
        ServerMetadata {
            issuer: origin_of(origin),
            authorization_endpoint: at("/authorize"),
            token_endpoint: at("/token"),
            registration_endpoint: at("/register"),
            code_challenge_methods_supported: Some(vec!["S256".to_string()]),
            ..ServerMetadata::default()
        }
    }
}

/// `scheme://host[:port]` of a URL, without a trailing slash.
pub(crate) fn origin_of(url: &Url) -> String {
    url.origin().ascii_serialization()
}

/// Where to look for the protected-resource metadata of `server`: the challenge's
/// `resource_metadata` first, then `/.well-known/oauth-protected-resource<path>`, then
/// `/.well-known/oauth-protected-resource`.
pub(crate) fn resource_metadata_locations(server: &Url, from_challenge: Option<&str>) -> Vec<Url> {
    let mut locations = Vec::new();
    if let Some(url) = from_challenge.and_then(|u| Url::parse(u).ok()) {
        locations.push(url);
    }
    let path = server.path().trim_end_matches('/');
    for suffix in [path, ""] {
        if let Ok(url) = server.join(&format!("/.well-known/oauth-protected-resource{suffix}")) {
            if !locations.contains(&url) {
                locations.push(url);
            }
        }
    }
    locations
}

/// Where to look for the metadata of the authorization server `issuer` (MCP
/// authorization, "Authorization Server Metadata Discovery"): with a path, RFC 8414's
/// path insertion, OpenID's path insertion, then OpenID's path appending; without one,
/// RFC 8414 then OpenID.
pub(crate) fn server_metadata_locations(issuer: &Url) -> Vec<Url> {
    let path = issuer.path().trim_end_matches('/');
    let candidates = if path.is_empty() {
        vec![
            "/.well-known/oauth-authorization-server".to_string(),
            "/.well-known/openid-configuration".to_string(),
        ]
    } else {
        vec![
            format!("/.well-known/oauth-authorization-server{path}"),
            format!("/.well-known/openid-configuration{path}"),
            format!("{path}/.well-known/openid-configuration"),
        ]
    };
    candidates
        .iter()
        .filter_map(|p| issuer.join(p).ok())
        .collect()
}

/// Whether a metadata `resource` stands for `server`: the same origin, and a path that
/// is the server's or a parent of it (segment-wise; a trailing `/` does not count).
pub(crate) fn resource_covers(resource: &str, server: &Url) -> bool {
    let Ok(resource) = Url::parse(resource) else {
        return false;
    };
    if resource.origin() != server.origin() {
        return false;
    }
    let parent = resource.path().trim_end_matches('/');
    let child = server.path().trim_end_matches('/');
    child == parent || child.starts_with(&format!("{parent}/"))
}

/// Whether two issuer identifiers are the same, ignoring one trailing `/`.
pub(crate) fn same_issuer(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

/// Whether credentials may be sent to `url`: HTTPS, or HTTP to a loopback address.
pub(crate) fn is_secure_endpoint(url: &str) -> bool {
    let Ok(url) = Url::parse(url) else {
        return false;
    };
    match (url.scheme(), url.host()) {
        ("https", Some(_)) => true,
        ("http", Some(url::Host::Ipv4(ip))) => ip.is_loopback(),
        ("http", Some(url::Host::Ipv6(ip))) => ip.is_loopback(),
        ("http", Some(url::Host::Domain(name))) => name.eq_ignore_ascii_case("localhost"),
        _ => false,
    }
}

/// GETs a JSON document; `Ok(None)` when the server does not have it (any answer other
/// than a 2xx), `Err` when it could not be asked or the answer is not JSON.
async fn get_json<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    url: &Url,
) -> Result<Option<T>, String> {
    let response = http
        .get(url.clone())
        .header("Accept", "application/json")
        .timeout(METADATA_TIMEOUT)
        .send()
        .await
        .map_err(|e| format!("{url}: {}", super::without_url(&e)))?;
    if !response.status().is_success() {
        return Ok(None);
    }
    let body = read_capped(response, MAX_METADATA_BYTES)
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    serde_json::from_slice(&body)
        .map(Some)
        .map_err(|e| format!("{url}: not a metadata document ({e})"))
}

/// The protected-resource metadata of `server`, checked against it; `Ok(None)` when no
/// location has it (a server of the 2025-03-26 revision).
///
/// # Errors
/// [`OAuthError::ResourceMismatch`] for metadata of another resource;
/// [`OAuthError::Fetch`] when a location answered with something that is not metadata.
pub(crate) async fn resource_metadata(
    http: &reqwest::Client,
    server: &Url,
    from_challenge: Option<&str>,
) -> Result<Option<ResourceMetadata>, OAuthError> {
    let mut problems = Vec::new();
    for location in resource_metadata_locations(server, from_challenge) {
        match get_json::<ResourceMetadata>(http, &location).await {
            Ok(Some(metadata)) => {
                if !resource_covers(&metadata.resource, server) {
                    return Err(OAuthError::ResourceMismatch {
                        resource: metadata.resource,
                        server_url: server.to_string(),
                    });
                }
                return Ok(Some(metadata));
            }
            Ok(None) => {}
            Err(problem) => problems.push(problem),
        }
    }
    if problems.is_empty() {
        Ok(None)
    } else {
        Err(OAuthError::fetch(
            "the protected-resource metadata",
            problems.join("; "),
        ))
    }
}

/// The metadata of the authorization server `issuer`, its `issuer` checked.
///
/// # Errors
/// [`OAuthError::IssuerMismatch`] when the document names another issuer;
/// [`OAuthError::Fetch`] when no location has it.
pub(crate) async fn server_metadata(
    http: &reqwest::Client,
    issuer: &str,
) -> Result<ServerMetadata, OAuthError> {
    let parsed = Url::parse(issuer).map_err(|e| {
        OAuthError::fetch(
            "the authorization-server metadata",
            format!("the issuer '{issuer}' is not a URL: {e}"),
        )
    })?;
    let mut problems = Vec::new();
    for location in server_metadata_locations(&parsed) {
        match get_json::<ServerMetadata>(http, &location).await {
            Ok(Some(metadata)) => {
                if !same_issuer(&metadata.issuer, issuer) {
                    return Err(OAuthError::IssuerMismatch {
                        expected: issuer.to_string(),
                        found: metadata.issuer,
                    });
                }
                return Ok(metadata);
            }
            Ok(None) => problems.push(format!("{location}: not found")),
            Err(problem) => problems.push(problem),
        }
    }
    Err(OAuthError::fetch(
        "the authorization-server metadata",
        problems.join("; "),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn resource_metadata_is_looked_for_in_the_specified_order() {
        let server = url("http://127.0.0.1:9/mcp");
        let found: Vec<String> =
            resource_metadata_locations(&server, Some("http://127.0.0.1:9/custom/meta.json"))
                .iter()
                .map(Url::to_string)
                .collect();
        assert_eq!(
            found,
            [
                "http://127.0.0.1:9/custom/meta.json",
                "http://127.0.0.1:9/.well-known/oauth-protected-resource/mcp",
                "http://127.0.0.1:9/.well-known/oauth-protected-resource",
            ]
        );
        let root = resource_metadata_locations(&url("http://h/"), None);
        assert_eq!(root.len(), 1, "{root:?}");
    }

    #[test]
    fn server_metadata_path_variants() {
        let with_path: Vec<String> = server_metadata_locations(&url("http://a:1/tenant1"))
            .iter()
            .map(Url::to_string)
            .collect();
        assert_eq!(
            with_path,
            [
                "http://a:1/.well-known/oauth-authorization-server/tenant1",
                "http://a:1/.well-known/openid-configuration/tenant1",
                "http://a:1/tenant1/.well-known/openid-configuration",
            ]
        );
        let root: Vec<String> = server_metadata_locations(&url("http://a:1"))
            .iter()
            .map(Url::to_string)
            .collect();
        assert_eq!(
            root,
            [
                "http://a:1/.well-known/oauth-authorization-server",
                "http://a:1/.well-known/openid-configuration",
            ]
        );
    }

    #[test]
    fn resource_must_be_the_server_or_a_parent_on_its_origin() {
        let server = url("http://127.0.0.1:9/mcp");
        assert!(resource_covers("http://127.0.0.1:9/mcp", &server));
        assert!(resource_covers("http://127.0.0.1:9/mcp/", &server));
        assert!(resource_covers("http://127.0.0.1:9", &server));
        assert!(!resource_covers("http://127.0.0.1:9/other", &server));
        assert!(!resource_covers("http://127.0.0.1:9/mc", &server));
        assert!(!resource_covers("http://127.0.0.1:10/mcp", &server));
        assert!(!resource_covers("https://evil.example/mcp", &server));
        assert!(!resource_covers("not a url", &server));
    }

    #[test]
    fn issuers_and_endpoints() {
        assert!(same_issuer("http://a:1", "http://a:1/"));
        assert!(!same_issuer("http://a:1", "http://b:1"));
        assert!(is_secure_endpoint("https://as.example/token"));
        assert!(is_secure_endpoint("http://127.0.0.1:4/token"));
        assert!(is_secure_endpoint("http://localhost:4/token"));
        assert!(!is_secure_endpoint("http://as.example/token"));
        assert!(!is_secure_endpoint("ftp://127.0.0.1/token"));
        let defaults = ServerMetadata::defaults_at(&url("http://127.0.0.1:7/mcp"));
        assert_eq!(defaults.issuer, "http://127.0.0.1:7");
        assert_eq!(
            defaults.token_endpoint.as_deref(),
            Some("http://127.0.0.1:7/token")
        );
    }
}
