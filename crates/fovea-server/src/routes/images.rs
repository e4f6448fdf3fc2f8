//! Classify, label, list and fetch images; the transaction log.

use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use fovea_app::{ClassifyOutcome, ImageFilter, LabelOrigin, LabelOutcome, Role, ScoredClass};

use super::{ApiJson, ApiQuery, ApiResult, S};
use crate::api_types::{HistoryQuery, ImageSummary, ImagesPage, ImagesQuery, LabelBody, TransactionsPage};
use crate::auth::{Caller, ImageCaller};
use crate::error::{bad_request, ApiError};

/// The image comes as multipart (field `image`, or the first file field) or as the raw request body.
async fn upload_bytes(req: Request, state: &S) -> Result<Bytes, ApiError> {
    let is_multipart = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    if is_multipart {
        let mut mp = Multipart::from_request(req, state).await.map_err(|e| bad_request(e.body_text()))?;
        while let Some(field) = mp.next_field().await.map_err(|e| bad_request(e.body_text()))? {
            if field.name() == Some("image") || field.file_name().is_some() {
                return field.bytes().await.map_err(|e| bad_request(e.body_text()));
            }
        }
        Err(bad_request("the form has no `image` file field"))
    } else {
        Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError(fovea_app::AppError::Image(too_large(state)))
            } else {
                bad_request(e.body_text())
            }
        })
    }
}

/// An upload admitted, then read: admission comes before the body, so when the queue is full the client hears 429
/// at once and the server holds no more bodies than it has slots. Keep the permit until the request is answered.
pub(crate) async fn admitted_upload(req: Request, state: &S) -> Result<(fovea_app::UploadPermit, Bytes), ApiError> {
    let permit = state.app.admit_upload()?;
    let bytes = upload_bytes(req, state).await?;
    if bytes.is_empty() {
        return Err(ApiError(fovea_app::AppError::Image(fovea_app::VisionError::Empty)));
    }
    Ok((permit, bytes))
}

fn too_large(state: &S) -> fovea_app::VisionError {
    let max = state.app.config().limits.max_bytes as u64;
    fovea_app::VisionError::TooLarge { bytes: max + 1, max }
}

/// Classify an image: top classes with probabilities, logged as a transaction. The `Server-Timing` header says
/// where the time went (decode, network, wait, store, predict, commit, total; milliseconds).
#[utoipa::path(post, path = "/api/v1/classify", tag = "images",
    request_body(content = Vec<u8>, description = "the image: raw body, or multipart field `image`",
        content_type = "application/octet-stream"),
    responses((status = 200, body = ClassifyOutcome,
            headers(("server-timing" = String, description = "milliseconds per stage (W3C Server Timing)"))),
        (status = 413, body = crate::api_types::ErrorBody),
        (status = 415, body = crate::api_types::ErrorBody), (status = 422, body = crate::api_types::ErrorBody),
        (status = 429, body = crate::api_types::ErrorBody)),
    security(("token" = [])))]
pub async fn classify(State(s): State<S>, caller: Caller, req: Request) -> ApiResult {
    caller.require(Role::Viewer)?;
    let (_admitted, bytes) = admitted_upload(req, &s).await?;
    let start = std::time::Instant::now();
    let out = s.app.classify(bytes, &caller.user).await?;
    let took = start.elapsed().as_secs_f64();
    metrics::histogram!(crate::metrics::CLASSIFY_SECONDS).record(took);
    let timing = out.stages.server_timing(took * 1e3);
    let mut response = Json(out).into_response();
    if let Ok(value) = axum::http::HeaderValue::from_str(&timing) {
        response.headers_mut().insert("server-timing", value);
    }
    Ok(response)
}

/// Label an image with an existing or a new class; the model learns at once and answers its new prediction.
#[utoipa::path(post, path = "/api/v1/images/{id}/label", tag = "images", request_body = LabelBody,
    params(("id" = String, Path, description = "image id (SHA-256)")),
    responses((status = 200, body = LabelOutcome), (status = 400, body = crate::api_types::ErrorBody),
        (status = 404, body = crate::api_types::ErrorBody)),
    security(("token" = [])))]
pub async fn label(
    State(s): State<S>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<LabelBody>,
) -> ApiResult {
    caller.require(Role::Annotator)?;
    if body.class.trim().is_empty() {
        return Err(bad_request("`class` must name a class"));
    }
    let out = s.app.label(&id, &body.class, &caller.user, LabelOrigin::Human).await?;
    metrics::counter!(crate::metrics::LABELS).increment(1);
    Ok(Json(out).into_response())
}

/// List images, filtered by class, labelled state and confidence range.
#[utoipa::path(get, path = "/api/v1/images", tag = "images", params(ImagesQuery),
    responses((status = 200, body = ImagesPage), (status = 400, body = crate::api_types::ErrorBody)),
    security(("token" = [])))]
pub async fn images(State(s): State<S>, caller: Caller, ApiQuery(q): ApiQuery<ImagesQuery>) -> ApiResult {
    caller.require(Role::Viewer)?;
    for c in [q.min_conf, q.max_conf].into_iter().flatten() {
        if !(0.0..=1.0).contains(&c) {
            return Err(bad_request("min_conf and max_conf must lie between 0 and 1"));
        }
    }
    let filter = ImageFilter {
        class: q.class,
        labelled: q.labelled,
        min_conf: q.min_conf,
        max_conf: q.max_conf,
        sort: q.sort.unwrap_or_default(),
        search: q.search,
        limit: Some(q.limit.unwrap_or(60).clamp(1, 500)),
        offset: q.offset,
        ..Default::default()
    };
    let (rows, total) = s.app.images(&filter).await?;
    let ids: Vec<String> = rows.iter().map(|r| r.image.id.clone()).collect();
    let now = s.app.current_top1(&ids).await?;
    let images = rows
        .into_iter()
        .zip(now)
        .map(|(r, model_top1)| ImageSummary {
            id: r.image.id,
            class: r.current_class,
            width: r.image.width,
            height: r.image.height,
            top1: r.last_top1.map(|(class, probability)| ScoredClass { class, probability }),
            model_top1,
            created_at: r.image.created_at,
        })
        .collect();
    Ok(Json(ImagesPage { total, images }).into_response())
}

/// The stored image bytes, as uploaded. The one route that also takes `?token=`, for `<img src>`.
#[utoipa::path(get, path = "/api/v1/images/{id}/blob", tag = "images",
    params(("id" = String, Path, description = "image id (SHA-256)")),
    responses((status = 200, description = "the image", content_type = "image/*"),
        (status = 404, body = crate::api_types::ErrorBody)),
    security(("token" = [])))]
pub async fn blob(State(s): State<S>, ImageCaller(caller): ImageCaller, Path(id): Path<String>) -> ApiResult {
    caller.require(Role::Viewer)?;
    let bytes = s.app.image_bytes(&id).await?;
    let mime = match bytes.get(..4) {
        Some([0xff, 0xd8, ..]) => "image/jpeg",
        Some([0x89, b'P', b'N', b'G']) => "image/png",
        Some([b'G', b'I', b'F', _]) => "image/gif",
        Some([b'R', b'I', b'F', b'F']) => "image/webp",
        Some([b'B', b'M', ..]) => "image/bmp",
        _ => "application/octet-stream",
    };
    Ok(([(header::CONTENT_TYPE, mime), (header::CACHE_CONTROL, "private, max-age=86400")], bytes).into_response())
}

/// Every prediction and correction, newest first, with model version, user and time; filter by user, class,
/// kind (`predict` | `correct`) and day range.
#[utoipa::path(get, path = "/api/v1/transactions", tag = "history", params(HistoryQuery),
    responses((status = 200, body = TransactionsPage), (status = 400, body = crate::api_types::ErrorBody)),
    security(("token" = [])))]
pub async fn transactions(State(s): State<S>, caller: Caller, ApiQuery(q): ApiQuery<HistoryQuery>) -> ApiResult {
    caller.require(Role::Viewer)?;
    let kind = match q.kind.as_deref().map(str::trim).filter(|k| !k.is_empty()) {
        None => None,
        Some("predict") => Some(fovea_app::TransactionKind::Predict),
        Some("correct") => Some(fovea_app::TransactionKind::Correct),
        Some(other) => return Err(bad_request(format!("kind {other:?}: expected predict or correct"))),
    };
    let text = |v: &Option<String>| v.as_deref().map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned);
    let filter = fovea_app::TransactionFilter {
        user: text(&q.user),
        class: text(&q.class),
        kind,
        since: super::query_day("since", &q.since)?,
        until: super::query_day("until", &q.until)?.map(|d| d + fovea_insight::time::DAY_MS),
        limit: q.limit.unwrap_or(50),
        offset: q.offset,
    };
    let transactions = s.app.transactions(&filter).await?;
    Ok(Json(TransactionsPage { transactions }).into_response())
}
