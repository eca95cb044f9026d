//! How the client becomes known to an authorization server: a pre-registered client, a
//! Client ID Metadata Document (its URL is the `client_id`), or dynamic registration
//! (RFC 7591) as the fallback, in that order of preference.
//!
//! Owns the choice and the registration request. A registration belongs to one
//! authorization server (the caller keys it by issuer): credentials are never carried
//! to another one. The registration answer is read within
//! [`super::grants::MAX_TOKEN_RESPONSE_BYTES`]; its secret goes straight into a
//! [`Secret`].

use serde::Deserialize;

use super::config::{ClientCredential, Grant, OAuthConfig, TokenEndpointAuthMethod};
use super::discovery::{is_secure_endpoint, ServerMetadata};
use super::error::OAuthError;
use super::grants::{ClientIdentity, MAX_TOKEN_RESPONSE_BYTES, TOKEN_TIMEOUT};
use super::read_capped;
use crate::core::mcp::config::Secret;

/// The way to send a client secret that `metadata` accepts, `client_secret_basic`
/// first (the default of RFC 8414 when the list is absent).
fn secret_method(metadata: &ServerMetadata) -> TokenEndpointAuthMethod {
    match &metadata.token_endpoint_auth_methods_supported {
        Some(methods)
            if !methods.iter().any(|m| m == "client_secret_basic")
                && methods.iter().any(|m| m == "client_secret_post") =>
        {
            TokenEndpointAuthMethod::ClientSecretPost
        }
        _ => TokenEndpointAuthMethod::ClientSecretBasic,
    }
}

/// The client identity to use at the authorization server `metadata` describes.
///
/// # Errors
/// [`OAuthError::NoRegistration`] when nothing fits; [`OAuthError::Registration`] when
/// dynamic registration fails.
pub(crate) async fn client_for(
    http: &reqwest::Client,
    config: &OAuthConfig,
    metadata: &ServerMetadata,
    scopes: &[String],
) -> Result<ClientIdentity, OAuthError> {
    if let Some(client) = &config.client {
        let (method, secret, private_key) = match &client.credential {
            ClientCredential::None => (TokenEndpointAuthMethod::None, None, None),
            ClientCredential::Secret { secret, method } => (
                method.unwrap_or_else(|| secret_method(metadata)),
                Some(secret.clone()),
                None,
            ),
            ClientCredential::PrivateKey { key_pem, algorithm } => (
                TokenEndpointAuthMethod::PrivateKeyJwt,
                None,
                Some((key_pem.clone(), algorithm.clone())),
            ),
        };
        return Ok(ClientIdentity {
            client_id: client.client_id.clone(),
            method,
            secret,
            private_key,
        });
    }
    if let Some(document) = &config.metadata_document {
        if metadata.client_id_metadata_document_supported {
            return Ok(ClientIdentity {
                client_id: document.clone(),
                method: TokenEndpointAuthMethod::None,
                secret: None,
                private_key: None,
            });
        }
    }
    match &metadata.registration_endpoint {
        Some(endpoint) => register(http, endpoint, config, metadata, scopes).await,
        None => Err(OAuthError::NoRegistration {
            issuer: metadata.issuer.clone(),
        }),
    }
}

/// `application_type` (OpenID Connect registration, SEP-837): `native` for a client
/// whose browser comes back to a loopback address or a private scheme, `web` otherwise
/// (a hosted redirect, or no browser at all).
fn application_type(grant: &Grant) -> &'static str {
    let Grant::AuthorizationCode { redirect_uri, .. } = grant else {
        return "web";
    };
    match url::Url::parse(redirect_uri) {
        Ok(url) if url.scheme() == "https" => "web",
        Ok(url) if url.scheme() == "http" && !is_secure_endpoint(url.as_str()) => "web",
        _ => "native",
    }
}

#[derive(Deserialize)]
struct RegistrationAnswer {
    client_id: String,
    #[serde(default)]
    client_secret: Option<String>,
    #[serde(default)]
    token_endpoint_auth_method: Option<String>,
}

/// Dynamic client registration (RFC 7591 §3.1).
async fn register(
    http: &reqwest::Client,
    endpoint: &str,
    config: &OAuthConfig,
    metadata: &ServerMetadata,
    scopes: &[String],
) -> Result<ClientIdentity, OAuthError> {
    if !is_secure_endpoint(endpoint) {
        return Err(OAuthError::Registration {
            reason: "the registration endpoint is neither HTTPS nor loopback".to_string(),
        });
    }
    let requested = match &metadata.token_endpoint_auth_methods_supported {
        Some(methods) if methods.len() == 1 && methods[0] == "none" => {
            TokenEndpointAuthMethod::None
        }
        _ => secret_method(metadata),
    };
    let mut document = match &config.grant {
        Grant::ClientCredentials => serde_json::json!({
            "client_name": config.client_name,
            "grant_types": ["client_credentials"],
            "response_types": [],
            "redirect_uris": [],
        }),
        Grant::AuthorizationCode { redirect_uri, .. } => serde_json::json!({
            "client_name": config.client_name,
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "redirect_uris": [redirect_uri],
        }),
    };
    document["token_endpoint_auth_method"] = requested.as_str().into();
    document["application_type"] = application_type(&config.grant).into();
    if !scopes.is_empty() {
        document["scope"] = scopes.join(" ").into();
    }
    let response = http
        .post(endpoint)
        .json(&document)
        .timeout(TOKEN_TIMEOUT)
        .send()
        .await
        .map_err(|e| OAuthError::Registration {
            reason: super::without_url(&e),
        })?;
    let status = response.status();
    let body = read_capped(response, MAX_TOKEN_RESPONSE_BYTES)
        .await
        .map_err(|reason| OAuthError::Registration { reason })?;
    if !status.is_success() {
        let error = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
            .unwrap_or_else(|| "no error code".to_string());
        return Err(OAuthError::Registration {
            reason: format!("the server answered {status} ({error})"),
        });
    }
    let answer: RegistrationAnswer =
        serde_json::from_slice(&body).map_err(|e| OAuthError::Registration {
            reason: format!("the answer is not a registration: {e}"),
        })?;
    let method = answer
        .token_endpoint_auth_method
        .as_deref()
        .and_then(TokenEndpointAuthMethod::parse)
        .unwrap_or(if answer.client_secret.is_some() {
            requested
        } else {
            TokenEndpointAuthMethod::None
        });
    Ok(ClientIdentity {
        client_id: answer.client_id,
        method,
        secret: answer.client_secret.map(Secret::new),
        private_key: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_method_follows_the_server() {
        let mut metadata = ServerMetadata::default();
        assert_eq!(
            secret_method(&metadata),
            TokenEndpointAuthMethod::ClientSecretBasic
        );
        metadata.token_endpoint_auth_methods_supported = Some(vec!["client_secret_post".into()]);
        assert_eq!(
            secret_method(&metadata),
            TokenEndpointAuthMethod::ClientSecretPost
        );
        metadata.token_endpoint_auth_methods_supported = Some(vec![
            "client_secret_post".into(),
            "client_secret_basic".into(),
        ]);
        assert_eq!(
            secret_method(&metadata),
            TokenEndpointAuthMethod::ClientSecretBasic
        );
    }

    #[tokio::test]
    async fn metadata_document_wins_where_supported_and_registration_is_the_fallback() {
        let http = reqwest::Client::new();
        struct Never;
        impl super::super::config::AuthorizationHandler for Never {
            fn authorize<'a>(
                &'a self,
                _r: &'a super::super::config::AuthorizationRequest,
            ) -> futures::future::BoxFuture<'a, Result<String, String>> {
                Box::pin(async { Err("none".to_string()) })
            }
        }
        let config =
            OAuthConfig::authorization_code("http://127.0.0.1:1/cb", std::sync::Arc::new(Never))
                .with_client_metadata_document("https://client.example/meta.json");
        let mut metadata = ServerMetadata {
            issuer: "http://127.0.0.1:1".to_string(),
            client_id_metadata_document_supported: true,
            ..ServerMetadata::default()
        };
        let client = client_for(&http, &config, &metadata, &[]).await.unwrap();
        assert_eq!(client.client_id, "https://client.example/meta.json");
        assert_eq!(client.method, TokenEndpointAuthMethod::None);
        metadata.client_id_metadata_document_supported = false;
        let err = client_for(&http, &config, &metadata, &[])
            .await
            .unwrap_err();
        assert!(matches!(err, OAuthError::NoRegistration { .. }), "{err}");
        let registered = config.with_client("pre", Some("s".to_string()));
        let client = client_for(&http, &registered, &metadata, &[])
            .await
            .unwrap();
        assert_eq!(client.client_id, "pre");
        assert_eq!(client.method, TokenEndpointAuthMethod::ClientSecretBasic);
        assert_eq!(application_type(&registered.grant), "native");
        assert_eq!(application_type(&Grant::ClientCredentials), "web");
    }
}
