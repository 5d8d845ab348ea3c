//! `cargo bench -p airlock --bench jail_startup` (or `crates/cli/benches/peers.sh`,
//! which installs the peers first): what a jailed `true` and `echo hi` cost
//! end to end under `airlock run` (full isolation, network relays on),
//! under bubblewrap with comparable namespaces and binds, and under srt
//! (`@anthropic-ai/sandbox-runtime`, from target/bench-peers/srt). Prints
//! medians, p90s and the ratios; never a timed test.
//!
//! The cases run interleaved, one of each per round, so a build elsewhere
//! on the machine slows them all alike.
//!
//! * `AIRLOCK_BENCH_RUNS` (default 60): rounds for airlock, bwrap and the bare command.
//! * `AIRLOCK_BENCH_SRT_RUNS` (default 15): rounds that include srt (it is slow).
//! * `AIRLOCK_BENCH_SRT`: the srt executable (default target/bench-peers/srt/node_modules/.bin/srt).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Case {
    name: String,
    argv: Vec<String>,
    /// What stdout must be (checked on every run: a sandbox that fails
    /// quickly must not look fast).
    expect: &'static str,
    /// How many rounds include this case.
    runs: usize,
    /// Where it runs (srt gets a directory of its own: it creates and
    /// removes placeholder files in its working directory).
    cwd: Option<PathBuf>,
    times: Vec<Duration>,
    /// Why it is not measured, when it is not.
    skipped: Option<String>,
}

impl Case {
    fn new(name: &str, argv: Vec<String>, expect: &'static str, runs: usize) -> Case {
        Case {
            name: name.to_string(),
            argv,
            expect,
            runs,
            cwd: None,
            times: Vec::new(),
            skipped: None,
        }
    }

    fn skipped(name: &str, why: String) -> Case {
        let mut c = Case::new(name, vec![], "", 0);
        c.skipped = Some(why);
        c
    }

    /// Runs once; the time and whether stdout and the exit status were right.
    fn run_once(&self, cwd: &Path) -> Result<Duration, String> {
        let t = Instant::now();
        let out = Command::new(&self.argv[0])
            .args(&self.argv[1..])
            .current_dir(self.cwd.as_deref().unwrap_or(cwd))
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("{}: {e}", self.argv[0]))?;
        let took = t.elapsed();
        if !out.status.success() || out.stdout != self.expect.as_bytes() {
            let err = String::from_utf8_lossy(&out.stderr);
            let tail: Vec<&str> = err.lines().rev().take(3).collect();
            return Err(format!(
                "{}, stdout {:?}: {}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
            ));
        }
        Ok(took)
    }

    fn p(&self, q: usize) -> Duration {
        let mut v = self.times.clone();
        v.sort();
        v[(v.len() * q / 100).min(v.len() - 1)]
    }
    fn median(&self) -> Option<Duration> {
        (!self.times.is_empty()).then(|| self.p(50))
    }
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(default)
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn version(argv: &[&str]) -> String {
    Command::new(argv[0])
        .args(&argv[1..])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "?".into())
}

fn main() {
    let runs = env_usize("AIRLOCK_BENCH_RUNS", 60);
    let srt_runs = env_usize("AIRLOCK_BENCH_SRT_RUNS", 15).min(runs);
    let airlock = env!("CARGO_BIN_EXE_airlock");
    let wd = tempfile::tempdir().unwrap();
    if unsafe { libc::geteuid() } == 0 {
        // A root launcher runs the jail as nobody, which must be able to
        // enter the workdir.
        std::os::unix::fs::chown(wd.path(), Some(65534), Some(65534)).unwrap();
    }
    let w = wd.path().to_str().unwrap().to_string();
    let scratch = tempfile::tempdir().unwrap();

    let commands: [(&str, &[&str], &'static str); 2] = [
        ("true", &["true"], ""),
        ("echo hi", &["echo", "hi"], "hi\n"),
    ];
    let mut cases: Vec<Case> = Vec::new();
    for (label, cmd, expect) in commands {
        let bare = Case::new(
            &format!("{label}: bare (no isolation)"),
            strs(cmd),
            expect,
            runs,
        );
        let mut nonet = strs(&[airlock, "run", "--workdir", &w, "--"]);
        nonet.extend(strs(cmd));
        let mut relays = strs(&[
            airlock,
            "run",
            "--workdir",
            &w,
            "--allow-net",
            "example.com",
            "--",
        ]);
        relays.extend(strs(cmd));
        // The binds airlock makes too: a read-only /, fresh /dev and /proc,
        // a private /tmp, the workdir writable.
        let mut bwrap = strs(&[
            "bwrap",
            "--unshare-all",
            "--unshare-net",
            "--die-with-parent",
            "--new-session",
            "--ro-bind",
            "/",
            "/",
            "--dev",
            "/dev",
            "--proc",
            "/proc",
            "--tmpfs",
            "/tmp",
            "--bind",
            &w,
            &w,
            "--chdir",
            &w,
        ]);
        bwrap.extend(strs(cmd));
        cases.push(bare);
        cases.push(Case::new(
            &format!("{label}: airlock run (no network)"),
            nonet,
            expect,
            runs,
        ));
        cases.push(Case::new(
            &format!("{label}: airlock run --allow-net (relays on)"),
            relays,
            expect,
            runs,
        ));
        cases.push(Case::new(
            &format!("{label}: bwrap --unshare-all (net too)"),
            bwrap,
            expect,
            runs,
        ));
        let srt_name = format!("{label}: srt (proxies on)");
        cases.push(match srt_case(scratch.path()) {
            Ok(mut argv) => {
                argv.extend(strs(cmd));
                let mut c = Case::new(&srt_name, argv, expect, srt_runs);
                c.cwd = Some(scratch.path().join("work"));
                c
            }
            Err(why) => Case::skipped(&srt_name, why),
        });
    }

    // One warm-up run each; a case that fails is reported and left out.
    for c in cases.iter_mut().filter(|c| c.skipped.is_none()) {
        if let Err(e) = c.run_once(wd.path()) {
            c.skipped = Some(format!("failed to run: {e}"));
        }
    }
    for round in 0..runs {
        for c in cases.iter_mut() {
            if c.skipped.is_some() || round >= c.runs {
                continue;
            }
            match c.run_once(wd.path()) {
                Ok(t) => c.times.push(t),
                Err(e) => panic!("{} failed on run {round}: {e}", c.name),
            }
        }
    }

    println!(
        "{runs} rounds ({srt_runs} for srt), interleaved, one warm-up each; {} cores; kernel {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        version(&["uname", "-r"])
    );
    println!(
        "bwrap {}; srt {}; node {}\n",
        version(&["bwrap", "--version"]),
        srt_path()
            .map(|p| version(&[p.to_str().unwrap_or("srt"), "--version"]))
            .unwrap_or_else(|| "not installed".into()),
        version(&["node", "--version"]),
    );
    println!("{:<46} {:>10} {:>10}", "", "median", "p90");
    for c in &cases {
        match &c.skipped {
            Some(why) => println!("{:<46} skipped: {why}", c.name),
            None => println!(
                "{:<46} {:>7.2} ms {:>7.2} ms",
                c.name,
                ms(c.p(50)),
                ms(c.p(90))
            ),
        }
    }
    println!();
    for (label, ..) in commands {
        let m = |suffix: &str| {
            cases
                .iter()
                .find(|c| c.name == format!("{label}: {suffix}"))
                .and_then(Case::median)
        };
        let airlock = m("airlock run --allow-net (relays on)");
        if let (Some(a), Some(b)) = (airlock, m("bwrap --unshare-all (net too)")) {
            println!(
                "{label}: airlock (relays on) / bwrap = {:.2}  (target: at most 1)",
                a.as_secs_f64() / b.as_secs_f64()
            );
        }
        if let (Some(a), Some(s)) = (airlock, m("srt (proxies on)")) {
            println!(
                "{label}: srt / airlock (relays on)   = {:.1}  (target: at least 20)",
                s.as_secs_f64() / a.as_secs_f64()
            );
        }
    }
}

fn srt_path() -> Option<PathBuf> {
    let p = match std::env::var_os("AIRLOCK_BENCH_SRT") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../target/bench-peers/srt/node_modules/.bin/srt"),
    };
    p.exists().then_some(p)
}

/// srt's command line with a settings file comparable to airlock's: the
/// workdir writable, one domain allowed so its proxies and bridges start.
fn srt_case(scratch: &Path) -> Result<Vec<String>, String> {
    let srt = srt_path()
        .ok_or("not installed (crates/cli/benches/peers.sh installs it from npm)".to_string())?;
    for (tool, why) in [
        ("bwrap", "bubblewrap"),
        ("socat", "socat"),
        ("rg", "ripgrep"),
    ] {
        let found = std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()));
        if !found {
            return Err(format!(
                "srt needs {why} on Linux, and {tool} is not on PATH"
            ));
        }
    }
    std::fs::create_dir_all(scratch.join("work")).map_err(|e| format!("srt workdir: {e}"))?;
    let settings = scratch.join("srt-settings.json");
    let json = serde_json::json!({
        "filesystem": {"denyRead": [], "allowWrite": ["."], "denyWrite": []},
        "network": {"allowedDomains": ["example.com"], "deniedDomains": []},
    });
    std::fs::write(&settings, json.to_string()).map_err(|e| format!("settings file: {e}"))?;
    Ok(vec![
        srt.display().to_string(),
        "--settings".into(),
        settings.display().to_string(),
    ])
}
