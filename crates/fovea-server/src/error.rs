//! The one place where use-case errors become HTTP statuses and `{"error":{"code","message"}}` bodies.

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

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = status_of(&self.0);
        if status.is_server_error() {
            tracing::error!(error = %self.0, "request failed");
        }
        metrics::counter!(crate::metrics::ERRORS, "code" => self.0.code()).increment(1);
        error_body(status, self.0.code(), &self.0.to_string())
    }
}

pub fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError(AppError::Invalid(message.into()))
}
