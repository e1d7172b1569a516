//! gearmand-rs `-q redis` end to end against a throwaway redis-server with its append-only
//! file: kill -9 of gearmand-rs (and of Redis) and restart, and a Redis outage under load.

mod common;

use common::durable::{check_after_restart, eventually, submitter, worker, Outcomes, Runs};
use common::Server;
use gearman_tests::Redis;
use std::os::unix::process::ExitStatusExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const IDLE: &str = "redis-idle";
const BUSY: &str = "redis-busy";

fn args(port: &str) -> Vec<&str> {
    vec![
        "-q",
        "redis",
        "--redis-server",
        "127.0.0.1",
        "--redis-port",
        port,
    ]
}

fn stop_all(stop: &AtomicBool, threads: Vec<std::thread::JoinHandle<()>>) {
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn every_acknowledged_job_runs_after_sigkill_of_the_server_and_of_redis() {
    let mut redis = Redis::start();
    let port = redis.port.to_string();
    let args = args(&port);
    let mut server = Server::start(&args);
    let outcomes = Arc::new(Outcomes::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients: Vec<_> = (0..3)
        .map(|c| {
            submitter(
                server.port,
                IDLE,
                format!("idle{c}"),
                50_000,
                outcomes.clone(),
                stop.clone(),
            )
        })
        .collect();
    clients.push(submitter(
        server.port,
        BUSY,
        "busy".into(),
        50_000,
        outcomes.clone(),
        stop.clone(),
    ));
    let before = Arc::new(Runs::default());
    let busy = worker(server.port, BUSY, before.clone(), stop.clone(), false);
    assert!(
        eventually(Duration::from_secs(30), || outcomes.acked_count() >= 3_000),
        "fewer than 3000 acknowledgements in 30 s"
    );
    server.child.kill().unwrap();
    assert_eq!(server.child.wait().unwrap().signal(), Some(9));
    stop_all(&stop, clients);
    busy.join().unwrap();
    assert!(
        outcomes.acked_count() < 200_000,
        "the kill must land mid-stream"
    );
    assert!(before.distinct() > 0, "the worker ran jobs before the kill");
    // Redis dies too: what it acknowledged is in its append-only file.
    redis.kill();
    redis.restart();

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

#[test]
fn a_redis_outage_refuses_background_jobs_and_loses_none() {
    let mut redis = Redis::start();
    let port = redis.port.to_string();
    let server = Server::start(&args(&port));
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
    let runs = Arc::new(Runs::default());
    let busy = worker(server.port, IDLE, runs.clone(), stop.clone(), false);
    assert!(eventually(Duration::from_secs(30), || outcomes
        .acked_count()
        >= 500));
    redis.kill();
    assert!(
        eventually(Duration::from_secs(10), || outcomes
            .refused
            .load(Ordering::Relaxed)
            > 0),
        "no submission was refused while Redis was down"
    );
    let acked_down = outcomes.acked_count();
    std::thread::sleep(Duration::from_secs(2));
    assert!(outcomes.acked_count() <= acked_down + 2);
    redis.restart();
    assert!(
        eventually(Duration::from_secs(20), || outcomes.acked_count()
            >= acked_down + 500),
        "acknowledgements did not resume after Redis came back"
    );
    stop_all(&stop, clients);
    busy.join().unwrap();
    let go = Arc::new(AtomicBool::new(false));
    worker(server.port, IDLE, runs.clone(), go, true)
        .join()
        .unwrap();
    let lost: Vec<_> = outcomes.acked().difference(&runs.set()).cloned().collect();
    assert!(lost.is_empty(), "{} acknowledged job(s) lost", lost.len());
    assert!(runs.twice().is_empty());
}
