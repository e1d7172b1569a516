//! State shared by the load, the probe, the faults and the checks.

use crate::ledger::Ledger;
use crate::stats::Stats;
use bytes::Bytes;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Every foreground call's own timeout.
pub const FG_TIMEOUT: Duration = Duration::from_secs(20);
/// A call still running this long after its timeout hangs.
pub const HANG_SLACK: Duration = Duration::from_secs(10);

/// Shared state.
pub struct Ctx {
    /// The server's address.
    pub addr: SocketAddr,
    /// Background jobs and runs.
    pub ledger: Ledger,
    /// Counters.
    pub stats: Arc<Stats>,
    /// Set when the load must stop.
    pub stop_load: AtomicBool,
    /// Set when the probe and the watchdog must stop.
    pub stop_all: AtomicBool,
    /// Faults under way during which new connections may wait or fail (server down, fd
    /// limit): the probe's failures then are expected.
    pub excused: AtomicU32,
    next_id: AtomicU64,
    next_call: AtomicU64,
    inflight: Mutex<HashMap<u64, (Instant, &'static str, bool)>>,
}

impl Ctx {
    /// Fresh state for a server at `addr`.
    pub fn new(addr: SocketAddr, stats: Arc<Stats>) -> Ctx {
        Ctx {
            addr,
            ledger: Ledger::default(),
            stats,
            stop_load: AtomicBool::new(false),
            stop_all: AtomicBool::new(false),
            excused: AtomicU32::new(0),
            next_id: AtomicU64::new(1),
            next_call: AtomicU64::new(1),
            inflight: Mutex::new(HashMap::new()),
        }
    }

    /// A fresh job id.
    pub fn id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Whether the load should stop.
    pub fn load_stopped(&self) -> bool {
        self.stop_load.load(Ordering::Acquire)
    }

    /// A foreground call from `source` starts; the watchdog watches it until [`Ctx::fg_end`].
    pub fn fg_begin(&self, source: &'static str) -> u64 {
        let call = self.next_call.fetch_add(1, Ordering::Relaxed);
        self.inflight
            .lock()
            .unwrap()
            .insert(call, (Instant::now(), source, false));
        call
    }

    /// A foreground call ended with `result`; checks it echoes `expected`.
    pub fn fg_end<E: std::fmt::Display>(
        &self,
        call: u64,
        source: &str,
        result: Result<Bytes, E>,
        expected: &[u8],
    ) {
        self.inflight.lock().unwrap().remove(&call);
        match result {
            Ok(data) if data == expected => {
                self.stats.inc(&format!("check.fg_result_matched.{source}"))
            }
            Ok(data) => {
                self.stats.inc("fail.fg_wrong_result");
                eprintln!(
                    "FAIL: {source} foreground result {:?} for payload {:?}",
                    String::from_utf8_lossy(&data[..data.len().min(40)]),
                    String::from_utf8_lossy(&expected[..expected.len().min(40)])
                );
            }
            Err(e) => {
                let text = e.to_string();
                let kind = if text.contains("timeout") || text.contains("timed out") {
                    "timed_out"
                } else if text.contains("no job server") {
                    "no_server"
                } else if text.contains("connection") {
                    "connection_lost"
                } else {
                    "other"
                };
                self.stats.inc(&format!("load.fg_error.{kind}"));
                if kind == "other" {
                    self.stats.inc("info.fg_other_errors");
                    if self.stats.get("info.fg_other_errors") <= 5 {
                        eprintln!("note: {source} foreground call failed: {text}");
                    }
                }
            }
        }
    }

    /// Counts (once each) the calls running longer than their timeout plus [`HANG_SLACK`];
    /// returns how many are in flight.
    pub fn watch_hangs(&self) -> usize {
        let mut inflight = self.inflight.lock().unwrap();
        for (call, (start, source, flagged)) in inflight.iter_mut() {
            if !*flagged && start.elapsed() > FG_TIMEOUT + HANG_SLACK {
                *flagged = true;
                self.stats.inc("fail.fg_hang");
                eprintln!(
                    "FAIL: {source} foreground call {call} still running after {:?}",
                    start.elapsed()
                );
            }
        }
        inflight.len()
    }
}
