//! TLS for clients, workers and admin clients (feature `tls`). The settings are
//! [`ClientTls`] (from `gearman-tls`: a CA file or the system roots, an optional client
//! certificate, server-name verification on by default; [`ClientTls::from_env`] reads
//! gearmand's `GEARMAND_CA_CERTIFICATE`, `GEARMAN_CLIENT_PEM` and `GEARMAN_CLIENT_KEY`).
//! Each runtime crate runs the handshake on its own rustls stream and implements
//! [`TlsRuntime`], which gives [`ClientBuilder::tls`](crate::ClientBuilder::tls),
//! [`WorkerBuilder::tls`](crate::WorkerBuilder::tls) and
//! [`AdminClient::tls`](crate::admin::AdminClient::tls). What every runtime shares is
//! here: the handshake timeout, and the check that the server accepted this client.

use crate::{BoxIo, Connector, Runtime};
use bytes::Bytes;
use futures::future::{select, Either};
use futures::io::{AsyncReadExt, AsyncWriteExt};
use gearman_core::proto::{Packet, Request, Response};
pub use gearman_tls::{rustls, ClientTls, ClientTlsBuilder, TlsError};
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

/// The name a server's certificate is verified against.
pub type ServerName = rustls::pki_types::ServerName<'static>;

/// How long a TLS handshake (with the check that the server accepted this client) may
/// take before the connect fails.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A runtime whose crate opens TLS connections (gearman-tokio and gearman-async-std with
/// their `tls` feature): what `.tls(settings)` on the builders uses.
pub trait TlsRuntime: Runtime {
    /// A connector opening TCP or Unix streams and running a TLS handshake over them.
    fn tls_connector(&self, tls: ClientTls) -> Arc<dyn Connector>;
}

/// Finishes securing a fresh stream: awaits `handshake` (the runtime's TLS handshake),
/// then [`confirm`]s the server accepted this client, all within [`HANDSHAKE_TIMEOUT`].
/// Errors say what failed ("TLS handshake failed: invalid peer certificate: ...").
pub async fn secure<Rt, F>(rt: &Rt, handshake: F) -> io::Result<BoxIo>
where
    Rt: Runtime,
    F: Future<Output = io::Result<BoxIo>> + Send,
{
    let work = async {
        let mut io = handshake.await.map_err(handshake_failed)?;
        confirm(&mut io).await?;
        Ok(io)
    };
    let timer = rt.sleep_until(rt.now() + HANDSHAKE_TIMEOUT);
    match select(Box::pin(work), timer).await {
        Either::Left((secured, _)) => secured,
        Either::Right(_) => Err(handshake_timed_out()),
    }
}

/// Under TLS 1.3 a server judges the client's certificate (or its absence) after the
/// client has finished its handshake, so a refusal would only show at the first reply of
/// the first job. One ECHO round trip makes that refusal a connect error with its reason.
pub async fn confirm(io: &mut BoxIo) -> io::Result<()> {
    let (request, expected) = echo_check();
    let mut reply = vec![0; expected.len()];
    let exchanged = async {
        io.write_all(&request).await?;
        io.flush().await?;
        io.read_exact(&mut reply).await
    };
    exchanged.await.map_err(refused)?;
    check_reply(&reply, &expected)
}

/// The ECHO request [`confirm`] sends and the exact reply it expects.
pub(crate) fn echo_check() -> (Vec<u8>, Vec<u8>) {
    let data = Bytes::from_static(b"gearman-rs: TLS accepted?");
    let (mut request, mut reply) = (Vec::new(), Vec::new());
    Request::Echo { data: data.clone() }.encode(&mut request);
    Response::EchoRes { data }.encode(&mut reply);
    (request, reply)
}

/// Anything but our ECHO back means this is no Gearman server answering.
pub(crate) fn check_reply(reply: &[u8], expected: &[u8]) -> io::Result<()> {
    if reply == expected {
        return Ok(());
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        "TLS: the server answered the first ECHO with something else (not a Gearman server?)",
    ))
}

/// The handshake's own error, said to be one.
pub(crate) fn handshake_failed(e: io::Error) -> io::Error {
    if e.kind() == io::ErrorKind::TimedOut || e.kind() == io::ErrorKind::WouldBlock {
        return handshake_timed_out();
    }
    io::Error::new(e.kind(), format!("TLS handshake failed: {e}"))
}

pub(crate) fn handshake_timed_out() -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!("TLS handshake timed out after {HANDSHAKE_TIMEOUT:?}"),
    )
}

/// The server ended the connection right after the handshake: it refused this client.
pub(crate) fn refused(e: io::Error) -> io::Error {
    let why = match e.kind() {
        io::ErrorKind::UnexpectedEof => {
            "the connection was closed (is a client certificate required?)".to_string()
        }
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => return handshake_timed_out(),
        _ => e.to_string(),
    };
    io::Error::new(
        e.kind(),
        format!("TLS: the server refused this client after the handshake: {why}"),
    )
}
