//! The store seam: the trait every durable queue backend implements, the changes it
//! commits, and what a shared backend hands over when it takes jobs from another server.
//! Everything else in `store` depends on this module; it depends on nothing in `store`.

use gearman_core::server::{ExtraKind, ExtraRecord, JobRecord};

/// A backend's failure, as the backend's own error type; its `Display` should be one line
/// that names the store (file, host, key) and what went wrong.
pub type BackendError = Box<dyn std::error::Error + Send + Sync>;

/// An error with its causes, `error: cause: cause`. Some crates keep the cause out of
/// `Display` (the PostgreSQL client says only "db error" or "error connecting to server"
/// and leaves "canceling statement due to lock timeout" or "Connection refused" to
/// `source()`); a log line needs both. A cause already quoted by its error is not repeated.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        let said = c.to_string();
        if !said.is_empty() && !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        cause = c.source();
    }
    text
}

/// Most changes one commit takes unless the backend says otherwise
/// ([`QueueStore::max_batch`]), so that a flood cannot hold acknowledgements back
/// indefinitely.
pub const DEFAULT_MAX_BATCH: usize = 50_000;

/// How long the runner waits without a commit before it runs [`QueueStore::check`].
pub const CHECK_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

/// One change in a group commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Store a background job (replacing a record with the same `durable_id`).
    Insert(JobRecord),
    /// Delete a finished (completed, failed, cancelled) job by its `durable_id`; deleting
    /// an id that is not stored is not an error.
    Remove(u64),
}

/// One change to the records beyond the job queue (retry state, dead letters, schedules),
/// committed in the same group and transaction as the job changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtraChange {
    /// Store a record, replacing the one with the same kind and key.
    Put(ExtraRecord),
    /// Delete a record; deleting one that is not stored is not an error.
    Delete(ExtraKind, u64),
}

/// A durable queue backend, run by the group-commit runner ([`StoreHandle`](crate::store::StoreHandle)) on a thread of
/// its own: every method may block.
///
/// The contract the runner relies on:
/// - [`commit`](QueueStore::commit) applies its changes in order, **all or none**, and
///   returns `Ok` only once they are durable as this backend promises (for SQLite with
///   `synchronous=FULL`: fsynced). After an `Err`, none of the group's changes may appear
///   on a later [`load`](QueueStore::load) as if committed by this call, and everything
///   committed earlier must still be there.
/// - [`load`](QueueStore::load) returns every stored job, in priority then arrival
///   (`durable_id`) order; it is called once, before the server accepts connections.
pub trait QueueStore: Send + 'static {
    /// Every stored job, in priority then `durable_id` order.
    fn load(&mut self) -> Result<Vec<JobRecord>, BackendError>;

    /// Applies `changes` in order, atomically and durably (see the trait's contract).
    fn commit(&mut self, changes: &[Change]) -> Result<(), BackendError>;

    /// Most changes one [`commit`](QueueStore::commit) may take (a backend with a
    /// statement or pipeline limit lowers it).
    fn max_batch(&self) -> usize {
        DEFAULT_MAX_BATCH
    }

    /// Runs once after the last commit, when the server stops (SQLite folds its
    /// write-ahead log back into the file here). Errors are the backend's to log.
    fn close(&mut self) {}

    /// Names the store for log lines, e.g. `queue file /var/lib/gearmand/q.db`.
    fn describe(&self) -> String;

    /// A health check the runner makes when no commit ran for [`CHECK_EVERY`]: `Some(Ok)`
    /// when the store answers (a networked store reconnects here when its backoff allows),
    /// `Some(Err)` when not; `None` (the default) for a store without one, whose health is
    /// that of its last commit. Shown as `gearman_store_up` and in `/api/status`.
    fn check(&mut self) -> Option<Result<(), BackendError>> {
        None
    }

    /// Whether this backend keeps [`ExtraRecord`]s (retry state, dead letters, schedules)
    /// through [`commit_with_extras`](QueueStore::commit_with_extras): the server sends them
    /// only then. Off by default, so a backend without them still works, without those
    /// records surviving a restart.
    fn keeps_extras(&self) -> bool {
        false
    }

    /// Every stored extra record, in kind then key order; called once, before the server
    /// accepts connections. Records of a kind this version does not know stay stored and
    /// are left out.
    fn load_extras(&mut self) -> Result<Vec<ExtraRecord>, BackendError> {
        Ok(Vec::new())
    }

    /// Applies `changes` and `extras`, each in order, in one atomic and durable commit
    /// (the contract of [`commit`](QueueStore::commit) covers both). The default, for a
    /// backend that keeps no extras, commits the jobs alone and refuses extras.
    fn commit_with_extras(
        &mut self,
        changes: &[Change],
        extras: &[ExtraChange],
    ) -> Result<(), BackendError> {
        if extras.is_empty() {
            self.commit(changes)
        } else {
            Err(format!("{} keeps no records beyond the job queue", self.describe()).into())
        }
    }

    /// Jobs this backend takes over while the server runs, from other servers sharing its
    /// database; `None` (the default) for a backend nobody else shares. Taken once, before
    /// the store is handed to its runner.
    fn takeovers(&mut self) -> Option<Takeovers> {
        None
    }

    /// How many commits of this store may be in flight at once, each on a connection of its
    /// own (the others from [`fork`](QueueStore::fork)). 1, the default, for a store with a
    /// single writer.
    fn lanes(&self) -> usize {
        1
    }

    /// Another handle on the same store, with a connection of its own, for one more lane
    /// (called `lanes() - 1` times before the runner starts). It only ever commits; it must
    /// not connect before its first commit (it is made on the caller's thread, which may be
    /// a thread of the server's runtime) and is dropped on a runner thread.
    fn fork(&mut self) -> Result<Box<dyn QueueStore>, BackendError> {
        Err(format!("{} has a single writer", self.describe()).into())
    }

    /// For a store whose [`commit`](QueueStore::commit) returns once the group is written
    /// and ordered but before it is durable (SQLite's write-ahead log before its fsync): the
    /// step that makes durable every commit returned so far. The runner calls it without
    /// holding the store, so the next group is written while this one is flushed, and
    /// acknowledges a group only after a sync that began after its commit returned. `None`
    /// (the default): a commit is durable when it returns.
    fn syncer(&mut self) -> Option<Box<dyn Syncer>> {
        None
    }
}

/// Makes a store's written commits durable (see [`QueueStore::syncer`]); may be called from
/// several runner threads at once.
pub trait Syncer: Send + Sync + 'static {
    /// Returns once every commit that returned before this call is durable.
    fn sync(&self) -> Result<(), BackendError>;
}

impl<S: QueueStore + ?Sized> QueueStore for Box<S> {
    fn load(&mut self) -> Result<Vec<JobRecord>, BackendError> {
        (**self).load()
    }
    fn commit(&mut self, changes: &[Change]) -> Result<(), BackendError> {
        (**self).commit(changes)
    }
    fn max_batch(&self) -> usize {
        (**self).max_batch()
    }
    fn close(&mut self) {
        (**self).close()
    }
    fn describe(&self) -> String {
        (**self).describe()
    }
    fn check(&mut self) -> Option<Result<(), BackendError>> {
        (**self).check()
    }
    fn keeps_extras(&self) -> bool {
        (**self).keeps_extras()
    }
    fn load_extras(&mut self) -> Result<Vec<ExtraRecord>, BackendError> {
        (**self).load_extras()
    }
    fn commit_with_extras(
        &mut self,
        changes: &[Change],
        extras: &[ExtraChange],
    ) -> Result<(), BackendError> {
        (**self).commit_with_extras(changes, extras)
    }
    fn takeovers(&mut self) -> Option<Takeovers> {
        (**self).takeovers()
    }
    fn lanes(&self) -> usize {
        (**self).lanes()
    }
    fn fork(&mut self) -> Result<Box<dyn QueueStore>, BackendError> {
        (**self).fork()
    }
    fn syncer(&mut self) -> Option<Box<dyn Syncer>> {
        (**self).syncer()
    }
}

/// Jobs a shared-database backend took over from a server whose lease ran out: already
/// this server's in the database, to be restored into the core while it runs.
pub struct Adopted {
    jobs: Vec<JobRecord>,
    bind: BindIds,
}

/// Tells a backend the durable ids its adopted jobs got.
pub(crate) type BindIds = Box<dyn FnOnce(&[u64]) + Send>;

impl Adopted {
    /// `jobs` (durable ids not yet assigned); `bind` learns the ids they get, before any
    /// change about them can reach the backend.
    pub(crate) fn new(jobs: Vec<JobRecord>, bind: BindIds) -> Adopted {
        Adopted { jobs, bind }
    }

    /// How many jobs.
    pub fn len(&self) -> usize {
        self.jobs.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }

    /// Numbers the jobs from `first` on (past every durable id the core has handed out),
    /// tells the backend, and returns them for
    /// [`Server::restore`](gearman_core::server::Server::restore).
    pub fn into_records(self, first: u64) -> Vec<JobRecord> {
        let ids: Vec<u64> = (first..).take(self.jobs.len()).collect();
        (self.bind)(&ids);
        self.jobs
            .into_iter()
            .zip(ids)
            .map(|(mut job, id)| {
                job.durable_id = id;
                job
            })
            .collect()
    }
}

/// Where a shared-database backend sends the jobs it takes over.
pub type Takeovers = tokio::sync::mpsc::UnboundedReceiver<Adopted>;

/// Called with the outcome of a durable insert: `Ok` once the commit holding it is durable,
/// `Err` with the reason when that commit failed. It never runs on the caller of
/// [`StoreHandle::insert`](crate::store::StoreHandle::insert), so it may block (e.g. on a bounded channel to that caller).
pub type Ack = Box<dyn FnOnce(Result<(), String>) + Send>;

#[cfg(test)]
mod tests {
    use super::error_chain;
    use std::fmt;

    #[derive(Debug)]
    struct Outer(bool, std::io::Error);
    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self.0 {
                true => write!(f, "cannot connect: {}", self.1),
                false => f.write_str("cannot connect"),
            }
        }
    }
    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.1)
        }
    }

    #[test]
    fn causes_are_added_once() {
        let refused = || std::io::Error::other("refused");
        assert_eq!(
            error_chain(&Outer(false, refused())),
            "cannot connect: refused"
        );
        assert_eq!(
            error_chain(&Outer(true, refused())),
            "cannot connect: refused"
        );
    }
}
