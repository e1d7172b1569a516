//! The unique index: the job of a function that coalesces on a key (every submit asks),
//! and the jobs of any function holding a unique id (GET_STATUS_UNIQUE, which names no
//! function, asks).
//!
//! Neither lookup grows with the number of functions. One job per key is found by the key
//! alone (one hash of the bytes, as the usual key is held in one function); the jobs of other
//! functions coalescing on the same key are linked in a chain behind it, and are also
//! hashed by function and key, so a submit finds its function's job in one more lookup
//! however long the chain. One unique id held in thousands of functions costs a submit
//! what a unique of its own costs. The tables hold bare job ids (the key bytes lie in the
//! job).

use super::ids::{FunctionId, JobId};
use super::job::{Job, KeyKind};
use super::table::JobTable;
use crate::server::id_map::IdMap;
use hashbrown::HashTable;
use std::hash::{BuildHasher, RandomState};

/// Below this capacity a table is never shrunk.
const MIN_CAPACITY: usize = 1024;

/// A job's neighbours in the chain of jobs coalescing on its key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Links {
    prev: Option<JobId>,
    next: Option<JobId>,
}

/// Every coalescing job, found by function and key, and by unique id alone.
#[derive(Debug, Default)]
pub(crate) struct UniqueIndex {
    /// One job per key (kind and bytes), hashed by the key: the head of its chain.
    heads: HashTable<JobId>,
    /// The links of jobs in chains of two or more; a job alone with its key has none.
    chains: IdMap<JobId, Links>,
    /// The jobs in chains of two or more, hashed by function and key.
    chained: HashTable<JobId>,
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
        let head = self.head(jobs, kind, key)?;
        if jobs.get(head)?.function == function {
            return Some(head);
        }
        if !self.chains.contains_key(&head) {
            return None;
        }
        let hash = chained_hash(&self.hasher, function, kind, key);
        self.chained
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
        let head = self.head(jobs, KeyKind::Unique, unique);
        std::iter::successors(head, |id| self.chains.get(id).and_then(|l| l.next))
    }

    /// Adds job `id`, which is in `jobs` with its key set and is the only job of its
    /// function coalescing on that key; a job without a key is left out.
    pub(crate) fn insert(&mut self, jobs: &JobTable, id: JobId) {
        let Some((kind, key)) = jobs.get(id).and_then(Job::key_bytes) else {
            return;
        };
        let hash = key_hash(&self.hasher, kind, key);
        match self.heads.find(hash, |&h| has_key(jobs, h, kind, key)) {
            None => {
                let hasher = &self.hasher;
                self.heads.insert_unique(hash, id, |&other| {
                    jobs.get(other)
                        .and_then(Job::key_bytes)
                        .map_or(0, |(k, b)| key_hash(hasher, k, b))
                });
            }
            Some(&head) => {
                if !self.chains.contains_key(&head) {
                    self.add_chained(jobs, head);
                }
                self.link_after(head, id);
                self.add_chained(jobs, id);
            }
        }
    }

    /// Takes job `id` out; it must still be in `jobs` with the key it was added with.
    pub(crate) fn remove(&mut self, jobs: &JobTable, id: JobId) {
        let Some((kind, key)) = jobs.get(id).and_then(Job::key_bytes) else {
            return;
        };
        let Some(links) = self.chains.remove(&id) else {
            // Alone with its key: it is a head.
            let hash = key_hash(&self.hasher, kind, key);
            if let Ok(entry) = self.heads.find_entry(hash, |&other| other == id) {
                entry.remove();
            }
            self.shrink(jobs);
            return;
        };
        self.remove_chained(jobs, id);
        if let Some(prev) = links.prev {
            self.relink(jobs, prev, |l| l.next = links.next);
        }
        if let Some(next) = links.next {
            self.relink(jobs, next, |l| l.prev = links.prev);
        }
        if links.prev.is_none() {
            // It headed its chain: the next job (same key, same hash) takes its place.
            let hash = key_hash(&self.hasher, kind, key);
            if let (Ok(mut entry), Some(next)) = (
                self.heads.find_entry(hash, |&other| other == id),
                links.next,
            ) {
                *entry.get_mut() = next;
            }
        }
        self.shrink(jobs);
    }

    /// Gives memory back once a table is mostly empty (a drained backlog of a million
    /// jobs left ~20 MB of empty buckets). Amortised: a shrink at most halves a table and
    /// rehashes only what is left.
    fn shrink(&mut self, jobs: &JobTable) {
        let hasher = &self.hasher;
        if self.heads.capacity() > 4 * self.heads.len() + MIN_CAPACITY {
            self.heads.shrink_to(2 * self.heads.len(), |&id| {
                jobs.get(id)
                    .and_then(Job::key_bytes)
                    .map_or(0, |(k, b)| key_hash(hasher, k, b))
            });
        }
        if self.chained.capacity() > 4 * self.chained.len() + MIN_CAPACITY {
            self.chained.shrink_to(2 * self.chained.len(), |&id| {
                jobs.get(id).map_or(0, |j| {
                    j.key_bytes()
                        .map_or(0, |(k, b)| chained_hash(hasher, j.function, k, b))
                })
            });
        }
        if self.chains.capacity() > 4 * self.chains.len() + MIN_CAPACITY {
            self.chains.shrink_to(2 * self.chains.len());
        }
    }

    /// Every job in the index (for invariant checks).
    pub(crate) fn ids(&self) -> impl Iterator<Item = JobId> + '_ {
        let behind_heads = self.chains.iter().filter(|(_, l)| l.prev.is_some());
        self.heads
            .iter()
            .copied()
            .chain(behind_heads.map(|(&id, _)| id))
    }

    /// The chains' links agree both ways, every chain has its head among the heads and
    /// every chained job is found by function and key (for invariant checks).
    pub(crate) fn check_links(&self, jobs: &JobTable) -> Result<(), String> {
        if self.chained.len() != self.chains.len() {
            return Err(format!(
                "{} jobs hashed by function for {} chained",
                self.chained.len(),
                self.chains.len()
            ));
        }
        for (&id, links) in &self.chains {
            if links.prev.is_none() && links.next.is_none() {
                return Err(format!("unique chain entry of {id:?} links nothing"));
            }
            let back = links.prev.map(|p| self.chains.get(&p).and_then(|l| l.next));
            let forth = links.next.map(|n| self.chains.get(&n).and_then(|l| l.prev));
            if back.is_some_and(|b| b != Some(id)) || forth.is_some_and(|f| f != Some(id)) {
                return Err(format!("unique chain links of {id:?} are one-sided"));
            }
            let Some(job) = jobs.get(id) else {
                return Err(format!("unique chain entry of {id:?} names no job"));
            };
            let Some((kind, key)) = job.key_bytes() else {
                return Err(format!("unique chain entry of {id:?} has no key"));
            };
            if self.find(jobs, job.function, kind, key) != Some(id) {
                return Err(format!("chained job {id:?} not found by function and key"));
            }
            if links.prev.is_none() && self.head(jobs, kind, key) != Some(id) {
                return Err(format!("unique chain head {id:?} not among the heads"));
            }
        }
        Ok(())
    }

    /// The job that heads the chain of `key`.
    fn head(&self, jobs: &JobTable, kind: KeyKind, key: &[u8]) -> Option<JobId> {
        let hash = key_hash(&self.hasher, kind, key);
        self.heads
            .find(hash, |&h| has_key(jobs, h, kind, key))
            .copied()
    }

    /// Hashes chained job `id` by function and key.
    fn add_chained(&mut self, jobs: &JobTable, id: JobId) {
        let hasher = &self.hasher;
        let rehash = |&other: &JobId| {
            jobs.get(other).map_or(0, |j| {
                j.key_bytes()
                    .map_or(0, |(k, b)| chained_hash(hasher, j.function, k, b))
            })
        };
        self.chained.insert_unique(rehash(&id), id, rehash);
    }

    /// Forgets job `id`'s hash by function and key.
    fn remove_chained(&mut self, jobs: &JobTable, id: JobId) {
        let Some(job) = jobs.get(id) else {
            return;
        };
        let Some((kind, key)) = job.key_bytes() else {
            return;
        };
        let hash = chained_hash(&self.hasher, job.function, kind, key);
        if let Ok(entry) = self.chained.find_entry(hash, |&other| other == id) {
            entry.remove();
        }
    }

    /// Changes the links of `id`; left alone, it leaves the chains.
    fn relink(&mut self, jobs: &JobTable, id: JobId, change: impl FnOnce(&mut Links)) {
        let Some(links) = self.chains.get_mut(&id) else {
            return;
        };
        change(links);
        if *links == Links::default() {
            self.chains.remove(&id);
            self.remove_chained(jobs, id);
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
        if let Some(next) = next.and_then(|n| self.chains.get_mut(&n)) {
            next.prev = Some(id);
        }
    }
}

/// The heads' hash of a key; one definition for lookups and for the table's rehashing.
fn key_hash(hasher: &RandomState, kind: KeyKind, key: &[u8]) -> u64 {
    hasher.hash_one((kind, key))
}

/// The chained jobs' hash, of function and key.
fn chained_hash(hasher: &RandomState, function: FunctionId, kind: KeyKind, key: &[u8]) -> u64 {
    hasher.hash_one((function, kind, key))
}

/// Whether job `id` coalesces on `key`.
fn has_key(jobs: &JobTable, id: JobId, kind: KeyKind, key: &[u8]) -> bool {
    jobs.get(id).and_then(Job::key_bytes) == Some((kind, key))
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
        assert_eq!(index.chained.len(), 0);
        assert_eq!(index.ids().collect::<Vec<_>>(), [other]);
    }

    #[test]
    fn a_unique_shared_by_functions_is_hashed_by_function_so_a_lookup_compares_one_job() {
        let (mut jobs, mut index) = (JobTable::new(), UniqueIndex::default());
        for f in 0..2000 {
            add(&mut jobs, &mut index, f, b"shared");
        }
        let looked_at = std::cell::Cell::new(0);
        let hash = chained_hash(&index.hasher, FunctionId(1234), KeyKind::Unique, b"shared");
        let found = index.chained.find(hash, |&id| {
            looked_at.set(looked_at.get() + 1);
            jobs.get(id).is_some_and(|j| j.function == FunctionId(1234))
        });
        assert!(found.is_some());
        // Only jobs whose hash matches are compared: one here, barring a rare collision.
        assert!(looked_at.get() <= 2, "compared {} jobs", looked_at.get());
        let found = index.find(&jobs, FunctionId(1234), KeyKind::Unique, b"shared");
        assert_eq!(
            found.map(|id| jobs.get(id).unwrap().function),
            Some(FunctionId(1234))
        );
        assert_eq!(index.heads.len(), 1, "one head for the shared unique");
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

    #[test]
    fn the_tables_shrink_as_jobs_leave_and_still_find_the_rest() {
        let (mut jobs, mut index) = (JobTable::new(), UniqueIndex::default());
        // Each unique in two functions: heads, links and chained entries alike.
        let ids: Vec<(JobId, u32, String)> = (0..50_000)
            .flat_map(|i| [0, 1].map(|f| (f, format!("u{i}"))))
            .map(|(f, u)| (add(&mut jobs, &mut index, f, u.as_bytes()), f, u))
            .collect();
        let (gone, kept) = ids.split_at(ids.len() - 20);
        for (id, _, _) in gone {
            index.remove(&jobs, *id);
            jobs.remove(*id);
        }
        assert!(index.heads.capacity() <= 4 * 20 + MIN_CAPACITY);
        assert!(index.chained.capacity() <= 4 * 20 + MIN_CAPACITY);
        assert!(index.chains.capacity() <= 4 * 20 + MIN_CAPACITY);
        for (id, f, u) in kept {
            let found = index.find(&jobs, FunctionId(*f), KeyKind::Unique, u.as_bytes());
            assert_eq!(found, Some(*id), "{u} of function {f}");
        }
        assert_eq!(index.ids().count(), kept.len());
    }
}
