//! Property tests of the codec: round trips for every variant, chunking invariance, prefix
//! behaviour, totality on arbitrary bytes, and limits enforced on the header alone.

use bytes::{Bytes, BytesMut};
use gearman_core::proto::*;
use gearman_core::{DecodeError, Limits, PacketError};
use proptest::prelude::*;

/// An argument that may not contain NUL (everything but the final data argument).
fn arg() -> impl Strategy<Value = Bytes> {
    prop::collection::vec(1u8..=255, 0..12).prop_map(Bytes::from)
}

/// A handle: non-empty, no NUL (a trailing NUL is stripped from WORK_FAIL by design).
fn handle() -> impl Strategy<Value = Bytes> {
    prop::collection::vec(1u8..=255, 1..12).prop_map(Bytes::from)
}

/// The unterminated last argument of a non-data packet: any bytes, NULs included (gearmand
/// keeps them as part of the argument).
fn remainder() -> impl Strategy<Value = Bytes> {
    prop::collection::vec(prop_oneof![Just(0u8), any::<u8>()], 0..12).prop_map(Bytes::from)
}

/// A WORK_FAIL handle: any bytes that do not end in NUL (parsing strips trailing NULs).
fn fail_handle() -> impl Strategy<Value = Bytes> {
    remainder().prop_map(|h| {
        let keep = h.iter().rposition(|&c| c != 0).map_or(0, |i| i + 1);
        h.slice(..keep)
    })
}

fn data() -> impl Strategy<Value = Bytes> {
    prop::collection::vec(any::<u8>(), 0..40).prop_map(Bytes::from)
}

fn priority() -> impl Strategy<Value = Priority> {
    prop_oneof![
        Just(Priority::High),
        Just(Priority::Normal),
        Just(Priority::Low)
    ]
}

fn mode() -> impl Strategy<Value = SubmitMode> {
    prop_oneof![
        priority().prop_map(SubmitMode::Foreground),
        priority().prop_map(SubmitMode::Background),
        any::<i64>().prop_map(SubmitMode::Epoch),
    ]
}

fn payload() -> impl Strategy<Value = WorkPayload> {
    (handle(), data()).prop_map(|(handle, data)| WorkPayload { handle, data })
}

fn status() -> impl Strategy<Value = WorkStatus> {
    (handle(), any::<u32>(), any::<u32>()).prop_map(|(handle, numerator, denominator)| WorkStatus {
        handle,
        numerator,
        denominator,
    })
}

fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        remainder().prop_map(|function| Request::CanDo { function }),
        (arg(), any::<u32>()).prop_map(|(function, timeout_ms)| Request::CanDoTimeout {
            function,
            timeout_ms
        }),
        remainder().prop_map(|function| Request::CantDo { function }),
        Just(Request::ResetAbilities),
        Just(Request::PreSleep),
        prop_oneof![
            Just(GrabMode::Plain),
            Just(GrabMode::Uniq),
            Just(GrabMode::All)
        ]
        .prop_map(Request::GrabJob),
        (arg(), arg(), mode(), data()).prop_map(|(function, unique, mode, data)| Request::Submit(
            SubmitJob {
                function,
                unique,
                mode,
                data
            }
        )),
        (arg(), arg(), arg(), arg(), any::<bool>(), data()).prop_map(
            |(function, unique, reducer, aggregator, background, data)| {
                Request::SubmitReduce(Box::new(SubmitReduceJob {
                    function,
                    unique,
                    reducer,
                    aggregator,
                    background,
                    data,
                }))
            }
        ),
        (arg(), arg(), [arg(), arg(), arg(), arg(), arg()], data()).prop_map(
            |(function, unique, schedule, data)| {
                Request::SubmitSched(Box::new(SubmitJobSched {
                    function,
                    unique,
                    schedule,
                    data,
                }))
            }
        ),
        arg().prop_map(|handle| Request::GetStatus { handle }),
        arg().prop_map(|unique| Request::GetStatusUnique { unique }),
        data().prop_map(|data| Request::Echo { data }),
        remainder().prop_map(|name| Request::Option { name }),
        remainder().prop_map(|id| Request::SetClientId { id }),
        status().prop_map(Request::WorkStatus),
        payload().prop_map(Request::WorkData),
        payload().prop_map(Request::WorkWarning),
        payload().prop_map(Request::WorkComplete),
        payload().prop_map(Request::WorkException),
        fail_handle().prop_map(|handle| Request::WorkFail { handle }),
        Just(Request::AllYours),
    ]
}

fn response() -> impl Strategy<Value = Response> {
    let extras = prop_oneof![
        Just(AssignExtras::Plain),
        arg().prop_map(AssignExtras::Unique),
        (arg(), arg()).prop_map(|(unique, reducer)| AssignExtras::Reduce { unique, reducer }),
    ];
    prop_oneof![
        Just(Response::Noop),
        Just(Response::NoJob),
        remainder().prop_map(|handle| Response::JobCreated { handle }),
        (handle(), arg(), extras, data()).prop_map(|(handle, function, extras, data)| {
            Response::JobAssign(JobAssign {
                handle,
                function,
                extras,
                data,
            })
        }),
        status().prop_map(Response::WorkStatus),
        payload().prop_map(Response::WorkData),
        payload().prop_map(Response::WorkWarning),
        payload().prop_map(Response::WorkComplete),
        payload().prop_map(Response::WorkException),
        fail_handle().prop_map(|handle| Response::WorkFail { handle }),
        data().prop_map(|data| Response::EchoRes { data }),
        (arg(), remainder()).prop_map(|(code, text)| Response::Error { code, text }),
        (
            arg(),
            any::<bool>(),
            any::<bool>(),
            any::<u32>(),
            any::<u32>()
        )
            .prop_map(|(handle, known, running, numerator, denominator)| {
                Response::StatusRes(StatusRes {
                    handle,
                    known,
                    running,
                    numerator,
                    denominator,
                })
            }),
        (
            arg(),
            any::<bool>(),
            any::<bool>(),
            any::<u32>(),
            any::<u32>(),
            any::<u32>()
        )
            .prop_map(
                |(unique, known, running, numerator, denominator, client_count)| {
                    Response::StatusResUnique(StatusResUnique {
                        unique,
                        known,
                        running,
                        numerator,
                        denominator,
                        client_count,
                    })
                }
            ),
        remainder().prop_map(|name| Response::OptionRes { name }),
    ]
}

fn decode_all(bytes: &[u8], cuts: &[usize]) -> Result<Vec<Frame>, DecodeError> {
    let mut dec = FrameDecoder::new(Limits::default());
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut pos = 0;
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    points.push(bytes.len());
    points.sort_unstable();
    for p in points {
        buf.extend_from_slice(&bytes[pos..p]);
        pos = p;
        while let Some(f) = dec.decode(&mut buf)? {
            frames.push(f);
        }
    }
    assert!(buf.is_empty());
    Ok(frames)
}

/// Decodes the one frame `bytes` holds and parses it as a request.
fn reparse_request(bytes: &[u8]) -> Result<Request, PacketError> {
    let frames = decode_all(bytes, &[]).unwrap();
    assert_eq!(frames.len(), 1);
    Request::parse(&frames[0])
}

fn reparse_response(bytes: &[u8]) -> Result<Response, PacketError> {
    let frames = decode_all(bytes, &[]).unwrap();
    assert_eq!(frames.len(), 1);
    Response::parse(&frames[0])
}

/// Bodies rich in NULs and digits, so arities and numbers are often satisfied.
fn body() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![Just(0u8), Just(b'1'), Just(b'-'), b'0'..=b'9', any::<u8>()],
        0..40,
    )
}

fn header(magic: &[u8; 4], ty: u32, size: u32) -> Vec<u8> {
    let mut h = magic.to_vec();
    h.extend_from_slice(&ty.to_be_bytes());
    h.extend_from_slice(&size.to_be_bytes());
    h
}

proptest! {
    #[test]
    fn request_round_trip(r in request()) {
        let bytes = r.to_bytes();
        prop_assert_eq!(bytes.len(), r.encoded_len());
        prop_assert_eq!(&bytes[..4], b"\0REQ");
        let parsed = reparse_request(&bytes);
        prop_assert_eq!(parsed.as_ref(), Ok(&r));
        // Encoding is canonical: the parsed value writes the same bytes again.
        prop_assert_eq!(parsed.unwrap().to_bytes(), bytes);
    }

    #[test]
    fn response_round_trip(r in response()) {
        let bytes = r.to_bytes();
        prop_assert_eq!(bytes.len(), r.encoded_len());
        prop_assert_eq!(&bytes[..4], b"\0RES");
        let parsed = reparse_response(&bytes);
        prop_assert_eq!(parsed.as_ref(), Ok(&r));
        prop_assert_eq!(parsed.unwrap().to_bytes(), bytes);
    }

    /// Whatever parses re-encodes to bytes that parse to the same value (the fuzzers'
    /// `frame_decode` property, on NUL- and digit-rich bodies).
    #[test]
    fn parsing_is_sound(req in any::<bool>(), ty in 1u32..=42, body in body()) {
        let magic = if req { b"\0REQ" } else { b"\0RES" };
        let mut bytes = header(magic, ty, body.len() as u32);
        bytes.extend_from_slice(&body);
        let frames = decode_all(&bytes, &[]).unwrap();
        prop_assert_eq!(frames.len(), 1);
        if let Ok(r) = Request::parse(&frames[0]) {
            prop_assert_eq!(reparse_request(&r.to_bytes()), Ok(r));
        }
        if let Ok(r) = Response::parse(&frames[0]) {
            prop_assert_eq!(reparse_response(&r.to_bytes()), Ok(r));
        }
    }

    #[test]
    fn chunking_does_not_change_the_responses(rs in prop::collection::vec(response(), 1..10), cuts in prop::collection::vec(any::<usize>(), 0..20)) {
        let mut stream = Vec::new();
        for r in &rs {
            r.encode(&mut stream);
        }
        let parsed: Vec<Response> = decode_all(&stream, &cuts).unwrap().iter().map(|f| Response::parse(f).unwrap()).collect();
        prop_assert_eq!(parsed, rs);
    }

    #[test]
    fn byte_at_a_time_gives_the_same_packets(rs in prop::collection::vec(request(), 1..4)) {
        let mut stream = Vec::new();
        for r in &rs {
            r.encode(&mut stream);
        }
        let cuts: Vec<usize> = (0..stream.len()).collect();
        let parsed: Vec<Request> = decode_all(&stream, &cuts).unwrap().iter().map(|f| Request::parse(f).unwrap()).collect();
        prop_assert_eq!(parsed, rs);
    }

    #[test]
    fn every_strict_prefix_of_a_request_needs_more(r in request()) {
        let bytes = r.to_bytes();
        for len in 0..bytes.len() {
            let mut dec = FrameDecoder::new(Limits::default());
            let mut buf = BytesMut::from(&bytes[..len]);
            prop_assert_eq!(dec.decode(&mut buf), Ok(None));
            prop_assert_eq!(dec.needed(&buf), if len < HEADER_LEN { HEADER_LEN - len } else { bytes.len() - len });
            prop_assert_eq!(buf.len(), len, "nothing consumed");
        }
    }

    #[test]
    fn chunking_does_not_change_the_packets(rs in prop::collection::vec(request(), 1..10), cuts in prop::collection::vec(any::<usize>(), 0..20)) {
        let mut stream = Vec::new();
        for r in &rs {
            r.encode(&mut stream);
        }
        let parsed: Vec<Request> = decode_all(&stream, &cuts).unwrap().iter().map(|f| Request::parse(f).unwrap()).collect();
        prop_assert_eq!(parsed, rs);
    }

    #[test]
    fn every_strict_prefix_of_a_response_needs_more(r in response()) {
        let bytes = r.to_bytes();
        for len in 0..bytes.len() {
            let mut dec = FrameDecoder::new(Limits::default());
            let mut buf = BytesMut::from(&bytes[..len]);
            prop_assert_eq!(dec.decode(&mut buf), Ok(None));
            prop_assert!(dec.needed(&buf) > 0);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_errors_stick(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let mut dec = FrameDecoder::new(Limits { max_body: 64, ..Limits::default() });
        let mut buf = BytesMut::from(&bytes[..]);
        loop {
            match dec.decode(&mut buf) {
                Ok(Some(f)) => {
                    let _ = Request::parse(&f);
                    let _ = Response::parse(&f);
                }
                Ok(None) => break,
                Err(e) => {
                    prop_assert_eq!(dec.decode(&mut buf), Err(e.clone()));
                    // More input, even a perfect frame, does not clear it.
                    buf.extend_from_slice(&Request::PreSleep.to_bytes());
                    prop_assert_eq!(dec.decode(&mut buf), Err(e.clone()));
                    prop_assert_eq!(dec.error(), Some(&e));
                    break;
                }
            }
        }
        let _ = admin::AdminCommand::parse(&bytes);
    }

    #[test]
    fn oversize_fails_on_the_header_alone(size in 65u32.., magic in prop_oneof![Just(*b"\0REQ"), Just(*b"\0RES")], ty in 1u32..=42) {
        let mut header = magic.to_vec();
        header.extend_from_slice(&ty.to_be_bytes());
        header.extend_from_slice(&size.to_be_bytes());
        let mut dec = FrameDecoder::new(Limits { max_body: 64, ..Limits::default() });
        let mut buf = BytesMut::from(&header[..]);
        prop_assert_eq!(dec.decode(&mut buf), Err(DecodeError::TooLarge { size, max: 64 }));
        prop_assert!(dec.decode(&mut buf).unwrap_err().is_fatal());
    }

    /// Up to the limit, the header is accepted and the decoder asks for exactly the body.
    #[test]
    fn sizes_up_to_the_limit_wait_for_the_body(size in 0u32..=64, ty in 1u32..=42) {
        let mut dec = FrameDecoder::new(Limits { max_body: 64, ..Limits::default() });
        let mut buf = BytesMut::from(&header(b"\0REQ", ty, size)[..]);
        if size == 0 {
            prop_assert!(dec.decode(&mut buf).unwrap().is_some());
        } else {
            prop_assert_eq!(dec.decode(&mut buf), Ok(None));
            prop_assert_eq!(dec.needed(&buf), size as usize);
        }
    }
}
