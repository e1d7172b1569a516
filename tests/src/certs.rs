//! Certificates for TLS tests, generated on the fly with rcgen (none are checked in): a CA,
//! a server certificate for 127.0.0.1 and localhost, client certificates by common name,
//! and the bad ones the negative tests need (expired, from another CA, for another name).

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A certificate and its key, written as PEM files.
#[derive(Clone, Debug)]
pub struct CertFiles {
    /// The certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM, PKCS#8).
    pub key: PathBuf,
}

struct Authority {
    cert: Certificate,
    key: KeyPair,
}

impl Authority {
    fn new(name: &str) -> Authority {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.distinguished_name = dn(name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("self-sign CA");
        Authority { cert, key }
    }
}

fn dn(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

/// A throwaway PKI in its own directory (removed on drop).
pub struct TestPki {
    /// Where the files are.
    pub dir: PathBuf,
    /// The CA certificate servers and clients trust (PEM).
    pub ca: PathBuf,
    /// The server's certificate, for `127.0.0.1`, `::1` and `localhost`.
    pub server: CertFiles,
    ca_authority: Authority,
    other: Authority,
    count: AtomicUsize,
}

impl TestPki {
    /// A fresh CA and server certificate under the system temp directory; `label` keeps
    /// parallel tests apart.
    pub fn generate(label: &str) -> TestPki {
        let dir = std::env::temp_dir().join(format!(
            "gearman-tls-{label}-{}-{}",
            std::process::id(),
            rand_suffix()
        ));
        Self::generate_in(dir)
    }

    /// A fresh CA and server certificate in `dir`, emptied first (for a PKI that lives as
    /// long as the process, in a directory the next run reuses).
    pub fn generate_in(dir: PathBuf) -> TestPki {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the PKI directory");
        let ca_authority = Authority::new("gearman-rs test CA");
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, ca_authority.cert.pem()).expect("write CA");
        let mut pki = TestPki {
            dir,
            ca,
            server: CertFiles {
                cert: PathBuf::new(),
                key: PathBuf::new(),
            },
            ca_authority,
            other: Authority::new("another CA"),
            count: AtomicUsize::new(0),
        };
        pki.server = pki.issue(
            "server",
            &["127.0.0.1", "::1", "localhost"],
            Issue::default(),
        );
        pki
    }

    /// The other CA's certificate (trusting it trusts none of ours).
    pub fn other_ca(&self) -> PathBuf {
        let path = self.dir.join("other-ca.pem");
        std::fs::write(&path, self.other.cert.pem()).expect("write other CA");
        path
    }

    /// A client certificate with this subject common name, from the CA.
    pub fn client(&self, common_name: &str) -> CertFiles {
        self.issue(common_name, &[], Issue::default())
    }

    /// A client certificate with this common name and these alternative names.
    pub fn client_with_sans(&self, common_name: &str, sans: &[&str]) -> CertFiles {
        self.issue(common_name, sans, Issue::default())
    }

    /// A client certificate that expired a day ago.
    pub fn expired_client(&self, common_name: &str) -> CertFiles {
        self.issue(
            common_name,
            &[],
            Issue {
                expired: true,
                ..Issue::default()
            },
        )
    }

    /// A client certificate from another CA.
    pub fn foreign_client(&self, common_name: &str) -> CertFiles {
        self.issue(
            common_name,
            &[],
            Issue {
                foreign: true,
                ..Issue::default()
            },
        )
    }

    /// A server certificate for 127.0.0.1 and localhost that expired a day ago.
    pub fn expired_server(&self) -> CertFiles {
        self.issue(
            "expired server",
            &["127.0.0.1", "localhost"],
            Issue {
                expired: true,
                ..Issue::default()
            },
        )
    }

    /// A server certificate for 127.0.0.1 and localhost from another CA.
    pub fn foreign_server(&self) -> CertFiles {
        self.issue(
            "foreign server",
            &["127.0.0.1", "localhost"],
            Issue {
                foreign: true,
                ..Issue::default()
            },
        )
    }

    /// A server certificate from the CA for another name only.
    pub fn misnamed_server(&self) -> CertFiles {
        self.issue("elsewhere", &["elsewhere.example"], Issue::default())
    }

    fn issue(&self, common_name: &str, sans: &[&str], how: Issue) -> CertFiles {
        let names: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(names).expect("leaf params");
        params.distinguished_name = dn(common_name);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        if how.expired {
            let now = time::OffsetDateTime::now_utc();
            params.not_before = now - time::Duration::days(30);
            params.not_after = now - time::Duration::days(1);
        }
        let issuer = if how.foreign {
            &self.other
        } else {
            &self.ca_authority
        };
        let key = KeyPair::generate().expect("leaf key");
        let cert = params
            .signed_by(&key, &issuer.cert, &issuer.key)
            .expect("sign leaf");
        let n = self.count.fetch_add(1, Ordering::Relaxed);
        let stem: String = common_name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let files = CertFiles {
            cert: self.dir.join(format!("{n}-{stem}.pem")),
            key: self.dir.join(format!("{n}-{stem}.key")),
        };
        std::fs::write(&files.cert, cert.pem()).expect("write certificate");
        std::fs::write(&files.key, key.serialize_pem()).expect("write key");
        files
    }

    /// A file in the PKI directory (for tests' own scratch files).
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

#[derive(Clone, Copy, Default)]
struct Issue {
    expired: bool,
    foreign: bool,
}

fn rand_suffix() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

impl Drop for TestPki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
