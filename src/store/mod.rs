//! The store: the gateway's run-time state in a database, through `sqlx`. An embedded
//! SQLite file by default, PostgreSQL for a fleet of replicas; one set of migrations
//! (`migrations/`, embedded) for both, applied at open.
//!
//! It holds the configuration the admin API changes (servers, aliases, API keys by
//! digest, key/team/organisation policies, the default level) as entities in the
//! settings file's shape, a version counter that every committed change bumps, the
//! audit trail, and per-user upstream tokens sealed with the ring of [`seal`]. It does
//! not validate a configuration (the settings checks do, in `admin`) nor apply one to
//! the running service; it stores, in one transaction a change, and tells the other
//! replicas (PostgreSQL `NOTIFY`, see [`notify`]).
//!
//! Invariants: a server's spec (which may carry upstream credentials) and a user's token
//! are only ever written sealed; a plain API key never reaches the store (only
//! `sha256:` digests); a commit whose base version is not the current one is refused
//! ([`StoreError::Conflict`]) so two admins cannot overwrite each other blindly.
//!
//! # Layout
//! - [`config`]: the `store` settings.
//! - [`seal`]: AEAD sealing with rotatable keys.
//! - [`audit`]: the audit trail: records, queries, retention.
//! - [`user_tokens`]: per-user upstream tokens, sealed.
//! - [`notify`]: change notices between replicas.

pub mod audit;
pub mod config;
pub mod notify;
pub mod seal;
pub mod user_tokens;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use sqlx::any::AnyPoolOptions;
use sqlx::AnyPool;
use sqlx::Row;

use self::config::{Database, StoreSettings};
use self::seal::{SealError, SealKey, SealRing};

/// Connections in the pool of a PostgreSQL store (per replica).
pub const MAX_POSTGRES_CONNECTIONS: u32 = 8;
/// Connections in the pool of a SQLite store.
pub const MAX_SQLITE_CONNECTIONS: u32 = 4;
/// How long a statement waits for a connection before the store counts as down.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Why a store operation failed. Never carries a database URL, a key or a secret.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or refused a statement.
    #[error("the store is unavailable: {message}")]
    Unavailable {
        /// What the driver said (without the URL).
        message: String,
    },
    /// The migrations could not be applied.
    #[error("the store's migrations failed: {message}")]
    Migration {
        /// What failed.
        message: String,
    },
    /// Another change was committed since the one this change was made against.
    #[error("the configuration changed meanwhile (now version {current}); try again")]
    Conflict {
        /// The version now in the store.
        current: i64,
    },
    /// A sealed value did not open, or a key is missing.
    #[error("sealed data: {0}")]
    Seal(#[from] SealError),
    /// The key file of a SQLite store could not be read or written.
    #[error("the seal key file {file}: {message}")]
    KeyFile {
        /// The file.
        file: String,
        /// Why.
        message: String,
    },
    /// A stored row is not what this version writes.
    #[error("a stored {kind} `{name}` is malformed")]
    Corrupt {
        /// The entity kind.
        kind: String,
        /// Its name.
        name: String,
    },
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        // sqlx errors name no URL; configuration errors could, so they are summarised.
        let message = match &e {
            sqlx::Error::Configuration(_) => "invalid database configuration".to_string(),
            other => other.to_string(),
        };
        StoreError::Unavailable { message }
    }
}

/// Which database a store uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite: one process.
    Sqlite,
    /// PostgreSQL: a fleet.
    Postgres,
}

/// What an entity of the configuration is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EntityKind {
    /// An upstream server: its `servers[]` mapping (sealed in the database).
    Server,
    /// An alias: the server's name as a JSON string.
    Alias,
    /// An API key: `{key_hash, team, organization}`.
    ApiKey,
    /// A key's policy: `{default_level, rules}`.
    KeyPolicy,
    /// A team's policy.
    TeamPolicy,
    /// An organisation's policy.
    OrganizationPolicy,
    /// A top-level setting the store rules (`default_level`).
    Setting,
}

impl EntityKind {
    /// Every kind.
    pub const ALL: [EntityKind; 7] = [
        EntityKind::Server,
        EntityKind::Alias,
        EntityKind::ApiKey,
        EntityKind::KeyPolicy,
        EntityKind::TeamPolicy,
        EntityKind::OrganizationPolicy,
        EntityKind::Setting,
    ];

    /// The name in the `kind` column.
    pub fn as_str(self) -> &'static str {
        match self {
            EntityKind::Server => "server",
            EntityKind::Alias => "alias",
            EntityKind::ApiKey => "api_key",
            EntityKind::KeyPolicy => "key_policy",
            EntityKind::TeamPolicy => "team_policy",
            EntityKind::OrganizationPolicy => "organization_policy",
            EntityKind::Setting => "setting",
        }
    }

    fn parse(text: &str) -> Option<EntityKind> {
        EntityKind::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

/// The configuration entities, by kind and name, in name order.
pub type Entities = BTreeMap<(EntityKind, String), Value>;

/// The configuration as stored, at one version.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The version: the number of changes committed.
    pub version: i64,
    /// Whether the settings file has seeded the store.
    pub seeded: bool,
    /// The entities.
    pub entities: Entities,
}

/// One change to an entity.
#[derive(Debug, Clone)]
pub enum Change {
    /// Create or replace.
    Put {
        /// What.
        kind: EntityKind,
        /// Its name.
        name: String,
        /// Its spec.
        spec: Value,
    },
    /// Delete (nothing when absent).
    Delete {
        /// What.
        kind: EntityKind,
        /// Its name.
        name: String,
    },
}

/// The store handle. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<StoreInner>,
}

struct StoreInner {
    pool: AnyPool,
    backend: Backend,
    seal: SealRing,
    /// The PostgreSQL URL, for the `LISTEN` connection.
    listen_url: Option<crate::core::mcp::Secret>,
    /// Whether the last statement (or health probe) reached the database.
    up: AtomicBool,
    replica: String,
    retention: Duration,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.inner.backend)
            .field("replica", &self.inner.replica)
            .finish_non_exhaustive()
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The replica name when the settings give none: host name and process id.
pub fn default_replica_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    let host = if host.is_empty() {
        "replica".to_string()
    } else {
        host
    };
    format!("{host}-{}", std::process::id())
}

impl Store {
    /// Opens (creating when needed) the database and applies the migrations.
    ///
    /// # Errors
    /// [`StoreError`] when the database cannot be reached or migrated, or a SQLite key
    /// file cannot be made.
    pub async fn open(settings: &StoreSettings) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let (url, backend, max, keys, listen_url) = match &settings.database {
            Database::Sqlite { file } => {
                let keys = if settings.seal_keys.is_empty() {
                    vec![sqlite_key_file(file)?]
                } else {
                    settings.seal_keys.clone()
                };
                (
                    format!("sqlite://{}?mode=rwc", file.display()),
                    Backend::Sqlite,
                    MAX_SQLITE_CONNECTIONS,
                    keys,
                    None,
                )
            }
            Database::Postgres { url } => (
                url.expose().to_string(),
                Backend::Postgres,
                MAX_POSTGRES_CONNECTIONS,
                settings.seal_keys.clone(),
                Some(url.clone()),
            ),
        };
        let pool = AnyPoolOptions::new()
            .max_connections(max)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect(&url)
            .await?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| StoreError::Migration {
                message: e.to_string(),
            })?;
        Ok(Store {
            inner: Arc::new(StoreInner {
                pool,
                backend,
                seal: SealRing::new(keys)?,
                listen_url,
                up: AtomicBool::new(true),
                replica: settings
                    .replica
                    .clone()
                    .unwrap_or_else(default_replica_name),
                retention: settings.audit_retention,
            }),
        })
    }

    /// Which database.
    pub fn backend(&self) -> Backend {
        self.inner.backend
    }

    /// This replica's name.
    pub fn replica(&self) -> &str {
        &self.inner.replica
    }

    /// The seal ring (shared with the session seal).
    pub fn seal(&self) -> &SealRing {
        &self.inner.seal
    }

    /// Whether the last statement reached the database.
    pub fn is_up(&self) -> bool {
        self.inner.up.load(Ordering::Relaxed)
    }

    /// Runs `SELECT 1` and records whether the database answered.
    pub async fn probe(&self) -> bool {
        let ok = tokio::time::timeout(
            ACQUIRE_TIMEOUT,
            sqlx::query("SELECT 1").execute(&self.inner.pool),
        )
        .await
        .is_ok_and(|r| r.is_ok());
        self.inner.up.store(ok, Ordering::Relaxed);
        ok
    }

    fn noted<T>(&self, result: Result<T, sqlx::Error>) -> Result<T, StoreError> {
        match result {
            Ok(value) => {
                self.inner.up.store(true, Ordering::Relaxed);
                Ok(value)
            }
            Err(e) => {
                if matches!(
                    e,
                    sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed
                ) {
                    self.inner.up.store(false, Ordering::Relaxed);
                }
                Err(e.into())
            }
        }
    }

    /// The configuration's version now.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    pub async fn version(&self) -> Result<i64, StoreError> {
        let row = self.noted(
            sqlx::query("SELECT version FROM config_version WHERE id = 1")
                .fetch_one(&self.inner.pool)
                .await,
        )?;
        Ok(row.try_get::<i64, _>(0)?)
    }

    /// The whole configuration, at one version (read in one transaction).
    ///
    /// # Errors
    /// [`StoreError`] when the database is unreachable or a row does not open.
    pub async fn load(&self) -> Result<Snapshot, StoreError> {
        let mut tx = self.noted(self.inner.pool.begin().await)?;
        let row = sqlx::query("SELECT version, seeded FROM config_version WHERE id = 1")
            .fetch_one(&mut *tx)
            .await?;
        let version: i64 = row.try_get(0)?;
        let seeded: i64 = row.try_get(1)?;
        let rows = sqlx::query("SELECT kind, name, spec FROM config_entities")
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        let mut entities = Entities::new();
        for row in rows {
            let kind: String = row.try_get(0)?;
            let name: String = row.try_get(1)?;
            let spec: String = row.try_get(2)?;
            let corrupt = || StoreError::Corrupt {
                kind: kind.clone(),
                name: name.clone(),
            };
            let parsed = EntityKind::parse(&kind).ok_or_else(corrupt)?;
            let text = if parsed == EntityKind::Server {
                let opened = self
                    .inner
                    .seal
                    .open_text(server_purpose(&name).as_bytes(), &spec)?;
                String::from_utf8(opened).map_err(|_| corrupt())?
            } else {
                spec
            };
            let value: Value = serde_json::from_str(&text).map_err(|_| corrupt())?;
            entities.insert((parsed, name), value);
        }
        Ok(Snapshot {
            version,
            seeded: seeded != 0,
            entities,
        })
    }

    /// Commits `changes` made against version `base` in one transaction with their audit
    /// record; returns the new version.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when another change was committed since `base` (nothing
    /// is written); [`StoreError::Unavailable`] when the database fails (nothing is
    /// written).
    pub async fn commit(
        &self,
        base: i64,
        changes: &[Change],
        audit: &audit::AuditRecord,
    ) -> Result<i64, StoreError> {
        self.commit_inner(base, changes, Some(audit), false).await
    }

    /// Writes the settings file's entities into a store that has never been seeded;
    /// returns whether it did (a store seeded before is left as it is).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    pub async fn seed(&self, changes: &[Change]) -> Result<bool, StoreError> {
        let snapshot = self.load().await?;
        if snapshot.seeded {
            return Ok(false);
        }
        match self
            .commit_inner(snapshot.version, changes, None, true)
            .await
        {
            Ok(_) => Ok(true),
            // Another replica seeded first.
            Err(StoreError::Conflict { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn commit_inner(
        &self,
        base: i64,
        changes: &[Change],
        audit: Option<&audit::AuditRecord>,
        seeding: bool,
    ) -> Result<i64, StoreError> {
        let now = now_ms();
        let mut tx = self.noted(self.inner.pool.begin().await)?;
        let bumped = sqlx::query(if seeding {
            "UPDATE config_version SET version = version + 1, seeded = 1 WHERE id = 1 AND version = $1 AND seeded = 0"
        } else {
            "UPDATE config_version SET version = version + 1 WHERE id = 1 AND version = $1"
        })
        .bind(base)
        .execute(&mut *tx)
        .await?;
        if bumped.rows_affected() != 1 {
            tx.rollback().await?;
            let current = self.version().await?;
            return Err(StoreError::Conflict { current });
        }
        for change in changes {
            match change {
                Change::Put { kind, name, spec } => {
                    let text = spec.to_string();
                    let stored = if *kind == EntityKind::Server {
                        self.inner
                            .seal
                            .seal_text(server_purpose(name).as_bytes(), text.as_bytes())
                    } else {
                        text
                    };
                    sqlx::query(
                        "INSERT INTO config_entities (kind, name, spec, updated_ms) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (kind, name) DO UPDATE SET spec = excluded.spec, updated_ms = excluded.updated_ms",
                    )
                    .bind(kind.as_str())
                    .bind(name.as_str())
                    .bind(stored)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                Change::Delete { kind, name } => {
                    sqlx::query("DELETE FROM config_entities WHERE kind = $1 AND name = $2")
                        .bind(kind.as_str())
                        .bind(name.as_str())
                        .execute(&mut *tx)
                        .await?;
                }
            }
        }
        if let Some(record) = audit {
            audit::insert(&mut tx, &self.inner.replica, now, record).await?;
        }
        tx.commit().await?;
        Ok(base + 1)
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.inner.pool
    }

    pub(crate) fn listen_url(&self) -> Option<&crate::core::mcp::Secret> {
        self.inner.listen_url.as_ref()
    }

    pub(crate) fn retention(&self) -> Duration {
        self.inner.retention
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.inner.pool.close().await;
    }
}

/// The associated data of a server's sealed spec: bound to its name.
fn server_purpose(name: &str) -> String {
    format!("server:{name}")
}

/// The key of a SQLite store without `seal_keys`: `<file>.key` beside the database,
/// made (mode 0600) on first use.
fn sqlite_key_file(database: &Path) -> Result<SealKey, StoreError> {
    let mut name = database.as_os_str().to_owned();
    name.push(".key");
    let file = std::path::PathBuf::from(name);
    let failed = |message: String| StoreError::KeyFile {
        file: file.display().to_string(),
        message,
    };
    match std::fs::read_to_string(&file) {
        Ok(text) => SealKey::from_base64(&text).map_err(|e| failed(e.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = SealKey::generate();
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let mut out = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&file)
                .map_err(|e| failed(e.to_string()))?;
            out.write_all(key.to_base64().as_bytes())
                .map_err(|e| failed(e.to_string()))?;
            Ok(key)
        }
        Err(e) => Err(failed(e.to_string())),
    }
}
