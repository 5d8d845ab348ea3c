//! Red-team: renaming the parent of a hidden (deny-read) or protected path.
//! Both are mount points inside the jail, so the path itself cannot be
//! renamed (`EBUSY`); its parent directory could be, and the mount moved
//! with it. The jail is rebuilt from paths on the next run, so what was
//! hidden or protected at the old path was no longer covered at the new
//! one, and a file written at the old path counted as the original. The
//! jail now pins every folder on the way (mounts::pin_ancestors). Both
//! callers.

#[macro_use]
mod support;
use std::path::Path;
use std::process::Stdio;
use support::{chown_jail, workdir, write, Jail};

both_modes!(
    a_deny_read_path_stays_hidden_after_its_parent_moves,
    a_protected_file_survives_its_parent_moving,
);

fn run(j: &Jail, w: &Path, extra: &[&str], script: &str) -> String {
    let o = j
        .cmd()
        .arg("run")
        .arg("--workdir")
        .arg(w)
        .args(extra)
        .args(["--", "/bin/sh", "-c", script])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn chown_tree(p: &Path) {
    chown_jail(p);
    if p.is_dir() {
        for e in std::fs::read_dir(p).unwrap() {
            chown_tree(&e.unwrap().path());
        }
    }
}

/// `--deny-read ./config/prod.yaml`: the first run cannot read it and
/// tries to move `config` aside (it could, before the pin); the second
/// run, with the same flag, must not read it at the new path.
fn a_deny_read_path_stays_hidden_after_its_parent_moves(j: &Jail) {
    let d = workdir();
    write(&d.path().join("config/prod.yaml"), "TOPSECRET\n");
    chown_tree(d.path());
    let deny = ["--deny-read", "./config/prod.yaml"];
    let first = run(
        j,
        d.path(),
        &deny,
        "cat config/prod.yaml; mv config config2 && echo moved",
    );
    assert!(!first.contains("TOPSECRET"), "read in the first run");
    assert!(!first.contains("moved"), "config was moved: {first}");
    let second = run(j, d.path(), &deny, "cat config2/prod.yaml");
    assert!(
        !second.contains("TOPSECRET"),
        "read in the second run: {second}"
    );
}

/// An existing `a/.vscode/tasks.json` is bound read-only; `mv a b` and a
/// new `a/.vscode/tasks.json` leave a planted file the scan takes for the
/// original (it compares paths).
fn a_protected_file_survives_its_parent_moving(j: &Jail) {
    let d = workdir();
    write(&d.path().join("a/.vscode/tasks.json"), "{}\n");
    chown_tree(d.path());
    run(
        j,
        d.path(),
        &[],
        "mv a b && mkdir -p a/.vscode && echo '{\"evil\":1}' > a/.vscode/tasks.json",
    );
    let now = std::fs::read_to_string(d.path().join("a/.vscode/tasks.json")).unwrap_or_default();
    assert!(!now.contains("evil"), "planted tasks.json survived: {now}");
}
