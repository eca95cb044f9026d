//! The checks of `oauth`: the gateway as an OAuth 2.1 resource server.
//!
//! Owns the rules for the public URL (an `http(s)://` origin with an optional path, no
//! query), scopes (unique, printable, each with a level), providers (a unique `https://`
//! issuer, or `http://` on loopback only; URLs of the same kind; asymmetric algorithms
//! only; bounded times) and the registration handout (one provider only). A secret is
//! never quoted in a message.

use std::time::Duration;

use jsonwebtoken::Algorithm;

use crate::identity::config::{
    ClaimNames, IntrospectionSettings, OAuthSettings, ProviderSettings, RegistrationSettings,
    DEFAULT_INTROSPECTION_CACHE,
};
use crate::settings::place::{Place, Problems};
use crate::settings::raw::{Entries, Field, RawOAuth, RawProvider};

use crate::core::mcp::Secret;

/// The largest leeway on `exp`/`nbf`: 5 minutes.
const MAX_LEEWAY_SECS: u64 = 300;

pub(super) fn convert_oauth(
    p: &mut Problems,
    place: &Place,
    field: Field<RawOAuth>,
) -> Option<OAuthSettings> {
    let raw = p.optional(place, field)?;
    let before = p.count();

    let public_url_place = place.key("public_url");
    let public_url = p
        .optional(&public_url_place, raw.public_url)
        .and_then(|url| {
            let ok = check_url(p, &public_url_place, &url, false);
            if ok
                && url::Url::parse(&url)
                    .is_ok_and(|u| u.query().is_some() || u.fragment().is_some())
            {
                p.add(&public_url_place, "must have no query or fragment");
                return None;
            }
            ok.then(|| url.trim_end_matches('/').to_string())
        });

    let scopes_place = place.key("scopes");
    let mut scopes: Vec<(String, crate::core::mcp::PermissionLevel)> = Vec::new();
    let Entries(entries) = p
        .optional(&scopes_place, raw.scopes)
        .unwrap_or(Entries(Vec::new()));
    for (scope, node) in entries {
        let scope_place = scopes_place.key(&scope);
        let Some(level) = p.optional(&scope_place, Some(node)) else {
            continue;
        };
        // RFC 6749: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
        if scope.is_empty()
            || !scope
                .bytes()
                .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
        {
            p.add(
                &scope_place,
                "a scope is 1 or more printable characters without spaces, `\"` or `\\`",
            );
            continue;
        }
        scopes.push((scope, level));
    }

    let providers_place = place.key("providers");
    let mut providers: Vec<ProviderSettings> = Vec::new();
    for (i, node) in p
        .optional(&providers_place, raw.providers)
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        let provider_place = providers_place.index(i);
        let Some(raw) = p.optional(&provider_place, Some(node)) else {
            continue;
        };
        if let Some(provider) = convert_provider(p, &provider_place, raw) {
            if providers
                .iter()
                .any(|other| other.issuer == provider.issuer)
            {
                p.add(
                    &provider_place.key("issuer"),
                    "another provider has the same issuer",
                );
            } else {
                providers.push(provider);
            }
        }
    }
    if providers.is_empty() && p.count() == before {
        p.add(&providers_place, "at least one provider is needed");
    }
    // One provider answers for opaque tokens: asking several would send every unknown
    // credential to each of them.
    let introspecting: Vec<usize> = providers
        .iter()
        .enumerate()
        .filter(|(_, p)| p.introspection.is_some())
        .map(|(i, _)| i)
        .collect();
    if let [_, second, ..] = introspecting.as_slice() {
        p.add(
            &providers_place.index(*second).key("introspection"),
            "only one provider may introspect opaque tokens",
        );
    }

    let registration_place = place.key("registration");
    let registration = p
        .optional(&registration_place, raw.registration)
        .and_then(|raw| {
            let client_id = p.required(&registration_place.key("client_id"), raw.client_id);
            if raw.client_secret.is_some() {
                p.add(
                    &registration_place.key("client_secret"),
                    "the handout gives its client to anyone who asks: it must be a public client \
                     (PKCE, no secret), or anyone could use the secret",
                );
            }
            if providers.len() > 1 {
                p.add(
                    &registration_place,
                    "the registration handout works with exactly one provider",
                );
            }
            Some(RegistrationSettings {
                client_id: client_id.filter(|id| !id.is_empty())?,
            })
        });

    (p.count() == before).then_some(OAuthSettings {
        public_url,
        scopes,
        providers,
        registration,
    })
}

fn convert_provider(p: &mut Problems, place: &Place, raw: RawProvider) -> Option<ProviderSettings> {
    let before = p.count();
    let issuer_place = place.key("issuer");
    let issuer = p.required(&issuer_place, raw.issuer)?;
    check_url(p, &issuer_place, &issuer, true);
    let mut provider = ProviderSettings::new(issuer);

    let jwks_place = place.key("jwks_url");
    provider.jwks_url = p
        .optional(&jwks_place, raw.jwks_url)
        .filter(|url| check_url(p, &jwks_place, url, true));
    let audiences_place = place.key("audiences");
    provider.audiences = p
        .optional(&audiences_place, raw.audiences)
        .unwrap_or_default();
    if provider.audiences.iter().any(|a| a.trim().is_empty()) {
        p.add(&audiences_place, "an audience is not empty");
    }

    let algorithms_place = place.key("algorithms");
    if let Some(names) = p.optional(&algorithms_place, raw.algorithms) {
        let mut algorithms = Vec::new();
        for (i, name) in names.iter().enumerate() {
            match name.parse::<Algorithm>() {
                Ok(Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) => p.add(
                    &algorithms_place.index(i),
                    format!("{name} is symmetric: a provider's tokens are verified with its public keys (RS*, PS*, ES256, ES384, EdDSA)"),
                ),
                Ok(alg) => algorithms.push(alg),
                Err(_) => p.add(
                    &algorithms_place.index(i),
                    format!("`{name}` is not one of RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA"),
                ),
            }
        }
        if names.is_empty() {
            p.add(&algorithms_place, "must name at least one algorithm");
        }
        provider.algorithms = algorithms;
    }

    let leeway_place = place.key("leeway_secs");
    if let Some(leeway) = p.optional(&leeway_place, raw.leeway_secs) {
        if leeway > MAX_LEEWAY_SECS {
            p.add(&leeway_place, format!("at most {MAX_LEEWAY_SECS}"));
        }
        provider.leeway = Duration::from_secs(leeway);
    }
    if let Some(secs) = positive(p, &place.key("jwks_refresh_secs"), raw.jwks_refresh_secs) {
        provider.jwks_refresh = Duration::from_secs(secs);
    }
    if let Some(secs) = positive(
        p,
        &place.key("jwks_min_refetch_secs"),
        raw.jwks_min_refetch_secs,
    ) {
        provider.jwks_min_refetch = Duration::from_secs(secs);
    }
    if let Some(ms) = positive(p, &place.key("timeout_ms"), raw.timeout_ms) {
        provider.timeout = Duration::from_millis(ms);
    }

    let claims_place = place.key("claims");
    if let Some(claims) = p.optional(&claims_place, raw.claims) {
        let defaults = ClaimNames::default();
        provider.claims = ClaimNames {
            subject: p
                .optional(&claims_place.key("subject"), claims.subject)
                .unwrap_or(defaults.subject),
            team: p.optional(&claims_place.key("team"), claims.team),
            organization: p.optional(&claims_place.key("organization"), claims.organization),
        };
    }

    let introspection_place = place.key("introspection");
    if let Some(raw) = p.optional(&introspection_place, raw.introspection) {
        let url_place = introspection_place.key("url");
        let url = p
            .required(&url_place, raw.url)
            .filter(|url| check_url(p, &url_place, url, true));
        let client_id = p.required(&introspection_place.key("client_id"), raw.client_id);
        let secret_place = introspection_place.key("client_secret");
        let client_secret = p.required(&secret_place, raw.client_secret);
        if client_secret.as_deref() == Some("") {
            p.add(&secret_place, "empty");
        }
        let cache = p
            .optional(&introspection_place.key("cache_secs"), raw.cache_secs)
            .map_or(DEFAULT_INTROSPECTION_CACHE, Duration::from_secs);
        if let (Some(url), Some(client_id), Some(client_secret)) = (url, client_id, client_secret) {
            provider.introspection = Some(IntrospectionSettings {
                url,
                client_id,
                client_secret: Secret::new(client_secret),
                cache,
            });
        }
    }
    (p.count() == before).then_some(provider)
}

fn positive(p: &mut Problems, place: &Place, field: Field<u64>) -> Option<u64> {
    let value = p.optional(place, field)?;
    if value == 0 {
        p.add(place, "must be greater than 0");
        return None;
    }
    Some(value)
}

/// Checks an `http(s)://` URL; with `secure`, plain `http://` only for a loopback host
/// (tokens and keys must not travel in the clear). Reports at `place`; the URL is not
/// quoted.
pub(super) fn check_url(p: &mut Problems, place: &Place, url: &str, secure: bool) -> bool {
    match url::Url::parse(url) {
        Ok(parsed) if parsed.scheme() == "https" => true,
        Ok(parsed) if parsed.scheme() == "http" => {
            let loopback = match parsed.host() {
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                Some(url::Host::Domain(d)) => d == "localhost",
                None => false,
            };
            if secure && !loopback {
                p.add(
                    place,
                    "must be https:// (http:// only for 127.0.0.1, [::1] or localhost)",
                );
                return false;
            }
            true
        }
        Ok(parsed) => {
            p.add(
                place,
                format!("scheme `{}`: must be https://", parsed.scheme()),
            );
            false
        }
        Err(e) => {
            p.add(place, format!("not a valid URL ({e})"));
            false
        }
    }
}
