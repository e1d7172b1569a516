//! The unique index: the job of a function that coalesces on a key (every submit asks),
//! and the jobs of any function holding a unique id (GET_STATUS_UNIQUE, which names no
//! function, asks).
//!
//! Neither lookup grows with the number of functions: jobs are hashed by function and key,
//! and the jobs of several functions holding one unique id are linked in a chain whose head
//! alone is in the by-unique table. One unique id held in thousands of functions costs a
//! submit what a unique of its own costs. Both tables hold bare job ids (the key bytes
//! lie in the job), so the index adds a few bytes per coalescing job.

use super::ids::{FunctionId, JobId};
use super::job::{Job, KeyKind};
use super::table::JobTable;
use crate::server::id_map::IdMap;
use hashbrown::HashTable;
use std::hash::{BuildHasher, RandomState};

/// A job's neighbours in the chain of jobs holding its unique id.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Links {
    prev: Option<JobId>,
    next: Option<JobId>,
}

/// Every coalescing job, found by function and key, and by unique id alone.
#[derive(Debug, Default)]
pub(crate) struct UniqueIndex {
    /// Every coalescing job, hashed by function, key kind and key bytes.
    by_key: HashTable<JobId>,
    /// For each unique id (key kind `Unique`) one job holding it, hashed by the unique's
    /// bytes: the head of its chain.
    by_unique: HashTable<JobId>,
    /// The links of jobs in chains of two or more; a job alone with its unique has none.
    chains: IdMap<JobId, Links>,
    /// Keys come from peers: std's SipHash, which resists collision floods.
    hasher: RandomState,
}

impl UniqueIndex {
    /// The job of `function` that coalesces on `key`.
    pub(crate) fn find(
        &self,
        jobs: &JobTable,
        function: FunctionId,
        kind: KeyKind,
        key: &[u8],
    ) -> Option<JobId> {
        let hash = self.key_hash(function, kind, key);
        self.by_key
            .find(hash, |&id| {
                jobs.get(id)
                    .is_some_and(|j| j.function == function && j.key_bytes() == Some((kind, key)))
            })
            .copied()
    }

    /// The jobs holding unique id `unique` (sent as is, not `-`), one per function, in no
    /// particular order.
    pub(crate) fn holders<'a>(
        &'a self,
        jobs: &JobTable,
        unique: &[u8],
    ) -> impl Iterator<Item = JobId> + 'a {
        let head = self
            .by_unique
            .find(self.unique_hash(unique), |&id| holds(jobs, id, unique))
            .copied();
        std::iter::successors(head, |id| self.chains.get(id).and_then(|l| l.next))
    }

    /// Adds job `id`, which is in `jobs` with its key set; a job without a key is left out.
    pub(crate) fn insert(&mut self, jobs: &JobTable, id: JobId) {
        let Some(job) = jobs.get(id) else {
            return;
        };
        let Some((kind, key)) = job.key_bytes() else {
            return;
        };
        let hasher = &self.hasher;
        self.by_key
            .insert_unique(key_hash(hasher, job.function, kind, key), id, |&other| {
                jobs.get(other)
                    .and_then(|j| {
                        j.key_bytes()
                            .map(|(k, b)| key_hash(hasher, j.function, k, b))
                    })
                    .unwrap_or(0)
            });
        if kind != KeyKind::Unique {
            return;
        }
        let hash = self.unique_hash(key);
        match self.by_unique.find(hash, |&head| holds(jobs, head, key)) {
            Some(&head) => self.link_after(head, id),
            None => {
                self.by_unique.insert_unique(hash, id, |&other| {
                    jobs.get(other)
                        .and_then(Job::key_bytes)
                        .map_or(0, |(_, b)| hasher.hash_one(b))
                });
            }
        }
    }

    /// Takes job `id` out; it must still be in `jobs` with the key it was added with.
    pub(crate) fn remove(&mut self, jobs: &JobTable, id: JobId) {
        let Some(job) = jobs.get(id) else {
            return;
        };
        let Some((kind, key)) = job.key_bytes() else {
            return;
        };
        let hash = self.key_hash(job.function, kind, key);
        if let Ok(entry) = self.by_key.find_entry(hash, |&other| other == id) {
            entry.remove();
        }
        if kind != KeyKind::Unique {
            return;
        }
        let links = self.chains.remove(&id).unwrap_or_default();
        if let Some(prev) = links.prev {
            self.relink(prev, |l| l.next = links.next);
        }
        if let Some(next) = links.next {
            self.relink(next, |l| l.prev = links.prev);
        }
        if links.prev.is_none() {
            // It headed its chain: the next job holding the unique (same bytes, same hash)
            // takes its place.
            let hash = self.unique_hash(key);
            if let Ok(mut entry) = self.by_unique.find_entry(hash, |&other| other == id) {
                match links.next {
                    Some(next) => *entry.get_mut() = next,
                    None => {
                        entry.remove();
                    }
                }
            }
        }
    }

    /// Every job in the index (for invariant checks).
    pub(crate) fn ids(&self) -> impl Iterator<Item = JobId> + '_ {
        self.by_key.iter().copied()
    }

    /// The chains' links agree both ways, every chain has a head in the by-unique table,
    /// and no job is linked alone (for invariant checks).
    pub(crate) fn check_links(&self, jobs: &JobTable) -> Result<(), String> {
        for (&id, links) in &self.chains {
            if links.prev.is_none() && links.next.is_none() {
                return Err(format!("unique chain entry of {id:?} links nothing"));
            }
            let back = links.prev.map(|p| self.chains.get(&p).and_then(|l| l.next));
            let forth = links.next.map(|n| self.chains.get(&n).and_then(|l| l.prev));
            if back.is_some_and(|b| b != Some(id)) || forth.is_some_and(|f| f != Some(id)) {
                return Err(format!("unique chain links of {id:?} are one-sided"));
            }
            if links.prev.is_none() {
                let Some((KeyKind::Unique, key)) = jobs.get(id).and_then(Job::key_bytes) else {
                    return Err(format!("unique chain head {id:?} holds no unique"));
                };
                if self.holders(jobs, key).next() != Some(id) {
                    return Err(format!(
                        "unique chain head {id:?} not in the by-unique table"
                    ));
                }
            }
        }
        Ok(())
    }

    /// Changes the links of `id`, dropping its entry when it is left alone.
    fn relink(&mut self, id: JobId, change: impl FnOnce(&mut Links)) {
        if let Some(links) = self.chains.get_mut(&id) {
            change(links);
            if *links == Links::default() {
                self.chains.remove(&id);
            }
        }
    }

    /// Links `id` into the chain right after `head`.
    fn link_after(&mut self, head: JobId, id: JobId) {
        let next = self.chains.get(&head).and_then(|l| l.next);
        self.chains.entry(head).or_default().next = Some(id);
        self.chains.insert(
            id,
            Links {
                prev: Some(head),
                next,
            },
        );
        if let Some(next) = next {
            self.relink(next, |l| l.prev = Some(id));
        }
    }

    fn key_hash(&self, function: FunctionId, kind: KeyKind, key: &[u8]) -> u64 {
        key_hash(&self.hasher, function, kind, key)
    }

    fn unique_hash(&self, unique: &[u8]) -> u64 {
        self.hasher.hash_one(unique)
    }
}

/// One definition of the by-key hash, for lookups and for the table's rehashing.
fn key_hash(hasher: &RandomState, function: FunctionId, kind: KeyKind, key: &[u8]) -> u64 {
    hasher.hash_one((function, kind, key))
}

/// Whether job `id` holds unique id `unique`.
fn holds(jobs: &JobTable, id: JobId, unique: &[u8]) -> bool {
    jobs.get(id).and_then(Job::key_bytes) == Some((KeyKind::Unique, unique))
}

#[cfg(test)]
mod tests {
    use super::super::job::NewJob;
    use super::*;
    use crate::proto::Priority;

    /// Adds a job of function `function` holding `unique` to `jobs` and `index`.
    fn add(jobs: &mut JobTable, index: &mut UniqueIndex, function: u32, unique: &[u8]) -> JobId {
        let id = jobs.next_id();
        jobs.insert(Job::new(NewJob {
            id,
            function: FunctionId(function),
            unique,
            data: b"x",
            priority: Priority::Normal,
            background: true,
            epoch: None,
            reducer: None,
            key: KeyKind::of(unique, b"x"),
            durable_id: None,
            since: 0,
        }));
        index.insert(jobs, id);
        id
    }

    fn holders(jobs: &JobTable, index: &UniqueIndex, unique: &[u8]) -> Vec<JobId> {
        let mut ids: Vec<JobId> = index.holders(jobs, unique).take(1000).collect();
        ids.sort_unstable();
        ids
    }

    #[test]
    fn one_unique_in_many_functions_is_found_per_function_and_alone() {
        let (mut jobs, mut index) = (JobTable::new(), UniqueIndex::default());
        let held: Vec<JobId> = (0..5)
            .map(|f| add(&mut jobs, &mut index, f, b"u"))
            .collect();
        let other = add(&mut jobs, &mut index, 0, b"v");
        for (f, &id) in held.iter().enumerate() {
            let found = index.find(&jobs, FunctionId(f as u32), KeyKind::Unique, b"u");
            assert_eq!(found, Some(id));
        }
        assert_eq!(
            index.find(&jobs, FunctionId(9), KeyKind::Unique, b"u"),
            None
        );
        assert_eq!(holders(&jobs, &index, b"u"), held);
        assert_eq!(holders(&jobs, &index, b"v"), [other]);
        assert!(holders(&jobs, &index, b"w").is_empty());
        index.check_links(&jobs).unwrap();

        // Out of the middle, the head, the tail (in link order), then the rest.
        let order: Vec<JobId> = index.holders(&jobs, b"u").collect();
        let mut left = held.clone();
        for id in [order[2], order[0], order[4], order[1], order[3]] {
            index.remove(&jobs, id);
            jobs.remove(id);
            left.retain(|&l| l != id);
            assert_eq!(holders(&jobs, &index, b"u"), left);
            index.check_links(&jobs).unwrap();
            for &l in &left {
                let f = jobs.get(l).unwrap().function;
                assert_eq!(index.find(&jobs, f, KeyKind::Unique, b"u"), Some(l));
            }
        }
        assert!(index.chains.is_empty(), "no links left: {:?}", index.chains);
        assert_eq!(index.ids().collect::<Vec<_>>(), [other]);
    }

    #[test]
    fn a_submit_looks_at_one_job_however_many_functions_hold_its_unique() {
        let (mut jobs, mut index) = (JobTable::new(), UniqueIndex::default());
        for f in 0..2000 {
            add(&mut jobs, &mut index, f, b"shared");
        }
        let looked_at = std::cell::Cell::new(0);
        let hash = index.key_hash(FunctionId(1234), KeyKind::Unique, b"shared");
        let found = index.by_key.find(hash, |&id| {
            looked_at.set(looked_at.get() + 1);
            jobs.get(id).is_some_and(|j| j.function == FunctionId(1234))
        });
        assert!(found.is_some());
        // Only jobs whose hash matches are compared: one here, barring a rare collision.
        assert!(looked_at.get() <= 2, "compared {} jobs", looked_at.get());
        assert_eq!(index.by_unique.len(), 1, "one head for the shared unique");
    }

    #[test]
    fn data_keys_are_found_by_function_but_not_as_uniques() {
        let (mut jobs, mut index) = (JobTable::new(), UniqueIndex::default());
        let id = add(&mut jobs, &mut index, 3, b"-");
        assert_eq!(
            index.find(&jobs, FunctionId(3), KeyKind::Data, b"x"),
            Some(id)
        );
        assert!(holders(&jobs, &index, b"-").is_empty());
        assert!(holders(&jobs, &index, b"x").is_empty());
        index.remove(&jobs, id);
        assert_eq!(index.find(&jobs, FunctionId(3), KeyKind::Data, b"x"), None);
        assert_eq!(index.ids().count(), 0);
    }
}
