//! The label log: append-only, its ids are the event sequence the online head replays.

use sqlx::Row;

use super::{parse_text, DbPool, DbRow};
use crate::error::{Result, StoreError};
use crate::model::*;

const LABEL_SELECT: &str = "
    SELECT l.id, l.image_id, l.class_id, c.name AS class_name, l.previous_class_id,
           pc.name AS previous_class_name, l.user_name, l.origin, l.created_at
    FROM labels l
    JOIN classes c ON c.id = l.class_id
    LEFT JOIN classes pc ON pc.id = l.previous_class_id";

fn label_from_row(row: &DbRow) -> Result<LabelRecord> {
    Ok(LabelRecord {
        id: row.try_get("id")?,
        image_id: row.try_get("image_id")?,
        class_id: row.try_get("class_id")?,
        class_name: row.try_get("class_name")?,
        previous_class_id: row.try_get("previous_class_id")?,
        previous_class_name: row.try_get("previous_class_name")?,
        user: row.try_get("user_name")?,
        origin: parse_text(row.try_get("origin")?)?,
        created_at: row.try_get("created_at")?,
    })
}

pub(crate) async fn add_label(pool: &DbPool, label: NewLabel) -> Result<LabelRecord> {
    // Serialised with every other write, so label ids commit in id order: a process following the log with
    // `labels_since(last id seen)` never skips a label that commits late with a lower id.
    let mut tx = super::begin_write(pool).await?;
    // Checked first only for a precise error; the foreign keys still guard against a concurrent delete.
    let image: Option<i64> = sqlx::query_scalar("SELECT CAST(1 AS BIGINT) FROM images WHERE id = $1")
        .bind(&label.image_id)
        .fetch_optional(&mut *tx)
        .await?;
    if image.is_none() {
        return Err(StoreError::not_found("image", &label.image_id));
    }
    let class: Option<i64> = sqlx::query_scalar("SELECT CAST(1 AS BIGINT) FROM classes WHERE id = $1")
        .bind(label.class_id)
        .fetch_optional(&mut *tx)
        .await?;
    if class.is_none() {
        return Err(StoreError::not_found("class", label.class_id));
    }
    // One statement reads the current class and appends the new label, so no concurrent label of the
    // same image can slip in between and leave previous_class_id stale. The same statement refuses an import's
    // label for an image a person has labelled, so a person's label landing meanwhile is never overridden either.
    let id: Option<i64> = sqlx::query_scalar(
        "INSERT INTO labels (image_id, class_id, previous_class_id, user_name, origin, created_at)
         SELECT $1, $2, (SELECT p.class_id FROM labels p WHERE p.image_id = $1 ORDER BY p.id DESC LIMIT 1), $3, $4, $5
         WHERE $4 <> 'import'
            OR NOT EXISTS (SELECT 1 FROM labels h WHERE h.image_id = $1 AND h.origin <> 'import')
         RETURNING id",
    )
    .bind(&label.image_id)
    .bind(label.class_id)
    .bind(&label.user)
    .bind(label.origin.as_str())
    .bind(now_millis())
    .fetch_optional(&mut *tx)
    .await?;
    let id = id.ok_or_else(|| StoreError::already_exists("human label of image", &label.image_id))?;
    let row = sqlx::query(&format!("{LABEL_SELECT} WHERE l.id = $1")).bind(id).fetch_one(&mut *tx).await?;
    tx.commit().await?;
    label_from_row(&row)
}

pub(crate) async fn current_label(pool: &DbPool, image_id: &str) -> Result<Option<LabelRecord>> {
    let row = sqlx::query(&format!("{LABEL_SELECT} WHERE l.image_id = $1 ORDER BY l.id DESC LIMIT 1"))
        .bind(image_id)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(label_from_row).transpose()
}

pub(crate) async fn labels_since(pool: &DbPool, after_seq: i64, limit: u32) -> Result<Vec<LabelRecord>> {
    let rows = sqlx::query(&format!("{LABEL_SELECT} WHERE l.id > $1 ORDER BY l.id LIMIT $2"))
        .bind(after_seq)
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?;
    rows.iter().map(label_from_row).collect()
}

pub(crate) async fn last_label_seq(pool: &DbPool) -> Result<i64> {
    let seq: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM labels").fetch_one(pool).await?;
    Ok(seq.unwrap_or(0))
}

pub(crate) async fn human_label(pool: &DbPool, image_id: &str) -> Result<Option<LabelRecord>> {
    let row = sqlx::query(&format!(
        "{LABEL_SELECT} WHERE l.image_id = $1 AND l.origin <> 'import' ORDER BY l.id DESC LIMIT 1"
    ))
    .bind(image_id)
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(label_from_row).transpose()
}

pub(crate) async fn label_log_epoch<'e, E>(executor: E) -> Result<i64>
where
    E: sqlx::Executor<'e, Database = super::Db>,
{
    let epoch: Option<i64> =
        sqlx::query_scalar("SELECT epoch FROM label_log_epoch WHERE id = 1").fetch_optional(executor).await?;
    epoch.ok_or_else(|| StoreError::Corrupt("the label log's epoch row is missing".into()))
}

/// Starts a new label-log epoch inside the caller's transaction (a rename or a merge) and drops the snapshots it
/// voids. A snapshot of the old epoch saved concurrently is never restored either (see `latest_head_snapshot`).
pub(crate) async fn bump_label_log_epoch(conn: &mut super::DbConnection) -> Result<i64> {
    let epoch: Option<i64> =
        sqlx::query_scalar("UPDATE label_log_epoch SET epoch = epoch + 1 WHERE id = 1 RETURNING epoch")
            .fetch_optional(&mut *conn)
            .await?;
    let epoch = epoch.ok_or_else(|| StoreError::Corrupt("the label log's epoch row is missing".into()))?;
    sqlx::query("DELETE FROM head_snapshots WHERE epoch < $1").bind(epoch).execute(&mut *conn).await?;
    Ok(epoch)
}

pub(crate) async fn image_labels(pool: &DbPool, image_id: &str) -> Result<Vec<LabelRecord>> {
    let rows = sqlx::query(&format!("{LABEL_SELECT} WHERE l.image_id = $1 ORDER BY l.id DESC"))
        .bind(image_id)
        .fetch_all(pool)
        .await?;
    rows.iter().map(label_from_row).collect()
}
