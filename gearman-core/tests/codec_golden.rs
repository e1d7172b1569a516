//! Golden vectors: bytes <-> values for every packet type, both magics, the protocol's
//! worked example, and how each kind of bad input is classified (fatal for the stream, or
//! one answerable packet). Admin text lines are in `codec_admin.rs`.

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
            Request::SubmitSched(Box::new(SubmitJobSched {
                function: b("f"),
                unique: b("u"),
                schedule: [b("1"), b("2"), b("3"), b("4"), b("5")],
                data: b("d"),
            })),
        ),
        (
            36,
            b"f\0u\x001700000000\0d",
            submit(SubmitMode::Epoch(1_700_000_000), "d"),
        ),
        (
            37,
            b"f\0u\0r\0\0d",
            Request::SubmitReduce(Box::new(SubmitReduceJob {
                function: b("f"),
                unique: b("u"),
                reducer: b("r"),
                aggregator: Bytes::new(),
                background: false,
                data: b("d"),
            })),
        ),
        (
            38,
            b"f\0u\0r\0agg\0d",
            Request::SubmitReduce(Box::new(SubmitReduceJob {
                function: b("f"),
                unique: b("u"),
                reducer: b("r"),
                aggregator: b("agg"),
                background: true,
                data: b("d"),
            })),
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

    // The rest of the conversation, and every packet of it parsed back.
    let created = Response::JobCreated {
        handle: b("H:lap:1"),
    };
    assert_eq!(created.to_bytes(), frame(b"\0RES", 8, b"H:lap:1"));
    assert_eq!(Response::Noop.to_bytes(), frame(b"\0RES", 6, b""));
    let grab = Request::GrabJob(GrabMode::Plain);
    assert_eq!(grab.to_bytes(), frame(b"\0REQ", 9, b""));
    // The worker's WORK_COMPLETE reaches the client with the same body, now `\0RES`.
    let forwarded = Response::WorkComplete(WorkPayload {
        handle: b("H:lap:1"),
        data: b("tset"),
    });
    assert_eq!(forwarded.to_bytes(), frame(b"\0RES", 13, b"H:lap:1\0tset"));
    for r in [
        Request::CanDo {
            function: b("reverse"),
        },
        submit,
        grab,
        done,
    ] {
        assert_eq!(Request::parse(&decode_one(&r.to_bytes()).unwrap()), Ok(r));
    }
    for r in [created, Response::Noop, assign, forwarded] {
        assert_eq!(Response::parse(&decode_one(&r.to_bytes()).unwrap()), Ok(r));
    }
}

/// Types only a server sends (plus UNUSED): refused when they arrive with `\0REQ`.
const SERVER_ONLY: [u32; 12] = [5, 6, 8, 10, 11, 17, 19, 20, 27, 31, 40, 42];
/// Types only clients and workers send (plus UNUSED): refused by `Response::parse`.
const CLIENT_ONLY: [u32; 25] = [
    1, 2, 3, 4, 5, 7, 9, 15, 16, 18, 21, 22, 23, 24, 26, 30, 32, 33, 34, 35, 36, 37, 38, 39, 41,
];
/// A body with enough NULs for any type's arity, so only the magic or direction can fail.
const MANY_ARGS: &[u8] = b"a\0b\0c\0d\0e\0f\0g\0h";

fn ty(n: u32) -> PacketType {
    PacketType::from_u32(n).unwrap()
}

#[test]
fn the_direction_tables_partition_the_42_types() {
    let both = [12u32, 13, 14, 25, 28, 29];
    for n in 1..=42u32 {
        let server_only = SERVER_ONLY.contains(&n);
        let client_only = CLIENT_ONLY.contains(&n);
        let is_both = both.contains(&n);
        assert!(
            (server_only || client_only || is_both) && !(is_both && (server_only || client_only)),
            "type {n}"
        );
        assert_eq!(
            Request::is_request_type(ty(n)),
            !server_only,
            "is_request_type({n})"
        );
    }
}

#[test]
fn res_magic_into_request_parse_is_wrong_magic_for_every_type() {
    for n in 1..=42u32 {
        let f = decode_one(&frame(b"\0RES", n, MANY_ARGS)).unwrap();
        let e = Request::parse(&f).unwrap_err();
        assert_eq!(
            e,
            PacketError::Illegal(ProtocolError::WrongMagic {
                ty: ty(n),
                magic: Magic::Res
            }),
            "type {n}"
        );
        assert_eq!(e.error_reply(), ("INVALID_MAGIC", "Request magic expected"));
    }
}

#[test]
fn req_magic_into_response_parse_is_wrong_magic_for_every_type() {
    for n in 1..=42u32 {
        let f = decode_one(&frame(b"\0REQ", n, MANY_ARGS)).unwrap();
        assert_eq!(
            Response::parse(&f),
            Err(PacketError::Illegal(ProtocolError::WrongMagic {
                ty: ty(n),
                magic: Magic::Req
            })),
            "type {n}"
        );
    }
}

#[test]
fn client_only_types_are_unexpected_in_responses() {
    for n in CLIENT_ONLY {
        let f = decode_one(&frame(b"\0RES", n, MANY_ARGS)).unwrap();
        assert_eq!(
            Response::parse(&f),
            Err(PacketError::Illegal(ProtocolError::Unexpected {
                ty: ty(n)
            })),
            "type {n}"
        );
    }
}

#[test]
fn server_only_types_are_unexpected_in_requests_whatever_the_body() {
    for n in SERVER_ONLY {
        for body in [&b""[..], MANY_ARGS, b"no nul at all"] {
            let f = decode_one(&frame(b"\0REQ", n, body)).unwrap();
            assert_eq!(
                Request::parse(&f),
                Err(PacketError::Illegal(ProtocolError::Unexpected {
                    ty: ty(n)
                })),
                "type {n}"
            );
        }
    }
}

/// Runs the decoder over `bytes` and checks it fails with `want` on the header alone (no
/// body bytes present), fatally, and keeps failing the same way.
fn assert_fatal_on_header(bytes: &[u8], want: DecodeError) {
    let mut dec = FrameDecoder::new(Limits::default());
    let mut buf = BytesMut::from(bytes);
    assert_eq!(dec.decode(&mut buf), Err(want.clone()));
    assert!(want.is_fatal());
    buf.extend_from_slice(&frame(b"\0REQ", 16, b"ok"));
    assert_eq!(dec.decode(&mut buf), Err(want.clone()), "sticky");
    assert_eq!(dec.error(), Some(&want));
}

#[test]
fn unknown_types_and_bad_magic_are_fatal_before_the_body() {
    // Headers announcing 100 body bytes that never arrive.
    let header = |magic: &[u8; 4], n: u32| {
        let mut h = magic.to_vec();
        h.extend_from_slice(&n.to_be_bytes());
        h.extend_from_slice(&100u32.to_be_bytes());
        h
    };
    for n in [0u32, 43, 44, 0x0100_0000, u32::MAX] {
        for magic in [b"\0REQ", b"\0RES"] {
            assert_fatal_on_header(&header(magic, n), DecodeError::UnknownType(n));
        }
    }
    for magic in [*b"\0req", *b"\0RE\0", *b"\0\0\0\0", *b"REQ\0", *b"GET "] {
        assert_fatal_on_header(&header(&magic, 1), DecodeError::BadMagic(magic));
    }
}

#[test]
fn argumentless_types_ignore_a_body() {
    // gearmand reads and ignores the body of a (0, no data) packet.
    for (n, want) in [
        (3u32, Request::ResetAbilities),
        (4, Request::PreSleep),
        (9, Request::GrabJob(GrabMode::Plain)),
        (24, Request::AllYours),
        (30, Request::GrabJob(GrabMode::Uniq)),
        (39, Request::GrabJob(GrabMode::All)),
    ] {
        let f = decode_one(&frame(b"\0REQ", n, b"junk\0more")).unwrap();
        assert_eq!(Request::parse(&f), Ok(want));
    }
    for (n, want) in [(6u32, Response::Noop), (10, Response::NoJob)] {
        let f = decode_one(&frame(b"\0RES", n, b"junk")).unwrap();
        assert_eq!(Response::parse(&f), Ok(want));
    }
}

#[test]
fn too_few_arguments_is_answerable_and_counted() {
    for &pt in PacketType::ALL {
        let (argc, has_data) = pt.arity();
        let terminated = if has_data {
            argc
        } else {
            argc.saturating_sub(1)
        };
        if terminated == 0 {
            continue;
        }
        // With `terminated - 1` NULs, the last terminated argument is unterminated.
        let body = vec![b'x'; 1]
            .into_iter()
            .chain(std::iter::repeat_n([0u8, b'x'], terminated - 1).flatten())
            .collect::<Vec<u8>>();
        let want = DecodeError::MissingArgument {
            ty: pt,
            expected: terminated,
            got: terminated - 1,
        };
        assert!(!want.is_fatal());
        let mut tried = 0;
        for (magic, parse) in [
            (
                b"\0REQ",
                (|f: &Frame| Request::parse(f).map(|_| ())) as fn(&Frame) -> _,
            ),
            (b"\0RES", |f: &Frame| Response::parse(f).map(|_| ())),
        ] {
            let f = decode_one(&frame(magic, pt.id(), &body)).unwrap();
            match parse(&f) {
                Err(PacketError::Illegal(ProtocolError::Unexpected { .. })) => {}
                other => {
                    tried += 1;
                    assert_eq!(other, Err(PacketError::Malformed(want.clone())), "{pt}");
                }
            }
        }
        assert!(tried > 0 || pt == PacketType::Unused, "{pt} was checked");
        assert_eq!(
            PacketError::Malformed(want).error_reply(),
            ("INVALID_ARGUMENT", "Malformed packet arguments")
        );
    }
}

fn bad<T>(ty: u32, field: &'static str) -> Result<T, PacketError> {
    Err(PacketError::Malformed(DecodeError::BadNumber {
        ty: PacketType::from_u32(ty).unwrap(),
        field,
    }))
}

#[test]
fn numbers_are_strict_decimal_and_answerable() {
    let accepted: [(&str, u32); 4] = [("0", 0), ("007", 7), ("4294967295", u32::MAX), ("15", 15)];
    let rejected = [
        "",
        "+5",
        "-1",
        " 5",
        "5 ",
        "1.5",
        "0x10",
        "4294967296",
        "99999999999999999999",
    ];
    let work_status = |n: &str| {
        let body = [b"H:1\0".as_slice(), n.as_bytes(), b"\x007"].concat();
        (
            Request::parse(&decode_one(&frame(b"\0REQ", 12, &body)).unwrap()),
            Response::parse(&decode_one(&frame(b"\0RES", 12, &body)).unwrap()),
        )
    };
    let timeout = |n: &str| {
        let body = [b"f\0".as_slice(), n.as_bytes()].concat();
        Request::parse(&decode_one(&frame(b"\0REQ", 23, &body)).unwrap())
    };
    let status_res = |n: &str| {
        let body = [b"H:1\x001\x000\x003\0".as_slice(), n.as_bytes()].concat();
        Response::parse(&decode_one(&frame(b"\0RES", 20, &body)).unwrap())
    };
    let status_res_unique = |n: &str| {
        let body = [b"u\x001\x001\x003\x004\0".as_slice(), n.as_bytes()].concat();
        Response::parse(&decode_one(&frame(b"\0RES", 42, &body)).unwrap())
    };
    for (text, n) in accepted {
        let status = WorkStatus {
            handle: b("H:1"),
            numerator: n,
            denominator: 7,
        };
        assert_eq!(
            work_status(text),
            (
                Ok(Request::WorkStatus(status.clone())),
                Ok(Response::WorkStatus(status))
            )
        );
        assert_eq!(
            timeout(text),
            Ok(Request::CanDoTimeout {
                function: b("f"),
                timeout_ms: n
            })
        );
        assert!(matches!(status_res(text), Ok(Response::StatusRes(s)) if s.denominator == n));
        assert!(
            matches!(status_res_unique(text), Ok(Response::StatusResUnique(s)) if s.client_count == n)
        );
    }
    for text in rejected {
        assert_eq!(
            work_status(text),
            (bad(12, "numerator"), bad(12, "numerator")),
            "{text:?}"
        );
        assert_eq!(timeout(text), bad(23, "timeout"), "{text:?}");
        assert_eq!(status_res(text), bad(20, "denominator"), "{text:?}");
        assert_eq!(status_res_unique(text), bad(42, "client_count"), "{text:?}");
        if let Err(PacketError::Malformed(e)) = timeout(text) {
            assert!(!e.is_fatal());
        }
    }
    // A NUL after the last (unterminated) number is part of it, so it is not a number.
    assert_eq!(timeout("5\0"), bad(23, "timeout"));
    assert_eq!(status_res("5\0"), bad(20, "denominator"));
    assert_eq!(status_res_unique("5\0"), bad(42, "client_count"));
    // STATUS_RES flags: any number, non-zero is true.
    let f = decode_one(&frame(b"\0RES", 20, b"H:1\x002\x000\x003\x004")).unwrap();
    assert!(matches!(Response::parse(&f), Ok(Response::StatusRes(s)) if s.known && !s.running));
}

#[test]
fn epochs_are_signed_decimal() {
    let epoch = |n: &str| {
        let body = [b"f\0u\0".as_slice(), n.as_bytes(), b"\0d"].concat();
        Request::parse(&decode_one(&frame(b"\0REQ", 36, &body)).unwrap())
    };
    for (text, want) in [
        ("0", 0i64),
        ("-5", -5),
        ("-0", 0),
        ("1700000000", 1_700_000_000),
        ("9223372036854775807", i64::MAX),
        ("-9223372036854775808", i64::MIN),
    ] {
        assert!(
            matches!(epoch(text), Ok(Request::Submit(s)) if s.mode == SubmitMode::Epoch(want)),
            "{text}"
        );
    }
    for text in ["", "-", "+5", " 1", "1e9", "9223372036854775808", "--1"] {
        assert_eq!(
            epoch(text),
            Err(PacketError::Malformed(DecodeError::BadNumber {
                ty: PacketType::SubmitJobEpoch,
                field: "epoch"
            })),
            "{text:?}"
        );
    }
}

#[test]
fn trailing_nuls() {
    let req = |n: u32, body: &[u8]| Request::parse(&decode_one(&frame(b"\0REQ", n, body)).unwrap());
    let res =
        |n: u32, body: &[u8]| Response::parse(&decode_one(&frame(b"\0RES", n, body)).unwrap());
    // The unterminated last argument of a non-data packet keeps its NULs, as in gearmand.
    assert_eq!(
        req(2, b"foo\0"),
        Ok(Request::CantDo {
            function: b("foo\0")
        })
    );
    // ...except GET_STATUS and GET_STATUS_UNIQUE, which gearmand reads as C strings: the
    // value ends at the first NUL (so a STATUS_RES echoing it keeps its framing).
    for body in [&b"H:1\0"[..], b"H:1\0junk", b"H:1\0\0"] {
        assert_eq!(req(15, body), Ok(Request::GetStatus { handle: b("H:1") }));
        assert_eq!(
            req(41, body),
            Ok(Request::GetStatusUnique { unique: b("H:1") })
        );
    }
    assert_eq!(
        req(26, b"exceptions\0"),
        Ok(Request::Option {
            name: b("exceptions\0")
        })
    );
    assert_eq!(
        res(19, b"CODE\0text\0"),
        Ok(Response::error("CODE", "text\0"))
    );
    // WORK_FAIL drops every trailing NUL, both ways: gearmand sends `handle\0` after
    // downgrading an exception, and a handle never ends in NUL.
    for body in [&b"H:1\0"[..], b"H:1\0\0\0"] {
        assert_eq!(req(14, body), Ok(Request::WorkFail { handle: b("H:1") }));
        assert_eq!(res(14, body), Ok(Response::WorkFail { handle: b("H:1") }));
    }
    // Inner NULs stay.
    assert_eq!(
        res(14, b"H\x001\0"),
        Ok(Response::WorkFail {
            handle: b("H\x001")
        })
    );
    // Data arguments keep everything, trailing NULs included.
    assert_eq!(
        req(13, b"H:1\0\0done\0"),
        Ok(Request::WorkComplete(WorkPayload {
            handle: b("H:1"),
            data: b("\0done\0"),
        }))
    );
}

#[test]
fn every_packet_error_has_gearmands_reply() {
    let cases = [
        (
            PacketError::Illegal(ProtocolError::WrongMagic {
                ty: PacketType::EchoReq,
                magic: Magic::Res,
            }),
            ("INVALID_MAGIC", "Request magic expected"),
        ),
        (
            PacketError::Illegal(ProtocolError::Unexpected {
                ty: PacketType::Noop,
            }),
            ("INVALID_COMMAND", "Command not expected"),
        ),
        (
            PacketError::Malformed(DecodeError::BadNumber {
                ty: PacketType::WorkStatus,
                field: "numerator",
            }),
            ("INVALID_ARGUMENT", "Malformed packet arguments"),
        ),
        (
            PacketError::Malformed(DecodeError::ArgumentTooLarge {
                ty: PacketType::CanDo,
                field: "function",
                len: 9000,
                max: 8192,
            }),
            ("ARGUMENT_TOO_LARGE", "Argument too large"),
        ),
    ];
    for (e, reply) in cases {
        assert_eq!(e.error_reply(), reply, "{e}");
    }
}
