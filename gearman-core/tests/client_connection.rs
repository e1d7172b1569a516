//! ClientConnection against scripted server bytes, in memory.

use bytes::{Bytes, BytesMut};
use gearman_core::client::{ClientConfig, ClientConnection, ClientEvent};
use gearman_core::machine::{Machine, RequestId};
use gearman_core::proto::*;
use gearman_core::{ConnError, Limits, ProtocolError, UsageError};
use proptest::prelude::*;
use std::time::{Duration, Instant};

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn fg(function: &str, unique: &str, data: &str, p: Priority) -> SubmitJob {
    SubmitJob {
        function: b(function),
        unique: b(unique),
        mode: SubmitMode::Foreground(p),
        data: b(data),
    }
}

fn encode_all(responses: &[Response]) -> Vec<u8> {
    let mut v = Vec::new();
    for r in responses {
        r.encode(&mut v);
    }
    v
}

/// Everything the connection wants to send, decoded.
fn sent(conn: &mut ClientConnection) -> Vec<Request> {
    let mut out = Vec::new();
    while conn.poll_transmit(&mut out) > 0 {}
    let mut buf = BytesMut::from(&out[..]);
    let mut dec = FrameDecoder::new(Limits::default());
    let mut v = Vec::new();
    while let Some(f) = dec.decode(&mut buf).unwrap() {
        v.push(Request::parse(&f).unwrap());
    }
    assert!(buf.is_empty());
    v
}

fn events(conn: &mut ClientConnection) -> Vec<ClientEvent> {
    std::iter::from_fn(|| conn.poll_event()).collect()
}

fn feed(conn: &mut ClientConnection, responses: &[Response]) -> Result<(), ConnError> {
    conn.handle_input(&encode_all(responses), Instant::now())
}

fn created(h: &str) -> Response {
    Response::JobCreated { handle: b(h) }
}

fn payload(h: &str, d: &str) -> WorkPayload {
    WorkPayload {
        handle: b(h),
        data: b(d),
    }
}

#[test]
fn every_submit_form_goes_out_as_its_packet_type() {
    let mut c = ClientConnection::new(ClientConfig::default());
    let modes = [
        (
            SubmitMode::Foreground(Priority::Normal),
            PacketType::SubmitJob,
        ),
        (
            SubmitMode::Foreground(Priority::High),
            PacketType::SubmitJobHigh,
        ),
        (
            SubmitMode::Foreground(Priority::Low),
            PacketType::SubmitJobLow,
        ),
        (
            SubmitMode::Background(Priority::Normal),
            PacketType::SubmitJobBg,
        ),
        (
            SubmitMode::Background(Priority::High),
            PacketType::SubmitJobHighBg,
        ),
        (
            SubmitMode::Background(Priority::Low),
            PacketType::SubmitJobLowBg,
        ),
        (SubmitMode::Epoch(1_900_000_000), PacketType::SubmitJobEpoch),
    ];
    for (mode, _) in modes {
        let _ = c
            .submit(SubmitJob {
                function: b("f"),
                unique: b("u"),
                mode,
                data: b("d"),
            })
            .unwrap();
    }
    for background in [false, true] {
        let _ = c
            .submit_reduce(SubmitReduceJob {
                function: b("map"),
                unique: b(""),
                reducer: b("reduce"),
                aggregator: b(""),
                background,
                data: b("x"),
            })
            .unwrap();
    }
    let types: Vec<_> = sent(&mut c).iter().map(Request::packet_type).collect();
    let mut want: Vec<_> = modes.iter().map(|m| m.1).collect();
    want.extend([
        PacketType::SubmitReduceJob,
        PacketType::SubmitReduceJobBackground,
    ]);
    assert_eq!(types, want);
}

#[test]
fn foreground_job_stream_in_order() {
    let mut c = ClientConnection::new(ClientConfig::default());
    let r = c.submit(fg("rev", "", "abc", Priority::Normal)).unwrap();
    feed(
        &mut c,
        &[
            created("H:x:1"),
            Response::WorkStatus(WorkStatus {
                handle: b("H:x:1"),
                numerator: 1,
                denominator: 2,
            }),
            Response::WorkData(payload("H:x:1", "c")),
            Response::WorkWarning(payload("H:x:1", "w")),
            Response::WorkComplete(payload("H:x:1", "cba")),
        ],
    )
    .unwrap();
    let h = b("H:x:1");
    assert_eq!(
        events(&mut c),
        vec![
            ClientEvent::Created {
                req: r,
                handle: h.clone(),
                background: false
            },
            ClientEvent::Status {
                req: r,
                handle: h.clone(),
                numerator: 1,
                denominator: 2
            },
            ClientEvent::Data {
                req: r,
                handle: h.clone(),
                data: b("c")
            },
            ClientEvent::Warning {
                req: r,
                handle: h.clone(),
                data: b("w")
            },
            ClientEvent::Complete {
                req: r,
                handle: h,
                data: b("cba")
            },
        ]
    );
    assert_eq!(c.outstanding(), 0);
}

#[test]
fn coalesced_submissions_each_get_their_own_stream() {
    let mut c = ClientConnection::new(ClientConfig::default());
    let r1 = c.submit(fg("f", "same", "a", Priority::Normal)).unwrap();
    let r2 = c.submit(fg("f", "same", "a", Priority::High)).unwrap();
    // gearmand: JOB_CREATED per submission, then every WORK_* once per submission.
    feed(
        &mut c,
        &[
            created("H:x:7"),
            created("H:x:7"),
            Response::WorkData(payload("H:x:7", "d")),
            Response::WorkData(payload("H:x:7", "d")),
            Response::WorkComplete(payload("H:x:7", "r")),
            Response::WorkComplete(payload("H:x:7", "r")),
        ],
    )
    .unwrap();
    let ev = events(&mut c);
    for r in [r1, r2] {
        let mine: Vec<_> = ev
            .iter()
            .filter(|e| match e {
                ClientEvent::Created { req, .. }
                | ClientEvent::Data { req, .. }
                | ClientEvent::Complete { req, .. } => *req == r,
                _ => false,
            })
            .collect();
        assert_eq!(mine.len(), 3, "{r:?}: {ev:?}");
        assert!(matches!(mine[2], ClientEvent::Complete { data, .. } if data == "r"));
    }
    assert_eq!(c.outstanding(), 0);
}

#[test]
fn a_later_submission_joins_a_running_stream() {
    let mut c = ClientConnection::new(ClientConfig::default());
    let r1 = c.submit(fg("f", "u", "", Priority::Normal)).unwrap();
    feed(
        &mut c,
        &[created("H:1"), Response::WorkData(payload("H:1", "one"))],
    )
    .unwrap();
    let r2 = c.submit(fg("f", "u", "", Priority::Normal)).unwrap();
    feed(
        &mut c,
        &[
            created("H:1"),
            Response::WorkData(payload("H:1", "two")),
            Response::WorkData(payload("H:1", "two")),
            Response::WorkFail { handle: b("H:1") },
            Response::WorkFail { handle: b("H:1") },
        ],
    )
    .unwrap();
    let data_of = |r: RequestId, ev: &[ClientEvent]| -> Vec<Bytes> {
        ev.iter()
            .filter_map(|e| match e {
                ClientEvent::Data { req, data, .. } if *req == r => Some(data.clone()),
                _ => None,
            })
            .collect()
    };
    let ev = events(&mut c);
    assert_eq!(data_of(r1, &ev), vec![b("one"), b("two")]);
    assert_eq!(data_of(r2, &ev), vec![b("two")]);
    let fails = ev
        .iter()
        .filter(|e| matches!(e, ClientEvent::Failed { .. }))
        .count();
    assert_eq!(fails, 2);
}

#[test]
fn handle_less_replies_match_in_fifo_order() {
    let mut c = ClientConnection::new(ClientConfig::default());
    let s = c
        .submit(SubmitJob {
            function: b("f"),
            unique: b(""),
            mode: SubmitMode::Background(Priority::Low),
            data: b(""),
        })
        .unwrap();
    let st = c.get_status(b("H:x:1")).unwrap();
    let e = c.echo(b("ping")).unwrap();
    let o = c.set_option(b("exceptions")).unwrap();
    let su = c.get_status_unique(b("u1")).unwrap();
    let bad = c.set_option(b("bogus")).unwrap();
    let status = StatusRes {
        handle: b("H:x:1"),
        known: true,
        running: false,
        numerator: 0,
        denominator: 0,
    };
    let status_u = StatusResUnique {
        unique: b("u1"),
        known: false,
        running: false,
        numerator: 0,
        denominator: 0,
        client_count: 0,
    };
    feed(
        &mut c,
        &[
            created("H:x:9"),
            Response::StatusRes(status.clone()),
            Response::EchoRes { data: b("ping") },
            Response::OptionRes {
                name: b("exceptions"),
            },
            Response::StatusResUnique(status_u.clone()),
            Response::Error {
                code: b("UNKNOWN_OPTION"),
                text: b("Server does not recognize given option"),
            },
        ],
    )
    .unwrap();
    assert_eq!(
        events(&mut c),
        vec![
            ClientEvent::Created {
                req: s,
                handle: b("H:x:9"),
                background: true
            },
            ClientEvent::StatusRes { req: st, status },
            ClientEvent::EchoRes {
                req: e,
                data: b("ping")
            },
            ClientEvent::OptionRes {
                req: o,
                name: b("exceptions")
            },
            ClientEvent::StatusResUnique {
                req: su,
                status: status_u
            },
            ClientEvent::ServerError {
                req: Some(bad),
                code: b("UNKNOWN_OPTION"),
                text: b("Server does not recognize given option"),
            },
        ]
    );
    assert_eq!(c.outstanding(), 0);
}

#[test]
fn error_replaces_job_created_and_following_replies_stay_matched() {
    let mut c = ClientConnection::new(ClientConfig::default());
    let r1 = c.submit(fg("f", "", "", Priority::Normal)).unwrap();
    let r2 = c.echo(b("e")).unwrap();
    feed(
        &mut c,
        &[
            Response::Error {
                code: b("QUEUE_ERROR"),
                text: b("Job queue is full"),
            },
            Response::EchoRes { data: b("e") },
        ],
    )
    .unwrap();
    let ev = events(&mut c);
    assert!(matches!(&ev[0], ClientEvent::ServerError { req: Some(r), .. } if *r == r1));
    assert!(matches!(&ev[1], ClientEvent::EchoRes { req, .. } if *req == r2));
    assert!(!c.is_closed());
}

#[test]
fn unsolicited_reply_is_a_sticky_protocol_error() {
    let mut c = ClientConnection::new(ClientConfig::default());
    let err = feed(&mut c, &[created("H:1")]).unwrap_err();
    assert_eq!(
        err,
        ConnError::Protocol(ProtocolError::UnsolicitedReply {
            ty: PacketType::JobCreated
        })
    );
    assert!(c.is_closed());
    assert_eq!(
        events(&mut c),
        vec![ClientEvent::Closed {
            reason: err.clone()
        }]
    );
    assert_eq!(feed(&mut c, &[]).unwrap_err(), err);
    assert_eq!(c.echo(b("x")).unwrap_err(), UsageError::Closed);
    assert!(events(&mut c).is_empty());
}

#[test]
fn worker_only_packets_are_rejected() {
    let mut c = ClientConnection::new(ClientConfig::default());
    assert!(feed(&mut c, &[Response::Noop]).is_err());
    let mut c = ClientConnection::new(ClientConfig::default());
    assert!(c
        .handle_input(b"\0REQ\0\0\0\x10\0\0\0\0", Instant::now())
        .is_err());
}

#[test]
fn work_fail_with_trailing_nul_and_results_after_cancel() {
    let mut c = ClientConnection::new(ClientConfig::default());
    let r = c.submit(fg("f", "", "", Priority::Normal)).unwrap();
    feed(&mut c, &[created("H:5")]).unwrap();
    // WORK_FAIL "H:5\0" (exception downgrade) then WORK_COMPLETE after an admin cancel.
    let mut bytes = b"\0RES\0\0\0\x0e\0\0\0\x04H:5\0".to_vec();
    Response::WorkComplete(payload("H:5", "late")).encode(&mut bytes);
    c.handle_input(&bytes, Instant::now()).unwrap();
    assert_eq!(
        events(&mut c),
        vec![
            ClientEvent::Created {
                req: r,
                handle: b("H:5"),
                background: false
            },
            ClientEvent::Failed {
                req: r,
                handle: b("H:5")
            },
        ]
    );
    assert!(!c.is_closed());
}

#[test]
fn deadlines_time_out_one_request_and_swallow_its_replies() {
    let t0 = Instant::now();
    let mut c = ClientConnection::new(ClientConfig::default());
    let slow = c.submit(fg("f", "", "", Priority::Normal)).unwrap();
    let other = c.submit(fg("g", "", "", Priority::Normal)).unwrap();
    c.set_deadline(slow, t0 + Duration::from_secs(1));
    assert_eq!(c.poll_timeout(), Some(t0 + Duration::from_secs(1)));
    c.handle_timeout(t0 + Duration::from_millis(500));
    assert!(events(&mut c).is_empty());
    c.handle_timeout(t0 + Duration::from_secs(1));
    assert_eq!(events(&mut c), vec![ClientEvent::TimedOut { req: slow }]);
    assert_eq!(c.poll_timeout(), None);
    feed(
        &mut c,
        &[
            created("H:1"),
            created("H:2"),
            Response::WorkComplete(payload("H:1", "x")),
            Response::WorkComplete(payload("H:2", "y")),
        ],
    )
    .unwrap();
    assert_eq!(
        events(&mut c),
        vec![
            ClientEvent::Created {
                req: other,
                handle: b("H:2"),
                background: false
            },
            ClientEvent::Complete {
                req: other,
                handle: b("H:2"),
                data: b("y")
            },
        ]
    );
}

#[test]
fn config_sends_client_id_and_exceptions_and_swallows_the_reply() {
    let mut c = ClientConnection::new(ClientConfig {
        client_id: Some(b("me")),
        exceptions: true,
        ..ClientConfig::default()
    });
    let e = c.echo(b("x")).unwrap();
    assert_eq!(
        sent(&mut c),
        vec![
            Request::SetClientId { id: b("me") },
            Request::Option {
                name: b("exceptions")
            },
            Request::Echo { data: b("x") },
        ]
    );
    feed(
        &mut c,
        &[
            Response::OptionRes {
                name: b("exceptions"),
            },
            Response::EchoRes { data: b("x") },
        ],
    )
    .unwrap();
    assert_eq!(
        events(&mut c),
        vec![ClientEvent::EchoRes {
            req: e,
            data: b("x")
        }]
    );
}

#[test]
fn arguments_that_would_desync_the_server_are_refused() {
    let mut c = ClientConnection::new(ClientConfig::default());
    assert!(matches!(
        c.submit(fg("f\0", "", "", Priority::Normal)),
        Err(UsageError::ContainsNul { .. })
    ));
    assert!(matches!(
        c.submit(fg("f", &"u".repeat(65), "", Priority::Normal)),
        Err(UsageError::ArgumentTooLarge { .. })
    ));
    assert!(c.get_status_unique(Bytes::from(vec![b'u'; 64])).is_err());
    assert!(c.get_status(Bytes::from(vec![b'h'; 64])).is_err());
    assert!(sent(&mut c).is_empty());
}

#[test]
fn eof_mid_frame_is_reported() {
    let mut c = ClientConnection::new(ClientConfig::default());
    let _ = c.echo(b("x")).unwrap();
    c.handle_input(b"\0RES\0\0", Instant::now()).unwrap();
    c.handle_eof(Instant::now());
    assert_eq!(
        events(&mut c),
        vec![ClientEvent::Closed {
            reason: ConnError::Eof { mid_frame: true }
        }]
    );
    assert!(c.is_closed());
}

#[test]
fn forgotten_requests_report_nothing() {
    let mut c = ClientConnection::new(ClientConfig::default());
    let r = c.submit(fg("f", "", "", Priority::Normal)).unwrap();
    assert!(c.forget(r));
    feed(
        &mut c,
        &[created("H:1"), Response::WorkComplete(payload("H:1", ""))],
    )
    .unwrap();
    assert!(events(&mut c).is_empty());
    assert!(!c.forget(r));
}

/// A session script: requests issued up front, then the server's byte stream.
fn scripted_session() -> (ClientConnection, Vec<u8>) {
    let mut c = ClientConnection::new(ClientConfig::default());
    let _ = c.submit(fg("f", "u", "a", Priority::Normal)).unwrap();
    let _ = c.submit(fg("f", "u", "a", Priority::Normal)).unwrap();
    let _ = c.echo(Bytes::from(vec![0u8; 300])).unwrap();
    let _ = c.get_status(b("H:1")).unwrap();
    let bytes = encode_all(&[
        created("H:1"),
        created("H:1"),
        Response::EchoRes {
            data: Bytes::from(vec![0u8; 300]),
        },
        Response::StatusRes(StatusRes {
            handle: b("H:1"),
            known: true,
            running: true,
            numerator: 3,
            denominator: 4,
        }),
        Response::WorkData(payload("H:1", "chunk")),
        Response::WorkData(payload("H:1", "chunk")),
        Response::WorkException(payload("H:1", "boom")),
        Response::WorkException(payload("H:1", "boom")),
    ]);
    (c, bytes)
}

proptest! {
    #[test]
    fn rechunking_never_changes_the_events(cuts in proptest::collection::vec(0usize..2000, 0..40)) {
        let (mut whole, bytes) = scripted_session();
        whole.handle_input(&bytes, Instant::now()).unwrap();
        let want = events(&mut whole);
        prop_assert_eq!(want.len(), 8);

        let (mut chunked, bytes) = scripted_session();
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (bytes.len() + 1)).collect();
        cuts.push(0);
        cuts.push(bytes.len());
        cuts.sort_unstable();
        for w in cuts.windows(2) {
            chunked.handle_input(&bytes[w[0]..w[1]], Instant::now()).unwrap();
        }
        prop_assert_eq!(events(&mut chunked), want);
    }

    #[test]
    fn arbitrary_server_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        let (mut c, _) = scripted_session();
        let _ = c.handle_input(&data, Instant::now());
        c.handle_eof(Instant::now());
        let ev = events(&mut c);
        let closed = matches!(ev.last(), Some(ClientEvent::Closed { .. }));
        prop_assert!(closed);
    }
}

#[test]
fn a_scheduled_job_goes_out_as_submit_job_sched_and_ends_with_its_handle() {
    use gearman_core::client::{Job, Schedule};
    let mut c = ClientConnection::new(ClientConfig::default());
    let schedule = Schedule::every_minute().minute("*/5").hour(3);
    let call = Job::new("tick", "data")
        .unique("u")
        .scheduled_call(&schedule);
    let req = c.start(call).unwrap();
    assert_eq!(
        sent(&mut c),
        [Request::SubmitSched(Box::new(SubmitJobSched {
            function: b("tick"),
            unique: b("u"),
            schedule: [b("*/5"), b("3"), b("*"), b("*"), b("*")],
            data: b("data"),
        }))]
    );
    feed(&mut c, &[created("H:s1")]).unwrap();
    assert_eq!(
        events(&mut c),
        [ClientEvent::Created {
            req,
            handle: b("H:s1"),
            background: true
        }]
    );
    assert_eq!(c.outstanding(), 0);
    // A field the server would refuse is refused here, naming it, and nothing is sent.
    let bad = Job::new("tick", "").scheduled_call(&Schedule::every_minute().day_of_week(8));
    assert_eq!(
        c.start(bad),
        Err(UsageError::InvalidSchedule(
            "day of week \"8\": out of range 0-7".into()
        ))
    );
    assert!(sent(&mut c).is_empty());
}
