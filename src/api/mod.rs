//! The API server on `[api].address`: the dashboard (`web-ui/`, embedded at build
//! time), the JSON API in Traefik's shapes plus gantry's live numbers, `/metrics` in
//! Prometheus text, and `/ping`.
//!
//! Read-only: every handler reads the current routing table and live counters, and
//! nothing can be changed through it. Optional credentials (`[api.auth]`) guard
//! everything but `/ping` (and, when only a bearer token is configured, the static
//! dashboard files, which hold no data: the page asks for the token itself).

mod auth;
mod fields;
mod list;
pub mod metrics;
mod state;
pub mod views;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{middleware, Json, Router};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::watch;

use fields::{FieldMask, Shape};
use list::ListParams;
use views::{samples, Snapshot};

pub use state::{Edge, Shared};

/// Serves the API until `shutdown` turns true.
pub async fn serve(listener: TcpListener, shared: Shared, mut shutdown: watch::Receiver<bool>) {
    let app = router(shared);
    let stop = async move {
        let _ = shutdown.wait_for(|s| *s).await;
    };
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(stop)
        .await
    {
        tracing::warn!(error = %e, "api server stopped");
    }
}

/// Every route of the API.
pub fn router(shared: Shared) -> Router {
    let data = Router::new()
        .route("/api/overview", get(overview))
        .route("/api/http/routers", get(routers))
        .route("/api/http/routers/{name}", get(router_by_name))
        .route("/api/http/services", get(services))
        .route("/api/http/services/{name}", get(service_by_name))
        .route("/api/http/middlewares", get(middlewares))
        .route("/api/http/middlewares/{name}", get(middleware_by_name))
        .route("/api/entrypoints", get(entrypoints))
        .route("/api/entrypoints/{name}", get(entrypoint_by_name))
        .route("/api/providers", get(providers))
        .route("/api/errors", get(errors))
        .route("/api/rawdata", get(rawdata))
        .route("/api/version", get(version))
        .route("/metrics", get(metrics))
        .fallback(not_found);
    let assets = Router::new()
        .route("/", get(asset_index))
        .route("/app.js", get(asset_js))
        .route("/style.css", get(asset_css))
        .route("/favicon.svg", get(asset_icon));
    let guard = auth::Guard::new(shared.auth.as_ref());
    let guarded_assets = guard.covers_assets();
    let data = data.layer(middleware::from_fn_with_state(guard.clone(), auth::require));
    let assets = if guarded_assets {
        assets.layer(middleware::from_fn_with_state(guard, auth::require))
    } else {
        assets
    };
    Router::new()
        .route("/ping", get(|| async { "OK" }))
        .merge(assets)
        .merge(data)
        .layer(middleware::from_fn(security_headers))
        .with_state(shared)
}

/// An API error: a status and a message, as `{"message": ...}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    fn not_found(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(serde_json::json!({ "message": self.message })),
        )
            .into_response()
    }
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such API path")
}

type Params = Query<Vec<(String, String)>>;

/// A single object, with `fields` applied.
fn one<T: Serialize>(
    value: &T,
    sample: &T,
    params: &[(String, String)],
) -> Result<Response, ApiError> {
    let mask = list::only_fields(params)?;
    let json = to_value(value)?;
    let json = match mask {
        Some(mask) => {
            check_mask(&mask, sample)?;
            mask.apply(json)
        }
        None => json,
    };
    Ok(Json(json).into_response())
}

/// A list, filtered, paged and with `fields` applied.
fn many<T: Serialize>(
    items: Vec<T>,
    sample: &T,
    params: &ListParams,
    matches: impl Fn(&T, &ListParams) -> bool,
) -> Result<Response, ApiError> {
    let filtered: Vec<&T> = items.iter().filter(|i| matches(i, params)).collect();
    let total = filtered.len();
    let (page, next) = params.page(&filtered);
    let json = to_value(&page)?;
    let json = match &params.fields {
        Some(mask) => {
            check_mask(mask, sample)?;
            mask.apply_each(json)
        }
        None => json,
    };
    let mut response = Json(json).into_response();
    let headers = response.headers_mut();
    headers.insert("x-total-count", HeaderValue::from(total));
    headers.insert("x-next-page", HeaderValue::from(next));
    Ok(response)
}

/// The item `is_it` picks, or a 404 naming what was asked for.
fn find<T>(
    items: Vec<T>,
    kind: &str,
    name: &str,
    is_it: impl Fn(&T) -> bool,
) -> Result<T, ApiError> {
    items
        .into_iter()
        .find(is_it)
        .ok_or_else(|| ApiError::not_found(format!("no {kind} {name:?}")))
}

fn to_value<T: Serialize + ?Sized>(v: &T) -> Result<serde_json::Value, ApiError> {
    serde_json::to_value(v).map_err(|e| ApiError {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        message: format!("cannot encode the response: {e}"),
    })
}

fn check_mask<T: Serialize>(mask: &FieldMask, sample: &T) -> Result<(), ApiError> {
    let shape = Shape::of(&to_value(sample)?);
    tracing::trace!(fields = ?mask.paths(), "field mask");
    mask.check(&shape)
        .map_err(|e| ApiError::bad_request(format!("fields: {e}")))
}

async fn overview(
    State(shared): State<Shared>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let snap = Snapshot::take(&shared);
    one(&snap.overview(), &samples::overview(), &params)
}

async fn routers(
    State(shared): State<Shared>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let params = ListParams::parse(&params, list::ROUTER_STATUSES)?;
    let snap = Snapshot::take(&shared);
    many(snap.routers(), &Default::default(), &params, |r, p| {
        p.status_is(r.status) && p.search_in(&[&r.name, &r.rule, &r.service])
    })
}

async fn router_by_name(
    State(shared): State<Shared>,
    Path(name): Path<String>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let routers = Snapshot::take(&shared).routers();
    let found = find(routers, "router", &name, |r| {
        list::same_name(&r.name, &name)
    })?;
    one(&found, &Default::default(), &params)
}

async fn services(
    State(shared): State<Shared>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let params = ListParams::parse(&params, list::ROUTER_STATUSES)?;
    let snap = Snapshot::take(&shared);
    many(snap.services(), &samples::service(), &params, |s, p| {
        p.status_is(s.status)
            && (p.search_in(&[&s.name])
                || s.load_balancer
                    .servers
                    .iter()
                    .any(|srv| p.search_in(&[&srv.url, &srv.task_id])))
    })
}

async fn service_by_name(
    State(shared): State<Shared>,
    Path(name): Path<String>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let services = Snapshot::take(&shared).services();
    let found = find(services, "service", &name, |s| {
        list::same_name(&s.name, &name)
    })?;
    one(&found, &samples::service(), &params)
}

async fn middlewares(
    State(shared): State<Shared>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let params = ListParams::parse(&params, list::MIDDLEWARE_STATUSES)?;
    let snap = Snapshot::take(&shared);
    many(snap.middlewares(), &Default::default(), &params, |m, p| {
        p.status_is(m.status) && p.search_in(&[&m.name, &m.kind])
    })
}

async fn middleware_by_name(
    State(shared): State<Shared>,
    Path(name): Path<String>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let middlewares = Snapshot::take(&shared).middlewares();
    let found = find(middlewares, "middleware", &name, |m| {
        list::same_name(&m.name, &name)
    })?;
    one(&found, &Default::default(), &params)
}

async fn entrypoints(
    State(shared): State<Shared>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let params = ListParams::parse(&params, &[])?;
    let snap = Snapshot::take(&shared);
    many(snap.entrypoints(), &Default::default(), &params, |e, p| {
        p.search_in(&[&e.name, &e.address])
    })
}

async fn entrypoint_by_name(
    State(shared): State<Shared>,
    Path(name): Path<String>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let entrypoints = Snapshot::take(&shared).entrypoints();
    let found = find(entrypoints, "entrypoint", &name, |e| e.name == name)?;
    one(&found, &Default::default(), &params)
}

async fn providers(
    State(shared): State<Shared>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let params = ListParams::parse(&params, list::PROVIDER_STATUSES)?;
    let snap = Snapshot::take(&shared);
    many(snap.providers(), &Default::default(), &params, |v, p| {
        p.status_is(if v.healthy { "healthy" } else { "failing" }) && p.search_in(&[&v.name])
    })
}

async fn errors(State(shared): State<Shared>, Query(params): Params) -> Result<Response, ApiError> {
    let params = ListParams::parse(&params, list::ERROR_KINDS)?;
    let snap = Snapshot::take(&shared);
    many(snap.errors(), &Default::default(), &params, |e, p| {
        p.status_is(e.kind)
            && p.search_in(&[
                &e.name,
                &e.message,
                e.task.as_deref().unwrap_or(""),
                e.label.as_deref().unwrap_or(""),
            ])
    })
}

async fn rawdata(
    State(shared): State<Shared>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let config = shared.table.load().config().clone();
    match list::only_fields(&params)? {
        // The raw configuration's maps are keyed by name: select whole top-level parts.
        Some(mask) => {
            let json = to_value(&*config)?;
            mask.check(&Shape::of(
                &serde_json::json!({"routers": null, "services": null, "errors": null}),
            ))
            .map_err(|e| ApiError::bad_request(format!("fields: {e}")))?;
            Ok(Json(mask.apply(json)).into_response())
        }
        None => Ok(Json(&*config).into_response()),
    }
}

async fn version(Query(params): Params) -> Result<Response, ApiError> {
    #[derive(Serialize, Default)]
    #[serde(rename_all = "PascalCase")]
    struct Version {
        version: &'static str,
        codename: &'static str,
    }
    let v = Version {
        version: env!("CARGO_PKG_VERSION"),
        codename: "gantry",
    };
    one(&v, &Version::default(), &params)
}

async fn metrics(State(shared): State<Shared>) -> Response {
    match metrics::render(&shared) {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: format!("cannot encode metrics: {e}"),
        }
        .into_response(),
    }
}

const INDEX: &str = include_str!("../../web-ui/index.html");
const APP_JS: &str = include_str!("../../web-ui/app.js");
const STYLE: &str = include_str!("../../web-ui/style.css");
const ICON: &str = include_str!("../../web-ui/favicon.svg");

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

async fn asset_index() -> Response {
    asset("text/html; charset=utf-8", INDEX)
}

async fn asset_js() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

async fn asset_css() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

async fn asset_icon() -> Response {
    asset("image/svg+xml", ICON)
}

/// The dashboard loads nothing from elsewhere and runs no inline script.
async fn security_headers(req: axum::extract::Request, next: middleware::Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    res
}
