//! The network mode: one HTTP server on 127.0.0.1 serving every transport (`/mcp`, `/sse`
//! with `/messages`, `/ws`) plus `/stats`, `/admin/*` and the OAuth endpoints. Owns the accept
//! loop, which gives each connection a kill switch (`ConnKill`) so a handler can abort its
//! connection without a response (the `crash` tool).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::app::App;
use crate::{http, oauth, sse, ws};

/// Cancelling it drops the HTTP connection the request arrived on.
#[derive(Clone)]
pub struct ConnKill(pub CancellationToken);

fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/mcp", post(http::post).get(http::get).delete(http::delete))
        .route("/sse", get(sse::get))
        .route("/messages", post(sse::post))
        .route("/ws", get(ws::get))
        .route("/stats", get(stats))
        .route("/admin/forget-sessions", post(forget_sessions))
        .route("/admin/change-tools", post(change_tools))
        .route("/oauth/token", post(oauth::token))
        .route(
            "/.well-known/oauth-protected-resource",
            get(oauth::resource_metadata),
        )
        .route(
            "/.well-known/oauth-protected-resource/mcp",
            get(oauth::resource_metadata),
        )
        .route(
            "/.well-known/oauth-authorization-server",
            get(oauth::server_metadata),
        )
        .with_state(app)
}

async fn stats(State(app): State<Arc<App>>) -> Response {
    Json(app.stats.snapshot()).into_response()
}

async fn forget_sessions(State(app): State<Arc<App>>) -> Response {
    let n = app.sessions.clear() + app.sse_sessions.clear();
    tracing::info!(sessions = n, "forgot all sessions");
    Json(json!({"forgotten": n})).into_response()
}

async fn change_tools(State(app): State<Arc<App>>) -> Response {
    let name = app.change_tools();
    Json(json!({"added": name})).into_response()
}

/// Binds, prints `LISTENING <port>`, and serves until the process is killed.
pub async fn run(app: Arc<App>, port: u16) -> std::io::Result<()> {
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    let port = listener.local_addr()?.port();
    app.set_port(port);
    let mut stdout = tokio::io::stdout();
    stdout
        .write_all(format!("LISTENING {port}\n").as_bytes())
        .await?;
    stdout.flush().await?;
    tracing::info!(port, era = ?app.cfg.era, "mcp-fixture listening on 127.0.0.1");
    let router = router(Arc::clone(&app));
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                // E.g. out of file descriptors: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve_connection(stream, router.clone(), Arc::clone(&app)));
    }
}

async fn serve_connection(stream: tokio::net::TcpStream, router: Router, app: Arc<App>) {
    let kill = CancellationToken::new();
    let token = kill.clone();
    let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let mut req: Request = req.map(axum::body::Body::new);
        req.extensions_mut().insert(ConnKill(token.clone()));
        if req.uri().path() != "/stats" {
            app.stats.http_requests.inc();
        }
        router.clone().oneshot(req)
    });
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
    tokio::select! {
        r = conn => {
            if let Err(e) = r {
                tracing::trace!(error = %e, "connection ended with error");
            }
        }
        () = kill.cancelled() => tracing::debug!("connection aborted (crash)"),
    }
}
