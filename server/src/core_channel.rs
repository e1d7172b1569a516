//! What other tasks send the core task ([`ToCore`]) and what it answers: the listeners
//! hand it accepted connections, the HTTP listener asks it for reports. Kept apart from
//! both sides so that the listeners, the HTTP listener and the core task each depend on
//! this one module rather than on each other.

use crate::store::CommitReport;
use crate::transport::Accepted;
use gearman_core::server::{DeadLetter, ExtrasGauges, Schedule, Server, Snapshot, Stats};
use tokio::sync::oneshot;

/// What other tasks tell the core task.
pub(crate) enum ToCore {
    /// A listener has a new connection (after its TLS handshake, on a TLS listener).
    Accepted(Accepted),
    /// The HTTP listener asks for gauges and counters.
    Report(oneshot::Sender<CoreReport>),
    /// The HTTP listener asks for the schedules and dead letters.
    Extras(oneshot::Sender<ExtrasList>),
}

/// What the core task answers a [`ToCore::Report`] with.
#[derive(Debug, Clone)]
pub(crate) struct CoreReport {
    /// Gauges now.
    pub snapshot: Snapshot,
    /// Counters since start.
    pub stats: Stats,
    /// Still accepting connections (not shutting down).
    pub accepting: bool,
    /// The durable queue's commit counters, if there is a store.
    pub store: Option<CommitReport>,
    /// Dead letters and schedules per function.
    pub extras: ExtrasGauges,
    /// Which durable queue backend, if there is a store.
    pub store_info: Option<StoreInfo>,
}

/// What the core task knows of its store besides the commit counters.
#[derive(Debug, Clone)]
pub(crate) struct StoreInfo {
    /// The `-q` name: `libsqlite3`, `postgres`, `redis`.
    pub backend: &'static str,
    /// Jobs restored into this server from other servers' expired leases; `None` for a
    /// backend nobody else shares.
    pub jobs_taken_over: Option<u64>,
}

/// The core task's answer to [`ToCore::Extras`].
#[derive(Debug, Default)]
pub(crate) struct ExtrasList {
    /// Every schedule.
    pub schedules: Vec<Schedule>,
    /// Every dead letter.
    pub dead: Vec<DeadLetter>,
}

impl ExtrasList {
    /// The lists of `server` now.
    pub(crate) fn of(server: &Server) -> Self {
        ExtrasList {
            schedules: server.schedules().cloned().collect(),
            dead: server.dead_letters().cloned().collect(),
        }
    }
}
