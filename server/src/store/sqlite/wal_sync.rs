//! `synchronous=FULL` with the fsync taken out of the commit, so that the next group is
//! written while this one is flushed.
//!
//! In WAL mode SQLite's `FULL` is `NORMAL` plus an fsync of the write-ahead log at every
//! commit (checkpoints, and the log header after a restart of the log, are synced in both
//! modes; with powersafe overwrite, the default, nothing is padded). So the store runs
//! `NORMAL` and the runner calls [`WalSync::sync`] after a group's commit returned and
//! before its acknowledgements: one `fdatasync` of the log covers every commit written
//! before it began, exactly what `FULL` would have synced, and an acknowledged job survives
//! a power loss as before. The fsync only leaves the writer's path.
//!
//! A failed fsync is not retried: the kernel may have dropped the pages it could not write
//! and report the next fsync clean, and a log that lost a commit in its middle loses every
//! later one on recovery. So every later sync fails too (nothing more is acknowledged) until
//! the server restarts and SQLite recovers the log from what the disk really holds.

use crate::store::seam::{BackendError, Syncer};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The log file of the database at `db`, as SQLite names it.
pub(super) fn wal_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

/// Syncs one database's write-ahead log, on up to [`FILES`] descriptors at once.
pub(super) struct WalSync {
    path: PathBuf,
    state: Mutex<State>,
}

/// Descriptors of the log: one per sync in progress (the runner runs at most
/// this many at once). Each is opened before any commit, so that a write-back error reaches
/// every one of them (Linux reports it once per open file).
const FILES: usize = 2;

/// An open descriptor of the log, and which file it is (fixed while it is open, so it is
/// read once rather than before every sync).
struct LogFile {
    file: File,
    identity: (u64, u64),
}

impl LogFile {
    fn open(path: &Path) -> std::io::Result<LogFile> {
        let file = File::open(path)?;
        let identity = identity::of_file(&file)?;
        Ok(LogFile { file, identity })
    }
}

struct State {
    /// Descriptors not in use by a sync.
    files: Vec<LogFile>,
    /// The first failure; every later sync repeats it.
    failed: Option<String>,
}

impl WalSync {
    /// Opens the log of the database at `db` (SQLite created it when the database went
    /// into WAL mode and wrote its first transaction).
    pub(super) fn open(db: &Path) -> std::io::Result<WalSync> {
        let path = wal_path(db);
        let files = (0..FILES)
            .map(|_| LogFile::open(&path))
            .collect::<std::io::Result<_>>()?;
        Ok(WalSync {
            path,
            state: Mutex::new(State {
                files,
                failed: None,
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One fsync on `log`; a new descriptor if SQLite ever made a new log.
    fn sync_on(&self, log: &mut LogFile) -> std::io::Result<()> {
        if identity::of_path(&self.path)? != log.identity {
            *log = LogFile::open(&self.path)?;
        }
        log.file.sync_data()
    }
}

impl Syncer for WalSync {
    fn sync(&self) -> Result<(), BackendError> {
        let taken = {
            let mut state = self.lock();
            if let Some(e) = &state.failed {
                return Err(e.clone().into());
            }
            state.files.pop()
        };
        let mut log = match taken {
            Some(log) => log,
            // More syncs at once than descriptors: cannot happen with the runner's bound.
            None => LogFile::open(&self.path)?,
        };
        let result = self.sync_on(&mut log);
        let mut state = self.lock();
        state.files.push(log);
        result.map_err(|e| {
            let e = format!(
                "fsync of {} failed ({e}); nothing more is acknowledged until gearmand-rs \
                 restarts",
                self.path.display()
            );
            if state.failed.is_none() {
                tracing::error!("{e}");
                state.failed = Some(e.clone());
            }
            e.into()
        })
    }
}

/// Which file a path or descriptor is: device and inode number, and nothing else.
///
/// Reading a file's timestamps is not free on Linux 6.13 and later: once its change time has
/// been read, the next write stamps a fine-grained time (multigrain timestamps), so every
/// write dirties the inode instead of one per clock tick, and on ext4 without a journal (this
/// machine's) every fdatasync after such a write writes the inode block too. With a full stat
/// before each sync, 10,000 lockstep submissions gave 4,571 syncs and 5,371 inode writes;
/// asking for the inode number alone, 3,945 syncs and 1,062 inode writes, and a sync took
/// 147-179 us instead of 182-217 us (five runs each, alternating; more when the machine is
/// loaded). So on Linux only that is asked for.
mod identity {
    use std::fs::File;
    use std::path::Path;

    #[cfg(target_os = "linux")]
    pub(super) fn of_path(path: &Path) -> std::io::Result<(u64, u64)> {
        use rustix::fs::{statx, AtFlags, StatxFlags, CWD};
        match statx(CWD, path, AtFlags::empty(), StatxFlags::INO) {
            Ok(s) => Ok(of_statx(&s)),
            // No statx (Linux before 4.11, some container filters): a full stat then.
            Err(_) => full::of_path(path),
        }
    }

    #[cfg(target_os = "linux")]
    pub(super) fn of_file(file: &File) -> std::io::Result<(u64, u64)> {
        use rustix::fs::{statx, AtFlags, StatxFlags};
        match statx(file, "", AtFlags::EMPTY_PATH, StatxFlags::INO) {
            Ok(s) => Ok(of_statx(&s)),
            Err(_) => full::of_file(file),
        }
    }

    /// Encoded as `st_dev` is, so that it compares with a full stat's.
    #[cfg(target_os = "linux")]
    fn of_statx(s: &rustix::fs::Statx) -> (u64, u64) {
        let dev = rustix::fs::makedev(s.stx_dev_major, s.stx_dev_minor);
        (dev, s.stx_ino)
    }

    #[cfg(not(target_os = "linux"))]
    pub(super) use full::{of_file, of_path};

    pub(super) mod full {
        use std::fs::File;
        use std::os::unix::fs::MetadataExt;
        use std::path::Path;

        pub(crate) fn of_path(path: &Path) -> std::io::Result<(u64, u64)> {
            let m = std::fs::metadata(path)?;
            Ok((m.dev(), m.ino()))
        }

        pub(crate) fn of_file(file: &File) -> std::io::Result<(u64, u64)> {
            let m = file.metadata()?;
            Ok((m.dev(), m.ino()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::identity::{full, of_file, of_path};
    use super::{wal_path, WalSync};
    use crate::store::seam::Syncer;
    use std::fs::File;

    #[test]
    fn a_replaced_log_is_synced_through_a_new_descriptor() {
        let dir = tempfile::Builder::new()
            .prefix("wal-replaced-")
            .tempdir()
            .unwrap();
        let db = dir.path().join("q.db");
        File::create(wal_path(&db)).unwrap();
        let sync = WalSync::open(&db).unwrap();
        sync.sync().unwrap();
        // A new file under the log's name (the old one stays open, so its inode differs).
        std::fs::remove_file(wal_path(&db)).unwrap();
        File::create(wal_path(&db)).unwrap();
        let now = of_path(&wal_path(&db)).unwrap();
        sync.sync().unwrap();
        let state = sync.lock();
        let used = state.files.last().expect("the descriptor comes back");
        assert_eq!(of_file(&used.file).unwrap(), now);
        assert_eq!(used.identity, now);
        drop(state);
    }

    #[test]
    fn statx_and_a_full_stat_agree() {
        let dir = tempfile::Builder::new()
            .prefix("wal-identity-")
            .tempdir()
            .unwrap();
        let path = dir.path().join("file");
        let file = File::create(&path).unwrap();
        assert_eq!(of_path(&path).unwrap(), full::of_path(&path).unwrap());
        assert_eq!(of_file(&file).unwrap(), full::of_file(&file).unwrap());
        assert_eq!(of_path(&path).unwrap(), of_file(&file).unwrap());
        // Another file under the same name is another file.
        std::fs::remove_file(&path).unwrap();
        let _other = File::create(&path).unwrap();
        assert_ne!(of_path(&path).unwrap(), of_file(&file).unwrap());
    }
}
