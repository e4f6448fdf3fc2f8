//! The embedding cache: one f32 vector per (image, backbone), so re-training never re-runs the network.

use super::{missing_image, DbConnection, DbPool, Query};

use crate::error::{Result, StoreError};
use crate::model::*;

/// Little-endian f32s: a fixed byte order, so a database copied between machines reads back the same.
fn encode(vector: &[f32]) -> Vec<u8> {
    vector.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn decode(bytes: &[u8], dim: i64) -> Result<Vec<f32>> {
    if usize::try_from(dim).ok().and_then(|d| d.checked_mul(4)) != Some(bytes.len()) {
        return Err(StoreError::Corrupt(format!("embedding of {} bytes, expected dim {dim}", bytes.len())));
    }
    Ok(bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
}

/// Stores (or replaces) an image's embedding under a backbone; parameters `$1..$5`, bound by [`bind_embedding`].
pub(crate) const UPSERT_EMBEDDING: &str =
    "INSERT INTO embeddings (image_id, backbone, dim, vector, created_at) VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (image_id, backbone) DO UPDATE
     SET dim = excluded.dim, vector = excluded.vector, created_at = excluded.created_at";

/// Binds [`UPSERT_EMBEDDING`]'s parameters, after whatever `query` already holds; refuses an empty vector.
pub(crate) fn bind_embedding<'q>(
    query: Query<'q>,
    image_id: &'q str,
    backbone: &'q str,
    vector: &[f32],
) -> Result<Query<'q>> {
    if vector.is_empty() {
        return Err(StoreError::Invalid("embedding is empty".into()));
    }
    let dim = i64::try_from(vector.len()).map_err(|_| StoreError::Invalid("embedding too long".into()))?;
    Ok(query.bind(image_id).bind(backbone).bind(dim).bind(encode(vector)).bind(now_millis()))
}

pub(crate) async fn put_embedding(
    conn: &mut DbConnection,
    image_id: &str,
    backbone: &str,
    vector: &[f32],
) -> Result<()> {
    let query = bind_embedding(sqlx::query(UPSERT_EMBEDDING), image_id, backbone, vector)?;
    query.execute(conn).await.map_err(|e| missing_image(e, image_id))?;
    Ok(())
}

pub(crate) async fn get_embedding(pool: &DbPool, image_id: &str, backbone: &str) -> Result<Option<Vec<f32>>> {
    let row: Option<(i64, Vec<u8>)> =
        sqlx::query_as("SELECT dim, vector FROM embeddings WHERE image_id = $1 AND backbone = $2")
            .bind(image_id)
            .bind(backbone)
            .fetch_optional(pool)
            .await?;
    row.map(|(dim, bytes)| decode(&bytes, dim)).transpose()
}
