//! What identifying a caller costs per request: an API key (digest and constant-time
//! look-up), an access token seen before (the verified-token cache: digest, look-up,
//! audience check), and the RS256 signature verification a token costs the first time it
//! is seen.
//!
//! `cargo bench --bench identity` (criterion; `-- --quick` for a short run). The key
//! pair in `benches/data/` is a test key made for this benchmark and nothing else. The
//! provider's key set is served on loopback by the benchmark itself, so the resource
//! server fetches it as it would from a real provider.

// `criterion_group!` defines an undocumented `pub fn`.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Arc;

use axum::http::HeaderMap;
use criterion::{criterion_group, criterion_main, Criterion};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use litellm_rs::core::mcp::permissions::KeyDigest;
use litellm_rs::identity::config::{OAuthSettings, ProviderSettings};
use litellm_rs::identity::{Authenticator, KeyRing, ResourceServer};
use litellm_rs::settings::ApiKey;
use serde_json::{json, Value};

const PRIVATE_KEY: &[u8] = include_bytes!("data/rs256-test-key.der");
const JWKS: &str = include_str!("data/rs256-test-jwks.json");

fn sign(claims: &Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("bench".into());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_rsa_der(PRIVATE_KEY))
        .expect("signing with the test key")
}

fn identity(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let issuer = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let app = axum::Router::new().route(
            "/jwks",
            axum::routing::get(|| async { ([("content-type", "application/json")], JWKS) }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{address}")
    });
    let mut provider = ProviderSettings::new(issuer.clone());
    provider.jwks_url = Some(format!("{issuer}/jwks"));
    let oauth = Arc::new(ResourceServer::new(&OAuthSettings {
        public_url: Some("https://mcp.example.com".into()),
        scopes: vec![
            (
                "mcp:read".into(),
                litellm_rs::core::mcp::PermissionLevel::Read,
            ),
            (
                "mcp:call".into(),
                litellm_rs::core::mcp::PermissionLevel::Execute,
            ),
        ],
        providers: vec![provider],
        registration: None,
    }));
    let keys: Vec<ApiKey> = (0..20)
        .map(|i| ApiKey {
            name: format!("key{i}"),
            digest: KeyDigest::of(&format!("sk-bench-{i}")),
            team: Some("platform".into()),
            organization: Some("acme".into()),
        })
        .collect();
    let auth = Authenticator::new(KeyRing::new(keys), Some(Arc::clone(&oauth)));

    let now = jsonwebtoken::get_current_timestamp();
    let claims = json!({
        "iss": issuer, "sub": "alice", "aud": "https://mcp.example.com/mcp",
        "exp": now + 3600, "iat": now, "scope": "mcp:read mcp:call",
        "team": "blue", "org": "acme",
    });
    let token = sign(&claims);
    let mut token_headers = HeaderMap::new();
    token_headers.insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    let mut key_headers = HeaderMap::new();
    key_headers.insert(
        "authorization",
        "Bearer sk-bench-19".parse().expect("header"),
    );

    // The first identification fetches the key set and fills the cache.
    let first = runtime
        .block_on(auth.identify(&token_headers, "/mcp"))
        .expect("the benchmark token is accepted");
    assert_eq!(first.name, "alice");

    c.bench_function("identity/api_key", |b| {
        b.iter(|| runtime.block_on(auth.identify(black_box(&key_headers), "/mcp")))
    });
    c.bench_function("identity/jwt_cached", |b| {
        b.iter(|| runtime.block_on(auth.identify(black_box(&token_headers), "/mcp")))
    });

    // A token's first sight: the RS256 signature and the claims, with the key at hand.
    let jwks: Value = serde_json::from_str(JWKS).expect("jwks");
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwks["keys"][0].clone()).expect("jwk");
    let decoding = DecodingKey::from_jwk(&jwk).expect("key");
    let mut validation = Validation::new(Algorithm::RS256);
    validation.validate_aud = false;
    c.bench_function("identity/jwt_first_sight_rs256_verify", |b| {
        b.iter(|| {
            jsonwebtoken::decode::<Value>(black_box(&token), &decoding, &validation).expect("valid")
        })
    });
}

criterion_group!(benches, identity);
criterion_main!(benches);
