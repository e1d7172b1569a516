//! Durable background jobs in SQLite, with group commit.
//!
//! One thread owns the database. Inserts and deletes queue up while a transaction commits;
//! the next transaction takes all of them at once, so many concurrent submitters share one
//! fsync. An insert's acknowledgement runs only after its transaction committed: the server
//! sends JOB_CREATED from that acknowledgement, so an acknowledged job survives `kill -9`.
//!
//! Durability choice: WAL journal with `synchronous=FULL` by default, so each commit is
//! fsynced and survives power loss too, not just a process crash; group commit pays for it.
//! [`SyncMode::Normal`] trades power-loss safety for speed and still survives `kill -9`.

mod schema;

use gearman_core::server::JobRecord;
use rusqlite::{params, Connection};
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;

/// Where the queue lives.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// SQLite file (created if missing).
    pub path: PathBuf,
    /// Name of a gearmand libsqlite3 queue table to import on start.
    pub gearmand_table: String,
    /// How hard each commit is pushed to disk.
    pub sync: SyncMode,
}

/// SQLite `synchronous` setting for the write-ahead log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyncMode {
    /// Every commit is fsynced: acknowledged jobs survive a crash of the process and a
    /// power loss (the default).
    #[default]
    Full,
    /// Commits reach the OS but are fsynced only at checkpoints: acknowledged jobs survive
    /// `kill -9` of the server, not a power loss or kernel crash. Much faster.
    Normal,
}

/// Why the store cannot be used; the message names the file and the cause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError(pub String);

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StoreError {}

/// Called with the outcome of a durable insert, on the store thread.
pub type Ack = Box<dyn FnOnce(Result<(), String>) + Send>;

enum Op {
    Insert(JobRecord, Ack),
    Remove(u64),
}

/// Handle on the store thread.
pub struct StoreHandle {
    tx: Option<mpsc::Sender<Op>>,
    thread: Option<JoinHandle<()>>,
    commits: Arc<AtomicU64>,
}

/// Most operations one transaction takes, so a flood cannot delay acknowledgements forever.
const MAX_BATCH: usize = 50_000;

impl StoreHandle {
    /// Opens (creating if missing) and validates the store, imports a gearmand libsqlite3
    /// queue table if one is there, and returns the stored jobs in priority then arrival
    /// order.
    pub fn open(cfg: &StoreConfig) -> Result<(StoreHandle, Vec<JobRecord>), StoreError> {
        let conn = schema::open(cfg)?;
        let jobs =
            schema::load(&conn).map_err(|e| schema::error(cfg, "cannot read stored jobs", e))?;
        let (tx, rx) = mpsc::channel();
        let commits = Arc::new(AtomicU64::new(0));
        let counter = commits.clone();
        let path = cfg.path.display().to_string();
        let thread = std::thread::Builder::new()
            .name("gearmand-rs-store".into())
            .spawn(move || commit_loop(conn, rx, counter, path))
            .map_err(|e| StoreError(format!("cannot start the store thread: {e}")))?;
        Ok((
            StoreHandle {
                tx: Some(tx),
                thread: Some(thread),
                commits,
            },
            jobs,
        ))
    }

    /// Queues a durable insert; `ack` runs after the batch holding it committed (or failed).
    pub fn insert(&self, record: JobRecord, ack: Ack) {
        match &self.tx {
            Some(tx) => {
                if let Err(mpsc::SendError(Op::Insert(_, ack))) = tx.send(Op::Insert(record, ack)) {
                    ack(Err("store is closed".into()));
                }
            }
            None => ack(Err("store is closed".into())),
        }
    }

    /// Queues the delete of a finished job.
    pub fn remove(&self, durable_id: u64) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Op::Remove(durable_id));
        }
    }

    /// Transactions committed so far (for tests and metrics).
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Acquire)
    }

    /// Commits everything queued and stops the thread.
    pub fn close(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for StoreHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn commit_loop(
    mut conn: Connection,
    rx: mpsc::Receiver<Op>,
    commits: Arc<AtomicU64>,
    path: String,
) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        let result = write_batch(&mut conn, &batch).map_err(|e| format!("{path}: {e}"));
        if let Err(e) = &result {
            tracing::error!("store commit failed: {e}");
        } else {
            commits.fetch_add(1, Ordering::AcqRel);
        }
        for op in batch {
            if let Op::Insert(_, ack) = op {
                ack(result.clone());
            }
        }
    }
}

fn write_batch(conn: &mut Connection, batch: &[Op]) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    {
        let mut insert = tx.prepare_cached(
            "INSERT OR REPLACE INTO gearmand_rs_jobs \
             (durable_id, function, unique_key, priority, data, when_to_run, reducer) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        let mut delete = tx.prepare_cached("DELETE FROM gearmand_rs_jobs WHERE durable_id = ?1")?;
        for op in batch {
            match op {
                Op::Insert(r, _) => {
                    insert.execute(params![
                        r.durable_id as i64,
                        &r.function[..],
                        &r.unique[..],
                        r.priority.index() as i64,
                        &r.data[..],
                        r.when,
                        r.reducer.as_deref(),
                    ])?;
                }
                Op::Remove(id) => {
                    delete.execute(params![*id as i64])?;
                }
            }
        }
    }
    tx.commit()
}
