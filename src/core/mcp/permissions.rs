//! Permission control: who may see and call which tool.
//!
//! Owns the decision, and only the decision: [`PermissionManager::resolve`] turns a
//! caller ([`Caller`]: API key, team, organisation) and a `server`/`tool` pair into a
//! [`PermissionLevel`]. It performs no I/O and knows nothing of requests.
//!
//! How a policy decides (`PermissionPolicy::decide`):
//! 1. a matching `Deny` rule always wins (an explicit deny, as in IAM);
//! 2. otherwise the most specific matching rule decides: the server part is compared
//!    first, then the tool part; a literal beats a pattern, and between patterns the one
//!    with more literal characters wins; equally specific rules give the lower level;
//! 3. otherwise the policy's `default_level`.
//!
//! How the manager combines policies ([`PermissionManager::resolve`]): the caller's level
//! is decided by its most specific policy (key, else team, else organisation, else the
//! manager's default level) and then bounded by the team's and the organisation's
//! policies: a key never gets more than its team, a team never more than its
//! organisation.
//!
//! API keys are held only as SHA-256 digests, so neither memory dumps nor `Debug` output
//! show them.
//!
//! [`LivePermissions`] is the service's handle on the manager in force: the admin API
//! swaps in a whole new manager at once (readers take a snapshot and never see half a
//! change, and no lock is held while they decide).

use std::collections::HashMap;
use std::fmt;

use sha2::{Digest, Sha256};

/// Access levels, ordered `Deny < Read < Execute < Admin`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum PermissionLevel {
    /// No access: the tool is invisible.
    Deny,
    /// May see the tool in lists, not call it.
    Read,
    /// May call the tool.
    Execute,
    /// Full access, including configuration.
    Admin,
}

impl fmt::Display for PermissionLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PermissionLevel::Deny => "deny",
            PermissionLevel::Read => "read",
            PermissionLevel::Execute => "execute",
            PermissionLevel::Admin => "admin",
        })
    }
}

/// One rule: a level for the tools whose server and tool names match the patterns.
/// `*` in a pattern matches any run of characters (`delete_*`, `*_admin`, `fs-*`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PermissionRule {
    /// Pattern for the server name.
    pub server: String,
    /// Pattern for the tool name.
    pub tool: String,
    /// The level the rule grants (or `Deny`).
    pub level: PermissionLevel,
}

impl PermissionRule {
    /// A rule for tools matching `tool` on servers matching `server`.
    pub fn new(server: impl Into<String>, tool: impl Into<String>, level: PermissionLevel) -> Self {
        PermissionRule {
            server: server.into(),
            tool: tool.into(),
            level,
        }
    }

    /// Whether the rule applies to this tool.
    pub fn matches(&self, server: &str, tool: &str) -> bool {
        glob_match(&self.server, server) && glob_match(&self.tool, tool)
    }

    fn specificity(&self) -> (Specificity, Specificity) {
        (Specificity::of(&self.server), Specificity::of(&self.tool))
    }
}

/// How specific a pattern is: literals beat patterns, then more literal characters win.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Specificity {
    literal: bool,
    literal_chars: usize,
}

impl Specificity {
    fn of(pattern: &str) -> Self {
        Specificity {
            literal: !pattern.contains('*'),
            literal_chars: pattern.chars().filter(|c| *c != '*').count(),
        }
    }
}

/// A named set of rules with a default level.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PermissionPolicy {
    /// The policy's name, for logs and errors.
    pub name: String,
    /// The level when no rule matches.
    pub default_level: PermissionLevel,
    /// The rules.
    pub rules: Vec<PermissionRule>,
}

impl PermissionPolicy {
    /// The level this policy gives for a tool (see the module docs).
    pub fn decide(&self, server: &str, tool: &str) -> PermissionLevel {
        decide_among(
            self.rules.iter().filter(|r| r.matches(server, tool)),
            self.default_level,
        )
    }

    /// The policy's rules for one server, ready to decide many of its tools.
    fn for_server(&self, server: &str) -> ServerPolicy<'_> {
        ServerPolicy {
            rules: self
                .rules
                .iter()
                .filter(|r| glob_match(&r.server, server))
                .collect(),
            default_level: self.default_level,
        }
    }
}

/// The decision among the rules that match a tool (see the module docs).
fn decide_among<'r>(
    matching: impl Iterator<Item = &'r PermissionRule>,
    default_level: PermissionLevel,
) -> PermissionLevel {
    let mut best: Option<(&PermissionRule, (Specificity, Specificity))> = None;
    for rule in matching {
        if rule.level == PermissionLevel::Deny {
            return PermissionLevel::Deny;
        }
        let specificity = rule.specificity();
        best = match best {
            Some((current, current_spec))
                if current_spec > specificity
                    || (current_spec == specificity && current.level <= rule.level) =>
            {
                Some((current, current_spec))
            }
            _ => Some((rule, specificity)),
        };
    }
    best.map_or(default_level, |(rule, _)| rule.level)
}

/// A policy's rules whose server pattern matches one server.
#[derive(Debug)]
struct ServerPolicy<'p> {
    rules: Vec<&'p PermissionRule>,
    default_level: PermissionLevel,
}

impl ServerPolicy<'_> {
    fn decide(&self, tool: &str) -> PermissionLevel {
        decide_among(
            self.rules
                .iter()
                .copied()
                .filter(|r| glob_match(&r.tool, tool)),
            self.default_level,
        )
    }
}

/// One caller's permissions on one server: the policies that apply, with only the rules
/// for that server, so that deciding many tools (a `tools/list`) matches each tool
/// against a few rules rather than against every rule of the policies.
#[derive(Debug)]
pub struct ServerPermissions<'p> {
    key: Option<ServerPolicy<'p>>,
    team: Option<ServerPolicy<'p>>,
    organization: Option<ServerPolicy<'p>>,
    default_level: PermissionLevel,
}

impl ServerPermissions<'_> {
    /// The caller's level for a tool of the server; the same as
    /// [`PermissionManager::resolve`] gives.
    pub fn level(&self, tool: &str) -> PermissionLevel {
        combine(
            self.key.as_ref().map(|p| p.decide(tool)),
            self.team.as_ref().map(|p| p.decide(tool)),
            self.organization.as_ref().map(|p| p.decide(tool)),
            self.default_level,
        )
    }
}

impl ServerPermissions<'_> {
    /// The highest level the caller has on any name of the server, as far as the rules
    /// tell without a list of names: the level of every name a rule of the server's
    /// policies matches (a pattern with each `*` filled by a character no name has) and
    /// of a name no rule names. Used to decide whether a caller may know that the server
    /// exists at all. Exact, except where only names that match two patterns of different
    /// policies at once would reach the highest level: then it answers lower.
    pub fn best_level(&self) -> PermissionLevel {
        const FILL: &str = "\u{1}";
        let patterns = [&self.key, &self.team, &self.organization]
            .into_iter()
            .flatten()
            .flat_map(|policy| policy.rules.iter().map(|rule| rule.tool.as_str()));
        std::iter::once(FILL.to_string())
            .chain(patterns.map(|pattern| pattern.replace('*', FILL)))
            .map(|name| self.level(&name))
            .max()
            .unwrap_or(PermissionLevel::Deny)
    }
}

/// The caller's level from its policies' decisions (see the module docs): the most
/// specific policy decides, bounded by the team's and the organisation's.
fn combine(
    key_level: Option<PermissionLevel>,
    team_level: Option<PermissionLevel>,
    organization_level: Option<PermissionLevel>,
    default_level: PermissionLevel,
) -> PermissionLevel {
    let own = key_level
        .or(team_level)
        .or(organization_level)
        .unwrap_or(default_level);
    [team_level, organization_level]
        .into_iter()
        .flatten()
        .fold(own, PermissionLevel::min)
}

/// Who is asking: an API key and the team and organisation it belongs to.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Caller {
    /// The API key, if the caller presented one.
    pub api_key: Option<String>,
    /// The caller's team.
    pub team: Option<String>,
    /// The caller's organisation.
    pub organization: Option<String>,
}

impl fmt::Debug for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Caller")
            .field("api_key", &self.api_key.as_ref().map(|_| "***"))
            .field("team", &self.team)
            .field("organization", &self.organization)
            .finish()
    }
}

impl Caller {
    /// A caller known by its API key only.
    pub fn key(api_key: impl Into<String>) -> Self {
        Caller {
            api_key: Some(api_key.into()),
            ..Caller::default()
        }
    }

    /// Sets the team.
    #[must_use]
    pub fn in_team(mut self, team: impl Into<String>) -> Self {
        self.team = Some(team.into());
        self
    }

    /// Sets the organisation.
    #[must_use]
    pub fn in_organization(mut self, organization: impl Into<String>) -> Self {
        self.organization = Some(organization.into());
        self
    }
}

/// The SHA-256 digest of an API key, as the manager stores it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyDigest([u8; 32]);

impl KeyDigest {
    /// Digests a key.
    pub fn of(api_key: &str) -> Self {
        KeyDigest(Sha256::digest(api_key.as_bytes()).into())
    }

    /// Parses a digest written as 64 hex digits (what `litellm-mcp hash-key` prints).
    pub fn from_hex(hex: &str) -> Option<Self> {
        let hex = hex.strip_prefix("sha256:").unwrap_or(hex);
        if hex.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(KeyDigest(out))
    }

    /// The digest's 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The digest as 64 hex digits.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Debug for KeyDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyDigest({}…)", &self.to_hex()[..8])
    }
}

/// The manager in force, replaced whole when the configuration changes. Cheap to clone
/// (clones share the same slot).
#[derive(Clone, Default)]
pub struct LivePermissions(std::sync::Arc<arc_swap::ArcSwap<PermissionManager>>);

impl LivePermissions {
    /// A slot holding `manager`.
    pub fn new(manager: PermissionManager) -> Self {
        LivePermissions(std::sync::Arc::new(arc_swap::ArcSwap::from_pointee(
            manager,
        )))
    }

    /// The manager in force now.
    pub fn load(&self) -> std::sync::Arc<PermissionManager> {
        self.0.load_full()
    }

    /// Puts `manager` in force for every clone of this handle.
    pub fn replace(&self, manager: PermissionManager) {
        self.0.store(std::sync::Arc::new(manager));
    }
}

impl fmt::Debug for LivePermissions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.load().fmt(f)
    }
}

impl From<std::sync::Arc<PermissionManager>> for LivePermissions {
    fn from(manager: std::sync::Arc<PermissionManager>) -> Self {
        LivePermissions(std::sync::Arc::new(arc_swap::ArcSwap::new(manager)))
    }
}

impl From<PermissionManager> for LivePermissions {
    fn from(manager: PermissionManager) -> Self {
        LivePermissions::new(manager)
    }
}

/// Holds the policies of keys, teams and organisations and decides access.
#[derive(Debug, Clone)]
pub struct PermissionManager {
    default_level: PermissionLevel,
    key_policies: HashMap<KeyDigest, PermissionPolicy>,
    team_policies: HashMap<String, PermissionPolicy>,
    organization_policies: HashMap<String, PermissionPolicy>,
}

impl Default for PermissionManager {
    fn default() -> Self {
        Self::new()
    }
}

impl PermissionManager {
    /// A manager with no policies whose default level is `Execute`: with nothing
    /// configured, callers may list and call tools but not administer.
    pub fn new() -> Self {
        PermissionManager {
            default_level: PermissionLevel::Execute,
            key_policies: HashMap::new(),
            team_policies: HashMap::new(),
            organization_policies: HashMap::new(),
        }
    }

    /// The level of callers that no policy covers.
    pub fn set_default_level(&mut self, level: PermissionLevel) {
        self.default_level = level;
    }

    /// Whether a team has a policy of its own.
    pub fn has_team_policy(&self, team: &str) -> bool {
        self.team_policies.contains_key(team)
    }

    /// Whether an organisation has a policy of its own.
    pub fn has_organization_policy(&self, organization: &str) -> bool {
        self.organization_policies.contains_key(organization)
    }

    /// The level of callers that no policy covers.
    pub fn default_level(&self) -> PermissionLevel {
        self.default_level
    }

    /// Sets the policy of an API key (stored by its digest).
    pub fn set_key_policy(&mut self, api_key: &str, policy: PermissionPolicy) {
        self.key_policies.insert(KeyDigest::of(api_key), policy);
    }

    /// Sets the policy of an API key known only by its digest.
    pub fn set_key_digest_policy(&mut self, digest: KeyDigest, policy: PermissionPolicy) {
        self.key_policies.insert(digest, policy);
    }

    /// Sets the policy of a team; it bounds every key of the team.
    pub fn set_team_policy(&mut self, team: impl Into<String>, policy: PermissionPolicy) {
        self.team_policies.insert(team.into(), policy);
    }

    /// Sets the policy of an organisation; it bounds every team and key in it.
    pub fn set_organization_policy(
        &mut self,
        organization: impl Into<String>,
        policy: PermissionPolicy,
    ) {
        self.organization_policies
            .insert(organization.into(), policy);
    }

    /// Whether the API key may call the tool (level `Execute` or more). `None` is a
    /// caller without a key, who gets the default level.
    pub fn check_tool_access(&self, api_key: Option<&str>, server: &str, tool: &str) -> bool {
        let caller = Caller {
            api_key: api_key.map(str::to_string),
            ..Caller::default()
        };
        self.resolve(&caller, server, tool) >= PermissionLevel::Execute
    }

    /// Whether the caller's level for the tool is at least `required`.
    pub fn check_access(
        &self,
        caller: &Caller,
        server: &str,
        tool: &str,
        required: PermissionLevel,
    ) -> bool {
        required > PermissionLevel::Deny && self.resolve(caller, server, tool) >= required
    }

    /// The caller's level for the tool (see the module docs).
    pub fn resolve(&self, caller: &Caller, server: &str, tool: &str) -> PermissionLevel {
        let key_policy = caller
            .api_key
            .as_deref()
            .and_then(|k| self.key_policies.get(&KeyDigest::of(k)));
        self.resolve_with(key_policy, caller, server, tool)
    }

    /// Like [`PermissionManager::resolve`], for a caller whose key digest is already
    /// known (the service digests a key once per request, not once per tool).
    pub fn resolve_digest(
        &self,
        digest: Option<&KeyDigest>,
        caller: &Caller,
        server: &str,
        tool: &str,
    ) -> PermissionLevel {
        let key_policy = digest.and_then(|d| self.key_policies.get(d));
        self.resolve_with(key_policy, caller, server, tool)
    }

    fn resolve_with(
        &self,
        key_policy: Option<&PermissionPolicy>,
        caller: &Caller,
        server: &str,
        tool: &str,
    ) -> PermissionLevel {
        combine(
            key_policy.map(|p| p.decide(server, tool)),
            self.team_policy(caller).map(|p| p.decide(server, tool)),
            self.organization_policy(caller)
                .map(|p| p.decide(server, tool)),
            self.default_level,
        )
    }

    fn team_policy(&self, caller: &Caller) -> Option<&PermissionPolicy> {
        caller
            .team
            .as_deref()
            .and_then(|t| self.team_policies.get(t))
    }

    fn organization_policy(&self, caller: &Caller) -> Option<&PermissionPolicy> {
        caller
            .organization
            .as_deref()
            .and_then(|o| self.organization_policies.get(o))
    }

    /// The caller's permissions on one server, for deciding many of its tools at once
    /// (the caller's key digest already computed, as in
    /// [`PermissionManager::resolve_digest`]).
    pub fn for_server(
        &self,
        digest: Option<&KeyDigest>,
        caller: &Caller,
        server: &str,
    ) -> ServerPermissions<'_> {
        ServerPermissions {
            key: digest
                .and_then(|d| self.key_policies.get(d))
                .map(|p| p.for_server(server)),
            team: self.team_policy(caller).map(|p| p.for_server(server)),
            organization: self
                .organization_policy(caller)
                .map(|p| p.for_server(server)),
            default_level: self.default_level,
        }
    }
}

/// Whether `text` matches `pattern`, where `*` matches any run of characters (also
/// none). Iterative, linear in practice, no allocation.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((star_pi, star_ti)) = star {
            pi = star_pi + 1;
            ti = star_ti + 1;
            star = Some((star_pi, star_ti + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == b'*')
}

#[cfg(test)]
mod tests {
    use super::PermissionLevel::*;
    use super::*;

    fn production() -> PermissionPolicy {
        PermissionPolicy {
            name: "production".to_string(),
            default_level: Deny,
            rules: vec![
                PermissionRule::new("filesystem", "read_file", Execute),
                PermissionRule::new("database", "*", Execute),
                PermissionRule::new("*", "delete_*", Deny),
            ],
        }
    }

    #[test]
    fn globs() {
        assert!(glob_match("*", ""));
        assert!(glob_match("delete_*", "delete_file"));
        assert!(!glob_match("delete_*", "undelete_file"));
        assert!(glob_match("*_admin", "db_admin"));
        assert!(glob_match("fs-*-prod", "fs-eu-prod"));
        assert!(!glob_match("fs-*-prod", "fs-eu-dev"));
        assert!(glob_match("a*b*c", "aXXbYYc"));
        assert!(!glob_match("a*b*c", "aXXbYY"));
        assert!(glob_match("read_file", "read_file"));
        assert!(!glob_match("read_file", "read_files"));
    }

    #[test]
    fn the_seed_policy_decides_as_its_comments_say() {
        let mut manager = PermissionManager::new();
        manager.set_default_level(Read);
        manager.set_key_policy("sk-prod-123", production());
        let key = Some("sk-prod-123");
        assert!(manager.check_tool_access(key, "filesystem", "read_file"));
        assert!(manager.check_tool_access(key, "database", "query"));
        assert!(!manager.check_tool_access(key, "database", "delete_rows"));
        assert!(!manager.check_tool_access(key, "filesystem", "delete_file"));
        assert!(!manager.check_tool_access(key, "filesystem", "write_file"));
        assert!(!manager.check_tool_access(key, "github", "search"));
        // No policy: the manager's default (Read) lets a caller list but not call.
        assert!(!manager.check_tool_access(Some("sk-other"), "filesystem", "read_file"));
        assert!(!manager.check_tool_access(None, "filesystem", "read_file"));
        assert_eq!(
            manager.resolve(&Caller::default(), "filesystem", "read_file"),
            Read
        );
    }

    #[test]
    fn deny_wins_over_a_more_specific_allow() {
        let policy = PermissionPolicy {
            name: "p".into(),
            default_level: Execute,
            rules: vec![
                PermissionRule::new("db", "delete_rows", Admin),
                PermissionRule::new("*", "delete_*", Deny),
            ],
        };
        assert_eq!(policy.decide("db", "delete_rows"), Deny);
    }

    #[test]
    fn the_most_specific_rule_decides() {
        let policy = PermissionPolicy {
            name: "p".into(),
            default_level: Deny,
            rules: vec![
                PermissionRule::new("*", "*", Admin),
                PermissionRule::new("db", "*", Read),
                PermissionRule::new("db", "query", Execute),
                PermissionRule::new("d*", "query", Admin),
                PermissionRule::new("web-*", "*", Execute),
                PermissionRule::new("web-*", "get_*", Read),
            ],
        };
        assert_eq!(policy.decide("db", "query"), Execute);
        assert_eq!(policy.decide("db", "insert"), Read);
        assert_eq!(policy.decide("other", "x"), Admin);
        // Server part compared first: `db`-literal beats the `d*` pattern.
        assert_eq!(policy.decide("dx", "query"), Admin);
        assert_eq!(policy.decide("web-eu", "get_page"), Read);
        assert_eq!(policy.decide("web-eu", "post"), Execute);
    }

    #[test]
    fn equal_specificity_gives_the_lower_level() {
        let policy = PermissionPolicy {
            name: "p".into(),
            default_level: Deny,
            rules: vec![
                PermissionRule::new("s", "a*", Admin),
                PermissionRule::new("s", "*b", Read),
            ],
        };
        assert_eq!(policy.decide("s", "ab"), Read);
    }

    #[test]
    fn teams_bound_keys_and_organisations_bound_teams() {
        let mut manager = PermissionManager::new();
        manager.set_default_level(Read);
        manager.set_key_policy(
            "sk-broad",
            PermissionPolicy {
                name: "broad".into(),
                default_level: Admin,
                rules: vec![],
            },
        );
        manager.set_team_policy(
            "analysts",
            PermissionPolicy {
                name: "analysts".into(),
                default_level: Read,
                rules: vec![PermissionRule::new("db", "query", Execute)],
            },
        );
        manager.set_organization_policy(
            "acme",
            PermissionPolicy {
                name: "acme".into(),
                default_level: Execute,
                rules: vec![PermissionRule::new("db", "*", Read)],
            },
        );
        let key_only = Caller::key("sk-broad");
        assert_eq!(manager.resolve(&key_only, "fs", "write"), Admin);
        let in_team = Caller::key("sk-broad").in_team("analysts");
        assert_eq!(manager.resolve(&in_team, "fs", "write"), Read);
        assert_eq!(manager.resolve(&in_team, "db", "query"), Execute);
        let in_org = in_team.clone().in_organization("acme");
        assert_eq!(manager.resolve(&in_org, "db", "query"), Read);
        // A key without a policy takes its team's decision, bounded by the org.
        let plain = Caller::key("sk-none")
            .in_team("analysts")
            .in_organization("acme");
        assert_eq!(manager.resolve(&plain, "fs", "x"), Read);
        assert!(!manager.check_access(&plain, "db", "query", Execute));
        assert!(manager.check_access(&plain, "db", "query", Read));
    }

    #[test]
    fn a_server_view_decides_as_resolve_does() {
        let mut manager = PermissionManager::new();
        manager.set_default_level(Read);
        let rules = vec![
            PermissionRule::new("fs", "read_*", Execute),
            PermissionRule::new("fs*", "write_file", Admin),
            PermissionRule::new("*", "delete_*", Deny),
            PermissionRule::new("db", "*", Execute),
            PermissionRule::new("d*", "query", Read),
        ];
        let policy = |name: &str, default_level| PermissionPolicy {
            name: name.into(),
            default_level,
            rules: rules.clone(),
        };
        manager.set_key_policy("sk-a", policy("a", Deny));
        manager.set_team_policy("t", policy("t", Execute));
        manager.set_organization_policy("o", policy("o", Admin));
        let callers = [
            Caller::default(),
            Caller::key("sk-a"),
            Caller::key("sk-a").in_team("t"),
            Caller::key("sk-b").in_team("t").in_organization("o"),
            Caller::key("sk-a").in_organization("o"),
        ];
        let tools = ["read_file", "write_file", "delete_x", "query", "other", ""];
        let mut levels = std::collections::BTreeSet::new();
        for caller in &callers {
            let digest = caller.api_key.as_deref().map(KeyDigest::of);
            for server in ["fs", "fs2", "db", "dx", "web"] {
                let view = manager.for_server(digest.as_ref(), caller, server);
                for tool in tools {
                    let level = view.level(tool);
                    assert_eq!(
                        level,
                        manager.resolve(caller, server, tool),
                        "{caller:?} {server} {tool}"
                    );
                    levels.insert(level);
                }
            }
        }
        // The cases cover every level.
        assert_eq!(levels.len(), 4);
    }

    #[test]
    fn the_best_level_on_a_server_is_what_some_name_reaches() {
        let mut manager = PermissionManager::new();
        manager.set_default_level(Execute);
        let policy = |default_level, rules: Vec<PermissionRule>| PermissionPolicy {
            name: "p".into(),
            default_level,
            rules,
        };
        manager.set_team_policy(
            "blind",
            policy(Read, vec![PermissionRule::new("secret", "*", Deny)]),
        );
        manager.set_team_policy(
            "one_tool",
            policy(
                Deny,
                vec![
                    PermissionRule::new("secret", "status", Read),
                    PermissionRule::new("other", "*", Deny),
                ],
            ),
        );
        manager.set_team_policy(
            "prefix",
            policy(Deny, vec![PermissionRule::new("secret", "get_*", Execute)]),
        );
        manager.set_team_policy(
            "all_but",
            policy(Execute, vec![PermissionRule::new("secret", "rm", Deny)]),
        );
        let best = |team: &str, server: &str| {
            manager
                .for_server(None, &Caller::default().in_team(team), server)
                .best_level()
        };
        assert_eq!(best("blind", "secret"), Deny);
        assert_eq!(best("blind", "public"), Read);
        assert_eq!(best("one_tool", "secret"), Read);
        assert_eq!(best("one_tool", "other"), Deny);
        assert_eq!(best("one_tool", "public"), Deny);
        assert_eq!(best("prefix", "secret"), Execute);
        assert_eq!(best("prefix", "public"), Deny);
        assert_eq!(best("all_but", "secret"), Execute);
        assert_eq!(best("nobody", "secret"), Execute);
    }

    #[test]
    fn keys_are_stored_as_digests() {
        let mut manager = PermissionManager::new();
        manager.set_key_policy("sk-secret-value", production());
        assert!(!format!("{manager:?}").contains("sk-secret-value"));
        let digest = KeyDigest::of("sk-secret-value");
        assert_eq!(KeyDigest::from_hex(&digest.to_hex()), Some(digest));
        assert_eq!(
            KeyDigest::from_hex(&format!("sha256:{}", digest.to_hex())),
            Some(digest)
        );
        assert_eq!(KeyDigest::from_hex("zz"), None);
        assert!(!format!("{:?}", Caller::key("sk-secret-value")).contains("sk-secret"));
    }
}
