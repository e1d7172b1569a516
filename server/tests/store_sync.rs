//! Power-loss safety of `-q libsqlite3` under its default `--libsqlite3-sync full`, seen in
//! the server's system calls (strace): every JOB_CREATED is written to its client only
//! after an fsync of the write-ahead log that began after the job's commit wrote the log
//! and ended before the reply. (A `kill -9` test cannot see a missing fsync: the page cache
//! survives the process.) The same check run against `--libsqlite3-sync normal`, which does
//! not sync each commit, must find replies without such an fsync. And the syncs must not
//! read the log's timestamps, which would make each one write the log's inode as well.

mod common;

use common::BINARY;
use gearman_core::proto::{Priority, SubmitMode};
use gearman_tests::{admin_pid, free_port, Conn};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const JOBS: usize = 20;

/// gearmand-rs under strace, writing the trace to `log`; killed (both) on drop.
struct Traced {
    strace: Child,
    server_pid: Option<u32>,
    port: u16,
}

impl Traced {
    fn start(log: &Path, db: &Path, sync: &str) -> Traced {
        let port = free_port();
        let strace = Command::new("strace")
            .args(["-f", "-qq", "-y", "-s", "16", "-o"])
            .arg(log)
            .args([
                "-e",
                "trace=pwrite64,write,writev,sendto,sendmsg,fsync,fdatasync,statx,newfstatat,fstat",
                "--",
                BINARY,
                "-L",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "--log-file",
                "none",
                "-q",
                "libsqlite3",
                "--libsqlite3-sync",
                sync,
                "--libsqlite3-db",
            ])
            .arg(db)
            .stdin(Stdio::null())
            .spawn()
            .expect("strace is needed for this test (.ci/install-10-tools.sh installs it)");
        let mut traced = Traced {
            strace,
            server_pid: None,
            port,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while traced.server_pid.is_none() {
            if let Ok(Some(status)) = traced.strace.try_wait() {
                panic!("strace or the server exited with {status} before listening");
            }
            assert!(Instant::now() < deadline, "no server on {port} within 30 s");
            traced.server_pid = admin_pid(port);
            std::thread::sleep(Duration::from_millis(50));
        }
        traced
    }

    /// Kills the server; strace ends with it, having written the whole trace.
    fn stop(mut self) {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.strace.try_wait().ok().flatten().is_none() {
            assert!(Instant::now() < deadline, "strace did not end");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill(&mut self) {
        if let Some(pid) = self.server_pid.take() {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    }
}

impl Drop for Traced {
    fn drop(&mut self) {
        self.kill();
        let _ = self.strace.kill();
        let _ = self.strace.wait();
    }
}

/// One system call of the trace: its kind, and the lines it started and ended on.
#[derive(Debug)]
struct Call {
    kind: Kind,
    start: usize,
    end: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A write to the write-ahead log.
    LogWrite,
    /// An fsync or fdatasync of the write-ahead log.
    LogSync,
    /// A write of a JOB_CREATED packet to a socket.
    JobCreated,
    Other,
}

fn kind(call: &str) -> Kind {
    let name = call.split('(').next().unwrap_or("");
    let on_log = call.contains("-wal>");
    match name {
        "pwrite64" if on_log => Kind::LogWrite,
        "fsync" | "fdatasync" if on_log => Kind::LogSync,
        // "\0RES" then packet type 8 (JOB_CREATED), as strace escapes the bytes.
        "write" | "writev" | "sendto" | "sendmsg" if call.contains(r#"\0RES\0\0\0\10"#) => {
            Kind::JobCreated
        }
        _ => Kind::Other,
    }
}

/// The calls of an `strace -f` trace, joining `<unfinished ...>` and `<... resumed>` lines.
fn calls(trace: &str) -> Vec<Call> {
    let mut done = Vec::new();
    let mut open: HashMap<&str, (Kind, usize)> = HashMap::new();
    for (i, line) in trace.lines().enumerate() {
        let Some((pid, call)) = line.split_once(char::is_whitespace) else {
            continue;
        };
        let call = call.trim_start();
        if call.starts_with("<...") {
            if let Some((kind, start)) = open.remove(pid) {
                done.push(Call {
                    kind,
                    start,
                    end: i,
                });
            }
        } else if call.ends_with("<unfinished ...>") {
            open.insert(pid, (kind(call), i));
        } else {
            done.push(Call {
                kind: kind(call),
                start: i,
                end: i,
            });
        }
    }
    done.sort_by_key(|c| c.start);
    done
}

/// JOB_CREATED replies sent without an fsync of the log that began after the last log
/// write before the reply and ended before it; and how many replies there were.
fn unsynced_replies(trace: &str) -> (usize, usize) {
    let calls = calls(trace);
    let mut replies = 0;
    let mut unsynced = 0;
    for reply in calls.iter().filter(|c| c.kind == Kind::JobCreated) {
        replies += 1;
        let last_write = calls
            .iter()
            .filter(|c| c.kind == Kind::LogWrite && c.end < reply.start)
            .map(|c| c.end)
            .max()
            .unwrap_or(0);
        let synced = calls
            .iter()
            .any(|c| c.kind == Kind::LogSync && c.start > last_write && c.end < reply.start);
        if !synced {
            unsynced += 1;
        }
    }
    (replies, unsynced)
}

/// Submits [`JOBS`] background jobs one after the other (each waits for JOB_CREATED) to a
/// traced server with `--libsqlite3-sync sync`; returns the trace. `test` names the
/// directory, since the tests run at once.
fn traced_submissions(sync: &str, test: &str) -> String {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("store-sync-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("trace");
    let server = Traced::start(&log, &dir.join("q.db"), sync);
    let mut client = Conn::new(server.port);
    for _ in 0..JOBS {
        client.submit("sync_fn", SubmitMode::Background(Priority::Normal));
    }
    drop(client);
    server.stop();
    let trace = std::fs::read_to_string(&log).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    trace
}

#[test]
fn every_job_created_follows_an_fsync_of_its_commit() {
    let trace = traced_submissions("full", "covered");
    let (replies, unsynced) = unsynced_replies(&trace);
    assert_eq!(replies, JOBS, "JOB_CREATED replies in the trace");
    assert_eq!(
        unsynced, 0,
        "{unsynced} of {replies} JOB_CREATED went out before their commit was fsynced"
    );
}

#[test]
fn the_check_sees_replies_that_no_fsync_covered() {
    // --libsqlite3-sync normal syncs only at checkpoints: its replies are not covered.
    let trace = traced_submissions("normal", "uncovered");
    let (replies, unsynced) = unsynced_replies(&trace);
    assert_eq!(replies, JOBS, "JOB_CREATED replies in the trace");
    assert!(unsynced >= JOBS - 2, "{unsynced} of {replies} unsynced");
}

/// A stat of the write-ahead log that reads more than its inode number: on Linux 6.13+ a
/// read of the change time makes the next write stamp a fine-grained time, and on this
/// machine's ext4 every fdatasync after such a write wrote the log's inode block too.
fn reads_log_times(call: &str) -> bool {
    let name = call.split('(').next().unwrap_or("");
    call.contains("-wal")
        && match name {
            // The mask is the fourth argument; a call another thread interrupted ends
            // its line after it.
            "statx" => !call.contains(", STATX_INO,") && !call.contains(", STATX_INO <unfinished"),
            "newfstatat" | "fstat" => true,
            _ => false,
        }
}

#[test]
fn syncs_do_not_read_the_logs_timestamps() {
    let trace = traced_submissions("full", "timestamps");
    let lines: Vec<&str> = trace
        .lines()
        .filter_map(|l| {
            l.split_once(char::is_whitespace)
                .map(|(_, c)| c.trim_start())
        })
        .collect();
    // From the first reply on: SQLite looks at the log when it opens it, before any job.
    let first_reply = lines
        .iter()
        .position(|c| kind(c) == Kind::JobCreated)
        .expect("no JOB_CREATED in the trace");
    let syncs = lines[first_reply..]
        .iter()
        .filter(|c| kind(c) == Kind::LogSync)
        .count();
    assert!(
        syncs >= JOBS / 2,
        "only {syncs} syncs of the log for {JOBS} jobs"
    );
    let reads: Vec<&&str> = lines[first_reply..]
        .iter()
        .filter(|c| reads_log_times(c))
        .collect();
    assert!(
        reads.is_empty(),
        "{} stats of the log read its timestamps, first: {}",
        reads.len(),
        reads[0]
    );
}
