//! Opaque access tokens, checked with the provider's introspection endpoint (RFC 7662).
//!
//! Owns the request (a form POST with `token` and `token_type_hint=access_token`, the
//! gateway's client authenticated with HTTP Basic) and the reading of the answer: an
//! inactive token is refused; an active one must name this provider as issuer when it
//! names one, and carry `exp` and `aud` (without an audience, nothing binds the token to
//! this resource). The request takes at most the provider's timeout and the answer is
//! read up to [`MAX_DOCUMENT_BYTES`](super::discovery::MAX_DOCUMENT_BYTES). The token
//! and the client secret never appear in an error or a log line.

use std::time::Duration;

use serde_json::{Map, Value};

use super::config::IntrospectionSettings;
use super::discovery::{read_json, MAX_DOCUMENT_BYTES};

/// Asks the provider about `token`; returns the answer's claims when it is active.
///
/// # Errors
/// The reason the token is refused, fit for `error_description`.
pub(crate) async fn introspect(
    http: &reqwest::Client,
    settings: &IntrospectionSettings,
    issuer: &str,
    token: &str,
    timeout: Duration,
) -> Result<Map<String, Value>, String> {
    let request = async {
        let (id, secret) = super::discovery::basic_credentials(
            &settings.client_id,
            settings.client_secret.expose(),
        );
        let response = http
            .post(&settings.url)
            .basic_auth(id, Some(secret))
            .header("accept", "application/json")
            .form(&[("token", token), ("token_type_hint", "access_token")])
            .send()
            .await
            .map_err(|_| "the provider's introspection endpoint cannot be reached".to_string())?;
        read_json(
            response,
            "the provider's introspection endpoint",
            MAX_DOCUMENT_BYTES,
        )
        .await
    };
    let answer = tokio::time::timeout(timeout, request)
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "the provider's introspection endpoint did not answer within {timeout:?}"
            ))
        })
        .map_err(|detail| {
            // The detail is for the operator; the client learns only that it failed.
            tracing::warn!(%issuer, error = %detail, "token introspection failed");
            "the token could not be checked: the identity provider is unavailable".to_string()
        })?;
    check_answer(answer, issuer)
}

fn check_answer(answer: Value, issuer: &str) -> Result<Map<String, Value>, String> {
    let Value::Object(claims) = answer else {
        return Err("the provider's introspection answer is not an object".to_string());
    };
    if claims.get("active") != Some(&Value::Bool(true)) {
        return Err("the token is not active (expired, revoked or unknown)".to_string());
    }
    if claims
        .get("iss")
        .is_some_and(|iss| iss.as_str() != Some(issuer))
    {
        return Err("the token's issuer is not trusted".to_string());
    }
    if !claims.get("exp").is_some_and(Value::is_u64) {
        return Err("the provider's introspection answer has no expiry (exp)".to_string());
    }
    if !claims.contains_key("aud") {
        return Err(
            "the provider's introspection answer has no audience, so the token is not bound to this resource"
                .to_string(),
        );
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_active_tokens_of_this_issuer_with_exp_and_aud_pass() {
        let issuer = "https://id.example";
        let good =
            json!({"active": true, "sub": "a", "exp": 2_000_000_000u64, "aud": "x", "iss": issuer});
        assert!(check_answer(good.clone(), issuer).is_ok());
        let mut no_iss = good.clone();
        no_iss.as_object_mut().unwrap().remove("iss");
        assert!(check_answer(no_iss, issuer).is_ok());
        for (bad, why) in [
            (json!({"active": false}), "not active"),
            (
                json!({"active": "true", "exp": 1, "aud": "x"}),
                "not active",
            ),
            (
                json!({"active": true, "exp": 1, "aud": "x", "iss": "https://other"}),
                "issuer",
            ),
            (json!({"active": true, "aud": "x"}), "expiry"),
            (json!({"active": true, "exp": 1}), "audience"),
            (json!([1]), "not an object"),
        ] {
            let error = check_answer(bad, issuer).unwrap_err();
            assert!(error.contains(why), "{error}");
        }
    }
}
