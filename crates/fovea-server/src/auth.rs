//! API tokens: `Authorization: Bearer <token>` (or `?token=` for <img> tags, which cannot send headers).

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

fn token_from(parts: &Parts) -> Option<String> {
    if let Some(h) = parts.headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        return h.strip_prefix("Bearer ").map(|t| t.trim().to_owned());
    }
    parts.uri.query().and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("token=").map(|t| t.to_owned())))
}

impl FromRequestParts<Arc<State>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<State>) -> Result<Self, Self::Rejection> {
        match token_from(parts) {
            Some(token) => {
                let user = state.app.authenticate(&token).await?;
                Ok(Caller { user: user.name, role: user.role })
            }
            None if state.open => Ok(Caller { user: "anonymous".into(), role: Role::Admin }),
            None => Err(ApiError(AppError::Unauthorized)),
        }
    }
}
