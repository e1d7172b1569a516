//! Streamed workloads on a client connection, without sockets: the header counts the data
//! to come, the data is passed through in chunks, nothing is interleaved, and a source that
//! ends early, runs long or fails closes the connection with the reason, the frame never
//! completed.

use bytes::Bytes;
use gearman_core::client::{
    CallError, ClientConfig, ClientConnection, ClientEvent, Job, Waiters, WORKLOAD_CHUNK,
};
use gearman_core::machine::Machine;
use gearman_core::proto::Packet;
use gearman_core::proto::{FrameDecoder, Request, Response, SubmitMode, HEADER_LEN};
use gearman_core::{ConnError, Limits, UsageError, WorkloadError};
use std::time::Instant;

fn take(conn: &mut ClientConnection) -> Vec<u8> {
    let mut out = Vec::new();
    while conn.poll_transmit(&mut out) > 0 {}
    out
}

/// Feeds `data` as a source would, in the chunks the connection asks for; returns the
/// bytes sent meanwhile and the largest chunk asked for.
fn stream(conn: &mut ClientConnection, data: &[u8]) -> (Vec<u8>, usize) {
    let (mut wire, mut offset, mut largest) = (Vec::new(), 0, 0);
    wire.extend(take(conn));
    while let Some((_, want)) = conn.workload_wanted() {
        largest = largest.max(want);
        let end = (offset + want).min(data.len());
        conn.workload_input(&data[offset..end]);
        offset = end;
        wire.extend(take(conn));
    }
    (wire, largest)
}

fn decode(wire: &[u8]) -> Vec<Request> {
    let limits = Limits {
        max_body: 8 << 20,
        ..Limits::default()
    };
    let mut dec = FrameDecoder::new(limits);
    let mut buf = bytes::BytesMut::from(wire);
    let mut reqs = Vec::new();
    while let Some(f) = dec.decode(&mut buf).unwrap() {
        reqs.push(Request::parse(&f).unwrap());
    }
    assert!(buf.is_empty(), "{} bytes left over", buf.len());
    reqs
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

#[test]
fn header_counts_the_streamed_data_and_the_data_follows_in_chunks() {
    let mut conn = ClientConnection::new(ClientConfig::default());
    let data = pattern(3 * WORKLOAD_CHUNK + 17);
    let call = Job::new("reverse", "")
        .unique("u1")
        .streamed_call(false, data.len() as u64);
    let _ = conn.start(call).unwrap();
    let (wire, largest) = stream(&mut conn, &data);
    assert!(
        largest <= WORKLOAD_CHUNK,
        "asked for {largest} bytes at once"
    );
    let size = u32::from_be_bytes(wire[8..12].try_into().unwrap()) as usize;
    assert_eq!(size, "reverse\0u1\0".len() + data.len());
    assert_eq!(wire.len(), HEADER_LEN + size);
    match &decode(&wire)[..] {
        [Request::Submit(job)] => {
            assert_eq!(job.function, "reverse");
            assert_eq!(job.unique, "u1");
            assert!(matches!(job.mode, SubmitMode::Foreground(_)));
            assert_eq!(job.data, Bytes::from(data));
        }
        other => panic!("sent {other:?}"),
    }
    // The job is an ordinary one from here on.
    let created = Response::JobCreated {
        handle: Bytes::from_static(b"H:1"),
    };
    conn.handle_input(&created.to_bytes(), Instant::now())
        .unwrap();
    assert!(matches!(
        conn.poll_event(),
        Some(ClientEvent::Created { .. })
    ));
}

#[test]
fn other_packets_wait_until_the_streamed_data_is_complete() {
    let mut conn = ClientConnection::new(ClientConfig::default());
    let _ = conn.echo(Bytes::from_static(b"before")).unwrap();
    let data = pattern(2 * WORKLOAD_CHUNK);
    let call = Job::new("f", "").streamed_call(true, data.len() as u64);
    let _ = conn.start(call).unwrap();
    let mut wire = take(&mut conn);
    // Queued while the workload is on the wire: must come after it, not inside it.
    let _ = conn.echo(Bytes::from_static(b"during")).unwrap();
    let (rest, _) = stream(&mut conn, &data);
    wire.extend(rest);
    match &decode(&wire)[..] {
        [Request::Echo { data: a }, Request::Submit(job), Request::Echo { data: b }] => {
            assert_eq!((a.as_ref(), b.as_ref()), (&b"before"[..], &b"during"[..]));
            assert_eq!(job.data.len(), data.len());
            assert!(job.mode.is_background());
        }
        other => panic!("sent {other:?}"),
    }
}

#[test]
fn empty_streamed_workload_and_reduce_jobs() {
    let mut conn = ClientConnection::new(ClientConfig::default());
    let _ = conn
        .start(Job::new("f", "").streamed_call(false, 0))
        .unwrap();
    let call = Job::new("map", "").reducer("red").streamed_call(false, 5);
    let _ = conn.start(call).unwrap();
    let mut wire = take(&mut conn);
    // The first frame's last byte waits for the source's end.
    assert_eq!(wire.len(), HEADER_LEN + "f\0\0".len() - 1);
    conn.workload_input(b"");
    wire.extend(take(&mut conn));
    let (rest, _) = stream(&mut conn, b"a b c");
    wire.extend(rest);
    match &decode(&wire)[..] {
        [Request::Submit(a), Request::SubmitReduce(b)] => {
            assert!(a.data.is_empty());
            assert_eq!(
                (b.reducer.as_ref(), b.data.as_ref()),
                (&b"red"[..], &b"a b c"[..])
            );
        }
        other => panic!("sent {other:?}"),
    }
}

/// Runs a streamed submission whose source behaves as `source` says; returns what reached
/// the wire and the submission's result.
fn failing(
    len: u64,
    source: impl FnOnce(&mut ClientConnection),
) -> (Vec<u8>, Result<ClientEvent, CallError>) {
    let mut conn = ClientConnection::new(ClientConfig::default());
    let req = conn
        .start(Job::new("f", "").streamed_call(false, len))
        .unwrap();
    let other = conn.echo(Bytes::from_static(b"x")).unwrap();
    let mut waiters = Waiters::default();
    waiters.insert(req, 0);
    waiters.insert(other, 1);
    let mut wire = take(&mut conn);
    source(&mut conn);
    wire.extend(take(&mut conn));
    assert!(
        conn.is_closed(),
        "a failed source must close the connection"
    );
    assert!(conn.workload_wanted().is_none());
    let mut results = [None, None];
    while let Some(event) = conn.poll_event() {
        waiters.dispatch(event, |slot, r| {
            results[*slot] = Some(r);
            true
        });
    }
    assert!(results[1].is_some(), "the other request must end too");
    (wire, results[0].take().expect("the submission ended"))
}

fn workload_error(r: Result<ClientEvent, CallError>) -> WorkloadError {
    match r {
        Err(CallError::Connection(ConnError::Workload(e))) => e,
        other => panic!("expected a workload error, got {other:?}"),
    }
}

/// A frame that never completed: the wire holds less than its header promises.
fn assert_incomplete(wire: &[u8]) {
    let size = u32::from_be_bytes(wire[8..12].try_into().unwrap()) as usize;
    assert!(wire.len() < HEADER_LEN + size, "the frame completed");
}

#[test]
fn a_source_that_ends_early_fails_the_submission_and_closes() {
    let (wire, r) = failing(10, |conn| {
        conn.workload_input(b"12345");
        conn.workload_input(b"");
    });
    assert_eq!(workload_error(r), WorkloadError::Short { len: 10, sent: 5 });
    assert_incomplete(&wire);
}

#[test]
fn a_source_that_runs_long_fails_the_submission_before_the_frame_completes() {
    let (wire, r) = failing(4, |conn| {
        let (_, want) = conn.workload_wanted().unwrap();
        assert_eq!(want, 5, "one byte more than due, to see a long source");
        conn.workload_input(b"1234");
        conn.workload_input(b"5");
    });
    assert_eq!(workload_error(r), WorkloadError::Long { len: 4 });
    assert_incomplete(&wire);
    let (_, r) = failing(4, |conn| conn.workload_input(b"12345"));
    assert_eq!(workload_error(r), WorkloadError::Long { len: 4 });
}

#[test]
fn a_source_that_fails_closes_with_its_error() {
    let (wire, r) = failing(8, |conn| {
        conn.workload_input(b"12");
        conn.workload_error("disk on fire");
    });
    let e = workload_error(r);
    assert_eq!(e, WorkloadError::Read("disk on fire".into()));
    assert!(e.to_string().contains("disk on fire"));
    assert_incomplete(&wire);
}

#[test]
fn only_submissions_with_empty_data_stream() {
    let mut conn = ClientConnection::new(ClientConfig::default());
    let with_data = Job::new("f", "data").streamed_call(false, 3);
    assert_eq!(conn.start(with_data), Err(UsageError::NotStreamable));
    let too_long = Job::new("f", "").streamed_call(false, u64::from(u32::MAX));
    assert!(matches!(
        conn.start(too_long),
        Err(UsageError::ArgumentTooLarge { .. })
    ));
    assert!(take(&mut conn).is_empty());
}

#[test]
fn a_streamed_submission_that_times_out_mid_frame_closes_the_connection() {
    let now = Instant::now();
    let mut conn = ClientConnection::new(ClientConfig::default());
    let req = conn
        .start(Job::new("f", "").streamed_call(false, 10))
        .unwrap();
    conn.set_deadline(req, now + std::time::Duration::from_secs(1));
    let mut wire = take(&mut conn);
    conn.workload_input(b"123");
    wire.extend(take(&mut conn));
    // Queued behind the half-sent frame: it could never go out.
    let _ = conn.echo(Bytes::from_static(b"x")).unwrap();
    conn.handle_timeout(now + std::time::Duration::from_secs(1));
    assert!(matches!(conn.poll_event(), Some(ClientEvent::TimedOut { req: r }) if r == req));
    assert!(
        conn.is_closed(),
        "a frame its source may never finish would hold the connection forever"
    );
    assert_eq!(
        conn.error(),
        Some(&ConnError::Workload(WorkloadError::TimedOut {
            len: 10,
            sent: 3
        }))
    );
    assert!(matches!(
        conn.poll_event(),
        Some(ClientEvent::Closed { .. })
    ));
    wire.extend(take(&mut conn));
    assert_incomplete(&wire);
}

#[test]
fn a_streamed_submission_timing_out_after_its_frame_keeps_the_connection() {
    let now = Instant::now();
    let mut conn = ClientConnection::new(ClientConfig::default());
    let req = conn
        .start(Job::new("f", "").streamed_call(false, 3))
        .unwrap();
    conn.set_deadline(req, now + std::time::Duration::from_secs(1));
    let _ = stream(&mut conn, b"abc");
    conn.handle_timeout(now + std::time::Duration::from_secs(1));
    assert!(matches!(
        conn.poll_event(),
        Some(ClientEvent::TimedOut { .. })
    ));
    assert!(!conn.is_closed());
}
