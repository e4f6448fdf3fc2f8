//! Where the http and identify parts keep their throwaway catalog and blobs, and the in-memory folder they are
//! compared against.
//!
//! Every classify is acknowledged only after its bytes and its log entry are fsynced, so on a disk with a volatile
//! write cache each request waits for cache flushes that the raw pipeline (nothing stored) never pays. Running the
//! same server a second time with its data folder on tmpfs, where fsync returns at once, says how much of the gap
//! to the raw pipeline is the disk's durable writes and how much is the server's own work. Serving itself always
//! syncs; the tmpfs run is a measurement, nothing a user can switch on.

use std::path::{Path, PathBuf};

/// A fresh folder for one part's data: under `--data-dir` (the disk the catalog will live on) or the system temp
/// folder; removed when dropped.
pub(super) fn folder(data_dir: Option<&Path>) -> anyhow::Result<tempfile::TempDir> {
    Ok(match data_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            tempfile::Builder::new().prefix("fovea-bench-").tempdir_in(dir)?
        }
        None => tempfile::Builder::new().prefix("fovea-bench-").tempdir()?,
    })
}

/// Where an in-memory comparison can run: `/dev/shm` when it is a tmpfs and `data` is not already in memory (then
/// the main run is that comparison). `None` elsewhere (no /proc, no /dev/shm).
pub(super) fn memory_folder(data: &Path) -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    memory_folder_in(&mounts, &data.canonicalize().ok()?)
}

fn memory_folder_in(mounts: &str, data: &Path) -> Option<PathBuf> {
    let shm = Path::new("/dev/shm");
    let in_memory = |p: &Path| filesystem_of(mounts, p).is_some_and(|fs| matches!(fs, "tmpfs" | "ramfs"));
    (in_memory(shm) && !in_memory(data)).then(|| shm.to_owned())
}

/// The file system type of the mount that holds `path` (absolute, without symbolic links): the entry of
/// `/proc/self/mounts` whose mount point is the longest prefix of it; the last such entry when mounts stack.
fn filesystem_of<'m>(mounts: &'m str, path: &Path) -> Option<&'m str> {
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (_device, point, fs) = (fields.next()?, fields.next()?, fields.next()?);
            // Spaces and other odd bytes in mount points are written as octal escapes.
            let point = point.replace("\\040", " ");
            path.starts_with(&point).then_some((Path::new(&point).components().count(), fs))
        })
        .fold(None, |best: Option<(usize, &str)>, (depth, fs)| match best {
            Some((d, _)) if d > depth => best,
            _ => Some((depth, fs)),
        })
        .map(|(_, fs)| fs)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTS: &str = "/dev/vda / ext4 rw,relatime 0 0\n\
        proc /proc proc rw 0 0\n\
        tmpfs /dev/shm tmpfs rw,nosuid,nodev 0 0\n\
        /dev/vdb /var/lib/fovea xfs rw 0 0\n\
        tmpfs /var/lib/fovea/cache tmpfs rw 0 0\n\
        /dev/vdc /mnt/my\\040disk ext4 rw 0 0\n\
        overlay /var/lib/fovea xfs rw 0 0\n";

    #[test]
    fn a_path_belongs_to_the_deepest_mount_that_holds_it() {
        let fs = |p: &str| filesystem_of(MOUNTS, Path::new(p));
        assert_eq!(fs("/tmp/fovea-bench-1"), Some("ext4"));
        assert_eq!(fs("/dev/shm"), Some("tmpfs"));
        assert_eq!(fs("/dev/shm/x/y"), Some("tmpfs"));
        assert_eq!(fs("/var/lib/fovea/data"), Some("xfs"));
        assert_eq!(fs("/var/lib/fovea/cache/a"), Some("tmpfs"));
        // A prefix of the name is not a parent folder.
        assert_eq!(fs("/var/lib/fovea-other"), Some("ext4"));
        assert_eq!(fs("/mnt/my disk/data"), Some("ext4"));
        assert_eq!(filesystem_of("", Path::new("/tmp")), None);
    }

    #[test]
    fn scratch_folders_go_where_they_are_asked_and_go_away() {
        let parent = tempfile::tempdir().unwrap();
        let asked = parent.path().join("bench");
        let made = folder(Some(&asked)).unwrap();
        assert!(made.path().starts_with(&asked) && made.path().is_dir());
        let path = made.path().to_owned();
        drop(made);
        assert!(!path.exists());
    }

    #[test]
    fn the_memory_comparison_runs_on_dev_shm_unless_the_data_is_in_memory_already() {
        let shm = Some(PathBuf::from("/dev/shm"));
        assert_eq!(memory_folder_in(MOUNTS, Path::new("/tmp/fovea-bench-1")), shm);
        assert_eq!(memory_folder_in(MOUNTS, Path::new("/var/lib/fovea/data")), shm);
        assert_eq!(memory_folder_in(MOUNTS, Path::new("/var/lib/fovea/cache/x")), None);
        assert_eq!(memory_folder_in(MOUNTS, Path::new("/dev/shm/fovea-bench-2")), None);
        // Without a tmpfs at /dev/shm there is nothing to compare with.
        assert_eq!(memory_folder_in("/dev/vda / ext4 rw 0 0\n", Path::new("/tmp")), None);
    }
}
