//! Sealing: authenticated encryption (ChaCha20-Poly1305) of small records with a ring of
//! keys, the first of which seals and all of which open, so that a key can be rotated
//! without invalidating what the old one sealed (until the old key is dropped from the
//! ring).
//!
//! Owns the sealed format: `key id (4 bytes) ‖ nonce (12 bytes) ‖ ciphertext+tag`, where
//! the key id is the first 4 bytes of SHA-256 of the key, so a ring finds the key without
//! trying each. Every seal has a fresh random nonce. The associated data binds a blob to
//! its purpose and place (`user-token:<subject>:<server>`, `server:<name>`,
//! `session`), so a blob moved to another row or use does not open.
//!
//! It must never log, print or `Debug` a key or a plaintext.

use std::fmt;

use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use sha2::{Digest, Sha256};

const KEY_ID_LEN: usize = 4;
const NONCE_LEN: usize = 12;

/// One 256-bit sealing key.
#[derive(Clone)]
pub struct SealKey {
    id: [u8; KEY_ID_LEN],
    key: [u8; 32],
}

impl fmt::Debug for SealKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SealKey(id {:02x?}, ***)", self.id)
    }
}

/// Why a key or a sealed blob was refused. Says nothing of the key or the plaintext.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// A configured key is not 32 bytes of standard base64.
    #[error("a seal key must be 32 bytes in standard base64 (44 characters)")]
    BadKey,
    /// The blob is not base64 or too short to be sealed.
    #[error("not a sealed blob")]
    Malformed,
    /// No key of the ring has the blob's key id (a key was dropped from the ring).
    #[error("sealed with a key this ring does not have")]
    UnknownKey,
    /// The key is known but the blob does not open: altered, or sealed for another use.
    #[error("the sealed blob does not open (altered, or sealed for another use)")]
    Forged,
    /// The ring is empty.
    #[error("no seal key")]
    NoKey,
}

impl SealKey {
    /// A key from its base64 text (32 bytes).
    ///
    /// # Errors
    /// [`SealError::BadKey`] unless the text is 32 bytes of standard base64.
    pub fn from_base64(text: &str) -> Result<SealKey, SealError> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|_| SealError::BadKey)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| SealError::BadKey)?;
        Ok(SealKey::from_bytes(key))
    }

    /// A key from its bytes.
    pub fn from_bytes(key: [u8; 32]) -> SealKey {
        let digest = Sha256::digest(key);
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&digest[..KEY_ID_LEN]);
        SealKey { id, key }
    }

    /// A new random key.
    pub fn generate() -> SealKey {
        SealKey::from_bytes(rand::random())
    }

    /// The key as base64, to be written to the key file of a SQLite store.
    pub(crate) fn to_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.key)
    }

    fn cipher(&self) -> ChaCha20Poly1305 {
        ChaCha20Poly1305::new(Key::from_slice(&self.key))
    }
}

/// Keys that open; the first also seals.
#[derive(Clone, Debug)]
pub struct SealRing {
    keys: Vec<SealKey>,
}

impl SealRing {
    /// A ring; `keys[0]` seals.
    ///
    /// # Errors
    /// [`SealError::NoKey`] for an empty list.
    pub fn new(keys: Vec<SealKey>) -> Result<SealRing, SealError> {
        if keys.is_empty() {
            return Err(SealError::NoKey);
        }
        Ok(SealRing { keys })
    }

    /// Seals `plaintext` for the use `purpose` (authenticated, not encrypted).
    pub fn seal(&self, purpose: &[u8], plaintext: &[u8]) -> Vec<u8> {
        // `new` refuses an empty ring.
        let Some(key) = self.keys.first() else {
            return Vec::new();
        };
        let nonce: [u8; NONCE_LEN] = rand::random();
        let sealed = key
            .cipher()
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: purpose,
                },
            )
            .unwrap_or_default();
        let mut out = Vec::with_capacity(KEY_ID_LEN + NONCE_LEN + sealed.len());
        out.extend_from_slice(&key.id);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// Opens what [`SealRing::seal`] sealed with any key of the ring for `purpose`.
    ///
    /// # Errors
    /// [`SealError`]: malformed, an unknown key, or a blob that does not open.
    pub fn open(&self, purpose: &[u8], sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        if sealed.len() < KEY_ID_LEN + NONCE_LEN + 16 {
            return Err(SealError::Malformed);
        }
        let (id, rest) = sealed.split_at(KEY_ID_LEN);
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let key = self
            .keys
            .iter()
            .find(|k| k.id == id)
            .ok_or(SealError::UnknownKey)?;
        key.cipher()
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: purpose,
                },
            )
            .map_err(|_| SealError::Forged)
    }

    /// [`SealRing::seal`] as URL-safe base64 without padding (session ids, text columns).
    pub fn seal_text(&self, purpose: &[u8], plaintext: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(self.seal(purpose, plaintext))
    }

    /// Opens what [`SealRing::seal_text`] made.
    ///
    /// # Errors
    /// As [`SealRing::open`].
    pub fn open_text(&self, purpose: &[u8], sealed: &str) -> Result<Vec<u8>, SealError> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(sealed)
            .map_err(|_| SealError::Malformed)?;
        self.open(purpose, &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rotated_ring_opens_what_the_old_key_sealed_and_seals_with_the_new() {
        let old = SealKey::generate();
        let new = SealKey::generate();
        let before = SealRing::new(vec![old.clone()]).unwrap();
        let sealed = before.seal(b"user-token:alice:fs", b"secret");
        let after = SealRing::new(vec![new.clone(), old]).unwrap();
        assert_eq!(
            after.open(b"user-token:alice:fs", &sealed).unwrap(),
            b"secret"
        );
        let resealed = after.seal(b"p", b"x");
        assert_eq!(
            before.open(b"p", &resealed),
            Err(SealError::UnknownKey),
            "the new key seals"
        );
        let dropped = SealRing::new(vec![new]).unwrap();
        assert_eq!(
            dropped.open(b"user-token:alice:fs", &sealed),
            Err(SealError::UnknownKey)
        );
    }

    #[test]
    fn altered_or_moved_blobs_do_not_open() {
        let ring = SealRing::new(vec![SealKey::generate()]).unwrap();
        let mut sealed = ring.seal(b"a", b"plaintext");
        assert_eq!(ring.open(b"b", &sealed), Err(SealError::Forged));
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert_eq!(ring.open(b"a", &sealed), Err(SealError::Forged));
        assert_eq!(ring.open(b"a", &[1, 2, 3]), Err(SealError::Malformed));
        assert!(!String::from_utf8_lossy(&ring.seal(b"a", b"plaintext")).contains("plaintext"));
        let text = ring.seal_text(b"s", b"hello");
        assert_eq!(ring.open_text(b"s", &text).unwrap(), b"hello");
    }

    #[test]
    fn keys_are_32_bytes_of_base64_and_never_debug_printed() {
        let key = SealKey::generate();
        let text = key.to_base64();
        assert!(SealKey::from_base64(&text).is_ok());
        assert_eq!(
            SealKey::from_base64("c2hvcnQ=").unwrap_err(),
            SealError::BadKey
        );
        assert!(!format!("{key:?}").contains(&text));
    }
}
