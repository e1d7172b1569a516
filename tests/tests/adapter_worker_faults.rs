//! Workers against a scripted server (`raw_server`) that misbehaves: one that drops the
//! connection while a job runs (the worker's concurrency must hold across the reconnect),
//! one that takes a grab and never answers (a graceful shutdown must still end), one that
//! drops the connection while a job runs and the worker is shut down (`run()` and
//! `work_once()` must wait for that handler). Also the application unregistering a
//! function while a job of it runs (concurrency must hold).

mod adapter_common;

use adapter_common::join_within;
use adapter_common::raw_server::{RawConn, RawServer};
use bytes::Bytes;
use gearman_async::{Backoff, Runtime, WorkerHandle};
use gearman_core::proto::{AssignExtras, JobAssign, Request, Response, WorkPayload};
use gearman_core::worker::GRAB_REPLY_WAIT;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a test waits for a packet that should come soon.
const PROMPT: Duration = Duration::from_secs(5);
/// How long the `slow` handler runs.
const SLOW: Duration = Duration::from_secs(2);

type BlockOn = fn(Pin<Box<dyn Future<Output = ()> + Send>>);

fn is_grab(r: &Request) -> bool {
    matches!(r, Request::GrabJob(_))
}

/// Waits for a grab and assigns `handle` of `slow`.
fn assign_slow(conn: &mut RawConn, handle: &'static str) {
    conn.expect(PROMPT, "GRAB_JOB", is_grab);
    conn.send(Response::JobAssign(JobAssign {
        handle: handle.into(),
        function: "slow".into(),
        extras: AssignExtras::Unique(Bytes::new()),
        data: handle.into(),
    }));
}

/// Handlers running now, the most that ever ran at once, and the `slow` handlers that
/// ran to their end (a handler dropped unfinished is counted out but not done).
#[derive(Default)]
struct Gauge {
    now: AtomicUsize,
    most: AtomicUsize,
    done: AtomicUsize,
}

/// A server that closes the connection 300 ms after assigning a job to a worker with
/// `concurrency(1)` and a 2 s handler: the handler keeps running (its result is dropped,
/// the server requeued the job), so the new connection must not take a job before it
/// returns. It was given one at once: two jobs ran at the same time.
fn async_concurrency_holds_across_a_reconnect<Rt: Runtime>(
    rt: Rt,
    connector: impl gearman_async::Connector,
    block_on: BlockOn,
) {
    let server = RawServer::bind();
    let gauge = Arc::new(Gauge::default());
    let (g, sleeper) = (gauge.clone(), rt.clone());
    let worker = gearman_async::WorkerBuilder::new(rt, connector)
        .server(server.addr())
        .concurrency(1)
        .backoff(Backoff {
            initial: Duration::from_millis(20),
            max: Duration::from_millis(80),
        })
        .function("slow", move |job| {
            let (g, rt) = (g.clone(), sleeper.clone());
            async move {
                let now = g.now.fetch_add(1, Ordering::SeqCst) + 1;
                g.most.fetch_max(now, Ordering::SeqCst);
                rt.sleep_until(rt.now() + SLOW).await;
                g.now.fetch_sub(1, Ordering::SeqCst);
                Ok(job.data().clone())
            }
        })
        .build();
    let stop = worker.shutdown_handle();
    let thread = std::thread::spawn(move || block_on(Box::pin(worker.run())));

    let mut first = server.accept(PROMPT);
    assign_slow(&mut first, "H:1");
    std::thread::sleep(Duration::from_millis(300));
    drop(first);

    // The worker reconnects and registers again at once; its grab waits for H:1's handler.
    let mut second = server.accept(PROMPT);
    second.expect(PROMPT, "CAN_DO again", |r| {
        matches!(r, Request::CanDo { .. })
    });
    assign_slow(&mut second, "H:2");
    let done = second.expect(PROMPT, "WORK_COMPLETE", |r| {
        matches!(r, Request::WorkComplete(_))
    });
    assert_eq!(
        done,
        Request::WorkComplete(WorkPayload {
            handle: "H:2".into(),
            data: "H:2".into(),
        })
    );
    assert_eq!(
        gauge.most.load(Ordering::SeqCst),
        1,
        "handlers ran at once with concurrency(1)"
    );
    stop.shutdown();
    drop(second);
    join_within(thread, Duration::from_secs(10), "async worker");
}

#[test]
fn tokio_worker_concurrency_holds_across_a_reconnect() {
    async_concurrency_holds_across_a_reconnect(
        gearman_tokio::TokioRuntime,
        gearman_tokio::TokioConnector,
        |f| tokio::runtime::Runtime::new().expect("tokio").block_on(f),
    );
}

#[test]
fn smol_worker_concurrency_holds_across_a_reconnect() {
    async_concurrency_holds_across_a_reconnect(
        gearman_async_std::AsyncIoRuntime,
        gearman_async_std::AsyncIoConnector,
        smol::block_on,
    );
}

/// Starts a worker serving `addr`; returns its stop and its thread.
type Start = fn(String) -> (WorkerHandle, std::thread::JoinHandle<()>);

/// A server that takes the worker's grab and never answers it (hung): a graceful shutdown
/// must still end, [`GRAB_REPLY_WAIT`] after it was asked for. It waited for the reply
/// forever.
fn shutdown_ends_despite_an_unanswered_grab(start: Start) {
    let server = RawServer::bind();
    let (handle, thread) = start(server.addr());
    let mut conn = server.accept(PROMPT);
    conn.expect(PROMPT, "a grab", is_grab);
    let asked = Instant::now();
    handle.shutdown();
    // The watchdog is well past the bound: a worker still waiting fails the test.
    join_within(
        thread,
        GRAB_REPLY_WAIT * 2,
        "worker with an unanswered grab",
    );
    let took = asked.elapsed();
    assert!(
        took + Duration::from_millis(50) >= GRAB_REPLY_WAIT,
        "the grab's reply was not waited for: stopped after {took:?}"
    );
    // The connection is closed: the server would requeue a late assignment.
    assert_eq!(conn.recv_within(PROMPT), None);
}

fn async_start<Rt: Runtime, C: gearman_async::Connector>(
    rt: Rt,
    connector: C,
    addr: String,
    block_on: BlockOn,
) -> (WorkerHandle, std::thread::JoinHandle<()>) {
    let worker = gearman_async::WorkerBuilder::new(rt, connector)
        .server(addr)
        .sync_function("echo", |job| Ok(job.data().clone()))
        .build();
    let handle = worker.handle();
    let thread = std::thread::spawn(move || block_on(Box::pin(worker.run())));
    (handle, thread)
}

#[test]
fn tokio_worker_shutdown_ends_despite_an_unanswered_grab() {
    shutdown_ends_despite_an_unanswered_grab(|addr| {
        async_start(
            gearman_tokio::TokioRuntime,
            gearman_tokio::TokioConnector,
            addr,
            |f| tokio::runtime::Runtime::new().expect("tokio").block_on(f),
        )
    });
}

#[test]
fn smol_worker_shutdown_ends_despite_an_unanswered_grab() {
    shutdown_ends_despite_an_unanswered_grab(|addr| {
        async_start(
            gearman_async_std::AsyncIoRuntime,
            gearman_async_std::AsyncIoConnector,
            addr,
            smol::block_on,
        )
    });
}

#[test]
fn blocking_worker_shutdown_ends_despite_an_unanswered_grab() {
    shutdown_ends_despite_an_unanswered_grab(|addr| {
        let worker = gearman_blocking::Worker::new([addr])
            .function("echo", |job| Ok(job.data().clone()))
            .build();
        let handle = worker.handle();
        (handle, std::thread::spawn(move || worker.run()))
    });
}

/// Starts a worker serving `addr` with `concurrency(1)`, functions `slow` (a [`SLOW`]
/// handler) and `quick`, both counted by the gauge, making `call` on a thread; returns
/// its handle and that thread.
type StartCounted = fn(String, Arc<Gauge>, Call) -> (WorkerHandle, std::thread::JoinHandle<()>);

/// What a started worker's thread does.
#[derive(Clone, Copy)]
enum Call {
    /// `run()`.
    Run,
    /// `work_once(PROMPT)`, which must do one job.
    WorkOnce,
}

impl Gauge {
    /// Waits until a handler runs.
    fn wait_running(&self) {
        let end = Instant::now() + PROMPT;
        while self.now.load(Ordering::SeqCst) == 0 && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(
            self.now.load(Ordering::SeqCst),
            1,
            "the handler did not start"
        );
    }

    /// Counts a handler in; returns a guard counting it out.
    fn enter(self: &Arc<Self>) -> GaugeGuard {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        GaugeGuard(self.clone())
    }
}

struct GaugeGuard(Arc<Gauge>);

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The application unregisters `slow` (CANT_DO) while a job of it runs, on a worker with
/// `concurrency(1)` that still serves `quick`: the server requeued the job, but its
/// handler still runs, so the worker must not take a `quick` job before it returns. The
/// async worker grabbed at once: two handlers ran at the same time.
fn concurrency_holds_after_unregister(start: StartCounted) {
    let server = RawServer::bind();
    let gauge = Arc::new(Gauge::default());
    let (handle, thread) = start(server.addr(), gauge.clone(), Call::Run);
    let mut conn = server.accept(PROMPT);
    assign_slow(&mut conn, "H:1");
    gauge.wait_running();
    handle.unregister("slow");
    // The next grab, whenever the worker sends it, gets a `quick` job.
    conn.expect(PROMPT + SLOW, "GRAB_JOB after the CANT_DO", is_grab);
    conn.send(Response::JobAssign(JobAssign {
        handle: "H:2".into(),
        function: "quick".into(),
        extras: AssignExtras::Unique(Bytes::new()),
        data: "H:2".into(),
    }));
    conn.expect(
        PROMPT,
        "H:2's WORK_COMPLETE",
        |r| matches!(r, Request::WorkComplete(p) if p.handle == "H:2"),
    );
    assert_eq!(
        gauge.most.load(Ordering::SeqCst),
        1,
        "handlers ran at once with concurrency(1)"
    );
    handle.shutdown();
    drop(conn);
    join_within(thread, PROMPT + SLOW, "worker");
}

fn async_start_counted<Rt: Runtime, C: gearman_async::Connector>(
    rt: Rt,
    connector: C,
    addr: String,
    gauge: Arc<Gauge>,
    call: Call,
    block_on: BlockOn,
) -> (WorkerHandle, std::thread::JoinHandle<()>) {
    let (slow_gauge, sleeper) = (gauge.clone(), rt.clone());
    let worker = gearman_async::WorkerBuilder::new(rt, connector)
        .server(addr)
        .concurrency(1)
        .backoff(Backoff {
            initial: Duration::from_millis(20),
            max: Duration::from_millis(80),
        })
        .function("slow", move |job| {
            let (g, rt) = (slow_gauge.clone(), sleeper.clone());
            async move {
                let _counted = g.enter();
                rt.sleep_until(rt.now() + SLOW).await;
                g.done.fetch_add(1, Ordering::SeqCst);
                Ok(job.data().clone())
            }
        })
        .sync_function("quick", move |job| {
            let _counted = gauge.enter();
            Ok(job.data().clone())
        })
        .build();
    let handle = worker.handle();
    let thread = std::thread::spawn(move || {
        block_on(Box::pin(async move {
            match call {
                Call::Run => worker.run().await,
                Call::WorkOnce => assert_eq!(worker.work_once(PROMPT).await.ok(), Some(1)),
            }
        }))
    });
    (handle, thread)
}

fn tokio_start_counted(
    addr: String,
    gauge: Arc<Gauge>,
    call: Call,
) -> (WorkerHandle, std::thread::JoinHandle<()>) {
    async_start_counted(
        gearman_tokio::TokioRuntime,
        gearman_tokio::TokioConnector,
        addr,
        gauge,
        call,
        |f| tokio::runtime::Runtime::new().expect("tokio").block_on(f),
    )
}

fn smol_start_counted(
    addr: String,
    gauge: Arc<Gauge>,
    call: Call,
) -> (WorkerHandle, std::thread::JoinHandle<()>) {
    async_start_counted(
        gearman_async_std::AsyncIoRuntime,
        gearman_async_std::AsyncIoConnector,
        addr,
        gauge,
        call,
        smol::block_on,
    )
}

fn blocking_start_counted(
    addr: String,
    gauge: Arc<Gauge>,
    call: Call,
) -> (WorkerHandle, std::thread::JoinHandle<()>) {
    let slow_gauge = gauge.clone();
    let worker = gearman_blocking::Worker::new([addr])
        .concurrency(1)
        .backoff(Backoff {
            initial: Duration::from_millis(20),
            max: Duration::from_millis(80),
        })
        .poll_interval(Duration::from_millis(20))
        .function("slow", move |job| {
            let _counted = slow_gauge.enter();
            std::thread::sleep(SLOW);
            slow_gauge.done.fetch_add(1, Ordering::SeqCst);
            Ok(job.data().clone())
        })
        .function("quick", move |job| {
            let _counted = gauge.enter();
            Ok(job.data().clone())
        })
        .build();
    let handle = worker.handle();
    let thread = std::thread::spawn(move || match call {
        Call::Run => worker.run(),
        Call::WorkOnce => assert_eq!(worker.work_once(PROMPT).ok(), Some(1)),
    });
    (handle, thread)
}

#[test]
fn tokio_worker_concurrency_holds_after_unregister() {
    concurrency_holds_after_unregister(tokio_start_counted);
}

#[test]
fn smol_worker_concurrency_holds_after_unregister() {
    concurrency_holds_after_unregister(smol_start_counted);
}

/// The blocking worker runs each job inline on its connection's thread, so it cannot
/// grab while a handler runs: this guards that it stays so.
#[test]
fn blocking_worker_concurrency_holds_after_unregister() {
    concurrency_holds_after_unregister(blocking_start_counted);
}

/// The server drops the connection while a `slow` job runs; the worker reconnects, and is
/// shut down before that handler returns: a graceful shutdown lets running handlers finish,
/// the lost connection's too, so `run()` must not return before it. The async worker's
/// `run()` returned at once, leaving the handler running in the background (or cancelled
/// with the runtime).
fn run_waits_for_a_lost_connections_handler(start: StartCounted) {
    let server = RawServer::bind();
    let gauge = Arc::new(Gauge::default());
    let (handle, thread) = start(server.addr(), gauge.clone(), Call::Run);
    let mut first = server.accept(PROMPT);
    assign_slow(&mut first, "H:1");
    gauge.wait_running();
    drop(first);
    // The blocking worker reconnects only once its handler returned.
    let mut second = server.accept(PROMPT + SLOW);
    second.expect(PROMPT, "CAN_DO again", |r| {
        matches!(r, Request::CanDo { .. })
    });
    handle.shutdown();
    join_within(thread, PROMPT + SLOW, "worker");
    assert_eq!(
        gauge.done.load(Ordering::SeqCst),
        1,
        "run() returned before the lost connection's handler finished"
    );
    assert_eq!(gauge.now.load(Ordering::SeqCst), 0);
}

#[test]
fn tokio_worker_run_waits_for_a_lost_connections_handler() {
    run_waits_for_a_lost_connections_handler(tokio_start_counted);
}

#[test]
fn smol_worker_run_waits_for_a_lost_connections_handler() {
    run_waits_for_a_lost_connections_handler(smol_start_counted);
}

/// The blocking worker runs each job inline on a thread `run()` joins: this guards that
/// it stays so.
#[test]
fn blocking_worker_run_waits_for_a_lost_connections_handler() {
    run_waits_for_a_lost_connections_handler(blocking_start_counted);
}

/// `work_once` gets a `slow` job and the server drops the connection while it runs: the
/// call must not return before the handler does (a caller looping on `work_once` would
/// otherwise run jobs side by side). The async worker's returned at once.
fn work_once_waits_for_a_lost_connections_handler(start: StartCounted) {
    let server = RawServer::bind();
    let gauge = Arc::new(Gauge::default());
    let (_handle, thread) = start(server.addr(), gauge.clone(), Call::WorkOnce);
    let mut conn = server.accept(PROMPT);
    assign_slow(&mut conn, "H:1");
    gauge.wait_running();
    drop(conn);
    join_within(thread, PROMPT + SLOW, "work_once");
    assert_eq!(
        gauge.done.load(Ordering::SeqCst),
        1,
        "work_once returned before its handler finished"
    );
}

#[test]
fn tokio_worker_work_once_waits_for_a_lost_connections_handler() {
    work_once_waits_for_a_lost_connections_handler(tokio_start_counted);
}

#[test]
fn smol_worker_work_once_waits_for_a_lost_connections_handler() {
    work_once_waits_for_a_lost_connections_handler(smol_start_counted);
}

/// Inline on the calling thread: guards that it stays so.
#[test]
fn blocking_worker_work_once_waits_for_a_lost_connections_handler() {
    work_once_waits_for_a_lost_connections_handler(blocking_start_counted);
}
