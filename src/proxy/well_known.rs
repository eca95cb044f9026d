//! What the gateway publishes as an OAuth 2.1 resource server, when `oauth` is
//! configured (404 otherwise):
//!
//! - `GET /.well-known/oauth-protected-resource<path>`: the protected-resource metadata
//!   (RFC 9728) of each endpoint: `/mcp`, `/mcp/<server>`, `/sse`, `/sse/<server>`, `/ws`,
//!   `/ws/<server>`, `/v1/mcp`, and the gateway itself (no path). The metadata of
//!   `/mcp/<server>` is served for any name, so it does not tell which servers exist.
//! - With `oauth.registration` (the registration handout, for providers that let no
//!   client register itself): `GET /.well-known/oauth-authorization-server` and
//!   `/.well-known/openid-configuration` mirror the provider's metadata with the gateway
//!   as issuer and `registration_endpoint` at `POST /oauth/register`, which answers every
//!   registration (RFC 7591) with the one configured client. README.md lists the risks.
//!
//! Nothing here needs a credential, and nothing here reveals one: the handout's client is
//! a public one (PKCE, no secret; the settings refuse a secret).

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::AppState;
use crate::identity::unix_now;

/// The first path segments of the endpoints that have metadata.
const FACES: [&str; 3] = ["mcp", "sse", "ws"];
/// The largest registration request read.
const MAX_REGISTRATION_BYTES: usize = 16 * 1024;

/// The routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/.well-known/oauth-protected-resource",
            get(gateway_metadata),
        )
        .route(
            "/.well-known/oauth-protected-resource/{*path}",
            get(endpoint_metadata),
        )
        .route(
            "/.well-known/oauth-authorization-server",
            get(mirrored_metadata),
        )
        .route("/.well-known/openid-configuration", get(mirrored_metadata))
        .route("/oauth/register", post(register))
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"error": "not_found", "error_description": "no such metadata"})),
    )
        .into_response()
}

fn public_json(value: Value) -> Response {
    let mut response = Json(value).into_response();
    response.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=300"),
    );
    response
}

async fn gateway_metadata(State(state): State<AppState>) -> Response {
    match state.auth().resource_server() {
        Some(oauth) => public_json(oauth.protected_resource_metadata("")),
        None => not_found(),
    }
}

async fn endpoint_metadata(State(state): State<AppState>, Path(path): Path<String>) -> Response {
    let Some(oauth) = state.auth().resource_server() else {
        return not_found();
    };
    // Behind a proxy with a path prefix, RFC 9728 puts the prefix after the well-known
    // segment (`/.well-known/oauth-protected-resource/<prefix>/mcp`).
    let prefix = oauth.path_prefix().trim_start_matches('/');
    let path = match path.strip_prefix(prefix).and_then(|p| p.strip_prefix('/')) {
        Some(rest) if !prefix.is_empty() => rest.to_string(),
        _ => path,
    };
    let mut segments = path.split('/');
    let known = match (segments.next(), segments.next(), segments.next()) {
        (Some(face), None, None) => FACES.contains(&face),
        (Some("v1"), Some("mcp"), None) => true,
        (Some(face), Some(server), None) => {
            FACES.contains(&face)
                && !server.is_empty()
                && server
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        }
        _ => false,
    };
    if !known {
        return not_found();
    }
    public_json(oauth.protected_resource_metadata(&format!("/{path}")))
}

async fn mirrored_metadata(State(state): State<AppState>) -> Response {
    let Some(oauth) = state
        .auth()
        .resource_server()
        .filter(|o| o.registration().is_some())
    else {
        return not_found();
    };
    match oauth.mirrored_authorization_server_metadata().await {
        Ok(metadata) => public_json(metadata),
        Err(why) => {
            tracing::warn!(error = %why, "cannot mirror the provider's metadata");
            (
                StatusCode::BAD_GATEWAY,
                Json(json!({"error": "temporarily_unavailable",
                            "error_description": "the identity provider's metadata is unavailable"})),
            )
                .into_response()
        }
    }
}

/// RFC 7591: every client gets the configured client, with the metadata it asked for
/// echoed (the provider decides, at authorization time, which redirect URIs it accepts).
async fn register(State(state): State<AppState>, body: axum::body::Bytes) -> Response {
    let Some(registration) = state
        .auth()
        .resource_server()
        .and_then(|o| o.registration().cloned())
    else {
        return not_found();
    };
    let invalid = |description: &str| {
        (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_client_metadata", "error_description": description})),
        )
            .into_response()
    };
    if body.len() > MAX_REGISTRATION_BYTES {
        return invalid("the registration request is too large");
    }
    let Ok(Value::Object(request)) = serde_json::from_slice::<Value>(&body) else {
        return invalid("the registration request must be a JSON object");
    };
    let redirect_uris = match request.get("redirect_uris") {
        Some(Value::Array(uris)) if uris.iter().all(Value::is_string) => Value::Array(uris.clone()),
        None => json!([]),
        _ => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": "invalid_redirect_uri",
                            "error_description": "redirect_uris must be a list of URIs"})),
            )
                .into_response()
        }
    };
    let mut answer = json!({
        "client_id": registration.client_id,
        "client_id_issued_at": unix_now(),
        "redirect_uris": redirect_uris,
        "grant_types": request.get("grant_types").cloned().unwrap_or_else(|| json!(["authorization_code", "refresh_token"])),
        "response_types": request.get("response_types").cloned().unwrap_or_else(|| json!(["code"])),
    });
    for field in [
        "client_name",
        "client_uri",
        "logo_uri",
        "scope",
        "software_id",
        "software_version",
    ] {
        if let Some(value) = request.get(field).filter(|v| v.is_string()) {
            answer[field] = value.clone();
        }
    }
    answer["token_endpoint_auth_method"] = json!("none");
    tracing::info!(client_id = %registration.client_id, "handed out the pre-registered client");
    let mut response = (StatusCode::CREATED, Json(answer)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
