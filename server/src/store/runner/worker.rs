//! The runner's threads and the state they share: the queue, the store's lanes (each free
//! or held by the thread committing on it), and what the gathering heuristic learns.

use super::failure_log::FailureLog;
use super::queue::{Group, Op, Queue};
use super::sync_gate::SyncGate;
use crate::store::metrics::CommitStats;
use crate::store::seam::{error_chain, QueueStore, Syncer, CHECK_EVERY};
use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Upper bound on the wait for the rest of a group.
const MAX_GATHER: Duration = Duration::from_millis(10);

/// Shared by the [`StoreHandle`](super::StoreHandle) and the runner threads.
pub(super) struct Shared {
    state: Mutex<State>,
    /// Idle threads wait here for a group to take.
    work: Condvar,
    /// A thread gathering the rest of a group waits here for more inserts.
    more: Condvar,
    gate: Option<SyncGate>,
    pub(super) stats: Arc<CommitStats>,
    name: String,
    max_batch: usize,
}

pub(super) struct State {
    queue: Queue,
    /// The store's lanes; `None` while a thread holds it.
    lanes: Vec<Option<Box<dyn QueueStore>>>,
    /// Lanes nobody holds.
    free: Vec<usize>,
    closing: bool,
    /// Threads waiting for work.
    idle: usize,
    /// A thread waits for the rest of a group: the others leave the queue to it.
    gathering: bool,
    /// Runner threads alive.
    pub(super) workers: usize,
    /// Groups that ended lately, with their inserts: their submitters are likely to come
    /// back (see [`State::expected`]).
    recent: VecDeque<(Instant, usize)>,
    /// How long a group takes to become durable (moving average): the longest worth
    /// waiting for a group.
    commit_time: Duration,
    /// The last commit or health check ended.
    last_activity: Instant,
    failures: FailureLog,
}

impl Shared {
    pub(super) fn new(lanes: Vec<Box<dyn QueueStore>>, syncer: Option<Box<dyn Syncer>>) -> Shared {
        let name = lanes[0].describe();
        let max_batch = lanes[0].max_batch().max(1);
        Shared {
            state: Mutex::new(State {
                queue: Queue::default(),
                free: (0..lanes.len()).rev().collect(),
                lanes: lanes.into_iter().map(Some).collect(),
                closing: false,
                idle: 0,
                gathering: false,
                workers: 0,
                recent: VecDeque::new(),
                commit_time: Duration::ZERO,
                last_activity: Instant::now(),
                failures: FailureLog::default(),
            }),
            work: Condvar::new(),
            more: Condvar::new(),
            gate: syncer.map(SyncGate::new),
            stats: Arc::new(CommitStats::default()),
            name,
            max_batch,
        }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking runner thread must not take the others with it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a change and wakes a thread for it; gives it back when no thread runs.
    pub(super) fn push(&self, op: Op) -> Option<Op> {
        let mut st = self.lock();
        if st.workers == 0 {
            return Some(op);
        }
        st.queue.push(op);
        if st.gathering {
            self.more.notify_one();
        } else if st.idle > 0 && self.takeable(&st) {
            // (A thread woken for a group it may not take yet only costs a context switch.)
            self.work.notify_one();
        }
        None
    }

    /// Commit what is queued, then stop.
    pub(super) fn close(&self) {
        self.lock().closing = true;
        self.work.notify_all();
        self.more.notify_all();
    }

    /// Whether a thread may take a group now.
    ///
    /// Beside a commit in flight on another lane, only a full group starts (as many inserts
    /// as are [expected](State::expected) back): submitters that each wait for their commit
    /// otherwise split into two groups that take turns at the database's flush and never
    /// merge again (measured with PostgreSQL at 16 submitters: 7.9 to 9.9 inserts per
    /// commit on two connections against 13.5 to 14.5 on one; with SQLite's sync step, 1.6
    /// to 2.0 inserts per commit at 4 submitters against 3.2 to 3.9 with the rule).
    fn takeable(&self, st: &State) -> bool {
        let beside = st.queue.in_flight() > 0 && !st.closing;
        let full = !beside || st.queue.pending_inserts() >= st.expected().max(1);
        !st.gathering && !st.free.is_empty() && st.queue.ready(st.with_carried()) && full
    }

    /// Gives a lane back after its commit (or once its group is written, with a sync step).
    fn give_back(&self, st: &mut State, lane: usize, store: Box<dyn QueueStore>) {
        st.lanes[lane] = Some(store);
        st.free.push(lane);
    }
}

impl State {
    /// Whether changes carried over a failed commit make a group on their own: at close,
    /// and when nothing else ran for [`CHECK_EVERY`] (a failed delete must not wait for
    /// unrelated traffic, and its retry tells whether the store is writable again).
    fn with_carried(&self) -> bool {
        self.closing
            || (self.queue.has_carried()
                && self.queue.in_flight() == 0
                && self.last_activity.elapsed() >= CHECK_EVERY)
    }

    /// A group with `inserts` inserts ended now.
    fn ended(&mut self, inserts: usize) {
        let now = Instant::now();
        self.recent.push_back((now, inserts));
        while self.recent.len() > 64
            || self
                .recent
                .front()
                .is_some_and(|(at, _)| now - *at > self.commit_time)
        {
            self.recent.pop_front();
        }
    }

    /// How many submitters are likely to come back soon: those of the groups that ended
    /// within the last commit's duration and of the groups in flight (one round of
    /// submitters that each wait for their commit, however many groups it took).
    fn expected(&self) -> usize {
        let now = Instant::now();
        let ended: usize = self
            .recent
            .iter()
            .filter(|(at, _)| now - *at <= self.commit_time)
            .map(|(_, n)| n)
            .sum();
        ended + self.queue.inserts_in_flight()
    }
}

/// One runner thread.
pub(super) fn run(shared: Arc<Shared>) {
    let _exit = ExitGuard(&shared);
    let mut st = shared.lock();
    loop {
        loop {
            if shared.takeable(&st) {
                break;
            }
            if st.closing && st.queue.is_idle() {
                return;
            }
            if !st.closing
                && st.queue.is_idle()
                && st.free.contains(&0)
                && st.last_activity.elapsed() >= CHECK_EVERY
            {
                st = check(&shared, st);
                continue;
            }
            st.idle += 1;
            let wait = CHECK_EVERY
                .saturating_sub(st.last_activity.elapsed())
                .max(Duration::from_millis(10));
            st = shared
                .work
                .wait_timeout(st, wait)
                .unwrap_or_else(|p| p.into_inner())
                .0;
            st.idle -= 1;
        }
        let gathered;
        (st, gathered) = gather(&shared, st);
        let with_carried = st.with_carried();
        let Some((group, flight)) = st.queue.take(shared.max_batch, with_carried) else {
            continue;
        };
        let lane = st.free.pop().expect("takeable checked a free lane");
        let store = st.lanes[lane].take().expect("a free lane holds its store");
        let last_try = st.closing;
        if st.idle > 0 && shared.takeable(&st) {
            shared.work.notify_one();
        }
        drop(st);
        let (result, store, profile) = commit(&shared, lane, store, group, gathered);
        st = shared.lock();
        if let Some(store) = store {
            shared.give_back(&mut st, lane, store);
        }
        st.commit_time = (st.commit_time * 3 + profile.durable) / 4;
        st.ended(profile.inserts);
        st.last_activity = Instant::now();
        let carried = match result {
            Ok(()) => {
                st.failures.recovered(&shared.name);
                Vec::new()
            }
            Err((e, carried)) => {
                st.failures.failed(&e, profile.changes);
                if last_try && !carried.is_empty() {
                    tracing::error!(
                        "{}: {} change(s) not written at close: {e}",
                        shared.name,
                        carried.len()
                    );
                    Vec::new()
                } else {
                    carried
                }
            }
        };
        st.queue.finish(flight, carried);
        if st.closing {
            // Others may be waiting to see the queue empty, or for a lane to retry on.
            shared.work.notify_all();
        }
    }
}

/// What one commit measured.
struct Profile {
    changes: usize,
    inserts: usize,
    /// From the commit's start until it was durable.
    durable: Duration,
}

/// A failed commit's error and what it leaves to retry.
type Failure = (String, Vec<Op>);

/// Commits `group` on `store` (lane `lane`), waits until it is durable, runs its acks.
/// Gives the store back early (and returns `None` for it) when a sync follows the commit,
/// so the next group is written meanwhile.
fn commit(
    shared: &Shared,
    lane: usize,
    mut store: Box<dyn QueueStore>,
    mut group: Group,
    gathered: Duration,
) -> (Result<(), Failure>, Option<Box<dyn QueueStore>>, Profile) {
    let started = Instant::now();
    let queued: Duration = group.queued.iter().map(|at| started - *at).sum();
    let written = if group.extras.is_empty() {
        store.commit(&group.changes)
    } else {
        store.commit_with_extras(&group.changes, &group.extras)
    };
    let took = started.elapsed();
    let mut store = Some(store);
    let mut synced = Duration::ZERO;
    let mut undo = false;
    let result = match (written, &shared.gate) {
        (Ok(()), Some(gate)) => {
            let seq = gate.wrote();
            if let Some(store) = store.take() {
                let mut st = shared.lock();
                shared.give_back(&mut st, lane, store);
                if st.idle > 0 && shared.takeable(&st) {
                    shared.work.notify_one();
                }
            }
            let (result, spent) = gate.sync_through(seq);
            synced = spent;
            // Written but not durable: its inserts are refused, so their rows go too.
            undo = result.is_err();
            result.map_err(|e| format!("{}: cannot sync: {e}", shared.name))
        }
        (written, _) => written.map_err(|e| format!("{}: {}", shared.name, error_chain(&*e))),
    };
    let durable = started.elapsed();
    let profile = Profile {
        changes: group.len(),
        inserts: group.inserts(),
        durable,
    };
    shared.stats.record(result.is_ok(), took, group.len());
    shared
        .stats
        .profiled(group.inserts(), queued, gathered, synced, durable);
    for ack in group.acks.drain(..) {
        ack(result.clone());
    }
    let result = result.map_err(|e| {
        let carried = group.carried_over(undo);
        (e, carried)
    });
    (result, store, profile)
}

/// Waits, within the bounds in the module docs, for the rest of the previous group's
/// submitters; how long it waited.
fn gather<'a>(
    shared: &'a Shared,
    mut st: MutexGuard<'a, State>,
) -> (MutexGuard<'a, State>, Duration) {
    let want = st.expected();
    let short = |st: &State| {
        !st.closing
            && st.queue.pending_inserts() < want
            && st.queue.pending_len() < shared.max_batch
    };
    if st.queue.in_flight() > 0 || !short(&st) {
        return (st, Duration::ZERO);
    }
    let started = Instant::now();
    let deadline = started + st.commit_time.min(MAX_GATHER);
    st.gathering = true;
    while short(&st) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        st = shared
            .more
            .wait_timeout(st, left)
            .unwrap_or_else(|p| p.into_inner())
            .0;
    }
    st.gathering = false;
    (st, started.elapsed())
}

/// The idle health check, for `gearman_store_up`, on lane 0.
fn check<'a>(shared: &'a Shared, mut st: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
    st.free.retain(|&l| l != 0);
    let mut store = st.lanes[0].take().expect("lane 0 is free");
    drop(st);
    if let Some(result) = store.check() {
        if let Err(e) = &result {
            tracing::debug!(
                "{}: health check failed: {}",
                shared.name,
                error_chain(&**e)
            );
        }
        shared.stats.checked(result.is_ok());
    }
    let mut st = shared.lock();
    shared.give_back(&mut st, 0, store);
    st.last_activity = Instant::now();
    st
}

/// Counts the thread out when it ends (or panics); the last one out closes the store, on
/// its own thread (a networked store's client must not be dropped on the server's runtime).
struct ExitGuard<'a>(&'a Shared);

impl Drop for ExitGuard<'_> {
    fn drop(&mut self) {
        let mut st = self.0.lock();
        st.workers -= 1;
        self.0.work.notify_all();
        if st.workers > 0 {
            return;
        }
        let lanes: Vec<_> = st.lanes.iter_mut().map(Option::take).collect();
        drop(st);
        let mut lanes = lanes.into_iter();
        if let Some(Some(mut main)) = lanes.next() {
            main.close();
        }
        drop(lanes);
    }
}
