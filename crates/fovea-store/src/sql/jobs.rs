//! Persisted jobs with leases: a worker claims a job for a while and keeps extending the lease; a job
//! whose worker died (lease ran out) is claimed again by the next worker that asks.

use std::time::Duration;

use sqlx::{QueryBuilder, Row};

use super::{lease_end, parse_json, parse_text, to_json, Db, DbPool, DbRow, CLAIM_LOCK};
use crate::error::{Result, StoreError};
use crate::model::*;

const JOB_COLUMNS: &str = "id, kind, params, state, progress, message, attempt, lease_until, created_at, updated_at";

fn job_from_row(row: &DbRow) -> Result<JobRecord> {
    Ok(JobRecord {
        id: row.try_get("id")?,
        kind: row.try_get("kind")?,
        params: parse_json(row.try_get("params")?)?,
        state: parse_text(row.try_get("state")?)?,
        progress: row.try_get("progress")?,
        message: row.try_get("message")?,
        attempt: row.try_get("attempt")?,
        lease_until: row.try_get("lease_until")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

pub(crate) async fn enqueue_job(pool: &DbPool, kind: &str, params: &serde_json::Value) -> Result<JobRecord> {
    if kind.trim().is_empty() {
        return Err(StoreError::Invalid("job kind is empty".into()));
    }
    let now = now_millis();
    let row = sqlx::query(&format!(
        "INSERT INTO jobs (kind, params, state, progress, attempt, created_at, updated_at)
         VALUES ($1, $2, 'queued', 0, 0, $3, $4) RETURNING {JOB_COLUMNS}"
    ))
    .bind(kind)
    .bind(to_json(params)?)
    .bind(now)
    .bind(now)
    .fetch_one(pool)
    .await?;
    job_from_row(&row)
}

pub(crate) async fn enqueue_job_unless_since(
    pool: &DbPool,
    kind: &str,
    params: &serde_json::Value,
    since: Millis,
) -> Result<Option<JobRecord>> {
    if kind.trim().is_empty() {
        return Err(StoreError::Invalid("job kind is empty".into()));
    }
    // Serialised with the other writes, so two replicas cannot both find no recent job.
    let mut tx = super::begin_write(pool).await?;
    let row = sqlx::query(&format!(
        "INSERT INTO jobs (kind, params, state, progress, attempt, created_at, updated_at)
         SELECT $1, $2, 'queued', 0, 0, $3, $3
         WHERE NOT EXISTS (SELECT 1 FROM jobs WHERE kind = $1 AND created_at >= $4) RETURNING {JOB_COLUMNS}"
    ))
    .bind(kind)
    .bind(to_json(params)?)
    .bind(now_millis())
    .bind(since)
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    row.as_ref().map(job_from_row).transpose()
}

pub(crate) async fn get_job(pool: &DbPool, id: i64) -> Result<Option<JobRecord>> {
    let row =
        sqlx::query(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1")).bind(id).fetch_optional(pool).await?;
    row.as_ref().map(job_from_row).transpose()
}

pub(crate) async fn list_jobs(pool: &DbPool, limit: u32, offset: u32) -> Result<Vec<JobRecord>> {
    let rows = sqlx::query(&format!("SELECT {JOB_COLUMNS} FROM jobs ORDER BY id DESC LIMIT $1 OFFSET $2"))
        .bind(i64::from(limit))
        .bind(i64::from(offset))
        .fetch_all(pool)
        .await?;
    rows.iter().map(job_from_row).collect()
}

pub(crate) async fn claim_job(pool: &DbPool, kinds: &[&str], lease: Duration) -> Result<Option<JobRecord>> {
    let now = now_millis();
    // SQLite runs one writer at a time, so the UPDATE ... WHERE id = (SELECT ...) is atomic there; PostgreSQL's
    // subquery locks the row it picks and skips rows another claim holds (`CLAIM_LOCK`), so concurrent workers
    // take different jobs and never wait on each other.
    let mut query = QueryBuilder::<Db>::new(
        "UPDATE jobs SET state = 'running', attempt = attempt + 1, progress = 0, lease_until = ",
    );
    query
        .push_bind(lease_end(now, lease))
        .push(", updated_at = ")
        .push_bind(now)
        .push(" WHERE id = (SELECT id FROM jobs WHERE (state = 'queued' OR (state = 'running' AND lease_until < ")
        .push_bind(now)
        .push("))");
    if !kinds.is_empty() {
        query.push(" AND kind IN (");
        let mut separated = query.separated(", ");
        for kind in kinds {
            separated.push_bind(*kind);
        }
        query.push(")");
    }
    query.push(format!(" ORDER BY id LIMIT 1{CLAIM_LOCK}) RETURNING {JOB_COLUMNS}"));
    let row = query.build().fetch_optional(pool).await?;
    row.as_ref().map(job_from_row).transpose()
}

pub(crate) async fn heartbeat_job(
    pool: &DbPool,
    id: i64,
    attempt: i64,
    progress: f64,
    message: Option<&str>,
    lease: Duration,
) -> Result<bool> {
    if !progress.is_finite() {
        return Err(StoreError::Invalid("job progress must be finite".into()));
    }
    let now = now_millis();
    // Matching on attempt means a worker whose job was re-claimed after its lease ran out learns it lost.
    let updated = sqlx::query(
        "UPDATE jobs SET progress = $1, message = COALESCE($2, message), lease_until = $3, updated_at = $4
         WHERE id = $5 AND attempt = $6 AND state = 'running'",
    )
    .bind(progress)
    .bind(message)
    .bind(lease_end(now, lease))
    .bind(now)
    .bind(id)
    .bind(attempt)
    .execute(pool)
    .await?
    .rows_affected();
    Ok(updated == 1)
}

pub(crate) async fn finish_job(
    pool: &DbPool,
    id: i64,
    attempt: i64,
    outcome: JobOutcome,
    message: Option<&str>,
) -> Result<bool> {
    let state = JobState::from(outcome);
    let updated = sqlx::query(
        "UPDATE jobs SET state = $1, message = COALESCE($2, message), lease_until = NULL, updated_at = $3,
                         progress = CASE WHEN $4 THEN 1 ELSE progress END
         WHERE id = $5 AND attempt = $6 AND state = 'running'",
    )
    .bind(state.as_str())
    .bind(message)
    .bind(now_millis())
    .bind(state == JobState::Succeeded)
    .bind(id)
    .bind(attempt)
    .execute(pool)
    .await?
    .rows_affected();
    Ok(updated == 1)
}

pub(crate) async fn cancel_job(pool: &DbPool, id: i64) -> Result<bool> {
    let updated = sqlx::query(
        "UPDATE jobs SET state = 'cancelled', lease_until = NULL, updated_at = $1
         WHERE id = $2 AND state IN ('queued', 'running')",
    )
    .bind(now_millis())
    .bind(id)
    .execute(pool)
    .await?
    .rows_affected();
    if updated == 0 && get_job(pool, id).await?.is_none() {
        return Err(StoreError::not_found("job", id));
    }
    Ok(updated == 1)
}
