//! The wire model: packet types, framing, typed requests and responses, and the admin
//! text protocol. No state; see the machines for behaviour.

pub mod admin;
mod args;
mod error;
pub mod frame;
#[cfg(feature = "arbitrary")]
mod fuzz_args;
mod packet;
mod packet_type;
mod request;
mod response;
mod types;

pub(crate) use args::Part;
pub use error::{DecodeError, PacketError, ProtocolError};
pub use frame::{Frame, FrameDecoder, Header, HEADER_LEN};
pub use packet::Packet;
pub(crate) use packet::{encode_response_parts, parts_encoded_len};
pub use packet_type::{Magic, PacketType};
pub use request::Request;
pub use response::Response;
pub use types::*;
