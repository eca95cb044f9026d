//! The `WWW-Authenticate: Bearer` challenge of an MCP server that wants a token
//! (RFC 6750 §3, RFC 9728 §5.1): where its protected-resource metadata is, which scope
//! it wants, and why it refused.
//!
//! Owns reading the header; the grammar itself is parsed by the `http-auth` crate. A
//! header that does not parse, or has no `Bearer` challenge, reads as an empty
//! challenge: the client then falls back to the well-known metadata locations.

use reqwest::header::{HeaderMap, WWW_AUTHENTICATE};

/// What one `Bearer` challenge asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Challenge {
    /// `resource_metadata`: the URL of the protected-resource metadata.
    pub(crate) resource_metadata: Option<String>,
    /// `scope`, split on spaces.
    pub(crate) scope: Option<Vec<String>>,
    /// `error` (`invalid_token`, `insufficient_scope`, …).
    pub(crate) error: Option<String>,
}

impl Challenge {
    /// The first `Bearer` challenge among the response's `WWW-Authenticate` headers.
    pub(crate) fn from_headers(headers: &HeaderMap) -> Challenge {
        headers
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .find_map(Challenge::parse)
            .unwrap_or_default()
    }

    /// The `Bearer` challenge of one header value, if it has one.
    pub(crate) fn parse(value: &str) -> Option<Challenge> {
        let parsed = http_auth::parse_challenges(value).ok()?;
        let bearer = parsed
            .into_iter()
            .find(|c| c.scheme.eq_ignore_ascii_case("bearer"))?;
        let mut challenge = Challenge::default();
        for (name, value) in &bearer.params {
            let value = value.to_unescaped();
            match name.to_ascii_lowercase().as_str() {
                "resource_metadata" => challenge.resource_metadata = Some(value),
                "scope" => {
                    let scopes: Vec<String> =
                        value.split_whitespace().map(str::to_string).collect();
                    if !scopes.is_empty() {
                        challenge.scope = Some(scopes);
                    }
                }
                "error" => challenge.error = Some(value),
                _ => {}
            }
        }
        Some(challenge)
    }

    /// Whether the server refused a token for want of scope (RFC 6750 §3.1).
    pub(crate) fn is_insufficient_scope(&self) -> bool {
        self.error.as_deref() == Some("insufficient_scope")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_metadata_scope_and_error() {
        let c = Challenge::parse(
            r#"Bearer error="insufficient_scope", scope="mcp:basic mcp:write", resource_metadata="http://127.0.0.1:5/.well-known/oauth-protected-resource/mcp""#,
        )
        .unwrap();
        assert_eq!(
            c.resource_metadata.as_deref(),
            Some("http://127.0.0.1:5/.well-known/oauth-protected-resource/mcp")
        );
        assert_eq!(
            c.scope,
            Some(vec!["mcp:basic".to_string(), "mcp:write".to_string()])
        );
        assert!(c.is_insufficient_scope());
    }

    #[test]
    fn finds_bearer_among_other_schemes_and_tolerates_garbage() {
        let c = Challenge::parse(r#"Basic realm="x", Bearer scope="a""#).unwrap();
        assert_eq!(c.scope, Some(vec!["a".to_string()]));
        assert!(!c.is_insufficient_scope());
        assert_eq!(Challenge::parse(r#"Basic realm="x""#), None);
        assert_eq!(Challenge::parse("Bearer ,,, =\"unterminated"), None);
        let mut headers = HeaderMap::new();
        headers.insert(WWW_AUTHENTICATE, "Bearer".parse().unwrap());
        assert_eq!(Challenge::from_headers(&headers), Challenge::default());
        assert_eq!(
            Challenge::from_headers(&HeaderMap::new()),
            Challenge::default()
        );
    }
}
