//! WorkerConnection against scripted server bytes, in memory.

use bytes::{Bytes, BytesMut};
use gearman_core::machine::Machine;
use gearman_core::proto::*;
use gearman_core::worker::state::GrabState;
use gearman_core::worker::{
    AssignedJob, WorkerConfig, WorkerConnection, WorkerEvent, GRAB_REPLY_WAIT,
};
use gearman_core::{ConnError, Limits, UsageError};
use proptest::prelude::*;
use std::time::{Duration, Instant};

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn sent(w: &mut WorkerConnection) -> Vec<Request> {
    let mut out = Vec::new();
    while w.poll_transmit(&mut out) > 0 {}
    let mut buf = BytesMut::from(&out[..]);
    let mut dec = FrameDecoder::new(Limits::default());
    let mut v = Vec::new();
    while let Some(f) = dec.decode(&mut buf).unwrap() {
        v.push(Request::parse(&f).unwrap());
    }
    v
}

fn events(w: &mut WorkerConnection) -> Vec<WorkerEvent> {
    std::iter::from_fn(|| w.poll_event()).collect()
}

fn feed(w: &mut WorkerConnection, responses: &[Response]) -> Result<(), ConnError> {
    let mut v = Vec::new();
    for r in responses {
        r.encode(&mut v);
    }
    w.handle_input(&v, Instant::now())
}

fn assign(handle: &str, function: &str, extras: AssignExtras, data: &str) -> Response {
    Response::JobAssign(JobAssign {
        handle: b(handle),
        function: b(function),
        extras,
        data: b(data),
    })
}

fn worker(max_in_flight: usize, grab_mode: GrabMode) -> WorkerConnection {
    WorkerConnection::new(WorkerConfig {
        max_in_flight,
        grab_mode,
        ..WorkerConfig::default()
    })
}

#[test]
fn grab_sleep_wake_cycle() {
    let mut w = worker(1, GrabMode::Uniq);
    w.can_do(b("rev"), None).unwrap();
    assert_eq!(
        sent(&mut w),
        vec![
            Request::CanDo { function: b("rev") },
            Request::GrabJob(GrabMode::Uniq)
        ]
    );
    feed(&mut w, &[Response::NoJob]).unwrap();
    assert_eq!(sent(&mut w), vec![Request::PreSleep]);
    assert_eq!(w.grab_state(), GrabState::Sleeping);
    feed(&mut w, &[Response::Noop]).unwrap();
    assert_eq!(sent(&mut w), vec![Request::GrabJob(GrabMode::Uniq)]);
    feed(
        &mut w,
        &[assign("H:1", "rev", AssignExtras::Unique(b("u")), "abc")],
    )
    .unwrap();
    assert_eq!(
        events(&mut w),
        vec![WorkerEvent::JobAssigned(AssignedJob {
            handle: b("H:1"),
            function: b("rev"),
            unique: b("u"),
            reducer: None,
            data: b("abc"),
        })]
    );
    // At capacity: no grab until the job is finished.
    assert!(sent(&mut w).is_empty());
    assert_eq!(w.grab_state(), GrabState::Idle);
    w.work_status(&b("H:1"), 1, 2).unwrap();
    w.work_data(&b("H:1"), b("c")).unwrap();
    w.work_warning(&b("H:1"), b("w")).unwrap();
    w.work_complete(&b("H:1"), b("cba")).unwrap();
    assert_eq!(
        sent(&mut w),
        vec![
            Request::WorkStatus(WorkStatus {
                handle: b("H:1"),
                numerator: 1,
                denominator: 2
            }),
            Request::WorkData(WorkPayload {
                handle: b("H:1"),
                data: b("c")
            }),
            Request::WorkWarning(WorkPayload {
                handle: b("H:1"),
                data: b("w")
            }),
            Request::WorkComplete(WorkPayload {
                handle: b("H:1"),
                data: b("cba")
            }),
            Request::GrabJob(GrabMode::Uniq),
        ]
    );
}

#[test]
fn several_jobs_in_flight_on_one_connection() {
    let mut w = worker(3, GrabMode::All);
    w.can_do(b("f"), None).unwrap();
    let _ = sent(&mut w);
    for i in 1..=3 {
        feed(
            &mut w,
            &[assign(
                &format!("H:{i}"),
                "f",
                AssignExtras::Unique(b("")),
                "",
            )],
        )
        .unwrap();
        let grabs = sent(&mut w);
        if i < 3 {
            assert_eq!(
                grabs,
                vec![Request::GrabJob(GrabMode::All)],
                "after job {i}"
            );
        } else {
            assert!(grabs.is_empty());
        }
    }
    assert_eq!(w.in_flight(), 3);
    w.work_fail(&b("H:2")).unwrap();
    assert_eq!(
        sent(&mut w),
        vec![
            Request::WorkFail { handle: b("H:2") },
            Request::GrabJob(GrabMode::All)
        ]
    );
    w.work_exception(&b("H:1"), b("e")).unwrap();
    // A grab is already outstanding: no second one.
    assert_eq!(
        sent(&mut w),
        vec![Request::WorkException(WorkPayload {
            handle: b("H:1"),
            data: b("e")
        })]
    );
}

#[test]
fn reduce_jobs_carry_their_reducer() {
    let mut w = worker(1, GrabMode::All);
    w.can_do(b("map"), None).unwrap();
    let _ = sent(&mut w);
    feed(
        &mut w,
        &[assign(
            "H:9",
            "map",
            AssignExtras::Reduce {
                unique: b("u"),
                reducer: b("count"),
            },
            "a b c",
        )],
    )
    .unwrap();
    match &events(&mut w)[..] {
        [WorkerEvent::JobAssigned(job)] => assert_eq!(job.reducer, Some(b("count"))),
        other => panic!("{other:?}"),
    }
}

#[test]
fn results_for_jobs_not_held_are_usage_errors() {
    let mut w = worker(1, GrabMode::All);
    assert_eq!(
        w.work_complete(&b("H:nope"), b("")),
        Err(UsageError::UnknownHandle(b("H:nope")))
    );
    assert!(w.work_data(&b("H:nope"), b("")).is_err());
    assert!(sent(&mut w).is_empty());
    assert!(!w.is_closed());
}

#[test]
fn assignment_while_sleeping_is_a_sticky_protocol_error() {
    let mut w = worker(1, GrabMode::Plain);
    w.can_do(b("f"), None).unwrap();
    feed(&mut w, &[Response::NoJob]).unwrap();
    let err = feed(&mut w, &[assign("H:1", "f", AssignExtras::Plain, "")]).unwrap_err();
    assert!(w.is_closed());
    assert_eq!(
        events(&mut w),
        vec![WorkerEvent::Closed {
            reason: err.clone()
        }]
    );
    assert_eq!(w.handle_input(&[], Instant::now()), Err(err));
    assert_eq!(w.echo(b("x")), Err(UsageError::Closed));
}

#[test]
fn server_errors_are_reported_and_the_connection_carries_on() {
    let mut w = worker(1, GrabMode::All);
    let e = w.echo(b("hi")).unwrap();
    feed(
        &mut w,
        &[
            Response::Error {
                code: b("JOB_NOT_FOUND"),
                text: b("Job given in work result not found"),
            },
            Response::EchoRes { data: b("hi") },
        ],
    )
    .unwrap();
    let ev = events(&mut w);
    assert!(matches!(&ev[0], WorkerEvent::ServerError { code, .. } if code == "JOB_NOT_FOUND"));
    assert_eq!(
        ev[1],
        WorkerEvent::EchoRes {
            req: e,
            data: b("hi")
        }
    );
}

#[test]
fn ability_added_while_sleeping_grabs_again() {
    let mut w = worker(1, GrabMode::All);
    w.can_do(b("a"), None).unwrap();
    feed(&mut w, &[Response::NoJob]).unwrap();
    let _ = sent(&mut w);
    w.can_do(b("b"), Some(Duration::from_millis(1500))).unwrap();
    assert_eq!(
        sent(&mut w),
        vec![
            Request::CanDoTimeout {
                function: b("b"),
                timeout_ms: 1500
            },
            Request::GrabJob(GrabMode::All)
        ]
    );
    // The NOOP from the earlier PRE_SLEEP arrives while grabbing: ignored.
    feed(&mut w, &[Response::Noop]).unwrap();
    assert!(sent(&mut w).is_empty());
}

#[test]
fn stop_grabbing_lets_the_running_job_finish() {
    let mut w = worker(2, GrabMode::All);
    w.can_do(b("f"), None).unwrap();
    let _ = sent(&mut w);
    w.stop_grabbing();
    feed(
        &mut w,
        &[assign("H:1", "f", AssignExtras::Unique(b("")), "")],
    )
    .unwrap();
    assert!(sent(&mut w).is_empty());
    assert!(!w.is_quiescent());
    w.work_complete(&b("H:1"), b("ok")).unwrap();
    assert_eq!(sent(&mut w).len(), 1);
    assert!(w.is_quiescent());
    w.resume_grabbing();
    assert_eq!(sent(&mut w), vec![Request::GrabJob(GrabMode::All)]);
}

#[test]
fn max_in_flight_changes_on_a_live_connection() {
    let mut w = worker(2, GrabMode::All);
    // No room (an async worker's handlers from a lost connection still run): registered,
    // but no grab.
    w.set_max_in_flight(0);
    w.can_do(b("f"), None).unwrap();
    assert_eq!(sent(&mut w), vec![Request::CanDo { function: b("f") }]);
    assert_eq!(w.grab_state(), GrabState::Idle);
    // Room appears: it grabs.
    w.set_max_in_flight(1);
    assert_eq!(sent(&mut w), vec![Request::GrabJob(GrabMode::All)]);
    let job = |h: &str| assign(h, "f", AssignExtras::Unique(b("")), "");
    feed(&mut w, &[job("H:1")]).unwrap();
    assert!(sent(&mut w).is_empty());
    w.set_max_in_flight(2);
    assert_eq!(sent(&mut w), vec![Request::GrabJob(GrabMode::All)]);
    feed(&mut w, &[job("H:2")]).unwrap();
    assert!(sent(&mut w).is_empty());
    // Lowered below what it holds: nothing is dropped, it just grabs no more.
    w.set_max_in_flight(1);
    assert_eq!(w.in_flight(), 2);
    w.work_complete(&b("H:1"), b("1")).unwrap();
    let complete = |h: &str, d: &str| {
        Request::WorkComplete(WorkPayload {
            handle: b(h),
            data: b(d),
        })
    };
    assert_eq!(sent(&mut w), vec![complete("H:1", "1")]);
    w.work_complete(&b("H:2"), b("2")).unwrap();
    assert_eq!(
        sent(&mut w),
        vec![complete("H:2", "2"), Request::GrabJob(GrabMode::All)]
    );
}

#[test]
fn a_stop_waits_for_an_unanswered_grab_only_so_long() {
    let t0 = Instant::now();
    let mut w = worker(1, GrabMode::All);
    w.can_do(b("f"), None).unwrap();
    let _ = sent(&mut w);
    assert_eq!(w.poll_timeout(), None);
    w.stop_grabbing_at(t0);
    assert!(!w.is_quiescent());
    let deadline = t0 + GRAB_REPLY_WAIT;
    assert_eq!(w.poll_timeout(), Some(deadline));
    // Asked again later: the first deadline holds.
    w.stop_grabbing_at(t0 + Duration::from_secs(1));
    assert_eq!(w.poll_timeout(), Some(deadline));
    w.handle_timeout(deadline - Duration::from_millis(1));
    assert!(!w.is_quiescent());
    w.handle_timeout(deadline);
    // The adapter may close it now; the machine does not close itself.
    assert!(w.is_quiescent());
    assert!(!w.is_closed());
    assert_eq!(w.poll_timeout(), None);
}

#[test]
fn a_grab_answered_in_time_needs_no_timer() {
    let t0 = Instant::now();
    let mut w = worker(1, GrabMode::All);
    w.can_do(b("f"), None).unwrap();
    let _ = sent(&mut w);
    w.stop_grabbing_at(t0);
    feed(&mut w, &[Response::NoJob]).unwrap();
    assert!(sent(&mut w).is_empty(), "no PRE_SLEEP once stopped");
    assert!(w.is_quiescent());
    assert_eq!(w.poll_timeout(), None);
}

#[test]
fn jobs_held_at_the_grab_deadline_still_finish() {
    let t0 = Instant::now();
    let mut w = worker(2, GrabMode::All);
    w.can_do(b("f"), None).unwrap();
    let job = |h: &str| assign(h, "f", AssignExtras::Unique(b("")), "");
    feed(&mut w, &[job("H:1")]).unwrap();
    let _ = sent(&mut w);
    let _ = events(&mut w);
    // The grab for the second slot is outstanding when the stop comes.
    w.stop_grabbing_at(t0);
    w.handle_timeout(t0 + GRAB_REPLY_WAIT);
    assert!(!w.is_quiescent(), "H:1 is still held");
    // A late reply to that grab is still a job to run.
    feed(&mut w, &[job("H:2")]).unwrap();
    assert_eq!(events(&mut w).len(), 1);
    w.work_complete(&b("H:1"), b("")).unwrap();
    assert!(!w.is_quiescent(), "H:2 is still held");
    w.work_complete(&b("H:2"), b("")).unwrap();
    assert_eq!(sent(&mut w).len(), 2);
    assert!(w.is_quiescent());
}

#[test]
fn cant_do_and_reset_take_held_jobs_back() {
    let mut w = worker(2, GrabMode::All);
    w.can_do(b("f"), None).unwrap();
    w.can_do(b("g"), None).unwrap();
    feed(
        &mut w,
        &[assign("H:1", "f", AssignExtras::Unique(b("")), "")],
    )
    .unwrap();
    feed(
        &mut w,
        &[assign("H:2", "g", AssignExtras::Unique(b("")), "")],
    )
    .unwrap();
    w.cant_do(b("f")).unwrap();
    assert!(w.work_status(&b("H:1"), 1, 2).is_err());
    assert!(w.work_complete(&b("H:1"), b("")).is_err());
    assert_eq!(w.in_flight(), 1);
    w.reset_abilities().unwrap();
    assert_eq!(w.in_flight(), 0);
    assert_eq!(w.abilities().count(), 0);
    // Neither result goes to the server, which requeued both jobs.
    let sent = sent(&mut w);
    assert!(
        !sent.iter().any(|r| matches!(
            r,
            Request::WorkStatus(_) | Request::WorkComplete(_) | Request::WorkFail { .. }
        )),
        "a taken-back job's report was sent: {sent:?}"
    );
}

/// A job the server took back (CANT_DO, RESET_ABILITIES) is not held, but its handler
/// still runs: it takes a place until its result is finished, so a worker cannot run more
/// handlers than `max_in_flight` by unregistering. It used to grab at once.
#[test]
fn taken_back_jobs_count_until_finished() {
    let mut w = worker(1, GrabMode::All);
    w.can_do(b("f"), None).unwrap();
    w.can_do(b("g"), None).unwrap();
    let _ = sent(&mut w);
    feed(
        &mut w,
        &[assign("H:1", "f", AssignExtras::Unique(b("")), "")],
    )
    .unwrap();
    w.cant_do(b("f")).unwrap();
    assert_eq!(sent(&mut w), vec![Request::CantDo { function: b("f") }]);
    assert_eq!((w.in_flight(), w.taken_back()), (0, 1));
    w.stop_grabbing_at(Instant::now());
    assert!(!w.is_quiescent(), "H:1's handler still runs");
    w.resume_grabbing();
    assert!(sent(&mut w).is_empty(), "grabbed while H:1's handler runs");
    // Its result frees the place, and nothing is sent for it.
    assert!(w.work_complete(&b("H:1"), b("late")).is_err());
    assert_eq!(w.taken_back(), 0);
    assert_eq!(sent(&mut w), vec![Request::GrabJob(GrabMode::All)]);
    feed(&mut w, &[Response::NoJob]).unwrap();
    let _ = sent(&mut w);

    // RESET_ABILITIES the same, also with a function registered again afterwards.
    feed(&mut w, &[Response::Noop]).unwrap();
    let _ = sent(&mut w);
    feed(
        &mut w,
        &[assign("H:2", "g", AssignExtras::Unique(b("")), "")],
    )
    .unwrap();
    w.reset_abilities().unwrap();
    w.can_do(b("g"), None).unwrap();
    assert_eq!(
        sent(&mut w),
        vec![Request::ResetAbilities, Request::CanDo { function: b("g") }]
    );
    assert_eq!(w.taken_back(), 1);
    assert!(w.work_fail(&b("H:2")).is_err());
    assert_eq!(sent(&mut w), vec![Request::GrabJob(GrabMode::All)]);
    // A second result for it is refused and frees nothing more.
    assert!(w.work_fail(&b("H:2")).is_err());
    assert_eq!(w.taken_back(), 0);
    assert!(sent(&mut w).is_empty());
}

/// A closed connection's taken-back jobs are the adapter's to count (a new connection
/// starts empty).
#[test]
fn close_forgets_taken_back_jobs() {
    let mut w = worker(1, GrabMode::All);
    w.can_do(b("f"), None).unwrap();
    feed(
        &mut w,
        &[assign("H:1", "f", AssignExtras::Unique(b("")), "")],
    )
    .unwrap();
    w.reset_abilities().unwrap();
    assert_eq!(w.taken_back(), 1);
    w.close();
    assert_eq!(w.taken_back(), 0);
}

#[test]
fn client_id_goes_first() {
    let mut w = WorkerConnection::new(WorkerConfig {
        client_id: Some(b("worker-1")),
        ..WorkerConfig::default()
    });
    w.can_do(b("f"), None).unwrap();
    assert_eq!(sent(&mut w)[0], Request::SetClientId { id: b("worker-1") });
}

fn script() -> (WorkerConnection, Vec<u8>) {
    let mut w = worker(2, GrabMode::All);
    w.can_do(b("f"), None).unwrap();
    let mut bytes = Vec::new();
    for r in [
        Response::NoJob,
        Response::Noop,
        assign("H:1", "f", AssignExtras::Unique(b("u1")), "payload one"),
        assign(
            "H:2",
            "f",
            AssignExtras::Reduce {
                unique: b("u2"),
                reducer: b("r"),
            },
            "",
        ),
    ] {
        r.encode(&mut bytes);
    }
    (w, bytes)
}

proptest! {
    #[test]
    fn rechunking_never_changes_events_or_output(cuts in proptest::collection::vec(0usize..400, 0..30)) {
        let (mut whole, bytes) = script();
        whole.handle_input(&bytes, Instant::now()).unwrap();
        let want = (events(&mut whole), sent(&mut whole));
        prop_assert_eq!(want.0.len(), 2);

        let (mut chunked, bytes) = script();
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (bytes.len() + 1)).collect();
        cuts.extend([0, bytes.len()]);
        cuts.sort_unstable();
        for w in cuts.windows(2) {
            chunked.handle_input(&bytes[w[0]..w[1]], Instant::now()).unwrap();
        }
        prop_assert_eq!((events(&mut chunked), sent(&mut chunked)), want);
    }

    #[test]
    fn arbitrary_server_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        let (mut w, _) = script();
        let _ = w.handle_input(&data, Instant::now());
        w.handle_eof(Instant::now());
        let closed = matches!(events(&mut w).last(), Some(WorkerEvent::Closed { .. }));
        prop_assert!(closed);
    }
}
