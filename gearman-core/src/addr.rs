//! Where a job server listens, as clients and workers name it: `host:port`, `[v6]:port`
//! or `unix:/path`. Parsing only; resolving and connecting belong to the adapters.
//!
//! ```
//! use gearman_core::addr::ServerAddr;
//! let tcp: ServerAddr = "127.0.0.1:4730".parse()?;
//! assert_eq!(tcp, ServerAddr::Tcp { host: "127.0.0.1".into(), port: 4730 });
//! let v6: ServerAddr = "[::1]:4731".parse()?;
//! assert_eq!(v6.to_string(), "[::1]:4731");
//! let unix: ServerAddr = "unix:/run/gearmand.sock".parse()?;
//! assert_eq!(unix, ServerAddr::Unix("/run/gearmand.sock".into()));
//! // No port: gearmand's default.
//! assert_eq!("localhost".parse::<ServerAddr>()?.to_string(), "localhost:4730");
//! # Ok::<(), gearman_core::addr::AddrError>(())
//! ```

use std::fmt;
use std::net::Ipv6Addr;
use std::path::PathBuf;
use std::str::FromStr;

/// gearmand's port when an address names none.
pub const DEFAULT_PORT: u16 = 4730;

/// A job server's address.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ServerAddr {
    /// A TCP host (name, IPv4 or IPv6 address, without brackets) and port.
    Tcp {
        /// Host name or IP address.
        host: String,
        /// Port.
        port: u16,
    },
    /// A Unix domain socket at this path.
    Unix(PathBuf),
}

/// Why a string is not a server address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddrError {
    input: String,
    reason: &'static str,
}

impl fmt::Display for AddrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad server address {:?}: {}", self.input, self.reason)
    }
}

impl std::error::Error for AddrError {}

impl FromStr for ServerAddr {
    type Err = AddrError;

    fn from_str(s: &str) -> Result<Self, AddrError> {
        let err = |reason| AddrError {
            input: s.to_owned(),
            reason,
        };
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(err("empty socket path"));
            }
            return Ok(ServerAddr::Unix(path.into()));
        }
        // A bare IPv6 address has colons of its own: all of it is the host.
        if s.parse::<Ipv6Addr>().is_ok() {
            return Ok(tcp(s, DEFAULT_PORT));
        }
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (host, after) = rest.split_once(']').ok_or(err("no closing ']'"))?;
            host.parse::<Ipv6Addr>()
                .map_err(|_| err("not an IPv6 address in [ ]"))?;
            match after {
                "" => (host, None),
                _ => (
                    host,
                    Some(after.strip_prefix(':').ok_or(err("junk after ']'"))?),
                ),
            }
        } else {
            match s.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (s, None),
            }
        };
        if host.is_empty() {
            return Err(err("empty host"));
        }
        let port = match port {
            None => DEFAULT_PORT,
            Some(p) => p.parse().map_err(|_| err("port is not a number 0-65535"))?,
        };
        Ok(tcp(host, port))
    }
}

fn tcp(host: &str, port: u16) -> ServerAddr {
    ServerAddr::Tcp {
        host: host.to_owned(),
        port,
    }
}

impl fmt::Display for ServerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerAddr::Tcp { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            ServerAddr::Tcp { host, port } => write!(f, "{host}:{port}"),
            ServerAddr::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

impl TryFrom<&str> for ServerAddr {
    type Error = AddrError;
    fn try_from(s: &str) -> Result<Self, AddrError> {
        s.parse()
    }
}

impl TryFrom<String> for ServerAddr {
    type Error = AddrError;
    fn try_from(s: String) -> Result<Self, AddrError> {
        s.parse()
    }
}

impl TryFrom<&String> for ServerAddr {
    type Error = AddrError;
    fn try_from(s: &String) -> Result<Self, AddrError> {
        s.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<ServerAddr, AddrError> {
        s.parse()
    }

    #[test]
    fn tcp_forms() {
        assert_eq!(parse("h:1").unwrap(), tcp("h", 1));
        assert_eq!(parse("h").unwrap(), tcp("h", DEFAULT_PORT));
        assert_eq!(parse("[::1]:9").unwrap(), tcp("::1", 9));
        assert_eq!(parse("[::1]").unwrap(), tcp("::1", DEFAULT_PORT));
        assert_eq!(parse("::1").unwrap(), tcp("::1", DEFAULT_PORT));
        assert_eq!(parse("fe80::1").unwrap().to_string(), "[fe80::1]:4730");
    }

    #[test]
    fn unix_form() {
        assert_eq!(
            parse("unix:/tmp/g.sock").unwrap(),
            ServerAddr::Unix("/tmp/g.sock".into())
        );
        assert_eq!(parse("unix:rel").unwrap().to_string(), "unix:rel");
    }

    #[test]
    fn bad_forms_say_why() {
        for bad in [
            "", ":1", "h:", "h:x", "h:70000", "[::1", "[h]:1", "[::1]x", "unix:",
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.to_string().contains(&format!("{bad:?}")), "{e}");
        }
    }

    #[test]
    fn display_round_trips() {
        for s in ["a:1", "[::1]:2", "unix:/x y", "10.0.0.1:4730"] {
            assert_eq!(parse(s).unwrap().to_string(), s);
            assert_eq!(
                parse(&parse(s).unwrap().to_string()).unwrap(),
                parse(s).unwrap()
            );
        }
    }
}
