//! Scenario tests for the server machine, one rule each, over the in-memory harness.

mod support;

use bytes::Bytes;
use gearman_core::proto::Packet;
use gearman_core::proto::{
    AssignExtras, GrabMode, JobAssign, Priority, Request, Response, StatusRes, StatusResUnique,
    SubmitJob, SubmitMode, SubmitReduceJob, WorkPayload, WorkStatus,
};
use gearman_core::server::{JobRecord, ServerEvent};
use std::time::Duration;
use support::{b, Net, UNIX_START};

fn submit(f: &str, unique: &str, data: &str, mode: SubmitMode) -> Request {
    Request::Submit(SubmitJob {
        function: b(f),
        unique: b(unique),
        mode,
        data: b(data),
    })
}

fn fg(f: &str, unique: &str, data: &str) -> Request {
    submit(f, unique, data, SubmitMode::Foreground(Priority::Normal))
}

fn bg(f: &str, unique: &str, data: &str, p: Priority) -> Request {
    submit(f, unique, data, SubmitMode::Background(p))
}

fn created(h: &str) -> Response {
    Response::JobCreated { handle: b(h) }
}

fn assign_uniq(h: &str, f: &str, u: &str, data: &str) -> Response {
    Response::JobAssign(JobAssign {
        handle: b(h),
        function: b(f),
        extras: AssignExtras::Unique(b(u)),
        data: b(data),
    })
}

fn grab() -> Request {
    Request::GrabJob(GrabMode::Uniq)
}

fn complete(h: &str, data: &str) -> Request {
    Request::WorkComplete(WorkPayload {
        handle: b(h),
        data: b(data),
    })
}

fn can_do(f: &str) -> Request {
    Request::CanDo { function: b(f) }
}

/// The data field of each JOB_ASSIGN in `rs`.
fn assigned_data(rs: &[Response]) -> Vec<String> {
    rs.iter()
        .filter_map(|r| match r {
            Response::JobAssign(j) => Some(String::from_utf8_lossy(&j.data).into_owned()),
            _ => None,
        })
        .collect()
}

#[test]
fn worked_example_reverse() {
    for seed in 1..20 {
        let mut net = Net::new(seed);
        let (w, c) = (net.connect(), net.connect());
        net.send(w, can_do("reverse"));
        net.send(w, Request::PreSleep);
        net.send(c, fg("reverse", "", "test"));
        assert_eq!(net.recv(c), vec![created("H:test:1")]);
        assert_eq!(net.recv(w), vec![Response::Noop]);
        net.send(w, Request::GrabJob(GrabMode::Plain));
        assert_eq!(
            net.recv(w),
            vec![Response::JobAssign(JobAssign {
                handle: b("H:test:1"),
                function: b("reverse"),
                extras: AssignExtras::Plain,
                data: b("test"),
            })]
        );
        net.send(w, complete("H:test:1", "tset"));
        assert_eq!(
            net.recv(c),
            vec![Response::WorkComplete(WorkPayload {
                handle: b("H:test:1"),
                data: b("tset")
            })]
        );
        assert_eq!(net.server.queued_jobs() + net.server.running_jobs(), 0);
    }
}

#[test]
fn priority_is_global_across_functions_and_round_robin_within() {
    let mut net = Net::new(7);
    let (w, c) = (net.connect(), net.connect());
    net.send(c, bg("a", "", "a-low", Priority::Low));
    net.send(c, bg("b", "", "b-high", Priority::High));
    net.send(c, bg("a", "", "a1", Priority::Normal));
    net.send(c, bg("a", "", "a2", Priority::Normal));
    net.send(c, bg("b", "", "b1", Priority::Normal));
    net.send(c, bg("b", "", "b2", Priority::Normal));
    net.send(w, can_do("a"));
    net.send(w, can_do("b"));
    for _ in 0..6 {
        net.send(w, grab());
    }
    let order = assigned_data(&net.recv(w));
    assert_eq!(order, ["b-high", "a1", "b1", "a2", "b2", "a-low"]);
}

#[test]
fn unique_coalesces_per_function_and_fans_out_per_submission() {
    let mut net = Net::new(3);
    let (w, c1, c2) = (net.connect(), net.connect(), net.connect());
    net.send(c1, fg("f", "u", "x"));
    net.send(c1, fg("f", "u", "x"));
    net.send(c2, fg("f", "u", "other data"));
    net.send(c2, fg("g", "u", "x"));
    assert_eq!(net.recv(c1), vec![created("H:test:1"), created("H:test:1")]);
    assert_eq!(net.recv(c2), vec![created("H:test:1"), created("H:test:2")]);
    net.send(w, can_do("f"));
    net.send(w, grab());
    net.send(
        w,
        Request::WorkData(WorkPayload {
            handle: b("H:test:1"),
            data: b("d"),
        }),
    );
    net.send(w, complete("H:test:1", "done"));
    let data = Response::WorkData(WorkPayload {
        handle: b("H:test:1"),
        data: b("d"),
    });
    let done = Response::WorkComplete(WorkPayload {
        handle: b("H:test:1"),
        data: b("done"),
    });
    assert_eq!(
        net.recv(c1),
        vec![data.clone(), data.clone(), done.clone(), done.clone()]
    );
    assert_eq!(net.recv(c2), vec![data, done]);
}

#[test]
fn dash_unique_coalesces_on_data_and_empty_never() {
    let mut net = Net::new(4);
    let c = net.connect();
    net.send(c, bg("f", "-", "same", Priority::Normal));
    net.send(c, bg("f", "-", "same", Priority::Normal));
    net.send(c, bg("f", "-", "other", Priority::Normal));
    net.send(c, bg("f", "", "same", Priority::Normal));
    net.send(c, bg("f", "", "same", Priority::Normal));
    let handles: Vec<Response> = net.recv(c);
    assert_eq!(
        handles,
        vec![
            created("H:test:1"),
            created("H:test:1"),
            created("H:test:2"),
            created("H:test:3"),
            created("H:test:4")
        ]
    );
}

#[test]
fn sleeping_workers_get_one_noop_until_they_grab() {
    let mut net = Net::new(5);
    let (w1, w2, c) = (net.connect(), net.connect(), net.connect());
    for w in [w1, w2] {
        net.send(w, can_do("f"));
        net.send(w, Request::PreSleep);
    }
    net.send(c, bg("f", "", "1", Priority::Normal));
    net.send(c, bg("f", "", "2", Priority::Normal));
    assert_eq!(net.recv(w1), vec![Response::Noop]);
    assert_eq!(net.recv(w2), vec![Response::Noop]);
    // PRE_SLEEP with work waiting gets an immediate NOOP.
    net.send(w1, Request::PreSleep);
    assert_eq!(net.recv(w1), vec![Response::Noop]);
}

#[test]
fn worker_wakeup_limits_and_rotates_noops() {
    let mut net = Net::with_config(6, |c| c.worker_wakeup = 1);
    let (w1, w2, c) = (net.connect(), net.connect(), net.connect());
    for w in [w1, w2] {
        net.send(w, can_do("f"));
        net.send(w, Request::PreSleep);
    }
    net.send(c, bg("f", "", "1", Priority::Normal));
    assert_eq!(net.recv(w1), vec![Response::Noop]);
    assert_eq!(net.recv(w2), vec![]);
    net.send(c, bg("f", "", "2", Priority::Normal));
    assert_eq!(net.recv(w2), vec![Response::Noop]);
}

#[test]
fn a_woken_worker_that_leaves_before_grabbing_passes_the_wakeup_on() {
    // Leaving, dropping the function, dropping every function: another sleeper must wake.
    for (seed, leave) in [(61, "eof"), (62, "cant_do"), (63, "reset")] {
        let mut net = Net::with_config(seed, |c| c.worker_wakeup = 1);
        let (w1, w2, c) = (net.connect(), net.connect(), net.connect());
        for w in [w1, w2] {
            net.send(w, can_do("f"));
            net.send(w, Request::PreSleep);
        }
        net.send(c, fg("f", "", "x"));
        assert_eq!(net.recv(w1), vec![Response::Noop]);
        match leave {
            "eof" => net.eof(w1),
            "cant_do" => net.send(w1, Request::CantDo { function: b("f") }),
            _ => net.send(w1, Request::ResetAbilities),
        }
        net.check();
        assert_eq!(net.recv(w2), vec![Response::Noop], "after {leave}");
        net.send(w2, grab());
        assert_eq!(assigned_data(&net.recv(w2)), ["x"], "after {leave}");
    }
}

#[test]
fn disconnected_worker_job_is_requeued_then_failed_when_retries_run_out() {
    let mut net = Net::with_config(8, |c| c.job_retries = Some(1));
    let c = net.connect();
    net.send(c, fg("f", "", "x"));
    net.recv(c);
    for attempt in 0..2 {
        let w = net.connect();
        net.send(w, can_do("f"));
        net.send(w, grab());
        assert_eq!(assigned_data(&net.recv(w)), ["x"], "attempt {attempt}");
        net.eof(w);
    }
    assert_eq!(
        net.recv(c),
        vec![Response::WorkFail {
            handle: b("H:test:1")
        }]
    );
    assert_eq!(net.server.queued_jobs(), 0);
}

#[test]
fn zero_retries_fails_at_first_failure_and_unlimited_never_does() {
    let mut net = Net::with_config(9, |c| c.job_retries = Some(0));
    let (c, w) = (net.connect(), net.connect());
    net.send(c, fg("f", "", "x"));
    net.send(w, can_do("f"));
    net.send(w, grab());
    net.send(w, Request::CantDo { function: b("f") });
    let rs = net.recv(c);
    assert_eq!(
        rs.last(),
        Some(&Response::WorkFail {
            handle: b("H:test:1")
        })
    );

    let mut net = Net::new(9);
    let c = net.connect();
    net.send(c, fg("f", "", "x"));
    for _ in 0..20 {
        let w = net.connect();
        net.send(w, can_do("f"));
        net.send(w, grab());
        net.eof(w);
    }
    assert_eq!(net.recv(c), vec![created("H:test:1")]);
    assert_eq!(net.server.queued_jobs(), 1);
}

#[test]
fn can_do_timeout_restarts_on_another_worker_then_fails() {
    let mut net = Net::with_config(10, |c| c.job_retries = Some(1));
    let (c, w1, w2) = (net.connect(), net.connect(), net.connect());
    for w in [w1, w2] {
        net.send(
            w,
            Request::CanDoTimeout {
                function: b("f"),
                timeout_ms: 300,
            },
        );
    }
    net.send(c, fg("f", "", "x"));
    net.send(w1, grab());
    assert_eq!(assigned_data(&net.recv(w1)), ["x"]);
    net.send(w2, Request::PreSleep);
    net.advance(Duration::from_millis(999));
    assert_eq!(net.recv(w2), vec![], "300 ms is raised to one second");
    net.advance(Duration::from_millis(2));
    assert_eq!(net.recv(w2), vec![Response::Noop]);
    net.send(w2, grab());
    assert_eq!(assigned_data(&net.recv(w2)), ["x"]);
    // The first worker's late result is refused.
    net.send(w1, complete("H:test:1", "late"));
    assert_eq!(
        net.recv(w1),
        vec![Response::error(
            "JOB_NOT_FOUND",
            "Job given in work result not found"
        )]
    );
    net.advance(Duration::from_millis(1001));
    assert_eq!(
        net.recv(c),
        vec![
            created("H:test:1"),
            Response::WorkFail {
                handle: b("H:test:1")
            }
        ]
    );
    assert_eq!(net.server.running_jobs(), 0);
}

#[test]
fn completed_job_cancels_its_timeout() {
    let mut net = Net::with_config(11, |c| c.job_retries = Some(0));
    let (c, w) = (net.connect(), net.connect());
    net.send(
        w,
        Request::CanDoTimeout {
            function: b("f"),
            timeout_ms: 1000,
        },
    );
    net.send(c, fg("f", "", "x"));
    net.send(w, grab());
    net.send(w, complete("H:test:1", "ok"));
    net.send(c, fg("f", "", "y"));
    net.send(w, grab());
    net.advance(Duration::from_millis(1500));
    // Only the second assignment's timer fires: the job fails (no retries), the first was done.
    let rs = net.recv(c);
    assert!(rs.contains(&Response::WorkComplete(WorkPayload {
        handle: b("H:test:1"),
        data: b("ok")
    })));
    assert_eq!(
        rs.last(),
        Some(&Response::WorkFail {
            handle: b("H:test:2")
        })
    );
}

#[test]
fn epoch_job_fires_on_its_timer_and_wakes_the_sleeper() {
    let mut net = Net::new(12);
    let (c, w) = (net.connect(), net.connect());
    net.send(w, can_do("f"));
    net.send(w, Request::PreSleep);
    net.send(
        c,
        submit("f", "", "later", SubmitMode::Epoch(UNIX_START + 5)),
    );
    net.send(c, bg("f", "", "low-now", Priority::Low));
    assert_eq!(net.recv(c), vec![created("H:test:1"), created("H:test:2")]);
    assert_eq!(
        net.recv(w),
        vec![Response::Noop],
        "the runnable low job wakes it"
    );
    net.send(w, grab());
    assert_eq!(
        assigned_data(&net.recv(w)),
        ["low-now"],
        "a future epoch job hides nothing"
    );
    net.send(w, complete("H:test:2", ""));
    net.send(w, grab());
    assert_eq!(net.recv(w), vec![Response::NoJob]);
    net.send(w, Request::PreSleep);
    net.advance(Duration::from_millis(4900));
    assert_eq!(net.recv(w), vec![]);
    net.advance(Duration::from_millis(200));
    assert_eq!(net.recv(w), vec![Response::Noop]);
    net.send(w, grab());
    assert_eq!(assigned_data(&net.recv(w)), ["later"]);
}

#[test]
fn past_epoch_runs_now() {
    let mut net = Net::new(13);
    let (c, w) = (net.connect(), net.connect());
    net.send(
        c,
        submit("f", "", "past", SubmitMode::Epoch(UNIX_START - 100)),
    );
    net.send(w, can_do("f"));
    net.send(w, grab());
    assert_eq!(assigned_data(&net.recv(w)), ["past"]);
}

#[test]
fn abandoned_foreground_job_is_dropped_but_background_kept() {
    let mut net = Net::new(14);
    let (c1, c2, w) = (net.connect(), net.connect(), net.connect());
    net.send(c1, fg("f", "", "fg-only"));
    net.send(c2, bg("f", "shared", "bg", Priority::Normal));
    net.send(c1, fg("f", "shared", "bg"));
    net.eof(c1);
    net.send(w, can_do("f"));
    net.send(w, grab());
    net.send(w, grab());
    assert_eq!(
        assigned_data(&net.recv(w)),
        ["bg"],
        "fg-only dropped, coalesced bg kept"
    );
}

#[test]
fn status_replies() {
    let mut net = Net::new(15);
    let (c, w) = (net.connect(), net.connect());
    net.send(c, fg("f", "uniq", "x"));
    net.send(
        c,
        Request::GetStatus {
            handle: b("H:test:1"),
        },
    );
    net.send(w, can_do("f"));
    net.send(w, grab());
    net.send(
        w,
        Request::WorkStatus(WorkStatus {
            handle: b("H:test:1"),
            numerator: 3,
            denominator: 7,
        }),
    );
    net.send(
        c,
        Request::GetStatus {
            handle: b("H:test:1"),
        },
    );
    net.send(c, Request::GetStatusUnique { unique: b("uniq") });
    net.send(
        c,
        Request::GetStatus {
            handle: b("H:test:99"),
        },
    );
    net.send(c, Request::GetStatusUnique { unique: b("nope") });
    let status = |known, running, n, d, h: &str| {
        Response::StatusRes(StatusRes {
            handle: b(h),
            known,
            running,
            numerator: n,
            denominator: d,
        })
    };
    assert_eq!(
        net.recv(c),
        vec![
            created("H:test:1"),
            status(true, false, 0, 0, "H:test:1"),
            Response::WorkStatus(WorkStatus {
                handle: b("H:test:1"),
                numerator: 3,
                denominator: 7
            }),
            status(true, true, 3, 7, "H:test:1"),
            Response::StatusResUnique(StatusResUnique {
                unique: b("uniq"),
                known: true,
                running: true,
                numerator: 3,
                denominator: 7,
                client_count: 1
            }),
            status(false, false, 0, 0, "H:test:99"),
            Response::StatusResUnique(StatusResUnique {
                unique: b("nope"),
                known: false,
                running: false,
                numerator: 0,
                denominator: 0,
                client_count: 0
            }),
        ]
    );
}

#[test]
fn exceptions_go_only_to_clients_that_asked() {
    let mut net = Net::new(16);
    let (c1, c2, w) = (net.connect(), net.connect(), net.connect());
    net.send(
        c1,
        Request::Option {
            name: b("exceptions"),
        },
    );
    net.send(c1, fg("f", "u", "x"));
    net.send(c2, fg("f", "u", "x"));
    net.send(c2, Request::Option { name: b("bogus") });
    net.send(w, can_do("f"));
    net.send(w, grab());
    net.send(
        w,
        Request::WorkException(WorkPayload {
            handle: b("H:test:1"),
            data: b("boom"),
        }),
    );
    assert_eq!(
        net.recv(c1),
        vec![
            Response::OptionRes {
                name: b("exceptions")
            },
            created("H:test:1"),
            Response::WorkException(WorkPayload {
                handle: b("H:test:1"),
                data: b("boom")
            }),
        ]
    );
    assert_eq!(
        net.recv(c2),
        vec![
            created("H:test:1"),
            Response::error("UNKNOWN_OPTION", "Server does not recognize given option"),
            Response::WorkFail {
                handle: b("H:test:1")
            },
        ]
    );
}

#[test]
fn results_for_jobs_not_held_get_job_not_found() {
    let mut net = Net::new(17);
    let w = net.connect();
    net.send(
        w,
        Request::WorkData(WorkPayload {
            handle: b("H:x:1"),
            data: b(""),
        }),
    );
    net.send(w, Request::WorkFail { handle: b("H:x:1") });
    net.send(
        w,
        Request::WorkException(WorkPayload {
            handle: b("H:x:1"),
            data: b("e"),
        }),
    );
    assert_eq!(
        net.recv(w),
        vec![
            Response::error("JOB_NOT_FOUND", "Job does not exist on server"),
            Response::error("JOB_NOT_FOUND", "Job given in work result not found"),
            Response::error(
                "JOB_NOT_FOUND",
                "An exception was received for a job that does not exist"
            ),
        ]
    );
}

#[test]
fn maxqueue_refuses_new_jobs_also_for_unseen_functions() {
    let mut net = Net::new(18);
    let (a, c) = (net.connect(), net.connect());
    assert_eq!(net.admin(a, "maxqueue f 2\r\n"), "OK\r\n");
    for i in 0..3 {
        net.send(c, bg("f", "", &i.to_string(), Priority::Normal));
    }
    net.send(c, bg("f", "", "0", Priority::Normal));
    let rs = net.recv(c);
    assert_eq!(rs[2], Response::error("QUEUE_ERROR", "Job queue is full"));
    assert_eq!(rs.len(), 4);
}

#[test]
fn misdirected_and_unimplemented_packets_get_errors_and_the_connection_lives() {
    let mut net = Net::new(19);
    let c = net.connect();
    // NOOP sent with REQ magic, a RES-magic ECHO, a bad SUBMIT_JOB_SCHED, an oversize unique.
    net.send_raw(c, b"\0REQ\0\0\0\x06\0\0\0\0");
    net.send_raw(c, b"\0RES\0\0\0\x10\0\0\0\x02hi");
    net.send_raw(c, b"\0REQ\0\0\0\x23\0\0\0\x0ef\0u\0m\0h\0d\0m\0w\0");
    net.send(c, fg("f", &"u".repeat(65), "x"));
    net.send(
        c,
        Request::Echo {
            data: b("still here"),
        },
    );
    let mut replies = net.recv(c);
    // SUBMIT_JOB_SCHED is implemented (gearmand-rs): letters are no schedule.
    match replies.remove(2) {
        Response::Error { code, text } => {
            assert_eq!(&code[..], b"INVALID_SCHEDULE");
            assert!(text.starts_with(b"minute"), "{text:?}");
        }
        other => panic!("expected INVALID_SCHEDULE, got {other:?}"),
    }
    assert_eq!(
        replies,
        vec![
            Response::error("INVALID_COMMAND", "Command not expected"),
            Response::error("INVALID_MAGIC", "Request magic expected"),
            Response::error("ARGUMENT_TOO_LARGE", "Unique value too large"),
            Response::EchoRes {
                data: b("still here")
            },
        ]
    );
}

#[test]
fn fatal_input_closes_only_that_connection_after_saying_why() {
    for (bad, code, why) in [
        (
            &b"\0XYZ\0\0\0\x01\0\0\0\0"[..],
            "BAD_PACKET",
            "bad packet magic",
        ),
        (
            b"\0REQ\0\0\0\x2b\0\0\0\0",
            "BAD_PACKET",
            "unknown packet type 43",
        ),
        (
            b"\0REQ\0\0\0\x10\xff\xff\xff\xff",
            "PACKET_TOO_LARGE",
            "packet body of 4294967295 bytes exceeds the limit",
        ),
    ] {
        let mut net = Net::new(20);
        let (bad_conn, good) = (net.connect(), net.connect());
        net.send_raw(bad_conn, bad);
        assert!(
            matches!(net.events.as_slice(), [ServerEvent::Close { conn, .. }] if *conn == bad_conn)
        );
        // The peer's library can show why (libgearman reports an ERROR's text).
        match net.recv(bad_conn).as_slice() {
            [Response::Error { code: c, text }] => {
                assert_eq!(&c[..], code.as_bytes());
                let text = String::from_utf8_lossy(text);
                assert!(text.contains(why), "{text:?}");
            }
            other => panic!("expected one ERROR before the close, got {other:?}"),
        }
        net.send(good, Request::Echo { data: b("ok") });
        assert_eq!(net.recv(good), vec![Response::EchoRes { data: b("ok") }]);
    }
}

#[test]
fn admin_listings_match_gearmand_format() {
    let mut net = Net::new(21);
    let (a, c, w) = (net.connect(), net.connect(), net.connect());
    net.send(w, Request::SetClientId { id: b("worker-1") });
    net.send(w, can_do("f"));
    net.send(w, can_do("f"));
    net.send(c, bg("f", "u1", "x", Priority::High));
    net.send(c, bg("f", "", "y", Priority::Low));
    net.send(c, bg("g", "u2", "z", Priority::Normal));
    net.send(w, grab());
    assert_eq!(net.admin(a, "status\r\n"), "f\t2\t1\t2\ng\t1\t0\t0\n.\n");
    assert_eq!(
        net.admin(a, "prioritystatus\n"),
        "f\t0\t0\t1\t2\ng\t0\t1\t0\t0\n.\n"
    );
    assert_eq!(
        net.admin(a, "workers\r\n"),
        "11 127.0.0.1 - :\n12 127.0.0.1 - :\n13 127.0.0.1 worker-1 : f f\n.\n"
    );
    assert_eq!(
        net.admin(a, "show jobs\r\n"),
        // QUEUED=1: gearmand's builtin queue module holds every background job.
        "H:test:1\t0\t0\t1\nH:test:2\t0\t0\t1\nH:test:3\t0\t0\t1\n.\n"
    );
    assert_eq!(net.admin(a, "show unique jobs\r\n"), "u1\n\nu2\n.\n");
    assert_eq!(
        net.admin(a, "version\r\n"),
        format!("OK {}\n", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(net.admin(a, "verbose\r\n"), "OK ERROR\n");
    assert_eq!(
        net.admin(a, "drop function g\r\n"),
        "ERR there are still connected workers or executing clients\r\n"
    );
    assert_eq!(
        net.admin(a, "drop function nope\r\n"),
        "ERR function not found\r\n"
    );
    assert_eq!(net.admin(a, "create function h\r\n"), "OK\r\n");
    assert_eq!(net.admin(a, "drop function h\r\n"), "OK\r\n");
    assert_eq!(net.admin(a, "cancel job H:test:3\r\n"), "OK\r\n");
    assert_eq!(
        net.admin(a, "cancel job H:test:3\r\n"),
        "ERR UNKNOWN_JOB\r\n"
    );
}

#[test]
fn admin_and_binary_interleave_on_one_connection() {
    let mut net = Net::new(22);
    let c = net.connect();
    let mut bytes = Request::Echo { data: b("1") }.to_bytes().to_vec();
    bytes.extend_from_slice(b"version\r\n");
    bytes.extend_from_slice(&Request::Echo { data: b("2") }.to_bytes());
    net.send_raw(c, &bytes);
    let mut expected = Response::EchoRes { data: b("1") }.to_bytes().to_vec();
    expected.extend_from_slice(format!("OK {}\n", env!("CARGO_PKG_VERSION")).as_bytes());
    expected.extend_from_slice(&Response::EchoRes { data: b("2") }.to_bytes());
    assert_eq!(net.raw(c), expected);
}

#[test]
fn cancel_fails_the_job_to_its_clients() {
    let mut net = Net::new(23);
    let (a, c, w) = (net.connect(), net.connect(), net.connect());
    net.send(c, fg("f", "", "x"));
    net.send(w, can_do("f"));
    net.send(w, grab());
    net.admin(a, "cancel job H:test:1\r\n");
    net.send(w, complete("H:test:1", "late"));
    assert_eq!(
        net.recv(c),
        vec![
            created("H:test:1"),
            Response::WorkFail {
                handle: b("H:test:1")
            }
        ]
    );
    assert_eq!(net.server.running_jobs(), 0);
}

#[test]
fn reduce_jobs_show_their_reducer_to_grab_all() {
    let mut net = Net::new(24);
    let (c, w) = (net.connect(), net.connect());
    net.send(
        c,
        Request::SubmitReduce(Box::new(SubmitReduceJob {
            function: b("map"),
            unique: b("u"),
            reducer: b("reduce"),
            aggregator: Bytes::new(),
            background: false,
            data: b("1 2 3"),
        })),
    );
    net.send(c, fg("map", "v", "plain"));
    net.send(w, can_do("map"));
    net.send(w, Request::GrabJob(GrabMode::All));
    net.send(w, Request::GrabJob(GrabMode::All));
    assert_eq!(
        net.recv(w),
        vec![
            Response::JobAssign(JobAssign {
                handle: b("H:test:1"),
                function: b("map"),
                extras: AssignExtras::Reduce {
                    unique: b("u"),
                    reducer: b("reduce")
                },
                data: b("1 2 3"),
            }),
            assign_uniq("H:test:2", "map", "v", "plain"),
        ]
    );
}

#[test]
fn persisted_background_jobs_wait_for_the_store_and_keep_reply_order() {
    let mut net = Net::with_config(25, |c| c.persist_background = true);
    let (c, w) = (net.connect(), net.connect());
    net.send(w, can_do("f"));
    net.send(w, Request::PreSleep);
    net.send(c, bg("f", "u", "x", Priority::Normal));
    net.send(c, Request::Echo { data: b("after") });
    assert_eq!(
        net.recv(c),
        vec![],
        "nothing goes out before the store commits"
    );
    assert_eq!(net.recv(w), vec![], "not runnable before the store commits");
    let record = match net.events.as_slice() {
        [ServerEvent::Persist(r)] => r.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        record,
        JobRecord {
            durable_id: 1,
            function: b("f"),
            unique: b("u"),
            priority: Priority::Normal,
            data: b("x"),
            when: None,
            reducer: None
        }
    );
    net.server.persisted(1, Ok(()), net.now);
    assert_eq!(
        net.recv(c),
        vec![created("H:test:1"), Response::EchoRes { data: b("after") }]
    );
    assert_eq!(net.recv(w), vec![Response::Noop]);
    net.send(w, grab());
    net.send(w, complete("H:test:1", ""));
    net.collect_events();
    assert_eq!(
        net.events.last(),
        Some(&ServerEvent::Unpersist { durable_id: 1 })
    );
}

#[test]
fn failed_store_write_is_an_error_and_no_job() {
    let mut net = Net::with_config(26, |c| c.persist_background = true);
    let c = net.connect();
    net.send(c, bg("f", "", "x", Priority::Normal));
    net.server.persisted(1, Err("disk full".into()), net.now);
    net.check();
    assert_eq!(
        net.recv(c),
        vec![Response::error("QUEUE_ERROR", "QUEUE_ERROR")]
    );
    assert_eq!(net.server.queued_jobs(), 0);
}

#[test]
fn restore_keeps_priority_and_arrival_order() {
    let mut net = Net::new(27);
    let rec = |id, p, data: &str| JobRecord {
        durable_id: id,
        function: b("f"),
        unique: b(&format!("u{id}")),
        priority: p,
        data: b(data),
        when: None,
        reducer: None,
    };
    net.server.restore(
        vec![
            rec(5, Priority::Low, "low"),
            rec(2, Priority::Normal, "n2"),
            rec(1, Priority::Normal, "n1"),
            rec(9, Priority::High, "high"),
        ],
        net.now,
    );
    net.check();
    let w = net.connect();
    net.send(w, can_do("f"));
    for _ in 0..4 {
        net.send(w, grab());
    }
    assert_eq!(assigned_data(&net.recv(w)), ["high", "n1", "n2", "low"]);
}

#[test]
fn slow_reader_is_closed_at_the_output_bound() {
    let mut net = Net::with_config(28, |c| c.max_output_bytes = 1000);
    let c = net.connect();
    for _ in 0..20 {
        net.send(
            c,
            Request::Echo {
                data: b(&"x".repeat(100)),
            },
        );
    }
    assert!(matches!(net.events.as_slice(), [ServerEvent::Close { .. }]));
}

/// Small requests with large replies arriving in one read from a peer that has not read
/// yet: the server handles them as their output goes out, holding about
/// `input_pause_bytes` of it, instead of queueing every reply and closing the connection
/// at the output bound.
#[test]
fn requests_wait_while_their_replies_are_not_transmitted() {
    let mut net = Net::with_config(30, |c| {
        c.input_pause_bytes = 1000;
        c.max_output_bytes = 2000;
    });
    let c = net.connect();
    let echo = Request::Echo {
        data: b(&"x".repeat(100)),
    }
    .to_bytes();
    let all: Vec<u8> = (0..20).flat_map(|_| echo.iter().copied()).collect();
    net.server.handle_input(c, &all, net.now);
    net.collect_events();
    assert!(net.events.is_empty(), "{:?}", net.events);
    assert!(net.server.input_held(c));
    let mut replies = 0;
    let mut most = 0;
    for _ in 0..50 {
        let mut out = Vec::new();
        while net.server.poll_transmit(c, &mut out) > 0 {}
        most = most.max(out.len());
        replies += out.len() / echo.len();
        if !net.server.input_held(c) {
            break;
        }
        net.server.handle_input(c, &[], net.now);
    }
    net.collect_events();
    assert!(net.events.is_empty(), "{:?}", net.events);
    assert_eq!(replies, 20);
    assert!(most < 1000 + echo.len(), "{most} bytes queued at once");
    net.check();
}

/// A request that closes another connection (its client's output overflowed) does not
/// stop the requests read after it on the same connection.
#[test]
fn requests_after_one_that_closes_another_connection_are_handled() {
    let mut net = Net::with_config(31, |c| c.max_output_bytes = 1000);
    let (c, w) = (net.connect(), net.connect());
    net.send(c, fg("f", "u", "x"));
    net.send(w, can_do("f"));
    net.send(w, grab());
    assert_eq!(assigned_data(&net.recv(w)), ["x"]);
    let mut burst = Request::WorkData(WorkPayload {
        handle: b("H:test:1"),
        data: b(&"d".repeat(2000)),
    })
    .to_bytes()
    .to_vec();
    burst.extend_from_slice(&Request::Echo { data: b("after") }.to_bytes());
    net.server.handle_input(w, &burst, net.now);
    net.collect_events();
    assert!(
        matches!(net.events.as_slice(), [ServerEvent::Close { conn, .. }] if *conn == c),
        "{:?}",
        net.events
    );
    assert_eq!(net.recv(w), vec![Response::EchoRes { data: b("after") }]);
}

#[test]
fn cancel_of_a_running_job_lets_its_worker_finish_quietly() {
    let mut net = Net::with_config(29, |c| c.persist_background = true);
    let (a, c, w) = (net.connect(), net.connect(), net.connect());
    net.send(c, bg("f", "u", "x", Priority::Normal));
    net.server.persisted(1, Ok(()), net.now);
    net.send(c, fg("f", "u", "x"));
    net.send(w, can_do("f"));
    net.send(w, grab());
    assert_eq!(assigned_data(&net.recv(w)), ["x"]);
    net.events.clear();
    assert_eq!(net.admin(a, "cancel job H:test:1\r\n"), "OK\r\n");
    net.collect_events();
    assert_eq!(
        net.events,
        vec![
            ServerEvent::Persist(JobRecord {
                durable_id: 1,
                function: b("f"),
                unique: b("u"),
                priority: Priority::Normal,
                data: b("x"),
                when: None,
                reducer: None
            }),
            ServerEvent::Unpersist { durable_id: 1 }
        ]
        .split_off(1),
        "the store row goes at once"
    );
    assert_eq!(
        net.admin(a, "show jobs\r\n"),
        "H:test:1\t0\t1\t0\n.\n",
        "still running, ignored"
    );
    // The unique is free again: a new submission is a new job, not the cancelled one.
    net.send(c, fg("f", "u", "x"));
    net.send(
        w,
        Request::WorkData(WorkPayload {
            handle: b("H:test:1"),
            data: b("d"),
        }),
    );
    net.send(w, complete("H:test:1", "late"));
    assert_eq!(
        net.recv(w),
        vec![],
        "no ERROR for a cancelled job's results"
    );
    assert_eq!(
        net.recv(c),
        vec![
            created("H:test:1"),
            created("H:test:1"),
            Response::WorkFail {
                handle: b("H:test:1")
            },
            created("H:test:2"),
        ]
    );
    assert_eq!(net.admin(a, "show jobs\r\n"), "H:test:2\t0\t0\t0\n.\n");
    assert_eq!(
        net.admin(a, "cancel job H:test:1\r\n"),
        "ERR UNKNOWN_JOB\r\n"
    );
}

#[test]
fn cancelled_running_job_is_not_retried_when_its_worker_leaves() {
    let mut net = Net::new(30);
    let (a, c, w1) = (net.connect(), net.connect(), net.connect());
    net.send(c, bg("f", "", "x", Priority::Normal));
    net.send(w1, can_do("f"));
    net.send(w1, grab());
    net.admin(a, "cancel job H:test:1\r\n");
    let w2 = net.connect();
    net.send(w2, can_do("f"));
    net.send(w2, Request::PreSleep);
    net.eof(w1);
    assert_eq!(net.recv(w2), vec![], "nothing to wake for");
    assert_eq!(net.server.queued_jobs() + net.server.running_jobs(), 0);
}

#[test]
fn timers_are_forgotten_when_their_jobs_end() {
    let mut net = Net::new(31);
    let (c, w) = (net.connect(), net.connect());
    net.send(
        w,
        Request::CanDoTimeout {
            function: b("f"),
            timeout_ms: 3_600_000,
        },
    );
    for i in 0..200 {
        let h = format!("H:test:{}", i + 1);
        net.send(c, bg("f", "", "x", Priority::Normal));
        net.send(w, grab());
        assert_eq!(
            net.server.poll_timeout(),
            Some(net.now + Duration::from_secs(3600))
        );
        net.send(w, complete(&h, ""));
        assert_eq!(net.server.poll_timeout(), None, "job {h} left a timer");
    }
    // An epoch job cancelled before its time leaves no timer either.
    let a = net.connect();
    net.send(
        c,
        submit("f", "", "later", SubmitMode::Epoch(UNIX_START + 60)),
    );
    assert!(net.server.poll_timeout().is_some());
    assert_eq!(net.admin(a, "cancel job H:test:201\r\n"), "OK\r\n");
    assert_eq!(net.server.poll_timeout(), None);
}

#[test]
fn sub_second_can_do_timeout_is_raised_to_one_second() {
    for (timeout_ms, fires_after) in [(1, 1000), (999, 1000), (1000, 1000), (1500, 1500)] {
        let mut net = Net::new(32);
        let (c, w) = (net.connect(), net.connect());
        net.send(
            w,
            Request::CanDoTimeout {
                function: b("f"),
                timeout_ms,
            },
        );
        net.send(c, fg("f", "", "x"));
        net.send(w, grab());
        assert_eq!(
            net.server.poll_timeout(),
            Some(net.now + Duration::from_millis(fires_after)),
            "CAN_DO_TIMEOUT {timeout_ms}"
        );
    }
    // Zero means no limit.
    let mut net = Net::new(32);
    let (c, w) = (net.connect(), net.connect());
    net.send(
        w,
        Request::CanDoTimeout {
            function: b("f"),
            timeout_ms: 0,
        },
    );
    net.send(c, fg("f", "", "x"));
    net.send(w, grab());
    assert_eq!(net.server.poll_timeout(), None);
}

#[test]
fn unique_of_64_bytes_is_kept_whole_and_65_is_refused() {
    // gearmand accepts 64 bytes but truncates to 63, so such a job never coalesces and
    // cannot be found by GET_STATUS_UNIQUE. We keep all 64 bytes: both work.
    let mut net = Net::new(33);
    let (a, c) = (net.connect(), net.connect());
    let u64b = "u".repeat(64);
    net.send(c, fg("f", &u64b, "x"));
    net.send(c, fg("f", &u64b, "x"));
    net.send(c, Request::GetStatusUnique { unique: b(&u64b) });
    net.send(c, fg("f", &"u".repeat(65), "x"));
    assert_eq!(
        net.recv(c),
        vec![
            created("H:test:1"),
            created("H:test:1"),
            Response::StatusResUnique(StatusResUnique {
                unique: b(&u64b),
                known: true,
                running: false,
                numerator: 0,
                denominator: 0,
                client_count: 2
            }),
            Response::error("ARGUMENT_TOO_LARGE", "Unique value too large"),
        ]
    );
    assert_eq!(net.admin(a, "show unique jobs\r\n"), format!("{u64b}\n.\n"));
}

#[test]
fn far_future_epoch_waits_without_overflow() {
    let mut net = Net::new(34);
    let (a, c, w) = (net.connect(), net.connect(), net.connect());
    net.send(c, submit("f", "", "never", SubmitMode::Epoch(i64::MAX)));
    assert_eq!(net.recv(c), vec![created("H:test:1")]);
    net.send(w, can_do("f"));
    net.send(w, grab());
    assert_eq!(net.recv(w), vec![Response::NoJob]);
    assert_eq!(net.admin(a, "status\r\n"), "f\t1\t0\t1\n.\n");
    assert!(net.server.poll_timeout().is_some_and(|t| t > net.now));
}

#[test]
fn restored_epoch_jobs_wait_for_their_time_and_uniques_coalesce() {
    let mut net = Net::new(35);
    net.server.restore(
        vec![JobRecord {
            durable_id: 7,
            function: b("f"),
            unique: b("u"),
            priority: Priority::Normal,
            data: b("x"),
            when: Some(UNIX_START + 10),
            reducer: None,
        }],
        net.now,
    );
    net.collect_events();
    assert!(
        net.events.is_empty(),
        "restored jobs are not persisted again"
    );
    let (c, w) = (net.connect(), net.connect());
    net.send(c, fg("f", "u", "other data"));
    net.send(w, can_do("f"));
    net.send(w, grab());
    assert_eq!(net.recv(w), vec![Response::NoJob]);
    net.send(w, Request::PreSleep);
    net.advance(Duration::from_secs(10));
    assert_eq!(net.recv(w), vec![Response::Noop]);
    net.send(w, grab());
    net.send(w, complete("H:test:1", "done"));
    assert_eq!(
        net.recv(c),
        vec![
            created("H:test:1"),
            Response::WorkComplete(WorkPayload {
                handle: b("H:test:1"),
                data: b("done")
            })
        ]
    );
    net.collect_events();
    assert_eq!(net.events, vec![ServerEvent::Unpersist { durable_id: 7 }]);
}

#[test]
fn a_client_that_also_ran_its_own_job_leaves_and_the_job_ends() {
    let mut net = Net::new(36);
    let (cw, w2) = (net.connect(), net.connect());
    net.send(w2, can_do("f"));
    net.send(w2, Request::PreSleep);
    assert_eq!(net.recv(w2), vec![]);
    net.send(cw, can_do("f"));
    net.send(cw, fg("f", "", "mine"));
    assert_eq!(net.recv(w2), vec![Response::Noop]);
    net.send(cw, grab());
    net.send(w2, grab());
    assert_eq!(net.recv(w2), vec![Response::NoJob]);
    net.send(w2, Request::PreSleep);
    net.eof(cw);
    assert_eq!(net.recv(w2), vec![], "nobody waits for it: not requeued");
    assert_eq!(net.server.queued_jobs() + net.server.running_jobs(), 0);
}

#[test]
fn can_do_wakes_a_sleeper_when_work_waits() {
    let mut net = Net::new(37);
    let (c, w) = (net.connect(), net.connect());
    net.send(c, bg("g", "", "x", Priority::Normal));
    net.send(w, can_do("f"));
    net.send(w, Request::PreSleep);
    assert_eq!(net.recv(w), vec![]);
    net.send(w, can_do("g"));
    assert_eq!(net.recv(w), vec![Response::Noop]);
    // Already woken: more work brings no second NOOP until it grabs.
    net.send(c, bg("g", "", "y", Priority::Normal));
    assert_eq!(net.recv(w), vec![]);
    net.send(w, grab());
    net.send(w, Request::PreSleep);
    assert_eq!(
        net.recv(w),
        vec![assign_uniq("H:test:1", "g", "", "x"), Response::Noop],
        "PRE_SLEEP with work waiting is answered at once"
    );
}

#[test]
fn maxqueue_counts_every_priority_lets_coalescing_through_and_resets() {
    let mut net = Net::new(38);
    let (a, c) = (net.connect(), net.connect());
    net.send(c, bg("f", "u", "x", Priority::Low));
    assert_eq!(net.admin(a, "maxqueue f 5 1 0\r\n"), "OK\r\n");
    net.send(c, bg("f", "", "y", Priority::Normal));
    net.send(c, bg("f", "u", "x", Priority::Normal));
    net.send(c, bg("f", "", "z", Priority::High));
    net.send(c, bg("f", "", "w", Priority::Low));
    assert_eq!(net.admin(a, "maxqueue f\r\n"), "OK\r\n");
    net.send(c, bg("f", "", "v", Priority::Normal));
    assert_eq!(
        net.recv(c),
        vec![
            created("H:test:1"),
            Response::error("QUEUE_ERROR", "Job queue is full"),
            created("H:test:1"),
            created("H:test:2"),
            created("H:test:3"),
            created("H:test:4"),
        ]
    );
}

#[test]
fn drop_function_refuses_while_jobs_wait_and_never_orphans_them() {
    let mut net = Net::new(39);
    let (a, c, w) = (net.connect(), net.connect(), net.connect());
    net.send(c, bg("f", "", "x", Priority::Normal));
    assert_eq!(
        net.admin(a, "drop function F\r\n"),
        "ERR there are still connected workers or executing clients\r\n"
    );
    net.send(w, can_do("f"));
    net.send(w, grab());
    net.send(w, complete("H:test:1", ""));
    net.send(w, Request::CantDo { function: b("f") });
    assert_eq!(
        net.admin(a, "drop function F\r\n"),
        "OK\r\n",
        "names compare case-insensitively"
    );
    assert_eq!(net.admin(a, "status\r\n"), ".\n");
}

#[test]
fn long_admin_lines_and_six_tokens_close_the_connection() {
    let mut net = Net::with_config(40, |c| c.limits.max_admin_line = 64);
    let (long, six, good) = (net.connect(), net.connect(), net.connect());
    net.send_raw(long, "x".repeat(100).as_bytes());
    net.send_raw(six, b"a b c d e f\r\n");
    let closed: Vec<_> = net
        .events
        .iter()
        .filter_map(|e| match e {
            ServerEvent::Close { conn, .. } => Some(*conn),
            _ => None,
        })
        .collect();
    assert_eq!(closed, vec![long, six]);
    assert_eq!(net.raw(six), b"", "nothing is answered to six tokens");
    assert_eq!(
        net.admin(good, "STATUS extra\r\n"),
        ".\n",
        "case-insensitive, extra tokens ignored"
    );
}

#[test]
fn job_created_follows_request_order_across_new_coalesced_and_refused_submissions() {
    let mut net = Net::new(41);
    let (a, c) = (net.connect(), net.connect());
    net.admin(a, "maxqueue g 1\r\n");
    let mut bytes = Vec::new();
    for req in [
        fg("f", "u", "1"),
        bg("g", "", "2", Priority::Low),
        fg("f", "u", "1"),
        bg("g", "", "3", Priority::Low),
        Request::Echo { data: b("e") },
        fg("f", "", "4"),
    ] {
        bytes.extend_from_slice(&req.to_bytes());
    }
    net.send_raw(c, &bytes);
    assert_eq!(
        net.recv(c),
        vec![
            created("H:test:1"),
            created("H:test:2"),
            created("H:test:1"),
            Response::error("QUEUE_ERROR", "Job queue is full"),
            Response::EchoRes { data: b("e") },
            created("H:test:3"),
        ]
    );
}

/// The store row a job of function `f`, unique `u`, data `x` at normal priority gets.
fn record(durable_id: u64) -> JobRecord {
    JobRecord {
        durable_id,
        function: b("f"),
        unique: b("u"),
        priority: Priority::Normal,
        data: b("x"),
        when: None,
        reducer: None,
    }
}

#[test]
fn background_coalescing_onto_a_queued_foreground_job_stores_it_before_job_created() {
    let mut net = Net::with_config(42, |c| c.persist_background = true);
    let (a, c, d, w) = (net.connect(), net.connect(), net.connect(), net.connect());
    net.send(c, fg("f", "u", "x"));
    assert_eq!(net.recv(c), vec![created("H:test:1")]);
    assert_eq!(net.events, vec![], "a foreground job is not stored");
    net.send(d, bg("f", "u", "other data", Priority::Low));
    net.send(d, Request::Echo { data: b("after") });
    assert_eq!(net.events, vec![ServerEvent::Persist(record(1))]);
    assert_eq!(
        net.recv(d),
        vec![],
        "JOB_CREATED and what follows wait for the store"
    );
    assert_eq!(net.admin(a, "show jobs\r\n"), "H:test:1\t0\t0\t1\n.\n");
    net.server.persisted(1, Ok(()), net.now);
    net.check();
    assert_eq!(
        net.recv(d),
        vec![created("H:test:1"), Response::EchoRes { data: b("after") }]
    );
    // Stored, it is a durable background job: it outlives its foreground client, a lost
    // worker requeues it, and its end deletes the row.
    net.eof(c);
    net.send(w, can_do("f"));
    net.send(w, grab());
    net.eof(w);
    let w = net.connect();
    net.send(w, can_do("f"));
    net.send(w, grab());
    assert_eq!(assigned_data(&net.recv(w)), ["x"]);
    net.events.clear();
    net.send(w, complete("H:test:1", "done"));
    assert_eq!(net.events, vec![ServerEvent::Unpersist { durable_id: 1 }]);
}

#[test]
fn failed_late_store_write_is_an_error_and_the_job_runs_on_for_its_client() {
    let mut net = Net::with_config(43, |c| c.persist_background = true);
    let (a, c, d, w) = (net.connect(), net.connect(), net.connect(), net.connect());
    net.send(c, fg("f", "u", "x"));
    net.send(w, can_do("f"));
    net.send(w, grab());
    assert_eq!(assigned_data(&net.recv(w)), ["x"]);
    net.send(d, bg("f", "u", "x", Priority::High));
    assert_eq!(net.events, vec![ServerEvent::Persist(record(1))]);
    net.server.persisted(1, Err("disk full".into()), net.now);
    net.check();
    assert_eq!(
        net.recv(d),
        vec![Response::error("QUEUE_ERROR", "QUEUE_ERROR")]
    );
    assert_eq!(
        net.admin(a, "show jobs\r\n"),
        "H:test:1\t0\t0\t0\n.\n",
        "nothing stored"
    );
    net.send(w, complete("H:test:1", "done"));
    assert_eq!(
        net.recv(c),
        vec![
            created("H:test:1"),
            Response::WorkComplete(WorkPayload {
                handle: b("H:test:1"),
                data: b("done")
            })
        ]
    );
    assert_eq!(net.events.len(), 1, "no Unpersist for a row never stored");
}

#[test]
fn failed_late_store_write_drops_a_queued_job_whose_clients_all_left() {
    let mut net = Net::with_config(44, |c| c.persist_background = true);
    let (c, d) = (net.connect(), net.connect());
    net.send(c, fg("f", "u", "x"));
    net.send(d, bg("f", "u", "x", Priority::Normal));
    net.eof(c);
    assert_eq!(
        net.server.queued_jobs(),
        1,
        "kept while it may yet be stored"
    );
    net.server.persisted(1, Err("disk full".into()), net.now);
    net.check();
    assert_eq!(
        net.recv(d),
        vec![Response::error("QUEUE_ERROR", "QUEUE_ERROR")]
    );
    assert_eq!(net.server.queued_jobs(), 0, "nobody waits for it any more");
}

#[test]
fn job_ending_before_its_late_store_write_is_answered_still_answers_the_submitter() {
    let mut net = Net::with_config(45, |c| c.persist_background = true);
    let (c, d, w) = (net.connect(), net.connect(), net.connect());
    net.send(c, fg("f", "u", "x"));
    net.send(d, bg("f", "u", "x", Priority::Normal));
    net.send(w, can_do("f"));
    net.send(w, grab());
    net.send(w, complete("H:test:1", "done"));
    assert_eq!(
        net.events,
        vec![
            ServerEvent::Persist(record(1)),
            ServerEvent::Unpersist { durable_id: 1 }
        ],
        "the store inserts then removes the row"
    );
    assert_eq!(net.recv(c).len(), 2, "JOB_CREATED and WORK_COMPLETE");
    assert_eq!(net.recv(d), vec![], "still waiting for the store");
    net.server.persisted(1, Ok(()), net.now);
    net.check();
    assert_eq!(net.recv(d), vec![created("H:test:1")]);
    // The same with a failing store: the answer is the store's.
    net.send(c, fg("f", "u", "x"));
    net.send(d, bg("f", "u", "x", Priority::Normal));
    net.send(w, grab());
    net.send(
        w,
        Request::WorkFail {
            handle: b("H:test:2"),
        },
    );
    net.server.persisted(2, Err("disk full".into()), net.now);
    net.check();
    assert_eq!(
        net.recv(d),
        vec![Response::error("QUEUE_ERROR", "QUEUE_ERROR")]
    );
    assert_eq!(net.server.queued_jobs() + net.server.running_jobs(), 0);
}

#[test]
fn later_background_coalescers_wait_for_the_same_write_and_foreground_ones_do_not() {
    let mut net = Net::with_config(46, |c| c.persist_background = true);
    let (c, d, e, f) = (net.connect(), net.connect(), net.connect(), net.connect());
    net.send(c, fg("f", "u", "x"));
    net.send(d, bg("f", "u", "x", Priority::Normal));
    net.send(e, submit("f", "u", "x", SubmitMode::Epoch(UNIX_START + 60)));
    net.send(f, fg("f", "u", "x"));
    assert_eq!(
        net.events,
        vec![ServerEvent::Persist(record(1))],
        "one write for the job"
    );
    assert_eq!(
        net.recv(f),
        vec![created("H:test:1")],
        "foreground: at once"
    );
    assert_eq!(net.recv(d), vec![]);
    assert_eq!(net.recv(e), vec![]);
    net.server.persisted(1, Ok(()), net.now);
    net.check();
    assert_eq!(net.recv(d), vec![created("H:test:1")]);
    assert_eq!(net.recv(e), vec![created("H:test:1")]);
    // Stored now: a further background submission is acknowledged at once.
    net.send(d, bg("f", "u", "x", Priority::Normal));
    assert_eq!(net.recv(d), vec![created("H:test:1")]);
    assert_eq!(net.events.len(), 1);
}

#[test]
fn a_waiting_submitter_that_leaves_takes_its_held_reply_with_it() {
    let mut net = Net::with_config(47, |c| c.persist_background = true);
    let (c, d, e) = (net.connect(), net.connect(), net.connect());
    net.send(c, fg("f", "u", "x"));
    net.send(d, bg("f", "u", "x", Priority::Normal));
    net.send(e, bg("f", "u", "x", Priority::Normal));
    net.eof(d);
    net.server.persisted(1, Ok(()), net.now);
    net.check();
    assert_eq!(net.recv(e), vec![created("H:test:1")]);
}

#[test]
fn cancelled_job_waiting_for_its_first_write_is_answered_by_the_store() {
    let mut net = Net::with_config(48, |c| c.persist_background = true);
    let (a, d) = (net.connect(), net.connect());
    net.send(d, bg("f", "u", "x", Priority::Normal));
    assert_eq!(net.admin(a, "cancel job H:test:1\r\n"), "OK\r\n");
    assert_eq!(
        net.events,
        vec![
            ServerEvent::Persist(record(1)),
            ServerEvent::Unpersist { durable_id: 1 }
        ]
    );
    assert_eq!(net.recv(d), vec![]);
    net.server.persisted(1, Ok(()), net.now);
    net.check();
    assert_eq!(net.recv(d), vec![created("H:test:1")]);
}

#[test]
fn admin_shutdown_only_from_a_local_peer() {
    let mut net = Net::new(7);
    let remote = net.connect_from("192.0.2.7");
    let mapped = net.connect_from("::ffff:192.0.2.8");
    let denied =
        "ERR PERMISSION_DENIED shutdown+is+only+accepted+from+loopback+or+a+Unix+socket\r\n";
    assert_eq!(net.admin(remote, "shutdown\r\n"), denied);
    assert_eq!(net.admin(mapped, "shutdown graceful\r\n"), denied);
    net.collect_events();
    assert!(!net
        .events
        .iter()
        .any(|e| matches!(e, ServerEvent::Shutdown { .. })));
    for (ip, line, graceful) in [
        ("127.0.0.1", "shutdown\r\n", false),
        ("::1", "shutdown graceful\n", true),
        ("::ffff:127.0.0.1", "SHUTDOWN\r\n", false),
        ("unix", "shutdown graceful\r\n", true),
    ] {
        let local = net.connect_from(ip);
        assert_eq!(net.admin(local, line), "OK\r\n", "{ip} {line:?}");
        net.collect_events();
        assert_eq!(
            net.events.pop(),
            Some(ServerEvent::Shutdown { graceful }),
            "{ip}"
        );
    }
    assert_eq!(
        net.admin(remote, "shutdown later\r\n"),
        "ERR INVALID_ARGUMENTS An+incomplete+set+of+arguments+was+sent+to+this+command+shutdown\r\n"
    );
}

#[test]
fn stats_count_jobs_where_they_change_state_and_snapshot_matches_status() {
    let mut net = Net::with_config(8, |c| c.job_retries = Some(1));
    let (c, w) = (net.connect(), net.connect());
    net.send(w, can_do("f"));
    for data in ["a", "b", "c", "d"] {
        net.send(c, fg("f", "", data));
    }
    // Coalesced: not a new job.
    net.send(c, bg("f", "u", "e", Priority::High));
    net.send(c, bg("f", "u", "e", Priority::High));
    net.advance(Duration::from_millis(20));
    net.send(w, grab());
    net.advance(Duration::from_millis(30));
    net.send(w, complete("H:test:5", "ok"));
    net.send(w, grab());
    net.send(
        w,
        Request::WorkFail {
            handle: b("H:test:1"),
        },
    );
    net.send(w, grab());
    net.send(
        w,
        Request::WorkException(WorkPayload {
            handle: b("H:test:2"),
            data: b("boom"),
        }),
    );
    net.send(w, grab());
    // c is lost (retried) and requeued behind d; d is lost too (retried); c is lost again
    // with its one retry used: failed for good.
    net.eof(w);
    let w = net.connect();
    net.send(w, can_do("f"));
    net.send(w, grab());
    let snapshot = net.server.snapshot();
    assert_eq!(snapshot.functions.len(), 1);
    let g = &snapshot.functions[0];
    assert_eq!(
        (g.total, g.running, g.workers, g.queued),
        (2, 1, 1, [0, 1, 0])
    );
    assert_eq!(snapshot.workers.len(), 1);
    assert_eq!(snapshot.workers[0].functions, vec![b("f")]);
    assert_eq!(snapshot.connections, 2);
    let admin = net.connect();
    assert_eq!(net.admin(admin, "status\n"), "f\t2\t1\t1\n.\n");
    net.eof(w);
    let w = net.connect();
    net.send(w, can_do("f"));
    net.send(w, grab());
    net.eof(w);
    assert_eq!(net.admin(admin, "cancel job H:test:4\n"), "OK\r\n");
    let s = net.server.stats().function_named(b"f").unwrap();
    assert_eq!(s.submitted, 5);
    assert_eq!(s.completed, 1);
    assert_eq!(s.exceptions, 1);
    assert_eq!(s.failed, 2, "a WORK_FAIL and a job out of retries");
    assert_eq!(s.retried, 2);
    assert_eq!(s.cancelled, 1);
    assert_eq!(s.run_time.count(), 3);
    assert!(
        (s.run_time.sum_secs - 0.03).abs() < 1e-9,
        "{}",
        s.run_time.sum_secs
    );
    // Assigned: the high-priority job after 20 ms, a, b, c and d after 50 ms, c at once.
    assert_eq!(s.queue_wait.count(), 6);
    let waited = s.queue_wait.sum_secs;
    assert!((waited - 0.22).abs() < 1e-9, "{waited}");
}

/// `drop function` compares case-insensitively (as gearmand), but drops the function
/// named exactly when it exists, not another spelling of it.
#[test]
fn drop_function_prefers_the_exact_name() {
    let mut net = Net::new(11);
    let admin = net.connect();
    assert_eq!(net.admin(admin, "create function zz\r\n"), "OK\r\n");
    assert_eq!(net.admin(admin, "create function ZZ\r\n"), "OK\r\n");
    assert_eq!(net.admin(admin, "drop function zz\r\n"), "OK\r\n");
    assert_eq!(net.admin(admin, "status\n"), "ZZ\t0\t0\t0\n.\n");
    // Another spelling still finds it.
    assert_eq!(net.admin(admin, "drop function Zz\r\n"), "OK\r\n");
    assert_eq!(net.admin(admin, "status\n"), ".\n");
}
