//! Durable background jobs in SQLite, with group commit.
//!
//! One thread owns the database. Inserts and deletes queue up while a transaction commits;
//! the next transaction takes all of them at once, so many concurrent submitters share one
//! fsync. An insert's acknowledgement runs only after its transaction committed: the server
//! sends JOB_CREATED from that acknowledgement, so an acknowledged job survives `kill -9`.
//!
//! Durability choice. The database runs in WAL mode. With [`SyncMode::Full`] (the default)
//! every commit fsyncs the write-ahead log before the acknowledgements run, so an
//! acknowledged job survives a crash of the process *and* a power loss or kernel crash
//! (given a disk that honours fsync); group commit is what makes this affordable.
//! [`SyncMode::Normal`] (`--libsqlite3-sync normal`) writes each commit to the log with
//! `write(2)` but fsyncs only at checkpoints: the committed frames are in the kernel's page
//! cache, so they survive `kill -9` of the server (the kernel writes them out and SQLite
//! replays the log on open), but the last commits before a power loss can be lost. The
//! file itself never becomes corrupt in either mode.
//!
//! On open the store refuses, with a clear [`StoreError`], anything it cannot vouch for: a
//! file that is not SQLite or fails its integrity check, a file or directory it cannot
//! write (checked by a real write transaction), or tables with an unexpected layout. A
//! gearmand libsqlite3 queue table in the file is imported (see `import`).

mod error;
mod import;
mod schema;
mod writer;

pub use error::StoreError;

use gearman_core::server::JobRecord;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use writer::Op;

/// Where the queue lives and how hard it is pushed to disk.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// SQLite file (created if missing; its directory must exist and be writable).
    pub path: PathBuf,
    /// Name of a gearmand libsqlite3 queue table to import on start (gearmand's
    /// `--libsqlite3-table`, default [`StoreConfig::GEARMAND_TABLE`]).
    pub gearmand_table: String,
    /// How hard each commit is pushed to disk.
    pub sync: SyncMode,
}

impl StoreConfig {
    /// gearmand's default queue table name.
    pub const GEARMAND_TABLE: &'static str = "gearman_queue";

    /// A store at `path` with the defaults: gearmand's table name, [`SyncMode::Full`].
    pub fn new(path: impl Into<PathBuf>) -> StoreConfig {
        StoreConfig {
            path: path.into(),
            gearmand_table: Self::GEARMAND_TABLE.into(),
            sync: SyncMode::Full,
        }
    }
}

/// SQLite `synchronous` setting for the write-ahead log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyncMode {
    /// Every commit is fsynced before its acknowledgements: acknowledged jobs survive a
    /// crash of the process and a power loss (the default).
    #[default]
    Full,
    /// Commits reach the kernel but are fsynced only at checkpoints: acknowledged jobs
    /// survive `kill -9` of the server, not a power loss or kernel crash.
    Normal,
}

/// Called with the outcome of a durable insert: `Ok` once the transaction holding it is
/// committed (and fsynced under [`SyncMode::Full`]). It never runs on the caller of
/// [`StoreHandle::insert`], so it may block (e.g. on a bounded channel to that caller).
pub type Ack = Box<dyn FnOnce(Result<(), String>) + Send>;

/// Handle on the store thread. Dropping it is [`StoreHandle::close`].
pub struct StoreHandle {
    tx: Option<mpsc::Sender<Op>>,
    thread: Option<JoinHandle<()>>,
    commits: Arc<AtomicU64>,
}

impl StoreHandle {
    /// Opens (creating if missing) and validates the store, imports a gearmand libsqlite3
    /// queue table if one is there, and returns the stored jobs in priority then arrival
    /// order.
    pub fn open(cfg: &StoreConfig) -> Result<(StoreHandle, Vec<JobRecord>), StoreError> {
        let conn = schema::open(cfg)?;
        let jobs = schema::load(&conn, &cfg.path)?;
        let (tx, rx) = mpsc::channel();
        let commits = Arc::new(AtomicU64::new(0));
        let counter = commits.clone();
        let path = cfg.path.display().to_string();
        let thread = std::thread::Builder::new()
            .name("gearmand-rs-store".into())
            .spawn(move || writer::run(conn, rx, counter, path))
            .map_err(|e| StoreError::Other {
                path: cfg.path.clone(),
                what: "cannot start the store thread".into(),
                detail: e.to_string(),
            })?;
        Ok((
            StoreHandle {
                tx: Some(tx),
                thread: Some(thread),
                commits,
            },
            jobs,
        ))
    }

    /// Queues a durable insert; `ack` runs on the store thread after the batch holding it
    /// is committed (`Ok`) or failed (`Err`, with the reason).
    pub fn insert(&self, record: JobRecord, ack: Ack) {
        let refused = match &self.tx {
            None => ack,
            Some(tx) => match tx.send(Op::Insert(record, ack)) {
                Ok(()) => return,
                Err(mpsc::SendError(Op::Insert(_, ack))) => ack,
                Err(_) => return,
            },
        };
        // The store thread is gone (it panicked): answer from a thread of its own, keeping
        // the promise that acks never run on the caller.
        let spawned = std::thread::Builder::new()
            .name("gearmand-rs-store-refusal".into())
            .spawn(move || refused(Err("the store thread stopped".into())));
        if let Err(e) = spawned {
            tracing::error!("cannot refuse a store insert: {e}");
        }
    }

    /// Queues the delete of a finished (completed, failed, cancelled) job.
    pub fn remove(&self, durable_id: u64) {
        if let Some(tx) = &self.tx {
            // A stopped thread cannot delete; the job then runs again after a restart.
            let _ = tx.send(Op::Remove(durable_id));
        }
    }

    /// Transactions committed so far (for tests and metrics): fewer than inserts when
    /// submitters shared commits.
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Acquire)
    }

    /// Commits everything queued, runs its acknowledgements and stops the thread.
    pub fn close(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.tx = None;
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the store thread panicked");
            }
        }
    }
}

impl Drop for StoreHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}
