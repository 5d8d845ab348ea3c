//! Red-team: a symlink planted by one run, followed by the next run's
//! setup. A command that replaces a directory named by a later run's
//! `--allow-write ./build` with a symlink to any directory its user may
//! write would get that directory writable in the later run, so an
//! `allow_write` entry that resolves through a symlink inside a writable
//! path is refused (exit 125, the error names the link and its target).
//! Both callers.

#[macro_use]
mod support;
use std::process::Stdio;
use support::{chown_jail, workdir, Jail};

both_modes!(a_planted_symlink_does_not_redirect_allow_write);

fn a_planted_symlink_does_not_redirect_allow_write(j: &Jail) {
    // A directory of the jail's user outside every writable path (and
    // outside /tmp, which the jail replaces), e.g. ~/.config/systemd/user.
    let victim = tempfile::Builder::new()
        .prefix("airlock-redteam-victim")
        .tempdir_in("/var/tmp")
        .unwrap();
    chown_jail(victim.path());
    let d = workdir();
    let run = |extra: &[&str], script: &str| {
        j.cmd()
            .arg("run")
            .arg("--workdir")
            .arg(d.path())
            .args(extra)
            .args(["--", "/bin/sh", "-c", script])
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    // The control: without the symlink the victim is read-only.
    let o = run(&[], &format!("echo x > {}/x", victim.path().display()));
    assert_ne!(o.status.code(), Some(0));
    let o = run(&[], &format!("ln -s {} build", victim.path().display()));
    assert_eq!(o.status.code(), Some(0));
    let o = run(&["--allow-write", "./build"], "echo pwned > build/x");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(125), "{err}");
    assert!(err.contains("symlink") && err.contains("build"), "{err}");
    assert!(
        !victim.path().join("x").exists(),
        "the second run wrote through the planted symlink"
    );
}
