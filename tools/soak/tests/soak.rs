//! The CI soak: 75 s of mixed load against a gearmand-rs on a durable queue with every
//! fault kind injected at least once (a fault every 1.5 s, the nine kinds shuffled per
//! cycle); fails on any lost job, hang, wrong result, leak or stalled probe (the soak's
//! exit status) and on any fault kind or check that never happened.

use std::process::Command;

const FAULTS: [&str; 9] = [
    "worker_sigkill",
    "client_disconnect_before_result",
    "connection_reset",
    "slow_reader",
    "garbage_packet",
    "oversize_packet",
    "server_kill9_restart",
    "disk_full",
    "open_file_limit",
];

const CHECKS: [&str; 12] = [
    "bg_acknowledged_jobs_ran",
    "fg_result_matched.tokio",
    "fg_result_matched.smol",
    "fg_result_matched.blocking",
    "fg_result_matched.libgearman",
    "server_restarted_on_its_queue",
    "durable_write_refused_on_full_disk",
    "durable_writes_resumed_after_disk_freed",
    "existing_connection_served_at_fd_limit",
    "accepts_again_after_fd_limit",
    "status_agrees_when_quiescent",
    "rss_back_near_baseline",
];

fn counter(summary: &str, name: &str) -> u64 {
    summary
        .lines()
        .find_map(|l| {
            let mut cols = l.split_whitespace();
            (cols.next() == Some(name)).then(|| cols.next()?.parse().ok())?
        })
        .unwrap_or(0)
}

#[test]
fn soak_75s_with_every_fault() {
    // Removed when the test ends, passed or failed (the soak has exited by then).
    let dir = gearman_tests::temp_dir("soak-ci");
    let out = Command::new(env!("CARGO_BIN_EXE_gearman-soak"))
        .args([
            "--duration",
            "75",
            "--fault-interval-ms",
            "1500",
            "--seed",
            "17",
        ])
        .arg("--server-bin")
        .arg(gearman_tests::gearmand_rs_binary())
        .arg("--dir")
        .arg(dir.path())
        .output()
        .expect("run gearman-soak");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report = format!("--- stdout\n{stdout}\n--- stderr\n{stderr}");
    assert!(
        out.status.success(),
        "the soak failed ({}):\n{report}",
        out.status
    );
    for fault in FAULTS {
        assert!(
            counter(&stdout, &format!("fault.{fault}")) > 0,
            "fault {fault} never injected:\n{report}"
        );
    }
    for check in CHECKS {
        assert!(
            counter(&stdout, &format!("check.{check}")) > 0,
            "check {check} never made:\n{report}"
        );
    }
    // Workers were SIGKILLed in the middle of a job, not only while idle.
    assert!(
        counter(&stdout, "info.worker_killed_mid_job") > 0,
        "no worker killed mid-job:\n{report}"
    );
    assert_eq!(counter(&stdout, "fail.bg_lost"), 0, "{report}");
}
