//! Users and their hashed API tokens.

use sqlx::Row;

use super::{parse_text, DbPool, DbRow};
use crate::error::{is_unique_violation, Result, StoreError};
use crate::model::*;

const USER_COLUMNS: &str = "id, name, role, token_sha256, created_at";

fn user_from_row(row: &DbRow) -> Result<UserRecord> {
    Ok(UserRecord {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        role: parse_text(row.try_get("role")?)?,
        token_sha256: row.try_get("token_sha256")?,
        created_at: row.try_get("created_at")?,
    })
}

pub(crate) async fn create_user(pool: &DbPool, user: NewUser) -> Result<UserRecord> {
    let name = user.name.trim();
    if name.is_empty() || name.chars().any(char::is_control) {
        return Err(StoreError::Invalid("user name must be non-empty without control characters".into()));
    }
    // Same shape as an image id: a lowercase hex SHA-256, so lookups by hash compare exactly.
    validate_image_id(&user.token_sha256)
        .map_err(|_| StoreError::Invalid("token_sha256 must be 64 lowercase hex characters".into()))?;
    let inserted = sqlx::query(&format!(
        "INSERT INTO users (name, role, token_sha256, created_at) VALUES ($1, $2, $3, $4) RETURNING {USER_COLUMNS}"
    ))
    .bind(name)
    .bind(user.role.as_str())
    .bind(&user.token_sha256)
    .bind(now_millis())
    .fetch_one(pool)
    .await;
    match inserted {
        Ok(row) => user_from_row(&row),
        Err(e) if is_unique_violation(&e) => {
            // Say which key collided, without echoing the token hash back.
            let taken: Option<i64> = sqlx::query_scalar("SELECT CAST(1 AS BIGINT) FROM users WHERE name = $1")
                .bind(name)
                .fetch_optional(pool)
                .await?;
            Err(match taken {
                Some(_) => StoreError::already_exists("user", name),
                None => StoreError::already_exists("token", "(hash withheld)"),
            })
        }
        Err(e) => Err(e.into()),
    }
}

pub(crate) async fn user_by_token_hash(pool: &DbPool, token_sha256: &str) -> Result<Option<UserRecord>> {
    let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE token_sha256 = $1"))
        .bind(token_sha256)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(user_from_row).transpose()
}

pub(crate) async fn list_users(pool: &DbPool) -> Result<Vec<UserRecord>> {
    let rows = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users ORDER BY id")).fetch_all(pool).await?;
    rows.iter().map(user_from_row).collect()
}
