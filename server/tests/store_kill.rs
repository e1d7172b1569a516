//! Crash durability of the store alone: a child process inserts from several threads and
//! prints each acknowledgement; it is killed with SIGKILL mid-stream, and every job it saw
//! acknowledged must be in the file, intact.

use bytes::Bytes;
use gearman_core::proto::Priority;
use gearman_core::server::JobRecord;
use gearman_server::store::sqlite::{self, SqliteConfig};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// Set (to the queue file) only in the child process.
const CHILD_DB: &str = "GEARMAND_RS_STORE_KILL_CHILD_DB";
const CHILD_TEST: &str = "child_inserts_until_killed";
const THREADS: u64 = 4;
const PER_THREAD: u64 = 50_000;
/// Unacknowledged inserts one child thread keeps in flight, like that many clients.
const WINDOW: usize = 32;

fn record(id: u64) -> JobRecord {
    JobRecord {
        durable_id: id,
        function: Bytes::from_static(b"crash"),
        unique: if id % 2 == 0 {
            Bytes::new()
        } else {
            Bytes::from(format!("u{id}"))
        },
        priority: Priority::ALL[(id % 3) as usize],
        data: Bytes::from(format!("payload of job {id}").repeat(4)),
        when: None,
        reducer: None,
    }
}

/// The child: runs only when started by the parent test with `CHILD_DB` set.
#[test]
#[ignore = "child process of acknowledged_inserts_survive_sigkill"]
fn child_inserts_until_killed() {
    let Some(db) = std::env::var_os(CHILD_DB) else {
        return;
    };
    let (store, _) = sqlite::open(&SqliteConfig::new(db)).expect("child opens the store");
    let store = Arc::new(store);
    let stdout = Arc::new(Mutex::new(std::io::stdout()));
    let deadline = Instant::now() + Duration::from_secs(60);
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (store, stdout) = (store.clone(), stdout.clone());
            std::thread::spawn(move || {
                let (tx, rx) = mpsc::channel::<()>();
                let mut in_flight = 0;
                for i in 1..=PER_THREAD {
                    if Instant::now() > deadline {
                        return;
                    }
                    if in_flight == WINDOW {
                        if rx.recv().is_err() {
                            return;
                        }
                        in_flight -= 1;
                    }
                    let id = t * PER_THREAD + i;
                    let (tx, stdout) = (tx.clone(), stdout.clone());
                    store.insert(
                        record(id),
                        Box::new(move |result| {
                            if result.is_ok() {
                                // Printed only now: the parent counts these lines.
                                let mut out = stdout.lock().unwrap();
                                let _ = writeln!(out, "acked {id}");
                                let _ = out.flush();
                            }
                            let _ = tx.send(());
                        }),
                    );
                    in_flight += 1;
                }
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
}

#[test]
fn acknowledged_inserts_survive_sigkill() {
    // Kept to the end: the killed child's file is reopened below.
    let dir = gearman_tests::temp_dir("store-kill");
    let db = dir.path().join("queue.db");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            CHILD_TEST,
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DB, &db)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(id) = line
                .strip_prefix("acked ")
                .and_then(|n| n.parse::<u64>().ok())
            {
                let _ = tx.send(id);
            }
        }
    });
    let mut acked = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.len() < 5_000 {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(id) => {
                acked.insert(id);
            }
            Err(_) => panic!("only {} acknowledgements within 60 s", acked.len()),
        }
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "the child must still be inserting"
    );
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(9), "killed, not exited: {status:?}");
    reader.join().unwrap();
    acked.extend(rx.try_iter());
    assert!(
        (acked.len() as u64) < THREADS * PER_THREAD,
        "the kill must land mid-stream"
    );

    let (store, jobs) = sqlite::open(&SqliteConfig::new(&db)).unwrap();
    store.close();
    let stored: BTreeSet<u64> = jobs.iter().map(|j| j.durable_id).collect();
    let lost: Vec<_> = acked.difference(&stored).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged insert(s) lost, e.g. {:?}",
        lost.len(),
        lost.first()
    );
    for job in &jobs {
        assert_eq!(*job, record(job.durable_id), "stored intact");
    }
    eprintln!(
        "SIGKILL after {} acknowledged inserts; {} rows in the file",
        acked.len(),
        jobs.len()
    );
}
