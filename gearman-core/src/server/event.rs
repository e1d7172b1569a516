//! What the server asks of its adapter: closes, store writes, shutdown, refusals.

use super::{ConnId, ExtraKind, ExtraRecord, JobRecord};
use bytes::Bytes;

/// Something the adapter must act on.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerEvent {
    /// Flush what `poll_transmit` still yields for this connection, close the socket, then
    /// call [`Server::handle_eof`](super::Server::handle_eof).
    Close {
        /// The connection.
        conn: ConnId,
        /// Why, for the log.
        reason: String,
    },
    /// Store this background job durably, then call [`Server::persisted`](super::Server::persisted). The job may
    /// already be queued or running (a background submission coalesced onto a foreground
    /// job), and an `Unpersist` for it may follow before the answer: apply them in order.
    Persist(JobRecord),
    /// This stored job ended: delete it.
    Unpersist {
        /// Its store key.
        durable_id: u64,
    },
    /// Store (or replace) a record beyond the job queue. With `acknowledge`, call
    /// [`Server::persisted`](super::Server::persisted) with the record's key once it is durable.
    PutExtra {
        /// The record.
        record: ExtraRecord,
        /// Whether the server waits for the store's answer.
        acknowledge: bool,
    },
    /// Delete a record beyond the job queue (deleting a missing one is not an error).
    DeleteExtra {
        /// Its kind.
        kind: ExtraKind,
        /// Its key.
        key: u64,
    },
    /// A stored record beyond the job queue that this version cannot read (written by a
    /// newer one, or damaged), found at restore: it stays in the store, unused; log it.
    UnreadableRecord {
        /// Its kind.
        kind: ExtraKind,
        /// Its key.
        key: u64,
    },
    /// A local admin connection sent `shutdown` (stop now: flush the `OK`, then exit) or
    /// `shutdown graceful` (stop accepting, let running jobs finish, as on SIGTERM).
    Shutdown {
        /// `shutdown graceful`.
        graceful: bool,
    },
    /// The ACL refused a request (already answered; the connection stays open): log it.
    Refused {
        /// The connection.
        conn: ConnId,
        /// Who asked, as [`crate::acl::Identity`] displays it.
        identity: String,
        /// What was missing.
        permission: crate::acl::Permission,
        /// The function refused (empty for admin commands).
        function: Bytes,
    },
}
