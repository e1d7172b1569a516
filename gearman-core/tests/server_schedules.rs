//! SUBMIT_JOB_SCHED on the virtual clock: firings at matching minutes, a firing skipped
//! while the previous job still runs, `show schedules`, `cancel job`, zones, refusals,
//! and the durable record (JOB_CREATED only once stored, restored after a restart).

mod support;

use gearman_core::proto::{GrabMode, Request, Response, SubmitJobSched, WorkPayload};
use gearman_core::server::{ConnId, ExtraKind, ServerEvent};
use std::time::Duration;
use support::{b, Net, UNIX_START};

fn sched(function: &str, unique: &str, fields: [&str; 5]) -> Request {
    Request::SubmitSched(Box::new(SubmitJobSched {
        function: b(function),
        unique: b(unique),
        schedule: fields.map(b),
        data: b("tick"),
    }))
}

fn created(net: &mut Net, conn: ConnId) -> String {
    match net.recv(conn).as_slice() {
        [Response::JobCreated { handle }] => String::from_utf8_lossy(handle).into_owned(),
        other => panic!("expected JOB_CREATED, got {other:?}"),
    }
}

fn grab(net: &mut Net, w: ConnId) -> Option<String> {
    net.send(w, Request::GrabJob(GrabMode::Plain));
    match net.recv(w).last() {
        Some(Response::JobAssign(a)) => Some(String::from_utf8_lossy(&a.handle).into_owned()),
        Some(Response::NoJob) => None,
        other => panic!("unexpected reply to a grab: {other:?}"),
    }
}

/// `show schedules` fields of the only schedule.
fn listing(net: &mut Net, admin: ConnId) -> Vec<String> {
    let text = net.admin(admin, "show schedules\n");
    let mut lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.pop(), Some("."), "{text:?}");
    assert_eq!(lines.len(), 1, "{text:?}");
    lines[0].split('\t').map(str::to_string).collect()
}

#[test]
fn fires_at_matching_minutes_and_skips_while_the_last_job_runs() {
    let mut net = Net::new(3);
    let (client, worker, admin) = (net.connect(), net.connect(), net.connect());
    net.send(worker, Request::CanDo { function: b("f") });
    net.send(worker, Request::PreSleep);
    net.send(client, sched("f", "", ["*/5", "", "*", "", "*"]));
    let handle = created(&mut net, client);
    assert!(handle.starts_with("H:test:s"), "{handle}");
    // UNIX_START is 22:13:20 UTC: the first firing is 22:15:00, 100 s later.
    let first = UNIX_START + 100;
    assert_eq!(
        listing(&mut net, admin),
        [
            &handle,
            "f",
            "",
            "*/5 * * * *",
            &first.to_string(),
            "0",
            "0"
        ]
    );
    net.advance(Duration::from_secs(99));
    assert!(net.recv(worker).is_empty(), "woken before 22:15");
    net.advance(Duration::from_secs(1));
    assert_eq!(
        net.recv(worker),
        vec![Response::Noop],
        "the firing wakes the worker"
    );
    let job = grab(&mut net, worker).expect("the firing's job");
    // Still running at 22:20: that firing is skipped, not stacked.
    net.advance(Duration::from_secs(300));
    assert_eq!(grab(&mut net, worker), None);
    let fields = listing(&mut net, admin);
    assert_eq!(
        (&fields[4][..], &fields[5][..], &fields[6][..]),
        (&(first + 600).to_string()[..], "1", "1")
    );
    net.send(
        worker,
        Request::WorkComplete(WorkPayload {
            handle: b(&job),
            data: b("done"),
        }),
    );
    net.advance(Duration::from_secs(300));
    let again = grab(&mut net, worker).expect("22:25 fires again");
    assert_ne!(again, job);
    assert_eq!(listing(&mut net, admin)[5], "2");
    // The metrics' counters and gauges say the same.
    let stats = net.server.stats().function_named(b"f").unwrap();
    assert_eq!((stats.schedule_fired, stats.schedule_skipped), (2, 1));
    assert_eq!(net.server.extras_gauges().schedules[&b("f")], 1);
    // cancel job ends the schedule; a running job of it runs on.
    assert_eq!(
        net.admin(admin, &format!("cancel job {handle}\n")),
        "OK\r\n"
    );
    assert_eq!(net.admin(admin, "show schedules\n"), ".\n");
    net.advance(Duration::from_secs(3600));
    assert_eq!(grab(&mut net, worker), None, "no firing after the cancel");
    assert_eq!(net.server.poll_timeout(), None, "nothing armed");
    assert!(net.server.extras_gauges().schedules.is_empty());
}

#[test]
fn fields_follow_cron_across_days_months_and_zones() {
    // Midnight on the 1st: from 2023-11-14 to 2023-12-01 00:00 UTC.
    let mut net = Net::new(5);
    let (client, admin) = (net.connect(), net.connect());
    net.send(client, sched("f", "", ["0", "0", "1", "*", "*"]));
    created(&mut net, client);
    assert_eq!(listing(&mut net, admin)[4], "1701388800");
    // Midnight at UTC+01:00 is 23:00 UTC, the same evening.
    let mut net = Net::with_config(5, |c| c.schedule_offset_secs = 3600);
    let (client, admin) = (net.connect(), net.connect());
    net.send(client, sched("f", "", ["0", "0", "", "", ""]));
    created(&mut net, client);
    assert_eq!(listing(&mut net, admin)[4], (UNIX_START + 2800).to_string());
    // Never matching (February 30th): listed with no next firing, nothing armed.
    net.send(client, sched("g", "", ["0", "0", "30", "2", "*"]));
    created(&mut net, client);
    assert!(net
        .admin(admin, "show schedules\n")
        .contains("\t0 0 30 2 *\t-\t0\t0\n"));
    net.send(client, sched("h", "", ["61", "", "", "", ""]));
    match net.recv(client).as_slice() {
        [Response::Error { code, text }] => {
            assert_eq!(&code[..], b"INVALID_SCHEDULE");
            assert!(String::from_utf8_lossy(text).contains("minute"), "{text:?}");
        }
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn the_same_unique_gets_the_same_schedule() {
    let mut net = Net::new(9);
    let (client, admin) = (net.connect(), net.connect());
    net.send(client, sched("f", "nightly", ["0", "3", "", "", ""]));
    let first = created(&mut net, client);
    net.send(client, sched("f", "nightly", ["0", "3", "", "", ""]));
    assert_eq!(created(&mut net, client), first);
    net.send(client, sched("f", "", ["0", "3", "", "", ""]));
    assert_ne!(created(&mut net, client), first);
    assert_eq!(net.admin(admin, "show schedules\n").lines().count(), 3);
}

#[test]
fn durable_schedule_is_acknowledged_once_stored_and_restored_after_a_restart() {
    let durable = |c: &mut gearman_core::server::ServerConfig| {
        c.persist_background = true;
        c.durable_extras = true;
    };
    let mut net = Net::with_config(11, durable);
    let (client, admin) = (net.connect(), net.connect());
    net.send(client, sched("f", "", ["30", "22", "", "", ""]));
    assert!(
        net.recv(client).is_empty(),
        "JOB_CREATED waits for the store"
    );
    let record = match net.events.drain(..).collect::<Vec<_>>().as_slice() {
        [ServerEvent::PutExtra {
            record,
            acknowledge: true,
        }] => record.clone(),
        other => panic!("expected one acknowledged schedule write, got {other:?}"),
    };
    assert_eq!(record.kind, ExtraKind::Schedule);
    net.server.persisted(record.key, Ok(()), net.now);
    let handle = created(&mut net, client);
    let before = listing(&mut net, admin);

    // A refused write refuses the submission and leaves no schedule.
    net.send(client, sched("g", "", ["*", "", "", "", ""]));
    let refused = match net.events.drain(..).next() {
        Some(ServerEvent::PutExtra { record, .. }) => record,
        other => panic!("{other:?}"),
    };
    net.server
        .persisted(refused.key, Err("disk full".into()), net.now);
    assert!(matches!(
        net.recv(client).as_slice(),
        [Response::Error { code, .. }] if &code[..] == b"QUEUE_ERROR"
    ));
    assert_eq!(listing(&mut net, admin), before);

    // Restart from the stored record: same handle, same schedule, and it fires.
    let mut again = Net::with_config(11, durable);
    again
        .server
        .restore_with(Vec::new(), vec![record], again.now);
    let (worker, admin) = (again.connect(), again.connect());
    assert_eq!(listing(&mut again, admin), before);
    assert_eq!(listing(&mut again, admin)[0], handle);
    again.send(worker, Request::CanDo { function: b("f") });
    // 22:30 is 16 min 40 s after UNIX_START; the firing's job is stored first.
    again.advance(Duration::from_secs(1000));
    let persist = again
        .events
        .iter()
        .find_map(|e| match e {
            ServerEvent::Persist(r) => Some(r.clone()),
            _ => None,
        })
        .expect("the firing's job is written to the store");
    assert_eq!(&persist.function[..], b"f");
    again
        .server
        .persisted(persist.durable_id, Ok(()), again.now);
    assert!(
        grab(&mut again, worker).is_some(),
        "the restored schedule fired"
    );
    assert_eq!(listing(&mut again, admin)[5], "1");
    // Cancelling deletes the record.
    again.events.clear();
    assert_eq!(
        again.admin(admin, &format!("cancel job {handle}\n")),
        "OK\r\n"
    );
    again.collect_events();
    assert!(again.events.contains(&ServerEvent::DeleteExtra {
        kind: ExtraKind::Schedule,
        key: persist_key(&handle),
    }));
}

fn persist_key(handle: &str) -> u64 {
    handle.rsplit_once(":s").unwrap().1.parse().unwrap()
}
