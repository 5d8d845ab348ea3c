//! `airlock run` started by root maps the command to the workdir's owner
//! (the rule `airlock mcp` uses for its session jails), and never to host
//! root: a root-owned workdir keeps uid 65534 and gets a warning up front
//! instead of a bare "Permission denied" later. Root only: an unprivileged
//! caller always runs the command as itself.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output};

const AIRLOCK: &str = env!("CARGO_BIN_EXE_airlock");

fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

/// A fresh directory, mode 0755, owned by `uid:uid`.
fn dir_owned_by(uid: u32) -> tempfile::TempDir {
    let d = tempfile::Builder::new()
        .prefix("airlock-run-owner")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::chown(d.path(), Some(uid), Some(uid)).unwrap();
    d
}

fn run_in(dir: &Path, script: &str) -> Output {
    Command::new(AIRLOCK)
        .args(["run", "--workdir"])
        .arg(dir)
        .args(["--", "/bin/sh", "-c", script])
        .env("HOME", dir)
        .output()
        .unwrap()
}

#[test]
fn files_written_in_a_users_workdir_belong_to_that_user() {
    if !is_root() {
        eprintln!("SKIPPED: needs root (only root maps the command to another uid)");
        return;
    }
    let d = dir_owned_by(1000);
    let out = run_in(d.path(), "echo hi > made");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!err.contains("warning"), "{err}");
    let m = std::fs::metadata(d.path().join("made")).unwrap();
    assert_eq!((m.uid(), m.gid()), (1000, 1000));
    assert_eq!(
        std::fs::read_to_string(d.path().join("made")).unwrap(),
        "hi\n"
    );
}

#[test]
fn a_root_owned_workdir_warns_and_the_write_fails_cleanly() {
    if !is_root() {
        eprintln!("SKIPPED: needs root (only root maps the command to another uid)");
        return;
    }
    let d = dir_owned_by(0);
    let out = run_in(d.path(), "echo hi > made");
    let err = String::from_utf8_lossy(&out.stderr);
    // The warning comes first, before anything the command prints.
    let first = err.lines().next().unwrap_or("");
    assert!(
        first.starts_with("airlock run: warning: the workdir")
            && first.contains("owned by root")
            && first.contains("uid 65534")
            && first.contains("chown")
            && first.contains("--workdir"),
        "{err}"
    );
    assert!(err.contains("Permission denied"), "{err}");
    // The shell's own failure status, not airlock's 125.
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(!d.path().join("made").exists());

    // A root-owned directory others may write (like /tmp) needs no warning.
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    let out = run_in(d.path(), "echo hi > made");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!err.contains("warning"), "{err}");
    assert_eq!(
        std::fs::metadata(d.path().join("made")).unwrap().uid(),
        65534
    );
}
