//! # gearman-tls
//!
//! The TLS settings shared by the gearman-rs adapters and the `gearmand-rs` server, on
//! [`rustls`] (no OpenSSL): which roots a client trusts (a CA file or the system's),
//! an optional client certificate, server-name verification (on unless turned off), the
//! server's certificate, key and client-certificate policy, and the identity a verified
//! peer certificate gives for the ACL ([`gearman_core::acl::Identity`]).
//!
//! The types here only build [`rustls::ClientConfig`] and [`rustls::ServerConfig`]; each
//! adapter wraps its own streams with them (tokio-rustls, futures-rustls, or rustls'
//! blocking `StreamOwned`). Errors are one line naming the file and what is wrong.
//!
//! gearmand's environment variables are read by [`ClientTls::from_env`]:
//! `GEARMAND_CA_CERTIFICATE` (CA file), `GEARMAN_CLIENT_PEM` and `GEARMAN_CLIENT_KEY`
//! (client certificate and key).
#![forbid(unsafe_code)]

mod client;
mod error;
mod identity;
mod pem;
mod server;

pub use client::{ClientTls, ClientTlsBuilder};
pub use error::TlsError;
pub use identity::peer_identity;
pub use rustls;
pub use server::{ServerTls, ServerTlsOptions};

use std::sync::Arc;

/// The crypto provider every config here is built with (ring: builds without cmake).
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}
