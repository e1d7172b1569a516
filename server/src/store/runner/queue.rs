//! The runner's queue of changes, and how groups are cut from it so that commits in flight
//! at the same time never reorder what must stay ordered:
//!
//! - a change to a job whose insert or remove is in a commit still in flight waits for that
//!   commit (a late write's remove must land after its insert, on whichever lane);
//! - a group with records beyond the job queue (a dead letter written before its job's
//!   delete, say) runs alone: it starts only when nothing is in flight, and nothing starts
//!   while it runs;
//! - changes carried over from a failed commit (deletes, unacknowledged extra records) go
//!   first into the next group, which is cut when new changes arrive (as before several
//!   commits could be in flight), at close, or when the runner retries them on its own.

use crate::store::seam::{Ack, Change, ExtraChange};
use gearman_core::server::{ExtraKind, ExtraRecord, JobRecord};
use std::collections::{HashSet, VecDeque};
use std::time::Instant;

/// One queued change.
pub(super) enum Op {
    /// Store a job; the ack runs once the commit holding it is durable (or failed). The
    /// instant is when it was queued (for the runner's profile).
    Insert(JobRecord, Ack, Instant),
    /// Delete a finished job.
    Remove(u64),
    /// Store a record beyond the job queue; the ack, if any, runs as an insert's does.
    PutExtra(ExtraRecord, Option<Ack>),
    /// Delete a record beyond the job queue.
    DeleteExtra(ExtraKind, u64),
}

impl Op {
    /// The job this change is about, for a job change.
    fn job(&self) -> Option<u64> {
        match self {
            Op::Insert(r, _, _) => Some(r.durable_id),
            Op::Remove(id) => Some(*id),
            Op::PutExtra(..) | Op::DeleteExtra(..) => None,
        }
    }
}

/// Changes taken for one commit.
#[derive(Default)]
pub(super) struct Group {
    /// Job changes, in order.
    pub(super) changes: Vec<Change>,
    /// Changes beyond the job queue, in order.
    pub(super) extras: Vec<ExtraChange>,
    /// Whether each extra change had an ack (those are not carried over a failure).
    extra_acked: Vec<bool>,
    /// Acks of the inserts and acknowledged extra records.
    pub(super) acks: Vec<Ack>,
    /// When each insert was queued.
    pub(super) queued: Vec<Instant>,
}

impl Group {
    /// Changes of both kinds.
    pub(super) fn len(&self) -> usize {
        self.changes.len() + self.extras.len()
    }

    /// Inserts in the group.
    pub(super) fn inserts(&self) -> usize {
        self.queued.len()
    }

    fn push(&mut self, op: Op) {
        match op {
            Op::Insert(record, ack, at) => {
                self.changes.push(Change::Insert(record));
                self.acks.push(ack);
                self.queued.push(at);
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

    /// What a failed commit leaves to retry: its deletes and its unacknowledged extra
    /// records (a dead letter is written before its job's delete, and the two must not be
    /// parted); with `undo_inserts`, deletes of its inserts too (for a commit that was
    /// written but could not be made durable: its jobs are refused, so their rows go).
    pub(super) fn carried_over(&self, undo_inserts: bool) -> Vec<Op> {
        let jobs = self.changes.iter().filter_map(|c| match c {
            Change::Remove(id) => Some(Op::Remove(*id)),
            Change::Insert(r) if undo_inserts => Some(Op::Remove(r.durable_id)),
            Change::Insert(_) => None,
        });
        let extras = self
            .extras
            .iter()
            .zip(&self.extra_acked)
            .filter(|(_, acked)| !**acked)
            .map(|(e, _)| match e {
                ExtraChange::Put(r) => Op::PutExtra(r.clone(), None),
                ExtraChange::Delete(kind, key) => Op::DeleteExtra(*kind, *key),
            });
        jobs.chain(extras).collect()
    }
}

/// What the queue remembers of a group in flight.
pub(super) struct InFlight {
    jobs: Vec<u64>,
    inserts: usize,
    alone: bool,
}

/// Queued changes and the commits in flight.
#[derive(Default)]
pub(super) struct Queue {
    /// Changes queued since the last group was cut.
    pending: VecDeque<Op>,
    /// Inserts among them.
    pending_inserts: usize,
    /// Changes left by failed commits, to go first into the next group.
    carried: VecDeque<Op>,
    /// Jobs with a change in a commit in flight.
    busy: HashSet<u64>,
    /// Commits in flight, and the inserts they hold.
    in_flight: usize,
    inserts_in_flight: usize,
    /// A group with extra records is in flight: nothing else may start.
    alone_in_flight: bool,
}

impl Queue {
    pub(super) fn push(&mut self, op: Op) {
        if matches!(op, Op::Insert(..)) {
            self.pending_inserts += 1;
        }
        self.pending.push_back(op);
    }

    /// Inserts queued (not yet in a group).
    pub(super) fn pending_inserts(&self) -> usize {
        self.pending_inserts
    }

    /// Changes queued (not yet in a group), carried ones included.
    pub(super) fn pending_len(&self) -> usize {
        self.pending.len() + self.carried.len()
    }

    /// Commits in flight.
    pub(super) fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Inserts in the commits in flight.
    pub(super) fn inserts_in_flight(&self) -> usize {
        self.inserts_in_flight
    }

    /// Nothing queued, carried or in flight.
    pub(super) fn is_idle(&self) -> bool {
        self.pending.is_empty() && self.carried.is_empty() && self.in_flight == 0
    }

    /// Changes left by failed commits wait for a retry.
    pub(super) fn has_carried(&self) -> bool {
        !self.carried.is_empty()
    }

    /// Whether [`take`](Queue::take) would give a group now. `with_carried`: carried
    /// changes alone make a group too (at close, or when their retry is due).
    pub(super) fn ready(&self, with_carried: bool) -> bool {
        if self.alone_in_flight || (self.pending.is_empty() && !with_carried) {
            return false;
        }
        // The scan of take, without taking.
        let mut held: HashSet<u64> = HashSet::new();
        for op in self.carried.iter().chain(&self.pending) {
            match op.job() {
                Some(id) if self.busy.contains(&id) || held.contains(&id) => {
                    held.insert(id);
                }
                Some(_) => return true,
                None => return self.in_flight == 0,
            }
        }
        false
    }

    /// Cuts the next group (at most `max` changes) and marks it in flight; `None` when
    /// nothing may start now.
    pub(super) fn take(&mut self, max: usize, with_carried: bool) -> Option<(Group, InFlight)> {
        if !self.ready(with_carried) {
            return None;
        }
        let mut group = Group::default();
        let mut kept = VecDeque::new();
        // Jobs with a change held back: their later changes are held too, to keep order.
        let mut held: HashSet<u64> = HashSet::new();
        let mut cut = false;
        let mut queued = std::mem::take(&mut self.carried);
        queued.append(&mut self.pending);
        self.pending_inserts = 0;
        for op in queued {
            if cut || group.len() >= max {
                cut = true;
            } else if let Some(id) = op.job() {
                if self.busy.contains(&id) || held.contains(&id) {
                    held.insert(id);
                } else {
                    group.push(op);
                    continue;
                }
            } else if self.in_flight == 0 {
                group.push(op);
                continue;
            } else {
                // An extra record waits for every commit in flight, and so does everything
                // queued after it.
                cut = true;
            }
            if matches!(op, Op::Insert(..)) {
                self.pending_inserts += 1;
            }
            kept.push_back(op);
        }
        self.pending = kept;
        if group.len() == 0 {
            return None;
        }
        let jobs: Vec<u64> = group
            .changes
            .iter()
            .map(|c| match c {
                Change::Insert(r) => r.durable_id,
                Change::Remove(id) => *id,
            })
            .collect();
        self.busy.extend(jobs.iter().copied());
        let alone = !group.extras.is_empty();
        self.alone_in_flight = alone;
        self.in_flight += 1;
        let inserts = group.inserts();
        self.inserts_in_flight += inserts;
        Some((
            group,
            InFlight {
                jobs,
                inserts,
                alone,
            },
        ))
    }

    /// A group's commit ended; `carried` are its changes to retry (after a failure).
    pub(super) fn finish(&mut self, done: InFlight, carried: Vec<Op>) {
        for id in &done.jobs {
            self.busy.remove(id);
        }
        if done.alone {
            self.alone_in_flight = false;
        }
        self.in_flight -= 1;
        self.inserts_in_flight -= done.inserts;
        self.carried.extend(carried);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use gearman_core::proto::Priority;

    fn insert(id: u64) -> Op {
        let record = JobRecord {
            durable_id: id,
            function: Bytes::from_static(b"f"),
            unique: Bytes::new(),
            priority: Priority::Normal,
            data: Bytes::new(),
            when: None,
            reducer: None,
        };
        Op::Insert(record, Box::new(|_| {}), Instant::now())
    }

    fn extra(key: u64) -> Op {
        Op::DeleteExtra(ExtraKind::DeadLetter, key)
    }

    fn ids(group: &Group) -> Vec<i64> {
        group
            .changes
            .iter()
            .map(|c| match c {
                Change::Insert(r) => r.durable_id as i64,
                Change::Remove(id) => -(*id as i64),
            })
            .collect()
    }

    #[test]
    fn a_remove_waits_for_its_insert_in_flight_and_keeps_its_order() {
        let mut q = Queue::default();
        q.push(insert(1));
        let (_, first) = q.take(100, false).unwrap();
        q.push(Op::Remove(1));
        q.push(insert(2));
        q.push(insert(1)); // a later change of job 1 stays behind the held remove
        let (second, second_done) = q.take(100, false).unwrap();
        assert_eq!(ids(&second), [2]);
        assert!(
            !q.ready(false),
            "only job 1's changes are left, and it is busy"
        );
        q.finish(first, Vec::new());
        let (third, _) = q.take(100, false).unwrap();
        assert_eq!(ids(&third), [-1, 1]);
        q.finish(second_done, Vec::new());
    }

    #[test]
    fn extra_records_run_alone() {
        let mut q = Queue::default();
        q.push(insert(1));
        let (_, first) = q.take(100, false).unwrap();
        q.push(insert(2));
        q.push(extra(7));
        q.push(insert(3));
        let (g, second) = q.take(100, false).unwrap();
        assert_eq!(ids(&g), [2], "cut before the extra record");
        assert!(!q.ready(false));
        q.finish(first, Vec::new());
        q.finish(second, Vec::new());
        let (g, third) = q.take(100, false).unwrap();
        assert_eq!((ids(&g), g.extras.len()), (vec![3], 1));
        q.push(insert(4));
        assert!(!q.ready(false), "nothing starts beside a group with extras");
        q.finish(third, Vec::new());
        assert!(q.ready(false));
    }

    #[test]
    fn carried_changes_go_first_and_wait_for_new_ones() {
        let mut q = Queue::default();
        q.push(insert(1));
        q.push(Op::Remove(9));
        q.push(extra(5));
        let (g, done) = q.take(100, false).unwrap();
        let carried = g.carried_over(false);
        assert_eq!(carried.len(), 2, "the remove and the unacknowledged extra");
        q.finish(done, carried);
        assert!(!q.ready(false), "carried changes alone wait for new ones");
        assert!(q.ready(true), "but get a last try at close");
        q.push(insert(2));
        let (g, _) = q.take(100, false).unwrap();
        assert_eq!((ids(&g), g.extras.len()), (vec![-9, 2], 1));
    }

    #[test]
    fn groups_are_bounded() {
        let mut q = Queue::default();
        for id in 0..5 {
            q.push(insert(id));
        }
        let (g, _) = q.take(2, false).unwrap();
        assert_eq!(ids(&g), [0, 1]);
        assert_eq!(q.pending_inserts(), 3);
        let undo = g.carried_over(true);
        assert!(undo.iter().all(|op| matches!(op, Op::Remove(_))) && undo.len() == 2);
    }
}
