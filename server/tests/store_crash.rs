//! End to end over real sockets: gearmand-rs with `-q libsqlite3` is killed with SIGKILL
//! while several clients submit background jobs and a worker runs some of them. After a
//! restart, every job that got JOB_CREATED runs (again, at least once), none runs twice
//! after the restart, and nothing that was never submitted appears.

mod common;

use bytes::Bytes;
use common::{Conn, Server};
use gearman_core::proto::{
    GrabMode, Packet, Priority, Request, Response, SubmitJob, SubmitMode, WorkPayload,
};
use std::collections::BTreeSet;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CLIENTS: usize = 4;
const PER_CLIENT: usize = 20_000;
/// Nobody works on this function before the crash.
const IDLE: &str = "crash-idle";
/// A worker completes jobs of this one while clients submit, so deletes are in flight too.
const BUSY: &str = "crash-busy";

fn send(conn: &mut Conn, req: Request) -> bool {
    conn.stream.write_all(&req.to_bytes()).is_ok()
}

/// Client `c` submits until the server dies; returns nothing, records each JOB_CREATED.
/// Odd clients send an empty unique (distinct jobs all the same, unlike gearmand's store).
fn submit(port: u16, c: usize, acked: Arc<Mutex<BTreeSet<String>>>) {
    let Ok(mut conn) = std::panic::catch_unwind(|| Conn::new(port)) else {
        return;
    };
    let function = if c < CLIENTS / 2 { IDLE } else { BUSY };
    for i in 0..PER_CLIENT {
        let data = format!("{function}/c{c}-{i}");
        let unique = if c % 2 == 1 {
            String::new()
        } else {
            data.clone()
        };
        let job = SubmitJob {
            function: function.into(),
            unique: Bytes::from(unique),
            mode: SubmitMode::Background(Priority::ALL[i % 3]),
            data: Bytes::from(data.clone()),
        };
        if !send(&mut conn, Request::Submit(job)) {
            return;
        }
        match conn.recv_within(Duration::from_secs(10)) {
            Some(Response::JobCreated { .. }) => {
                acked.lock().unwrap().insert(data);
            }
            _ => return,
        }
    }
}

/// Works on `function` until the server goes away (`stop_at_empty`: until NO_JOB).
/// Returns the data of every job it completed, in order.
fn work(port: u16, function: &str, stop_at_empty: bool) -> Vec<String> {
    let Ok(mut w) = std::panic::catch_unwind(|| Conn::new(port)) else {
        return Vec::new();
    };
    let mut done = Vec::new();
    if !send(
        &mut w,
        Request::CanDo {
            function: Bytes::copy_from_slice(function.as_bytes()),
        },
    ) {
        return done;
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if !send(&mut w, Request::GrabJob(GrabMode::Uniq)) {
            return done;
        }
        match w.recv_within(Duration::from_secs(10)) {
            Some(Response::NoJob) if stop_at_empty => return done,
            Some(Response::NoJob) => std::thread::sleep(Duration::from_millis(1)),
            Some(Response::JobAssign(a)) => {
                let data = String::from_utf8_lossy(&a.data).into_owned();
                let complete = WorkPayload {
                    handle: a.handle,
                    data: Bytes::new(),
                };
                if !send(&mut w, Request::WorkComplete(complete)) {
                    return done;
                }
                done.push(data);
            }
            Some(other) => panic!("worker got {other:?}"),
            None => return done,
        }
    }
    panic!("worker still busy after 120 s");
}

#[test]
fn every_acknowledged_job_runs_after_sigkill_and_restart() {
    let dir = gearman_tests::temp_dir("store-e2e");
    let db = dir.path().join("queue.db").to_string_lossy().into_owned();
    let args = ["-q", "libsqlite3", "--libsqlite3-db", db.as_str()];
    let mut server = Server::start(&args);
    let port = server.port;

    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let acked = acked.clone();
            std::thread::spawn(move || submit(port, c, acked))
        })
        .collect();
    let worker = std::thread::spawn(move || work(port, BUSY, false));

    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.lock().unwrap().len() < 3_000 {
        assert!(
            Instant::now() < deadline,
            "fewer than 3000 submissions in 60 s"
        );
        std::thread::sleep(Duration::from_millis(5));
    }

    assert!(server.child.try_wait().unwrap().is_none());
    server.child.kill().unwrap(); // SIGKILL
    let status = server.child.wait().unwrap();
    assert_eq!(status.signal(), Some(9));
    for c in clients {
        c.join().unwrap();
    }
    let done_before: BTreeSet<String> = worker.join().unwrap().into_iter().collect();
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() < CLIENTS * PER_CLIENT,
        "the kill must land mid-stream"
    );
    assert!(
        !done_before.is_empty(),
        "the worker ran jobs before the crash"
    );

    let restarted = Server::start(&args);
    let mut ran_after = work(restarted.port, IDLE, true);
    ran_after.extend(work(restarted.port, BUSY, true));

    let ran_set: BTreeSet<String> = ran_after.iter().cloned().collect();
    assert_eq!(
        ran_after.len(),
        ran_set.len(),
        "a job ran twice after the restart"
    );
    let lost: Vec<_> = acked
        .iter()
        .filter(|d| !ran_set.contains(*d) && !done_before.contains(*d))
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged job(s) never ran, e.g. {:?}",
        lost.len(),
        lost.first()
    );
    // Submitted but unacknowledged jobs may or may not have been committed; anything else
    // would be invented.
    assert!(ran_set
        .iter()
        .all(|d| d.starts_with(IDLE) || d.starts_with(BUSY)));
    // Both kinds of unique came back: empty-unique jobs do not overwrite each other.
    let empty_unique_idle = ran_set
        .iter()
        .filter(|d| d.starts_with(&format!("{IDLE}/c1-")))
        .count();
    let acked_empty_idle = acked
        .iter()
        .filter(|d| d.starts_with(&format!("{IDLE}/c1-")))
        .count();
    assert!(empty_unique_idle >= acked_empty_idle && acked_empty_idle > 1);
    let rerun = ran_set.intersection(&done_before).count();
    eprintln!(
        "SIGKILL after {} acknowledged submissions ({} completed before); {} ran after the \
         restart, {} of them a second time (completion not yet committed)",
        acked.len(),
        done_before.len(),
        ran_after.len(),
        rerun
    );
}
