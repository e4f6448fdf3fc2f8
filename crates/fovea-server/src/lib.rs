//! fovea's HTTP shell: `/api/v1` JSON routes, the embedded web UI, `/healthz` and `/metrics`.
//! Handlers extract, call one `fovea_app::App` method, and map the result.

mod api_types;
mod auth;
mod error;
mod guard;
pub mod metrics;
mod openapi;
mod routes;

use std::sync::Arc;

use axum::Router;
use fovea_app::App;
use metrics_exporter_prometheus::PrometheusHandle;

pub use error::status_of;
pub use openapi::document as openapi_document;

pub struct State {
    pub app: Arc<App>,
    /// Anonymous callers act as admin; only ever enabled on a loopback address.
    pub open: bool,
    pub prometheus: Option<PrometheusHandle>,
}

/// Builds the whole application, so tests can run it in-process.
pub fn create_app(app: Arc<App>, open: bool) -> Router {
    // One recorder per process; a second create_app (tests) reuses the first.
    static PROMETHEUS: std::sync::OnceLock<Option<PrometheusHandle>> = std::sync::OnceLock::new();
    let prometheus = PROMETHEUS
        .get_or_init(|| metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder().ok())
        .clone();
    routes::router(Arc::new(State { app, open, prometheus }))
}
