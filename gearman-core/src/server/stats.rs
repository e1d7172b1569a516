//! Counters and a read-only snapshot for monitoring (Prometheus, dashboards).
//!
//! Counters are kept where jobs change state, per function, in bounded memory: past
//! [`MAX_TRACKED_FUNCTIONS`] functions, the rest are summed in [`Stats::other`]. Durations
//! come from the instants the adapter passes in; the core reads no clock.

use super::Server;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::time::Duration;

/// Functions with counters of their own; later ones are summed in [`Stats::other`].
pub const MAX_TRACKED_FUNCTIONS: usize = 1024;

/// Upper bounds (seconds) of the duration histograms' buckets; a last bucket is +Inf.
pub const DURATION_BUCKETS: [f64; 14] = [
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0, 300.0,
];

/// A histogram of durations over [`DURATION_BUCKETS`] (counts per bucket, not cumulative).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Histogram {
    /// Observations per bucket; the last entry is above the largest bound.
    pub counts: [u64; DURATION_BUCKETS.len() + 1],
    /// Sum of all observations, in seconds.
    pub sum_secs: f64,
}

impl Histogram {
    /// Adds one observation.
    pub fn observe(&mut self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = DURATION_BUCKETS
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(DURATION_BUCKETS.len());
        if let Some(c) = self.counts.get_mut(i) {
            *c += 1;
        }
        self.sum_secs += secs;
    }

    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    fn add(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(other.counts) {
            *a += b;
        }
        self.sum_secs += other.sum_secs;
    }
}

/// Counters of one function since the server started.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FunctionStats {
    /// Jobs created (a submission coalesced onto an existing job is not a new job).
    pub submitted: u64,
    /// WORK_COMPLETE.
    pub completed: u64,
    /// WORK_FAIL, and jobs failed when their retries ran out.
    pub failed: u64,
    /// WORK_EXCEPTION.
    pub exceptions: u64,
    /// Jobs put back in the queue after a worker lost them.
    pub retried: u64,
    /// Jobs cancelled with the admin `cancel job`.
    pub cancelled: u64,
    /// Failed background jobs queued again after their backoff (`--retry`).
    pub backoff_retries: u64,
    /// Background jobs moved to the dead letters, out of retries.
    pub dead_lettered: u64,
    /// Schedule firings that ran a job (SUBMIT_JOB_SCHED).
    pub schedule_fired: u64,
    /// Schedule firings skipped because the previous firing's job still existed.
    pub schedule_skipped: u64,
    /// Time from entering the queue to being assigned to a worker.
    pub queue_wait: Histogram,
    /// Time from assignment to the worker's final report.
    pub run_time: Histogram,
}

impl FunctionStats {
    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &FunctionStats) {
        self.submitted += other.submitted;
        self.completed += other.completed;
        self.failed += other.failed;
        self.exceptions += other.exceptions;
        self.retried += other.retried;
        self.cancelled += other.cancelled;
        self.backoff_retries += other.backoff_retries;
        self.dead_lettered += other.dead_lettered;
        self.schedule_fired += other.schedule_fired;
        self.schedule_skipped += other.schedule_skipped;
        self.queue_wait.add(&other.queue_wait);
        self.run_time.add(&other.run_time);
    }
}

/// Counters of every function.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Per function, up to [`MAX_TRACKED_FUNCTIONS`]: its place in `counters`.
    slots: BTreeMap<Bytes, usize>,
    /// The counters of the functions in `slots`; a function's place never changes, so the
    /// job state keeps it with the function and counts each job's steps without a lookup.
    counters: Vec<FunctionStats>,
    /// Functions beyond the cap, summed.
    pub other: FunctionStats,
}

impl Stats {
    /// Every function with counters of its own, by name.
    pub fn functions(&self) -> impl Iterator<Item = (&Bytes, &FunctionStats)> + '_ {
        self.slots
            .iter()
            .filter_map(|(name, &slot)| Some((name, self.counters.get(slot)?)))
    }

    /// The counters of function `name`, if it has its own.
    pub fn function_named(&self, name: &[u8]) -> Option<&FunctionStats> {
        self.slots
            .get(name)
            .and_then(|&slot| self.counters.get(slot))
    }

    /// The place of function `name`'s counters, made if it has none yet; `None` beyond
    /// the cap (it counts in `other`).
    pub(crate) fn slot(&mut self, name: &[u8]) -> Option<usize> {
        if let Some(&slot) = self.slots.get(name) {
            return Some(slot);
        }
        if self.slots.len() >= MAX_TRACKED_FUNCTIONS {
            return None;
        }
        let slot = self.counters.len();
        self.counters.push(FunctionStats::default());
        self.slots.insert(Bytes::copy_from_slice(name), slot);
        Some(slot)
    }

    /// The counters at `slot` (from [`Stats::slot`]); `other` for `None`.
    pub(crate) fn at(&mut self, slot: Option<usize>) -> &mut FunctionStats {
        match slot.and_then(|slot| self.counters.get_mut(slot)) {
            Some(counters) => counters,
            None => &mut self.other,
        }
    }

    /// The counters of function `name`, made if it has none yet (`other` beyond the cap).
    pub fn function(&mut self, name: &[u8]) -> &mut FunctionStats {
        let slot = self.slot(name);
        self.at(slot)
    }
}

/// One function as `status` and `prioritystatus` show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionGauges {
    /// Function name.
    pub name: Bytes,
    /// Jobs queued, running or waiting (the `status` TOTAL column).
    pub total: u64,
    /// Jobs held by workers.
    pub running: u64,
    /// Jobs queued, by priority: high, normal, low.
    pub queued: [u64; 3],
    /// CAN_DO registrations (the `status` WORKERS column).
    pub workers: u64,
}

/// One connection that registered functions, as `workers` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerInfo {
    /// The fd column.
    pub fd: u64,
    /// Peer address.
    pub ip: String,
    /// SET_CLIENT_ID, or `-`.
    pub client_id: Bytes,
    /// Functions it can do.
    pub functions: Vec<Bytes>,
    /// Jobs it holds now.
    pub running: u64,
}

/// The server's gauges at one moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// Every function `status` lists, in its order.
    pub functions: Vec<FunctionGauges>,
    /// Open connections.
    pub connections: u64,
    /// Connections that registered at least one function.
    pub workers: Vec<WorkerInfo>,
    /// Jobs held by the server.
    pub jobs: u64,
}

impl Server {
    /// Counters since start.
    pub fn stats(&self) -> &Stats {
        &self.jobs.stats
    }

    /// The gauges `status`, `prioritystatus` and `workers` show, as data.
    pub fn snapshot(&self) -> Snapshot {
        let functions = self
            .jobs
            .functions
            .sorted()
            .map(|(_, f)| FunctionGauges {
                name: f.name.clone(),
                total: f.total() as u64,
                running: f.running as u64,
                queued: crate::proto::Priority::ALL.map(|p| f.queued(p) as u64),
                workers: f.registrations as u64,
            })
            .collect();
        let workers = self
            .conns
            .sorted_ids()
            .into_iter()
            .filter_map(|id| self.conns.get(id))
            .filter(|c| !c.worker.abilities().is_empty())
            .map(|c| WorkerInfo {
                fd: c.session.peer.fd,
                ip: c.session.peer.ip.clone(),
                client_id: c.session.client_id.clone(),
                functions: c
                    .worker
                    .abilities()
                    .iter()
                    .map(|a| self.jobs.functions.name(a.function))
                    .collect(),
                running: c.worker.running.len() as u64,
            })
            .collect();
        Snapshot {
            functions,
            connections: self.conns.len() as u64,
            workers,
            jobs: self.jobs.jobs.len() as u64,
        }
    }
}

/// What the server holds beyond gearmand's jobs, counted per function: dead letters and
/// schedules.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExtrasGauges {
    /// Dead letters per function.
    pub dead_letters: BTreeMap<Bytes, u64>,
    /// Schedules per function.
    pub schedules: BTreeMap<Bytes, u64>,
}

impl Server {
    /// Dead letters and schedules per function, counted now.
    pub fn extras_gauges(&self) -> ExtrasGauges {
        let mut gauges = ExtrasGauges::default();
        for d in self.dead_letters() {
            *gauges.dead_letters.entry(d.function.clone()).or_default() += 1;
        }
        for s in self.schedules() {
            *gauges.schedules.entry(s.function.clone()).or_default() += 1;
        }
        gauges
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_and_sum() {
        let mut h = Histogram::default();
        h.observe(Duration::from_micros(100));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(1000));
        assert_eq!(h.counts[0], 1);
        assert_eq!(h.counts[3], 1);
        assert_eq!(h.counts[DURATION_BUCKETS.len()], 1);
        assert_eq!(h.count(), 3);
        assert!((h.sum_secs - 1000.0031).abs() < 1e-6);
    }

    #[test]
    fn functions_past_the_cap_are_summed() {
        let mut s = Stats::default();
        for i in 0..MAX_TRACKED_FUNCTIONS + 5 {
            s.function(&Bytes::from(format!("f{i}"))).submitted += 1;
        }
        assert_eq!(s.functions().count(), MAX_TRACKED_FUNCTIONS);
        assert_eq!(s.other.submitted, 5);
        s.function(&Bytes::from_static(b"f0")).submitted += 1;
        assert_eq!(s.function_named(b"f0").map(|f| f.submitted), Some(2));
        let slot = s.slot(b"f1");
        s.at(slot).submitted += 1;
        assert_eq!(s.function_named(b"f1").map(|f| f.submitted), Some(2));
        assert_eq!(s.slot(b"new"), None, "past the cap");
        let names: Vec<&Bytes> = s.functions().map(|(n, _)| n).take(3).collect();
        assert_eq!(names, [&b"f0"[..], &b"f1"[..], &b"f10"[..]], "by name");
    }
}
