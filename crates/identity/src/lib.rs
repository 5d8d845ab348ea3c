//! Layer 3 of the tunnel: the gateway tells the private side *which agent*
//! is calling, in a form the private side can check without trusting the
//! tunnel's transport.
//!
//! For every routed request the gateway signs an [`Assertion`] (agent,
//! tunnel, route, MCP session if any, request id, issue and expiry time) with
//! its Ed25519 key and sends it in the [`HEADER`] header. The header value is
//!
//! ```text
//! v1.<base64url(JSON payload)>.<base64url(Ed25519 signature)>
//! ```
//!
//! where the signature covers the ASCII bytes `airlock-identity.v1.` followed
//! by the base64url payload exactly as sent (no re-serialisation).
//!
//! The signature is standard Ed25519. A [`Signer`] may prepare its nonces
//! ahead of need ([`Signer::with_presign`], [`Signer::presign`]) so that
//! signing on the request path costs ~1.5 µs instead of ~25 µs; how the
//! nonces are made and why that is safe is in `presign.rs`. Verifiers are
//! unaffected.
//!
//! # Verifying (what `airlock mcp` calls)
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use airlock_identity::{Signer, Verifier, Expect, Claims};
//!
//! let signer = Signer::generate().unwrap();             // the gateway's key
//! let verifier = Verifier::new(vec![signer.public_key()]);  // from its public key
//! let claims = Claims::new("ci-agent", "corp", "tools", "req-1", None);
//! let header = signer.sign(&claims, Duration::from_secs(60), SystemTime::now()).unwrap();
//!
//! let a = verifier
//!     .verify(&header, &Expect { tunnel: Some("corp"), route: Some("tools") }, SystemTime::now())
//!     .unwrap();
//! assert_eq!(a.agent, "ci-agent");
//! // The same header twice is a replay and is refused.
//! assert!(verifier.verify(&header, &Expect::any(), SystemTime::now()).is_err());
//! ```
//!
//! A [`Verifier`] is `Send + Sync`; share one per process so the replay cache
//! sees every request. Every failure is an [`Error`]; callers must refuse the
//! request on any of them (fail closed) and must not fall back to treating
//! the caller as anonymous-but-allowed.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};
use serde::{Deserialize, Serialize};

mod presign;

/// The HTTP header that carries the assertion.
pub const HEADER: &str = "airlock-identity";

/// Longest lifetime a verifier accepts, whatever the assertion says.
pub const MAX_TTL: Duration = Duration::from_secs(300);

/// Clock skew tolerated between gateway and verifier.
pub const DEFAULT_SKEW: Duration = Duration::from_secs(30);

/// Replay-cache bound; when full of unexpired entries new assertions are
/// refused rather than remembered imperfectly.
pub const DEFAULT_REPLAY_CAPACITY: usize = 1_000_000;

const PREFIX: &str = "v1.";
const SIGNED_CONTEXT: &[u8] = b"airlock-identity.v1.";
const MAX_HEADER_LEN: usize = 4096;

/// Who the gateway says is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub agent: String,
    pub tunnel: String,
    pub route: String,
    /// Unique per request; the replay cache keys on it.
    pub request_id: String,
    /// `Mcp-Session-Id` of the 2025-11-25 protocol, when the request has one.
    pub session: Option<String>,
}

impl Claims {
    pub fn new(
        agent: &str,
        tunnel: &str,
        route: &str,
        request_id: &str,
        session: Option<&str>,
    ) -> Claims {
        Claims {
            agent: agent.into(),
            tunnel: tunnel.into(),
            route: route.into(),
            request_id: request_id.into(),
            session: session.map(Into::into),
        }
    }
}

/// A verified assertion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assertion {
    pub agent: String,
    pub tunnel: String,
    pub route: String,
    pub request_id: String,
    pub session: Option<String>,
    /// Seconds since the Unix epoch.
    pub issued_at: u64,
    pub expires_at: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Payload {
    agent: String,
    tunnel: String,
    route: String,
    rid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sid: Option<String>,
    iat: u64,
    exp: u64,
}

/// Why an assertion was refused. Messages never include the signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("identity assertion is missing")]
    Missing,
    #[error("identity assertion is malformed: {0}")]
    Malformed(&'static str),
    #[error("identity assertion signature is not valid for any trusted gateway key")]
    BadSignature,
    #[error("identity assertion expired")]
    Expired,
    #[error("identity assertion is not yet valid (issued in the future)")]
    NotYetValid,
    #[error("identity assertion lifetime exceeds the {}s maximum", MAX_TTL.as_secs())]
    TooLong,
    #[error("identity assertion was already used (replay)")]
    Replayed,
    #[error("identity assertion is for {field} `{got}`, expected `{want}`")]
    WrongAudience {
        field: &'static str,
        got: String,
        want: String,
    },
    #[error("identity replay cache is full; refusing until entries expire")]
    CacheFull,
    #[error("cannot create or use the signing key: {0}")]
    Key(&'static str),
    #[error("system clock is before 1970")]
    Clock,
}

/// A gateway public key (32 raw Ed25519 bytes).
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey([u8; 32]);

impl PublicKey {
    pub fn from_bytes(b: &[u8]) -> Result<PublicKey, Error> {
        let arr: [u8; 32] = b
            .try_into()
            .map_err(|_| Error::Key("public key must be 32 bytes"))?;
        Ok(PublicKey(arr))
    }

    /// Parses the base64url (or standard base64) text form printed by the gateway.
    pub fn from_base64(s: &str) -> Result<PublicKey, Error> {
        let s = s.trim().trim_end_matches('=');
        let b = B64
            .decode(s)
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(s))
            .map_err(|_| Error::Key("public key is not base64"))?;
        PublicKey::from_bytes(&b)
    }

    pub fn to_base64(&self) -> String {
        B64.encode(self.0)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_base64())
    }
}

/// The gateway's signing key.
///
/// Optionally with a pool of nonces prepared ahead of need
/// ([`Signer::with_presign`], [`Signer::presign`]): an Ed25519 signature's
/// cost is almost all in the nonce's point `R = r·B`, which does not depend
/// on the message, so the gateway computes those pairs while it waits and
/// signs a request in a few microseconds. The signatures are standard
/// Ed25519 either way; verifiers cannot tell and need no change. How the
/// nonces are made and why that is safe: `presign.rs`. With the pool empty
/// (or not enabled) signing is ring's deterministic RFC 8032 Ed25519.
pub struct Signer {
    pair: Ed25519KeyPair,
    pkcs8: Vec<u8>,
    /// The expanded secret, for pool signatures; `None` when the PKCS#8
    /// document's shape is not one we parse (the pool is then never used).
    expanded: Option<presign::Expanded>,
    pool: presign::Pool,
}

impl Signer {
    /// A fresh random key.
    pub fn generate() -> Result<Signer, Error> {
        let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map_err(|_| Error::Key("random generator failed"))?;
        Signer::from_pkcs8(doc.as_ref())
    }

    /// Loads a key stored with [`Signer::pkcs8`].
    pub fn from_pkcs8(der: &[u8]) -> Result<Signer, Error> {
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
            .map_err(|_| Error::Key("bad PKCS#8 key"))?;
        // Fail safe: the expanded key is used only if it yields exactly the
        // public key ring derived from the same document.
        let expanded = presign::seed_from_pkcs8(der)
            .map(|mut seed| {
                let e = presign::Expanded::from_seed(&seed);
                zeroize::Zeroize::zeroize(&mut seed);
                e
            })
            .filter(|e| e.public().as_slice() == pair.public_key().as_ref());
        Ok(Signer {
            pair,
            pkcs8: der.to_vec(),
            expanded,
            pool: presign::Pool::new(0),
        })
    }

    /// Enables a pool of up to `capacity` prepared nonces (empty until
    /// [`Signer::presign`] fills it). 0 disables it.
    pub fn with_presign(mut self, capacity: usize) -> Signer {
        self.pool = presign::Pool::new(if self.expanded.is_some() { capacity } else { 0 });
        self
    }

    /// Prepares up to `max` nonces (about as much work as `max` ordinary
    /// signatures), stopping when the pool is full; returns how many were
    /// added. Meant for idle time: call it in small steps.
    pub fn presign(&self, max: usize) -> usize {
        match &self.expanded {
            Some(k) => self.pool.refill(k, max),
            None => 0,
        }
    }

    /// Prepared nonces available now.
    pub fn presigned(&self) -> usize {
        self.pool.len()
    }

    /// How many prepared nonces the pool holds when full (0: no pool).
    pub fn presign_capacity(&self) -> usize {
        self.pool.capacity()
    }

    /// The PKCS#8 document, for storing the key. Secret.
    pub fn pkcs8(&self) -> &[u8] {
        &self.pkcs8
    }

    pub fn public_key(&self) -> PublicKey {
        let mut b = [0u8; 32];
        b.copy_from_slice(self.pair.public_key().as_ref());
        PublicKey(b)
    }

    /// Signs `claims`, valid from `now` for `ttl`; returns the header value.
    pub fn sign(&self, claims: &Claims, ttl: Duration, now: SystemTime) -> Result<String, Error> {
        let iat = unix(now)?;
        let payload = Payload {
            agent: claims.agent.clone(),
            tunnel: claims.tunnel.clone(),
            route: claims.route.clone(),
            rid: claims.request_id.clone(),
            sid: claims.session.clone(),
            iat,
            exp: iat.saturating_add(ttl.as_secs().max(1)),
        };
        let json = serde_json::to_vec(&payload).map_err(|_| Error::Key("cannot encode claims"))?;
        let body = B64.encode(json);
        let msg = signed_bytes(&body);
        let sig = self.sign_raw(&msg);
        Ok(format!("{PREFIX}{body}.{}", B64.encode(sig)))
    }

    /// An Ed25519 signature of `msg`: from the pool when it has a nonce,
    /// otherwise ring's deterministic signature.
    fn sign_raw(&self, msg: &[u8]) -> [u8; 64] {
        if let Some(sig) = self.expanded.as_ref().and_then(|k| self.pool.sign(k, msg)) {
            return sig;
        }
        let mut out = [0u8; 64];
        out.copy_from_slice(self.pair.sign(msg).as_ref());
        out
    }
}

/// What the verifier insists on, beyond signature and time.
#[derive(Debug, Clone, Copy, Default)]
pub struct Expect<'a> {
    pub tunnel: Option<&'a str>,
    pub route: Option<&'a str>,
}

impl Expect<'static> {
    pub fn any() -> Expect<'static> {
        Expect::default()
    }
}

/// Checks assertions against trusted gateway keys, with a replay cache.
pub struct Verifier {
    keys: Vec<PublicKey>,
    skew: Duration,
    capacity: usize,
    seen: Mutex<HashMap<String, u64>>,
}

impl Verifier {
    /// Trusts these gateway keys (two during a key rotation).
    pub fn new(keys: Vec<PublicKey>) -> Verifier {
        Verifier {
            keys,
            skew: DEFAULT_SKEW,
            capacity: DEFAULT_REPLAY_CAPACITY,
            seen: Mutex::new(HashMap::new()),
        }
    }

    pub fn with_skew(mut self, skew: Duration) -> Verifier {
        self.skew = skew;
        self
    }

    pub fn with_replay_capacity(mut self, n: usize) -> Verifier {
        self.capacity = n;
        self
    }

    /// Verifies a header value: format, signature, lifetime, audience, and
    /// that this request id was not seen before. Records the id on success.
    pub fn verify(
        &self,
        header: &str,
        expect: &Expect<'_>,
        now: SystemTime,
    ) -> Result<Assertion, Error> {
        if header.is_empty() {
            return Err(Error::Missing);
        }
        if header.len() > MAX_HEADER_LEN {
            return Err(Error::Malformed("too long"));
        }
        let rest = header
            .strip_prefix(PREFIX)
            .ok_or(Error::Malformed("unknown version"))?;
        let (body, sig) = rest
            .split_once('.')
            .ok_or(Error::Malformed("missing signature"))?;
        let sig = B64
            .decode(sig)
            .map_err(|_| Error::Malformed("signature is not base64url"))?;
        let msg = signed_bytes(body);
        let ok = self.keys.iter().any(|k| {
            UnparsedPublicKey::new(&ED25519, &k.0)
                .verify(&msg, &sig)
                .is_ok()
        });
        if !ok {
            return Err(Error::BadSignature);
        }
        // Only signed bytes are parsed from here on.
        let json = B64
            .decode(body)
            .map_err(|_| Error::Malformed("payload is not base64url"))?;
        let p: Payload = serde_json::from_slice(&json)
            .map_err(|_| Error::Malformed("payload is not the v1 JSON shape"))?;
        if p.agent.is_empty() || p.rid.is_empty() || p.tunnel.is_empty() || p.route.is_empty() {
            return Err(Error::Malformed("empty field"));
        }
        let now_s = unix(now)?;
        let skew = self.skew.as_secs();
        if p.exp <= p.iat || p.exp - p.iat > MAX_TTL.as_secs() {
            return Err(Error::TooLong);
        }
        if p.iat > now_s.saturating_add(skew) {
            return Err(Error::NotYetValid);
        }
        if now_s >= p.exp.saturating_add(skew) {
            return Err(Error::Expired);
        }
        if let Some(t) = expect.tunnel {
            if t != p.tunnel {
                return Err(Error::WrongAudience {
                    field: "tunnel",
                    got: p.tunnel,
                    want: t.into(),
                });
            }
        }
        if let Some(r) = expect.route {
            if r != p.route {
                return Err(Error::WrongAudience {
                    field: "route",
                    got: p.route,
                    want: r.into(),
                });
            }
        }
        self.remember(&p.rid, p.exp.saturating_add(skew), now_s)?;
        Ok(Assertion {
            agent: p.agent,
            tunnel: p.tunnel,
            route: p.route,
            request_id: p.rid,
            session: p.sid,
            issued_at: p.iat,
            expires_at: p.exp,
        })
    }

    fn remember(&self, rid: &str, until: u64, now: u64) -> Result<(), Error> {
        // A poisoned lock means a panic elsewhere; refusing is the safe answer.
        let mut seen = self.seen.lock().map_err(|_| Error::CacheFull)?;
        if seen.get(rid).is_some_and(|&exp| exp > now) {
            return Err(Error::Replayed);
        }
        if seen.len() >= self.capacity {
            seen.retain(|_, &mut exp| exp > now);
            if seen.len() >= self.capacity {
                return Err(Error::CacheFull);
            }
        }
        seen.insert(rid.to_owned(), until);
        Ok(())
    }
}

fn signed_bytes(body_b64: &str) -> Vec<u8> {
    let mut m = Vec::with_capacity(SIGNED_CONTEXT.len() + body_b64.len());
    m.extend_from_slice(SIGNED_CONTEXT);
    m.extend_from_slice(body_b64.as_bytes());
    m
}

fn unix(t: SystemTime) -> Result<u64, Error> {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .map_err(|_| Error::Clock)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (Signer, Verifier) {
        let s = Signer::generate().unwrap();
        let v = Verifier::new(vec![s.public_key()]);
        (s, v)
    }

    fn claims(rid: &str) -> Claims {
        Claims::new("agent-a", "corp", "tools", rid, Some("sess-1"))
    }

    #[test]
    fn round_trip() {
        let (s, v) = setup();
        let now = SystemTime::now();
        let h = s.sign(&claims("r1"), Duration::from_secs(60), now).unwrap();
        let a = v
            .verify(
                &h,
                &Expect {
                    tunnel: Some("corp"),
                    route: Some("tools"),
                },
                now,
            )
            .unwrap();
        assert_eq!(a.agent, "agent-a");
        assert_eq!(a.session.as_deref(), Some("sess-1"));
        assert_eq!(a.request_id, "r1");
    }

    #[test]
    fn replay_refused() {
        let (s, v) = setup();
        let now = SystemTime::now();
        let h = s.sign(&claims("r1"), Duration::from_secs(60), now).unwrap();
        v.verify(&h, &Expect::any(), now).unwrap();
        assert_eq!(v.verify(&h, &Expect::any(), now), Err(Error::Replayed));
        // A different signature over the same request id is still a replay.
        let h2 = s.sign(&claims("r1"), Duration::from_secs(30), now).unwrap();
        assert_eq!(v.verify(&h2, &Expect::any(), now), Err(Error::Replayed));
    }

    #[test]
    fn forged_and_tampered_refused() {
        let (s, v) = setup();
        let other = Signer::generate().unwrap();
        let now = SystemTime::now();
        let forged = other
            .sign(&claims("r1"), Duration::from_secs(60), now)
            .unwrap();
        assert_eq!(
            v.verify(&forged, &Expect::any(), now),
            Err(Error::BadSignature)
        );

        let h = s.sign(&claims("r2"), Duration::from_secs(60), now).unwrap();
        let (head, sig) = h.rsplit_once('.').unwrap();
        let body = head.strip_prefix("v1.").unwrap();
        let mut json: serde_json::Value =
            serde_json::from_slice(&B64.decode(body).unwrap()).unwrap();
        json["agent"] = "admin".into();
        let tampered = format!(
            "v1.{}.{sig}",
            B64.encode(serde_json::to_vec(&json).unwrap())
        );
        assert_eq!(
            v.verify(&tampered, &Expect::any(), now),
            Err(Error::BadSignature)
        );
        assert!(matches!(
            v.verify("v2.x.y", &Expect::any(), now),
            Err(Error::Malformed(_))
        ));
        assert!(matches!(
            v.verify("v1.abc", &Expect::any(), now),
            Err(Error::Malformed(_))
        ));
        assert_eq!(v.verify("", &Expect::any(), now), Err(Error::Missing));
    }

    #[test]
    fn expiry_and_lifetime() {
        let (s, v) = setup();
        let then = SystemTime::now() - Duration::from_secs(600);
        let old = s
            .sign(&claims("r1"), Duration::from_secs(60), then)
            .unwrap();
        assert_eq!(
            v.verify(&old, &Expect::any(), SystemTime::now()),
            Err(Error::Expired)
        );
        let future = s
            .sign(
                &claims("r2"),
                Duration::from_secs(60),
                SystemTime::now() + Duration::from_secs(600),
            )
            .unwrap();
        assert_eq!(
            v.verify(&future, &Expect::any(), SystemTime::now()),
            Err(Error::NotYetValid)
        );
        let long = s
            .sign(&claims("r3"), Duration::from_secs(3600), SystemTime::now())
            .unwrap();
        assert_eq!(
            v.verify(&long, &Expect::any(), SystemTime::now()),
            Err(Error::TooLong)
        );
    }

    #[test]
    fn audience_checked() {
        let (s, v) = setup();
        let now = SystemTime::now();
        let h = s.sign(&claims("r1"), Duration::from_secs(60), now).unwrap();
        let e = v.verify(
            &h,
            &Expect {
                tunnel: Some("other"),
                route: None,
            },
            now,
        );
        assert!(matches!(
            e,
            Err(Error::WrongAudience {
                field: "tunnel",
                ..
            })
        ));
        // A refused assertion is not remembered: the right audience still works.
        v.verify(
            &h,
            &Expect {
                tunnel: Some("corp"),
                route: Some("tools"),
            },
            now,
        )
        .unwrap();
    }

    #[test]
    fn cache_bounded_and_expiring() {
        let s = Signer::generate().unwrap();
        let v = Verifier::new(vec![s.public_key()])
            .with_replay_capacity(2)
            .with_skew(Duration::ZERO);
        let now = SystemTime::now();
        for rid in ["a", "b"] {
            let h = s.sign(&claims(rid), Duration::from_secs(5), now).unwrap();
            v.verify(&h, &Expect::any(), now).unwrap();
        }
        let h = s.sign(&claims("c"), Duration::from_secs(5), now).unwrap();
        assert_eq!(v.verify(&h, &Expect::any(), now), Err(Error::CacheFull));
        let later = now + Duration::from_secs(10);
        let h = s.sign(&claims("d"), Duration::from_secs(5), later).unwrap();
        v.verify(&h, &Expect::any(), later).unwrap();
    }

    fn pooled(capacity: usize) -> Signer {
        let s = Signer::generate().unwrap().with_presign(capacity);
        assert_eq!(
            s.presign_capacity(),
            capacity,
            "generated keys must allow the pool"
        );
        s
    }

    /// Splits a header into the signed message and the raw signature.
    fn parts(h: &str) -> (Vec<u8>, Vec<u8>) {
        let (head, sig) = h.rsplit_once('.').unwrap();
        let body = head.strip_prefix("v1.").unwrap();
        (signed_bytes(body), B64.decode(sig).unwrap())
    }

    #[test]
    fn presigned_signatures_are_standard_ed25519_with_unique_nonces() {
        use ed25519_dalek::{Signature, VerifyingKey};
        let s = pooled(64);
        let v = Verifier::new(vec![s.public_key()]);
        let dalek = VerifyingKey::from_bytes(s.public_key().as_bytes()).unwrap();
        let now = SystemTime::now();
        let mut seen_r = std::collections::HashSet::new();
        let mut pooled_sigs = 0;
        for i in 0..10_000 {
            if s.presigned() == 0 {
                assert!(s.presign(64) > 0);
            }
            let before = s.presigned();
            let h = s
                .sign(&claims(&format!("r{i}")), Duration::from_secs(60), now)
                .unwrap();
            assert_eq!(s.presigned(), before - 1, "each signature takes one nonce");
            pooled_sigs += 1;
            let (msg, sig) = parts(&h);
            // ring, ed25519-dalek's strict verification, and the Verifier.
            UnparsedPublicKey::new(&ED25519, s.public_key().as_bytes())
                .verify(&msg, &sig)
                .unwrap();
            let sig = Signature::from_slice(&sig).unwrap();
            dalek.verify_strict(&msg, &sig).unwrap();
            assert!(seen_r.insert(sig.r_bytes().to_vec()), "R repeated at {i}");
            v.verify(&h, &Expect::any(), now).unwrap();
        }
        assert_eq!(pooled_sigs, 10_000);
    }

    #[test]
    fn presigned_assertions_refuse_tampering_forgery_and_replay() {
        let s = pooled(8);
        let v = Verifier::new(vec![s.public_key()]);
        let now = SystemTime::now();
        s.presign(8);
        let h = s.sign(&claims("r1"), Duration::from_secs(60), now).unwrap();
        assert_eq!(s.presigned(), 7);
        // Tampered claims under the pooled signature.
        let (head, sig) = h.rsplit_once('.').unwrap();
        let body = head.strip_prefix("v1.").unwrap();
        let mut json: serde_json::Value =
            serde_json::from_slice(&B64.decode(body).unwrap()).unwrap();
        json["route"] = "admin".into();
        let tampered = format!(
            "v1.{}.{sig}",
            B64.encode(serde_json::to_vec(&json).unwrap())
        );
        assert_eq!(
            v.verify(&tampered, &Expect::any(), now),
            Err(Error::BadSignature)
        );
        // A tampered message with a valid pooled signature fails with
        // ring and ed25519-dalek alike.
        let (mut msg, raw) = parts(&h);
        msg.push(b'x');
        assert!(UnparsedPublicKey::new(&ED25519, s.public_key().as_bytes())
            .verify(&msg, &raw)
            .is_err());
        let dalek = ed25519_dalek::VerifyingKey::from_bytes(s.public_key().as_bytes()).unwrap();
        let dsig = ed25519_dalek::Signature::from_slice(&raw).unwrap();
        assert!(dalek.verify_strict(&msg, &dsig).is_err());
        // Flipped bits in s or R.
        for at in [0, 40] {
            let mut bad = raw.clone();
            bad[at] ^= 1;
            let forged = format!("{}.{}", head, B64.encode(&bad));
            assert_eq!(
                v.verify(&forged, &Expect::any(), now),
                Err(Error::BadSignature)
            );
        }
        // Another key's pool does not forge this one's assertions.
        let other = pooled(4);
        other.presign(4);
        let forged = other
            .sign(&claims("r2"), Duration::from_secs(60), now)
            .unwrap();
        assert_eq!(other.presigned(), 3);
        assert_eq!(
            v.verify(&forged, &Expect::any(), now),
            Err(Error::BadSignature)
        );
        // The real one verifies once, then is a replay.
        v.verify(&h, &Expect::any(), now).unwrap();
        assert_eq!(v.verify(&h, &Expect::any(), now), Err(Error::Replayed));
    }

    #[test]
    fn empty_or_disabled_pool_falls_back_to_deterministic_ring() {
        let now = SystemTime::now();
        for s in [pooled(4), Signer::generate().unwrap()] {
            assert_eq!(s.presigned(), 0);
            let h1 = s.sign(&claims("r1"), Duration::from_secs(60), now).unwrap();
            let h2 = s.sign(&claims("r1"), Duration::from_secs(60), now).unwrap();
            // RFC 8032 signing is deterministic: same message, same signature.
            assert_eq!(h1, h2);
            let (msg, sig) = parts(&h1);
            assert_eq!(sig, s.pair.sign(&msg).as_ref());
        }
        // Once filled, the same message signs differently (a fresh nonce).
        let s = pooled(4);
        s.presign(4);
        let a = s.sign(&claims("r1"), Duration::from_secs(60), now).unwrap();
        let b = s.sign(&claims("r1"), Duration::from_secs(60), now).unwrap();
        assert_ne!(a, b);
        assert_eq!(
            Signer::generate().unwrap().presign(4),
            0,
            "no pool: nothing made"
        );
    }

    #[test]
    fn pool_works_after_reload_from_v2_and_v1_pkcs8() {
        let s = Signer::generate().unwrap();
        // ring writes v2 (with the public key); RFC 8410 v1 has only the seed.
        let v2 = s.pkcs8().to_vec();
        let mut v1 = vec![0x30, 0x2e, 0x02, 0x01, 0x00];
        v1.extend_from_slice(&v2[5..48]);
        for der in [v2, v1] {
            let again = Signer::from_pkcs8(&der).unwrap().with_presign(2);
            assert_eq!(again.public_key(), s.public_key());
            assert_eq!(again.presign(2), 2);
            let h = again
                .sign(&claims("r1"), Duration::from_secs(60), SystemTime::now())
                .unwrap();
            assert_eq!(again.presigned(), 1);
            Verifier::new(vec![s.public_key()])
                .verify(&h, &Expect::any(), SystemTime::now())
                .unwrap();
        }
    }

    #[test]
    fn key_round_trips() {
        let s = Signer::generate().unwrap();
        let s2 = Signer::from_pkcs8(s.pkcs8()).unwrap();
        assert_eq!(s.public_key(), s2.public_key());
        let pk = PublicKey::from_base64(&s.public_key().to_base64()).unwrap();
        assert_eq!(pk, s.public_key());
        assert!(PublicKey::from_base64("AAAA").is_err());
    }
}
