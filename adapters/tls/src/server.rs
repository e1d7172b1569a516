//! What a server presents and which client certificates it accepts.

use crate::{pem, provider, TlsError};
use rustls::server::WebPkiClientVerifier;
use rustls::ServerConfig;
use std::path::PathBuf;
use std::sync::Arc;

/// The files and policy of a TLS listener (gearmand's `--ssl-certificate`, `--ssl-key`,
/// `--ssl-ca-file`, plus `--ssl-verify-client`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerTlsOptions {
    /// The server's certificate chain (PEM).
    pub certificate: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
    /// CA whose client certificates are accepted. Without it clients cannot present one.
    pub ca_file: Option<PathBuf>,
    /// Refuse clients without a certificate chaining to `ca_file`. Without this flag a
    /// certificate is optional, and verified when offered.
    pub verify_client: bool,
}

/// A loaded server TLS configuration.
#[derive(Clone, Debug)]
pub struct ServerTls {
    config: Arc<ServerConfig>,
}

impl ServerTls {
    /// Reads and checks every file now, so a bad one is a start error, not a failure at
    /// the first connection.
    pub fn load(options: &ServerTlsOptions) -> Result<ServerTls, TlsError> {
        let chain = pem::certificates("certificate", &options.certificate)?;
        let key = pem::private_key(&options.key)?;
        let provider = provider();
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?;
        let builder = match (&options.ca_file, options.verify_client) {
            (Some(ca), verify) => {
                let roots = Arc::new(pem::ca_roots(ca)?);
                let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider);
                let verifier = if verify {
                    verifier
                } else {
                    verifier.allow_unauthenticated()
                };
                let verifier = verifier
                    .build()
                    .map_err(|e| TlsError::file("CA file", ca, e))?;
                builder.with_client_cert_verifier(verifier)
            }
            (None, true) => {
                return Err(TlsError(
                    "verifying client certificates needs a CA file (--ssl-ca-file)".into(),
                ))
            }
            (None, false) => builder.with_no_client_auth(),
        };
        let config = builder.with_single_cert(chain, key).map_err(|e| {
            TlsError(format!(
                "certificate {} with key {}: {e}",
                options.certificate.display(),
                options.key.display()
            ))
        })?;
        Ok(ServerTls {
            config: Arc::new(config),
        })
    }

    /// The rustls configuration to accept with.
    pub fn config(&self) -> Arc<ServerConfig> {
        self.config.clone()
    }
}
