//! Property tests of the codec: round trips for every variant, chunking invariance, prefix
//! behaviour, totality on arbitrary bytes, and limits enforced on the header alone.

use bytes::{Bytes, BytesMut};
use gearman_core::proto::*;
use gearman_core::{DecodeError, Limits};
use proptest::prelude::*;

/// An argument that may not contain NUL (everything but the final data argument).
fn arg() -> impl Strategy<Value = Bytes> {
    prop::collection::vec(1u8..=255, 0..12).prop_map(Bytes::from)
}

/// A handle: non-empty, no NUL (a trailing NUL is stripped from WORK_FAIL by design).
fn handle() -> impl Strategy<Value = Bytes> {
    prop::collection::vec(1u8..=255, 1..12).prop_map(Bytes::from)
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
        arg().prop_map(|function| Request::CanDo { function }),
        (arg(), any::<u32>()).prop_map(|(function, timeout_ms)| Request::CanDoTimeout {
            function,
            timeout_ms
        }),
        arg().prop_map(|function| Request::CantDo { function }),
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
                Request::SubmitReduce(SubmitReduceJob {
                    function,
                    unique,
                    reducer,
                    aggregator,
                    background,
                    data,
                })
            }
        ),
        (arg(), arg(), [arg(), arg(), arg(), arg(), arg()], data()).prop_map(
            |(function, unique, schedule, data)| {
                Request::SubmitSched(SubmitJobSched {
                    function,
                    unique,
                    schedule,
                    data,
                })
            }
        ),
        arg().prop_map(|handle| Request::GetStatus { handle }),
        arg().prop_map(|unique| Request::GetStatusUnique { unique }),
        data().prop_map(|data| Request::Echo { data }),
        arg().prop_map(|name| Request::Option { name }),
        arg().prop_map(|id| Request::SetClientId { id }),
        status().prop_map(Request::WorkStatus),
        payload().prop_map(Request::WorkData),
        payload().prop_map(Request::WorkWarning),
        payload().prop_map(Request::WorkComplete),
        payload().prop_map(Request::WorkException),
        handle().prop_map(|handle| Request::WorkFail { handle }),
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
        arg().prop_map(|handle| Response::JobCreated { handle }),
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
        handle().prop_map(|handle| Response::WorkFail { handle }),
        data().prop_map(|data| Response::EchoRes { data }),
        (arg(), arg()).prop_map(|(code, text)| Response::Error { code, text }),
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
        arg().prop_map(|name| Response::OptionRes { name }),
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

proptest! {
    #[test]
    fn request_round_trip(r in request()) {
        let bytes = r.to_bytes();
        prop_assert_eq!(bytes.len(), r.encoded_len());
        let frames = decode_all(&bytes, &[]).unwrap();
        prop_assert_eq!(frames.len(), 1);
        prop_assert_eq!(Request::parse(&frames[0]), Ok(r));
    }

    #[test]
    fn response_round_trip(r in response()) {
        let bytes = r.to_bytes();
        prop_assert_eq!(bytes.len(), r.encoded_len());
        let frames = decode_all(&bytes, &[]).unwrap();
        prop_assert_eq!(Response::parse(&frames[0]), Ok(r));
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
    fn every_strict_prefix_needs_more(r in response()) {
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
                    prop_assert_eq!(dec.decode(&mut buf), Err(e));
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
    }
}
