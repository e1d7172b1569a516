//! Retries, dead letters and epoch jobs over real sockets, with the SQLite store and
//! `kill -9` between runs: a failing background job is retried with backoff, lands in
//! `show dead`, survives a restart there, and `retry dead` runs it again; pending retries
//! and epoch jobs keep their time across a restart; a PHP pecl-gearman worker sees its
//! failed job retried, dead, and run again by `retry dead`. The retries and dead letters are counted
//! in `/metrics` and listed by `GET /api/dead`.

mod common;

use common::http::sample;
use common::Server;
use gearman_core::proto::{GrabMode, Request, Response, SubmitJob, SubmitMode, WorkPayload};
use gearman_core::server::ExtraKind;
use gearman_server::store::sqlite::{SqliteConfig, SqliteStore};
use gearman_tests::TempDir;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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

/// Waits (up to 5 s) until the running server's store file holds `dead` dead letters and
/// `jobs` jobs: writes beyond the queue are not acknowledged, so a `kill -9` right after
/// the admin shows them could come before their commit.
fn wait_stored(db: &Path, dead: usize, jobs: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let store = SqliteStore::open(&SqliteConfig::new(db)).expect("the test reads the store");
        let stored_dead = store
            .extras()
            .unwrap()
            .iter()
            .filter(|r| r.kind == ExtraKind::DeadLetter)
            .count();
        let stored_jobs = store.jobs().unwrap().len();
        if (stored_dead, stored_jobs) == (dead, jobs) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "store holds {stored_dead} dead letter(s) and {stored_jobs} job(s), expected {dead} and {jobs}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// gearmand-rs on `db` with `extra` flags.
fn start(db: &Path, extra: &[&str]) -> Server {
    let db = db.to_str().unwrap();
    let mut args = vec!["-q", "libsqlite3", "--libsqlite3-db", db];
    args.extend_from_slice(extra);
    Server::start(&args)
}

/// A worker for `function`, asleep.
fn sleeping_worker(server: &Server, function: &str) -> common::Conn {
    let mut worker = server.conn();
    worker.send(Request::CanDo {
        function: function.to_string().into(),
    });
    worker.send(Request::PreSleep);
    worker
}

/// Grabs a job; `None` when there is none.
fn grab(worker: &mut common::Conn) -> Option<(bytes::Bytes, bytes::Bytes)> {
    worker.send(Request::GrabJob(GrabMode::Uniq));
    match worker.recv() {
        Response::JobAssign(a) => Some((a.handle, a.data)),
        Response::NoJob => None,
        other => panic!("expected JOB_ASSIGN or NO_JOB, got {other:?}"),
    }
}

/// Sleeps until woken (NOOP within `limit`) and returns how long that took.
fn wait_for_wakeup(worker: &mut common::Conn, limit: Duration) -> Duration {
    let asleep = Instant::now();
    worker.send(Request::PreSleep);
    match worker.recv_within(limit) {
        Some(Response::Noop) => asleep.elapsed(),
        other => panic!("expected a NOOP within {limit:?}, got {other:?}"),
    }
}

fn submit_background(client: &mut common::Conn, function: &str, data: &str) -> bytes::Bytes {
    client.send(Request::Submit(SubmitJob {
        function: function.to_string().into(),
        unique: data.to_string().into(),
        mode: SubmitMode::Background(gearman_core::proto::Priority::Normal),
        data: data.to_string().into(),
    }));
    match client.recv() {
        Response::JobCreated { handle } => handle,
        other => panic!("expected JOB_CREATED, got {other:?}"),
    }
}

/// GET `path` on the HTTP listener at `port`.
fn get(port: &str, path: &str) -> String {
    common::http::get(&format!("http://127.0.0.1:{port}{path}"))
}

/// `GET /api/dead`'s list.
fn api_dead(port: &str) -> Vec<serde_json::Value> {
    let body: serde_json::Value = serde_json::from_str(&get(port, "/api/dead")).unwrap();
    let dead = body["dead"].as_array().expect("a dead list").clone();
    assert_eq!(body["total"].as_u64(), Some(dead.len() as u64), "{body}");
    dead
}

/// The `show dead` lines, without the final `.`.
fn dead_lines(server: &Server) -> Vec<String> {
    let text = server.conn().admin("show dead\n");
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    assert_eq!(lines.pop().as_deref(), Some("."), "show dead: {text:?}");
    lines
}

#[test]
fn failing_background_job_backs_off_then_is_dead_across_restarts_until_retried() {
    let (_db_dir, db) = temp_db("dead-letters");
    let http = gearman_tests::free_port().to_string();
    let flags = ["--retry", "flaky=2:300ms", "--http-port", &http];
    let server = start(&db, &flags);
    let mut worker = sleeping_worker(&server, "flaky");
    let mut client = server.conn();
    let handle = submit_background(&mut client, "flaky", "payload");
    assert_eq!(
        worker.recv_within(Duration::from_secs(4)),
        Some(Response::Noop)
    );
    // Each failure waits twice as long as the one before: 300 ms, then 600 ms.
    for (attempt, backoff) in [(1, 300), (2, 600)] {
        let (h, data) = grab(&mut worker).expect("the job runs");
        assert_eq!(
            (&h, &data[..]),
            (&handle, &b"payload"[..]),
            "attempt {attempt}"
        );
        if attempt == 1 {
            worker.send(Request::WorkFail { handle: h });
        } else {
            worker.send(Request::WorkException(WorkPayload {
                handle: h,
                data: "disk full".into(),
            }));
        }
        assert_eq!(grab(&mut worker), None, "not again before its backoff");
        let waited = wait_for_wakeup(&mut worker, Duration::from_secs(5));
        assert!(
            waited >= Duration::from_millis(backoff - 50),
            "retry {attempt} came after {waited:?}, backoff {backoff} ms"
        );
    }
    let (h, _) = grab(&mut worker).expect("the last retry runs");
    worker.send(Request::WorkFail { handle: h });
    // Out of retries: a dead letter, not queued.
    let deadline = Instant::now() + Duration::from_secs(5);
    let dead = loop {
        let dead = dead_lines(&server);
        if !dead.is_empty() || Instant::now() > deadline {
            break dead;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(dead.len(), 1, "{dead:?}");
    let fields: Vec<&str> = dead[0].split('\t').collect();
    assert_eq!(
        (fields[0], fields[1], fields[2], fields[3]),
        (std::str::from_utf8(&handle).unwrap(), "flaky", "3", "fail"),
        "{dead:?}"
    );
    assert_eq!(grab(&mut worker), None);
    assert_eq!(server.conn().admin("status\n"), "flaky\t0\t0\t1\n.\n");
    // Counted in the metrics, and listed by the HTTP API.
    let metrics = get(&http, "/metrics");
    let flaky = |name: &str| sample(&metrics, &format!("{name}{{function=\"flaky\"}}"));
    assert_eq!(
        flaky("gearman_jobs_backoff_retries_total"),
        Some(2.0),
        "{metrics}"
    );
    assert_eq!(
        flaky("gearman_jobs_dead_lettered_total"),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(flaky("gearman_dead_letters"), Some(1.0), "{metrics}");
    let api = api_dead(&http);
    assert_eq!(api.len(), 1, "{api:?}");
    assert_eq!(api[0]["handle"], std::str::from_utf8(&handle).unwrap());
    assert_eq!(
        (&api[0]["function"], &api[0]["failures"], &api[0]["failure"]),
        (&"flaky".into(), &3.into(), &"fail".into()),
        "{api:?}"
    );

    // kill -9: the dead letter is in the store, the job's row gone.
    wait_stored(&db, 1, 0);
    drop((worker, client, server));
    let server = start(&db, &flags);
    assert_eq!(
        dead_lines(&server),
        dead,
        "the dead letter survived kill -9"
    );
    // The gauge and the API show the restored dead letter (the counters start again).
    let metrics = get(&http, "/metrics");
    let gauge = r#"gearman_dead_letters{function="flaky"}"#;
    assert_eq!(sample(&metrics, gauge), Some(1.0), "{metrics}");
    assert_eq!(api_dead(&http), api);
    let mut worker = sleeping_worker(&server, "flaky");
    assert_eq!(grab(&mut worker), None, "a dead job is not queued again");
    worker.send(Request::PreSleep);
    assert_eq!(server.conn().admin("retry dead flaky\n"), "OK 1\n");
    assert_eq!(
        worker.recv_within(Duration::from_secs(4)),
        Some(Response::Noop)
    );
    let (h, data) = grab(&mut worker).expect("retry dead runs it again");
    assert_eq!(&data[..], b"payload");
    worker.send(Request::WorkComplete(WorkPayload {
        handle: h,
        data: "done".into(),
    }));
    assert!(dead_lines(&server).is_empty());
    assert!(api_dead(&http).is_empty());
    wait_stored(&db, 0, 0);

    drop((worker, server));
    let server = start(&db, &["--retry", "flaky=2:300ms"]);
    assert!(
        dead_lines(&server).is_empty(),
        "retried and done: gone for good"
    );
    let mut worker = sleeping_worker(&server, "flaky");
    assert_eq!(grab(&mut worker), None, "completed: not run again");
}

#[test]
fn pending_retries_and_epoch_jobs_keep_their_time_across_kill_9() {
    let (_db_dir, db) = temp_db("timed-restart");
    let server = start(&db, &["--retry", "slow=1:3s"]);
    let mut worker = sleeping_worker(&server, "slow");
    let mut client = server.conn();
    submit_background(&mut client, "slow", "retried");
    let due = unix_now() + 3;
    client.send(Request::Submit(SubmitJob {
        function: "slow".into(),
        unique: "epoch".into(),
        mode: SubmitMode::Epoch(due),
        data: "epoch".into(),
    }));
    assert!(matches!(client.recv(), Response::JobCreated { .. }));
    assert_eq!(
        worker.recv_within(Duration::from_secs(4)),
        Some(Response::Noop)
    );
    let (h, data) = grab(&mut worker).expect("the first job runs");
    assert_eq!(&data[..], b"retried");
    let failed_at = unix_now();
    worker.send(Request::WorkFail { handle: h });
    assert_eq!(grab(&mut worker), None, "both wait for their time");
    // The retry state is written without an acknowledgement: give it its commit.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !SqliteStore::open(&SqliteConfig::new(&db))
        .unwrap()
        .extras()
        .unwrap()
        .iter()
        .any(|r| r.kind == ExtraKind::Attempts)
    {
        assert!(Instant::now() < deadline, "no retry state stored");
        std::thread::sleep(Duration::from_millis(50));
    }

    drop((worker, client, server));
    let server = start(&db, &["--retry", "slow=1:3s"]);
    let mut worker = sleeping_worker(&server, "slow");
    assert_eq!(grab(&mut worker), None, "still waiting after the restart");
    let mut ran = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while ran.len() < 2 && Instant::now() < deadline {
        if let Some((h, data)) = grab(&mut worker) {
            let at = unix_now();
            if &data[..] == b"epoch" {
                assert!(at >= due, "the epoch job ran at {at}, due {due}");
            } else {
                assert!(
                    at >= failed_at + 3,
                    "the retry ran at {at}, failed at {failed_at}"
                );
            }
            ran.push((data, h));
            continue;
        }
        let _ = worker.recv_within(Duration::from_millis(500));
    }
    let mut names: Vec<&[u8]> = ran.iter().map(|(d, _)| &d[..]).collect();
    names.sort();
    assert_eq!(
        names,
        [&b"epoch"[..], &b"retried"[..]],
        "both ran after the restart"
    );
    // The retry count survived too: this failure is its last.
    let (_, retried) = ran.iter().find(|(d, _)| &d[..] == b"retried").unwrap();
    worker.send(Request::WorkFail {
        handle: retried.clone(),
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while dead_lines(&server).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let dead = dead_lines(&server);
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(dead[0].contains("\tslow\t2\tfail\t"), "{dead:?}");
}

/// A PHP pecl-gearman worker for `php_flaky`: appends `fail|ok WORKLOAD TIME` to the log
/// file for each run, and fails the job (sendFail) unless the marker file exists.
const PHP_FLAKY_WORKER: &str = r#"<?php
[$_, $port, $log, $marker] = $argv;
$w = new GearmanWorker();
$w->addServer('127.0.0.1', (int)$port);
$w->addFunction('php_flaky', function ($job) use ($log, $marker) {
    $ok = file_exists($marker);
    file_put_contents($log, ($ok ? 'ok' : 'fail') . ' ' . $job->workload() . ' '
        . microtime(true) . "\n", FILE_APPEND);
    if ($ok) {
        return 'done';
    }
    $job->sendFail();
    return '';
});
while ($w->work());
"#;

/// The PHP worker's log: (outcome, workload, Unix time in seconds) per run.
fn php_runs(log: &Path) -> Vec<(String, String, f64)> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f[0].to_string(), f[1].to_string(), f[2].parse().unwrap())
        })
        .collect()
}

/// Polls `done` every 20 ms for up to 10 s; whether it became true.
fn eventually(mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

#[test]
fn php_pecl_worker_failing_a_background_job_sees_it_retried_then_dead_then_run_again() {
    let tmp = gearman_tests::temp_dir("php-retries");
    let dir = tmp.path();
    let (script, log, marker) = (
        dir.join("worker.php"),
        dir.join("runs.log"),
        dir.join("succeed"),
    );
    std::fs::write(&script, PHP_FLAKY_WORKER).unwrap();
    let server = Server::start(&["--retry", "php_flaky=2:200ms"]);
    let port = server.port.to_string();
    let path = |p: &Path| p.to_str().unwrap().to_string();
    let _worker = common::Peer::spawn("php", &[&path(&script), &port, &path(&log), &path(&marker)]);
    common::wait_for_workers(&server, "php_flaky", 1);
    let handle = submit_background(&mut server.conn(), "php_flaky", "payload");

    // Run, then retried twice with backoff (200 ms, 400 ms), then a dead letter.
    assert!(
        eventually(|| !dead_lines(&server).is_empty()),
        "no dead letter; the worker ran {:?}",
        php_runs(&log)
    );
    let runs = php_runs(&log);
    let outcomes: Vec<(&str, &str)> = runs.iter().map(|(o, w, _)| (&o[..], &w[..])).collect();
    assert_eq!(outcomes, [("fail", "payload"); 3], "{runs:?}");
    let gaps: Vec<f64> = runs.windows(2).map(|w| w[1].2 - w[0].2).collect();
    assert!(
        gaps[0] >= 0.15 && gaps[1] >= 0.35,
        "retried after {gaps:?} s"
    );
    let dead = dead_lines(&server);
    assert_eq!(dead.len(), 1, "{dead:?}");
    let fields: Vec<&str> = dead[0].split('\t').collect();
    assert_eq!(
        fields[..4],
        [
            std::str::from_utf8(&handle).unwrap(),
            "php_flaky",
            "3",
            "fail"
        ],
        "{dead:?}"
    );
    assert_eq!(
        server.conn().admin("status\n"),
        "php_flaky\t0\t0\t1\n.\n",
        "not queued"
    );

    // retry dead: the PHP worker runs it again, and this time it succeeds.
    std::fs::write(&marker, "").unwrap();
    assert_eq!(server.conn().admin("retry dead php_flaky\n"), "OK 1\n");
    assert!(
        eventually(|| php_runs(&log).len() == 4),
        "not run again: {:?}",
        php_runs(&log)
    );
    assert_eq!(php_runs(&log)[3].0, "ok");
    assert!(eventually(
        || server.conn().admin("status\n") == "php_flaky\t0\t0\t1\n.\n"
    ));
    assert!(dead_lines(&server).is_empty());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(php_runs(&log).len(), 4, "completed: not run again");
}
