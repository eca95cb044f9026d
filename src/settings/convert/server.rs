//! The checks of one entry of `servers[]` and of its `auth`.
//!
//! Owns what makes a server valid: a name (unique, clear of the separator), exactly one
//! of `url` (with a transport that fits its scheme) and `command` (a command line the
//! library splits back into the same words), the keys that go with each (`headers` and
//! `auth` for remote servers, `args` and `env` for stdio ones) and well-formed
//! credentials. The library's own validation runs last, as a backstop. A URL is never
//! quoted in a message: it may carry credentials.

use std::collections::HashMap;

use crate::core::mcp::config::{DEFAULT_API_KEY_HEADER, DEFAULT_TIMEOUT_MS};
use crate::core::mcp::{
    AuthConfig, CommandLine, McpServerConfig, Secret, ServerOptions, Transport,
};
use crate::identity::config::TokenExchangeSettings;
use crate::settings::env::is_env_name;
use crate::settings::place::{Place, Problems};
use crate::settings::raw::{
    Entries, Field, RawAuth, RawPerUser, RawServer, RawTokenExchange, StringMap,
};
use crate::settings::{PerUserSettings, ServerSettings};

use super::{check_name, config_message, Known};

pub(super) struct ServerContext<'a> {
    pub(super) place: &'a Place,
    pub(super) index: usize,
    pub(super) separator: Option<&'a str>,
    pub(super) options: &'a ServerOptions,
}

pub(super) fn convert_server(
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
    let per_user = p
        .optional(&place.key("per_user"), raw.per_user)
        .map(|raw| convert_per_user(raw, &place.key("per_user"), p));
    let exchange_place = place.key("token_exchange");
    let token_exchange = p
        .optional(&exchange_place, raw.token_exchange)
        .and_then(|raw| convert_token_exchange(raw, &exchange_place, p));
    if let Some(exchange) = &token_exchange {
        known
            .exchanges
            .push((exchange_place.clone(), exchange.issuer.clone()));
    }

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
    if token_exchange.is_some() && !matches!(config.transport, Transport::Http | Transport::Sse) {
        p.add(
            &exchange_place,
            "token exchange sends each call with its own credential: it needs transport http or sse",
        );
        return None;
    }
    if per_user.is_some() && token_exchange.is_some() {
        p.add(
            &place.key("per_user"),
            "a server's calls carry either the caller's own token (per_user) or an exchanged one (token_exchange), not both",
        );
        return None;
    }
    if per_user.is_some() && !matches!(config.transport, Transport::Http | Transport::Sse) {
        p.add(
            &place.key("per_user"),
            "per-user tokens travel with each call: it needs transport http or sse",
        );
        return None;
    }
    Some(ServerSettings {
        per_user,
        token_exchange: token_exchange.map(|mut exchange| {
            if exchange.resource.is_none() && exchange.audience.is_none() {
                exchange.resource = Some(config.url.clone());
            }
            exchange
        }),
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
        "oauth2" => &[
            "client_id",
            "client_secret",
            "token_url",
            "scopes",
            "resource",
        ],
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
        ("resource", raw.resource.is_some()),
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
            // Without a token_url the token endpoint is discovered from the server.
            let discovered = raw.token_url.is_none();
            let token_url = p.optional(&token_url_place, raw.token_url);
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
            let resource = p.optional(&place.key("resource"), raw.resource);
            if discovered {
                return Some(
                    AuthConfig::oauth_client_credentials(client_id?, client_secret?)
                        .with_scopes(scopes),
                );
            }
            let auth =
                AuthConfig::oauth2(client_id?, client_secret?, token_url?).with_scopes(scopes);
            Some(match resource {
                Some(resource) => auth.with_resource(resource),
                None => auth,
            })
        }
    }
}

/// `servers[].per_user`: registration options and the callback.
fn convert_per_user(raw: RawPerUser, place: &Place, p: &mut Problems) -> PerUserSettings {
    use crate::core::mcp::auth::{per_user::NoHandler, OAuthConfig, DEFAULT_REDIRECT_URI};
    let redirect_place = place.key("redirect_uri");
    let redirect_uri = p
        .optional(&redirect_place, raw.redirect_uri)
        .filter(|url| super::oauth::check_url(p, &redirect_place, url, true));
    let client_id = p.optional(&place.key("client_id"), raw.client_id);
    let client_secret = p.optional(&place.key("client_secret"), raw.client_secret);
    let metadata_url = p.optional(&place.key("client_metadata_url"), raw.client_metadata_url);
    let scopes = p.optional(&place.key("scopes"), raw.scopes);
    // The handler is never called: the gateway hosts the redirect of per-user servers.
    let mut config =
        OAuthConfig::authorization_code(DEFAULT_REDIRECT_URI, std::sync::Arc::new(NoHandler));
    if let Some(id) = client_id {
        config = config.with_client(id, client_secret);
    }
    if let Some(url) = metadata_url {
        config = config.with_client_metadata_document(url);
    }
    if let Some(scopes) = scopes {
        config = config.with_scopes(scopes);
    }
    PerUserSettings {
        redirect_uri,
        registration: Some(config),
    }
}

/// `servers[].token_exchange`: the caller's access token exchanged (RFC 8693) for one
/// meant for this server, on each call.
fn convert_token_exchange(
    raw: RawTokenExchange,
    place: &Place,
    p: &mut Problems,
) -> Option<TokenExchangeSettings> {
    let url_place = place.key("token_url");
    let token_url = p
        .required(&url_place, raw.token_url)
        .filter(|url| super::oauth::check_url(p, &url_place, url, true));
    let issuer = p.optional(&place.key("issuer"), raw.issuer);
    let client_id = p.required(&place.key("client_id"), raw.client_id);
    let secret_place = place.key("client_secret");
    let client_secret = p.required(&secret_place, raw.client_secret);
    if client_secret.as_deref() == Some("") {
        p.add(&secret_place, "empty");
    }
    let resource = p.optional(&place.key("resource"), raw.resource);
    let audience = p.optional(&place.key("audience"), raw.audience);
    let scopes = p
        .optional(&place.key("scopes"), raw.scopes)
        .unwrap_or_default();
    Some(TokenExchangeSettings {
        issuer,
        token_url: token_url?,
        client_id: client_id?,
        client_secret: Secret::new(client_secret.filter(|s| !s.is_empty())?),
        resource,
        audience,
        scopes,
    })
}
