//! gearman-bench when a run cannot finish: the tool itself is killed, or the counts asked
//! for are absurd.

use gearman_tests::{gearmand_rs_binary, run, ServerProcess};
use serde_json::Value;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BENCH: &str = env!("CARGO_BIN_EXE_gearman-bench");

/// Far more jobs than the test lets run: the run is always cut short.
const ENDLESS: &str = "100000000";

fn json(stdout: &str) -> Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

fn kill(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill {signal} {pid}");
}

/// The pids of `pid`'s children (every thread's).
fn children(pid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten();
    for task in tasks.flatten() {
        let list = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        found.extend(
            list.split_whitespace()
                .filter_map(|c| c.parse::<u32>().ok()),
        );
    }
    found
}

/// Whether `pid` still runs (a zombie has exited).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let state = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .next()?
                .to_owned();
            Some(state != "Z" && state != "X")
        })
        .unwrap_or(false)
}

#[test]
fn compare_servers_do_not_outlive_a_killed_tool() {
    let ours = gearmand_rs_binary();
    // No pipes: a server left behind would hold them open, and reading them would hang.
    let mut bench = Command::new(BENCH)
        .args(["--compare", "--ours", ours.to_str().unwrap()])
        .args(["-c", "2", "-w", "2", "-n", ENDLESS])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start gearman-bench");
    let deadline = Instant::now() + Duration::from_secs(20);
    let server = loop {
        if let Some(&pid) = children(bench.id()).first() {
            break pid;
        }
        assert!(Instant::now() < deadline, "--compare started no server");
        std::thread::sleep(Duration::from_millis(20));
    };
    kill(bench.id(), "-KILL");
    bench.wait().expect("reap gearman-bench");
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(server) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let left = alive(server);
    if left {
        // Not ours to leave behind, even when the test fails.
        kill(server, "-KILL");
    }
    assert!(!left, "server {server} outlived the killed gearman-bench");
}

/// Counts far beyond what a run can use are capped or refused, never a panic or an
/// allocation the size of the number given.
#[test]
fn absurd_counts_are_capped_or_refused() {
    let server = ServerProcess::start(&gearmand_rs_binary(), &[]);
    let port = server.port.to_string();
    let huge = u64::MAX.to_string();
    let capped: &[&[&str]] = &[
        &["--window", &huge],
        &["-m", "batch", "-b", &huge],
        &["-m", "pipe", "--grabs", &huge, "--window", &huge],
        &["--timeout", &huge],
    ];
    for case in capped {
        let args = [
            &["-p", &port, "-c", "2", "-w", "2", "-n", "10", "--json"][..],
            case,
        ]
        .concat();
        let out = run(BENCH, &args, b"", Duration::from_secs(60));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{case:?}: {}\n{stderr}", out.status);
        let report = json(&String::from_utf8_lossy(&out.stdout));
        assert_eq!(report["completed"], 20, "{case:?}: {report}");
    }
    let refused: &[(&[&str], &str)] = &[
        (&["-n", &huge, "-c", "2"], "too large"),
        (&["-s", "100000000"], "--size 100000000"),
    ];
    for (case, message) in refused {
        let args = [&["-p", &port][..], case].concat();
        let out = run(BENCH, &args, b"", Duration::from_secs(60));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{case:?}: {stderr}");
        assert!(stderr.contains(message), "{case:?}: {stderr}");
    }
}
