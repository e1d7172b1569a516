//! Restoring stored records: rows adopted from another server (a takeover of a shared
//! queue) that meet a live job with the same function and unique id, where the
//! acknowledged job must survive whatever becomes of the live one; and records this
//! version cannot read, which must not be destroyed.

mod support;

use gearman_core::proto::{
    GrabMode, Priority, Request, Response, SubmitJob, SubmitMode, WorkPayload,
};
use gearman_core::server::{ExtraKind, ExtraRecord, JobRecord, ServerEvent};
use support::{b, Net};

fn submit(unique: &str, mode: SubmitMode) -> Request {
    Request::Submit(SubmitJob {
        function: b("f"),
        unique: b(unique),
        mode,
        data: b("x"),
    })
}

/// What another server stored and acknowledged: job `f`/`u`, row `durable_id`.
fn adopted(durable_id: u64) -> JobRecord {
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

/// A worker grabs every job of `f` it can; the handles assigned.
fn drain(net: &mut Net) -> Vec<String> {
    let w = net.connect();
    net.send(w, Request::CanDo { function: b("f") });
    let mut handles = Vec::new();
    for _ in 0..3 {
        net.send(w, Request::GrabJob(GrabMode::Uniq));
        for r in net.recv(w) {
            if let Response::JobAssign(j) = r {
                let handle = String::from_utf8_lossy(&j.handle).into_owned();
                net.send(
                    w,
                    Request::WorkComplete(WorkPayload {
                        handle: j.handle.clone(),
                        data: b(""),
                    }),
                );
                handles.push(handle);
            }
        }
    }
    handles
}

fn unpersisted(net: &mut Net) -> Vec<u64> {
    net.collect_events();
    net.events
        .iter()
        .filter_map(|e| match e {
            ServerEvent::Unpersist { durable_id } => Some(*durable_id),
            _ => None,
        })
        .collect()
}

#[test]
fn a_foreground_job_takes_the_adopted_row_and_outlives_its_client() {
    let mut net = Net::with_config(1, |c| c.persist_background = true);
    let c = net.connect();
    net.send(c, submit("u", SubmitMode::Foreground(Priority::Normal)));
    net.server.restore(vec![adopted(40)], net.now);
    net.check();
    assert_eq!(
        unpersisted(&mut net),
        Vec::<u64>::new(),
        "the adopted row was dropped"
    );
    net.eof(c);
    net.check();
    assert_eq!(
        net.server.queued_jobs(),
        1,
        "the adopted job left with the client"
    );
    assert_eq!(drain(&mut net).len(), 1);
    assert_eq!(unpersisted(&mut net), vec![40], "its row outlived it");
}

#[test]
fn a_job_waiting_for_its_own_write_takes_the_adopted_row() {
    let mut net = Net::with_config(2, |c| c.persist_background = true);
    let c = net.connect();
    net.send(c, submit("u", SubmitMode::Background(Priority::Normal)));
    net.server.restore(vec![adopted(40)], net.now);
    net.check();
    // The pending write's row is removed after it lands; the adopted one stays.
    assert_eq!(unpersisted(&mut net), vec![1]);
    net.events.clear();
    net.server.persisted(1, Err("disk full".into()), net.now);
    net.check();
    assert_eq!(
        net.server.queued_jobs(),
        1,
        "a failed write ended the adopted job"
    );
    assert_eq!(drain(&mut net).len(), 1);
    assert_eq!(unpersisted(&mut net), vec![40]);
}

#[test]
fn a_stored_job_keeps_its_row_and_the_duplicate_is_dropped() {
    let mut net = Net::with_config(3, |c| c.persist_background = true);
    let c = net.connect();
    net.send(c, submit("u", SubmitMode::Background(Priority::Normal)));
    net.server.persisted(1, Ok(()), net.now);
    assert_eq!(
        net.recv(c),
        vec![Response::JobCreated {
            handle: b("H:test:1")
        }]
    );
    net.server.restore(vec![adopted(40)], net.now);
    net.check();
    assert_eq!(unpersisted(&mut net), vec![40]);
    net.events.clear();
    assert_eq!(drain(&mut net).len(), 1);
    assert_eq!(unpersisted(&mut net), vec![1]);
}

#[test]
fn records_that_do_not_decode_are_reported_and_left_in_the_store() {
    let mut net = Net::with_config(4, |c| {
        c.persist_background = true;
        c.durable_extras = true;
    });
    // A version byte no release wrote yet, for every kind.
    let extras = ExtraKind::ALL
        .iter()
        .enumerate()
        .map(|(i, &kind)| ExtraRecord {
            kind,
            key: 10 + i as u64,
            value: b("\u{7f}newer"),
        })
        .collect::<Vec<_>>();
    net.server
        .restore_with(vec![adopted(20)], extras.clone(), net.now);
    net.check();
    net.collect_events();
    let unreadable: Vec<_> = extras
        .iter()
        .map(|e| ServerEvent::UnreadableRecord {
            kind: e.kind,
            key: e.key,
        })
        .collect();
    assert_eq!(net.events, unreadable, "unreadable records were deleted");
    // Their keys are never reused for new records.
    let c = net.connect();
    net.send(c, submit("v", SubmitMode::Background(Priority::Normal)));
    net.collect_events();
    assert!(
        matches!(net.events.last(), Some(ServerEvent::Persist(r)) if r.durable_id == 21),
        "{:?}",
        net.events.last()
    );
}
