//! The store's settings (`store:` in the settings file), as validated values.
//!
//! Owns only the shape; the checks are in `settings::convert::store`. A PostgreSQL URL may
//! carry a password: it is a [`Secret`] and never reaches `Debug` or a log.

use std::path::PathBuf;
use std::time::Duration;

use crate::core::mcp::Secret;

use super::seal::SealKey;

/// How long audit records are kept when the file does not say, in days.
pub const DEFAULT_AUDIT_RETENTION_DAYS: u64 = 30;
/// The SQLite file when the file does not say, beside the settings file.
pub const DEFAULT_SQLITE_FILE: &str = "litellm-mcp.db";

/// Which database holds the state.
#[derive(Debug, Clone)]
pub enum Database {
    /// An embedded SQLite file (one process).
    Sqlite {
        /// The file; relative paths are resolved against the settings file's folder.
        file: PathBuf,
    },
    /// A PostgreSQL server shared by the replicas of a fleet.
    Postgres {
        /// `postgres://…` (may hold a password).
        url: Secret,
    },
}

/// The validated `store` section.
#[derive(Debug, Clone)]
pub struct StoreSettings {
    /// The database.
    pub database: Database,
    /// The seal keys, the first sealing, all opening. Empty for SQLite means "a key file
    /// beside the database"; PostgreSQL requires keys (every replica needs the same).
    pub seal_keys: Vec<SealKey>,
    /// This replica's name in `/health`, `/ready`, `/metrics` and audit records; default
    /// the host name and process id.
    pub replica: Option<String>,
    /// Audit records older than this are deleted.
    pub audit_retention: Duration,
}

impl StoreSettings {
    /// A SQLite store at `file` with defaults otherwise (tests, and `store: {}`).
    pub fn sqlite(file: impl Into<PathBuf>) -> StoreSettings {
        StoreSettings {
            database: Database::Sqlite { file: file.into() },
            seal_keys: Vec::new(),
            replica: None,
            audit_retention: Duration::from_secs(DEFAULT_AUDIT_RETENTION_DAYS * 86_400),
        }
    }
}
