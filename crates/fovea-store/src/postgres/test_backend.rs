//! How the shared catalog suite reaches PostgreSQL: `FOVEA_TEST_POSTGRES` names a server the tests may create
//! databases on (scripts/test.sh starts a throwaway cluster and sets it); each test gets a database of its own.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use sqlx::Connection;

use super::PgCatalog;
use crate::Catalog;

/// The admin URL of the test server; a missing one fails the test, never skips it.
pub fn server_url() -> String {
    std::env::var("FOVEA_TEST_POSTGRES").unwrap_or_else(|_| {
        panic!(
            "FOVEA_TEST_POSTGRES is not set: run the tests with scripts/test.sh, which starts a throwaway PostgreSQL"
        )
    })
}

/// Creates an empty database on the test server and returns its URL.
pub async fn fresh_database() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let admin = server_url();
    let name = format!("fovea_test_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
    let mut conn = sqlx::PgConnection::connect(&admin).await.expect("connect to the test PostgreSQL");
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name}")).execute(&mut conn).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await.unwrap();
    conn.close().await.unwrap();
    // Same server, other database: the path is the database name.
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(base, _)| base);
    format!("{base}/{name}")
}

pub async fn quick() -> Arc<dyn Catalog> {
    Store::fresh().await.open().await
}

/// A database several catalogs (standing for processes) can open.
pub struct Store {
    url: String,
}

impl Store {
    pub async fn fresh() -> Store {
        Store { url: fresh_database().await }
    }

    pub async fn open(&self) -> Arc<dyn Catalog> {
        Arc::new(PgCatalog::open(&self.url).await.unwrap())
    }
}
