//! Ordinary work runs unchanged inside `airlock run`: the jail must stop
//! escapes, not everyday tools; with a root and with an unprivileged caller
//! (see `support`).

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

#[macro_use]
mod support;
use support::{is_root, Jail};

both_modes!(everyday_tools_work_in_the_jail);

fn everyday_tools_work_in_the_jail(j: &Jail) {
    let d = tempfile::tempdir().unwrap();
    let w = d.path();
    // A small project: a git repository with one commit, made outside.
    std::fs::write(w.join("README.md"), "hello\n").unwrap();
    std::fs::create_dir(w.join("src")).unwrap();
    std::fs::write(w.join("src/lib.rs"), "pub fn f() {}\n").unwrap();
    let git = |args: &[&str]| {
        let ok = Command::new("git")
            .args(args)
            .current_dir(w)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@t")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@t")
            .output()
            .unwrap();
        assert!(
            ok.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&ok.stderr)
        );
    };
    git(&["init", "-q"]);
    git(&["add", "."]);
    git(&["commit", "-qm", "init"]);
    std::fs::set_permissions(w, std::fs::Permissions::from_mode(0o755)).unwrap();
    if is_root() {
        Command::new("chown")
            .args(["-R", "65534:65534"])
            .arg(w)
            .status()
            .unwrap();
    }
    let script = "set -e
        printf 'b\\na\\nb\\n' | sort | uniq -c | tr -s ' ' | head -1
        git -c safe.directory='*' status --short && echo git-ok
        git -c safe.directory='*' log --oneline | wc -l
        /usr/bin/python3 -c 'import json, hashlib; print(json.dumps({\"sha\": hashlib.sha256(b\"x\").hexdigest()[:8]}))'
        cat README.md src/lib.rs | wc -l
        echo new > notes.txt && cat notes.txt
        mkdir -p build/out && touch build/out/a.o && ls build/out
        find . -name '*.rs' | sort
        mktemp -d /tmp/work.XXXX >/dev/null && echo tmp-ok
        cargo --version >/dev/null 2>&1 || rustc --version >/dev/null 2>&1 || true
        echo done";
    let o = j
        .cmd()
        .arg("run")
        .arg("--workdir")
        .arg(w)
        .args(["--", "/bin/sh", "-c", script])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    for expect in [
        " 1 a",
        "git-ok",
        "{\"sha\": \"2d711642\"}",
        "new",
        "a.o",
        "./src/lib.rs",
        "tmp-ok",
        "done",
    ] {
        assert!(out.contains(expect), "missing {expect:?} in:\n{out}");
    }
    assert!(out.lines().any(|l| l.trim() == "1"), "git log: {out}");
    assert_eq!(
        std::fs::read_to_string(w.join("notes.txt")).unwrap(),
        "new\n"
    );
}
