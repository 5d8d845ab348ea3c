//! On demand: `cargo bench -p airlock-identity --bench sign`. CPU cost of
//! one identity assertion signed the ordinary way (ring), from a prepared
//! nonce, and of preparing one nonce.

use std::time::{Duration, Instant, SystemTime};

use airlock_identity::{Claims, Signer};

fn main() {
    let n = 20_000;
    let s = Signer::generate().unwrap().with_presign(n);
    let claims = Claims::new("ci-agent", "corp", "tools", "1f-0123456789abcdef", None);
    let ttl = Duration::from_secs(60);
    let now = SystemTime::now();
    let per = |t: Instant| t.elapsed().as_secs_f64() * 1e6 / n as f64;

    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(s.sign(&claims, ttl, now).unwrap());
    }
    println!("sign, ring (pool empty): {:.2} µs", per(t));

    let t = Instant::now();
    assert_eq!(s.presign(n), n);
    println!("prepare one nonce: {:.2} µs", per(t));

    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(s.sign(&claims, ttl, now).unwrap());
    }
    println!("sign from a prepared nonce: {:.2} µs", per(t));
    assert_eq!(s.presigned(), 0);
}
