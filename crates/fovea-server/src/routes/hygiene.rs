//! Dataset hygiene: the second-look queue of labels the model disputes, duplicate groups with their resolution,
//! training runs' split leakage, and Unknown images that fit a newer class.

use axum::extract::{Path, State};
use axum::response::IntoResponse;
use axum::Json;
use fovea_app::{
    DuplicateReport, LabelErrorReport, LeakageReport, ResolveOutcome, ResolveRequest, Role, SuspectLabelConfirmed,
    UnknownReview, MAX_LABEL_ERRORS_PAGE, MAX_UNKNOWN_MATCHES,
};
use serde::Deserialize;
use utoipa::IntoParams;

use super::{ApiJson, ApiQuery, ApiResult, S};
use crate::api_types::ErrorBody;
use crate::auth::Caller;
use crate::error::bad_request;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LabelErrorsQuery {
    /// Page size, 1..500 (default 50).
    pub limit: Option<usize>,
    #[serde(default)]
    pub offset: usize,
    /// Search again now instead of serving the kept search (annotators and admins).
    #[serde(default)]
    pub refresh: bool,
}

/// Labels the served model confidently disputes, most disputed first: every labelled image is predicted with itself
/// unlearned, and a label is suspect when another class reaches its own per-class confidence threshold and beats it.
/// Confirmed labels and images relabelled since the search are left out.
#[utoipa::path(get, path = "/api/v1/hygiene/label-errors", tag = "hygiene", params(LabelErrorsQuery),
    responses((status = 200, body = LabelErrorReport), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("token" = [])))]
pub async fn label_errors(State(s): State<S>, caller: Caller, ApiQuery(q): ApiQuery<LabelErrorsQuery>) -> ApiResult {
    caller.require(Role::Viewer)?;
    if q.refresh {
        // A search is a pass over every labelled image: not something a read-only token may trigger at will.
        caller.require(Role::Annotator)?;
    }
    let limit = q.limit.unwrap_or(50);
    if !(1..=MAX_LABEL_ERRORS_PAGE).contains(&limit) {
        return Err(bad_request(format!("`limit` must lie in 1..{MAX_LABEL_ERRORS_PAGE}")));
    }
    Ok(Json(s.app.label_errors(limit, q.offset, q.refresh).await?).into_response())
}

/// Keeps the image's current label after a second look; it leaves the queue until the image is labelled again.
/// (To change the label instead, `POST /api/v1/images/{id}/label`.)
#[utoipa::path(post, path = "/api/v1/hygiene/label-errors/{id}/confirm", tag = "hygiene",
    params(("id" = String, Path, description = "image id")),
    responses((status = 200, body = SuspectLabelConfirmed), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("token" = [])))]
pub async fn confirm_label(State(s): State<S>, caller: Caller, Path(id): Path<String>) -> ApiResult {
    caller.require(Role::Annotator)?;
    Ok(Json(s.app.confirm_label(&id, &caller.user).await?).into_response())
}

/// Duplicate groups across every stored image (labelled or not): the same pixels in other bytes, and near copies
/// (re-encoded, resized, brightened, slightly cropped). Conflicting labels inside a group are called out and listed
/// first; groups kept whole are left out.
#[utoipa::path(get, path = "/api/v1/hygiene/duplicates", tag = "hygiene",
    responses((status = 200, body = DuplicateReport), (status = 403, body = ErrorBody)),
    security(("token" = [])))]
pub async fn duplicates(State(s): State<S>, caller: Caller) -> ApiResult {
    caller.require(Role::Viewer)?;
    Ok(Json(s.app.duplicates().await?).into_response())
}

/// Resolves a duplicate group in one click: `keep_one` (the others go to Unknown: kept, never trained on),
/// `keep_all` (not shown again until the group changes) or `discard` (all go to Unknown). Moves to Unknown are one
/// bulk action, undone at `/api/v1/bulk/{id}/undo`.
#[utoipa::path(post, path = "/api/v1/hygiene/duplicates/resolve", tag = "hygiene", request_body = ResolveRequest,
    responses((status = 200, body = ResolveOutcome), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("token" = [])))]
pub async fn resolve_duplicates(
    State(s): State<S>,
    caller: Caller,
    ApiJson(req): ApiJson<ResolveRequest>,
) -> ApiResult {
    caller.require(Role::Annotator)?;
    Ok(Json(s.app.resolve_duplicates(&req, &caller.user).await?).into_response())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LeakageQuery {
    /// A training run's model id (default: the newest run with a report).
    pub model: Option<String>,
}

/// Near-duplicate groups a training run put in different splits, recorded when its splits were drawn. A benchmark
/// image with a copy in the training or validation data fails the run's gate and blocks its promotion.
#[utoipa::path(get, path = "/api/v1/hygiene/leakage", tag = "hygiene", params(LeakageQuery),
    responses((status = 200, body = LeakageReport), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("token" = [])))]
pub async fn leakage(State(s): State<S>, caller: Caller, ApiQuery(q): ApiQuery<LeakageQuery>) -> ApiResult {
    caller.require(Role::Viewer)?;
    if q.model.as_deref().is_some_and(|m| m.trim().is_empty()) {
        return Err(bad_request("`model` must name a training run"));
    }
    Ok(Json(s.app.leakage(q.model.as_deref()).await?).into_response())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UnknownQuery {
    /// Only matches for this class.
    pub class: Option<String>,
    /// At most this many, 1..500 (default 50).
    pub limit: Option<usize>,
}

/// Images labelled Unknown that the served model now assigns to a class created after they were called Unknown:
/// worth another look now that the class exists. Relabel with `POST /api/v1/images/{id}/label`; keep one Unknown
/// with `POST /api/v1/hygiene/label-errors/{id}/confirm`.
#[utoipa::path(get, path = "/api/v1/hygiene/unknown", tag = "hygiene", params(UnknownQuery),
    responses((status = 200, body = UnknownReview), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("token" = [])))]
pub async fn unknown_review(State(s): State<S>, caller: Caller, ApiQuery(q): ApiQuery<UnknownQuery>) -> ApiResult {
    caller.require(Role::Viewer)?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=MAX_UNKNOWN_MATCHES).contains(&limit) {
        return Err(bad_request(format!("`limit` must lie in 1..{MAX_UNKNOWN_MATCHES}")));
    }
    let class = q.class.as_deref().map(str::trim).filter(|c| !c.is_empty());
    Ok(Json(s.app.unknown_review(class, limit).await?).into_response())
}
