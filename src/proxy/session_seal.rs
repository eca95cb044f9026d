//! Sealed session ids: an `Mcp-Session-Id` that is itself the authenticated record of
//! what continuing the session needs, so that any replica of a fleet continues a
//! session another replica made (no sticky load balancing, no shared session table).
//!
//! The id is `s1.` followed by the AEAD seal (the store's ring, [`SealRing`]: the first
//! key seals, every key of the ring opens, so keys rotate by putting a new key first and
//! dropping the old one once the sessions it sealed have ended) of: the owner (the digest
//! of the caller's key or token subject), the endpoint (`/mcp` or `/mcp/<server>`), the
//! negotiated protocol version, when it was issued, and a random nonce. A forged or
//! altered id does not open; an id opens only for its owner on its endpoint.
//!
//! What does not move with the id: requests in flight (they run, and answer, on the
//! replica that has them: a client whose connection to that replica breaks sees that
//! request fail and may retry it), the log level and resource subscriptions the client
//! set after `initialize` (a replica that resumes a session starts from the defaults),
//! and requests an upstream is waiting for the client to answer.
//!
//! An ended session (DELETE) must not be resumed elsewhere: the replica that ends it
//! remembers its id and tells the others (store notice `session_ended`); each keeps the
//! ended ids for [`MAX_SESSION_AGE`] (after which the id is refused anyway), at most
//! [`MAX_ENDED_REMEMBERED`] of them.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::handler::Scope;
use crate::core::mcp::permissions::KeyDigest;
use crate::store::now_ms;
use crate::store::seal::SealRing;

/// A sealed session id is refused this long after it was issued.
pub const MAX_SESSION_AGE: Duration = Duration::from_secs(24 * 3600);
/// Ended session ids remembered per replica (oldest forgotten first past this).
pub const MAX_ENDED_REMEMBERED: usize = 100_000;

const PREFIX: &str = "s1.";
const PURPOSE: &[u8] = b"litellm-mcp session v1";

#[derive(Serialize, Deserialize)]
struct Record {
    /// Owner: hex digest, or none (no key).
    o: Option<String>,
    /// Endpoint: the server of `/mcp/<server>`, or none for `/mcp`.
    s: Option<String>,
    /// Protocol version.
    v: String,
    /// Issued (ms since the epoch).
    t: i64,
    /// Nonce.
    n: u64,
}

/// What a sealed id says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resumable {
    /// Whose session.
    pub owner: Option<KeyDigest>,
    /// Its endpoint.
    pub scope: Scope,
    /// Its protocol version.
    pub protocol_version: String,
}

/// Seals and opens session ids; remembers ended ones.
pub struct SessionSeal {
    ring: SealRing,
    /// Digest of an ended id → when it was issued (ms).
    ended: Mutex<HashMap<[u8; 32], i64>>,
    /// Ended ids to tell the other replicas about (digest hex); bounded, dropped when full.
    notices: tokio::sync::mpsc::Sender<String>,
}

impl std::fmt::Debug for SessionSeal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionSeal").finish_non_exhaustive()
    }
}

/// Ended-session notices waiting to be announced.
pub const MAX_PENDING_ENDED_NOTICES: usize = 1024;

impl SessionSeal {
    /// A seal over `ring`; the receiver yields the digests of ended ids to announce.
    pub fn new(ring: SealRing) -> (SessionSeal, tokio::sync::mpsc::Receiver<String>) {
        let (notices, receiver) = tokio::sync::mpsc::channel(MAX_PENDING_ENDED_NOTICES);
        (
            SessionSeal {
                ring,
                ended: Mutex::default(),
                notices,
            },
            receiver,
        )
    }

    /// A new sealed id.
    pub fn issue(
        &self,
        owner: Option<&KeyDigest>,
        scope: &Scope,
        protocol_version: &str,
    ) -> String {
        let record = Record {
            o: owner.map(KeyDigest::to_hex),
            s: match scope {
                Scope::All => None,
                Scope::Server(name) => Some(name.clone()),
            },
            v: protocol_version.to_string(),
            t: now_ms(),
            n: rand::random(),
        };
        let json = serde_json::to_vec(&record).unwrap_or_default();
        format!("{PREFIX}{}", self.ring.seal_text(PURPOSE, &json))
    }

    /// What `id` says, when it is a sealed id of this fleet that has not ended or expired.
    pub fn open(&self, id: &str) -> Option<Resumable> {
        let sealed = id.strip_prefix(PREFIX)?;
        let json = self.ring.open_text(PURPOSE, sealed).ok()?;
        let record: Record = serde_json::from_slice(&json).ok()?;
        let age = now_ms().saturating_sub(record.t);
        if age < 0 || age > i64::try_from(MAX_SESSION_AGE.as_millis()).unwrap_or(i64::MAX) {
            return None;
        }
        if self.ended.lock().ok()?.contains_key(&digest(id)) {
            return None;
        }
        let owner = match record.o {
            Some(hex) => Some(KeyDigest::from_hex(&hex)?),
            None => None,
        };
        Some(Resumable {
            owner,
            scope: record.s.map_or(Scope::All, Scope::Server),
            protocol_version: record.v,
        })
    }

    /// Ends `id` here and tells the other replicas.
    pub fn end(&self, id: &str) {
        let digest = digest(id);
        self.remember_ended(digest);
        let _ = self.notices.try_send(hex(&digest));
    }

    /// Another replica ended the session whose id has this digest (hex).
    pub fn ended_elsewhere(&self, digest_hex: &str) {
        if let Some(digest) = KeyDigest::from_hex(digest_hex) {
            self.remember_ended(*digest.as_bytes());
        }
    }

    fn remember_ended(&self, digest: [u8; 32]) {
        let Ok(mut ended) = self.ended.lock() else {
            return;
        };
        let now = now_ms();
        let max_age = i64::try_from(MAX_SESSION_AGE.as_millis()).unwrap_or(i64::MAX);
        if ended.len() >= MAX_ENDED_REMEMBERED {
            ended.retain(|_, at| now.saturating_sub(*at) < max_age);
        }
        if ended.len() >= MAX_ENDED_REMEMBERED {
            if let Some(oldest) = ended.iter().min_by_key(|(_, at)| **at).map(|(k, _)| *k) {
                ended.remove(&oldest);
            }
        }
        ended.insert(digest, now);
    }
}

fn digest(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

/// The digest of a session id as ended-session notices carry it (hex).
pub(crate) fn digest_hex(id: &str) -> String {
    hex(&digest(id))
}

fn hex(bytes: &[u8; 32]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::seal::SealKey;

    #[test]
    fn an_id_opens_for_what_it_sealed_until_it_ends_and_across_a_rotation() {
        let old = SealKey::generate();
        let (seal, mut ended) = SessionSeal::new(SealRing::new(vec![old.clone()]).unwrap());
        let owner = KeyDigest::of("sk-a");
        let id = seal.issue(Some(&owner), &Scope::Server("fs".into()), "2025-06-18");
        assert!(
            id.bytes().all(|b| (0x21..=0x7e).contains(&b)),
            "visible ASCII"
        );
        let opened = seal.open(&id).unwrap();
        assert_eq!(opened.owner, Some(owner));
        assert_eq!(opened.scope, Scope::Server("fs".into()));
        assert_eq!(opened.protocol_version, "2025-06-18");

        // Another replica with the new key first and the old one still in the ring.
        let (rotated, _) = SessionSeal::new(SealRing::new(vec![SealKey::generate(), old]).unwrap());
        assert_eq!(rotated.open(&id), Some(opened));
        // Altered, or random: refused.
        let mut altered = id.clone();
        altered.push('A');
        assert_eq!(seal.open(&altered), None);
        assert_eq!(seal.open("0123456789abcdef0123456789abcdef"), None);

        seal.end(&id);
        assert_eq!(seal.open(&id), None);
        let notice = ended.try_recv().unwrap();
        rotated.ended_elsewhere(&notice);
        assert_eq!(rotated.open(&id), None, "ended everywhere");
    }
}
