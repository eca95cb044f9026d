//! The MCP methods the gateway answers for downstream clients, whatever face they come
//! through (streamable HTTP, SSE, WebSocket, stdio): one place that turns a client's
//! JSON-RPC request into calls on the [`McpGateway`] and the caller's permissions.
//!
//! Owns: the handshake answers (`initialize`, `server/discover`), aggregated and
//! permission-filtered lists with the gateway's own opaque cursors, tool calls routed by
//! aggregated name, namespaced resource URIs and prompt names, and the mapping of
//! library errors to JSON-RPC errors. It does not know about HTTP, sessions or framing:
//! faces give it a [`Scope`], a [`Caller`] and a method, and get a result or an error.
//!
//! Names: on `/mcp` (scope [`Scope::All`]) tools and prompts are `<server><sep><name>`
//! and resource URIs are `mcpgw://<server>/<original uri>`; on `/mcp/<server>`
//! ([`Scope::Server`]) they are the server's own. Permissions are decided on the
//! server's own name, also when the client names it by an alias.
//!
//! # Hidden is missing
//! A tool, prompt, resource or completion reference the caller may not see (level below
//! `read`) is answered exactly as one the server does not have, and its server is not
//! asked. The gateway, not the upstream, answers for what does not exist, in one
//! wording per kind, with the name as the client sent it:
//! - tools: `-32602 Unknown tool: <name>` (from the cached tool list);
//! - `prompts/get`: `-32602 Unknown prompt: <name>`. When the upstream refuses a prompt
//!   (a JSON-RPC error), the gateway looks at the server's prompt list: a prompt not
//!   listed gets the gateway's answer, a listed one the upstream's own error;
//! - `resources/read`: `Resource not found: <uri>` with `data: {uri}`, code `-32002` for
//!   session-era clients and `-32602` for the stateless revision (SEP-2164). When the
//!   upstream refuses a read, a URI it does not list gets the gateway's answer, unless a
//!   resource template matches it and the upstream's error is not a not-found
//!   (`-32002`/`-32602`);
//! - `resources/subscribe`: the same not-found, decided before the upstream is asked: a
//!   URI must be listed or match a template. `resources/unsubscribe` of a hidden URI
//!   succeeds and does nothing, as it does for a URI nobody subscribed to;
//! - `completion/complete`: `-32602 Unknown completion reference`, decided before the
//!   upstream is asked: the prompt must be listed, the URI listed or a template (or
//!   matched by one).
//!
//! What can still tell them apart: time (a hidden item costs no upstream round trip),
//! and an unreachable upstream (a missing item then gets the transport's error).
//!
//! # Server names
//! With `server_names: private` ([`McpHandler::with_private_server_names`]) a server the
//! caller may see nothing of ([`McpHandler::may_know_server`]) is answered as a server
//! that does not exist, by every method; the faces do the same for their endpoints.

use std::sync::Arc;

use base64::Engine;
use serde_json::{json, Map, Value};
use tokio::sync::mpsc;

use crate::core::mcp::permissions::{LivePermissions, PermissionLevel};
use crate::core::mcp::protocol::{self, INVALID_PARAMS, METHOD_NOT_FOUND};
use crate::core::mcp::{
    CallOptions, ClientEra, McpError, McpGateway, McpServer, ServerNotification, ServerRequest,
};
use crate::identity::exchange::TokenExchanger;

/// Page size of the gateway's own pagination.
const PAGE_SIZE: usize = 200;
/// Scheme of namespaced resource URIs on `/mcp`.
const RESOURCE_SCHEME: &str = "mcpgw://";

/// Which servers a downstream endpoint exposes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every server, with aggregated names (`/mcp`).
    All,
    /// One server, with its own names (`/mcp/<server>`).
    Server(String),
}

pub use crate::identity::Identity;

/// A JSON-RPC error to send to the client.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientError {
    /// The code.
    pub code: i64,
    /// The message.
    pub message: String,
    /// Optional data.
    pub data: Option<Value>,
}

impl ClientError {
    fn new(code: i64, message: impl Into<String>) -> Self {
        ClientError {
            code,
            message: message.into(),
            data: None,
        }
    }

    fn unknown_tool(name: &str) -> Self {
        Self::new(INVALID_PARAMS, format!("Unknown tool: {name}"))
    }

    /// The error as a JSON-RPC error object.
    pub fn to_value(&self) -> Value {
        let mut error = json!({"code": self.code, "message": self.message});
        if let Some(data) = &self.data {
            error["data"] = data.clone();
        }
        error
    }
}

impl From<McpError> for ClientError {
    fn from(error: McpError) -> Self {
        let code = error.jsonrpc_code();
        let data = match &error {
            McpError::ToolExecutionError { data, .. } | McpError::Rpc { data, .. } => data.clone(),
            _ => None,
        };
        let message = match &error {
            // The upstream's own words, not wrapped in ours.
            McpError::ToolExecutionError { message, .. } | McpError::Rpc { message, .. } => {
                message.clone()
            }
            other => other.to_string(),
        };
        ClientError {
            code,
            message,
            data,
        }
    }
}

/// An upstream's request during a call, if the downstream client declared the capability
/// it needs (`sampling`, `elicitation`, `elicitation.url` for URL mode, `roots`); else the
/// request is answered upstream with `-32601` naming the capability, and never reaches the
/// client (issue 9: capabilities are the client's). `declared` is what the client sent in
/// `initialize`; `None` (not known) lets every request through.
pub fn relay_if_declared(
    request: ServerRequest,
    declared: Option<&Value>,
) -> Option<ServerRequest> {
    let Some(declared) = declared else {
        return Some(request);
    };
    let needed = match request.method.as_str() {
        "sampling/createMessage" => "/sampling",
        "roots/list" => "/roots",
        "elicitation/create"
            if request.params.get("mode").and_then(Value::as_str) == Some("url") =>
        {
            "/elicitation/url"
        }
        "elicitation/create" => "/elicitation",
        _ => return Some(request),
    };
    if declared.pointer(needed).is_some() {
        return Some(request);
    }
    let capability = needed.trim_start_matches('/').replace('/', ".");
    let _ = request
        .reply
        .send(Err(crate::core::mcp::protocol::RpcError {
            code: METHOD_NOT_FOUND,
            message: format!(
                "the client did not declare the '{capability}' capability that '{}' needs",
                request.method
            ),
            data: None,
        }));
    None
}

/// The result of one client request: a result or an error.
pub type Outcome = Result<Value, ClientError>;

/// Answers downstream MCP requests.
#[derive(Clone)]
pub struct McpHandler {
    gateway: McpGateway,
    /// The permissions in force (the admin API swaps them).
    permissions: LivePermissions,
    /// Servers whose calls carry the caller's token exchanged for theirs.
    exchanges: Arc<std::collections::HashMap<String, TokenExchanger>>,
    /// Servers whose calls carry each caller's own token (`per_user`).
    per_user: Arc<super::per_user::PerUserServers>,
    server_name: String,
    /// Whether servers the caller may see nothing of are answered as missing.
    private_server_names: bool,
    /// How many client subscriptions each (server, URI) has.
    subscriptions: Arc<std::sync::Mutex<std::collections::HashMap<(String, String), usize>>>,
    /// The most verbose log level (a `log_rank`) sent to each server's shared session: a
    /// client asking for fewer logs never lowers what the others get.
    upstream_log_levels: Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>>,
}

/// Where a tool call's upstream requests and notifications go, when the face can relay
/// them to its client.
#[derive(Debug, Default)]
pub struct CallChannels {
    /// Requests the upstream makes during the call (elicitation, sampling, roots).
    pub asker: Option<mpsc::UnboundedSender<ServerRequest>>,
    /// Notifications that come with the call (its log messages).
    pub notifications: Option<mpsc::UnboundedSender<ServerNotification>>,
}

/// Per-request context from the face.
pub struct RequestContext<'a> {
    /// Who is asking.
    pub identity: &'a Identity,
    /// Which servers the endpoint exposes.
    pub scope: &'a Scope,
    /// Where this request's progress notifications go (already addressed to the
    /// client's own progress token by the face).
    pub progress: Option<mpsc::UnboundedSender<Value>>,
}

impl McpHandler {
    /// A handler over a gateway, deciding with `permissions`.
    pub fn new(gateway: McpGateway, permissions: impl Into<LivePermissions>) -> Self {
        McpHandler {
            gateway,
            permissions: permissions.into(),
            exchanges: Arc::default(),
            per_user: Arc::default(),
            server_name: "litellm-mcp".to_string(),
            private_server_names: false,
            subscriptions: Arc::default(),
            upstream_log_levels: Arc::default(),
        }
    }

    /// With `private`, a server the caller may see nothing of is answered as one that
    /// does not exist (the `server_names: private` setting).
    #[must_use]
    pub fn with_private_server_names(mut self, private: bool) -> Self {
        self.private_server_names = private;
        self
    }

    /// Whether server names are private (`server_names: private`).
    pub fn server_names_are_private(&self) -> bool {
        self.private_server_names
    }

    /// Whether the caller may learn that `server` (a server's own name) exists: always
    /// when names are public; when they are private, when its permissions give it `read`
    /// on some name of the server (decided from the rules, without asking the server).
    pub fn may_know_server(&self, identity: &Identity, server: &str) -> bool {
        !self.private_server_names
            || self
                .permissions
                .load()
                .for_server(identity.digest.as_ref(), &identity.caller, server)
                .best_level()
                .min(identity.max_level)
                >= PermissionLevel::Read
    }

    /// The enabled server a client's server name (or alias) stands for, when the caller
    /// may know of it, as seen by a client of the era the request `params` show: its
    /// requests go through the upstream channel of that era.
    fn upstream_for(&self, identity: &Identity, server: &str, params: &Value) -> Option<McpServer> {
        self.gateway
            .server_now(server)
            .filter(McpServer::is_enabled)
            .filter(|upstream| self.may_know_server(identity, upstream.name()))
            .map(|upstream| upstream.for_client_era(client_era(params)))
    }

    /// Makes calls to these servers carry the caller's token exchanged for one meant
    /// for the server (RFC 8693).
    #[must_use]
    pub fn with_token_exchanges(
        mut self,
        exchanges: std::collections::HashMap<String, TokenExchanger>,
    ) -> Self {
        self.exchanges = Arc::new(exchanges);
        self
    }

    /// Makes calls to these servers carry each caller's own token.
    #[must_use]
    pub fn with_per_user(mut self, per_user: super::per_user::PerUserServers) -> Self {
        self.per_user = Arc::new(per_user);
        self
    }

    /// The per-user servers.
    pub fn per_user(&self) -> &super::per_user::PerUserServers {
        &self.per_user
    }

    /// The credential a request made for the caller to `upstream` carries: for a server
    /// with token exchange, the caller's token exchanged for the server's (an error when
    /// there is none to exchange); otherwise `None`, the server's configured credentials.
    async fn credential_for(
        &self,
        ctx: &RequestContext<'_>,
        upstream: &McpServer,
    ) -> Result<Option<crate::core::mcp::Secret>, ClientError> {
        let Some(exchanger) = self.exchanges.get(upstream.name()) else {
            return self
                .per_user
                .credential(ctx.identity, upstream.name())
                .await
                .map_err(ClientError::from);
        };
        exchanger
            .token_for(ctx.identity)
            .await
            .map(Some)
            .map_err(|message| {
                ClientError::from(McpError::AuthenticationError {
                    server_name: upstream.name().to_string(),
                    message,
                })
            })
    }

    /// After a request with an exchanged token: the upstream refused the token, so it is
    /// forgotten and the next request exchanges again.
    fn after_exchanged<T>(
        &self,
        identity: &Identity,
        upstream: &McpServer,
        exchanged: bool,
        outcome: &Result<T, McpError>,
    ) {
        if exchanged && matches!(outcome, Err(McpError::AuthenticationError { .. })) {
            if let Some(exchanger) = self.exchanges.get(upstream.name()) {
                exchanger.forget(identity);
            }
        }
    }

    /// Whether `upstream`'s requests act on behalf of each caller (token exchange).
    fn acts_for_callers(&self, upstream: &McpServer) -> bool {
        self.exchanges.contains_key(upstream.name()) || self.per_user.contains(upstream.name())
    }

    /// The gateway.
    pub fn gateway(&self) -> &McpGateway {
        &self.gateway
    }

    /// The permissions in force, for the admin API to swap.
    pub fn permissions(&self) -> &LivePermissions {
        &self.permissions
    }

    /// The caller's level for a tool (or prompt/resource) of a server.
    pub fn level(&self, identity: &Identity, server: &str, name: &str) -> PermissionLevel {
        self.permissions
            .load()
            .resolve_digest(identity.digest.as_ref(), &identity.caller, server, name)
            .min(identity.max_level)
    }

    /// Whether the caller may see anything of a server, judged by its cached tool list
    /// (a server whose tools the caller may not see is not announced to it). Without a
    /// cached list there is nothing to judge by, and the answer is yes.
    pub fn may_see_server(&self, identity: &Identity, server: &str) -> bool {
        match self
            .gateway
            .server_now(server)
            .and_then(|s| s.cached_tools())
        {
            Some(snapshot) => {
                let policies = self.permissions.load();
                let permissions =
                    policies.for_server(identity.digest.as_ref(), &identity.caller, server);
                snapshot.tools().iter().any(|t| {
                    permissions.level(&t.name).min(identity.max_level) >= PermissionLevel::Read
                })
            }
            None => true,
        }
    }

    /// The `initialize` result for a client that asked for `requested`.
    pub fn initialize_result(&self, requested: &str) -> Value {
        let version = if protocol::is_supported_session_version(requested) {
            requested
        } else {
            protocol::LATEST_SESSION_VERSION
        };
        json!({
            "protocolVersion": version,
            "capabilities": self.capabilities(),
            "serverInfo": {"name": self.server_name, "version": env!("CARGO_PKG_VERSION")},
        })
    }

    /// The `server/discover` result (stateless revision). Its capabilities are what the
    /// gateway serves in that revision: no `logging` (removed); `listChanged` and
    /// `subscribe` on `subscriptions/listen` (`super::listen`).
    pub fn discover_result(&self) -> Value {
        json!({
            "resultType": "complete",
            "supportedVersions": protocol::SUPPORTED_VERSIONS,
            "capabilities": {
                "tools": {"listChanged": true},
                "resources": {"subscribe": true, "listChanged": true},
                "prompts": {"listChanged": true},
                "completions": {},
            },
            "serverInfo": {"name": self.server_name, "version": env!("CARGO_PKG_VERSION")},
            "ttlMs": 0,
            "cacheScope": "private",
            "_meta": {"io.modelcontextprotocol/serverInfo": {"name": self.server_name, "version": env!("CARGO_PKG_VERSION")}},
        })
    }

    fn capabilities(&self) -> Value {
        json!({
            "tools": {"listChanged": true},
            "resources": {"listChanged": true, "subscribe": true},
            "prompts": {"listChanged": true},
            "completions": {},
            "logging": {},
        })
    }

    /// Answers one request (not the handshake, which needs the face's session).
    pub async fn handle(&self, ctx: RequestContext<'_>, method: &str, params: Value) -> Outcome {
        self.handle_call(ctx, method, params, CallChannels::default())
            .await
    }

    /// [`McpHandler::handle`], relaying what an upstream sends during a tool call to the
    /// face: its requests (elicitation, sampling, roots) to `channels.asker`, the
    /// notifications that come with the call (its log messages) to
    /// `channels.notifications`.
    pub async fn handle_call(
        &self,
        ctx: RequestContext<'_>,
        method: &str,
        params: Value,
        channels: CallChannels,
    ) -> Outcome {
        // Each method's future is boxed: the largest arm would otherwise set the size
        // of every request's future, and moving that copies it (docs/benchmarks.md).
        match method {
            protocol::METHOD_PING => Ok(json!({})),
            protocol::METHOD_TOOLS_LIST => Box::pin(self.list_tools(&ctx, &params)).await,
            protocol::METHOD_TOOLS_CALL => Box::pin(self.call_tool(ctx, params, channels)).await,
            "resources/list" => Box::pin(self.list_items(&ctx, &params, Kind::Resources)).await,
            "resources/templates/list" => {
                Box::pin(self.list_items(&ctx, &params, Kind::Templates)).await
            }
            "prompts/list" => Box::pin(self.list_items(&ctx, &params, Kind::Prompts)).await,
            "resources/read" => Box::pin(self.read_resource(&ctx, params)).await,
            "prompts/get" => Box::pin(self.get_prompt(&ctx, params)).await,
            "logging/setLevel" => Box::pin(self.set_level(&ctx, params)).await,
            "completion/complete" => Box::pin(self.complete(&ctx, params)).await,
            "resources/subscribe" => Box::pin(self.subscribe(&ctx, &params, true))
                .await
                .map(|_| json!({})),
            "resources/unsubscribe" => Box::pin(self.subscribe(&ctx, &params, false))
                .await
                .map(|_| json!({})),
            other => Err(ClientError::new(
                METHOD_NOT_FOUND,
                format!("Method not found: {other}"),
            )),
        }
    }

    /// Whether a tool call of a stateless client goes to an upstream channel of the
    /// stateless revision, whose `input_required` rounds pass through to the client (no
    /// bridging needed, so the call can stream its progress). False when the tool does
    /// not route, or the upstream cannot be reached to know.
    pub async fn call_goes_stateless(
        &self,
        identity: &Identity,
        scope: &Scope,
        params: &Value,
    ) -> bool {
        let Some(name) = params.get("name").and_then(Value::as_str) else {
            return false;
        };
        let Some((server, _)) = self.route(scope, name) else {
            return false;
        };
        let Some(upstream) = self.upstream_for(identity, server, params) else {
            return false;
        };
        upstream.connect().await.is_ok() && upstream.speaks_stateless() == Some(true)
    }

    /// The servers of the scope that the gateway has, that are enabled, and that the
    /// caller may know of.
    fn servers_in(&self, scope: &Scope, identity: &Identity) -> Vec<String> {
        match scope {
            Scope::All => self
                .gateway
                .server_names()
                .into_iter()
                .filter(|name| {
                    self.gateway
                        .server_now(name)
                        .is_some_and(|s| s.is_enabled())
                        && self.may_know_server(identity, name)
                })
                .collect(),
            Scope::Server(name) => vec![name.clone()],
        }
    }

    async fn list_tools(&self, ctx: &RequestContext<'_>, params: &Value) -> Outcome {
        let servers = self.servers_in(ctx.scope, ctx.identity);
        let lists = futures::future::join_all(servers.iter().map(|name| async move {
            match self.gateway.server_now(name) {
                Some(server) => (name, server.list_tools().await.ok()),
                None => (name, None),
            }
        }))
        .await;
        // One page of the visible tools, in server order; each tool's JSON was made
        // once per cached snapshot, and only the page's tools are copied.
        let start = page_start(params)?;
        let end = start.saturating_add(PAGE_SIZE);
        let (mut visible, mut page) = (0, Vec::new());
        let policies = self.permissions.load();
        'servers: for (server, snapshot) in lists {
            let Some(snapshot) = snapshot else { continue };
            let permissions =
                policies.for_server(ctx.identity.digest.as_ref(), &ctx.identity.caller, server);
            for (tool, json) in snapshot.tools().iter().zip(snapshot.tools_json()) {
                if permissions.level(&tool.name).min(ctx.identity.max_level) < PermissionLevel::Read
                {
                    continue;
                }
                if visible == end {
                    // One more than the page: there is a next page.
                    visible += 1;
                    break 'servers;
                }
                if visible >= start {
                    let mut value = json.clone();
                    if *ctx.scope == Scope::All {
                        value["name"] =
                            Value::from(self.gateway.qualified_name(server, &tool.name));
                    }
                    page.push(value);
                }
                visible += 1;
            }
        }
        Ok(page_result(page, "tools", end, visible))
    }

    /// Splits a client's tool or prompt name into (server, name) for the scope.
    fn route<'n>(&self, scope: &'n Scope, name: &'n str) -> Option<(&'n str, &'n str)> {
        match scope {
            Scope::All => self.gateway.split_qualified_name(name),
            Scope::Server(server) => Some((server.as_str(), name)),
        }
    }

    async fn call_tool(
        &self,
        ctx: RequestContext<'_>,
        params: Value,
        channels: CallChannels,
    ) -> Outcome {
        let name = params
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| ClientError::new(INVALID_PARAMS, "tools/call needs a 'name'"))?;
        let arguments = match params.get("arguments") {
            None | Some(Value::Null) => Value::Object(Map::new()),
            Some(arguments) => arguments.clone(),
        };
        let (server, tool) = self
            .route(ctx.scope, name)
            .ok_or_else(|| ClientError::unknown_tool(name))?;
        let upstream = self
            .upstream_for(ctx.identity, server, &params)
            .ok_or_else(|| ClientError::unknown_tool(name))?;
        match self.level(ctx.identity, upstream.name(), tool) {
            PermissionLevel::Deny => return Err(ClientError::unknown_tool(name)),
            PermissionLevel::Read => {
                return Err(ClientError::new(
                    McpError::PermissionDenied {
                        server_name: String::new(),
                        tool_name: String::new(),
                        operation: "call",
                        required: PermissionLevel::Execute,
                    }
                    .jsonrpc_code(),
                    format!("Permission denied: calling {name} needs the execute level"),
                ))
            }
            PermissionLevel::Execute | PermissionLevel::Admin => {}
        }
        let meta = params
            .get("_meta")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter(|(k, _)| *k != "progressToken")
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect::<Map<String, Value>>()
            })
            .filter(|m| !m.is_empty());
        let credential = self.credential_for(&ctx, &upstream).await?;
        // A stateless client answers its upstream's `input_required` rounds itself: they
        // reach it as the upstream made them, and its retry goes upstream as it is.
        let stateless = is_stateless(&params);
        let input = stateless
            .then(|| {
                params.as_object().map(|p| {
                    p.iter()
                        .filter(|(k, _)| *k == "inputResponses" || *k == "requestState")
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect::<Map<String, Value>>()
                })
            })
            .flatten()
            .filter(|m| !m.is_empty());
        let options = CallOptions {
            progress: ctx.progress,
            timeout: None,
            meta,
            server_requests: channels.asker,
            pass_input_required: stateless,
            input,
            notifications: channels.notifications,
            credential,
        };
        let exchanged = options.credential.is_some();
        let outcome = upstream.call_tool_with(tool, arguments, options).await;
        self.after_exchanged(ctx.identity, &upstream, exchanged, &outcome);
        match outcome {
            Ok(result) => Ok(result.into_value()),
            Err(McpError::ToolNotFound { .. }) => Err(ClientError::unknown_tool(name)),
            // The spec asks for argument problems as tool errors, so a model can correct
            // its call.
            Err(McpError::InvalidArguments { field, message, .. }) => Ok(json!({
                "content": [{"type": "text", "text": format!("Invalid arguments for {name}: {field}: {message}")}],
                "isError": true,
            })),
            Err(error) => Err(error.into()),
        }
    }

    async fn list_items(&self, ctx: &RequestContext<'_>, params: &Value, kind: Kind) -> Outcome {
        let servers = self.servers_in(ctx.scope, ctx.identity);
        let lists = futures::future::join_all(servers.iter().map(|name| async move {
            let server = self.gateway.server_now(name)?;
            let has = server
                .capabilities()
                .is_none_or(|c| c.get(kind.capability()).is_some());
            if !has {
                return None;
            }
            Some((
                name,
                fetch_all(&server, kind.method(), kind.field()).await.ok()?,
            ))
        }))
        .await;
        let mut items = Vec::new();
        for (server, list) in lists.into_iter().flatten() {
            for mut item in list {
                let key = item
                    .get(kind.key())
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if self.level(ctx.identity, server, key) < PermissionLevel::Read {
                    continue;
                }
                if *ctx.scope == Scope::All {
                    let renamed = match kind {
                        Kind::Prompts => self.gateway.qualified_name(server, key),
                        Kind::Resources | Kind::Templates => {
                            format!("{RESOURCE_SCHEME}{server}/{key}")
                        }
                    };
                    item[kind.key()] = Value::from(renamed);
                }
                items.push(item);
            }
        }
        paginate(items, params, kind.field())
    }

    async fn read_resource(&self, ctx: &RequestContext<'_>, mut params: Value) -> Outcome {
        let uri = params
            .get("uri")
            .and_then(Value::as_str)
            .ok_or_else(|| ClientError::new(INVALID_PARAMS, "resources/read needs a 'uri'"))?
            .to_string();
        let stateless = is_stateless(&params);
        let not_found = || resource_not_found(&uri, stateless);
        let (server, original) = self.route_resource(ctx.scope, &uri).ok_or_else(not_found)?;
        let upstream = self
            .upstream_for(ctx.identity, &server, &params)
            .ok_or_else(not_found)?;
        if self.level(ctx.identity, upstream.name(), &original) < PermissionLevel::Read {
            return Err(not_found());
        }
        params["uri"] = Value::from(original.as_str());
        let credential = self.credential_for(ctx, &upstream).await?;
        let exchanged = credential.is_some();
        let outcome = upstream
            .request_as("resources/read", Some(params), credential)
            .await;
        self.after_exchanged(ctx.identity, &upstream, exchanged, &outcome);
        let mut result = match outcome {
            Ok(result) => result,
            Err(McpError::Rpc { code, .. })
                if !self
                    .known_resource(ctx.identity, &upstream, &original, code)
                    .await =>
            {
                return Err(not_found())
            }
            Err(error) => return Err(error.into()),
        };
        if *ctx.scope == Scope::All {
            if let Some(contents) = result.get_mut("contents").and_then(Value::as_array_mut) {
                for content in contents {
                    if let Some(inner) = content.get("uri").and_then(Value::as_str) {
                        content["uri"] = Value::from(format!("{RESOURCE_SCHEME}{server}/{inner}"));
                    }
                }
            }
        }
        Ok(result)
    }

    /// After the upstream refused to read `uri` with `code`: whether the refusal is its
    /// own to tell (the URI is one it lists, or one a template matches and the error is
    /// not a not-found), rather than the gateway's not-found.
    async fn known_resource(
        &self,
        identity: &Identity,
        upstream: &McpServer,
        uri: &str,
        code: i64,
    ) -> bool {
        let catalog = self.resource_catalog(identity, upstream).await;
        catalog.lists(uri)
            || (catalog.matches_template(uri) && !matches!(code, -32002 | INVALID_PARAMS))
    }

    /// The server's resources and templates that the caller may see.
    async fn resource_catalog(&self, identity: &Identity, upstream: &McpServer) -> Catalog {
        let (resources, templates) = futures::future::join(
            self.visible_items(identity, upstream, Kind::Resources),
            self.visible_items(identity, upstream, Kind::Templates),
        )
        .await;
        Catalog {
            resources,
            templates,
        }
    }

    /// The keys (names, URIs, URI templates) of a server's list of `kind` that the caller
    /// may see; empty when the server does not have or cannot give the list.
    async fn visible_items(
        &self,
        identity: &Identity,
        upstream: &McpServer,
        kind: Kind,
    ) -> Vec<String> {
        let has = upstream
            .capabilities()
            .is_none_or(|c| c.get(kind.capability()).is_some());
        if !has {
            return Vec::new();
        }
        let Ok(items) = fetch_all(upstream, kind.method(), kind.field()).await else {
            return Vec::new();
        };
        items
            .iter()
            .filter_map(|item| item.get(kind.key()).and_then(Value::as_str))
            .filter(|key| self.level(identity, upstream.name(), key) >= PermissionLevel::Read)
            .map(str::to_string)
            .collect()
    }

    /// Splits a resource URI as the client sees it into (server, original URI).
    fn route_resource(&self, scope: &Scope, uri: &str) -> Option<(String, String)> {
        match scope {
            Scope::All => {
                let (server, original) = uri.strip_prefix(RESOURCE_SCHEME)?.split_once('/')?;
                Some((server.to_string(), original.to_string()))
            }
            Scope::Server(server) => Some((server.clone(), uri.to_string())),
        }
    }

    /// The URI a client of `scope` sees for a server's resource.
    pub fn client_uri(&self, scope: &Scope, server: &str, original: &str) -> String {
        match scope {
            Scope::All => format!("{RESOURCE_SCHEME}{server}/{original}"),
            Scope::Server(_) => original.to_string(),
        }
    }

    /// `resources/subscribe` and `resources/unsubscribe`. Upstream sessions are shared,
    /// so subscriptions are counted: the upstream hears every subscribe but only the
    /// last unsubscribe of a URI. Returns the server and its URI.
    ///
    /// A URI must be one the server lists or one of its templates matches to be
    /// subscribed to; a hidden one is answered alike. Unsubscribing from a hidden URI
    /// succeeds and changes nothing, as unsubscribing from one nobody subscribed to does.
    pub async fn subscribe(
        &self,
        ctx: &RequestContext<'_>,
        params: &Value,
        on: bool,
    ) -> Result<(String, String), ClientError> {
        let uri = params
            .get("uri")
            .and_then(Value::as_str)
            .ok_or_else(|| ClientError::new(INVALID_PARAMS, "a 'uri' is required"))?;
        let not_found = || resource_not_found(uri, is_stateless(params));
        let (server, original) = self.route_resource(ctx.scope, uri).ok_or_else(not_found)?;
        let upstream = self
            .upstream_for(ctx.identity, &server, params)
            .ok_or_else(not_found)?;
        // Counted and answered under the server's own name, not an alias.
        let server = upstream.name().to_string();
        let visible = self.level(ctx.identity, &server, &original) >= PermissionLevel::Read;
        if on {
            let known = visible && {
                let catalog = self.resource_catalog(ctx.identity, &upstream).await;
                catalog.lists(&original) || catalog.matches_template(&original)
            };
            if !known {
                return Err(not_found());
            }
            // A subscription is shared upstream by every client of the resource, so it
            // cannot be made on one caller's behalf.
            if self.acts_for_callers(&upstream) {
                return Err(ClientError::new(
                    METHOD_NOT_FOUND,
                    format!(
                        "resources/subscribe: server '{server}' acts on behalf of each caller \
                         (token exchange), and upstream subscriptions are shared"
                    ),
                ));
            }
        } else if !visible {
            return Ok((server, original));
        }
        let key = (server.clone(), original.clone());
        let forward = {
            let Ok(mut counts) = self.subscriptions.lock() else {
                return Err(ClientError::new(
                    protocol::INTERNAL_ERROR,
                    "subscriptions unavailable",
                ));
            };
            let count = counts.entry(key.clone()).or_insert(0);
            let before = *count;
            *count = if on {
                before + 1
            } else {
                before.saturating_sub(1)
            };
            let after = *count;
            if after == 0 {
                counts.remove(&key);
            }
            // Every subscribe goes upstream (servers treat it as idempotent, and some
            // answer one with the current state); only the last unsubscribe does.
            on || before == 1
        };
        if forward {
            let method = if on {
                "resources/subscribe"
            } else {
                "resources/unsubscribe"
            };
            upstream
                .request(method, Some(json!({"uri": original})))
                .await?;
        }
        Ok((server, original))
    }

    /// Gives up subscriptions of a client that is gone (no permission check: it only
    /// lowers counts, and unsubscribes upstream at the last one).
    pub async fn release_subscriptions(&self, scope: &Scope, uris: &[String]) {
        for uri in uris {
            let Some((server, original)) = self.route_resource(scope, uri) else {
                continue;
            };
            let key = (server.clone(), original.clone());
            let last = match self.subscriptions.lock() {
                Ok(mut counts) => match counts.get_mut(&key) {
                    Some(count) if *count > 1 => {
                        *count -= 1;
                        false
                    }
                    Some(_) => {
                        counts.remove(&key);
                        true
                    }
                    None => false,
                },
                Err(_) => false,
            };
            // Subscriptions are made by clients of the session era.
            let upstream = self
                .gateway
                .server_now(&server)
                .map(|s| s.for_client_era(ClientEra::Sessions));
            if let (true, Some(upstream)) = (last, upstream) {
                let _ = upstream
                    .request("resources/unsubscribe", Some(json!({"uri": original})))
                    .await;
            }
        }
    }

    /// `logging/setLevel`: passed to the servers in scope that log, but only when it asks
    /// for more than any client has asked of that server before. The upstream sessions
    /// are shared: a client that wants fewer logs must not silence them for the others,
    /// so its level is applied by its face, which filters what each client receives by
    /// the level it asked for.
    async fn set_level(&self, ctx: &RequestContext<'_>, params: Value) -> Outcome {
        let level = params
            .get("level")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if log_rank(level).is_none() {
            return Err(ClientError::new(
                INVALID_PARAMS,
                format!("Unknown log level: {level}"),
            ));
        }
        let servers = self.servers_in(ctx.scope, ctx.identity);
        let era = client_era(&params);
        futures::future::join_all(servers.iter().map(|name| async move {
            let Some(server) = self.gateway.server_now(name) else {
                return;
            };
            let server = server.for_client_era(era);
            let logs = server
                .capabilities()
                .is_some_and(|c| c.get("logging").is_some());
            let rank = log_rank(level).unwrap_or(0);
            let widens = logs
                && self.upstream_log_levels.lock().is_ok_and(|mut sent| {
                    let entry = sent.entry(server.name().to_string()).or_insert(usize::MAX);
                    let widens = rank < *entry;
                    if widens {
                        *entry = rank;
                    }
                    widens
                });
            if widens {
                let _ = server
                    .request("logging/setLevel", Some(json!({"level": level})))
                    .await;
            }
        }))
        .await;
        Ok(json!({}))
    }

    /// `completion/complete`: routed by the prompt name or resource URI of its `ref`,
    /// which is rewritten to the server's own. The reference must be one the caller may
    /// see and the server has (a listed prompt; a listed resource, a template, or a URI a
    /// template matches) before the upstream is asked.
    async fn complete(&self, ctx: &RequestContext<'_>, mut params: Value) -> Outcome {
        let reference = params.get("ref").cloned().unwrap_or(Value::Null);
        let unknown = || ClientError::new(INVALID_PARAMS, "Unknown completion reference");
        let (server, key, original) = match reference.get("type").and_then(Value::as_str) {
            Some("ref/prompt") => {
                let name = reference
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or_else(unknown)?;
                let (server, prompt) = self.route(ctx.scope, name).ok_or_else(unknown)?;
                (server.to_string(), "name", prompt.to_string())
            }
            Some("ref/resource") => {
                let uri = reference
                    .get("uri")
                    .and_then(Value::as_str)
                    .ok_or_else(unknown)?;
                let (server, original) = self.route_resource(ctx.scope, uri).ok_or_else(unknown)?;
                (server, "uri", original)
            }
            _ => return Err(unknown()),
        };
        let upstream = self
            .upstream_for(ctx.identity, &server, &params)
            .ok_or_else(unknown)?;
        if self.level(ctx.identity, upstream.name(), &original) < PermissionLevel::Read {
            return Err(unknown());
        }
        let known = if key == "name" {
            self.visible_items(ctx.identity, &upstream, Kind::Prompts)
                .await
                .contains(&original)
        } else {
            let catalog = self.resource_catalog(ctx.identity, &upstream).await;
            catalog.lists(&original)
                || catalog.templates.contains(&original)
                || catalog.matches_template(&original)
        };
        if !known {
            return Err(unknown());
        }
        params["ref"][key] = Value::from(original);
        let credential = self.credential_for(ctx, &upstream).await?;
        let exchanged = credential.is_some();
        let outcome = upstream
            .request_as("completion/complete", Some(params), credential)
            .await;
        self.after_exchanged(ctx.identity, &upstream, exchanged, &outcome);
        Ok(outcome?)
    }

    async fn get_prompt(&self, ctx: &RequestContext<'_>, mut params: Value) -> Outcome {
        let name = params
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| ClientError::new(INVALID_PARAMS, "prompts/get needs a 'name'"))?
            .to_string();
        let unknown = || ClientError::new(INVALID_PARAMS, format!("Unknown prompt: {name}"));
        let (server, prompt) = self.route(ctx.scope, &name).ok_or_else(unknown)?;
        let prompt = prompt.to_string();
        let upstream = self
            .upstream_for(ctx.identity, server, &params)
            .ok_or_else(unknown)?;
        if self.level(ctx.identity, upstream.name(), &prompt) < PermissionLevel::Read {
            return Err(unknown());
        }
        params["name"] = Value::from(prompt.as_str());
        let credential = self.credential_for(ctx, &upstream).await?;
        let exchanged = credential.is_some();
        let outcome = upstream
            .request_as("prompts/get", Some(params), credential)
            .await;
        self.after_exchanged(ctx.identity, &upstream, exchanged, &outcome);
        match outcome {
            Ok(result) => Ok(result),
            // The upstream refused: for a prompt it does not list, the gateway answers as
            // it does for a hidden one.
            Err(error @ McpError::Rpc { .. }) => {
                let listed = self
                    .visible_items(ctx.identity, &upstream, Kind::Prompts)
                    .await
                    .contains(&prompt);
                Err(if listed { error.into() } else { unknown() })
            }
            Err(error) => Err(error.into()),
        }
    }
}

/// A server's resources and resource templates that a caller may see.
struct Catalog {
    /// Listed resource URIs.
    resources: Vec<String>,
    /// URI templates (RFC 6570).
    templates: Vec<String>,
}

impl Catalog {
    fn lists(&self, uri: &str) -> bool {
        self.resources.iter().any(|listed| listed == uri)
    }

    fn matches_template(&self, uri: &str) -> bool {
        self.templates
            .iter()
            .any(|template| template_matches(template, uri))
    }
}

/// Whether a URI template (RFC 6570) could expand to `uri`: every expression (`{…}`)
/// matches any run of characters, the rest literally. Generous on purpose: it decides
/// only whether the upstream is asked.
fn template_matches(template: &str, uri: &str) -> bool {
    let mut pattern = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        pattern.push_str(&rest[..open]);
        pattern.push('*');
        rest = match rest[open..].find('}') {
            Some(close) => &rest[open + close + 1..],
            None => "",
        };
    }
    pattern.push_str(rest);
    crate::core::mcp::permissions::glob_match(&pattern, uri)
}

/// The era of the client that sent a request with these params.
fn client_era(params: &Value) -> ClientEra {
    if is_stateless(params) {
        ClientEra::Stateless
    } else {
        ClientEra::Sessions
    }
}

/// Whether a request comes from a client of the stateless revision (its `_meta` names
/// the protocol version).
fn is_stateless(params: &Value) -> bool {
    params
        .pointer("/_meta/io.modelcontextprotocol~1protocolVersion")
        .is_some()
}

/// The gateway's answer for a resource that is missing or hidden: `-32002` with the URI
/// as data for session-era clients, `-32602` for the stateless revision (SEP-2164).
fn resource_not_found(uri: &str, stateless: bool) -> ClientError {
    ClientError {
        code: if stateless { INVALID_PARAMS } else { -32002 },
        message: format!("Resource not found: {uri}"),
        data: Some(json!({"uri": uri})),
    }
}

/// The rank of a syslog level name as MCP uses them (`debug` lowest), or `None`.
pub fn log_rank(level: &str) -> Option<usize> {
    const LEVELS: [&str; 8] = [
        "debug",
        "info",
        "notice",
        "warning",
        "error",
        "critical",
        "alert",
        "emergency",
    ];
    LEVELS.iter().position(|l| *l == level)
}

/// The kinds of list that are aggregated like tools.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Resources,
    Templates,
    Prompts,
}

impl Kind {
    fn method(self) -> &'static str {
        match self {
            Kind::Resources => "resources/list",
            Kind::Templates => "resources/templates/list",
            Kind::Prompts => "prompts/list",
        }
    }
    fn field(self) -> &'static str {
        match self {
            Kind::Resources => "resources",
            Kind::Templates => "resourceTemplates",
            Kind::Prompts => "prompts",
        }
    }
    fn key(self) -> &'static str {
        match self {
            Kind::Resources => "uri",
            Kind::Templates => "uriTemplate",
            Kind::Prompts => "name",
        }
    }
    fn capability(self) -> &'static str {
        match self {
            Kind::Resources | Kind::Templates => "resources",
            Kind::Prompts => "prompts",
        }
    }
}

/// Every page of an upstream list.
async fn fetch_all(server: &McpServer, method: &str, field: &str) -> Result<Vec<Value>, McpError> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let params = cursor.as_ref().map(|c| json!({"cursor": c}));
        let page = server.request(method, params).await?;
        if let Some(list) = page.get(field).and_then(Value::as_array) {
            items.extend(list.iter().cloned());
        }
        match page.get("nextCursor").and_then(Value::as_str) {
            Some(next) if !next.is_empty() && cursor.as_deref() != Some(next) => {
                cursor = Some(next.to_string());
            }
            _ => break,
        }
    }
    Ok(items)
}

/// One page of `items` as `{<field>: [...], nextCursor?}`. The cursor is the gateway's
/// own: an opaque encoding of the offset.
fn paginate(mut items: Vec<Value>, params: &Value, field: &str) -> Outcome {
    let start = page_start(params)?;
    let end = start.saturating_add(PAGE_SIZE);
    let total = items.len();
    items.truncate(end);
    let page = items.split_off(start.min(items.len()));
    Ok(page_result(page, field, end, total))
}

/// Where the page the client asks for starts (its cursor decoded; 0 without one).
fn page_start(params: &Value) -> Result<usize, ClientError> {
    match params.get("cursor").and_then(Value::as_str) {
        None => Ok(0),
        Some(cursor) => {
            decode_cursor(cursor).ok_or_else(|| ClientError::new(INVALID_PARAMS, "Invalid cursor"))
        }
    }
}

/// A page that ends at offset `end` of `total` items, with a cursor when more follow.
fn page_result(page: Vec<Value>, field: &str, end: usize, total: usize) -> Value {
    let mut result = Map::new();
    result.insert(field.to_string(), Value::Array(page));
    if end < total {
        result.insert("nextCursor".into(), Value::from(encode_cursor(end)));
    }
    Value::Object(result)
}

fn encode_cursor(offset: usize) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("gw1:{offset}"))
}

fn decode_cursor(cursor: &str) -> Option<usize> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()?;
    std::str::from_utf8(&bytes)
        .ok()?
        .strip_prefix("gw1:")?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_match_what_they_could_expand_to() {
        assert!(template_matches("file:///{path}", "file:///a/b.txt"));
        assert!(template_matches(
            "db://{table}/rows{?limit}",
            "db://users/rows?limit=5"
        ));
        assert!(template_matches(
            "db://{table}/rows{?limit}",
            "db://users/rows"
        ));
        assert!(!template_matches("db://{table}/rows", "db://users/cols"));
        assert!(!template_matches("file:///{path}", "http://x/"));
        assert!(template_matches("fixture://hello", "fixture://hello"));
        assert!(!template_matches("fixture://hello", "fixture://hello2"));
    }

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let items: Vec<Value> = (0..450).map(Value::from).collect();
        let first = paginate(items.clone(), &json!({}), "tools").unwrap();
        assert_eq!(first["tools"].as_array().unwrap().len(), PAGE_SIZE);
        let cursor = first["nextCursor"].as_str().unwrap();
        let second = paginate(items.clone(), &json!({"cursor": cursor}), "tools").unwrap();
        assert_eq!(second["tools"][0], 200);
        let third = paginate(
            items.clone(),
            &json!({"cursor": second["nextCursor"]}),
            "tools",
        )
        .unwrap();
        assert_eq!(third["tools"].as_array().unwrap().len(), 50);
        assert!(third.get("nextCursor").is_none());
        assert!(paginate(items, &json!({"cursor": "bogus!"}), "tools").is_err());
    }
}
