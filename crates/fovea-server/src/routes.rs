use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Path, Query, Request};
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use fovea_app::{ImageFilter, Role};
use fovea_store::{ClassId, LabelOrigin};
use include_dir::{include_dir, Dir};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;

use crate::auth::Caller;
use crate::error::{bad_request, ApiError};
use crate::State;

static ASSETS: Dir = include_dir!("$CARGO_MANIFEST_DIR/assets");

type S = Arc<State>;
type ApiResult = Result<Response, ApiError>;

pub fn router(state: S) -> Router {
    let upload_limit = state.app.config().limits.max_bytes + 64 * 1024;
    let api = Router::new()
        .route("/me", get(me))
        .route("/classify", post(classify))
        .route("/images", get(images))
        .route("/images/{id}/label", post(label))
        .route("/images/{id}/blob", get(blob))
        .route("/classes", get(classes).post(create_class))
        .route("/classes/{id}", patch(rename_class))
        .route("/classes/{id}/merge", post(merge_class))
        .route("/transactions", get(transactions))
        .fallback(|| async { ApiError(fovea_app::AppError::NotFound { what: "route", id: String::new() }) });
    Router::new()
        .nest("/api/v1", api)
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .fallback(get(asset))
        .layer(DefaultBodyLimit::max(upload_limit))
        .layer(tower_http::catch_panic::CatchPanicLayer::new())
        .with_state(state)
}

/// `Json` whose rejection is our `{"error":…}` 400, so no handler maps it by hand.
struct ApiJson<T>(T);

impl<T: DeserializeOwned, St: Send + Sync> FromRequest<St> for ApiJson<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &St) -> Result<Self, ApiError> {
        let Json(v) = Json::<T>::from_request(req, state).await.map_err(|e| bad_request(e.body_text()))?;
        Ok(ApiJson(v))
    }
}

/// `Query` with the same error shape.
struct ApiQuery<T>(T);

impl<T: DeserializeOwned, St: Send + Sync> axum::extract::FromRequestParts<St> for ApiQuery<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &St) -> Result<Self, ApiError> {
        let Query(v) = Query::<T>::from_request_parts(parts, state).await.map_err(|e| bad_request(e.body_text()))?;
        Ok(ApiQuery(v))
    }
}

async fn healthz(axum::extract::State(s): axum::extract::State<S>) -> Json<serde_json::Value> {
    Json(json!({"status": "ok", "model_version": s.app.model_version().await}))
}

async fn metrics_text(axum::extract::State(s): axum::extract::State<S>) -> Response {
    match &s.prometheus {
        Some(h) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], h.render()).into_response(),
        None => (StatusCode::SERVICE_UNAVAILABLE, "metrics recorder unavailable").into_response(),
    }
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

async fn me(caller: Caller) -> Json<serde_json::Value> {
    Json(json!({"user": caller.user, "role": caller.role.as_str()}))
}

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
                ApiError(fovea_app::AppError::Image(fovea_vision_too_large(state)))
            } else {
                bad_request(e.body_text())
            }
        })
    }
}

fn fovea_vision_too_large(state: &S) -> fovea_app::VisionError {
    let max = state.app.config().limits.max_bytes as u64;
    fovea_app::VisionError::TooLarge { bytes: max + 1, max }
}

async fn classify(axum::extract::State(s): axum::extract::State<S>, caller: Caller, req: Request) -> ApiResult {
    caller.require(Role::Viewer)?;
    let bytes = upload_bytes(req, &s).await?;
    if bytes.is_empty() {
        return Err(ApiError(fovea_app::AppError::Image(fovea_app::VisionError::Empty)));
    }
    let start = std::time::Instant::now();
    let out = s.app.classify(bytes, &caller.user).await?;
    metrics::histogram!(crate::metrics::CLASSIFY_SECONDS).record(start.elapsed().as_secs_f64());
    Ok(Json(out).into_response())
}

#[derive(Deserialize)]
struct LabelBody {
    class: String,
}

async fn label(
    axum::extract::State(s): axum::extract::State<S>,
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

async fn classes(axum::extract::State(s): axum::extract::State<S>, caller: Caller) -> ApiResult {
    caller.require(Role::Viewer)?;
    let classes = s.app.classes().await?;
    Ok(Json(json!({"cutoff": s.app.config().cutoff, "classes": classes})).into_response())
}

#[derive(Deserialize)]
struct NameBody {
    name: String,
}

async fn create_class(
    axum::extract::State(s): axum::extract::State<S>,
    caller: Caller,
    ApiJson(body): ApiJson<NameBody>,
) -> ApiResult {
    caller.require(Role::Admin)?;
    Ok((StatusCode::CREATED, Json(s.app.create_class(&body.name).await?)).into_response())
}

fn class_id(raw: &str) -> Result<ClassId, ApiError> {
    raw.parse::<ClassId>().map_err(|_| bad_request(format!("{raw:?} is not a class id")))
}

async fn rename_class(
    axum::extract::State(s): axum::extract::State<S>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<NameBody>,
) -> ApiResult {
    caller.require(Role::Admin)?;
    s.app.rename_class(class_id(&id)?, &body.name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
struct MergeBody {
    into: String,
}

async fn merge_class(
    axum::extract::State(s): axum::extract::State<S>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<MergeBody>,
) -> ApiResult {
    caller.require(Role::Admin)?;
    s.app.merge_classes(class_id(&id)?, &body.into).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
struct ImagesQuery {
    class: Option<String>,
    labelled: Option<bool>,
    min_conf: Option<f64>,
    max_conf: Option<f64>,
    limit: Option<u32>,
    #[serde(default)]
    offset: u32,
}

async fn images(
    axum::extract::State(s): axum::extract::State<S>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ImagesQuery>,
) -> ApiResult {
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
        limit: Some(q.limit.unwrap_or(60).clamp(1, 500)),
        offset: q.offset,
        ..Default::default()
    };
    let (rows, total) = s.app.images(&filter).await?;
    let images: Vec<_> = rows
        .into_iter()
        .map(|r| {
            json!({
                "id": r.image.id, "class": r.current_class, "width": r.image.width, "height": r.image.height,
                "top1": r.last_top1.map(|(class, probability)| json!({"class": class, "probability": probability})),
                "created_at": r.image.created_at,
            })
        })
        .collect();
    Ok(Json(json!({"total": total, "images": images})).into_response())
}

async fn blob(axum::extract::State(s): axum::extract::State<S>, caller: Caller, Path(id): Path<String>) -> ApiResult {
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

#[derive(Deserialize)]
struct Page {
    limit: Option<u32>,
    #[serde(default)]
    offset: u32,
}

async fn transactions(
    axum::extract::State(s): axum::extract::State<S>,
    caller: Caller,
    ApiQuery(q): ApiQuery<Page>,
) -> ApiResult {
    caller.require(Role::Viewer)?;
    let rows = s.app.transactions(q.limit.unwrap_or(50), q.offset).await?;
    Ok(Json(json!({"transactions": rows})).into_response())
}
