//! gearmand flags seen on the wire (`gearman_tests::options`, also run against the C
//! gearmand), and --job-retries 0 which gearmand 1.1.20 reads differently.

mod common;

use common::Server;
use gearman_core::proto::{GrabMode, Priority, Request, Response, SubmitJob, SubmitMode};
use gearman_tests::options;

#[test]
fn worker_wakeup_one() {
    options::worker_wakeup_one(&Server::start(&["-w", "1"]));
}

#[test]
fn job_handle_prefix() {
    options::job_handle_prefix(&Server::start(&["--job-handle-prefix", "TESTPFX"]));
}

#[test]
fn exceptions_by_default() {
    options::exceptions_by_default(&Server::start(&["--exceptions"]));
}

/// gearmand 2.0 semantics: `-j 0` means no retry, so the first vanished worker fails the
/// job to its client (in 1.1.20, 0 meant unlimited).
#[test]
fn job_retries_zero_fails_at_the_first_lost_worker() {
    let server = Server::start(&["-j", "0"]);
    let mut worker = server.conn();
    worker.send(Request::CanDo {
        function: "once".into(),
    });
    gearman_tests::wait_for_workers(&server, "once", 1);
    let mut client = server.conn();
    let handle = client.submit("once", SubmitMode::Foreground(Priority::Normal));
    worker.send(Request::GrabJob(GrabMode::Uniq));
    assert!(matches!(worker.recv(), Response::JobAssign(_)));
    drop(worker);
    assert_eq!(client.recv(), Response::WorkFail { handle });
}

/// The default (-1, unlimited): a job whose worker vanished is handed to the next worker.
#[test]
fn job_retries_default_requeues_a_lost_job() {
    let server = Server::start(&[]);
    let mut first = server.conn();
    first.send(Request::CanDo {
        function: "again".into(),
    });
    gearman_tests::wait_for_workers(&server, "again", 1);
    let mut client = server.conn();
    client.send(Request::Submit(SubmitJob {
        function: "again".into(),
        unique: "".into(),
        mode: SubmitMode::Foreground(Priority::Normal),
        data: "x".into(),
    }));
    assert!(matches!(client.recv(), Response::JobCreated { .. }));
    first.send(Request::GrabJob(GrabMode::Uniq));
    assert!(matches!(first.recv(), Response::JobAssign(_)));
    drop(first);
    let mut second = server.conn();
    second.send(Request::CanDo {
        function: "again".into(),
    });
    // The server may read the second worker before it notices the first one is gone;
    // PRE_SLEEP is answered with NOOP once the job is queued again (at once if it is).
    second.send(Request::PreSleep);
    assert_eq!(second.recv(), Response::Noop);
    second.send(Request::GrabJob(GrabMode::Uniq));
    assert!(matches!(second.recv(), Response::JobAssign(_)));
}
