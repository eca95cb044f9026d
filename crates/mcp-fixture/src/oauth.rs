//! Access control for the MCP endpoints: the OAuth client-credentials token endpoint
//! (`/oauth/token`), RFC 9728 / RFC 8414 metadata, bearer-token checks, the
//! `--require-header` checks, and `Origin` validation (DNS-rebinding protection).

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Value};

use crate::app::App;
use crate::session::new_id;

/// Issued access tokens and their expiry.
#[derive(Default)]
pub struct TokenStore {
    tokens: RwLock<HashMap<String, Instant>>,
}

impl TokenStore {
    fn issue(&self, ttl: Duration) -> String {
        let token = format!("fx_{}", new_id());
        let now = Instant::now();
        let mut map = self.tokens.write().unwrap_or_else(PoisonError::into_inner);
        map.retain(|_, exp| *exp > now);
        map.insert(token.clone(), now + ttl);
        token
    }

    fn valid(&self, token: &str) -> bool {
        self.tokens
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(token)
            .is_some_and(|exp| *exp > Instant::now())
    }
}

fn unauthorized(www: Option<String>, body: Value) -> Response {
    let mut r = (StatusCode::UNAUTHORIZED, Json(body)).into_response();
    if let Some(v) = www.and_then(|w| HeaderValue::from_str(&w).ok()) {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    r
}

/// The credential and origin checks every MCP endpoint (`/mcp`, `/sse`, `/messages`, `/ws`)
/// runs first.
pub fn guard(app: &App, headers: &HeaderMap) -> Result<(), Response> {
    check_origin(headers)?;
    let cfg = &app.cfg;
    if cfg.oauth {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, rest) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            });
        let metadata = format!(
            "{}/.well-known/oauth-protected-resource/mcp",
            app.base_url()
        );
        match presented {
            Some(t) if app.tokens.valid(t) => {}
            Some(_) => {
                return Err(unauthorized(
                    Some(format!(
                        "Bearer error=\"invalid_token\", error_description=\"unknown or expired token\", resource_metadata=\"{metadata}\""
                    )),
                    json!({"error": "invalid_token", "error_description": "unknown or expired token"}),
                ))
            }
            None => {
                return Err(unauthorized(
                    Some(format!("Bearer resource_metadata=\"{metadata}\"")),
                    json!({"error": "invalid_token", "error_description": "missing bearer token"}),
                ))
            }
        }
    }
    for (name, want) in &cfg.require_headers {
        let got = headers
            .get(name.as_str())
            .and_then(|v| v.to_str().ok())
            .map(str::trim);
        if got != Some(want.as_str()) {
            let www = (name == "authorization").then(|| {
                let scheme = want.split(' ').next().unwrap_or("Bearer");
                if scheme.eq_ignore_ascii_case("basic") {
                    "Basic realm=\"mcp-fixture\"".to_owned()
                } else {
                    scheme.to_owned()
                }
            });
            return Err(unauthorized(
                www,
                json!({"error": "unauthorized", "error_description": format!("header {name} missing or wrong")}),
            ));
        }
    }
    Ok(())
}

/// 403 when an `Origin` header is present and not a loopback origin.
fn check_origin(headers: &HeaderMap) -> Result<(), Response> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let host = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, rest)| rest);
    let ok = host.is_some_and(|h| {
        let h = h.trim_end_matches('/');
        let name = if let Some(v6) = h.strip_prefix('[') {
            v6.split(']').next().unwrap_or("")
        } else {
            h.split(':').next().unwrap_or("")
        };
        matches!(name, "127.0.0.1" | "localhost" | "::1")
    });
    if ok {
        return Ok(());
    }
    let body = json!({"jsonrpc": "2.0", "error": {"code": -32000, "message": "Forbidden: invalid Origin"}});
    Err((StatusCode::FORBIDDEN, Json(body)).into_response())
}

fn oauth_error(status: StatusCode, error: &str, basic: bool) -> Response {
    let mut r = (status, Json(json!({"error": error}))).into_response();
    if basic {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"mcp-fixture\""),
        );
    }
    r
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(&s.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

/// `(client_id, client_secret)` from an `Authorization: Basic` header (RFC 6749 §2.3.1:
/// both form-urlencoded before base64).
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = STANDARD.decode(rest.trim()).ok()?;
    let s = String::from_utf8(raw).ok()?;
    let (id, secret) = s.split_once(':')?;
    Some((percent_decode(id), percent_decode(secret)))
}

/// POST `/oauth/token`: the client-credentials grant.
pub async fn token(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    let cfg = &app.cfg;
    if !cfg.oauth {
        return StatusCode::NOT_FOUND.into_response();
    }
    let Ok(form) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&body) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", false);
    };
    let field = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let basic = basic_credentials(&headers);
    let used_basic = basic.is_some();
    let creds = basic.or_else(|| {
        Some((
            field("client_id")?.to_owned(),
            field("client_secret").unwrap_or("").to_owned(),
        ))
    });
    match creds {
        Some((id, secret)) if id == cfg.client_id && secret == cfg.client_secret => {}
        _ => return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", used_basic),
    }
    match field("grant_type") {
        Some("client_credentials") => {}
        Some(_) => return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", false),
        None => return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", false),
    }
    let access = app.tokens.issue(Duration::from_secs(cfg.token_ttl_secs));
    app.stats.tokens_issued.inc();
    let mut body = json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": cfg.token_ttl_secs,
    });
    if let (Some(scope), Some(o)) = (field("scope"), body.as_object_mut()) {
        o.insert("scope".into(), Value::from(scope));
    }
    let mut r = Json(body).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// GET `/.well-known/oauth-protected-resource[/mcp]` (RFC 9728).
pub async fn resource_metadata(State(app): State<Arc<App>>) -> Response {
    if !app.cfg.oauth {
        return StatusCode::NOT_FOUND.into_response();
    }
    let base = app.base_url();
    Json(json!({
        "resource": format!("{base}/mcp"),
        "authorization_servers": [base],
        "bearer_methods_supported": ["header"],
    }))
    .into_response()
}

/// GET `/.well-known/oauth-authorization-server` (RFC 8414).
pub async fn server_metadata(State(app): State<Arc<App>>) -> Response {
    if !app.cfg.oauth {
        return StatusCode::NOT_FOUND.into_response();
    }
    let base = app.base_url();
    Json(json!({
        "issuer": base,
        "token_endpoint": format!("{base}/oauth/token"),
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "response_types_supported": [],
    }))
    .into_response()
}
