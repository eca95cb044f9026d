//! The audit trail: who changed what through the admin API (and, when the service
//! records them, tool calls), with a retention and a query.
//!
//! A record carries names and outcomes only: never a key, a token, arguments or results.

use serde::Serialize;
use sqlx::any::Any;
use sqlx::Row;

use super::{now_ms, Store, StoreError};

/// The most records one query returns.
pub const MAX_AUDIT_PAGE: i64 = 1000;

/// One audited action.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AuditRecord {
    /// Who: the key's name or the token's subject.
    pub actor: String,
    /// What: `server.put`, `key.create`, `tool.call`, …
    pub action: String,
    /// On what: a server, key, team, … name.
    pub target: String,
    /// `ok`, or why it was refused.
    pub outcome: String,
    /// A JSON object with what else matters (never a secret).
    pub detail: serde_json::Value,
}

impl AuditRecord {
    /// The record of one tool call.
    pub fn tool_call(
        actor: &str,
        via: &str,
        server: &str,
        tool: &str,
        outcome: &str,
        duration_ms: u64,
    ) -> AuditRecord {
        AuditRecord {
            actor: actor.to_string(),
            action: "tool.call".into(),
            target: format!("{server}/{tool}"),
            outcome: outcome.to_string(),
            detail: serde_json::json!({"via": via, "duration_ms": duration_ms}),
        }
    }
}

/// Where records go to be written to the store in the background (a bounded queue; a
/// record that finds it full is dropped and counted). Unset until a store is attached.
#[derive(Debug, Default)]
pub struct AuditSink {
    sender: std::sync::OnceLock<tokio::sync::mpsc::Sender<AuditRecord>>,
    dropped: std::sync::atomic::AtomicU64,
}

impl AuditSink {
    /// Sends records to `sender` from now on (once).
    pub fn connect(&self, sender: tokio::sync::mpsc::Sender<AuditRecord>) {
        let _ = self.sender.set(sender);
    }

    /// Whether a store takes the records.
    pub fn is_connected(&self) -> bool {
        self.sender.get().is_some()
    }

    /// Queues a record (nothing without a store).
    pub fn send(&self, record: AuditRecord) {
        if let Some(sender) = self.sender.get() {
            if sender.try_send(record).is_err() {
                self.dropped
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }

    /// Records dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// A stored record with when and where it happened.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEvent {
    /// Unique id.
    pub id: String,
    /// When (ms since the Unix epoch).
    pub at_ms: i64,
    /// Which replica.
    pub replica: String,
    /// The record.
    #[serde(flatten)]
    pub record: AuditRecord,
}

/// Which records a query wants; every field narrows.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// At or after (ms since the epoch).
    pub since_ms: Option<i64>,
    /// Before (ms since the epoch).
    pub until_ms: Option<i64>,
    /// This actor.
    pub actor: Option<String>,
    /// This action.
    pub action: Option<String>,
    /// This target.
    pub target: Option<String>,
    /// At most this many, newest first (at most [`MAX_AUDIT_PAGE`], default 100).
    pub limit: Option<i64>,
}

pub(super) async fn insert(
    tx: &mut sqlx::Transaction<'_, Any>,
    replica: &str,
    at_ms: i64,
    record: &AuditRecord,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO audit_events (id, at_ms, replica, actor, action, target, outcome, detail) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(format!("{:032x}", rand::random::<u128>()))
    .bind(at_ms)
    .bind(replica)
    .bind(record.actor.as_str())
    .bind(record.action.as_str())
    .bind(record.target.as_str())
    .bind(record.outcome.as_str())
    .bind(record.detail.to_string())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Store {
    /// Appends records (a batch, in one transaction).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    pub async fn record(&self, records: &[AuditRecord]) -> Result<(), StoreError> {
        let mut tx = self.noted(self.pool().begin().await)?;
        let now = now_ms();
        for record in records {
            insert(&mut tx, self.replica(), now, record).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The records `query` asks for, newest first.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    pub async fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditEvent>, StoreError> {
        let mut sql = String::from(
            "SELECT id, at_ms, replica, actor, action, target, outcome, detail FROM audit_events WHERE 1 = 1",
        );
        let mut n = 0;
        let mut next = |column: &str, op: &str| {
            n += 1;
            format!(" AND {column} {op} ${n}")
        };
        if query.since_ms.is_some() {
            sql.push_str(&next("at_ms", ">="));
        }
        if query.until_ms.is_some() {
            sql.push_str(&next("at_ms", "<"));
        }
        for (value, column) in [
            (&query.actor, "actor"),
            (&query.action, "action"),
            (&query.target, "target"),
        ] {
            if value.is_some() {
                sql.push_str(&next(column, "="));
            }
        }
        let limit = query.limit.unwrap_or(100).clamp(1, MAX_AUDIT_PAGE);
        sql.push_str(&format!(" ORDER BY at_ms DESC, id LIMIT {limit}"));
        let mut statement = sqlx::query(&sql);
        for ms in [query.since_ms, query.until_ms].into_iter().flatten() {
            statement = statement.bind(ms);
        }
        for text in [&query.actor, &query.action, &query.target]
            .into_iter()
            .flatten()
        {
            statement = statement.bind(text.clone());
        }
        let rows = self.noted(statement.fetch_all(self.pool()).await)?;
        rows.into_iter()
            .map(|row| {
                let detail: String = row.try_get(7)?;
                Ok(AuditEvent {
                    id: row.try_get(0)?,
                    at_ms: row.try_get(1)?,
                    replica: row.try_get(2)?,
                    record: AuditRecord {
                        actor: row.try_get(3)?,
                        action: row.try_get(4)?,
                        target: row.try_get(5)?,
                        outcome: row.try_get(6)?,
                        detail: serde_json::from_str(&detail).unwrap_or_default(),
                    },
                })
            })
            .collect()
    }

    /// Deletes the records older than the retention; returns how many.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    pub async fn prune_audit(&self) -> Result<u64, StoreError> {
        let cutoff = now_ms()
            .saturating_sub(i64::try_from(self.retention().as_millis()).unwrap_or(i64::MAX));
        let done = self.noted(
            sqlx::query("DELETE FROM audit_events WHERE at_ms < $1")
                .bind(cutoff)
                .execute(self.pool())
                .await,
        )?;
        Ok(done.rows_affected())
    }
}
