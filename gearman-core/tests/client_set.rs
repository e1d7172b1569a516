//! The client-side logic every adapter shares, without sockets: `ClientSet` (routing,
//! failover, result slots, handle homes, backoff after a loss), `Waiters` and `Job`.

use bytes::Bytes;
use gearman_core::backoff::Backoff;
use gearman_core::client::{
    Call, CallError, ClientEvent, ClientOptions, ClientSet, Job, Selection, Waiters,
};
use gearman_core::machine::{Machine, RequestId};
use gearman_core::proto::Packet;
use gearman_core::proto::{
    FrameDecoder, Priority, Request, Response, StatusRes, SubmitMode, WorkPayload,
};
use gearman_core::Limits;
use std::time::{Duration, Instant};

/// A fake transport: which server it leads to.
type Server = usize;

fn set(n: usize, selection: Selection) -> ClientSet<Server> {
    let addrs = (0..n).map(|i| format!("s{i}")).collect();
    let options = ClientOptions {
        selection,
        ..ClientOptions::default()
    };
    ClientSet::new(addrs, &options)
}

/// Connects to every server whose address is not in `down`.
fn connector(down: &'static [&'static str]) -> impl FnMut(&str) -> Result<Server, ()> {
    move |addr: &str| {
        if down.contains(&addr) {
            Err(())
        } else {
            addr.trim_start_matches('s').parse().map_err(|_| ())
        }
    }
}

/// What server `idx` was sent.
fn sent(set: &mut ClientSet<Server>, idx: usize) -> Vec<Request> {
    let m = set.member(idx).expect("connected");
    let mut out = Vec::new();
    while m.machine.poll_transmit(&mut out) > 0 {}
    let mut dec = FrameDecoder::new(Limits::default());
    let mut buf = bytes::BytesMut::from(&out[..]);
    let mut reqs = Vec::new();
    while let Some(f) = dec.decode(&mut buf).unwrap() {
        reqs.push(Request::parse(&f).unwrap());
    }
    reqs
}

fn reply(set: &mut ClientSet<Server>, idx: usize, responses: &[Response]) {
    let m = set.member(idx).expect("connected");
    for r in responses {
        m.machine
            .handle_input(&r.to_bytes(), Instant::now())
            .unwrap();
    }
}

fn handle(s: &'static str) -> Bytes {
    Bytes::from_static(s.as_bytes())
}

#[test]
fn calls_fail_over_past_a_dead_server_and_results_land_in_their_slots() {
    let mut set = set(3, Selection::RoundRobin);
    let now = Instant::now();
    let calls = vec![
        (Job::new("f", "a").call(false), None),
        (Call::Echo(handle("e")), None),
    ];
    // Round-robin picks server 0 for the submission; it is down, so server 1 takes it.
    // The echo goes to the first server: also down, so server 1 again.
    set.start(calls, now, connector(&["s0"]));
    assert_eq!(set.busy(), [1]);
    assert!(set.member(0).is_none() && set.member(2).is_none());
    assert_eq!(sent(&mut set, 1).len(), 2);
    reply(
        &mut set,
        1,
        &[
            Response::JobCreated {
                handle: handle("H:1"),
            },
            Response::EchoRes { data: handle("e") },
        ],
    );
    let mut seen = Vec::new();
    assert!(set.drain(1, now, |slot, e| seen.push((slot, e.clone()))));
    reply(
        &mut set,
        1,
        &[Response::WorkComplete(WorkPayload {
            handle: handle("H:1"),
            data: handle("A"),
        })],
    );
    assert!(!set.drain(1, now, |slot, e| seen.push((slot, e.clone()))));
    let slots: Vec<_> = seen.iter().map(|(s, _)| *s).collect();
    assert_eq!(slots, [0, 1, 0]);
    let results = set.take_results();
    assert_eq!(results[0].clone().unwrap().into_bytes().unwrap(), "A");
    assert_eq!(results[1].clone().unwrap().into_bytes().unwrap(), "e");
}

#[test]
fn no_reachable_server_fails_every_call() {
    let mut set = set(2, Selection::RoundRobin);
    set.start(
        vec![(Call::Echo(handle("x")), None)],
        Instant::now(),
        connector(&["s0", "s1"]),
    );
    assert!(set.busy().is_empty());
    assert_eq!(set.take_results(), [Err(CallError::NoServer)]);
    // Both back off now: the next batch does not even try them.
    let mut tried = 0;
    set.start(
        vec![(Call::Echo(handle("x")), None)],
        Instant::now(),
        |_: &str| -> Result<Server, ()> {
            tried += 1;
            Err(())
        },
    );
    assert_eq!(tried, 0);
}

#[test]
fn status_of_a_background_handle_goes_to_the_server_that_made_it() {
    let mut set = set(2, Selection::RoundRobin);
    let now = Instant::now();
    // Round-robin: the first submission goes to server 0, the second to server 1.
    let bg = |d: &'static str| (Job::new("f", d).call(true), None);
    set.start(vec![bg("a"), bg("b")], now, connector(&[]));
    assert_eq!(set.busy(), [0, 1]);
    reply(
        &mut set,
        0,
        &[Response::JobCreated {
            handle: handle("H:a"),
        }],
    );
    reply(
        &mut set,
        1,
        &[Response::JobCreated {
            handle: handle("H:b"),
        }],
    );
    assert!(!set.drain(0, now, |_, _| {}));
    assert!(!set.drain(1, now, |_, _| {}));
    set.take_results();
    let _ = (sent(&mut set, 0), sent(&mut set, 1));
    set.start(
        vec![(Call::Status(handle("H:b")), None)],
        now,
        connector(&[]),
    );
    assert_eq!(set.busy(), [1]);
    assert!(matches!(sent(&mut set, 1)[..], [Request::GetStatus { .. }]));
    let status = StatusRes {
        handle: handle("H:b"),
        known: true,
        running: false,
        numerator: 0,
        denominator: 0,
    };
    reply(&mut set, 1, &[Response::StatusRes(status.clone())]);
    assert!(!set.drain(1, now, |_, _| {}));
    let result = set.take_results().pop().unwrap().unwrap();
    assert_eq!(result.into_status().unwrap(), status);
}

#[test]
fn a_lost_connection_fails_its_calls_and_the_server_backs_off() {
    let mut set = set(2, Selection::ByUnique);
    let now = Instant::now();
    set.start(
        vec![(Job::new("f", "x").call(false), None)],
        now,
        connector(&[]),
    );
    let idx = set.busy()[0];
    set.member(idx).unwrap().machine.handle_eof(now);
    assert!(!set.drain(idx, now, |_, _| {}));
    assert!(set.member(idx).is_none());
    assert!(matches!(
        set.take_results()[..],
        [Err(CallError::Connection(_))]
    ));
    // The next call fails over to the other server while this one backs off.
    set.start(vec![(Call::Echo(handle("e")), None)], now, connector(&[]));
    assert_eq!(set.busy(), [1 - idx]);
}

#[test]
fn deadlines_come_from_the_call_or_the_default() {
    let addrs = vec!["s0".to_string()];
    let options = ClientOptions {
        timeout: Some(Duration::from_secs(5)),
        backoff: Backoff::default(),
        ..ClientOptions::default()
    };
    let mut set: ClientSet<Server> = ClientSet::new(addrs, &options);
    let now = Instant::now();
    let calls = vec![
        (Job::new("f", "x").call(false), Some(Duration::from_secs(1))),
        (Job::new("f", "y").call(false), None),
    ];
    set.start(calls, now, connector(&[]));
    let m = set.member(0).unwrap();
    assert_eq!(m.machine.poll_timeout(), Some(now + Duration::from_secs(1)));
    m.machine.handle_timeout(now + Duration::from_secs(1));
    assert!(set.drain(0, now, |_, _| {}));
    let m = set.member(0).unwrap();
    assert_eq!(m.machine.poll_timeout(), Some(now + Duration::from_secs(5)));
    m.machine.handle_timeout(now + Duration::from_secs(5));
    assert!(!set.drain(0, now, |_, _| {}));
    assert_eq!(
        set.take_results(),
        [Err(CallError::TimedOut), Err(CallError::TimedOut)]
    );
}

/// `start_within`: each connect gets its call's deadline; a connect that fails past it
/// ends the call with `TimedOut` (no failover), and a later call already past its
/// deadline ends so without connecting; calls without one fail over as before.
#[test]
fn a_connect_past_the_calls_deadline_times_the_call_out() {
    let mut set = set(2, Selection::RoundRobin);
    let now = Instant::now();
    let echo = |t: Option<u64>| (Call::Echo(handle("e")), t.map(Duration::from_secs));
    let clock = std::cell::Cell::new(now);
    let mut tried = Vec::new();
    // s0 hangs until the first call's deadline passes; s1 is up.
    let connect = |addr: &str, deadline: Option<Instant>| {
        tried.push((addr.to_string(), deadline));
        match addr {
            "s0" => {
                clock.set(now + Duration::from_secs(5));
                Err(())
            }
            _ => Ok(1),
        }
    };
    let calls = vec![echo(Some(5)), echo(Some(5))];
    set.start_within(calls, now, || clock.get(), connect);
    let deadline = Some(now + Duration::from_secs(5));
    assert_eq!(tried, [("s0".to_string(), deadline)]);
    let results = set.take_results();
    assert_eq!(
        results,
        [Err(CallError::TimedOut), Err(CallError::TimedOut)]
    );
    assert_eq!(set.unreachable(), [("s0".to_string(), ())]);
    // Without a deadline, a failed connect fails over.
    let mut set = self::set(2, Selection::RoundRobin);
    let connect = |addr: &str, _: Option<Instant>| connector(&["s0"])(addr);
    set.start_within(vec![echo(None)], now, || clock.get(), connect);
    assert_eq!(set.busy(), [1]);
}

#[test]
fn waiters_drop_gone_waiters_and_close_everyone_on_closed() {
    let mut w: Waiters<Vec<String>> = Waiters::default();
    w.insert(RequestId(1), Vec::new());
    w.insert(RequestId(2), Vec::new());
    let created = ClientEvent::Created {
        req: RequestId(1),
        handle: handle("H:1"),
        background: false,
    };
    assert_eq!(w.dispatch(created, |_, _| true), None);
    // A waiter that went away is dropped and its request handed back to forget.
    let data = ClientEvent::Data {
        req: RequestId(1),
        handle: handle("H:1"),
        data: handle("d"),
    };
    assert_eq!(w.dispatch(data, |_, _| false), Some(RequestId(1)));
    assert_eq!(w.len(), 1);
    let mut closed = 0;
    let reason = gearman_core::ConnError::Closed;
    w.dispatch(ClientEvent::Closed { reason }, |_, r| {
        closed += usize::from(matches!(r, Err(CallError::Connection(_))));
        true
    });
    assert_eq!(closed, 1);
    assert!(w.is_empty());
}

#[test]
fn job_builds_every_submission_kind() {
    let job = Job::new("f", "d").unique("u").priority(Priority::Low);
    let Call::Submit(s) = job.call(true) else {
        panic!("not a submit")
    };
    assert_eq!(s.mode, SubmitMode::Background(Priority::Low));
    assert_eq!(s.unique, "u");
    let Call::Submit(s) = job.clone().at_epoch(7).call(false) else {
        panic!("not a submit")
    };
    assert_eq!(
        s.mode,
        SubmitMode::Epoch(7),
        "epoch jobs are always background"
    );
    let Call::Reduce(r) = job.reducer("r").call(false) else {
        panic!("not a reduce")
    };
    assert_eq!((r.reducer.as_ref(), r.background), (&b"r"[..], false));
}
