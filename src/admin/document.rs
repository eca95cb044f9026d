//! How the settings file and the store combine, and how a configuration in the store is
//! checked: by the settings file's own checks, on a document made of both.
//!
//! The file seeds, the store rules. The sections `servers`, `aliases`, `api_keys` and
//! `policies` of the settings file are written into an empty store once (a plain `key` as
//! its digest; `${NAME}` references stay references, expanded by each replica from its
//! environment); from then on those sections come from the store and the file's are
//! ignored. Everything else in the file (`listen`, `separator`, the bounds, `oauth`,
//! `store`) stays the file's, read at start.
//!
//! A configuration in the store becomes a settings document (the file's other sections,
//! plus the store's entities in name order) that goes through [`Settings::parse`]: the
//! same checks, the same problems at the same places. Problem paths name list entries by
//! name (`servers.fs.url`, `api_keys.ci.team`) rather than position, since the store has
//! no order.

use serde_json::{json, Map, Value};

use crate::settings::{Problem, Settings, SettingsError};
use crate::store::{Change, Entities, EntityKind};

/// The top-level sections the store rules.
pub const STORE_SECTIONS: [&str; 4] = ["servers", "aliases", "api_keys", "policies"];

/// Why a settings file could not seed the store.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    /// The file is not YAML (the settings checks have said where).
    #[error("the settings file is not valid YAML")]
    NotYaml,
}

/// The settings file's tree (merge keys applied), as JSON.
///
/// # Errors
/// [`SeedError::NotYaml`].
pub fn file_tree(text: &str) -> Result<Value, SeedError> {
    let mut tree: yaml_serde::Value = yaml_serde::from_str(text).map_err(|_| SeedError::NotYaml)?;
    if tree.is_null() {
        tree = yaml_serde::Value::Mapping(yaml_serde::Mapping::new());
    }
    tree.apply_merge().map_err(|_| SeedError::NotYaml)?;
    serde_json::to_value(&tree).map_err(|_| SeedError::NotYaml)
}

/// The file's sections that stay the file's.
pub fn base_of(tree: &Value) -> Value {
    let mut base = tree.as_object().cloned().unwrap_or_default();
    for section in STORE_SECTIONS {
        base.remove(section);
    }
    Value::Object(base)
}

/// The entities the file seeds a store with. `settings` is the file's validated form,
/// which knows the digest of each plain `key`.
pub fn seed_changes(tree: &Value, settings: &Settings) -> Vec<Change> {
    let mut changes = Vec::new();
    let mut put = |kind, name: &str, spec: Value| {
        changes.push(Change::Put {
            kind,
            name: name.to_string(),
            spec,
        });
    };
    for server in tree["servers"].as_array().into_iter().flatten() {
        if let Some(name) = server["name"].as_str() {
            let mut spec = server.clone();
            if let Some(object) = spec.as_object_mut() {
                object.remove("name");
            }
            put(EntityKind::Server, name, spec);
        }
    }
    for (alias, server) in tree["aliases"].as_object().into_iter().flatten() {
        put(EntityKind::Alias, alias, server.clone());
    }
    for key in &settings.api_keys {
        put(
            EntityKind::ApiKey,
            &key.name,
            json!({
                "key_hash": format!("sha256:{}", key.digest.to_hex()),
                "team": key.team,
                "organization": key.organization,
            }),
        );
    }
    let policies = &tree["policies"];
    if let Some(level) = policies.get("default_level") {
        put(EntityKind::Setting, "default_level", level.clone());
    }
    for (section, kind) in [
        ("keys", EntityKind::KeyPolicy),
        ("teams", EntityKind::TeamPolicy),
        ("organizations", EntityKind::OrganizationPolicy),
    ] {
        for (name, policy) in policies[section].as_object().into_iter().flatten() {
            put(kind, name, policy.clone());
        }
    }
    changes
}

/// Applies changes to a set of entities.
pub fn apply_changes(entities: &mut Entities, changes: &[Change]) {
    for change in changes {
        match change {
            Change::Put { kind, name, spec } => {
                entities.insert((*kind, name.clone()), spec.clone());
            }
            Change::Delete { kind, name } => {
                entities.remove(&(*kind, name.clone()));
            }
        }
    }
}

/// The settings document of `entities` over the file's `base`, with the names of the
/// `servers` and `api_keys` entries in their order (for naming problem paths).
pub fn document(base: &Value, entities: &Entities) -> (Value, Vec<String>, Vec<String>) {
    let mut doc = base.as_object().cloned().unwrap_or_default();
    let (mut servers, mut server_names) = (Vec::new(), Vec::new());
    let (mut keys, mut key_names) = (Vec::new(), Vec::new());
    let mut aliases = Map::new();
    let mut policies = Map::new();
    let mut sections: [Map<String, Value>; 3] = Default::default();
    for ((kind, name), spec) in entities {
        match kind {
            EntityKind::Server => {
                servers.push(list_entry(name, spec));
                server_names.push(name.clone());
            }
            EntityKind::Alias => {
                aliases.insert(name.clone(), spec.clone());
            }
            EntityKind::ApiKey => {
                keys.push(list_entry(name, spec));
                key_names.push(name.clone());
            }
            EntityKind::KeyPolicy => {
                sections[0].insert(name.clone(), spec.clone());
            }
            EntityKind::TeamPolicy => {
                sections[1].insert(name.clone(), spec.clone());
            }
            EntityKind::OrganizationPolicy => {
                sections[2].insert(name.clone(), spec.clone());
            }
            EntityKind::Setting => {
                if name == "default_level" {
                    policies.insert("default_level".into(), spec.clone());
                }
            }
        }
    }
    for (section, entries) in ["keys", "teams", "organizations"].into_iter().zip(sections) {
        if !entries.is_empty() {
            policies.insert(section.into(), Value::Object(entries));
        }
    }
    doc.insert("servers".into(), Value::Array(servers));
    doc.insert("aliases".into(), Value::Object(aliases));
    doc.insert("api_keys".into(), Value::Array(keys));
    doc.insert("policies".into(), Value::Object(policies));
    (Value::Object(doc), server_names, key_names)
}

/// A `servers[]` or `api_keys[]` entry: `name` first, then the spec's fields (a null
/// field is left out, as absent).
fn list_entry(name: &str, spec: &Value) -> Value {
    let mut entry = Map::new();
    entry.insert("name".into(), Value::from(name));
    if let Some(object) = spec.as_object() {
        entry.extend(
            object
                .iter()
                .filter(|(k, v)| *k != "name" && !v.is_null())
                .map(|(k, v)| (k.clone(), v.clone())),
        );
    }
    Value::Object(entry)
}

/// The settings of `entities` over `base`, checked as a settings file is, with `${NAME}`
/// taken from `env`.
///
/// # Errors
/// Every problem, its path naming entries by name, without lines (a document made
/// from the store has none).
pub fn check(
    base: &Value,
    entities: &Entities,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Settings, Vec<Problem>> {
    let (doc, servers, keys) = document(base, entities);
    // JSON is YAML: the settings parser reads the document as it reads a file.
    match Settings::parse(&doc.to_string(), env) {
        Ok(settings) => Ok(settings),
        Err(SettingsError::Invalid { problems }) => Err(problems
            .into_iter()
            .map(|p| Problem {
                path: named_path(&p.path, &servers, &keys),
                line: None,
                message: p.message,
            })
            .collect()),
        Err(SettingsError::Read { .. }) => Err(Vec::new()),
    }
}

/// `servers[2].url` → `servers.fs.url` (the same for `api_keys`).
fn named_path(path: &str, servers: &[String], keys: &[String]) -> String {
    for (section, names) in [("servers", servers), ("api_keys", keys)] {
        let Some(rest) = path.strip_prefix(section).and_then(|r| r.strip_prefix('[')) else {
            continue;
        };
        let Some((index, tail)) = rest.split_once(']') else {
            continue;
        };
        if let Some(name) = index.parse::<usize>().ok().and_then(|i| names.get(i)) {
            return format!("{section}.{name}{tail}");
        }
    }
    path.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn the_file_seeds_and_the_document_checks_like_a_file() {
        let text = "listen: 127.0.0.1:0\nservers:\n  - {name: fs, url: http://127.0.0.1:9/mcp}\naliases: {files: fs}\napi_keys:\n  - {name: ci, key: sk-ci, team: t}\npolicies:\n  default_level: read\n  teams: {t: {default_level: execute}}\n";
        let settings = Settings::parse(text, &no_env).unwrap();
        let tree = file_tree(text).unwrap();
        let mut entities = Entities::new();
        apply_changes(&mut entities, &seed_changes(&tree, &settings));
        let stored = serde_json::to_string(&entities.values().collect::<Vec<_>>()).unwrap();
        assert!(
            !stored.contains("sk-ci"),
            "only the digest is kept: {stored}"
        );
        let again = check(&base_of(&tree), &entities, &no_env).unwrap();
        assert_eq!(again.servers.len(), 1);
        assert_eq!(again.aliases, vec![("files".to_string(), "fs".to_string())]);
        assert_eq!(again.api_keys, settings.api_keys);

        // An alias of an unknown server and a bad URL: both reported, by name.
        apply_changes(
            &mut entities,
            &[
                Change::Put {
                    kind: EntityKind::Alias,
                    name: "gone".into(),
                    spec: json!("nowhere"),
                },
                Change::Put {
                    kind: EntityKind::Server,
                    name: "zz".into(),
                    spec: json!({"url": 5}),
                },
            ],
        );
        let problems = check(&base_of(&tree), &entities, &no_env).unwrap_err();
        let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        assert!(paths.contains(&"aliases.gone"), "{problems:?}");
        assert!(paths.contains(&"servers.zz.url"), "{problems:?}");
    }
}
