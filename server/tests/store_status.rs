//! The durable queue's backend in `/metrics` and `/api/status`, against real PostgreSQL and
//! Redis servers: which backend, its health (up; reconnecting while the database is away,
//! up again once it is back), its commit latency, and the jobs taken over from a killed
//! server sharing the database.

mod common;

use common::durable::eventually;
use common::http::{get, sample, start_with_http};
use common::Server;
use gearman_core::proto::{Priority, SubmitMode};
use gearman_tests::{Conn, Postgres, Redis};
use std::time::Duration;

/// Longest wait for the health to follow the database (health checks run every 0.5 s; a
/// reconnection attempt waits at most 2 s of backoff).
const HEALTH_BOUND: Duration = Duration::from_secs(15);

fn status(base: &str) -> serde_json::Value {
    serde_json::from_str(&get(&format!("{base}/api/status"))).expect("JSON status")
}

fn metrics(base: &str) -> String {
    get(&format!("{base}/metrics"))
}

/// Submits a background job (so a commit is measured) and checks what both pages say of a
/// healthy `backend`.
fn check_up(server: &Server, base: &str, backend: &str) {
    let mut client = Conn::new(server.port);
    client.submit("status-idle", SubmitMode::Background(Priority::Normal));
    let m = metrics(base);
    let info = format!("gearman_store_info{{backend=\"{backend}\"}}");
    assert_eq!(sample(&m, &info), Some(1.0), "{m}");
    assert_eq!(sample(&m, "gearman_store_up"), Some(1.0), "{m}");
    assert!(sample(&m, "gearman_store_commit_seconds_count").unwrap() >= 1.0);
    let s = status(base);
    assert_eq!(s["store"]["backend"], backend, "{s}");
    assert_eq!(s["store"]["health"], "up", "{s}");
    assert!(s["store"]["commits"].as_u64().unwrap() >= 1, "{s}");
    assert!(
        s["store"]["commit_seconds"]["count"].as_u64().unwrap() >= 1,
        "{s}"
    );
    assert!(
        s["store"]["commit_seconds"]["mean"].as_f64().unwrap() > 0.0,
        "{s}"
    );
}

/// Waits until both pages say the store is `health` (`up` or `reconnecting`).
fn wait_for_health(base: &str, health: &str) {
    let gauge = if health == "up" { 1.0 } else { 0.0 };
    let seen = eventually(HEALTH_BOUND, || {
        std::thread::sleep(Duration::from_millis(100));
        sample(&metrics(base), "gearman_store_up") == Some(gauge)
            && status(base)["store"]["health"] == health
    });
    assert!(
        seen,
        "store not {health} within {HEALTH_BOUND:?}: {}",
        status(base)["store"]
    );
}

#[test]
fn postgres_backend_health_latency_and_no_takeovers() {
    let pg = Postgres::start();
    let conninfo = pg.conninfo();
    let (server, base) = start_with_http(&["-q", "libpq", "--libpq-conninfo", &conninfo]);
    // `-q libpq` is an alias: the backend is named by its canonical `-q` name.
    check_up(&server, &base, "postgres");
    let m = metrics(&base);
    assert_eq!(
        sample(&m, "gearman_store_jobs_taken_over_total"),
        Some(0.0),
        "{m}"
    );
    assert_eq!(status(&base)["store"]["jobs_taken_over"], 0);
    // No submissions while the database is away: the idle health check notices.
    pg.stop();
    wait_for_health(&base, "reconnecting");
    pg.restart();
    wait_for_health(&base, "up");
    check_up(&server, &base, "postgres");
}

#[test]
fn redis_backend_name_and_health() {
    let mut redis = Redis::start();
    let port = redis.port.to_string();
    let (server, base) = start_with_http(&["-q", "redis", "--redis-port", &port]);
    check_up(&server, &base, "redis");
    // Not shared by other servers: no takeover counter.
    let m = metrics(&base);
    assert!(!m.contains("gearman_store_jobs_taken_over"), "{m}");
    assert!(status(&base)["store"]["jobs_taken_over"].is_null());
    redis.kill();
    wait_for_health(&base, "reconnecting");
    redis.restart();
    wait_for_health(&base, "up");
    check_up(&server, &base, "redis");
}

#[test]
fn sqlite_backend_is_named_and_builtin_has_none() {
    let dir = gearman_tests::temp_dir("status");
    let db = dir.path().join("q.db");
    let (server, base) =
        start_with_http(&["-q", "libsqlite3", "--libsqlite3-db", db.to_str().unwrap()]);
    check_up(&server, &base, "libsqlite3");
    drop(server);
    drop(dir);
    let (_builtin, base) = start_with_http(&[]);
    assert!(!metrics(&base).contains("gearman_store_"));
    assert!(status(&base)["store"].is_null());
}

#[test]
fn jobs_taken_over_from_a_killed_server_are_counted() {
    let pg = Postgres::start();
    let conninfo = pg.conninfo();
    let shared = |owner: &'static str| {
        let mut args = vec!["-q", "postgres", "--libpq-conninfo", conninfo.as_str()];
        args.extend(["--libpq-owner", owner, "--libpq-lease", "1"]);
        args
    };
    let mut victim = Server::start(&shared("victim"));
    let (_survivor, base) = start_with_http(&shared("survivor"));
    let mut client = Conn::new(victim.port);
    for _ in 0..3 {
        client.submit("status-idle", SubmitMode::Background(Priority::Normal));
    }
    victim.child.kill().unwrap();
    victim.child.wait().unwrap();
    let taken = || sample(&metrics(&base), "gearman_store_jobs_taken_over_total");
    assert!(
        eventually(Duration::from_secs(15), || taken() == Some(3.0)),
        "taken over: {:?}",
        taken()
    );
    assert_eq!(status(&base)["store"]["jobs_taken_over"], 3);
}
