//! gearman-bench when a run cannot finish: the server dies, the tool is interrupted, the
//! server never answers, the tool itself is killed, or the counts asked for are absurd.
//! The run ends within its bounds, says why, and reports what was done until then.

mod common;

use gearman_tests::{gearmand_rs_binary, run, wait_for_workers, ServerProcess};
use serde_json::Value;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const BENCH: &str = env!("CARGO_BIN_EXE_gearman-bench");

/// Far more jobs than the test lets run: the run is always cut short.
const ENDLESS: &str = "100000000";

fn spawn_bench(args: &[&str]) -> Child {
    Command::new(BENCH)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start gearman-bench")
}

/// Waits (bounded) for the tool to exit; returns its status and stdout.
fn finish(mut bench: Child, limit: Duration) -> (ExitStatus, String) {
    let deadline = Instant::now() + limit;
    while bench.try_wait().expect("try_wait").is_none() {
        if Instant::now() > deadline {
            let _ = bench.kill();
            let out = bench.wait_with_output().expect("output");
            panic!(
                "gearman-bench still running after {limit:?}\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = bench.wait_with_output().expect("output");
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn json(stdout: &str) -> Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

/// A report cut short: some jobs done (and only those in the latencies), the rest counted
/// as never answered, and why it stopped.
fn check_partial(report: &Value, why: &str) {
    let n = |k: &str| {
        report[k]
            .as_u64()
            .unwrap_or_else(|| panic!("{k}: {report}"))
    };
    assert!(n("completed") > 0, "nothing done before the stop: {report}");
    assert!(n("completed") < n("jobs"), "{report}");
    assert!(n("unanswered") > 0, "{report}");
    assert_eq!(n("completed") + n("failures"), n("jobs"), "{report}");
    assert!(n("failures") >= n("unanswered"), "{report}");
    let error = report["error"].as_str().unwrap_or_default();
    assert!(
        error.contains(why),
        "error {error:?}, wanted {why:?}: {report}"
    );
    common::assert_percentiles_in_order(report);
}

fn kill(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill {signal} {pid}");
}

/// The load is running: its workers are registered, and a moment has passed.
fn load_running(server: &ServerProcess) {
    wait_for_workers(server, "gearman_bench_echo", 2);
    std::thread::sleep(Duration::from_millis(500));
}

#[test]
fn a_server_killed_mid_run_leaves_a_report_of_what_was_done() {
    for mut server in [
        ServerProcess::start(&gearmand_rs_binary(), &[]),
        ServerProcess::gearmand(&[]),
    ] {
        let port = server.port.to_string();
        let bench = spawn_bench(&["-p", &port, "-c", "2", "-w", "2", "-n", ENDLESS, "--json"]);
        load_running(&server);
        server.child.kill().expect("kill the server");
        let (status, stdout) = finish(bench, Duration::from_secs(30));
        assert_eq!(status.code(), Some(1), "{stdout}");
        let report = json(&stdout);
        // EOF, or a reset where the server died with bytes unread.
        let error = report["error"].as_str().unwrap_or_default().to_owned();
        let lost = ["closed the connection", "reset by peer", "Broken pipe"];
        assert!(lost.iter().any(|l| error.contains(l)), "{report}");
        check_partial(&report, &error);
    }
}

#[test]
fn sigint_stops_the_run_and_reports_it() {
    let server = ServerProcess::start(&gearmand_rs_binary(), &[]);
    let port = server.port.to_string();
    for mode in ["fg", "pipe"] {
        let args = ["-p", &port, "-m", mode, "-c", "2", "-w", "2", "-n", ENDLESS];
        let bench = spawn_bench(&[&args[..], &["--json"]].concat());
        load_running(&server);
        kill(bench.id(), "-INT");
        let (status, stdout) = finish(bench, Duration::from_secs(30));
        assert_eq!(status.code(), Some(130), "{stdout}");
        check_partial(&json(&stdout), "interrupted (SIGINT)");
    }
}

/// A server that accepts and never speaks: the TLS handshake never ends, and --timeout
/// ends the run.
#[test]
fn timeout_bounds_a_handshake_that_never_ends() {
    use gearman_tests::certs::TestPki;
    let pki = TestPki::generate("bench-silent");
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port().to_string();
    let ca = pki.ca.display().to_string();
    let started = Instant::now();
    let bench = spawn_bench(&[
        "-p",
        &port,
        "-n",
        "5",
        "--ssl",
        "--ssl-ca-file",
        &ca,
        "--timeout",
        "2",
        "--json",
    ]);
    let (status, stdout) = finish(bench, Duration::from_secs(30));
    assert_eq!(status.code(), Some(1), "{stdout}");
    let report = json(&stdout);
    assert!(
        report["error"]
            .as_str()
            .unwrap()
            .contains("timed out after 2s"),
        "{report}"
    );
    assert_eq!(report["completed"], 0, "{report}");
    assert!(started.elapsed() < Duration::from_secs(20));
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

/// A packet over the server's size limit: the server closes the connection (before or
/// while the tool writes), and the error says so and names the likely reason, not a bare
/// "Broken pipe".
#[test]
fn a_packet_over_the_servers_limit_is_named_as_the_reason() {
    let server = ServerProcess::start(&gearmand_rs_binary(), &["--max-packet-size", "1000"]);
    let port = server.port.to_string();
    // Small enough to sit in the socket buffers (the close is read), and too big for
    // them (the write fails).
    for size in ["5000", "8000000"] {
        let out = run(
            BENCH,
            &[
                "-p",
                &port,
                "-m",
                "fg",
                "-c",
                "1",
                "-w",
                "1",
                "-n",
                "3",
                "-s",
                size,
                "--timeout",
                "20",
                "--json",
            ],
            b"",
            Duration::from_secs(60),
        );
        let report = json(&String::from_utf8_lossy(&out.stdout));
        assert_eq!(out.status.code(), Some(1), "{report}");
        let error = report["error"].as_str().unwrap_or_default();
        // gearmand-rs says why in an ERROR before it closes; when the tool's write fails
        // before it reads that, the tool names the likely reason itself.
        let named_by_server = error.contains("ERROR PACKET_TOO_LARGE");
        let named_by_tool = error.contains("the server closed the connection")
            && error.contains("--max-packet-size");
        assert!(
            (named_by_server || named_by_tool) && !error.starts_with("Broken pipe"),
            "{size} B: {error}"
        );
    }
}
