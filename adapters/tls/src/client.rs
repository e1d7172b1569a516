//! What a client or worker trusts and presents.

use crate::{pem, provider, TlsError};
use gearman_core::addr::ServerAddr;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, SignatureScheme};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A client's TLS settings: build once, share between connections.
///
/// ```no_run
/// use gearman_tls::ClientTls;
///
/// let tls = ClientTls::builder()
///     .ca_file("/etc/gearman/ca.pem")
///     .client_certificate("/etc/gearman/client.pem", "/etc/gearman/client.key")
///     .build()?;
/// let name = tls.server_name("jobs.example.com")?;
/// # let _ = (tls.config(), name);
/// # Ok::<(), gearman_tls::TlsError>(())
/// ```
#[derive(Clone, Debug)]
pub struct ClientTls {
    config: Arc<ClientConfig>,
    server_name: Option<ServerName<'static>>,
}

/// Builds a [`ClientTls`]; see [`ClientTls::builder`].
#[derive(Clone, Debug, Default)]
pub struct ClientTlsBuilder {
    ca_file: Option<PathBuf>,
    client_certificate: Option<(PathBuf, PathBuf)>,
    server_name: Option<String>,
    skip_server_name: bool,
}

impl ClientTls {
    /// Settings trusting the system's roots, without a client certificate, verifying the
    /// server's name, until changed.
    pub fn builder() -> ClientTlsBuilder {
        ClientTlsBuilder::default()
    }

    /// Settings from gearmand's variables: `GEARMAND_CA_CERTIFICATE` (a CA file; the system
    /// roots when unset), `GEARMAN_CLIENT_PEM` and `GEARMAN_CLIENT_KEY` (a client
    /// certificate; both or neither).
    pub fn from_env() -> Result<ClientTls, TlsError> {
        Self::from_vars(|name| std::env::var_os(name).filter(|v| !v.is_empty()))
    }

    fn from_vars(var: impl Fn(&str) -> Option<std::ffi::OsString>) -> Result<ClientTls, TlsError> {
        let mut builder = ClientTls::builder();
        if let Some(ca) = var("GEARMAND_CA_CERTIFICATE") {
            builder = builder.ca_file(ca);
        }
        match (var("GEARMAN_CLIENT_PEM"), var("GEARMAN_CLIENT_KEY")) {
            (Some(cert), Some(key)) => builder = builder.client_certificate(cert, key),
            (None, None) => {}
            (Some(_), None) => {
                return Err(TlsError(
                    "GEARMAN_CLIENT_PEM is set but GEARMAN_CLIENT_KEY is not".into(),
                ))
            }
            (None, Some(_)) => {
                return Err(TlsError(
                    "GEARMAN_CLIENT_KEY is set but GEARMAN_CLIENT_PEM is not".into(),
                ))
            }
        }
        builder.build()
    }

    /// The rustls configuration to connect with.
    pub fn config(&self) -> Arc<ClientConfig> {
        self.config.clone()
    }

    /// The name to verify the server's certificate against when connecting to `host`:
    /// the builder's [`ClientTlsBuilder::server_name`] if set, else `host` (a DNS name or
    /// an IP address, brackets allowed).
    pub fn server_name(&self, host: &str) -> Result<ServerName<'static>, TlsError> {
        if let Some(name) = &self.server_name {
            return Ok(name.clone());
        }
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        ServerName::try_from(host.to_string())
            .map_err(|_| TlsError(format!("{host:?} is not a valid TLS server name")))
    }

    /// The name to verify a server at `addr` against: as [`ClientTls::server_name`] for a
    /// TCP host; over a Unix socket there is no host, so the builder's
    /// [`ClientTlsBuilder::server_name`] must be set.
    ///
    /// ```
    /// use gearman_tls::ClientTls;
    /// # let dir = tempfile::Builder::new().prefix("doc-ca-").tempdir().unwrap();
    /// # let ca = dir.path().join("ca.pem");
    /// # let key = rcgen::KeyPair::generate().unwrap();
    /// # let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    /// # params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    /// # std::fs::write(&ca, params.self_signed(&key).unwrap().pem()).unwrap();
    /// let tls = ClientTls::builder().ca_file(&ca).build()?;
    /// let name = tls.server_name_for(&"jobs.example.com:4730".parse().unwrap())?;
    /// assert_eq!(name.to_str(), "jobs.example.com");
    /// let unix = tls.server_name_for(&"unix:/run/gearmand.sock".parse().unwrap());
    /// assert!(unix.unwrap_err().to_string().contains("needs a server name"));
    /// # Ok::<(), gearman_tls::TlsError>(())
    /// ```
    pub fn server_name_for(&self, addr: &ServerAddr) -> Result<ServerName<'static>, TlsError> {
        match (addr, &self.server_name) {
            (_, Some(name)) => Ok(name.clone()),
            (ServerAddr::Tcp { host, .. }, None) => self.server_name(host),
            (ServerAddr::Unix(path), None) => Err(TlsError(format!(
                "TLS over unix:{} needs a server name to verify (ClientTlsBuilder::server_name)",
                path.display()
            ))),
        }
    }
}

impl ClientTlsBuilder {
    /// Trust the certificates in this PEM file instead of the system's roots.
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// Trust the system's roots (the default).
    pub fn system_roots(mut self) -> Self {
        self.ca_file = None;
        self
    }

    /// Present this certificate (PEM, with intermediates) and its private key (PEM).
    pub fn client_certificate(
        mut self,
        certificate: impl Into<PathBuf>,
        key: impl Into<PathBuf>,
    ) -> Self {
        self.client_certificate = Some((certificate.into(), key.into()));
        self
    }

    /// Verify the server's certificate against this name instead of the host connected to.
    pub fn server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    /// Accept a server certificate that chains to a trusted root whatever name it is for
    /// (what Python `gear` does). Anyone holding a certificate from those roots can then
    /// pose as the server: use only with a private CA.
    pub fn danger_skip_server_name(mut self) -> Self {
        self.skip_server_name = true;
        self
    }

    /// Reads the files and builds the settings.
    pub fn build(self) -> Result<ClientTls, TlsError> {
        let roots = match &self.ca_file {
            Some(path) => pem::ca_roots(path)?,
            None => pem::system_roots()?,
        };
        let provider = provider();
        let verifier =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| TlsError(format!("cannot use the trusted roots: {e}")))?;
        let builder =
            ClientConfig::builder_with_provider(provider).with_safe_default_protocol_versions()?;
        let builder = if self.skip_server_name {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyName(verifier)))
        } else {
            builder.with_webpki_verifier(verifier)
        };
        let config = match &self.client_certificate {
            Some((cert, key)) => client_auth(builder, cert, key)?,
            None => builder.with_no_client_auth(),
        };
        let server_name = self
            .server_name
            .map(|n| {
                ServerName::try_from(n.clone())
                    .map_err(|_| TlsError(format!("{n:?} is not a valid TLS server name")))
            })
            .transpose()?;
        Ok(ClientTls {
            config: Arc::new(config),
            server_name,
        })
    }
}

fn client_auth(
    builder: rustls::ConfigBuilder<ClientConfig, rustls::client::WantsClientCert>,
    cert: &Path,
    key: &Path,
) -> Result<ClientConfig, TlsError> {
    let chain = pem::certificates("client certificate", cert)?;
    let key_der = pem::private_key(key)?;
    builder.with_client_auth_cert(chain, key_der).map_err(|e| {
        TlsError(format!(
            "client certificate {} with key {}: {e}",
            cert.display(),
            key.display()
        ))
    })
}

/// Verifies the chain and the signatures like webpki, but not the name.
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // webpki checks the chain first and the name last, so a name error means the
        // chain was good.
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    #[test]
    fn env_needs_both_client_variables() {
        let only_pem = ClientTls::from_vars(|n| {
            (n == "GEARMAN_CLIENT_PEM").then(|| OsString::from("/nonexistent.pem"))
        });
        assert_eq!(
            only_pem.unwrap_err().to_string(),
            "GEARMAN_CLIENT_PEM is set but GEARMAN_CLIENT_KEY is not"
        );
        let only_key = ClientTls::from_vars(|n| {
            (n == "GEARMAN_CLIENT_KEY").then(|| OsString::from("/nonexistent.key"))
        });
        assert!(only_key
            .unwrap_err()
            .to_string()
            .contains("GEARMAN_CLIENT_PEM is not"));
    }

    #[test]
    fn env_ca_file_is_read() {
        let err = ClientTls::from_vars(|n| {
            (n == "GEARMAND_CA_CERTIFICATE").then(|| OsString::from("/nonexistent/ca.pem"))
        })
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "CA file /nonexistent/ca.pem: No such file or directory (os error 2)"
        );
    }
}
