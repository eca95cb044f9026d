//! Tests of the whole path from text to [`Settings`]: the documented example, every kind
//! of problem with its place and line, `${NAME}` substitution, secrets kept out of
//! `Debug` and errors, key look-up, and the gateway built from the settings.

use super::convert::separator_is_valid;
use super::env::expand;
use super::*;
use crate::core::mcp::{AuthConfig, PermissionLevel, ProtocolPreference};

/// The settings module's root file, to test the example of its module docs.
const SOURCE: &str = include_str!("mod.rs");

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
        "IDP_INTROSPECTION_SECRET" => "idp-introspection-secret",
        _ => return None,
    };
    Some(value.to_string())
}

const SECRETS: [&str; 7] = [
    "idp-introspection-secret",
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
    assert_eq!(settings.server_names, ServerNames::Public);

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

    let oauth = settings.oauth.as_ref().unwrap();
    assert_eq!(oauth.public_url.as_deref(), Some("https://mcp.example.com"));
    assert_eq!(
        oauth.scopes,
        [
            ("mcp:read".to_string(), Read),
            ("mcp:call".to_string(), Execute)
        ]
    );
    let provider = &oauth.providers[0];
    assert_eq!(provider.issuer, "https://login.example.com/realms/acme");
    assert_eq!(provider.audiences, ["mcp-gateway"]);
    assert_eq!(
        provider.algorithms,
        [
            jsonwebtoken::Algorithm::RS256,
            jsonwebtoken::Algorithm::ES256
        ]
    );
    assert_eq!(provider.claims.organization.as_deref(), Some("org"));
    assert_eq!(provider.timeout, Duration::from_millis(5000));
    let introspection = provider.introspection.as_ref().unwrap();
    assert_eq!(introspection.client_id, "mcp-gateway");
    assert_eq!(
        introspection.client_secret.expose(),
        "idp-introspection-secret"
    );
    assert_eq!(introspection.cache, Duration::from_secs(60));
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
        assert_eq!(settings.server_names, ServerNames::Public);
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
    ("server_names: secret\n", "server_names", "unknown variant `secret`, expected `public` or `private`"),
    ("server_names: [public]\n", "server_names", "invalid type"),
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
    ("oauth: {}\n", "oauth.providers", "at least one provider"),
    ("oauth: [x]\n", "oauth", "resource-server settings"),
    ("oauth: {providers: [{jwks_url: 'https://id/jwks'}]}\n", "oauth.providers[0].issuer", "required"),
    ("oauth: {providers: [{issuer: 'http://id.example.com'}]}\n", "oauth.providers[0].issuer", "must be https://"),
    ("oauth: {providers: [{issuer: 'ftp://id'}]}\n", "oauth.providers[0].issuer", "scheme `ftp`"),
    ("oauth: {providers: [{issuer: 'https://id', jwks_url: nope}]}\n", "oauth.providers[0].jwks_url", "not a valid URL"),
    ("oauth: {providers: [{issuer: 'https://id'}, {issuer: 'https://id'}]}\n", "oauth.providers[1].issuer", "same issuer"),
    ("oauth: {providers: [{issuer: 'https://id', algorithms: [HS256]}]}\n", "oauth.providers[0].algorithms[0]", "symmetric"),
    ("oauth: {providers: [{issuer: 'https://id', algorithms: [none]}]}\n", "oauth.providers[0].algorithms[0]", "is not one of"),
    ("oauth: {providers: [{issuer: 'https://id', algorithms: []}]}\n", "oauth.providers[0].algorithms", "at least one"),
    ("oauth: {providers: [{issuer: 'https://id', leeway_secs: 3600}]}\n", "oauth.providers[0].leeway_secs", "at most 300"),
    ("oauth: {providers: [{issuer: 'https://id', timeout_ms: 0}]}\n", "oauth.providers[0].timeout_ms", "greater than 0"),
    ("oauth: {providers: [{issuer: 'https://id', claims: {team: [a]}}]}\n", "oauth.providers[0].claims.team", "invalid type"),
    ("oauth: {providers: [{issuer: 'https://id', claims: {role: r}}]}\n", "oauth.providers[0].claims.role", "unknown key"),
    ("oauth: {providers: [{issuer: 'https://id', introspection: {url: 'https://id/i', client_id: g}}]}\n", "oauth.providers[0].introspection.client_secret", "required"),
    ("oauth: {providers: [{issuer: 'https://id', introspection: {url: 'http://id.example/i', client_id: g, client_secret: s}}]}\n", "oauth.providers[0].introspection.url", "must be https://"),
    ("oauth: {public_url: 'https://gw/?a=1', providers: [{issuer: 'https://id'}]}\n", "oauth.public_url", "no query"),
    ("oauth: {public_url: 'gw.example.com', providers: [{issuer: 'https://id'}]}\n", "oauth.public_url", "not a valid URL"),
    ("oauth: {scopes: {'a b': read}, providers: [{issuer: 'https://id'}]}\n", "oauth.scopes.\"a b\"", "without spaces"),
    ("oauth: {scopes: {'mcp:x': all}, providers: [{issuer: 'https://id'}]}\n", "oauth.scopes.mcp:x", "unknown variant `all`"),
    ("oauth: {registration: {}, providers: [{issuer: 'https://id'}]}\n", "oauth.registration.client_id", "required"),
    ("oauth: {registration: {client_id: c, client_secret: s}, providers: [{issuer: 'https://id'}]}\n", "oauth.registration.client_secret", "public client"),
    ("oauth: {providers: [{issuer: 'https://a', introspection: {url: 'https://a/i', client_id: g, client_secret: s}}, {issuer: 'https://b', introspection: {url: 'https://b/i', client_id: g, client_secret: s}}]}\n", "oauth.providers[1].introspection", "only one provider"),
    ("oauth: {providers: [{issuer: 'https://id', audiences: ['']}]}\n", "oauth.providers[0].audiences", "not empty"),
    ("listen: 0.0.0.0:4000\noauth: {providers: [{issuer: 'https://id'}]}\n", "oauth.public_url", "required when listen is not a loopback"),
    ("servers: [{name: a, url: 'http://x/', token_exchange: {token_url: 'https://id/t', client_id: g, client_secret: s}}]\n", "servers[0].token_exchange", "needs `oauth`"),
    ("servers: [{name: a, url: 'http://x/', token_exchange: {token_url: 'http://id.example/t', client_id: g, client_secret: s}}]\noauth: {providers: [{issuer: 'https://id'}]}\n", "servers[0].token_exchange.token_url", "must be https://"),
    ("servers: [{name: a, url: 'http://x/', token_exchange: {token_url: 'https://id/t', client_id: g, client_secret: s}}]\noauth: {providers: [{issuer: 'https://a'}, {issuer: 'https://b'}]}\n", "servers[0].token_exchange.issuer", "required with several providers"),
    ("servers: [{name: a, url: 'http://x/', token_exchange: {issuer: 'https://c', token_url: 'https://id/t', client_id: g, client_secret: s}}]\noauth: {providers: [{issuer: 'https://a'}]}\n", "servers[0].token_exchange.issuer", "not the issuer of a provider"),
    ("servers: [{name: a, command: node, token_exchange: {token_url: 'https://id/t', client_id: g, client_secret: s}}]\noauth: {providers: [{issuer: 'https://a'}]}\n", "servers[0].token_exchange", "needs transport http or sse"),
    ("oauth: {registration: {client_id: c}, providers: [{issuer: 'https://a'}, {issuer: 'https://b'}]}\n", "oauth.registration", "exactly one provider"),
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
fn an_identity_provider_admits_teams_from_claims_and_a_public_listen() {
    let settings = parse(
        "listen: 0.0.0.0:4000\n\
         oauth:\n  public_url: https://mcp.example.com/\n  scopes: {'mcp:read': read, 'mcp:call': execute}\n\
         \x20 providers:\n    - issuer: http://127.0.0.1:9/\n      claims: {team: groups}\n      leeway_secs: 0\n\
         policies:\n  teams: {blue: {default_level: read}}\n  organizations: {acme: {default_level: execute}}\n",
    )
    .unwrap();
    let oauth = settings.oauth.unwrap();
    assert_eq!(oauth.public_url.as_deref(), Some("https://mcp.example.com"));
    assert_eq!(oauth.scopes.len(), 2);
    let provider = &oauth.providers[0];
    assert_eq!(provider.issuer, "http://127.0.0.1:9/");
    assert_eq!(provider.claims.team.as_deref(), Some("groups"));
    assert_eq!(provider.claims.subject, "sub");
    assert_eq!(provider.leeway, Duration::ZERO);
    assert_eq!(provider.algorithms.len(), 9);
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
fn server_names_are_private_off_loopback_unless_said_otherwise() {
    let names = |text: &str| parse(text).unwrap().server_names;
    assert_eq!(names("listen: 127.0.0.1:4000\n"), ServerNames::Public);
    assert_eq!(names("listen: '[::1]:4000'\n"), ServerNames::Public);
    let open = "listen: 0.0.0.0:4000\napi_keys: [{name: a, key: k}]\n";
    assert_eq!(names(open), ServerNames::Private);
    assert_eq!(
        names(&format!("{open}server_names: public\n")),
        ServerNames::Public
    );
    assert_eq!(
        names("listen: 127.0.0.1:4000\nserver_names: private\n"),
        ServerNames::Private
    );
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

#[test]
fn oauth2_without_a_token_url_discovers_the_token_endpoint() {
    let text = "\
servers:
  - name: crm
    url: https://crm.example.com/mcp
    auth: {type: oauth2, client_id: gw, client_secret: s3cret, scopes: [crm.read]}
";
    let settings = parse(text).unwrap();
    assert_eq!(
        settings.servers[0].config.auth,
        Some(AuthConfig::oauth_client_credentials("gw", "s3cret").with_scopes(["crm.read"]))
    );
}

#[test]
fn per_user_servers_take_their_registration_and_callback() {
    let text = "\
servers:
  - name: crm
    url: https://crm.example.com/mcp
    per_user: {redirect_uri: 'https://gw.example.com/oauth/callback', client_id: gw, scopes: [crm.read]}
  - name: local
    command: node server.js
    per_user: {}
";
    let found = problems(text);
    has(&found, "servers[1].per_user", "http or sse");
    let settings = parse(&text.replace(
        "    command: node server.js\n",
        "    url: https://b.example.com/mcp\n",
    ))
    .unwrap();
    let crm = settings.servers[0].per_user.as_ref().unwrap();
    assert_eq!(
        crm.redirect_uri.as_deref(),
        Some("https://gw.example.com/oauth/callback")
    );
    let registration = crm.registration.as_ref().unwrap();
    assert_eq!(registration.client_id(), Some("gw"));
    assert!(format!("{registration:?}").contains("crm.read"));
    let other = settings.servers[1].per_user.as_ref().unwrap();
    assert_eq!(other.redirect_uri, None);
    assert_eq!(other.registration.as_ref().unwrap().client_id(), None);
}
