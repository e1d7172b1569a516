//! Golden vectors: bytes <-> values for every packet type, both magics, and the protocol's
//! worked example.

use bytes::{Bytes, BytesMut};
use gearman_core::proto::*;
use gearman_core::{DecodeError, Limits, PacketError, ProtocolError};

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn frame(magic: &[u8; 4], ty: u32, body: &[u8]) -> Vec<u8> {
    let mut v = magic.to_vec();
    v.extend_from_slice(&ty.to_be_bytes());
    v.extend_from_slice(&(body.len() as u32).to_be_bytes());
    v.extend_from_slice(body);
    v
}

fn decode_one(bytes: &[u8]) -> Result<Frame, DecodeError> {
    let mut buf = BytesMut::from(bytes);
    let f = FrameDecoder::new(Limits::default())
        .decode(&mut buf)?
        .expect("a whole frame");
    assert!(buf.is_empty());
    Ok(f)
}

fn request_vectors() -> Vec<(u32, &'static [u8], Request)> {
    use Priority::*;
    let submit = |mode, data: &str| {
        Request::Submit(SubmitJob {
            function: b("f"),
            unique: b("u"),
            mode,
            data: b(data),
        })
    };
    let payload = |d: &str| WorkPayload {
        handle: b("H:x:1"),
        data: b(d),
    };
    vec![
        (
            1,
            b"reverse",
            Request::CanDo {
                function: b("reverse"),
            },
        ),
        (
            2,
            b"reverse",
            Request::CantDo {
                function: b("reverse"),
            },
        ),
        (3, b"", Request::ResetAbilities),
        (4, b"", Request::PreSleep),
        (
            7,
            b"f\0u\0da\0ta",
            submit(SubmitMode::Foreground(Normal), "da\0ta"),
        ),
        (9, b"", Request::GrabJob(GrabMode::Plain)),
        (
            12,
            b"H:x:1\x0050\x00100",
            Request::WorkStatus(WorkStatus {
                handle: b("H:x:1"),
                numerator: 50,
                denominator: 100,
            }),
        ),
        (13, b"H:x:1\0done", Request::WorkComplete(payload("done"))),
        (14, b"H:x:1", Request::WorkFail { handle: b("H:x:1") }),
        (15, b"H:x:1", Request::GetStatus { handle: b("H:x:1") }),
        (16, b"ping\0", Request::Echo { data: b("ping\0") }),
        (18, b"f\0u\0d", submit(SubmitMode::Background(Normal), "d")),
        (21, b"f\0u\0d", submit(SubmitMode::Foreground(High), "d")),
        (22, b"my id", Request::SetClientId { id: b("my id") }),
        (
            23,
            b"f\x001500",
            Request::CanDoTimeout {
                function: b("f"),
                timeout_ms: 1500,
            },
        ),
        (24, b"", Request::AllYours),
        (25, b"H:x:1\0oops", Request::WorkException(payload("oops"))),
        (
            26,
            b"exceptions",
            Request::Option {
                name: b("exceptions"),
            },
        ),
        (28, b"H:x:1\0chunk", Request::WorkData(payload("chunk"))),
        (
            29,
            b"H:x:1\0careful",
            Request::WorkWarning(payload("careful")),
        ),
        (30, b"", Request::GrabJob(GrabMode::Uniq)),
        (32, b"f\0u\0d", submit(SubmitMode::Background(High), "d")),
        (33, b"f\0u\0d", submit(SubmitMode::Foreground(Low), "d")),
        (34, b"f\0u\0d", submit(SubmitMode::Background(Low), "d")),
        (
            35,
            b"f\0u\x001\x002\x003\x004\x005\0d",
            Request::SubmitSched(SubmitJobSched {
                function: b("f"),
                unique: b("u"),
                schedule: [b("1"), b("2"), b("3"), b("4"), b("5")],
                data: b("d"),
            }),
        ),
        (
            36,
            b"f\0u\x001700000000\0d",
            submit(SubmitMode::Epoch(1_700_000_000), "d"),
        ),
        (
            37,
            b"f\0u\0r\0\0d",
            Request::SubmitReduce(SubmitReduceJob {
                function: b("f"),
                unique: b("u"),
                reducer: b("r"),
                aggregator: Bytes::new(),
                background: false,
                data: b("d"),
            }),
        ),
        (
            38,
            b"f\0u\0r\0agg\0d",
            Request::SubmitReduce(SubmitReduceJob {
                function: b("f"),
                unique: b("u"),
                reducer: b("r"),
                aggregator: b("agg"),
                background: true,
                data: b("d"),
            }),
        ),
        (39, b"", Request::GrabJob(GrabMode::All)),
        (41, b"u", Request::GetStatusUnique { unique: b("u") }),
    ]
}

fn response_vectors() -> Vec<(u32, &'static [u8], Response)> {
    let payload = |d: &str| WorkPayload {
        handle: b("H:x:1"),
        data: b(d),
    };
    let assign = |extras, d: &str| {
        Response::JobAssign(JobAssign {
            handle: b("H:x:1"),
            function: b("f"),
            extras,
            data: b(d),
        })
    };
    vec![
        (6, b"", Response::Noop),
        (8, b"H:x:1", Response::JobCreated { handle: b("H:x:1") }),
        (10, b"", Response::NoJob),
        (
            11,
            b"H:x:1\0f\0da\0ta",
            assign(AssignExtras::Plain, "da\0ta"),
        ),
        (
            12,
            b"H:x:1\x001\x002",
            Response::WorkStatus(WorkStatus {
                handle: b("H:x:1"),
                numerator: 1,
                denominator: 2,
            }),
        ),
        (13, b"H:x:1\0r", Response::WorkComplete(payload("r"))),
        (14, b"H:x:1", Response::WorkFail { handle: b("H:x:1") }),
        (17, b"pong", Response::EchoRes { data: b("pong") }),
        (
            19,
            b"QUEUE_ERROR\0Job queue is full",
            Response::error("QUEUE_ERROR", "Job queue is full"),
        ),
        (
            20,
            b"H:x:1\x001\x000\x003\x004",
            Response::StatusRes(StatusRes {
                handle: b("H:x:1"),
                known: true,
                running: false,
                numerator: 3,
                denominator: 4,
            }),
        ),
        (25, b"H:x:1\0e", Response::WorkException(payload("e"))),
        (
            27,
            b"exceptions",
            Response::OptionRes {
                name: b("exceptions"),
            },
        ),
        (28, b"H:x:1\0d", Response::WorkData(payload("d"))),
        (29, b"H:x:1\0w", Response::WorkWarning(payload("w"))),
        (
            31,
            b"H:x:1\0f\0u\0d",
            assign(AssignExtras::Unique(b("u")), "d"),
        ),
        (
            40,
            b"H:x:1\0f\0u\0r\0d",
            assign(
                AssignExtras::Reduce {
                    unique: b("u"),
                    reducer: b("r"),
                },
                "d",
            ),
        ),
        (
            42,
            b"u\x001\x001\x005\x006\x002",
            Response::StatusResUnique(StatusResUnique {
                unique: b("u"),
                known: true,
                running: true,
                numerator: 5,
                denominator: 6,
                client_count: 2,
            }),
        ),
    ]
}

#[test]
fn every_request_type_round_trips_exactly() {
    for (ty, body, value) in request_vectors() {
        let bytes = frame(b"\0REQ", ty, body);
        assert_eq!(value.to_bytes(), bytes, "encode {value:?}");
        assert_eq!(value.encoded_len(), bytes.len());
        assert_eq!(
            Request::parse(&decode_one(&bytes).unwrap()),
            Ok(value.clone()),
            "type {ty}"
        );
        assert_eq!(value.packet_type().id(), ty);
    }
}

#[test]
fn every_response_type_round_trips_exactly() {
    for (ty, body, value) in response_vectors() {
        let bytes = frame(b"\0RES", ty, body);
        assert_eq!(value.to_bytes(), bytes, "encode {value:?}");
        assert_eq!(value.encoded_len(), bytes.len());
        assert_eq!(
            Response::parse(&decode_one(&bytes).unwrap()),
            Ok(value.clone()),
            "type {ty}"
        );
    }
}

#[test]
fn all_42_types_are_covered_by_one_direction_or_refused() {
    let mut seen: Vec<u32> = request_vectors()
        .iter()
        .map(|v| v.0)
        .chain(response_vectors().iter().map(|v| v.0))
        .collect();
    seen.push(5); // UNUSED: refused both ways, tested below
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen, (1..=42).collect::<Vec<_>>());
}

#[test]
fn server_only_types_sent_as_requests_are_illegal_not_fatal() {
    for ty in [5u32, 6, 8, 10, 11, 17, 19, 20, 27, 31, 40, 42] {
        let f = decode_one(&frame(b"\0REQ", ty, b"")).unwrap();
        let pt = PacketType::from_u32(ty).unwrap();
        assert_eq!(
            Request::parse(&f),
            Err(PacketError::Illegal(ProtocolError::Unexpected { ty: pt }))
        );
        assert_eq!(
            PacketError::Illegal(ProtocolError::Unexpected { ty: pt }).error_reply(),
            ("INVALID_COMMAND", "Command not expected")
        );
    }
    for ty in [1u32, 2, 3, 4, 7, 9, 15, 16, 22, 23, 26, 30, 39, 41] {
        let f = decode_one(&frame(b"\0RES", ty, b"a\0b\0c\0d\0e\0f\0g")).unwrap();
        assert!(
            matches!(
                Response::parse(&f),
                Err(PacketError::Illegal(ProtocolError::Unexpected { .. }))
            ),
            "type {ty}"
        );
    }
}

#[test]
fn wrong_magic_is_answerable() {
    let f = decode_one(&frame(b"\0RES", 16, b"hi")).unwrap();
    let e = Request::parse(&f).unwrap_err();
    assert_eq!(e.error_reply(), ("INVALID_MAGIC", "Request magic expected"));
    let f = decode_one(&frame(b"\0REQ", 8, b"H:1")).unwrap();
    assert!(matches!(
        Response::parse(&f),
        Err(PacketError::Illegal(ProtocolError::WrongMagic { .. }))
    ));
}

#[test]
fn stream_level_faults_are_fatal() {
    assert_eq!(
        decode_one(&frame(b"\0REQ", 0, b"")).unwrap_err(),
        DecodeError::UnknownType(0)
    );
    assert_eq!(
        decode_one(&frame(b"\0REQ", 43, b"")).unwrap_err(),
        DecodeError::UnknownType(43)
    );
    assert_eq!(
        decode_one(&frame(b"HTTP", 1, b"")).unwrap_err(),
        DecodeError::BadMagic(*b"HTTP")
    );
    for e in [DecodeError::UnknownType(0), DecodeError::BadMagic(*b"HTTP")] {
        assert!(e.is_fatal());
    }
}

#[test]
fn malformed_bodies_are_answerable() {
    // SUBMIT_JOB with no NUL at all, CAN_DO_TIMEOUT with a non-number, WORK_STATUS overflow.
    for (ty, body) in [
        (7u32, &b"fonly"[..]),
        (23, b"f\0soon"),
        (12, b"H:1\x0099999999999\x001"),
    ] {
        let e = Request::parse(&decode_one(&frame(b"\0REQ", ty, body)).unwrap()).unwrap_err();
        match &e {
            PacketError::Malformed(d) => assert!(!d.is_fatal(), "{d:?}"),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn non_data_last_argument_keeps_trailing_nul_but_work_fail_drops_it() {
    let f = decode_one(&frame(b"\0REQ", 1, b"foo\0")).unwrap();
    assert_eq!(
        Request::parse(&f),
        Ok(Request::CanDo {
            function: Bytes::from_static(b"foo\0")
        })
    );
    // gearmand forwards WORK_FAIL "handle\0" after downgrading an exception.
    let f = decode_one(&frame(b"\0RES", 14, b"H:x:8\0")).unwrap();
    assert_eq!(
        Response::parse(&f),
        Ok(Response::WorkFail { handle: b("H:x:8") })
    );
}

#[test]
fn worked_example_from_the_protocol() {
    let can_do = [
        0, 0x52, 0x45, 0x51, 0, 0, 0, 1, 0, 0, 0, 7, 0x72, 0x65, 0x76, 0x65, 0x72, 0x73, 0x65,
    ];
    assert_eq!(
        Request::CanDo {
            function: b("reverse")
        }
        .to_bytes(),
        &can_do[..]
    );
    let submit = Request::Submit(SubmitJob {
        function: b("reverse"),
        unique: Bytes::new(),
        mode: SubmitMode::Foreground(Priority::Normal),
        data: b("test"),
    });
    assert_eq!(submit.to_bytes(), frame(b"\0REQ", 7, b"reverse\0\0test"));
    let assign = Response::JobAssign(JobAssign {
        handle: b("H:lap:1"),
        function: b("reverse"),
        extras: AssignExtras::Plain,
        data: b("test"),
    });
    assert_eq!(
        assign.to_bytes(),
        frame(b"\0RES", 11, b"H:lap:1\0reverse\0test")
    );
    let done = Request::WorkComplete(WorkPayload {
        handle: b("H:lap:1"),
        data: b("tset"),
    });
    assert_eq!(done.to_bytes(), frame(b"\0REQ", 13, b"H:lap:1\0tset"));
}

#[test]
fn admin_commands_parse_as_gearmand_reads_them() {
    use gearman_core::proto::admin::AdminCommand as A;
    let cases: Vec<(&[u8], A)> = vec![
        (b"status\r\n", A::Status),
        (b"prioritystatus\n", A::PriorityStatus),
        (b"workers\r\n", A::Workers),
        (b"version\n", A::Version),
        (b"getpid\r\n", A::Getpid),
        (b"verbose\r\n", A::Verbose),
        (b"show jobs\r\n", A::ShowJobs),
        (b"show unique jobs\r\n", A::ShowUniqueJobs),
        (b"cancel job H:x:1\r\n", A::CancelJob(b("H:x:1"))),
        (b"create function f\r\n", A::CreateFunction(b("f"))),
        (b"drop function f\n", A::DropFunction(b("f"))),
        (
            b"maxqueue f\r\n",
            A::MaxQueue {
                function: b("f"),
                limits: [0, 0, 0],
            },
        ),
        (
            b"maxqueue f 5\r\n",
            A::MaxQueue {
                function: b("f"),
                limits: [5, 5, 5],
            },
        ),
        (
            b"maxqueue f 1 2 3\r\n",
            A::MaxQueue {
                function: b("f"),
                limits: [1, 2, 3],
            },
        ),
        (b"shutdown graceful\r\n", A::Shutdown { graceful: true }),
    ];
    for (line, want) in cases {
        assert_eq!(
            A::parse(line),
            Ok(want),
            "{}",
            String::from_utf8_lossy(line)
        );
    }
}
