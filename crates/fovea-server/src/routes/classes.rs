//! Classes: list with counts against the cutoff; annotators create (as a label does), admins rename and merge.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use fovea_app::{ClassId, ClassView, Role};

use super::{ApiJson, ApiResult, S};
use crate::api_types::{ClassesPage, ErrorBody, MergeBody, NameBody};
use crate::auth::Caller;
use crate::error::{bad_request, ApiError};

/// Classes with image counts and whether each reaches the training cutoff.
#[utoipa::path(get, path = "/api/v1/classes", tag = "classes",
    responses((status = 200, body = ClassesPage)), security(("token" = [])))]
pub async fn classes(State(s): State<S>, caller: Caller) -> ApiResult {
    caller.require(Role::Viewer)?;
    let classes = s.app.classes().await?;
    let max_name_chars = fovea_store::MAX_CLASS_NAME_CHARS;
    Ok(Json(ClassesPage { cutoff: s.app.config().cutoff, max_name_chars, classes }).into_response())
}

/// Create a class (annotator: labelling an image with a new name creates one too).
#[utoipa::path(post, path = "/api/v1/classes", tag = "classes", request_body = NameBody,
    responses((status = 201, body = ClassView), (status = 409, body = ErrorBody)), security(("token" = [])))]
pub async fn create_class(State(s): State<S>, caller: Caller, ApiJson(body): ApiJson<NameBody>) -> ApiResult {
    caller.require(Role::Annotator)?;
    Ok((StatusCode::CREATED, Json(s.app.create_class(&body.name).await?)).into_response())
}

fn class_id(raw: &str) -> Result<ClassId, ApiError> {
    raw.parse::<ClassId>().map_err(|_| bad_request(format!("{raw:?} is not a class id")))
}

/// Rename a class (admin).
#[utoipa::path(patch, path = "/api/v1/classes/{id}", tag = "classes", request_body = NameBody,
    params(("id" = i64, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("token" = [])))]
pub async fn rename_class(
    State(s): State<S>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<NameBody>,
) -> ApiResult {
    caller.require(Role::Admin)?;
    s.app.rename_class(class_id(&id)?, &body.name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Merge this class into another (admin): its labels move, the head is rebuilt. Answers what moved and the
/// merge's id, which `POST /api/v1/classes/merges/{id}/undo` takes.
#[utoipa::path(post, path = "/api/v1/classes/{id}/merge", tag = "classes", request_body = MergeBody,
    params(("id" = i64, Path)), responses((status = 200, body = Object), (status = 404, body = ErrorBody)),
    security(("token" = [])))]
pub async fn merge_class(
    State(s): State<S>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<MergeBody>,
) -> ApiResult {
    caller.require(Role::Admin)?;
    let outcome = s.app.merge_classes(class_id(&id)?, &body.into).await?;
    Ok(Json(serde_json::json!({
        "merge_id": outcome.merge_id,
        "from": outcome.from.name,
        "into": outcome.into.name,
        "labels_moved": outcome.labels_moved,
        "model_version": s.app.model_version().await,
    }))
    .into_response())
}

/// Undo a merge (admin): the class comes back with its id, name and the labels the merge moved (a label given
/// since stays). Refused when the name was taken again meanwhile.
#[utoipa::path(post, path = "/api/v1/classes/merges/{id}/undo", tag = "classes",
    params(("id" = i64, Path, description = "merge id")),
    responses((status = 200, body = Object), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)),
    security(("token" = [])))]
pub async fn undo_merge(State(s): State<S>, caller: Caller, Path(id): Path<String>) -> ApiResult {
    caller.require(Role::Admin)?;
    let id: i64 = id.parse().map_err(|_| bad_request(format!("{id:?} is not a merge id")))?;
    let class = s.app.undo_merge(id).await?;
    Ok(Json(serde_json::json!({ "class": class.name, "id": class.id, "model_version": s.app.model_version().await }))
        .into_response())
}

/// Delete a class no label has ever named (annotator): undoes creating it, e.g. a typo. A class with label
/// history is refused (merge or rename it instead).
#[utoipa::path(delete, path = "/api/v1/classes/{id}", tag = "classes", params(("id" = i64, Path)),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("token" = [])))]
pub async fn delete_class(State(s): State<S>, caller: Caller, Path(id): Path<String>) -> ApiResult {
    caller.require(Role::Annotator)?;
    s.app.delete_unused_class(class_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Class merges, newest first, with whether each was undone (the History tab offers Undo on them).
#[utoipa::path(get, path = "/api/v1/classes/merges", tag = "classes",
    responses((status = 200, body = Vec<fovea_app::MergeRecord>)), security(("token" = [])))]
pub async fn merges(State(s): State<S>, caller: Caller) -> ApiResult {
    caller.require(Role::Viewer)?;
    Ok(Json(s.app.merges(100).await?).into_response())
}

/// Class renames, newest first (undo one by renaming the class back with `PATCH /api/v1/classes/{id}`).
#[utoipa::path(get, path = "/api/v1/classes/renames", tag = "classes",
    responses((status = 200, body = Vec<fovea_app::RenameRecord>)), security(("token" = [])))]
pub async fn renames(State(s): State<S>, caller: Caller) -> ApiResult {
    caller.require(Role::Viewer)?;
    Ok(Json(s.app.renames(100).await?).into_response())
}
