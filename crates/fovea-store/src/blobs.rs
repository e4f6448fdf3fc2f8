//! Image bytes live outside the database, in an object store keyed by content hash. The catalog only
//! holds keys, so the bytes can move to S3 without touching a single row.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
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
    /// Stores `bytes` under `key` unless something is there already (content-addressed keys name the same bytes);
    /// true if this call stored them.
    async fn put_if_absent(&self, key: &str, bytes: Bytes) -> Result<bool> {
        if self.exists(key).await? {
            return Ok(false);
        }
        self.put(key, bytes).await?;
        Ok(true)
    }
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

/// Blobs in a local directory, one plain file per key. A put writes a staging file in [`STAGING_DIR`], fsyncs it,
/// renames it into place and fsyncs the directory (and the parents of any directory the put made): a crash leaves
/// either no object or the whole one (never a torn file under the final name, which a later upload of the same
/// content would take as stored), and the catalog row that points at the blob, committed right after, never
/// outlives its bytes. A crash between the write and the rename leaves a staging file; opening the store removes
/// those of processes that are gone (see [`remove_orphans`]).
///
/// Puts are written here rather than through `object_store`'s local backend: that backend renames before anything
/// is synced, and its write, rename and our syncs took four trips through the blocking pool, each a thread wake-up
/// that took a core from the network a request was waiting on. Reads go through `object_store`.
#[derive(Debug, Clone)]
pub struct LocalBlobs {
    store: Arc<LocalFileSystem>,
    staging: Arc<std::path::Path>,
}

/// The folder, inside the blob directory, where puts write before renaming into place. One folder rather than a
/// file beside each target, so that what a crash leaves behind is found without walking every blob.
pub const STAGING_DIR: &str = ".staging";

impl LocalBlobs {
    /// Opens (creating if missing) a blob directory, removing staging files that processes now gone left behind.
    pub fn new(dir: impl AsRef<std::path::Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let staging = dir.join(STAGING_DIR);
        std::fs::create_dir_all(&staging)
            .map_err(|e| StoreError::io(format!("cannot create blob directory {}", staging.display()), e))?;
        match remove_orphans(&staging) {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, dir = %staging.display(), "removed staging files of crashed puts"),
            Err(e) => tracing::warn!(error = %e, dir = %staging.display(), "could not clean staging files"),
        }
        let store = LocalFileSystem::new_with_prefix(dir)?;
        Ok(Self { store: Arc::new(store), staging: staging.into() })
    }

    /// The file that holds `key`.
    fn file(&self, key: &str) -> Result<std::path::PathBuf> {
        Ok(self.store.path_to_filesystem(&location(key)?)?)
    }

    /// Runs a file operation on the blocking pool, naming the file in its error.
    async fn blocking<T: Send + 'static>(
        &self,
        path: std::path::PathBuf,
        op: impl FnOnce(&std::path::Path) -> std::io::Result<T> + Send + 'static,
    ) -> Result<T> {
        let shown = path.display().to_string();
        tokio::task::spawn_blocking(move || op(&path))
            .await
            .map_err(|e| StoreError::io("blob task", std::io::Error::other(e.to_string())))?
            .map_err(|e| StoreError::io(format!("blob {shown}"), e))
    }
}

/// A staging file's name in `staging_dir`, unique within this process and across processes: `.NAME.PID-N.staging`.
fn staging_name(staging_dir: &std::path::Path, target: &std::path::Path) -> std::path::PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    staging_dir.join(format!(".{name}.{}-{n}.staging", std::process::id()))
}

/// The process that wrote a staging file, from its name.
fn staging_writer(file_name: &str) -> Option<u32> {
    let stem = file_name.strip_suffix(".staging")?;
    let (_, pid_n) = stem.rsplit_once('.')?;
    pid_n.split_once('-')?.0.parse().ok()
}

/// A staging file younger than this is never removed: a writer in another PID namespace (another container on
/// the same volume) looks gone from here, but any put of its still running has long finished by then.
const ORPHAN_AGE: std::time::Duration = std::time::Duration::from_secs(60);

/// Removes the staging files in `staging` whose writer is no longer running and that are older than
/// [`ORPHAN_AGE`]; returns how many. Several processes may share a blob directory, so a live writer's files stay.
/// Liveness is read from /proc; where there is none, nothing is removed.
fn remove_orphans(staging: &std::path::Path) -> std::io::Result<usize> {
    let proc = std::path::Path::new("/proc");
    if !proc.join("self").exists() {
        return Ok(0);
    }
    let mut removed = 0;
    for entry in std::fs::read_dir(staging)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(staging_writer) else { continue };
        let age = entry.metadata()?.modified()?.elapsed().unwrap_or_default();
        if pid != std::process::id() && !proc.join(pid.to_string()).exists() && age >= ORPHAN_AGE {
            std::fs::remove_file(entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Writes `bytes` to `target` durably (see [`LocalBlobs`]), through a staging file in `staging_dir` (same file
/// system).
fn write_durably(staging_dir: &std::path::Path, target: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = target.parent().ok_or_else(|| std::io::Error::other("a blob path has a parent"))?;
    let created = create_dirs(dir)?;
    let staging = staging_name(staging_dir, target);
    let written = (|| {
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).open(&staging)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&staging, target)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&staging);
        return Err(e);
    }
    sync_dir(dir)?;
    // A directory made for this blob is reachable after a crash only once its own entry is synced too. Synced after
    // the blob, not before: a journalling file system commits the new directories with the blob's first sync, so
    // these find nothing left to write.
    for made in created {
        if let Some(parent) = made.parent() {
            sync_dir(parent)?;
        }
    }
    Ok(())
}

/// Creates `dir` and any missing parents, like `create_dir_all`; returns the directories it made (or found
/// made by a concurrent put), outermost first.
fn create_dirs(dir: &std::path::Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    let mut missing = Vec::new();
    let mut at = Some(dir);
    while let Some(d) = at.filter(|d| !d.as_os_str().is_empty() && !d.is_dir()) {
        missing.push(d.to_path_buf());
        at = d.parent();
    }
    let mut made = Vec::new();
    for d in missing.into_iter().rev() {
        match std::fs::create_dir(&d) {
            Ok(()) => {}
            // Another put made it meanwhile, and may not have synced its entry yet: this put syncs it as well.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && d.is_dir() => {}
            Err(e) => return Err(e),
        }
        made.push(d);
    }
    Ok(made)
}

/// Syncs a directory's entries. Directories can be opened and fsynced on Unix; elsewhere this is best effort.
fn sync_dir(dir: &std::path::Path) -> std::io::Result<()> {
    match std::fs::File::open(dir) {
        Ok(d) => d.sync_all(),
        Err(_) => Ok(()),
    }
}

#[async_trait]
impl Blobs for LocalBlobs {
    async fn put(&self, key: &str, bytes: Bytes) -> Result<()> {
        let staging = self.staging.clone();
        self.blocking(self.file(key)?, move |path| write_durably(&staging, path, &bytes)).await
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

    /// One trip through the blocking pool for the check and the write.
    async fn put_if_absent(&self, key: &str, bytes: Bytes) -> Result<bool> {
        let staging = self.staging.clone();
        self.blocking(self.file(key)?, move |path| {
            if path.try_exists()? {
                return Ok(false);
            }
            write_durably(&staging, path, &bytes).map(|()| true)
        })
        .await
    }
}

/// Blobs in an S3-compatible bucket, under an optional key prefix. S3 puts are atomic by nature: an object appears
/// whole or not at all, and a put is acknowledged only once the object is durable.
#[derive(Debug, Clone)]
pub struct S3Blobs {
    store: Arc<dyn ObjectStore>,
}

impl S3Blobs {
    /// Opens `s3://bucket[/prefix]`. Endpoint, region and credentials come from the standard AWS variables
    /// (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_ALLOW_HTTP`), so an
    /// S3-compatible server (MinIO, Ceph, moto) is one variable away.
    pub fn open(url: &str) -> Result<Self> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| StoreError::Invalid(format!("blob store URL {url:?}: expected s3://bucket[/prefix]")))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(StoreError::Invalid(format!("blob store URL {url:?} names no bucket")));
        }
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
        // A plain-HTTP endpoint is a local test or on-premises server; say so rather than fail on TLS.
        if std::env::var("AWS_ENDPOINT_URL")
            .or_else(|_| std::env::var("AWS_ENDPOINT"))
            .is_ok_and(|e| e.starts_with("http://"))
        {
            builder = builder.with_allow_http(true);
        }
        if std::env::var("AWS_REGION").is_err() && std::env::var("AWS_DEFAULT_REGION").is_err() {
            builder = builder.with_region("us-east-1");
        }
        let bucket_store: Arc<dyn ObjectStore> = Arc::new(builder.build()?);
        let prefix = prefix.trim_matches('/');
        let store: Arc<dyn ObjectStore> =
            if prefix.is_empty() { bucket_store } else { Arc::new(PrefixStore::new(bucket_store, location(prefix)?)) };
        Ok(Self { store })
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

/// Opens the blob store a URL names: `s3://bucket[/prefix]`, or a local folder (`file:///path` or a plain path).
pub fn open_blobs(url: &str) -> Result<Arc<dyn Blobs>> {
    if url.starts_with("s3://") {
        return Ok(Arc::new(S3Blobs::open(url)?));
    }
    if let Some((scheme, _)) = url.split_once("://").filter(|(scheme, _)| *scheme != "file") {
        return Err(StoreError::Invalid(format!(
            "blob store URL {url:?}: unknown scheme {scheme:?} (expected s3://bucket[/prefix] or a folder)"
        )));
    }
    Ok(Arc::new(LocalBlobs::new(url.strip_prefix("file://").unwrap_or(url))?))
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

    #[test]
    fn a_put_names_the_directories_it_made_so_their_entries_are_synced() {
        let dir = tempfile::tempdir().unwrap();
        let leaf = dir.path().join("images/ab/cd");
        let made = create_dirs(&leaf).unwrap();
        assert_eq!(made, vec![dir.path().join("images"), dir.path().join("images/ab"), leaf.clone()]);
        assert!(leaf.is_dir());
        assert!(create_dirs(&leaf).unwrap().is_empty(), "nothing new to sync the second time");
        let sibling = dir.path().join("images/ab/ef");
        assert_eq!(create_dirs(&sibling).unwrap(), vec![sibling]);
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
        assert_eq!(std::fs::read_dir(dir.path().join("blobs").join(STAGING_DIR)).unwrap().count(), 0);
        // Content-addressed: a second put of the same content writes nothing and says so.
        assert!(!blobs.put_if_absent(&key, Bytes::from_static(b"pixels")).await.unwrap());
        assert_eq!(blobs.get(&key).await.unwrap(), Bytes::from_static(b"pixels"));
        let fresh = blob_key_for(&sha256_hex(b"fresh"));
        assert!(blobs.put_if_absent(&fresh, Bytes::from_static(b"fresh")).await.unwrap());
        assert_eq!(blobs.get(&fresh).await.unwrap(), Bytes::from_static(b"fresh"));

        blobs.put(&key, Bytes::from_static(b"pixels2")).await.unwrap();
        assert_eq!(blobs.get(&key).await.unwrap(), Bytes::from_static(b"pixels2"));

        blobs.delete(&key).await.unwrap();
        assert!(!blobs.exists(&key).await.unwrap());
        blobs.delete(&key).await.unwrap();
    }

    #[tokio::test]
    async fn opening_the_store_removes_staging_files_only_of_writers_that_are_gone() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = LocalBlobs::new(dir.path()).unwrap();
        let key = blob_key_for(&sha256_hex(b"kept"));
        blobs.put(&key, Bytes::from_static(b"kept")).await.unwrap();
        let staging = dir.path().join(STAGING_DIR);
        // Above the kernel's largest PID (2^22), so no process has it; and this process, which is alive.
        let gone = staging.join(format!(".{}.{}-7.staging", "a".repeat(64), 1u32 << 23));
        let alive = staging.join(format!(".{}.{}-8.staging", "b".repeat(64), std::process::id()));
        let foreign = staging.join("notes.txt");
        let young = staging.join(format!(".{}.{}-9.staging", "c".repeat(64), 1u32 << 23));
        let an_hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        for f in [&gone, &alive, &foreign, &young] {
            std::fs::write(f, b"half a photo").unwrap();
            if f != &young {
                std::fs::File::options().write(true).open(f).unwrap().set_modified(an_hour_ago).unwrap();
            }
        }
        assert_eq!(staging_writer(&gone.file_name().unwrap().to_string_lossy()), Some(1 << 23));
        let reopened = LocalBlobs::new(dir.path()).unwrap();
        assert!(!gone.exists(), "a crashed writer's staging file is removed");
        assert!(alive.exists() && foreign.exists(), "a live writer's file and files not named by a put stay");
        assert!(young.exists(), "a minute-young file may be a put in flight in another PID namespace");
        assert_eq!(reopened.get(&key).await.unwrap(), Bytes::from_static(b"kept"));
    }

    #[tokio::test]
    async fn bad_keys_are_invalid() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = LocalBlobs::new(dir.path()).unwrap();
        assert!(matches!(blobs.get("a/../b").await, Err(StoreError::Invalid(_))));
    }

    /// Creates a bucket on the test S3 server (`FOVEA_TEST_S3`, started by scripts/test.sh) and points the AWS
    /// variables at it; a missing server fails the test.
    pub(crate) fn test_bucket(name: &str) -> String {
        use std::io::{Read, Write};
        let endpoint = std::env::var("FOVEA_TEST_S3")
            .expect("FOVEA_TEST_S3 is not set: run the tests with scripts/test.sh, which starts an S3 server");
        let host = endpoint.trim_start_matches("http://").trim_end_matches('/').to_owned();
        let mut conn = std::net::TcpStream::connect(&host).expect("connect to the test S3 server");
        write!(conn, "PUT /{name} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").unwrap();
        let mut answer = String::new();
        conn.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "creating bucket {name}: {answer}");
        // Every test sets the same values, so parallel tests never see each other's.
        unsafe {
            std::env::set_var("AWS_ENDPOINT_URL", &endpoint);
            std::env::set_var("AWS_ACCESS_KEY_ID", "test");
            std::env::set_var("AWS_SECRET_ACCESS_KEY", "test");
            std::env::set_var("AWS_REGION", "us-east-1");
        }
        format!("s3://{name}")
    }

    #[tokio::test]
    async fn s3_blobs_round_trip_under_a_prefix() {
        let bucket = test_bucket("fovea-blobs-test");
        let blobs = open_blobs(&format!("{bucket}/team-a")).unwrap();
        let other = open_blobs(&format!("{bucket}/team-b")).unwrap();
        let key = blob_key_for(&sha256_hex(b"pixels"));
        assert!(!blobs.exists(&key).await.unwrap());
        assert!(matches!(blobs.get(&key).await, Err(StoreError::NotFound { .. })));
        blobs.put(&key, Bytes::from_static(b"pixels")).await.unwrap();
        assert!(blobs.exists(&key).await.unwrap());
        assert_eq!(blobs.get(&key).await.unwrap(), Bytes::from_static(b"pixels"));
        assert!(!other.exists(&key).await.unwrap(), "prefixes keep stores apart in one bucket");
        blobs.delete(&key).await.unwrap();
        assert!(!blobs.exists(&key).await.unwrap());
        blobs.delete(&key).await.unwrap();
    }

    #[test]
    fn blob_urls_are_checked() {
        assert!(matches!(open_blobs("gs://bucket"), Err(StoreError::Invalid(_))));
        assert!(matches!(open_blobs("s3://"), Err(StoreError::Invalid(_))));
        let dir = tempfile::tempdir().unwrap();
        assert!(open_blobs(&format!("file://{}", dir.path().display())).is_ok());
    }
}
