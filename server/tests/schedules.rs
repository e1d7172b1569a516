//! SUBMIT_JOB_SCHED over real sockets: a schedule for every minute, submitted with the
//! tokio client's `submit_scheduled`, fires at the next
//! minute boundary and wakes a sleeping worker (the one test in the suite that waits for a
//! minute boundary, at most 61 s), is listed by `show schedules`, survives `kill -9` with
//! the SQLite store under the same handle, and `cancel job` ends it for good. Its firings
//! are counted in `/metrics` and it is listed by `GET /api/schedules`.

mod common;

use common::Server;
use gearman_core::proto::{GrabMode, Request, Response};
use gearman_core::server::ExtraKind;
use gearman_server::store::sqlite::{SqliteConfig, SqliteStore};
use gearman_tokio::{Job, Schedule};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn start(db: &Path, http: &str) -> Server {
    let db = db.to_str().unwrap();
    Server::start(&[
        "-q",
        "libsqlite3",
        "--libsqlite3-db",
        db,
        "--http-port",
        http,
    ])
}

/// GET `path` on the HTTP listener at `port`.
fn get(port: &str, path: &str) -> String {
    common::http::get(&format!("http://127.0.0.1:{port}{path}"))
}

/// `GET /api/schedules`'s list.
fn api_schedules(port: &str) -> Vec<serde_json::Value> {
    let body: serde_json::Value = serde_json::from_str(&get(port, "/api/schedules")).unwrap();
    let schedules = body["schedules"]
        .as_array()
        .expect("a schedule list")
        .clone();
    assert_eq!(
        body["total"].as_u64(),
        Some(schedules.len() as u64),
        "{body}"
    );
    schedules
}

/// The sample `name{function="tick"}` of `/metrics`.
fn tick_metric(port: &str, name: &str) -> Option<f64> {
    let metrics = get(port, "/metrics");
    common::http::sample(&metrics, &format!("{name}{{function=\"tick\"}}"))
}

/// `show schedules` lines without the final `.`.
fn schedules(server: &Server) -> Vec<String> {
    let text = server.conn().admin("show schedules\n");
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    assert_eq!(lines.pop().as_deref(), Some("."), "{text:?}");
    lines
}

#[test]
fn every_minute_schedule_fires_at_the_boundary_survives_kill_9_and_is_cancelled() {
    let dir = gearman_tests::temp_dir("sched");
    let db = dir.path().join("queue.db");
    let http = gearman_tests::free_port().to_string();
    let server = start(&db, &http);
    let mut worker = server.conn();
    worker.send(Request::CanDo {
        function: "tick".into(),
    });
    worker.send(Request::PreSleep);
    // Submitted with our client library's call.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = gearman_tokio::client().server(server.addr()).build();
    let job = Job::new("tick", "cron").unique("every-minute");
    let handle = runtime
        .block_on(client.submit_scheduled(job, Schedule::every_minute()))
        .expect("the schedule's handle");
    let submitted = unix_now();
    let boundary = (submitted / 60 + 1) * 60;
    let listed = schedules(&server);
    assert_eq!(listed.len(), 1, "{listed:?}");
    let fields: Vec<&str> = listed[0].split('\t').collect();
    assert_eq!(
        fields[..5],
        [
            std::str::from_utf8(&handle).unwrap(),
            "tick",
            "every-minute",
            "* * * * *",
            &boundary.to_string()
        ]
    );
    // The firing wakes the worker at the boundary, not before.
    let wait = Duration::from_secs(u64::try_from(boundary - submitted).unwrap() + 3);
    assert_eq!(worker.recv_within(wait), Some(Response::Noop), "no firing");
    let woken = unix_now();
    assert!(
        (boundary..boundary + 3).contains(&woken),
        "woken at {woken}, the boundary is {boundary}"
    );
    worker.send(Request::GrabJob(GrabMode::Uniq));
    match worker.recv() {
        Response::JobAssign(a) => assert_eq!(&a.data[..], b"cron"),
        other => panic!("expected the firing's job, got {other:?}"),
    }
    assert!(schedules(&server)[0].ends_with("\t1\t0"), "one firing run");
    // Counted in the metrics, and listed by the HTTP API.
    assert_eq!(
        tick_metric(&http, "gearman_schedule_firings_total"),
        Some(1.0)
    );
    assert_eq!(
        tick_metric(&http, "gearman_schedule_firings_skipped_total"),
        Some(0.0)
    );
    assert_eq!(tick_metric(&http, "gearman_schedules"), Some(1.0));
    let api = api_schedules(&http);
    assert_eq!(api.len(), 1, "{api:?}");
    assert_eq!(api[0]["handle"], std::str::from_utf8(&handle).unwrap());
    assert_eq!(
        (&api[0]["function"], &api[0]["unique"], &api[0]["schedule"]),
        (&"tick".into(), &"every-minute".into(), &"* * * * *".into())
    );
    assert_eq!(
        (&api[0]["fired"], &api[0]["skipped"]),
        (&1.into(), &0.into())
    );
    assert_eq!(api[0]["next_unix"], boundary + 60);

    // kill -9 and restart: the schedule is still there, under its handle.
    drop((worker, client, server));
    let server = start(&db, &http);
    let after = schedules(&server);
    assert_eq!(after.len(), 1, "{after:?}");
    // Restored: counted by the gauge with no job of its function since the restart.
    assert_eq!(tick_metric(&http, "gearman_schedules"), Some(1.0));
    assert!(after[0].starts_with(std::str::from_utf8(&handle).unwrap()));
    let cancel = format!("cancel job {}\n", std::str::from_utf8(&handle).unwrap());
    assert_eq!(server.conn().admin(&cancel), "OK\r\n");
    assert!(schedules(&server).is_empty());
    assert!(api_schedules(&http).is_empty());
    // The delete is not acknowledged: let it reach the file before the kill.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while SqliteStore::open(&SqliteConfig::new(&db))
        .unwrap()
        .extras()
        .unwrap()
        .iter()
        .any(|r| r.kind == ExtraKind::Schedule)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the schedule's record stays stored"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(server);
    let server = start(&db, &http);
    assert!(
        schedules(&server).is_empty(),
        "a cancelled schedule stays gone"
    );
}
