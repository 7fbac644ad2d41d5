//! The API server on `[api].address`: `/ping`, the raw dynamic configuration, and a
//! plain summary page at `/`. (The dashboard and the rest of the Traefik-compatible
//! API build on this.)

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::app::Shared;

/// Serves the API until `shutdown` turns true.
pub async fn serve(listener: TcpListener, shared: Shared, mut shutdown: watch::Receiver<bool>) {
    let app = Router::new()
        .route("/", get(summary))
        .route("/ping", get(|| async { "OK" }))
        .route("/api/rawdata", get(rawdata))
        .route("/api/version", get(version))
        .with_state(shared);
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

async fn rawdata(State(shared): State<Shared>) -> Json<crate::dynamic::DynamicConfig> {
    Json((**shared.table.load().config()).clone())
}

async fn version() -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "Version": env!("CARGO_PKG_VERSION"),
        "Codename": "gantry",
    }))
}

/// A plain-text view of routers, services, servers and errors, until the dashboard.
async fn summary(State(shared): State<Shared>) -> String {
    use std::fmt::Write;
    let table = shared.table.load();
    let config = table.config();
    let mut out = String::from("gantry\n\nrouters:\n");
    for (name, r) in &config.routers {
        let _ = writeln!(out, "  {name} [{:?}] {} -> {}", r.status, r.rule, r.service);
    }
    out.push_str("\nservices:\n");
    for (name, s) in &config.services {
        let _ = writeln!(out, "  {name} [{:?}]", s.status);
        for srv in &s.servers {
            let key = crate::balance::EndpointKey::of(srv);
            let (calls, in_flight) = table
                .endpoints()
                .get(&key)
                .map_or((0, 0), |e| (e.requests(), e.in_flight()));
            let _ = writeln!(
                out,
                "    {} task={} weight={} health={:?} calls={calls} in_flight={in_flight}",
                srv.url, srv.task, srv.weight, srv.health
            );
        }
    }
    let _ = writeln!(out, "\nerrors ({}):", config.errors.len());
    for e in &config.errors {
        let _ = writeln!(out, "  {e}");
    }
    out
}
