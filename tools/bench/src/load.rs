//! The load itself: clients submitting with a window (or in batches, or in the
//! background), echo workers keeping several grabs in flight, and the timed phases.

use crate::stop::{Stop, StopWatch};
use crate::wire::{Tls, Wire};
use bytes::Bytes;
use gearman_core::proto::{
    GrabMode, Priority, Request, Response, SubmitJob, SubmitMode, WorkPayload,
};
use hdrhistogram::Histogram;
use std::collections::{HashMap, VecDeque};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Barrier, Notify};
use tokio::task::JoinHandle;

/// What kind of load runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Mode {
    /// Foreground jobs, each client keeping `window` in flight (1 by default).
    Fg,
    /// Foreground jobs pipelined: `window` per client (64 by default) and `grabs` GRAB_JOBs
    /// out per worker (64 by default).
    Pipe,
    /// Foreground jobs in batches: send `batch`, wait for all of them, repeat.
    Batch,
    /// Background: clients submit everything (no workers yet), then workers drain it.
    Bg,
    /// Connections: each client opens `jobs` fresh connections one after the other, each
    /// with one ECHO round trip, then closed. With `--ssl` each is a full TLS handshake (no
    /// session resumption): the rate is handshakes per second.
    Connect,
}

/// The shape of one run.
#[derive(Clone, Debug)]
pub(crate) struct Plan {
    /// Server address, `host:port`.
    pub(crate) addr: String,
    /// The load kind.
    pub(crate) mode: Mode,
    /// Client connections.
    pub(crate) clients: usize,
    /// Worker connections.
    pub(crate) workers: usize,
    /// Jobs each client submits.
    pub(crate) jobs: u64,
    /// Submissions in flight per client (fg, pipe, bg).
    pub(crate) window: usize,
    /// GRAB_JOBs in flight per worker.
    pub(crate) grabs: usize,
    /// Jobs per batch (batch mode).
    pub(crate) batch: usize,
    /// Payload sizes, used in turn.
    pub(crate) sizes: Vec<usize>,
    /// The function the load runs on.
    pub(crate) function: String,
    /// Give up after this long.
    pub(crate) timeout: Duration,
    /// TLS on every connection, if set.
    pub(crate) tls: Option<Tls>,
}

impl Plan {
    /// Every job the run submits.
    pub(crate) fn total(&self) -> u64 {
        self.jobs * self.clients as u64
    }
}

/// Live counters, read by the progress bar.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Jobs answered to clients (completed, failed, or created for background jobs).
    pub(crate) answered: AtomicU64,
    /// Jobs workers finished.
    pub(crate) worked: AtomicU64,
    /// Set once workers have finished every job of the run.
    drained: Notify,
}

/// What one run measured.
#[derive(Debug)]
pub(crate) struct Outcome {
    /// Jobs answered successfully (for bg: accepted with JOB_CREATED).
    pub(crate) completed: u64,
    /// Jobs that failed, came back wrong, or were never answered.
    pub(crate) failures: u64,
    /// Of the failures, jobs never answered (the run stopped, a connection was lost).
    pub(crate) unanswered: u64,
    /// Length of the timed client phase.
    pub(crate) elapsed: Duration,
    /// Per job latency in microseconds (for bg: submit to JOB_CREATED).
    pub(crate) latency: Histogram<u64>,
    /// For bg: jobs the workers finished and how long the drain took.
    pub(crate) drain: Option<(u64, Duration)>,
    /// The first connection error, or why the run stopped early, if either.
    pub(crate) error: Option<String>,
}

/// What one client measured, kept when its connection fails or the run stops.
struct ClientResult {
    latency: Histogram<u64>,
    completed: u64,
    failures: u64,
    /// The error that ended this client early.
    error: Option<String>,
}

impl ClientResult {
    fn new() -> ClientResult {
        ClientResult {
            latency: histogram(),
            completed: 0,
            failures: 0,
            error: None,
        }
    }
}

fn histogram() -> Histogram<u64> {
    // 1 us .. 1 hour, 3 significant figures.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("constant, valid histogram bounds")
}

/// Runs the plan on the current tokio runtime, until every job is answered or the run
/// stops: its timeout, `interrupt` (SIGINT, SIGTERM), or a worker's lost connection. A run
/// that stops early reports what was answered until then.
pub(crate) async fn run(plan: &Plan, counters: Arc<Counters>, interrupt: &Stop) -> Outcome {
    let payloads: Arc<Vec<Bytes>> = Arc::new(
        plan.sizes
            .iter()
            .map(|&n| {
                (0..n)
                    .map(|i| b'a' + (i % 26) as u8)
                    .collect::<Vec<u8>>()
                    .into()
            })
            .collect(),
    );
    let stop = Stop::new();
    let stopper = {
        let (stop, mut interrupted, timeout) = (stop.clone(), interrupt.watch(), plan.timeout);
        tokio::spawn(async move {
            let reason = match interrupted.unless(tokio::time::sleep(timeout)).await {
                Ok(()) => format!("timed out after {timeout:?}"),
                Err(interrupt) => interrupt,
            };
            stop.stop(reason);
        })
    };
    let mut watch = stop.watch();
    let background = plan.mode == Mode::Bg;
    let mut workers = Vec::new();
    // Connect's ECHOs need no worker; bg starts its workers after the submissions.
    if !background && plan.mode != Mode::Connect {
        start_workers(plan, &counters, u64::MAX, &stop, &mut workers).await;
    }
    let ready = Arc::new(Barrier::new(plan.clients + 1));
    let clients: Vec<_> = (0..plan.clients)
        .map(|id| {
            let (plan, counters, payloads, ready) = (
                plan.clone(),
                counters.clone(),
                payloads.clone(),
                ready.clone(),
            );
            let mut watch = stop.watch();
            tokio::spawn(async move {
                let mut result = ClientResult::new();
                let (ready, watch, out) = (&ready, &mut watch, &mut result);
                let ended = match plan.mode {
                    Mode::Connect => connects(&plan, &counters, ready, watch, out).await,
                    _ => client(id, &plan, &counters, &payloads, ready, watch, out).await,
                };
                if let Err(e) = ended {
                    result.error = Some(e.to_string());
                }
                result
            })
        })
        .collect();
    let _ = watch.unless(ready.wait()).await;
    let start = Instant::now();
    let mut latency = histogram();
    let (mut completed, mut failures) = (0, 0);
    let mut error = None;
    // Each client ends once its jobs are answered, its connection fails or the run stops,
    // and keeps what it measured in every case.
    for c in clients {
        match c.await {
            Ok(r) => {
                let _ = latency.add(&r.latency);
                completed += r.completed;
                failures += r.failures;
                if let Some(e) = r.error {
                    error.get_or_insert(e);
                }
            }
            Err(e) => {
                error.get_or_insert(e.to_string());
            }
        }
    }
    let elapsed = start.elapsed();
    let mut drain = None;
    if background && error.is_none() && stop.reason().is_none() {
        let start = Instant::now();
        let wait = counters.drained.notified();
        start_workers(plan, &counters, completed, &stop, &mut workers).await;
        if completed > 0 {
            let _ = watch.unless(wait).await;
        }
        drain = Some((counters.worked.load(Ordering::Relaxed), start.elapsed()));
    }
    if let Some(reason) = stop.reason() {
        error.get_or_insert(reason);
    }
    stopper.abort();
    for w in workers {
        w.abort();
    }
    let unanswered = plan.total().saturating_sub(completed + failures);
    Outcome {
        completed,
        failures: failures + unanswered,
        unanswered,
        elapsed,
        latency,
        drain,
        error,
    }
}

/// Connects the workers; returns once each has registered its function (an ECHO after
/// CAN_DO comes back only after the server has handled the CAN_DO), or the run stopped.
/// A worker that cannot connect or loses its connection stops the run: the jobs would
/// otherwise wait for answers until the timeout.
async fn start_workers(
    plan: &Plan,
    counters: &Arc<Counters>,
    target: u64,
    stop: &Stop,
    handles: &mut Vec<JoinHandle<()>>,
) {
    let ready = Arc::new(Barrier::new(plan.workers + 1));
    for _ in 0..plan.workers {
        let (addr, tls, function, grabs, counters, ready, stop) = (
            plan.addr.clone(),
            plan.tls.clone(),
            Bytes::from(plan.function.clone()),
            plan.grabs.max(1),
            counters.clone(),
            ready.clone(),
            stop.clone(),
        );
        handles.push(tokio::spawn(async move {
            let mut watch = stop.watch();
            let wire = match watch.unless(Wire::connect(&addr, tls.as_ref())).await {
                Ok(Ok(wire)) => wire,
                Ok(Err(e)) => return stop.stop(format!("a worker cannot connect: {e}")),
                Err(_) => return,
            };
            if watch.unless(ready.wait()).await.is_err() {
                return;
            }
            if let Err(e) = worker(wire, function, grabs, &counters, target).await {
                stop.stop(format!("a worker: {e}"));
            }
        }));
    }
    let _ = stop.watch().unless(ready.wait()).await;
}

async fn worker(
    mut wire: Wire,
    function: Bytes,
    grabs: usize,
    counters: &Counters,
    target: u64,
) -> io::Result<()> {
    let grab = Request::GrabJob(GrabMode::Plain);
    wire.push(&Request::CanDo { function });
    for _ in 0..grabs {
        wire.push(&grab);
    }
    let (mut outstanding, mut sleeping) = (grabs, false);
    let mut responses = Vec::new();
    loop {
        wire.turn(&mut responses).await?;
        for response in responses.drain(..) {
            match response {
                Response::JobAssign(job) => {
                    wire.push(&Request::WorkComplete(WorkPayload {
                        handle: job.handle,
                        data: job.data,
                    }));
                    wire.push(&grab);
                    if counters.worked.fetch_add(1, Ordering::Relaxed) + 1 == target {
                        counters.drained.notify_one();
                    }
                }
                Response::NoJob => {
                    outstanding -= 1;
                    if outstanding == 0 {
                        wire.push(&Request::PreSleep);
                        sleeping = true;
                    }
                }
                Response::Noop if sleeping => {
                    for _ in 0..grabs {
                        wire.push(&grab);
                    }
                    (outstanding, sleeping) = (grabs, false);
                }
                Response::Error { code, text } => return Err(server_error(&code, &text)),
                _ => {}
            }
        }
    }
}

fn server_error(code: &[u8], text: &[u8]) -> io::Error {
    io::Error::other(format!(
        "server ERROR {} {}",
        String::from_utf8_lossy(code),
        String::from_utf8_lossy(text)
    ))
}

/// One submitted job waiting for its answer.
struct Pending {
    sent: Instant,
    size: usize,
}

/// One client's jobs, counted into `result` as they are answered. Returns when all are
/// answered, the run stops (`Ok`) or the connection fails (the error).
async fn client(
    id: usize,
    plan: &Plan,
    counters: &Counters,
    payloads: &[Bytes],
    ready: &Barrier,
    watch: &mut StopWatch,
    result: &mut ClientResult,
) -> io::Result<()> {
    let Ok(wire) = watch
        .unless(Wire::connect(&plan.addr, plan.tls.as_ref()))
        .await
    else {
        return Ok(());
    };
    if watch.unless(ready.wait()).await.is_err() {
        return Ok(());
    }
    let mut wire = wire?;
    let function = Bytes::from(plan.function.clone());
    let mode = match plan.mode {
        Mode::Bg => SubmitMode::Background(Priority::Normal),
        _ => SubmitMode::Foreground(Priority::Normal),
    };
    let window = match plan.mode {
        Mode::Batch => plan.batch.max(1),
        _ => plan.window.max(1),
    };
    let (mut submitted, mut answered, mut in_flight) = (0u64, 0u64, 0usize);
    let mut awaiting_handle: VecDeque<Pending> = VecDeque::with_capacity(window);
    let mut running: HashMap<Bytes, Pending> = HashMap::with_capacity(window);
    let mut responses = Vec::new();
    while answered < plan.jobs {
        let refill = plan.mode != Mode::Batch || in_flight == 0;
        while refill && submitted < plan.jobs && in_flight < window {
            let data = payloads[(submitted % payloads.len() as u64) as usize].clone();
            let size = data.len();
            wire.push(&Request::Submit(SubmitJob {
                function: function.clone(),
                unique: format!("b{id}-{submitted}").into(),
                mode,
                data,
            }));
            awaiting_handle.push_back(Pending {
                sent: Instant::now(),
                size,
            });
            submitted += 1;
            in_flight += 1;
        }
        match watch.unless(wire.turn(&mut responses)).await {
            Ok(turned) => turned?,
            Err(_) => return Ok(()),
        }
        let now = Instant::now();
        for response in responses.drain(..) {
            let finished = match response {
                Response::JobCreated { handle } => {
                    let pending = awaiting_handle.pop_front().ok_or_else(|| {
                        io::Error::new(io::ErrorKind::InvalidData, "JOB_CREATED nobody asked for")
                    })?;
                    if mode.is_background() {
                        record(&mut result.latency, now - pending.sent);
                        Some(true)
                    } else {
                        running.insert(handle, pending);
                        None
                    }
                }
                Response::WorkComplete(p) => running.remove(&p.handle).map(|pending| {
                    record(&mut result.latency, now - pending.sent);
                    p.data.len() == pending.size
                }),
                Response::WorkFail { handle } => running.remove(&handle).map(|_| false),
                Response::WorkException(p) => running.remove(&p.handle).map(|_| false),
                Response::Error { code, text } => return Err(server_error(&code, &text)),
                _ => None,
            };
            if let Some(ok) = finished {
                if ok {
                    result.completed += 1;
                } else {
                    result.failures += 1;
                }
                answered += 1;
                in_flight -= 1;
                counters.answered.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    Ok(())
}

/// [`Mode::Connect`]'s client: `jobs` connections in turn, each timed from the connect
/// (and handshake) to its ECHO's answer.
async fn connects(
    plan: &Plan,
    counters: &Counters,
    ready: &Barrier,
    watch: &mut StopWatch,
    result: &mut ClientResult,
) -> io::Result<()> {
    if watch.unless(ready.wait()).await.is_err() {
        return Ok(());
    }
    let echo = Request::Echo {
        data: Bytes::from_static(b"gearman-bench"),
    };
    let mut responses = Vec::new();
    for _ in 0..plan.jobs {
        let started = Instant::now();
        let exchange = async {
            let mut wire = Wire::connect(&plan.addr, plan.tls.as_ref()).await?;
            wire.push(&echo);
            wire.turn(&mut responses).await
        };
        match watch.unless(exchange).await {
            Ok(exchanged) => exchanged?,
            Err(_) => return Ok(()),
        }
        match responses.drain(..).next() {
            Some(Response::EchoRes { .. }) => {
                record(&mut result.latency, started.elapsed());
                result.completed += 1;
            }
            Some(Response::Error { code, text }) => return Err(server_error(&code, &text)),
            _ => result.failures += 1,
        }
        counters.answered.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

fn record(h: &mut Histogram<u64>, d: Duration) {
    h.saturating_record((d.as_micros() as u64).max(1));
}
