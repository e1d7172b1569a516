//! The group-commit runner: a few threads per store. A free thread takes everything queued
//! (up to the store's batch limit) as one group, hands it to the backend as one commit, and
//! runs that group's acknowledgements the moment it is durable.
//!
//! Changes queue while commits run, so the next group is gathered while the previous one is
//! being flushed, and with a store that allows it the next group's commit starts at once
//! instead of waiting for the previous one: on another connection
//! ([`QueueStore::lanes`]), or, for a store whose commit only writes and whose durability
//! is a separate step ([`QueueStore::syncer`], SQLite's write-ahead log and its fsync), by
//! writing the next group while the previous one is synced. The `queue` module keeps what
//! must stay ordered in order across commits in flight.
//!
//! One more step makes the groups as large as the load allows when commits cannot overlap:
//! submitters that each wait for JOB_CREATED come back one round trip after their group's
//! acknowledgement, not all at the same instant. Committing the first of them at once would
//! split them into a group of one and a group of the rest, and each submitter would then
//! wait two commits per job. So when no other commit is in flight and fewer inserts are
//! queued than the previous group held, the runner waits for the others, but never longer
//! than a commit takes (past that, two commits are cheaper than waiting) nor than
//! `MAX_GATHER`.

mod failure_log;
mod queue;
mod sync_gate;
mod worker;

use crate::store::metrics::CommitStats;
use crate::store::seam::{Ack, BackendError, QueueStore};
use gearman_core::server::{ExtraKind, ExtraRecord, JobRecord};
use queue::Op;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;
use worker::Shared;

/// Handle on a store's runner threads. Dropping it is [`StoreHandle::close`].
pub struct StoreHandle {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl StoreHandle {
    /// Loads `store`'s jobs (for [`gearman_core::server::Server::restore`]) and starts its
    /// runner threads.
    pub fn start<S: QueueStore>(
        mut store: S,
    ) -> Result<(StoreHandle, Vec<JobRecord>), BackendError> {
        let jobs = store.load()?;
        let handle = StoreHandle::spawn(store)?;
        Ok((handle, jobs))
    }

    /// Starts the runner threads for `store` without loading anything: one per lane, and
    /// more for a store with a separate durability step (they sync while another writes).
    pub fn spawn<S: QueueStore>(mut store: S) -> std::io::Result<StoreHandle> {
        let syncer = store.syncer();
        let mut lanes: Vec<Box<dyn QueueStore>> = Vec::new();
        for _ in 1..store.lanes().max(1) {
            match store.fork() {
                Ok(lane) => lanes.push(lane),
                Err(e) => {
                    tracing::warn!("{}: one commit lane fewer: {e}", store.describe());
                    break;
                }
            }
        }
        lanes.insert(0, Box::new(store));
        let threads = lanes.len()
            + if syncer.is_some() {
                sync_gate::MAX_SYNCS
            } else {
                0
            };
        let shared = Arc::new(Shared::new(lanes, syncer));
        let mut handle = StoreHandle {
            shared: shared.clone(),
            threads: Vec::with_capacity(threads),
        };
        for _ in 0..threads {
            let shared = shared.clone();
            shared.lock().workers += 1;
            let spawned = std::thread::Builder::new()
                .name("gearmand-rs-store".into())
                .spawn(move || worker::run(shared));
            match spawned {
                Ok(thread) => handle.threads.push(thread),
                Err(e) => {
                    handle.shared.lock().workers -= 1;
                    return Err(e);
                }
            }
        }
        Ok(handle)
    }

    /// Queues a durable insert; `ack` runs on a runner thread after the commit holding it
    /// is durable (`Ok`) or failed (`Err`, with the reason).
    pub fn insert(&self, record: JobRecord, ack: Ack) {
        if let Some(Op::Insert(_, ack, _)) =
            self.shared.push(Op::Insert(record, ack, Instant::now()))
        {
            refuse(ack);
        }
    }

    /// Queues the delete of a finished (completed, failed, cancelled) job.
    pub fn remove(&self, durable_id: u64) {
        // Without runner threads nothing can delete; the job then runs again after a restart.
        let _ = self.shared.push(Op::Remove(durable_id));
    }

    /// Queues the write of a record beyond the job queue (for a backend that
    /// [keeps extras](QueueStore::keeps_extras)); `ack`, if given, runs as an insert's.
    pub fn put_extra(&self, record: ExtraRecord, ack: Option<Ack>) {
        if let Some(Op::PutExtra(_, Some(ack))) = self.shared.push(Op::PutExtra(record, ack)) {
            refuse(ack);
        }
    }

    /// Queues the delete of a record beyond the job queue.
    pub fn delete_extra(&self, kind: ExtraKind, key: u64) {
        let _ = self.shared.push(Op::DeleteExtra(kind, key));
    }

    /// Commits that succeeded so far (for tests and metrics): fewer than inserts when
    /// submitters shared commits.
    pub fn commits(&self) -> u64 {
        self.shared.stats.commits()
    }

    /// Commit counters, latency and batch size, shared with the runner threads.
    pub fn commit_stats(&self) -> Arc<CommitStats> {
        self.shared.stats.clone()
    }

    /// Commits everything queued, runs its acknowledgements, closes the store and stops the
    /// threads.
    pub fn close(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.shared.close();
        for thread in self.threads.drain(..) {
            if thread.join().is_err() {
                tracing::error!("a store thread panicked");
            }
        }
    }
}

impl Drop for StoreHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The runner threads are gone (they panicked): answers from a thread of its own, keeping
/// the promise that acks never run on the caller.
fn refuse(ack: Ack) {
    let spawned = std::thread::Builder::new()
        .name("gearmand-rs-store-refusal".into())
        .spawn(move || ack(Err("the store threads stopped".into())));
    if let Err(e) = spawned {
        tracing::error!("cannot refuse a store write: {e}");
    }
}
