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
//! server_names: public              # or private; default public on a loopback listen
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
//!
//! oauth:                            # clients may also sign in with an identity provider
//!   public_url: https://mcp.example.com
//!   scopes: {"mcp:read": read, "mcp:call": execute}
//!   providers:
//!     - issuer: https://login.example.com/realms/acme
//!       jwks_url: https://login.example.com/realms/acme/protocol/openid-connect/certs
//!       audiences: [mcp-gateway]
//!       algorithms: [RS256, ES256]
//!       leeway_secs: 30
//!       claims: {subject: sub, team: team, organization: org}
//!       jwks_refresh_secs: 600
//!       jwks_min_refetch_secs: 10
//!       timeout_ms: 5000
//!       introspection:
//!         url: https://login.example.com/realms/acme/protocol/openid-connect/token/introspect
//!         client_id: mcp-gateway
//!         client_secret: ${IDP_INTROSPECTION_SECRET}
//!         cache_secs: 60
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
//! | `server_names` | `public` or `private`; `public` when `listen` is a loopback address, else `private` | whether callers may learn the names of servers they may not use: see "Server names" |
//! | `servers` | list, empty | the upstream MCP servers |
//! | `aliases` | mapping alias → server, empty | other names for servers |
//! | `api_keys` | list, empty | the keys clients present |
//! | `policies` | mapping | who may see and call which tool |
//! | `oauth` | mapping, none | clients may sign in with an identity provider: see `oauth` |
//! | `store` | mapping, none | keep servers, aliases, keys and policies in a database that the admin API changes at run time: see README.md ("The store and the admin API") |
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
//! | `oauth2` | `client_id`, `client_secret`; `token_url` (`http(s)://`; without it the token endpoint is discovered from the server's 401 challenge, RFC 9728/8414); `scopes` (list, default none) — client credentials |
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
//! ## `oauth`
//!
//! The gateway as an OAuth 2.1 resource server; README.md ("Signing in with an identity
//! provider") has the reference of every key. With `oauth`, policies may name any team or
//! organisation (they also come from claims).
//!
//! ## Server names
//!
//! With `public`, server names are not secret: any caller the service admits may open
//! `/mcp/<server>` of any server (and finds nothing there it may not see), and `/ready`
//! and `/metrics` list every server without a key. With `private`, a server whose
//! tools, prompts and resources the caller's permissions all hide (no rule or default
//! level gives it `read` on any name of that server) is answered exactly as a server that
//! does not exist, on every endpoint (`/mcp/<server>`, `/sse/<server>`, `/ws/<server>`,
//! `?server=` and `/v1/mcp/servers` of REST); `/ready` and `/metrics` name only the
//! servers the caller's key may see, and no server (nor caller) without a valid key.
//! `/health` never names anything.
//!
//! ## Authentication
//!
//! With no `api_keys` and no `oauth`, every client is unauthenticated. Then a `listen`
//! address that is not loopback is refused unless `allow_unauthenticated: true` says that
//! this is meant.

// Layout: this file holds the public types and the steps of `Settings::parse`; the parts
// of those steps live in
// - `env`: `${NAME}` substitution in the YAML tree;
// - `place`: paths into the document (`servers[2].auth`) and the problems found at them;
// - `locate`: the line of a path in the text;
// - `raw`: the raw structs serde reads, a node at a time;
// - `convert`: the checks, and the conversion of raw values into runtime values.
mod convert;
mod env;
mod locate;
mod place;
mod raw;
#[cfg(test)]
mod tests;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};
use yaml_serde::Value;

use crate::core::mcp::permissions::KeyDigest;
use crate::core::mcp::{
    GatewayOptions, McpGateway, McpResult, McpServerConfig, PermissionManager, ServerOptions,
    Transport,
};

use self::convert::convert;
use self::env::expand_env;
use self::place::{Place, Problems};
use self::raw::{Node, RawSettings};

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

/// Whether callers may learn the names of servers they may not use (`server_names`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServerNames {
    /// Names are not secret: every admitted caller may learn every server's name.
    Public,
    /// A server a caller may see nothing of is answered as one that does not exist, and
    /// the operational endpoints name only the servers the caller's key may see.
    Private,
}

impl ServerNames {
    /// The default for a `listen` address: `public` on loopback (only this machine's
    /// users can ask), `private` otherwise.
    pub fn default_for(listen: SocketAddr) -> Self {
        if listen.ip().is_loopback() {
            ServerNames::Public
        } else {
            ServerNames::Private
        }
    }
}

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
    /// The gateway as an OAuth 2.1 resource server, when configured.
    pub oauth: Option<crate::identity::config::OAuthSettings>,
    /// The largest request body the service accepts.
    pub max_body_bytes: usize,
    /// A client session idle this long is closed.
    pub session_idle_timeout: Duration,
    /// Open client sessions per API key.
    pub max_sessions_per_key: usize,
    /// Whether callers may learn the names of servers they may not use.
    pub server_names: ServerNames,
    /// The store of run-time state (`store`), when configured: see `crate::store`.
    pub store: Option<crate::store::config::StoreSettings>,
}

/// One upstream server: its configuration and its options.
#[derive(Clone)]
pub struct ServerSettings {
    /// The configuration the gateway registers. For a stdio server `url` is the command
    /// line and `static_headers` are the environment variables of the process.
    pub config: McpServerConfig,
    /// The gateway's server options with this server's protocol preference.
    pub options: ServerOptions,
    /// Calls go out with the caller's token exchanged for one meant for this server.
    pub token_exchange: Option<crate::identity::config::TokenExchangeSettings>,
    /// Each caller authorizes the server with their own account (`per_user`); calls
    /// carry that caller's token.
    pub per_user: Option<PerUserSettings>,
}

/// `servers[].per_user`: how the gateway is known to the server's authorization server,
/// and where people come back to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PerUserSettings {
    /// The gateway's callback (`…/oauth/callback`); default: `public_url`'s origin, else
    /// the `listen` address, plus `/oauth/callback`.
    pub redirect_uri: Option<String>,
    /// How the gateway registers there and which scopes it asks for.
    pub registration: Option<crate::core::mcp::auth::OAuthConfig>,
}

impl fmt::Debug for ServerSettings {
    /// Prints no secret: credentials are redacted by
    /// [`AuthConfig`](crate::core::mcp::AuthConfig)'s `Debug`, headers and environment
    /// variables are shown by name only, and a URL's password and query values are masked.
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
            .field("token_exchange", &self.token_exchange)
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

/// One problem a line, as `SettingsError::Invalid` prints them.
pub(crate) fn lines(problems: &[Problem]) -> String {
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
        let mut settings = Self::parse(&text, &|name| std::env::var(name).ok())?;
        if let Some(crate::store::config::StoreSettings {
            database: crate::store::config::Database::Sqlite { file },
            ..
        }) = settings.store.as_mut()
        {
            if file.is_relative() {
                *file = path.parent().unwrap_or(Path::new(".")).join(&*file);
            }
        }
        Ok(settings)
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
    /// [`McpError::InvalidConfig`](crate::core::mcp::McpError::InvalidConfig) if the
    /// gateway refuses a value (validation here makes that a bug).
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
        let presented = KeyDigest::of(presented);
        let mut found = Choice::from(0);
        let mut index = 0u64;
        for (i, key) in (0u64..).zip(&self.api_keys) {
            let equal = key.digest.as_bytes().ct_eq(presented.as_bytes());
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
