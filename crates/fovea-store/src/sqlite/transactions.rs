//! The transaction log: every prediction shown and every correction made.

use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection, SqlitePool};

use super::{parse_json, parse_text, to_json};
use crate::error::{Result, StoreError};
use crate::model::*;

fn transaction_from_row(row: &SqliteRow) -> Result<TransactionRecord> {
    Ok(TransactionRecord {
        id: row.try_get("id")?,
        image_id: row.try_get("image_id")?,
        model_version: row.try_get("model_version")?,
        kind: parse_text(row.try_get("kind")?)?,
        top_k: parse_json(row.try_get("top_k")?)?,
        chosen_class: row.try_get("chosen_class")?,
        user: row.try_get("user_name")?,
        latency_ms: row.try_get("latency_ms")?,
        unknown: row.try_get("unknown")?,
        created_at: row.try_get("created_at")?,
    })
}

pub(super) async fn log_transaction(conn: &mut SqliteConnection, txn: NewTransaction) -> Result<i64> {
    if txn.top_k.iter().any(|s| !s.probability.is_finite()) {
        return Err(StoreError::Invalid("top-k probabilities must be finite".into()));
    }
    // The best entry is denormalised into columns so confidence filters stay plain SQL.
    let top1 = txn.top_k.iter().max_by(|a, b| a.probability.total_cmp(&b.probability));
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO transactions (image_id, model_version, kind, top_k, top1_class, top1_probability,
                                   chosen_class, user_name, latency_ms, unknown, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(&txn.image_id)
    .bind(&txn.model_version)
    .bind(txn.kind.as_str())
    .bind(to_json(&txn.top_k)?)
    .bind(top1.map(|s| s.class.as_str()))
    .bind(top1.map(|s| s.probability))
    .bind(&txn.chosen_class)
    .bind(&txn.user)
    .bind(txn.latency_ms)
    .bind(txn.unknown)
    .bind(now_millis())
    .fetch_one(conn)
    .await
    .map_err(|e| match &e {
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => StoreError::not_found("image", &txn.image_id),
        _ => e.into(),
    })?;
    Ok(id)
}

pub(super) async fn list_transactions(pool: &SqlitePool, limit: u32, offset: u32) -> Result<Vec<TransactionRecord>> {
    let rows = sqlx::query(
        "SELECT id, image_id, model_version, kind, top_k, chosen_class, user_name, latency_ms, unknown, created_at
         FROM transactions ORDER BY id DESC LIMIT ? OFFSET ?",
    )
    .bind(i64::from(limit))
    .bind(i64::from(offset))
    .fetch_all(pool)
    .await?;
    rows.iter().map(transaction_from_row).collect()
}

pub(super) async fn image_transactions(
    pool: &SqlitePool,
    image_id: &str,
    limit: u32,
) -> Result<Vec<TransactionRecord>> {
    let rows = sqlx::query(
        "SELECT id, image_id, model_version, kind, top_k, chosen_class, user_name, latency_ms, unknown, created_at
         FROM transactions WHERE image_id = ? ORDER BY id DESC LIMIT ?",
    )
    .bind(image_id)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    rows.iter().map(transaction_from_row).collect()
}
