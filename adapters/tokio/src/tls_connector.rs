//! TLS on tokio (feature `tls`): tokio-rustls over [`TokioConnector`]'s TCP and Unix
//! streams, with the settings and checks every adapter shares ([`gearman_async::tls`]).

use crate::{BoxFuture, BoxIo, ClientTls, Connector, ServerAddr, TlsRuntime, TokioRuntime};
use gearman_async::tls::secure;
use std::io;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::compat::TokioAsyncReadCompatExt;

#[cfg(doc)]
use crate::TokioConnector;

/// Connects like [`TokioConnector`], then runs a TLS handshake with [`ClientTls`]: the
/// server's certificate must chain to the trusted roots and (unless the settings say
/// otherwise) name the host connected to. What `.tls(settings)` on the builders uses.
#[derive(Clone, Debug)]
pub struct TokioTlsConnector {
    tls: ClientTls,
}

impl TokioTlsConnector {
    /// A connector with these settings.
    pub fn new(tls: ClientTls) -> Self {
        TokioTlsConnector { tls }
    }
}

impl Connector for TokioTlsConnector {
    fn connect(&self, addr: &ServerAddr) -> BoxFuture<io::Result<BoxIo>> {
        let name = self.tls.server_name_for(addr);
        let rustls = tokio_rustls::TlsConnector::from(self.tls.config());
        let addr = addr.clone();
        Box::pin(async move {
            let name = name.map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            match addr {
                ServerAddr::Tcp { host, port } => {
                    let stream = crate::tcp(&host, port).await?;
                    secure(&TokioRuntime, handshake(rustls, name, stream)).await
                }
                #[cfg(unix)]
                ServerAddr::Unix(path) => {
                    let stream = tokio::net::UnixStream::connect(path).await?;
                    secure(&TokioRuntime, handshake(rustls, name, stream)).await
                }
                #[cfg(not(unix))]
                ServerAddr::Unix(_) => Err(io::ErrorKind::Unsupported.into()),
            }
        })
    }
}

async fn handshake<S>(
    rustls: tokio_rustls::TlsConnector,
    name: gearman_async::tls::ServerName,
    stream: S,
) -> io::Result<BoxIo>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let secured = rustls.connect(name, stream).await?;
    Ok(Box::new(secured.compat()))
}

impl TlsRuntime for TokioRuntime {
    fn tls_connector(&self, tls: ClientTls) -> Arc<dyn Connector> {
        Arc::new(TokioTlsConnector::new(tls))
    }
}
