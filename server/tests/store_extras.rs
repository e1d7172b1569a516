//! Records beyond the job queue on `-q postgres` and `-q redis`, against real servers: a
//! dead letter and a schedule survive `kill -9` and a restart (same handles, `retry dead`
//! runs the job again), and background jobs stored after the dead letter are all still
//! queued (a job restored under the dead letter's id would be dropped as dead).

mod common;

use common::{Conn, Server};
use gearman_core::proto::{
    GrabMode, Priority, Request, Response, SubmitJob, SubmitJobSched, SubmitMode,
};
use gearman_tests::{Postgres, Redis};
use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

const DOOMED: &str = "extras-doomed";
const IDLE: &str = "extras-idle";
const NIGHTLY: &str = "extras-nightly";

/// Lines of an admin listing, without the final `.`.
fn listing(server: &Server, command: &str) -> Vec<String> {
    let text = server.conn().admin(command);
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    assert_eq!(lines.pop().as_deref(), Some("."), "{command}: {text:?}");
    lines
}

fn created(conn: &mut Conn) -> bytes::Bytes {
    match conn.recv() {
        Response::JobCreated { handle } => handle,
        other => panic!("expected JOB_CREATED, got {other:?}"),
    }
}

fn grab(worker: &mut Conn) -> Option<(bytes::Bytes, bytes::Bytes)> {
    worker.send(Request::GrabJob(GrabMode::Uniq));
    match worker.recv() {
        Response::JobAssign(a) => Some((a.handle, a.data)),
        Response::NoJob => None,
        other => panic!("expected JOB_ASSIGN or NO_JOB, got {other:?}"),
    }
}

/// The shape for every backend: `args` start gearmand-rs on it, `stored` counts the extra
/// records in the database (their writes are not acknowledged, so the test waits for them
/// before the kill).
fn dead_letter_and_schedule_survive_kill_9(args: &[&str], stored: &dyn Fn() -> usize) {
    let mut all = args.to_vec();
    all.extend(["--retry", "extras-doomed=0:100ms"]);
    let mut server = Server::start(&all);
    let mut client = server.conn();
    client.send(Request::SubmitSched(Box::new(SubmitJobSched {
        function: NIGHTLY.into(),
        unique: "new-year".into(),
        schedule: ["0".into(), "0".into(), "1".into(), "1".into(), "*".into()],
        data: "cron".into(),
    })));
    created(&mut client);
    let schedules = listing(&server, "show schedules\n");
    assert_eq!(schedules.len(), 1, "{schedules:?}");

    let mut worker = server.conn();
    worker.send(Request::CanDo {
        function: DOOMED.into(),
    });
    client.send(Request::Submit(SubmitJob {
        function: DOOMED.into(),
        unique: "doomed".into(),
        mode: SubmitMode::Background(Priority::Normal),
        data: "payload".into(),
    }));
    let handle = created(&mut client);
    let (h, _) = grab(&mut worker).expect("the doomed job runs");
    assert_eq!(h, handle);
    worker.send(Request::WorkFail { handle: h });
    let deadline = Instant::now() + Duration::from_secs(5);
    let dead = loop {
        let dead = listing(&server, "show dead\n");
        if !dead.is_empty() || Instant::now() > deadline {
            break dead;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(dead.len(), 1, "no dead letter: {dead:?}");
    // Stored after the dead letter: their durable ids come after its key.
    for _ in 0..2 {
        client.submit(IDLE, SubmitMode::Background(Priority::Normal));
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while stored() != 2 {
        assert!(
            Instant::now() < deadline,
            "{} extra record(s) stored, expected the schedule and the dead letter",
            stored()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    drop((worker, client));
    server.child.kill().unwrap();
    assert_eq!(server.child.wait().unwrap().signal(), Some(9));
    let server = Server::start(&all);
    assert_eq!(
        listing(&server, "show schedules\n"),
        schedules,
        "the schedule survived kill -9 under its handle"
    );
    assert_eq!(
        listing(&server, "show dead\n"),
        dead,
        "the dead letter survived kill -9"
    );
    let status = server.conn().admin("status\n");
    assert!(
        status.lines().any(|l| l == format!("{IDLE}\t2\t0\t0")),
        "both jobs stored after the dead letter are queued: {status:?}"
    );
    let mut worker = server.conn();
    worker.send(Request::CanDo {
        function: DOOMED.into(),
    });
    assert_eq!(grab(&mut worker), None, "a dead job is not queued again");
    worker.send(Request::PreSleep);
    assert_eq!(
        server.conn().admin(&format!("retry dead {DOOMED}\n")),
        "OK 1\n"
    );
    // Queued again once it is stored again: the worker is woken then.
    assert_eq!(
        worker.recv_within(Duration::from_secs(5)),
        Some(Response::Noop)
    );
    let (_, data) = grab(&mut worker).expect("retry dead runs it again");
    assert_eq!(&data[..], b"payload");
}

#[test]
fn postgres_keeps_dead_letters_and_schedules_across_kill_9() {
    let pg = Postgres::start();
    let conninfo = pg.conninfo();
    // The owner names this server's rows; by default it holds the port, which changes here.
    let args = [
        "-q",
        "postgres",
        "--libpq-conninfo",
        &conninfo,
        "--libpq-owner",
        "solo",
    ];
    dead_letter_and_schedule_survive_kill_9(&args, &|| {
        pg.psql("SELECT count(*) FROM gearmand_rs_extras")
            .parse()
            .unwrap()
    });
}

#[test]
fn redis_keeps_dead_letters_and_schedules_across_kill_9() {
    let redis = Redis::start();
    let port = redis.port.to_string();
    let args = ["-q", "redis", "--redis-port", &port];
    dead_letter_and_schedule_survive_kill_9(&args, &|| {
        redis
            .cli(&["--scan", "--pattern", "_gear_:rsx:*"])
            .lines()
            .filter(|l| !l.is_empty())
            .count()
    });
}
