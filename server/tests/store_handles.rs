//! With a durable queue, job handles never repeat across a restart: a client holding a
//! handle from before (for GET_STATUS, or a cancel) must not reach a different job.

mod common;

use common::Server;
use gearman_core::proto::{GrabMode, Priority, Request, Response, SubmitMode, WorkPayload};
use gearman_tests::Conn;
use std::path::PathBuf;

fn submit_background(conn: &mut Conn) -> bytes::Bytes {
    conn.submit("handles_fn", SubmitMode::Background(Priority::Normal))
}

#[test]
fn handles_are_not_reused_after_a_restart() {
    let db = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("store-handles-{}.db", std::process::id()));
    let _ = std::fs::remove_file(&db);
    let db_arg = db.to_str().unwrap().to_string();
    let args = ["-q", "libsqlite3", "--libsqlite3-db", db_arg.as_str()];

    let mut first = Server::start(&args);
    let mut client = first.conn();
    let old = submit_background(&mut client);
    // Run it to completion, so it is gone from the store.
    let mut worker = first.conn();
    worker.send(Request::CanDo {
        function: "handles_fn".into(),
    });
    worker.send(Request::GrabJob(GrabMode::Plain));
    let job = match worker.recv() {
        Response::JobAssign(job) => job,
        other => panic!("expected JOB_ASSIGN, got {other:?}"),
    };
    worker.send(Request::WorkComplete(WorkPayload {
        handle: job.handle,
        data: "done".into(),
    }));
    client.send(Request::GetStatus {
        handle: old.clone(),
    });
    assert!(matches!(client.recv(), Response::StatusRes(s) if !s.known));
    let _ = first.child.kill();
    let _ = first.child.wait();
    drop(first);

    let restarted = Server::start(&args);
    let mut client = restarted.conn();
    let new = submit_background(&mut client);
    assert_ne!(new, old, "a handle from before the restart names a new job");
    client.send(Request::GetStatus {
        handle: old.clone(),
    });
    match client.recv() {
        Response::StatusRes(s) => assert!(!s.known, "{old:?} is known again: {s:?}"),
        other => panic!("expected STATUS_RES, got {other:?}"),
    }
    let _ = std::fs::remove_file(&db);
}
