//! The durable queue at the library level: what goes in comes back in priority then
//! arrival order, concurrent submitters share commits, acknowledgements follow the commit,
//! a failed commit is reported, and a file the store cannot vouch for is refused at open.

use bytes::Bytes;
use gearman_core::proto::Priority;
use gearman_core::server::JobRecord;
use gearman_server::store::sqlite::{self, SqliteConfig, SqliteError, SyncMode};
use gearman_server::store::StoreHandle;
use gearman_tests::TempDir;
use rusqlite::{Connection, OpenFlags};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A fresh directory for one test; returns the queue file path inside it.
/// A fresh `queue.db` path in a throwaway directory, removed when the [`TempDir`] is dropped
/// (keep it alive until the server using it is killed).
fn temp_db(name: &str) -> (TempDir, PathBuf) {
    let dir = gearman_tests::temp_dir(&format!("store-{name}"));
    let db = dir.path().join("queue.db");
    (dir, db)
}

fn record(id: u64, priority: Priority, unique: &str) -> JobRecord {
    JobRecord {
        durable_id: id,
        function: Bytes::from(format!("f{}", id % 2)),
        unique: Bytes::copy_from_slice(unique.as_bytes()),
        priority,
        data: Bytes::from(format!("job {id}\0binary\u{1}")),
        when: (id % 5 == 0).then_some(1_700_000_000 + id as i64),
        reducer: (id % 7 == 0).then(|| Bytes::from_static(b"reduce")),
    }
}

/// Inserts and waits for the acknowledgement.
fn insert_sync(store: &StoreHandle, rec: JobRecord) -> Result<(), String> {
    let (tx, rx) = mpsc::channel();
    store.insert(rec, Box::new(move |r| tx.send(r).unwrap()));
    rx.recv_timeout(Duration::from_secs(30))
        .expect("an acknowledgement within 30 s")
}

fn open_err(cfg: &SqliteConfig) -> SqliteError {
    match sqlite::open(cfg) {
        Ok((_, jobs)) => panic!(
            "{} opened with {} job(s); it must be refused",
            cfg.path.display(),
            jobs.len()
        ),
        Err(e) => e,
    }
}

#[test]
fn reopen_gives_every_field_back_in_priority_then_arrival_order() {
    let (_path_dir, path) = temp_db("order");
    let (store, jobs) = sqlite::open(&SqliteConfig::new(&path)).unwrap();
    assert!(jobs.is_empty());
    let priorities = [Priority::Low, Priority::Normal, Priority::High];
    // Several jobs share an empty unique and a function: each is its own row (gearmand
    // keeps only the last of them).
    let all: Vec<JobRecord> = (1..=30)
        .map(|id| {
            record(
                id,
                priorities[(id % 3) as usize],
                if id % 4 == 0 { "" } else { "u" },
            )
        })
        .collect();
    for r in &all {
        insert_sync(&store, r.clone()).unwrap();
    }
    for id in [3, 8, 12, 999] {
        store.remove(id);
    }
    store.close();

    let (store, jobs) = sqlite::open(&SqliteConfig::new(&path)).unwrap();
    let mut expected: Vec<JobRecord> = all
        .into_iter()
        .filter(|r| ![3, 8, 12].contains(&r.durable_id))
        .collect();
    expected.sort_by_key(|r| (r.priority, r.durable_id));
    assert_eq!(expected[0].priority, Priority::High);
    assert_eq!(jobs, expected);
    assert_eq!(
        jobs.iter().filter(|r| r.unique.is_empty()).count(),
        5,
        "every empty-unique job kept (4, 16, 20, 24, 28)"
    );
    store.close();
}

#[test]
fn concurrent_inserts_share_commits() {
    let (_path_dir, path) = temp_db("group");
    let (store, _) = sqlite::open(&SqliteConfig::new(&path)).unwrap();
    let store = Arc::new(store);
    let (tx, rx) = mpsc::channel();
    let threads: Vec<_> = (0..8u64)
        .map(|t| {
            let (store, tx) = (store.clone(), tx.clone());
            std::thread::spawn(move || {
                for i in 0..250u64 {
                    let tx = tx.clone();
                    let id = t * 1000 + i + 1;
                    store.insert(
                        record(id, Priority::Normal, &format!("u{id}")),
                        Box::new(move |r| tx.send(r).unwrap()),
                    );
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let acks: Vec<_> = (0..2000)
        .map(|_| rx.recv_timeout(Duration::from_secs(60)).unwrap())
        .collect();
    assert!(
        acks.iter().all(Result::is_ok),
        "{:?}",
        acks.iter().find(|a| a.is_err())
    );
    let commits = store.commits();
    assert!(commits >= 1);
    assert!(
        commits < 2000,
        "{commits} commits for 2000 inserts: no grouping"
    );
    eprintln!("2000 concurrent inserts in {commits} commits");
    Arc::try_unwrap(store).ok().unwrap().close();
    let (_, jobs) = sqlite::open(&SqliteConfig::new(&path)).unwrap();
    assert_eq!(jobs.len(), 2000);
}

#[test]
fn acknowledgement_comes_after_the_row_is_committed() {
    let (_path_dir, path) = temp_db("ack");
    let (store, _) = sqlite::open(&SqliteConfig::new(&path)).unwrap();
    let (tx, rx) = mpsc::channel();
    for id in 1..=20u64 {
        let (tx, path) = (tx.clone(), path.clone());
        store.insert(
            record(id, Priority::Normal, "u"),
            Box::new(move |result| {
                // Another connection must already see the row when the ack runs.
                let reader =
                    Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
                let seen: i64 = reader
                    .query_row(
                        "SELECT count(*) FROM gearmand_rs_jobs WHERE durable_id = ?1",
                        [id as i64],
                        |r| r.get(0),
                    )
                    .unwrap();
                tx.send((id, result, seen)).unwrap();
            }),
        );
    }
    for _ in 0..20 {
        let (id, result, seen) = rx.recv_timeout(Duration::from_secs(30)).unwrap();
        assert_eq!(result, Ok(()));
        assert_eq!(seen, 1, "job {id} acknowledged before it was committed");
    }
    store.close();
}

#[test]
fn failed_commit_is_acknowledged_as_an_error() {
    let (_path_dir, path) = temp_db("fail");
    let (store, _) = sqlite::open(&SqliteConfig::new(&path)).unwrap();
    insert_sync(&store, record(1, Priority::Normal, "a")).unwrap();
    let commits = store.commits();
    // Someone removes our table behind the store's back: the next commit fails.
    Connection::open(&path)
        .unwrap()
        .execute_batch("DROP TABLE gearmand_rs_jobs")
        .unwrap();
    let err = insert_sync(&store, record(2, Priority::Normal, "b")).unwrap_err();
    assert!(err.contains("gearmand_rs_jobs"), "{err}");
    assert!(err.contains(&*path.to_string_lossy()), "{err}");
    assert_eq!(store.commits(), commits, "a failed commit is not counted");
    store.close();
}

#[test]
fn normal_sync_mode_also_keeps_committed_jobs() {
    let (_path_dir, path) = temp_db("normal");
    let cfg = SqliteConfig {
        sync: SyncMode::Normal,
        ..SqliteConfig::new(&path)
    };
    let (store, _) = sqlite::open(&cfg).unwrap();
    let sync: i64 = Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA journal_mode", [], |r| r.get::<_, String>(0))
        .map(|m| i64::from(m == "wal"))
        .unwrap();
    assert_eq!(sync, 1, "the file is in WAL mode");
    for id in 1..=10 {
        insert_sync(&store, record(id, Priority::High, "")).unwrap();
    }
    store.close();
    let (_, jobs) = sqlite::open(&cfg).unwrap();
    assert_eq!(jobs.len(), 10);
}

#[test]
fn garbage_and_truncated_files_are_corrupt_not_empty() {
    let (_garbage_dir, garbage) = temp_db("garbage");
    std::fs::write(&garbage, vec![0x42u8; 8192]).unwrap();
    let err = open_err(&SqliteConfig::new(&garbage));
    assert!(matches!(err, SqliteError::Corrupt { .. }), "{err:?}");
    let line = err.to_string();
    assert!(
        line.contains(&*garbage.to_string_lossy()) && !line.contains('\n'),
        "{line}"
    );
    assert_eq!(
        std::fs::read(&garbage).unwrap(),
        vec![0x42u8; 8192],
        "left untouched"
    );

    // A real queue cut in half (a bad copy, a full disk during a backup).
    let (_cut_dir, cut) = temp_db("truncated");
    let (store, _) = sqlite::open(&SqliteConfig::new(&cut)).unwrap();
    let big = Bytes::from(vec![7u8; 4000]);
    for id in 1..=200 {
        let mut r = record(id, Priority::Normal, "u");
        r.data = big.clone();
        insert_sync(&store, r).unwrap();
    }
    store.close();
    let len = std::fs::metadata(&cut).unwrap().len();
    assert!(
        len > 400_000,
        "jobs were checkpointed into the file ({len} bytes)"
    );
    let file = std::fs::OpenOptions::new().write(true).open(&cut).unwrap();
    file.set_len(len / 2).unwrap();
    drop(file);
    let err = open_err(&SqliteConfig::new(&cut));
    assert!(matches!(err, SqliteError::Corrupt { .. }), "{err:?}");
}

#[test]
fn unexpected_schemas_are_refused() {
    let (_ours_dir, ours) = temp_db("schema-ours");
    Connection::open(&ours)
        .unwrap()
        .execute_batch("CREATE TABLE gearmand_rs_jobs (x TEXT)")
        .unwrap();
    let err = open_err(&SqliteConfig::new(&ours));
    assert!(
        matches!(&err, SqliteError::SchemaMismatch { table, .. } if table == "gearmand_rs_jobs"),
        "{err:?}"
    );

    let (_newer_dir, newer) = temp_db("schema-newer");
    sqlite::open(&SqliteConfig::new(&newer)).unwrap().0.close();
    Connection::open(&newer)
        .unwrap()
        .execute_batch("UPDATE gearmand_rs_meta SET value = 99 WHERE key = 'schema_version'")
        .unwrap();
    let err = open_err(&SqliteConfig::new(&newer));
    assert!(err.to_string().contains("version 99"), "{err}");

    let (_foreign_dir, foreign) = temp_db("schema-foreign");
    Connection::open(&foreign)
        .unwrap()
        .execute_batch("CREATE TABLE gearman_queue (id INTEGER, payload BLOB)")
        .unwrap();
    let err = open_err(&SqliteConfig::new(&foreign));
    assert!(
        matches!(&err, SqliteError::SchemaMismatch { table, .. } if table == "gearman_queue"),
        "{err:?}"
    );

    let (_own_dir, own) = temp_db("schema-own-name");
    let own_name = SqliteConfig {
        gearmand_table: "gearmand_rs_jobs".into(),
        ..SqliteConfig::new(own)
    };
    assert!(matches!(
        open_err(&own_name),
        SqliteError::SchemaMismatch { .. }
    ));
}

#[test]
fn missing_directory_and_directory_paths_are_unwritable() {
    let (_base_dir, base) = temp_db("paths");
    let missing = base.parent().unwrap().join("no-such-dir").join("q.db");
    let err = open_err(&SqliteConfig::new(&missing));
    assert!(matches!(err, SqliteError::Unwritable { .. }), "{err:?}");
    assert!(!missing.parent().unwrap().exists());

    let dir = base.parent().unwrap().to_path_buf();
    let err = open_err(&SqliteConfig::new(&dir));
    assert!(matches!(err, SqliteError::Unwritable { .. }), "{err:?}");
}

/// Runs gearmand-rs on `db` as a user without write access to what root created: as
/// `nobody` through setpriv when the tests run as root (root ignores permissions), as
/// ourselves otherwise (the caller then removes the write bits). Returns its exit status and
/// stderr; the server must exit by itself within 20 s.
fn start_without_write_access(db: &Path) -> (std::process::ExitStatus, String) {
    let binary = env!("CARGO_BIN_EXE_gearmand-rs");
    let args = [
        "-L",
        "127.0.0.1",
        "-p",
        "0",
        "-q",
        "libsqlite3",
        "--libsqlite3-db",
    ];
    let mut cmd = if is_root() {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", binary]);
        c
    } else {
        Command::new(binary)
    };
    let mut child = cmd
        .args(args)
        .arg(db)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "gearmand-rs started on {} without write access",
                db.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    (status, stderr)
}

fn is_root() -> bool {
    let out = Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn read_only_directory_and_file_are_refused_at_start() {
    // A directory we may not write: a new queue cannot be created there...
    let (_fresh_dir, fresh) = temp_db("ro-dir-new");
    let dir = fresh.parent().unwrap();
    set_mode(dir, if is_root() { 0o755 } else { 0o555 });
    let (status, stderr) = start_without_write_access(&fresh);
    set_mode(dir, 0o755);
    assert!(!status.success());
    assert!(
        stderr.starts_with("gearmand-rs: ") && stderr.contains("cannot be written"),
        "{stderr}"
    );
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");

    // ...nor an existing queue used (SQLite needs its -wal and -shm files beside it).
    let (_existing_dir, existing) = temp_db("ro-dir-existing");
    let (store, _) = sqlite::open(&SqliteConfig::new(&existing)).unwrap();
    insert_sync(&store, record(1, Priority::Normal, "u")).unwrap();
    store.close();
    let dir = existing.parent().unwrap();
    set_mode(&existing, 0o666);
    set_mode(dir, if is_root() { 0o755 } else { 0o555 });
    let (status, stderr) = start_without_write_access(&existing);
    set_mode(dir, 0o755);
    assert!(!status.success());
    assert!(stderr.contains("cannot be written"), "{stderr}");

    // A write-protected file in a writable directory (SQLite would quietly open it
    // read-only and fail at the first submission).
    let (_protected_dir, protected) = temp_db("ro-file");
    sqlite::open(&SqliteConfig::new(&protected))
        .unwrap()
        .0
        .close();
    set_mode(&protected, 0o444);
    set_mode(protected.parent().unwrap(), 0o777);
    let (status, stderr) = start_without_write_access(&protected);
    set_mode(protected.parent().unwrap(), 0o755);
    assert!(!status.success());
    assert!(stderr.contains("write-protected"), "{stderr}");
}
