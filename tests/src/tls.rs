//! TLS servers for tests: gearmand-rs with `--ssl` and a generated PKI, started on a free
//! port and probed over TLS (or over an extra plaintext listener).

use crate::certs::{CertFiles, TestPki};
use crate::process::{admin_pid, free_port, ServerProcess};
use crate::wire::Conn;
use gearman_tls::ClientTls;
use std::path::Path;

/// Client settings trusting `ca`, presenting `cert` if given.
pub fn client_tls(ca: &Path, cert: Option<&CertFiles>) -> ClientTls {
    let mut builder = ClientTls::builder().ca_file(ca);
    if let Some(c) = cert {
        builder = builder.client_certificate(&c.cert, &c.key);
    }
    builder.build().expect("client TLS settings")
}

/// The pid the TLS server on 127.0.0.1:`port` reports for `getpid`, if one answers.
pub fn tls_admin_pid(port: u16, tls: &ClientTls) -> Option<u32> {
    let mut conn = Conn::tls(port, tls, "127.0.0.1").ok()?;
    conn.stream
        .set_read_timeout(Some(std::time::Duration::from_secs(2)))
        .ok()?;
    let reply =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| conn.admin("getpid\n"))).ok()?;
    reply.trim().strip_prefix("OK ")?.parse().ok()
}

/// A gearmand-rs with TLS on its main port and a plaintext listener beside it.
pub struct TlsServer {
    /// The process; its `port` is the TLS one.
    pub process: ServerProcess,
    /// The extra plaintext listener on 127.0.0.1.
    pub plain_port: u16,
}

/// How a starting server is probed.
pub enum Probe<'a> {
    /// `getpid` over TLS with these settings (which must be allowed in).
    Tls(&'a ClientTls),
    /// `getpid` on the plaintext listener.
    Plain,
}

/// gearmand-rs's flags for TLS on its port with `server`'s certificate and key, a plaintext
/// listener on 127.0.0.1:`plain_port`, and (with `trust_ca`) the PKI's CA for client
/// certificates.
pub fn server_args(
    pki: &TestPki,
    server: &CertFiles,
    plain_port: u16,
    trust_ca: bool,
) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "--ssl".into(),
        "--ssl-certificate".into(),
        server.cert.display().to_string(),
        "--ssl-key".into(),
        server.key.display().to_string(),
        "--plaintext-listen".into(),
        format!("127.0.0.1:{plain_port}"),
    ];
    if trust_ca {
        args.extend(["--ssl-ca-file".into(), pki.ca.display().to_string()]);
    }
    args
}

impl TlsServer {
    /// Starts `binary --ssl --ssl-certificate S --ssl-key K --plaintext-listen
    /// 127.0.0.1:P EXTRA...` with the PKI's server certificate (or `server`), trusting the
    /// PKI's CA for clients unless EXTRA names another `--ssl-ca-file`.
    pub fn start(
        binary: &Path,
        pki: &TestPki,
        server: Option<&CertFiles>,
        extra: &[&str],
        probe: Probe<'_>,
    ) -> TlsServer {
        let server = server.unwrap_or(&pki.server);
        let plain_port = free_port();
        let trust_ca = !extra.contains(&"--ssl-ca-file");
        let mut args = server_args(pki, server, plain_port, trust_ca);
        args.extend(extra.iter().map(|a| a.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let process = match probe {
            Probe::Tls(tls) => {
                ServerProcess::start_probing(binary, &args, |port| tls_admin_pid(port, tls))
            }
            Probe::Plain => ServerProcess::start_probing(binary, &args, |_| admin_pid(plain_port)),
        };
        TlsServer {
            process,
            plain_port,
        }
    }

    /// The TLS port.
    pub fn port(&self) -> u16 {
        self.process.port
    }

    /// A TLS connection with `tls`, verifying the server as 127.0.0.1 (panics if refused).
    pub fn conn(&self, tls: &ClientTls) -> Conn {
        Conn::tls(self.port(), tls, "127.0.0.1").expect("TLS connection")
    }

    /// A connection to the plaintext listener.
    pub fn plain(&self) -> Conn {
        Conn::new(self.plain_port)
    }
}

/// A TCP listener on 127.0.0.1 that accepts one connection and trickles a TLS handshake
/// that never completes: a record header promising 16 KiB, then one byte every 100 ms, so
/// no single read waits long. It stops by itself after 30 s, or when the peer leaves.
pub struct Trickler {
    /// `127.0.0.1:PORT`.
    pub addr: String,
}

impl Trickler {
    /// Starts the listener's thread.
    pub fn start() -> Trickler {
        use std::io::Write;
        use std::time::{Duration, Instant};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("trickler listener");
        let addr = listener.local_addr().expect("trickler address").to_string();
        listener.set_nonblocking(true).expect("nonblocking accept");
        std::thread::spawn(move || {
            let until = Instant::now() + Duration::from_secs(30);
            let mut conn = loop {
                match listener.accept() {
                    Ok((conn, _)) => break conn,
                    Err(_) if Instant::now() < until => {
                        std::thread::sleep(Duration::from_millis(20))
                    }
                    Err(_) => return,
                }
            };
            let _ = conn.set_nonblocking(false);
            // A TLS 1.2 handshake record of 16384 bytes: ServerHello would be inside.
            if conn.write_all(&[0x16, 0x03, 0x03, 0x40, 0x00]).is_err() {
                return;
            }
            while Instant::now() < until && conn.write_all(&[0]).is_ok() {
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        Trickler { addr }
    }
}
