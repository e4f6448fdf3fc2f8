//! Reports (JSON and the self-contained HTML document), the drift monitor, and manual evaluation rounds.

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use fovea_app::{DriftAlertRecord, DriftStatus, EvaluationView, Role, Verdict};
use serde::Deserialize;

use super::{query_day, ApiJson, ApiQuery, ApiResult, S};
use crate::api_types::ErrorBody;
use crate::auth::Caller;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ReportQuery {
    /// Only predictions from this day on (YYYY-MM-DD, UTC).
    pub since: Option<String>,
}

/// Usage and accuracy (over time, by model version, by confidence, by class, confusion), each with its sample
/// size and 95 % interval, plus manual evaluation estimates: the stable document `fovea report --json` prints.
#[utoipa::path(get, path = "/api/v1/report", tag = "reports", params(ReportQuery),
    responses((status = 200, body = Object), (status = 400, body = ErrorBody)), security(("token" = [])))]
pub async fn report(State(s): State<S>, caller: Caller, ApiQuery(q): ApiQuery<ReportQuery>) -> ApiResult {
    caller.require(Role::Viewer)?;
    Ok(Json(s.app.report(query_day("since", &q.since)?).await?).into_response())
}

/// The same report as one self-contained HTML document with charts (no scripts, nothing fetched).
#[utoipa::path(get, path = "/api/v1/report.html", tag = "reports", params(ReportQuery),
    responses((status = 200, content_type = "text/html"), (status = 400, body = ErrorBody)), security(("token" = [])))]
pub async fn report_html(State(s): State<S>, caller: Caller, ApiQuery(q): ApiQuery<ReportQuery>) -> ApiResult {
    caller.require(Role::Viewer)?;
    let report = s.app.report(query_day("since", &q.since)?).await?;
    let drift = s.app.drift_status().await?;
    let html = fovea_insight::html::render(&report, drift.scores.as_ref());
    Ok(([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response())
}

/// Drift of recent requests from the reference: every signal against its threshold, and the open alerts.
#[utoipa::path(get, path = "/api/v1/drift", tag = "reports",
    responses((status = 200, body = DriftStatus)), security(("token" = [])))]
pub async fn drift(State(s): State<S>, caller: Caller) -> ApiResult {
    caller.require(Role::Viewer)?;
    Ok(Json(s.app.drift_status().await?).into_response())
}

/// Rebuild the drift reference now (admin), e.g. after a relabelling campaign; the window starts afresh.
#[utoipa::path(post, path = "/api/v1/drift/reference", tag = "reports",
    responses((status = 200, body = DriftStatus)), security(("token" = [])))]
pub async fn rebuild_drift(State(s): State<S>, caller: Caller) -> ApiResult {
    caller.require(Role::Admin)?;
    Ok(Json(s.app.rebuild_drift_reference().await?).into_response())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct AlertsQuery {
    /// Include cleared alerts.
    #[serde(default)]
    pub all: bool,
    pub limit: Option<u32>,
}

/// Drift alerts, newest first (open ones only unless `all`).
#[utoipa::path(get, path = "/api/v1/drift/alerts", tag = "reports", params(AlertsQuery),
    responses((status = 200, body = Vec<DriftAlertRecord>)), security(("token" = [])))]
pub async fn drift_alerts(State(s): State<S>, caller: Caller, ApiQuery(q): ApiQuery<AlertsQuery>) -> ApiResult {
    caller.require(Role::Viewer)?;
    Ok(Json(s.app.drift_alerts(!q.all, q.limit.unwrap_or(50)).await?).into_response())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartEvaluation {
    /// Predictions to sample (1–500).
    #[serde(default = "default_size")]
    pub size: usize,
    /// From the last N days.
    #[serde(default = "default_days")]
    pub days: u32,
    /// Model version whose predictions to sample (default: the served one).
    pub model: Option<String>,
}

fn default_size() -> usize {
    50
}

fn default_days() -> u32 {
    30
}

/// Start a manual evaluation round (annotator): a stratified sample of recent predictions to judge.
#[utoipa::path(post, path = "/api/v1/evaluations", tag = "reports", request_body = StartEvaluation,
    responses((status = 201, body = EvaluationView), (status = 400, body = ErrorBody)), security(("token" = [])))]
pub async fn start_evaluation(State(s): State<S>, caller: Caller, ApiJson(b): ApiJson<StartEvaluation>) -> ApiResult {
    caller.require(Role::Annotator)?;
    let view = s.app.start_evaluation(b.size, b.days, b.model.as_deref(), &caller.user).await?;
    Ok((axum::http::StatusCode::CREATED, Json(view)).into_response())
}

/// Every round with its accuracy estimate, newest first.
#[utoipa::path(get, path = "/api/v1/evaluations", tag = "reports",
    responses((status = 200, body = Vec<Object>)), security(("token" = [])))]
pub async fn evaluations(State(s): State<S>, caller: Caller) -> ApiResult {
    caller.require(Role::Viewer)?;
    Ok(Json(s.app.evaluations().await?).into_response())
}

/// One round: its estimate so far, its items and the next one to judge.
#[utoipa::path(get, path = "/api/v1/evaluations/{id}", tag = "reports",
    params(("id" = i64, Path, description = "round id")),
    responses((status = 200, body = EvaluationView), (status = 404, body = ErrorBody)), security(("token" = [])))]
pub async fn evaluation(State(s): State<S>, caller: Caller, Path(id): Path<i64>) -> ApiResult {
    caller.require(Role::Viewer)?;
    Ok(Json(s.app.evaluation(id).await?).into_response())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnswerBody {
    /// right, wrong or skip.
    pub verdict: Verdict,
    /// With `wrong`: the right class (learned as a correction).
    pub class: Option<String>,
}

/// Judge one sampled prediction (annotator). `right` confirms the served class and `wrong` with a class
/// corrects it; both become labels the model learns from. Answers the round's updated view.
#[utoipa::path(post, path = "/api/v1/evaluations/items/{id}", tag = "reports", request_body = AnswerBody,
    params(("id" = i64, Path, description = "evaluation item id")),
    responses((status = 200, body = EvaluationView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("token" = [])))]
pub async fn answer_evaluation(
    State(s): State<S>,
    caller: Caller,
    Path(id): Path<i64>,
    ApiJson(b): ApiJson<AnswerBody>,
) -> ApiResult {
    caller.require(Role::Annotator)?;
    Ok(Json(s.app.answer_evaluation(id, b.verdict, b.class.as_deref(), &caller.user).await?).into_response())
}
