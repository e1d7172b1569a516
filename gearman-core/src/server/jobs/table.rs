//! The job table: live jobs in a dense `Vec`, found by job number through a window over
//! the recent numbers.
//!
//! Job numbers grow by one per job, and most jobs end roughly in the order they came, so
//! the slots of the numbers from the oldest live job to the newest sit in a `VecDeque`
//! indexed by `number - base` (4 bytes a job, no hashing). A job that outlives many later
//! ones would pin the window's start and let it fill with the holes of ended jobs; once
//! holes outnumber live jobs several times over, the oldest live entries move to a small
//! map instead and the window moves on, so the index stays within a few bytes per job.
//! A removal moves the last job into the hole (`swap_remove`), so the `Vec` stays dense
//! and shrinks when most of it is free.

use super::{Job, JobId};
use crate::server::id_map::IdMap;
use std::collections::VecDeque;

/// A window entry for a number whose job ended.
const ENDED: u32 = u32::MAX;
/// Below this many entries the window never sheds live jobs.
const MIN_WINDOW: usize = 1024;

#[derive(Debug, Default)]
pub(crate) struct JobTable {
    jobs: Vec<Job>,
    /// Slots of the jobs numbered `base..base + window.len()`, [`ENDED`] for ended ones;
    /// never starts with an ended entry.
    window: VecDeque<u32>,
    base: u64,
    /// Slots of live jobs numbered below `base`.
    strays: IdMap<u64, u32>,
    /// The number the next job gets.
    next: u64,
}

impl JobTable {
    pub(crate) fn new() -> Self {
        JobTable {
            next: 1,
            base: 1,
            ..JobTable::default()
        }
    }

    /// The number the next inserted job will get.
    pub(crate) fn next_id(&self) -> JobId {
        JobId(self.next)
    }

    /// Adds `job`, which must carry [`JobTable::next_id`].
    pub(crate) fn insert(&mut self, job: Job) -> JobId {
        let id = job.id;
        debug_assert_eq!(id.0, self.next);
        let slot = u32::try_from(self.jobs.len()).unwrap_or(ENDED);
        if self.window.is_empty() {
            self.base = id.0;
        }
        self.jobs.push(job);
        self.window.push_back(slot);
        self.next += 1;
        id
    }

    fn slot(&self, id: JobId) -> Option<usize> {
        let slot = match id.0.checked_sub(self.base) {
            Some(offset) => *self.window.get(usize::try_from(offset).ok()?)?,
            None => *self.strays.get(&id.0)?,
        };
        (slot != ENDED).then_some(slot as usize)
    }

    fn set_slot(&mut self, id: JobId, slot: u32) {
        match id.0.checked_sub(self.base) {
            Some(offset) => {
                if let Some(entry) = usize::try_from(offset)
                    .ok()
                    .and_then(|o| self.window.get_mut(o))
                {
                    *entry = slot;
                }
            }
            None => {
                if slot == ENDED {
                    self.strays.remove(&id.0);
                } else {
                    self.strays.insert(id.0, slot);
                }
            }
        }
    }

    pub(crate) fn get(&self, id: JobId) -> Option<&Job> {
        self.slot(id).and_then(|s| self.jobs.get(s))
    }

    pub(crate) fn get_mut(&mut self, id: JobId) -> Option<&mut Job> {
        self.slot(id).and_then(|s| self.jobs.get_mut(s))
    }

    pub(crate) fn contains(&self, id: JobId) -> bool {
        self.slot(id).is_some()
    }

    pub(crate) fn len(&self) -> usize {
        self.jobs.len()
    }

    /// Every job, in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Job> {
        self.jobs.iter()
    }

    /// Every job, oldest first.
    pub(crate) fn iter_in_order(&self) -> impl Iterator<Item = &Job> {
        let mut strays: Vec<(u64, u32)> = self.strays.iter().map(|(n, s)| (*n, *s)).collect();
        strays.sort_unstable();
        strays
            .into_iter()
            .map(|(_, s)| s)
            .chain(self.window.iter().copied())
            .filter(|&s| s != ENDED)
            .filter_map(|s| self.jobs.get(s as usize))
    }

    pub(crate) fn remove(&mut self, id: JobId) -> Option<Job> {
        let slot = self.slot(id)?;
        self.set_slot(id, ENDED);
        let job = self.jobs.swap_remove(slot);
        if let Some(moved) = self.jobs.get(slot).map(|j| j.id) {
            self.set_slot(moved, slot as u32);
        }
        while self.window.front() == Some(&ENDED) {
            self.window.pop_front();
            self.base += 1;
        }
        self.shed();
        self.shrink();
        Some(job)
    }

    /// Moves the oldest live entries out of a window that is mostly holes.
    fn shed(&mut self) {
        let live = |t: &Self| t.jobs.len() - t.strays.len();
        while self.window.len() > MIN_WINDOW && self.window.len() > 4 * live(self) {
            let Some(slot) = self.window.pop_front() else {
                break;
            };
            if slot != ENDED {
                self.strays.insert(self.base, slot);
            }
            self.base += 1;
        }
        while self.window.front() == Some(&ENDED) {
            self.window.pop_front();
            self.base += 1;
        }
    }

    /// Gives memory back once most of it is unused (amortised: it halves at most).
    fn shrink(&mut self) {
        if self.jobs.capacity() > 4 * self.jobs.len() + MIN_WINDOW {
            self.jobs.shrink_to(2 * self.jobs.len());
        }
        if self.window.capacity() > 4 * self.window.len() + MIN_WINDOW {
            self.window.shrink_to(2 * self.window.len());
        }
    }

    /// Checks the index against the jobs (for invariant checks).
    pub(crate) fn check(&self) -> Result<(), String> {
        for (slot, job) in self.jobs.iter().enumerate() {
            if self.slot(job.id) != Some(slot) {
                return Err(format!("job {:?} not indexed at its slot {slot}", job.id));
            }
        }
        let indexed = self.window.iter().filter(|&&s| s != ENDED).count() + self.strays.len();
        if indexed != self.jobs.len() {
            return Err(format!(
                "{indexed} job numbers indexed for {} jobs",
                self.jobs.len()
            ));
        }
        if self.window.front() == Some(&ENDED) {
            return Err("the job window starts with an ended job".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::job::NewJob;
    use super::super::FunctionId;
    use super::*;
    use crate::proto::Priority;

    fn add(t: &mut JobTable) -> JobId {
        let id = t.next_id();
        t.insert(Job::new(NewJob {
            id,
            function: FunctionId(0),
            unique: b"",
            data: b"x",
            priority: Priority::Normal,
            background: true,
            epoch: None,
            reducer: None,
            key: None,
            durable_id: None,
            since: 0,
        }))
    }

    fn window_len(t: &JobTable) -> usize {
        t.window.len()
    }

    #[test]
    fn jobs_are_found_by_number_after_removals_move_others() {
        let mut t = JobTable::new();
        let ids: Vec<JobId> = (0..10).map(|_| add(&mut t)).collect();
        assert_eq!(ids.first(), Some(&JobId(1)));
        // Removing from the middle moves the last job into the hole.
        for id in [ids[3], ids[0], ids[9]] {
            assert_eq!(t.remove(id).map(|j| j.id), Some(id));
            assert!(t.get(id).is_none());
            assert_eq!(t.remove(id).map(|j| j.id), None);
        }
        for id in ids.iter().filter(|id| ![3, 0, 9].contains(&(id.0 - 1))) {
            assert_eq!(t.get(*id).map(|j| j.id), Some(*id));
        }
        t.check().unwrap();
        let order: Vec<u64> = t.iter_in_order().map(|j| j.id.0).collect();
        assert_eq!(order, [2, 3, 5, 6, 7, 8, 9]);
        assert!(t.get(JobId(11)).is_none() && t.get(JobId(0)).is_none());
    }

    #[test]
    fn a_long_lived_job_does_not_pin_the_window() {
        let mut t = JobTable::new();
        let old = add(&mut t);
        for _ in 0..100_000 {
            let id = add(&mut t);
            t.remove(id);
        }
        // The ended jobs' numbers are not all kept behind the one still alive.
        assert!(window_len(&t) <= MIN_WINDOW + 1, "{}", window_len(&t));
        assert_eq!(t.get(old).map(|j| j.id), Some(old));
        let newer = add(&mut t);
        let order: Vec<JobId> = t.iter_in_order().map(|j| j.id).collect();
        assert_eq!(order, [old, newer]);
        t.check().unwrap();
        t.remove(old);
        assert_eq!(t.iter().map(|j| j.id).collect::<Vec<_>>(), [newer]);
        t.check().unwrap();
    }

    #[test]
    fn memory_is_given_back_once_jobs_are_gone() {
        let mut t = JobTable::new();
        let ids: Vec<JobId> = (0..100_000).map(|_| add(&mut t)).collect();
        for id in &ids[1..] {
            t.remove(*id);
        }
        assert_eq!(t.len(), 1);
        assert!(t.jobs.capacity() <= 4 + MIN_WINDOW, "{}", t.jobs.capacity());
        assert!(t.window.capacity() <= 4 * t.window.len() + MIN_WINDOW + 8);
        t.check().unwrap();
    }
}
