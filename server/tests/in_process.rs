//! The in-process server (`gearman_server::Server::builder()...spawn()`) from
//! `#[tokio::test]`s, as someone testing their own workers would use it: the tokio client,
//! worker and admin client against it, graceful and immediate stops, two servers in one
//! runtime, and the errors a caller can make.

use gearman_server::Server;
use gearman_tokio::{Error, Job};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(10);

/// A worker for `reverse` and `sleep` (sleeps the workload's milliseconds) on `addr`.
fn start_worker(addr: String) -> gearman_tokio::WorkerHandle {
    let worker = gearman_tokio::worker()
        .server(addr)
        .concurrency(2)
        .function("reverse", |job| async move {
            Ok(job.data().iter().rev().copied().collect::<Vec<u8>>().into())
        })
        .function("sleep", |job| async move {
            let ms: u64 = std::str::from_utf8(job.data()).unwrap().parse().unwrap();
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok(format!("slept {ms}").into())
        })
        .build();
    let handle = worker.handle();
    tokio::spawn(worker.run());
    handle
}

/// `(total, running, workers)` of `function` from the admin `status`.
async fn status(addr: &str, function: &str) -> (u64, u64, u64) {
    let mut admin = gearman_tokio::admin::client(addr.to_string());
    let rows = admin.status().await.expect("admin status");
    rows.iter()
        .find(|r| r.function.as_ref() == function.as_bytes())
        .map_or((0, 0, 0), |r| (r.total, r.running, r.workers))
}

async fn wait_for(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + LIMIT;
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_jobs_and_a_graceful_shutdown_finishes_the_running_one() {
    let server = Server::builder().spawn().expect("spawn");
    let addr = server.addr().expect("a TCP address");
    assert!(addr.ip().is_loopback() && addr.port() != 0, "{addr}");
    // The library leaves logging to the host program.
    assert!(!tracing::dispatcher::has_been_set());
    let addr = addr.to_string();
    let worker = start_worker(addr.clone());
    let client = gearman_tokio::client().server(addr.clone()).build();
    let reversed = client.run(Job::new("reverse", "hello")).await.unwrap();
    assert_eq!(&reversed[..], b"olleh");

    // A job running when the shutdown comes still completes and reaches its client.
    let slow = tokio::spawn({
        let client = client.clone();
        async move { client.run(Job::new("sleep", "600")).await }
    });
    wait_for("the sleep job to run", async || {
        status(&addr, "sleep").await.1 == 1
    })
    .await;
    let started = Instant::now();
    tokio::time::timeout(LIMIT, server.shutdown())
        .await
        .expect("shutdown returned")
        .expect("clean stop");
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "returned before the running job finished"
    );
    assert_eq!(&slow.await.unwrap().unwrap()[..], b"slept 600");
    // Stopped: nothing listens any more.
    assert!(tokio::net::TcpStream::connect(&addr).await.is_err());
    worker.shutdown();
}

#[tokio::test(flavor = "current_thread")]
async fn two_servers_in_one_runtime_and_an_immediate_stop() {
    let first = Server::builder().spawn().unwrap();
    let second = Server::builder()
        .arg("--job-retries")
        .arg("2")
        .spawn()
        .unwrap();
    let (a, b) = (first.addr().unwrap(), second.addr().unwrap());
    assert_ne!(a, b);
    let worker = start_worker(b.to_string());
    // Background jobs queued on the first server, with no worker there.
    let on_first = gearman_tokio::client().server(a.to_string()).build();
    for _ in 0..3 {
        on_first
            .submit_background(Job::new("reverse", "x"))
            .await
            .unwrap();
    }
    assert_eq!(status(&a.to_string(), "reverse").await.0, 3);
    tokio::time::timeout(LIMIT, first.stop())
        .await
        .expect("stop returned")
        .unwrap();
    assert!(tokio::net::TcpStream::connect(a).await.is_err());
    // The other one is untouched.
    let on_second = gearman_tokio::client().server(b.to_string()).build();
    let reply = on_second.run(Job::new("reverse", "ab")).await.unwrap();
    assert_eq!(&reply[..], b"ba");
    worker.shutdown();
    drop(second); // Dropping the handle stops it too.
    wait_for("the dropped server to stop", async || {
        tokio::net::TcpStream::connect(b).await.is_err()
    })
    .await;
}

#[tokio::test(flavor = "current_thread")]
async fn an_admin_shutdown_ends_it_and_the_handle_sees_it() {
    let server = Server::builder().spawn().unwrap();
    let addr = server.addr().unwrap().to_string();
    let mut admin = gearman_tokio::admin::client(addr.clone());
    let _ = admin
        .raw(&gearman_tokio::admin::AdminCommand::Shutdown { graceful: false })
        .await;
    wait_for("the admin shutdown", async || server.is_finished()).await;
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn caller_errors_are_start_errors() {
    let bad_flag = Server::builder().arg("--no-such-flag").spawn().unwrap_err();
    assert!(
        bad_flag.to_string().contains("--no-such-flag"),
        "{bad_flag}"
    );
    let daemon = Server::builder().arg("--daemon").spawn().unwrap_err();
    assert!(daemon.to_string().contains("in-process"), "{daemon}");
    // A port in use: a one-line error naming it, not a panic.
    let taken = Server::builder().spawn().unwrap();
    let port = taken.addr().unwrap().port();
    let busy = Server::builder().port(port).spawn().unwrap_err();
    assert!(busy.to_string().contains(&port.to_string()), "{busy}");
    // Unreachable once stopped: a client gets NoServer with the io error.
    taken.stop().await.unwrap();
    let client = gearman_tokio::client()
        .server(format!("127.0.0.1:{port}"))
        .build();
    assert!(matches!(client.connect().await, Err(Error::NoServer(_))));
}

#[test]
fn spawn_outside_a_runtime_is_an_error_not_a_panic() {
    let err = Server::builder().spawn().unwrap_err();
    assert!(err.to_string().contains("tokio runtime"), "{err}");
}
