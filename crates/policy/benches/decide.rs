//! Policy decision latency with 1,000 declared tools (target: p99 ≤ 10 µs).
//! `cargo bench -p airlock-policy --bench decide`; the Cedar encoding of the
//! same rules is `--features cedar-bench --bench cedar`.

mod rules;

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Instant;

use airlock_policy::Policy;

fn main() {
    let cfg = rules::config();
    let t0 = Instant::now();
    let policy = Policy::compile(&cfg).expect("bench config compiles");
    println!("compile: 1000 tools x 20 agents in {:?}", t0.elapsed());

    let calls = rules::calls();
    let mut counts = BTreeMap::new();
    for (a, t, args) in &calls {
        *counts
            .entry(policy.decide(a, t, args).label())
            .or_insert(0u32) += 1;
    }
    println!("decision mix over {} calls: {counts:?}", calls.len());

    let rounds = 200;
    let mut samples = Vec::with_capacity(calls.len() * rounds);
    for _ in 0..rounds {
        for (a, t, args) in &calls {
            let s = Instant::now();
            black_box(policy.decide(black_box(a), black_box(t), black_box(args)));
            samples.push(s.elapsed().as_nanos() as u64);
        }
    }
    samples.sort_unstable();
    let pct = |p: f64| samples[((samples.len() as f64 - 1.0) * p) as usize];
    println!(
        "airlock decide: {} samples  p50 {} ns  p99 {} ns  p99.9 {} ns  max {} ns",
        samples.len(),
        pct(0.5),
        pct(0.99),
        pct(0.999),
        samples[samples.len() - 1]
    );
    println!(
        "target: p99 <= 10000 ns -> {}",
        if pct(0.99) <= 10_000 { "met" } else { "MISSED" }
    );
}
