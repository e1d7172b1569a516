//! TCP listeners: every address of each `-L` host, or all IPv4 and IPv6 addresses by
//! default, plus `--plaintext-listen`. Accepted sockets get TCP_NODELAY and the configured
//! keepalive.

use super::{Accepted, BoxFuture, ListenAddr, Listener, Peer, Stream};
use crate::StartError;
use socket2::{Domain, Protocol, SockRef, Socket, TcpKeepalive, Type};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

/// TCP keepalive settings.
#[derive(Debug, Clone, Copy)]
pub struct Keepalive {
    /// Idle time before probes.
    pub idle: Option<Duration>,
    /// Interval between probes.
    pub interval: Option<Duration>,
    /// Probe count.
    pub count: Option<u32>,
}

fn bind_one(addr: SocketAddr, backlog: u32) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        // Keep IPv6 and IPv4 listeners separate so both can bind the same port.
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Binds `port` on every address of each host in `hosts` (all addresses when empty; a
/// machine without IPv6 is logged, not an error). The sockets are non-blocking std
/// listeners; errors are one line naming the address.
pub(crate) fn bind_hosts(
    hosts: &[String],
    port: u16,
    backlog: u32,
) -> Result<Vec<std::net::TcpListener>, StartError> {
    let mut listeners = Vec::new();
    if hosts.is_empty() {
        let v4 = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port);
        listeners.push(bind_one(v4, backlog).map_err(|e| bind_error(v4, e))?);
        let v6 = SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port);
        match bind_one(v6, backlog) {
            Ok(l) => listeners.push(l),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => return Err(bind_error(v6, e)),
            Err(e) => tracing::warn!("IPv6 listener on {v6} unavailable: {e}"),
        }
        return Ok(listeners);
    }
    for host in hosts {
        let addrs = (host.as_str(), port)
            .to_socket_addrs()
            .map_err(|e| StartError(format!("cannot resolve listen address {host:?}: {e}")))?;
        for addr in addrs {
            listeners.push(bind_one(addr, backlog).map_err(|e| bind_error(addr, e))?);
        }
    }
    if listeners.is_empty() {
        return Err(StartError("no address to listen on".into()));
    }
    Ok(listeners)
}

/// Binds each `HOST:PORT` (`[V6]:PORT`) of `--plaintext-listen`, every address it resolves to.
pub(crate) fn bind_extra(
    addresses: &[String],
    backlog: u32,
) -> Result<Vec<std::net::TcpListener>, StartError> {
    let mut listeners = Vec::new();
    for address in addresses {
        let addrs = address.to_socket_addrs().map_err(|e| {
            StartError(format!(
                "cannot resolve listen address {address:?} (HOST:PORT): {e}"
            ))
        })?;
        for addr in addrs {
            listeners.push(bind_one(addr, backlog).map_err(|e| bind_error(addr, e))?);
        }
    }
    Ok(listeners)
}

fn bind_error(addr: SocketAddr, e: io::Error) -> StartError {
    StartError(format!("cannot listen on {addr}: {e}"))
}

/// A TCP listening socket registered with the runtime.
pub(crate) struct TcpListener {
    inner: tokio::net::TcpListener,
    local: SocketAddr,
    keepalive: Option<Keepalive>,
}

impl TcpListener {
    /// Takes a socket from [`bind_hosts`] or [`bind_extra`] (inside the runtime).
    pub(crate) fn new(
        bound: std::net::TcpListener,
        keepalive: Option<Keepalive>,
    ) -> io::Result<TcpListener> {
        let inner = tokio::net::TcpListener::from_std(bound)?;
        let local = inner.local_addr()?;
        Ok(TcpListener {
            inner,
            local,
            keepalive,
        })
    }
}

impl Listener for TcpListener {
    fn accept(&mut self) -> BoxFuture<'_, io::Result<Accepted>> {
        Box::pin(async move {
            let (stream, peer) = self.inner.accept().await?;
            configure(&stream, self.keepalive);
            Ok(Accepted::new(Stream::Tcp(stream), Peer::Tcp(peer)))
        })
    }

    fn local_addr(&self) -> ListenAddr {
        ListenAddr::Tcp(self.local)
    }
}

fn configure(stream: &tokio::net::TcpStream, keepalive: Option<Keepalive>) {
    let _ = stream.set_nodelay(true);
    if let Some(k) = keepalive {
        let mut ka = TcpKeepalive::new();
        if let Some(idle) = k.idle {
            ka = ka.with_time(idle);
        }
        if let Some(interval) = k.interval {
            ka = ka.with_interval(interval);
        }
        if let Some(count) = k.count {
            ka = ka.with_retries(count);
        }
        if let Err(e) = SockRef::from(stream).set_tcp_keepalive(&ka) {
            tracing::warn!("cannot set keepalive: {e}");
        }
    }
}
