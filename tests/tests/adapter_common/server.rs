//! Starts a job server for a test: C gearmand 1.1.20, our gearmand-rs, or gearmand-rs
//! with TLS. Each test picks one with [`with_server`] (the suite runs every scenario
//! against each); without it, `GEARMAN_TEST_SERVER=rs` picks gearmand-rs. gearmand-rs is
//! the binary this crate builds from the tree, or `GEARMANDRS_BIN` if set.
//!
//! A TLS server's addresses are registered while it runs, and the adapters' clients and
//! workers take [`client_tls_for`] their servers: TLS to those, plaintext to the others.
//! That works from any thread (some scenarios build clients on threads of their own).

use gearman_async::ClientTls;
use gearman_tests::certs::TestPki;
pub use gearman_tests::free_port;
use gearman_tests::ServerProcess;
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

/// Which job server a test runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerKind {
    /// /usr/sbin/gearmand (C gearmand 1.1.20).
    Gearmand,
    /// gearmand-rs.
    GearmandRs,
    /// gearmand-rs with TLS (`--ssl`, certificates from one generated PKI per test
    /// binary) on every listener the test asks for, and a plaintext listener beside them
    /// for the suite's admin helpers.
    GearmandRsTls,
}

impl ServerKind {
    /// gearmand-rs, with or without TLS.
    pub fn is_gearmand_rs(self) -> bool {
        self != ServerKind::Gearmand
    }
}

/// The PKI of this test binary's TLS servers, in a directory under the target dir that the
/// next run empties and reuses.
fn suite_pki() -> &'static TestPki {
    static PKI: OnceLock<TestPki> = OnceLock::new();
    PKI.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
        TestPki::generate_in(dir.join(concat!("suite-pki-", env!("CARGO_CRATE_NAME"))))
    })
}

/// Addresses TLS servers listen on now.
static TLS_ADDRS: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn registered() -> std::sync::MutexGuard<'static, Vec<String>> {
    TLS_ADDRS.lock().unwrap_or_else(|e| e.into_inner())
}

/// The TLS settings for a client or worker of `servers`: `None` unless one of them is a
/// running TLS server. A Unix socket has no host name to verify, so the certificate is
/// checked for `localhost` there.
pub fn client_tls_for(servers: &[String]) -> Option<ClientTls> {
    let registered = registered();
    let tls = servers.iter().filter(|s| registered.contains(s));
    let unix = tls.clone().any(|s| s.starts_with("unix:"));
    if tls.count() == 0 {
        return None;
    }
    let mut builder = ClientTls::builder().ca_file(&suite_pki().ca);
    if unix {
        builder = builder.server_name("localhost");
    }
    Some(builder.build().expect("suite client TLS settings"))
}

thread_local! {
    static KIND: Cell<Option<ServerKind>> = const { Cell::new(None) };
}

/// Runs `test` with every server it starts (on this thread) being `kind`.
pub fn with_server(kind: ServerKind, test: impl FnOnce()) {
    KIND.with(|k| k.set(Some(kind)));
    test();
}

fn kind() -> ServerKind {
    KIND.with(Cell::get).unwrap_or_else(|| {
        if std::env::var("GEARMAN_TEST_SERVER").as_deref() == Ok("rs") {
            ServerKind::GearmandRs
        } else {
            ServerKind::Gearmand
        }
    })
}

/// A server process listening on 127.0.0.1, killed on drop.
pub struct TestServer {
    process: ServerProcess,
    pub port: u16,
    pub kind: ServerKind,
    /// The plaintext listener of a TLS server (for the admin helpers).
    plain_port: Option<u16>,
    /// Addresses registered in [`TLS_ADDRS`] until drop.
    tls_addrs: Vec<String>,
}

/// One I/O thread: the suite runs many servers at once on a 2-core machine.
const EXTRA_FLAGS: &[&str] = &["--threads=1"];

fn binary(kind: ServerKind) -> PathBuf {
    match kind {
        ServerKind::GearmandRs | ServerKind::GearmandRsTls => std::env::var_os("GEARMANDRS_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_gearmand-rs-under-test"))),
        ServerKind::Gearmand => {
            let path = PathBuf::from("/usr/sbin/gearmand");
            assert!(
                path.exists(),
                "/usr/sbin/gearmand (C gearmand 1.1.20) is required"
            );
            path
        }
    }
}

impl TestServer {
    pub fn start() -> TestServer {
        Self::start_with(&[])
    }

    /// With more flags after the suite's own.
    pub fn start_with(extra: &[&str]) -> TestServer {
        Self::launch(None, extra)
    }

    /// Which server this test runs against.
    pub fn current_kind() -> ServerKind {
        kind()
    }

    /// On a given port (a restart where the previous server was).
    pub fn start_on(port: u16) -> TestServer {
        Self::launch(Some(port), &[])
    }

    /// Starts the current kind on `port` (or a free one) with `extra` flags.
    fn launch(port: Option<u16>, extra: &[&str]) -> TestServer {
        let kind = kind();
        let binary = binary(kind);
        let mut flags: Vec<String> = EXTRA_FLAGS
            .iter()
            .chain(extra)
            .map(|f| f.to_string())
            .collect();
        let plain_port = (kind == ServerKind::GearmandRsTls).then(free_port);
        if let Some(plain) = plain_port {
            let pki = suite_pki();
            flags.extend(gearman_tests::tls::server_args(
                pki,
                &pki.server,
                plain,
                true,
            ));
        }
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        // A TLS server is probed on its plaintext listener.
        let probe = move |port: u16| gearman_tests::admin_pid(plain_port.unwrap_or(port));
        let process = match port {
            Some(port) => ServerProcess::start_on_probing(&binary, port, &flags, probe),
            None => ServerProcess::start_probing(&binary, &flags, probe),
        };
        let mut tls_addrs = Vec::new();
        if plain_port.is_some() {
            let unix = extra.iter().filter(|f| f.starts_with("unix:"));
            tls_addrs = std::iter::once(process.addr())
                .chain(unix.map(|f| f.to_string()))
                .collect();
            registered().extend(tls_addrs.iter().cloned());
        }
        TestServer {
            port: process.port,
            process,
            kind,
            plain_port,
            tls_addrs,
        }
    }

    pub fn addr(&self) -> String {
        self.process.addr()
    }

    /// Where the admin helpers connect in plaintext (a TLS server's plaintext listener).
    pub fn admin_addr(&self) -> String {
        format!("127.0.0.1:{}", self.plain_port.unwrap_or(self.port))
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        registered().retain(|a| !self.tls_addrs.contains(a));
    }
}
