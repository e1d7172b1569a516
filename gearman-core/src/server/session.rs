//! A session: one connection's framing and output, who the peer is, and whether the server
//! is closing it. The roles the peer takes are in [`super::roles`].

use super::access::Access;
use super::framing::Framing;
use super::output::Output;
use crate::limits::Limits;
use bytes::Bytes;

/// Who is on the other end, for the admin `workers` listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerInfo {
    /// The number shown first on a `workers` line (gearmand shows the socket fd).
    pub fd: u64,
    /// Textual peer address, without port.
    pub ip: String,
}

#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) peer: PeerInfo,
    /// Who the peer is and what it may do.
    pub(crate) access: Access,
    /// SET_CLIENT_ID, `-` until set.
    pub(crate) client_id: Bytes,
    pub(crate) framing: Framing,
    pub(crate) output: Output,
    /// Listed among the connections with output ready.
    pub(crate) in_writable: bool,
    /// Set once the server decided to close it; input is ignored from then on.
    pub(crate) closing: bool,
    /// Requests are left in `framing` because the output was past
    /// [`ServerConfig::input_pause_bytes`](super::ServerConfig::input_pause_bytes).
    pub(crate) input_held: bool,
}

impl Session {
    pub(crate) fn new(peer: PeerInfo, access: Access, limits: Limits) -> Self {
        Session {
            peer,
            access,
            client_id: Bytes::from_static(b"-"),
            framing: Framing::new(limits),
            output: Output::default(),
            in_writable: false,
            closing: false,
            input_held: false,
        }
    }
}
