//! The transaction log: every prediction shown and every correction made.

use sqlx::Row;

use super::{parse_json, parse_text, to_json, DbConnection, DbPool, DbRow};
use crate::error::{Result, StoreError};
use crate::model::*;

fn transaction_from_row(row: &DbRow) -> Result<TransactionRecord> {
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

pub(crate) async fn log_transaction(conn: &mut DbConnection, txn: NewTransaction) -> Result<i64> {
    if txn.top_k.iter().any(|s| !s.probability.is_finite()) {
        return Err(StoreError::Invalid("top-k probabilities must be finite".into()));
    }
    // The best entry is denormalised into columns so confidence filters stay plain SQL.
    let top1 = txn.top_k.iter().max_by(|a, b| a.probability.total_cmp(&b.probability));
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO transactions (image_id, model_version, kind, top_k, top1_class, top1_probability,
                                   chosen_class, user_name, latency_ms, unknown, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
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

pub(crate) async fn list_transactions(pool: &DbPool, f: &TransactionFilter) -> Result<Vec<TransactionRecord>> {
    let mut q = sqlx::QueryBuilder::<super::Db>::new(
        "SELECT id, image_id, model_version, kind, top_k, chosen_class, user_name, latency_ms, unknown, created_at
         FROM transactions WHERE 1 = 1",
    );
    if let Some(user) = &f.user {
        q.push(" AND user_name = ").push_bind(user.clone());
    }
    if let Some(class) = &f.class {
        // lower() is ASCII-only in SQLite; class names compared here are the ones people typed in filters.
        let class = class.to_lowercase();
        q.push(" AND lower(COALESCE(chosen_class, top1_class, '')) = ").push_bind(class);
    }
    if let Some(kind) = f.kind {
        q.push(" AND kind = ").push_bind(kind.as_str());
    }
    if let Some(since) = f.since {
        q.push(" AND created_at >= ").push_bind(since);
    }
    if let Some(until) = f.until {
        q.push(" AND created_at < ").push_bind(until);
    }
    q.push(" ORDER BY id DESC LIMIT ").push_bind(i64::from(f.limit)).push(" OFFSET ").push_bind(i64::from(f.offset));
    let rows = q.build().fetch_all(pool).await?;
    rows.iter().map(transaction_from_row).collect()
}

pub(crate) async fn image_transactions(pool: &DbPool, image_id: &str, limit: u32) -> Result<Vec<TransactionRecord>> {
    let rows = sqlx::query(
        "SELECT id, image_id, model_version, kind, top_k, chosen_class, user_name, latency_ms, unknown, created_at
         FROM transactions WHERE image_id = $1 ORDER BY id DESC LIMIT $2",
    )
    .bind(image_id)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    rows.iter().map(transaction_from_row).collect()
}
