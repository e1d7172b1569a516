//! TLS listeners: gearmand 2.0's `--ssl` flags on rustls, with certificates verified.
//!
//! Each handshake runs in the accepted connection's own task under
//! `--ssl-handshake-timeout`, so a peer that stalls mid-handshake delays nobody else and is
//! dropped at the timeout. A failed handshake closes that connection only and is logged
//! (at most one line per `FAILURE_LOG_INTERVAL`, counting the others). A plaintext Gearman
//! client on a TLS port gets one plaintext ERROR packet (or `ERR` line) saying so.

use crate::log_limit::{repeats_note, LogLimiter};
use crate::transport::{Accepted, ByteStream, Peer, Stream};
use crate::StartError;
use gearman_core::acl::Identity;
use gearman_tls::{peer_identity, ServerTls, ServerTlsOptions};
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio_rustls::TlsAcceptor;

/// TLS and permission flags (gearmand 2.0's names for TLS).
#[derive(Debug, Clone, clap::Args)]
pub struct SecurityArgs {
    /// Serve TLS on the -L/-p listeners (every connection there must be TLS). Plaintext
    /// stays available only on --plaintext-listen addresses.
    #[arg(long = "ssl", help_heading = "TLS and permissions")]
    pub ssl: bool,

    /// The server's certificate chain (PEM).
    #[arg(
        long = "ssl-certificate",
        env = "GEARMAND_SERVER_PEM",
        value_name = "FILE",
        default_value = "/etc/ssl/certs/gearmand.pem",
        help_heading = "TLS and permissions"
    )]
    pub ssl_certificate: PathBuf,

    /// The server's private key (PEM).
    #[arg(
        long = "ssl-key",
        env = "GEARMAND_SERVER_KEY",
        value_name = "FILE",
        default_value = "/etc/ssl/certs/gearmand.key",
        help_heading = "TLS and permissions"
    )]
    pub ssl_key: PathBuf,

    /// CA whose client certificates are accepted (and verified) on TLS listeners.
    #[arg(
        long = "ssl-ca-file",
        env = "GEARMAND_CA_CERTIFICATE",
        value_name = "FILE",
        help_heading = "TLS and permissions"
    )]
    pub ssl_ca_file: Option<PathBuf>,

    /// Refuse TLS clients without a certificate from --ssl-ca-file.
    #[arg(long = "ssl-verify-client", help_heading = "TLS and permissions")]
    pub ssl_verify_client: bool,

    /// Seconds a TLS handshake may take before the connection is dropped.
    #[arg(
        long = "ssl-handshake-timeout",
        default_value_t = 5.0,
        value_name = "SECS",
        help_heading = "TLS and permissions"
    )]
    pub ssl_handshake_timeout: f64,

    /// An extra plaintext listener, HOST:PORT (an IPv6 host in brackets); repeat for several.
    /// With --ssl, e.g. `--plaintext-listen 127.0.0.1:4731` keeps admin tools working on
    /// loopback while the public port is TLS-only.
    #[arg(
        long = "plaintext-listen",
        value_name = "HOST:PORT",
        help_heading = "TLS and permissions"
    )]
    pub plaintext_listen: Vec<String>,

    /// Permissions by identity (see the README); reloaded on SIGHUP. Without it,
    /// everything is allowed.
    #[arg(
        long = "acl-file",
        value_name = "FILE",
        help_heading = "TLS and permissions"
    )]
    pub acl_file: Option<PathBuf>,
}

/// Validated TLS and permission settings.
#[derive(Debug, Clone)]
pub struct Security {
    /// TLS on the main listeners, if `--ssl`.
    pub tls: Option<TlsSettings>,
    /// Extra plaintext listeners.
    pub plaintext_listen: Vec<String>,
    /// `--acl-file`.
    pub acl_file: Option<PathBuf>,
}

/// The TLS listener settings.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    /// Files and client policy.
    pub options: ServerTlsOptions,
    /// `--ssl-handshake-timeout`.
    pub handshake_timeout: Duration,
}

impl SecurityArgs {
    /// Checks the flags (the files are read when the server starts).
    pub fn validate(self) -> Result<Security, StartError> {
        let timeout = Duration::try_from_secs_f64(self.ssl_handshake_timeout)
            .ok()
            .filter(|t| !t.is_zero())
            .ok_or_else(|| {
                StartError(format!(
                    "--ssl-handshake-timeout must be a positive number of seconds, got {}",
                    self.ssl_handshake_timeout
                ))
            })?;
        if self.ssl_verify_client && !self.ssl {
            return Err(StartError("--ssl-verify-client needs --ssl".into()));
        }
        let tls = self.ssl.then_some(TlsSettings {
            options: ServerTlsOptions {
                certificate: self.ssl_certificate,
                key: self.ssl_key,
                ca_file: self.ssl_ca_file,
                verify_client: self.ssl_verify_client,
            },
            handshake_timeout: timeout,
        });
        Ok(Security {
            tls,
            plaintext_listen: self.plaintext_listen,
            acl_file: self.acl_file,
        })
    }
}

/// Loads what `--ssl` and `--acl-file` name, before anything listens.
pub(crate) fn prepare(
    security: &Security,
) -> Result<
    (
        Option<std::sync::Arc<TlsListener>>,
        Option<gearman_core::acl::Acl>,
    ),
    StartError,
> {
    let tls = match &security.tls {
        Some(t) => Some(std::sync::Arc::new(TlsListener::load(t)?)),
        None => None,
    };
    let acl = match &security.acl_file {
        Some(path) => Some(crate::acl::load(path).map_err(StartError)?),
        None => None,
    };
    Ok((tls, acl))
}

/// How often a failed handshake is logged; the ones in between are counted into the next
/// line.
pub(crate) const FAILURE_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Accepts TLS on TCP or Unix socket connections.
pub(crate) struct TlsListener {
    acceptor: TlsAcceptor,
    timeout: Duration,
    failures: LogLimiter,
}

impl TlsListener {
    /// Loads the certificate, key and CA now: a bad or missing file is a start error.
    pub(crate) fn load(settings: &TlsSettings) -> Result<TlsListener, StartError> {
        let tls =
            ServerTls::load(&settings.options).map_err(|e| StartError(format!("TLS: {e}")))?;
        Ok(TlsListener {
            acceptor: TlsAcceptor::from(tls.config()),
            timeout: settings.handshake_timeout,
            failures: LogLimiter::new(FAILURE_LOG_INTERVAL),
        })
    }

    /// Runs the handshake (in the caller's task) within the timeout and returns the
    /// connection with the TLS stream in place and the certificate's identity (a peer
    /// without a certificate keeps its own: `uid:N` on a Unix socket, else anonymous);
    /// `None` when it failed, which is logged.
    pub(crate) async fn handshake(&self, accepted: Accepted) -> Option<Accepted> {
        let Accepted {
            mut stream,
            peer,
            fd,
            ..
        } = accepted;
        let attempt = async {
            let first = first_byte(&mut stream).await;
            match stream {
                Stream::Tcp(s) => self.upgrade(s, first).await,
                #[cfg(unix)]
                Stream::Unix(s) => self.upgrade(s, first).await,
                Stream::Other(s) => self.upgrade(s, first).await,
            }
        };
        let outcome = match tokio::time::timeout(self.timeout, attempt).await {
            Ok(result) => result,
            Err(_) => Err(format!("no handshake within {:?}", self.timeout)),
        };
        match outcome {
            Ok((stream, identity)) => {
                let identity = match identity {
                    Identity::Anonymous => peer.identity(),
                    named => named,
                };
                tracing::debug!(%peer, %identity, "TLS handshake done");
                Some(Accepted {
                    stream: Stream::Other(stream),
                    peer,
                    identity,
                    fd,
                })
            }
            Err(why) => {
                self.log_failure(&peer, &why);
                None
            }
        }
    }

    /// Refuses plaintext Gearman (judged from the `first` byte), else runs the handshake.
    async fn upgrade<S: ByteStream>(
        &self,
        mut stream: S,
        first: Option<u8>,
    ) -> Result<(Box<dyn ByteStream>, Identity), String> {
        if let Some(refusal) = first.and_then(plaintext_refusal) {
            let _ = stream.write_all(&refusal).await;
            let _ = stream.shutdown().await;
            return Err("plaintext Gearman on a TLS port (told so)".to_string());
        }
        let stream = self
            .acceptor
            .accept(stream)
            .await
            .map_err(|e| e.to_string())?;
        let identity = peer_identity(stream.get_ref().1.peer_certificates());
        Ok((Box::new(stream), identity))
    }

    fn log_failure(&self, peer: &Peer, why: &str) {
        if let Some(repeats) = self.failures.check() {
            let also = repeats_note(repeats);
            tracing::warn!("TLS handshake with {peer} failed: {why}{also}");
        }
    }
}

/// The first byte the peer sent, without taking it from the stream; `None` at end of
/// stream or on an error (the handshake then fails on its own).
async fn first_byte(stream: &mut Stream) -> Option<u8> {
    let mut first = [0u8; 1];
    match stream {
        Stream::Tcp(s) => matches!(s.peek(&mut first).await, Ok(1)).then_some(first[0]),
        #[cfg(unix)]
        Stream::Unix(s) => loop {
            // tokio's UnixStream has no peek: recv(MSG_PEEK) when readable.
            s.readable().await.ok()?;
            let peeked = s.try_io(tokio::io::Interest::READABLE, || {
                use nix::sys::socket::{recv, MsgFlags};
                use std::os::fd::AsRawFd;
                recv(s.as_raw_fd(), &mut first, MsgFlags::MSG_PEEK).map_err(std::io::Error::from)
            });
            match peeked {
                Ok(1) => return Some(first[0]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                _ => return None,
            }
        },
        Stream::Other(_) => None,
    }
}

/// The reply for a peer that speaks plaintext Gearman to a TLS port, judged from its first
/// byte (a TLS handshake record starts with 0x16): a binary request (`\0REQ`) gets an
/// ERROR packet, an admin line an `ERR` line. `None` for anything else, TLS included.
fn plaintext_refusal(first: u8) -> Option<Vec<u8>> {
    match first {
        0x16 => None,
        b => crate::transport::refuse::gearman_refusal(
            b,
            "TLS_REQUIRED",
            "this port accepts TLS connections only",
        ),
    }
}
