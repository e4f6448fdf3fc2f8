//! The one place where use-case errors become HTTP statuses and `{"error":{"code","message"}}` bodies.
//!
//! A caller's mistake is a 4xx with the full message, which tells them what to fix. A failure of the server itself
//! (a write or fsync the disk refused, a directory it cannot create, a database or model error) is a 5xx with a
//! short fixed message: the detail names internal paths and is for the operator, so it goes to the log only.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use fovea_app::AppError;
use serde_json::json;

pub struct ApiError(pub AppError);

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        ApiError(e)
    }
}

pub fn status_of(e: &AppError) -> StatusCode {
    match e {
        AppError::Image(v) if v.is_client_error() => match v.code() {
            "too_large" | "too_many_pixels" => StatusCode::PAYLOAD_TOO_LARGE,
            "unsupported_format" | "not_an_image" => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        },
        AppError::Invalid(_) => StatusCode::BAD_REQUEST,
        AppError::NotFound { .. } => StatusCode::NOT_FOUND,
        AppError::Conflict(_) => StatusCode::CONFLICT,
        AppError::Unauthorized => StatusCode::UNAUTHORIZED,
        AppError::Forbidden { .. } => StatusCode::FORBIDDEN,
        AppError::Overloaded => StatusCode::TOO_MANY_REQUESTS,
        // Training errors the caller can act on carry their own codes.
        other => match other.code() {
            "invalid" => StatusCode::BAD_REQUEST,
            "not_enough_data" => StatusCode::UNPROCESSABLE_ENTITY,
            "cancelled" => StatusCode::CONFLICT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        },
    }
}

pub fn error_body(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({"error": {"code": code, "message": message}}))).into_response()
}

/// What a 5xx answer says: which part of the server failed, never how or where.
pub fn server_message(e: &AppError) -> &'static str {
    match e {
        AppError::Store(_) | AppError::Image(_) => "the server could not read or write its storage; see the server log",
        AppError::Model(_) | AppError::Head(_) | AppError::Train(_) => {
            "the model failed on the server; see the server log"
        }
        _ => "internal server error; see the server log",
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = status_of(&self.0);
        metrics::counter!(crate::metrics::ERRORS, "code" => self.0.code()).increment(1);
        if status.is_server_error() {
            tracing::error!(status = status.as_u16(), code = self.0.code(), error = %self.0, "request failed");
            return error_body(status, self.0.code(), server_message(&self.0));
        }
        error_body(status, self.0.code(), &self.0.to_string())
    }
}

pub fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError(AppError::Invalid(message.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn answer(e: AppError) -> (StatusCode, serde_json::Value) {
        let res = ApiError(e).into_response();
        let status = res.status();
        let body = axum::body::to_bytes(res.into_body(), usize::MAX).await.unwrap();
        (status, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn server_failures_are_5xx_and_keep_their_detail_in_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a-file");
        std::fs::write(&file, b"not a folder").unwrap();
        let secret = dir.path().to_str().unwrap();
        // A blob directory that cannot be created: the disk's failure, not the caller's.
        let cannot_create = fovea_store::LocalBlobs::new(file.join("blobs")).unwrap_err();
        assert!(cannot_create.to_string().contains(secret), "the detail is kept for the log");
        let failures = [
            AppError::from(cannot_create),
            AppError::Internal(format!("{secret}/models: permission denied")),
            AppError::from(fovea_store::StoreError::Io {
                context: format!("fsync {secret}/blobs/images/ab/cd/abcd"),
                source: std::io::Error::other("input/output error"),
            }),
            AppError::Image(fovea_app::VisionError::Io {
                path: file.clone(),
                source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
            }),
        ];
        for failure in failures {
            let shown = failure.to_string();
            let (status, body) = answer(failure).await;
            assert!(status.is_server_error(), "{shown}: {status}");
            let message = body["error"]["message"].as_str().unwrap();
            assert!(!message.is_empty() && !message.contains(secret) && !message.contains('/'), "{message}");
        }
        // What the caller can fix keeps its status and its message.
        let (status, body) = answer(AppError::Invalid("`epochs` must be at least 1".into())).await;
        assert_eq!(
            (status, body["error"]["message"].as_str()),
            (StatusCode::BAD_REQUEST, Some("`epochs` must be at least 1"))
        );
        let (status, body) = answer(AppError::NotFound { what: "image", id: "abc".into() }).await;
        assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));
    }
}
