//! The model registry (list, promote, roll back) and training jobs (enqueue, list, follow, cancel).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use fovea_app::{AppError, CalibrationReport, JobRecord, ModelVersionRecord, Role, TrainParams};

use super::{ApiJson, ApiQuery, ApiResult, S};
use crate::api_types::{ErrorBody, JobsPage, JobsQuery, ModelsPage};
use crate::auth::Caller;
use crate::error::{bad_request, ApiError};

/// Every model version, newest first, and the id of the one being served.
#[utoipa::path(get, path = "/api/v1/models", tag = "models",
    responses((status = 200, body = ModelsPage)), security(("token" = [])))]
pub async fn models(State(s): State<S>, caller: Caller) -> ApiResult {
    caller.require(Role::Viewer)?;
    let models = s.app.models().await?;
    Ok(Json(ModelsPage { served: s.app.served_model().await, models, calibration: s.app.calibration().await })
        .into_response())
}

/// The served online head's calibration: temperature, open-set threshold, and the held-out evidence (sample
/// size, expected calibration error before and after, reliability diagram). 404 until a head has been fitted.
#[utoipa::path(get, path = "/api/v1/calibration", tag = "models",
    responses((status = 200, body = CalibrationReport), (status = 404, body = ErrorBody)), security(("token" = [])))]
pub async fn calibration(State(s): State<S>, caller: Caller) -> ApiResult {
    caller.require(Role::Viewer)?;
    match s.app.calibration().await {
        Some(report) => Ok(Json(report).into_response()),
        None => Err(ApiError(AppError::NotFound { what: "calibration", id: s.app.served_model().await })),
    }
}

/// Refit the served head's calibration now (admin); it is also refreshed on its own as labels arrive.
#[utoipa::path(post, path = "/api/v1/calibration", tag = "models",
    responses((status = 200, body = CalibrationReport)), security(("token" = [])))]
pub async fn recalibrate(State(s): State<S>, caller: Caller) -> ApiResult {
    caller.require(Role::Admin)?;
    Ok(Json(s.app.recalibrate().await?).into_response())
}

/// One model version with its metrics (for a fine-tune: the training report and per-epoch history).
#[utoipa::path(get, path = "/api/v1/models/{id}", tag = "models",
    params(("id" = String, Path, description = "model version id")),
    responses((status = 200, body = ModelVersionRecord), (status = 404, body = ErrorBody)),
    security(("token" = [])))]
pub async fn model(State(s): State<S>, caller: Caller, Path(id): Path<String>) -> ApiResult {
    caller.require(Role::Viewer)?;
    Ok(Json(s.app.model(&id).await?).into_response())
}

/// Serve this model version from now on (admin). Throw-away runs are refused.
#[utoipa::path(post, path = "/api/v1/models/{id}/promote", tag = "models",
    params(("id" = String, Path, description = "model version id")),
    responses((status = 200, body = ModelVersionRecord), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("token" = [])))]
pub async fn promote_model(State(s): State<S>, caller: Caller, Path(id): Path<String>) -> ApiResult {
    caller.require(Role::Admin)?;
    Ok(Json(s.app.promote(&id).await?).into_response())
}

/// Go back to the model the served one was trained from (admin); answers the model served now.
#[utoipa::path(post, path = "/api/v1/models/rollback", tag = "models",
    responses((status = 200, body = ModelVersionRecord), (status = 400, body = ErrorBody)),
    security(("token" = [])))]
pub async fn rollback_model(State(s): State<S>, caller: Caller) -> ApiResult {
    caller.require(Role::Admin)?;
    Ok(Json(s.app.rollback().await?).into_response())
}

/// Queue a fine-tune run (admin). Every field is optional: `{}` trains with the defaults.
/// The server's worker runs it; follow it with `GET /api/v1/jobs/{id}`.
#[utoipa::path(post, path = "/api/v1/train", tag = "models", request_body = TrainParams,
    responses((status = 202, body = JobRecord), (status = 400, body = ErrorBody)), security(("token" = [])))]
pub async fn train(State(s): State<S>, caller: Caller, ApiJson(params): ApiJson<TrainParams>) -> ApiResult {
    caller.require(Role::Admin)?;
    let job = s.app.enqueue_training(&params).await?;
    Ok((StatusCode::ACCEPTED, Json(job)).into_response())
}

/// Background jobs, newest first. While a training job runs, `message` holds its live progress as JSON
/// (`TrainProgress`); once it has ended, its outcome (`{"model","promoted","verdict",…}` or `{"error"}`).
#[utoipa::path(get, path = "/api/v1/jobs", tag = "models", params(JobsQuery),
    responses((status = 200, body = JobsPage)), security(("token" = [])))]
pub async fn jobs(State(s): State<S>, caller: Caller, ApiQuery(q): ApiQuery<JobsQuery>) -> ApiResult {
    caller.require(Role::Viewer)?;
    let jobs = s.app.jobs(q.limit.unwrap_or(20).clamp(1, 200)).await?;
    Ok(Json(JobsPage { jobs }).into_response())
}

fn job_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>().map_err(|_| bad_request(format!("{raw:?} is not a job id")))
}

/// One job, with its progress or outcome.
#[utoipa::path(get, path = "/api/v1/jobs/{id}", tag = "models", params(("id" = i64, Path)),
    responses((status = 200, body = JobRecord), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("token" = [])))]
pub async fn job(State(s): State<S>, caller: Caller, Path(id): Path<String>) -> ApiResult {
    caller.require(Role::Viewer)?;
    Ok(Json(s.app.job(job_id(&id)?).await?).into_response())
}

/// Cancel a queued or running job (admin); a running one stops at its next heartbeat. Answers the job.
#[utoipa::path(post, path = "/api/v1/jobs/{id}/cancel", tag = "models", params(("id" = i64, Path)),
    responses((status = 200, body = JobRecord), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("token" = [])))]
pub async fn cancel_job(State(s): State<S>, caller: Caller, Path(id): Path<String>) -> ApiResult {
    caller.require(Role::Admin)?;
    let id = job_id(&id)?;
    if !s.app.cancel_job(id).await? {
        let job = s.app.job(id).await?;
        return Err(ApiError(AppError::Conflict(format!(
            "job {id} has already ended ({}); only queued or running jobs can be cancelled",
            job.state.as_str()
        ))));
    }
    Ok(Json(s.app.job(id).await?).into_response())
}
