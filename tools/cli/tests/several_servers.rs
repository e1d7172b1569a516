//! gearman-rs with several `-h` servers (the C tool takes one): a worker serves every
//! server given, and a client skips a dead server for the next one.

use gearman_tests::{gearmand_rs_binary, run, stdout, wait_for_workers, Peer, ServerProcess};
use std::time::Duration;

const GEARMAN_RS: &str = env!("CARGO_BIN_EXE_gearman-rs");
const LIMIT: Duration = Duration::from_secs(20);

#[test]
fn worker_serves_every_server_and_client_fails_over() {
    let servers = [
        ServerProcess::start(&gearmand_rs_binary(), &[]),
        ServerProcess::start(&gearmand_rs_binary(), &[]),
    ];
    let addrs = servers.each_ref().map(|s| format!("127.0.0.1:{}", s.port));
    let _worker = Peer::spawn(
        GEARMAN_RS,
        &[
            "-w", "-h", &addrs[0], "-h", &addrs[1], "-f", "many_rev", "--", "rev",
        ],
    );
    for server in &servers {
        wait_for_workers(server, "many_rev", 1);
    }
    // A job on each server reaches the one worker.
    for (addr, data) in addrs.iter().zip(["first", "second"]) {
        let out = run(
            GEARMAN_RS,
            &["-h", addr, "-f", "many_rev", data],
            b"",
            LIMIT,
        );
        assert!(out.status.success(), "{addr}: {out:?}");
        let want: String = data.chars().rev().collect();
        assert_eq!(stdout(&out).trim(), want, "{addr}");
    }
    // A client given a dead server first uses the next one.
    let dead = format!("127.0.0.1:{}", gearman_tests::free_port());
    let out = run(
        GEARMAN_RS,
        &["-h", &dead, "-h", &addrs[1], "-f", "many_rev", "failover"],
        b"",
        LIMIT,
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(stdout(&out).trim(), "revoliaf");
}
