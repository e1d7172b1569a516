//! Command-line usage without a server: help, a missing or unknown option, nothing to
//! do. gearman-rs and gearadmin-rs exit with the status gearmand's `gearman` and
//! `gearadmin` (1.1.20) exit with, so scripts checking `$? -eq 1` see the same; the
//! messages are clap's (ours name the option), on stderr, never a panic.

use gearman_tests::run;
use std::time::Duration;

const GEARMAN_RS: &str = env!("CARGO_BIN_EXE_gearman-rs");
const GEARADMIN_RS: &str = env!("CARGO_BIN_EXE_gearadmin-rs");
const LIMIT: Duration = Duration::from_secs(20);

fn same_status(c_tool: &str, ours: &str, args: &[&str]) {
    let c = run(c_tool, args, b"", LIMIT);
    let ours_out = run(ours, args, b"", LIMIT);
    let stderr = String::from_utf8_lossy(&ours_out.stderr);
    assert_eq!(
        c.status.code(),
        ours_out.status.code(),
        "{ours} {args:?}: exit status differs from {c_tool}'s\nstderr: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{ours} {args:?}: {stderr}");
}

#[test]
fn gearadmin_usage_exit_statuses() {
    for args in [
        &["--help"][..],
        &[],
        &["--bogus"],
        &["--status", "--cancel-job"],
        &["--status", "-p"],
    ] {
        same_status("/usr/bin/gearadmin", GEARADMIN_RS, args);
    }
    // Help goes to stdout, as gearadmin's does.
    let help = run(GEARADMIN_RS, &["--help"], b"", LIMIT);
    assert!(String::from_utf8_lossy(&help.stdout).contains("--status"));
}

#[test]
fn gearman_usage_exit_statuses() {
    for args in [&["-H"][..], &[], &["-f"], &["-w", "-f"], &["-h"]] {
        same_status("/usr/bin/gearman", GEARMAN_RS, args);
    }
    // A bad option names itself.
    let out = run(GEARMAN_RS, &["-f"], b"", LIMIT);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("-f"),
        "{out:?}"
    );
}
