//! One error type for the whole store, so the app maps storage failures to HTTP statuses in one place.

use thiserror::Error;

/// Everything the catalog or the blob store can fail with.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The named record does not exist (maps to 404).
    #[error("{what} not found: {id}")]
    NotFound { what: &'static str, id: String },
    /// A unique name or key is already taken (maps to 409).
    #[error("{what} already exists: {name}")]
    AlreadyExists { what: &'static str, name: String },
    /// The caller passed something the store refuses (maps to 400).
    #[error("invalid input: {0}")]
    Invalid(String),
    /// The database failed; not the caller's fault (maps to 500).
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Schema migration failed at open time.
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The blob store failed.
    #[error("blob store error: {0}")]
    Blob(#[from] object_store::Error),
    /// A local file operation failed: a directory that cannot be created, a write or an fsync that fails. Not the
    /// caller's fault (maps to 500); the message names paths, so it belongs in the log, not in an HTTP answer.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// A stored value could not be decoded (a corrupt row, or a value written by a newer version).
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

impl StoreError {
    pub(crate) fn not_found(what: &'static str, id: impl ToString) -> Self {
        StoreError::NotFound { what, id: id.to_string() }
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        StoreError::Io { context: context.into(), source }
    }

    pub(crate) fn already_exists(what: &'static str, name: impl ToString) -> Self {
        StoreError::AlreadyExists { what, name: name.to_string() }
    }
}

/// True when a database error is a UNIQUE (or PRIMARY KEY) violation; portable across SQLite and PostgreSQL.
pub(crate) fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}
