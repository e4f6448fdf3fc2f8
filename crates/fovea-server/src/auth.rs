//! Who is calling. The permission model (README, "Permissions"):
//!
//! - A token goes in `Authorization: Bearer <token>`. Only `GET` of an image's bytes also accepts `?token=`
//!   ([`ImageCaller`]), because an `<img>` tag cannot send headers; anywhere else a query token is ignored, so a
//!   token never needs to sit in a URL that changes anything or lists data (history, proxy logs, Referer).
//! - Roles are ordered viewer < annotator < admin: viewers read and classify, annotators also label and create
//!   classes, admins also rename and merge classes, promote, roll back and train.
//! - `--open` (loopback only) makes an anonymous caller an admin; [`crate::guard`] then refuses other host names
//!   (DNS rebinding) and cross-site writes.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use fovea_app::{AppError, Role};

use crate::error::ApiError;
use crate::State;

#[derive(Debug, Clone)]
pub struct Caller {
    pub user: String,
    pub role: Role,
}

impl Caller {
    pub fn require(&self, needed: Role) -> Result<(), ApiError> {
        if self.role >= needed {
            Ok(())
        } else {
            Err(ApiError(AppError::Forbidden { needed: needed.as_str(), have: self.role.as_str().to_owned() }))
        }
    }
}

/// A caller that may also authenticate with `?token=`: only for `GET` of image bytes (`<img src>`).
pub struct ImageCaller(pub Caller);

fn bearer(parts: &Parts) -> Option<String> {
    let h = parts.headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    h.strip_prefix("Bearer ").map(|t| t.trim().to_owned())
}

fn query_token(parts: &Parts) -> Option<String> {
    parts.uri.query().and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("token=").map(|t| t.to_owned())))
}

async fn caller(token: Option<String>, state: &Arc<State>) -> Result<Caller, ApiError> {
    match token {
        Some(token) => {
            let user = state.app.authenticate(&token).await?;
            Ok(Caller { user: user.name, role: user.role })
        }
        None if state.open => Ok(Caller { user: "anonymous".into(), role: Role::Admin }),
        None => Err(ApiError(AppError::Unauthorized)),
    }
}

impl FromRequestParts<Arc<State>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<State>) -> Result<Self, Self::Rejection> {
        caller(bearer(parts), state).await
    }
}

impl FromRequestParts<Arc<State>> for ImageCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<State>) -> Result<Self, Self::Rejection> {
        let token =
            bearer(parts).or_else(|| (parts.method == axum::http::Method::GET).then(|| query_token(parts)).flatten());
        Ok(ImageCaller(caller(token, state).await?))
    }
}
