//! The transaction log: every prediction shown and every correction made.

use sqlx::Row;

use super::{missing_image, parse_json, parse_text, to_json, DbConnection, DbPool, DbRow, Query};
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

/// Appends to the log; parameters `$1..$11`, bound by [`bind_transaction`]. The best entry is denormalised into
/// columns so confidence filters stay plain SQL.
pub(crate) const INSERT_TRANSACTION: &str =
    "INSERT INTO transactions (image_id, model_version, kind, top_k, top1_class, top1_probability,
                               chosen_class, user_name, latency_ms, unknown, created_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id";

/// Binds [`INSERT_TRANSACTION`]'s parameters, after whatever `query` already holds; refuses non-finite
/// probabilities.
pub(crate) fn bind_transaction<'q>(query: Query<'q>, txn: &'q NewTransaction) -> Result<Query<'q>> {
    if txn.top_k.iter().any(|s| !s.probability.is_finite()) {
        return Err(StoreError::Invalid("top-k probabilities must be finite".into()));
    }
    let top1 = txn.top_k.iter().max_by(|a, b| a.probability.total_cmp(&b.probability));
    Ok(query
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
        .bind(now_millis()))
}

pub(crate) async fn log_transaction(conn: &mut DbConnection, txn: NewTransaction) -> Result<i64> {
    let query = bind_transaction(sqlx::query(INSERT_TRANSACTION), &txn)?;
    let row = query.fetch_one(conn).await.map_err(|e| missing_image(e, &txn.image_id))?;
    Ok(row.try_get(0)?)
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
