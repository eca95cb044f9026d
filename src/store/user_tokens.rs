//! Per-user upstream tokens (the OAuth issue's authorization-code grants): opaque bytes
//! by (subject, server), sealed with the store's ring before they reach the database,
//! bound to their row (a blob copied to another subject or server does not open).
//!
//! What the bytes mean (access and refresh token, expiry) is the OAuth module's; this one
//! only keeps them. [`Store`] is the library's [`TokenStore`] through this module, so a
//! service with a store keeps per-user tokens in its database (sealed, across restarts,
//! shared by its replicas).

use futures::future::BoxFuture;
use sqlx::Row;

use crate::core::mcp::auth::per_user::TokenStore;

use super::{now_ms, Store, StoreError};

fn purpose(subject: &str, server: &str) -> Vec<u8> {
    // The subject may contain any character; its length keeps the pair unambiguous.
    format!("user-token:{}:{subject}:{server}", subject.len()).into_bytes()
}

impl Store {
    /// Keeps `token` for `subject` at `server`, replacing what was there.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    pub async fn put_user_token(
        &self,
        subject: &str,
        server: &str,
        token: &[u8],
    ) -> Result<(), StoreError> {
        let sealed = self.seal().seal_text(&purpose(subject, server), token);
        self.noted(
            sqlx::query(
                "INSERT INTO user_tokens (subject, server, sealed, updated_ms) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (subject, server) DO UPDATE SET sealed = excluded.sealed, updated_ms = excluded.updated_ms",
            )
            .bind(subject)
            .bind(server)
            .bind(sealed)
            .bind(now_ms())
            .execute(self.pool())
            .await,
        )?;
        Ok(())
    }

    /// The token kept for `subject` at `server`, opened.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`]; [`StoreError::Seal`] when it does not open (sealed
    /// with a key no longer in the ring, or altered).
    pub async fn user_token(
        &self,
        subject: &str,
        server: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let row = self.noted(
            sqlx::query("SELECT sealed FROM user_tokens WHERE subject = $1 AND server = $2")
                .bind(subject)
                .bind(server)
                .fetch_optional(self.pool())
                .await,
        )?;
        let Some(row) = row else { return Ok(None) };
        let sealed: String = row.try_get(0)?;
        Ok(Some(
            self.seal().open_text(&purpose(subject, server), &sealed)?,
        ))
    }

    /// Forgets the token of `subject` at `server`; returns whether there was one.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    pub async fn delete_user_token(&self, subject: &str, server: &str) -> Result<bool, StoreError> {
        let done = self.noted(
            sqlx::query("DELETE FROM user_tokens WHERE subject = $1 AND server = $2")
                .bind(subject)
                .bind(server)
                .execute(self.pool())
                .await,
        )?;
        Ok(done.rows_affected() > 0)
    }
}

/// The library's per-user tokens in the database: each blob sealed to its row.
impl TokenStore for Store {
    fn get<'a>(
        &'a self,
        subject: &'a str,
        server: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<u8>>, String>> {
        Box::pin(async move {
            self.user_token(subject, server)
                .await
                .map_err(|e| e.to_string())
        })
    }

    fn put<'a>(
        &'a self,
        subject: &'a str,
        server: &'a str,
        blob: Vec<u8>,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            self.put_user_token(subject, server, &blob)
                .await
                .map_err(|e| e.to_string())
        })
    }

    fn remove<'a>(
        &'a self,
        subject: &'a str,
        server: &'a str,
    ) -> BoxFuture<'a, Result<bool, String>> {
        Box::pin(async move {
            self.delete_user_token(subject, server)
                .await
                .map_err(|e| e.to_string())
        })
    }
}
