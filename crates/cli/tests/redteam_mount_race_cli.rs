//! Red-team: the window between the launcher's check and the init's
//! mounts. The launcher walks the writable paths and decides what to
//! protect (`.git/hooks`, `.git/config`, rc files) and hide (`.env`); the
//! init mounts a moment later. Another writer in the same workdir (a
//! concurrent jail, a long-lived session's command) could in between move
//! a checked folder aside and put a symlink in its place: mounts made by
//! path followed it, the read-only bind and the mask landed on the decoy,
//! and the moved folder's hooks were writable and its `.env` readable.
//!
//! The race is made deterministic with a hook of debug builds
//! (`AIRLOCK_TEST_SWAP_BEFORE_MOUNT=FROM:ASIDE:LINK`, see
//! crates/jail/src/launch.rs): the init itself moves FROM to ASIDE and
//! links FROM to LINK after the launcher's checks, right before its mounts.
//! The jail opens every target without following symlinks and refuses the
//! run (125, the reason names the path). Both callers.

#[macro_use]
mod support;
use std::path::Path;
use std::process::{Output, Stdio};
use support::{chown_jail, workdir, write, Jail};

both_modes!(
    a_folder_replaced_by_a_symlink_refuses_the_run,
    a_protected_folder_replaced_by_a_symlink_refuses_the_run,
    a_masked_file_replaced_by_a_symlink_refuses_the_run,
    a_masked_file_moved_away_refuses_the_run,
    a_protected_folder_replaced_by_a_fresh_folder_refuses_the_run,
    a_masked_file_replaced_by_a_fresh_file_refuses_the_run,
    a_swapped_folder_with_nothing_to_cover_is_an_ordinary_run,
    a_protected_symlink_is_pinned_and_its_target_protected,
);

const SWAP: &str = "AIRLOCK_TEST_SWAP_BEFORE_MOUNT";

/// What the command tries once it runs: read the moved secret, plant a
/// hook and a config in the moved repository.
const ATTACK: &str = "cat sub2/.env; echo planted > sub2/.git/hooks/pre-commit; \
                      echo '[core] fsmonitor = touch /tmp/x' >> sub2/.git/config; echo RAN";

fn chown_tree(p: &Path) {
    chown_jail(p);
    if p.is_dir() && !p.is_symlink() {
        for e in std::fs::read_dir(p).unwrap() {
            chown_tree(&e.unwrap().path());
        }
    }
}

/// `w/sub` a repository with hooks, a config and a `.env`; a decoy of the
/// same layout next to the workdir.
fn tree() -> (tempfile::TempDir, std::path::PathBuf) {
    let d = workdir();
    let w = d.path().join("w");
    for base in [w.join("sub"), d.path().join("decoy")] {
        write(&base.join(".git/hooks/README"), "hooks\n");
        write(&base.join(".git/config"), "[core]\n");
        write(&base.join(".env"), "TOPSECRET\n");
    }
    write(&w.join("other/notes.txt"), "plain\n");
    chown_tree(d.path());
    (d, w)
}

fn run(j: &Jail, w: &Path, swap: Option<String>, script: &str) -> Output {
    let mut c = j.cmd();
    c.arg("run")
        .arg("--workdir")
        .arg(w)
        .args(["--", "/bin/sh", "-c", script])
        .stdin(Stdio::null());
    if let Some(s) = swap {
        c.env(SWAP, s);
    }
    c.output().unwrap()
}

/// The hook exists in debug builds only (as these tests are built).
fn hook_available() -> bool {
    if !cfg!(debug_assertions) {
        eprintln!("SKIPPED: the swap hook exists in debug builds only");
    }
    cfg!(debug_assertions)
}

/// The run was refused before the command started, naming `path`.
fn assert_refused(o: &Output, path: &str) {
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(125), "stdout {out}\nstderr {err}");
    assert!(
        err.contains(path) && err.contains("changed after the launcher checked it"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(!out.contains("TOPSECRET") && !out.contains("RAN"), "{out}");
}

/// `mv sub sub2; ln -s /…/decoy sub`: `sub` is a folder above protected
/// and masked paths (pinned), now a symlink to a decoy of the same layout.
fn a_folder_replaced_by_a_symlink_refuses_the_run(j: &Jail) {
    if !hook_available() {
        return;
    }
    let (d, w) = tree();
    // An absolute link: before the pivot the init resolved it on the
    // host, where the decoy exists.
    let swap = format!(
        "{}:{}:{}",
        w.join("sub").display(),
        w.join("sub2").display(),
        d.path().join("decoy").display()
    );
    let o = run(j, &w, Some(swap), ATTACK);
    // The swap did happen (else the test would prove nothing).
    assert!(w.join("sub").is_symlink() && w.join("sub2/.env").is_file());
    assert_refused(&o, &w.join("sub").display().to_string());
    // Nothing of the moved repository was written, nor of the decoy.
    assert!(!w.join("sub2/.git/hooks/pre-commit").exists());
    let config = std::fs::read_to_string(w.join("sub2/.git/config")).unwrap();
    assert_eq!(config, "[core]\n");
    assert!(!d.path().join("decoy/.git/hooks/pre-commit").exists());
    // Nor did the post-run scan take the moved files for planted ones.
    assert!(w.join("sub2/.git/hooks/README").is_file());
}

/// The protected folder itself: `mv sub/.git/hooks ...; ln -s` a decoy.
fn a_protected_folder_replaced_by_a_symlink_refuses_the_run(j: &Jail) {
    if !hook_available() {
        return;
    }
    let (d, w) = tree();
    let hooks = w.join("sub/.git/hooks");
    let swap = format!(
        "{}:{}:{}",
        hooks.display(),
        w.join("sub/.git/hooks-real").display(),
        d.path().join("decoy/.git/hooks").display()
    );
    let script = "echo planted > sub/.git/hooks-real/pre-commit; \
                  echo planted > sub/.git/hooks/pre-commit; echo RAN";
    let o = run(j, &w, Some(swap), script);
    assert!(hooks.is_symlink());
    assert_refused(&o, &hooks.display().to_string());
    assert!(!w.join("sub/.git/hooks-real/pre-commit").exists());
    assert!(!d.path().join("decoy/.git/hooks/pre-commit").exists());
}

/// A masked file replaced by a symlink to a harmless file: the mask
/// would hide the decoy and leave the real secret readable at its new
/// name.
fn a_masked_file_replaced_by_a_symlink_refuses_the_run(j: &Jail) {
    if !hook_available() {
        return;
    }
    let (d, w) = tree();
    let env = w.join("sub/.env");
    let swap = format!(
        "{}:{}:{}",
        env.display(),
        w.join("sub/env-copy").display(),
        d.path().join("decoy/.git/config").display()
    );
    let o = run(j, &w, Some(swap), "cat sub/env-copy; echo RAN");
    assert!(env.is_symlink());
    assert_refused(&o, &env.display().to_string());
}

/// Moved away with nothing in its place: the mask has no target, and the
/// secret is readable under its new name. Inside a writable path a
/// deny-read path the launcher found and the init cannot is refused.
fn a_masked_file_moved_away_refuses_the_run(j: &Jail) {
    if !hook_available() {
        return;
    }
    let (_d, w) = tree();
    write(&w.join("box/.env"), "TOPSECRET\n");
    chown_tree(&w);
    let swap = format!("{}:{}:", w.join("box").display(), w.join("box2").display());
    let o = run(j, &w, Some(swap), "cat box2/.env; echo RAN");
    assert!(w.join("box2/.env").is_file() && !w.join("box").exists());
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(125), "{err}");
    assert!(
        err.contains(&w.join("box/.env").display().to_string()) && err.contains("no longer exists"),
        "{err}"
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(!out.contains("TOPSECRET") && !out.contains("RAN"), "{out}");
}

/// No symlink at all: `hooks` moved aside and a fresh, empty folder of
/// the same name made. The path opens, but it is not the folder the
/// launcher checked: the init compares device and inode.
fn a_protected_folder_replaced_by_a_fresh_folder_refuses_the_run(j: &Jail) {
    if !hook_available() {
        return;
    }
    let (_d, w) = tree();
    let hooks = w.join("sub/.git/hooks");
    let real = w.join("sub/.git/hooks-real");
    let swap = format!("{}:{}:@dir", hooks.display(), real.display());
    let o = run(
        j,
        &w,
        Some(swap),
        "echo planted > sub/.git/hooks-real/pre-commit; echo RAN",
    );
    assert!(hooks.is_dir() && real.join("README").is_file());
    assert_refused(&o, &hooks.display().to_string());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("another file is in its place"), "{err}");
    assert!(!real.join("pre-commit").exists());
}

/// The same for a hidden file: `.env` renamed and an empty `.env` made.
fn a_masked_file_replaced_by_a_fresh_file_refuses_the_run(j: &Jail) {
    if !hook_available() {
        return;
    }
    let (_d, w) = tree();
    let env = w.join("sub/.env");
    let copy = w.join("sub/env-copy");
    let swap = format!("{}:{}:@file", env.display(), copy.display());
    let o = run(j, &w, Some(swap), "cat sub/env-copy; echo RAN");
    assert!(env.is_file() && copy.is_file());
    assert_refused(&o, &env.display().to_string());
}

/// The control: the same swap of a folder holding nothing to protect or
/// hide changes nothing for the jail; the run goes on, and the symlink
/// works as any symlink in the workdir.
fn a_swapped_folder_with_nothing_to_cover_is_an_ordinary_run(j: &Jail) {
    if !hook_available() {
        return;
    }
    let (_d, w) = tree();
    let swap = format!(
        "{}:{}:other2",
        w.join("other").display(),
        w.join("other2").display()
    );
    let o = run(
        j,
        &w,
        Some(swap),
        "cat other/notes.txt && echo more >> other/notes.txt && cat sub/.env; \
         echo x > sub/.git/hooks/pre-commit; echo RAN",
    );
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    assert!(out.contains("plain") && out.contains("RAN"), "{out}");
    assert!(!out.contains("TOPSECRET"), "{out}");
    assert!(!w.join("sub/.git/hooks/pre-commit").exists());
    assert_eq!(
        std::fs::read_to_string(w.join("other2/notes.txt")).unwrap(),
        "plain\nmore\n"
    );
}

/// A protected name that is a symlink when the launcher looks (dotfiles
/// kept elsewhere: `.bashrc -> dotfiles/bashrc`) is no attack: the link
/// itself is pinned (cannot be removed or replaced) and never followed by
/// a mount, and the file it points to is read-only by its real path.
fn a_protected_symlink_is_pinned_and_its_target_protected(j: &Jail) {
    let (_d, w) = tree();
    write(&w.join("dotfiles/bashrc"), "# rc\n");
    std::os::unix::fs::symlink("dotfiles/bashrc", w.join(".bashrc")).unwrap();
    chown_tree(&w);
    let o = run(
        j,
        &w,
        None,
        "cat .bashrc; echo evil >> .bashrc; echo evil >> dotfiles/bashrc; \
         rm -f .bashrc; mv .bashrc x; echo RAN",
    );
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    assert!(out.contains("# rc") && out.contains("RAN"), "{out}");
    assert!(w.join(".bashrc").is_symlink(), "the link was replaced");
    assert_eq!(
        std::fs::read_to_string(w.join("dotfiles/bashrc")).unwrap(),
        "# rc\n"
    );
}
