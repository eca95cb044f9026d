//! One provider's signing keys (its JWKS): found through discovery or configured,
//! fetched on first need, kept, and fetched again when they grow old or when a token
//! names a key id we do not have.
//!
//! Bounds: at most [`MAX_KEYS`] keys are kept from a set (the rest are ignored); a key
//! set is at most [`MAX_DOCUMENT_BYTES`](super::discovery::MAX_DOCUMENT_BYTES); a fetch
//! takes at most the provider's timeout. Tokens with unknown key ids cause at most one
//! fetch per `jwks_min_refetch` (concurrent ones wait for the fetch in progress, then
//! look again), so made-up key ids cannot make us hammer the provider. Old keys are
//! fetched again in the background: a request that has its key never waits for the
//! provider, so a provider that is down or slow costs nothing to tokens whose keys are
//! already known.
//!
//! Only public signature keys are kept: symmetric (`oct`) keys and keys marked for
//! encryption are dropped, so no key here can serve as an HMAC secret.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;
use tokio_util::task::TaskTracker;

use super::config::ProviderSettings;
use super::discovery;

/// The most keys kept from one key set.
pub const MAX_KEYS: usize = 64;

/// A public key a token may be verified with.
pub(crate) struct VerifyingKey {
    /// The algorithm the key is meant for, when its JWK says.
    alg: Option<Algorithm>,
    /// Which algorithms fit the key's type.
    family: KeyFamily,
    /// The key itself.
    pub(crate) key: DecodingKey,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyFamily {
    Rsa,
    Ec,
    Ed,
}

impl KeyFamily {
    fn of_algorithm(alg: Algorithm) -> Option<KeyFamily> {
        match alg {
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512 => Some(KeyFamily::Rsa),
            Algorithm::ES256 | Algorithm::ES384 => Some(KeyFamily::Ec),
            Algorithm::EdDSA => Some(KeyFamily::Ed),
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => None,
        }
    }
}

impl VerifyingKey {
    fn fits(&self, alg: Algorithm) -> bool {
        KeyFamily::of_algorithm(alg) == Some(self.family) && self.alg.is_none_or(|a| a == alg)
    }
}

/// Why no key was found for a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KeyError {
    /// The provider's keys are known and none fits.
    Unknown,
    /// The provider's keys could not be fetched (the text says why).
    Unavailable(String),
}

#[derive(Default)]
struct KeySet {
    by_kid: HashMap<String, Arc<VerifyingKey>>,
    all: Vec<Arc<VerifyingKey>>,
    fetched_at: Option<Instant>,
}

#[derive(Default)]
struct FetchState {
    /// When the last fetch (successful or not) started.
    last_attempt: Option<Instant>,
    /// The last failure, reported to tokens that need a key we do not have.
    last_error: Option<String>,
    /// The key set's URL, once known.
    url: Option<String>,
}

/// The signing keys of one provider.
pub(crate) struct KeySource {
    issuer: String,
    configured_url: Option<String>,
    timeout: Duration,
    refresh: Duration,
    min_refetch: Duration,
    http: reqwest::Client,
    keys: RwLock<Arc<KeySet>>,
    /// Held while fetching: one fetch at a time.
    fetch: tokio::sync::Mutex<FetchState>,
    tasks: TaskTracker,
}

impl KeySource {
    pub(crate) fn new(settings: &ProviderSettings, http: reqwest::Client) -> Arc<Self> {
        Arc::new(KeySource {
            issuer: settings.issuer.clone(),
            configured_url: settings.jwks_url.clone(),
            timeout: settings.timeout,
            refresh: settings.jwks_refresh,
            min_refetch: settings.jwks_min_refetch,
            http,
            keys: RwLock::default(),
            fetch: tokio::sync::Mutex::default(),
            tasks: TaskTracker::new(),
        })
    }

    /// The key for a token signed with `alg` under key id `kid` (a token without a key
    /// id may use the one key that fits, when there is exactly one).
    ///
    /// # Errors
    /// [`KeyError::Unknown`] when no key fits, [`KeyError::Unavailable`] when the keys
    /// could not be fetched.
    pub(crate) async fn key_for(
        self: &Arc<Self>,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Arc<VerifyingKey>, KeyError> {
        let current = self.current();
        if let Some(key) = find(&current, kid, alg) {
            if current
                .fetched_at
                .is_some_and(|at| at.elapsed() >= self.refresh)
            {
                self.refresh_in_background();
            }
            return Ok(key);
        }
        let error = self.fetch_unless_recent().await;
        match find(&self.current(), kid, alg) {
            Some(key) => Ok(key),
            None => match error {
                Some(error) => Err(KeyError::Unavailable(error)),
                None => Err(KeyError::Unknown),
            },
        }
    }

    fn current(&self) -> Arc<KeySet> {
        self.keys
            .read()
            .map(|keys| Arc::clone(&keys))
            .unwrap_or_default()
    }

    fn refresh_in_background(self: &Arc<Self>) {
        let Ok(mut state) = self.fetch.try_lock() else {
            return; // a fetch is in progress
        };
        if state
            .last_attempt
            .is_some_and(|at| at.elapsed() < self.min_refetch)
        {
            return;
        }
        state.last_attempt = Some(Instant::now());
        drop(state);
        let source = Arc::clone(self);
        self.tasks.spawn(async move {
            let mut state = source.fetch.lock().await;
            source.fetch_now(&mut state).await;
        });
    }

    /// Fetches the keys unless a fetch started less than `min_refetch` ago (waiting for
    /// one in progress). Returns the error of the last fetch, if it failed.
    async fn fetch_unless_recent(&self) -> Option<String> {
        let mut state = self.fetch.lock().await;
        let recent = state
            .last_attempt
            .is_some_and(|at| at.elapsed() < self.min_refetch);
        if !recent {
            state.last_attempt = Some(Instant::now());
            self.fetch_now(&mut state).await;
        }
        state.last_error.clone()
    }

    async fn fetch_now(&self, state: &mut FetchState) {
        let result = tokio::time::timeout(self.timeout, self.fetch_keys(state))
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "the provider's keys did not arrive within {:?}",
                    self.timeout
                ))
            });
        match result {
            Ok(set) => {
                tracing::debug!(issuer = %self.issuer, keys = set.all.len(), "fetched the provider's signing keys");
                if let Ok(mut keys) = self.keys.write() {
                    *keys = Arc::new(set);
                }
                state.last_error = None;
            }
            Err(error) => {
                tracing::warn!(issuer = %self.issuer, %error, "cannot fetch the provider's signing keys");
                state.last_error = Some(error);
            }
        }
    }

    async fn fetch_keys(&self, state: &mut FetchState) -> Result<KeySet, String> {
        let url = match (&self.configured_url, &state.url) {
            (Some(url), _) | (None, Some(url)) => url.clone(),
            (None, None) => {
                let document = discovery::discover(&self.http, &self.issuer, self.timeout).await?;
                let url = document
                    .get("jwks_uri")
                    .and_then(Value::as_str)
                    .ok_or("the provider's discovery document has no jwks_uri")?
                    .to_string();
                if !discovery::is_secure_url(&url) {
                    return Err(
                        "the provider's jwks_uri is not https:// (http:// only on loopback)"
                            .to_string(),
                    );
                }
                state.url = Some(url.clone());
                url
            }
        };
        let document =
            discovery::get_json(&self.http, &url, "the provider's key set", self.timeout).await?;
        let set = parse_key_set(&document);
        if set.all.is_empty() {
            // Keep the keys we have rather than refuse every token.
            return Err("the provider's key set has no usable signing key".to_string());
        }
        Ok(set)
    }
}

/// The usable keys of a JWKS document (at most [`MAX_KEYS`]); keys that cannot verify
/// signatures (symmetric, for encryption, malformed) are skipped.
fn parse_key_set(document: &Value) -> KeySet {
    let mut set = KeySet {
        fetched_at: Some(Instant::now()),
        ..KeySet::default()
    };
    let keys = document
        .get("keys")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for value in keys {
        if set.all.len() >= MAX_KEYS {
            break;
        }
        let Ok(jwk) = serde_json::from_value::<Jwk>(value.clone()) else {
            continue;
        };
        if matches!(
            jwk.common.public_key_use,
            Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))
        ) {
            continue;
        }
        let family = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => KeyFamily::Rsa,
            AlgorithmParameters::EllipticCurve(_) => KeyFamily::Ec,
            AlgorithmParameters::OctetKeyPair(_) => KeyFamily::Ed,
            AlgorithmParameters::OctetKey(_) => continue,
        };
        let alg = match jwk.common.key_algorithm {
            Some(alg) => match alg.to_string().parse::<Algorithm>() {
                Ok(alg) if KeyFamily::of_algorithm(alg) == Some(family) => Some(alg),
                _ => continue, // an encryption algorithm, or one that does not fit the key
            },
            None => None,
        };
        let Ok(key) = DecodingKey::from_jwk(&jwk) else {
            continue;
        };
        let key = Arc::new(VerifyingKey { alg, family, key });
        if let Some(kid) = &jwk.common.key_id {
            set.by_kid.insert(kid.clone(), Arc::clone(&key));
        }
        set.all.push(key);
    }
    set
}

fn find(set: &KeySet, kid: Option<&str>, alg: Algorithm) -> Option<Arc<VerifyingKey>> {
    match kid {
        Some(kid) => set.by_kid.get(kid).filter(|k| k.fits(alg)).cloned(),
        None => {
            let mut fitting = set.all.iter().filter(|k| k.fits(alg));
            match (fitting.next(), fitting.next()) {
                (Some(only), None) => Some(Arc::clone(only)),
                _ => None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const N: &str = "u1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gunVTLw7onLRnrq0_IzW7yWR7QkrmBL7jTKEn5u-qKhbwKfBstIs-bMY2Zkp18gnTxKLxoS2tFczGkPLPgizskuemMghRniWaoLcyehkd3qqGElvW_VDL5AaWTg0nLVkjRo9z-40RQzuVaE8AkAFmxZzow3x-VJYKdjykkJ0iT9wCS0DRTXu269V264Vf_3jvredZiKRkgwlL9xNAwxXFg0x_XFw005UWVRIkdgcKWTjpBP2dPwVZ4WWC-9aGVd-Gyn1o0CLelf4rEjGoXbAAEgAqeGUxrcIlbjXfbcmw";

    fn rsa(kid: Option<&str>, alg: Option<&str>, use_: Option<&str>) -> Value {
        let mut key = json!({"kty": "RSA", "n": N, "e": "AQAB"});
        if let Some(kid) = kid {
            key["kid"] = json!(kid);
        }
        if let Some(alg) = alg {
            key["alg"] = json!(alg);
        }
        if let Some(use_) = use_ {
            key["use"] = json!(use_);
        }
        key
    }

    #[test]
    fn only_public_signature_keys_are_kept() {
        let set = parse_key_set(&json!({"keys": [
            rsa(Some("a"), Some("RS256"), Some("sig")),
            rsa(Some("enc"), Some("RSA-OAEP"), Some("enc")),
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            {"kty": "RSA", "kid": "broken"},
            rsa(Some("b"), None, None),
        ]}));
        assert_eq!(set.all.len(), 2);
        assert!(set.by_kid.contains_key("a") && set.by_kid.contains_key("b"));
        assert!(find(&set, Some("hmac"), Algorithm::HS256).is_none());
        assert!(find(&set, Some("a"), Algorithm::RS256).is_some());
        // The JWK says RS256: a token claiming PS256 with that key is not verified by it.
        assert!(find(&set, Some("a"), Algorithm::PS256).is_none());
        assert!(find(&set, Some("b"), Algorithm::PS256).is_some());
        assert!(find(&set, Some("a"), Algorithm::ES256).is_none());
        // Without a kid, only an unambiguous key is used.
        assert!(find(&set, None, Algorithm::RS256).is_none());
    }

    #[test]
    fn a_key_set_is_bounded() {
        let keys: Vec<Value> = (0..200)
            .map(|i| rsa(Some(&format!("k{i}")), None, None))
            .collect();
        let set = parse_key_set(&json!({ "keys": keys }));
        assert_eq!(set.all.len(), MAX_KEYS);
        let one = parse_key_set(&json!({"keys": [rsa(None, None, None)]}));
        assert!(find(&one, None, Algorithm::RS256).is_some());
    }
}
