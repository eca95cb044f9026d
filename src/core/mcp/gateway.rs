//! [`McpGateway`]: the registry of upstream servers and the operations across them.
//!
//! Owns the server registry, aliases (one level: an alias names a server, never another
//! alias, and never shadows a server), tool names across servers
//! (`<server><separator><tool>`, split back exactly), discovery fan-out (concurrent, each
//! server bounded by its own timeout, failures returned as data), routing of calls, and
//! the permission-checked forms of listing and calling. The shared pooled HTTP client
//! (with its bounds: idle timeout, idle connections per host, connect timeout, redirects
//! within their origin) and the root cancellation token of every upstream task live
//! here.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::config::{McpServerConfig, Transport};
use super::error::{McpError, McpResult, ServerFailure};
use super::limits::{
    DEFAULT_UPSTREAM_POOL_IDLE_TIMEOUT, MAX_UPSTREAM_REDIRECTS, UPSTREAM_CONNECT_TIMEOUT,
    UPSTREAM_POOL_MAX_IDLE_PER_HOST,
};
use super::permissions::{Caller, PermissionLevel, PermissionManager};
use super::server::{CallOptions, McpServer, ServerOptions, ServerState};
use super::tools::{Tool, ToolResult};

/// The default separator between server and tool in aggregated names.
pub const DEFAULT_SEPARATOR: &str = "__";

/// Options of a gateway.
#[derive(Debug, Clone)]
pub struct GatewayOptions {
    /// Options of every server registered without options of its own.
    pub server: ServerOptions,
    /// Separates server and tool in aggregated names; 1 to 4 characters of
    /// `[A-Za-z0-9_.-]`.
    pub separator: String,
    /// How long an idle connection to an upstream HTTP server stays in the shared pool
    /// ([`DEFAULT_UPSTREAM_POOL_IDLE_TIMEOUT`] by default).
    pub upstream_pool_idle_timeout: Duration,
}

impl Default for GatewayOptions {
    fn default() -> Self {
        GatewayOptions {
            server: ServerOptions::default(),
            separator: DEFAULT_SEPARATOR.to_string(),
            upstream_pool_idle_timeout: DEFAULT_UPSTREAM_POOL_IDLE_TIMEOUT,
        }
    }
}

/// A registered server as listings show it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ServerInfo {
    /// The server's name.
    pub name: String,
    /// Its URL or command line, with credentials in it masked.
    pub url: String,
    /// Its transport.
    pub transport: Transport,
    /// Whether it is enabled.
    pub enabled: bool,
    /// Its connection state.
    pub state: ServerState,
    /// The aliases that name it.
    pub aliases: Vec<String>,
}

/// The result of discovery across servers: what was found, and which servers failed.
#[derive(Debug, Default)]
pub struct ToolDiscovery {
    /// Every tool of every server that answered, with `server_name` and
    /// `qualified_name` set.
    pub tools: Vec<Tool>,
    /// The servers that did not answer, and why.
    pub failures: Vec<ServerFailure>,
}

/// The gateway. Cheap to clone: clones share everything.
#[derive(Clone)]
pub struct McpGateway {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for McpGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let servers: Vec<String> = self
            .inner
            .servers
            .read()
            .map(|s| s.keys().cloned().collect())
            .unwrap_or_default();
        f.debug_struct("McpGateway")
            .field("servers", &servers)
            .finish()
    }
}

struct Inner {
    servers: RwLock<BTreeMap<String, McpServer>>,
    aliases: RwLock<HashMap<String, String>>,
    permissions: RwLock<Option<Arc<PermissionManager>>>,
    http: reqwest::Client,
    options: GatewayOptions,
    tasks: TaskTracker,
    cancel: CancellationToken,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Stops every upstream task; stdio servers run their shutdown sequence.
        self.cancel.cancel();
    }
}

impl Default for McpGateway {
    fn default() -> Self {
        Self::new()
    }
}

impl McpGateway {
    /// A gateway with default options and no servers.
    pub fn new() -> Self {
        Self::build(GatewayOptions::default())
    }

    /// A gateway with the given options.
    ///
    /// # Errors
    /// [`McpError::InvalidConfig`] when the separator is not 1 to 4 characters of
    /// `[A-Za-z0-9_.-]`.
    pub fn with_options(options: GatewayOptions) -> McpResult<Self> {
        let sep = &options.separator;
        if sep.is_empty()
            || sep.len() > 4
            || !sep
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        {
            return Err(McpError::config(format!(
                "separator '{sep}' must be 1 to 4 characters of [A-Za-z0-9_.-]"
            )));
        }
        Ok(Self::build(options))
    }

    fn build(options: GatewayOptions) -> Self {
        // The one client of every upstream request (MCP and OAuth token requests), so
        // its bounds hold for all: idle connections expire, the idle pool per host is
        // capped, and redirects stay within their origin (`auth::same_origin_redirects`).
        let http = reqwest::Client::builder()
            .tcp_nodelay(true)
            .pool_idle_timeout(options.upstream_pool_idle_timeout)
            .pool_max_idle_per_host(UPSTREAM_POOL_MAX_IDLE_PER_HOST)
            .connect_timeout(UPSTREAM_CONNECT_TIMEOUT)
            .redirect(super::auth::same_origin_redirects(MAX_UPSTREAM_REDIRECTS))
            .build()
            .unwrap_or_else(|error| {
                // Building fails only when the TLS backend cannot start: then fall back
                // to a client that follows no redirect at all, and say so.
                tracing::error!(%error, "cannot build the upstream HTTP client as configured");
                reqwest::Client::builder()
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .unwrap_or_default()
            });
        McpGateway {
            inner: Arc::new(Inner {
                servers: RwLock::new(BTreeMap::new()),
                aliases: RwLock::new(HashMap::new()),
                permissions: RwLock::new(None),
                http,
                options,
                tasks: TaskTracker::new(),
                cancel: CancellationToken::new(),
            }),
        }
    }

    /// The separator of aggregated tool names.
    pub fn separator(&self) -> &str {
        &self.inner.options.separator
    }

    /// Registers a server. Nothing is contacted until the server is first used.
    ///
    /// # Errors
    /// [`McpError::InvalidConfig`] when the configuration is invalid, the name is taken
    /// (by a server or an alias), or the name contains the separator.
    pub async fn register_server(&self, config: McpServerConfig) -> McpResult<()> {
        self.register_server_with_options(config, self.inner.options.server.clone())
            .await
    }

    /// Registers a server with options of its own (another protocol preference, cache
    /// TTL, retry policy or size cap than the gateway's).
    ///
    /// # Errors
    /// As [`McpGateway::register_server`].
    pub async fn register_server_with_options(
        &self,
        config: McpServerConfig,
        options: ServerOptions,
    ) -> McpResult<()> {
        self.check_name_against_separator(&config.name)?;
        let server = McpServer::new(
            config,
            self.inner.http.clone(),
            options,
            self.inner.tasks.clone(),
            self.inner.cancel.child_token(),
        )?;
        let name = server.name().to_string();
        if self.read_aliases().contains_key(&name) {
            return Err(McpError::config(format!("'{name}' is already an alias")));
        }
        let mut servers = self
            .inner
            .servers
            .write()
            .map_err(|_| McpError::config("the server registry is poisoned"))?;
        if servers.contains_key(&name) {
            return Err(McpError::config(format!(
                "a server named '{name}' is already registered"
            )));
        }
        servers.insert(name.clone(), server);
        tracing::info!(server = %name, "registered MCP server");
        Ok(())
    }

    /// Unregisters a server (and its aliases), closing its connection or stopping its
    /// process. Returns whether it was registered.
    pub async fn unregister_server(&self, name: &str) -> bool {
        let removed = self
            .inner
            .servers
            .write()
            .ok()
            .and_then(|mut s| s.remove(name));
        let Some(server) = removed else {
            return false;
        };
        if let Ok(mut aliases) = self.inner.aliases.write() {
            aliases.retain(|_, target| target != name);
        }
        server.close().await;
        tracing::info!(server = %name, "unregistered MCP server");
        true
    }

    /// A server by name or alias.
    ///
    /// # Errors
    /// [`McpError::ServerNotFound`].
    pub async fn get_server(&self, name: &str) -> McpResult<McpServer> {
        self.resolve(name)
    }

    /// The names of the registered servers, sorted.
    pub fn server_names(&self) -> Vec<String> {
        self.inner
            .servers
            .read()
            .map(|s| s.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// A server by name or alias, without waiting (for callers that are not async or
    /// must not yield).
    pub fn server_now(&self, name: &str) -> Option<McpServer> {
        self.resolve(name).ok()
    }

    /// Every registered server, sorted by name.
    pub async fn list_servers(&self) -> Vec<ServerInfo> {
        let aliases = self.read_aliases();
        self.servers()
            .into_iter()
            .map(|server| {
                let config = server.config();
                let mut names: Vec<String> = aliases
                    .iter()
                    .filter(|(_, target)| *target == &config.name)
                    .map(|(alias, _)| alias.clone())
                    .collect();
                names.sort();
                ServerInfo {
                    name: config.name.clone(),
                    url: masked_url(config),
                    transport: config.transport,
                    enabled: config.enabled,
                    state: server.state(),
                    aliases: names,
                }
            })
            .collect()
    }

    /// Adds an alias for a server.
    ///
    /// # Errors
    /// [`McpError::InvalidConfig`] when the alias is a server's name, already an alias,
    /// invalid as a name, or names itself; [`McpError::ServerNotFound`] when the target
    /// is not a registered server (aliases of aliases are refused the same way).
    pub async fn add_alias(&self, alias: &str, server: &str) -> McpResult<()> {
        super::config::validate_server_name(alias)?;
        self.check_name_against_separator(alias)?;
        let servers = self
            .inner
            .servers
            .read()
            .map_err(|_| McpError::config("the server registry is poisoned"))?;
        if servers.contains_key(alias) {
            return Err(McpError::config(format!(
                "alias '{alias}' would shadow the server of that name"
            )));
        }
        if !servers.contains_key(server) {
            return Err(McpError::ServerNotFound {
                server_name: server.to_string(),
            });
        }
        let mut aliases = self
            .inner
            .aliases
            .write()
            .map_err(|_| McpError::config("the alias table is poisoned"))?;
        match aliases.get(alias) {
            Some(existing) if existing == server => Ok(()),
            Some(existing) => Err(McpError::config(format!(
                "alias '{alias}' already names server '{existing}'"
            ))),
            None => {
                aliases.insert(alias.to_string(), server.to_string());
                Ok(())
            }
        }
    }

    /// Removes an alias; returns whether it existed.
    pub async fn remove_alias(&self, alias: &str) -> bool {
        self.inner
            .aliases
            .write()
            .map(|mut a| a.remove(alias).is_some())
            .unwrap_or(false)
    }

    /// Every tool of every enabled server, asked concurrently (cached per server).
    /// A server that fails is logged and left out; see [`McpGateway::discover_tools`]
    /// to get the failures as data.
    ///
    /// # Errors
    /// [`McpError::DiscoveryFailed`] when every enabled server failed.
    pub async fn list_all_tools(&self) -> McpResult<Vec<Tool>> {
        let discovery = self.discover_tools().await;
        if discovery.tools.is_empty() && !discovery.failures.is_empty() {
            let attempted = self.servers().iter().filter(|s| s.is_enabled()).count();
            if discovery.failures.len() == attempted {
                return Err(McpError::DiscoveryFailed {
                    failures: discovery.failures,
                });
            }
        }
        for failure in &discovery.failures {
            tracing::warn!(server = %failure.server_name, error = %failure.error, "tool discovery failed");
        }
        Ok(discovery.tools)
    }

    /// Every tool of every enabled server, and the servers that failed.
    pub async fn discover_tools(&self) -> ToolDiscovery {
        let servers: Vec<McpServer> = self
            .servers()
            .into_iter()
            .filter(|s| s.is_enabled())
            .collect();
        let lists = futures::future::join_all(servers.iter().map(|s| s.list_tools())).await;
        let mut discovery = ToolDiscovery::default();
        for (server, list) in servers.iter().zip(lists) {
            match list {
                Ok(snapshot) => discovery.tools.extend(snapshot.tools().iter().map(|tool| {
                    let mut tool = tool.clone();
                    tool.qualified_name = Some(self.qualified_name(server.name(), &tool.name));
                    tool.server_name = Some(server.name().to_string());
                    tool
                })),
                Err(error) => discovery.failures.push(ServerFailure {
                    server_name: server.name().to_string(),
                    error,
                }),
            }
        }
        discovery
    }

    /// Calls a tool on a server (or alias), checking the arguments first.
    ///
    /// # Errors
    /// [`McpError::ServerNotFound`], [`McpError::ServerDisabled`],
    /// [`McpError::ToolNotFound`], [`McpError::InvalidArguments`],
    /// [`McpError::ToolExecutionError`], or the transport's error.
    pub async fn call_tool(
        &self,
        server: &str,
        tool: &str,
        arguments: Value,
    ) -> McpResult<ToolResult> {
        self.resolve(server)?.call_tool(tool, arguments).await
    }

    /// [`McpGateway::call_tool`] with progress routing, a timeout or `_meta`.
    ///
    /// # Errors
    /// As [`McpGateway::call_tool`].
    pub async fn call_tool_with(
        &self,
        server: &str,
        tool: &str,
        arguments: Value,
        options: CallOptions,
    ) -> McpResult<ToolResult> {
        self.resolve(server)?
            .call_tool_with(tool, arguments, options)
            .await
    }

    /// Calls a tool by its aggregated name (`<server><separator><tool>`).
    ///
    /// # Errors
    /// [`McpError::ToolNotFound`] when the name does not split; otherwise as
    /// [`McpGateway::call_tool`].
    pub async fn call_qualified_tool(
        &self,
        qualified: &str,
        arguments: Value,
    ) -> McpResult<ToolResult> {
        let (server, tool) =
            self.split_qualified_name(qualified)
                .ok_or_else(|| McpError::ToolNotFound {
                    server_name: String::new(),
                    tool_name: qualified.to_string(),
                })?;
        self.call_tool(server, tool, arguments).await
    }

    /// `<server><separator><tool>`.
    pub fn qualified_name(&self, server: &str, tool: &str) -> String {
        let sep = self.separator();
        let mut name = String::with_capacity(server.len() + sep.len() + tool.len());
        name.push_str(server);
        name.push_str(sep);
        name.push_str(tool);
        name
    }

    /// Splits an aggregated name at the first separator. Exact, because server names
    /// can neither contain the separator nor end with a prefix of it.
    pub fn split_qualified_name<'a>(&self, qualified: &'a str) -> Option<(&'a str, &'a str)> {
        let (server, tool) = qualified.split_once(self.separator())?;
        (!server.is_empty() && !tool.is_empty()).then_some((server, tool))
    }

    /// Installs the permission manager that the `*_as` methods consult.
    pub fn set_permissions(&self, manager: PermissionManager) {
        if let Ok(mut slot) = self.inner.permissions.write() {
            *slot = Some(Arc::new(manager));
        }
    }

    /// The caller's level for a tool: from the installed manager, or `Execute` when
    /// there is none.
    pub fn access_level(&self, caller: &Caller, server: &str, tool: &str) -> PermissionLevel {
        match self.inner.permissions.read().ok().and_then(|p| p.clone()) {
            Some(manager) => manager.resolve(caller, server, tool),
            None => PermissionLevel::Execute,
        }
    }

    /// The tools the caller may see (level `Read` or more).
    ///
    /// # Errors
    /// As [`McpGateway::list_all_tools`].
    pub async fn list_tools_as(&self, caller: &Caller) -> McpResult<Vec<Tool>> {
        let mut tools = self.list_all_tools().await?;
        tools.retain(|t| {
            let server = t.server_name.as_deref().unwrap_or_default();
            self.access_level(caller, server, &t.name) >= PermissionLevel::Read
        });
        Ok(tools)
    }

    /// Calls a tool if the caller may (level `Execute`). A tool the caller may not even
    /// see is answered as unknown, so its existence does not leak.
    ///
    /// # Errors
    /// [`McpError::ToolNotFound`] when the caller may not see the tool,
    /// [`McpError::PermissionDenied`] when it may see but not call it; otherwise as
    /// [`McpGateway::call_tool`].
    pub async fn call_tool_as(
        &self,
        caller: &Caller,
        server: &str,
        tool: &str,
        arguments: Value,
    ) -> McpResult<ToolResult> {
        let target = self.resolve(server)?;
        match self.access_level(caller, target.name(), tool) {
            PermissionLevel::Deny => Err(McpError::ToolNotFound {
                server_name: server.to_string(),
                tool_name: tool.to_string(),
            }),
            PermissionLevel::Read => Err(McpError::PermissionDenied {
                server_name: target.name().to_string(),
                tool_name: tool.to_string(),
                operation: "call",
                required: PermissionLevel::Execute,
            }),
            PermissionLevel::Execute | PermissionLevel::Admin => {
                target.call_tool(tool, arguments).await
            }
        }
    }

    /// Closes every server and waits (up to `grace`) for the upstream tasks to end.
    pub async fn shutdown(&self, grace: Duration) {
        let servers = self.servers();
        futures::future::join_all(servers.iter().map(McpServer::close)).await;
        self.inner.cancel.cancel();
        self.inner.tasks.close();
        let _ = tokio::time::timeout(grace, self.inner.tasks.wait()).await;
    }

    fn servers(&self) -> Vec<McpServer> {
        self.inner
            .servers
            .read()
            .map(|s| s.values().cloned().collect())
            .unwrap_or_default()
    }

    fn read_aliases(&self) -> HashMap<String, String> {
        self.inner
            .aliases
            .read()
            .map(|a| a.clone())
            .unwrap_or_default()
    }

    fn resolve(&self, name: &str) -> McpResult<McpServer> {
        let servers = self.inner.servers.read().ok();
        let found = servers.as_ref().and_then(|servers| {
            servers.get(name).cloned().or_else(|| {
                let aliases = self.inner.aliases.read().ok()?;
                servers.get(aliases.get(name)?).cloned()
            })
        });
        found.ok_or_else(|| McpError::ServerNotFound {
            server_name: name.to_string(),
        })
    }

    fn check_name_against_separator(&self, name: &str) -> McpResult<()> {
        let sep = self.separator();
        let mut probe = String::with_capacity(name.len() + sep.len());
        probe.push_str(name);
        probe.push_str(&sep[..sep.len() - 1]);
        if probe.contains(sep) {
            return Err(McpError::config(format!(
                "server name '{name}' cannot contain (or end with part of) the separator '{sep}'"
            )));
        }
        Ok(())
    }
}

/// A server's URL or command line for listings: userinfo in URLs and the values of
/// `NAME=value` assignments in command lines are masked.
fn masked_url(config: &McpServerConfig) -> String {
    match config.transport {
        Transport::Stdio => match super::transport::stdio::CommandLine::parse(&config.url) {
            Ok(command) => {
                let mut words: Vec<String> = command
                    .env
                    .iter()
                    .map(|(k, _)| format!("{k}=***"))
                    .collect();
                words.push(shell_words::quote(&command.program).into_owned());
                words.extend(
                    command
                        .args
                        .iter()
                        .map(|a| shell_words::quote(a).into_owned()),
                );
                words.join(" ")
            }
            Err(_) => "***".to_string(),
        },
        _ => match url::Url::parse(&config.url) {
            Ok(mut url) => {
                if url.password().is_some() {
                    let _ = url.set_password(Some("***"));
                }
                if url.query().is_some() {
                    url.set_query(Some("***"));
                }
                url.to_string()
            }
            Err(_) => "***".to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn names_split_back_exactly() {
        let gateway = McpGateway::new();
        assert_eq!(gateway.qualified_name("fs", "read_file"), "fs__read_file");
        assert_eq!(
            gateway.split_qualified_name("fs__read__file"),
            Some(("fs", "read__file"))
        );
        assert_eq!(gateway.split_qualified_name("nosep"), None);
        for bad in ["a__b", "a_"] {
            let err = gateway
                .register_server(McpServerConfig::new(bad, "http://127.0.0.1:9/mcp"))
                .await
                .unwrap_err();
            assert!(err.to_string().contains("separator"), "{err}");
        }
        gateway
            .register_server(McpServerConfig::new("my_fs", "http://127.0.0.1:9/mcp"))
            .await
            .unwrap();
        let dotted = McpGateway::with_options(GatewayOptions {
            separator: ".".into(),
            ..GatewayOptions::default()
        })
        .unwrap();
        assert_eq!(dotted.split_qualified_name("fs.a.b"), Some(("fs", "a.b")));
        assert!(McpGateway::with_options(GatewayOptions {
            separator: "/".into(),
            ..GatewayOptions::default()
        })
        .is_err());
    }

    #[tokio::test]
    async fn registry_and_aliases() {
        let gateway = McpGateway::new();
        gateway
            .register_server(McpServerConfig::new("filesystem", "http://127.0.0.1:9/mcp"))
            .await
            .unwrap();
        gateway
            .register_server(
                McpServerConfig::new("db", "http://127.0.0.1:9/mcp").with_enabled(false),
            )
            .await
            .unwrap();
        let dup = gateway
            .register_server(McpServerConfig::new("filesystem", "http://127.0.0.1:9/mcp"))
            .await;
        assert!(matches!(dup, Err(McpError::InvalidConfig { .. })));
        gateway.add_alias("fs", "filesystem").await.unwrap();
        gateway.add_alias("fs", "filesystem").await.unwrap();
        assert!(gateway.add_alias("fs", "db").await.is_err());
        assert!(
            gateway.add_alias("db", "filesystem").await.is_err(),
            "shadows a server"
        );
        assert!(
            matches!(
                gateway.add_alias("x", "fs").await,
                Err(McpError::ServerNotFound { .. })
            ),
            "alias of an alias"
        );
        assert!(gateway
            .register_server(McpServerConfig::new("fs", "http://127.0.0.1:9/mcp"))
            .await
            .is_err());
        assert_eq!(gateway.get_server("fs").await.unwrap().name(), "filesystem");
        let listed = gateway.list_servers().await;
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[1].aliases, vec!["fs".to_string()]);
        assert_eq!(listed[0].state, ServerState::Disabled);
        assert!(matches!(
            gateway.call_tool("db", "x", serde_json::json!({})).await,
            Err(McpError::ServerDisabled { .. })
        ));
        assert!(matches!(
            gateway.call_tool("nope", "x", serde_json::json!({})).await,
            Err(McpError::ServerNotFound { .. })
        ));
        assert!(gateway.unregister_server("filesystem").await);
        assert!(!gateway.unregister_server("filesystem").await);
        assert!(
            gateway.get_server("fs").await.is_err(),
            "aliases go with their server"
        );
    }

    #[test]
    fn listings_mask_credentials() {
        let stdio = McpServerConfig::stdio("s", "TOKEN=abc123 node server.js --x");
        assert_eq!(masked_url(&stdio), "TOKEN=*** node server.js --x");
        let http = McpServerConfig::new("h", "https://user:pw@example.com/mcp?key=abc");
        let masked = masked_url(&http);
        assert!(
            !masked.contains("pw") && !masked.contains("abc"),
            "{masked}"
        );
    }
}
