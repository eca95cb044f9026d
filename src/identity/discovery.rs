//! Fetching small JSON documents from an identity provider: its discovery document
//! (OpenID Connect Discovery, then RFC 8414 with the path variant) and its keys.
//!
//! Owns the limits of those requests: each has the provider's timeout, a body cap
//! ([`MAX_DOCUMENT_BYTES`]) and no more than [`MAX_REDIRECTS`] redirects, all within the
//! request's origin (token exchange and introspection send a client secret and a
//! caller's token, which must not follow a redirect elsewhere). Errors are
//! short texts fit for a log line or a client's `error_description`: they name the
//! document, never a credential.

use std::time::Duration;

use serde_json::Value;

/// The largest discovery document, key set or introspection answer read: 256 KiB.
pub const MAX_DOCUMENT_BYTES: usize = 256 * 1024;
/// Redirects followed by a request to a provider, all within its origin.
pub const MAX_REDIRECTS: usize = 3;

/// The HTTP client for a provider's documents (discovery, keys): a few redirects within
/// the request's origin, and no credential on any request.
pub(crate) fn provider_client() -> reqwest::Client {
    client(crate::core::mcp::same_origin_redirects(MAX_REDIRECTS))
}

/// The HTTP client for requests that carry a credential (introspection, token exchange):
/// no redirect is followed, so neither the client secret nor a token in the body can be
/// sent on to another address.
pub(crate) fn credential_client() -> reqwest::Client {
    client(reqwest::redirect::Policy::none())
}

fn client(redirects: reqwest::redirect::Policy) -> reqwest::Client {
    match reqwest::Client::builder().redirect(redirects).build() {
        Ok(client) => client,
        Err(error) => {
            // Only a TLS back-end that cannot start fails here; a plain client still
            // serves loopback providers, and https ones fail with their own error.
            tracing::error!(%error, "cannot build the identity providers' HTTP client");
            reqwest::Client::default()
        }
    }
}

/// HTTP Basic credentials of an OAuth client: id and secret form-urlencoded first
/// (RFC 6749 §2.3.1), as providers decode them.
pub(crate) fn basic_credentials(client_id: &str, client_secret: &str) -> (String, String) {
    let encode = |text: &str| url::form_urlencoded::byte_serialize(text.as_bytes()).collect();
    (encode(client_id), encode(client_secret))
}

/// Whether a URL a provider gave may be fetched: `https://`, or `http://` on loopback.
pub(crate) fn is_secure_url(url: &str) -> bool {
    match url::Url::parse(url) {
        Ok(parsed) if parsed.scheme() == "https" => true,
        Ok(parsed) if parsed.scheme() == "http" => match parsed.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(d)) => d == "localhost",
            None => false,
        },
        _ => false,
    }
}

/// Reads a response's body up to `cap` bytes and parses it as JSON.
///
/// # Errors
/// A short text: the status was not a success, the body is over the cap, or not JSON.
pub(crate) async fn read_json(
    response: reqwest::Response,
    what: &str,
    cap: usize,
) -> Result<Value, String> {
    let status = response.status();
    if !status.is_success() {
        return Err(format!("{what} answered HTTP {}", status.as_u16()));
    }
    if response.content_length().is_some_and(|n| n > cap as u64) {
        return Err(format!("{what} is larger than {cap} bytes"));
    }
    read_json_any_status(response, what, cap).await
}

/// Reads a response's body as JSON up to `cap` bytes, whatever its status (an OAuth
/// error answer is JSON too).
///
/// # Errors
/// A short text: the body is over the cap, or not JSON.
pub(crate) async fn read_json_any_status(
    mut response: reqwest::Response,
    what: &str,
    cap: usize,
) -> Result<Value, String> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("reading {what}: {}", without_url(&e)))?
    {
        if body.len() + chunk.len() > cap {
            return Err(format!("{what} is larger than {cap} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).map_err(|_| format!("{what} is not JSON"))
}

/// GETs a JSON document within `timeout`.
///
/// # Errors
/// A short text saying what failed.
pub(crate) async fn get_json(
    http: &reqwest::Client,
    url: &str,
    what: &str,
    timeout: Duration,
) -> Result<Value, String> {
    let fetch = async {
        let response = http
            .get(url)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| format!("fetching {what}: {}", without_url(&e)))?;
        read_json(response, what, MAX_DOCUMENT_BYTES).await
    };
    tokio::time::timeout(timeout, fetch)
        .await
        .unwrap_or_else(|_| Err(format!("{what} did not answer within {timeout:?}")))
}

/// The discovery document of the provider `issuer`: OpenID Connect Discovery
/// (`<issuer>/.well-known/openid-configuration`), else RFC 8414
/// (`/.well-known/oauth-authorization-server` inserted before the issuer's path). Its
/// `issuer` must be `issuer` exactly.
///
/// # Errors
/// A short text saying why no document was found.
pub(crate) async fn discover(
    http: &reqwest::Client,
    issuer: &str,
    timeout: Duration,
) -> Result<Value, String> {
    let mut last = String::new();
    for url in discovery_urls(issuer) {
        match get_json(http, &url, "the provider's discovery document", timeout).await {
            Ok(document) => {
                if document.get("issuer").and_then(Value::as_str) != Some(issuer) {
                    return Err(
                        "the provider's discovery document names another issuer".to_string()
                    );
                }
                return Ok(document);
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Where a provider's discovery document may be, in the order tried.
fn discovery_urls(issuer: &str) -> Vec<String> {
    let trimmed = issuer.trim_end_matches('/');
    let mut urls = vec![format!("{trimmed}/.well-known/openid-configuration")];
    if let Ok(parsed) = url::Url::parse(trimmed) {
        let path = parsed.path().trim_end_matches('/');
        let origin = parsed.origin().ascii_serialization();
        urls.push(format!(
            "{origin}/.well-known/oauth-authorization-server{path}"
        ));
        if !path.is_empty() {
            urls.push(format!(
                "{origin}{path}/.well-known/oauth-authorization-server"
            ));
        }
    }
    urls
}

/// A `reqwest` error's text without its URL (which may carry a query with a secret).
fn without_url(error: &reqwest::Error) -> String {
    let error = error.to_string();
    match error.split_once(" for url (") {
        Some((head, _)) => head.to_string(),
        None => error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_urls_follow_oidc_then_rfc_8414_with_the_path_inserted() {
        assert_eq!(
            discovery_urls("https://id.example.com"),
            [
                "https://id.example.com/.well-known/openid-configuration",
                "https://id.example.com/.well-known/oauth-authorization-server",
            ]
        );
        assert_eq!(
            discovery_urls("https://id.example.com/realms/acme"),
            [
                "https://id.example.com/realms/acme/.well-known/openid-configuration",
                "https://id.example.com/.well-known/oauth-authorization-server/realms/acme",
                "https://id.example.com/realms/acme/.well-known/oauth-authorization-server",
            ]
        );
    }
}
