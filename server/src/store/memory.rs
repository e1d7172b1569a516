//! An in-memory [`QueueStore`] with injected failures, for testing the group-commit runner
//! and the server's handling of store outcomes without SQLite.
//!
//! [`MemoryStore::new`] gives the store (moved into the runner) and a [`MemoryControl`]
//! kept by the test: it fails the next commits, slows commits down, holds them until
//! released, and shows what is stored and how the changes were grouped.
//! [`MemoryStore::with_options`] also gives it several lanes (commits in flight at once)
//! or a separate sync step that the control can hold.

use super::seam::{BackendError, Change, QueueStore, Syncer};
use gearman_core::server::JobRecord;
use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// The in-memory store; see the module docs.
pub struct MemoryStore {
    shared: Arc<Shared>,
    options: MemoryOptions,
}

/// How a [`MemoryStore`] offers to run commits.
#[derive(Debug, Clone, Copy)]
pub struct MemoryOptions {
    /// Commits in flight at once ([`QueueStore::lanes`]).
    pub lanes: usize,
    /// Whether commits need a separate sync step ([`QueueStore::syncer`]) before they count
    /// as durable; [`MemoryControl::hold_syncs`] holds it.
    pub syncer: bool,
}

impl Default for MemoryOptions {
    fn default() -> Self {
        MemoryOptions {
            lanes: 1,
            syncer: false,
        }
    }
}

/// The test's side of a [`MemoryStore`]. Dropping it (or any clone) releases held
/// commits.
#[derive(Clone)]
pub struct MemoryControl {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Default)]
struct State {
    jobs: BTreeMap<u64, JobRecord>,
    fail_next: usize,
    delay: Duration,
    held: bool,
    started: usize,
    /// Commits running now, and the most at once so far.
    running: usize,
    most_running: usize,
    groups: Vec<Group>,
    syncs_held: bool,
    syncs: usize,
}

/// One commit the runner asked for, as the store saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// Inserts in the group.
    pub inserts: usize,
    /// Removes in the group.
    pub removes: usize,
    /// Whether the commit succeeded.
    pub committed: bool,
}

/// The error of an injected failure.
#[derive(Debug)]
pub struct InjectedFailure;

impl std::fmt::Display for InjectedFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("injected commit failure")
    }
}

impl std::error::Error for InjectedFailure {}

impl MemoryStore {
    /// An empty store and its control.
    pub fn new() -> (MemoryStore, MemoryControl) {
        MemoryStore::with_jobs(Vec::new())
    }

    /// A store already holding `jobs` (returned by [`QueueStore::load`]).
    pub fn with_jobs(jobs: Vec<JobRecord>) -> (MemoryStore, MemoryControl) {
        MemoryStore::with_options(jobs, MemoryOptions::default())
    }

    /// A store holding `jobs` that runs commits as `options` say.
    pub fn with_options(
        jobs: Vec<JobRecord>,
        options: MemoryOptions,
    ) -> (MemoryStore, MemoryControl) {
        let shared = Arc::new(Shared::default());
        lock(&shared).jobs = jobs.into_iter().map(|r| (r.durable_id, r)).collect();
        (
            MemoryStore {
                shared: shared.clone(),
                options,
            },
            MemoryControl { shared },
        )
    }
}

fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    // A panicking test thread must not hide the state from the next assertion.
    shared.state.lock().unwrap_or_else(|e| e.into_inner())
}

impl MemoryControl {
    /// The next `n` commits fail (and write nothing).
    pub fn fail_next(&self, n: usize) {
        lock(&self.shared).fail_next = n;
    }

    /// Every commit takes at least `delay` from now on.
    pub fn set_delay(&self, delay: Duration) {
        lock(&self.shared).delay = delay;
    }

    /// Commits that start from now on wait until [`release`](MemoryControl::release).
    pub fn hold(&self) {
        lock(&self.shared).held = true;
    }

    /// Lets held commits proceed.
    pub fn release(&self) {
        lock(&self.shared).held = false;
        self.shared.changed.notify_all();
    }

    /// Waits until at least `n` commits have started, up to `timeout`; whether they had.
    pub fn wait_started(&self, n: usize, timeout: Duration) -> bool {
        let state = lock(&self.shared);
        let (state, _) = self
            .shared
            .changed
            .wait_timeout_while(state, timeout, |s| s.started < n)
            .unwrap_or_else(|e| e.into_inner());
        state.started >= n
    }

    /// Syncs that start from now on wait until [`release_syncs`](Self::release_syncs).
    pub fn hold_syncs(&self) {
        lock(&self.shared).syncs_held = true;
    }

    /// Lets held syncs proceed.
    pub fn release_syncs(&self) {
        lock(&self.shared).syncs_held = false;
        self.shared.changed.notify_all();
    }

    /// Syncs started so far.
    pub fn syncs(&self) -> usize {
        lock(&self.shared).syncs
    }

    /// The most commits that ran at the same time so far.
    pub fn most_at_once(&self) -> usize {
        lock(&self.shared).most_running
    }

    /// The stored jobs, by durable id.
    pub fn jobs(&self) -> Vec<JobRecord> {
        lock(&self.shared).jobs.values().cloned().collect()
    }

    /// Every commit so far, in order.
    pub fn groups(&self) -> Vec<Group> {
        lock(&self.shared).groups.clone()
    }
}

/// A test that panics while commits are held must fail, not hang in the runner's join:
/// dropping any control releases held commits.
impl Drop for MemoryControl {
    fn drop(&mut self) {
        self.release();
        self.release_syncs();
    }
}

/// The sync step of a [`MemoryStore`] made with [`MemoryOptions::syncer`].
struct MemorySyncer {
    shared: Arc<Shared>,
}

impl Syncer for MemorySyncer {
    fn sync(&self) -> Result<(), BackendError> {
        let mut state = lock(&self.shared);
        state.syncs += 1;
        self.shared.changed.notify_all();
        let _state = self
            .shared
            .changed
            .wait_while(state, |s| s.syncs_held)
            .unwrap_or_else(|e| e.into_inner());
        Ok(())
    }
}

impl QueueStore for MemoryStore {
    fn load(&mut self) -> Result<Vec<JobRecord>, BackendError> {
        let mut jobs: Vec<JobRecord> = lock(&self.shared).jobs.values().cloned().collect();
        jobs.sort_by_key(|r| (r.priority, r.durable_id));
        Ok(jobs)
    }

    fn commit(&mut self, changes: &[Change]) -> Result<(), BackendError> {
        let mut state = lock(&self.shared);
        state.started += 1;
        state.running += 1;
        state.most_running = state.most_running.max(state.running);
        self.shared.changed.notify_all();
        let delay = state.delay;
        if !delay.is_zero() {
            drop(state);
            std::thread::sleep(delay);
            state = lock(&self.shared);
        }
        let mut state = self
            .shared
            .changed
            .wait_while(state, |s| s.held)
            .unwrap_or_else(|e| e.into_inner());
        let inserts = changes
            .iter()
            .filter(|c| matches!(c, Change::Insert(_)))
            .count();
        let removes = changes.len() - inserts;
        state.running -= 1;
        let fail = state.fail_next > 0;
        state.groups.push(Group {
            inserts,
            removes,
            committed: !fail,
        });
        if fail {
            state.fail_next -= 1;
            return Err(Box::new(InjectedFailure));
        }
        for change in changes {
            match change {
                Change::Insert(r) => {
                    state.jobs.insert(r.durable_id, r.clone());
                }
                Change::Remove(id) => {
                    state.jobs.remove(id);
                }
            }
        }
        Ok(())
    }

    fn describe(&self) -> String {
        "memory store".into()
    }

    fn lanes(&self) -> usize {
        self.options.lanes
    }

    fn fork(&mut self) -> Result<Box<dyn QueueStore>, BackendError> {
        Ok(Box::new(MemoryStore {
            shared: self.shared.clone(),
            options: self.options,
        }))
    }

    fn syncer(&mut self) -> Option<Box<dyn Syncer>> {
        self.options.syncer.then(|| {
            Box::new(MemorySyncer {
                shared: self.shared.clone(),
            }) as Box<dyn Syncer>
        })
    }
}
