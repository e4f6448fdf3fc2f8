//! Model versions (with exactly one promoted) and snapshots of the online head.

use sqlx::Row;

use super::{begin_write, parse_json, parse_text, to_json, DbPool, DbRow};
use crate::error::{is_unique_violation, Result, StoreError};
use crate::model::*;

const MODEL_COLUMNS: &str = "id, parent, kind, status, metrics, created_at";

fn model_from_row(row: &DbRow) -> Result<ModelVersionRecord> {
    Ok(ModelVersionRecord {
        id: row.try_get("id")?,
        parent: row.try_get("parent")?,
        kind: parse_text(row.try_get("kind")?)?,
        status: parse_text(row.try_get("status")?)?,
        metrics: parse_json(row.try_get("metrics")?)?,
        created_at: row.try_get("created_at")?,
    })
}

pub(crate) async fn create_model_version(pool: &DbPool, version: NewModelVersion) -> Result<ModelVersionRecord> {
    if version.id.trim().is_empty() {
        return Err(StoreError::Invalid("model version id is empty".into()));
    }
    let row = sqlx::query(&format!(
        "INSERT INTO model_versions (id, parent, kind, status, metrics, created_at)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {MODEL_COLUMNS}"
    ))
    .bind(&version.id)
    .bind(&version.parent)
    .bind(version.kind.as_str())
    .bind(ModelStatus::Candidate.as_str())
    .bind(to_json(&version.metrics)?)
    .bind(now_millis())
    .fetch_one(pool)
    .await
    .map_err(|e| match &e {
        _ if is_unique_violation(&e) => StoreError::already_exists("model version", &version.id),
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
            StoreError::not_found("parent model version", version.parent.as_deref().unwrap_or(""))
        }
        _ => e.into(),
    })?;
    model_from_row(&row)
}

/// The numbered ids tried for a reservation before giving up; each try only fails if another writer took the id
/// between our read and our insert, which SQLite's write lock rules out and other backends make rare.
const RESERVE_TRIES: u32 = 8;

pub(crate) async fn reserve_model_version(
    pool: &DbPool,
    prefix: &str,
    parent: Option<&str>,
    kind: ModelKind,
) -> Result<ModelVersionRecord> {
    let prefix = prefix.trim();
    if prefix.is_empty() || !prefix.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(StoreError::Invalid(format!("model id prefix {prefix:?} must be letters, digits, - or _")));
    }
    for _ in 0..RESERVE_TRIES {
        // The write lock is taken first, so the number read below is still free when the row goes in.
        let mut tx = begin_write(pool).await?;
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM model_versions").fetch_one(&mut *tx).await?;
        let mut n = count;
        let id = loop {
            let id = format!("{prefix}-{n:03}");
            let taken: Option<i64> = sqlx::query_scalar("SELECT CAST(1 AS BIGINT) FROM model_versions WHERE id = $1")
                .bind(&id)
                .fetch_optional(&mut *tx)
                .await?;
            if taken.is_none() {
                break id;
            }
            n += 1;
        };
        let inserted = sqlx::query(&format!(
            "INSERT INTO model_versions (id, parent, kind, status, metrics, created_at)
             VALUES ($1, $2, $3, $4, '{{}}', $5) RETURNING {MODEL_COLUMNS}"
        ))
        .bind(&id)
        .bind(parent)
        .bind(kind.as_str())
        .bind(ModelStatus::Training.as_str())
        .bind(now_millis())
        .fetch_one(&mut *tx)
        .await;
        match inserted {
            Ok(row) => {
                tx.commit().await?;
                return model_from_row(&row);
            }
            Err(e) if is_unique_violation(&e) => continue,
            Err(sqlx::Error::Database(db)) if db.is_foreign_key_violation() => {
                return Err(StoreError::not_found("parent model version", parent.unwrap_or("")));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::already_exists(
        "model version with prefix",
        format!("{prefix} (no free id after {RESERVE_TRIES} tries)"),
    ))
}

pub(crate) async fn complete_model_version(
    pool: &DbPool,
    id: &str,
    metrics: &serde_json::Value,
) -> Result<ModelVersionRecord> {
    let row = sqlx::query(&format!(
        "UPDATE model_versions SET status = 'candidate', metrics = $1 WHERE id = $2 AND status = 'training'
         RETURNING {MODEL_COLUMNS}"
    ))
    .bind(to_json(metrics)?)
    .bind(id)
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(model_from_row).transpose()?.ok_or_else(|| StoreError::not_found("model reservation", id))
}

pub(crate) async fn discard_model_version(pool: &DbPool, id: &str) -> Result<bool> {
    let deleted = sqlx::query("DELETE FROM model_versions WHERE id = $1 AND status = 'training'")
        .bind(id)
        .execute(pool)
        .await?
        .rows_affected();
    Ok(deleted > 0)
}

pub(crate) async fn get_model_version(pool: &DbPool, id: &str) -> Result<Option<ModelVersionRecord>> {
    let row = sqlx::query(&format!("SELECT {MODEL_COLUMNS} FROM model_versions WHERE id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(model_from_row).transpose()
}

pub(crate) async fn list_model_versions(pool: &DbPool) -> Result<Vec<ModelVersionRecord>> {
    let rows = sqlx::query(&format!("SELECT {MODEL_COLUMNS} FROM model_versions ORDER BY created_at DESC, id DESC"))
        .fetch_all(pool)
        .await?;
    rows.iter().map(model_from_row).collect()
}

pub(crate) async fn promoted_model_version(pool: &DbPool) -> Result<Option<ModelVersionRecord>> {
    let row = sqlx::query(&format!("SELECT {MODEL_COLUMNS} FROM model_versions WHERE status = 'promoted'"))
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(model_from_row).transpose()
}

pub(crate) async fn promote(pool: &DbPool, id: &str) -> Result<ModelVersionRecord> {
    let mut tx = begin_write(pool).await?;
    let status: Option<String> =
        sqlx::query_scalar("SELECT status FROM model_versions WHERE id = $1").bind(id).fetch_optional(&mut *tx).await?;
    match status.as_deref() {
        None => return Err(StoreError::not_found("model version", id)),
        Some("training") => {
            return Err(StoreError::Invalid(format!(
                "model version {id} is still being trained; it cannot be promoted"
            )))
        }
        Some(_) => {}
    }
    // Retire first: the partial unique index forbids two promoted rows even for an instant.
    sqlx::query("UPDATE model_versions SET status = 'retired' WHERE status = 'promoted' AND id <> $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let row =
        sqlx::query(&format!("UPDATE model_versions SET status = 'promoted' WHERE id = $1 RETURNING {MODEL_COLUMNS}"))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
    // Dropping `tx` without commit rolls the retirement back when the id does not exist.
    let row = row.ok_or_else(|| StoreError::not_found("model version", id))?;
    tx.commit().await?;
    model_from_row(&row)
}

pub(crate) async fn set_model_metrics(pool: &DbPool, id: &str, metrics: &serde_json::Value) -> Result<()> {
    let updated = sqlx::query("UPDATE model_versions SET metrics = $1 WHERE id = $2")
        .bind(to_json(metrics)?)
        .bind(id)
        .execute(pool)
        .await?
        .rows_affected();
    if updated == 0 {
        return Err(StoreError::not_found("model version", id));
    }
    Ok(())
}

fn snapshot_from_row(row: &DbRow) -> Result<HeadSnapshot> {
    Ok(HeadSnapshot {
        id: row.try_get("id")?,
        epoch: row.try_get("epoch")?,
        label_seq: row.try_get("label_seq")?,
        bytes: row.try_get("bytes")?,
        created_at: row.try_get("created_at")?,
    })
}

pub(crate) async fn save_head_snapshot(
    pool: &DbPool,
    backbone: &str,
    epoch: i64,
    label_seq: i64,
    bytes: &[u8],
) -> Result<HeadSnapshot> {
    let row = sqlx::query(
        "INSERT INTO head_snapshots (backbone, epoch, label_seq, bytes, created_at) VALUES ($1, $2, $3, $4, $5)
         RETURNING id, epoch, label_seq, bytes, created_at",
    )
    .bind(backbone)
    .bind(epoch)
    .bind(label_seq)
    .bind(bytes)
    .bind(now_millis())
    .fetch_one(pool)
    .await?;
    snapshot_from_row(&row)
}

pub(crate) async fn latest_head_snapshot(pool: &DbPool, backbone: &str) -> Result<Option<HeadSnapshot>> {
    // One statement reads the epoch and the snapshot, so a rename committing in between cannot pair them wrongly.
    let row = sqlx::query(
        "SELECT id, epoch, label_seq, bytes, created_at FROM head_snapshots
         WHERE backbone = $1 AND epoch = (SELECT epoch FROM label_log_epoch WHERE id = 1)
         ORDER BY id DESC LIMIT 1",
    )
    .bind(backbone)
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(snapshot_from_row).transpose()
}

pub(crate) async fn prune_head_snapshots(pool: &DbPool, backbone: &str, keep: u32) -> Result<u64> {
    let deleted = sqlx::query(
        "DELETE FROM head_snapshots
         WHERE epoch < (SELECT epoch FROM label_log_epoch WHERE id = 1)
            OR (backbone = $1
                AND id NOT IN (SELECT id FROM head_snapshots WHERE backbone = $1 ORDER BY id DESC LIMIT $2))",
    )
    .bind(backbone)
    .bind(i64::from(keep))
    .execute(pool)
    .await?
    .rows_affected();
    Ok(deleted)
}
