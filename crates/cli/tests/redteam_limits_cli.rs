//! Red-team: memory the limit does not count. Without a writable cgroup
//! (an unprivileged caller) `limits.memory` is `RLIMIT_DATA`, which counts
//! only private writable mappings: a shared anonymous mapping (Python's
//! `mmap.mmap(-1, n)`, `memfd_create` + `mmap`, SysV shm) is not counted,
//! so one process holds any amount of host memory. With root the memory
//! cgroup charges shared pages too and the command is OOM-killed. The
//! unprivileged half is a known gap, skipped unless
//! AIRLOCK_REDTEAM_KNOWN_GAPS is set; it passes once the gap is closed.

#[macro_use]
mod support;
use std::process::Stdio;
use support::{chown_jail, workdir, write, Jail, Mode};

both_modes!(shared_memory_counts_against_the_memory_limit);

fn shared_memory_counts_against_the_memory_limit(j: &Jail) {
    if j.mode == Mode::User && std::env::var_os("AIRLOCK_REDTEAM_KNOWN_GAPS").is_none() {
        eprintln!("SKIPPED as user: known gap (see the red-team report); set AIRLOCK_REDTEAM_KNOWN_GAPS=1");
        return;
    }
    let d = workdir();
    let cfg = d.path().join("limits.yaml");
    write(
        &cfg,
        "version: 1\nsandbox:\n  limits:\n    memory: 128MiB\n",
    );
    let p = d.path().join("m.py");
    write(
        &p,
        "import mmap\n\
         n = 512 << 20\n\
         m = mmap.mmap(-1, n)\n\
         for i in range(0, n, 4096):\n    m[i] = 1\n\
         print('SHARED', n >> 20, 'MiB touched', flush=True)\n",
    );
    chown_jail(&p);
    let o = j
        .cmd()
        .arg("run")
        .arg("--config")
        .arg(&cfg)
        .arg("--workdir")
        .arg(d.path())
        .args(["--", "/usr/bin/python3", "m.py"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        !out.contains("SHARED"),
        "512 MiB of shared memory under memory: 128MiB (exit {:?}): {out}",
        o.status.code()
    );
    assert_ne!(o.status.code(), Some(0));
}
