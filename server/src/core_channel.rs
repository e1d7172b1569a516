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

/// Most entries of each list one HTTP request copies out of the core task: the lists can
/// grow to millions (dead letters pile up until someone acts), and the copy and its JSON
/// run on the thread that serves every connection.
pub(crate) const LIST_LIMIT: usize = 10_000;

/// The core task's answer to [`ToCore::Extras`].
#[derive(Debug, Default)]
pub(crate) struct ExtrasList {
    /// The schedules, at most [`LIST_LIMIT`].
    pub schedules: Vec<Schedule>,
    /// How many schedules there are.
    pub schedules_total: usize,
    /// The dead letters, at most [`LIST_LIMIT`].
    pub dead: Vec<DeadLetter>,
    /// How many dead letters there are.
    pub dead_total: usize,
}

impl ExtrasList {
    /// The lists of `server` now, each cut at [`LIST_LIMIT`].
    pub(crate) fn of(server: &Server) -> Self {
        ExtrasList {
            schedules: server.schedules().take(LIST_LIMIT).cloned().collect(),
            schedules_total: server.schedules().count(),
            dead: server.dead_letters().take(LIST_LIMIT).cloned().collect(),
            dead_total: server.dead_letters().count(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gearman_core::proto::{Packet, Request, SubmitJobSched};
    use gearman_core::server::{PeerInfo, ServerConfig};
    use std::time::Instant;

    #[test]
    fn extras_lists_are_cut_at_the_limit_and_counted_whole() {
        let now = Instant::now();
        let mut server = Server::new(ServerConfig::new(now, 1_700_000_000), now);
        let peer = PeerInfo {
            fd: 1,
            ip: "127.0.0.1".into(),
        };
        let conn = server.accept(peer, now);
        for i in 0..=LIST_LIMIT {
            let request = Request::SubmitSched(Box::new(SubmitJobSched {
                function: "f".into(),
                unique: format!("u{i}").into(),
                schedule: [b"*"; 5].map(|f: &'static [u8; 1]| bytes::Bytes::from_static(f)),
                data: bytes::Bytes::new(),
            }));
            server.handle_input(conn, &request.to_bytes(), now);
        }
        let list = ExtrasList::of(&server);
        assert_eq!(list.schedules.len(), LIST_LIMIT);
        assert_eq!(list.schedules_total, LIST_LIMIT + 1);
    }
}
