//! Collections: bulk identification from the web UI (a server folder an admin names, or uploaded files), the
//! results browser with combinable filters, bulk actions with undo, coverage, and thumbnails for grids.

use axum::extract::{Path, Request, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use fovea_app::{
    BulkActionRecord, BulkKind, BulkRequest, CollectionItem, CollectionRecord, ConfusedPair, CoverageView, ItemRef,
    ItemSort, JobRecord, ResultFilter, Role, UndoOutcome,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{admitted_upload, ApiJson, ApiQuery, ApiResult, S};
use crate::api_types::ErrorBody;
use crate::auth::{Caller, ImageCaller};
use crate::error::{bad_request, ApiError};

#[derive(Deserialize, ToSchema)]
pub struct NewCollectionBody {
    /// Shown in lists; default: the folder's name.
    pub name: Option<String>,
    /// A folder on the server, walked recursively (admin only). Leave out for a collection that grows by uploads.
    pub folder: Option<String>,
    /// A registry version to identify with (throw-away runs included); default: the served model.
    pub model: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct CollectionStarted {
    pub collection: CollectionRecord,
    /// The identify job of a folder collection; follow it at `/api/v1/jobs/{id}`.
    pub job: Option<JobRecord>,
}

#[derive(Serialize, ToSchema)]
pub struct CollectionsPage {
    pub collections: Vec<CollectionRecord>,
}

/// Which results to list; every parameter is optional and they combine.
#[derive(Deserialize, IntoParams, ToSchema, Default, Clone)]
#[into_params(parameter_in = Query)]
pub struct ResultsQuery {
    pub collection: Option<i64>,
    /// Predicted class.
    pub class: Option<String>,
    pub min_conf: Option<f64>,
    pub max_conf: Option<f64>,
    /// Only predictions of classes still below the fine-tuning cutoff.
    pub below_cutoff: Option<bool>,
    /// Look-alikes: `a,b` = top-1 and top-2 are these classes (either order).
    pub pair: Option<String>,
    /// Largest top-1 minus top-2 probability.
    pub max_margin: Option<f64>,
    pub unknown: Option<bool>,
    pub tag: Option<String>,
    pub labelled: Option<bool>,
    /// Registry version that produced the result.
    pub model: Option<String>,
    pub include_discarded: Option<bool>,
    /// List only the files that failed.
    pub failed: Option<bool>,
    /// `walk` (default), `lowest_confidence` or `smallest_margin`.
    pub sort: Option<ItemSort>,
    /// Page size, 1..500 (default 60).
    pub limit: Option<u32>,
    #[serde(default)]
    pub offset: u32,
}

impl ResultsQuery {
    fn to_filter(&self, cutoff: u64) -> Result<ResultFilter, ApiError> {
        for c in [self.min_conf, self.max_conf, self.max_margin].into_iter().flatten() {
            if !(0.0..=1.0).contains(&c) {
                return Err(bad_request("min_conf, max_conf and max_margin must lie between 0 and 1"));
            }
        }
        let pair = match self.pair.as_deref().map(|p| p.split(',').map(str::trim).collect::<Vec<_>>()) {
            None => None,
            Some(p) if p.len() == 2 && p.iter().all(|c| !c.is_empty()) => Some((p[0].to_owned(), p[1].to_owned())),
            Some(_) => return Err(bad_request("`pair` takes two class names: pair=cat,dog")),
        };
        Ok(ResultFilter {
            collection: self.collection,
            class: self.class.clone().filter(|c| !c.trim().is_empty()),
            min_conf: self.min_conf,
            max_conf: self.max_conf,
            below_count: self.below_cutoff.unwrap_or(false).then_some(cutoff),
            pair,
            max_margin: self.max_margin,
            unknown: self.unknown,
            tag: self.tag.clone().filter(|t| !t.trim().is_empty()),
            labelled: self.labelled,
            model: self.model.clone().filter(|m| !m.trim().is_empty()),
            include_discarded: self.include_discarded.unwrap_or(false),
            failed: self.failed.unwrap_or(false),
            sort: self.sort.unwrap_or_default(),
            limit: Some(self.limit.unwrap_or(60).clamp(1, 500)),
            offset: self.offset,
        })
    }
}

#[derive(Serialize, ToSchema)]
pub struct ResultsPage {
    pub total: u64,
    pub items: Vec<CollectionItem>,
}

#[derive(Deserialize, ToSchema)]
pub struct BulkBody {
    pub action: BulkKind,
    pub class: Option<String>,
    pub tag: Option<String>,
    /// Results picked one by one...
    #[serde(default)]
    pub items: Vec<ItemRef>,
    /// ...or every result matching these filters (paging ignored; at most 10 000).
    pub filter: Option<ResultsQuery>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PairsQuery {
    /// Largest top-1 minus top-2 probability that counts as a look-alike (default 0.2).
    pub max_margin: Option<f64>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ThumbQuery {
    /// Longest side in pixels: 96, 192 (default) or 384.
    pub size: Option<u32>,
}

/// Collections, newest first, with progress.
#[utoipa::path(get, path = "/api/v1/collections", tag = "collections",
    responses((status = 200, body = CollectionsPage)), security(("token" = [])))]
pub async fn list_collections(State(s): State<S>, caller: Caller) -> ApiResult {
    caller.require(Role::Viewer)?;
    Ok(Json(CollectionsPage { collections: s.app.collections().await? }).into_response())
}

/// Start a collection: a server folder (admin; identified by a background job) or an empty one that grows by
/// uploads (annotator).
#[utoipa::path(post, path = "/api/v1/collections", tag = "collections", request_body = NewCollectionBody,
    responses((status = 201, body = CollectionStarted), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("token" = [])))]
pub async fn create_collection(
    State(s): State<S>,
    caller: Caller,
    ApiJson(body): ApiJson<NewCollectionBody>,
) -> ApiResult {
    let started = match body.folder.as_deref().map(str::trim).filter(|f| !f.is_empty()) {
        Some(folder) => {
            // A folder on the server is the server's filesystem: only an admin may point at one.
            caller.require(Role::Admin)?;
            let c = s
                .app
                .create_collection(
                    body.name.as_deref(),
                    std::path::Path::new(folder),
                    body.model.as_deref(),
                    &caller.user,
                )
                .await?;
            let job = s.app.enqueue_identify(c.id).await?;
            CollectionStarted { collection: s.app.collection(c.id).await?, job: Some(job) }
        }
        None => {
            caller.require(Role::Annotator)?;
            if body.model.is_some() {
                return Err(bad_request("uploads are identified by the served model; `model` needs a `folder`"));
            }
            let name = body.name.unwrap_or_else(|| "Uploads".into());
            CollectionStarted { collection: s.app.upload_collection(&name, &caller.user).await?, job: None }
        }
    };
    Ok((StatusCode::CREATED, Json(started)).into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportBody {
    /// A folder on the server (read by the worker that runs the job, at this path).
    pub folder: String,
    /// The folder is an ImageFolder: sub-folder name = class.
    #[serde(default)]
    pub labelled: bool,
    /// Tags put on every imported image.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// Queue the import of a server folder (admin): a worker (`fovea worker`, or this server unless it runs with
/// `--no-jobs`) runs it; follow the job at `/api/v1/jobs/{id}`, whose message ends as the import report.
#[utoipa::path(post, path = "/api/v1/imports", tag = "collections", request_body = ImportBody,
    responses((status = 202, body = JobRecord), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("token" = [])))]
pub async fn queue_import(State(s): State<S>, caller: Caller, ApiJson(body): ApiJson<ImportBody>) -> ApiResult {
    // A folder on the server is the server's filesystem: only an admin may point at one.
    caller.require(Role::Admin)?;
    let folder = body.folder.trim();
    if folder.is_empty() {
        return Err(bad_request("`folder` names a folder on the server"));
    }
    let request = fovea_app::ImportRequest { folder: folder.into(), labelled: body.labelled, tags: body.tags };
    let job = s.app.enqueue_import(&request).await?;
    Ok((StatusCode::ACCEPTED, Json(job)).into_response())
}

/// One collection with its progress.
#[utoipa::path(get, path = "/api/v1/collections/{id}", tag = "collections", params(("id" = i64, Path)),
    responses((status = 200, body = CollectionRecord), (status = 404, body = ErrorBody)), security(("token" = [])))]
pub async fn get_collection(State(s): State<S>, caller: Caller, Path(id): Path<i64>) -> ApiResult {
    caller.require(Role::Viewer)?;
    Ok(Json(s.app.collection(id).await?).into_response())
}

/// Add one uploaded image to an upload collection (raw body or multipart field `image`; `?name=` names it).
#[utoipa::path(post, path = "/api/v1/collections/{id}/images", tag = "collections", params(("id" = i64, Path)),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 200, body = CollectionItem), (status = 400, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 429, body = ErrorBody)),
    security(("token" = [])))]
pub async fn upload_to_collection(
    State(s): State<S>,
    caller: Caller,
    Path(id): Path<i64>,
    ApiQuery(q): ApiQuery<NameQuery>,
    req: Request,
) -> ApiResult {
    caller.require(Role::Annotator)?;
    let (_admitted, bytes) = admitted_upload(req, &s).await?;
    let name = q.name.unwrap_or_else(|| "upload".into());
    Ok(Json(s.app.add_upload(id, &name, bytes, &caller.user).await?).into_response())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NameQuery {
    pub name: Option<String>,
}

/// Results of bulk identification, filtered, sorted and paged.
#[utoipa::path(get, path = "/api/v1/results", tag = "collections", params(ResultsQuery),
    responses((status = 200, body = ResultsPage), (status = 400, body = ErrorBody)), security(("token" = [])))]
pub async fn results(State(s): State<S>, caller: Caller, ApiQuery(q): ApiQuery<ResultsQuery>) -> ApiResult {
    caller.require(Role::Viewer)?;
    let (items, total) = s.app.collection_items(&q.to_filter(s.app.config().cutoff)?).await?;
    Ok(Json(ResultsPage { total, items }).into_response())
}

/// The class pairs a collection's results most often hesitate between.
#[utoipa::path(get, path = "/api/v1/collections/{id}/pairs", tag = "collections",
    params(("id" = i64, Path), PairsQuery),
    responses((status = 200, body = Vec<ConfusedPair>), (status = 400, body = ErrorBody)), security(("token" = [])))]
pub async fn pairs(
    State(s): State<S>,
    caller: Caller,
    Path(id): Path<i64>,
    ApiQuery(q): ApiQuery<PairsQuery>,
) -> ApiResult {
    caller.require(Role::Viewer)?;
    s.app.collection(id).await?;
    Ok(Json(s.app.confused_pairs(Some(id), q.max_margin.unwrap_or(0.2)).await?).into_response())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CoverageQuery {
    /// Only classes whose labelled images are at least this share (0..1) tagged staged or synthetic.
    pub min_staged_share: Option<f64>,
}

/// Per class: labelled images against the cutoff, staged/synthetic share, candidates waiting in collections.
#[utoipa::path(get, path = "/api/v1/coverage", tag = "collections", params(CoverageQuery),
    responses((status = 200, body = Vec<CoverageView>), (status = 400, body = ErrorBody)), security(("token" = [])))]
pub async fn coverage(State(s): State<S>, caller: Caller, ApiQuery(q): ApiQuery<CoverageQuery>) -> ApiResult {
    caller.require(Role::Viewer)?;
    Ok(Json(s.app.coverage(q.min_staged_share).await?).into_response())
}

/// Tags in use, with how many images carry each.
#[utoipa::path(get, path = "/api/v1/tags", tag = "collections",
    responses((status = 200, body = Vec<(String, u64)>)), security(("token" = [])))]
pub async fn tags(State(s): State<S>, caller: Caller) -> ApiResult {
    caller.require(Role::Viewer)?;
    Ok(Json(s.app.tags().await?).into_response())
}

/// Act on a selection (picked results or a filter) in one transaction: accept predictions, relabel, mark Unknown,
/// tag, untag or discard. Answers the action's id for undo.
#[utoipa::path(post, path = "/api/v1/bulk", tag = "collections", request_body = BulkBody,
    responses((status = 200, body = BulkActionRecord), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("token" = [])))]
pub async fn bulk(State(s): State<S>, caller: Caller, ApiJson(body): ApiJson<BulkBody>) -> ApiResult {
    caller.require(Role::Annotator)?;
    let filter = body.filter.map(|q| q.to_filter(s.app.config().cutoff)).transpose()?;
    let req = BulkRequest { action: body.action, class: body.class, tag: body.tag, items: body.items, filter };
    Ok(Json(s.app.bulk(&req, &caller.user).await?).into_response())
}

/// Recent bulk actions, newest first.
#[utoipa::path(get, path = "/api/v1/bulk", tag = "collections",
    responses((status = 200, body = Vec<BulkActionRecord>)), security(("token" = [])))]
pub async fn bulk_actions(State(s): State<S>, caller: Caller) -> ApiResult {
    caller.require(Role::Viewer)?;
    Ok(Json(s.app.bulk_actions(50).await?).into_response())
}

/// Undo a bulk action as a whole; labels someone gave after it are kept.
#[utoipa::path(post, path = "/api/v1/bulk/{id}/undo", tag = "collections", params(("id" = i64, Path)),
    responses((status = 200, body = UndoOutcome), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("token" = [])))]
pub async fn undo_bulk(State(s): State<S>, caller: Caller, Path(id): Path<i64>) -> ApiResult {
    caller.require(Role::Annotator)?;
    Ok(Json(s.app.undo_bulk(id).await?).into_response())
}

/// A small JPEG of the image for grids, made once and cached. Like `/blob`, it also takes `?token=`.
#[utoipa::path(get, path = "/api/v1/images/{id}/thumb", tag = "images", params(("id" = String, Path), ThumbQuery),
    responses((status = 200, description = "JPEG thumbnail", content_type = "image/jpeg"),
        (status = 404, body = ErrorBody)),
    security(("token" = [])))]
pub async fn thumb(
    State(s): State<S>,
    ImageCaller(caller): ImageCaller,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<ThumbQuery>,
) -> ApiResult {
    caller.require(Role::Viewer)?;
    let bytes = s.app.thumbnail(&id, q.size.unwrap_or(192)).await?;
    Ok(([(header::CONTENT_TYPE, "image/jpeg"), (header::CACHE_CONTROL, "private, max-age=86400")], bytes)
        .into_response())
}

/// One image in full: its record, label history, predictions and corrections, tags, and the served model's answer.
#[utoipa::path(get, path = "/api/v1/images/{id}", tag = "images", params(("id" = String, Path)),
    responses((status = 200, body = fovea_app::ImageDetail), (status = 404, body = ErrorBody)),
    security(("token" = [])))]
pub async fn image_detail(State(s): State<S>, caller: Caller, Path(id): Path<String>) -> ApiResult {
    caller.require(Role::Viewer)?;
    Ok(Json(s.app.image_detail(&id).await?).into_response())
}
