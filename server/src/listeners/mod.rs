//! The server's listeners as the settings name them: every socket bound before any
//! runtime exists ([`bind_all`], so `-d` forks after binding and start errors reach the
//! terminal), then registered inside it ([`Bound::into_listener`]) and served by one accept
//! task each ([`accept`]), which hands every connection to the core task, after a TLS
//! handshake in the connection's own task on a TLS listener.
//!
//! This is where the settings ([`crate::cli`]), the sockets ([`crate::transport`]), TLS
//! ([`crate::tls`]) and the core task's channel ([`crate::core_channel`]) meet, so that
//! `transport` stays a leaf that knows sockets and streams only.

pub(crate) mod accept;

use crate::cli::Settings;
use crate::tls::TlsListener;
use crate::transport::tcp::{self, Keepalive};
#[cfg(unix)]
use crate::transport::unix;
use crate::transport::Listener;
use crate::StartError;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

/// A socket bound before the runtime starts.
pub(crate) enum BoundSocket {
    /// A TCP listening socket (non-blocking).
    Tcp(std::net::TcpListener),
    /// A Unix socket file and its listening socket.
    #[cfg(unix)]
    Unix(unix::BoundUnix),
}

/// A listener registered with the runtime and, for a TLS one, its acceptor.
pub(crate) type Registered = (Box<dyn Listener>, Option<Arc<TlsListener>>);

/// A bound socket and, for a TLS one, its acceptor.
pub(crate) struct Bound {
    /// The socket.
    pub(crate) socket: BoundSocket,
    /// TLS on every connection it accepts, if set.
    pub(crate) tls: Option<Arc<TlsListener>>,
}

impl Bound {
    /// The address of a TCP listener (TLS or not); `None` for a Unix socket.
    pub(crate) fn tcp_addr(&self) -> Option<SocketAddr> {
        match &self.socket {
            BoundSocket::Tcp(l) => l.local_addr().ok(),
            #[cfg(unix)]
            BoundSocket::Unix(_) => None,
        }
    }

    /// Registers the socket with the runtime (call inside it).
    pub(crate) fn into_listener(self, keepalive: Option<Keepalive>) -> io::Result<Registered> {
        let listener: Box<dyn Listener> = match self.socket {
            BoundSocket::Tcp(l) => Box::new(tcp::TcpListener::new(l, keepalive)?),
            #[cfg(unix)]
            BoundSocket::Unix(u) => Box::new(u.into_listener()?),
        };
        Ok((listener, self.tls))
    }
}

/// Binds every listener the settings name: `-L`/`-p` (TCP hosts and `unix:` paths, TLS
/// under `--ssl`), then the plaintext `--plaintext-listen` and `--unix-socket` ones.
pub(crate) fn bind_all(
    settings: &Settings,
    tls: Option<Arc<TlsListener>>,
) -> Result<Vec<Bound>, StartError> {
    let with = |tls: &Option<Arc<TlsListener>>| {
        let tls = tls.clone();
        move |socket| Bound {
            socket,
            tls: tls.clone(),
        }
    };
    let mut all: Vec<Bound> = Vec::new();
    if !settings.listen.is_empty() || settings.unix_listen.is_empty() {
        let tcp = tcp::bind_hosts(&settings.listen, settings.port, settings.backlog)?;
        all.extend(tcp.into_iter().map(BoundSocket::Tcp).map(with(&tls)));
    }
    #[cfg(unix)]
    for path in &settings.unix_listen {
        let socket = unix::BoundUnix::bind(path, settings.backlog, settings.unix_socket_mode)?;
        all.push(with(&tls)(BoundSocket::Unix(socket)));
    }
    let extra = tcp::bind_extra(&settings.security.plaintext_listen, settings.backlog)?;
    all.extend(extra.into_iter().map(BoundSocket::Tcp).map(with(&None)));
    #[cfg(unix)]
    for path in &settings.unix_sockets {
        let socket = unix::BoundUnix::bind(path, settings.backlog, settings.unix_socket_mode)?;
        all.push(with(&None)(BoundSocket::Unix(socket)));
    }
    Ok(all)
}
