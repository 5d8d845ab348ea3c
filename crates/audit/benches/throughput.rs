//! `cargo bench -p airlock-audit --bench throughput [-- N]`: durable append
//! rate (group commit), verify rate and a filtered query over N records
//! (default 1,000,000), then the cost of a paced stream (one record every
//! 100 µs, as a busy gateway routes requests): CPU and context switches of
//! the whole process per record. Prints figures; never a timed test.

use std::time::{Duration, Instant};

use airlock_audit::query::{scan, Filter};
use airlock_audit::verify::verify;
use airlock_audit::{open, Event, Kind, LogOptions, SigningKey};
use airlock_config::Audit;
use serde_json::json;

fn main() {
    let n: u64 = std::env::args()
        .filter_map(|a| a.parse().ok())
        .next()
        .unwrap_or(1_000_000);
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("k");
    let (k, _) = SigningKey::write_new(&key).unwrap();
    let cfg = Audit {
        dir: tmp.path().join("log"),
        signing_key: Some(key),
        ..Audit::default()
    };
    let h = open(&cfg, LogOptions::default()).unwrap();
    let t = Instant::now();
    for i in 0..n {
        let ev = Event::new(Kind::ToolCall)
            .agent(if i % 10 == 0 { "release-bot" } else { "ci-bot" })
            .session(Some(format!("s{}", i % 100)))
            .tool(if i % 3 == 0 {
                "postgres.query"
            } else {
                "git.read_file"
            })
            .args(json!({"repo": "api", "path": format!("src/module_{i}.rs"), "ref": "main"}))
            .decision(i % 7 != 0, "agents.ci-bot.allowed_tools", None)
            .status("ok")
            .duration(Duration::from_micros(900));
        h.record(ev).unwrap();
    }
    h.flush().unwrap();
    let append = t.elapsed();
    h.close();
    let bytes: u64 = std::fs::read_dir(&cfg.dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    println!(
        "append (durable, group commit): {n} records in {:.2} s = {:.0} records/s ({:.1} MiB)",
        append.as_secs_f64(),
        n as f64 / append.as_secs_f64(),
        bytes as f64 / 1048576.0
    );
    let t = Instant::now();
    let r = verify(&cfg.dir, Some(&k.public())).unwrap();
    let v = t.elapsed();
    println!(
        "verify: {:?} {} records + {} checkpoints in {:.2} s = {:.0} records/s",
        r.verdict,
        r.records,
        r.checkpoints,
        v.as_secs_f64(),
        (r.records + r.checkpoints) as f64 / v.as_secs_f64()
    );
    let t = Instant::now();
    let f = Filter {
        agent: Some("release-bot".into()),
        decision: Some("deny".into()),
        ..Filter::default()
    };
    let hits = scan(&cfg.dir, &f, |_, _| true).unwrap();
    println!(
        "query --agent release-bot --decision deny: {hits} hits in {:.2} s",
        t.elapsed().as_secs_f64()
    );
    paced(20_000, Duration::from_micros(100));
}

/// Records handed over one at a time with a pause between them, as a
/// gateway does per routed request: what each costs the whole process (the
/// writer thread included), and how often a thread was switched out.
fn paced(n: u64, gap: Duration) {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = Audit {
        dir: tmp.path().join("log"),
        ..Audit::default()
    };
    let h = open(&cfg, LogOptions::default()).unwrap();
    let before = usage();
    let t = Instant::now();
    for i in 0..n {
        let ev = Event::new(Kind::ToolCall)
            .agent("ci-bot")
            .tool("git.read_file")
            .args(json!({"repo": "api", "path": format!("src/module_{i}.rs")}))
            .status("ok");
        h.record(ev).unwrap();
        std::thread::sleep(gap);
    }
    h.flush().unwrap();
    let wall = t.elapsed();
    let after = usage();
    h.close();
    let per = |a: f64, b: f64| (b - a) / n as f64;
    println!(
        "paced stream ({n} records, one per {} µs + sleep slack, {:.0} records/s): \
         CPU {:.1} µs/record (process, the pacing thread's sleeps included), \
         {:.2} voluntary + {:.2} involuntary context switches/record",
        gap.as_micros(),
        n as f64 / wall.as_secs_f64(),
        per(before.0, after.0),
        per(before.1, after.1),
        per(before.2, after.2),
    );
}

/// (CPU µs, voluntary, involuntary context switches) of this process so far.
fn usage() -> (f64, f64, f64) {
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let us = |t: libc::timeval| t.tv_sec as f64 * 1e6 + t.tv_usec as f64;
    (
        us(u.ru_utime) + us(u.ru_stime),
        u.ru_nvcsw as f64,
        u.ru_nivcsw as f64,
    )
}
