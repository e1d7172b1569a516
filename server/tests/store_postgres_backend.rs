//! The `-q postgres` backend on its own, against a throwaway PostgreSQL: group commits,
//! reading back after a restart, leases and takeover between two stores, gearmand's table.

use bytes::Bytes;
use gearman_core::proto::Priority;
use gearman_core::server::JobRecord;
use gearman_server::store::postgres::{PostgresConfig, PostgresFlags, PostgresStore};
use gearman_server::store::{Change, QueueStore};
use gearman_tests::Postgres;
use std::time::{Duration, Instant};

fn config(pg: &Postgres, owner: &str, lease_secs: u64) -> PostgresConfig {
    PostgresFlags {
        libpq_conninfo: pg.conninfo().parse().unwrap(),
        libpq_table: "queue".into(),
        libpq_lease: lease_secs,
        libpq_owner: Some(owner.into()),
    }
    .config(4730)
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

fn datas(jobs: &[JobRecord]) -> Vec<String> {
    let mut v: Vec<String> = jobs
        .iter()
        .map(|j| String::from_utf8_lossy(&j.data).into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn commits_survive_a_restart_and_deletes_name_the_owner() {
    let pg = Postgres::start();
    let cfg = config(&pg, "a", 30);
    let mut store = PostgresStore::open(&cfg).unwrap();
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
    let mut again = PostgresStore::open(&cfg).unwrap();
    let jobs = again.load().unwrap();
    let mut want: Vec<String> = (1..=10)
        .filter(|&i| i != 3)
        .map(|i| format!("j{i}"))
        .collect();
    want.sort();
    assert_eq!(datas(&jobs), want);
    // priority, then arrival order
    let order: Vec<(Priority, u64)> = jobs.iter().map(|j| (j.priority, j.durable_id)).collect();
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(order, sorted);
    let j2 = jobs.iter().find(|j| &j.data[..] == b"j2").unwrap();
    assert_eq!(j2.when, Some(1_700_000_002));
    let j5 = jobs.iter().find(|j| &j.data[..] == b"j5").unwrap();
    assert_eq!(j5.reducer.as_deref(), Some(&b"r"[..]));
    assert_eq!(
        pg.psql("SELECT count(*) FROM gearmand_rs_jobs WHERE owner = 'a'"),
        "9"
    );
}

/// Every row of a server's queue has the same owner, so an index on `owner` let the planner
/// AND a scan of the whole queue into each commit's delete by id (a commit cost that grew
/// with the queue, 2-3x slower submits at 40k queued). Earlier versions created one: opening
/// the store drops it, and deletes by id still only touch the owner's rows.
#[test]
fn no_index_on_owner_is_kept_and_deletes_still_name_the_owner() {
    let pg = Postgres::start();
    let mut store = PostgresStore::open(&config(&pg, "a", 30)).unwrap();
    store.load().unwrap();
    store.close();
    pg.psql("CREATE INDEX IF NOT EXISTS gearmand_rs_jobs_owner ON gearmand_rs_jobs (owner)");
    let owner_indexes = "SELECT count(*) FROM pg_indexes WHERE tablename = 'gearmand_rs_jobs'
                           AND indexdef LIKE '%(owner)%'";
    assert_eq!(pg.psql(owner_indexes), "1");
    let mut store = PostgresStore::open(&config(&pg, "a", 30)).unwrap();
    store.load().unwrap();
    assert_eq!(pg.psql(owner_indexes), "0");
    let mut other = PostgresStore::open(&config(&pg, "b", 30)).unwrap();
    other.load().unwrap();
    let changes: Vec<Change> = (1..=300)
        .map(|i| Change::Insert(job(i, &format!("j{i}"))))
        .collect();
    store.commit(&changes).unwrap();
    other.commit(&changes).unwrap();
    let removes: Vec<Change> = (1..=100).map(Change::Remove).collect();
    store.commit(&removes).unwrap();
    assert_eq!(
        pg.psql("SELECT owner, count(*) FROM gearmand_rs_jobs GROUP BY owner ORDER BY owner"),
        "a|200\nb|300"
    );
    store.close();
    other.close();
}

#[test]
fn a_dead_owners_rows_are_taken_over_once() {
    let pg = Postgres::start();
    let mut a = PostgresStore::open(&config(&pg, "a", 2)).unwrap();
    a.load().unwrap();
    a.commit(
        &(1..=5)
            .map(|i| Change::Insert(job(i, &format!("a{i}"))))
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let mut b = PostgresStore::open(&config(&pg, "b", 2)).unwrap();
    assert!(b.load().unwrap().is_empty());
    let mut b_takeovers = b.takeovers().unwrap();
    // a dies: its keeper stops, its lease runs out.
    drop(a);
    let deadline = Instant::now() + Duration::from_secs(10);
    let adopted = loop {
        if let Ok(adopted) = b_takeovers.try_recv() {
            break adopted;
        }
        assert!(Instant::now() < deadline, "no takeover within 10 s");
        std::thread::sleep(Duration::from_millis(50));
    };
    let records = adopted.into_records(100);
    assert_eq!(datas(&records), ["a1", "a2", "a3", "a4", "a5"]);
    assert_eq!(
        pg.psql("SELECT count(*) FROM gearmand_rs_jobs WHERE owner = 'b'"),
        "5"
    );
    assert_eq!(
        pg.psql("SELECT count(*) FROM gearmand_rs_owners WHERE owner = 'a'"),
        "0"
    );
    // b finishes one through its own id for it.
    b.commit(&[Change::Remove(records[0].durable_id)]).unwrap();
    assert_eq!(pg.psql("SELECT count(*) FROM gearmand_rs_jobs"), "4");
    // a restarts: nothing is left in its name.
    let mut a = PostgresStore::open(&config(&pg, "a", 2)).unwrap();
    assert!(a.load().unwrap().is_empty());
    a.close();
    b.close();
}

/// Background jobs submitted to gearmand 1.1.20 running `-q postgres` on `pg`; returns
/// `(function, unique, data, priority)` of each.
fn fill_with_gearmand(extra: &[&str]) -> Vec<(String, String, String, Priority)> {
    use gearman_core::proto::{Request, Response, SubmitJob, SubmitMode};
    let gearmand = gearman_tests::ServerProcess::gearmand(extra);
    let mut conn = gearmand.conn();
    let jobs = vec![
        ("fa", "u1", "one", Priority::High),
        ("fa", "u2", "two\0bin\u{7f}", Priority::Normal),
        ("fb", "u3", "three", Priority::Low),
        ("f-dash", "u-4", "four", Priority::Normal),
    ];
    for (function, unique, data, priority) in &jobs {
        conn.send(Request::Submit(SubmitJob {
            function: Bytes::from(function.to_string()),
            unique: Bytes::from(unique.to_string()),
            mode: SubmitMode::Background(*priority),
            data: Bytes::from(data.to_string()),
        }));
        assert!(matches!(conn.recv(), Response::JobCreated { .. }));
    }
    gearmand.terminate();
    let mut gearmand = gearmand;
    assert!(gearmand.wait_exit(Duration::from_secs(10)).is_some());
    jobs.into_iter()
        .map(|(f, u, d, p)| (f.into(), u.into(), d.into(), p))
        .collect()
}

#[test]
fn imports_the_table_gearmand_wrote() {
    let pg = Postgres::start();
    let conninfo = pg.conninfo();
    let mut want = fill_with_gearmand(&["-q", "postgres", "--libpq-conninfo", &conninfo]);
    assert_eq!(pg.psql("SELECT count(*) FROM queue"), "4");
    let mut store = PostgresStore::open(&config(&pg, "a", 30)).unwrap();
    let jobs = store.load().unwrap();
    let mut got: Vec<(String, String, String, Priority)> = jobs
        .iter()
        .map(|j| {
            let s = |b: &Bytes| String::from_utf8(b.to_vec()).unwrap();
            (s(&j.function), s(&j.unique), s(&j.data), j.priority)
        })
        .collect();
    got.sort_by(|a, b| a.1.cmp(&b.1));
    want.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(got, want);
    assert!(jobs.iter().all(|j| j.when.is_none()));
    // gearmand's table is kept aside, unused.
    assert_eq!(pg.psql("SELECT to_regclass('queue') IS NULL"), "t");
    assert_eq!(
        pg.psql("SELECT count(*) FROM queue_imported_by_gearmand_rs"),
        "4"
    );
    store.close();
}

#[test]
fn a_hostile_table_name_is_refused_before_any_sql() {
    let pg = Postgres::start();
    let flags = PostgresFlags {
        libpq_conninfo: pg.conninfo().parse().unwrap(),
        libpq_table: "queue; DROP TABLE pg_class; --".into(),
        libpq_lease: 30,
        libpq_owner: None,
    };
    let err = flags.config(4730).unwrap_err();
    assert!(err.contains("not a plain table name"), "{err}");
}
