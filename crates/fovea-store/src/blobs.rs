//! Image bytes live outside the database, in an object store keyed by content hash. The catalog only
//! holds keys, so the bytes can move to S3 without touching a single row.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, PutPayload};

use crate::error::{Result, StoreError};

/// Where an image's bytes live: `images/ab/cd/abcd…`. Two levels of fan-out keep any one directory
/// to at most 65 536 entries on a local disk.
pub fn blob_key_for(sha256_hex: &str) -> String {
    match (sha256_hex.get(0..2), sha256_hex.get(2..4)) {
        (Some(a), Some(b)) => format!("images/{a}/{b}/{sha256_hex}"),
        _ => format!("images/{sha256_hex}"),
    }
}

#[async_trait]
pub trait Blobs: Send + Sync {
    /// Stores `bytes` under `key`, replacing what was there. Readers never see a partial object.
    async fn put(&self, key: &str, bytes: Bytes) -> Result<()>;
    /// The bytes under `key`, or `NotFound`.
    async fn get(&self, key: &str) -> Result<Bytes>;
    async fn exists(&self, key: &str) -> Result<bool>;
    /// Removes `key`; removing a missing key is not an error.
    async fn delete(&self, key: &str) -> Result<()>;
}

fn location(key: &str) -> Result<Path> {
    Path::parse(key).map_err(|e| StoreError::Invalid(format!("bad blob key {key:?}: {e}")))
}

fn map_missing(err: object_store::Error, key: &str) -> StoreError {
    match err {
        object_store::Error::NotFound { .. } => StoreError::not_found("blob", key),
        other => other.into(),
    }
}

/// The operations every object store backend shares.
async fn get_from(store: &dyn ObjectStore, key: &str) -> Result<Bytes> {
    let result = store.get(&location(key)?).await.map_err(|e| map_missing(e, key))?;
    result.bytes().await.map_err(|e| map_missing(e, key))
}

async fn exists_in(store: &dyn ObjectStore, key: &str) -> Result<bool> {
    match store.head(&location(key)?).await {
        Ok(_) => Ok(true),
        Err(object_store::Error::NotFound { .. }) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

async fn delete_from(store: &dyn ObjectStore, key: &str) -> Result<()> {
    match store.delete(&location(key)?).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Blobs in a local directory. `object_store`'s local backend writes each put to a staging file
/// beside the target and renames it into place, so a crash mid-write never leaves a torn object; on
/// top of that we fsync the file and its directory, because the catalog row that points at the blob
/// is committed (and fsynced) right after, and must never outlive the bytes it references.
#[derive(Debug, Clone)]
pub struct LocalBlobs {
    store: Arc<LocalFileSystem>,
}

impl LocalBlobs {
    /// Opens (creating if missing) a blob directory.
    pub fn new(dir: impl AsRef<std::path::Path>) -> Result<Self> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::io(format!("cannot create blob directory {}", dir.display()), e))?;
        let store = LocalFileSystem::new_with_prefix(dir)?.with_automatic_cleanup(true);
        Ok(Self { store: Arc::new(store) })
    }
}

/// Flushes a just-renamed file and the directory entry that names it.
fn sync_file_and_dir(path: &std::path::Path) -> std::io::Result<()> {
    std::fs::File::open(path)?.sync_all()?;
    if let Some(parent) = path.parent() {
        // Directories can be opened and fsynced on Unix; elsewhere this is best effort.
        if let Ok(dir) = std::fs::File::open(parent) {
            let _ = dir.sync_all();
        }
    }
    Ok(())
}

#[async_trait]
impl Blobs for LocalBlobs {
    async fn put(&self, key: &str, bytes: Bytes) -> Result<()> {
        let location = location(key)?;
        self.store.put(&location, PutPayload::from(bytes)).await?;
        let path = self.store.path_to_filesystem(&location)?;
        let shown = path.display().to_string();
        tokio::task::spawn_blocking(move || sync_file_and_dir(&path))
            .await
            .map_err(|e| StoreError::io("fsync task", std::io::Error::other(e.to_string())))?
            .map_err(|e| StoreError::io(format!("fsync {shown}"), e))
    }

    async fn get(&self, key: &str) -> Result<Bytes> {
        get_from(self.store.as_ref(), key).await
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        exists_in(self.store.as_ref(), key).await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        delete_from(self.store.as_ref(), key).await
    }
}

#[cfg(feature = "s3")]
pub use s3::{S3Blobs, S3Config};

#[cfg(feature = "s3")]
mod s3 {
    use super::*;
    use object_store::aws::{AmazonS3, AmazonS3Builder};

    /// Where an S3-compatible bucket is and how to sign requests to it.
    #[derive(Clone, Default)]
    pub struct S3Config {
        /// e.g. `http://localhost:9000` for MinIO; `None` means AWS itself.
        pub endpoint: Option<String>,
        pub bucket: String,
        pub region: String,
        pub access_key_id: String,
        pub secret_access_key: String,
        /// Needed for plain-HTTP endpoints such as a local MinIO.
        pub allow_http: bool,
    }

    // Hand-written so the secret never reaches a log line.
    impl std::fmt::Debug for S3Config {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("S3Config")
                .field("endpoint", &self.endpoint)
                .field("bucket", &self.bucket)
                .field("region", &self.region)
                .field("access_key_id", &self.access_key_id)
                .field("secret_access_key", &"<redacted>")
                .field("allow_http", &self.allow_http)
                .finish()
        }
    }

    /// Blobs in an S3-compatible bucket. S3 puts are atomic by nature: an object appears whole or not at all.
    #[derive(Debug, Clone)]
    pub struct S3Blobs {
        store: Arc<AmazonS3>,
    }

    impl S3Blobs {
        pub fn new(config: &S3Config) -> Result<Self> {
            let mut builder = AmazonS3Builder::new()
                .with_bucket_name(&config.bucket)
                .with_region(&config.region)
                .with_access_key_id(&config.access_key_id)
                .with_secret_access_key(&config.secret_access_key)
                .with_allow_http(config.allow_http);
            if let Some(endpoint) = &config.endpoint {
                builder = builder.with_endpoint(endpoint);
            }
            Ok(Self { store: Arc::new(builder.build()?) })
        }
    }

    #[async_trait]
    impl Blobs for S3Blobs {
        async fn put(&self, key: &str, bytes: Bytes) -> Result<()> {
            self.store.put(&location(key)?, PutPayload::from(bytes)).await?;
            Ok(())
        }

        async fn get(&self, key: &str) -> Result<Bytes> {
            get_from(self.store.as_ref(), key).await
        }

        async fn exists(&self, key: &str) -> Result<bool> {
            exists_in(self.store.as_ref(), key).await
        }

        async fn delete(&self, key: &str) -> Result<()> {
            delete_from(self.store.as_ref(), key).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::sha256_hex;

    #[test]
    fn keys_fan_out_by_hash_prefix() {
        let id = sha256_hex(b"pixels");
        assert_eq!(blob_key_for(&id), format!("images/{}/{}/{id}", &id[0..2], &id[2..4]));
    }

    #[tokio::test]
    async fn local_blobs_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let blobs: Arc<dyn Blobs> = Arc::new(LocalBlobs::new(dir.path().join("blobs")).unwrap());
        let key = blob_key_for(&sha256_hex(b"pixels"));

        assert!(!blobs.exists(&key).await.unwrap());
        assert!(matches!(blobs.get(&key).await, Err(StoreError::NotFound { .. })));

        blobs.put(&key, Bytes::from_static(b"pixels")).await.unwrap();
        assert!(blobs.exists(&key).await.unwrap());
        assert_eq!(blobs.get(&key).await.unwrap(), Bytes::from_static(b"pixels"));
        // The object is a plain file at the expected place, with no staging file left beside it.
        let file = dir.path().join("blobs").join(&key);
        assert_eq!(std::fs::read(&file).unwrap(), b"pixels");
        assert_eq!(std::fs::read_dir(file.parent().unwrap()).unwrap().count(), 1);

        blobs.put(&key, Bytes::from_static(b"pixels2")).await.unwrap();
        assert_eq!(blobs.get(&key).await.unwrap(), Bytes::from_static(b"pixels2"));

        blobs.delete(&key).await.unwrap();
        assert!(!blobs.exists(&key).await.unwrap());
        blobs.delete(&key).await.unwrap();
    }

    #[tokio::test]
    async fn bad_keys_are_invalid() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = LocalBlobs::new(dir.path()).unwrap();
        assert!(matches!(blobs.get("a/../b").await, Err(StoreError::Invalid(_))));
    }
}
