//! gearman-rs and gearadmin-rs next to gearmand's `gearman` and `gearadmin` (1.1.20),
//! against gearmand 1.1.20 and gearmand-rs in the same state: same stdout, stderr and
//! exit status.

use gearman_core::proto::{Priority, Request, Response, SubmitJob, SubmitMode};
use gearman_tests::{gearmand_rs_binary, run, wait_for_workers, Conn, Peer, ServerProcess};
use std::process::Output;
use std::time::{Duration, Instant};

const GEARMAN_RS: &str = env!("CARGO_BIN_EXE_gearman-rs");
const GEARADMIN_RS: &str = env!("CARGO_BIN_EXE_gearadmin-rs");
const LIMIT: Duration = Duration::from_secs(20);

fn both(c_tool: &str, ours: &str, args: &[&str], stdin: &[u8]) -> (Output, Output) {
    (
        run(c_tool, args, stdin, LIMIT),
        run(ours, args, stdin, LIMIT),
    )
}

/// `workers` lists connections in the server's order and includes the admin tool's own
/// connection (a different fd per run): compare the rows of connections that registered
/// something or set an id, sorted, without the fd.
fn normalise(text: &str) -> String {
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| !l.ends_with(" - :"))
        .map(|l| match l.split_once(' ') {
            Some((fd, rest)) if fd.parse::<u32>().is_ok() => rest.to_owned(),
            _ => l.to_owned(),
        })
        .collect();
    lines.sort();
    lines.join("\n")
}

fn same(what: &str, c: &Output, ours: &Output, normalise_stdout: bool) {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let (c_out, our_out) = (text(&c.stdout), text(&ours.stdout));
    let (c_out, our_out) = if normalise_stdout {
        (normalise(&c_out), normalise(&our_out))
    } else {
        (c_out, our_out)
    };
    assert_eq!(c_out, our_out, "{what}: stdout differs");
    assert_eq!(
        text(&c.stderr),
        text(&ours.stderr),
        "{what}: stderr differs"
    );
    assert_eq!(
        c.status.code(),
        ours.status.code(),
        "{what}: exit status differs"
    );
}

/// A worker with a client id for two functions, and queued background jobs.
fn prepare(server: &ServerProcess) -> (Conn, Conn) {
    let mut worker = server.conn();
    worker.send(Request::SetClientId {
        id: "side-by-side".into(),
    });
    for function in ["queued", "idle"] {
        worker.send(Request::CanDo {
            function: function.into(),
        });
    }
    worker.send(Request::Echo {
        data: "sync".into(),
    });
    assert!(matches!(worker.recv(), Response::EchoRes { .. }));
    let mut client = server.conn();
    for (priority, unique) in [
        (Priority::High, "u1"),
        (Priority::Normal, "u2"),
        (Priority::Low, ""),
    ] {
        client.send(Request::Submit(SubmitJob {
            function: "queued".into(),
            unique: unique.into(),
            mode: SubmitMode::Background(priority),
            data: "x".into(),
        }));
        assert!(matches!(client.recv(), Response::JobCreated { .. }));
    }
    (worker, client)
}

fn gearadmin_side_by_side(server: &ServerProcess) {
    let _state = prepare(server);
    let port = server.port.to_string();
    let base = ["-h", "127.0.0.1", "-p", port.as_str()];
    let cases: &[&[&str]] = &[
        &["--status"],
        &["--priority-status"],
        &["--workers"],
        &["--show-jobs"],
        &["--show-unique-jobs"],
        &["--server-version"],
        &["--server-verbose"],
        &["--cancel-job", "H:nowhere:1"],
        &["--drop-function", "never-there"],
        &[
            "--status",
            "--workers",
            "--getpid",
            "--show-jobs",
            "--server-verbose",
        ],
    ];
    for case in cases {
        let args: Vec<&str> = base.iter().chain(case.iter()).copied().collect();
        let (c, ours) = both("/usr/bin/gearadmin", GEARADMIN_RS, &args, b"");
        let listing_order_varies = case.contains(&"--workers") || case.contains(&"--show-jobs");
        same(
            &format!("gearadmin {case:?}"),
            &c,
            &ours,
            listing_order_varies,
        );
    }
    // Create then drop: each tool in turn from the same state.
    let sequence = |tool: &str| -> Vec<Output> {
        [["--create-function", "made"], ["--drop-function", "made"]]
            .iter()
            .map(|case| run(tool, &[&base[..], &case[..]].concat(), b"", LIMIT))
            .collect()
    };
    for (c, ours) in sequence("/usr/bin/gearadmin")
        .iter()
        .zip(sequence(GEARADMIN_RS))
    {
        same("gearadmin create/drop", c, &ours, false);
    }
    // getpid names the server on both (its pid differs from nothing else).
    let (c, ours) = both(
        "/usr/bin/gearadmin",
        GEARADMIN_RS,
        &[&base[..], &["--getpid"]].concat(),
        b"",
    );
    same("gearadmin --getpid", &c, &ours, false);
    assert_eq!(
        String::from_utf8_lossy(&ours.stdout).trim(),
        server.child.id().to_string()
    );
    // No server there: both fail.
    let dead = gearman_tests::free_port().to_string();
    let (c, ours) = both(
        "/usr/bin/gearadmin",
        GEARADMIN_RS,
        &["-h", "127.0.0.1", "-p", &dead, "--status"],
        b"",
    );
    assert_eq!(c.status.code(), ours.status.code());
    assert!(ours.stdout.is_empty());
}

fn gearman_client_side_by_side(server: &ServerProcess) {
    let port = server.port.to_string();
    let _c_worker = Peer::spawn(
        "/usr/bin/gearman",
        &[
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-w",
            "-f",
            "rev",
            "--",
            "rev",
        ],
    );
    let _failing = Peer::spawn(
        "/usr/bin/gearman",
        &[
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-w",
            "-f",
            "fails",
            "--",
            "sh",
            "-c",
            "cat >/dev/null; echo partial; exit 3",
        ],
    );
    wait_for_workers(server, "rev", 1);
    wait_for_workers(server, "fails", 1);
    let base = ["-h", "127.0.0.1", "-p", port.as_str()];
    let cases: &[(&[&str], &[u8])] = &[
        (&["-f", "rev", "hello", "world"], b""),
        (&["-f", "rev"], b"abc\ndef\n"),
        (&["-n", "-f", "rev"], b"abc\ndef\n"),
        (&["-N", "-f", "rev"], b"abc\ndef\n"),
        (&["-P", "-f", "rev", "xy"], b""),
        (&["-s", "-f", "rev"], b"ignored"),
        (&["-I", "-f", "rev", "high"], b""),
        (&["-L", "-f", "rev", "low"], b""),
        (&["-u", "same-unique", "-f", "rev", "uniq"], b""),
        (&["-b", "-f", "rev", "background"], b""),
        (&["-f", "fails", "x"], b""),
    ];
    for (case, stdin) in cases {
        let args: Vec<&str> = base.iter().chain(case.iter()).copied().collect();
        let (c, ours) = both("/usr/bin/gearman", GEARMAN_RS, &args, stdin);
        same(&format!("gearman {case:?}"), &c, &ours, false);
    }
}

fn gearman_worker_side_by_side(server: &ServerProcess) {
    let port = server.port.to_string();
    let worker = |tool: &str, function: &str, command: &[&str]| {
        let mut args = vec!["-h", "127.0.0.1", "-p", &port, "-w", "-f", function];
        if !command.is_empty() {
            args.push("--");
            args.extend_from_slice(command);
        }
        Peer::spawn(tool, &args)
    };
    let fail = ["sh", "-c", "cat >/dev/null; echo partial; exit 3"];
    let _workers = [
        worker("/usr/bin/gearman", "c_rev", &["rev"]),
        worker(GEARMAN_RS, "our_rev", &["rev"]),
        worker("/usr/bin/gearman", "c_fail", &fail),
        worker(GEARMAN_RS, "our_fail", &fail),
        worker("/usr/bin/gearman", "c_print", &[]),
        worker(GEARMAN_RS, "our_print", &[]),
    ];
    for f in [
        "c_rev",
        "our_rev",
        "c_fail",
        "our_fail",
        "c_print",
        "our_print",
    ] {
        wait_for_workers(server, f, 1);
    }
    for (c_fn, our_fn, stdin) in [
        ("c_rev", "our_rev", &b"one\ntwo\n"[..]),
        ("c_fail", "our_fail", b"x"),
        ("c_print", "our_print", b"printed"),
    ] {
        let args = |f: &'static str| vec!["-h", "127.0.0.1", "-p", port.as_str(), "-f", f];
        let c = run("/usr/bin/gearman", &args(c_fn), stdin, LIMIT);
        let ours = run("/usr/bin/gearman", &args(our_fn), stdin, LIMIT);
        same(&format!("worker {our_fn}"), &c, &ours, false);
    }
}

/// `-c 2`: the worker does two jobs and exits; a third stays queued.
fn counted_worker(server: &ServerProcess) {
    let port = server.port.to_string();
    let mut client = server.conn();
    for n in 0..3 {
        client.send(Request::Submit(SubmitJob {
            function: "counted".into(),
            unique: format!("c{n}").into(),
            mode: SubmitMode::Background(Priority::Normal),
            data: "x".into(),
        }));
        assert!(matches!(client.recv(), Response::JobCreated { .. }));
    }
    let mut worker = Peer::spawn(
        GEARMAN_RS,
        &[
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-w",
            "-c",
            "2",
            "-f",
            "counted",
            "--",
            "cat",
        ],
    );
    let deadline = Instant::now() + LIMIT;
    let status = loop {
        if let Some(status) = worker.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "gearman-rs -w -c 2 did not exit");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
    let row = server.conn().admin("status\r\n");
    assert!(
        row.lines().any(|l| l.starts_with("counted\t1\t0\t")),
        "{row}"
    );
}

/// `-c 0`: no limit, as gearman's worker counts down only from a positive count. Each
/// tool's worker runs two jobs and is still serving.
fn zero_count_worker(server: &ServerProcess) {
    let port = server.port.to_string();
    for (tool, function) in [("/usr/bin/gearman", "c_zero"), (GEARMAN_RS, "our_zero")] {
        let mut worker = Peer::spawn(
            tool,
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-w",
                "-c",
                "0",
                "-f",
                function,
                "--",
                "rev",
            ],
        );
        wait_for_workers(server, function, 1);
        for data in ["one", "two"] {
            let out = run(
                GEARMAN_RS,
                &["-h", "127.0.0.1", "-p", &port, "-f", function, data],
                b"",
                LIMIT,
            );
            let want: String = data.chars().rev().collect();
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), want, "{tool}");
        }
        assert!(
            worker.0.try_wait().unwrap().is_none(),
            "{tool} -w -c 0 exited after two jobs"
        );
    }
}

fn everything_against(server: ServerProcess) {
    gearadmin_side_by_side(&server);
    gearman_client_side_by_side(&server);
    gearman_worker_side_by_side(&server);
    counted_worker(&server);
    zero_count_worker(&server);
}

#[test]
fn side_by_side_on_gearmand() {
    everything_against(ServerProcess::gearmand(&[]));
}

#[test]
fn side_by_side_on_gearmand_rs() {
    everything_against(ServerProcess::start(&gearmand_rs_binary(), &[]));
}
