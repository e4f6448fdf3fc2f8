//! Bulk actions: one transaction applies a change to every selected image and records, per image, what it changed,
//! so one undo puts all of it back.

use sqlx::Row;

use super::labels::bump_label_log_epoch;
use super::{begin_write, parse_json, to_json, DbConnection, DbPool, DbRow};
use crate::collections::*;
use crate::error::{Result, StoreError};
use crate::model::now_millis;

/// Stored in `bulk_actions.params`: the change itself (needed to undo it) and the caller's description.
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredParams {
    change: BulkChange,
    detail: serde_json::Value,
}

fn kind_of(change: &BulkChange) -> &'static str {
    match change {
        BulkChange::Label { .. } => "label",
        BulkChange::Tag { .. } => "tag",
        BulkChange::Untag { .. } => "untag",
        BulkChange::Discard => "discard",
    }
}

fn action_from_row(row: &DbRow) -> Result<BulkActionRecord> {
    let params: StoredParams = parse_json(row.try_get("params")?)?;
    let changed: i64 = row.try_get("changed")?;
    Ok(BulkActionRecord {
        id: row.try_get("id")?,
        kind: row.try_get("kind")?,
        params: params.detail,
        user: row.try_get("user_name")?,
        changed: u64::try_from(changed).unwrap_or(0),
        undone_at: row.try_get("undone_at")?,
        created_at: row.try_get("created_at")?,
    })
}

const ACTION_SELECT: &str = "SELECT id, kind, params, user_name, changed, undone_at, created_at FROM bulk_actions";

async fn current_class(conn: &mut DbConnection, image_id: &str) -> Result<Option<i64>> {
    Ok(sqlx::query_scalar("SELECT class_id FROM labels WHERE image_id = $1 ORDER BY id DESC LIMIT 1")
        .bind(image_id)
        .fetch_optional(&mut *conn)
        .await?)
}

/// Applies `change` to one target; returns (changed, label id appended).
async fn apply_one(
    conn: &mut DbConnection,
    change: &BulkChange,
    target: &BulkTarget,
    user: &str,
    now: i64,
) -> Result<(bool, Option<i64>)> {
    let exists: Option<i64> = sqlx::query_scalar("SELECT CAST(1 AS BIGINT) FROM images WHERE id = $1")
        .bind(&target.image_id)
        .fetch_optional(&mut *conn)
        .await?;
    if exists.is_none() {
        return Err(StoreError::not_found("image", &target.image_id));
    }
    Ok(match change {
        BulkChange::Label { origin } => {
            let class_id = target
                .class_id
                .ok_or_else(|| StoreError::Invalid(format!("no class for image {}", target.image_id)))?;
            let current = current_class(conn, &target.image_id).await?;
            if current == Some(class_id) {
                return Ok((false, None));
            }
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO labels (image_id, class_id, previous_class_id, user_name, origin, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            )
            .bind(&target.image_id)
            .bind(class_id)
            .bind(current)
            .bind(user)
            .bind(origin.as_str())
            .bind(now)
            .fetch_one(&mut *conn)
            .await?;
            (true, Some(id))
        }
        BulkChange::Tag { tag } => {
            let n = sqlx::query(
                "INSERT INTO image_tags (image_id, tag, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            )
            .bind(&target.image_id)
            .bind(normalise_tag(tag)?)
            .bind(now)
            .execute(&mut *conn)
            .await?
            .rows_affected();
            (n == 1, None)
        }
        BulkChange::Untag { tag } => {
            let n = sqlx::query("DELETE FROM image_tags WHERE image_id = $1 AND tag = $2")
                .bind(&target.image_id)
                .bind(normalise_tag(tag)?)
                .execute(&mut *conn)
                .await?
                .rows_affected();
            (n == 1, None)
        }
        BulkChange::Discard => {
            let (collection, seq) =
                target.item.ok_or_else(|| StoreError::Invalid("discard needs a collection item".into()))?;
            let n = sqlx::query(
                "UPDATE collection_items SET discarded = TRUE
                 WHERE collection_id = $1 AND seq = $2 AND image_id = $3 AND NOT discarded",
            )
            .bind(collection)
            .bind(i64::try_from(seq).unwrap_or(i64::MAX))
            .bind(&target.image_id)
            .execute(&mut *conn)
            .await?
            .rows_affected();
            (n == 1, None)
        }
    })
}

pub(crate) async fn apply_bulk(
    pool: &DbPool,
    change: &BulkChange,
    detail: &serde_json::Value,
    targets: &[BulkTarget],
    user: &str,
) -> Result<BulkActionRecord> {
    if targets.is_empty() {
        return Err(StoreError::Invalid("a bulk action needs at least one image".into()));
    }
    let now = now_millis();
    let params = to_json(&StoredParams { change: change.clone(), detail: detail.clone() })?;
    let mut tx = begin_write(pool).await?;
    let action: i64 = sqlx::query_scalar(
        "INSERT INTO bulk_actions (kind, params, user_name, changed, created_at) VALUES ($1, $2, $3, 0, $4) RETURNING id",
    )
    .bind(kind_of(change))
    .bind(params)
    .bind(user)
    .bind(now)
    .fetch_one(&mut *tx)
    .await?;
    let mut changed = 0i64;
    for target in targets {
        let (did, label_id) = apply_one(&mut tx, change, target, user, now).await?;
        if !did {
            continue;
        }
        changed += 1;
        let (collection, seq) = target.item.map_or((None, None), |(c, s)| (Some(c), i64::try_from(s).ok()));
        sqlx::query(
            "INSERT INTO bulk_action_items (action_id, image_id, label_id, collection_id, seq) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(action)
        .bind(&target.image_id)
        .bind(label_id)
        .bind(collection)
        .bind(seq)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query("UPDATE bulk_actions SET changed = $1 WHERE id = $2")
        .bind(changed)
        .bind(action)
        .execute(&mut *tx)
        .await?;
    let row = sqlx::query(&format!("{ACTION_SELECT} WHERE id = $1")).bind(action).fetch_one(&mut *tx).await?;
    tx.commit().await?;
    action_from_row(&row)
}

pub(crate) async fn undo_bulk(pool: &DbPool, id: i64) -> Result<UndoOutcome> {
    let mut tx = begin_write(pool).await?;
    let row = sqlx::query(&format!("{ACTION_SELECT} WHERE id = $1"))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::not_found("bulk action", id))?;
    if row.try_get::<Option<i64>, _>("undone_at")?.is_some() {
        return Err(StoreError::Invalid(format!("bulk action {id} was already undone")));
    }
    let stored: StoredParams = parse_json(row.try_get("params")?)?;
    let items =
        sqlx::query("SELECT image_id, label_id, collection_id, seq FROM bulk_action_items WHERE action_id = $1")
            .bind(id)
            .fetch_all(&mut *tx)
            .await?;
    let (mut restored, mut kept_newer) = (0u64, 0u64);
    for item in &items {
        let image_id: String = item.try_get("image_id")?;
        match &stored.change {
            BulkChange::Label { .. } => {
                let label_id: Option<i64> = item.try_get("label_id")?;
                let newest: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM labels WHERE image_id = $1")
                    .bind(&image_id)
                    .fetch_one(&mut *tx)
                    .await?;
                // A person who labelled the image after the action has the last word: their label stays.
                if label_id.is_none() || newest != label_id {
                    kept_newer += 1;
                    continue;
                }
                sqlx::query("DELETE FROM labels WHERE id = $1").bind(label_id).execute(&mut *tx).await?;
            }
            BulkChange::Tag { tag } => {
                sqlx::query("DELETE FROM image_tags WHERE image_id = $1 AND tag = $2")
                    .bind(&image_id)
                    .bind(normalise_tag(tag)?)
                    .execute(&mut *tx)
                    .await?;
            }
            BulkChange::Untag { tag } => {
                sqlx::query(
                    "INSERT INTO image_tags (image_id, tag, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                )
                .bind(&image_id)
                .bind(normalise_tag(tag)?)
                .bind(now_millis())
                .execute(&mut *tx)
                .await?;
            }
            BulkChange::Discard => {
                sqlx::query("UPDATE collection_items SET discarded = FALSE WHERE collection_id = $1 AND seq = $2")
                    .bind(item.try_get::<Option<i64>, _>("collection_id")?)
                    .bind(item.try_get::<Option<i64>, _>("seq")?)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        restored += 1;
    }
    let labels_changed = matches!(stored.change, BulkChange::Label { .. }) && restored > 0;
    if labels_changed {
        // Labels left the log: every head folded from it (and its snapshots) must be rebuilt, as after a merge.
        bump_label_log_epoch(&mut tx).await?;
    }
    sqlx::query("UPDATE bulk_actions SET undone_at = $1 WHERE id = $2")
        .bind(now_millis())
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let row = sqlx::query(&format!("{ACTION_SELECT} WHERE id = $1")).bind(id).fetch_one(&mut *tx).await?;
    tx.commit().await?;
    Ok(UndoOutcome { action: action_from_row(&row)?, restored, kept_newer, labels_changed })
}

pub(crate) async fn list_bulk_actions(pool: &DbPool, limit: u32) -> Result<Vec<BulkActionRecord>> {
    let rows = sqlx::query(&format!("{ACTION_SELECT} ORDER BY id DESC LIMIT $1"))
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?;
    rows.iter().map(action_from_row).collect()
}
