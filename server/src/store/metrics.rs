//! What the store thread measures for monitoring: commits, their latency and batch size,
//! whether the last commit succeeded (the readiness check), and whether the store answers
//! (its health: the last commit or idle health check succeeded).

use gearman_core::server::stats::Histogram;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the batch-size histogram's buckets (changes per transaction).
pub const BATCH_BUCKETS: [f64; 10] = [
    1.0, 2.0, 5.0, 10.0, 50.0, 100.0, 500.0, 1000.0, 5000.0, 50000.0,
];

/// Shared between the store thread (writes) and the server (reads).
#[derive(Debug, Default)]
pub struct CommitStats {
    commits: AtomicU64,
    failures: AtomicU64,
    last_failed: AtomicBool,
    /// The last commit or health check failed (set, not cleared, by either).
    unreachable: AtomicBool,
    histograms: Mutex<CommitHistograms>,
    profile: Mutex<RunnerProfile>,
}

/// Where a durable insert's time goes inside the runner, summed since the start: how long
/// inserts waited queued (for a free lane, for a commit in flight, while the group was
/// gathered), how long the runner held groups back gathering their submitters, how long it
/// spent syncing, and how long groups took from the start of their commit until durable.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunnerProfile {
    /// Inserts committed or refused.
    pub inserts: u64,
    /// Seconds inserts waited queued before their group's commit began, summed over inserts.
    pub queued_secs: f64,
    /// Groups committed or refused.
    pub groups: u64,
    /// Seconds the runner waited for the rest of a group, summed over groups.
    pub gather_secs: f64,
    /// Seconds runner threads spent in the store's sync step (a store with a
    /// [`Syncer`](crate::store::Syncer)), summed over the threads that ran one.
    pub sync_secs: f64,
    /// Seconds from a commit's start until its group was durable, summed over groups.
    pub durable_secs: f64,
}

/// Commit latency and batch size, as histograms.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CommitHistograms {
    /// Seconds per transaction, over gearman-core's duration buckets.
    pub latency: Histogram,
    /// Changes per transaction: counts per [`BATCH_BUCKETS`] bucket, the last above them.
    pub batch_counts: [u64; BATCH_BUCKETS.len() + 1],
    /// Sum of all batch sizes.
    pub batch_sum: u64,
}

/// A copy of [`CommitStats`] at one moment.
#[derive(Clone, Debug, PartialEq)]
pub struct CommitReport {
    /// Transactions committed.
    pub commits: u64,
    /// Transactions that failed (rolled back).
    pub failures: u64,
    /// The last transaction failed: the store is not writable now.
    pub last_failed: bool,
    /// The store answered its last commit or health check
    /// ([`QueueStore::check`](crate::store::QueueStore::check)); false while it fails (a
    /// networked store reconnects with backoff meanwhile).
    pub up: bool,
    /// Latency and batch size.
    pub histograms: CommitHistograms,
    /// Where the runner's time goes.
    pub profile: RunnerProfile,
}

impl CommitStats {
    pub(super) fn record(&self, ok: bool, took: Duration, batch: usize) {
        if ok {
            self.commits.fetch_add(1, Ordering::AcqRel);
        } else {
            self.failures.fetch_add(1, Ordering::AcqRel);
        }
        self.last_failed.store(!ok, Ordering::Release);
        self.unreachable.store(!ok, Ordering::Release);
        let mut h = self.histograms.lock().unwrap_or_else(|p| p.into_inner());
        h.latency.observe(took);
        let size = batch as f64;
        let i = BATCH_BUCKETS
            .iter()
            .position(|&b| size <= b)
            .unwrap_or(BATCH_BUCKETS.len());
        if let Some(c) = h.batch_counts.get_mut(i) {
            *c += 1;
        }
        h.batch_sum += batch as u64;
    }

    /// One group's share of the profile: its inserts, their summed queueing time, the
    /// gathering before it, the sync this thread ran for it, its time until durable.
    pub(super) fn profiled(
        &self,
        inserts: usize,
        queued: Duration,
        gathered: Duration,
        synced: Duration,
        durable: Duration,
    ) {
        let mut p = self.profile.lock().unwrap_or_else(|p| p.into_inner());
        p.inserts += inserts as u64;
        p.queued_secs += queued.as_secs_f64();
        p.groups += 1;
        p.gather_secs += gathered.as_secs_f64();
        p.sync_secs += synced.as_secs_f64();
        p.durable_secs += durable.as_secs_f64();
    }

    /// The outcome of an idle health check. One that succeeds after a failed commit
    /// clears that failure (a networked store that came back; its next commit says more),
    /// so readiness does not wait for traffic a balancer holds back while it fails.
    pub(super) fn checked(&self, ok: bool) {
        self.unreachable.store(!ok, Ordering::Release);
        if ok {
            self.last_failed.store(false, Ordering::Release);
        }
    }

    pub(super) fn commits(&self) -> u64 {
        self.commits.load(Ordering::Acquire)
    }

    /// The counters now.
    pub fn report(&self) -> CommitReport {
        CommitReport {
            commits: self.commits(),
            failures: self.failures.load(Ordering::Acquire),
            last_failed: self.last_failed.load(Ordering::Acquire),
            up: !self.unreachable.load(Ordering::Acquire),
            histograms: self
                .histograms
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
            profile: self
                .profile
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_health_check_that_succeeds_clears_a_failed_commit() {
        let stats = CommitStats::default();
        stats.record(false, Duration::ZERO, 1);
        stats.checked(false);
        assert!(stats.report().last_failed, "a failing check cleared it");
        stats.checked(true);
        let report = stats.report();
        assert!(!report.last_failed && report.up);
    }
}
