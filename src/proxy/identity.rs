//! Who is calling: the API key a downstream request presents (`Authorization: Bearer` or
//! `x-api-key`), looked up in constant time among the configured keys, turned into an
//! [`Identity`] with its team and organisation.
//!
//! Owns only that lookup. A request without a key, or with a wrong one, is refused when
//! keys are configured; with no keys configured every caller is anonymous (the settings
//! refuse such a gateway on a non-loopback address unless told otherwise).

use axum::http::HeaderMap;

use super::handler::Identity;
use crate::core::mcp::permissions::{Caller, KeyDigest};
use crate::settings::ApiKey;

/// The configured API keys.
#[derive(Debug, Clone, Default)]
pub struct KeyRing {
    keys: Vec<ApiKey>,
}

/// Why a request has no identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityError {
    /// No key was presented.
    Missing,
    /// The key is not one of ours.
    Unknown,
}

impl IdentityError {
    /// The message for the client.
    pub fn message(self) -> &'static str {
        match self {
            IdentityError::Missing => {
                "an API key is required: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'"
            }
            IdentityError::Unknown => "the API key is not valid",
        }
    }
}

impl KeyRing {
    /// A ring of the configured keys.
    pub fn new(keys: Vec<ApiKey>) -> Self {
        KeyRing { keys }
    }

    /// Whether callers must present a key.
    pub fn requires_key(&self) -> bool {
        !self.keys.is_empty()
    }

    /// The identity of a request, from its headers.
    ///
    /// # Errors
    /// [`IdentityError`] when keys are configured and none, or a wrong one, was given.
    pub fn identify(&self, headers: &HeaderMap) -> Result<Identity, IdentityError> {
        if !self.requires_key() {
            return Ok(Identity::anonymous());
        }
        let presented = presented_key(headers).ok_or(IdentityError::Missing)?;
        let digest = KeyDigest::of(presented);
        self.find(&digest).ok_or(IdentityError::Unknown)
    }

    /// Looks a digest up comparing against every key, so the time taken does not tell
    /// which key (or how much of one) matched.
    fn find(&self, digest: &KeyDigest) -> Option<Identity> {
        use subtle::ConstantTimeEq;
        let mut found: Option<&ApiKey> = None;
        for key in &self.keys {
            let equal: bool = key.digest.as_bytes().ct_eq(digest.as_bytes()).into();
            if equal && found.is_none() {
                found = Some(key);
            }
        }
        found.map(|key| Identity {
            caller: Caller {
                api_key: None,
                team: key.team.clone(),
                organization: key.organization.clone(),
            },
            digest: Some(key.digest),
            name: key.name.clone(),
        })
    }
}

/// The key a request presents: `Authorization: Bearer <key>`, else `x-api-key`.
fn presented_key(headers: &HeaderMap) -> Option<&str> {
    let bearer = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then_some(rest.trim())
        });
    bearer
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()))
        .map(str::trim)
        .filter(|k| !k.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring() -> KeyRing {
        KeyRing::new(vec![ApiKey {
            name: "ci".into(),
            digest: KeyDigest::of("sk-ci"),
            team: Some("platform".into()),
            organization: Some("acme".into()),
        }])
    }

    #[test]
    fn keys_come_from_either_header() {
        let mut headers = HeaderMap::new();
        assert_eq!(
            ring().identify(&headers).unwrap_err(),
            IdentityError::Missing
        );
        headers.insert("authorization", "Bearer sk-ci".parse().unwrap());
        let id = ring().identify(&headers).unwrap();
        assert_eq!(id.name, "ci");
        assert_eq!(id.caller.team.as_deref(), Some("platform"));
        let mut headers = HeaderMap::new();
        headers.insert("x-api-key", "sk-ci".parse().unwrap());
        assert_eq!(ring().identify(&headers).unwrap().name, "ci");
        headers.insert("x-api-key", "sk-wrong".parse().unwrap());
        assert_eq!(
            ring().identify(&headers).unwrap_err(),
            IdentityError::Unknown
        );
        assert_eq!(
            KeyRing::default().identify(&HeaderMap::new()).unwrap().name,
            "anonymous"
        );
    }
}
