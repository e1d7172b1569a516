//! gearman-bench runs every mode briefly against gearmand-rs and gearmand 1.1.20 and
//! reports the counts it should (not timed: only counts and sanity of the figures).

mod common;

use gearman_tests::{gearmand_rs_binary, run, ServerProcess, GEARMAND_C};
use serde_json::Value;
use std::time::Duration;

const BENCH: &str = env!("CARGO_BIN_EXE_gearman-bench");

fn bench(args: &[&str]) -> Value {
    let out = run(BENCH, args, b"", Duration::from_secs(60));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "gearman-bench {args:?} failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

/// Checks one report: every job answered, none failed, figures present and positive.
fn check(report: &Value, mode: &str, jobs: u64) {
    assert_eq!(report["mode"], mode, "{report}");
    assert_eq!(report["jobs"], jobs, "{report}");
    assert_eq!(report["completed"], jobs, "{report}");
    assert_eq!(report["failures"], 0, "{report}");
    assert!(report["rate"].as_f64().unwrap() > 0.0, "{report}");
    common::assert_percentiles_in_order(report);
    if mode == "bg" {
        assert_eq!(report["drain"]["drained"], jobs, "{report}");
        assert!(report["drain"]["rate"].as_f64().unwrap() > 0.0, "{report}");
    } else {
        assert!(report.get("drain").is_none(), "{report}");
    }
}

fn every_mode_against(server: &ServerProcess) {
    let port = server.port.to_string();
    for mode in ["fg", "pipe", "batch", "bg"] {
        let report = bench(&[
            "-p",
            &port,
            "-m",
            mode,
            "-c",
            "3",
            "-w",
            "2",
            "-n",
            "150",
            "-s",
            "64,3000",
            "-b",
            "40",
            "--window",
            "8",
            "--grabs",
            "4",
            "--json",
            "--timeout",
            "30",
        ]);
        check(&report, mode, 450);
    }
}

#[test]
fn every_mode_against_gearmand_rs() {
    every_mode_against(&ServerProcess::start(&gearmand_rs_binary(), &[]));
}

#[test]
fn every_mode_against_gearmand() {
    every_mode_against(&ServerProcess::gearmand(&[]));
}

#[test]
fn compare_runs_both_servers_and_gives_ratios() {
    let ours = gearmand_rs_binary();
    let report = bench(&[
        "--compare",
        "-m",
        "bg",
        "-c",
        "2",
        "-w",
        "2",
        "-n",
        "100",
        "--json",
        "--timeout",
        "30",
        "--gearmand",
        GEARMAND_C,
        "--ours",
        ours.to_str().unwrap(),
    ]);
    check(&report["reference"], "bg", 200);
    check(&report["ours"], "bg", 200);
    assert_eq!(report["reference"]["server"], "gearmand");
    assert_eq!(report["ours"]["server"], "gearmand-rs");
    for figure in [
        "rate",
        "drain_rate",
        "p50_us",
        "server_cpu_us",
        "tool_cpu_us",
    ] {
        assert!(report["ratio"][figure].as_f64().unwrap() > 0.0, "{report}");
    }
    // Each server's CPU per job is its own: both spent some, and neither's reading is the
    // tool's (which also ran the load on the other).
    for side in ["reference", "ours"] {
        let server = report[side]["server_cpu_us"].as_f64().unwrap();
        let tool = report[side]["tool_cpu_us"].as_f64().unwrap();
        assert!(server > 0.0 && tool > 0.0, "{report}");
    }
}

#[test]
fn repeated_compare_gives_every_run_and_the_median_ratios() {
    let ours = gearmand_rs_binary();
    let report = bench(&[
        "--compare",
        "--repeat",
        "3",
        "-m",
        "pipe",
        "-c",
        "2",
        "-w",
        "2",
        "-n",
        "200",
        "--json",
        "--timeout",
        "30",
        "--gearmand",
        GEARMAND_C,
        "--ours",
        ours.to_str().unwrap(),
    ]);
    let runs = report["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 3, "{report}");
    for run in runs {
        check(&run["ours"], "pipe", 400);
        check(&run["reference"], "pipe", 400);
    }
    // The median of three is one of the three.
    let median = report["median_ratio"]["rate"]
        .as_f64()
        .expect("median rate ratio");
    assert!(
        runs.iter()
            .any(|r| r["ratio"]["rate"].as_f64() == Some(median)),
        "{report}"
    );
}

#[test]
fn server_pid_reports_that_servers_cpu_per_job() {
    let server = ServerProcess::start(&gearmand_rs_binary(), &[]);
    let port = server.port.to_string();
    let pid = server.child.id().to_string();
    let with = bench(&["-p", &port, "-n", "300", "--server-pid", &pid, "--json"]);
    check(&with, "fg", 1200);
    assert!(with["server_cpu_us"].as_f64().unwrap() > 0.0, "{with}");
    let without = bench(&["-p", &port, "-n", "300", "--json"]);
    assert!(without.get("server_cpu_us").is_none(), "{without}");
}

#[test]
fn a_dead_server_is_an_error_not_a_hang() {
    let port = gearman_tests::free_port().to_string();
    let out = run(
        BENCH,
        &["-p", &port, "-n", "10", "--timeout", "10"],
        b"",
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("error:"), "{stdout}");
}

/// `--ssl`: fg and connect (a full handshake per connection) against gearmand-rs --ssl
/// with a generated PKI, every job and connection answered; without the CA, the load fails
/// with the certificate error rather than running in plaintext.
#[test]
fn ssl_fg_and_connect_against_gearmand_rs() {
    use gearman_tests::certs::TestPki;
    use gearman_tests::tls::{client_tls, Probe, TlsServer};
    let pki = TestPki::generate("bench");
    let tls = client_tls(&pki.ca, None);
    let server = TlsServer::start(&gearmand_rs_binary(), &pki, None, &[], Probe::Tls(&tls));
    let (port, ca) = (server.port().to_string(), pki.ca.display().to_string());
    for (mode, n) in [("fg", "50"), ("connect", "20")] {
        let report = bench(&[
            "-p",
            &port,
            "-m",
            mode,
            "-c",
            "2",
            "-w",
            "2",
            "-n",
            n,
            "--ssl",
            "--ssl-ca-file",
            &ca,
            "--json",
            "--timeout",
            "30",
        ]);
        check(&report, mode, 2 * n.parse::<u64>().unwrap());
    }
    let out = run(
        BENCH,
        &[
            "-p",
            &port,
            "-n",
            "5",
            "--ssl",
            "--ssl-ca-file",
            &pki.other_ca().display().to_string(),
            "--timeout",
            "10",
        ],
        b"",
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("UnknownIssuer"), "{stdout}");
}

/// `connect` measures connections and ECHOs only: it starts no worker (gearmand keeps a
/// function some worker registered in `status` after the worker left, so one would show),
/// and its header names connections, not workers or payloads.
#[test]
fn connect_starts_no_workers_and_says_what_it_measured() {
    let server = ServerProcess::gearmand(&[]);
    let port = server.port.to_string();
    let args = [
        "-p",
        &port,
        "-m",
        "connect",
        "-c",
        "2",
        "-w",
        "3",
        "-n",
        "20",
        "-f",
        "connect_mode_function",
        "--timeout",
        "30",
    ];
    let out = run(BENCH, &args, b"", Duration::from_secs(60));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}: {stdout}", out.status);
    let header = stdout.lines().next().unwrap_or_default();
    assert_eq!(
        header,
        format!("127.0.0.1:{port}: connect load, 2 clients x 20 connections (one ECHO each)"),
        "{stdout}"
    );
    assert!(stdout.contains("40 of 40 connections done"), "{stdout}");
    let status = server.conn().admin("status\n");
    assert!(
        !status.contains("connect_mode_function"),
        "a worker registered: {status}"
    );
    let report = bench(&[&args[..], &["--json"]].concat());
    assert_eq!(report["workers"], 0, "{report}");
}
