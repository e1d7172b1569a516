//! Timers over real sockets: SUBMIT_JOB_EPOCH waking a sleeping worker on time (gearmand
//! 1.1.20 never wakes it), and CAN_DO_TIMEOUT restarting a stuck job on another worker and
//! failing it to the client once --job-retries is used up (1.1.20 can hang here).

mod common;

use common::Server;
use gearman_core::proto::{GrabMode, Priority, Request, Response, SubmitJob, SubmitMode};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn assigned_handle(r: &Response) -> bytes::Bytes {
    match r {
        Response::JobAssign(a) => a.handle.clone(),
        other => panic!("expected JOB_ASSIGN, got {other:?}"),
    }
}

#[test]
fn epoch_job_wakes_a_sleeping_worker_on_time() {
    let server = Server::start(&[]);
    let mut worker = server.conn();
    worker.send(Request::CanDo {
        function: "later".into(),
    });
    worker.send(Request::PreSleep);
    let unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let due = unix + 2;
    let mut client = server.conn();
    let submitted = Instant::now();
    client.send(Request::Submit(SubmitJob {
        function: "later".into(),
        unique: "".into(),
        mode: SubmitMode::Epoch(due),
        data: "tick".into(),
    }));
    assert!(matches!(client.recv(), Response::JobCreated { .. }));
    // Nothing before the due second starts; a NOOP by shortly after it.
    let early = worker.recv_within(Duration::from_millis(900));
    assert_eq!(early, None, "woken before the job was due");
    let noop = worker.recv_within(Duration::from_secs(4));
    assert_eq!(noop, Some(Response::Noop));
    let waited = submitted.elapsed();
    assert!(
        waited >= Duration::from_millis(900),
        "woken after {waited:?}"
    );
    let now_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(now_unix >= due, "woken at {now_unix}, due {due}");
    worker.send(Request::GrabJob(GrabMode::Uniq));
    let job = worker.recv();
    assert!(!assigned_handle(&job).is_empty());
}

#[test]
fn can_do_timeout_restarts_then_fails_when_retries_are_used_up() {
    let server = Server::start(&["--job-retries", "1"]);
    let (mut w1, mut w2) = (server.conn(), server.conn());
    for w in [&mut w1, &mut w2] {
        w.send(Request::CanDoTimeout {
            function: "stuck".into(),
            timeout_ms: 1000,
        });
    }
    w2.send(Request::PreSleep);
    let mut client = server.conn();
    let handle = client.submit("stuck", SubmitMode::Foreground(Priority::Normal));
    // w2 may get a NOOP for the new job before w1 grabs it; it then sleeps again.
    w1.send(Request::GrabJob(GrabMode::Uniq));
    assert_eq!(assigned_handle(&w1.recv()), handle);
    let started = Instant::now();
    // w1 never answers. After the 1 s limit the job is restarted on w2.
    loop {
        match w2.recv_within(Duration::from_secs(4)) {
            Some(Response::Noop) => {
                w2.send(Request::GrabJob(GrabMode::Uniq));
                match w2.recv() {
                    Response::NoJob => w2.send(Request::PreSleep),
                    assign => {
                        assert_eq!(assigned_handle(&assign), handle);
                        break;
                    }
                }
            }
            other => panic!("w2 expected a wake-up, got {other:?}"),
        }
    }
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "restarted too early"
    );
    // w2 also stalls: with one retry used, the job now fails to the client.
    assert_eq!(
        client.recv_within(Duration::from_secs(5)),
        Some(Response::WorkFail {
            handle: handle.clone()
        })
    );
    // The stale worker's late result is refused; the server is still healthy.
    w1.send(Request::WorkComplete(gearman_core::proto::WorkPayload {
        handle,
        data: "late".into(),
    }));
    assert_eq!(
        w1.recv(),
        Response::error("JOB_NOT_FOUND", "Job given in work result not found")
    );
}
