//! Results kept for background jobs (`--keep-results`) over real sockets: a background job
//! run by the libgearman `gearman` worker is read back with `show result` by handle and
//! by unique; with the SQLite store the result survives `kill -9` and still expires by the
//! time its job ended; gearmand peers (the `gearman` CLI) see no difference.

mod common;

use common::{run, stdout, wait_for_workers, Peer, Server};
use gearman_core::admin_reply::{parse_reply, JobResult, Outcome};
use gearman_core::proto::admin::AdminCommand;
use gearman_core::proto::WorkPayload;
use gearman_core::proto::{GrabMode, Priority, Request, Response, SubmitJob, SubmitMode};
use gearman_core::server::ExtraKind;
use gearman_server::store::sqlite::{SqliteConfig, SqliteStore};
use gearman_tests::TempDir;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const LIMIT: Duration = Duration::from_secs(10);

/// A fresh `queue.db` path in a throwaway directory, removed when the [`TempDir`] is dropped
/// (keep it alive until the server using it is killed).
fn temp_db(name: &str) -> (TempDir, PathBuf) {
    let dir = gearman_tests::temp_dir(name);
    let db = dir.path().join("queue.db");
    (dir, db)
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn submit_background(
    client: &mut common::Conn,
    function: &str,
    unique: &str,
    data: &str,
) -> bytes::Bytes {
    client.send(Request::Submit(SubmitJob {
        function: function.to_string().into(),
        unique: unique.to_string().into(),
        mode: SubmitMode::Background(Priority::Normal),
        data: data.to_string().into(),
    }));
    match client.recv() {
        Response::JobCreated { handle } => handle,
        other => panic!("expected JOB_CREATED, got {other:?}"),
    }
}

/// The `show result` reply to `command`, parsed as a client parses it.
fn show(server: &Server, command: AdminCommand, line: &str) -> Result<JobResult, String> {
    let reply = server.conn().admin(line);
    parse_reply(&command, reply.as_bytes())
        .map(|r| match r {
            gearman_core::admin_reply::AdminReply::Result(r) => r,
            other => panic!("{other:?}"),
        })
        .map_err(|e| e.to_string())
}

fn show_handle(server: &Server, handle: &[u8]) -> Result<JobResult, String> {
    let handle = String::from_utf8(handle.to_vec()).unwrap();
    show(
        server,
        AdminCommand::ShowResult(handle.clone().into()),
        &format!("show result {handle}\r\n"),
    )
}

/// Polls `show result HANDLE` (up to 10 s) until the job has ended.
fn wait_result(server: &Server, handle: &[u8]) -> JobResult {
    let deadline = Instant::now() + LIMIT;
    loop {
        match show_handle(server, handle) {
            Ok(r) => return r,
            Err(e) if Instant::now() < deadline && e == "UNKNOWN_JOB" => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(e) => panic!("no result for {handle:?}: {e}"),
        }
    }
}

#[test]
fn a_background_job_run_by_the_gearman_worker_is_read_back_by_handle_and_unique() {
    let server = Server::start(&["--keep-results", "1h"]);
    let port = server.port.to_string();
    let _worker = Peer::spawn("gearman", &["-p", &port, "-w", "-f", "rev", "--", "rev"]);
    wait_for_workers(&server, "rev", 1);
    let mut client = server.conn();
    let before = unix_now();
    let handle = submit_background(&mut client, "rev", "order-17", "hello kept");
    let result = wait_result(&server, &handle);
    assert_eq!(result.handle, handle);
    assert_eq!(result.outcome, Outcome::Complete);
    assert_eq!(&result.data[..], b"tpek olleh");
    assert!(
        (before..=unix_now()).contains(&result.finished_unix),
        "{result:?}"
    );
    let by_unique = show(
        &server,
        AdminCommand::ShowResultUnique {
            function: "rev".into(),
            unique: "order-17".into(),
        },
        "show result unique rev order-17\r\n",
    );
    assert_eq!(by_unique, Ok(result));
    // GET_STATUS keeps its meaning: an ended job is unknown.
    client.send(Request::GetStatus {
        handle: handle.clone(),
    });
    match client.recv() {
        Response::StatusRes(s) => assert!(!s.known, "{s:?}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(show_handle(&server, b"H:none:1"), Err("UNKNOWN_JOB".into()));
}

#[test]
fn gearman_cli_peers_see_no_difference_with_results_kept() {
    let server = Server::start(&["--keep-results", "1h"]);
    gearman_tests::interop::gearman_cli_client_and_worker(&server);
    // The same foreground round trip and background submission with a store as well.
    let (_db_dir, db) = temp_db("kept-peers");
    let db = db.to_str().unwrap();
    let stored = Server::start(&[
        "--keep-results",
        "1h",
        "-q",
        "libsqlite3",
        "--libsqlite3-db",
        db,
    ]);
    gearman_tests::interop::gearman_cli_client_and_worker(&stored);
    let port = stored.port.to_string();
    let out = run("gearman", &["-p", &port, "-f", "nobody", "-b"], b"x", LIMIT);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        stdout(&out),
        "",
        "a background submission prints nothing, as before"
    );
}

/// Waits (up to 5 s) until the store file holds `n` kept results.
fn wait_stored(db: &Path, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let store = SqliteStore::open(&SqliteConfig::new(db)).expect("the test reads the store");
        let kept = store
            .extras()
            .unwrap()
            .iter()
            .filter(|r| r.kind == ExtraKind::KeptResult)
            .count();
        if kept == n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "store holds {kept} kept result(s), expected {n}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn start_stored(db: &Path, keep: &str) -> Server {
    let db = db.to_str().unwrap();
    Server::start(&[
        "-q",
        "libsqlite3",
        "--libsqlite3-db",
        db,
        "--keep-results",
        keep,
    ])
}

#[test]
fn kept_results_survive_kill_9_and_expire_by_when_their_job_ended() {
    let (_db_dir, db) = temp_db("kept-results");
    let server = start_stored(&db, "1h");
    let mut worker = server.conn();
    worker.send(Request::CanDo {
        function: "f".into(),
    });
    let mut client = server.conn();
    let handle = submit_background(&mut client, "f", "u-1", "job");
    worker.send(Request::GrabJob(GrabMode::Plain));
    let Response::JobAssign(assigned) = worker.recv() else {
        panic!("no job assigned")
    };
    worker.send(Request::WorkComplete(WorkPayload {
        handle: assigned.handle,
        data: "binary \0\r\n result".into(),
    }));
    let result = wait_result(&server, &handle);
    assert_eq!(&result.data[..], b"binary \0\r\n result");
    wait_stored(&db, 1);

    // kill -9 (the drop), then a restart: still there, by handle and by unique.
    drop((worker, client, server));
    let server = start_stored(&db, "1h");
    assert_eq!(show_handle(&server, &handle), Ok(result.clone()));
    let by_unique = show(
        &server,
        AdminCommand::ShowResultUnique {
            function: "f".into(),
            unique: "u-1".into(),
        },
        "show result unique f u-1\r\n",
    );
    assert_eq!(by_unique, Ok(result.clone()));

    // Restarted with a keep time already past since the job ended: expired and deleted.
    while unix_now() < result.finished_unix + 2 {
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(server);
    let server = start_stored(&db, "1s");
    assert_eq!(show_handle(&server, &handle), Err("UNKNOWN_JOB".into()));
    wait_stored(&db, 0);
}
