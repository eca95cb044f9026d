//! Change notices between the replicas of a fleet: PostgreSQL `NOTIFY` on one channel,
//! `LISTEN` on a connection of its own per replica. With SQLite (one process) there is
//! nobody to tell and announcing does nothing.
//!
//! A notice is a hint, not the data: a replica that hears "configuration version N"
//! reloads from the store, and one that missed notices (its listening connection dropped)
//! reloads when it reconnects, so nothing depends on every notice arriving.

use serde::{Deserialize, Serialize};
use sqlx::postgres::PgListener;

use super::{Backend, Store, StoreError};

/// The channel of every notice.
pub const CHANNEL: &str = "litellm_mcp_state";

/// What changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Notice {
    /// The configuration is now at `version`.
    Config {
        /// The version committed.
        version: i64,
    },
    /// An upstream told this replica its tool list changed: other replicas drop their
    /// cached list of it.
    ToolsChanged {
        /// The server.
        server: String,
    },
    /// A client ended its session: its sealed id must not be resumed anywhere.
    SessionEnded {
        /// SHA-256 of the session id, hex.
        digest: String,
    },
}

/// A notice with the replica that sent it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The sender.
    pub replica: String,
    /// The notice.
    #[serde(flatten)]
    pub notice: Notice,
}

/// What a listener hears.
#[derive(Debug)]
pub enum Heard {
    /// A notice of another replica.
    Notice(Notice),
    /// The listening connection was lost and is back: notices may have been missed.
    Reconnected,
}

/// The `LISTEN` side of one replica.
pub struct NoticeListener {
    listener: PgListener,
    replica: String,
    lost: bool,
}

impl NoticeListener {
    /// The next notice from another replica, or word that the connection came back.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the database cannot be reached (the caller waits
    /// and calls again; the listener reconnects).
    pub async fn recv(&mut self) -> Result<Heard, StoreError> {
        loop {
            match self.listener.try_recv().await {
                Ok(Some(notification)) => {
                    if self.lost {
                        self.lost = false;
                        // The payload still counts; the reload covers it.
                        return Ok(Heard::Reconnected);
                    }
                    let Ok(envelope) = serde_json::from_str::<Envelope>(notification.payload())
                    else {
                        tracing::warn!("ignoring a malformed store notice");
                        continue;
                    };
                    if envelope.replica != self.replica {
                        return Ok(Heard::Notice(envelope.notice));
                    }
                }
                // The connection was lost; the next call reconnects.
                Ok(None) => {
                    self.lost = true;
                }
                Err(e) => {
                    self.lost = true;
                    return Err(e.into());
                }
            }
        }
    }

    /// Whether the connection was lost and no notice came since it was.
    pub fn was_lost(&self) -> bool {
        self.lost
    }
}

impl Store {
    /// Tells the other replicas (PostgreSQL); nothing with SQLite.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    pub async fn announce(&self, notice: Notice) -> Result<(), StoreError> {
        if self.backend() != Backend::Postgres {
            return Ok(());
        }
        let payload = serde_json::to_string(&Envelope {
            replica: self.replica().to_string(),
            notice,
        })
        .unwrap_or_default();
        self.noted(
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CHANNEL)
                .bind(payload)
                .execute(self.pool())
                .await,
        )?;
        Ok(())
    }

    /// Starts listening (PostgreSQL); `None` with SQLite.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    pub async fn listen(&self) -> Result<Option<NoticeListener>, StoreError> {
        let Some(url) = self.listen_url() else {
            return Ok(None);
        };
        let mut listener = PgListener::connect(url.expose()).await?;
        listener.listen(CHANNEL).await?;
        Ok(Some(NoticeListener {
            listener,
            replica: self.replica().to_string(),
            lost: false,
        }))
    }
}
