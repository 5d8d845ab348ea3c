//! Red-team: the git tools run outside the jail with the server's rights,
//! on repositories an agent can write through its jailed tools. Each test
//! plants something inside the agent's repository that makes git read
//! another repository — a private one the agent may not see — and asks the
//! tools for that repository's secret commit; every call must be refused
//! without returning it. Without the guard each of these returned the
//! secret file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use airlock_config::{Approval, ByteSize, GitRepos, Tool, ToolKind};
use airlock_tools::{build_tool, CallContext, Limits, ToolError, ToolImpl};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

const SECRET: &str = "TOP SECRET 4242";

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "Ada")
        .env("GIT_AUTHOR_EMAIL", "ada@example.com")
        .env("GIT_COMMITTER_NAME", "Ada")
        .env("GIT_COMMITTER_EMAIL", "ada@example.com")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A working repository at `dir` with one commit of `files`; its id.
fn repo_with(dir: &Path, files: &[(&str, &str)]) -> String {
    std::fs::create_dir_all(dir).unwrap();
    git(dir, &["init", "-q", "-b", "main"]);
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", "c"]);
    git(dir, &["rev-parse", "HEAD"])
}

struct Setup {
    dir: tempfile::TempDir,
    /// The private repository (loose objects), outside the agent's.
    private: PathBuf,
    /// Its commit holding `secret.txt`.
    secret: String,
    /// The agent's working repository.
    work: PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let private = dir.path().join("private");
    let secret = repo_with(&private, &[("secret.txt", SECRET)]);
    let work = dir.path().join("work");
    repo_with(&work, &[("README.md", "hello\n")]);
    Setup {
        dir,
        private,
        secret,
        work,
    }
}

/// The three git kinds over `repos`, each with its effective limits.
type Tools = Vec<(Box<dyn ToolImpl>, Limits)>;

fn tools(repos: &[(&str, &Path)]) -> Tools {
    let g = GitRepos {
        repos: repos
            .iter()
            .map(|(n, p)| (n.to_string(), p.to_path_buf()))
            .collect::<BTreeMap<_, _>>(),
        max_file_size: ByteSize(1 << 20),
        max_entries: 100,
    };
    [
        ToolKind::GitReadFile(g.clone()),
        ToolKind::GitListFiles(g.clone()),
        ToolKind::GitLog(g),
    ]
    .into_iter()
    .map(|kind| {
        let tool = Tool {
            description: None,
            approval: Approval::None,
            kind,
        };
        (
            build_tool("t", &tool).unwrap().unwrap(),
            Limits::effective(&tool, None),
        )
    })
    .collect()
}

async fn call(
    (t, l): &(Box<dyn ToolImpl>, Limits),
    args: Value,
) -> Result<airlock_tools::ToolOutput, ToolError> {
    let canon = t.canonicalize(&args, l)?;
    let ctx = CallContext {
        agent: "a".into(),
        session: None,
        cancel: CancellationToken::new(),
    };
    t.call(&ctx, canon, l).await
}

/// Reads, lists and logs `reference` in `repo` through all three kinds;
/// each must fail, name `why` and show neither the secret nor where the
/// private repository is.
async fn all_refused(ts: &Tools, s: &Setup, repo: &str, reference: &str, why: &str) {
    let args = [
        json!({"repo": repo, "path": "secret.txt", "ref": reference}),
        json!({"repo": repo, "ref": reference}),
        json!({"repo": repo, "ref": reference}),
    ];
    for (t, a) in ts.iter().zip(args) {
        match call(t, a.clone()).await {
            Ok(out) => panic!("{a}: returned {:?} {:?}", out.text, out.structured),
            Err(e) => {
                let msg = e.to_string();
                assert!(!msg.contains(SECRET), "{msg}");
                assert!(
                    !msg.contains(s.private.to_str().unwrap()),
                    "leaks the path: {msg}"
                );
                assert!(msg.contains(why), "{a}: {msg}");
            }
        }
    }
}

async fn reads_readme(ts: &Tools, repo: &str) {
    let out = call(&ts[0], json!({"repo": repo, "path": "README.md"}))
        .await
        .unwrap();
    assert_eq!(out.text, "hello\n");
}

/// `objects/info/alternates` naming the private object store, in a working
/// and a bare repository; and planted after a first call, when the tool
/// holds the repository open (gix reloads alternates when an object is
/// missing). A ref naming the secret commit is no way around it.
#[tokio::test]
async fn alternates_are_refused() {
    let s = setup();
    let bare = s.dir.path().join("bare.git");
    git(
        s.dir.path(),
        &[
            "clone",
            "-q",
            "--bare",
            s.work.to_str().unwrap(),
            "bare.git",
        ],
    );
    let ts = tools(&[("work", &s.work), ("bare", &bare)]);
    reads_readme(&ts, "work").await;
    reads_readme(&ts, "bare").await;
    let objects = s.private.join(".git/objects");
    for (repo, git_dir) in [("work", s.work.join(".git")), ("bare", bare.clone())] {
        std::fs::write(
            git_dir.join("objects/info/alternates"),
            format!("{}\n", objects.display()),
        )
        .unwrap();
        std::fs::write(git_dir.join("refs/heads/stolen"), format!("{}\n", s.secret)).unwrap();
        all_refused(&ts, &s, repo, &s.secret, "objects/info/alternates").await;
        all_refused(&ts, &s, repo, &s.secret[..8], "objects/info/alternates").await;
        all_refused(&ts, &s, repo, "stolen", "objects/info/alternates").await;
        // Emptied again, the repository is readable.
        std::fs::write(git_dir.join("objects/info/alternates"), "").unwrap();
        reads_readme(&ts, repo).await;
        std::fs::write(
            git_dir.join("objects/info/http-alternates"),
            format!("file://{}\n", objects.display()),
        )
        .unwrap();
        all_refused(&ts, &s, repo, &s.secret, "objects/info/http-alternates").await;
    }
}

/// `commondir` makes git take objects, refs and config from another git
/// directory.
#[tokio::test]
async fn commondir_is_refused() {
    let s = setup();
    let ts = tools(&[("work", &s.work)]);
    reads_readme(&ts, "work").await;
    std::fs::write(
        s.work.join(".git/commondir"),
        format!("{}\n", s.private.join(".git").display()),
    )
    .unwrap();
    // Opened afresh with it in place, and by a tool that has the
    // repository open already.
    let fresh = tools(&[("work", &s.work)]);
    all_refused(&fresh, &s, "work", &s.secret, "commondir").await;
    all_refused(&ts, &s, "work", &s.secret, "commondir").await;
    all_refused(&ts, &s, "work", "main", "commondir").await;
}

/// A `.git` that is a `gitdir:` file or a symbolic link, and a configured
/// bare path that is a symbolic link: each makes the repository another.
#[tokio::test]
async fn a_git_dir_elsewhere_is_refused() {
    let s = setup();
    let gitfile = s.dir.path().join("gitfile");
    std::fs::create_dir(&gitfile).unwrap();
    std::fs::write(
        gitfile.join(".git"),
        format!("gitdir: {}\n", s.private.join(".git").display()),
    )
    .unwrap();
    let linked = s.dir.path().join("linked");
    std::fs::create_dir(&linked).unwrap();
    std::os::unix::fs::symlink(s.private.join(".git"), linked.join(".git")).unwrap();
    let bare = s.dir.path().join("bare.git");
    std::os::unix::fs::symlink(s.private.join(".git"), &bare).unwrap();
    let ts = tools(&[("gitfile", &gitfile), ("linked", &linked), ("bare", &bare)]);
    all_refused(&ts, &s, "gitfile", "HEAD", "`.git` is a file").await;
    all_refused(&ts, &s, "linked", "HEAD", "`.git` is a symbolic link").await;
    all_refused(
        &ts,
        &s,
        "bare",
        "HEAD",
        "the git directory is a symbolic link",
    )
    .await;
}

/// Another repository's pack linked into `objects/pack`, refused by the
/// check; and its loose objects linked one by one into real `objects/xx/`
/// directories, which the check does not list: reading through those
/// links is what confining the call's thread to the git directory stops.
#[tokio::test]
async fn objects_linked_from_elsewhere_are_not_read() {
    let s = setup();
    let ts = tools(&[("work", &s.work)]);
    reads_readme(&ts, "work").await;
    // Loose: the secret commit, its tree and its blob.
    let ids = [
        s.secret.clone(),
        git(&s.private, &["rev-parse", "HEAD^{tree}"]),
        git(&s.private, &["rev-parse", "HEAD:secret.txt"]),
    ];
    for id in &ids {
        let (fan, rest) = id.split_at(2);
        let from = s.private.join(".git/objects").join(fan).join(rest);
        assert!(from.is_file(), "{id} is not loose");
        let d = s.work.join(".git/objects").join(fan);
        std::fs::create_dir_all(&d).unwrap();
        std::os::unix::fs::symlink(&from, d.join(rest)).unwrap();
    }
    for (t, a) in ts.iter().zip([
        json!({"repo": "work", "path": "secret.txt", "ref": s.secret}),
        json!({"repo": "work", "ref": s.secret}),
        json!({"repo": "work", "ref": s.secret}),
    ]) {
        match call(t, a.clone()).await {
            Ok(out) => panic!("{a}: returned {:?} {:?}", out.text, out.structured),
            Err(e) => assert!(!e.to_string().contains(SECRET), "{e}"),
        }
    }
    reads_readme(&ts, "work").await;

    // Packed: a bare clone of the private repository (not hard-linked,
    // `--no-local`) has one pack.
    git(
        s.dir.path(),
        &[
            "clone",
            "-q",
            "--bare",
            "--no-local",
            s.private.to_str().unwrap(),
            "packed.git",
        ],
    );
    let pack_dir = s.dir.path().join("packed.git/objects/pack");
    for e in std::fs::read_dir(&pack_dir).unwrap() {
        let e = e.unwrap();
        std::os::unix::fs::symlink(
            e.path(),
            s.work.join(".git/objects/pack").join(e.file_name()),
        )
        .unwrap();
    }
    all_refused(&ts, &s, "work", &s.secret, "is a symbolic link").await;
}

/// `include.path` and `includeIf` in the repository's config name a host
/// file; the tools never read it (here it is not even valid config, so
/// reading it would fail the open) and the repository stays readable.
#[tokio::test]
async fn config_includes_are_not_read() {
    let s = setup();
    let host = s.dir.path().join("host.cfg");
    std::fs::write(&host, "[[[ not config\n").unwrap();
    let mut cfg = std::fs::read_to_string(s.work.join(".git/config")).unwrap();
    cfg.push_str(&format!(
        "[include]\n\tpath = {h}\n[includeIf \"gitdir:/\"]\n\tpath = {h}\n",
        h = host.display()
    ));
    std::fs::write(s.work.join(".git/config"), cfg).unwrap();
    let ts = tools(&[("work", &s.work)]);
    reads_readme(&ts, "work").await;
    let log = call(&ts[2], json!({"repo": "work"})).await.unwrap();
    assert_eq!(
        log.structured.unwrap()["commits"].as_array().unwrap().len(),
        1
    );
}

/// A folder above the configured repository replaced by a symbolic link:
/// the agent moves its own `agent/` aside and links `agent` to a folder
/// holding a private repository by the same name, so the configured
/// `agent/work` names the private one. Refused cold, and after a first
/// call has warmed a worker for the real repository; a `..` in the
/// configured path that is only text is fine.
#[tokio::test]
async fn a_folder_above_the_repository_turned_into_a_link_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let hidden = dir.path().join("hidden");
    let private = hidden.join("work");
    let secret = repo_with(&private, &[("secret.txt", SECRET), ("README.md", "x\n")]);
    let agent = dir.path().join("agent");
    let work = agent.join("work");
    repo_with(&work, &[("README.md", "hello\n")]);
    let dotted = agent.join("sub/../work");
    let s = Setup {
        dir,
        private,
        secret,
        work,
    };
    std::fs::create_dir(agent.join("sub")).unwrap();
    let ts = tools(&[("work", &s.work), ("dotted", &dotted)]);
    reads_readme(&ts, "work").await;
    reads_readme(&ts, "dotted").await;

    std::fs::rename(&agent, s.dir.path().join("agent.old")).unwrap();
    std::os::unix::fs::symlink(&hidden, &agent).unwrap();
    let why = "a folder on the repository's path is a symbolic link";
    all_refused(&ts, &s, "work", &s.secret, why).await;
    all_refused(&ts, &s, "work", "HEAD", why).await;
    // A fresh server (no warm worker) refuses as well.
    let cold = tools(&[("work", &s.work)]);
    all_refused(&cold, &s, "work", &s.secret, why).await;
}
