//! Retries with backoff and dead letters (`--retry`), on the virtual clock: scenarios, the
//! durable records, a restart from them, and a model-based property test (no job lost,
//! none run more than COUNT+1 times per life, the dead letters exactly those out of
//! retries).

mod support;

use gearman_core::proto::{
    GrabMode, Priority, Request, Response, SubmitJob, SubmitMode, WorkPayload,
};
use gearman_core::server::{ExtraKind, ExtraRecord, JobRecord, RetryPolicy, ServerEvent};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::time::Duration;
use support::{b, Net};

fn bg(f: &str, data: &str) -> Request {
    Request::Submit(SubmitJob {
        function: b(f),
        unique: b(""),
        mode: SubmitMode::Background(Priority::Normal),
        data: b(data),
    })
}

fn policy(count: u32, secs: u64) -> RetryPolicy {
    RetryPolicy {
        count,
        backoff: Duration::from_secs(secs),
    }
}

fn net_with(count: u32, secs: u64, persist: bool) -> Net {
    Net::with_config(7, |c| {
        c.retry.insert(b("f"), policy(count, secs));
        c.persist_background = persist;
        c.durable_extras = persist;
    })
}

/// Grabs one job: its handle and data, or `None` on NO_JOB.
fn grab(net: &mut Net, w: gearman_core::server::ConnId) -> Option<(String, String)> {
    net.send(w, Request::GrabJob(GrabMode::Plain));
    let got = net.recv(w);
    match got.last() {
        Some(Response::JobAssign(a)) => Some((
            String::from_utf8_lossy(&a.handle).into_owned(),
            String::from_utf8_lossy(&a.data).into_owned(),
        )),
        Some(Response::NoJob) => None,
        other => panic!("unexpected reply to a grab: {other:?}"),
    }
}

fn fail(net: &mut Net, w: gearman_core::server::ConnId, h: &str, exception: bool) {
    let req = if exception {
        Request::WorkException(WorkPayload {
            handle: b(h),
            data: b("boom"),
        })
    } else {
        Request::WorkFail { handle: b(h) }
    };
    net.send(w, req);
}

#[test]
fn failed_background_job_backs_off_then_dies_and_comes_back_on_retry_dead() {
    let mut net = net_with(2, 10, false);
    let (client, worker, admin) = (net.connect(), net.connect(), net.connect());
    net.send(worker, Request::CanDo { function: b("f") });
    net.send(client, bg("f", "job"));
    let (h, _) = grab(&mut net, worker).expect("assigned");
    fail(&mut net, worker, &h, false);
    // Waiting out its backoff: counted in status, not runnable.
    assert_eq!(net.admin(admin, "status\n"), "f\t1\t0\t1\n.\n");
    net.advance(Duration::from_secs(9));
    assert_eq!(grab(&mut net, worker), None);
    net.send(worker, Request::PreSleep);
    net.advance(Duration::from_secs(1));
    assert_eq!(
        net.recv(worker),
        vec![Response::Noop],
        "the retry wakes the worker"
    );
    let (h2, data) = grab(&mut net, worker).expect("retried");
    assert_eq!((h2.as_str(), data.as_str()), (h.as_str(), "job"));
    fail(&mut net, worker, &h, true);
    // The second wait doubles.
    net.advance(Duration::from_secs(19));
    assert_eq!(grab(&mut net, worker), None);
    net.advance(Duration::from_secs(1));
    let (h3, _) = grab(&mut net, worker).expect("retried again");
    fail(&mut net, worker, &h3, true);
    // Out of retries: dead, not queued.
    assert_eq!(net.admin(admin, "status\n"), "f\t0\t0\t1\n.\n");
    let dead = net.admin(admin, "show dead\n");
    let unix = support::UNIX_START + 30;
    assert_eq!(dead, format!("{h}\tf\t3\texception\t{unix}\t\n.\n"));
    let stats = net.server.stats().function_named(b"f").unwrap().clone();
    assert_eq!((stats.backoff_retries, stats.dead_lettered), (2, 1));
    assert_eq!(net.server.extras_gauges().dead_letters[&b("f")], 1);
    assert_eq!(
        net.admin(admin, "retry dead nothing\n"),
        "ERR UNKNOWN_JOB\r\n"
    );
    assert_eq!(net.admin(admin, "retry dead f\n"), "OK 1\n");
    assert_eq!(net.admin(admin, "show dead\n"), ".\n");
    assert!(net.server.extras_gauges().dead_letters.is_empty());
    let (h4, data) = grab(&mut net, worker).expect("re-queued from the dead letters");
    assert_ne!(h4, h);
    assert_eq!(data, "job");
    net.send(
        worker,
        Request::WorkComplete(WorkPayload {
            handle: b(&h4),
            data: b("ok"),
        }),
    );
    assert_eq!(net.admin(admin, "status\n"), "f\t0\t0\t1\n.\n");
    // drop dead forgets one.
    net.send(client, bg("f", "again"));
    let (h5, _) = grab(&mut net, worker).expect("assigned");
    for _ in 0..3 {
        fail(&mut net, worker, &h5, false);
        net.advance(Duration::from_secs(60));
        if let Some((h, _)) = grab(&mut net, worker) {
            assert_eq!(h, h5);
        }
    }
    assert_eq!(net.admin(admin, &format!("drop dead {h5}\n")), "OK 1\n");
    assert_eq!(net.admin(admin, "show dead\n"), ".\n");
}

#[test]
fn foreground_jobs_and_functions_without_a_policy_fail_as_before() {
    let mut net = net_with(3, 1, false);
    let (client, worker, admin) = (net.connect(), net.connect(), net.connect());
    net.send(worker, Request::CanDo { function: b("f") });
    net.send(worker, Request::CanDo { function: b("g") });
    net.send(
        client,
        Request::Submit(SubmitJob {
            function: b("f"),
            unique: b(""),
            mode: SubmitMode::Foreground(Priority::Normal),
            data: b("fg"),
        }),
    );
    let (h, _) = grab(&mut net, worker).expect("assigned");
    fail(&mut net, worker, &h, false);
    let got = net.recv(client);
    assert_eq!(got.last(), Some(&Response::WorkFail { handle: b(&h) }));
    net.send(client, bg("g", "no policy"));
    let (h, _) = grab(&mut net, worker).expect("assigned");
    fail(&mut net, worker, &h, false);
    net.advance(Duration::from_secs(10));
    assert_eq!(grab(&mut net, worker), None);
    assert_eq!(net.admin(admin, "show dead\n"), ".\n");
}

#[test]
fn retry_state_and_dead_letters_are_stored_and_restored() {
    let mut net = net_with(1, 5, true);
    let (client, worker, admin) = (net.connect(), net.connect(), net.connect());
    net.send(worker, Request::CanDo { function: b("f") });
    net.send(client, bg("f", "a"));
    net.send(client, bg("f", "b"));
    let records: Vec<JobRecord> = net
        .events
        .drain(..)
        .map(|e| match e {
            ServerEvent::Persist(r) => r,
            other => panic!("{other:?}"),
        })
        .collect();
    for r in &records {
        net.server.persisted(r.durable_id, Ok(()), net.now);
    }
    let (ha, _) = grab(&mut net, worker).expect("a");
    let (hb, _) = grab(&mut net, worker).expect("b");
    let (a_id, b_id) = (records[0].durable_id, records[1].durable_id);
    fail(&mut net, worker, &hb, false);
    net.advance(Duration::from_secs(5));
    let (hb2, _) = grab(&mut net, worker).expect("b again");
    assert_eq!(hb2, hb);
    net.events.clear();
    fail(&mut net, worker, &hb, true);
    // b is dead: the dead letter is written before its retry state and its row go.
    let tail: Vec<ServerEvent> = net.events.drain(..).collect();
    let dead = match &tail[0] {
        ServerEvent::PutExtra { record, .. } => record.clone(),
        other => panic!("{other:?} in {tail:?}"),
    };
    assert_eq!((dead.kind, dead.key), (ExtraKind::DeadLetter, b_id));
    assert_eq!(
        tail[1..].to_vec(),
        vec![
            ServerEvent::DeleteExtra {
                kind: ExtraKind::Attempts,
                key: b_id
            },
            ServerEvent::Unpersist { durable_id: b_id }
        ]
    );
    fail(&mut net, worker, &ha, false);
    let ServerEvent::PutExtra {
        record,
        acknowledge: false,
    } = net.events.remove(0)
    else {
        panic!("no retry state written");
    };
    assert_eq!((record.kind, record.key), (ExtraKind::Attempts, a_id));
    let attempts = record;
    let listing = net.admin(admin, "show dead\n");

    // Restart from what the store holds: a's row with its retry state, b's row (the crash
    // came before its delete) and b's dead letter.
    let mut again = net_with(1, 5, true);
    let extras: Vec<ExtraRecord> = vec![attempts, dead];
    again
        .server
        .restore_with(records.clone(), extras, again.now);
    again.collect_events();
    assert_eq!(
        again.events.drain(..).collect::<Vec<_>>(),
        vec![ServerEvent::Unpersist { durable_id: b_id }],
        "the dead letter wins over the stale row"
    );
    let (worker, admin) = (again.connect(), again.connect());
    assert_eq!(again.admin(admin, "show dead\n"), listing);
    again.send(worker, Request::CanDo { function: b("f") });
    // a's retry was due 5 s after its failure (at 10 s); the restored server waits for it.
    again.advance(Duration::from_secs(9));
    assert_eq!(grab(&mut again, worker), None);
    again.advance(Duration::from_secs(1));
    let (h, data) = grab(&mut again, worker).expect("a after the restart");
    assert_eq!(data, "a");
    // Its one retry was used before the restart: this failure kills it.
    fail(&mut again, worker, &h, false);
    assert_eq!(
        again.admin(admin, "show dead\n").lines().count(),
        3,
        "a and b dead"
    );
}

#[test]
fn a_stored_retry_time_is_never_before_the_backoff_ends() {
    // A failure half-way through a second: the retry is due 3.5 s later, which the store
    // keeps in whole seconds, rounded up (rounded down it came half a second early).
    let mut net = net_with(1, 3, true);
    let (client, worker) = (net.connect(), net.connect());
    net.send(worker, Request::CanDo { function: b("f") });
    net.send(client, bg("f", "a"));
    let records: Vec<JobRecord> = net
        .events
        .drain(..)
        .filter_map(|e| match e {
            ServerEvent::Persist(r) => Some(r),
            _ => None,
        })
        .collect();
    for r in &records {
        net.server.persisted(r.durable_id, Ok(()), net.now);
    }
    let (h, _) = grab(&mut net, worker).expect("a");
    net.advance(Duration::from_millis(500));
    net.events.clear();
    fail(&mut net, worker, &h, false);
    let attempts = net
        .events
        .drain(..)
        .find_map(|e| match e {
            ServerEvent::PutExtra { record, .. } if record.kind == ExtraKind::Attempts => {
                Some(record)
            }
            _ => None,
        })
        .expect("the retry state is written");
    let mut again = net_with(1, 3, true);
    again
        .server
        .restore_with(records, vec![attempts], again.now);
    again.collect_events();
    let worker = again.connect();
    again.send(worker, Request::CanDo { function: b("f") });
    again.advance(Duration::from_millis(3400));
    assert_eq!(grab(&mut again, worker), None, "before the backoff ended");
    again.advance(Duration::from_millis(600));
    assert!(grab(&mut again, worker).is_some(), "due after the restart");
}

#[derive(Clone, Debug)]
enum Op {
    Submit { function: bool },
    Grab,
    Report { how: u8 },
    Advance { secs: u64 },
    RetryDead,
    DropOneDead,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => any::<bool>().prop_map(|function| Op::Submit { function }),
        4 => Just(Op::Grab),
        4 => (0u8..3).prop_map(|how| Op::Report { how }),
        3 => (0u64..40).prop_map(|secs| Op::Advance { secs }),
        1 => Just(Op::RetryDead),
        1 => Just(Op::DropOneDead),
    ]
}

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum Fate {
    Live,
    Done,
    Dead,
    Dropped,
}

#[derive(Debug)]
struct MJob {
    function: &'static str,
    runs: u32,
    fate: Fate,
    handle: Option<String>,
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn no_job_lost_none_run_too_often_dead_letters_exactly_those_out_of_retries(
        count in 0u32..3,
        backoff in 0u64..8,
        ops in prop::collection::vec(op(), 1..120),
    ) {
        let mut net = Net::with_config(3, |c| {
            c.retry.insert(b("f"), policy(count, backoff));
        });
        let (client, worker, admin) = (net.connect(), net.connect(), net.connect());
        net.send(worker, Request::CanDo { function: b("f") });
        net.send(worker, Request::CanDo { function: b("g") });
        let mut jobs: BTreeMap<String, MJob> = BTreeMap::new();
        let mut held: Option<(String, String)> = None;
        for op in &ops {
            match op {
                Op::Submit { function } => {
                    let f = if *function { "f" } else { "g" };
                    let data = format!("d{}", jobs.len());
                    net.send(client, bg(f, &data));
                    net.recv(client);
                    jobs.insert(data, MJob { function: f, runs: 0, fate: Fate::Live, handle: None });
                }
                Op::Grab if held.is_none() => {
                    if let Some((h, data)) = grab(&mut net, worker) {
                        let j = jobs.get_mut(&data).expect("a job nobody submitted");
                        prop_assert_eq!(j.fate, Fate::Live, "a finished job ran: {}", data);
                        j.runs += 1;
                        let max = if j.function == "f" { count + 1 } else { 1 };
                        prop_assert!(j.runs <= max, "{} ran {} times", data, j.runs);
                        j.handle = Some(h.clone());
                        held = Some((h, data));
                    }
                }
                Op::Grab => {}
                Op::Report { how } => {
                    if let Some((h, data)) = held.take() {
                        let j = jobs.get_mut(&data).expect("model job");
                        match how {
                            0 => {
                                net.send(worker, Request::WorkComplete(WorkPayload { handle: b(&h), data: b("") }));
                                j.fate = Fate::Done;
                            }
                            _ => {
                                fail(&mut net, worker, &h, *how == 2);
                                if j.function == "g" {
                                    j.fate = Fate::Done;
                                } else if j.runs == count + 1 {
                                    j.fate = Fate::Dead;
                                }
                            }
                        }
                    }
                }
                Op::Advance { secs } => net.advance(Duration::from_secs(*secs)),
                Op::RetryDead => {
                    let reply = net.admin(admin, "retry dead f\n");
                    let dead: Vec<&mut MJob> = jobs.values_mut().filter(|j| j.fate == Fate::Dead).collect();
                    let want = if dead.is_empty() { "ERR UNKNOWN_JOB\r\n".to_string() } else { format!("OK {}\n", dead.len()) };
                    prop_assert_eq!(reply, want);
                    for j in dead {
                        j.fate = Fate::Live;
                        j.runs = 0;
                    }
                }
                Op::DropOneDead => {
                    let victim = jobs.values_mut().find(|j| j.fate == Fate::Dead);
                    if let Some(j) = victim {
                        let h = j.handle.clone().expect("a dead job ran");
                        prop_assert_eq!(net.admin(admin, &format!("drop dead {h}\n")), "OK 1\n");
                        j.fate = Fate::Dropped;
                    }
                }
            }
            net.recv(worker);
            // The dead letters are exactly the jobs out of retries.
            let listing = net.admin(admin, "show dead\n");
            let mut listed: Vec<String> = listing
                .lines()
                .filter(|l| *l != ".")
                .map(|l| l.split('\t').next().unwrap_or_default().to_string())
                .collect();
            listed.sort();
            let mut want: Vec<String> = jobs
                .values()
                .filter(|j| j.fate == Fate::Dead)
                .map(|j| j.handle.clone().expect("ran"))
                .collect();
            want.sort();
            prop_assert_eq!(listed, want);
            // No job lost: every live job is queued, waiting out its backoff, or running.
            let live = jobs.values().filter(|j| j.fate == Fate::Live).count();
            prop_assert_eq!(net.server.queued_jobs() + net.server.running_jobs(), live);
        }
    }
}
