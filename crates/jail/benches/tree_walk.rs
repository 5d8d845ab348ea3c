//! CPU time of the jail's tree walks on a real tree: the walk before a run
//! (what to hide and protect) and after it (the post-run scan), as
//! `airlock run` makes them. On demand:
//!
//!   cargo bench -p airlock-jail --bench tree_walk -- DIR [ROUNDS]
//!
//! Prints the entries seen and the median, p10 and p90 of the CPU time per
//! walk (the calling thread's, so other processes do not count).

use std::time::Duration;

fn thread_cpu() -> Duration {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let Some(dir) = args.first() else {
        eprintln!("usage: cargo bench -p airlock-jail --bench tree_walk -- DIR [ROUNDS]");
        return;
    };
    let rounds: usize = args.get(1).and_then(|r| r.parse().ok()).unwrap_or(20);
    let root = std::fs::canonicalize(dir).expect("DIR exists");
    let deny: Vec<String> = airlock_jail::rules::NAME_DENY
        .iter()
        .map(|s| s.to_string())
        .collect();
    let entries = walkdir_count(&root);
    // Before a run regular files are not looked at; after it each is
    // (setuid/setgid files changed since the run began).
    for (what, since) in [("before a run", None), ("after a run", Some(0))] {
        let mut times = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            let t0 = thread_cpu();
            let f = airlock_jail::rules::walk(std::slice::from_ref(&root), &deny, None, since);
            times.push(thread_cpu() - t0);
            std::hint::black_box(f);
        }
        times.sort();
        let pick = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
        println!(
            "{entries} entries, walk {what}: CPU median {:.2} ms (p10 {:.2}, p90 {:.2}), {:.2} µs per entry, {rounds} rounds",
            pick(0.5).as_secs_f64() * 1e3,
            pick(0.1).as_secs_f64() * 1e3,
            pick(0.9).as_secs_f64() * 1e3,
            pick(0.5).as_secs_f64() * 1e6 / entries.max(1) as f64,
        );
    }
}

fn walkdir_count(d: &std::path::Path) -> usize {
    let mut n = 0;
    let mut stack = vec![d.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            n += 1;
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(e.path());
            }
        }
    }
    n
}
