//! git kinds against real repositories made with the git CLI: reads, refs,
//! listings, logs, and the attacks (traversal, symlinks, ref injection,
//! oversized arguments).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use airlock_config::{Approval, ByteSize, Constraint, GitRepos, Tool, ToolKind};
use airlock_tools::{build_tool, CallContext, Limits, ToolError};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

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

struct Fixture {
    _dir: tempfile::TempDir,
    work: std::path::PathBuf,
    bare: std::path::PathBuf,
    first: String,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    git(&work, &["init", "-q", "-b", "main"]);
    std::fs::write(work.join("README.md"), "hello v1\n").unwrap();
    std::fs::create_dir_all(work.join("src/deep")).unwrap();
    std::fs::write(work.join("src/lib.rs"), "pub fn f() {}\n").unwrap();
    std::fs::write(work.join("src/deep/x.txt"), "x\n").unwrap();
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "first commit"]);
    let first = git(&work, &["rev-parse", "HEAD"]);
    git(&work, &["tag", "v1"]);
    git(&work, &["tag", "-a", "v1-annotated", "-m", "release 1"]);
    std::fs::write(work.join("README.md"), "hello v2\n").unwrap();
    std::fs::write(work.join("logo.bin"), [0u8, 1, 2, 3, 0, 255]).unwrap();
    std::fs::write(work.join("big.txt"), "a".repeat(5000)).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", work.join("passwd-link")).unwrap();
    std::os::unix::fs::symlink("../../outside", work.join("src/up-link")).unwrap();
    git(&work, &["add", "-A"]);
    git(
        &work,
        &["commit", "-q", "-m", "second: readme v2, binary, links"],
    );
    git(&work, &["checkout", "-q", "-b", "feature"]);
    std::fs::write(work.join("src/lib.rs"), "pub fn g() {}\n").unwrap();
    git(&work, &["commit", "-q", "-am", "feature change"]);
    git(&work, &["checkout", "-q", "main"]);
    let bare = dir.path().join("bare.git");
    git(
        dir.path(),
        &[
            "clone",
            "-q",
            "--bare",
            work.to_str().unwrap(),
            bare.to_str().unwrap(),
        ],
    );
    Fixture {
        _dir: dir,
        work,
        bare,
        first,
    }
}

fn tool(kind: &str, f: &Fixture, max_file_size: u64, max_entries: u32) -> Tool {
    let mut repos = BTreeMap::new();
    repos.insert("work".to_string(), f.work.clone());
    repos.insert("bare".to_string(), f.bare.clone());
    let g = GitRepos {
        repos,
        max_file_size: ByteSize(max_file_size),
        max_entries,
    };
    let kind = match kind {
        "read" => ToolKind::GitReadFile(g),
        "list" => ToolKind::GitListFiles(g),
        _ => ToolKind::GitLog(g),
    };
    Tool {
        description: None,
        approval: Approval::None,
        kind,
    }
}

fn ctx() -> CallContext {
    CallContext {
        agent: "a".into(),
        session: None,
        cancel: CancellationToken::new(),
    }
}

async fn run(
    t: &Tool,
    c: Option<&Constraint>,
    args: Value,
) -> Result<airlock_tools::ToolOutput, ToolError> {
    let imp = build_tool("t", t).unwrap().unwrap();
    let limits = Limits::effective(t, c);
    let canon = imp.canonicalize(&args, &limits)?;
    imp.call(&ctx(), canon, &limits).await
}

#[tokio::test]
async fn read_file_by_ref_in_working_and_bare_repos() {
    let f = fixture();
    let t = tool("read", &f, 4096, 100);
    for repo in ["work", "bare"] {
        let out = run(&t, None, json!({"repo": repo, "path": "README.md"}))
            .await
            .unwrap();
        assert_eq!(out.text, "hello v2\n");
        let s = out.structured.unwrap();
        assert_eq!(s["size"], 9);
        let old = run(
            &t,
            None,
            json!({"repo": repo, "path": "README.md", "ref": "v1"}),
        )
        .await
        .unwrap();
        assert_eq!(old.text, "hello v1\n");
        let annotated = run(
            &t,
            None,
            json!({"repo": repo, "path": "README.md", "ref": "v1-annotated"}),
        )
        .await
        .unwrap();
        assert_eq!(annotated.text, "hello v1\n");
        let by_id = run(
            &t,
            None,
            json!({"repo": repo, "path": "README.md", "ref": &f.first[..10]}),
        )
        .await
        .unwrap();
        assert_eq!(by_id.text, "hello v1\n");
        let feat = run(
            &t,
            None,
            json!({"repo": repo, "path": "src/lib.rs", "ref": "feature"}),
        )
        .await
        .unwrap();
        assert_eq!(feat.text, "pub fn g() {}\n");
        let full = run(
            &t,
            None,
            json!({"repo": repo, "path": "src/lib.rs", "ref": "refs/heads/main"}),
        )
        .await
        .unwrap();
        assert_eq!(full.text, "pub fn f() {}\n");
    }
}

#[tokio::test]
async fn binary_size_cap_symlinks_and_missing() {
    let f = fixture();
    let t = tool("read", &f, 4096, 100);
    let bin = run(&t, None, json!({"repo": "work", "path": "logo.bin"}))
        .await
        .unwrap();
    assert_eq!(bin.text, "binary file, 6 bytes");
    assert_eq!(bin.structured.unwrap()["binary"], true);

    let big = run(&t, None, json!({"repo": "work", "path": "big.txt"}))
        .await
        .unwrap_err();
    assert_eq!(
        big,
        ToolError::Denied("`big.txt` is 5000 bytes; the limit for this tool is 4096 bytes".into())
    );
    // A constraint narrows the cap below a file that fits the tool's own.
    let c = Constraint {
        max_file_size: Some(ByteSize(4)),
        ..Default::default()
    };
    let e = run(&t, Some(&c), json!({"repo": "work", "path": "README.md"}))
        .await
        .unwrap_err();
    assert!(matches!(e, ToolError::Denied(m) if m.contains("9 bytes")));

    // Symlinks are reported, never followed: not the content of /etc/passwd.
    for (path, target) in [
        ("passwd-link", "/etc/passwd"),
        ("src/up-link", "../../outside"),
    ] {
        let out = run(&t, None, json!({"repo": "work", "path": path}))
            .await
            .unwrap();
        let s = out.structured.unwrap();
        assert_eq!(s["type"], "symlink");
        assert_eq!(s["target"], target);
        assert!(!out.text.contains("root:"));
    }
    // Reading *through* a symlinked directory component is not possible.
    let e = run(&t, None, json!({"repo": "work", "path": "src/up-link/x"}))
        .await
        .unwrap_err();
    assert!(matches!(e, ToolError::Failed(_)), "{e:?}");

    let e = run(&t, None, json!({"repo": "work", "path": "nope.txt"}))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, ToolError::Failed(m) if m.contains("does not exist")),
        "{e:?}"
    );
    let e = run(&t, None, json!({"repo": "work", "path": "src"}))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, ToolError::Failed(m) if m.contains("is a directory")),
        "{e:?}"
    );
}

#[tokio::test]
async fn path_traversal_is_refused_before_lookup() {
    let f = fixture();
    let t = tool("read", &f, 1 << 20, 100);
    for path in [
        "../work/README.md",
        "src/../../../etc/passwd",
        "/etc/passwd",
        "..\\..\\etc\\passwd",
        "src\\lib.rs",
        "README.md\0.txt",
        ".git/config",
        ".git/HEAD",
        "src/.Git/config",
        "./README.md",
        "src//lib.rs",
        "",
    ] {
        let e = run(&t, None, json!({"repo": "work", "path": path}))
            .await
            .unwrap_err();
        assert!(
            matches!(e, ToolError::Denied(_) | ToolError::InvalidArguments(_)),
            "{path:?} gave {e:?}"
        );
    }
    let long = "a/".repeat(5000);
    let e = run(&t, None, json!({"repo": "work", "path": long}))
        .await
        .unwrap_err();
    assert!(matches!(e, ToolError::InvalidArguments(m) if m.contains("bytes long")));
}

#[tokio::test]
async fn ref_injection_is_refused() {
    let f = fixture();
    let t = tool("read", &f, 1 << 20, 100);
    for r in [
        "--upload-pack=touch /tmp/pwned",
        "-c",
        "HEAD@{1}",
        "main@{yesterday}",
        "v1..main",
        "HEAD~1",
        "HEAD^",
        "main:README.md",
        ":/first",
        "main\nfeature",
        "refs/heads/../../config",
    ] {
        let e = run(
            &t,
            None,
            json!({"repo": "work", "path": "README.md", "ref": r}),
        )
        .await
        .unwrap_err();
        assert!(matches!(e, ToolError::Denied(_)), "{r:?} gave {e:?}");
    }
    let e = run(
        &t,
        None,
        json!({"repo": "work", "path": "README.md", "ref": "no-such-branch"}),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&e, ToolError::Failed(m) if m.contains("does not exist")),
        "{e:?}"
    );
}

#[tokio::test]
async fn repos_schema_and_argument_shape() {
    let f = fixture();
    let t = tool("read", &f, 1 << 20, 100);
    let c = Constraint {
        repos: Some(vec!["bare".into()]),
        ..Default::default()
    };
    let e = run(&t, Some(&c), json!({"repo": "work", "path": "README.md"}))
        .await
        .unwrap_err();
    assert_eq!(
        e,
        ToolError::InvalidArguments("unknown repository `work`; valid repositories: bare".into())
    );
    let imp = build_tool("t", &t).unwrap().unwrap();
    let schema = imp.input_schema(&Limits::effective(&t, Some(&c)));
    assert_eq!(schema["properties"]["repo"]["enum"], json!(["bare"]));
    assert_eq!(schema["additionalProperties"], false);
    assert_eq!(schema["required"], json!(["repo", "path"]));

    for bad in [
        json!({"repo": "work", "path": "README.md", "extra": 1}),
        json!({"repo": "work", "path": 5}),
        json!({"repo": ["work"], "path": "README.md"}),
        json!({"path": "README.md"}),
        json!("README.md"),
    ] {
        let e = run(&t, None, bad.clone()).await.unwrap_err();
        assert!(
            matches!(e, ToolError::InvalidArguments(_)),
            "{bad} gave {e:?}"
        );
    }
    // call re-validates: skipping canonicalize gains nothing.
    let limits = Limits::effective(&t, Some(&c));
    let e = imp
        .call(&ctx(), json!({"repo": "work", "path": "../x"}), &limits)
        .await
        .unwrap_err();
    assert!(matches!(e, ToolError::InvalidArguments(_)));
    // Canonical form: default ref, trailing slash dropped.
    let canon = imp
        .canonicalize(&json!({"repo": "bare", "path": "src/lib.rs"}), &limits)
        .unwrap();
    assert_eq!(
        canon,
        json!({"repo": "bare", "path": "src/lib.rs", "ref": "HEAD"})
    );
}

#[tokio::test]
async fn list_files_prefix_recursion_and_truncation() {
    let f = fixture();
    let t = tool("list", &f, 1 << 20, 100);
    let out = run(&t, None, json!({"repo": "bare"})).await.unwrap();
    let s = out.structured.unwrap();
    let paths: Vec<&str> = s["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        ["README.md", "big.txt", "logo.bin", "passwd-link", "src"]
    );
    assert_eq!(s["truncated"], false);
    assert_eq!(s["entries"][3]["type"], "symlink");
    assert_eq!(s["entries"][4]["type"], "dir");

    let out = run(
        &t,
        None,
        json!({"repo": "work", "path": "src/", "recursive": true}),
    )
    .await
    .unwrap();
    let s = out.structured.unwrap();
    let paths: Vec<&str> = s["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        ["src/deep", "src/lib.rs", "src/up-link", "src/deep/x.txt"]
    );

    let small = tool("list", &f, 1 << 20, 2);
    let out = run(&small, None, json!({"repo": "work", "recursive": true}))
        .await
        .unwrap();
    let s = out.structured.unwrap();
    assert_eq!(s["entries"].as_array().unwrap().len(), 2);
    assert_eq!(s["truncated"], true);
    assert!(out.text.contains("truncated"));

    let e = run(&t, None, json!({"repo": "work", "path": "README.md"}))
        .await
        .unwrap_err();
    assert!(matches!(&e, ToolError::Failed(m) if m.contains("not a directory")));
    let e = run(&t, None, json!({"repo": "work", "path": "../"}))
        .await
        .unwrap_err();
    assert!(matches!(e, ToolError::Denied(_)));
    let e = run(&t, None, json!({"repo": "work", "recursive": "yes"}))
        .await
        .unwrap_err();
    assert!(matches!(e, ToolError::InvalidArguments(_)));
}

#[tokio::test]
async fn log_with_path_filter_and_limits() {
    let f = fixture();
    let t = tool("log", &f, 1 << 20, 100);
    let out = run(&t, None, json!({"repo": "work"})).await.unwrap();
    let s = out.structured.unwrap();
    let summaries: Vec<&str> = s["commits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["summary"].as_str().unwrap())
        .collect();
    assert_eq!(
        summaries,
        ["second: readme v2, binary, links", "first commit"]
    );
    assert_eq!(s["commits"][1]["commit"], f.first.as_str());
    assert_eq!(s["commits"][0]["author"], "Ada");
    assert_eq!(s["commits"][0]["email"], "ada@example.com");
    assert!(s["commits"][0]["time"].as_str().unwrap().ends_with('Z'));

    let out = run(
        &t,
        None,
        json!({"repo": "bare", "ref": "feature", "path": "src/lib.rs"}),
    )
    .await
    .unwrap();
    let s = out.structured.unwrap();
    let summaries: Vec<&str> = s["commits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["summary"].as_str().unwrap())
        .collect();
    assert_eq!(summaries, ["feature change", "first commit"]);

    let out = run(
        &t,
        None,
        json!({"repo": "bare", "ref": "feature", "max_entries": 1}),
    )
    .await
    .unwrap();
    let s = out.structured.unwrap();
    assert_eq!(s["commits"].as_array().unwrap().len(), 1);
    assert_eq!(s["truncated"], true);

    // The agent's max_entries cannot exceed the tool's limit.
    let c = Constraint {
        max_entries: Some(2),
        ..Default::default()
    };
    let e = run(&t, Some(&c), json!({"repo": "work", "max_entries": 3}))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, ToolError::InvalidArguments(m) if m.contains("from 1 to 2")),
        "{e:?}"
    );
    let e = run(&t, None, json!({"repo": "work", "max_entries": -1}))
        .await
        .unwrap_err();
    assert!(matches!(e, ToolError::InvalidArguments(_)));
}

#[tokio::test]
async fn a_missing_repository_fails_without_leaking_its_path() {
    let f = fixture();
    let mut t = tool("read", &f, 1 << 20, 100);
    if let ToolKind::GitReadFile(g) = &mut t.kind {
        g.repos
            .insert("gone".into(), "/nonexistent/secret-location.git".into());
    }
    let e = run(&t, None, json!({"repo": "gone", "path": "README.md"}))
        .await
        .unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("not available"), "{msg}");
    assert!(!msg.contains("secret-location"), "{msg}");
}

#[tokio::test]
async fn a_reused_tool_sees_new_commits_and_packs() {
    let f = fixture();
    let t = tool("read", &f, 1 << 20, 100);
    let imp = build_tool("t", &t).unwrap().unwrap();
    let limits = Limits::effective(&t, None);
    let read = |path: &'static str| {
        let canon = imp
            .canonicalize(&json!({"repo": "work", "path": path}), &limits)
            .unwrap();
        let imp = &imp;
        let limits = &limits;
        async move { imp.call(&ctx(), canon, limits).await }
    };
    assert_eq!(read("README.md").await.unwrap().text, "hello v2\n");
    std::fs::write(f.work.join("README.md"), "hello v3\n").unwrap();
    std::fs::write(f.work.join("new.txt"), "new\n").unwrap();
    git(&f.work, &["add", "-A"]);
    git(&f.work, &["commit", "-q", "-m", "third"]);
    git(&f.work, &["gc", "-q"]);
    assert_eq!(read("README.md").await.unwrap().text, "hello v3\n");
    assert_eq!(read("new.txt").await.unwrap().text, "new\n");
}

/// The threads a tool keeps are confined to the git directory they first
/// read; when the repository is replaced (moved aside, cloned anew at the
/// same path) the next call is served from the new one, and concurrent
/// calls each get a thread.
#[tokio::test]
async fn a_replaced_repository_is_read_afresh_and_calls_run_concurrently() {
    let f = fixture();
    let t = tool("read", &f, 1 << 20, 100);
    let imp = build_tool("t", &t).unwrap().unwrap();
    let limits = Limits::effective(&t, None);
    let read = |repo: &'static str| {
        let canon = imp
            .canonicalize(&json!({"repo": repo, "path": "README.md"}), &limits)
            .unwrap();
        let imp = &imp;
        let limits = &limits;
        async move { imp.call(&ctx(), canon, limits).await }
    };
    let all = futures_util::future::join_all((0..8).map(|_| read("work"))).await;
    for r in all {
        assert_eq!(r.unwrap().text, "hello v2\n");
    }
    let old = f.work.with_file_name("work-old");
    std::fs::rename(&f.work, &old).unwrap();
    std::fs::create_dir(&f.work).unwrap();
    git(&f.work, &["init", "-q", "-b", "main"]);
    std::fs::write(f.work.join("README.md"), "recloned\n").unwrap();
    git(&f.work, &["add", "-A"]);
    git(&f.work, &["commit", "-q", "-m", "anew"]);
    for _ in 0..3 {
        assert_eq!(read("work").await.unwrap().text, "recloned\n");
    }
}
