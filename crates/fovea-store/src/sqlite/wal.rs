//! Keeping the write-ahead log allocated, so a commit overwrites WAL space instead of growing the file.
//!
//! With `synchronous=FULL` every commit fsyncs the WAL. While the WAL grows, that fsync must also commit the file's
//! new size and blocks; once the WAL has been reset after a checkpoint, commits overwrite space the file already has
//! and the fsync costs less than half (measured here: 0.35 against 0.56 ms for a classification-sized commit). A new
//! catalog, or one whose last connection closed (SQLite deletes the WAL then), would pay the growing price for its
//! first thousand pages of writes. So at open the WAL is grown past the auto-checkpoint size by a transaction that
//! spills pages and rolls back (nothing reaches the database), its file is synced once, and one connection stays
//! open for the catalog's life so the file is never deleted under a running server.

use std::path::{Path, PathBuf};

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, SqliteConnection};

use crate::error::Result;

/// Pages the WAL is grown to: SQLite's auto-checkpoint runs at 1000 pages, so a WAL this long is reset before its end
/// and then only overwritten.
const PAGES: u32 = 1100;

/// A connection that holds the WAL open (see the module comment); it does nothing else.
pub(super) struct WalKeeper(#[allow(dead_code)] SqliteConnection);

impl WalKeeper {
    /// Opens the keeping connection and grows the WAL if it is shorter than [`PAGES`] pages.
    pub(super) async fn open(options: &SqliteConnectOptions, database: &Path) -> Result<Self> {
        let mut conn = options.connect().await?;
        let wal = wal_path(database);
        let page_size: i64 = sqlx::query_scalar("PRAGMA page_size").fetch_one(&mut conn).await?;
        let wanted = u64::from(PAGES) * (page_size.max(512) as u64 + 24);
        // Only a speed-up: a catalog that cannot grow its WAL (a nearly full disk) opens all the same, and the
        // growing transaction's rollback leaves the database as it was.
        if std::fs::metadata(&wal).map_or(0, |m| m.len()) < wanted && grow(&mut conn, page_size).await.is_ok() {
            // The spilled pages were written without a sync; sync them now rather than in the next commit's fsync.
            let _ = std::fs::File::open(&wal).and_then(|f| f.sync_all());
        }
        Ok(WalKeeper(conn))
    }
}

/// Writes [`PAGES`] pages into the WAL without committing them: a page cache of 16 pages makes SQLite spill a large
/// uncommitted write to the WAL, and the rollback leaves those frames unused (they sit past the last commit).
async fn grow(conn: &mut SqliteConnection, page_size: i64) -> Result<()> {
    sqlx::query("PRAGMA cache_size = 16").execute(&mut *conn).await?;
    // Dropped on an error, the transaction rolls back.
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    sqlx::query("CREATE TABLE fovea_wal_growth (page BLOB)").execute(&mut *tx).await?;
    sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $1)
         INSERT INTO fovea_wal_growth SELECT zeroblob($2) FROM n",
    )
    .bind(i64::from(PAGES))
    .bind(page_size - 200)
    .execute(&mut *tx)
    .await?;
    tx.rollback().await?;
    Ok(())
}

fn wal_path(database: &Path) -> PathBuf {
    let mut path = database.as_os_str().to_owned();
    path.push("-wal");
    PathBuf::from(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sqlite::SqliteCatalog;

    #[tokio::test]
    async fn the_wal_is_grown_once_and_kept_and_nothing_reaches_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fovea.db");
        let catalog = SqliteCatalog::open(path.to_str().unwrap()).await.unwrap();
        let wal = wal_path(&path);
        let grown = std::fs::metadata(&wal).unwrap().len();
        assert!(grown >= u64::from(PAGES) * 4096, "WAL of {grown} bytes");
        let tables: i64 = sqlx::query_scalar("SELECT count(*) FROM sqlite_schema WHERE name = 'fovea_wal_growth'")
            .fetch_one(&catalog.pool)
            .await
            .unwrap();
        assert_eq!(tables, 0);
        // A second catalog on the same file finds the WAL long enough and leaves it as it is.
        let again = SqliteCatalog::open(path.to_str().unwrap()).await.unwrap();
        assert_eq!(std::fs::metadata(&wal).unwrap().len(), grown);
        drop(again);
        catalog.close().await;
        // The keeper still holds the file open after the pool closed.
        assert!(wal.exists());
    }
}
