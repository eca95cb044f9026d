//! Verifying a JWT access token against one provider: its signature with one of the
//! provider's keys, under an algorithm the provider allows, its issuer, and its
//! expiry and not-before times with the provider's leeway. The audience depends on the
//! endpoint the token is presented to, and is checked by the caller
//! ([`super::resource`]).
//!
//! Owns the order of the checks, so that each refusal has one clear reason: the
//! header is read first (an algorithm outside the allow-list, `none` included, is
//! refused before any key is looked up, so a public key can never be used as an HMAC
//! secret), then the key is found, then `jsonwebtoken` verifies signature and times.

use std::sync::Arc;

use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};

use super::config::ProviderSettings;
use super::jwks::{KeyError, KeySource};

/// What can be read from a JWT before it is verified: enough to choose the provider
/// and the key.
#[derive(Debug)]
pub(crate) struct UnverifiedJwt {
    /// The header's `alg`, as written.
    alg: String,
    /// The header's `kid`.
    kid: Option<String>,
    /// The header's `typ`.
    typ: Option<String>,
    /// The payload's `iss`.
    pub(crate) issuer: Option<String>,
}

/// Reads a token's header and issuer, if it has the shape of a JWT (three base64url
/// segments, a JSON object header with `alg`, a JSON object payload). `None`: not a JWT
/// (an opaque token or an API key).
pub(crate) fn peek(token: &str) -> Option<UnverifiedJwt> {
    let mut parts = token.split('.');
    let (header, payload, _signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let decode = |segment: &str| -> Option<Map<String, Value>> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(segment.trim_end_matches('='))
            .ok()?;
        match serde_json::from_slice(&bytes).ok()? {
            Value::Object(map) => Some(map),
            _ => None,
        }
    };
    let header = decode(header)?;
    let payload = decode(payload)?;
    Some(UnverifiedJwt {
        alg: header.get("alg")?.as_str()?.to_string(),
        kid: header
            .get("kid")
            .and_then(Value::as_str)
            .map(str::to_string),
        typ: header
            .get("typ")
            .and_then(Value::as_str)
            .map(str::to_string),
        issuer: payload
            .get("iss")
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}

/// Verifies `token` (already [`peek`]ed as `jwt`) against `provider`, and returns its
/// claims.
///
/// # Errors
/// The reason the token is refused, fit for `error_description`.
pub(crate) async fn verify(
    token: &str,
    jwt: &UnverifiedJwt,
    provider: &ProviderSettings,
    keys: &Arc<KeySource>,
) -> Result<Map<String, Value>, String> {
    // RFC 9068 access tokens say `at+jwt`; many providers say `JWT`. Anything else
    // (`id_token+jwt`, logout tokens, …) is some other token.
    if let Some(typ) = &jwt.typ {
        let typ = typ.to_ascii_lowercase();
        if !matches!(typ.as_str(), "at+jwt" | "application/at+jwt" | "jwt") {
            return Err(format!(
                "the token's type {} is not an access token's",
                printable(&typ)
            ));
        }
    }
    let alg = jwt
        .alg
        .parse::<Algorithm>()
        .ok()
        .filter(|alg| provider.algorithms.contains(alg))
        .ok_or_else(|| {
            format!(
                "the token's signature algorithm {} is not accepted",
                printable(&jwt.alg)
            )
        })?;
    let key = keys
        .key_for(jwt.kid.as_deref(), alg)
        .await
        .map_err(|e| match e {
            KeyError::Unknown => {
                "the token is signed with a key the provider does not publish".to_string()
            }
            KeyError::Unavailable(_) => {
                // The detail was logged where the fetch failed.
                "the token's signing key is not known and the provider's keys are unavailable"
                    .to_string()
            }
        })?;
    let mut validation = Validation::new(alg);
    validation.algorithms = vec![alg];
    validation.leeway = provider.leeway.as_secs();
    validation.validate_exp = true;
    validation.validate_nbf = true;
    validation.validate_aud = false; // per endpoint, by the caller
    validation.set_issuer(&[&provider.issuer]);
    validation.set_required_spec_claims(&["exp", "iss"]);
    jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &validation)
        .map(|data| data.claims)
        .map_err(|e| {
            match e.kind() {
                ErrorKind::ExpiredSignature => "the token has expired",
                ErrorKind::ImmatureSignature => "the token is not valid yet (nbf)",
                ErrorKind::InvalidIssuer => "the token's issuer is not trusted",
                ErrorKind::InvalidSignature => "the token's signature is not valid",
                ErrorKind::InvalidAlgorithm => {
                    "the token's signature algorithm does not fit its key"
                }
                ErrorKind::MissingRequiredClaim(claim) if claim == "exp" => {
                    "the token has no expiry (exp)"
                }
                ErrorKind::MissingRequiredClaim(_) => "the token lacks a required claim",
                _ => "the token is not a well-formed JWT",
            }
            .to_string()
        })
}

/// A value from a token, made safe to quote in a message: printable ASCII without
/// quotes or backslashes, at most 32 characters.
pub(crate) fn printable(text: &str) -> String {
    let clean: String = text
        .chars()
        .filter(|c| c.is_ascii_graphic() && *c != '"' && *c != '\\')
        .take(32)
        .collect();
    if clean.is_empty() {
        "(none)".to_string()
    } else {
        clean
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(value: &Value) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
    }

    #[test]
    fn peek_reads_the_header_and_issuer_of_jwt_shapes_only() {
        let header = segment(&serde_json::json!({"alg": "none", "typ": "JWT"}));
        let payload = segment(&serde_json::json!({"iss": "https://id.example", "sub": "a"}));
        let jwt = peek(&format!("{header}.{payload}.")).unwrap();
        assert_eq!(jwt.alg, "none");
        assert_eq!(jwt.issuer.as_deref(), Some("https://id.example"));
        assert!(jwt.kid.is_none());
        assert!(peek("sk-an-api-key").is_none());
        assert!(peek("a.b.c").is_none());
        assert!(peek(&format!("{header}.{payload}.x.y")).is_none());
        assert!(peek(&format!("{}.{payload}.", segment(&serde_json::json!([1])))).is_none());
    }

    #[tokio::test]
    async fn algorithms_outside_the_allow_list_are_refused_before_any_key_is_fetched() {
        let provider = ProviderSettings {
            jwks_url: Some("http://127.0.0.1:1/jwks".to_string()),
            ..ProviderSettings::new("https://id.example")
        };
        let keys = KeySource::new(&provider, reqwest::Client::new());
        for alg in ["none", "HS256", "HS512", "RSA-OAEP", "\"evil\\"] {
            let jwt = UnverifiedJwt {
                alg: alg.to_string(),
                kid: None,
                typ: None,
                issuer: None,
            };
            let error = verify("x.y.z", &jwt, &provider, &keys).await.unwrap_err();
            assert!(error.contains("is not accepted"), "{alg}: {error}");
            assert!(!error.contains('"'), "{error}");
        }
    }
}
