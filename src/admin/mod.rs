//! The admin API (`/v1/admin`) and the fleet: how the configuration in the store reaches
//! the running service, on this replica and on every other.
//!
//! A change made through the admin API is checked whole before anything is written: the
//! store's configuration with the change applied goes through the settings file's checks
//! ([`document`]); a refused change writes nothing and answers with every problem at its
//! place. An accepted change is committed in one transaction against the version it was
//! made on (with its audit record), announced to the other replicas, and put in force
//! here ([`apply`]). The other replicas reload when they hear the notice (PostgreSQL
//! `LISTEN/NOTIFY`), and in any case when their once-a-second look at the store's version
//! finds it moved, so a missed notice costs at most a second.
//!
//! When the store is down, the configuration in force stays in force (calls keep
//! working), `/ready` fails, and admin writes are refused with 503.
//!
//! # Layout
//! - [`document`]: how file and store combine; the checks.
//! - [`apply`]: a configuration put in force.
//! - [`routes`]: the HTTP endpoints.

pub mod apply;
pub mod document;
pub mod routes;

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use self::apply::InForce;
use crate::proxy::session_seal::SessionSeal;
use crate::proxy::{Announcement, AppState};
use crate::settings::{lines, Problem, Settings};
use crate::store::audit::AuditRecord;
use crate::store::notify::{Heard, Notice, NoticeListener};
use crate::store::{Change, Store, StoreError};

pub use self::routes::routes;

/// How often a replica compares its version with the store's (and probes the store).
pub const POLL_PERIOD: Duration = Duration::from_secs(1);
/// Tool-call audit records waiting to be written (per replica); more are dropped and
/// counted (`litellm_mcp_audit_dropped`).
pub const MAX_PENDING_AUDIT_RECORDS: usize = 10_000;
/// The most audit records written in one transaction.
pub const AUDIT_BATCH: usize = 500;
/// How often audit records past the retention are deleted.
pub const PRUNE_PERIOD: Duration = Duration::from_secs(3600);

/// Why the fleet could not start.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The settings file could not be read for seeding.
    #[error(transparent)]
    Seed(#[from] document::SeedError),
    /// The configuration in the store does not pass the settings checks (on this
    /// replica: `${NAME}` comes from its environment).
    #[error("the configuration in the store is invalid:\n{}", lines(.problems))]
    Invalid {
        /// Every problem.
        problems: Vec<Problem>,
    },
}

/// Why an admin change was not made. Nothing was written in any case.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// The configuration with the change would not pass the settings checks.
    #[error("the change was refused: {} problem(s)", .problems.len())]
    Invalid {
        /// Every problem, at its place.
        problems: Vec<Problem>,
    },
    /// The store failed (down, or another change came first).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The store, the file's own sections, and what is in force on this replica.
pub struct Fleet {
    store: Store,
    /// The settings file's sections that stay the file's (see [`document`]).
    base: Value,
    /// What is in force; changes and reloads take it in turn.
    in_force: tokio::sync::Mutex<InForce>,
    /// The version in force, for `/ready` and `/metrics` without the lock.
    version: AtomicI64,
    /// Configurations put in force since start (changes here and reloads).
    reloads: AtomicU64,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet")
            .field("store", &self.store)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

impl Fleet {
    /// Seeds an empty store from the settings file (`file_text`, validated as `file`),
    /// then loads and checks the store's configuration: the settings the service starts
    /// with.
    ///
    /// # Errors
    /// [`FleetError`] when the store fails or its configuration is invalid here.
    pub async fn open(
        store: Store,
        file_text: &str,
        file: &Settings,
    ) -> Result<(Arc<Fleet>, Settings), FleetError> {
        let tree = document::file_tree(file_text)?;
        if store.seed(&document::seed_changes(&tree, file)).await? {
            tracing::info!("the store was empty: seeded from the settings file");
        }
        let base = document::base_of(&tree);
        let snapshot = store.load().await?;
        let settings = document::check(&base, &snapshot.entities, &process_env)
            .map_err(|problems| FleetError::Invalid { problems })?;
        let fleet = Fleet {
            store,
            base,
            version: AtomicI64::new(snapshot.version),
            in_force: tokio::sync::Mutex::new(InForce::new(
                snapshot.version,
                snapshot.entities,
                &settings,
            )),
            reloads: AtomicU64::new(0),
        };
        Ok((Arc::new(fleet), settings))
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The version of the configuration in force here.
    pub fn version(&self) -> i64 {
        self.version.load(Ordering::Relaxed)
    }

    /// Configurations put in force since start.
    pub fn reloads(&self) -> u64 {
        self.reloads.load(Ordering::Relaxed)
    }

    /// Adds `replica` and `store` (`backend`, `up`, `version`) to a `/health` or
    /// `/ready` body.
    pub fn describe(&self, body: &mut Value) {
        body["replica"] = Value::from(self.store.replica());
        body["store"] = serde_json::json!({
            "backend": format!("{:?}", self.store.backend()).to_lowercase(),
            "up": self.store.is_up(),
            "version": self.version(),
        });
    }

    /// The fleet's scrape-time gauges for `/metrics`, each `(name, help, value)`.
    pub fn gauges(&self, audit_dropped: u64) -> Vec<(&'static str, &'static str, usize)> {
        vec![
            (
                "store_up",
                "Whether this replica's store answered its last statement (1) or not (0)",
                usize::from(self.store.is_up()),
            ),
            (
                "config_version",
                "The store's configuration version in force on this replica",
                usize::try_from(self.version()).unwrap_or(0),
            ),
            (
                "config_reloads",
                "Configurations from the store put in force since start",
                usize::try_from(self.reloads()).unwrap_or(usize::MAX),
            ),
            (
                "audit_dropped",
                "Tool-call audit records not written to the store (its queue was full)",
                usize::try_from(audit_dropped).unwrap_or(usize::MAX),
            ),
        ]
    }

    /// The entities in force (for the admin API's reads).
    pub async fn entities(&self) -> crate::store::Entities {
        self.in_force.lock().await.entities.clone()
    }

    /// Checks the store's configuration with `changes`, commits it with `audit`,
    /// announces it and puts it in force here; returns the new version.
    ///
    /// # Errors
    /// [`ChangeError`]; nothing was written.
    pub async fn change(
        &self,
        state: &AppState,
        changes: Vec<Change>,
        audit: AuditRecord,
    ) -> Result<i64, ChangeError> {
        let mut in_force = self.in_force.lock().await;
        let snapshot = self.store.load().await?;
        let mut entities = snapshot.entities;
        document::apply_changes(&mut entities, &changes);
        let settings = document::check(&self.base, &entities, &process_env)
            .map_err(|problems| ChangeError::Invalid { problems })?;
        let version = self
            .store
            .commit(snapshot.version, &changes, &audit)
            .await?;
        if let Err(error) = self.store.announce(Notice::Config { version }).await {
            // The others find the new version on their next look.
            tracing::warn!(%error, "announcing a change failed");
        }
        apply::apply(state, &mut in_force, version, entities, &settings).await;
        self.version.store(version, Ordering::Relaxed);
        self.reloads.fetch_add(1, Ordering::Relaxed);
        Ok(version)
    }

    /// Puts the store's configuration in force if it moved past the one in force.
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be read; an invalid configuration is logged
    /// and the one in force kept.
    pub async fn reload(&self, state: &AppState) -> Result<(), StoreError> {
        let mut in_force = self.in_force.lock().await;
        let snapshot = self.store.load().await?;
        if snapshot.version == in_force.version {
            return Ok(());
        }
        match document::check(&self.base, &snapshot.entities, &process_env) {
            Ok(settings) => {
                apply::apply(
                    state,
                    &mut in_force,
                    snapshot.version,
                    snapshot.entities,
                    &settings,
                )
                .await;
                self.version.store(snapshot.version, Ordering::Relaxed);
                self.reloads.fetch_add(1, Ordering::Relaxed);
            }
            Err(problems) => tracing::error!(
                version = snapshot.version,
                problems = %lines(&problems),
                "the store's configuration is invalid on this replica; keeping the one in force"
            ),
        }
        Ok(())
    }

    /// Writes tool-call audit records to the store in batches until `cancel` (then
    /// writes what is queued). A batch the store refuses is logged and dropped.
    pub(crate) async fn write_audit(
        self: Arc<Self>,
        mut records: tokio::sync::mpsc::Receiver<AuditRecord>,
        cancel: CancellationToken,
    ) {
        loop {
            let first = tokio::select! {
                () = cancel.cancelled() => None,
                record = records.recv() => record,
            };
            let Some(first) = first else {
                records.close();
                let mut rest = Vec::new();
                while let Ok(record) = records.try_recv() {
                    rest.push(record);
                }
                if !rest.is_empty() {
                    if let Err(error) = self.store.record(&rest).await {
                        tracing::warn!(%error, dropped = rest.len(), "writing audit records failed");
                    }
                }
                return;
            };
            let mut batch = vec![first];
            while batch.len() < AUDIT_BATCH {
                match records.try_recv() {
                    Ok(record) => batch.push(record),
                    Err(_) => break,
                }
            }
            if let Err(error) = self.store.record(&batch).await {
                tracing::warn!(%error, dropped = batch.len(), "writing audit records failed");
            }
        }
    }

    /// The fleet's background work until `cancel`: notices from other replicas, the
    /// once-a-second look at the store, relaying tool-list changes, audit retention.
    pub(crate) async fn run(
        self: Arc<Self>,
        state: AppState,
        cancel: CancellationToken,
        seal: Arc<SessionSeal>,
        mut ended: tokio::sync::mpsc::Receiver<String>,
    ) {
        let mut poll = tokio::time::interval(POLL_PERIOD);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut prune = tokio::time::interval(PRUNE_PERIOD);
        let mut announcements = state.announcements();
        let mut listener: Option<NoticeListener> = None;
        let mut listening = false;
        loop {
            let heard = async {
                match listener.as_mut() {
                    Some(l) => l.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = cancel.cancelled() => return,
                _ = poll.tick() => {
                    if !listening {
                        match self.store.listen().await {
                            Ok(l) => {
                                listener = l;
                                listening = true;
                                // Notices before this were not heard.
                                let _ = self.reload(&state).await;
                            }
                            Err(error) => tracing::debug!(%error, "listening for store notices failed"),
                        }
                    }
                    match self.store.version().await {
                        Ok(version) if version != self.version() => {
                            if let Err(error) = self.reload(&state).await {
                                tracing::warn!(%error, "reloading from the store failed");
                            }
                        }
                        Ok(_) => {}
                        Err(error) => tracing::debug!(%error, "the store is unavailable"),
                    }
                }
                _ = prune.tick() => {
                    match self.store.prune_audit().await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(deleted = n, "audit records past the retention deleted"),
                        Err(error) => tracing::warn!(%error, "pruning the audit trail failed"),
                    }
                }
                Some(digest) = ended.recv() => {
                    if let Err(error) = self.store.announce(Notice::SessionEnded { digest }).await {
                        tracing::warn!(%error, "telling the fleet of an ended session failed");
                    }
                }
                announcement = announcements.recv() => match announcement {
                    Ok(a) if !a.relayed && a.method == "notifications/tools/list_changed" => {
                        let notice = Notice::ToolsChanged { server: a.server };
                        if let Err(error) = self.store.announce(notice).await {
                            tracing::debug!(%error, "relaying a tool-list change failed");
                        }
                    }
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                heard = heard => match heard {
                    Ok(Heard::Notice(Notice::Config { .. })) | Ok(Heard::Reconnected) => {
                        if let Err(error) = self.reload(&state).await {
                            tracing::warn!(%error, "reloading from the store failed");
                        }
                    }
                    Ok(Heard::Notice(Notice::SessionEnded { digest })) => {
                        seal.ended_elsewhere(&digest);
                        if let Some(session) = state.sessions().remove_ended(&digest) {
                            state
                                .handler()
                                .release_subscriptions(&session.scope, &session.subscriptions())
                                .await;
                        }
                    }
                    Ok(Heard::Notice(Notice::ToolsChanged { server })) => {
                        if let Some(upstream) = state.gateway().server_now(&server) {
                            upstream.invalidate_tools();
                            state.announce(Announcement {
                                server,
                                method: "notifications/tools/list_changed".into(),
                                params: Value::Null,
                                relayed: true,
                            });
                        }
                    }
                    Err(error) => {
                        tracing::debug!(%error, "the store's notices were interrupted");
                        tokio::time::sleep(POLL_PERIOD).await;
                    }
                },
            }
        }
    }
}
