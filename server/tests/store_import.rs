//! Switching from gearmand: a libsqlite3 queue written by the real gearmand 1.1.20 is
//! imported (priority, then table order), set aside, never imported twice, and served.

mod common;

use bytes::Bytes;
use common::{run, Server};
use gearman_core::proto::{GrabMode, Priority, Request, Response, WorkPayload};
use gearman_server::store::sqlite::{self, SqliteConfig};
use gearman_tests::TempDir;
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A fresh `queue.db` path in a throwaway directory, removed when the [`TempDir`] is dropped
/// (keep it alive until the server using it is killed).
fn temp_db(name: &str) -> (TempDir, PathBuf) {
    let dir = gearman_tests::temp_dir(&format!("store-{name}"));
    let db = dir.path().join("queue.db");
    (dir, db)
}

fn count(path: &Path, table: &str) -> i64 {
    Connection::open(path)
        .unwrap()
        .query_row(&format!("SELECT count(*) FROM \"{table}\""), [], |r| {
            r.get(0)
        })
        .unwrap_or(-1)
}

/// Submits background jobs to the C gearmand (libsqlite3 queue on `db`) with the `gearman`
/// CLI, then stops it.
fn gearmand_queue(db: &Path, jobs: &[(&str, &str)]) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let mut gearmand = Command::new("/usr/sbin/gearmand")
        .args(["-L", "127.0.0.1", "-p", &port, "--log-file", "none"])
        .args(["-q", "libsqlite3", "--libsqlite3-db"])
        .arg(db)
        .stdin(Stdio::null())
        .spawn()
        .expect("/usr/sbin/gearmand (C gearmand 1.1.20) is required");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port.parse::<u16>().unwrap())).is_err() {
        if Instant::now() > deadline {
            let _ = gearmand.kill();
            panic!("gearmand did not listen within 10 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    for (unique, flag) in jobs {
        let mut args = vec!["-p", &port, "-b", "-f", "legacy", "-u", unique];
        if !flag.is_empty() {
            args.push(flag);
        }
        let data = format!("data-{unique}");
        let out = run("gearman", &args, data.as_bytes(), Duration::from_secs(20));
        assert!(out.status.success(), "{out:?}");
    }
    // SIGTERM: gearmand stops cleanly, keeping its rows (no --store-queue-on-shutdown).
    let _ = Command::new("kill").arg(gearmand.id().to_string()).status();
    let _ = gearmand.wait();
}

/// Grabs every job of `function` with a worker, completing each; returns uniques in order.
fn drain(server: &Server, function: &str) -> Vec<String> {
    let mut w = server.conn();
    w.send(Request::CanDo {
        function: Bytes::copy_from_slice(function.as_bytes()),
    });
    let mut seen = Vec::new();
    for _ in 0..10_000 {
        w.send(Request::GrabJob(GrabMode::Uniq));
        match w.recv() {
            Response::NoJob => return seen,
            Response::JobAssign(a) => {
                seen.push(String::from_utf8_lossy(a.unique()).into_owned());
                w.send(Request::WorkComplete(WorkPayload {
                    handle: a.handle,
                    data: Bytes::new(),
                }));
            }
            other => panic!("{other:?}"),
        }
    }
    panic!("more than 10000 jobs");
}

#[test]
fn real_gearmand_queue_is_imported_in_priority_then_table_order() {
    let (_db_dir, db) = temp_db("gearmand");
    gearmand_queue(
        &db,
        &[
            ("g1", ""),
            ("h1", "-I"),
            ("g2", ""),
            ("l1", "-L"),
            ("g3", ""),
            ("h2", "-I"),
        ],
    );
    assert_eq!(count(&db, "gearman_queue"), 6, "gearmand stored the jobs");
    // A copy to serve with gearmand-rs directly, the way an operator switches.
    let served = db.with_file_name("served.db");
    std::fs::copy(&db, &served).unwrap();

    let order = ["h1", "h2", "g1", "g2", "g3", "l1"];
    let (store, jobs) = sqlite::open(&SqliteConfig::new(&db)).unwrap();
    let uniques: Vec<_> = jobs
        .iter()
        .map(|j| String::from_utf8_lossy(&j.unique).into_owned())
        .collect();
    assert_eq!(uniques, order);
    for j in &jobs {
        assert_eq!(j.function, "legacy");
        assert_eq!(
            j.data,
            format!("data-{}", String::from_utf8_lossy(&j.unique))
        );
        assert_eq!(j.when, None);
        assert_eq!(j.reducer, None);
    }
    assert_eq!(jobs[0].priority, Priority::High);
    assert_eq!(jobs[5].priority, Priority::Low);
    store.close();
    assert_eq!(count(&db, "gearman_queue"), -1, "gearmand's table is gone");
    assert_eq!(
        count(&db, "gearman_queue_imported_by_gearmand_rs"),
        6,
        "kept aside"
    );

    // Opening again does not import twice.
    let (store, again) = sqlite::open(&SqliteConfig::new(&db)).unwrap();
    assert_eq!(again, jobs);
    store.close();

    let server = Server::start(&[
        "-q",
        "libsqlite3",
        "--libsqlite3-db",
        &served.to_string_lossy(),
    ]);
    assert_eq!(drain(&server, "legacy"), order);
}

#[test]
fn old_table_layout_and_custom_table_name_are_imported() {
    let (_db_dir, db) = temp_db("old-layout");
    let conn = Connection::open(&db).unwrap();
    // gearmand before when_to_run, under --libsqlite3-table my_queue; an earlier import's
    // copy already sits under the aside name and must survive.
    conn.execute_batch(
        "CREATE TABLE my_queue (unique_key TEXT, function_name TEXT, priority INTEGER, data BLOB,
                                PRIMARY KEY (unique_key, function_name));
         INSERT INTO my_queue VALUES ('a', 'f', 1, 'text data');
         INSERT INTO my_queue VALUES ('b', 'f', 2, X'00FF');
         INSERT INTO my_queue VALUES ('c', 'f', NULL, NULL);
         INSERT INTO my_queue VALUES ('d', 'f', 0, 'high');
         CREATE TABLE my_queue_imported_by_gearmand_rs (keep TEXT);
         INSERT INTO my_queue_imported_by_gearmand_rs VALUES ('earlier');",
    )
    .unwrap();
    drop(conn);
    let cfg = SqliteConfig {
        gearmand_table: "my_queue".into(),
        ..SqliteConfig::new(&db)
    };
    let (store, jobs) = sqlite::open(&cfg).unwrap();
    store.close();
    let got: Vec<_> = jobs
        .iter()
        .map(|j| (j.unique.clone(), j.priority, j.data.clone()))
        .collect();
    assert_eq!(
        got,
        [
            (Bytes::from("d"), Priority::High, Bytes::from("high")),
            (Bytes::from("a"), Priority::Normal, Bytes::from("text data")),
            (Bytes::from("c"), Priority::Normal, Bytes::new()),
            (
                Bytes::from("b"),
                Priority::Low,
                Bytes::from(vec![0u8, 0xff])
            ),
        ]
    );
    assert_eq!(
        count(&db, "my_queue_imported_by_gearmand_rs"),
        1,
        "earlier copy kept"
    );
    assert_eq!(count(&db, "my_queue_imported_by_gearmand_rs_2"), 4);
}

#[test]
fn imported_jobs_are_numbered_past_the_keys_of_dead_letters() {
    let (_db_dir, db) = temp_db("past-extras");
    let (store, _) = sqlite::open(&SqliteConfig::new(&db)).unwrap();
    store.close();
    // Dead letters of jobs 1-3 (their job rows are gone), then a gearmand table appears
    // (gearmand run again on the file after a rollback).
    let conn = Connection::open(&db).unwrap();
    conn.execute_batch(
        "INSERT INTO gearmand_rs_extras VALUES (1, 1, X'00'), (1, 2, X'00'), (1, 3, X'00');
         CREATE TABLE gearman_queue (unique_key TEXT, function_name TEXT, priority INTEGER,
                                     data BLOB, when_to_run INTEGER);
         INSERT INTO gearman_queue VALUES ('u1', 'f', 1, 'a', 0), ('u2', 'f', 1, 'b', 0);",
    )
    .unwrap();
    drop(conn);
    let (store, jobs) = sqlite::open(&SqliteConfig::new(&db)).unwrap();
    store.close();
    let ids: Vec<u64> = jobs.iter().map(|j| j.durable_id).collect();
    assert_eq!(ids, [4, 5], "imported jobs took the keys of dead letters");
}
