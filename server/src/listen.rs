//! Binding the listening sockets: every address of each `-L` host, or all IPv4 and IPv6
//! addresses by default.

use crate::cli::Settings;
use crate::StartError;
use socket2::{Domain, Protocol, Socket, Type};
use std::net::TcpListener;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};

fn bind_one(addr: SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
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

/// Where a client on this host reaches `listener` (a wildcard address becomes loopback).
pub(crate) fn loopback_addr(listener: &TcpListener) -> Option<SocketAddr> {
    let addr = listener.local_addr().ok()?;
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    Some(SocketAddr::new(ip, addr.port()))
}

/// Binds every configured address; any failure other than "IPv6 unsupported" on the
/// default wildcard is an error naming the address. The sockets are non-blocking std
/// listeners, bound before any runtime exists (so `-d` can fork after binding).
pub(crate) fn bind_all(settings: &Settings) -> Result<Vec<TcpListener>, StartError> {
    bind_hosts(&settings.listen, settings.port, settings.backlog)
}

/// Binds `port` on every address of each host in `hosts` (all addresses when empty).
pub(crate) fn bind_hosts(
    hosts: &[String],
    port: u16,
    backlog: u32,
) -> Result<Vec<TcpListener>, StartError> {
    let mut listeners = Vec::new();
    if hosts.is_empty() {
        let v4 = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port);
        listeners.push(bind_one(v4, backlog).map_err(|e| bind_error(v4, e))?);
        let v6 = SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port);
        match bind_one(v6, backlog) {
            Ok(l) => listeners.push(l),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => return Err(bind_error(v6, e)),
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

fn bind_error(addr: SocketAddr, e: std::io::Error) -> StartError {
    StartError(format!("cannot listen on {addr}: {e}"))
}

/// Binds each `HOST:PORT` (`[V6]:PORT`) of `--plaintext-listen`, every address it resolves to.
pub(crate) fn bind_extra(
    addresses: &[String],
    backlog: u32,
) -> Result<Vec<TcpListener>, StartError> {
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
