//! `cargo bench -p airlock --bench jail_startup`: what a jailed command
//! costs end to end, beside bubblewrap doing comparable isolation and the
//! bare command. Prints its figures; never a timed test.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RUNS: usize = 60;

fn measure(name: &str, mut cmd: impl FnMut() -> Command) -> Option<Vec<Duration>> {
    // One warm-up run, and skip peers that are not installed.
    let ok = cmd()
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .ok()?
        .success();
    if !ok {
        println!("{name:<44} (failed to run; skipped)");
        return None;
    }
    let mut v = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let t = Instant::now();
        let s = cmd()
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        v.push(t.elapsed());
        assert!(s.success());
    }
    v.sort();
    let mean = v.iter().sum::<Duration>() / v.len() as u32;
    println!(
        "{name:<44} mean {:>7.2} ms   p50 {:>7.2} ms   p95 {:>7.2} ms",
        mean.as_secs_f64() * 1e3,
        v[v.len() / 2].as_secs_f64() * 1e3,
        v[v.len() * 95 / 100].as_secs_f64() * 1e3
    );
    Some(v)
}

fn main() {
    let airlock = env!("CARGO_BIN_EXE_airlock");
    let wd = tempfile::tempdir().unwrap();
    if unsafe { libc::geteuid() } == 0 {
        std::os::unix::fs::chown(wd.path(), Some(65534), Some(65534)).unwrap();
    }
    let w = wd.path().to_str().unwrap().to_string();
    println!("{RUNS} runs each, one warm-up; 2-core machine shared with builds, so read ratios, not absolutes\n");
    measure("/bin/true (no isolation)", || Command::new("/bin/true"));
    measure("airlock run -- /bin/true (no network)", || {
        let mut c = Command::new(airlock);
        c.args(["run", "--workdir", &w, "--", "/bin/true"]);
        c
    });
    measure("airlock run --allow-net … (proxy + relay)", || {
        let mut c = Command::new(airlock);
        c.args([
            "run",
            "--workdir",
            &w,
            "--allow-net",
            "example.com",
            "--",
            "/bin/true",
        ]);
        c
    });
    measure("bwrap --unshare-all (user/pid/net/ipc/uts)", || {
        let mut c = Command::new("bwrap");
        c.args([
            "--unshare-all",
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
            "/bin/true",
        ]);
        c
    });
}
