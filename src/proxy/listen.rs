//! `subscriptions/listen` on the 2026-07-28 face of `/mcp` and `/mcp/<server>`: one SSE
//! stream per listen request that opens with `notifications/subscriptions/acknowledged`
//! (the subset of the requested filter the gateway agreed to), then carries the
//! `notifications/{tools,prompts,resources}/list_changed` and
//! `notifications/resources/updated` the filter asked for, each tagged
//! `_meta["io.modelcontextprotocol/subscriptionId"]` = the listen request's id.
//!
//! Resource subscriptions are made upstream through the handler's shared, counted
//! subscriptions (over the upstream's session where it has one), and given back when the
//! stream ends, whether the client went away or the service shut down. Bounds:
//! [`MAX_LISTEN_URIS`] resources per listen request, [`MAX_LISTEN_STREAMS`] listen
//! streams open at once in the process; a client slower than the announcement channel
//! loses the oldest announcements (the channel's own bound), never the stream.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::{json, Map, Value};

use super::handler::{Identity, McpHandler, RequestContext, Scope};
use super::http_face::message_response;
use super::{jsonrpc_error, AppState};
use crate::core::mcp::protocol;

/// Resources one listen request may subscribe to; more is refused with `-32602`.
pub const MAX_LISTEN_URIS: usize = 64;
/// Listen streams open at once in the process; one more is answered HTTP 503.
pub const MAX_LISTEN_STREAMS: usize = 1024;
/// The method, and the notification that opens its stream.
pub const METHOD: &str = "subscriptions/listen";
const ACKNOWLEDGED: &str = "notifications/subscriptions/acknowledged";
const SUBSCRIPTION_ID: &str = "io.modelcontextprotocol/subscriptionId";

static OPEN_STREAMS: AtomicUsize = AtomicUsize::new(0);

/// The filter a listen request asked for (`params.notifications`).
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Filter {
    tools: bool,
    prompts: bool,
    resources: bool,
    uris: Vec<String>,
}

impl Filter {
    /// Reads `params.notifications`; an absent one asks for nothing.
    ///
    /// # Errors
    /// A message for `-32602` when the filter is not an object, a flag is not a boolean,
    /// `resourceSubscriptions` is not an array of strings, or it is longer than
    /// [`MAX_LISTEN_URIS`].
    pub(crate) fn parse(params: &Value) -> Result<Filter, String> {
        let Some(notifications) = params.get("notifications") else {
            return Ok(Filter::default());
        };
        let Some(object) = notifications.as_object() else {
            return Err("'notifications' must be an object".to_string());
        };
        let flag = |key: &str| match object.get(key) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(format!("'notifications.{key}' must be a boolean")),
        };
        let uris = match object.get("resourceSubscriptions") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => {
                if items.len() > MAX_LISTEN_URIS {
                    return Err(format!(
                        "at most {MAX_LISTEN_URIS} resourceSubscriptions per listen request"
                    ));
                }
                let mut uris = Vec::with_capacity(items.len());
                for item in items {
                    let Some(uri) = item.as_str() else {
                        return Err("'resourceSubscriptions' must be strings".to_string());
                    };
                    if !uris.iter().any(|u| u == uri) {
                        uris.push(uri.to_string());
                    }
                }
                uris
            }
            Some(_) => return Err("'resourceSubscriptions' must be an array".to_string()),
        };
        Ok(Filter {
            tools: flag("toolsListChanged")?,
            prompts: flag("promptsListChanged")?,
            resources: flag("resourcesListChanged")?,
            uris,
        })
    }

    /// The filter as the acknowledgement states it: only what was agreed, flags that
    /// are on, and `resourceSubscriptions` when any resource is subscribed.
    fn to_value(&self) -> Value {
        let mut out = Map::new();
        for (on, key) in [
            (self.tools, "toolsListChanged"),
            (self.prompts, "promptsListChanged"),
            (self.resources, "resourcesListChanged"),
        ] {
            if on {
                out.insert(key.to_string(), Value::Bool(true));
            }
        }
        if !self.uris.is_empty() {
            out.insert("resourceSubscriptions".to_string(), json!(self.uris));
        }
        Value::Object(out)
    }

    /// Whether a `list_changed` notification is one this filter asked for.
    fn wants_list_change(&self, method: &str) -> bool {
        match method {
            "notifications/tools/list_changed" => self.tools,
            "notifications/prompts/list_changed" => self.prompts,
            "notifications/resources/list_changed" => self.resources,
            _ => false,
        }
    }
}

/// What a listen stream holds until it ends: its slot among [`MAX_LISTEN_STREAMS`] and
/// its upstream subscriptions, given back on drop (the client went away, or the service
/// is shutting down).
struct Held {
    handler: McpHandler,
    scope: Scope,
    uris: Vec<String>,
}

impl Drop for Held {
    fn drop(&mut self) {
        OPEN_STREAMS.fetch_sub(1, Ordering::SeqCst);
        if self.uris.is_empty() {
            return;
        }
        let handler = self.handler.clone();
        let scope = self.scope.clone();
        let uris = std::mem::take(&mut self.uris);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { handler.release_subscriptions(&scope, &uris).await });
        }
    }
}

/// Serves one `subscriptions/listen` request whose `_meta` the face has checked.
pub(crate) async fn serve(
    state: &AppState,
    identity: Identity,
    scope: Scope,
    id: Value,
    params: &Value,
) -> Response {
    let requested = match Filter::parse(params) {
        Ok(filter) => filter,
        Err(message) => {
            return message_response(
                StatusCode::BAD_REQUEST,
                &jsonrpc_error(
                    id,
                    protocol::INVALID_PARAMS,
                    &format!("Invalid params: {message}"),
                ),
            )
        }
    };
    if OPEN_STREAMS.fetch_add(1, Ordering::SeqCst) >= MAX_LISTEN_STREAMS {
        OPEN_STREAMS.fetch_sub(1, Ordering::SeqCst);
        return message_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &jsonrpc_error(
                id,
                protocol::INTERNAL_ERROR,
                "too many subscriptions/listen streams are open",
            ),
        );
    }
    let handler = state.handler().clone();
    let mut held = Held {
        handler: handler.clone(),
        scope: scope.clone(),
        uris: Vec::new(),
    };
    // Each resource is subscribed upstream as a session-era client would (no `_meta`):
    // over the upstream's shared session where it has one. What is refused (unknown,
    // hidden, an upstream without subscriptions) is left out of the acknowledgement.
    for uri in &requested.uris {
        let ctx = RequestContext {
            identity: &identity,
            scope: &scope,
            progress: None,
        };
        match handler.subscribe(&ctx, &json!({"uri": uri}), true).await {
            Ok(_) => held.uris.push(uri.clone()),
            Err(error) => {
                tracing::debug!(%uri, code = error.code, "subscriptions/listen: a resource was not subscribed");
            }
        }
    }
    let agreed = Filter {
        uris: held.uris.clone(),
        ..requested
    };
    state.metrics().record_request("http", METHOD, "ok");
    let tag = json!({SUBSCRIPTION_ID: id});
    let ack = protocol::notification(
        ACKNOWLEDGED,
        Some(json!({"notifications": agreed.to_value(), "_meta": tag})),
    );
    let receiver = state.announcements();
    let shutdown = state.shutdown_token();
    let stream = futures::stream::unfold(
        (Some(ack), receiver, held, agreed, false),
        move |(first, mut receiver, held, agreed, ended)| {
            let identity = identity.clone();
            let scope = scope.clone();
            let shutdown = shutdown.clone();
            let id = id.clone();
            async move {
                if ended {
                    return None;
                }
                if let Some(ack) = first {
                    return Some((event(&ack), (None, receiver, held, agreed, false)));
                }
                loop {
                    let next = tokio::select! {
                        () = shutdown.cancelled() => {
                            // The graceful end: the listen request's result.
                            let done = protocol::response(
                                id.clone(),
                                json!({"resultType": "complete", "_meta": {SUBSCRIPTION_ID: id}}),
                            );
                            return Some((event(&done), (None, receiver, held, agreed, true)));
                        }
                        next = receiver.recv() => next,
                    };
                    let a = match next {
                        Ok(a) => a,
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                    };
                    if scope != Scope::All && scope != Scope::Server(a.server.clone()) {
                        continue;
                    }
                    let mut params = match a.params {
                        Value::Object(map) => map,
                        _ => Map::new(),
                    };
                    if a.method == "notifications/resources/updated" {
                        let original = params
                            .get("uri")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_string();
                        let uri = held.handler.client_uri(&scope, &a.server, &original);
                        if !agreed.uris.contains(&uri) {
                            continue;
                        }
                        params.insert("uri".to_string(), Value::from(uri));
                    } else if !agreed.wants_list_change(&a.method)
                        || !held.handler.may_see_server(&identity, &a.server)
                    {
                        continue;
                    } else {
                        params.clear();
                    }
                    params.insert("_meta".to_string(), json!({SUBSCRIPTION_ID: id}));
                    let note = protocol::notification(&a.method, Some(Value::Object(params)));
                    return Some((event(&note), (None, receiver, held, agreed, false)));
                }
            }
        },
    );
    Sse::new(stream.boxed())
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

fn event(message: &Value) -> Result<Event, Infallible> {
    Ok(Event::default()
        .event("message")
        .data(protocol::encode(message)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_is_read_strictly_and_acknowledged_as_agreed() {
        let filter = Filter::parse(&json!({"notifications": {
            "toolsListChanged": true, "promptsListChanged": false,
            "resourceSubscriptions": ["a://1", "a://1", "a://2"]}}))
        .unwrap();
        assert!(filter.tools && !filter.prompts && !filter.resources);
        assert_eq!(filter.uris, vec!["a://1", "a://2"]);
        assert_eq!(
            filter.to_value(),
            json!({"toolsListChanged": true, "resourceSubscriptions": ["a://1", "a://2"]})
        );
        assert!(filter.wants_list_change("notifications/tools/list_changed"));
        assert!(!filter.wants_list_change("notifications/prompts/list_changed"));
        assert_eq!(Filter::parse(&json!({})).unwrap(), Filter::default());
        assert!(Filter::parse(&json!({"notifications": []})).is_err());
        assert!(Filter::parse(&json!({"notifications": {"toolsListChanged": 1}})).is_err());
        assert!(Filter::parse(&json!({"notifications": {"resourceSubscriptions": [1]}})).is_err());
        let many: Vec<String> = (0..=MAX_LISTEN_URIS).map(|i| format!("a://{i}")).collect();
        assert!(Filter::parse(&json!({"notifications": {"resourceSubscriptions": many}})).is_err());
    }
}
