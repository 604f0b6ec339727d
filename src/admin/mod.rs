//! The admin HTTP API (docs/reference.md §4): health and readiness, metrics,
//! the status document and page, and the commands that change routing.
//! It reads views of the control plane and sends it commands; it never
//! touches the data plane.

mod conn;
pub(crate) mod metrics;
mod page;
pub(crate) mod status;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;

use crate::control::ControlPlane;
use crate::fleet::keeper::Spread;
use crate::fleet::message::Action;
use crate::health::{Event, Forced, RecordError};

/// Request bodies are tiny JSON objects; anything bigger is refused.
const BODY_LIMIT: usize = 16 * 1024;

#[derive(Clone)]
struct App {
    plane: Arc<ControlPlane>,
}

/// A JSON error with its status.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, axum::Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<RecordError> for ApiError {
    fn from(e: RecordError) -> Self {
        let status = match e {
            RecordError::UnknownRegion(_) => StatusCode::NOT_FOUND,
            RecordError::Conflict { .. } => StatusCode::CONFLICT,
        };
        ApiError(status, e.to_string())
    }
}

pub(crate) fn router(plane: Arc<ControlPlane>) -> Router {
    Router::new()
        .route("/", get(page::page))
        .route("/health", get(|| async { "ok\n" }))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .route("/status", get(status_json))
        .route("/events", get(events))
        .route("/explain", get(explain))
        .route("/admin/regions/{name}/state", post(set_state))
        .route("/admin/regions/{name}/readmit", post(readmit))
        .route("/admin/reload", post(reload))
        .fallback(|| async { ApiError(StatusCode::NOT_FOUND, "no such path".into()) })
        .method_not_allowed_fallback(|| async {
            ApiError(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed here".into(),
            )
        })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(App { plane })
}

/// Serves the admin API on `listener` until the task is dropped, with the
/// limits of [`conn::Limits`] on every client.
pub(crate) async fn serve(listener: tokio::net::TcpListener, plane: Arc<ControlPlane>) {
    conn::serve(listener, router(plane), conn::Limits::default()).await;
}

/// Binds the admin address (before anything starts, so a taken port is a
/// clean start-up error).
pub(crate) fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

async fn ready(State(app): State<App>) -> impl IntoResponse {
    if app.plane.monitor.ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "waiting for the first round of health checks\n",
        )
    }
}

async fn metrics(State(app): State<App>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        metrics::render(&app.plane),
    )
}

async fn status_json(State(app): State<App>) -> impl IntoResponse {
    axum::Json(status::build(&app.plane, 20))
}

#[derive(Deserialize)]
struct Limit {
    limit: Option<usize>,
}

async fn events(
    State(app): State<App>,
    query: Result<Query<Limit>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(limit)) = query else {
        return ApiError(
            StatusCode::BAD_REQUEST,
            "limit must be a whole number".into(),
        )
        .into_response();
    };
    let events = app
        .plane
        .monitor
        .events(limit.limit.unwrap_or(100).min(1000));
    axum::Json(json!({ "events": events })).into_response()
}

#[derive(Deserialize)]
struct ExplainQuery {
    name: Option<String>,
    client: Option<String>,
    subnet: Option<String>,
}

/// `GET /explain?name=..&client=..&subnet=..`: why the server answers what
/// it answers (see `crate::snapshot::explain`). Read-only, so no token.
/// Names the server does not answer for (NXDOMAIN, outside the zone) are
/// a 404 whose error says which.
async fn explain(
    State(app): State<App>,
    query: Result<Query<ExplainQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    use crate::explain::{Kind, Request, explain};
    let bad = |message: String| ApiError(StatusCode::BAD_REQUEST, message);
    let Ok(Query(query)) = query else {
        return Err(bad(
            "expected /explain?name=NAME[&client=IP][&subnet=CIDR]".into()
        ));
    };
    let Some(name) = query.name.filter(|n| !n.trim().is_empty()) else {
        return Err(bad(
            "name is required: /explain?name=NAME[&client=IP][&subnet=CIDR]".into(),
        ));
    };
    let request = Request::parse(&name, query.client.as_deref(), query.subnet.as_deref())
        .map_err(|e| bad(e.to_string()))?;
    let snapshot = app.plane.publisher.snapshot();
    let explanation = explain(&snapshot, &request).map_err(|e| bad(e.to_string()))?;
    match explanation.kind {
        Kind::Nxdomain | Kind::OutOfZone => {
            Err(ApiError(StatusCode::NOT_FOUND, explanation.summary))
        }
        _ => Ok(axum::Json(explanation).into_response()),
    }
}

/// Mutating calls need the bearer token when one is configured; compared
/// in constant time so response timing does not leak it.
fn authorize(app: &App, headers: &HeaderMap) -> Result<(), ApiError> {
    let config = app.plane.publisher.loaded().config;
    let Some(token) = config.server.admin_token.as_deref() else {
        return Ok(());
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if constant_time_eq(given.as_bytes(), token.as_bytes()) {
        Ok(())
    } else {
        Err(ApiError(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token".into(),
        ))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StateBody {
    state: String,
}

async fn set_state(
    State(app): State<App>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    authorize(&app, &headers)?;
    // A body over the limit is refused as JSON, like every other error.
    let body = body.map_err(|e| ApiError(e.status(), e.body_text()))?;
    let body: StateBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError(
            StatusCode::BAD_REQUEST,
            format!("body must be {{\"state\": \"down\"|\"up\"|\"auto\"}}: {e}"),
        )
    })?;
    let action = match body.state.as_str() {
        "down" => Action::Down,
        "up" => Action::Up,
        "auto" => Action::Auto,
        other => {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                format!("state {other:?} is not one of \"down\", \"up\", \"auto\""),
            ));
        }
    };
    let (event, spread) = command(&app, &name, action).await?;
    tracing::info!(region = %name, state = %body.state, "forced state set through the admin API");
    Ok(axum::Json(json!({
        "region": name,
        "state": body.state,
        "event": event,
        "acknowledged_by": spread.acknowledged_by,
        "pending": spread.pending,
    }))
    .into_response())
}

async fn readmit(
    State(app): State<App>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&app, &headers)?;
    let (event, spread) = command(&app, &name, Action::Readmit).await?;
    tracing::info!(region = %name, "region re-admitted through the admin API");
    Ok(axum::Json(json!({
        "region": name,
        "event": event,
        "acknowledged_by": spread.acknowledged_by,
        "pending": spread.pending,
    }))
    .into_response())
}

/// Applies an operator command here, and in a fleet waits (up to
/// [`crate::fleet::keeper::ACK_WAIT`]) for the peers to acknowledge it.
async fn command(
    app: &App,
    region: &str,
    action: Action,
) -> Result<(Option<Event>, Spread), ApiError> {
    match &app.plane.fleet {
        Some(keeper) => {
            let (command, event) = keeper.command(region, action)?;
            Ok((event, keeper.spread(&command).await))
        }
        None => {
            let monitor = &app.plane.monitor;
            let event = match action {
                Action::Readmit => monitor.readmit(region)?,
                Action::Down => monitor.force(region, Some(Forced::Down))?,
                Action::Up => monitor.force(region, Some(Forced::Up))?,
                Action::Auto => monitor.force(region, None)?,
            };
            let alone = Spread {
                acknowledged_by: vec![monitor.instance().to_owned()],
                pending: Vec::new(),
            };
            Ok((event, alone))
        }
    }
}

async fn reload(State(app): State<App>, headers: HeaderMap) -> Result<Response, ApiError> {
    authorize(&app, &headers)?;
    match app.plane.reload().await {
        Ok(()) => Ok(axum::Json(
            json!({ "reloaded": true, "config_version": app.plane.publisher.reloads().0 + 1 }),
        )
        .into_response()),
        Err(e) => Err(ApiError(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("reload failed; still serving the previous config: {e}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"secret-token", b"secret-token"));
        assert!(!constant_time_eq(b"secret-token", b"secret-tokem"));
        assert!(!constant_time_eq(b"secret", b"secret-token"));
    }
}
