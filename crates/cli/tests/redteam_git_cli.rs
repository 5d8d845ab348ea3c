//! Red-team: a hostile command plants git configuration that makes the
//! user's next `git status` in the workdir run a command on the host, past
//! the protection of `.git/config` and `.git/hooks` (bound read-only when
//! they exist, removed by the post-run scan when they appear). Each attack
//! is checked end to end: after the run, the test runs the host's `git
//! status` in the repository and asserts the planted `core.fsmonitor`
//! command did not run. Both callers (root, unprivileged), as in the
//! escape suite.

#[macro_use]
mod support;
use std::path::Path;
use std::process::{Command, Stdio};
use support::{chown_jail, workdir, Jail};

both_modes!(
    git_redirects_are_removed_after_the_run,
    a_submodule_git_dir_is_protected,
    a_linked_worktree_git_dir_is_protected,
    a_replaced_git_dir_does_not_keep_its_config,
    git_alternates_are_protected,
    a_bare_repository_is_protected,
);

/// `git init` plus one empty commit in `dir`, on the host.
fn host_repo(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for args in [
        &["init", "-q", "-b", "main", "."][..],
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "x",
        ],
    ] {
        let st = git(dir).args(args).status().unwrap();
        assert!(st.success(), "git {args:?}");
    }
}

/// The host's git with no user or system configuration, trusting `dir`
/// whoever owns it (the tests run it as root on a 65534-owned tree).
fn git(dir: &Path) -> Command {
    let mut c = Command::new("git");
    c.current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .args(["-c", "safe.directory=*"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}

fn chown_tree(p: &Path) {
    chown_jail(p);
    if p.is_dir() && !p.is_symlink() {
        for e in std::fs::read_dir(p).unwrap() {
            chown_tree(&e.unwrap().path());
        }
    }
}

/// A shell snippet creating the git dir `evil` (HEAD, objects and refs
/// copied from `from`) whose config runs `touch MARK` from git status.
fn evil_gitdir(evil: &str, from: &str, mark: &Path) -> String {
    format!(
        "mkdir -p {evil} && cp -r {from}/objects {from}/refs {from}/HEAD {evil}/ && \
         printf '[core]\\n\\trepositoryformatversion = 0\\n\\tfsmonitor = \"touch {m}; false\"\\n' > {evil}/config",
        m = mark.display()
    )
}

fn run_jail(j: &Jail, w: &Path, script: &str) -> serde_json::Value {
    let report = w.parent().unwrap().join(format!(
        "{}-report.json",
        w.file_name().unwrap().to_string_lossy()
    ));
    let o = j
        .cmd()
        .arg("run")
        .arg("--workdir")
        .arg(w)
        .arg("--report")
        .arg(&report)
        .args(["--", "/bin/sh", "-c", script])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(
        o.status.code(),
        Some(0),
        "stdout {} stderr {err}",
        String::from_utf8_lossy(&o.stdout)
    );
    let rep = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let _ = std::fs::remove_file(&report);
    rep
}

fn findings(rep: &serde_json::Value, w: &Path) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = rep["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let p = f["path"].as_str().unwrap();
            let p = p.strip_prefix(w.to_str().unwrap()).unwrap_or(p);
            (p.to_string(), f["action"].as_str().unwrap().to_string())
        })
        .collect();
    v.sort();
    v
}

/// Three ways to point an existing repository's git at a directory the
/// command wrote, none of which writes `.git/config` or `.git/hooks`:
/// `.git/commondir` (git reads config and hooks from the common dir), and
/// `.git` moved aside and replaced by a `gitdir:` file or by a symlink
/// (the move fails now: `.git` is pinned as the parent of protected files).
fn git_redirects_are_removed_after_the_run(j: &Jail) {
    let d = workdir();
    let w = d.path().join("w");
    let marks = tempfile::tempdir().unwrap();
    for r in ["r1", "r2", "r3"] {
        host_repo(&w.join(r));
    }
    chown_tree(&w);
    let m = |r: &str| marks.path().join(r);
    let script = [
        evil_gitdir("evil1", "r1/.git", &m("r1")),
        "echo ../../evil1 > r1/.git/commondir".into(),
        evil_gitdir("evil2", "r2/.git", &m("r2")),
        "mv r2/.git r2/.git-old && echo 'gitdir: ../evil2' > r2/.git".into(),
        evil_gitdir("evil3", "r3/.git", &m("r3")),
        "mv r3/.git r3/.git-old && ln -s ../evil3 r3/.git".into(),
        // The moves of .git fail now (EBUSY: the jail pins it); go on.
        "true".into(),
    ]
    .join(" ; ");
    // The control: on the host, without airlock, each redirect works.
    let ctl = tempfile::tempdir().unwrap();
    host_repo(&ctl.path().join("r1"));
    host_repo(&ctl.path().join("r2"));
    let ctl_script = [
        evil_gitdir("evil1", "r1/.git", &ctl.path().join("c1")),
        "echo ../../evil1 > r1/.git/commondir".into(),
        evil_gitdir("evil2", "r2/.git", &ctl.path().join("c2")),
        "mv r2/.git r2/.git-old && echo 'gitdir: ../evil2' > r2/.git".into(),
    ]
    .join(" && ");
    let st = Command::new("/bin/sh")
        .args(["-c", &ctl_script])
        .current_dir(ctl.path())
        .status()
        .unwrap();
    assert!(st.success());
    for r in ["r1", "r2"] {
        let _ = git(&ctl.path().join(r)).arg("status").status().unwrap();
    }
    assert!(ctl.path().join("c1").exists() && ctl.path().join("c2").exists());

    let rep = run_jail(j, &w, &script);
    for r in ["r1", "r2", "r3"] {
        let _ = git(&w.join(r)).arg("status").status().unwrap();
        assert!(!m(r).exists(), "{r}: the planted fsmonitor ran on the host");
    }
    let removed = |p: &str| (p.to_string(), "removed".to_string());
    // The evil directories look like git dirs (HEAD, objects/, refs/), so
    // their configs count as planted too.
    assert_eq!(
        findings(&rep, &w),
        vec![
            removed("/evil1/config"),
            removed("/evil2/config"),
            removed("/evil3/config"),
            removed("/r1/.git/commondir"),
        ]
    );
    for r in ["r2", "r3"] {
        let g = w.join(r).join(".git");
        assert!(g.is_dir() && !g.is_symlink(), "{r}/.git was replaced");
    }
}

/// `.git` moved aside and a new `.git` directory written whose `config`
/// and `hooks` sit at the same paths as the originals: the post-run scan
/// compares paths, so the new ones counted as the files that were there.
/// `.git` is pinned now (a mount point, the rename fails with EBUSY).
fn a_replaced_git_dir_does_not_keep_its_config(j: &Jail) {
    let d = workdir();
    let w = d.path().join("w");
    let marks = tempfile::tempdir().unwrap();
    host_repo(&w.join("r4"));
    chown_tree(&w);
    let mark = marks.path().join("r4");
    let script = format!(
        "mv r4/.git r4/.git-old && {} && cp r4/.git-old/index r4/.git/; true",
        evil_gitdir("r4/.git", "r4/.git-old", &mark)
    );
    run_jail(j, &w, &script);
    let _ = git(&w.join("r4")).arg("status").status().unwrap();
    assert!(!mark.exists(), "the planted fsmonitor ran on the host");
}

/// A submodule's git dir lives in `.git/modules/NAME/`; its `config` and
/// `hooks` are not directly inside a `.git`, and `git status` in the
/// superproject runs `git status` in each submodule (and so its
/// `core.fsmonitor`). Appending to the existing config and planting a
/// hook in a nested name must both fail or be undone.
fn a_submodule_git_dir_is_protected(j: &Jail) {
    let d = workdir();
    let w = d.path().join("w");
    let src = d.path().join("src");
    host_repo(&src);
    host_repo(&w);
    let st = git(&w)
        .args(["-c", "protocol.file.allow=always", "submodule", "-q", "add"])
        .arg(&src)
        .args(["libs/sub"])
        .status()
        .unwrap();
    assert!(st.success());
    assert!(w.join(".git/modules/libs/sub/config").is_file());
    chown_tree(&w);
    let marks = tempfile::tempdir().unwrap();
    let mark = marks.path().join("sub");
    let script = format!(
        "printf '[core]\\n\\tfsmonitor = \"touch {m}; false\"\\n' >> .git/modules/libs/sub/config; \
         mkdir -p .git/modules/libs/sub/hooks; echo 'touch {m}' > .git/modules/libs/sub/hooks/post-checkout; true",
        m = mark.display()
    );
    let rep = run_jail(j, &w, &script);
    let _ = git(&w).arg("status").status().unwrap();
    assert!(!mark.exists(), "the planted fsmonitor ran on the host");
    let config = std::fs::read_to_string(w.join(".git/modules/libs/sub/config")).unwrap();
    assert!(!config.contains("fsmonitor"), "{config}");
    assert!(!w.join(".git/modules/libs/sub/hooks/post-checkout").exists());
    assert!(findings(&rep, &w).is_empty(), "{:?}", findings(&rep, &w));
}

/// A linked worktree outside the workdir (`git worktree add ../wt`) keeps
/// its git dir in the workdir's `.git/worktrees/wt/`, whose `commondir`
/// says where config and hooks come from. Pointing it at a directory the
/// command wrote would run that config from `git status` in `../wt`.
fn a_linked_worktree_git_dir_is_protected(j: &Jail) {
    let d = workdir();
    let w = d.path().join("w");
    host_repo(&w);
    let st = git(&w)
        .args(["worktree", "add", "-q", "../wt"])
        .status()
        .unwrap();
    assert!(st.success());
    assert!(w.join(".git/worktrees/wt/commondir").is_file());
    chown_tree(d.path());
    let marks = tempfile::tempdir().unwrap();
    let mark = marks.path().join("wt");
    let script = format!(
        "{} && echo \"$PWD/evil\" > .git/worktrees/wt/commondir; \
         echo '[core]' > .git/worktrees/wt/config.worktree; true",
        evil_gitdir("evil", ".git", &mark)
    );
    run_jail(j, &w, &script);
    let _ = git(&d.path().join("wt")).arg("status").status().unwrap();
    assert!(!mark.exists(), "the planted fsmonitor ran on the host");
    assert!(!w.join(".git/worktrees/wt/config.worktree").exists());
}

/// `objects/info/alternates` makes git — and airlock's git tools, which
/// run outside the jail — read another repository's objects as this one's:
/// naming a private repository there would let the next host read return
/// its contents. A planted one is removed after the run (with
/// `http-alternates`); an existing one is read-only.
fn git_alternates_are_protected(j: &Jail) {
    let d = workdir();
    let w = d.path().join("w");
    let private = tempfile::tempdir().unwrap();
    host_repo(private.path());
    let out = Command::new("git")
        .current_dir(private.path())
        .args(["hash-object", "-w", "--stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(b"TOP SECRET\n")?;
            c.wait_with_output()
        })
        .unwrap();
    let secret = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_eq!(secret.len(), 40);
    for r in ["r1", "r2"] {
        host_repo(&w.join(r));
    }
    std::fs::write(w.join("r2/.git/objects/info/alternates"), "").unwrap();
    chown_tree(&w);
    let objects = private.path().join(".git/objects");
    let script = format!(
        "echo {o} > r1/.git/objects/info/alternates; echo {o} > r1/.git/objects/info/http-alternates; \
         echo {o} >> r2/.git/objects/info/alternates; true",
        o = objects.display()
    );
    let has_secret = |repo: &Path| {
        git(repo)
            .args(["cat-file", "-e", &secret])
            .status()
            .unwrap()
            .success()
    };
    // The control: on the host, the alternates file is all it takes.
    let ctl = tempfile::tempdir().unwrap();
    host_repo(ctl.path());
    assert!(!has_secret(ctl.path()));
    std::fs::write(
        ctl.path().join(".git/objects/info/alternates"),
        format!("{}\n", objects.display()),
    )
    .unwrap();
    assert!(has_secret(ctl.path()));

    let rep = run_jail(j, &w, &script);
    for r in ["r1", "r2"] {
        assert!(!has_secret(&w.join(r)), "{r} reads the private objects");
    }
    let removed = |p: &str| (p.to_string(), "removed".to_string());
    assert_eq!(
        findings(&rep, &w),
        vec![
            removed("/r1/.git/objects/info/alternates"),
            removed("/r1/.git/objects/info/http-alternates"),
        ]
    );
    let kept = std::fs::read_to_string(w.join("r2/.git/objects/info/alternates")).unwrap();
    assert_eq!(kept, "");
}

/// A bare repository in the workdir (`srv/proj.git`, no `.git` in its
/// path): its hooks run on the host when the user pushes to it, and the
/// git tools read it with its alternates. Planting a hook, appending to its
/// config, planting alternates or moving its folder must all fail or be
/// undone.
fn a_bare_repository_is_protected(j: &Jail) {
    let d = workdir();
    let w = d.path().join("w");
    let bare = w.join("srv/proj.git");
    std::fs::create_dir_all(&bare).unwrap();
    assert!(git(&bare)
        .args(["init", "-q", "--bare", "-b", "main"])
        .status()
        .unwrap()
        .success());
    chown_tree(&w);
    let marks = tempfile::tempdir().unwrap();
    // Where the planted alternates point (it must exist for git to go on).
    let alt = marks.path().join("objects");
    std::fs::create_dir(&alt).unwrap();
    let plant = |dir: &str, mark: &Path| {
        format!(
            "printf '#!/bin/sh\\ntouch {m}\\n' > {dir}/hooks/post-receive; chmod +x {dir}/hooks/post-receive; \
             printf '[core]\\n\\tfsmonitor = \"touch {m}; false\"\\n' >> {dir}/config; \
             echo {alt} > {dir}/objects/info/alternates",
            m = mark.display(),
            alt = alt.display()
        )
    };
    // The push that runs the hook, from a fresh clone on the host (the
    // `-c safe.directory` of `git` does not reach upload-pack and
    // receive-pack, a global config does).
    let global = marks.path().join("gitconfig");
    std::fs::write(&global, "[safe]\n\tdirectory = *\n").unwrap();
    let git = |dir: &Path| {
        let mut c = git(dir);
        c.env("GIT_CONFIG_GLOBAL", &global);
        c
    };
    let push = |bare: &Path| {
        let c = tempfile::tempdir().unwrap();
        let st = git(c.path())
            .args(["clone", "-q"])
            .arg(bare)
            .arg("c")
            .status()
            .unwrap();
        assert!(st.success());
        let st = git(&c.path().join("c"))
            .args(["-c", "user.name=t", "-c", "user.email=t@t"])
            .args(["commit", "-q", "--allow-empty", "-m", "x"])
            .status()
            .unwrap();
        assert!(st.success());
        let _ = git(&c.path().join("c"))
            .args(["push", "-q", "origin", "HEAD:main"])
            .status()
            .unwrap();
    };
    // The control: on the host, the planted hook runs on push.
    let ctl = tempfile::tempdir().unwrap();
    let cb = ctl.path().join("proj.git");
    std::fs::create_dir(&cb).unwrap();
    assert!(git(&cb)
        .args(["init", "-q", "--bare", "-b", "main"])
        .status()
        .unwrap()
        .success());
    let st = Command::new("/bin/sh")
        .args(["-c", &plant(cb.to_str().unwrap(), &ctl.path().join("m"))])
        .status()
        .unwrap();
    assert!(st.success());
    push(&cb);
    assert!(
        ctl.path().join("m").exists(),
        "the control hook did not run"
    );

    let mark = marks.path().join("bare");
    let script = format!(
        "{}; mv srv srv2; mv srv/proj.git srv/other.git; true",
        plant("srv/proj.git", &mark)
    );
    let rep = run_jail(j, &w, &script);
    assert!(bare.join("HEAD").is_file(), "the bare repository was moved");
    assert!(!bare.join("hooks/post-receive").exists());
    let config = std::fs::read_to_string(bare.join("config")).unwrap();
    assert!(!config.contains("fsmonitor"), "{config}");
    push(&bare);
    assert!(!mark.exists(), "the planted hook ran on the host");
    let removed = |p: &str| (p.to_string(), "removed".to_string());
    assert_eq!(
        findings(&rep, &w),
        vec![removed("/srv/proj.git/objects/info/alternates")]
    );
}
