//! The checks of `api_keys[]` and `policies`: who may connect, and what they may do.
//!
//! Owns the rules for key entries (a unique name, exactly one of `key` and `key_hash`, no
//! two entries with the same key; only the digest is kept) and for policies (they name
//! only keys, teams and organisations that `api_keys` mentions, and rules name servers,
//! not aliases). A key's value is never quoted in a message.

use crate::core::mcp::permissions::KeyDigest;
use crate::core::mcp::{PermissionLevel, PermissionManager, PermissionPolicy, PermissionRule};
use crate::settings::place::{Place, Problems};
use crate::settings::raw::{Entries, Field, RawApiKey, RawPolicies, RawPolicy};
use crate::settings::ApiKey;

use super::Known;

pub(super) fn convert_api_key(
    raw: RawApiKey,
    place: &Place,
    known: &mut Known,
    p: &mut Problems,
) -> Option<ApiKey> {
    let name_place = place.key("name");
    let name = p.required(&name_place, raw.name);
    let duplicate = name.as_ref().is_some_and(|n| known.keys.contains_key(n));
    if let Some(name) = &name {
        if duplicate {
            p.add(&name_place, format!("duplicate key name `{name}`"));
        } else if name.is_empty()
            || name.len() > 64
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '@' | '-'))
        {
            p.add(&name_place, "must be 1 to 64 characters of [A-Za-z0-9_.@-]");
        }
    }
    let team = group_name(p, &place.key("team"), raw.team);
    let organization = group_name(p, &place.key("organization"), raw.organization);
    known.teams.extend(team.clone());
    known.organizations.extend(organization.clone());

    let digest = match (raw.key, raw.key_hash) {
        (Some(_), Some(_)) => {
            p.add(place, "both `key` and `key_hash` are set; give exactly one");
            None
        }
        (None, None) => {
            p.add(
                place,
                "neither `key` nor `key_hash` is set; give exactly one",
            );
            None
        }
        (Some(key), None) => {
            let key_place = place.key("key");
            p.optional(&key_place, Some(key)).and_then(|key| {
                if key.is_empty() {
                    p.add(&key_place, "empty");
                    None
                } else {
                    Some(KeyDigest::of(&key))
                }
            })
        }
        (None, Some(hash)) => {
            let hash_place = place.key("key_hash");
            // The value is not quoted: it may be a plain key put in the wrong field.
            p.optional(&hash_place, Some(hash)).and_then(|hash| {
                let digest = KeyDigest::from_hex(hash.trim());
                if digest.is_none() {
                    p.add(
                        &hash_place,
                        "expected `sha256:` and 64 hex digits, as `litellm-mcp hash-key` prints",
                    );
                }
                digest
            })
        }
    };
    let name = name.filter(|_| !duplicate)?;
    known.keys.insert(name.clone(), digest);
    Some(ApiKey {
        name,
        digest: digest?,
        team,
        organization,
    })
}

/// A team or organisation name.
fn group_name(p: &mut Problems, place: &Place, field: Field<String>) -> Option<String> {
    let name = p.optional(place, field)?;
    if name.trim().is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
        p.add(place, "must be 1 to 128 printable characters");
        return None;
    }
    Some(name)
}

pub(super) fn convert_policies(
    p: &mut Problems,
    place: &Place,
    field: Field<RawPolicies>,
    known: &Known,
) -> PermissionManager {
    let mut manager = PermissionManager::new();
    let Some(raw) = p.optional(place, field) else {
        return manager;
    };
    let default_level = p
        .optional(&place.key("default_level"), raw.default_level)
        .unwrap_or(PermissionLevel::Execute);
    manager.set_default_level(default_level);

    let sections = [
        ("keys", raw.keys, "api_keys has no key named"),
        ("teams", raw.teams, "no entry of api_keys is in team"),
        (
            "organizations",
            raw.organizations,
            "no entry of api_keys is in organization",
        ),
    ];
    for (section, field, unknown) in sections {
        let section_place = place.key(section);
        let Some(Entries(entries)) = p.optional(&section_place, field) else {
            continue;
        };
        for (name, node) in entries {
            let policy_place = section_place.key(&name);
            let policy = p
                .optional(&policy_place, Some(node))
                .and_then(|raw| convert_policy(p, &policy_place, &name, raw, default_level, known));
            // With an identity provider, teams and organisations also come from claims,
            // so any name may have a policy.
            let exists = match section {
                "keys" => known.keys.contains_key(&name),
                "teams" => known.from_claims || known.teams.contains(&name),
                _ => known.from_claims || known.organizations.contains(&name),
            };
            if !exists {
                p.add(&policy_place, format!("{unknown} `{name}`"));
                continue;
            }
            let Some(policy) = policy else {
                continue;
            };
            match section {
                "keys" => {
                    if let Some(Some(digest)) = known.keys.get(&name) {
                        manager.set_key_digest_policy(*digest, policy);
                    }
                }
                "teams" => manager.set_team_policy(name, policy),
                _ => manager.set_organization_policy(name, policy),
            }
        }
    }
    manager
}

fn convert_policy(
    p: &mut Problems,
    place: &Place,
    name: &str,
    raw: RawPolicy,
    default_level: PermissionLevel,
    known: &Known,
) -> Option<PermissionPolicy> {
    let problems_before = p.count();
    let policy_default = p
        .optional(&place.key("default_level"), raw.default_level)
        .unwrap_or(default_level);
    let rules_place = place.key("rules");
    let mut rules = Vec::new();
    for (i, node) in p
        .optional(&rules_place, raw.rules)
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        let rule_place = rules_place.index(i);
        let Some(raw) = p.optional(&rule_place, Some(node)) else {
            continue;
        };
        let server_place = rule_place.key("server");
        let server = p
            .optional(&server_place, raw.server)
            .unwrap_or_else(|| "*".to_string());
        let tool_place = rule_place.key("tool");
        let tool = p
            .optional(&tool_place, raw.tool)
            .unwrap_or_else(|| "*".to_string());
        let level = p.required(&rule_place.key("level"), raw.level);
        if server.is_empty() {
            p.add(&server_place, "empty (write `*` for every server)");
        } else if !server.contains('*') && !known.servers.contains_key(&server) {
            p.add(
                &server_place,
                if known.aliases.contains(&server) {
                    format!("`{server}` is an alias; rules match server names")
                } else {
                    format!("no server named `{server}` (patterns with `*` are not checked)")
                },
            );
        }
        if tool.is_empty() {
            p.add(&tool_place, "empty (write `*` for every tool)");
        }
        if let Some(level) = level {
            rules.push(PermissionRule::new(server, tool, level));
        }
    }
    (p.count() == problems_before).then(|| PermissionPolicy {
        name: name.to_string(),
        default_level: policy_default,
        rules,
    })
}
