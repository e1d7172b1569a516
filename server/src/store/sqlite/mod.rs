//! The SQLite backend (`-q libsqlite3`): durable background jobs in one SQLite file, which
//! may also hold a gearmand libsqlite3 queue to take over.
//!
//! Durability choice. The database runs in WAL mode. With [`SyncMode::Full`] (the default)
//! the write-ahead log is fsynced after every commit and before its acknowledgements run,
//! so an acknowledged job survives a crash of the process *and* a power loss or kernel
//! crash (given a disk that honours fsync); group commit is what makes this affordable.
//! The fsync runs beside the writer rather than inside the commit (see `wal_sync`), so the
//! next group is written while the previous one is flushed.
//! [`SyncMode::Normal`] (`--libsqlite3-sync normal`) writes each commit to the log with
//! `write(2)` but fsyncs only at checkpoints: the committed frames are in the kernel's page
//! cache, so they survive `kill -9` of the server (the kernel writes them out and SQLite
//! replays the log on open), but the last commits before a power loss can be lost. The
//! file itself never becomes corrupt in either mode.
//!
//! On open the store refuses, with a clear [`SqliteError`], anything it cannot vouch for: a
//! file that is not SQLite or fails its integrity check, a file or directory it cannot
//! write (checked by a real write transaction), or tables with an unexpected layout. A
//! gearmand libsqlite3 queue table in the file is imported (see `import`).

mod config;
mod error;
mod import;
mod schema;
mod tables;
mod wal_sync;

pub use config::{Flags, SqliteConfig, SyncMode};
pub use error::SqliteError;

use crate::store::runner::StoreHandle;
use crate::store::seam::{BackendError, Change, ExtraChange, QueueStore, Syncer};
use gearman_core::server::{ExtraRecord, JobRecord};
use rusqlite::{params, Connection};
use std::path::PathBuf;

/// The `-q` name of this backend (gearmand's).
pub const QUEUE_TYPE: &str = "libsqlite3";

/// An open, validated SQLite queue file: the [`QueueStore`] for `-q libsqlite3`.
pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
    /// Under [`SyncMode::Full`]: the fsync of the log, run by the runner after each commit.
    wal_sync: Option<wal_sync::WalSync>,
}

impl SqliteStore {
    /// Opens (creating if missing) and validates the file and imports a gearmand
    /// libsqlite3 queue table if one is there.
    pub fn open(cfg: &SqliteConfig) -> Result<SqliteStore, SqliteError> {
        let conn = schema::open(cfg)?;
        let wal_sync = match cfg.sync {
            SyncMode::Normal => None,
            SyncMode::Full => match wal_sync::WalSync::open(&cfg.path) {
                // The runner syncs the log after each commit: SQLite need not.
                Ok(sync) => match conn.execute_batch("PRAGMA synchronous=NORMAL") {
                    Ok(()) => Some(sync),
                    Err(e) => {
                        return Err(SqliteError::from_sqlite(&cfg.path, "cannot configure", e))
                    }
                },
                Err(e) => {
                    // SQLite keeps synchronous=FULL and syncs inside each commit.
                    tracing::warn!(
                        "queue file {}: cannot open its write-ahead log ({e}); each commit \
                         syncs it itself",
                        cfg.path.display()
                    );
                    None
                }
            },
        };
        Ok(SqliteStore {
            conn,
            path: cfg.path.clone(),
            wal_sync,
        })
    }

    /// The stored jobs in priority then arrival order.
    pub fn jobs(&self) -> Result<Vec<JobRecord>, SqliteError> {
        schema::load(&self.conn, &self.path)
    }

    /// The stored records beyond the job queue (retry state, dead letters, schedules).
    pub fn extras(&self) -> Result<Vec<ExtraRecord>, SqliteError> {
        schema::load_extras(&self.conn, &self.path)
    }
}

/// Opens the store at `cfg`, returns its jobs in priority then arrival order and starts
/// its group-commit runner.
pub fn open(cfg: &SqliteConfig) -> Result<(StoreHandle, Vec<JobRecord>), SqliteError> {
    let store = SqliteStore::open(cfg)?;
    let jobs = store.jobs()?;
    let handle = StoreHandle::spawn(store).map_err(|e| SqliteError::Other {
        path: cfg.path.clone(),
        what: "cannot start the store thread".into(),
        detail: e.to_string(),
    })?;
    Ok((handle, jobs))
}

impl QueueStore for SqliteStore {
    fn load(&mut self) -> Result<Vec<JobRecord>, BackendError> {
        Ok(self.jobs()?)
    }

    fn commit(&mut self, changes: &[Change]) -> Result<(), BackendError> {
        self.commit_with_extras(changes, &[])
    }

    fn keeps_extras(&self) -> bool {
        true
    }

    fn load_extras(&mut self) -> Result<Vec<ExtraRecord>, BackendError> {
        Ok(self.extras()?)
    }

    fn commit_with_extras(
        &mut self,
        changes: &[Change],
        extras: &[ExtraChange],
    ) -> Result<(), BackendError> {
        write(&mut self.conn, changes, extras)?;
        // Until a runner took the sync step, the commit syncs itself.
        match &self.wal_sync {
            Some(sync) => sync.sync(),
            None => Ok(()),
        }
    }

    fn close(&mut self) {
        // Fold the write-ahead log back into the file, so the file stands alone when copied.
        if let Err(e) = self.conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);") {
            tracing::warn!("{}: final checkpoint failed: {e}", self.describe());
        }
    }

    fn describe(&self) -> String {
        format!("queue file {}", self.path.display())
    }

    fn syncer(&mut self) -> Option<Box<dyn Syncer>> {
        self.wal_sync
            .take()
            .map(|sync| Box::new(sync) as Box<dyn Syncer>)
    }
}

/// One transaction for the whole group: one fsync under [`SyncMode::Full`].
fn write(
    conn: &mut Connection,
    changes: &[Change],
    extras: &[ExtraChange],
) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    {
        let mut insert = tx.prepare_cached(
            "INSERT OR REPLACE INTO gearmand_rs_jobs
               (durable_id, function, unique_key, priority, data, when_to_run, reducer)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        let mut delete = tx.prepare_cached("DELETE FROM gearmand_rs_jobs WHERE durable_id = ?1")?;
        for change in changes {
            match change {
                Change::Insert(r) => {
                    insert.execute(params![
                        sql_id(r.durable_id)?,
                        &r.function[..],
                        &r.unique[..],
                        r.priority.index() as i64,
                        &r.data[..],
                        r.when,
                        r.reducer.as_deref(),
                    ])?;
                }
                Change::Remove(id) => {
                    delete.execute(params![sql_id(*id)?])?;
                }
            }
        }
    }
    if !extras.is_empty() {
        let mut put = tx.prepare_cached(
            "INSERT OR REPLACE INTO gearmand_rs_extras (kind, key, value) VALUES (?1, ?2, ?3)",
        )?;
        let mut delete =
            tx.prepare_cached("DELETE FROM gearmand_rs_extras WHERE kind = ?1 AND key = ?2")?;
        for change in extras {
            match change {
                ExtraChange::Put(r) => {
                    put.execute(params![r.kind.code(), sql_id(r.key)?, &r.value[..]])?;
                }
                ExtraChange::Delete(kind, key) => {
                    delete.execute(params![kind.code(), sql_id(*key)?])?;
                }
            }
        }
    }
    tx.commit()
}

/// SQLite integers are signed 64-bit.
fn sql_id(id: u64) -> rusqlite::Result<i64> {
    i64::try_from(id).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}
