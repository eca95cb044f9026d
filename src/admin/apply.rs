//! Putting a checked configuration in force on the running service, without a restart:
//! servers registered, replaced or unregistered in the gateway (a server whose spec did
//! not change keeps its upstream connection and tool cache), aliases, the permissions and
//! the API keys swapped whole.
//!
//! A call in flight on a server that is replaced or removed ends with the server (its
//! connection closes); every other call is untouched. Token exchange settings of servers
//! added at run time are not applied (they need `oauth` in the file; documented).

use std::collections::BTreeMap;

use crate::proxy::AppState;
use crate::settings::Settings;
use crate::store::{Entities, EntityKind};

/// What is in force: the version, and what `apply` compares the next configuration with.
#[derive(Debug, Default)]
pub(crate) struct InForce {
    /// The store's version of the configuration in force.
    pub(crate) version: i64,
    /// The entities in force.
    pub(crate) entities: Entities,
    /// Server name → its spec as JSON text.
    servers: BTreeMap<String, String>,
    /// Alias → server.
    aliases: BTreeMap<String, String>,
}

impl InForce {
    /// What a service built from `settings` (at `version`, from `entities`) has in force.
    pub(crate) fn new(version: i64, entities: Entities, settings: &Settings) -> InForce {
        InForce {
            version,
            servers: server_specs(&entities),
            aliases: settings.aliases.iter().cloned().collect(),
            entities,
        }
    }
}

fn server_specs(entities: &Entities) -> BTreeMap<String, String> {
    entities
        .iter()
        .filter(|((kind, _), _)| *kind == EntityKind::Server)
        .map(|((_, name), spec)| (name.clone(), spec.to_string()))
        .collect()
}

/// Puts `settings` (checked, made from `entities` at `version`) in force.
pub(crate) async fn apply(
    state: &AppState,
    in_force: &mut InForce,
    version: i64,
    entities: Entities,
    settings: &Settings,
) {
    let gateway = state.gateway();
    let servers = server_specs(&entities);
    let aliases: BTreeMap<String, String> = settings.aliases.iter().cloned().collect();
    // Aliases that go or change first, then servers that go or change.
    for (alias, server) in &in_force.aliases {
        if aliases.get(alias) != Some(server) || servers.get(server) != in_force.servers.get(server)
        {
            gateway.remove_alias(alias).await;
        }
    }
    for (name, spec) in &in_force.servers {
        if servers.get(name) != Some(spec) {
            gateway.unregister_server(name).await;
        }
    }
    for server in &settings.servers {
        let name = &server.config.name;
        if in_force.servers.get(name) == servers.get(name) && gateway.server_now(name).is_some() {
            continue;
        }
        match gateway
            .register_server_with_options(server.config.clone(), server.options.clone())
            .await
        {
            Ok(()) => {
                if let Some(upstream) = gateway.server_now(name) {
                    state.forward_announcements(&upstream);
                }
            }
            Err(error) => {
                tracing::error!(server = %name, %error, "registering a server from the store failed")
            }
        }
    }
    for (alias, server) in &aliases {
        if let Err(error) = gateway.add_alias(alias, server).await {
            tracing::error!(%alias, %error, "adding an alias from the store failed");
        }
    }
    gateway.set_permissions(settings.permissions.clone());
    state
        .handler()
        .permissions()
        .replace(settings.permissions.clone());
    state.auth().keys().replace(settings.api_keys.clone());
    *in_force = InForce {
        version,
        entities,
        servers,
        aliases,
    };
    tracing::info!(version, "configuration from the store in force");
}
