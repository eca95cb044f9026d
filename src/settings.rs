//! The gateway service's settings file: a YAML document, read once at start-up, turned
//! into validated runtime values ([`Settings`]).
//!
//! Owns the file format, `${NAME}` substitution, and every check that needs no
//! connection. It contacts no server and binds no socket: [`Settings::build_gateway`]
//! registers the servers (each is contacted on first use), and the service binds
//! [`Settings::listen`].
//!
//! Invariants: a [`Settings`] exists only when the whole file was valid; a plain API key
//! never outlives parsing (only its SHA-256 digest is kept); no secret reaches `Debug`
//! output or an error message.
//!
//! # How a file is read
//! 1. The text is parsed as YAML. A syntax error stops here, with its line. Anchors,
//!    aliases and merge keys (`<<: *defaults`) work as in YAML.
//! 2. `${NAME}` anywhere inside a string value is replaced by the environment variable
//!    `NAME`; `$${` stands for a literal `${`. An unset variable is an error. Only string
//!    values are expanded (not keys, and a substituted value stays a string, so numbers
//!    and booleans cannot come from the environment). In flow collections (`{…}`,
//!    `[…]`) quote the value: `{TOKEN: "${TOKEN}"}`, because `{` and `}` end a plain
//!    scalar there.
//! 3. The tree is deserialized into raw structs, every node on its own, so a value of the
//!    wrong type hides nothing else; keys the format does not know are collected with
//!    `serde_ignored` (not `deny_unknown_fields`, which stops at the first).
//! 4. The raw values are checked and converted into the library's types.
//! 5. If anything was wrong, [`SettingsError::Invalid`] lists every problem, each with
//!    its path in the file (`servers[2].auth.token_url`) and its line, in file order.
//!
//! # The format
//!
//! A complete example (every key; all but `servers[].name` and `url`/`command`
//! optional):
//!
//! ```yaml
//! listen: 127.0.0.1:4000            # IP address and port; default 127.0.0.1:4000
//! allow_unauthenticated: false      # see "Authentication" below; default false
//! separator: "__"                   # between server and tool in tool names; default "__"
//! tool_cache_ttl_secs: 300          # tool lists cached this long; default 300
//! max_body_bytes: 4194304           # largest request body the service takes; default 4 MiB
//! session_idle_timeout_secs: 1800   # idle client sessions end after this; default 1800
//! max_sessions_per_key: 100         # open client sessions per API key; default 100
//!
//! servers:
//!   - name: filesystem
//!     url: https://mcp.example.com/fs
//!     transport: http
//!     timeout_ms: 30000
//!     enabled: true
//!     headers: {X-Team: blue}
//!     protocol: auto
//!     auth:
//!       type: bearer
//!       token: ${FS_TOKEN}
//!   - name: search
//!     url: wss://search.example.com/mcp
//!     auth: {type: api_key, key: "${SEARCH_KEY}", header: X-Search-Key}
//!   - name: legacy
//!     url: https://legacy.example.com/sse
//!     transport: sse
//!     protocol: sessions
//!     auth: {type: basic, username: gateway, password: "${LEGACY_PASSWORD}"}
//!   - name: database
//!     url: https://db.example.com/mcp
//!     enabled: false
//!     auth:
//!       type: oauth2
//!       client_id: gateway
//!       client_secret: ${DB_CLIENT_SECRET}
//!       token_url: https://auth.example.com/oauth/token
//!       scopes: [tools.read, tools.call]
//!   - name: local
//!     command: node
//!     args: [server.js, --stdio]
//!     env:
//!       GITHUB_TOKEN: ${GITHUB_TOKEN}
//!
//! aliases:
//!   fs: filesystem
//!
//! api_keys:
//!   - name: ci-bot
//!     key: ${CI_BOT_KEY}
//!     team: platform
//!     organization: acme
//!   - name: alice
//!     key_hash: sha256:f5b5f95affb8967c58544537a8f776fe51b4a00ca4917962547f7271bdd8b865
//!     team: analysts
//!     organization: acme
//!
//! policies:
//!   default_level: read
//!   keys:
//!     ci-bot:
//!       default_level: deny
//!       rules:
//!         - {server: filesystem, tool: read_file, level: execute}
//!   teams:
//!     platform:
//!       default_level: execute
//!       rules:
//!         - {server: "*", tool: "delete_*", level: deny}
//!   organizations:
//!     acme: {default_level: execute}
//! ```
//!
//! ## Top level
//!
//! | key | type, default | meaning |
//! |---|---|---|
//! | `listen` | `IP:port` (`[::1]:4000` for IPv6), `127.0.0.1:4000` | where the service listens |
//! | `allow_unauthenticated` | bool, `false` | see "Authentication" |
//! | `separator` | string, `"__"` | joins server and tool in aggregated tool names: 1 to 4 characters of `[A-Za-z0-9_.-]` |
//! | `tool_cache_ttl_secs` | integer, `300` | how long a server's tool list is cached when it gives no TTL (0: not cached) |
//! | `max_body_bytes` | integer > 0, `4194304` | the largest request body the service accepts |
//! | `session_idle_timeout_secs` | integer > 0, `1800` | a client session idle this long is closed |
//! | `max_sessions_per_key` | integer > 0, `100` | open client sessions per API key |
//! | `servers` | list, empty | the upstream MCP servers |
//! | `aliases` | mapping alias → server, empty | other names for servers |
//! | `api_keys` | list, empty | the keys clients present |
//! | `policies` | mapping | who may see and call which tool |
//!
//! ## `servers[]`
//!
//! A server has either `url` (a remote server) or `command` (a local process speaking
//! stdio), never both.
//!
//! | key | type, default | meaning |
//! |---|---|---|
//! | `name` | string, required | 1 to 64 characters of `[A-Za-z0-9_-]`; unique; must not contain the separator nor end with part of it |
//! | `url` | URL | `http(s)://` for `http` and `sse`; `ws(s)://` or `http(s)://` for `websocket` |
//! | `command` | string | the program of a stdio server (looked up in `PATH`) |
//! | `args` | list of strings, empty | its arguments (stdio only) |
//! | `env` | mapping name → string, empty | environment variables of the process (stdio only); names `[A-Za-z_][A-Za-z0-9_]*`. The process does not inherit the gateway's environment |
//! | `transport` | `http` (= `streamable_http`), `sse`, `websocket`, `stdio` | inferred when absent: `command` → `stdio`; `ws(s)://` → `websocket`; `http(s)://` → `http` |
//! | `timeout_ms` | integer > 0, `30000` | bounds every request to the server |
//! | `enabled` | bool, `true` | a disabled server is registered but never contacted |
//! | `headers` | mapping name → string, empty | static HTTP headers on every request (not for stdio) |
//! | `protocol` | `auto`, `sessions`, `stateless`; `auto` | the protocol era: detect it, or only `initialize` and sessions (2024-11-05 … 2025-11-25), or only the stateless revision |
//! | `auth` | mapping tagged by `type`, none | the gateway's credentials for the server (not for stdio: use `env`) |
//!
//! `auth` is one of:
//!
//! | `type` | keys |
//! |---|---|
//! | `bearer` | `token` |
//! | `api_key` | `key`; `header` (default `X-API-Key`) |
//! | `basic` | `username`, `password` |
//! | `oauth2` | `client_id`, `client_secret`, `token_url` (`http(s)://`); `scopes` (list, default none) — client credentials |
//!
//! Secrets (`token`, `key`, `password`, `client_secret`, `env` values) normally come from
//! the environment with `${NAME}`; none may be empty. Put no secret in a URL or `args`.
//!
//! ## `aliases`
//!
//! `alias: server`. An alias is a valid server name, is not the name of a server, and names
//! a server (not another alias).
//!
//! ## `api_keys[]`
//!
//! | key | meaning |
//! |---|---|
//! | `name` | required; 1 to 64 characters of `[A-Za-z0-9_.@-]`; unique; used by `policies.keys` and in logs |
//! | `key` | the key itself, usually `${NAME}` … |
//! | `key_hash` | … or its SHA-256 digest, `sha256:` and 64 hex digits (`litellm-mcp hash-key` prints it); exactly one of the two |
//! | `team` | optional; the key's team |
//! | `organization` | optional; the key's organisation |
//!
//! Two entries may not have the same key. Only the digest is kept.
//!
//! ## `policies`
//!
//! | key | meaning |
//! |---|---|
//! | `default_level` | `deny`, `read`, `execute` or `admin`; default `execute`: the level of callers no policy covers |
//! | `keys` | key name → policy |
//! | `teams` | team → policy |
//! | `organizations` | organisation → policy |
//!
//! A policy is `{default_level, rules}`: `default_level` (default: `policies.default_level`)
//! applies when no rule matches; each rule is `{server, tool, level}`, where `server` and
//! `tool` are patterns in which `*` matches any run of characters (both default to `*`)
//! and `level` is required. A `server` pattern without `*` must be the name of a server
//! (rules match server names, not aliases). Policies may name only keys, teams and
//! organisations that `api_keys` mentions; a team or organisation without a policy is
//! fine. How policies combine is described in
//! [`crate::core::mcp::permissions`]: a key never gets more than its team, a team never
//! more than its organisation.
//!
//! ## Authentication
//!
//! With no `api_keys`, every client is unauthenticated. Then a `listen` address that is
//! not loopback is refused unless `allow_unauthenticated: true` says that this is meant.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::marker::PhantomData;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::{self, DeserializeOwned, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess};
use serde::Deserialize;
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};
use yaml_serde::Value;

use crate::core::mcp::config::{validate_server_name, DEFAULT_API_KEY_HEADER, DEFAULT_TIMEOUT_MS};
use crate::core::mcp::gateway::DEFAULT_SEPARATOR;
use crate::core::mcp::permissions::KeyDigest;
use crate::core::mcp::{
    AuthConfig, CommandLine, GatewayOptions, McpError, McpGateway, McpResult, McpServerConfig,
    PermissionLevel, PermissionManager, PermissionPolicy, PermissionRule, ProtocolPreference,
    ServerOptions, Transport,
};

/// Where the service listens when the file does not say.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 4000);
/// How long tool lists are cached when the file does not say, in seconds.
pub const DEFAULT_TOOL_CACHE_TTL_SECS: u64 = 300;
/// The largest request body when the file does not say: 4 MiB.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 4 * 1024 * 1024;
/// How long an idle client session lives when the file does not say, in seconds.
pub const DEFAULT_SESSION_IDLE_TIMEOUT_SECS: u64 = 1800;
/// Open client sessions per API key when the file does not say.
pub const DEFAULT_MAX_SESSIONS_PER_KEY: u64 = 100;

/// Lines are looked up for at most this many problems (each look-up reads the file again).
const MAX_LOCATED_PROBLEMS: usize = 200;

// ---------------------------------------------------------------------------------------
// Output types
// ---------------------------------------------------------------------------------------

/// The validated settings of the gateway service.
#[derive(Debug)]
pub struct Settings {
    /// Where the service listens.
    pub listen: SocketAddr,
    /// Whether a non-loopback `listen` without API keys is meant.
    pub allow_unauthenticated: bool,
    /// The separator and the default server options (tool cache TTL).
    pub gateway: GatewayOptions,
    /// The upstream servers, in file order.
    pub servers: Vec<ServerSettings>,
    /// `(alias, server)` pairs, in file order.
    pub aliases: Vec<(String, String)>,
    /// The keys clients present, as digests, in file order.
    pub api_keys: Vec<ApiKey>,
    /// Policies of keys (by digest), teams and organisations, and the default level.
    pub permissions: PermissionManager,
    /// The largest request body the service accepts.
    pub max_body_bytes: usize,
    /// A client session idle this long is closed.
    pub session_idle_timeout: Duration,
    /// Open client sessions per API key.
    pub max_sessions_per_key: usize,
}

/// One upstream server: its configuration and its options.
#[derive(Clone)]
pub struct ServerSettings {
    /// The configuration the gateway registers. For a stdio server `url` is the command
    /// line and `static_headers` are the environment variables of the process.
    pub config: McpServerConfig,
    /// The gateway's server options with this server's protocol preference.
    pub options: ServerOptions,
}

impl fmt::Debug for ServerSettings {
    /// Prints no secret: credentials are redacted by [`AuthConfig`]'s `Debug`, headers and
    /// environment variables are shown by name only, and a URL's password and query
    /// values are masked.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let config = &self.config;
        let mut names: Vec<&str> = config.static_headers.keys().map(String::as_str).collect();
        names.sort_unstable();
        let url = match config.transport {
            Transport::Stdio => config.url.clone(),
            _ => masked_url(&config.url),
        };
        f.debug_struct("ServerSettings")
            .field("name", &config.name)
            .field("transport", &config.transport)
            .field("url", &url)
            .field("enabled", &config.enabled)
            .field("timeout_ms", &config.timeout_ms)
            .field("auth", &config.auth)
            .field(
                if config.transport == Transport::Stdio {
                    "env"
                } else {
                    "headers"
                },
                &names,
            )
            .field("options", &self.options)
            .finish()
    }
}

/// An API key clients present, known by its digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// The key's name, for `policies.keys` and logs.
    pub name: String,
    /// The SHA-256 digest of the key; the key itself is not kept.
    pub digest: KeyDigest,
    /// The key's team.
    pub team: Option<String>,
    /// The key's organisation.
    pub organization: Option<String>,
}

/// Why a settings file was refused.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", file.display())]
    Read {
        /// The file.
        file: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file was read but is not valid; `Display` prints one problem per line.
    #[error("{}", lines(problems))]
    Invalid {
        /// Every problem found, in file order.
        problems: Vec<Problem>,
    },
}

fn lines(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(Problem::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// One problem in a settings file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where: a path like `servers[2].auth.token_url`; empty for the document itself.
    pub path: String,
    /// The line (1-based) of that place, or of the nearest enclosing one that exists.
    pub line: Option<usize>,
    /// What is wrong. Never contains a secret.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.path.is_empty(), self.line) {
            (false, Some(line)) => write!(f, "{} (line {line}): {}", self.path, self.message),
            (false, None) => write!(f, "{}: {}", self.path, self.message),
            (true, Some(line)) => write!(f, "line {line}: {}", self.message),
            (true, None) => f.write_str(&self.message),
        }
    }
}

impl Settings {
    /// Reads and validates a settings file, taking `${NAME}` from the process
    /// environment.
    ///
    /// # Errors
    /// [`SettingsError::Read`] when the file cannot be read (or is not UTF-8);
    /// [`SettingsError::Invalid`] with every problem otherwise.
    pub fn load(path: impl AsRef<Path>) -> Result<Settings, SettingsError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| SettingsError::Read {
            file: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, &|name| std::env::var(name).ok())
    }

    /// Validates the text of a settings file, taking `${NAME}` from `env`.
    ///
    /// # Errors
    /// [`SettingsError::Invalid`] with every problem found.
    pub fn parse(
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Settings, SettingsError> {
        let mut tree: Value = match yaml_serde::from_str(text) {
            Ok(tree) => tree,
            Err(e) => {
                let line = e.location().map(|l| l.line());
                let mut message = format!("invalid YAML: {e}");
                let text_of_line = line
                    .and_then(|n| n.checked_sub(1))
                    .and_then(|n| text.lines().nth(n));
                if message.contains("flow") && text_of_line.is_some_and(|l| l.contains("${")) {
                    message.push_str(" (inside `{…}` or `[…]`, quote a value with `${…}` in it)");
                }
                return Err(SettingsError::Invalid {
                    problems: vec![Problem {
                        path: String::new(),
                        line,
                        message,
                    }],
                });
            }
        };
        if tree.is_null() {
            tree = Value::Mapping(yaml_serde::Mapping::new());
        }
        if let Err(e) = tree.apply_merge() {
            return Err(SettingsError::Invalid {
                problems: vec![Problem {
                    path: String::new(),
                    line: None,
                    message: format!("invalid merge key (`<<`): {e}"),
                }],
            });
        }
        let mut problems = Problems::default();
        expand_env(&mut tree, &Place::default(), env, &mut problems);
        let settings = problems
            .required(
                &Place::default(),
                Some(Node::<RawSettings>::from_value(tree)),
            )
            .map(|raw| convert(raw, &mut problems));
        match settings {
            Some(settings) if problems.count() == 0 => Ok(settings),
            _ => Err(SettingsError::Invalid {
                problems: problems.located(text),
            }),
        }
    }

    /// A gateway with these options, servers, aliases and permissions. No server is
    /// contacted.
    ///
    /// # Errors
    /// [`McpError::InvalidConfig`] if the gateway refuses a value (validation here makes
    /// that a bug).
    pub async fn build_gateway(&self) -> McpResult<McpGateway> {
        let gateway = McpGateway::with_options(self.gateway.clone())?;
        for server in &self.servers {
            gateway
                .register_server_with_options(server.config.clone(), server.options.clone())
                .await?;
        }
        for (alias, server) in &self.aliases {
            gateway.add_alias(alias, server).await?;
        }
        gateway.set_permissions(self.permissions.clone());
        Ok(gateway)
    }

    /// The configured key a client presented, if any. The presented key's digest is
    /// compared with every configured digest in constant time; the time taken does not
    /// depend on which key (if any) matched.
    pub fn find_key(&self, presented: &str) -> Option<&ApiKey> {
        let presented = KeyDigest::of(presented).to_hex();
        let mut found = Choice::from(0);
        let mut index = 0u64;
        for (i, key) in (0u64..).zip(&self.api_keys) {
            let equal = key.digest.to_hex().as_bytes().ct_eq(presented.as_bytes());
            index.conditional_assign(&i, equal);
            found |= equal;
        }
        if bool::from(found) {
            self.api_keys.get(usize::try_from(index).ok()?)
        } else {
            None
        }
    }
}

// ---------------------------------------------------------------------------------------
// Places in the file, and the problems found there
// ---------------------------------------------------------------------------------------

/// A path into the document: `servers[2].auth.token_url`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Place(Vec<Segment>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Key(String),
    Index(usize),
}

impl Place {
    fn key(&self, key: &str) -> Place {
        self.join(&Place(vec![Segment::Key(key.to_string())]))
    }

    fn index(&self, index: usize) -> Place {
        self.join(&Place(vec![Segment::Index(index)]))
    }

    fn join(&self, relative: &Place) -> Place {
        Place(self.0.iter().chain(&relative.0).cloned().collect())
    }

    /// The place `serde_ignored` reports, relative to the node it deserialized.
    fn of_ignored(path: &serde_ignored::Path<'_>) -> Place {
        use serde_ignored::Path as P;
        match path {
            P::Root => Place::default(),
            P::Seq { parent, index } => Place::of_ignored(parent).index(*index),
            P::Map { parent, key } => Place::of_ignored(parent).key(key),
            P::Some { parent } | P::NewtypeStruct { parent } | P::NewtypeVariant { parent } => {
                Place::of_ignored(parent)
            }
        }
    }
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Index(index) => write!(f, "[{index}]")?,
                Segment::Key(key) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    let plain = !key.is_empty()
                        && !key.chars().any(|c| {
                            matches!(c, '.' | '[' | ']' | '"')
                                || c.is_whitespace()
                                || c.is_control()
                        });
                    if plain {
                        f.write_str(key)?;
                    } else {
                        write!(f, "{key:?}")?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// The problems found so far, with their places.
#[derive(Default)]
struct Problems {
    found: Vec<(Place, String)>,
    /// Strings whose `${NAME}` could not be expanded: already reported, so what the
    /// unexpanded text would cause there is not.
    unexpanded: Vec<Place>,
}

impl Problems {
    fn add(&mut self, place: &Place, message: impl Into<String>) {
        if !self.unexpanded.contains(place) {
            self.found.push((place.clone(), message.into()));
        }
    }

    fn count(&self) -> usize {
        self.found.len()
    }

    /// The value of a field that may be absent; reports its type error or unknown keys.
    fn optional<T>(&mut self, place: &Place, field: Option<Node<T>>) -> Option<T> {
        match field? {
            Node::Parsed { value, unknown } => {
                for relative in unknown {
                    self.add(&place.join(&relative), "unknown key");
                }
                Some(value)
            }
            Node::Invalid(message) => {
                self.add(place, message);
                None
            }
        }
    }

    /// The value of a field that must be present.
    fn required<T>(&mut self, place: &Place, field: Option<Node<T>>) -> Option<T> {
        if field.is_none() {
            self.add(place, "required, but missing");
        }
        self.optional(place, field)
    }

    /// The problems with their lines, in file order.
    fn located(self, text: &str) -> Vec<Problem> {
        let mut problems: Vec<Problem> = self
            .found
            .into_iter()
            .enumerate()
            .map(|(i, (place, message))| Problem {
                line: (i < MAX_LOCATED_PROBLEMS)
                    .then(|| locate(text, &place))
                    .flatten(),
                path: place.to_string(),
                message,
            })
            .collect();
        problems.sort_by_key(|p| p.line.unwrap_or(usize::MAX));
        problems
    }
}

/// The line of `place` in `text`, or of the nearest enclosing node that exists.
///
/// serde gives positions only in errors, so this walks the document with a visitor that
/// fails on reaching the place (or on finding that the next step does not exist), and
/// reads the line of that error.
fn locate(text: &str, place: &Place) -> Option<usize> {
    LocateSeed(&place.0)
        .deserialize(yaml_serde::Deserializer::from_str(text))
        .err()
        .and_then(|e| e.location())
        .map(|l| l.line())
}

struct LocateSeed<'a>(&'a [Segment]);

impl<'de> DeserializeSeed<'de> for LocateSeed<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> de::Visitor<'de> for LocateSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a node on the path")
    }

    // Scalars: the defaults fail, which locates the scalar.

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Some((Segment::Key(wanted), rest)) = self.0.split_first() else {
            return Err(de::Error::custom("here"));
        };
        let last = rest.is_empty();
        while let Some(found) = map.next_key_seed(KeySeed { wanted, last })? {
            if found {
                return map.next_value_seed(LocateSeed(rest));
            }
            map.next_value::<IgnoredAny>()?;
        }
        Err(de::Error::custom("not here"))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Some((Segment::Index(wanted), rest)) = self.0.split_first() else {
            return Err(de::Error::custom("here"));
        };
        for _ in 0..*wanted {
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return Err(de::Error::custom("not here"));
            }
        }
        match seq.next_element_seed(LocateSeed(rest))? {
            Some(()) => Ok(()),
            None => Err(de::Error::custom("not here")),
        }
    }
}

/// A mapping key: fails when it is the last step of the path (locating the key itself),
/// returns whether it is the next step otherwise.
struct KeySeed<'a> {
    wanted: &'a str,
    last: bool,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = bool;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> de::Visitor<'de> for KeySeed<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<bool, E> {
        match (key == self.wanted, self.last) {
            (true, true) => Err(E::custom("here")),
            (found, _) => Ok(found),
        }
    }

    fn visit_bool<E: de::Error>(self, key: bool) -> Result<bool, E> {
        self.visit_str(&key.to_string())
    }

    fn visit_i64<E: de::Error>(self, key: i64) -> Result<bool, E> {
        self.visit_str(&key.to_string())
    }

    fn visit_u64<E: de::Error>(self, key: u64) -> Result<bool, E> {
        self.visit_str(&key.to_string())
    }

    fn visit_f64<E: de::Error>(self, key: f64) -> Result<bool, E> {
        self.visit_str(&key.to_string())
    }

    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_none<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(false)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(false)
    }
}

/// The text of a mapping key, for paths.
fn key_text(key: &Value) -> String {
    match key {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        _ => "?".to_string(),
    }
}

// ---------------------------------------------------------------------------------------
// ${NAME} substitution
// ---------------------------------------------------------------------------------------

/// Expands `${NAME}` in every string value of the tree, reporting unset variables.
fn expand_env(
    value: &mut Value,
    place: &Place,
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Problems,
) {
    match value {
        Value::String(text) => match expand(text, env) {
            Ok(expanded) => *text = expanded,
            Err(messages) => {
                for message in messages {
                    problems.add(place, message);
                }
                problems.unexpanded.push(place.clone());
            }
        },
        Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                expand_env(item, &place.index(i), env, problems);
            }
        }
        Value::Mapping(map) => {
            for (key, item) in map.iter_mut() {
                expand_env(item, &place.key(&key_text(key)), env, problems);
            }
        }
        Value::Tagged(tagged) => expand_env(&mut tagged.value, place, env, problems),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// `text` with `${NAME}` replaced and `$${` turned into `${`; substituted values are not
/// expanded again.
fn expand(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, Vec<String>> {
    let mut out = String::with_capacity(text.len());
    let mut errors = Vec::new();
    let mut rest = text;
    while let Some((before, after)) = rest.split_once('$') {
        out.push_str(before);
        if let Some(tail) = after.strip_prefix("${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix('{') {
            let Some((name, tail)) = tail.split_once('}') else {
                errors.push("`${` without a closing `}` (write `$${` for a literal `${`)".into());
                rest = "";
                break;
            };
            if !is_env_name(name) {
                errors.push(format!(
                    "`${{{name}}}`: not an environment variable name (letters, digits and `_`, \
                     not starting with a digit; write `$${{` for a literal `${{`)"
                ));
            } else if let Some(value) = env(name) {
                out.push_str(&value);
            } else {
                errors.push(format!("environment variable {name} is not set"));
            }
            rest = tail;
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// `[A-Za-z_][A-Za-z0-9_]*`.
fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

// ---------------------------------------------------------------------------------------
// The raw form: what serde reads
// ---------------------------------------------------------------------------------------

/// A node deserialized on its own from the tree, so that a wrong type in it hides no
/// problem elsewhere; keeps the keys it did not know, relative to itself.
enum Node<T> {
    Parsed { value: T, unknown: Vec<Place> },
    Invalid(String),
}

impl<T: DeserializeOwned> Node<T> {
    fn from_value(value: Value) -> Self {
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
type Field<T> = Option<Node<T>>;

/// A mapping with string keys, in file order.
struct Entries<V>(Vec<(String, V)>);

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
type StringMap = Entries<Node<String>>;

#[derive(Deserialize)]
#[serde(expecting = "a mapping of settings")]
struct RawSettings {
    listen: Field<String>,
    allow_unauthenticated: Field<bool>,
    separator: Field<String>,
    tool_cache_ttl_secs: Field<u64>,
    max_body_bytes: Field<u64>,
    session_idle_timeout_secs: Field<u64>,
    max_sessions_per_key: Field<u64>,
    servers: Field<Vec<Node<RawServer>>>,
    aliases: Field<StringMap>,
    api_keys: Field<Vec<Node<RawApiKey>>>,
    policies: Field<RawPolicies>,
}

#[derive(Deserialize)]
#[serde(expecting = "a server: a mapping with name and url or command")]
struct RawServer {
    name: Field<String>,
    url: Field<String>,
    command: Field<String>,
    args: Field<Vec<String>>,
    env: Field<StringMap>,
    transport: Field<Transport>,
    timeout_ms: Field<u64>,
    enabled: Field<bool>,
    headers: Field<StringMap>,
    protocol: Field<ProtocolPreference>,
    auth: Field<RawAuth>,
}

/// Every key of every kind of credentials; which belong to which `type` is checked in
/// [`convert_auth`] (serde's internally tagged enums would hide unknown keys from
/// `serde_ignored`).
#[derive(Deserialize)]
#[serde(expecting = "credentials: a mapping with a type")]
struct RawAuth {
    #[serde(rename = "type")]
    kind: Field<String>,
    token: Field<String>,
    key: Field<String>,
    header: Field<String>,
    username: Field<String>,
    password: Field<String>,
    client_id: Field<String>,
    client_secret: Field<String>,
    token_url: Field<String>,
    scopes: Field<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(expecting = "an API key: a mapping with name and key or key_hash")]
struct RawApiKey {
    name: Field<String>,
    key: Field<String>,
    key_hash: Field<String>,
    team: Field<String>,
    organization: Field<String>,
}

#[derive(Deserialize)]
#[serde(expecting = "a mapping of policies")]
struct RawPolicies {
    default_level: Field<PermissionLevel>,
    keys: Field<Entries<Node<RawPolicy>>>,
    teams: Field<Entries<Node<RawPolicy>>>,
    organizations: Field<Entries<Node<RawPolicy>>>,
}

#[derive(Deserialize)]
#[serde(expecting = "a policy: a mapping with default_level and rules")]
struct RawPolicy {
    default_level: Field<PermissionLevel>,
    rules: Field<Vec<Node<RawRule>>>,
}

#[derive(Deserialize)]
#[serde(expecting = "a rule: a mapping with server, tool and level")]
struct RawRule {
    server: Field<String>,
    tool: Field<String>,
    level: Field<PermissionLevel>,
}

// ---------------------------------------------------------------------------------------
// Conversion and checks
// ---------------------------------------------------------------------------------------

/// The names that later sections refer to, including those of entries that have other
/// problems (so that one problem is not reported again as a dangling reference).
#[derive(Default)]
struct Known {
    servers: HashMap<String, usize>,
    aliases: HashSet<String>,
    keys: HashMap<String, Option<KeyDigest>>,
    teams: HashSet<String>,
    organizations: HashSet<String>,
}

fn convert(raw: RawSettings, p: &mut Problems) -> Settings {
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

    let gateway = GatewayOptions {
        server: ServerOptions {
            tool_cache_ttl: Duration::from_secs(tool_cache_ttl),
            ..ServerOptions::default()
        },
        separator: separator.clone(),
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

    if !listen.ip().is_loopback() && api_keys.is_empty() && !allow_unauthenticated {
        p.add(
            &listen_place,
            format!(
                "{listen} is not a loopback address and no valid api_keys are configured, so \
                 anyone who can reach it could use every tool; add api_keys, listen on \
                 127.0.0.1, or set allow_unauthenticated: true"
            ),
        );
    }

    let permissions = convert_policies(p, &root.key("policies"), raw.policies, &known);

    Settings {
        listen,
        allow_unauthenticated,
        gateway,
        servers,
        aliases,
        api_keys,
        permissions,
        max_body_bytes: usize::try_from(max_body_bytes).unwrap_or(usize::MAX),
        session_idle_timeout: Duration::from_secs(session_idle_timeout),
        max_sessions_per_key: usize::try_from(max_sessions_per_key).unwrap_or(usize::MAX),
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

/// The rule of [`McpGateway::with_options`]: 1 to 4 characters of `[A-Za-z0-9_.-]`.
fn separator_is_valid(separator: &str) -> bool {
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

struct ServerContext<'a> {
    place: &'a Place,
    index: usize,
    separator: Option<&'a str>,
    options: &'a ServerOptions,
}

fn convert_server(
    raw: RawServer,
    context: &ServerContext<'_>,
    known: &mut Known,
    p: &mut Problems,
) -> Option<ServerSettings> {
    let place = context.place;
    let problems_before = p.count();

    let name_place = place.key("name");
    let name = p.required(&name_place, raw.name);
    if let Some(name) = &name {
        check_name(p, &name_place, name, context.separator);
        match known.servers.get(name) {
            Some(first) => p.add(
                &name_place,
                format!("duplicate server name `{name}` (also servers[{first}])"),
            ),
            None => {
                known.servers.insert(name.clone(), context.index);
            }
        }
    }

    let (has_url, has_command) = (raw.url.is_some(), raw.command.is_some());
    let (has_args, has_env, has_headers, has_auth) = (
        raw.args.is_some(),
        raw.env.is_some(),
        raw.headers.is_some(),
        raw.auth.is_some(),
    );
    let url = p.optional(&place.key("url"), raw.url);
    let command = p.optional(&place.key("command"), raw.command);
    let args = p.optional(&place.key("args"), raw.args).unwrap_or_default();
    let env = string_map(p, &place.key("env"), raw.env);
    let headers = string_map(p, &place.key("headers"), raw.headers);
    let transport_place = place.key("transport");
    let explicit_transport = p.optional(&transport_place, raw.transport);
    let timeout_place = place.key("timeout_ms");
    let timeout_ms = p
        .optional(&timeout_place, raw.timeout_ms)
        .unwrap_or(DEFAULT_TIMEOUT_MS);
    if timeout_ms == 0 {
        p.add(&timeout_place, "must be greater than 0");
    }
    let enabled = p
        .optional(&place.key("enabled"), raw.enabled)
        .unwrap_or(true);
    let protocol = p
        .optional(&place.key("protocol"), raw.protocol)
        .unwrap_or_default();
    let auth = p
        .optional(&place.key("auth"), raw.auth)
        .and_then(|raw| convert_auth(raw, &place.key("auth"), p));

    let (transport, target) = match (has_url, has_command) {
        (true, true) => {
            p.add(
                place,
                "both `url` and `command` are set: a server has a url (remote) or a command \
                 (local, stdio), not both",
            );
            return None;
        }
        (false, false) => {
            p.add(
                place,
                "neither `url` (a remote server) nor `command` (a local stdio server) is set",
            );
            return None;
        }
        (false, true) => {
            if let Some(t) = explicit_transport.filter(|t| *t != Transport::Stdio) {
                p.add(
                    &transport_place,
                    format!("a server with `command` speaks stdio; transport {t} needs `url`"),
                );
            }
            for (present, key, why) in [
                (
                    has_headers,
                    "headers",
                    "stdio servers take `env`, not HTTP headers",
                ),
                (has_auth, "auth", "stdio servers take credentials in `env`"),
            ] {
                if present {
                    p.add(&place.key(key), why);
                }
            }
            let line = command.and_then(|c| command_line(p, &place.key("command"), &c, &args));
            (Transport::Stdio, line)
        }
        (true, false) => {
            for (present, key) in [(has_args, "args"), (has_env, "env")] {
                if present {
                    p.add(
                        &place.key(key),
                        "only stdio servers (`command`) take `args` and `env`",
                    );
                }
            }
            let transport = url
                .as_deref()
                .and_then(|url| remote_transport(p, place, url, explicit_transport));
            (
                transport.unwrap_or(Transport::Http),
                url.filter(|_| transport.is_some()),
            )
        }
    };

    let mut static_headers = HashMap::new();
    let (pairs, kind_place) = if transport == Transport::Stdio {
        (env, place.key("env"))
    } else {
        (headers, place.key("headers"))
    };
    for (key, value) in pairs {
        let entry = kind_place.key(&key);
        if transport == Transport::Stdio {
            if !is_env_name(&key) {
                p.add(
                    &entry,
                    "not an environment variable name ([A-Za-z_][A-Za-z0-9_]*)",
                );
            } else if value.contains('\0') {
                p.add(&entry, "the value contains a NUL character");
            }
        } else if http::HeaderName::from_bytes(key.as_bytes()).is_err() {
            p.add(&entry, "not a valid HTTP header name");
        } else if http::HeaderValue::from_str(&value).is_err() {
            p.add(&entry, "the value is not a valid HTTP header value");
        }
        static_headers.insert(key, value);
    }

    let (Some(name), Some(url)) = (name, target) else {
        return None;
    };
    let config = McpServerConfig {
        name,
        url,
        transport,
        enabled,
        timeout_ms,
        auth,
        static_headers,
    };
    if p.count() > problems_before {
        return None;
    }
    // The library's own check, as a backstop: what it refuses, registration would too.
    if let Err(e) = config.validate() {
        p.add(place, config_message(e));
        return None;
    }
    Some(ServerSettings {
        config,
        options: ServerOptions {
            protocol,
            ..context.options.clone()
        },
    })
}

/// The transport of a server with a `url`, checking that the two fit; `None` (reported)
/// when they do not.
fn remote_transport(
    p: &mut Problems,
    place: &Place,
    url: &str,
    explicit: Option<Transport>,
) -> Option<Transport> {
    let url_place = place.key("url");
    if explicit == Some(Transport::Stdio) {
        p.add(
            &place.key("transport"),
            "transport stdio needs `command` (and `args`), not `url`",
        );
        return None;
    }
    // The URL itself is not quoted in messages: it may carry credentials.
    let parsed = match url::Url::parse(url) {
        Ok(parsed) => parsed,
        Err(e) => {
            p.add(
                &url_place,
                format!("not a valid URL ({e}); a local server takes `command`"),
            );
            return None;
        }
    };
    let transport = explicit.unwrap_or_else(|| Transport::infer_from_url(url));
    let allowed: &[&str] = match transport {
        Transport::WebSocket => &["ws", "wss", "http", "https"],
        _ => &["http", "https"],
    };
    if !allowed.contains(&parsed.scheme()) {
        p.add(
            &url_place,
            format!(
                "scheme `{}` does not fit transport {}: use {}",
                parsed.scheme(),
                if transport == Transport::Stdio {
                    Transport::Http
                } else {
                    transport
                },
                allowed
                    .iter()
                    .map(|s| format!("{s}://"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
        return None;
    }
    Some(transport)
}

/// The command line of a stdio server: `command` and `args` joined so that the library
/// splits them back into exactly these words.
fn command_line(p: &mut Problems, place: &Place, command: &str, args: &[String]) -> Option<String> {
    if command.trim().is_empty() {
        p.add(place, "empty");
        return None;
    }
    let line = shell_words::join(std::iter::once(command).chain(args.iter().map(String::as_str)));
    match CommandLine::parse(&line) {
        Ok(parsed) if parsed.env.is_empty() && parsed.program == command && parsed.args == args => {
            Some(line)
        }
        _ => {
            p.add(
                place,
                format!(
                    "`{command}` cannot be run as a program name (a word like NAME=value is \
                     read as an environment assignment; use `env`)"
                ),
            );
            None
        }
    }
}

/// A `headers` or `env` mapping.
fn string_map(p: &mut Problems, place: &Place, field: Field<StringMap>) -> Vec<(String, String)> {
    let Some(Entries(entries)) = p.optional(place, field) else {
        return Vec::new();
    };
    entries
        .into_iter()
        .filter_map(|(key, node)| {
            let value = p.optional(&place.key(&key), Some(node))?;
            Some((key, value))
        })
        .collect()
}

fn convert_auth(raw: RawAuth, place: &Place, p: &mut Problems) -> Option<AuthConfig> {
    const KINDS: &str = "bearer, api_key, basic or oauth2";
    let kind_place = place.key("type");
    let kind = p.required(&kind_place, raw.kind)?;
    let allowed: &[&str] = match kind.as_str() {
        "bearer" => &["token"],
        "api_key" => &["key", "header"],
        "basic" => &["username", "password"],
        "oauth2" => &["client_id", "client_secret", "token_url", "scopes"],
        other => {
            p.add(
                &kind_place,
                format!("unknown type `{other}`: expected {KINDS}"),
            );
            return None;
        }
    };
    let present = [
        ("token", raw.token.is_some()),
        ("key", raw.key.is_some()),
        ("header", raw.header.is_some()),
        ("username", raw.username.is_some()),
        ("password", raw.password.is_some()),
        ("client_id", raw.client_id.is_some()),
        ("client_secret", raw.client_secret.is_some()),
        ("token_url", raw.token_url.is_some()),
        ("scopes", raw.scopes.is_some()),
    ];
    for (key, _) in present
        .iter()
        .filter(|(k, there)| *there && !allowed.contains(k))
    {
        p.add(
            &place.key(key),
            format!(
                "not a key of auth type {kind} (its keys: {})",
                allowed.join(", ")
            ),
        );
    }
    let secret = |p: &mut Problems, key: &str, field: Field<String>| {
        let key_place = place.key(key);
        let value = p.required(&key_place, field)?;
        if value.is_empty() {
            p.add(&key_place, "empty");
            return None;
        }
        Some(value)
    };
    match kind.as_str() {
        "bearer" => Some(AuthConfig::bearer(secret(p, "token", raw.token)?)),
        "api_key" => {
            let key = secret(p, "key", raw.key);
            let header_place = place.key("header");
            let header = p
                .optional(&header_place, raw.header)
                .unwrap_or_else(|| DEFAULT_API_KEY_HEADER.to_string());
            if http::HeaderName::from_bytes(header.as_bytes()).is_err() {
                p.add(
                    &header_place,
                    format!("`{header}` is not a valid HTTP header name"),
                );
                return None;
            }
            Some(AuthConfig::api_key_in_header(key?, header))
        }
        "basic" => {
            let username = p.required(&place.key("username"), raw.username);
            let password = secret(p, "password", raw.password);
            Some(AuthConfig::basic(username?, password?))
        }
        _ => {
            let client_id = secret(p, "client_id", raw.client_id);
            let client_secret = secret(p, "client_secret", raw.client_secret);
            let token_url_place = place.key("token_url");
            let token_url = p.required(&token_url_place, raw.token_url);
            let scopes = p
                .optional(&place.key("scopes"), raw.scopes)
                .unwrap_or_default();
            let token_url = token_url.filter(|url| match url::Url::parse(url) {
                Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => true,
                Ok(parsed) => {
                    p.add(
                        &token_url_place,
                        format!(
                            "scheme `{}`: the token endpoint is http(s)://",
                            parsed.scheme()
                        ),
                    );
                    false
                }
                Err(e) => {
                    p.add(&token_url_place, format!("not a valid URL ({e})"));
                    false
                }
            });
            Some(AuthConfig::oauth2(client_id?, client_secret?, token_url?).with_scopes(scopes))
        }
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

fn convert_api_key(
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

fn convert_policies(
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
            let exists = match section {
                "keys" => known.keys.contains_key(&name),
                "teams" => known.teams.contains(&name),
                _ => known.organizations.contains(&name),
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

/// A URL for `Debug`: its password and query values masked.
fn masked_url(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return "<invalid URL>".to_string();
    };
    if parsed.password().is_some() {
        let _ = parsed.set_password(Some("***"));
    }
    if parsed.query().is_some() {
        let names: Vec<String> = parsed.query_pairs().map(|(k, _)| k.into_owned()).collect();
        parsed
            .query_pairs_mut()
            .clear()
            .extend_pairs(names.iter().map(|k| (k.as_str(), "***")));
    }
    parsed.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This file, to test the example of its own module docs.
    const SOURCE: &str = include_str!("settings.rs");

    /// The ```yaml block of the module docs.
    fn documented_example() -> String {
        SOURCE
            .lines()
            .skip_while(|l| *l != "//! ```yaml")
            .skip(1)
            .take_while(|l| *l != "//! ```")
            .map(|l| {
                l.strip_prefix("//! ")
                    .unwrap_or(l.trim_start_matches("//!"))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn example_env(name: &str) -> Option<String> {
        let value = match name {
            "FS_TOKEN" => "fs-token-secret",
            "SEARCH_KEY" => "search-key-secret",
            "LEGACY_PASSWORD" => "legacy-password-secret",
            "DB_CLIENT_SECRET" => "db-client-secret",
            "GITHUB_TOKEN" => "github-token-secret",
            "CI_BOT_KEY" => "ci-bot-key-secret",
            _ => return None,
        };
        Some(value.to_string())
    }

    const SECRETS: [&str; 6] = [
        "fs-token-secret",
        "search-key-secret",
        "legacy-password-secret",
        "db-client-secret",
        "github-token-secret",
        "ci-bot-key-secret",
    ];

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn parse(text: &str) -> Result<Settings, SettingsError> {
        Settings::parse(text, &no_env)
    }

    fn problems(text: &str) -> Vec<Problem> {
        match parse(text) {
            Ok(settings) => panic!("expected problems, got {settings:?}"),
            Err(SettingsError::Invalid { problems }) => problems,
            Err(other) => panic!("unexpected error {other}"),
        }
    }

    /// Asserts that exactly one problem is at `path` and its message contains `words`.
    fn has(problems: &[Problem], path: &str, words: &str) -> Problem {
        let at: Vec<&Problem> = problems.iter().filter(|p| p.path == path).collect();
        let all = lines(problems);
        assert_eq!(at.len(), 1, "one problem at {path}; got:\n{all}");
        assert!(
            at[0].message.contains(words),
            "{path}: {words}; got:\n{all}"
        );
        at[0].clone()
    }

    fn server<'a>(settings: &'a Settings, name: &str) -> &'a ServerSettings {
        settings
            .servers
            .iter()
            .find(|s| s.config.name == name)
            .unwrap()
    }

    #[test]
    fn the_documented_example_comes_through_completely() {
        let text = documented_example();
        assert!(text.starts_with("listen:"), "{text}");
        let settings = Settings::parse(&text, &example_env).unwrap();

        assert_eq!(settings.listen, "127.0.0.1:4000".parse().unwrap());
        assert!(!settings.allow_unauthenticated);
        assert_eq!(settings.gateway.separator, "__");
        assert_eq!(
            settings.gateway.server.tool_cache_ttl,
            Duration::from_secs(300)
        );
        assert_eq!(settings.max_body_bytes, 4_194_304);
        assert_eq!(settings.session_idle_timeout, Duration::from_secs(1800));
        assert_eq!(settings.max_sessions_per_key, 100);

        let names: Vec<&str> = settings
            .servers
            .iter()
            .map(|s| s.config.name.as_str())
            .collect();
        assert_eq!(
            names,
            ["filesystem", "search", "legacy", "database", "local"]
        );

        let fs = server(&settings, "filesystem");
        assert_eq!(fs.config.url, "https://mcp.example.com/fs");
        assert_eq!(fs.config.transport, Transport::Http);
        assert_eq!(fs.config.timeout_ms, 30_000);
        assert!(fs.config.enabled);
        assert_eq!(
            fs.config.static_headers.get("X-Team").map(String::as_str),
            Some("blue")
        );
        assert_eq!(fs.config.auth, Some(AuthConfig::bearer("fs-token-secret")));
        assert_eq!(fs.options.protocol, ProtocolPreference::Auto);
        assert_eq!(fs.options.tool_cache_ttl, Duration::from_secs(300));

        let search = server(&settings, "search");
        assert_eq!(search.config.transport, Transport::WebSocket);
        assert_eq!(
            search.config.auth,
            Some(AuthConfig::api_key_in_header(
                "search-key-secret",
                "X-Search-Key"
            ))
        );

        let legacy = server(&settings, "legacy");
        assert_eq!(legacy.config.transport, Transport::Sse);
        assert_eq!(legacy.options.protocol, ProtocolPreference::Sessions);
        assert_eq!(
            legacy.config.auth,
            Some(AuthConfig::basic("gateway", "legacy-password-secret"))
        );

        let database = server(&settings, "database");
        assert!(!database.config.enabled);
        assert_eq!(
            database.config.auth,
            Some(
                AuthConfig::oauth2(
                    "gateway",
                    "db-client-secret",
                    "https://auth.example.com/oauth/token"
                )
                .with_scopes(["tools.read", "tools.call"])
            )
        );

        let local = server(&settings, "local");
        assert_eq!(local.config.transport, Transport::Stdio);
        assert_eq!(local.config.url, "node server.js --stdio");
        assert_eq!(
            local
                .config
                .static_headers
                .get("GITHUB_TOKEN")
                .map(String::as_str),
            Some("github-token-secret")
        );

        assert_eq!(
            settings.aliases,
            [("fs".to_string(), "filesystem".to_string())]
        );

        assert_eq!(settings.api_keys.len(), 2);
        let ci = &settings.api_keys[0];
        assert_eq!(ci.name, "ci-bot");
        assert_eq!(ci.digest, KeyDigest::of("ci-bot-key-secret"));
        assert_eq!(ci.team.as_deref(), Some("platform"));
        assert_eq!(ci.organization.as_deref(), Some("acme"));
        let alice = &settings.api_keys[1];
        assert_eq!(alice.digest, KeyDigest::of("alice-example-key"));
        assert_eq!(alice.team.as_deref(), Some("analysts"));

        // The policies decide as written.
        use crate::core::mcp::Caller;
        use PermissionLevel::*;
        let m = &settings.permissions;
        assert_eq!(m.default_level(), Read);
        let ci_caller = Caller::key("ci-bot-key-secret")
            .in_team("platform")
            .in_organization("acme");
        assert_eq!(m.resolve(&ci_caller, "filesystem", "read_file"), Execute);
        assert_eq!(m.resolve(&ci_caller, "filesystem", "write_file"), Deny);
        let platform = Caller::default()
            .in_team("platform")
            .in_organization("acme");
        assert_eq!(m.resolve(&platform, "database", "query"), Execute);
        assert_eq!(m.resolve(&platform, "database", "delete_rows"), Deny);
        let analyst = Caller::key("alice-example-key")
            .in_team("analysts")
            .in_organization("acme");
        assert_eq!(m.resolve(&analyst, "database", "query"), Execute);
        assert_eq!(m.resolve(&Caller::default(), "database", "query"), Read);
    }

    #[test]
    fn an_empty_file_gives_the_defaults() {
        for text in ["", "# nothing\n", "{}"] {
            let settings = parse(text).unwrap();
            assert_eq!(settings.listen, DEFAULT_LISTEN);
            assert_eq!(settings.gateway.separator, "__");
            assert_eq!(settings.max_body_bytes, 4 * 1024 * 1024);
            assert_eq!(settings.session_idle_timeout, Duration::from_secs(1800));
            assert_eq!(settings.max_sessions_per_key, 100);
            assert!(settings.servers.is_empty() && settings.api_keys.is_empty());
            assert_eq!(
                settings.permissions.default_level(),
                PermissionLevel::Execute
            );
        }
    }

    #[test]
    fn a_file_with_many_problems_reports_every_one_with_its_place() {
        let text = "\
listen: 0.0.0.0:4000
colour: blue
servers:
  - name: fs
    url: https://fs.example.com/mcp
    retries: 3
    auth: {type: bearer, token: \"${FS_TOKEN}\", scheme: x}
  - name: fs
    url: https://other.example.com/mcp
  - name: both
    url: https://both.example.com/mcp
    command: node
aliases:
  f: nowhere
api_keys:
  - name: bot
    key_hash: sha256:1234
policies:
  keys:
    bot:
      rules:
        - {server: fs, tool: read_file, level: reed}
";
        let found = problems(text);
        has(&found, "listen", "not a loopback address");
        has(&found, "colour", "unknown key");
        has(&found, "servers[0].retries", "unknown key");
        has(&found, "servers[0].auth.scheme", "unknown key");
        has(&found, "servers[0].auth.token", "FS_TOKEN is not set");
        has(&found, "servers[1].name", "duplicate server name `fs`");
        has(&found, "servers[2]", "both `url` and `command`");
        has(&found, "aliases.f", "no server named `nowhere`");
        has(&found, "api_keys[0].key_hash", "64 hex digits");
        has(
            &found,
            "policies.keys.bot.rules[0].level",
            "unknown variant `reed`",
        );
        assert_eq!(found.len(), 10, "{}", lines(&found));

        // Lines: of the place itself, in file order.
        let line_of = |path: &str| found.iter().find(|p| p.path == path).unwrap().line;
        assert_eq!(line_of("listen"), Some(1));
        assert_eq!(line_of("colour"), Some(2));
        assert_eq!(line_of("servers[0].retries"), Some(6));
        assert_eq!(line_of("servers[0].auth.scheme"), Some(7));
        assert_eq!(line_of("servers[1].name"), Some(8));
        assert_eq!(line_of("servers[2]"), Some(10));
        assert_eq!(line_of("aliases.f"), Some(14));
        assert_eq!(line_of("api_keys[0].key_hash"), Some(17));
        assert_eq!(line_of("policies.keys.bot.rules[0].level"), Some(22));
        let in_order: Vec<Option<usize>> = found.iter().map(|p| p.line).collect();
        let mut sorted = in_order.clone();
        sorted.sort();
        assert_eq!(in_order, sorted);

        // Display: one problem per line, path and line first.
        let shown = SettingsError::Invalid { problems: found }.to_string();
        assert_eq!(shown.lines().count(), 10, "{shown}");
        assert!(
            shown.contains("servers[0].retries (line 6): unknown key"),
            "{shown}"
        );
    }

    /// `(file, path, words of the message)`.
    const SINGLE_PROBLEMS: &[(&str, &str, &str)] = &[
        ("- a\n", "", "a mapping of settings"),
        ("listen: localhost:4000\n", "listen", "not an IP address and port"),
        ("listen: [1]\n", "listen", "invalid type"),
        ("separator: '::'\n", "separator", "1 to 4 characters"),
        ("separator: abcde\n", "separator", "1 to 4 characters"),
        ("max_body_bytes: 0\n", "max_body_bytes", "greater than 0"),
        ("max_body_bytes: -1\n", "max_body_bytes", "invalid value"),
        ("session_idle_timeout_secs: 0\n", "session_idle_timeout_secs", "greater than 0"),
        ("max_sessions_per_key: many\n", "max_sessions_per_key", "invalid type"),
        ("tool_cache_ttl_secs: '300'\n", "tool_cache_ttl_secs", "invalid type"),
        ("allow_unauthenticated: yes\n", "allow_unauthenticated", "invalid type"),
        ("servers: {}\n", "servers", "invalid type"),
        ("servers: [x]\n", "servers[0]", "a server"),
        ("servers: [{url: 'http://x/'}]\n", "servers[0].name", "required"),
        ("servers: [{name: a}]\n", "servers[0]", "neither `url`"),
        ("servers: [{name: 'a b', url: 'http://x/'}]\n", "servers[0].name", "contains ' '"),
        ("servers: [{name: a__b, url: 'http://x/'}]\n", "servers[0].name", "separator `__`"),
        ("servers: [{name: a_, url: 'http://x/'}]\n", "servers[0].name", "separator `__`"),
        ("servers: [{name: a, url: 'http://x/', timeout_ms: 0}]\n", "servers[0].timeout_ms", "greater than 0"),
        ("servers: [{name: a, url: 'http://x/', transport: grpc}]\n", "servers[0].transport", "unknown variant `grpc`"),
        ("servers: [{name: a, url: 'http://x/', transport: stdio}]\n", "servers[0].transport", "needs `command`"),
        ("servers: [{name: a, url: 'ftp://x/'}]\n", "servers[0].url", "scheme `ftp`"),
        ("servers: [{name: a, url: 'ws://x/', transport: sse}]\n", "servers[0].url", "scheme `ws`"),
        ("servers: [{name: a, url: 'mcp.example.com'}]\n", "servers[0].url", "not a valid URL"),
        ("servers: [{name: a, url: 'http://x/', args: [a]}]\n", "servers[0].args", "only stdio"),
        ("servers: [{name: a, url: 'http://x/', env: {A: b}}]\n", "servers[0].env", "only stdio"),
        ("servers: [{name: a, url: 'http://x/', headers: {'a b': c}}]\n", "servers[0].headers.\"a b\"", "header name"),
        ("servers: [{name: a, url: 'http://x/', headers: {A: 1}}]\n", "servers[0].headers.A", "invalid type"),
        ("servers: [{name: a, url: 'http://x/', protocol: newest}]\n", "servers[0].protocol", "unknown variant"),
        ("servers: [{name: a, url: 'http://x/', enabled: 1}]\n", "servers[0].enabled", "invalid type"),
        ("servers: [{name: a, command: node, transport: http}]\n", "servers[0].transport", "speaks stdio"),
        ("servers: [{name: a, command: node, headers: {A: b}}]\n", "servers[0].headers", "take `env`"),
        ("servers: [{name: a, command: node, auth: {type: bearer, token: t}}]\n", "servers[0].auth", "credentials in `env`"),
        ("servers: [{name: a, command: node, env: {'1X': b}}]\n", "servers[0].env.1X", "environment variable name"),
        ("servers: [{name: a, command: ' '}]\n", "servers[0].command", "empty"),
        ("servers: [{name: a, command: 'A=b'}]\n", "servers[0].command", "environment assignment"),
        ("servers: [{name: a, command: node, args: [1, {}]}]\n", "servers[0].args", "invalid type"),
        ("servers: [{name: a, url: 'http://x/', auth: token}]\n", "servers[0].auth", "credentials: a mapping"),
        ("servers: [{name: a, url: 'http://x/', auth: {token: t}}]\n", "servers[0].auth.type", "required"),
        ("servers: [{name: a, url: 'http://x/', auth: {type: jwt}}]\n", "servers[0].auth.type", "unknown type `jwt`"),
        ("servers: [{name: a, url: 'http://x/', auth: {type: bearer}}]\n", "servers[0].auth.token", "required"),
        ("servers: [{name: a, url: 'http://x/', auth: {type: bearer, token: ''}}]\n", "servers[0].auth.token", "empty"),
        ("servers: [{name: a, url: 'http://x/', auth: {type: bearer, token: t, password: p}}]\n", "servers[0].auth.password", "not a key of auth type bearer"),
        ("servers: [{name: a, url: 'http://x/', auth: {type: api_key, key: k, header: 'X Y'}}]\n", "servers[0].auth.header", "header name"),
        ("servers: [{name: a, url: 'http://x/', auth: {type: basic, password: p}}]\n", "servers[0].auth.username", "required"),
        ("servers: [{name: a, url: 'http://x/', auth: {type: oauth2, client_id: i, client_secret: s, token_url: 'nope'}}]\n", "servers[0].auth.token_url", "not a valid URL"),
        ("servers: [{name: a, url: 'http://x/', auth: {type: oauth2, client_id: i, client_secret: s, token_url: 'ftp://t/'}}]\n", "servers[0].auth.token_url", "scheme `ftp`"),
        ("servers: [{name: a, url: 'http://x/', auth: {type: oauth2, client_id: i, token_url: 'http://t/'}}]\n", "servers[0].auth.client_secret", "required"),
        ("servers: [{name: a, url: 'http://x/', auth: {type: oauth2, client_id: i, client_secret: s, token_url: 'http://t/', scopes: x}}]\n", "servers[0].auth.scopes", "invalid type"),
        ("aliases: [a]\n", "aliases", "invalid type"),
        ("servers: [{name: a, url: 'http://x/'}]\naliases: {a: a}\n", "aliases.a", "already the name of a server"),
        ("servers: [{name: a, url: 'http://x/'}]\naliases: {b: c, c: a}\n", "aliases.b", "`c` is an alias"),
        ("servers: [{name: a, url: 'http://x/'}]\naliases: {'b c': a}\n", "aliases.\"b c\"", "contains ' '"),
        ("servers: [{name: a, url: 'http://x/'}]\naliases: {b__: a}\n", "aliases.b__", "separator"),
        ("api_keys: [{key: k}]\n", "api_keys[0].name", "required"),
        ("api_keys: [{name: 'a b', key: k}]\n", "api_keys[0].name", "[A-Za-z0-9_.@-]"),
        ("api_keys: [{name: a}]\n", "api_keys[0]", "neither `key` nor `key_hash`"),
        ("api_keys: [{name: a, key: k, key_hash: h}]\n", "api_keys[0]", "both `key` and `key_hash`"),
        ("api_keys: [{name: a, key: ''}]\n", "api_keys[0].key", "empty"),
        ("api_keys: [{name: a, key: k}, {name: a, key: l}]\n", "api_keys[1].name", "duplicate key name"),
        ("api_keys: [{name: a, key: k}, {name: b, key: k}]\n", "api_keys[1]", "the same key as api_keys[0]"),
        ("api_keys: [{name: a, key: k, team: ''}]\n", "api_keys[0].team", "1 to 128"),
        ("api_keys: [{name: a, key: k, role: admin}]\n", "api_keys[0].role", "unknown key"),
        ("policies: {default_level: all}\n", "policies.default_level", "unknown variant `all`"),
        ("policies: {keys: {ghost: {default_level: read}}}\n", "policies.keys.ghost", "no key named `ghost`"),
        ("policies: {teams: {ghost: {default_level: read}}}\n", "policies.teams.ghost", "in team `ghost`"),
        ("policies: {organizations: {ghost: {default_level: read}}}\n", "policies.organizations.ghost", "in organization `ghost`"),
        ("api_keys: [{name: a, key: k, team: t}]\npolicies: {teams: {t: {rules: [{tool: x}]}}}\n", "policies.teams.t.rules[0].level", "required"),
        ("api_keys: [{name: a, key: k, team: t}]\npolicies: {teams: {t: {rules: [{level: read, server: ''}]}}}\n", "policies.teams.t.rules[0].server", "empty"),
        ("api_keys: [{name: a, key: k, team: t}]\npolicies: {teams: {t: {rules: [{level: read, server: ghost}]}}}\n", "policies.teams.t.rules[0].server", "no server named `ghost`"),
        ("servers: [{name: a, url: 'http://x/'}]\naliases: {b: a}\napi_keys: [{name: a, key: k, team: t}]\npolicies: {teams: {t: {rules: [{level: read, server: b}]}}}\n", "policies.teams.t.rules[0].server", "`b` is an alias"),
        ("api_keys: [{name: a, key: k, team: t}]\npolicies: {teams: {t: {rules: [{level: read, verb: x}]}}}\n", "policies.teams.t.rules[0].verb", "unknown key"),
        ("api_keys: [{name: a, key: k, team: t}]\npolicies: {teams: {t: {rules: x}}}\n", "policies.teams.t.rules", "invalid type"),
        ("api_keys: [{name: a, key: k, team: t}]\npolicies: {teams: {t: [x]}}\n", "policies.teams.t", "a policy"),
        ("policies: {groups: {}}\n", "policies.groups", "unknown key"),
        ("listen: \"${LISTEN}\"\n", "listen", "LISTEN is not set"),
        ("listen: \"${LISTEN\"\n", "listen", "without a closing"),
        ("listen: \"${1X}\"\n", "listen", "not an environment variable name"),
    ];

    #[test]
    fn every_kind_of_problem_is_reported_at_its_place() {
        for (text, path, words) in SINGLE_PROBLEMS {
            let found = problems(text);
            let problem = has(&found, path, words);
            assert_eq!(found.len(), 1, "{text}: {}", lines(&found));
            assert!(problem.line.is_some(), "{text}: no line for {problem}");
        }
    }

    #[test]
    fn a_yaml_syntax_error_has_its_line() {
        let found = problems("servers:\n  - name: a\n   url: [\n");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].path, "");
        assert!(found[0].message.starts_with("invalid YAML"), "{}", found[0]);
        assert!(found[0].line.is_some());
        let unquoted = problems("servers:\n  - name: a\n    command: x\n    env: {T: ${T}}\n");
        assert_eq!(unquoted[0].line, Some(4));
        assert!(
            unquoted[0].message.contains("quote a value"),
            "{}",
            unquoted[0]
        );
        let duplicate = problems("listen: 127.0.0.1:1\nlisten: 127.0.0.1:2\n");
        assert!(
            duplicate[0].message.contains("duplicate"),
            "{}",
            duplicate[0]
        );
    }

    #[test]
    fn the_line_of_a_missing_key_is_that_of_its_mapping() {
        let found = problems("servers:\n  - url: http://x/\n    enabled: true\n");
        assert_eq!(has(&found, "servers[0].name", "required").line, Some(2));
    }

    #[test]
    fn anchors_and_merge_keys_work() {
        let text = "\
servers:
  - &remote
    name: one
    url: https://one.example.com/mcp
    timeout_ms: 5000
    auth: {type: bearer, token: t}
  - <<: *remote
    name: two
";
        let settings = parse(text).unwrap();
        let two = &settings.servers[1].config;
        assert_eq!((two.name.as_str(), two.timeout_ms), ("two", 5000));
        assert_eq!(two.auth, Some(AuthConfig::bearer("t")));
    }

    #[test]
    fn non_loopback_needs_keys_or_consent() {
        assert!(parse("listen: 127.0.0.1:4000\n").is_ok());
        assert!(parse("listen: '[::1]:4000'\n").is_ok());
        has(
            &problems("listen: '[::]:4000'\n"),
            "listen",
            "allow_unauthenticated",
        );
        assert!(parse("listen: 0.0.0.0:4000\nallow_unauthenticated: true\n").is_ok());
        assert!(parse("listen: 0.0.0.0:4000\napi_keys: [{name: a, key: k}]\n").is_ok());
    }

    #[test]
    fn environment_variables_are_substituted_and_dollar_dollar_escapes() {
        let env = |name: &str| match name {
            "HOST" => Some("mcp.example.com".to_string()),
            "A" => Some("x".to_string()),
            "LOOP" => Some("${A}".to_string()),
            _ => None,
        };
        let expand = |text: &str| expand(text, &env);
        assert_eq!(
            expand("https://${HOST}/mcp").unwrap(),
            "https://mcp.example.com/mcp"
        );
        assert_eq!(expand("${A}${A}-${A}").unwrap(), "xx-x");
        assert_eq!(expand("$${A}").unwrap(), "${A}");
        // Only `$${` is special; a `$` before it is itself.
        assert_eq!(expand("$$${A}").unwrap(), "$${A}");
        assert_eq!(expand("$$$${A}").unwrap(), "$$${A}");
        assert_eq!(expand("cost: $5, $A, $").unwrap(), "cost: $5, $A, $");
        assert_eq!(
            expand("${LOOP}").unwrap(),
            "${A}",
            "values are not expanded again"
        );
        assert_eq!(
            expand("${MISSING} ${ALSO_MISSING}").unwrap_err(),
            [
                "environment variable MISSING is not set",
                "environment variable ALSO_MISSING is not set"
            ]
        );

        let text = "\
servers:
  - name: local
    command: node
    args: ['--greeting=$${HOME}', '${A}']
    env: {HOST: '${HOST}'}
";
        let settings = Settings::parse(text, &env).unwrap();
        let local = &settings.servers[0].config;
        assert_eq!(local.url, "node '--greeting=${HOME}' x");
        assert_eq!(local.static_headers["HOST"], "mcp.example.com");

        let found = Settings::parse("servers: [{name: a, url: 'http://${NOPE}/'}]\n", &env);
        let Err(SettingsError::Invalid { problems }) = found else {
            panic!("expected an error")
        };
        has(
            &problems,
            "servers[0].url",
            "environment variable NOPE is not set",
        );
    }

    #[test]
    fn debug_output_shows_no_secret() {
        let text = documented_example().replacen(
            "servers:\n",
            "servers:\n  - name: userinfo\n    url: \"https://user:url-password-secret@x.example.com/mcp?token=query-token-secret\"\n",
            1,
        );
        let settings = Settings::parse(&text, &example_env).unwrap();
        let shown = format!("{settings:?}");
        for secret in SECRETS.iter().chain(&[
            "url-password-secret",
            "query-token-secret",
            "alice-example-key",
        ]) {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(!shown.contains("blue"), "header values are not shown");
        assert!(shown.contains("GITHUB_TOKEN"), "env names are shown");
        assert!(shown.contains("X-Team"), "header names are shown");
        assert!(shown.contains("filesystem"));

        let err = Settings::parse(
            "servers: [{name: a, url: 'not a url ${T}', auth: {type: oauth2, client_id: i, client_secret: s, token_url: 'bad ${T}'}}]\n",
            &|_| Some("env-secret-value".to_string()),
        )
        .unwrap_err();
        assert!(!err.to_string().contains("env-secret-value"), "{err}");
        assert!(!format!("{err:?}").contains("env-secret-value"), "{err:?}");
    }

    #[test]
    fn keys_are_found_by_digest() {
        let settings = Settings::parse(&documented_example(), &example_env).unwrap();
        assert_eq!(
            settings.find_key("ci-bot-key-secret").unwrap().name,
            "ci-bot"
        );
        assert_eq!(
            settings.find_key("alice-example-key").unwrap().name,
            "alice"
        );
        assert!(settings.find_key("wrong").is_none());
        assert!(settings.find_key("").is_none());
    }

    #[test]
    fn the_separator_rule_is_the_gateways() {
        for separator in ["", "_", "__", "::", ".", "a-b.", "abcde", "é", "--", "x y"] {
            let ours = separator_is_valid(separator);
            let theirs = McpGateway::with_options(GatewayOptions {
                separator: separator.to_string(),
                ..GatewayOptions::default()
            })
            .is_ok();
            assert_eq!(ours, theirs, "{separator:?}");
        }
        let found = problems("separator: '-'\nservers: [{name: a-b, url: 'http://x/'}]\n");
        has(&found, "servers[0].name", "separator `-`");
    }

    #[tokio::test]
    async fn the_gateway_gets_every_server_alias_and_policy() {
        let settings = Settings::parse(&documented_example(), &example_env).unwrap();
        let gateway = settings.build_gateway().await.unwrap();
        let servers = gateway.list_servers().await;
        let names: Vec<&str> = servers.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            ["database", "filesystem", "legacy", "local", "search"]
        );
        let fs = servers.iter().find(|s| s.name == "filesystem").unwrap();
        assert_eq!(fs.aliases, ["fs"]);
        assert_eq!(gateway.get_server("fs").await.unwrap().name(), "filesystem");
        let caller = crate::core::mcp::Caller::default();
        assert_eq!(
            gateway.access_level(&caller, "filesystem", "x"),
            PermissionLevel::Read
        );
        gateway.shutdown(Duration::from_secs(1)).await;
    }

    #[test]
    fn load_reads_a_file_and_reports_a_missing_one() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/settings");
        let settings = Settings::load(format!("{dir}/minimal.yaml")).unwrap();
        assert_eq!(settings.servers.len(), 1);
        assert_eq!(settings.servers[0].config.name, "everything");
        let err = Settings::load(format!("{dir}/missing.yaml")).unwrap_err();
        assert!(matches!(err, SettingsError::Read { .. }), "{err}");
        assert!(err.to_string().contains("missing.yaml"), "{err}");
    }
}
