//! Reading PEM certificates, keys and CA bundles.

use crate::TlsError;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::RootCertStore;
use std::path::Path;

fn pem_error(e: pem::Error) -> String {
    match e {
        pem::Error::Io(io) => io.to_string(),
        other => format!("not a valid PEM file ({other})"),
    }
}

/// Every certificate in a PEM file (a certificate followed by its intermediates).
pub(crate) fn certificates(
    what: &str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| TlsError::file(what, path, pem_error(e)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::file(what, path, pem_error(e)))?;
    if certs.is_empty() {
        return Err(TlsError::file(what, path, "no PEM certificate in it"));
    }
    Ok(certs)
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) in a PEM file.
pub(crate) fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| match e {
        pem::Error::NoItemsFound => TlsError::file("key", path, "no PEM private key in it"),
        other => TlsError::file("key", path, pem_error(other)),
    })
}

/// A root store holding every certificate of a CA file.
pub(crate) fn ca_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certificates("CA file", path)? {
        roots
            .add(cert)
            .map_err(|e| TlsError::file("CA file", path, e))?;
    }
    Ok(roots)
}

/// The system's trusted roots (rustls-native-certs); an error when none can be read.
pub(crate) fn system_roots() -> Result<RootCertStore, TlsError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let why = found
            .errors
            .first()
            .map_or("none found".to_string(), |e| e.to_string());
        return Err(TlsError(format!(
            "no system root certificates ({why}); give a CA file"
        )));
    }
    Ok(roots)
}
