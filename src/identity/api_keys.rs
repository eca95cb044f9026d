//! API keys: the configured keys, looked up by the digest of what a request presents,
//! in constant time, and turned into an [`Identity`] with the key's team and
//! organisation.
//!
//! Owns only that lookup; which header carries the credential, and what happens when it
//! is not a key, is [`super::Authenticator`]'s.
//!
//! The keys in force are replaced whole when the admin API changes them (a revoked key is
//! refused from the next request on); clones of a ring share the slot, and a lookup works
//! on one snapshot without holding a lock.

use crate::core::mcp::permissions::{Caller, KeyDigest};
use crate::core::mcp::PermissionLevel;
use crate::settings::ApiKey;

use super::{Identity, Via};

/// The configured API keys.
#[derive(Debug, Clone, Default)]
pub struct KeyRing {
    keys: std::sync::Arc<arc_swap::ArcSwap<Vec<ApiKey>>>,
}

impl KeyRing {
    /// A ring of the configured keys.
    pub fn new(keys: Vec<ApiKey>) -> Self {
        KeyRing {
            keys: std::sync::Arc::new(arc_swap::ArcSwap::from_pointee(keys)),
        }
    }

    /// Puts `keys` in force for every clone of this ring.
    pub fn replace(&self, keys: Vec<ApiKey>) {
        self.keys.store(std::sync::Arc::new(keys));
    }

    /// Whether callers must present a key.
    pub fn requires_key(&self) -> bool {
        !self.keys.load().is_empty()
    }

    /// Looks a digest up comparing against every key, so the time taken does not tell
    /// which key (or how much of one) matched.
    pub(crate) fn find(&self, digest: &KeyDigest) -> Option<Identity> {
        use subtle::ConstantTimeEq;
        let keys = self.keys.load();
        let mut found: Option<&ApiKey> = None;
        for key in keys.iter() {
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
            max_level: PermissionLevel::Admin,
            via: Via::ApiKey,
            token: None,
            expires_at: None,
            issuer: None,
            scopes: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_found_by_digest_with_their_team() {
        let ring = KeyRing::new(vec![ApiKey {
            name: "ci".into(),
            digest: KeyDigest::of("sk-ci"),
            team: Some("platform".into()),
            organization: Some("acme".into()),
        }]);
        let id = ring.find(&KeyDigest::of("sk-ci")).unwrap();
        assert_eq!(id.name, "ci");
        assert_eq!(id.caller.team.as_deref(), Some("platform"));
        assert_eq!(id.via, Via::ApiKey);
        assert!(ring.find(&KeyDigest::of("sk-wrong")).is_none());
        assert!(ring.requires_key() && !KeyRing::default().requires_key());
    }
}
