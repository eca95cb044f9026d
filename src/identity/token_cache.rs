//! Tokens already verified, by the SHA-256 digest of the token: a client sends the same
//! access token on every request, and verifying a signature costs far more than a
//! lookup (`benches/identity.rs` measures both).
//!
//! Bounds: at most [`MAX_CACHED_TOKENS`] entries; when full, expired entries are dropped,
//! and if none had expired the cache starts over (every entry is a token that verified,
//! so only a holder of many valid tokens can fill it). An entry lives until its token's
//! `exp` (plus the provider's leeway) or, for an introspected token, until the
//! provider's introspection cache time runs out, whichever is first. A provider's key
//! removed from its key set does not end the entries of tokens it signed before their
//! expiry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::core::mcp::permissions::KeyDigest;

use super::Identity;

/// The most tokens kept.
pub const MAX_CACHED_TOKENS: usize = 10_000;

/// A verified token: who it names, for which audiences, until when.
#[derive(Debug)]
pub(crate) struct VerifiedToken {
    /// The caller it names.
    pub(crate) identity: Identity,
    /// Its audiences (`aud`), as given.
    pub(crate) audiences: Vec<String>,
    /// The provider that issued it (an index into the resource server's providers).
    pub(crate) provider: usize,
    /// Unix seconds after which the entry is not used.
    pub(crate) valid_until: u64,
}

/// The cache.
#[derive(Debug, Default)]
pub(crate) struct TokenCache {
    entries: Mutex<HashMap<KeyDigest, Arc<VerifiedToken>>>,
}

/// Now, in Unix seconds.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

impl TokenCache {
    /// The entry of a token, if it is cached and still valid.
    pub(crate) fn get(&self, digest: &KeyDigest) -> Option<Arc<VerifiedToken>> {
        let mut entries = self.entries.lock().ok()?;
        let entry = entries.get(digest)?;
        if entry.valid_until < unix_now() {
            entries.remove(digest);
            return None;
        }
        Some(Arc::clone(entry))
    }

    /// Keeps a verified token.
    pub(crate) fn insert(&self, digest: KeyDigest, token: Arc<VerifiedToken>) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if entries.len() >= MAX_CACHED_TOKENS {
            let now = unix_now();
            entries.retain(|_, t| t.valid_until >= now);
            if entries.len() >= MAX_CACHED_TOKENS {
                entries.clear();
            }
        }
        entries.insert(digest, token);
    }

    /// How many tokens are kept.
    pub(crate) fn len(&self) -> usize {
        self.entries.lock().map(|e| e.len()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(valid_until: u64) -> Arc<VerifiedToken> {
        Arc::new(VerifiedToken {
            identity: Identity::anonymous(),
            audiences: Vec::new(),
            provider: 0,
            valid_until,
        })
    }

    #[test]
    fn entries_expire_and_the_cache_is_bounded() {
        let cache = TokenCache::default();
        cache.insert(KeyDigest::of("old"), token(unix_now() - 1));
        assert!(cache.get(&KeyDigest::of("old")).is_none());
        for i in 0..MAX_CACHED_TOKENS + 5 {
            cache.insert(KeyDigest::of(&i.to_string()), token(unix_now() + 60));
        }
        assert!(cache.len() <= MAX_CACHED_TOKENS);
        assert!(cache
            .get(&KeyDigest::of(&(MAX_CACHED_TOKENS + 4).to_string()))
            .is_some());
    }
}
