//! Nothing a client or worker has queued may wait for its next read: a scripted server
//! (`raw_server`) checks that WORK_COMPLETE and the next grab, and every server's
//! submissions, arrive before it sends anything more. The blocking worker's read timeout
//! is set to 30 s here, so a result held back until the next wakeup fails the 5 s bound.

mod adapter_common;

use adapter_common::raw_server::{RawConn, RawServer};
use bytes::Bytes;
use gearman_core::proto::{AssignExtras, JobAssign, Request, Response, WorkPayload};
use std::sync::mpsc;
use std::time::Duration;

/// Far longer than any bound below: a send that waits for a wakeup shows.
const LONG_TICK: Duration = Duration::from_secs(30);
/// How long a test waits for a packet that should come at once.
const PROMPT: Duration = Duration::from_secs(5);

/// Plays one job to a worker: waits for its grab, assigns `H:1` of `echo`, and checks that
/// WORK_COMPLETE and the next grab come with nothing more sent.
fn assign_and_expect_result(conn: &mut RawConn) {
    let is_grab = |r: &Request| matches!(r, Request::GrabJob(_));
    conn.expect(PROMPT, "first grab", is_grab);
    conn.send(Response::JobAssign(JobAssign {
        handle: "H:1".into(),
        function: "echo".into(),
        extras: AssignExtras::Unique("u".into()),
        data: "payload".into(),
    }));
    let done = conn.expect(PROMPT, "WORK_COMPLETE", |r| {
        matches!(r, Request::WorkComplete(_))
    });
    assert_eq!(
        done,
        Request::WorkComplete(WorkPayload {
            handle: "H:1".into(),
            data: "payload".into(),
        })
    );
    conn.expect(PROMPT, "the grab after WORK_COMPLETE", is_grab);
}

/// Joins `thread` within 10 s (see [`adapter_common::join_within`]).
fn join_within(thread: std::thread::JoinHandle<()>, what: &str) {
    adapter_common::join_within(thread, Duration::from_secs(10), what);
}

#[test]
fn blocking_worker_sends_its_result_and_next_grab_at_once() {
    let server = RawServer::bind();
    let worker = gearman_blocking::Worker::new([server.addr()])
        .poll_interval(LONG_TICK)
        .function("echo", |job| Ok(job.data().clone()))
        .build();
    let stop = worker.handle();
    let thread = std::thread::spawn(move || worker.run());
    let mut conn = server.accept(PROMPT);
    assign_and_expect_result(&mut conn);
    stop.shutdown();
    drop(conn);
    join_within(thread, "blocking worker");
}

fn async_worker_sends_at_once<Rt: gearman_async::Runtime>(
    rt: Rt,
    connector: impl gearman_async::Connector,
    block_on: fn(std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>),
) {
    let server = RawServer::bind();
    let worker = gearman_async::WorkerBuilder::new(rt, connector)
        .server(server.addr())
        .sync_function("echo", |job| Ok(job.data().clone()))
        .build();
    let stop = worker.shutdown_handle();
    let thread = std::thread::spawn(move || block_on(Box::pin(worker.run())));
    let mut conn = server.accept(PROMPT);
    assign_and_expect_result(&mut conn);
    stop.shutdown();
    drop(conn);
    join_within(thread, "async worker");
}

#[test]
fn tokio_worker_sends_its_result_and_next_grab_at_once() {
    async_worker_sends_at_once(
        gearman_tokio::TokioRuntime,
        gearman_tokio::TokioConnector,
        |f| tokio::runtime::Runtime::new().expect("tokio").block_on(f),
    );
}

#[test]
fn smol_worker_sends_its_result_and_next_grab_at_once() {
    async_worker_sends_at_once(
        gearman_async_std::AsyncIoRuntime,
        gearman_async_std::AsyncIoConnector,
        smol::block_on,
    );
}

/// Two servers, one job each: each must see its SUBMIT_JOB while the other has not
/// answered yet; then both finish their job.
fn both_servers_get_their_submission_first(
    run: impl FnOnce([String; 2]) -> Vec<Bytes> + Send + 'static,
) {
    let servers = [RawServer::bind(), RawServer::bind()];
    let addrs = [servers[0].addr(), servers[1].addr()];
    let client = std::thread::spawn(move || run(addrs));
    let mut conns = Vec::new();
    for server in &servers {
        let mut conn = server.accept(PROMPT);
        let submit = conn.expect(PROMPT, "SUBMIT_JOB", |r| matches!(r, Request::Submit(_)));
        let Request::Submit(job) = submit else {
            unreachable!()
        };
        conns.push((conn, job.data));
    }
    for (i, (conn, data)) in conns.iter_mut().enumerate() {
        let handle = Bytes::from(format!("H:{i}"));
        conn.send(Response::JobCreated {
            handle: handle.clone(),
        });
        conn.send(Response::WorkComplete(WorkPayload {
            handle,
            data: data.clone(),
        }));
    }
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(client.join());
    });
    let mut results = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("client finished")
        .expect("client thread");
    results.sort();
    assert_eq!(results, [Bytes::from("a"), Bytes::from("b")]);
}

#[test]
fn blocking_client_sends_to_every_server_before_waiting_on_one() {
    both_servers_get_their_submission_first(|addrs| {
        let mut client = gearman_blocking::Client::new(addrs);
        let jobs = vec![
            gearman_blocking::Job::new("echo", "a"),
            gearman_blocking::Job::new("echo", "b"),
        ];
        let results = client.run_tasks(jobs, |_, _| {});
        results
            .into_iter()
            .map(|r| r.expect("job result"))
            .collect()
    });
}

#[test]
fn tokio_client_sends_to_every_server_before_waiting_on_one() {
    both_servers_get_their_submission_first(|addrs| {
        let rt = tokio::runtime::Runtime::new().expect("tokio");
        let mut b = gearman_tokio::client();
        for a in addrs {
            b = b.server(a);
        }
        let client = b.build();
        let runs = ["a", "b"].map(|d| client.run(gearman_tokio::Job::new("echo", d)));
        let results = rt.block_on(futures::future::join_all(runs));
        results
            .into_iter()
            .map(|r| r.expect("job result"))
            .collect()
    });
}

#[test]
fn smol_client_sends_to_every_server_before_waiting_on_one() {
    both_servers_get_their_submission_first(|addrs| {
        let client = gearman_async_std::client().servers(addrs).build();
        let runs = ["a", "b"].map(|d| client.run(gearman_async_std::Job::new("echo", d)));
        let results = smol::block_on(futures::future::join_all(runs));
        results
            .into_iter()
            .map(|r| r.expect("job result"))
            .collect()
    });
}
