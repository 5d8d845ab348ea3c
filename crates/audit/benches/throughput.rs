//! `cargo bench -p airlock-audit --bench throughput [-- N]`: durable append
//! rate (group commit), verify rate and a filtered query over N records
//! (default 1,000,000). Prints figures; never a timed test.

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
}
