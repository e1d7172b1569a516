//! Rows adopted from another server (a takeover of a shared queue) that meet a live job
//! with the same function and unique id: the acknowledged job must survive whatever
//! becomes of the live one.

mod support;

use gearman_core::proto::{
    GrabMode, Priority, Request, Response, SubmitJob, SubmitMode, WorkPayload,
};
use gearman_core::server::{JobRecord, ServerEvent};
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
