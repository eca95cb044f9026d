//! The checks of the `store` section: which database, the seal keys, the replica's name
//! and the audit retention. A database URL (which may carry a password) and a key are
//! never quoted in a message.

use std::path::PathBuf;
use std::time::Duration;

use crate::core::mcp::Secret;
use crate::settings::place::{Place, Problems};
use crate::settings::raw::{Field, RawStore};
use crate::store::config::{
    Database, StoreSettings, DEFAULT_AUDIT_RETENTION_DAYS, DEFAULT_SQLITE_FILE,
};
use crate::store::seal::SealKey;

pub(super) fn convert_store(
    p: &mut Problems,
    place: &Place,
    field: Field<RawStore>,
) -> Option<StoreSettings> {
    let raw = p.optional(place, field)?;
    let url = p.optional(&place.key("database_url"), raw.database_url);
    let file = p.optional(&place.key("sqlite_file"), raw.sqlite_file);
    let database = match (url, file) {
        (Some(_), Some(_)) => {
            p.add(
                place,
                "both `database_url` and `sqlite_file` are set; give one",
            );
            None
        }
        (Some(url), None) => {
            if url.starts_with("postgres://") || url.starts_with("postgresql://") {
                Some(Database::Postgres {
                    url: Secret::new(url),
                })
            } else {
                p.add(
                    &place.key("database_url"),
                    "must be a PostgreSQL URL (`postgres://…`); for SQLite give `sqlite_file`",
                );
                None
            }
        }
        (None, file) => {
            let file = file.unwrap_or_else(|| DEFAULT_SQLITE_FILE.to_string());
            if file.is_empty() {
                p.add(&place.key("sqlite_file"), "empty");
            }
            Some(Database::Sqlite {
                file: PathBuf::from(file),
            })
        }
    };
    let keys_place = place.key("seal_keys");
    let mut seal_keys = Vec::new();
    for (i, text) in p
        .optional(&keys_place, raw.seal_keys)
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        match SealKey::from_base64(&text) {
            Ok(key) => seal_keys.push(key),
            Err(e) => p.add(&keys_place.index(i), e.to_string()),
        }
    }
    if matches!(database, Some(Database::Postgres { .. })) && seal_keys.is_empty() {
        p.add(
            &keys_place,
            "required with `database_url`: every replica must seal with the same keys \
             (32 random bytes in base64, usually `${LITELLM_MCP_SEAL_KEY}`)",
        );
    }
    let replica = p.optional(&place.key("replica"), raw.replica);
    if let Some(name) = &replica {
        if name.is_empty()
            || name.len() > 64
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        {
            p.add(
                &place.key("replica"),
                "must be 1 to 64 characters of [A-Za-z0-9_.-]",
            );
        }
    }
    let days_place = place.key("audit_retention_days");
    let days = match p.optional(&days_place, raw.audit_retention_days) {
        Some(0) => {
            p.add(&days_place, "must be greater than 0");
            DEFAULT_AUDIT_RETENTION_DAYS
        }
        Some(days) => days.min(36_500),
        None => DEFAULT_AUDIT_RETENTION_DAYS,
    };
    Some(StoreSettings {
        database: database?,
        seal_keys,
        replica,
        audit_retention: Duration::from_secs(days * 86_400),
    })
}
