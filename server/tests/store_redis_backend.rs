//! The `-q redis` backend on its own, against a throwaway redis-server: group commits,
//! reading back after a restart (of the store and of Redis), gearmand's keys.

use bytes::Bytes;
use gearman_core::proto::Priority;
use gearman_core::server::JobRecord;
use gearman_server::store::redis::{RedisConfig, RedisFlags, RedisStore};
use gearman_server::store::{Change, QueueStore};
use gearman_tests::Redis;

fn config(redis: &Redis) -> RedisConfig {
    RedisFlags {
        redis_server: "127.0.0.1".into(),
        redis_port: redis.port,
        redis_password: "".parse().unwrap(),
        redis_prefix: "_gear_".into(),
    }
    .config()
    .unwrap()
}

fn job(id: u64, data: &str) -> JobRecord {
    JobRecord {
        durable_id: id,
        function: Bytes::from_static(b"f"),
        unique: Bytes::new(),
        priority: Priority::ALL[id as usize % 3],
        data: Bytes::from(data.to_string()),
        when: (id % 2 == 0).then_some(1_700_000_000 + id as i64),
        reducer: (id % 5 == 0).then(|| Bytes::from_static(b"r")),
    }
}

#[test]
fn commits_survive_a_restart_of_the_store_and_of_redis() {
    let mut redis = Redis::start();
    let mut store = RedisStore::open(&config(&redis)).unwrap();
    assert!(store.load().unwrap().is_empty());
    let changes: Vec<Change> = (1..=10)
        .map(|i| Change::Insert(job(i, &format!("j{i}"))))
        .collect();
    store.commit(&changes).unwrap();
    store
        .commit(&[
            Change::Remove(3),
            Change::Insert(job(11, "j11")),
            Change::Remove(11),
        ])
        .unwrap();
    drop(store);
    redis.kill();
    redis.restart();
    let mut again = RedisStore::open(&config(&redis)).unwrap();
    let jobs = again.load().unwrap();
    let want: Vec<JobRecord> = (1..=10)
        .filter(|&i| i != 3)
        .map(|i| job(i, &format!("j{i}")))
        .collect();
    let mut got = jobs.clone();
    got.sort_by_key(|j| j.durable_id);
    assert_eq!(got, want);
    let order: Vec<(Priority, u64)> = jobs.iter().map(|j| (j.priority, j.durable_id)).collect();
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(order, sorted);
}

#[test]
fn commits_fail_while_redis_is_away_and_recover() {
    let mut redis = Redis::start();
    let mut store = RedisStore::open(&config(&redis)).unwrap();
    store.load().unwrap();
    store.commit(&[Change::Insert(job(1, "before"))]).unwrap();
    redis.kill();
    assert!(store.commit(&[Change::Insert(job(2, "during"))]).is_err());
    redis.restart();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while store.commit(&[Change::Insert(job(3, "after"))]).is_err() {
        assert!(std::time::Instant::now() < deadline, "no reconnect in 10 s");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    drop(store);
    let mut again = RedisStore::open(&config(&redis)).unwrap();
    let mut ids: Vec<u64> = again.load().unwrap().iter().map(|j| j.durable_id).collect();
    ids.sort();
    assert_eq!(ids, [1, 3]);
}

#[test]
fn imports_the_keys_gearmand_wrote() {
    use gearman_core::proto::{Request, Response, SubmitJob, SubmitMode};
    let redis = Redis::start();
    let port = redis.port.to_string();
    let gearmand = gearman_tests::ServerProcess::gearmand(&[
        "-q",
        "redis",
        "--redis-server",
        "127.0.0.1",
        "--redis-port",
        &port,
    ]);
    let mut conn = gearmand.conn();
    let mut want = vec![
        ("fa", "u1", "one", Priority::High),
        ("fa", "u2", "two", Priority::Normal),
        ("fb", "u-3", "three", Priority::Low),
    ];
    for (function, unique, data, priority) in &want {
        conn.send(Request::Submit(SubmitJob {
            function: Bytes::from(function.to_string()),
            unique: Bytes::from(unique.to_string()),
            mode: SubmitMode::Background(*priority),
            data: Bytes::from(data.to_string()),
        }));
        assert!(matches!(conn.recv(), Response::JobCreated { .. }));
    }
    drop(gearmand);
    // gearmand 1.1.15 and older stored the data as a plain string.
    redis.cli(&["SET", "_gear_-fold-u9", "old"]);
    want.push(("fold", "u9", "old", Priority::Normal));
    assert_eq!(redis.cli(&["HGET", "_gear_-fb-u-3", "priority"]), "2");
    let mut store = RedisStore::open(&config(&redis)).unwrap();
    let jobs = store.load().unwrap();
    let mut got: Vec<(String, String, String, Priority)> = jobs
        .iter()
        .map(|j| {
            let s = |b: &Bytes| String::from_utf8(b.to_vec()).unwrap();
            (s(&j.function), s(&j.unique), s(&j.data), j.priority)
        })
        .collect();
    got.sort_by(|a, b| a.1.cmp(&b.1));
    let mut want: Vec<(String, String, String, Priority)> = want
        .into_iter()
        .map(|(f, u, d, p)| (f.into(), u.into(), d.into(), p))
        .collect();
    want.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(got, want);
    // gearmand's keys are gone, ours hold the jobs.
    assert_eq!(redis.cli(&["KEYS", "_gear_-*"]), "");
    assert_eq!(
        redis.cli(&["EVAL", "return #redis.call('KEYS', '_gear_:rs:*')", "0"]),
        "4"
    );
    drop(store);
    let mut again = RedisStore::open(&config(&redis)).unwrap();
    assert_eq!(again.load().unwrap().len(), 4);
}

/// Earlier versions kept a job as a hash of one field per column; those still load beside
/// today's strings (over more than one round trip of keys), a rewrite of one replaces it
/// whole, and a key that is neither is an error naming it.
#[test]
fn loads_the_hashes_of_earlier_versions_beside_strings() {
    let redis = Redis::start();
    let mut store = RedisStore::open(&config(&redis)).unwrap();
    assert!(store.load().unwrap().is_empty());
    redis.cli(&[
        "HSET",
        "_gear_:rs:5000",
        "function",
        "old",
        "unique",
        "u",
        "priority",
        "0",
        "data",
        "d5000",
        "when",
        "1700000000",
        "reducer",
        "r",
    ]);
    redis.cli(&[
        "HSET",
        "_gear_:rs:5001",
        "function",
        "old",
        "unique",
        "",
        "priority",
        "2",
        "data",
        "d5001",
    ]);
    let changes: Vec<Change> = (1..=2500)
        .map(|i| Change::Insert(job(i, &format!("j{i}"))))
        .collect();
    store.commit(&changes).unwrap();
    // today's write of an id an earlier version stored: no field of the hash survives
    store.commit(&[Change::Insert(job(5001, "new"))]).unwrap();
    let mut jobs = RedisStore::open(&config(&redis)).unwrap().load().unwrap();
    jobs.sort_by_key(|j| j.durable_id);
    assert_eq!(jobs.len(), 2502);
    assert_eq!(
        jobs[..2500],
        (1..=2500)
            .map(|i| job(i, &format!("j{i}")))
            .collect::<Vec<_>>()
    );
    let old = JobRecord {
        durable_id: 5000,
        function: Bytes::from_static(b"old"),
        unique: Bytes::from_static(b"u"),
        priority: Priority::High,
        data: Bytes::from_static(b"d5000"),
        when: Some(1_700_000_000),
        reducer: Some(Bytes::from_static(b"r")),
    };
    assert_eq!(jobs[2500], old);
    assert_eq!(jobs[2501], job(5001, "new"));
    redis.cli(&["RPUSH", "_gear_:rs:9999", "x"]);
    let loaded = RedisStore::open(&config(&redis)).unwrap().load();
    let Err(err) = loaded else {
        panic!("a list at one of our keys loaded as jobs")
    };
    assert!(err.to_string().contains("_gear_:rs:9999"), "{err}");
}
