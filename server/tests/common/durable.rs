//! Clients and workers for the durable-queue tests over real sockets: submitters that
//! record which background jobs were acknowledged (JOB_CREATED) or refused (ERROR), and
//! workers that record every job they ran.

use super::Conn;
use bytes::Bytes;
use gearman_core::proto::{
    GrabMode, Packet, Priority, Request, Response, SubmitJob, SubmitMode, WorkPayload,
};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the submitters saw.
#[derive(Default)]
pub struct Outcomes {
    /// Data of every job acknowledged with JOB_CREATED.
    pub acked: Mutex<BTreeSet<String>>,
    /// Data of every job sent (acknowledged or not).
    pub sent: Mutex<BTreeSet<String>>,
    /// Submissions answered with ERROR.
    pub refused: AtomicUsize,
}

impl Outcomes {
    /// Acknowledged so far.
    pub fn acked_count(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    /// A copy of the acknowledged set.
    pub fn acked(&self) -> BTreeSet<String> {
        self.acked.lock().unwrap().clone()
    }
}

fn send(conn: &mut Conn, req: Request) -> bool {
    conn.stream.write_all(&req.to_bytes()).is_ok()
}

fn connect(port: u16) -> Option<Conn> {
    std::panic::catch_unwind(|| Conn::new(port)).ok()
}

/// Submits up to `count` background jobs of `function`, data `TAG-i`, until `stop` is set
/// or the server goes away. Odd `i` have an empty unique (distinct jobs), even ones their
/// data as unique. Refused submissions are counted and the next one is tried after a
/// pause.
pub fn submitter(
    port: u16,
    function: &'static str,
    tag: String,
    count: usize,
    outcomes: Arc<Outcomes>,
    stop: Arc<AtomicBool>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let Some(mut conn) = connect(port) else {
            return;
        };
        for i in 0..count {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            let data = format!("{tag}-{i}");
            let unique = if i % 2 == 1 {
                String::new()
            } else {
                data.clone()
            };
            let job = SubmitJob {
                function: function.into(),
                unique: Bytes::from(unique),
                mode: SubmitMode::Background(Priority::ALL[i % 3]),
                data: Bytes::from(data.clone()),
            };
            outcomes.sent.lock().unwrap().insert(data.clone());
            if !send(&mut conn, Request::Submit(job)) {
                return;
            }
            match conn.recv_within(Duration::from_secs(20)) {
                Some(Response::JobCreated { .. }) => {
                    outcomes.acked.lock().unwrap().insert(data);
                }
                Some(Response::Error { .. }) => {
                    outcomes.refused.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(5));
                }
                _ => return,
            }
        }
    })
}

/// Every job each worker ran: data -> how many times.
#[derive(Default)]
pub struct Runs(pub Mutex<BTreeMap<String, usize>>);

impl Runs {
    /// Distinct jobs run.
    pub fn distinct(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    /// Jobs run more than once.
    pub fn twice(&self) -> Vec<String> {
        let runs = self.0.lock().unwrap();
        runs.iter()
            .filter(|(_, &n)| n > 1)
            .map(|(d, _)| d.clone())
            .collect()
    }

    /// A copy of the distinct jobs run.
    pub fn set(&self) -> BTreeSet<String> {
        self.0.lock().unwrap().keys().cloned().collect()
    }
}

/// Works on `function` at `port`, recording each job in `runs`, until `stop` is set, the
/// server goes away, or (with `until_empty`) it answers NO_JOB. Bounded by 120 s.
pub fn worker(
    port: u16,
    function: &'static str,
    runs: Arc<Runs>,
    stop: Arc<AtomicBool>,
    until_empty: bool,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let Some(mut w) = connect(port) else {
            return;
        };
        let can_do = Request::CanDo {
            function: Bytes::copy_from_slice(function.as_bytes()),
        };
        if !send(&mut w, can_do) {
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
            if !send(&mut w, Request::GrabJob(GrabMode::Uniq)) {
                return;
            }
            match w.recv_within(Duration::from_secs(10)) {
                Some(Response::NoJob) if until_empty => return,
                Some(Response::NoJob) => std::thread::sleep(Duration::from_millis(5)),
                Some(Response::JobAssign(a)) => {
                    let data = String::from_utf8_lossy(&a.data).into_owned();
                    *runs.0.lock().unwrap().entry(data).or_default() += 1;
                    let complete = WorkPayload {
                        handle: a.handle,
                        data: Bytes::new(),
                    };
                    if !send(&mut w, Request::WorkComplete(complete)) {
                        return;
                    }
                }
                Some(other) => panic!("worker got {other:?}"),
                None => return,
            }
        }
    })
}

/// Waits until `done()` or `limit` passes; returns whether `done()` held.
pub fn eventually(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while !done() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

/// The shape every kill -9 test checks: every acknowledged job ran (before the kill or
/// after the restart), nothing ran twice after the restart, nothing ran that was never
/// sent.
pub fn check_after_restart(outcomes: &Outcomes, done_before: &BTreeSet<String>, after: &Runs) {
    let acked = outcomes.acked();
    let sent = outcomes.sent.lock().unwrap().clone();
    let twice = after.twice();
    assert!(twice.is_empty(), "ran twice after the restart: {twice:?}");
    let ran = after.set();
    let lost: Vec<_> = acked
        .iter()
        .filter(|d| !ran.contains(*d) && !done_before.contains(*d))
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged job(s) never ran, e.g. {:?}",
        lost.len(),
        lost.first()
    );
    let invented: Vec<_> = ran.iter().filter(|d| !sent.contains(*d)).collect();
    assert!(invented.is_empty(), "jobs nobody submitted: {invented:?}");
}
