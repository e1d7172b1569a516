//! Functions: each one's three priority queues and counts, interned so a job names its
//! function by index; and, per priority, the functions that have queued jobs, so a grab
//! looks only where there is work.

use super::ids::{FunctionId, JobId};
use crate::proto::Priority;
use bytes::Bytes;
use std::cell::Cell;
use std::collections::{BTreeMap, HashMap, VecDeque};

/// Below this capacity a queue is never shrunk.
const MIN_QUEUE_CAPACITY: usize = 1024;

/// One function's queues. Queues hold job ids; a job that leaves from the middle (it ended:
/// cancelled, abandoned) leaves its id behind, skipped when it reaches the front, so
/// removal is O(1); `queued` counts live entries only, and the deques are compacted when
/// stale ids outnumber live ones. A job leaves from the front only to run, so a job that
/// comes back to its queue is never there twice.
#[derive(Debug)]
pub(crate) struct Function {
    pub(crate) name: Bytes,
    queues: [VecDeque<JobId>; 3],
    queued: [usize; 3],
    /// Jobs currently held by workers.
    pub(crate) running: usize,
    /// Epoch jobs waiting for their time, and background jobs waiting for the store.
    pub(crate) waiting: usize,
    /// CAN_DO registrations, duplicates counted (as gearmand's `status` WORKERS column).
    pub(crate) registrations: usize,
    /// Jobs that were already there when `maxqueue` last changed, as that number shrinks:
    /// a lowered limit refuses new jobs but never evicts old ones, so only the total above
    /// this may be held to the limit (the invariant check uses it).
    pub(crate) over_limit_grace: usize,
    /// Its place in [`Functions`]' ready list of each priority, while it has jobs queued
    /// at that priority.
    ready_pos: [Option<u32>; 3],
    /// The place of its counters in the server's statistics, once looked up (`Some(None)`:
    /// past the cap of functions counted on their own).
    pub(crate) stats_slot: Option<Option<usize>>,
}

impl Function {
    pub(crate) fn new(name: Bytes) -> Self {
        Function {
            name,
            queues: Default::default(),
            queued: [0; 3],
            running: 0,
            waiting: 0,
            registrations: 0,
            over_limit_grace: 0,
            ready_pos: [None; 3],
            stats_slot: None,
        }
    }

    pub(crate) fn push(&mut self, priority: Priority, job: JobId) {
        if let (Some(q), Some(n)) = (
            self.queues.get_mut(priority.index()),
            self.queued.get_mut(priority.index()),
        ) {
            q.push_back(job);
            *n += 1;
        }
    }

    /// The oldest live job of `priority`, dropping the stale ids before it; `is_live` says
    /// whether an id is still queued.
    pub(crate) fn peek(
        &mut self,
        priority: Priority,
        is_live: impl Fn(JobId) -> bool,
    ) -> Option<JobId> {
        let q = self.queues.get_mut(priority.index())?;
        while let Some(&id) = q.front() {
            if is_live(id) {
                return Some(id);
            }
            q.pop_front();
        }
        None
    }

    /// `job` left the queue: popped if it is at the front, else left behind as a stale id
    /// (compacted away, with `is_live`, once stale ids outnumber live ones).
    pub(crate) fn remove(
        &mut self,
        priority: Priority,
        job: JobId,
        is_live: impl Fn(JobId) -> bool,
    ) {
        let i = priority.index();
        let (Some(q), Some(n)) = (self.queues.get_mut(i), self.queued.get_mut(i)) else {
            return;
        };
        *n = n.saturating_sub(1);
        if q.front() == Some(&job) {
            q.pop_front();
        } else if q.len() > 2 * *n + 64 {
            q.retain(|&id| is_live(id));
        }
        // A drained backlog gives its memory back (amortised: a shrink at most halves it).
        if q.capacity() > 4 * q.len() + MIN_QUEUE_CAPACITY {
            q.shrink_to(2 * q.len());
        }
    }

    pub(crate) fn queued(&self, priority: Priority) -> usize {
        self.queued.get(priority.index()).copied().unwrap_or(0)
    }

    pub(crate) fn queued_total(&self) -> usize {
        self.queued.iter().sum()
    }

    /// Jobs counted against `maxqueue` and shown as TOTAL by `status`.
    pub(crate) fn total(&self) -> usize {
        self.queued_total() + self.running + self.waiting
    }

    /// Live and stale ids in the queues (for invariant checks).
    pub(crate) fn queue_ids(&self) -> impl Iterator<Item = (Priority, JobId)> + '_ {
        Priority::ALL
            .into_iter()
            .zip(self.queues.iter())
            .flat_map(|(p, q)| q.iter().map(move |&id| (p, id)))
    }
}

/// Every function, by index and by name, and which have work queued.
#[derive(Debug, Default)]
pub(crate) struct Functions {
    all: Vec<Option<Function>>,
    by_name: HashMap<Bytes, FunctionId>,
    /// By name, for listings in gearmand's order.
    sorted: BTreeMap<Bytes, FunctionId>,
    /// Indexes of dropped functions, for reuse.
    free: Vec<FunctionId>,
    /// Per priority, the functions with jobs queued at it.
    ready: [Vec<FunctionId>; 3],
    /// The function the last lookup by name found: a run of requests for one function
    /// (each submit looks its function up twice) compares names instead of hashing them.
    /// Checked against the name at that index, so a dropped or reused index never misleads.
    last_found: Cell<Option<FunctionId>>,
}

impl Functions {
    pub(crate) fn get(&self, id: FunctionId) -> Option<&Function> {
        self.all.get(id.0 as usize).and_then(Option::as_ref)
    }

    pub(crate) fn get_mut(&mut self, id: FunctionId) -> Option<&mut Function> {
        self.all.get_mut(id.0 as usize).and_then(Option::as_mut)
    }

    pub(crate) fn id(&self, name: &[u8]) -> Option<FunctionId> {
        let last = self.last_found.get();
        if let Some(last) = last.filter(|&l| self.get(l).is_some_and(|f| f.name == name)) {
            return Some(last);
        }
        let found = self.by_name.get(name).copied();
        if found.is_some() {
            self.last_found.set(found);
        }
        found
    }

    /// The function's name (empty for an index not in use).
    pub(crate) fn name(&self, id: FunctionId) -> Bytes {
        self.get(id).map(|f| f.name.clone()).unwrap_or_default()
    }

    /// The function `name`, created if new (with a copy of `name`, so no read buffer is
    /// kept alive by it).
    pub(crate) fn intern(&mut self, name: &[u8]) -> FunctionId {
        if let Some(id) = self.id(name) {
            return id;
        }
        let name = Bytes::copy_from_slice(name);
        let f = Some(Function::new(name.clone()));
        let id = match self.free.pop() {
            Some(id) => {
                if let Some(slot) = self.all.get_mut(id.0 as usize) {
                    *slot = f;
                }
                id
            }
            None => {
                self.all.push(f);
                FunctionId(u32::try_from(self.all.len() - 1).unwrap_or(u32::MAX))
            }
        };
        self.by_name.insert(name.clone(), id);
        self.sorted.insert(name, id);
        id
    }

    /// Forgets a function nothing depends on any more.
    pub(crate) fn remove(&mut self, id: FunctionId) {
        if let Some(f) = self.all.get_mut(id.0 as usize).and_then(Option::take) {
            self.by_name.remove(&f.name);
            self.sorted.remove(&f.name);
            self.free.push(id);
        }
    }

    /// Every function, by name.
    pub(crate) fn sorted(&self) -> impl Iterator<Item = (FunctionId, &Function)> {
        self.sorted
            .values()
            .filter_map(|&id| self.get(id).map(|f| (id, f)))
    }

    /// The functions with jobs queued at `priority`, in no particular order.
    pub(crate) fn ready(&self, priority: Priority) -> &[FunctionId] {
        self.ready.get(priority.index()).map_or(&[], Vec::as_slice)
    }

    /// Appends a job to its function's queue.
    pub(crate) fn push(&mut self, id: FunctionId, priority: Priority, job: JobId) {
        let Some(f) = self.get_mut(id) else {
            return;
        };
        f.push(priority, job);
        if f.queued(priority) == 1 {
            self.set_ready(id, priority, true);
        }
    }

    /// A job left its function's queue (see [`Function::remove`]).
    pub(crate) fn remove_queued(
        &mut self,
        id: FunctionId,
        priority: Priority,
        job: JobId,
        is_live: impl Fn(JobId) -> bool,
    ) {
        let Some(f) = self.get_mut(id) else {
            return;
        };
        f.remove(priority, job, is_live);
        if f.queued(priority) == 0 {
            self.set_ready(id, priority, false);
        }
    }

    fn set_ready(&mut self, id: FunctionId, priority: Priority, ready: bool) {
        let p = priority.index();
        let pos = self
            .get(id)
            .and_then(|f| f.ready_pos.get(p).copied().flatten());
        let Some(list) = self.ready.get_mut(p) else {
            return;
        };
        match (ready, pos) {
            (true, None) => {
                let at = u32::try_from(list.len()).unwrap_or(u32::MAX);
                list.push(id);
                if let Some(slot) = self.get_mut(id).and_then(|f| f.ready_pos.get_mut(p)) {
                    *slot = Some(at);
                }
            }
            (false, Some(at)) => {
                list.swap_remove(at as usize);
                let moved = list.get(at as usize).copied();
                if let Some(slot) = self.get_mut(id).and_then(|f| f.ready_pos.get_mut(p)) {
                    *slot = None;
                }
                if let Some(slot) = moved
                    .and_then(|m| self.get_mut(m))
                    .and_then(|f| f.ready_pos.get_mut(p))
                {
                    *slot = Some(at);
                }
            }
            _ => {}
        }
    }

    /// Every function in use, with its index.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (FunctionId, &Function)> {
        self.all.iter().enumerate().filter_map(|(i, f)| {
            f.as_ref()
                .map(|f| (FunctionId(u32::try_from(i).unwrap_or(u32::MAX)), f))
        })
    }

    /// Checks the name indexes and ready lists (for invariant checks).
    pub(crate) fn check(&self) -> Result<(), String> {
        for (id, f) in self.iter() {
            if self.by_name.get(&f.name) != Some(&id) || self.sorted.get(&f.name) != Some(&id) {
                return Err(format!("function {:?} not indexed by name", f.name));
            }
            for p in Priority::ALL {
                let listed = self.ready(p).iter().filter(|&&r| r == id).count();
                if listed != usize::from(f.queued(p) > 0) {
                    return Err(format!(
                        "function {:?} listed {listed} times as ready at {p:?} with {} queued",
                        f.name,
                        f.queued(p)
                    ));
                }
                if let Some(at) = f.ready_pos.get(p.index()).copied().flatten() {
                    if self.ready(p).get(at as usize) != Some(&id) {
                        return Err(format!("function {:?} misplaced in the ready list", f.name));
                    }
                }
            }
        }
        if self.by_name.len() != self.iter().count() {
            return Err("a function name indexes no function".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn a_name_looked_up_last_is_not_found_once_its_index_is_reused() {
        let mut f = Functions::default();
        let a = f.intern(b"a");
        let other = f.intern(b"other");
        assert_eq!(f.id(b"a"), Some(a));
        f.remove(a);
        assert_eq!(f.id(b"a"), None, "dropped");
        let b = f.intern(b"b");
        assert_eq!(b, a, "the index is reused");
        assert_eq!(f.id(b"a"), None, "the index now names b");
        assert_eq!(f.id(b"b"), Some(b));
        assert_eq!(f.id(b"other"), Some(other));
        assert_eq!(f.id(b"b"), Some(b));
        assert_eq!(f.intern(b"a"), FunctionId(2), "a new function");
    }

    #[test]
    fn jobs_leave_from_the_front_or_as_stale_ids() {
        let mut f = Function::new(Bytes::from_static(b"f"));
        let mut live: HashSet<JobId> = (1..=3).map(JobId).collect();
        for id in 1..=3 {
            f.push(Priority::Normal, JobId(id));
        }
        // The middle one ends: counted out at once, its id left behind.
        live.remove(&JobId(2));
        f.remove(Priority::Normal, JobId(2), |id| live.contains(&id));
        assert_eq!(f.queued(Priority::Normal), 2);
        assert_eq!(f.queue_ids().count(), 3);
        // The front one runs: popped. It comes straight back (a worker lost it): behind
        // job 3, and there once.
        assert_eq!(
            f.peek(Priority::Normal, |id| live.contains(&id)),
            Some(JobId(1))
        );
        f.remove(Priority::Normal, JobId(1), |id| {
            live.contains(&id) && id != JobId(1)
        });
        f.push(Priority::Normal, JobId(1));
        assert_eq!(f.queue_ids().filter(|(_, id)| *id == JobId(1)).count(), 1);
        assert_eq!(
            f.peek(Priority::Normal, |id| live.contains(&id)),
            Some(JobId(3))
        );
        assert_eq!(f.queued_total(), 2);
        // The stale id of job 2 was skipped and dropped on the way.
        assert_eq!(f.queue_ids().count(), 2);
    }

    #[test]
    fn stale_ids_are_compacted_once_they_outnumber_live_ones() {
        let mut f = Function::new(Bytes::from_static(b"f"));
        let mut live: HashSet<JobId> = (1..=1000).map(JobId).collect();
        for id in 1..=1000 {
            f.push(Priority::Low, JobId(id));
        }
        for id in 2..=1000 {
            live.remove(&JobId(id));
            f.remove(Priority::Low, JobId(id), |id| live.contains(&id));
        }
        assert_eq!(f.queued(Priority::Low), 1);
        assert!(f.queue_ids().count() <= 2 + 64, "{}", f.queue_ids().count());
    }

    #[test]
    fn a_drained_queue_gives_its_memory_back() {
        let mut f = Function::new(Bytes::from_static(b"f"));
        for id in 1..=100_000 {
            f.push(Priority::Normal, JobId(id));
        }
        // Each leaves from the front, to run.
        for id in 1..=99_990 {
            f.remove(Priority::Normal, JobId(id), |_| true);
        }
        let capacity = f.queues[Priority::Normal.index()].capacity();
        assert!(capacity <= 4 * 10 + MIN_QUEUE_CAPACITY, "{capacity}");
        assert_eq!(f.queue_ids().count(), 10);
    }
}
