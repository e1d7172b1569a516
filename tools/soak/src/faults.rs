//! The faults, injected one at a time on a schedule, each followed by the check that the
//! server coped: workers SIGKILLed mid-job, clients leaving before their result, resets,
//! slow readers, garbage and oversize packets, `kill -9` of the server and restart on its
//! queue, a full disk (the server's file-size limit dropped to 0 with prlimit: no write to
//! the queue can succeed) and the open-file limit reached.

use crate::ctx::Ctx;
use crate::payload;
use crate::raw::RawConn;
use crate::server::ServerCtl;
use crate::sys;
use crate::workers::Workers;
use bytes::Bytes;
use gearman_core::proto::{Priority, Request, SubmitMode};
use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Every kind, in the order of a schedule cycle before shuffling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// SIGKILL of a worker (mid-job when one is busy), then a new worker.
    WorkerKill,
    /// A foreground submitter disconnects right after JOB_CREATED.
    ClientDisconnect,
    /// A connection reset (SO_LINGER 0) mid-packet or right after a submission.
    ConnReset,
    /// A client floods echo requests and does not read the replies for a while.
    SlowReader,
    /// Invalid packets and binary noise.
    Garbage,
    /// A packet header announcing 2 GiB.
    Oversize,
    /// `kill -9` of the server, restart on the same queue file.
    ServerKill,
    /// Every write to the queue fails for a while, then succeeds again.
    DiskFull,
    /// The server's open-file limit is reached by idle connections.
    FdLimit,
}

impl Fault {
    /// Every kind.
    pub const ALL: [Fault; 9] = [
        Fault::WorkerKill,
        Fault::ClientDisconnect,
        Fault::ConnReset,
        Fault::SlowReader,
        Fault::Garbage,
        Fault::Oversize,
        Fault::ServerKill,
        Fault::DiskFull,
        Fault::FdLimit,
    ];

    /// Counter name.
    pub fn name(self) -> &'static str {
        match self {
            Fault::WorkerKill => "worker_sigkill",
            Fault::ClientDisconnect => "client_disconnect_before_result",
            Fault::ConnReset => "connection_reset",
            Fault::SlowReader => "slow_reader",
            Fault::Garbage => "garbage_packet",
            Fault::Oversize => "oversize_packet",
            Fault::ServerKill => "server_kill9_restart",
            Fault::DiskFull => "disk_full",
            Fault::FdLimit => "open_file_limit",
        }
    }
}

/// What a fault acts on.
pub struct Target<'a> {
    /// Shared state.
    pub ctx: &'a Arc<Ctx>,
    /// The server.
    pub server: &'a ServerCtl,
    /// The worker processes.
    pub workers: &'a Workers,
}

const WAIT: Duration = Duration::from_secs(5);

impl Target<'_> {
    fn check(&self, name: &str, ok: bool, detail: impl FnOnce() -> String) {
        if ok {
            self.ctx.stats.inc(&format!("check.{name}"));
        } else {
            self.ctx.stats.inc(&format!("fail.{name}"));
            eprintln!("FAIL: {name}: {}", detail());
        }
    }

    fn conn(&self) -> std::io::Result<RawConn> {
        RawConn::connect(self.ctx.addr, Duration::from_secs(2))
    }

    /// Injects `fault` and checks the server's reaction.
    pub fn inject(&self, fault: Fault, rng: &mut fastrand::Rng) {
        self.ctx.stats.inc(&format!("fault.{}", fault.name()));
        match fault {
            Fault::WorkerKill => match self.workers.kill_one(rng) {
                Ok(true) => self.ctx.stats.inc("info.worker_killed_mid_job"),
                Ok(false) => self.ctx.stats.inc("info.worker_killed_idle"),
                Err(e) => self.check("worker_respawned", false, || e.to_string()),
            },
            Fault::ClientDisconnect => self.client_disconnect(rng),
            Fault::ConnReset => self.conn_reset(rng),
            Fault::SlowReader => self.slow_reader(),
            Fault::Garbage => self.garbage(rng),
            Fault::Oversize => self.oversize(),
            Fault::ServerKill => self.server_kill(),
            Fault::DiskFull => self.disk_full(),
            Fault::FdLimit => self.fd_limit(),
        }
    }

    fn fg_submit(&self, conn: &mut RawConn, rng: &mut fastrand::Rng) -> std::io::Result<Bytes> {
        let id = self.ctx.id();
        let data = payload::make(id, rng);
        conn.submit(
            payload::FG,
            &format!("f{id}"),
            SubmitMode::Foreground(Priority::Normal),
            data,
            WAIT,
        )
    }

    fn client_disconnect(&self, rng: &mut fastrand::Rng) {
        // Errors here are the server being down or at its fd limit: nothing to check.
        if let Ok(mut conn) = self.conn() {
            let _ = self.fg_submit(&mut conn, rng);
        }
    }

    fn conn_reset(&self, rng: &mut fastrand::Rng) {
        let Ok(mut conn) = self.conn() else { return };
        if rng.bool() {
            let _ = self.fg_submit(&mut conn, rng);
        } else {
            // Half a SUBMIT_JOB: header announcing 100 bytes, 10 of them sent.
            let mut bytes = b"\0REQ\0\0\0\x07\0\0\0\x64".to_vec();
            bytes.extend_from_slice(b"soak_fg\0f\0");
            let _ = conn.stream.write_all(&bytes);
        }
        conn.reset();
    }

    fn slow_reader(&self) {
        let Ok(mut conn) = self.conn() else { return };
        let _ = conn.stream.set_write_timeout(Some(Duration::from_secs(2)));
        let big = Bytes::from(vec![b'e'; 256 * 1024]);
        for _ in 0..40 {
            if conn.send(&Request::Echo { data: big.clone() }).is_err() {
                break;
            }
        }
        // Not reading for 2 s, then a trickle.
        std::thread::sleep(Duration::from_secs(2));
        let mut chunk = [0u8; 1024];
        let _ = conn
            .stream
            .set_read_timeout(Some(Duration::from_millis(100)));
        for _ in 0..10 {
            let _ = std::io::Read::read(&mut conn.stream, &mut chunk);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn garbage(&self, rng: &mut fastrand::Rng) {
        let Ok(mut conn) = self.conn() else { return };
        let bytes: Vec<u8> = if rng.bool() {
            // A request header with an unknown packet type.
            let mut b = b"\0REQ".to_vec();
            b.extend_from_slice(&rng.u32(1000..).to_be_bytes());
            b.extend_from_slice(&8u32.to_be_bytes());
            b.extend((0..8).map(|_| rng.u8(..)));
            b
        } else {
            // Noise that starts like an admin line and ends with a newline.
            let mut b: Vec<u8> = (0..512).map(|_| rng.u8(..)).collect();
            b[0] = b'x';
            b.push(b'\n');
            b
        };
        let refused =
            conn.stream.write_all(&bytes).is_err() || conn.closed_or_answered(WAIT).is_ok();
        self.check("garbage_refused_or_answered", refused, || {
            "no answer and no close in 5 s".into()
        });
    }

    fn oversize(&self) {
        let Ok(mut conn) = self.conn() else { return };
        let mut b = b"\0REQ\0\0\0\x07".to_vec();
        b.extend_from_slice(&0x7fff_fff0u32.to_be_bytes());
        let refused = conn.stream.write_all(&b).is_err() || conn.closed_or_answered(WAIT).is_ok();
        self.check("oversize_refused", refused, || {
            "no answer and no close in 5 s".into()
        });
    }

    fn server_kill(&self) {
        self.ctx.excused.fetch_add(1, Ordering::AcqRel);
        self.ctx.ledger.server_killed();
        self.server.kill9();
        let started = Instant::now();
        let result = self.server.start(sys::UNLIMITED);
        self.ctx.ledger.server_restarted();
        self.ctx.stats.max(
            "info.server_restart_ms_max",
            started.elapsed().as_millis() as u64,
        );
        self.check("server_restarted_on_its_queue", result.is_ok(), || {
            format!("{result:?}")
        });
        self.ctx.excused.fetch_sub(1, Ordering::AcqRel);
    }

    /// A background submission straight to the server: `Ok(true)` acknowledged.
    fn raw_bg(&self) -> std::io::Result<bool> {
        let mut conn = self.conn()?;
        let id = self.ctx.id();
        let data = Bytes::from(format!("{id}|0|disk"));
        self.ctx.ledger.submitting(id);
        match conn.submit(
            payload::BG,
            &format!("b{id}"),
            SubmitMode::Background(Priority::Normal),
            data,
            WAIT,
        ) {
            Ok(handle) => {
                self.ctx.ledger.acked(id, "raw_bg", handle, None);
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::Other => Ok(false), // ERROR reply
            Err(e) => Err(e),
        }
    }

    fn disk_full(&self) {
        let pid = self.server.pid();
        self.server.disk_full.store(true, Ordering::Release);
        self.ctx.ledger.disk_full(true);
        if let Err(e) = sys::set_soft_limit(pid, libc::RLIMIT_FSIZE, 0) {
            self.check("disk_filled", false, || e.to_string());
        }
        std::thread::sleep(Duration::from_millis(300));
        let refused = self.raw_bg();
        self.check(
            "durable_write_refused_on_full_disk",
            matches!(refused, Ok(false)),
            || {
                format!(
                    "background submission on a full disk: {refused:?} (Ok(true) = acknowledged)"
                )
            },
        );
        std::thread::sleep(Duration::from_secs(2));
        let _ = sys::set_soft_limit(pid, libc::RLIMIT_FSIZE, sys::UNLIMITED);
        self.server.disk_full.store(false, Ordering::Release);
        self.ctx.ledger.disk_full(false);
        let deadline = Instant::now() + Duration::from_secs(10);
        let resumed = loop {
            match self.raw_bg() {
                Ok(true) => break true,
                _ if Instant::now() >= deadline => break false,
                _ => std::thread::sleep(Duration::from_millis(200)),
            }
        };
        self.check("durable_writes_resumed_after_disk_freed", resumed, || {
            "no acknowledged submission within 10 s".into()
        });
    }

    fn fd_limit(&self) {
        let pid = self.server.pid();
        let Some(open) = sys::open_fds(pid) else {
            return;
        };
        let Ok(mut held) = self.conn() else { return };
        let limit = open + 8;
        self.ctx.excused.fetch_add(1, Ordering::AcqRel);
        let old = match sys::set_soft_limit(pid, libc::RLIMIT_NOFILE, limit) {
            Ok(old) => old,
            Err(e) => {
                self.check("fd_limit_set", false, || e.to_string());
                self.ctx.excused.fetch_sub(1, Ordering::AcqRel);
                return;
            }
        };
        let idle: Vec<TcpStream> = (0..40)
            .filter_map(|_| {
                TcpStream::connect_timeout(&self.ctx.addr, Duration::from_millis(500)).ok()
            })
            .collect();
        std::thread::sleep(Duration::from_secs(1));
        let reached = sys::open_fds(pid).unwrap_or(0) >= limit;
        self.check("fd_limit_reached", reached, || {
            format!(
                "{} fds open, limit {limit}",
                sys::open_fds(pid).unwrap_or(0)
            )
        });
        let served = held.echo(b"at-the-fd-limit", WAIT);
        self.check(
            "existing_connection_served_at_fd_limit",
            served.is_ok(),
            || format!("{served:?}"),
        );
        drop(idle);
        let _ = sys::set_soft_limit(pid, libc::RLIMIT_NOFILE, old);
        let deadline = Instant::now() + Duration::from_secs(10);
        let recovered = loop {
            let ok = self
                .conn()
                .and_then(|mut c| c.echo(b"after-the-fd-limit", Duration::from_secs(2)));
            if ok.is_ok() {
                break true;
            }
            if Instant::now() >= deadline {
                break false;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        self.check("accepts_again_after_fd_limit", recovered, || {
            "no new connection served within 10 s".into()
        });
        self.ctx.excused.fetch_sub(1, Ordering::AcqRel);
    }
}
