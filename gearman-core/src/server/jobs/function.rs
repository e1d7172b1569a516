//! Per-function state: the three priority queues, the workers that can run it, and counts.

use super::job::JobId;
use crate::proto::Priority;
use crate::server::ConnId;
use bytes::Bytes;
use std::collections::VecDeque;

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
    /// Connections able to run it, each once, in registration order (for wake-ups).
    pub(crate) capable: Vec<ConnId>,
    /// Where the next wake-up round starts, so `--worker-wakeup N` rotates.
    pub(crate) wake_cursor: usize,
    /// Jobs that were already there when `maxqueue` last changed, as that number shrinks:
    /// a lowered limit refuses new jobs but never evicts old ones, so only the total above
    /// this may be held to the limit (the invariant check uses it).
    pub(crate) over_limit_grace: usize,
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
            capable: Vec::new(),
            wake_cursor: 0,
            over_limit_grace: 0,
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

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
}
