//! Ed25519 signing with nonces prepared ahead of need.
//!
//! An Ed25519 signature of `M` under secret scalar `a` (public `A = a·B`) is
//! `(R, s)` with `R = r·B` and `s = r + H(R‖A‖M)·a mod ℓ`. Almost all of the
//! cost is the fixed-base multiplication `r·B` and the encoding of `R`, and
//! neither needs the message. [`Pool`] computes `(r, R)` pairs when the
//! gateway has nothing else to do, so signing on the request path is one
//! SHA-512 and a scalar multiply-add. Verifiers see ordinary Ed25519: any
//! RFC 8032 verifier (ring, ed25519-dalek's `verify_strict`) accepts these
//! signatures; only how `r` is chosen differs from RFC 8032's deterministic
//! `r = H(prefix‖M)`, which the standard does not require of verifiers.
//!
//! Why this is safe:
//! * `r` must be secret, uniformly distributed and never used for two
//!   messages (a repeat reveals `a`). It is a *hedged* nonce:
//!   `SHA-512(domain ‖ prefix ‖ 32 fresh bytes from the OS ‖ counter)`
//!   reduced mod ℓ, where `prefix` is the secret half of the expanded key.
//!   With a working OS generator it is uniformly random; with a broken one
//!   it is still secret (keyed by `prefix`) and distinct per pair (the
//!   counter). No pair is ever made without fresh randomness: if the OS
//!   generator fails, the pool stays empty and signing falls back to ring's
//!   deterministic Ed25519.
//! * Each pair is taken out of the pool under a lock (its slot overwritten
//!   with zeros), used for exactly one signature and zeroised when
//!   dropped; pairs are never serialised, cloned, persisted or shared with
//!   another process. A pool that finds itself in a forked child (process
//!   id changed) throws its pairs away unused, since the parent holds the
//!   same ones. Zeroising is best effort, as in any Rust code: copies the
//!   compiler makes when a value moves on the stack are not cleared.
//! * The arithmetic is curve25519-dalek's constant-time field and scalar
//!   code, not ours.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Mutex;

use curve25519_dalek::edwards::EdwardsPoint;
use curve25519_dalek::scalar::{clamp_integer, Scalar};
use ring::rand::{SecureRandom, SystemRandom};
use sha2::{Digest, Sha512};
use zeroize::Zeroize;

const NONCE_DOMAIN: &[u8] = b"airlock-identity presigned nonce v1";

/// The expanded Ed25519 secret: scalar `a`, nonce prefix, public key.
pub(crate) struct Expanded {
    a: Scalar,
    prefix: [u8; 32],
    public: [u8; 32],
}

impl Drop for Expanded {
    fn drop(&mut self) {
        self.a.zeroize();
        self.prefix.zeroize();
    }
}

impl Expanded {
    /// RFC 8032 §5.1.5 key expansion from the 32-byte seed.
    pub(crate) fn from_seed(seed: &[u8; 32]) -> Expanded {
        let mut h = sha512(&[seed]);
        let mut lower = [0u8; 32];
        lower.copy_from_slice(&h[..32]);
        let clamped = clamp_integer(lower);
        // The clamped integer may exceed ℓ; signatures only use it mod ℓ,
        // and `A = a·B` is the same point either way (B has order ℓ).
        let a = Scalar::from_bytes_mod_order(clamped);
        let public = EdwardsPoint::mul_base(&a).compress().to_bytes();
        let mut prefix = [0u8; 32];
        prefix.copy_from_slice(&h[32..]);
        h.zeroize();
        lower.zeroize();
        Expanded { a, prefix, public }
    }

    pub(crate) fn public(&self) -> &[u8; 32] {
        &self.public
    }
}

/// One prepared nonce: `r` and the encoding of `R = r·B`. Moved out of the
/// pool for one signature; zeroised on drop. Deliberately not `Clone`.
struct Nonce {
    r: Scalar,
    big_r: [u8; 32],
}

impl Nonce {
    fn zero() -> Nonce {
        Nonce {
            r: Scalar::ZERO,
            big_r: [0; 32],
        }
    }
}

impl Drop for Nonce {
    fn drop(&mut self) {
        self.r.zeroize();
        self.big_r.zeroize();
    }
}

/// Prepared nonces for one key in one process.
pub(crate) struct Pool {
    slots: Mutex<Vec<Nonce>>,
    /// `slots.len()`, readable without the lock.
    count: AtomicUsize,
    capacity: usize,
    counter: AtomicU64,
    /// The process that made the pairs; a forked child must not use them.
    pid: u32,
    rng: SystemRandom,
}

impl Pool {
    pub(crate) fn new(capacity: usize) -> Pool {
        Pool {
            slots: Mutex::new(Vec::with_capacity(capacity)),
            count: AtomicUsize::new(0),
            capacity,
            counter: AtomicU64::new(0),
            pid: std::process::id(),
            rng: SystemRandom::new(),
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    pub(crate) fn len(&self) -> usize {
        self.count.load(Relaxed)
    }

    /// Takes one pair, never the same one twice. `None` when empty, when the
    /// lock is held or poisoned, or in a forked child (which also empties
    /// the pool).
    ///
    /// Never waits for the lock: a refilling thread may run at idle
    /// priority and be preempted while holding it, and a request must not
    /// wait for that thread to get a CPU back; it signs the ordinary way.
    fn take(&self) -> Option<Nonce> {
        let mut slots = self.slots.try_lock().ok()?;
        if std::process::id() != self.pid {
            slots.clear();
            self.count.store(0, Relaxed);
            return None;
        }
        // Swap a zero pair into the slot before popping it: a plain `pop`
        // moves the bytes out but leaves them in the vector's spare
        // capacity, and a used `r` with its signature gives away the key.
        let last = slots.last_mut()?;
        let n = std::mem::replace(last, Nonce::zero());
        slots.pop();
        self.count.store(slots.len(), Relaxed);
        Some(n)
    }

    /// Adds up to `max` pairs, stopping at capacity; returns how many were
    /// added. Computed outside the lock, so signing never waits on it; the
    /// lock is only tried (a pair that finds it busy a few times running
    /// is dropped, zeroised), so no caller waits on another either.
    pub(crate) fn refill(&self, key: &Expanded, max: usize) -> usize {
        let mut added = 0;
        while added < max && self.len() < self.capacity {
            let Some(n) = self.make(key) else { break };
            let mut slots = None;
            for _ in 0..64 {
                match self.slots.try_lock() {
                    Ok(s) => {
                        slots = Some(s);
                        break;
                    }
                    Err(std::sync::TryLockError::WouldBlock) => std::hint::spin_loop(),
                    Err(std::sync::TryLockError::Poisoned(_)) => break,
                }
            }
            match slots {
                Some(mut s) if s.len() < self.capacity && std::process::id() == self.pid => {
                    s.push(n);
                    self.count.store(s.len(), Relaxed);
                }
                _ => break,
            }
            added += 1;
        }
        added
    }

    /// A hedged nonce and its point; `None` if the OS generator failed.
    fn make(&self, key: &Expanded) -> Option<Nonce> {
        let mut fresh = [0u8; 32];
        self.rng.fill(&mut fresh).ok()?;
        let ctr = self.counter.fetch_add(1, Relaxed).to_le_bytes();
        let mut wide = sha512(&[NONCE_DOMAIN, &key.prefix, &fresh, &ctr]);
        let r = Scalar::from_bytes_mod_order_wide(&wide);
        wide.zeroize();
        fresh.zeroize();
        if r == Scalar::ZERO {
            return None; // probability 2^-252; R would be the identity
        }
        let big_r = EdwardsPoint::mul_base(&r).compress().to_bytes();
        Some(Nonce { r, big_r })
    }

    /// Signs `msg` with a prepared pair, or returns `None` (pool empty): the
    /// caller then signs the ordinary way.
    pub(crate) fn sign(&self, key: &Expanded, msg: &[u8]) -> Option<[u8; 64]> {
        let n = self.take()?;
        Some(sign_with(key, n, msg))
    }
}

/// `s = r + H(R‖A‖M)·a`; consumes (and so zeroises) the nonce.
fn sign_with(key: &Expanded, n: Nonce, msg: &[u8]) -> [u8; 64] {
    let k = Scalar::from_bytes_mod_order_wide(&sha512(&[&n.big_r, &key.public, msg]));
    let s = k * key.a + n.r;
    let mut sig = [0u8; 64];
    sig[..32].copy_from_slice(&n.big_r);
    sig[32..].copy_from_slice(s.as_bytes());
    sig
}

fn sha512(parts: &[&[u8]]) -> [u8; 64] {
    let mut h = Sha512::new();
    for p in parts {
        h.update(p);
    }
    let mut out = [0u8; 64];
    out.copy_from_slice(&h.finalize());
    out
}

/// The 32-byte seed of an Ed25519 PKCS#8 document (RFC 8410, v1 or v2 as
/// ring writes it), or `None` for any other shape: the pool is then simply
/// not used.
pub(crate) fn seed_from_pkcs8(der: &[u8]) -> Option<[u8; 32]> {
    // SEQUENCE { INTEGER 0|1, SEQUENCE { OID 1.3.101.112 }, OCTET STRING {
    // OCTET STRING (32) seed } [, ...] }
    const ALG: &[u8] = &[0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70];
    const KEY: &[u8] = &[0x04, 0x22, 0x04, 0x20];
    if der.len() < 48 || der[0] != 0x30 || der[2..4] != [0x02, 0x01] {
        return None;
    }
    if der[5..12] != *ALG || der[12..16] != *KEY {
        return None;
    }
    let mut seed = [0u8; 32];
    seed.copy_from_slice(&der[16..48]);
    Some(seed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Expanded {
        let mut seed = [0u8; 32];
        SystemRandom::new().fill(&mut seed).unwrap();
        Expanded::from_seed(&seed)
    }

    #[test]
    fn rfc8032_test_vector_1_public_key() {
        // RFC 8032 §7.1, TEST 1.
        let seed: [u8; 32] =
            hex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60");
        let k = Expanded::from_seed(&seed);
        assert_eq!(
            k.public().to_vec(),
            hex::<32>("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a").to_vec()
        );
    }

    #[test]
    fn pool_fills_to_capacity_and_each_pair_is_used_once() {
        let k = key();
        let p = Pool::new(8);
        assert_eq!(p.refill(&k, 100), 8);
        assert_eq!(p.refill(&k, 100), 0);
        let mut rs = std::collections::HashSet::new();
        for i in 0..8 {
            let sig = p.sign(&k, format!("m{i}").as_bytes()).unwrap();
            assert!(rs.insert(sig[..32].to_vec()));
        }
        assert_eq!(p.len(), 0);
        assert!(p.sign(&k, b"empty").is_none());
    }

    #[test]
    fn a_taken_pair_leaves_no_copy_in_the_pool() {
        let k = key();
        let p = Pool::new(1);
        assert_eq!(p.refill(&k, 1), 1);
        let n = p.take().unwrap();
        assert_ne!(n.r, Scalar::ZERO);
        let slots = p.slots.lock().unwrap();
        assert!(slots.is_empty() && slots.capacity() >= 1);
        // SAFETY: test only. Slot 0 of the allocation was written by `refill`
        // and moved out of by `take`; its bytes stay initialised (a move
        // does not uninitialise memory) and are only read, as bytes.
        let bytes = unsafe {
            std::slice::from_raw_parts(slots.as_ptr().cast::<u8>(), std::mem::size_of::<Nonce>())
        };
        assert!(
            bytes.iter().all(|&b| b == 0),
            "a used nonce's bytes remain in the pool"
        );
    }

    #[test]
    fn a_pool_of_no_capacity_stays_empty() {
        let k = key();
        let p = Pool::new(0);
        assert_eq!(p.refill(&k, 10), 0);
        assert!(p.sign(&k, b"m").is_none());
    }

    #[test]
    fn a_forked_child_never_uses_the_parents_pairs() {
        let k = key();
        let mut p = Pool::new(4);
        assert_eq!(p.refill(&k, 4), 4);
        // As seen from a child after fork(): another process id.
        p.pid = p.pid.wrapping_add(1);
        assert!(p.sign(&k, b"m").is_none());
        assert_eq!(p.len(), 0, "the inherited pairs are thrown away");
        assert_eq!(
            p.refill(&k, 4),
            0,
            "and none are made for the parent's pool"
        );
    }

    #[test]
    fn taking_never_waits_for_the_lock() {
        let k = key();
        let p = Pool::new(4);
        assert_eq!(p.refill(&k, 4), 4);
        // Held by a (preempted, idle-priority) refiller: no nonce, no wait;
        // the caller signs the ordinary way. Waiting here would deadlock.
        let held = p.slots.lock().unwrap();
        assert!(p.sign(&k, b"m").is_none());
        assert_eq!(p.refill(&k, 1), 0, "nor does a refill wait");
        drop(held);
        assert!(p.sign(&k, b"m").is_some());
        assert_eq!(p.len(), 3);
    }

    #[test]
    fn seed_parser_refuses_other_shapes() {
        assert!(seed_from_pkcs8(&[]).is_none());
        assert!(seed_from_pkcs8(&[0x30; 85]).is_none());
    }

    fn hex<const N: usize>(s: &str) -> [u8; N] {
        let mut out = [0u8; N];
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
        }
        out
    }
}
