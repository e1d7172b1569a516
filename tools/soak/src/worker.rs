//! `gearman-soak worker`: a worker process on one adapter (tokio, smol or blocking), one
//! job at a time on one connection, so the soak can SIGKILL it mid-job. Every background
//! run is reported on stdout before and after the work: `S ID MICROS` and `D ID MICROS`.

use crate::ledger::now_us;
use crate::payload;
use bytes::Bytes;
use gearman_core::backoff::Backoff;
use std::io::Write;
use std::time::Duration;

/// Which adapter a worker or client runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Adapter {
    /// gearman-tokio.
    Tokio,
    /// gearman-async-std on smol's executor and timers.
    Smol,
    /// gearman-blocking.
    Blocking,
}

impl Adapter {
    /// All three.
    pub const ALL: [Adapter; 3] = [Adapter::Tokio, Adapter::Smol, Adapter::Blocking];

    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Adapter::Tokio => "tokio",
            Adapter::Smol => "smol",
            Adapter::Blocking => "blocking",
        }
    }
}

/// Reconnect quickly after a server restart (the default waits up to 10 s).
pub fn quick_backoff() -> Backoff {
    Backoff {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(300),
    }
}

fn report(kind: char, id: u64) {
    let mut out = std::io::stdout().lock();
    // A closed pipe means the soak is gone: nothing left to report to.
    let _ = writeln!(out, "{kind} {id} {}", now_us());
    let _ = out.flush();
}

/// Before the work: reports a background start; returns how long to sleep.
fn begin(function: &str, data: &[u8]) -> Duration {
    let Some((id, sleep_ms)) = payload::parse(data) else {
        return Duration::ZERO;
    };
    if function == payload::BG {
        report('S', id);
    }
    Duration::from_millis(sleep_ms)
}

fn end(function: &str, data: &[u8]) {
    if function == payload::BG {
        if let Some((id, _)) = payload::parse(data) {
            report('D', id);
        }
    }
}

fn functions(probe: bool) -> &'static [&'static str] {
    if probe {
        &[payload::PROBE]
    } else {
        &[payload::FG, payload::BG]
    }
}

/// Runs the worker until killed.
pub fn run(addr: String, adapter: Adapter, probe: bool) {
    match adapter {
        Adapter::Tokio => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            rt.block_on(async move {
                let mut b = gearman_tokio::worker()
                    .server(addr)
                    .concurrency(1)
                    .backoff(quick_backoff());
                for &f in functions(probe) {
                    b = b.function(f, move |ctx| async move {
                        let data: Bytes = ctx.data().clone();
                        tokio::time::sleep(begin(f, &data)).await;
                        end(f, &data);
                        Ok(data)
                    });
                }
                b.build().run().await;
            });
        }
        Adapter::Smol => smol::block_on(async move {
            let mut b = gearman_async_std::worker()
                .server(addr)
                .concurrency(1)
                .backoff(quick_backoff());
            for &f in functions(probe) {
                b = b.function(f, move |ctx| async move {
                    let data: Bytes = ctx.data().clone();
                    smol::Timer::after(begin(f, &data)).await;
                    end(f, &data);
                    Ok(data)
                });
            }
            b.build().run().await;
        }),
        Adapter::Blocking => {
            let mut w = gearman_blocking::worker()
                .server(addr)
                .concurrency(1)
                .backoff(quick_backoff());
            for &f in functions(probe) {
                w = w.function(f, move |ctx| {
                    let data = ctx.data().clone();
                    std::thread::sleep(begin(f, &data));
                    end(f, &data);
                    Ok(data)
                });
            }
            w.run();
        }
    }
}
