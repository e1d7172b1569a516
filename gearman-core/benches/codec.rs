//! Codec throughput: encode and decode+parse of WORK_COMPLETE packets (a 14-byte handle and
//! a 64 B or 64 KiB payload), in packets/s and MiB/s of wire bytes. Run with
//! `cargo bench -p gearman-core`. Decoding starts from a copy of the input in a fresh
//! `BytesMut`, as a socket read would, so one memcpy per byte is included.

use bytes::{Bytes, BytesMut};
use gearman_core::proto::Packet;
use gearman_core::proto::{FrameDecoder, Request, Response, WorkPayload};
use gearman_core::Limits;
use std::hint::black_box;
use std::time::{Duration, Instant};

fn measure(name: &str, bytes_per_iter: usize, packets_per_iter: usize, mut f: impl FnMut()) {
    // Warm up, then run for about a second.
    for _ in 0..10 {
        f();
    }
    let start = Instant::now();
    let mut iters = 0u64;
    while start.elapsed() < Duration::from_secs(1) {
        f();
        iters += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    let packets = iters as f64 * packets_per_iter as f64 / secs;
    let mib = iters as f64 * bytes_per_iter as f64 / secs / (1024.0 * 1024.0);
    println!("{name:<28} {packets:>14.0} packets/s {mib:>10.1} MiB/s");
}

fn main() {
    for size in [64usize, 64 * 1024] {
        let packet = Request::WorkComplete(WorkPayload {
            handle: Bytes::from_static(b"H:bench:123456"),
            data: Bytes::from(vec![b'x'; size]),
        });
        let batch = if size == 64 { 1000 } else { 16 };
        let mut stream = Vec::new();
        for _ in 0..batch {
            packet.encode(&mut stream);
        }
        let label = if size == 64 { "64B" } else { "64KiB" };

        let mut out = Vec::with_capacity(stream.len());
        measure(
            &format!("encode request {label}"),
            stream.len(),
            batch,
            || {
                out.clear();
                for _ in 0..batch {
                    black_box(&packet).encode(&mut out);
                }
                black_box(&out);
            },
        );

        measure(
            &format!("decode frames {label}"),
            stream.len(),
            batch,
            || {
                let mut dec = FrameDecoder::new(Limits::default());
                let mut buf = BytesMut::from(&stream[..]);
                while let Some(f) = dec.decode(&mut buf).unwrap() {
                    black_box(f);
                }
            },
        );

        measure(
            &format!("decode+parse request {label}"),
            stream.len(),
            batch,
            || {
                let mut dec = FrameDecoder::new(Limits::default());
                let mut buf = BytesMut::from(&stream[..]);
                while let Some(f) = dec.decode(&mut buf).unwrap() {
                    black_box(Request::parse(&f).unwrap());
                }
            },
        );

        let response = Response::WorkComplete(WorkPayload {
            handle: Bytes::from_static(b"H:bench:123456"),
            data: Bytes::from(vec![b'y'; size]),
        });
        let mut rstream = Vec::new();
        for _ in 0..batch {
            response.encode(&mut rstream);
        }
        let mut rout = Vec::with_capacity(rstream.len());
        measure(
            &format!("encode response {label}"),
            rstream.len(),
            batch,
            || {
                rout.clear();
                for _ in 0..batch {
                    black_box(&response).encode(&mut rout);
                }
                black_box(&rout);
            },
        );

        measure(
            &format!("decode+parse response {label}"),
            rstream.len(),
            batch,
            || {
                let mut dec = FrameDecoder::new(Limits::default());
                let mut buf = BytesMut::from(&rstream[..]);
                while let Some(f) = dec.decode(&mut buf).unwrap() {
                    black_box(Response::parse(&f).unwrap());
                }
            },
        );
    }
}
