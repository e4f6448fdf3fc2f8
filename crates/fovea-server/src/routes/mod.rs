//! The router: `/api/v1` JSON routes, `/healthz`, `/metrics`, `/openapi.json` and the embedded web UI.

mod classes;
mod collections;
mod hygiene;
mod images;
mod insight;
mod models;
mod review;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, FromRequest, Query, Request, State};
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use fovea_app::Role;
use include_dir::{include_dir, Dir};
use serde::de::DeserializeOwned;

use crate::api_types::{Health, Me};
use crate::auth::Caller;
use crate::error::{bad_request, ApiError};

pub(crate) use classes::*;
pub(crate) use collections::*;
pub(crate) use hygiene::*;
pub(crate) use images::*;
pub(crate) use insight::*;
pub(crate) use models::*;
pub(crate) use review::*;

static ASSETS: Dir = include_dir!("$CARGO_MANIFEST_DIR/assets");

pub(crate) type S = Arc<crate::State>;
pub(crate) type ApiResult = Result<Response, ApiError>;

pub fn router(state: S) -> Router {
    let upload_limit = state.app.config().limits.max_bytes + 64 * 1024;
    let api = Router::new()
        .route("/me", get(me))
        .route("/classify", post(classify))
        .route("/images", get(images))
        .route("/images/{id}/label", post(label))
        .route("/images/{id}/blob", get(blob))
        .route("/images/{id}", get(image_detail))
        .route("/images/{id}/thumb", get(thumb))
        .route("/collections", get(list_collections).post(create_collection))
        .route("/collections/{id}", get(get_collection))
        .route("/collections/{id}/images", post(upload_to_collection))
        .route("/collections/{id}/pairs", get(pairs))
        .route("/imports", post(queue_import))
        .route("/results", get(results))
        .route("/coverage", get(coverage))
        .route("/tags", get(tags))
        .route("/bulk", get(bulk_actions).post(bulk))
        .route("/bulk/{id}/undo", post(undo_bulk))
        .route("/review", get(review))
        .route("/hygiene/label-errors", get(label_errors))
        .route("/hygiene/label-errors/{id}/confirm", post(confirm_label))
        .route("/hygiene/duplicates", get(duplicates))
        .route("/hygiene/duplicates/resolve", post(resolve_duplicates))
        .route("/hygiene/leakage", get(leakage))
        .route("/hygiene/unknown", get(unknown_review))
        .route("/classes", get(classes).post(create_class))
        .route("/classes/{id}", patch(rename_class).delete(delete_class))
        .route("/classes/{id}/merge", post(merge_class))
        .route("/classes/merges", get(merges))
        .route("/classes/renames", get(renames))
        .route("/classes/merges/{id}/undo", post(undo_merge))
        .route("/transactions", get(transactions))
        .route("/models", get(models))
        .route("/calibration", get(calibration).post(recalibrate))
        .route("/models/rollback", post(rollback_model))
        .route("/models/{id}", get(model))
        .route("/models/{id}/promote", post(promote_model))
        .route("/train", post(train))
        .route("/jobs", get(jobs))
        .route("/jobs/{id}", get(job))
        .route("/jobs/{id}/cancel", post(cancel_job))
        .route("/report", get(report))
        .route("/report.html", get(report_html))
        .route("/drift", get(drift))
        .route("/drift/reference", post(rebuild_drift))
        .route("/drift/alerts", get(drift_alerts))
        .route("/evaluations", get(evaluations).post(start_evaluation))
        .route("/evaluations/{id}", get(evaluation))
        .route("/evaluations/items/{id}", post(answer_evaluation))
        .fallback(|| async { ApiError(fovea_app::AppError::NotFound { what: "route", id: String::new() }) });
    Router::new()
        .nest("/api/v1", api)
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .route("/openapi.json", get(openapi))
        .fallback(get(asset))
        .layer(axum::middleware::from_fn_with_state(state.clone(), crate::guard::open_mode_guard))
        .layer(DefaultBodyLimit::max(upload_limit))
        .layer(tower_http::catch_panic::CatchPanicLayer::new())
        .with_state(state)
}

/// An optional `YYYY-MM-DD` query field as the start of that day (UTC, milliseconds); a bad date is a 400 naming
/// the field.
pub(crate) fn query_day(field: &str, value: &Option<String>) -> Result<Option<i64>, ApiError> {
    match value.as_deref().map(str::trim).filter(|d| !d.is_empty()) {
        None => Ok(None),
        Some(d) => fovea_insight::time::parse_date(d)
            .map(Some)
            .ok_or_else(|| bad_request(format!("{field} {d:?}: expected a date YYYY-MM-DD"))),
    }
}

/// `Json` whose rejection is our `{"error":…}` 400, so no handler maps it by hand.
pub(crate) struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, St: Send + Sync> FromRequest<St> for ApiJson<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &St) -> Result<Self, ApiError> {
        let Json(v) = Json::<T>::from_request(req, state).await.map_err(|e| bad_request(e.body_text()))?;
        Ok(ApiJson(v))
    }
}

/// `Query` with the same error shape.
pub(crate) struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, St: Send + Sync> axum::extract::FromRequestParts<St> for ApiQuery<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &St) -> Result<Self, ApiError> {
        let Query(v) = Query::<T>::from_request_parts(parts, state).await.map_err(|e| bad_request(e.body_text()))?;
        Ok(ApiQuery(v))
    }
}

/// Liveness, with the model version and engine being served; 503 while the compute worker is down.
#[utoipa::path(get, path = "/healthz", tag = "service",
    responses((status = 200, body = Health), (status = 503, body = Health)))]
pub async fn healthz(State(s): State<S>) -> Response {
    let healthy = s.app.compute_healthy();
    let body = Health {
        status: if healthy { "ok" } else { "unhealthy" },
        model_version: s.app.model_version().await,
        engine: s.app.engine(),
    };
    let code = if healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, Json(body)).into_response()
}

async fn metrics_text(State(s): State<S>) -> Response {
    match &s.prometheus {
        Some(h) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], h.render()).into_response(),
        None => (StatusCode::SERVICE_UNAVAILABLE, "metrics recorder unavailable").into_response(),
    }
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], crate::openapi::document()).into_response()
}

async fn asset(uri: Uri) -> Response {
    let path = uri.path().trim_start_matches('/');
    let path = if path.is_empty() { "index.html" } else { path };
    let Some(file) = ASSETS.get_file(path).or_else(|| ASSETS.get_file("index.html")) else {
        return (StatusCode::NOT_FOUND, "no web UI built in").into_response();
    };
    let mime = match file.path().extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        _ => "application/octet-stream",
    };
    ([(header::CONTENT_TYPE, mime)], file.contents()).into_response()
}

/// Who the token belongs to and what it may do.
#[utoipa::path(get, path = "/api/v1/me", tag = "service", responses((status = 200, body = Me),
    (status = 401, body = crate::api_types::ErrorBody)), security(("token" = [])))]
pub async fn me(caller: Caller) -> Result<Json<Me>, ApiError> {
    caller.require(Role::Viewer)?;
    Ok(Json(Me { user: caller.user, role: caller.role.as_str() }))
}
