//! The API server on `[api].address`: `/ping` and the raw dynamic configuration.
//! (The dashboard and the rest of the Traefik-compatible API build on this.)

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::app::Shared;

/// Serves the API until `shutdown` turns true.
pub async fn serve(listener: TcpListener, shared: Shared, mut shutdown: watch::Receiver<bool>) {
    let app = Router::new()
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
