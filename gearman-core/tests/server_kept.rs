//! Results kept for background jobs (`--keep-results`), on the virtual clock: kept after
//! WORK_COMPLETE, WORK_FAIL and WORK_EXCEPTION, read back by handle and by unique, gone at
//! the keep time, the byte bound evicting the oldest, foreground jobs never kept, and the
//! durable records restored (still expiring at their time).

mod support;

use gearman_core::proto::{
    GrabMode, Priority, Request, Response, SubmitJob, SubmitMode, WorkPayload,
};
use gearman_core::server::{ExtraKind, ExtraRecord, RetryPolicy, ServerConfig, ServerEvent};
use std::time::Duration;
use support::{b, Net, UNIX_START};

const KEEP: Duration = Duration::from_secs(600);

fn keeping(tweak: impl FnOnce(&mut ServerConfig)) -> Net {
    Net::with_config(11, |c| {
        c.keep_results = Some(KEEP);
        tweak(c);
    })
}

fn submit(f: &str, unique: &str, data: &str, background: bool) -> Request {
    Request::Submit(SubmitJob {
        function: b(f),
        unique: b(unique),
        mode: if background {
            SubmitMode::Background(Priority::Normal)
        } else {
            SubmitMode::Foreground(Priority::Normal)
        },
        data: b(data),
    })
}

fn grab(net: &mut Net, w: gearman_core::server::ConnId) -> String {
    net.send(w, Request::GrabJob(GrabMode::Plain));
    match net.recv(w).last() {
        Some(Response::JobAssign(a)) => String::from_utf8_lossy(&a.handle).into_owned(),
        other => panic!("no job assigned: {other:?}"),
    }
}

fn complete(net: &mut Net, w: gearman_core::server::ConnId, h: &str, data: &str) {
    net.send(
        w,
        Request::WorkComplete(WorkPayload {
            handle: b(h),
            data: b(data),
        }),
    );
}

/// `data` in the reply's base64.
fn b64(data: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(data)
}

#[test]
fn complete_fail_and_exception_are_kept_and_read_back_by_handle_and_unique() {
    let mut net = keeping(|_| {});
    let (client, worker, admin) = (net.connect(), net.connect(), net.connect());
    net.send(worker, Request::CanDo { function: b("f") });
    net.send(client, submit("f", "u1", "a", true));
    net.send(client, submit("f", "u2", "b", true));
    net.send(client, submit("f", "", "c", true));
    let (ha, hb, hc) = (
        grab(&mut net, worker),
        grab(&mut net, worker),
        grab(&mut net, worker),
    );
    complete(&mut net, worker, &ha, "result \0 bytes");
    net.advance(Duration::from_secs(3));
    net.send(worker, Request::WorkFail { handle: b(&hb) });
    net.send(
        worker,
        Request::WorkException(WorkPayload {
            handle: b(&hc),
            data: b("boom"),
        }),
    );
    let t0 = UNIX_START;
    assert_eq!(
        net.admin(admin, &format!("show result {ha}\n")),
        format!("OK complete {t0} {ha} {}\n", b64("result \0 bytes"))
    );
    assert_eq!(
        net.admin(admin, &format!("show result {hb}\n")),
        format!("OK fail {} {hb} -\n", t0 + 3)
    );
    assert_eq!(
        net.admin(admin, &format!("show result {hc}\n")),
        format!("OK exception {} {hc} {}\n", t0 + 3, b64("boom"))
    );
    assert_eq!(
        net.admin(admin, "show result unique f u2\n"),
        format!("OK fail {} {hb} -\n", t0 + 3)
    );
    assert_eq!(
        net.admin(admin, "SHOW RESULT UNIQUE f u1\n"),
        format!("OK complete {t0} {ha} {}\n", b64("result \0 bytes"))
    );
    assert_eq!(
        net.admin(admin, "show result H:nope:1\n"),
        "ERR UNKNOWN_JOB\r\n"
    );
    assert_eq!(
        net.admin(admin, "show result unique g u1\n"),
        "ERR UNKNOWN_JOB\r\n"
    );
    assert_eq!(
        net.admin(admin, "show result unique f\n"),
        "ERR UNKNOWN_SHOW_ARGUMENTS\r\n"
    );
    // Nothing changes on the binary protocol: the ended job is unknown to GET_STATUS.
    net.send(client, Request::GetStatus { handle: b(&ha) });
    let status = net.recv(client);
    let Some(Response::StatusRes(s)) = status.last() else {
        panic!("{status:?}")
    };
    assert!(!s.known && !s.running, "{s:?}");
    // A new job with the same unique replaces what the unique finds, not the old handle.
    net.send(client, submit("f", "u1", "a", true));
    let ha2 = grab(&mut net, worker);
    complete(&mut net, worker, &ha2, "second");
    assert_eq!(
        net.admin(admin, "show result unique f u1\n"),
        format!("OK complete {} {ha2} {}\n", t0 + 3, b64("second"))
    );
    assert!(net
        .admin(admin, &format!("show result {ha}\n"))
        .starts_with("OK complete"));
}

#[test]
fn results_expire_at_the_keep_time() {
    let mut net = keeping(|_| {});
    let (client, worker, admin) = (net.connect(), net.connect(), net.connect());
    net.send(worker, Request::CanDo { function: b("f") });
    net.send(client, submit("f", "u", "a", true));
    let h = grab(&mut net, worker);
    complete(&mut net, worker, &h, "ok");
    assert_eq!(
        net.server.poll_timeout(),
        Some(net.now + KEEP),
        "the core hands out the expiry as its next timer"
    );
    net.advance(KEEP - Duration::from_secs(1));
    assert!(net
        .admin(admin, &format!("show result {h}\n"))
        .starts_with("OK complete"));
    net.advance(Duration::from_secs(1));
    assert_eq!(
        net.admin(admin, &format!("show result {h}\n")),
        "ERR UNKNOWN_JOB\r\n"
    );
    assert_eq!(
        net.admin(admin, "show result unique f u\n"),
        "ERR UNKNOWN_JOB\r\n"
    );
    assert_eq!(net.server.poll_timeout(), None);
}

/// A keep time past what the clock can count (`--keep-results 99999999d`, or
/// `Duration::MAX` from a library user) keeps results, rather than expiring them at once.
#[test]
fn a_keep_time_past_the_clock_keeps_results() {
    let mut net = Net::with_config(12, |c| c.keep_results = Some(Duration::MAX));
    let (client, worker, admin) = (net.connect(), net.connect(), net.connect());
    net.send(worker, Request::CanDo { function: b("f") });
    net.send(client, submit("f", "u", "a", true));
    let h = grab(&mut net, worker);
    complete(&mut net, worker, &h, "ok");
    net.advance(Duration::from_secs(3600));
    assert!(net
        .admin(admin, &format!("show result {h}\n"))
        .starts_with("OK complete"));
}

#[test]
fn the_byte_bound_evicts_the_oldest_first() {
    // Each result below counts 10 data bytes + handle "H:test:N" (8) + "f" + "" = 19.
    let mut net = keeping(|c| c.keep_results_bytes = 40);
    let (client, worker, admin) = (net.connect(), net.connect(), net.connect());
    net.send(worker, Request::CanDo { function: b("f") });
    let mut handles = Vec::new();
    for i in 0..3 {
        net.send(client, submit("f", "", &format!("job{i}"), true));
        let h = grab(&mut net, worker);
        complete(&mut net, worker, &h, &format!("result{i:04}"));
        handles.push(h);
    }
    let shown: Vec<bool> = handles
        .iter()
        .map(|h| {
            net.admin(admin, &format!("show result {h}\n"))
                .starts_with("OK")
        })
        .collect();
    assert_eq!(shown, vec![false, true, true], "the oldest went");
    // A result larger than the whole bound is not kept, and evicts nothing.
    net.send(client, submit("f", "", "big", true));
    let big = grab(&mut net, worker);
    complete(&mut net, worker, &big, &"x".repeat(41));
    assert_eq!(
        net.admin(admin, &format!("show result {big}\n")),
        "ERR UNKNOWN_JOB\r\n"
    );
    assert!(net
        .admin(admin, &format!("show result {}\n", handles[1]))
        .starts_with("OK"));
}

#[test]
fn foreground_jobs_retried_failures_and_a_server_keeping_nothing() {
    let mut net = keeping(|c| {
        c.retry.insert(
            b("r"),
            RetryPolicy {
                count: 1,
                backoff: Duration::from_secs(5),
            },
        );
    });
    let (client, worker, admin) = (net.connect(), net.connect(), net.connect());
    net.send(worker, Request::CanDo { function: b("f") });
    net.send(worker, Request::CanDo { function: b("r") });
    net.send(client, submit("f", "fg", "a", false));
    let h = grab(&mut net, worker);
    complete(&mut net, worker, &h, "ok");
    assert_eq!(
        net.admin(admin, &format!("show result {h}\n")),
        "ERR UNKNOWN_JOB\r\n",
        "foreground jobs are not kept"
    );
    assert_eq!(
        net.admin(admin, "show result unique f fg\n"),
        "ERR UNKNOWN_JOB\r\n"
    );
    // A failure retried later is not the end; the one that dead-letters the job is.
    net.send(client, submit("r", "", "x", true));
    let h = grab(&mut net, worker);
    net.send(worker, Request::WorkFail { handle: b(&h) });
    assert_eq!(
        net.admin(admin, &format!("show result {h}\n")),
        "ERR UNKNOWN_JOB\r\n"
    );
    net.advance(Duration::from_secs(5));
    assert_eq!(grab(&mut net, worker), h);
    net.send(
        worker,
        Request::WorkException(WorkPayload {
            handle: b(&h),
            data: b("again"),
        }),
    );
    assert!(net
        .admin(admin, &format!("show result {h}\n"))
        .starts_with("OK exception"));

    let mut off = Net::new(1);
    let admin = off.connect();
    assert_eq!(
        off.admin(admin, "show result H:test:1\n"),
        "ERR RESULTS_NOT_KEPT start+gearmand-rs+with+--keep-results+DURATION\r\n"
    );
}

fn durable(net_tweak: impl FnOnce(&mut ServerConfig)) -> Net {
    keeping(|c| {
        c.persist_background = true;
        c.durable_extras = true;
        net_tweak(c);
    })
}

#[test]
fn kept_results_are_stored_and_restored_with_their_expiry() {
    let mut net = durable(|_| {});
    let (client, worker, admin) = (net.connect(), net.connect(), net.connect());
    net.send(worker, Request::CanDo { function: b("f") });
    net.send(client, submit("f", "u", "a", true));
    let Some(ServerEvent::Persist(record)) = net.events.pop() else {
        panic!("{:?}", net.events)
    };
    let job_id = record.durable_id;
    net.server.persisted(job_id, Ok(()), net.now);
    net.recv(client);
    let h = grab(&mut net, worker);
    net.advance(Duration::from_secs(100));
    net.events.clear();
    complete(&mut net, worker, &h, "done");
    // The result is written before the job's row goes.
    let kept: ExtraRecord = match &net.events[..] {
        [ServerEvent::PutExtra {
            record,
            acknowledge: false,
        }, ServerEvent::Unpersist { durable_id }]
            if *durable_id == job_id =>
        {
            record.clone()
        }
        other => panic!("{other:?}"),
    };
    assert_eq!(kept.kind, ExtraKind::KeptResult);
    let listing = net.admin(admin, &format!("show result {h}\n"));

    // A restart 200 s later (the job ended at +100 s; 600 s kept): 300 s left.
    let mut again = durable(|c| c.wall_anchor.1 = UNIX_START + 300);
    again
        .server
        .restore_with(Vec::new(), vec![kept.clone()], again.now);
    again.collect_events();
    assert!(again.events.is_empty(), "{:?}", again.events);
    let admin = again.connect();
    assert_eq!(again.admin(admin, &format!("show result {h}\n")), listing);
    assert_eq!(
        again.admin(admin, "show result unique f u\n"),
        listing,
        "found by unique after the restart"
    );
    again.advance(Duration::from_secs(399));
    assert_eq!(again.admin(admin, &format!("show result {h}\n")), listing);
    again.events.clear();
    again.advance(Duration::from_secs(1));
    assert_eq!(
        again.admin(admin, &format!("show result {h}\n")),
        "ERR UNKNOWN_JOB\r\n"
    );
    assert_eq!(
        again.events,
        vec![ServerEvent::DeleteExtra {
            kind: ExtraKind::KeptResult,
            key: kept.key
        }],
        "the record goes when it expires"
    );

    // Restored after its time, or by a server keeping no results: deleted.
    for late in [
        durable(|c| c.wall_anchor.1 = UNIX_START + 700),
        Net::with_config(2, |c| {
            c.persist_background = true;
            c.durable_extras = true;
        }),
    ] {
        let mut late = late;
        late.server
            .restore_with(Vec::new(), vec![kept.clone()], late.now);
        late.collect_events();
        assert_eq!(
            late.events,
            vec![ServerEvent::DeleteExtra {
                kind: ExtraKind::KeptResult,
                key: kept.key
            }]
        );
    }
}

#[test]
fn a_restore_over_the_bound_keeps_the_newest() {
    let mut net = durable(|c| c.keep_results_bytes = 1000);
    let (client, worker) = (net.connect(), net.connect());
    net.send(worker, Request::CanDo { function: b("f") });
    for i in 0..3 {
        net.send(client, submit("f", "", &format!("j{i}"), true));
        if let Some(ServerEvent::Persist(r)) = net.events.pop() {
            net.server.persisted(r.durable_id, Ok(()), net.now);
        }
        let h = grab(&mut net, worker);
        complete(&mut net, worker, &h, &"r".repeat(100));
    }
    let mut records: Vec<ExtraRecord> = net
        .events
        .iter()
        .filter_map(|e| match e {
            ServerEvent::PutExtra { record, .. } => Some(record.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(records.len(), 3);
    let oldest = records[0].key;
    records.reverse();
    // Room for two only after the restart.
    let mut again = durable(|c| c.keep_results_bytes = 250);
    again.server.restore_with(Vec::new(), records, again.now);
    again.collect_events();
    assert_eq!(
        again.events,
        vec![ServerEvent::DeleteExtra {
            kind: ExtraKind::KeptResult,
            key: oldest
        }]
    );
    assert_eq!(again.server.kept_results().count(), 2);
}
