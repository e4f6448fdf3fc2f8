//! Durable state of fovea: the [`Catalog`] of images, classes, labels, predictions, users, model
//! versions and jobs (SQLite on one machine, PostgreSQL when several processes share it), and the [`Blobs`] store that
//! holds image bytes by content hash (a local directory, or an S3-compatible bucket).

pub mod blobs;
pub mod catalog;
pub mod collections;
mod columns;
pub mod error;
pub mod hygiene;
pub mod insight;
pub mod model;
pub mod postgres;
pub mod sqlite;

pub use blobs::{blob_key_for, open_blobs, Blobs, LocalBlobs, S3Blobs};
pub use catalog::{Catalog, JobStore, LabelStore, RegistryStore, UserStore};
pub use collections::*;
pub use error::{Result, StoreError};
pub use hygiene::{HygieneStore, ImageHash};
pub use insight::*;
pub use model::*;
pub use postgres::PgCatalog;
pub use sqlite::SqliteCatalog;

use std::sync::Arc;

/// Opens the catalog a URL names: `postgres://…` (or `postgresql://…`), or SQLite by `sqlite:` URL or file path.
pub async fn open_catalog(url: &str) -> Result<Arc<dyn Catalog>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Arc::new(PgCatalog::open(url).await?));
    }
    if let Some((scheme, _)) = url.split_once("://").filter(|(scheme, _)| *scheme != "sqlite") {
        return Err(StoreError::Invalid(format!(
            "catalog URL {url:?}: unknown scheme {scheme:?} (expected postgres://… or a SQLite file)"
        )));
    }
    Ok(Arc::new(SqliteCatalog::open(url).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn catalog_urls_choose_the_backend() {
        assert!(matches!(open_catalog("mysql://db/fovea").await, Err(StoreError::Invalid(_))));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fovea.db");
        let class = open_catalog(path.to_str().unwrap()).await.unwrap().create_class("Cat").await.unwrap();
        let by_url = open_catalog(&format!("sqlite://{}", path.display())).await.unwrap();
        assert_eq!(by_url.get_class(class.id).await.unwrap().unwrap().name, "Cat");
        let pg = open_catalog(&postgres::test_backend::fresh_database().await).await.unwrap();
        assert_eq!(pg.list_classes().await.unwrap().len(), 1, "a fresh PostgreSQL catalog, migrated");
    }
}
