//! The durable queue: group commit, acknowledgements only after commit, refusal of bad
//! files, import of a real gearmand libsqlite3 queue, and no acknowledged job lost to
//! `kill -9` of the server.

mod common;

use bytes::Bytes;
use common::{run, Server};
use gearman_core::proto::{GrabMode, Priority, Request, Response, SubmitJob, SubmitMode};
use gearman_core::server::JobRecord;
use gearman_server::store::{StoreConfig, StoreHandle};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn temp_db(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gearmand-rs-store-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("queue.db")
}

fn config(path: &Path) -> StoreConfig {
    StoreConfig {
        path: path.to_path_buf(),
        gearmand_table: "gearman_queue".into(),
        sync: gearman_server::store::SyncMode::Full,
    }
}

fn record(id: u64) -> JobRecord {
    JobRecord {
        durable_id: id,
        function: Bytes::from_static(b"f"),
        unique: Bytes::new(),
        priority: Priority::ALL[(id % 3) as usize],
        data: Bytes::from(format!("job {id}")),
        when: (id % 5 == 0).then_some(1_700_000_000 + id as i64),
        reducer: (id % 7 == 0).then(|| Bytes::from_static(b"reduce")),
    }
}

#[test]
fn concurrent_inserts_share_commits_and_survive_reopen() {
    let path = temp_db("group");
    let (store, jobs) = StoreHandle::open(&config(&path)).unwrap();
    assert!(jobs.is_empty());
    let store = Arc::new(store);
    let (tx, rx) = mpsc::channel();
    let threads: Vec<_> = (0..8u64)
        .map(|t| {
            let (store, tx) = (store.clone(), tx.clone());
            std::thread::spawn(move || {
                for i in 0..200u64 {
                    let tx = tx.clone();
                    store.insert(
                        record(t * 1000 + i + 1),
                        Box::new(move |r| tx.send(r).unwrap()),
                    );
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let acks: Vec<_> = (0..1600)
        .map(|_| rx.recv_timeout(Duration::from_secs(30)).unwrap())
        .collect();
    assert!(acks.iter().all(Result::is_ok));
    let commits = store.commits();
    assert!(
        commits < 1600,
        "{commits} commits for 1600 inserts: no grouping"
    );
    store.remove(1);
    store.remove(2);
    Arc::try_unwrap(store).ok().unwrap().close();
    let (_, jobs) = StoreHandle::open(&config(&path)).unwrap();
    assert_eq!(jobs.len(), 1598);
    // Priority then arrival order, every field back as stored.
    let mut sorted = jobs.clone();
    sorted.sort_by_key(|r| (r.priority, r.durable_id));
    assert_eq!(jobs, sorted);
    let by_id: BTreeMap<u64, &JobRecord> = jobs.iter().map(|r| (r.durable_id, r)).collect();
    assert_eq!(*by_id[&1005], record(1005));
    assert_eq!(*by_id[&7007], record(7007));
}

#[test]
fn bad_files_are_clear_errors_not_empty_queues() {
    let garbage = temp_db("garbage");
    std::fs::write(&garbage, vec![0x42u8; 8192]).unwrap();
    let err = StoreHandle::open(&config(&garbage))
        .err()
        .expect("garbage must be refused");
    assert!(err.0.contains(&*garbage.to_string_lossy()), "{err}");

    let dir = temp_db("readonly")
        .parent()
        .unwrap()
        .join("no-such-dir")
        .join("q.db");
    let err = StoreHandle::open(&config(&dir))
        .err()
        .expect("missing directory must be refused");
    assert!(err.0.contains("cannot open"), "{err}");

    let wrong = temp_db("schema");
    schema_with_foreign_columns(&wrong);
    let err = StoreHandle::open(&config(&wrong))
        .err()
        .expect("wrong schema must be refused");
    assert!(
        err.0.contains("unexpected schema") || err.0.contains("not a gearmand queue"),
        "{err}"
    );

    // The binary reports it in one line and exits non-zero.
    let out = Command::new(env!("CARGO_BIN_EXE_gearmand-rs"))
        .args([
            "-L",
            "127.0.0.1",
            "-p",
            "0",
            "-q",
            "libsqlite3",
            "--libsqlite3-db",
        ])
        .arg(&garbage)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("gearmand-rs: ") && stderr.contains("queue.db"),
        "{stderr}"
    );
}

/// Makes a table named like ours but with other columns, using the python3 sqlite module
/// (no SQLite client is needed on the machine).
fn schema_with_foreign_columns(path: &Path) {
    let script = format!(
        "import sqlite3; c = sqlite3.connect({:?}); c.execute('CREATE TABLE gearmand_rs_jobs (x TEXT)'); c.commit()",
        path.to_string_lossy()
    );
    let out = run("python3", &["-c", &script], b"", Duration::from_secs(20));
    assert!(out.status.success(), "{out:?}");
}

fn drain(server: &Server, function: &str) -> Vec<String> {
    let mut w = server.conn();
    w.send(Request::CanDo {
        function: Bytes::copy_from_slice(function.as_bytes()),
    });
    let mut seen = Vec::new();
    loop {
        w.send(Request::GrabJob(GrabMode::Uniq));
        match w.recv() {
            Response::NoJob => return seen,
            Response::JobAssign(a) => {
                seen.push(String::from_utf8_lossy(a.unique()).into_owned());
                w.send(Request::WorkComplete(gearman_core::proto::WorkPayload {
                    handle: a.handle,
                    data: Bytes::new(),
                }));
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn gearmand_libsqlite3_queue_is_imported() {
    let path = temp_db("gearmand");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let mut gearmand = Command::new("/usr/sbin/gearmand")
        .args([
            "-L",
            "127.0.0.1",
            "-p",
            &port,
            "--log-file",
            "none",
            "-q",
            "libsqlite3",
            "--libsqlite3-db",
        ])
        .arg(&path)
        .spawn()
        .expect("/usr/sbin/gearmand is required (run .ci/run)");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port.parse::<u16>().unwrap())).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "gearmand did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    for i in 1..=3 {
        let out = run(
            "gearman",
            &["-p", &port, "-b", "-f", "legacy", "-u", &format!("g{i}")],
            b"data",
            Duration::from_secs(20),
        );
        assert!(out.status.success(), "{out:?}");
    }
    let _ = Command::new("kill").arg(gearmand.id().to_string()).status();
    let _ = gearmand.wait();
    let server = Server::start(&[
        "-q",
        "libsqlite3",
        "--libsqlite3-db",
        &path.to_string_lossy(),
    ]);
    let mut got = drain(&server, "legacy");
    got.sort();
    assert_eq!(got, ["g1", "g2", "g3"]);
}

#[test]
fn no_acknowledged_job_is_lost_to_kill_9() {
    let path = temp_db("crash");
    let db = path.to_string_lossy().into_owned();
    let server = Server::start(&["-q", "libsqlite3", "--libsqlite3-db", &db]);
    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    let port = server.port;
    let clients: Vec<_> = (0..4)
        .map(|c| {
            let acked = acked.clone();
            std::thread::spawn(move || {
                let Ok(mut conn) = std::panic::catch_unwind(|| common::Conn::new(port)) else {
                    return;
                };
                for i in 0..5000 {
                    let unique = format!("c{c}-{i}");
                    let job = SubmitJob {
                        function: "durable".into(),
                        unique: Bytes::from(unique.clone()),
                        mode: SubmitMode::Background(Priority::Normal),
                        data: "x".into(),
                    };
                    if std::io::Write::write_all(&mut conn.stream, &Request::Submit(job).to_bytes())
                        .is_err()
                    {
                        return;
                    }
                    match conn.recv_within(Duration::from_secs(5)) {
                        Some(Response::JobCreated { .. }) => {
                            acked.lock().unwrap().insert(unique);
                        }
                        _ => return,
                    }
                }
            })
        })
        .collect();
    // Kill mid-stream, once some jobs are acknowledged.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while acked.lock().unwrap().len() < 300 {
        assert!(std::time::Instant::now() < deadline, "submissions too slow");
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut server = server;
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    for c in clients {
        c.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() < 20_000, "the kill should land mid-stream");

    let restarted = Server::start(&["-q", "libsqlite3", "--libsqlite3-db", &db]);
    let ran = drain(&restarted, "durable");
    let ran_set: BTreeSet<String> = ran.iter().cloned().collect();
    assert_eq!(ran.len(), ran_set.len(), "a job ran twice");
    let lost: Vec<_> = acked.difference(&ran_set).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged job(s) lost, e.g. {:?}",
        lost.len(),
        lost.first()
    );
    // Unacknowledged ones may or may not have been committed; nothing else may appear.
    assert!(ran_set.iter().all(|u| u.starts_with('c')));
    eprintln!(
        "kill -9 after {} acknowledged submissions; {} ran after restart",
        acked.len(),
        ran.len()
    );
}
