//! Shared pieces of `gearman-rs` and `gearadmin-rs`, the gearman-rs versions of gearmand's
//! `gearman` and `gearadmin` command-line tools.

/// Builds a server address from a `-h` host and the `-p` port, as both tools take them:
/// a host that already has a port (`name:port`, `[v6]:port`) keeps it; a bare IPv6
/// address is bracketed.
///
/// ```
/// use gearman_cli::server_addr;
/// assert_eq!(server_addr("localhost", 4730), "localhost:4730");
/// assert_eq!(server_addr("10.0.0.1:4731", 4730), "10.0.0.1:4731");
/// assert_eq!(server_addr("::1", 4730), "[::1]:4730");
/// assert_eq!(server_addr("[::1]:9", 4730), "[::1]:9");
/// ```
pub fn server_addr(host: &str, port: u16) -> String {
    if host.starts_with('[') || host.matches(':').count() == 1 || host.starts_with("unix:") {
        host.to_owned()
    } else if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Parses the command line as gearmand's tools do on bad usage: clap's message on stderr,
/// then exit status 1 (`gearman` and `gearadmin` exit 1; clap's own default is 2); help
/// and version on stdout with status 0.
pub fn parse_args<T: clap::Parser>() -> Result<T, std::process::ExitCode> {
    T::try_parse().map_err(|e| {
        let _ = e.print();
        std::process::ExitCode::from(if e.use_stderr() { 1 } else { 0 })
    })
}

/// The TLS settings for `-S`, from gearmand's client variables (`GEARMAND_CA_CERTIFICATE`,
/// `GEARMAN_CLIENT_PEM`, `GEARMAN_CLIENT_KEY`); `None` without `-S`.
pub fn tls_settings(
    ssl: bool,
) -> Result<Option<gearman_blocking::ClientTls>, gearman_blocking::TlsError> {
    ssl.then(gearman_blocking::ClientTls::from_env).transpose()
}
