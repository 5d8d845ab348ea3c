//! The log's keys: an Ed25519 signing key (a file outside the log
//! directory and outside any jail) for checkpoints, and an HMAC key derived
//! from it for argument hashes and redaction fingerprints.

use std::io::Write;
use std::path::{Path, PathBuf};

use ring::rand::SecureRandom;
use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};

use crate::AuditError;

/// A checkpoint signer (the key's seed never leaves this type).
pub struct SigningKey {
    pair: Ed25519KeyPair,
    seed: [u8; 32],
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({})", self.public().id())
    }
}

/// A verifying key: `ed25519:<64 hex>` in files and on the command line.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey(pub [u8; 32]);

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.to_text())
    }
}

pub fn hex(b: &[u8]) -> String {
    // Table lookup: this runs once per record on append and on verify,
    // where a `format!` per byte was a visible share of the cost.
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        s.push(DIGITS[usize::from(x >> 4)] as char);
        s.push(DIGITS[usize::from(x & 0xf)] as char);
    }
    s
}

pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .expect("system randomness");
    b
}

impl SigningKey {
    pub fn generate() -> SigningKey {
        SigningKey::from_seed(random_bytes::<32>())
    }

    fn from_seed(seed: [u8; 32]) -> SigningKey {
        let pair = Ed25519KeyPair::from_seed_unchecked(&seed).expect("32-byte seed");
        SigningKey { pair, seed }
    }

    /// Reads a key file written by [`SigningKey::write_new`]; refuses a
    /// file others may read and a file inside `log_dir`.
    pub fn load(path: &Path, log_dir: &Path) -> Result<SigningKey, AuditError> {
        let bad = |m: String| AuditError::Key(format!("{}: {m}", path.display()));
        let canon = std::fs::canonicalize(path).map_err(|e| bad(e.to_string()))?;
        if let Ok(d) = std::fs::canonicalize(log_dir) {
            if canon.starts_with(&d) {
                return Err(bad("the signing key must live outside the audit directory (whoever can rewrite the log must not hold the key)".into()));
            }
        }
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(&canon).map_err(|e| bad(e.to_string()))?;
        if meta.mode() & 0o077 != 0 {
            return Err(bad(format!(
                "mode {:o} lets others read it; chmod 600 it",
                meta.mode() & 0o777
            )));
        }
        let text = std::fs::read_to_string(&canon).map_err(|e| bad(e.to_string()))?;
        let hexed = text.trim().strip_prefix("ed25519-seed:").ok_or_else(|| {
            bad("not an airlock audit key (write one with `airlock audit keygen`)".into())
        })?;
        let seed: [u8; 32] = unhex(hexed)
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| bad("malformed key".into()))?;
        Ok(SigningKey::from_seed(seed))
    }

    /// Writes a fresh key (0600) and its public half beside it (`.pub`).
    pub fn write_new(path: &Path) -> Result<(SigningKey, PathBuf), AuditError> {
        let k = SigningKey::generate();
        let io = |e: std::io::Error| AuditError::Key(format!("{}: {e}", path.display()));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode_0600()
            .open(path)
            .map_err(io)?;
        writeln!(f, "ed25519-seed:{}", hex(&k.seed)).map_err(io)?;
        let pubpath = PathBuf::from(format!("{}.pub", path.display()));
        std::fs::write(&pubpath, format!("{}\n", k.public().to_text())).map_err(io)?;
        Ok((k, pubpath))
    }

    pub fn public(&self) -> PublicKey {
        let mut b = [0u8; 32];
        b.copy_from_slice(self.pair.public_key().as_ref());
        PublicKey(b)
    }

    pub fn sign(&self, msg: &[u8]) -> Vec<u8> {
        self.pair.sign(msg).as_ref().to_vec()
    }

    /// The HMAC key for argument hashes and fingerprints, bound to this log key.
    pub fn hmac_key(&self) -> [u8; 32] {
        let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &self.seed);
        let tag = ring::hmac::sign(&k, b"airlock-audit-fingerprint-v1");
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }
}

trait Mode0600 {
    fn mode_0600(&mut self) -> &mut Self;
}
impl Mode0600 for std::fs::OpenOptions {
    fn mode_0600(&mut self) -> &mut Self {
        std::os::unix::fs::OpenOptionsExt::mode(self, 0o600)
    }
}

impl PublicKey {
    pub fn to_text(&self) -> String {
        format!("ed25519:{}", hex(&self.0))
    }

    /// `ed25519:<hex>`, or a file holding it.
    pub fn parse_or_read(s: &str) -> Result<PublicKey, AuditError> {
        let text = if s.starts_with("ed25519:") {
            s.to_string()
        } else {
            std::fs::read_to_string(s).map_err(|e| AuditError::Key(format!("{s}: {e}")))?
        };
        let h = text.trim().strip_prefix("ed25519:").ok_or_else(|| {
            AuditError::Key(format!(
                "{s}: write `ed25519:<64 hex digits>` or a .pub file"
            ))
        })?;
        let b: [u8; 32] = unhex(h)
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| AuditError::Key(format!("{s}: malformed public key")))?;
        Ok(PublicKey(b))
    }

    /// Short id written into checkpoints (first 8 bytes, hex).
    pub fn id(&self) -> String {
        hex(&self.0[..8])
    }

    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        UnparsedPublicKey::new(&ED25519, &self.0)
            .verify(msg, sig)
            .is_ok()
    }
}

pub fn hmac(key: &[u8; 32], data: &[u8]) -> [u8; 32] {
    let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    let mut out = [0u8; 32];
    out.copy_from_slice(ring::hmac::sign(&k, data).as_ref());
    out
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, data).as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::{hex, unhex};

    #[test]
    fn hex_is_lowercase_and_round_trips() {
        let all: Vec<u8> = (0..=255).collect();
        let h = hex(&all);
        assert_eq!(&h[..8], "00010203");
        assert_eq!(&h[h.len() - 4..], "feff");
        assert_eq!(unhex(&h).as_deref(), Some(&all[..]));
        assert_eq!(unhex("0g"), None);
        assert_eq!(unhex("abc"), None);
    }
}
