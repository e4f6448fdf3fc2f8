//! The PostgreSQL catalog, for teams that run several `fovea serve` replicas and `fovea worker` processes against
//! one shared database. Same schema and behaviour as the SQLite catalog (the same test suite runs on both).
//!
//! Consistency: SQLite runs one writer at a time, and the catalog's multi-statement writes (merges, promotions,
//! label appends that read the previous label) were written for that. Here every such write takes one
//! transaction-scoped advisory lock first ([`begin_write`]), so they still run one at a time and see each other
//! whole; single-row writes and reads run concurrently. It also makes label ids commit in id order, which the
//! replicas rely on: a replica folding `labels_since(seq)` never skips a label that commits late with a lower id.
//! Job claims use `FOR UPDATE SKIP LOCKED`, so workers never wait on each other's claims.

#[cfg(test)]
pub(crate) mod test_backend;
// Queries and row mappings, shared with the other backend (src/sql/mod.rs).
#[allow(clippy::duplicate_mod)]
#[macro_use]
#[path = "../sql/mod.rs"]
mod sql;

// The shared catalog suite, compiled once per backend on purpose.
#[cfg(test)]
#[allow(clippy::duplicate_mod)]
#[path = "../catalog_tests/mod.rs"]
mod tests;

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres, Transaction};

type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

use self::sql::{
    bulk, classes, collections, embeddings, hygiene, images, insight, jobs, labels, models, transactions, users,
};
use crate::catalog::{JobStore, LabelStore, RegistryStore, UserStore};
use crate::collections::*;
use crate::error::Result;
use crate::hygiene::{HygieneStore, ImageHash};
use crate::insight::*;
use crate::model::*;

/// Connections per process: replicas and workers each hold a pool, so this stays well under PostgreSQL's default
/// of 100 connections for a handful of processes.
const MAX_CONNECTIONS: u32 = 10;
/// The advisory lock key every serialised write takes (any constant; "fovea" in ASCII).
const WRITER_LOCK: i64 = 0x0066_6f76_6561;

#[derive(Clone, Debug)]
pub struct PgCatalog {
    pool: PgPool,
}

impl PgCatalog {
    /// Connects to `postgres://user:password@host:port/database` and runs the migrations (concurrent openers are
    /// safe: sqlx's PostgreSQL migrator holds an advisory lock while it migrates).
    pub async fn open(url: &str) -> Result<Self> {
        let options = PgConnectOptions::from_str(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await?;
        Migrator::new(TranslatedMigrations).await?.run(&pool).await?;
        Ok(Self { pool })
    }

    /// A classification in one transaction (PostgreSQL groups concurrent commits by itself): the image (a no-op
    /// when known), its embedding and the log entry.
    async fn record(
        &self,
        image: NewImage,
        embedding: Option<(&str, &[f32])>,
        txn: NewTransaction,
    ) -> Result<(ImageRecord, bool, i64)> {
        let mut tx = self.pool.begin().await?;
        let image_id = image.id.clone();
        let (record, created) = images::put_image(&mut tx, image).await?;
        if let Some((backbone, vector)) = embedding {
            embeddings::put_embedding(&mut tx, &image_id, backbone, vector).await?;
        }
        let id = transactions::log_transaction(&mut tx, txn).await?;
        tx.commit().await?;
        Ok((record, created, id))
    }

    /// Waits for in-flight queries and closes every connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The pool, for the label-log listener.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

// What the shared SQL (src/sql) is compiled against here.
type Db = Postgres;
type DbPool = PgPool;
type DbRow = sqlx::postgres::PgRow;
type DbConnection = sqlx::PgConnection;
/// Workers claiming at once take different jobs and never wait on each other.
const CLAIM_LOCK: &str = " FOR UPDATE SKIP LOCKED";

/// PostgreSQL's schema is the SQLite migrations with their three SQLite-only type names translated, so each
/// migration is written once and the two schemas cannot drift apart. (Every integer becomes BIGINT, so both backends
/// decode the same Rust types.)
#[derive(Debug)]
struct TranslatedMigrations;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations");

fn to_postgres(sql: &str) -> String {
    sql.replace("INTEGER PRIMARY KEY AUTOINCREMENT", "BIGSERIAL PRIMARY KEY")
        .replace("INTEGER", "BIGINT")
        .replace("BLOB", "BYTEA")
}

impl<'s> MigrationSource<'s> for TranslatedMigrations {
    fn resolve(self) -> BoxFuture<'s, std::result::Result<Vec<Migration>, BoxDynError>> {
        Box::pin(async {
            Ok(SQLITE_MIGRATIONS
                .iter()
                .map(|m| {
                    let sql = std::borrow::Cow::Owned(to_postgres(&m.sql));
                    Migration::new(m.version, m.description.clone(), m.migration_type, sql, m.no_tx)
                })
                .collect())
        })
    }
}

/// Opens a transaction that runs alone among the catalog's serialised writes (see the module comment).
async fn begin_write(pool: &PgPool) -> Result<Transaction<'static, Postgres>> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(WRITER_LOCK).execute(&mut *tx).await?;
    Ok(tx)
}

/// PostgreSQL spells "no limit" as `LIMIT NULL`.
fn sql_limit(limit: Option<u32>) -> Option<i64> {
    limit.map(i64::from)
}

impl_catalog_seams!(PgCatalog);
