//! What the soak knows about background jobs: which ids were acknowledged (with which
//! handles), every run the workers reported, which workers were SIGKILLed, when the server
//! was killed and when its disk was full. From these it decides, per job, whether it was
//! lost, ran exactly once, or ran more often for a reason a fault allows.
//!
//! When a duplicate run is allowed (the only ones):
//! - **worker killed**: an earlier run was the last job a worker process started before
//!   it was SIGKILLed. Workers run one job at a time on one connection, and the next
//!   GRAB_JOB follows the WORK_COMPLETE on that connection, so a run followed by another
//!   start on the same worker was certainly completed at the server; only the last one
//!   of a killed worker may not have been.
//! - **server killed**: an earlier run started before the restarted server was ready (a
//!   JOB_ASSIGN the killed server sent just before it died still reaches the worker, whose
//!   WORK_COMPLETE then goes nowhere) and finished less than [`DELETE_GRACE_US`] before the
//!   `kill -9` (or never): the delete of a finished job is committed asynchronously, so a
//!   kill right after completion restores it.
//! - **delete refused on a full disk**: an earlier run finished while the disk was full
//!   (the delete's commit failed, the stored row stays) and the server was killed later.

use bytes::Bytes;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// How long after a job's completion its delete may still be uncommitted at a server kill.
pub const DELETE_GRACE_US: u64 = 10_000_000;

/// How far around a job's runs [`Ledger::describe`] lists server kills and full disks.
const NEAR_US: u64 = 60_000_000;

/// Microseconds since the Unix epoch (workers stamp their reports with the same clock).
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

#[derive(Default)]
struct Acked {
    kind: &'static str,
    handles: Vec<Bytes>,
    epoch: Option<i64>,
}

struct Run {
    /// The worker's number in the pool (not its pid, which the kernel reuses).
    worker: u64,
    seq: u64,
    start_us: u64,
    done_us: Option<u64>,
}

#[derive(Default)]
struct WorkerLog {
    starts: u64,
    killed: bool,
}

#[derive(Default)]
struct Inner {
    acked: HashMap<u64, Acked>,
    submitted: HashSet<u64>,
    runs: HashMap<u64, Vec<Run>>,
    workers: HashMap<u64, WorkerLog>,
    /// Each server kill and when the restarted server was ready (`None` while restarting).
    server_kills: Vec<(u64, Option<u64>)>,
    disk_full: Vec<(u64, Option<u64>)>,
}

/// The shared record.
#[derive(Default)]
pub struct Ledger {
    inner: Mutex<Inner>,
}

/// The verdict over every background job.
#[derive(Debug, Default)]
pub struct Verdict {
    /// Acknowledged jobs.
    pub acked: u64,
    /// Acknowledged jobs (or coalesced groups) that ran as often as they had handles.
    pub exactly_once: u64,
    /// Acknowledged jobs that never ran (or ran fewer times than distinct handles).
    pub lost: Vec<u64>,
    /// Extra runs allowed by a worker kill.
    pub dup_worker_kill: u64,
    /// Extra runs allowed by a server kill.
    pub dup_server_kill: u64,
    /// Extra runs allowed by a full disk then a server kill.
    pub dup_disk_full: u64,
    /// Jobs with more runs than any fault allows.
    pub unexplained_dups: Vec<u64>,
    /// Epoch jobs that started more than a second before their time.
    pub early_epoch: Vec<u64>,
    /// Runs of ids the soak never submitted (a result went to the wrong place).
    pub unknown_runs: u64,
    /// Runs of submissions that were never acknowledged (allowed: the ack was lost).
    pub unacked_runs: u64,
}

impl Ledger {
    /// A background submission of `id` is about to be sent.
    pub fn submitting(&self, id: u64) {
        self.inner.lock().unwrap().submitted.insert(id);
    }

    /// The server acknowledged `id` with `handle`.
    pub fn acked(&self, id: u64, kind: &'static str, handle: Bytes, epoch: Option<i64>) {
        let mut inner = self.inner.lock().unwrap();
        let entry = inner.acked.entry(id).or_default();
        entry.kind = kind;
        if !entry.handles.contains(&handle) {
            entry.handles.push(handle);
        }
        entry.epoch = epoch;
    }

    /// Worker number `worker` reported a start (`done` false) or an end of a run of `id` at `at_us`.
    pub fn worker_report(&self, worker: u64, id: u64, done: bool, at_us: u64) {
        let mut inner = self.inner.lock().unwrap();
        let inner = &mut *inner;
        let log = inner.workers.entry(worker).or_default();
        let runs = inner.runs.entry(id).or_default();
        if done {
            if let Some(run) = runs
                .iter_mut()
                .rev()
                .find(|r| r.worker == worker && r.done_us.is_none())
            {
                run.done_us = Some(at_us);
            }
        } else {
            runs.push(Run {
                worker,
                seq: log.starts,
                start_us: at_us,
                done_us: None,
            });
            log.starts += 1;
        }
    }

    /// Whether worker number `worker` is in the middle of a run.
    pub fn is_busy(&self, worker: u64) -> bool {
        let inner = self.inner.lock().unwrap();
        inner
            .runs
            .values()
            .flatten()
            .any(|r| r.worker == worker && r.done_us.is_none())
    }

    /// Worker number `worker` was SIGKILLed.
    pub fn worker_killed(&self, worker: u64) {
        self.inner
            .lock()
            .unwrap()
            .workers
            .entry(worker)
            .or_default()
            .killed = true;
    }

    /// The server was SIGKILLed now.
    pub fn server_killed(&self) {
        self.inner
            .lock()
            .unwrap()
            .server_kills
            .push((now_us(), None));
    }

    /// The server killed last is running again (or failed to start: either way, nothing
    /// the killed one sent can still start a run after this).
    pub fn server_restarted(&self) {
        if let Some(last) = self.inner.lock().unwrap().server_kills.last_mut() {
            last.1 = Some(now_us());
        }
    }

    /// The disk became full (`true`) or has room again (`false`).
    pub fn disk_full(&self, full: bool) {
        let mut inner = self.inner.lock().unwrap();
        if full {
            inner.disk_full.push((now_us(), None));
        } else if let Some(last) = inner.disk_full.last_mut() {
            last.1 = Some(now_us());
        }
    }

    /// (acknowledged ids, ids that ran at least as often as they had handles).
    pub fn progress(&self) -> (u64, u64) {
        let inner = self.inner.lock().unwrap();
        let done = inner
            .acked
            .iter()
            .filter(|(id, a)| inner.runs.get(id).map_or(0, Vec::len) >= a.handles.len())
            .count();
        (inner.acked.len() as u64, done as u64)
    }

    /// One line about job `id`: kind, handles, runs.
    pub fn describe(&self, id: u64) -> String {
        let inner = self.inner.lock().unwrap();
        let Some(a) = inner.acked.get(&id) else {
            return format!("{id}: not acknowledged");
        };
        let handles: Vec<_> = a
            .handles
            .iter()
            .map(|h| String::from_utf8_lossy(h).into_owned())
            .collect();
        let runs = inner.runs.get(&id).map_or(&[][..], Vec::as_slice);
        let mut line = format!(
            "{id}: {} handles {handles:?} epoch {:?} runs {}",
            a.kind,
            a.epoch,
            runs.len()
        );
        // Each run and the faults near it, so an unexplained duplicate can be traced.
        let at = |us: u64| format!("{:.3}", us as f64 / 1e6);
        for run in runs {
            let worker = inner.workers.get(&run.worker);
            line.push_str(&format!(
                "\n      run: worker {} start #{} of {}{} at {} done {}",
                run.worker,
                run.seq + 1,
                worker.map_or(0, |w| w.starts),
                if worker.is_some_and(|w| w.killed) {
                    " (killed)"
                } else {
                    ""
                },
                at(run.start_us),
                run.done_us.map_or_else(|| "never".to_string(), at),
            ));
        }
        let (first, last) = (
            runs.iter().map(|r| r.start_us).min().unwrap_or(0),
            runs.iter().map(|r| r.start_us).max().unwrap_or(0),
        );
        let near = |t: u64| t + NEAR_US >= first && t <= last + NEAR_US;
        for &(kill, back) in inner.server_kills.iter().filter(|(k, _)| near(*k)) {
            let back = back.map_or_else(|| "never".to_string(), at);
            line.push_str(&format!(
                "\n      server killed at {}, back at {back}",
                at(kill)
            ));
        }
        for &(from, to) in inner.disk_full.iter().filter(|(f, _)| near(*f)) {
            let to = to.map_or_else(|| "never".to_string(), at);
            line.push_str(&format!("\n      disk full from {} to {to}", at(from)));
        }
        line
    }

    /// Judges every job (see the module documentation for what a fault allows).
    pub fn verdict(&self) -> Verdict {
        let inner = self.inner.lock().unwrap();
        let mut v = Verdict {
            acked: inner.acked.len() as u64,
            ..Verdict::default()
        };
        for (id, acked) in &inner.acked {
            let runs = inner.runs.get(id).map_or(&[][..], Vec::as_slice);
            let expected = acked.handles.len();
            if runs.len() < expected {
                v.lost.push(*id);
                continue;
            }
            if let Some(when) = acked.epoch {
                let at = (when.max(0) as u64) * 1_000_000;
                if runs.iter().any(|r| r.start_us + 1_000_000 < at) {
                    v.early_epoch.push(*id);
                }
            }
            let mut extra = runs.len() - expected;
            if extra == 0 {
                v.exactly_once += 1;
                continue;
            }
            // Each run but the last may have caused one extra run.
            for run in &runs[..runs.len() - 1] {
                if extra == 0 {
                    break;
                }
                if inner.killed_before_confirming(run) {
                    v.dup_worker_kill += 1;
                } else if inner.server_killed_around(run) {
                    v.dup_server_kill += 1;
                } else if inner.delete_refused_then_killed(run) {
                    v.dup_disk_full += 1;
                } else {
                    continue;
                }
                extra -= 1;
            }
            if extra > 0 {
                v.unexplained_dups.push(*id);
            }
        }
        for (id, runs) in &inner.runs {
            if !inner.acked.contains_key(id) {
                if inner.submitted.contains(id) {
                    v.unacked_runs += runs.len() as u64;
                } else {
                    v.unknown_runs += runs.len() as u64;
                }
            }
        }
        v.lost.sort_unstable();
        v.unexplained_dups.sort_unstable();
        v
    }
}

impl Inner {
    fn killed_before_confirming(&self, run: &Run) -> bool {
        self.workers
            .get(&run.worker)
            .is_some_and(|w| w.killed && run.seq + 1 == w.starts)
    }

    fn server_killed_around(&self, run: &Run) -> bool {
        self.server_kills.iter().any(|&(kill, back)| {
            run.start_us <= back.unwrap_or(u64::MAX)
                && run.done_us.is_none_or(|d| d + DELETE_GRACE_US >= kill)
        })
    }

    fn delete_refused_then_killed(&self, run: &Run) -> bool {
        let Some(done) = run.done_us else {
            return false;
        };
        let during_full = self.disk_full.iter().any(|&(from, to)| {
            done + 1_000_000 >= from && to.is_none_or(|t| done <= t + 1_000_000)
        });
        during_full && self.server_kills.iter().any(|&(kill, _)| kill >= done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acked_once(ledger: &Ledger, id: u64) {
        ledger.submitting(id);
        ledger.acked(id, "bg", Bytes::from(format!("H:t:{id}")), None);
    }

    #[test]
    fn a_rerun_is_allowed_only_for_the_last_job_a_killed_worker_started() {
        let ledger = Ledger::default();
        acked_once(&ledger, 1);
        acked_once(&ledger, 2);
        // Worker 7 finishes job 1, starts job 2 and is killed; worker 8 runs job 2 again.
        ledger.worker_report(7, 1, false, 10);
        ledger.worker_report(7, 1, true, 11);
        ledger.worker_report(7, 2, false, 12);
        ledger.worker_killed(7);
        ledger.worker_report(8, 2, false, 20);
        ledger.worker_report(8, 2, true, 21);
        let v = ledger.verdict();
        assert_eq!((v.dup_worker_kill, v.exactly_once), (1, 1));
        assert!(v.unexplained_dups.is_empty() && v.lost.is_empty());

        // Job 1 running again is not explained: worker 7 went on to job 2 after it.
        ledger.worker_report(8, 1, false, 30);
        ledger.worker_report(8, 1, true, 31);
        assert_eq!(ledger.verdict().unexplained_dups, vec![1]);
        let described = ledger.describe(1);
        assert!(described.contains("runs 2"), "{described}");
        assert!(
            described.contains("worker 7 start #1 of 2 (killed)"),
            "{described}"
        );
    }

    /// What a 30-minute soak found: the killed server's last JOB_ASSIGN reached a worker
    /// after the kill was recorded, and the restored job ran again on the same worker.
    #[test]
    fn a_run_assigned_by_a_server_as_it_was_killed_may_run_again() {
        let ledger = Ledger::default();
        acked_once(&ledger, 1);
        acked_once(&ledger, 2);
        ledger.server_killed();
        let kill = ledger.inner.lock().unwrap().server_kills[0].0;
        ledger.worker_report(5, 1, false, kill + 1_000);
        ledger.worker_report(5, 1, true, kill + 1_000);
        // A run that starts once the new server is up is that server's, not the killed one's.
        std::thread::sleep(std::time::Duration::from_millis(5));
        ledger.server_restarted();
        let back = ledger.inner.lock().unwrap().server_kills[0].1.unwrap();
        for (id, at) in [(1, back + 1_000), (2, back + 2_000), (2, back + 3_000)] {
            ledger.worker_report(5, id, false, at);
            ledger.worker_report(5, id, true, at);
        }
        let v = ledger.verdict();
        assert_eq!(v.dup_server_kill, 1);
        assert_eq!(v.unexplained_dups, vec![2]);
    }
}
