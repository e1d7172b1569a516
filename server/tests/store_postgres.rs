//! gearmand-rs `-q postgres` end to end against a throwaway PostgreSQL: kill -9 and
//! restart, several servers sharing one database (a killed server's jobs are taken over and
//! run once), a database outage under load, and the password kept out of the logs.

mod common;

use common::durable::{check_after_restart, eventually, submitter, worker, Outcomes, Runs};
use common::{Conn, Server, BINARY};
use gearman_core::proto::{Request, Response, SubmitJob, SubmitMode, WorkPayload};
use gearman_tests::Postgres;
use std::os::unix::process::ExitStatusExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Nobody works on this function until the test says so.
const IDLE: &str = "pg-idle";
/// A worker runs these while clients submit, so deletes are in flight too.
const BUSY: &str = "pg-busy";
/// Lease period of the shared-database tests, and the bound on a takeover beyond it.
const LEASE: Duration = Duration::from_secs(3);
const TAKEOVER_BOUND: Duration = Duration::from_secs(6);

fn args<'a>(conninfo: &'a str, owner: &'a str, lease: &'a str) -> Vec<&'a str> {
    vec![
        "-q",
        "postgres",
        "--libpq-conninfo",
        conninfo,
        "--libpq-owner",
        owner,
        "--libpq-lease",
        lease,
    ]
}

fn kill9(server: &mut Server) {
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "server died early"
    );
    server.child.kill().unwrap();
    assert_eq!(server.child.wait().unwrap().signal(), Some(9));
}

fn stop_all(stop: &AtomicBool, threads: Vec<std::thread::JoinHandle<()>>) {
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn every_acknowledged_job_runs_after_sigkill_and_restart() {
    let pg = Postgres::start();
    let conninfo = pg.conninfo();
    // `-q libpq` is the spelling of gearmand's documentation.
    let mut args = args(&conninfo, "solo", "30");
    args[1] = "libpq";
    let mut server = Server::start(&args);
    let outcomes = Arc::new(Outcomes::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients: Vec<_> = (0..3)
        .map(|c| {
            submitter(
                server.port,
                IDLE,
                format!("idle{c}"),
                20_000,
                outcomes.clone(),
                stop.clone(),
            )
        })
        .collect();
    clients.push(submitter(
        server.port,
        BUSY,
        "busy".into(),
        20_000,
        outcomes.clone(),
        stop.clone(),
    ));
    let before = Arc::new(Runs::default());
    let busy = worker(server.port, BUSY, before.clone(), stop.clone(), false);
    assert!(
        eventually(Duration::from_secs(30), || outcomes.acked_count() >= 2_000),
        "fewer than 2000 acknowledgements in 30 s"
    );
    kill9(&mut server);
    stop_all(&stop, clients);
    busy.join().unwrap();
    assert!(
        outcomes.acked_count() < 80_000,
        "the kill must land mid-stream"
    );
    assert!(before.distinct() > 0, "the worker ran jobs before the kill");

    let restarted = Server::start(&args);
    let after = Arc::new(Runs::default());
    let go = Arc::new(AtomicBool::new(false));
    for function in [IDLE, BUSY] {
        worker(restarted.port, function, after.clone(), go.clone(), true)
            .join()
            .unwrap();
    }
    check_after_restart(&outcomes, &before.set(), &after);
    eprintln!(
        "kill -9 after {} acknowledgements ({} run before); {} run after the restart",
        outcomes.acked_count(),
        before.distinct(),
        after.distinct()
    );
}

/// `n` servers on one database; clients submit to all of them; the first is killed with
/// SIGKILL mid-stream. Its acknowledged jobs must be run by the others within the lease
/// period plus a bound, every job exactly once; restarted, it rejoins without replaying
/// anything.
fn shared_database(n: usize) {
    let pg = Postgres::start();
    let conninfo = pg.conninfo();
    let owners: Vec<String> = (0..n).map(|i| format!("server{i}")).collect();
    let lease = LEASE.as_secs().to_string();
    let mut servers: Vec<Server> = owners
        .iter()
        .map(|o| Server::start(&args(&conninfo, o, &lease)))
        .collect();
    let outcomes = Arc::new(Outcomes::default());
    let stop_victim = Arc::new(AtomicBool::new(false));
    let victim_clients: Vec<_> = (0..2)
        .map(|c| {
            submitter(
                servers[0].port,
                IDLE,
                format!("victim{c}"),
                50_000,
                outcomes.clone(),
                stop_victim.clone(),
            )
        })
        .collect();
    let never = Arc::new(AtomicBool::new(false));
    let survivor_clients: Vec<_> = servers[1..]
        .iter()
        .enumerate()
        .map(|(i, s)| {
            submitter(
                s.port,
                IDLE,
                format!("survivor{i}"),
                300,
                outcomes.clone(),
                never.clone(),
            )
        })
        .collect();
    assert!(
        eventually(Duration::from_secs(30), || outcomes.acked_count() >= 1_000),
        "fewer than 1000 acknowledgements in 30 s"
    );
    kill9(&mut servers[0]);
    let killed = Instant::now();
    stop_all(&stop_victim, victim_clients);
    stop_all(&never, survivor_clients);
    let acked = outcomes.acked();
    let victims = acked.iter().filter(|d| d.starts_with("victim")).count();
    assert!(
        victims > 0 && victims < 100_000,
        "the kill must land mid-stream"
    );

    // The others take the killed server's rows over once its lease has run out.
    let victim_rows = format!(
        "SELECT count(*) FROM gearmand_rs_jobs WHERE owner = '{}'",
        owners[0]
    );
    assert!(
        eventually(LEASE + TAKEOVER_BOUND, || pg.psql(&victim_rows) == "0"),
        "the killed server's rows were not taken over within {:?}",
        LEASE + TAKEOVER_BOUND
    );
    // It comes back under its name before anyone ran them: it must find nothing to replay.
    drop(servers.remove(0));
    servers.push(Server::start(&args(&conninfo, &owners[0], &lease)));
    let runs = Arc::new(Runs::default());
    let stop_workers = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = servers
        .iter()
        .map(|s| worker(s.port, IDLE, runs.clone(), stop_workers.clone(), false))
        .collect();
    let all_ran = eventually(LEASE + TAKEOVER_BOUND, || {
        let ran = runs.set();
        acked.iter().all(|d| ran.contains(d))
    });
    let took = killed.elapsed();
    let missing = acked.difference(&runs.set()).count();
    assert!(
        all_ran,
        "{missing} of {} acknowledged jobs did not run within {:?} of the kill",
        acked.len(),
        (LEASE + TAKEOVER_BOUND) * 2
    );
    // Anything left (committed but not acknowledged before the kill) gets a moment too.
    std::thread::sleep(Duration::from_millis(500));
    stop_all(&stop_workers, workers);

    let twice = runs.twice();
    assert!(
        twice.is_empty(),
        "{} job(s) ran twice, e.g. {:?}",
        twice.len(),
        twice.first()
    );
    let sent = outcomes.sent.lock().unwrap().clone();
    let invented: Vec<_> = runs
        .set()
        .into_iter()
        .filter(|d| !sent.contains(d))
        .collect();
    assert!(invented.is_empty(), "jobs nobody submitted: {invented:?}");
    assert_eq!(pg.psql("SELECT count(*) FROM gearmand_rs_jobs"), "0");
    eprintln!(
        "{n} servers: {} acknowledged ({victims} on the killed one), all run once within \
         {took:?} of the kill",
        acked.len()
    );
}

#[test]
fn two_servers_share_a_database_and_take_over_a_killed_one() {
    shared_database(2);
}

#[test]
fn three_servers_share_a_database_and_take_over_a_killed_one() {
    shared_database(3);
}

/// A foreground job runs to WORK_COMPLETE (no store involved).
fn foreground_round_trip(port: u16) {
    let mut w = Conn::new(port);
    w.send(Request::CanDo {
        function: "pg-fg".into(),
    });
    let mut c = Conn::new(port);
    c.send(Request::Submit(SubmitJob {
        function: "pg-fg".into(),
        unique: "".into(),
        mode: SubmitMode::Foreground(gearman_core::proto::Priority::Normal),
        data: "fg".into(),
    }));
    assert!(matches!(c.recv(), Response::JobCreated { .. }));
    w.send(Request::GrabJob(gearman_core::proto::GrabMode::Uniq));
    let Response::JobAssign(a) = w.recv() else {
        panic!("no job for the foreground worker")
    };
    w.send(Request::WorkComplete(WorkPayload {
        handle: a.handle,
        data: "done".into(),
    }));
    assert!(matches!(c.recv(), Response::WorkComplete(_)));
}

#[test]
fn a_database_outage_refuses_background_jobs_and_loses_none() {
    let pg = Postgres::start();
    let conninfo = pg.conninfo();
    let args = args(&conninfo, "solo", "20");
    let mut server = Server::start(&args);
    let outcomes = Arc::new(Outcomes::default());
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..2)
        .map(|c| {
            submitter(
                server.port,
                IDLE,
                format!("c{c}"),
                1_000_000,
                outcomes.clone(),
                stop.clone(),
            )
        })
        .collect();
    let before = Arc::new(Runs::default());
    let busy = worker(server.port, IDLE, before.clone(), stop.clone(), false);
    assert!(eventually(Duration::from_secs(30), || outcomes
        .acked_count()
        >= 500));
    pg.stop();
    let down = Instant::now();
    assert!(
        eventually(Duration::from_secs(10), || outcomes
            .refused
            .load(Ordering::Relaxed)
            > 0),
        "no submission was refused while PostgreSQL was down"
    );
    foreground_round_trip(server.port);
    let acked_down = outcomes.acked_count();
    std::thread::sleep(Duration::from_secs(3).saturating_sub(down.elapsed()));
    // Nothing is acknowledged while the database is away.
    assert!(outcomes.acked_count() <= acked_down + 2);
    pg.restart();
    assert!(
        eventually(Duration::from_secs(20), || outcomes.acked_count()
            >= acked_down + 500),
        "acknowledgements did not resume after PostgreSQL came back"
    );
    stop_all(&stop, clients);
    busy.join().unwrap();
    // The worker drains the rest; then a restart must bring back nothing that already ran
    // (deletes that failed during the outage were retried).
    let go = Arc::new(AtomicBool::new(false));
    worker(server.port, IDLE, before.clone(), go.clone(), true)
        .join()
        .unwrap();
    let acked = outcomes.acked();
    let ran = before.set();
    let lost: Vec<_> = acked.difference(&ran).collect();
    assert!(lost.is_empty(), "{} acknowledged job(s) lost", lost.len());
    assert!(before.twice().is_empty());
    // SIGTERM: the server commits what is queued (the last deletes) before it exits.
    server.terminate();
    assert!(server.wait_exit(Duration::from_secs(20)).is_some());
    let restarted = Server::start(&args);
    let after = Arc::new(Runs::default());
    worker(restarted.port, IDLE, after.clone(), go, true)
        .join()
        .unwrap();
    // Only a submission refused while its commit was in flight may still be stored.
    let again: Vec<_> = after
        .set()
        .into_iter()
        .filter(|d| ran.contains(d))
        .collect();
    assert!(again.is_empty(), "finished jobs came back: {again:?}");
    eprintln!(
        "outage: {} acknowledged, {} refused, {} stored but refused",
        acked.len(),
        outcomes.refused.load(Ordering::Relaxed),
        after.distinct()
    );
}

#[test]
fn the_password_never_reaches_the_log() {
    let pg = Postgres::start();
    let dir = gearman_tests::temp_dir("pglog");
    let log = dir.path().join("server.log");
    let log_arg = log.to_string_lossy().into_owned();
    let conninfo = format!("{} password=hunter2", pg.conninfo());
    let mut args = args(&conninfo, "solo", "30");
    args.extend(["--verbose", "DEBUG", "--log-file", &log_arg]);
    let server = Server::start(&args);
    let mut c = server.conn();
    c.submit(
        IDLE,
        SubmitMode::Background(gearman_core::proto::Priority::Normal),
    );
    drop(server);
    // A database that is not there: the start fails with a message, never the password.
    let bad = format!(
        "host=127.0.0.1 port={} user=x password=hunter2",
        gearman_tests::free_port()
    );
    let out = std::process::Command::new(BINARY)
        .args([
            "-L",
            "127.0.0.1",
            "-p",
            &gearman_tests::free_port().to_string(),
        ])
        .args([
            "-q",
            "postgres",
            "--libpq-conninfo",
            &bad,
            "--verbose",
            "DEBUG",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("PostgreSQL 127.0.0.1"), "{stderr}");
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("PostgreSQL"), "{logged}");
    for text in [&logged[..], &stderr[..]] {
        assert!(!text.contains("hunter2"), "the password was logged: {text}");
    }
}

fn signal(server: &Server, sig: &str) {
    let status = std::process::Command::new("kill")
        .args([sig, &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill {sig}");
}

#[test]
fn a_stalled_server_loses_its_jobs_and_exits_when_it_wakes() {
    let pg = Postgres::start();
    let conninfo = pg.conninfo();
    let lease = LEASE.as_secs().to_string();
    let mut stalled = Server::start(&args(&conninfo, "stalled", &lease));
    let live = Server::start(&args(&conninfo, "live", &lease));
    let outcomes = Arc::new(Outcomes::default());
    let never = Arc::new(AtomicBool::new(false));
    submitter(
        stalled.port,
        IDLE,
        "s".into(),
        50,
        outcomes.clone(),
        never.clone(),
    )
    .join()
    .unwrap();
    assert_eq!(outcomes.acked_count(), 50);
    signal(&stalled, "-STOP");
    let taken = eventually(LEASE + TAKEOVER_BOUND, || {
        pg.psql("SELECT count(*) FROM gearmand_rs_jobs WHERE owner = 'live'") == "50"
    });
    signal(&stalled, "-CONT");
    assert!(taken, "the stalled server's jobs were not taken over");
    // Its lease is gone: it stops instead of running jobs another server now holds.
    let status = stalled.wait_exit(Duration::from_secs(5));
    assert_eq!(status.and_then(|s| s.code()), Some(75), "{status:?}");
    let runs = Arc::new(Runs::default());
    worker(live.port, IDLE, runs.clone(), never, true)
        .join()
        .unwrap();
    assert_eq!(runs.set(), outcomes.acked());
    assert!(runs.twice().is_empty());
}
