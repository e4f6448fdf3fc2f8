//! Durable state of fovea: the [`Catalog`] of images, classes, labels, predictions, users, model
//! versions and jobs (SQLite on one machine, PostgreSQL when several processes share it), and the [`Blobs`] store that
//! holds image bytes by content hash (a local directory, or S3 with the `s3` feature).

pub mod blobs;
pub mod catalog;
pub mod collections;
pub mod error;
pub mod hygiene;
pub mod insight;
pub mod model;
pub mod postgres;
pub mod sqlite;

pub use blobs::{blob_key_for, Blobs, LocalBlobs};
#[cfg(feature = "s3")]
pub use blobs::{S3Blobs, S3Config};
pub use catalog::Catalog;
pub use collections::*;
pub use error::{Result, StoreError};
pub use hygiene::{HygieneStore, ImageHash};
pub use insight::*;
pub use model::*;
pub use postgres::PgCatalog;
pub use sqlite::SqliteCatalog;
