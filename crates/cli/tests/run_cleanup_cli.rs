//! A launcher killed with SIGKILL cannot clean up after its jail: as root,
//! its cgroups stay behind (and a scratch directory, when the shared mount
//! point could not be used). The next jail started on the host removes the
//! leftovers of launchers that are gone.

// Only the caller helpers are used here, not the two-mode macro.
#[allow(unused_macros)]
mod support;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{is_root, run_cgroups, AIRLOCK};

/// Every directory the run of launcher `pid` owns.
fn leftovers(tmp: &std::path::Path, pid: u32) -> Vec<PathBuf> {
    let mut v = run_cgroups(pid);
    let scratch = tmp.join(format!(".airlock-run-{pid}-0"));
    if scratch.exists() {
        v.push(scratch);
    }
    v
}

#[test]
fn a_killed_launchers_scratch_and_cgroups_are_swept_by_the_next_run() {
    if !is_root() {
        eprintln!("SKIPPED: without root a run has no cgroups, and the shared mount point leaves nothing behind");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let run = |cmd: &str| {
        let mut c = Command::new(AIRLOCK);
        c.args(["run", "--workdir"])
            .arg(work.path())
            .args(["--", "sh", "-c", cmd])
            .env("TMPDIR", tmp.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        c
    };
    let mut victim = run("sleep 30").spawn().unwrap();
    let pid = victim.id();
    // Wait until the jail is up (its cgroups exist).
    let t = Instant::now();
    while leftovers(tmp.path(), pid).is_empty() && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    victim.kill().unwrap();
    victim.wait().unwrap();
    let left = leftovers(tmp.path(), pid);
    assert!(!left.is_empty(), "a SIGKILLed launcher leaves its cgroups");
    // The jail's processes die with their launcher (PDEATHSIG); once the
    // cgroups are empty the next run's sweep can remove them. It runs in
    // the background, so give the next command time to let it finish.
    let t = Instant::now();
    loop {
        let st = run("sleep 0.3").status().unwrap();
        assert!(st.success());
        let left = leftovers(tmp.path(), pid);
        if left.is_empty() {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "still there after later runs: {left:?}"
        );
    }
}
