//! The raw form of a settings file: what serde reads.
//!
//! Every field is a [`Node`], deserialized on its own from the YAML tree, so that a value
//! of the wrong type hides no problem elsewhere, and keys the format does not know are
//! collected with `serde_ignored` instead of stopping at the first. Owns the shape of the
//! file only: no value is checked here (that is [`convert`](mod@super::convert)'s job).

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, DeserializeOwned, MapAccess};
use serde::Deserialize;
use yaml_serde::Value;

use crate::core::mcp::{PermissionLevel, ProtocolPreference, Transport};

use super::place::Place;
use super::ServerNames;

/// A node deserialized on its own from the tree, so that a wrong type in it hides no
/// problem elsewhere; keeps the keys it did not know, relative to itself.
pub(super) enum Node<T> {
    Parsed { value: T, unknown: Vec<Place> },
    Invalid(String),
}

impl<T: DeserializeOwned> Node<T> {
    pub(super) fn from_value(value: Value) -> Self {
        let mut unknown = Vec::new();
        match serde_ignored::deserialize(value, |path| unknown.push(Place::of_ignored(&path))) {
            Ok(value) => Node::Parsed { value, unknown },
            Err(e) => Node::Invalid(e.to_string()),
        }
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Node<T> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Value::deserialize(deserializer).map(Node::from_value)
    }
}

/// A field: absent, or a node.
pub(super) type Field<T> = Option<Node<T>>;

/// A mapping with string keys, in file order.
pub(super) struct Entries<V>(pub(super) Vec<(String, V)>);

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Entries<V> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntriesVisitor<V>(PhantomData<V>);
        impl<'de, V: Deserialize<'de>> de::Visitor<'de> for EntriesVisitor<V> {
            type Value = Entries<V>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries<V>, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry::<String, V>()? {
                    entries.push(entry);
                }
                Ok(Entries(entries))
            }
        }
        deserializer.deserialize_map(EntriesVisitor(PhantomData))
    }
}

/// Name → string, such as `headers` and `env`.
pub(super) type StringMap = Entries<Node<String>>;

#[derive(Deserialize)]
#[serde(expecting = "a mapping of settings")]
pub(super) struct RawSettings {
    pub(super) listen: Field<String>,
    pub(super) allow_unauthenticated: Field<bool>,
    pub(super) separator: Field<String>,
    pub(super) tool_cache_ttl_secs: Field<u64>,
    pub(super) max_body_bytes: Field<u64>,
    pub(super) session_idle_timeout_secs: Field<u64>,
    pub(super) max_sessions_per_key: Field<u64>,
    pub(super) server_names: Field<ServerNames>,
    pub(super) servers: Field<Vec<Node<RawServer>>>,
    pub(super) aliases: Field<StringMap>,
    pub(super) api_keys: Field<Vec<Node<RawApiKey>>>,
    pub(super) policies: Field<RawPolicies>,
    pub(super) oauth: Field<RawOAuth>,
    pub(super) store: Field<RawStore>,
}

#[derive(Deserialize)]
#[serde(expecting = "a server: a mapping with name and url or command")]
pub(super) struct RawServer {
    pub(super) name: Field<String>,
    pub(super) url: Field<String>,
    pub(super) command: Field<String>,
    pub(super) args: Field<Vec<String>>,
    pub(super) env: Field<StringMap>,
    pub(super) transport: Field<Transport>,
    pub(super) timeout_ms: Field<u64>,
    pub(super) enabled: Field<bool>,
    pub(super) headers: Field<StringMap>,
    pub(super) protocol: Field<ProtocolPreference>,
    pub(super) auth: Field<RawAuth>,
    pub(super) token_exchange: Field<RawTokenExchange>,
    pub(super) per_user: Field<RawPerUser>,
}

/// `servers[].per_user`: each caller authorizes the server with their own account.
#[derive(Deserialize)]
#[serde(expecting = "per-user authorization: a mapping (may be empty)")]
pub(super) struct RawPerUser {
    pub(super) redirect_uri: Field<String>,
    pub(super) client_id: Field<String>,
    pub(super) client_secret: Field<String>,
    pub(super) client_metadata_url: Field<String>,
    pub(super) scopes: Field<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(expecting = "token exchange: a mapping with token_url, client_id, client_secret")]
pub(super) struct RawTokenExchange {
    pub(super) issuer: Field<String>,
    pub(super) token_url: Field<String>,
    pub(super) client_id: Field<String>,
    pub(super) client_secret: Field<String>,
    pub(super) resource: Field<String>,
    pub(super) audience: Field<String>,
    pub(super) scopes: Field<Vec<String>>,
}

/// Every key of every kind of credentials; which belong to which `type` is checked by
/// `convert_auth` in `convert::server` (serde's internally tagged enums would hide unknown
/// keys from `serde_ignored`).
#[derive(Deserialize)]
#[serde(expecting = "credentials: a mapping with a type")]
pub(super) struct RawAuth {
    #[serde(rename = "type")]
    pub(super) kind: Field<String>,
    pub(super) token: Field<String>,
    pub(super) key: Field<String>,
    pub(super) header: Field<String>,
    pub(super) username: Field<String>,
    pub(super) password: Field<String>,
    pub(super) client_id: Field<String>,
    pub(super) client_secret: Field<String>,
    pub(super) token_url: Field<String>,
    pub(super) scopes: Field<Vec<String>>,
    pub(super) resource: Field<String>,
}

#[derive(Deserialize)]
#[serde(expecting = "an API key: a mapping with name and key or key_hash")]
pub(super) struct RawApiKey {
    pub(super) name: Field<String>,
    pub(super) key: Field<String>,
    pub(super) key_hash: Field<String>,
    pub(super) team: Field<String>,
    pub(super) organization: Field<String>,
}

#[derive(Deserialize)]
#[serde(expecting = "a mapping of policies")]
pub(super) struct RawPolicies {
    pub(super) default_level: Field<PermissionLevel>,
    pub(super) keys: Field<Entries<Node<RawPolicy>>>,
    pub(super) teams: Field<Entries<Node<RawPolicy>>>,
    pub(super) organizations: Field<Entries<Node<RawPolicy>>>,
}

#[derive(Deserialize)]
#[serde(expecting = "a policy: a mapping with default_level and rules")]
pub(super) struct RawPolicy {
    pub(super) default_level: Field<PermissionLevel>,
    pub(super) rules: Field<Vec<Node<RawRule>>>,
}

#[derive(Deserialize)]
#[serde(expecting = "a rule: a mapping with server, tool and level")]
pub(super) struct RawRule {
    pub(super) server: Field<String>,
    pub(super) tool: Field<String>,
    pub(super) level: Field<PermissionLevel>,
}

#[derive(Deserialize)]
#[serde(expecting = "the resource-server settings: a mapping with providers")]
pub(super) struct RawOAuth {
    pub(super) public_url: Field<String>,
    pub(super) scopes: Field<Entries<Node<PermissionLevel>>>,
    pub(super) providers: Field<Vec<Node<RawProvider>>>,
    pub(super) registration: Field<RawRegistration>,
}

#[derive(Deserialize)]
#[serde(expecting = "an identity provider: a mapping with issuer")]
pub(super) struct RawProvider {
    pub(super) issuer: Field<String>,
    pub(super) jwks_url: Field<String>,
    pub(super) audiences: Field<Vec<String>>,
    pub(super) algorithms: Field<Vec<String>>,
    pub(super) leeway_secs: Field<u64>,
    pub(super) claims: Field<RawClaims>,
    pub(super) introspection: Field<RawIntrospection>,
    pub(super) jwks_refresh_secs: Field<u64>,
    pub(super) jwks_min_refetch_secs: Field<u64>,
    pub(super) timeout_ms: Field<u64>,
}

#[derive(Deserialize)]
#[serde(expecting = "claim names: a mapping with subject, team, organization")]
pub(super) struct RawClaims {
    pub(super) subject: Field<String>,
    pub(super) team: Field<String>,
    pub(super) organization: Field<String>,
}

#[derive(Deserialize)]
#[serde(expecting = "an introspection endpoint: a mapping with url, client_id, client_secret")]
pub(super) struct RawIntrospection {
    pub(super) url: Field<String>,
    pub(super) client_id: Field<String>,
    pub(super) client_secret: Field<String>,
    pub(super) cache_secs: Field<u64>,
}

#[derive(Deserialize)]
#[serde(expecting = "a client to hand out: a mapping with client_id")]
pub(super) struct RawRegistration {
    pub(super) client_id: Field<String>,
    pub(super) client_secret: Field<String>,
}

#[derive(Deserialize)]
#[serde(expecting = "the store: a mapping with database_url or sqlite_file")]
pub(super) struct RawStore {
    pub(super) database_url: Field<String>,
    pub(super) sqlite_file: Field<String>,
    pub(super) seal_keys: Field<Vec<String>>,
    pub(super) replica: Field<String>,
    pub(super) audit_retention_days: Field<u64>,
}
