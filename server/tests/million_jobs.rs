//! Scale in jobs: a million background jobs are accepted and held queued at once, then each
//! is handed out exactly once. Not timed: memory per job and speed are measured by
//! `gearman-bench --memory` and the load modes, never here; the test only bounds each wait,
//! so a server that stops answering fails it instead of hanging it. Once drained, most of
//! the memory the backlog took is given back (checked with a wide margin).

mod common;

use common::{Conn, Server};
use gearman_core::proto::{
    GrabMode, Packet, Priority, Request, Response, SubmitJob, SubmitMode, WorkPayload,
};
use std::time::Duration;

const JOBS: usize = 1_000_000;
/// Submissions written at once before their JOB_CREATEDs are read (and grabs likewise):
/// pipelined, yet the server's output to us stays far below its output limit.
const BATCH: usize = 1_000;
const FUNCTION: &str = "million";
/// The longest wait for any one reply; the whole test has no time limit of its own.
const WAIT: Duration = Duration::from_secs(60);

fn next(conn: &mut Conn, what: &str) -> Response {
    conn.recv_within(WAIT)
        .unwrap_or_else(|| panic!("no reply within {WAIT:?} while {what}"))
}

/// The admin `status` line of [`FUNCTION`]: (queued, running, workers).
fn status(conn: &mut Conn) -> (usize, usize, usize) {
    let text = conn.admin("status\n");
    let line = text
        .lines()
        .find(|l| l.split('\t').next() == Some(FUNCTION))
        .unwrap_or_else(|| panic!("no status line for {FUNCTION}: {text:?}"));
    let n: Vec<usize> = line
        .split('\t')
        .skip(1)
        .map(|f| f.parse().expect("a number"))
        .collect();
    match n[..] {
        [queued, running, workers] => (queued, running, workers),
        _ => panic!("status line with other than three counts: {line:?}"),
    }
}

#[test]
fn a_million_queued_jobs_are_accepted_and_each_handed_out_once() {
    let server = Server::start(&[]);

    // Submit: every job carries its number, so the worker can tell each one apart.
    let mut client = Conn::new(server.port);
    let mut batch = Vec::new();
    for start in (0..JOBS).step_by(BATCH) {
        batch.clear();
        for i in start..(start + BATCH).min(JOBS) {
            let submit = Request::Submit(SubmitJob {
                function: FUNCTION.into(),
                unique: format!("u{i}").into(),
                mode: SubmitMode::Background(Priority::Normal),
                data: format!("{i:064}").into(),
            });
            batch.extend_from_slice(&submit.to_bytes());
        }
        client.send_raw(&batch);
        for i in start..(start + BATCH).min(JOBS) {
            match next(&mut client, "submitting") {
                Response::JobCreated { .. } => {}
                other => panic!("job {i}: expected JOB_CREATED, got {other:?}"),
            }
        }
    }
    assert_eq!(status(&mut client), (JOBS, 0, 0), "all queued at once");
    let queued_rss = rss_kib(&server);

    // Drain: BATCH grabs at a time, each assignment completed in the next write.
    let mut worker = Conn::new(server.port);
    worker.send(Request::CanDo {
        function: FUNCTION.into(),
    });
    let grab = Request::GrabJob(GrabMode::Plain).to_bytes();
    let mut seen = vec![false; JOBS];
    let mut served = 0;
    let mut completions = Vec::new();
    while served < JOBS {
        let grabs = BATCH.min(JOBS - served);
        batch.clear();
        batch.extend_from_slice(&completions);
        completions.clear();
        for _ in 0..grabs {
            batch.extend_from_slice(&grab);
        }
        worker.send_raw(&batch);
        for _ in 0..grabs {
            let job = match next(&mut worker, "draining") {
                Response::JobAssign(job) => job,
                other => panic!("after {served} jobs: expected JOB_ASSIGN, got {other:?}"),
            };
            let number: usize = std::str::from_utf8(&job.data)
                .ok()
                .and_then(|d| d.parse().ok())
                .unwrap_or_else(|| panic!("a job number, got {:?}", job.data));
            assert!(number < JOBS, "job number {number} was never submitted");
            assert!(!seen[number], "job {number} handed out twice");
            seen[number] = true;
            served += 1;
            let done = Request::WorkComplete(WorkPayload {
                handle: job.handle,
                data: "".into(),
            });
            completions.extend_from_slice(&done.to_bytes());
        }
    }
    worker.send_raw(&completions);
    assert!(seen.iter().all(|&s| s), "every job handed out");

    // Nothing is left: the next grab finds no job, and the queue is empty.
    worker.send(Request::GrabJob(GrabMode::Plain));
    assert_eq!(next(&mut worker, "grabbing past the end"), Response::NoJob);
    assert_eq!(status(&mut client), (0, 0, 1), "queue empty, one worker");

    // Most of the backlog's memory goes back to the system once it is drained: 6% of it
    // was left here, 24% without the heap trim, 32% without the trim and the index
    // shrinking. A wide margin: this guards the release, not a figure.
    let drained_rss = rss_kib(&server);
    assert!(
        drained_rss * 6 < queued_rss,
        "resident memory {drained_rss} KiB once drained, {queued_rss} KiB with {JOBS} jobs queued"
    );
}

/// The server's resident memory.
fn rss_kib(server: &Server) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.child.id()))
        .expect("the server's /proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS line in {status:?}"))
}
