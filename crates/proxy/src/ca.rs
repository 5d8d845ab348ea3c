//! The per-install CA that signs leaves for intercepted TLS. Its key stays
//! outside the jail (0600 in the state dir); only the certificate is trusted
//! inside.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::canon::Host;

#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("CA file {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("certificate generation: {0}")]
    Gen(#[from] rcgen::Error),
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
}

pub struct CertAuthority {
    cert: Certificate,
    key: KeyPair,
    cert_pem: String,
    leaves: Mutex<HashMap<Host, Arc<CertifiedKey>>>,
}

impl std::fmt::Debug for CertAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertAuthority").finish_non_exhaustive()
    }
}

fn ca_params() -> Result<CertificateParams, rcgen::Error> {
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "airlock egress CA");
    dn.push(DnType::OrganizationName, "airlock");
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.not_before = rcgen::date_time_ymd(2025, 1, 1);
    p.not_after = rcgen::date_time_ymd(2045, 1, 1);
    Ok(p)
}

impl CertAuthority {
    /// A fresh CA kept in memory only (tests, one-off runs).
    pub fn generate() -> Result<CertAuthority, CaError> {
        let key = KeyPair::generate()?;
        Self::from_key(key, None)
    }

    fn from_key(key: KeyPair, pem: Option<String>) -> Result<CertAuthority, CaError> {
        // The certificate is re-derived from the key and fixed parameters; a
        // stored PEM is what clients trust, and it names the same subject and key.
        let cert = ca_params()?.self_signed(&key)?;
        let cert_pem = pem.unwrap_or_else(|| cert.pem());
        Ok(CertAuthority {
            cert,
            key,
            cert_pem,
            leaves: Mutex::new(HashMap::new()),
        })
    }

    /// Load `ca.key`/`ca.pem` from `dir`, creating them (key 0600) on first use.
    pub fn load_or_create(dir: &Path) -> Result<CertAuthority, CaError> {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let io = |p: &Path| {
            let path = p.display().to_string();
            move |source| CaError::Io { path, source }
        };
        let key_path = dir.join("ca.key");
        let cert_path = dir.join("ca.pem");
        if key_path.exists() {
            let key_pem = std::fs::read_to_string(&key_path).map_err(io(&key_path))?;
            let cert_pem = std::fs::read_to_string(&cert_path).map_err(io(&cert_path))?;
            return Self::from_key(KeyPair::from_pem(&key_pem)?, Some(cert_pem));
        }
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
        let ca = Self::generate()?;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&key_path)
            .map_err(io(&key_path))?;
        std::io::Write::write_all(&mut f, ca.key.serialize_pem().as_bytes())
            .map_err(io(&key_path))?;
        std::fs::write(&cert_path, &ca.cert_pem).map_err(io(&cert_path))?;
        Ok(ca)
    }

    /// The certificate to trust inside the jail.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// A leaf for `host`, cached per name.
    pub fn leaf(&self, host: &Host) -> Result<Arc<CertifiedKey>, CaError> {
        if let Some(k) = self.leaves.lock().ok().and_then(|m| m.get(host).cloned()) {
            return Ok(k);
        }
        let mut p = CertificateParams::new(Vec::<String>::new())?;
        p.subject_alt_names = vec![match host {
            Host::Name(n) => SanType::DnsName(n.clone().try_into()?),
            Host::Ip(ip) => SanType::IpAddress(*ip as IpAddr),
        }];
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, host.to_string());
        p.distinguished_name = dn;
        p.not_before = rcgen::date_time_ymd(2025, 1, 1);
        p.not_after = rcgen::date_time_ymd(2044, 1, 1);
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate()?;
        let cert = p.signed_by(&key, &self.cert, &self.key)?;
        let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let signer = rustls::crypto::ring::sign::any_supported_type(&der)?;
        let ck = Arc::new(CertifiedKey::new(
            vec![CertificateDer::from(cert.der().to_vec())],
            signer,
        ));
        if let Ok(mut m) = self.leaves.lock() {
            m.insert(host.clone(), ck.clone());
        }
        Ok(ck)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_reload_and_key_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("airlock-ca-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let a = CertAuthority::load_or_create(&dir).unwrap();
        let mode = std::fs::metadata(dir.join("ca.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let b = CertAuthority::load_or_create(&dir).unwrap();
        assert_eq!(a.cert_pem(), b.cert_pem());
        assert!(b.leaf(&Host::Name("example.com".into())).is_ok());
        assert!(b.leaf(&Host::Ip("127.0.0.1".parse().unwrap())).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
