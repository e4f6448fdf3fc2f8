//! The review queue: the next unlabelled images worth a person's time, recomputed on every request.

use axum::extract::State;
use axum::response::IntoResponse;
use axum::Json;
use fovea_app::{ReviewQueue, Role, MAX_REVIEW};
use serde::Deserialize;
use utoipa::IntoParams;

use super::{ApiQuery, ApiResult, S};
use crate::auth::Caller;
use crate::error::bad_request;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReviewQuery {
    /// How many images, 1..100 (default 20).
    pub limit: Option<u32>,
}

/// The next unlabelled images to label, ranked by calibrated uncertainty combined with diversity (so a page is
/// not many copies of one hard case). Labelled images never appear; the ranking follows every new label.
#[utoipa::path(get, path = "/api/v1/review", tag = "images", params(ReviewQuery),
    responses((status = 200, body = ReviewQueue), (status = 400, body = crate::api_types::ErrorBody)),
    security(("token" = [])))]
pub async fn review(State(s): State<S>, caller: Caller, ApiQuery(q): ApiQuery<ReviewQuery>) -> ApiResult {
    caller.require(Role::Viewer)?;
    let limit = q.limit.unwrap_or(20) as usize;
    if !(1..=MAX_REVIEW).contains(&limit) {
        return Err(bad_request(format!("`limit` must lie in 1..{MAX_REVIEW}")));
    }
    Ok(Json(s.app.review_queue(limit).await?).into_response())
}
