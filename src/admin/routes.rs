//! The admin API's endpoints under `/v1/admin`, for callers whose permissions give them
//! the `admin` level on every server and tool (a key policy such as
//! `{default_level: admin}`).
//!
//! | method and path | what |
//! |---|---|
//! | `GET /v1/admin/status` | replica, store, version in force |
//! | `GET /v1/admin/servers`, `PUT`/`DELETE /v1/admin/servers/{name}` | servers (body: a `servers[]` entry) |
//! | `GET /v1/admin/aliases`, `PUT`/`DELETE /v1/admin/aliases/{alias}` | aliases (body `{"server": …}`) |
//! | `GET`/`POST /v1/admin/keys`, `DELETE /v1/admin/keys/{name}` | API keys; `POST` (`{name, team?, organization?}`) answers the new key's secret, once |
//! | `GET /v1/admin/teams`, `PUT`/`DELETE /v1/admin/teams/{name}` | teams, with their keys and policy (body: a policy) |
//! | `GET /v1/admin/organizations`, `PUT`/`DELETE …/{name}` | the same for organisations |
//! | `GET /v1/admin/policies`, `PUT`/`DELETE /v1/admin/policies/{keys\|teams\|organizations}/{name}`, `PUT /v1/admin/policies/default_level` | policies |
//! | `GET /v1/admin/audit?since_ms&until_ms&actor&action&target&limit` | the audit trail, newest first |
//!
//! Errors: `{"error": {"type", "message", "problems"?}}` with 400 (body not JSON), 401,
//! 403, 404, 409 (another change came first), 422 (the change fails the settings checks;
//! `problems` lists each with its `path`), 503 (no store, or the store is down). A server's
//! credentials and a key's digest are never answered; a new key's secret only once.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use serde_json::{json, Value};

use super::{ChangeError, Fleet};
use crate::core::mcp::permissions::{KeyDigest, PermissionLevel};
use crate::identity::Identity;
use crate::proxy::AppState;
use crate::store::audit::{AuditQuery, AuditRecord};
use crate::store::{Change, Entities, EntityKind, StoreError};

/// The admin routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/status", get(status))
        .route("/v1/admin/servers", get(list_servers))
        .route(
            "/v1/admin/servers/{name}",
            get(get_server).put(put_server).delete(delete_server),
        )
        .route("/v1/admin/aliases", get(list_aliases))
        .route(
            "/v1/admin/aliases/{alias}",
            axum::routing::put(put_alias).delete(delete_alias),
        )
        .route("/v1/admin/keys", get(list_keys).post(create_key))
        .route("/v1/admin/keys/{name}", axum::routing::delete(delete_key))
        .route("/v1/admin/teams", get(list_teams))
        .route(
            "/v1/admin/teams/{name}",
            axum::routing::put(put_team).delete(delete_team),
        )
        .route("/v1/admin/organizations", get(list_organizations))
        .route(
            "/v1/admin/organizations/{name}",
            axum::routing::put(put_organization).delete(delete_organization),
        )
        .route("/v1/admin/policies", get(list_policies))
        .route(
            "/v1/admin/policies/default_level",
            axum::routing::put(put_default_level),
        )
        .route(
            "/v1/admin/policies/{section}/{name}",
            axum::routing::put(put_policy).delete(delete_policy),
        )
        .route("/v1/admin/audit", get(audit))
}

/// A refusal of the admin API.
#[derive(Debug)]
struct AdminRefusal {
    status: StatusCode,
    kind: &'static str,
    message: String,
    problems: Vec<crate::settings::Problem>,
}

impl AdminRefusal {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        AdminRefusal {
            status,
            kind,
            message: message.into(),
            problems: Vec::new(),
        }
    }
}

impl IntoResponse for AdminRefusal {
    fn into_response(self) -> Response {
        let mut error = json!({"type": self.kind, "message": self.message});
        if !self.problems.is_empty() {
            error["problems"] = self
                .problems
                .iter()
                .map(|p| json!({"path": p.path, "message": p.message}))
                .collect();
        }
        (self.status, Json(json!({ "error": error }))).into_response()
    }
}

impl From<StoreError> for AdminRefusal {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict { .. } => {
                AdminRefusal::new(StatusCode::CONFLICT, "conflict", e.to_string())
            }
            other => AdminRefusal::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                format!("{other}; nothing was changed"),
            ),
        }
    }
}

impl From<ChangeError> for AdminRefusal {
    fn from(e: ChangeError) -> Self {
        match e {
            ChangeError::Invalid { problems } => AdminRefusal {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                kind: "invalid_configuration",
                message: format!(
                    "the change was refused ({} problem(s)); nothing was changed",
                    problems.len()
                ),
                problems,
            },
            ChangeError::Store(e) => e.into(),
        }
    }
}

type Answer = Result<Response, AdminRefusal>;

/// The fleet and the caller, when the caller is an administrator.
async fn admin(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<(std::sync::Arc<Fleet>, Identity), AdminRefusal> {
    let identity = state
        .auth()
        .identify(headers, "/v1/admin")
        .await
        .map_err(|_| {
            AdminRefusal::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "a valid API key is required",
            )
        })?;
    if state.handler().level(&identity, "*", "*") < PermissionLevel::Admin {
        return Err(AdminRefusal::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the admin API needs the admin level",
        ));
    }
    let fleet = state.fleet().cloned().ok_or_else(|| {
        AdminRefusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_store",
            "no store is configured (`store` in the settings file); the configuration is the file's",
        )
    })?;
    Ok((fleet, identity))
}

fn body_json(body: &Bytes) -> Result<Value, AdminRefusal> {
    serde_json::from_slice(body).map_err(|e| {
        AdminRefusal::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("the body is not JSON: {e}"),
        )
    })
}

/// Commits `changes` and answers `answer` with the new version.
async fn commit(
    state: &AppState,
    fleet: &Fleet,
    identity: &Identity,
    (action, target): (&str, &str),
    changes: Vec<Change>,
    status: StatusCode,
    mut answer: Value,
) -> Answer {
    let record = AuditRecord {
        actor: identity.name.clone(),
        action: action.to_string(),
        target: target.to_string(),
        outcome: "ok".into(),
        detail: json!({}),
    };
    let version = fleet.change(state, changes, record).await?;
    answer["version"] = json!(version);
    Ok((status, Json(answer)).into_response())
}

fn exists(entities: &Entities, kind: EntityKind, name: &str) -> Result<(), AdminRefusal> {
    if entities.contains_key(&(kind, name.to_string())) {
        Ok(())
    } else {
        Err(AdminRefusal::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no {} named `{name}`", kind.as_str().replace('_', " ")),
        ))
    }
}

fn of_kind(entities: &Entities, kind: EntityKind) -> impl Iterator<Item = (&String, &Value)> {
    entities
        .iter()
        .filter(move |((k, _), _)| *k == kind)
        .map(|((_, name), spec)| (name, spec))
}

async fn status(State(state): State<AppState>, headers: HeaderMap) -> Answer {
    let (fleet, _) = admin(&state, &headers).await?;
    Ok(Json(json!({
        "replica": fleet.store().replica(),
        "store": {"backend": format!("{:?}", fleet.store().backend()).to_lowercase(), "up": fleet.store().is_up()},
        "version": fleet.version(),
    }))
    .into_response())
}

/// A server's spec without its secrets: credentials, and header and environment values
/// that are not `${NAME}` references, are masked.
fn redacted(spec: &Value) -> Value {
    let mut spec = spec.clone();
    let mask = |v: &mut Value| {
        if v.as_str()
            .is_some_and(|s| !(s.starts_with("${") && s.ends_with('}')))
        {
            *v = Value::from("***");
        }
    };
    if let Some(auth) = spec.get_mut("auth").and_then(Value::as_object_mut) {
        for key in ["token", "key", "password", "client_secret"] {
            if let Some(v) = auth.get_mut(key) {
                mask(v);
            }
        }
    }
    for section in ["headers", "env"] {
        if let Some(map) = spec.get_mut(section).and_then(Value::as_object_mut) {
            map.values_mut().for_each(mask);
        }
    }
    if let Some(exchange) = spec
        .get_mut("token_exchange")
        .and_then(Value::as_object_mut)
    {
        if let Some(v) = exchange.get_mut("client_secret") {
            mask(v);
        }
    }
    spec
}

async fn list_servers(State(state): State<AppState>, headers: HeaderMap) -> Answer {
    let (fleet, _) = admin(&state, &headers).await?;
    let entities = fleet.entities().await;
    let servers: Vec<Value> = of_kind(&entities, EntityKind::Server)
        .map(|(name, spec)| json!({"name": name, "spec": redacted(spec)}))
        .collect();
    Ok(Json(json!({"servers": servers, "version": fleet.version()})).into_response())
}

async fn get_server(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Answer {
    let (fleet, _) = admin(&state, &headers).await?;
    let entities = fleet.entities().await;
    exists(&entities, EntityKind::Server, &name)?;
    let spec = entities
        .get(&(EntityKind::Server, name.clone()))
        .map(redacted)
        .unwrap_or_default();
    Ok(Json(json!({"name": name, "spec": spec})).into_response())
}

async fn put_server(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Bytes,
) -> Answer {
    let (fleet, identity) = admin(&state, &headers).await?;
    let mut spec = body_json(&body)?;
    if let Some(object) = spec.as_object_mut() {
        match object.remove("name") {
            Some(Value::String(given)) if given != name => {
                return Err(AdminRefusal::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_configuration",
                    format!("the body names `{given}` but the path `{name}`"),
                ))
            }
            _ => {}
        }
    }
    let created = !fleet
        .entities()
        .await
        .contains_key(&(EntityKind::Server, name.clone()));
    let changes = vec![Change::Put {
        kind: EntityKind::Server,
        name: name.clone(),
        spec,
    }];
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    commit(
        &state,
        &fleet,
        &identity,
        ("server.put", &name),
        changes,
        status,
        json!({"name": name}),
    )
    .await
}

async fn delete_server(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Answer {
    let (fleet, identity) = admin(&state, &headers).await?;
    exists(&fleet.entities().await, EntityKind::Server, &name)?;
    let changes = vec![Change::Delete {
        kind: EntityKind::Server,
        name: name.clone(),
    }];
    commit(
        &state,
        &fleet,
        &identity,
        ("server.delete", &name),
        changes,
        StatusCode::OK,
        json!({"deleted": name}),
    )
    .await
}

async fn list_aliases(State(state): State<AppState>, headers: HeaderMap) -> Answer {
    let (fleet, _) = admin(&state, &headers).await?;
    let entities = fleet.entities().await;
    let aliases: BTreeMap<&String, &Value> = of_kind(&entities, EntityKind::Alias).collect();
    Ok(Json(json!({"aliases": aliases, "version": fleet.version()})).into_response())
}

async fn put_alias(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(alias): Path<String>,
    body: Bytes,
) -> Answer {
    let (fleet, identity) = admin(&state, &headers).await?;
    let body = body_json(&body)?;
    let server = body.get("server").cloned().unwrap_or(Value::Null);
    let changes = vec![Change::Put {
        kind: EntityKind::Alias,
        name: alias.clone(),
        spec: server,
    }];
    commit(
        &state,
        &fleet,
        &identity,
        ("alias.put", &alias),
        changes,
        StatusCode::OK,
        json!({"alias": alias}),
    )
    .await
}

async fn delete_alias(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(alias): Path<String>,
) -> Answer {
    let (fleet, identity) = admin(&state, &headers).await?;
    exists(&fleet.entities().await, EntityKind::Alias, &alias)?;
    let changes = vec![Change::Delete {
        kind: EntityKind::Alias,
        name: alias.clone(),
    }];
    commit(
        &state,
        &fleet,
        &identity,
        ("alias.delete", &alias),
        changes,
        StatusCode::OK,
        json!({"deleted": alias}),
    )
    .await
}

async fn list_keys(State(state): State<AppState>, headers: HeaderMap) -> Answer {
    let (fleet, _) = admin(&state, &headers).await?;
    let entities = fleet.entities().await;
    let keys: Vec<Value> = of_kind(&entities, EntityKind::ApiKey)
        .map(|(name, spec)| json!({"name": name, "team": spec["team"], "organization": spec["organization"]}))
        .collect();
    Ok(Json(json!({"keys": keys, "version": fleet.version()})).into_response())
}

async fn create_key(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Answer {
    let (fleet, identity) = admin(&state, &headers).await?;
    let body = body_json(&body)?;
    let name = match body.get("name") {
        Some(Value::String(name)) => name.clone(),
        _ => {
            return Err(AdminRefusal {
                problems: vec![crate::settings::Problem {
                    path: "name".into(),
                    line: None,
                    message: "required: a string".into(),
                }],
                ..AdminRefusal::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_configuration",
                    "the key needs a name; nothing was changed",
                )
            })
        }
    };
    if fleet
        .entities()
        .await
        .contains_key(&(EntityKind::ApiKey, name.clone()))
    {
        return Err(AdminRefusal {
            problems: vec![crate::settings::Problem {
                path: format!("api_keys.{name}.name"),
                line: None,
                message: format!("duplicate key name `{name}`"),
            }],
            ..AdminRefusal::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_configuration",
                "the change was refused (1 problem(s)); nothing was changed",
            )
        });
    }
    let secret = format!(
        "sk-{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
    );
    let spec = json!({
        "key_hash": format!("sha256:{}", KeyDigest::of(&secret).to_hex()),
        "team": body.get("team").cloned().unwrap_or(Value::Null),
        "organization": body.get("organization").cloned().unwrap_or(Value::Null),
    });
    let changes = vec![Change::Put {
        kind: EntityKind::ApiKey,
        name: name.clone(),
        spec,
    }];
    let answer = json!({
        "name": name,
        "key": secret,
        "note": "the key is shown this once; only its digest is kept",
    });
    commit(
        &state,
        &fleet,
        &identity,
        ("key.create", &name),
        changes,
        StatusCode::CREATED,
        answer,
    )
    .await
}

async fn delete_key(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Answer {
    let (fleet, identity) = admin(&state, &headers).await?;
    let entities = fleet.entities().await;
    exists(&entities, EntityKind::ApiKey, &name)?;
    // The key's own policy goes with it.
    let changes = vec![
        Change::Delete {
            kind: EntityKind::ApiKey,
            name: name.clone(),
        },
        Change::Delete {
            kind: EntityKind::KeyPolicy,
            name: name.clone(),
        },
    ];
    commit(
        &state,
        &fleet,
        &identity,
        ("key.revoke", &name),
        changes,
        StatusCode::OK,
        json!({"revoked": name}),
    )
    .await
}

/// Teams or organisations: those keys name or policies cover, with their keys and policy.
fn groups(entities: &Entities, field: &str, kind: EntityKind) -> Vec<Value> {
    let mut groups: BTreeMap<String, (Vec<String>, Value)> = BTreeMap::new();
    for (key, spec) in of_kind(entities, EntityKind::ApiKey) {
        if let Some(group) = spec[field].as_str() {
            groups
                .entry(group.to_string())
                .or_insert_with(|| (Vec::new(), Value::Null))
                .0
                .push(key.clone());
        }
    }
    for (name, policy) in of_kind(entities, kind) {
        groups
            .entry(name.clone())
            .or_insert_with(|| (Vec::new(), Value::Null))
            .1 = policy.clone();
    }
    groups
        .into_iter()
        .map(|(name, (keys, policy))| json!({"name": name, "keys": keys, "policy": policy}))
        .collect()
}

async fn list_teams(State(state): State<AppState>, headers: HeaderMap) -> Answer {
    let (fleet, _) = admin(&state, &headers).await?;
    let teams = groups(&fleet.entities().await, "team", EntityKind::TeamPolicy);
    Ok(Json(json!({"teams": teams, "version": fleet.version()})).into_response())
}

async fn list_organizations(State(state): State<AppState>, headers: HeaderMap) -> Answer {
    let (fleet, _) = admin(&state, &headers).await?;
    let organizations = groups(
        &fleet.entities().await,
        "organization",
        EntityKind::OrganizationPolicy,
    );
    Ok(Json(json!({"organizations": organizations, "version": fleet.version()})).into_response())
}

fn policy_kind(section: &str) -> Result<EntityKind, AdminRefusal> {
    match section {
        "keys" => Ok(EntityKind::KeyPolicy),
        "teams" => Ok(EntityKind::TeamPolicy),
        "organizations" => Ok(EntityKind::OrganizationPolicy),
        other => Err(AdminRefusal::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no policy section `{other}` (keys, teams, organizations)"),
        )),
    }
}

async fn set_policy(
    state: AppState,
    headers: HeaderMap,
    kind: EntityKind,
    name: String,
    body: Bytes,
) -> Answer {
    let (fleet, identity) = admin(&state, &headers).await?;
    let policy = body_json(&body)?;
    let changes = vec![Change::Put {
        kind,
        name: name.clone(),
        spec: policy,
    }];
    commit(
        &state,
        &fleet,
        &identity,
        (&format!("{}.put", kind.as_str()), &name),
        changes,
        StatusCode::OK,
        json!({"name": name}),
    )
    .await
}

async fn remove_policy(
    state: AppState,
    headers: HeaderMap,
    kind: EntityKind,
    name: String,
) -> Answer {
    let (fleet, identity) = admin(&state, &headers).await?;
    exists(&fleet.entities().await, kind, &name)?;
    let changes = vec![Change::Delete {
        kind,
        name: name.clone(),
    }];
    commit(
        &state,
        &fleet,
        &identity,
        (&format!("{}.delete", kind.as_str()), &name),
        changes,
        StatusCode::OK,
        json!({"deleted": name}),
    )
    .await
}

async fn put_team(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Bytes,
) -> Answer {
    set_policy(state, headers, EntityKind::TeamPolicy, name, body).await
}

async fn delete_team(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Answer {
    remove_policy(state, headers, EntityKind::TeamPolicy, name).await
}

async fn put_organization(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Bytes,
) -> Answer {
    set_policy(state, headers, EntityKind::OrganizationPolicy, name, body).await
}

async fn delete_organization(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Answer {
    remove_policy(state, headers, EntityKind::OrganizationPolicy, name).await
}

async fn put_policy(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((section, name)): Path<(String, String)>,
    body: Bytes,
) -> Answer {
    let kind = policy_kind(&section)?;
    set_policy(state, headers, kind, name, body).await
}

async fn delete_policy(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((section, name)): Path<(String, String)>,
) -> Answer {
    let kind = policy_kind(&section)?;
    remove_policy(state, headers, kind, name).await
}

async fn put_default_level(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let (fleet, identity) = admin(&state, &headers).await?;
    let body = body_json(&body)?;
    let level = body.get("level").cloned().unwrap_or(body);
    let changes = vec![Change::Put {
        kind: EntityKind::Setting,
        name: "default_level".into(),
        spec: level,
    }];
    commit(
        &state,
        &fleet,
        &identity,
        ("default_level.put", "default_level"),
        changes,
        StatusCode::OK,
        json!({}),
    )
    .await
}

async fn list_policies(State(state): State<AppState>, headers: HeaderMap) -> Answer {
    let (fleet, _) = admin(&state, &headers).await?;
    let entities = fleet.entities().await;
    let section = |kind| -> BTreeMap<&String, &Value> { of_kind(&entities, kind).collect() };
    Ok(Json(json!({
        "default_level": entities.get(&(EntityKind::Setting, "default_level".to_string())),
        "keys": section(EntityKind::KeyPolicy),
        "teams": section(EntityKind::TeamPolicy),
        "organizations": section(EntityKind::OrganizationPolicy),
        "version": fleet.version(),
    }))
    .into_response())
}

async fn audit(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Answer {
    let (fleet, _) = admin(&state, &headers).await?;
    let Query(query) = query
        .map_err(|e| AdminRefusal::new(StatusCode::BAD_REQUEST, "bad_request", e.body_text()))?;
    let events = fleet.store().audit(&query).await?;
    Ok(Json(json!({"events": events})).into_response())
}
