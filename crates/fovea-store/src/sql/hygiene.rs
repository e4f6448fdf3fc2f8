//! Hygiene records on SQLite: label confirmations, image hashes, duplicate groups kept whole.

use std::collections::HashSet;

use sqlx::Row;

use super::{begin_write, DbPool};
use crate::error::{Result, StoreError};
use crate::hygiene::ImageHash;
use crate::model::{now_millis, validate_image_id};

pub(crate) async fn confirm_label(pool: &DbPool, image_id: &str, label_id: i64, user: &str) -> Result<()> {
    let owner: Option<String> =
        sqlx::query_scalar("SELECT image_id FROM labels WHERE id = $1").bind(label_id).fetch_optional(pool).await?;
    if owner.as_deref() != Some(image_id) {
        return Err(StoreError::not_found("label", format!("{label_id} of image {image_id}")));
    }
    sqlx::query(
        "INSERT INTO label_confirmations (label_id, image_id, user_name, created_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT DO NOTHING",
    )
    .bind(label_id)
    .bind(image_id)
    .bind(user)
    .bind(now_millis())
    .execute(pool)
    .await?;
    Ok(())
}

pub(crate) async fn confirmed_labels(pool: &DbPool) -> Result<HashSet<i64>> {
    let ids: Vec<i64> = sqlx::query_scalar("SELECT label_id FROM label_confirmations").fetch_all(pool).await?;
    Ok(ids.into_iter().collect())
}

pub(crate) async fn put_image_hash(pool: &DbPool, hash: &ImageHash) -> Result<()> {
    validate_image_id(&hash.image_id)?;
    sqlx::query(
        "INSERT INTO image_hashes (image_id, dhash, pixel_sha256, created_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (image_id) DO UPDATE SET dhash = excluded.dhash, pixel_sha256 = excluded.pixel_sha256",
    )
    .bind(&hash.image_id)
    // Stored bit for bit as a signed 64-bit integer, the widest type both SQLite and PostgreSQL have.
    .bind(hash.dhash as i64)
    .bind(&hash.pixel_sha256)
    .bind(now_millis())
    .execute(pool)
    .await?;
    Ok(())
}

pub(crate) async fn image_hashes(pool: &DbPool) -> Result<Vec<ImageHash>> {
    let rows =
        sqlx::query("SELECT image_id, dhash, pixel_sha256 FROM image_hashes ORDER BY image_id").fetch_all(pool).await?;
    rows.iter()
        .map(|r| {
            Ok(ImageHash {
                image_id: r.try_get("image_id")?,
                dhash: r.try_get::<i64, _>("dhash")? as u64,
                pixel_sha256: r.try_get("pixel_sha256")?,
            })
        })
        .collect()
}

pub(crate) async fn images_without_hash(pool: &DbPool, limit: u32) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT i.id FROM images i LEFT JOIN image_hashes h ON h.image_id = i.id
         WHERE h.image_id IS NULL ORDER BY i.created_at, i.id LIMIT $1",
    )
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?)
}

pub(crate) async fn keep_duplicate_group(
    pool: &DbPool,
    group_key: &str,
    image_ids: &[String],
    user: &str,
) -> Result<()> {
    if image_ids.len() < 2 {
        return Err(StoreError::Invalid("a duplicate group has at least two images".into()));
    }
    let now = now_millis();
    let mut tx = begin_write(pool).await?;
    for id in image_ids {
        validate_image_id(id)?;
        let exists: Option<i64> = sqlx::query_scalar("SELECT CAST(1 AS BIGINT) FROM images WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Err(StoreError::not_found("image", id));
        }
        sqlx::query(
            "INSERT INTO duplicate_keeps (image_id, group_key, user_name, created_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT DO NOTHING",
        )
        .bind(id)
        .bind(group_key)
        .bind(user)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

pub(crate) async fn kept_duplicate_groups(pool: &DbPool) -> Result<Vec<(String, String)>> {
    let rows = sqlx::query("SELECT group_key, image_id FROM duplicate_keeps ORDER BY group_key, image_id")
        .fetch_all(pool)
        .await?;
    rows.iter().map(|r| Ok((r.try_get("group_key")?, r.try_get("image_id")?))).collect()
}
