//! The SQLite catalog: one file (plus its WAL), good for a single machine up to millions of images.
//!
//! Durability: WAL journal with `synchronous=FULL`, so a write is fsynced before its `await` returns
//! and survives `kill -9` or power loss once acknowledged. Every multi-statement write runs in a
//! `BEGIN IMMEDIATE` transaction: it takes the write lock up front, so two writers queue on the busy
//! timeout instead of one failing with SQLITE_BUSY when it tries to upgrade a read lock.

mod group_commit;
mod wal;
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
#[cfg(test)]
mod tests_sqlite;

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;

use self::sql::{
    bulk, classes, collections, embeddings, hygiene, images, insight, jobs, labels, models, transactions, users,
};
use crate::catalog::{JobStore, LabelStore, RegistryStore, UserStore};
use crate::collections::*;
use crate::error::{Result, StoreError};
use crate::hygiene::{HygieneStore, ImageHash};
use crate::insight::*;
use crate::model::*;

/// How long a writer waits for another writer's lock before giving up with an error.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Readers run concurrently under WAL; writes are serialised by SQLite itself.
const MAX_CONNECTIONS: u32 = 8;

/// The write-lock-first transaction opener; see the module comment.
const BEGIN_IMMEDIATE: &str = "BEGIN IMMEDIATE";

// What the shared SQL (src/sql) is compiled against here.
type Db = sqlx::Sqlite;
type DbPool = SqlitePool;
type DbRow = sqlx::sqlite::SqliteRow;
type DbConnection = sqlx::SqliteConnection;
/// A claim's subquery needs no row lock: SQLite runs one writer at a time.
const CLAIM_LOCK: &str = "";

/// Opens a transaction holding the write lock (see the module comment).
async fn begin_write(pool: &SqlitePool) -> Result<sqlx::Transaction<'static, Db>> {
    Ok(pool.begin_with(BEGIN_IMMEDIATE).await?)
}

#[derive(Clone)]
pub struct SqliteCatalog {
    pool: SqlitePool,
    /// Classifications that arrive together share one commit (see [`group_commit`]).
    group: std::sync::Arc<group_commit::GroupCommit>,
    /// Keeps the WAL file allocated for the catalog's life (see [`wal`]); none in memory.
    _wal: Option<std::sync::Arc<wal::WalKeeper>>,
}

impl std::fmt::Debug for SqliteCatalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteCatalog").field("pool", &self.pool).finish_non_exhaustive()
    }
}

impl SqliteCatalog {
    /// Opens (creating if missing) the catalog at a file path or a `sqlite:` URL, and runs the
    /// embedded migrations.
    pub async fn open(path_or_url: &str) -> Result<Self> {
        let options = if path_or_url.starts_with("sqlite:") {
            SqliteConnectOptions::from_str(path_or_url)?
        } else {
            SqliteConnectOptions::new().filename(path_or_url)
        };
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        // sqlx's SQLite migrator takes no lock, and switching a new file to WAL needs it alone: two processes
        // opening one fresh catalog at once (a CLI listing while `identify` starts) would both apply migration 1
        // and one would fail. An exclusive lock on a file beside the database serialises the opening.
        let file = options.get_filename().to_owned();
        let in_memory = file.as_os_str() == ":memory:" || file.as_os_str().is_empty();
        let _opening = if in_memory { None } else { Some(OpeningLock::take(&file).await?) };
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            // sqlx pings a pooled connection before lending it, by default: for SQLite that is one more round trip
            // to the connection's worker thread and back before every query (two thread switches; a cache lookup
            // took 95 us with it, 62 us without, on a 2-core machine). An in-process SQLite connection has no
            // network between it and its file that could break it; a failing query reports itself.
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await?;
        let mut catalog = Self::migrated(pool).await?;
        if !in_memory {
            catalog._wal = Some(std::sync::Arc::new(wal::WalKeeper::open(&options, &file).await?));
        }
        Ok(catalog)
    }

    /// A private in-memory catalog for tests. It lives in one connection that the pool never closes,
    /// because every new connection to `:memory:` would be a different, empty database.
    pub async fn in_memory() -> Result<Self> {
        let options = SqliteConnectOptions::from_str("sqlite::memory:")?.foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await?;
        Self::migrated(pool).await
    }

    async fn migrated(pool: SqlitePool) -> Result<Self> {
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Self { pool, group: Default::default(), _wal: None })
    }

    /// A classification in one transaction, so one fsync instead of three (the image row, its fresh embedding, the
    /// log entry), shared with whatever other classifications are waiting to commit.
    async fn record(
        &self,
        image: NewImage,
        embedding: Option<(&str, &[f32])>,
        txn: NewTransaction,
    ) -> Result<(ImageRecord, bool, i64)> {
        let embedding = embedding.map(|(backbone, vector)| (backbone.to_owned(), vector.to_vec()));
        self.group.record(&self.pool, group_commit::Classification { image, embedding, txn }).await
    }

    /// Waits for in-flight queries and closes every connection (checkpointing the WAL).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// An exclusive advisory lock on `<catalog>.lock`, held while one process connects and migrates; the OS
/// drops it when the file closes, even if the process is killed.
struct OpeningLock(#[allow(dead_code)] std::fs::File);

impl OpeningLock {
    async fn take(catalog: &std::path::Path) -> Result<Self> {
        let mut path = catalog.as_os_str().to_owned();
        path.push(".lock");
        let path = std::path::PathBuf::from(path);
        let task = tokio::task::spawn_blocking(move || {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .map_err(|e| StoreError::io(format!("opening {}", path.display()), e))?;
            file.lock().map_err(|e| StoreError::io(format!("locking {}", path.display()), e))?;
            Ok(Self(file))
        });
        task.await.map_err(|e| StoreError::io("waiting for the catalog lock", std::io::Error::other(e)))?
    }
}

/// SQLite spells "no limit" as -1.
fn sql_limit(limit: Option<u32>) -> i64 {
    limit.map_or(-1, i64::from)
}

impl_catalog_seams!(SqliteCatalog);

/// How the shared catalog suite reaches this backend.
#[cfg(test)]
mod test_backend {
    use std::sync::Arc;

    use super::SqliteCatalog;
    use crate::Catalog;

    /// A private in-memory catalog.
    pub async fn quick() -> Arc<dyn Catalog> {
        Arc::new(SqliteCatalog::in_memory().await.unwrap())
    }

    /// A catalog file that several catalogs (standing for processes) can open.
    pub struct Store {
        _dir: tempfile::TempDir,
        path: String,
    }

    impl Store {
        pub async fn fresh() -> Store {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("fovea.db").to_str().unwrap().to_owned();
            Store { _dir: dir, path }
        }

        pub async fn open(&self) -> Arc<dyn Catalog> {
            Arc::new(SqliteCatalog::open(&self.path).await.unwrap())
        }
    }
}
