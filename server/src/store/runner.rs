//! The group-commit runner: one thread per store. It takes everything queued, hands it to
//! the backend as one [`QueueStore::commit`], then runs that group's acknowledgements at
//! once, before it looks at the next group.
//!
//! Changes queue in a channel while a commit runs, so the next group is gathered while the
//! previous one is being flushed. One more step makes the groups as large as the load
//! allows: submitters that each wait for JOB_CREATED come back one round trip after their
//! group's acknowledgement, not all at the same instant. Committing the first of them at
//! once would split them into a group of one and a group of the rest, and each submitter
//! would then wait two commits per job. So when fewer inserts are queued than the previous
//! group held, the runner waits for the others, but never longer than a commit takes (past
//! that, two commits are cheaper than waiting) nor than [`MAX_GATHER`].

use super::{Ack, Change, CommitStats, ExtraChange, QueueStore, CHECK_EVERY};
use gearman_core::server::{ExtraKind, ExtraRecord, JobRecord};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Upper bound on the wait for the rest of a group.
const MAX_GATHER: Duration = Duration::from_millis(10);
/// How often a failing store may log its failures (the rest are counted into that line).
const ERROR_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// One queued change.
enum Op {
    /// Store a job; the ack runs once the commit holding it is durable (or failed).
    Insert(JobRecord, Ack),
    /// Delete a finished job.
    Remove(u64),
    /// Store a record beyond the job queue; the ack, if any, runs as an insert's does.
    PutExtra(ExtraRecord, Option<Ack>),
    /// Delete a record beyond the job queue.
    DeleteExtra(ExtraKind, u64),
}

/// Handle on a store's runner thread. Dropping it is [`StoreHandle::close`].
pub struct StoreHandle {
    tx: Option<mpsc::Sender<Op>>,
    thread: Option<JoinHandle<()>>,
    stats: Arc<CommitStats>,
}

impl StoreHandle {
    /// Loads `store`'s jobs (for [`gearman_core::server::Server::restore`]) and starts its
    /// runner thread.
    pub fn start<S: QueueStore>(
        mut store: S,
    ) -> Result<(StoreHandle, Vec<JobRecord>), super::BackendError> {
        let jobs = store.load()?;
        let handle = StoreHandle::spawn(store)?;
        Ok((handle, jobs))
    }

    /// Starts the runner thread for `store` without loading anything.
    pub fn spawn<S: QueueStore>(store: S) -> std::io::Result<StoreHandle> {
        let (tx, rx) = mpsc::channel();
        let stats = Arc::new(CommitStats::default());
        let counter = stats.clone();
        let thread = std::thread::Builder::new()
            .name("gearmand-rs-store".into())
            .spawn(move || Runner::new(store, counter).run(rx))?;
        Ok(StoreHandle {
            tx: Some(tx),
            thread: Some(thread),
            stats,
        })
    }

    /// Queues a durable insert; `ack` runs on the runner thread after the commit holding it
    /// returned (`Ok`) or failed (`Err`, with the reason).
    pub fn insert(&self, record: JobRecord, ack: Ack) {
        let refused = match &self.tx {
            None => ack,
            Some(tx) => match tx.send(Op::Insert(record, ack)) {
                Ok(()) => return,
                Err(mpsc::SendError(Op::Insert(_, ack))) => ack,
                Err(_) => return,
            },
        };
        // The runner thread is gone (it panicked): answer from a thread of its own, keeping
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

    /// Queues the write of a record beyond the job queue (for a backend that
    /// [keeps extras](QueueStore::keeps_extras)); `ack`, if given, runs as an insert's.
    pub fn put_extra(&self, record: ExtraRecord, ack: Option<Ack>) {
        let refused = match &self.tx {
            None => ack,
            Some(tx) => match tx.send(Op::PutExtra(record, ack)) {
                Ok(()) => return,
                Err(mpsc::SendError(Op::PutExtra(_, ack))) => ack,
                Err(_) => return,
            },
        };
        if let Some(refused) = refused {
            let spawned = std::thread::Builder::new()
                .name("gearmand-rs-store-refusal".into())
                .spawn(move || refused(Err("the store thread stopped".into())));
            if let Err(e) = spawned {
                tracing::error!("cannot refuse a store write: {e}");
            }
        }
    }

    /// Queues the delete of a record beyond the job queue.
    pub fn delete_extra(&self, kind: ExtraKind, key: u64) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Op::DeleteExtra(kind, key));
        }
    }

    /// Commits that succeeded so far (for tests and metrics): fewer than inserts when
    /// submitters shared commits.
    pub fn commits(&self) -> u64 {
        self.stats.commits()
    }

    /// Commit counters, latency and batch size, shared with the runner thread.
    pub fn commit_stats(&self) -> Arc<CommitStats> {
        self.stats.clone()
    }

    /// Commits everything queued, runs its acknowledgements, closes the store and stops the
    /// thread.
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

/// The runner thread's state.
struct Runner<S> {
    store: S,
    name: String,
    max_batch: usize,
    stats: Arc<CommitStats>,
    /// The group being gathered, and the acks of its inserts in the same order.
    changes: Vec<Change>,
    acks: Vec<Ack>,
    /// The group's changes beyond the job queue, and whether each was acknowledged.
    extras: Vec<ExtraChange>,
    extra_acked: Vec<bool>,
    /// Inserts in the previous group: how many submitters are likely to come back.
    last_inserts: usize,
    /// How long commits take (moving average): the longest worth waiting for a group.
    commit_time: Duration,
    failures: FailureLog,
}

impl<S: QueueStore> Runner<S> {
    fn new(store: S, stats: Arc<CommitStats>) -> Self {
        Runner {
            name: store.describe(),
            max_batch: store.max_batch().max(1),
            store,
            stats,
            changes: Vec::new(),
            acks: Vec::new(),
            extras: Vec::new(),
            extra_acked: Vec::new(),
            last_inserts: 0,
            commit_time: Duration::ZERO,
            failures: FailureLog::default(),
        }
    }

    /// Runs until every sender is gone and the queue is empty.
    fn run(mut self, rx: mpsc::Receiver<Op>) {
        loop {
            let first = match rx.recv_timeout(CHECK_EVERY) {
                Ok(op) => op,
                Err(RecvTimeoutError::Timeout) => {
                    self.check();
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            };
            self.push(first);
            self.take_ready(&rx);
            self.gather_rest(&rx);
            self.commit();
        }
        if !self.changes.is_empty() || !self.extras.is_empty() {
            // Deletes carried over from a failed commit get one last try.
            self.commit();
        }
        self.store.close();
    }

    /// The idle health check, for `gearman_store_up`.
    fn check(&mut self) {
        if let Some(result) = self.store.check() {
            if let Err(e) = &result {
                tracing::debug!("{}: health check failed: {e}", self.name);
            }
            self.stats.checked(result.is_ok());
        }
    }

    fn push(&mut self, op: Op) {
        match op {
            Op::Insert(record, ack) => {
                self.changes.push(Change::Insert(record));
                self.acks.push(ack);
            }
            Op::Remove(id) => self.changes.push(Change::Remove(id)),
            Op::PutExtra(record, ack) => {
                self.extras.push(ExtraChange::Put(record));
                self.extra_acked.push(ack.is_some());
                self.acks.extend(ack);
            }
            Op::DeleteExtra(kind, key) => {
                self.extras.push(ExtraChange::Delete(kind, key));
                self.extra_acked.push(false);
            }
        }
    }

    /// Changes in the group, of both kinds.
    fn len(&self) -> usize {
        self.changes.len() + self.extras.len()
    }

    fn take_ready(&mut self, rx: &mpsc::Receiver<Op>) {
        while self.len() < self.max_batch {
            match rx.try_recv() {
                Ok(op) => self.push(op),
                Err(_) => return,
            }
        }
    }

    /// Waits, within the bounds in the module docs, for the rest of the previous group's
    /// submitters.
    fn gather_rest(&mut self, rx: &mpsc::Receiver<Op>) {
        let deadline = Instant::now() + self.commit_time.min(MAX_GATHER);
        while self.acks.len() < self.last_inserts && self.len() < self.max_batch {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(op) => {
                    self.push(op);
                    self.take_ready(rx);
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    fn commit(&mut self) {
        let started = Instant::now();
        let result = if self.extras.is_empty() {
            self.store.commit(&self.changes)
        } else {
            self.store.commit_with_extras(&self.changes, &self.extras)
        }
        .map_err(|e| format!("{}: {e}", self.name));
        let took = started.elapsed();
        self.commit_time = (self.commit_time * 3 + took) / 4;
        self.last_inserts = self.acks.len();
        self.stats.record(result.is_ok(), took, self.len());
        match &result {
            Ok(()) => {
                self.failures.recovered(&self.name);
                self.changes.clear();
                self.extras.clear();
                self.extra_acked.clear();
            }
            Err(e) => {
                self.failures.failed(e, self.len());
                // Nothing of the group was written. Inserts are refused to their clients
                // (below); deletes stay queued for the next commit, so a finished job does
                // not run again after a restart merely because one commit failed. So do
                // unacknowledged extra records: a dead letter is written before its job's
                // delete, and the two must not be parted.
                self.changes.retain(|c| matches!(c, Change::Remove(_)));
                let mut acked = std::mem::take(&mut self.extra_acked).into_iter();
                self.extras.retain(|_| !acked.next().unwrap_or(false));
                self.extra_acked = vec![false; self.extras.len()];
            }
        }
        for ack in self.acks.drain(..) {
            ack(result.clone());
        }
    }
}

/// Logs commit failures at most once per [`ERROR_LOG_INTERVAL`], with a count, so a full
/// disk does not write a log line per refused submission.
#[derive(Default)]
struct FailureLog {
    last_logged: Option<Instant>,
    unlogged: u64,
    failing: bool,
}

impl FailureLog {
    fn failed(&mut self, error: &str, changes: usize) {
        self.failing = true;
        let due = self
            .last_logged
            .is_none_or(|at| at.elapsed() >= ERROR_LOG_INTERVAL);
        if !due {
            self.unlogged += 1;
            return;
        }
        if self.unlogged > 0 {
            tracing::error!(
                "store commit of {changes} change(s) failed: {error} ({} more failed commit(s) \
                 since the last report)",
                self.unlogged
            );
        } else {
            tracing::error!("store commit of {changes} change(s) failed: {error}");
        }
        self.unlogged = 0;
        self.last_logged = Some(Instant::now());
    }

    fn recovered(&mut self, name: &str) {
        if std::mem::take(&mut self.failing) {
            let also = std::mem::take(&mut self.unlogged);
            tracing::warn!("{name}: commits succeed again ({also} failed commit(s) not logged)");
            self.last_logged = None;
        }
    }
}
