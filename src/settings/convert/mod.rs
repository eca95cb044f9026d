//! Checking the raw settings and converting them into runtime values.
//!
//! Owns every check that needs no connection, and the defaults of the top-level keys;
//! a server's checks live in [`server`], those of API keys and policies in [`access`].
//! Every problem is added to [`Problems`] with its place and checking goes on, so that
//! one run reports them all; a value with a problem is left out of the result, which
//! [`Settings::parse`] then discards. A message never quotes a secret (nor a URL, which
//! may carry one).

mod access;
mod oauth;
mod server;
mod store;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

use crate::core::mcp::config::validate_server_name;
use crate::core::mcp::gateway::DEFAULT_SEPARATOR;
use crate::core::mcp::permissions::KeyDigest;
use crate::core::mcp::{GatewayOptions, McpError, ServerOptions};

use self::access::{convert_api_key, convert_policies};
use self::server::{convert_server, ServerContext};
use super::place::{Place, Problems};
use super::raw::{Entries, Field, RawSettings, StringMap};
use super::{
    ServerNames, Settings, DEFAULT_LISTEN, DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_SESSIONS_PER_KEY,
    DEFAULT_SESSION_IDLE_TIMEOUT_SECS, DEFAULT_TOOL_CACHE_TTL_SECS,
};

/// The names that later sections refer to, including those of entries that have other
/// problems (so that one problem is not reported again as a dangling reference).
#[derive(Default)]
struct Known {
    servers: HashMap<String, usize>,
    aliases: HashSet<String>,
    keys: HashMap<String, Option<KeyDigest>>,
    teams: HashSet<String>,
    organizations: HashSet<String>,
    /// Whether identities also come from an identity provider's claims.
    from_claims: bool,
    /// Where servers ask for token exchange (which needs `oauth`), with the issuer
    /// they name.
    exchanges: Vec<(Place, Option<String>)>,
}

pub(super) fn convert(raw: RawSettings, p: &mut Problems) -> Settings {
    let root = Place::default();
    let listen_place = root.key("listen");
    let listen = p
        .optional(&listen_place, raw.listen)
        .and_then(|text| match text.parse::<SocketAddr>() {
            Ok(address) => Some(address),
            Err(_) => {
                p.add(
                    &listen_place,
                    format!(
                        "`{text}` is not an IP address and port like 127.0.0.1:4000 or [::1]:4000"
                    ),
                );
                None
            }
        })
        .unwrap_or(DEFAULT_LISTEN);
    let allow_unauthenticated = p
        .optional(
            &root.key("allow_unauthenticated"),
            raw.allow_unauthenticated,
        )
        .unwrap_or(false);

    let separator_place = root.key("separator");
    let separator = p
        .optional(&separator_place, raw.separator)
        .unwrap_or_else(|| DEFAULT_SEPARATOR.to_string());
    // Names are checked against the separator only when it is itself valid.
    let checked_separator = if separator_is_valid(&separator) {
        Some(separator.as_str())
    } else {
        p.add(
            &separator_place,
            format!("`{separator}` must be 1 to 4 characters of [A-Za-z0-9_.-]"),
        );
        None
    };

    let tool_cache_ttl = p
        .optional(&root.key("tool_cache_ttl_secs"), raw.tool_cache_ttl_secs)
        .unwrap_or(DEFAULT_TOOL_CACHE_TTL_SECS);
    let max_body_bytes = positive(
        p,
        &root.key("max_body_bytes"),
        raw.max_body_bytes,
        DEFAULT_MAX_BODY_BYTES,
    );
    let session_idle_timeout = positive(
        p,
        &root.key("session_idle_timeout_secs"),
        raw.session_idle_timeout_secs,
        DEFAULT_SESSION_IDLE_TIMEOUT_SECS,
    );
    let max_sessions_per_key = positive(
        p,
        &root.key("max_sessions_per_key"),
        raw.max_sessions_per_key,
        DEFAULT_MAX_SESSIONS_PER_KEY,
    );

    let server_names = p
        .optional(&root.key("server_names"), raw.server_names)
        .unwrap_or_else(|| ServerNames::default_for(listen));

    let gateway = GatewayOptions {
        server: ServerOptions {
            tool_cache_ttl: Duration::from_secs(tool_cache_ttl),
            ..ServerOptions::default()
        },
        separator: separator.clone(),
        ..GatewayOptions::default()
    };

    let mut known = Known::default();
    let servers_place = root.key("servers");
    let mut servers = Vec::new();
    for (i, node) in p
        .optional(&servers_place, raw.servers)
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        let place = servers_place.index(i);
        let Some(raw) = p.optional(&place, Some(node)) else {
            continue;
        };
        let context = ServerContext {
            place: &place,
            index: i,
            separator: checked_separator,
            options: &gateway.server,
        };
        if let Some(server) = convert_server(raw, &context, &mut known, p) {
            servers.push(server);
        }
    }

    let aliases = convert_aliases(
        p,
        &root.key("aliases"),
        raw.aliases,
        &mut known,
        checked_separator,
    );

    let keys_place = root.key("api_keys");
    let mut api_keys = Vec::new();
    let mut digests: HashMap<KeyDigest, usize> = HashMap::new();
    for (i, node) in p
        .optional(&keys_place, raw.api_keys)
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        let place = keys_place.index(i);
        let Some(raw) = p.optional(&place, Some(node)) else {
            continue;
        };
        if let Some(key) = convert_api_key(raw, &place, &mut known, p) {
            match digests.get(&key.digest) {
                Some(first) => p.add(
                    &place,
                    format!("the same key as api_keys[{first}]; each key must be distinct"),
                ),
                None => {
                    digests.insert(key.digest, i);
                    api_keys.push(key);
                }
            }
        }
    }

    let oauth = self::oauth::convert_oauth(p, &root.key("oauth"), raw.oauth);
    known.from_claims = oauth.is_some();
    match &oauth {
        None => {
            for (place, _) in &known.exchanges {
                p.add(
                    place,
                    "token exchange needs `oauth`: only callers signed in with an identity \
                     provider have a token to exchange",
                );
            }
        }
        Some(oauth) => {
            for (place, issuer) in &known.exchanges {
                let issuers: Vec<&str> =
                    oauth.providers.iter().map(|p| p.issuer.as_str()).collect();
                match issuer {
                    Some(issuer) if !issuers.contains(&issuer.as_str()) => p.add(
                        &place.key("issuer"),
                        "not the issuer of a provider in oauth.providers",
                    ),
                    None if issuers.len() > 1 => p.add(
                        &place.key("issuer"),
                        "required with several providers: whose tokens this server exchanges",
                    ),
                    _ => {}
                }
            }
            if let [only] = oauth.providers.as_slice() {
                for exchange in servers.iter_mut().filter_map(|s| s.token_exchange.as_mut()) {
                    exchange.issuer.get_or_insert_with(|| only.issuer.clone());
                }
            }
            if oauth.public_url.is_none() && !listen.ip().is_loopback() {
                p.add(
                    &root.key("oauth").key("public_url"),
                    "required when listen is not a loopback address: clients must be able to \
                     reach the resource identifiers",
                );
            }
        }
    }

    if !listen.ip().is_loopback()
        && api_keys.is_empty()
        && oauth.is_none()
        && !allow_unauthenticated
    {
        p.add(
            &listen_place,
            format!(
                "{listen} is not a loopback address and neither valid api_keys nor oauth are \
                 configured, so anyone who can reach it could use every tool; add api_keys or \
                 oauth, listen on 127.0.0.1, or set allow_unauthenticated: true"
            ),
        );
    }

    let store = self::store::convert_store(p, &root.key("store"), raw.store);
    // With a store, a team or organisation exists by its policy (the admin API makes
    // them before any key names them, and revoking a team's last key keeps its policy).
    known.from_claims |= store.is_some();
    let permissions = convert_policies(p, &root.key("policies"), raw.policies, &known);

    Settings {
        listen,
        allow_unauthenticated,
        gateway,
        servers,
        aliases,
        api_keys,
        permissions,
        oauth,
        max_body_bytes: usize::try_from(max_body_bytes).unwrap_or(usize::MAX),
        session_idle_timeout: Duration::from_secs(session_idle_timeout),
        max_sessions_per_key: usize::try_from(max_sessions_per_key).unwrap_or(usize::MAX),
        server_names,
        store,
    }
}

/// A number that must be greater than 0.
fn positive(p: &mut Problems, place: &Place, field: Field<u64>, default: u64) -> u64 {
    match p.optional(place, field) {
        Some(0) => {
            p.add(place, "must be greater than 0");
            default
        }
        Some(n) => n,
        None => default,
    }
}

/// The rule of [`McpGateway::with_options`](crate::core::mcp::McpGateway::with_options): 1 to 4 characters of `[A-Za-z0-9_.-]`.
pub(super) fn separator_is_valid(separator: &str) -> bool {
    (1..=4).contains(&separator.len())
        && separator
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// The gateway's rule for server names and aliases: a name may neither contain the
/// separator nor end with a proper prefix of it, so that `<server><separator><tool>`
/// splits back exactly.
fn clashes_with_separator(name: &str, separator: &str) -> bool {
    let prefix = separator
        .get(..separator.len().saturating_sub(1))
        .unwrap_or_default();
    format!("{name}{prefix}").contains(separator)
}

/// Checks a server or alias name; reports at `place`.
fn check_name(p: &mut Problems, place: &Place, name: &str, separator: Option<&str>) {
    if let Err(e) = validate_server_name(name) {
        p.add(place, config_message(e));
    } else if let Some(separator) = separator.filter(|s| clashes_with_separator(name, s)) {
        p.add(
            place,
            format!("`{name}` contains (or ends with part of) the separator `{separator}`"),
        );
    }
}

/// The message of an [`McpError::InvalidConfig`], without its prefix.
fn config_message(error: McpError) -> String {
    match error {
        McpError::InvalidConfig { message } => message,
        other => other.to_string(),
    }
}

fn convert_aliases(
    p: &mut Problems,
    place: &Place,
    field: Field<StringMap>,
    known: &mut Known,
    separator: Option<&str>,
) -> Vec<(String, String)> {
    let entries = p
        .optional(place, field)
        .map(|Entries(entries)| entries)
        .unwrap_or_default();
    // Every alias first, so that "an alias of an alias" is recognised in any order.
    known
        .aliases
        .extend(entries.iter().map(|(alias, _)| alias.clone()));
    let mut aliases = Vec::new();
    for (alias, node) in entries {
        let alias_place = place.key(&alias);
        let Some(server) = p.optional(&alias_place, Some(node)) else {
            continue;
        };
        let problems_before = p.count();
        check_name(p, &alias_place, &alias, separator);
        if known.servers.contains_key(&alias) {
            p.add(
                &alias_place,
                format!("`{alias}` is already the name of a server"),
            );
        } else if !known.servers.contains_key(&server) {
            p.add(
                &alias_place,
                if known.aliases.contains(&server) {
                    format!("`{server}` is an alias; an alias names a server")
                } else {
                    format!("no server named `{server}`")
                },
            );
        }
        if p.count() == problems_before {
            aliases.push((alias, server));
        }
    }
    aliases
}
