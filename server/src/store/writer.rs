//! The store thread: group commit. It takes everything queued, writes it in one
//! transaction with one fsync, then runs the acknowledgements of that transaction.

use super::Ack;
use gearman_core::server::JobRecord;
use rusqlite::{params, Connection};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;

/// One queued change.
pub(super) enum Op {
    /// Store a job; the ack runs once the transaction holding it is durable (or failed).
    Insert(JobRecord, Ack),
    /// Delete a finished job.
    Remove(u64),
}

/// Most changes one transaction takes, so that a flood cannot hold acknowledgements back
/// indefinitely (SQLite itself has no practical limit).
const MAX_BATCH: usize = 50_000;

/// Runs until every sender is gone and the queue is empty.
pub(super) fn run(
    mut conn: Connection,
    rx: mpsc::Receiver<Op>,
    commits: Arc<AtomicU64>,
    path: String,
) {
    let mut batch = Vec::new();
    while let Ok(first) = rx.recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        let result = write(&mut conn, &batch).map_err(|e| format!("queue file {path}: {e}"));
        match &result {
            Ok(()) => {
                commits.fetch_add(1, Ordering::AcqRel);
            }
            // The transaction rolled back: inserts are refused to their clients; deletes
            // are lost, so those jobs run again after a restart (at least once).
            Err(e) => tracing::error!("store commit of {} change(s) failed: {e}", batch.len()),
        }
        for op in batch.drain(..) {
            if let Op::Insert(_, ack) = op {
                ack(result.clone());
            }
        }
    }
    // Fold the write-ahead log back into the file, so the file stands alone when copied.
    if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);") {
        tracing::warn!("queue file {path}: final checkpoint failed: {e}");
    }
}

fn write(conn: &mut Connection, batch: &[Op]) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    {
        let mut insert = tx.prepare_cached(
            "INSERT OR REPLACE INTO gearmand_rs_jobs
               (durable_id, function, unique_key, priority, data, when_to_run, reducer)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        let mut delete = tx.prepare_cached("DELETE FROM gearmand_rs_jobs WHERE durable_id = ?1")?;
        for op in batch {
            match op {
                Op::Insert(r, _) => {
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
                Op::Remove(id) => {
                    delete.execute(params![sql_id(*id)?])?;
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
