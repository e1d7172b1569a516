//! A worker handler streaming WORK_DATA goes no faster than the server takes it: against a
//! scripted server (`raw_server`) that assigns a job and then stops reading, a handler
//! sending 64 MiB in 64 KiB chunks with `send_data_async` (the blocking worker's
//! `send_data`, which writes before it returns) is held back after a few MiB; once the
//! server reads, every chunk arrives, in order, before WORK_COMPLETE.

mod adapter_common;

use adapter_common::raw_server::{RawConn, RawServer};
use bytes::Bytes;
use gearman_core::proto::{AssignExtras, JobAssign, Request, Response, WorkPayload};
use gearman_core::worker::{Report, WorkError};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One chunk of the streamed output.
const CHUNK: usize = 64 * 1024;
/// Chunks streamed: 64 MiB in all.
const CHUNKS: usize = 1024;
/// Chunks a held-back handler may get out while the server reads nothing: the bound (4
/// MiB) plus the kernel's socket buffers on both ends leave it far below this (a quarter
/// of the stream); without backpressure it sends all of them at once.
const HELD_BACK: usize = CHUNKS / 4;
/// How long a test waits for a packet that should come at once.
const PROMPT: Duration = Duration::from_secs(10);

type BlockOn = fn(Pin<Box<dyn Future<Output = ()> + Send>>);

/// Chunk `i`: its index in the first 8 bytes, so order shows on the wire.
fn chunk(i: usize) -> Bytes {
    let mut c = vec![0u8; CHUNK];
    c[..8].copy_from_slice(&(i as u64).to_be_bytes());
    Bytes::from(c)
}

/// Waits for the grab and assigns `H:1` of `function`.
fn assign(conn: &mut RawConn, function: &str) {
    conn.expect(PROMPT, "first grab", |r| matches!(r, Request::GrabJob(_)));
    conn.send(Response::JobAssign(JobAssign {
        handle: "H:1".into(),
        function: Bytes::copy_from_slice(function.as_bytes()),
        extras: AssignExtras::Unique("u".into()),
        data: Bytes::new(),
    }));
}

/// Lets the handler run into its bound while the server reads nothing: returns the chunks
/// it got out once their count stood still for 300 ms (or after 5 s), which must be far
/// fewer than the stream.
fn held_back(sent: &AtomicUsize) -> usize {
    let end = Instant::now() + Duration::from_secs(5);
    let mut last = sent.load(Ordering::SeqCst);
    let mut still = Instant::now();
    while Instant::now() < end && still.elapsed() < Duration::from_millis(300) {
        std::thread::sleep(Duration::from_millis(20));
        let now = sent.load(Ordering::SeqCst);
        if now != last {
            (last, still) = (now, Instant::now());
        }
    }
    let held = sent.load(Ordering::SeqCst);
    assert!(
        held < HELD_BACK,
        "the handler got {held} of {CHUNKS} chunks out while the server read nothing"
    );
    held
}

/// Reads the whole stream: every chunk in order, then WORK_COMPLETE `done`.
fn read_stream(conn: &mut RawConn) {
    for i in 0..CHUNKS {
        match conn.recv_within(PROMPT) {
            Some(Request::WorkData(WorkPayload { handle, data })) => {
                assert_eq!(handle, "H:1");
                assert_eq!(data, chunk(i), "chunk {i} out of order");
            }
            other => panic!("expected WORK_DATA {i}, got {other:?}"),
        }
    }
    let done = conn.recv_within(PROMPT);
    let complete = Request::WorkComplete(WorkPayload {
        handle: "H:1".into(),
        data: "done".into(),
    });
    assert_eq!(done, Some(complete), "WORK_COMPLETE after the last chunk");
}

/// Joins `thread` within 10 s (see [`adapter_common::join_within`]).
fn join_within(thread: std::thread::JoinHandle<()>, what: &str) {
    adapter_common::join_within(thread, Duration::from_secs(10), what);
}

/// An async worker whose `stream` handler sends [`CHUNKS`] chunks with `send_data_async`,
/// counting them in `sent`; a failed send is kept in `failed`.
fn streaming_worker<Rt: gearman_async::Runtime>(
    rt: Rt,
    connector: impl gearman_async::Connector,
    addr: String,
    sent: Arc<AtomicUsize>,
    failed: Arc<Mutex<Option<gearman_async::Error>>>,
) -> gearman_async::Worker<Rt> {
    gearman_async::WorkerBuilder::new(rt, connector)
        .server(addr)
        .function("stream", move |job| {
            let (sent, failed) = (sent.clone(), failed.clone());
            async move {
                for i in 0..CHUNKS {
                    if let Err(e) = job.send_data_async(chunk(i)).await {
                        *failed.lock().unwrap() = Some(e);
                        return Err(WorkError::Fail);
                    }
                    sent.fetch_add(1, Ordering::SeqCst);
                }
                Ok("done".into())
            }
        })
        .build()
}

fn async_streaming_handler_is_held_back<Rt: gearman_async::Runtime>(
    rt: Rt,
    connector: impl gearman_async::Connector,
    block_on: BlockOn,
) {
    let server = RawServer::bind();
    let sent = Arc::new(AtomicUsize::new(0));
    let failed = Arc::default();
    let worker = streaming_worker(rt, connector, server.addr(), sent.clone(), failed);
    let stop = worker.shutdown_handle();
    let thread = std::thread::spawn(move || block_on(Box::pin(worker.run())));
    let mut conn = server.accept(PROMPT);
    assign(&mut conn, "stream");
    held_back(&sent);
    read_stream(&mut conn);
    assert_eq!(sent.load(Ordering::SeqCst), CHUNKS);
    stop.shutdown();
    drop(conn);
    join_within(thread, "async worker");
}

#[test]
fn tokio_streaming_handler_is_held_back_by_a_slow_server() {
    async_streaming_handler_is_held_back(
        gearman_tokio::TokioRuntime,
        gearman_tokio::TokioConnector,
        |f| tokio::runtime::Runtime::new().expect("tokio").block_on(f),
    );
}

#[test]
fn smol_streaming_handler_is_held_back_by_a_slow_server() {
    async_streaming_handler_is_held_back(
        gearman_async_std::AsyncIoRuntime,
        gearman_async_std::AsyncIoConnector,
        smol::block_on,
    );
}

/// A handler held back when the connection dies gets an error instead of waiting forever.
fn async_held_back_send_fails_when_the_connection_is_lost<Rt: gearman_async::Runtime>(
    rt: Rt,
    connector: impl gearman_async::Connector,
    block_on: BlockOn,
) {
    let server = RawServer::bind();
    let sent = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(Mutex::new(None));
    let worker = streaming_worker(rt, connector, server.addr(), sent.clone(), failed.clone());
    let stop = worker.shutdown_handle();
    let thread = std::thread::spawn(move || block_on(Box::pin(worker.run())));
    let mut conn = server.accept(PROMPT);
    assign(&mut conn, "stream");
    held_back(&sent);
    drop(conn);
    let end = Instant::now() + PROMPT;
    while failed.lock().unwrap().is_none() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(10));
    }
    let error = failed.lock().unwrap().take();
    assert!(
        matches!(error, Some(gearman_async::Error::Connection(_))),
        "a held-back send on a lost connection: {error:?}"
    );
    assert!(sent.load(Ordering::SeqCst) < HELD_BACK);
    stop.shutdown();
    join_within(thread, "async worker");
}

#[test]
fn tokio_held_back_send_fails_when_the_connection_is_lost() {
    async_held_back_send_fails_when_the_connection_is_lost(
        gearman_tokio::TokioRuntime,
        gearman_tokio::TokioConnector,
        |f| tokio::runtime::Runtime::new().expect("tokio").block_on(f),
    );
}

#[test]
fn smol_held_back_send_fails_when_the_connection_is_lost() {
    async_held_back_send_fails_when_the_connection_is_lost(
        gearman_async_std::AsyncIoRuntime,
        gearman_async_std::AsyncIoConnector,
        smol::block_on,
    );
}

/// Reports made with and without waiting reach the server in the order they were made,
/// all before WORK_COMPLETE.
fn async_reports_keep_their_order<Rt: gearman_async::Runtime>(
    rt: Rt,
    connector: impl gearman_async::Connector,
    block_on: BlockOn,
) {
    let server = RawServer::bind();
    let worker = gearman_async::WorkerBuilder::new(rt, connector)
        .server(server.addr())
        .function("mixed", |job| async move {
            job.send_data("a");
            job.send_data_async("b").await.expect("b");
            job.status(1, 2);
            job.report_async(Report::Warning("w".into()))
                .await
                .expect("w");
            job.send_data("c");
            job.send_data_async("d").await.expect("d");
            Ok("done".into())
        })
        .build();
    let stop = worker.shutdown_handle();
    let thread = std::thread::spawn(move || block_on(Box::pin(worker.run())));
    let mut conn = server.accept(PROMPT);
    assign(&mut conn, "mixed");
    let payload = |data: &'static str| WorkPayload {
        handle: "H:1".into(),
        data: data.into(),
    };
    for want in [
        Request::WorkData(payload("a")),
        Request::WorkData(payload("b")),
    ] {
        assert_eq!(conn.recv_within(PROMPT), Some(want));
    }
    let status = conn.recv_within(PROMPT);
    assert!(
        matches!(status, Some(Request::WorkStatus(_))),
        "WORK_STATUS third, got {status:?}"
    );
    for want in [
        Request::WorkWarning(payload("w")),
        Request::WorkData(payload("c")),
        Request::WorkData(payload("d")),
        Request::WorkComplete(payload("done")),
    ] {
        assert_eq!(conn.recv_within(PROMPT), Some(want));
    }
    stop.shutdown();
    drop(conn);
    join_within(thread, "async worker");
}

#[test]
fn tokio_reports_keep_their_order_before_the_result() {
    async_reports_keep_their_order(
        gearman_tokio::TokioRuntime,
        gearman_tokio::TokioConnector,
        |f| tokio::runtime::Runtime::new().expect("tokio").block_on(f),
    );
}

#[test]
fn smol_reports_keep_their_order_before_the_result() {
    async_reports_keep_their_order(
        gearman_async_std::AsyncIoRuntime,
        gearman_async_std::AsyncIoConnector,
        smol::block_on,
    );
}

/// The blocking worker's `send_data` writes before it returns: a server that stops
/// reading holds the handler back within the socket buffers.
#[test]
fn blocking_streaming_handler_is_held_back_by_a_slow_server() {
    let server = RawServer::bind();
    let sent = Arc::new(AtomicUsize::new(0));
    let counter = sent.clone();
    let worker = gearman_blocking::Worker::new([server.addr()])
        .function("stream", move |job| {
            for i in 0..CHUNKS {
                job.send_data(chunk(i));
                counter.fetch_add(1, Ordering::SeqCst);
            }
            Ok("done".into())
        })
        .build();
    let stop = worker.handle();
    let thread = std::thread::spawn(move || worker.run());
    let mut conn = server.accept(PROMPT);
    assign(&mut conn, "stream");
    held_back(&sent);
    read_stream(&mut conn);
    assert_eq!(sent.load(Ordering::SeqCst), CHUNKS);
    stop.shutdown();
    drop(conn);
    join_within(thread, "blocking worker");
}
