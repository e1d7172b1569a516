//! TLS on async-io (feature `tls`): futures-rustls over [`AsyncIoConnector`]'s TCP and
//! Unix streams, with the settings and checks every adapter shares
//! ([`gearman_async::tls`]). Serves async-std and smol alike.

use crate::{AsyncIoConnector, AsyncIoRuntime, BoxFuture, BoxIo, ClientTls, Connector};
use crate::{ServerAddr, TlsRuntime};
use gearman_async::tls::secure;
use std::io;
use std::sync::Arc;

/// Connects like [`AsyncIoConnector`], then runs a TLS handshake with [`ClientTls`]: the
/// server's certificate must chain to the trusted roots and (unless the settings say
/// otherwise) name the host connected to. What `.tls(settings)` on the builders uses.
#[derive(Clone, Debug)]
pub struct AsyncIoTlsConnector {
    tls: ClientTls,
}

impl AsyncIoTlsConnector {
    /// A connector with these settings.
    pub fn new(tls: ClientTls) -> Self {
        AsyncIoTlsConnector { tls }
    }
}

impl Connector for AsyncIoTlsConnector {
    fn connect(&self, addr: &ServerAddr) -> BoxFuture<io::Result<BoxIo>> {
        let name = self.tls.server_name_for(addr);
        let rustls = futures_rustls::TlsConnector::from(self.tls.config());
        let plain = AsyncIoConnector.connect(addr);
        Box::pin(async move {
            let name = name.map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            let stream = plain.await?;
            let handshake =
                async move { Ok(Box::new(rustls.connect(name, stream).await?) as BoxIo) };
            secure(&AsyncIoRuntime, handshake).await
        })
    }
}

impl TlsRuntime for AsyncIoRuntime {
    fn tls_connector(&self, tls: ClientTls) -> Arc<dyn Connector> {
        Arc::new(AsyncIoTlsConnector::new(tls))
    }
}
