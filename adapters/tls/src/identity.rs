//! The identity a verified peer certificate gives: its subject common name and its
//! subject alternative names.

use gearman_core::acl::Identity;
use rustls::pki_types::CertificateDer;
use std::net::IpAddr;
use x509_parser::extensions::GeneralName;

/// Who the peer is: [`Identity::Anonymous`] without a certificate, else the common name and
/// alternative names of its end-entity certificate (the first one). Call it only with
/// certificates rustls verified; an unparsable one (rustls would have refused it) is
/// anonymous.
pub fn peer_identity(certificates: Option<&[CertificateDer<'_>]>) -> Identity {
    let Some(end_entity) = certificates.and_then(|c| c.first()) else {
        return Identity::Anonymous;
    };
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(end_entity.as_ref()) else {
        return Identity::Anonymous;
    };
    let common_name = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_string);
    let mut alt_names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(s) | GeneralName::RFC822Name(s) | GeneralName::URI(s) => {
                    alt_names.push((*s).to_string())
                }
                GeneralName::IPAddress(bytes) => {
                    let ip = match bytes.len() {
                        4 => <[u8; 4]>::try_from(*bytes).ok().map(IpAddr::from),
                        16 => <[u8; 16]>::try_from(*bytes).ok().map(IpAddr::from),
                        _ => None,
                    };
                    alt_names.extend(ip.map(|ip| ip.to_string()));
                }
                _ => {}
            }
        }
    }
    Identity::Certificate {
        common_name,
        alt_names,
    }
}
