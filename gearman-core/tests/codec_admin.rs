//! Golden tests of the admin text protocol (protocol.md §3): every command of §3.2 parsed
//! from CRLF and LF lines, every reply shape rendered byte for byte, every error line of the
//! error table, the five-token rule and the line-length bound.

use bytes::Bytes;
use gearman_core::proto::admin::{find_line, render, AdminCommand as A, AdminError};
use gearman_core::{DecodeError, Limits};

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

/// Parses `line` once with `\r\n` and once with `\n` appended; both must agree.
fn parse_both(line: &str) -> Result<A, DecodeError> {
    let crlf = A::parse(format!("{line}\r\n").as_bytes());
    let lf = A::parse(format!("{line}\n").as_bytes());
    assert_eq!(crlf, lf, "CRLF and LF disagree on {line:?}");
    crlf
}

#[test]
fn every_command_of_the_table_parses_from_crlf_and_lf() {
    let cases: Vec<(&str, A)> = vec![
        ("status", A::Status),
        ("prioritystatus", A::PriorityStatus),
        ("workers", A::Workers),
        ("show jobs", A::ShowJobs),
        ("show unique jobs", A::ShowUniqueJobs),
        ("cancel job H:vm:1", A::CancelJob(b("H:vm:1"))),
        ("create function f", A::CreateFunction(b("f"))),
        ("drop function f", A::DropFunction(b("f"))),
        (
            "maxqueue f",
            A::MaxQueue {
                function: b("f"),
                limits: [0, 0, 0],
            },
        ),
        (
            "maxqueue f 5",
            A::MaxQueue {
                function: b("f"),
                limits: [5, 5, 5],
            },
        ),
        (
            "maxqueue f 1 2",
            A::MaxQueue {
                function: b("f"),
                limits: [1, 2, 0],
            },
        ),
        (
            "maxqueue f 1 2 3",
            A::MaxQueue {
                function: b("f"),
                limits: [1, 2, 3],
            },
        ),
        (
            "maxqueue f -1 x 7y",
            A::MaxQueue {
                function: b("f"),
                limits: [0, 0, 7],
            },
        ),
        ("getpid", A::Getpid),
        ("shutdown", A::Shutdown { graceful: false }),
        ("SHUTDOWN Graceful", A::Shutdown { graceful: true }),
        ("verbose", A::Verbose),
        ("version", A::Version),
    ];
    for (line, want) in cases {
        assert_eq!(parse_both(line), Ok(want), "{line:?}");
    }
}

#[test]
fn tokenising_follows_gearmand() {
    // Case-insensitive words, extra tokens ignored, runs of spaces between tokens skipped.
    assert_eq!(parse_both("STATUS"), Ok(A::Status));
    assert_eq!(parse_both("status extra args"), Ok(A::Status));
    assert_eq!(parse_both("Show   Unique  JOBS"), Ok(A::ShowUniqueJobs));
    assert_eq!(parse_both("status "), Ok(A::Status));
    assert_eq!(parse_both("CANCEL JOB h"), Ok(A::CancelJob(b("h"))));
    // Arguments keep their case; only command words are case-insensitive.
    assert_eq!(
        parse_both("create function FooBar"),
        Ok(A::CreateFunction(b("FooBar")))
    );
    // Leading spaces make an empty first word; tabs are not separators.
    assert_eq!(
        parse_both("  status"),
        Ok(A::Invalid(AdminError::UnknownCommand(b(""))))
    );
    assert_eq!(
        parse_both("status\tx"),
        Ok(A::Invalid(AdminError::UnknownCommand(b("status\tx"))))
    );
    // Only one `\r` before the `\n` is stripped.
    assert_eq!(
        A::parse(b"status\r\r\n"),
        Ok(A::Invalid(AdminError::UnknownCommand(b("status\r"))))
    );
    // A bare LF keeps the whole name: gearmand's `create function fooA\n` creates `foo`,
    // a bug we deliberately do not copy.
    assert_eq!(
        A::parse(b"create function fooA\n"),
        Ok(A::CreateFunction(b("fooA")))
    );
}

fn error_line(line: &str) -> Vec<u8> {
    match parse_both(line) {
        Ok(A::Invalid(e)) => {
            let mut out = Vec::new();
            e.render(&mut out);
            out
        }
        other => panic!("{line:?} parsed as {other:?}"),
    }
}

#[test]
fn every_error_line_of_the_table_byte_for_byte() {
    let unknown = |w: &str| format!("ERR UNKNOWN_COMMAND Unknown+server+command{w}\r\n");
    let args = |w: &str| {
        format!(
            "ERR INVALID_ARGUMENTS An+incomplete+set+of+arguments+was+sent+to+this+command+{w}\r\n"
        )
    };
    let cases: Vec<(&str, String)> = vec![
        ("foo", unknown("foo")),
        ("foo a b c d", unknown("foo")),
        ("", unknown("")),
        ("shutdown now", args("shutdown")),
        ("SHUTDOWN graceful x", args("SHUTDOWN")),
        ("cancel", unknown("cancel")),
        ("cancel job", unknown("cancel")),
        ("show", unknown("show")),
        ("cancel X Y", "ERR UNKNOWN_ERROR\r\n".into()),
        ("cancel job H extra", "ERR UNKNOWN_ERROR\r\n".into()),
        ("show foo", "ERR UNKNOWN_SHOW_ARGUMENTS\r\n".into()),
        ("show jobs x", "ERR UNKNOWN_SHOW_ARGUMENTS\r\n".into()),
        ("show unique", "ERR UNKNOWN_SHOW_ARGUMENTS\r\n".into()),
        ("maxqueue", args("maxqueue")),
        ("create", args("create")),
        ("create function", args("create")),
        ("create function a b", args("create")),
        ("create thing f", args("create")),
        ("drop", args("drop")),
        ("drop x", args("drop")),
        ("DROP x", args("DROP")),
    ];
    for (line, want) in cases {
        assert_eq!(
            String::from_utf8(error_line(line)).unwrap(),
            want,
            "{line:?}"
        );
    }
}

#[test]
fn a_sixth_token_is_fatal_with_no_reply() {
    for line in ["a b c d e f", "maxqueue f 1 2 3 4", "status 1 2 3 4 5 6 7"] {
        let e = parse_both(line).unwrap_err();
        assert_eq!(e, DecodeError::AdminTooManyTokens);
        assert!(e.is_fatal());
    }
    // Five tokens are fine, and extra spaces do not count as tokens.
    assert!(parse_both("a b c d e").is_ok());
    assert!(parse_both("a b  c   d e   ").is_ok());
}

#[test]
fn every_reply_shape_byte_for_byte() {
    let mut out = Vec::new();
    render::status_line(&mut out, b"reverse", 3, 1, 2);
    render::status_line(&mut out, b"", 0, 0, 0);
    render::end_list(&mut out);
    assert_eq!(out, b"reverse\t3\t1\t2\n\t0\t0\t0\n.\n");

    out.clear();
    render::priority_status_line(&mut out, b"f", [1, 2, 0], 4);
    render::end_list(&mut out);
    assert_eq!(out, b"f\t1\t2\t0\t4\n.\n");

    out.clear();
    render::workers_line(&mut out, 39, "127.0.0.1", b"-", []);
    render::workers_line(&mut out, 40, "::1", b"my id", [&b"dup"[..], b"dup", b"rev"]);
    render::end_list(&mut out);
    assert_eq!(
        out,
        b"39 127.0.0.1 - :\n40 ::1 my id : dup dup rev\n.\n".as_slice()
    );

    out.clear();
    render::show_jobs_line(&mut out, b"H:vm:1", 0, false, true);
    render::show_jobs_line(&mut out, b"H:vm:2", 3, true, false);
    render::end_list(&mut out);
    assert_eq!(out, b"H:vm:1\t0\t0\t1\nH:vm:2\t3\t1\t0\n.\n");

    out.clear();
    render::show_unique_line(&mut out, b"u1");
    render::show_unique_line(&mut out, b"");
    render::end_list(&mut out);
    assert_eq!(out, b"u1\n\n.\n");

    // One-liners: OK/ERR end in CRLF; getpid, verbose and version in LF only.
    let one = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut v = Vec::new();
        f(&mut v);
        String::from_utf8(v).unwrap()
    };
    assert_eq!(one(&|o| render::ok(o)), "OK\r\n");
    assert_eq!(
        one(&|o| render::err(o, "UNKNOWN_JOB")),
        "ERR UNKNOWN_JOB\r\n"
    );
    assert_eq!(
        one(&|o| render::err(o, "there are still connected workers or executing clients")),
        "ERR there are still connected workers or executing clients\r\n"
    );
    assert_eq!(
        one(&|o| render::err(o, "function not found")),
        "ERR function not found\r\n"
    );
    assert_eq!(one(&|o| render::ok_value(o, "4242")), "OK 4242\n");
    assert_eq!(one(&|o| render::ok_value(o, "ERROR")), "OK ERROR\n");
    assert_eq!(one(&|o| render::ok_value(o, "1.1.20+ds")), "OK 1.1.20+ds\n");
}

#[test]
fn lines_are_bounded_by_max_admin_line() {
    let max = Limits::default().max_admin_line;
    // A line of exactly `max` bytes, newline included, is accepted...
    let mut line = vec![b'x'; max - 1];
    line.push(b'\n');
    line.extend_from_slice(b"status\r\n");
    assert_eq!(find_line(&line, max), Ok(Some(max)));
    // ...`max` bytes without a newline fail at once (more input cannot help)...
    let long = vec![b'x'; max];
    let e = find_line(&long, max).unwrap_err();
    assert_eq!(e, DecodeError::AdminLineTooLong { max });
    assert!(e.is_fatal());
    // ...and a newline beyond the bound does not rescue it.
    let mut later = long.clone();
    later.push(b'\n');
    assert_eq!(find_line(&later, max), Err(e));
    // Shorter partial lines wait for more bytes.
    assert_eq!(find_line(&long[..max - 1], max), Ok(None));
    assert_eq!(find_line(b"", max), Ok(None));
    // Lines are split one at a time, CRLF or LF.
    let two = b"version\nstatus\r\n";
    let first = find_line(two, max).unwrap().unwrap();
    assert_eq!(A::parse(&two[..first]), Ok(A::Version));
    let rest = &two[first..];
    let second = find_line(rest, max).unwrap().unwrap();
    assert_eq!(second, rest.len());
    assert_eq!(A::parse(rest), Ok(A::Status));
}
