//! Entry points for the fuzz targets. Private: enabled by the `__fuzz` feature, not a stable
//! API. Each function panics only when a property it checks is broken.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use crate::client::{ClientConfig, ClientConnection};
use crate::machine::Machine;
use crate::proto::admin::{find_line, AdminCommand};
use crate::proto::{FrameDecoder, Packet, Request, Response};
use crate::server::{JobRecord, PeerInfo, Server, ServerConfig};
use crate::worker::{WorkerConfig, WorkerConnection};
use crate::Limits;
use bytes::{Bytes, BytesMut};
use std::time::{Duration, Instant};

fn small_limits() -> Limits {
    Limits {
        max_body: 4096,
        max_admin_line: 256,
        ..Limits::default()
    }
}

/// Bytes -> frames: never panics, consumes nothing it cannot use, errors stick, and every
/// packet that parses re-encodes to bytes that parse to the same value.
pub fn frame_decode(data: &[u8]) {
    let mut dec = FrameDecoder::new(small_limits());
    let mut buf = BytesMut::from(data);
    loop {
        match dec.decode(&mut buf) {
            Ok(Some(frame)) => {
                if let Ok(r) = Request::parse(&frame) {
                    reparse_request(&r);
                }
                if let Ok(r) = Response::parse(&frame) {
                    reparse_response(&r);
                }
            }
            Ok(None) => {
                assert!(dec.needed(&buf) > 0 || buf.len() >= 12);
                return;
            }
            Err(e) => {
                assert_eq!(dec.decode(&mut buf), Err(e), "errors must be sticky");
                return;
            }
        }
    }
}

fn one_frame(bytes: &[u8]) -> crate::proto::Frame {
    let mut buf = BytesMut::from(bytes);
    let frame = FrameDecoder::new(Limits::default())
        .decode(&mut buf)
        .unwrap()
        .unwrap();
    assert!(buf.is_empty());
    frame
}

fn reparse_request(r: &Request) {
    let bytes = r.to_bytes();
    assert_eq!(bytes.len(), r.encoded_len());
    assert_eq!(&Request::parse(&one_frame(&bytes)).unwrap(), r);
}

fn reparse_response(r: &Response) {
    let bytes = r.to_bytes();
    assert_eq!(bytes.len(), r.encoded_len());
    assert_eq!(&Response::parse(&one_frame(&bytes)).unwrap(), r);
}

/// Splits `bytes` at `cut` (wrapped into range), feeds both halves to a fresh decoder, and
/// returns the one frame they make; the first half alone must only ask for more.
fn decode_in_two(bytes: &[u8], cut: usize) -> crate::proto::Frame {
    let cut = cut % bytes.len().max(1);
    let mut dec = FrameDecoder::new(Limits::default());
    let mut buf = BytesMut::from(&bytes[..cut]);
    assert_eq!(
        dec.decode(&mut buf),
        Ok(None),
        "a strict prefix is not a frame"
    );
    assert!(dec.needed(&buf) > 0);
    buf.extend_from_slice(&bytes[cut..]);
    let frame = dec.decode(&mut buf).unwrap().expect("a whole frame");
    assert!(buf.is_empty(), "one frame consumes exactly its bytes");
    frame
}

/// Any protocol-respecting request (from its `Arbitrary` derive): encode, decode in two
/// pieces cut at `cut`, parse back to the same value, re-encode to the same bytes; a
/// server-bound packet is never a response.
pub fn request_roundtrip(request: Request, cut: u32) {
    let bytes = request.to_bytes();
    assert_eq!(bytes.len(), request.encoded_len());
    let frame = decode_in_two(&bytes, cut as usize);
    let parsed = Request::parse(&frame).unwrap();
    assert_eq!(parsed, request);
    assert_eq!(parsed.to_bytes(), bytes, "encoding is canonical");
    assert!(Response::parse(&frame).is_err());
}

/// Any protocol-respecting response, as [`request_roundtrip`] does for requests.
pub fn response_roundtrip(response: Response, cut: u32) {
    let bytes = response.to_bytes();
    assert_eq!(bytes.len(), response.encoded_len());
    let frame = decode_in_two(&bytes, cut as usize);
    let parsed = Response::parse(&frame).unwrap();
    assert_eq!(parsed, response);
    assert_eq!(parsed.to_bytes(), bytes, "encoding is canonical");
    assert!(Request::parse(&frame).is_err());
}

/// A stream of well-formed requests cut at arbitrary points decodes to the same packets.
pub fn chunked_decode(data: &[u8], cuts: &[u16]) {
    let mut dec = FrameDecoder::new(Limits::default());
    let mut whole = BytesMut::from(data);
    let mut requests = Vec::new();
    while let Ok(Some(f)) = dec.decode(&mut whole) {
        if let Ok(r) = Request::parse(&f) {
            requests.push(r);
        }
    }
    let mut stream = Vec::new();
    for r in &requests {
        r.encode(&mut stream);
    }
    let mut dec = FrameDecoder::new(Limits::default());
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    let mut pos = 0;
    let mut points: Vec<usize> = cuts
        .iter()
        .map(|&c| usize::from(c) % (stream.len() + 1))
        .collect();
    points.push(stream.len());
    points.sort_unstable();
    for p in points {
        buf.extend_from_slice(&stream[pos..p]);
        pos = p;
        while let Some(f) = dec.decode(&mut buf).unwrap() {
            got.push(Request::parse(&f).unwrap());
        }
    }
    assert_eq!(got, requests);
}

/// A stored job record's value (what a store read back, possibly damaged): decoding never
/// panics, and what decodes re-encodes to a value that decodes to the same record.
pub fn stored_record(data: &[u8]) {
    let value = Bytes::copy_from_slice(data);
    if let Some(record) = JobRecord::decode(7, &value) {
        assert_eq!(record.durable_id, 7);
        assert_eq!(JobRecord::decode(7, &record.encode()), Some(record));
    }
}

/// Admin lines: never panic; a line parses the same bare, with LF and with CRLF; the
/// bounded line search finds exactly the first newline within its bound, or says why not.
pub fn admin_line(data: &[u8]) {
    let data = &data[..data.len().min(1024)];
    let max = 64;
    match find_line(data, max) {
        Ok(Some(len)) => {
            assert!((1..=max).contains(&len));
            assert_eq!(data[len - 1], b'\n');
            assert!(!data[..len - 1].contains(&b'\n'));
        }
        Ok(None) => assert!(data.len() < max && !data.contains(&b'\n')),
        Err(e) => {
            assert_eq!(e, crate::DecodeError::AdminLineTooLong { max });
            assert!(data.len() >= max && !data[..max].contains(&b'\n'));
        }
    }
    let parsed = AdminCommand::parse(data);
    if let Ok(AdminCommand::Invalid(e)) = &parsed {
        let mut out = Vec::new();
        e.render(&mut out);
        assert!(out.starts_with(b"ERR ") && out.ends_with(b"\r\n"));
    }
    let body = match data.strip_suffix(b"\n") {
        Some(b) => b.strip_suffix(b"\r").unwrap_or(b),
        None => data,
    };
    if !body.contains(&b'\n') && body.last() != Some(&b'\r') {
        let lf = AdminCommand::parse(&[body, b"\n"].concat());
        assert_eq!(AdminCommand::parse(&[body, b"\r\n"].concat()), lf);
        assert_eq!(AdminCommand::parse(body), lf);
        assert_eq!(parsed, lf);
    }
}

/// Arbitrary operations on the server from up to four connections: bytes, EOFs, clock
/// ticks and store acknowledgements. Invariants are checked after every step.
pub fn server_ops(data: &[u8]) {
    let start = Instant::now();
    let mut config = ServerConfig::new(start, 1_700_000_000);
    config.limits = small_limits();
    config.max_output_bytes = 1 << 16;
    config.persist_background = data.first().is_some_and(|b| b & 1 == 1);
    config.job_retries = data.get(1).map(|b| u32::from(b % 4)).filter(|&n| n < 3);
    let mut server = Server::new(config, start);
    let mut now = start;
    let mut conns: Vec<_> = (0..4)
        .map(|i| {
            server.accept(
                PeerInfo {
                    fd: i,
                    ip: "127.0.0.1".into(),
                },
                now,
            )
        })
        .collect();
    let mut pending = Vec::new();
    let mut rest = data.get(2..).unwrap_or_default();
    let mut out = Vec::new();
    while let Some((&op, tail)) = rest.split_first() {
        let slot = usize::from(op >> 6);
        match op & 0x3f {
            0..=47 => {
                let len = usize::from(op & 0x3f).min(tail.len());
                server.handle_input(conns[slot], &tail[..len], now);
                rest = &tail[len..];
            }
            48..=51 => {
                server.handle_eof(conns[slot], now);
                conns[slot] = server.accept(
                    PeerInfo {
                        fd: 9,
                        ip: "::1".into(),
                    },
                    now,
                );
                rest = tail;
            }
            52..=59 => {
                now += Duration::from_millis(u64::from(op & 7) * 400);
                if server.poll_timeout().is_some_and(|t| t <= now) {
                    server.handle_timeout(now);
                }
                rest = tail;
            }
            _ => {
                if let Some(id) = pending.pop() {
                    let result = if op & 1 == 0 {
                        Ok(())
                    } else {
                        Err("store failed".into())
                    };
                    server.persisted(id, result, now);
                }
                rest = tail;
            }
        }
        while let Some(event) = server.poll_event() {
            match event {
                crate::server::ServerEvent::Persist(r) => pending.push(r.durable_id),
                crate::server::ServerEvent::Close { conn, .. } => server.handle_eof(conn, now),
                _ => {}
            }
        }
        while let Some(c) = server.poll_writable() {
            out.clear();
            let _ = server.poll_transmit(c, &mut out);
        }
        if let Err(e) = server.check_invariants() {
            panic!("server invariant broken: {e}");
        }
        assert!(server
            .poll_timeout()
            .is_none_or(|t| t + Duration::from_secs(86_400 * 365 * 300) > now));
    }
}

/// Arbitrary server bytes into a client and a worker with requests outstanding: never
/// panics, and a closed machine stays closed.
pub fn client_worker_input(data: &[u8]) {
    let now = Instant::now();
    let mut client = ClientConnection::new(ClientConfig {
        limits: small_limits(),
        ..ClientConfig::default()
    });
    let job = crate::proto::SubmitJob {
        function: Bytes::from_static(b"f"),
        unique: Bytes::new(),
        mode: crate::proto::SubmitMode::Foreground(crate::proto::Priority::Normal),
        data: Bytes::from_static(b"x"),
    };
    let _ = client.submit(job.clone());
    let _ = client.get_status(Bytes::from_static(b"H:1"));
    let _ = client.echo(Bytes::from_static(b"e"));
    let mut worker = WorkerConnection::new(WorkerConfig {
        limits: small_limits(),
        ..WorkerConfig::default()
    });
    let _ = worker.can_do(Bytes::from_static(b"f"), None);
    let mut out = Vec::new();
    for chunk in data.chunks(7) {
        let _ = client.handle_input(chunk, now);
        let _ = worker.handle_input(chunk, now);
        while client.poll_event().is_some() {}
        while let Some(ev) = worker.poll_event() {
            if let crate::worker::WorkerEvent::JobAssigned(j) = ev {
                let _ = worker.work_complete(&j.handle, Bytes::new());
            }
        }
        let _ = client.poll_transmit(&mut out);
        let _ = worker.poll_transmit(&mut out);
        out.clear();
        let _ = client.submit(job.clone());
    }
    let (c_closed, w_closed) = (client.is_closed(), worker.is_closed());
    let _ = client.handle_input(b"\0RES\0\0\0\x06\0\0\0\0", now);
    let _ = worker.handle_input(b"\0RES\0\0\0\x06\0\0\0\0", now);
    assert!(!c_closed || client.is_closed());
    assert!(!w_closed || worker.is_closed());
    client.handle_eof(now);
    worker.handle_eof(now);
}

/// Reads fuzz input as a stream of small choices; runs dry as zeros.
struct Choices<'a>(&'a [u8]);

impl Choices<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    fn take(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.0.len());
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        head
    }

    fn pick<'b, T>(&mut self, items: &'b [T]) -> Option<&'b T> {
        let i = usize::from(self.byte());
        items.get(i % items.len().max(1))
    }

    fn bytes(&mut self) -> Bytes {
        let n = usize::from(self.byte() % 8);
        Bytes::copy_from_slice(self.take(n))
    }
}

/// Every byte a machine sends must parse as a sequence of whole requests.
fn requests_well_formed(out: &[u8]) -> Vec<Request> {
    let mut dec = FrameDecoder::new(Limits::default());
    let mut buf = BytesMut::from(out);
    let mut requests = Vec::new();
    while let Some(frame) = dec
        .decode(&mut buf)
        .expect("machine sent a malformed frame")
    {
        requests.push(Request::parse(&frame).expect("machine sent an unparsable request"));
    }
    assert!(buf.is_empty(), "machine sent a partial frame");
    requests
}

/// A client connection under arbitrary calls, deadlines, forgets, clock ticks, closes and
/// server input (raw bytes or well-formed replies naming handles it has seen): never
/// panics; everything it sends parses; no event for a request that was never made or has
/// already ended; `Closed` comes once and last; `outstanding` matches the requests still
/// expecting something.
pub fn client_conn(data: &[u8]) {
    use crate::client::{ClientEvent, ClientEvent as E};
    use crate::machine::RequestId;
    use crate::proto::{Priority, StatusRes, SubmitJob, SubmitMode, WorkPayload, WorkStatus};
    use std::collections::BTreeSet;

    let mut c = Choices(data);
    let start = Instant::now();
    let mut now = start;
    let mut conn = ClientConnection::new(ClientConfig {
        limits: small_limits(),
        exceptions: c.byte() & 1 == 1,
        client_id: None,
    });
    let mut issued: BTreeSet<RequestId> = BTreeSet::new();
    let mut live: BTreeSet<RequestId> = BTreeSet::new();
    let mut handles: Vec<Bytes> = vec![Bytes::from_static(b"H:1")];
    let mut closed = false;
    let mut out = Vec::new();
    for _ in 0..256 {
        if c.0.is_empty() {
            break;
        }
        let op = c.byte();
        match op % 16 {
            0..=4 => {
                let call = match op % 16 {
                    0 | 1 => crate::client::Call::Submit(SubmitJob {
                        function: Bytes::from_static(b"f"),
                        unique: c.bytes(),
                        mode: match c.byte() % 3 {
                            0 => SubmitMode::Foreground(Priority::Normal),
                            1 => SubmitMode::Background(Priority::High),
                            _ => SubmitMode::Epoch(1),
                        },
                        data: c.bytes(),
                    }),
                    2 => crate::client::Call::Status(c.pick(&handles).cloned().unwrap_or_default()),
                    3 => crate::client::Call::StatusUnique(c.bytes()),
                    4 if c.byte() & 1 == 0 => {
                        crate::client::Call::Sched(crate::proto::SubmitJobSched {
                            function: Bytes::from_static(b"f"),
                            unique: c.bytes(),
                            schedule: [c.bytes(), c.bytes(), c.bytes(), c.bytes(), c.bytes()],
                            data: c.bytes(),
                        })
                    }
                    _ => crate::client::Call::Echo(c.bytes()),
                };
                match conn.start(call) {
                    Ok(req) => {
                        assert!(!closed, "a closed connection accepted a call");
                        assert!(issued.insert(req), "request id reused");
                        live.insert(req);
                    }
                    // Refused: because the connection is closed, or for a bad argument.
                    Err(e) => assert_eq!(e == crate::UsageError::Closed, conn.is_closed()),
                }
            }
            5 => {
                let ids: Vec<_> = live.iter().copied().collect();
                if let Some(&req) = c.pick(&ids) {
                    conn.set_deadline(req, now + Duration::from_millis(u64::from(c.byte())));
                }
            }
            6 => {
                let ids: Vec<_> = issued.iter().copied().collect();
                if let Some(&req) = c.pick(&ids) {
                    assert_eq!(conn.forget(req), live.remove(&req));
                }
            }
            7 => {
                now += Duration::from_millis(u64::from(c.byte()) * 4);
                conn.handle_timeout(now);
                assert!(conn.poll_timeout().is_none_or(|t| t > now));
            }
            8 if op == 8 => conn.close(),
            8 => conn.handle_eof(now),
            9 => {
                let n = usize::from(c.byte() % 32);
                let raw = c.take(n).to_vec();
                let _ = conn.handle_input(&raw, now);
            }
            _ => {
                let handle = if c.byte() & 1 == 0 {
                    c.pick(&handles).cloned().unwrap_or_default()
                } else {
                    Bytes::from(format!("H:{}", c.byte()))
                };
                let reply = match op % 16 {
                    10 => Response::JobCreated { handle },
                    11 => Response::WorkComplete(WorkPayload {
                        handle,
                        data: c.bytes(),
                    }),
                    12 => match c.byte() % 3 {
                        0 => Response::WorkFail { handle },
                        1 => Response::WorkException(WorkPayload {
                            handle,
                            data: c.bytes(),
                        }),
                        _ => Response::WorkStatus(WorkStatus {
                            handle,
                            numerator: 1,
                            denominator: 2,
                        }),
                    },
                    13 => Response::WorkData(WorkPayload {
                        handle,
                        data: c.bytes(),
                    }),
                    14 => Response::StatusRes(StatusRes {
                        handle,
                        known: true,
                        running: false,
                        numerator: 0,
                        denominator: 0,
                    }),
                    _ => match c.byte() % 3 {
                        0 => Response::EchoRes { data: c.bytes() },
                        1 => Response::Error {
                            code: Bytes::from_static(b"ERR"),
                            text: c.bytes(),
                        },
                        _ => Response::OptionRes {
                            name: Bytes::from_static(b"exceptions"),
                        },
                    },
                };
                let bytes = reply.to_bytes();
                let cut = usize::from(c.byte()) % (bytes.len() + 1);
                let _ = conn.handle_input(&bytes[..cut], now);
                let _ = conn.handle_input(&bytes[cut..], now);
            }
        }
        out.clear();
        while conn.poll_transmit(&mut out) > 0 {}
        let sent = requests_well_formed(&out);
        assert!(!closed || sent.is_empty(), "a closed connection sent bytes");
        while let Some(event) = conn.poll_event() {
            assert!(!closed, "event after Closed: {event:?}");
            if let E::Closed { .. } = event {
                assert!(conn.is_closed());
                closed = true;
                live.clear();
                continue;
            }
            if let E::Created { handle, .. } = &event {
                handles.push(handle.clone());
            }
            match event.request_id() {
                Some(req) => {
                    assert!(live.contains(&req), "event for an ended request: {event:?}");
                    if event.is_final() {
                        live.remove(&req);
                    }
                }
                None => assert!(
                    matches!(event, ClientEvent::ServerError { req: None, .. }),
                    "event without a request: {event:?}"
                ),
            }
        }
        assert_eq!(conn.is_closed(), closed);
        assert_eq!(
            conn.outstanding(),
            live.len(),
            "outstanding requests disagree"
        );
    }
}

/// A worker connection under arbitrary registrations, results for held jobs, grab
/// stops/resumes, echoes, closes and server input (raw bytes or well-formed packets):
/// never panics; everything it sends parses; it never holds more than `max_in_flight`
/// jobs (with those taken back by CANT_DO/RESET_ABILITIES and not finished) nor one
/// handle twice; results are refused for jobs it does not hold; echo replies match echo
/// requests; `Closed` comes once and last.
pub fn worker_conn(data: &[u8]) {
    use crate::proto::{AssignExtras, JobAssign};
    use crate::worker::{Report, WorkError, WorkerEvent as E};
    use std::collections::BTreeSet;

    let mut c = Choices(data);
    let now = Instant::now();
    let max = usize::from(c.byte() % 3) + 1;
    let mut conn = WorkerConnection::new(WorkerConfig {
        limits: small_limits(),
        max_in_flight: max,
        ..WorkerConfig::default()
    });
    let mut held: BTreeSet<Bytes> = BTreeSet::new();
    // Handles the server took back, their results not finished yet (a handle may be
    // assigned again meanwhile, so it may be here twice).
    let mut taken_back: Vec<Bytes> = Vec::new();
    let mut echoes = 0usize;
    let mut closed = false;
    let mut next_handle = 0u32;
    let names = [Bytes::from_static(b"f"), Bytes::from_static(b"g")];
    let mut out = Vec::new();
    for _ in 0..256 {
        if c.0.is_empty() {
            break;
        }
        let op = c.byte();
        let name = c.pick(&names).cloned().unwrap_or_default();
        match op % 16 {
            0 => {
                let timeout = (op & 0x10 != 0).then(|| Duration::from_millis(1500));
                let _ = conn.can_do(name, timeout);
            }
            // The server requeues that function's held jobs; the machine takes them back
            // (checked by the resync below).
            1 => {
                let _ = conn.cant_do(name);
            }
            2 => {
                if conn.reset_abilities().is_ok() {
                    taken_back.extend(std::mem::take(&mut held));
                }
            }
            3..=5 => {
                let pick: Vec<_> = held.iter().chain(&taken_back).cloned().collect();
                let handle = match c.pick(&pick) {
                    Some(h) if op & 0x80 == 0 => h.clone(),
                    _ => Bytes::from_static(b"H:not-held"),
                };
                let result = match op % 16 {
                    3 => Ok(c.bytes()),
                    4 => Err(WorkError::Fail),
                    _ => Err(WorkError::Exception(c.bytes())),
                };
                let was_held = held.remove(&handle);
                let accepted = conn.finish_job(&handle, result).is_ok();
                assert!(!accepted || was_held, "finished a job it did not hold");
                // A held handle's result goes first; a taken-back one's frees its place.
                if !was_held && !closed {
                    if let Some(i) = taken_back.iter().position(|h| *h == handle) {
                        taken_back.swap_remove(i);
                    }
                }
            }
            6 => {
                let pick: Vec<_> = held.iter().cloned().collect();
                if let Some(h) = c.pick(&pick) {
                    let r = match c.byte() % 3 {
                        0 => Report::Status(1, 2),
                        1 => Report::Data(c.bytes()),
                        _ => Report::Warning(c.bytes()),
                    };
                    let _ = conn.report(h, r);
                }
            }
            7 if op & 0x10 == 0 => conn.stop_grabbing(),
            7 => conn.resume_grabbing(),
            8 => {
                if conn.echo(c.bytes()).is_ok() {
                    echoes += 1;
                }
            }
            9 if op == 9 => conn.close(),
            9 => conn.handle_eof(now),
            10 => {
                let n = usize::from(c.byte() % 32);
                let raw = c.take(n).to_vec();
                let _ = conn.handle_input(&raw, now);
            }
            _ => {
                next_handle += 1;
                let handle = if c.byte() & 3 == 0 {
                    held.iter().next().cloned().unwrap_or_default()
                } else {
                    Bytes::from(format!("H:{next_handle}"))
                };
                let reply = match op % 16 {
                    11 | 12 => Response::JobAssign(JobAssign {
                        handle,
                        function: name,
                        extras: match c.byte() % 3 {
                            0 => AssignExtras::Plain,
                            1 => AssignExtras::Unique(c.bytes()),
                            _ => AssignExtras::Reduce {
                                unique: c.bytes(),
                                reducer: c.bytes(),
                            },
                        },
                        data: c.bytes(),
                    }),
                    13 => Response::NoJob,
                    14 => Response::Noop,
                    _ if op & 0x10 == 0 => Response::EchoRes { data: c.bytes() },
                    _ => Response::Error {
                        code: Bytes::from_static(b"JOB_NOT_FOUND"),
                        text: c.bytes(),
                    },
                };
                let bytes = reply.to_bytes();
                let cut = usize::from(c.byte()) % (bytes.len() + 1);
                let _ = conn.handle_input(&bytes[..cut], now);
                let _ = conn.handle_input(&bytes[cut..], now);
            }
        }
        out.clear();
        while conn.poll_transmit(&mut out) > 0 {}
        let sent = requests_well_formed(&out);
        assert!(!closed || sent.is_empty(), "a closed connection sent bytes");
        while let Some(event) = conn.poll_event() {
            assert!(!closed, "event after Closed: {event:?}");
            match event {
                E::JobAssigned(job) => {
                    assert!(held.insert(job.handle.clone()), "handle assigned twice");
                }
                E::EchoRes { .. } => {
                    assert!(echoes > 0, "echo reply without a request");
                    echoes -= 1;
                }
                E::Closed { .. } => {
                    assert!(conn.is_closed());
                    closed = true;
                    held.clear();
                    taken_back.clear();
                }
                _ => {}
            }
        }
        assert_eq!(conn.is_closed(), closed);
        if held.len() != conn.in_flight() {
            // CANT_DO takes back the held jobs of one function; resync from the machine.
            assert!(held.len() > conn.in_flight());
            let (still, back): (BTreeSet<_>, BTreeSet<_>) = std::mem::take(&mut held)
                .into_iter()
                .partition(|h| conn.work_status(h, 0, 0).is_ok());
            held = still;
            taken_back.extend(back);
            out.clear();
            let _ = conn.poll_transmit(&mut out);
        }
        assert_eq!(held.len(), conn.in_flight());
        assert_eq!(
            taken_back.len(),
            conn.taken_back(),
            "taken-back jobs disagree"
        );
        assert!(
            conn.in_flight() + conn.taken_back() <= max,
            "holds more jobs than max_in_flight"
        );
    }
}
