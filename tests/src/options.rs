//! gearmand flags whose effect shows on the wire, as scenarios run against any server
//! started with the flag named in each function's doc (gearmand-rs in
//! `server/tests/options.rs`, the C gearmand in `tests/tests/interop_gearmand.rs`).

use crate::{Conn, ServerProcess};
use gearman_core::proto::WorkPayload;
use gearman_core::proto::{GrabMode, Priority, Request, Response, SubmitMode};
use std::time::Duration;

/// Waits until `status` lists `n` workers for `function`, so the server has seen each
/// worker's CAN_DO before the test goes on.
fn registered(server: &ServerProcess, function: &str, n: usize) {
    crate::wait_for_workers(server, function, n);
}

/// `-w 1` (--worker-wakeup): a new job wakes one of three sleeping workers, not all.
pub fn worker_wakeup_one(server: &ServerProcess) {
    let mut workers: Vec<Conn> = (0..3).map(|_| server.conn()).collect();
    for w in &mut workers {
        w.send(Request::CanDo {
            function: "wake".into(),
        });
        w.send(Request::PreSleep);
    }
    registered(server, "wake", 3);
    let mut client = server.conn();
    client.submit("wake", SubmitMode::Background(Priority::Normal));
    let mut woken = 0;
    for w in &mut workers {
        if w.recv_within(Duration::from_millis(500)) == Some(Response::Noop) {
            woken += 1;
        }
    }
    assert_eq!(woken, 1, "NOOPs sent for one job with -w 1");
}

/// `--job-handle-prefix TESTPFX`: handles are `TESTPFX:<n>`.
pub fn job_handle_prefix(server: &ServerProcess) {
    let mut client = server.conn();
    let handle = client.submit("pfx", SubmitMode::Background(Priority::Normal));
    let text = String::from_utf8_lossy(&handle).into_owned();
    let counter = text
        .strip_prefix("TESTPFX:")
        .unwrap_or_else(|| panic!("{text}"));
    assert!(counter.parse::<u64>().is_ok(), "{text}");
}

/// `--exceptions`: a client that never asked for the `exceptions` option still gets
/// WORK_EXCEPTION with the worker's data.
pub fn exceptions_by_default(server: &ServerProcess) {
    let mut worker = server.conn();
    worker.send(Request::CanDo {
        function: "exc".into(),
    });
    registered(server, "exc", 1);
    let mut client = server.conn();
    let handle = client.submit("exc", SubmitMode::Foreground(Priority::Normal));
    worker.send(Request::GrabJob(GrabMode::Uniq));
    assert!(matches!(worker.recv(), Response::JobAssign(_)));
    worker.send(Request::WorkException(WorkPayload {
        handle: handle.clone(),
        data: "boom".into(),
    }));
    assert_eq!(
        client.recv(),
        Response::WorkException(WorkPayload {
            handle,
            data: "boom".into()
        })
    );
}
