//! The agent toolset of `airlock mcp` cannot read the files the config's
//! secrets come from: a declared tool's `${file:}` DSN and auth header, an
//! agent key file, a credential file, and the interception CA's key, all
//! files of the user the agent's jail runs as, are masked in the session
//! jail the `bash` tool runs in.

#[allow(unused_macros)]
mod support;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use support::{chown_jail, jail_dir, mcp_command, Mcp};

const SECRET: &str = "mcp-s3cr3t-value";

#[test]
fn the_bash_tool_cannot_read_secret_files_or_the_ca_key() {
    // Outside /tmp: the jail's /tmp is its own.
    let state = tempfile::Builder::new()
        .prefix("airlock-mcp-secrets")
        .tempdir_in("/var/tmp")
        .unwrap();
    jail_dir(state.path());
    // Owned by the user the session jail runs as (the workdir's owner when
    // the server is root), so only a mask keeps it out.
    let file = |name: &str, value: &str| {
        let p = state.path().join(name);
        std::fs::write(&p, format!("{value}\n")).unwrap();
        chown_jail(&p);
        p
    };
    let dsn_pass = file("pg-pass", &format!("{SECRET}-dsn"));
    let api = file("api-token", &format!("{SECRET}-api"));
    let cred = file("cred-token", &format!("{SECRET}-cred"));
    let agent_key = file("agent-key", "key-for-agent-a");
    let wd = state.path().join("work");
    jail_dir(&wd);
    // A secret inside the workdir, the one writable path.
    let in_wd = wd.join(".dsn");
    std::fs::write(&in_wd, format!("{SECRET}-workdir\n")).unwrap();
    chown_jail(&in_wd);

    let cfg = state.path().join("airlock.yaml");
    let yaml = r#"version: 1
sandbox:
  network:
    allow: ["example.com"]
credentials:
  - host: example.com
    header: Authorization
    value: "Bearer ${file:CRED}"
tools:
  bash: { kind: agent.bash }
  db:
    kind: postgres.query
    dsn: "postgres://u:${file:DSN}@db/x?x=${file:IN_WD}"
    sql: SELECT 1
  api:
    kind: http.request
    base_url: https://api.example.com
    routes: [ { method: GET, path: /x } ]
    auth: { header: Authorization, value: "Bearer ${file:API}" }
agents:
  a:
    keys: ["${file:KEY}"]
    allowed_tools: [bash, db, api]
"#
    .replace("CRED", &cred.display().to_string())
    .replace("DSN", &dsn_pass.display().to_string())
    .replace("IN_WD", &in_wd.display().to_string())
    .replace("API", &api.display().to_string())
    .replace("KEY", &agent_key.display().to_string());
    std::fs::write(&cfg, yaml).unwrap();
    let ca = state.path().join("airlock/ca");
    let mut cmd = mcp_command(&cfg, &wd);
    // The CA's default place (created now: a credential is injected).
    cmd.env("XDG_STATE_HOME", state.path());
    let mcp = Mcp::spawn(cmd);
    let out = mcp.bash(
        "key-for-agent-a",
        &format!(
            "cat {s}/pg-pass {s}/api-token {s}/cred-token {s}/agent-key {w}/.dsn {ca}/ca.key; \
             echo x > {w}/.dsn; echo probe > {w}/probe && echo workdir-writable",
            s = state.path().display(),
            w = wd.display(),
            ca = ca.display(),
        ),
    );
    drop(mcp);
    // The controls: the call ran in a jail with a writable workdir, and
    // the CA exists.
    assert!(out.contains("workdir-writable"), "{out}");
    assert!(ca.join("ca.key").exists());
    assert!(!out.contains(SECRET), "a secret file: {out}");
    assert!(
        !out.contains("key-for-agent-a"),
        "the agent key file: {out}"
    );
    assert!(!out.contains("PRIVATE KEY"), "the CA key: {out}");
    assert_eq!(
        std::fs::read_to_string(&in_wd).unwrap(),
        format!("{SECRET}-workdir\n")
    );
}

/// A reload that names a new secret file masks it in the session jails:
/// the live session (built without the mask) is stopped and the next call
/// gets a new jail.
#[test]
fn a_secret_file_named_by_a_reload_is_hidden_from_then_on() {
    let state = tempfile::Builder::new()
        .prefix("airlock-mcp-reload")
        .tempdir_in("/var/tmp")
        .unwrap();
    jail_dir(state.path());
    let token = state.path().join("later-token");
    std::fs::write(&token, format!("{SECRET}-later\n")).unwrap();
    chown_jail(&token);
    let wd = state.path().join("work");
    jail_dir(&wd);
    let cfg = state.path().join("airlock.yaml");
    let before = r#"version: 1
tools:
  bash: { kind: agent.bash }
agents:
  a:
    keys: ["${env:MCP_SECRETS_TEST_KEY}"]
    allowed_tools: [bash]
"#;
    std::fs::write(&cfg, before).unwrap();
    let mut cmd = mcp_command(&cfg, &wd);
    cmd.env("MCP_SECRETS_TEST_KEY", "key-for-agent-a")
        .env("XDG_STATE_HOME", state.path())
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped());
    let mut mcp = Mcp::spawn(cmd);
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stderr = mcp.child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(stderr).lines() {
            let Ok(l) = l else { break };
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let cat = format!("cat {}; echo done", token.display());

    // The control: not named by the config, the file is the user's to read.
    let first = mcp.bash("key-for-agent-a", &cat);
    assert!(first.contains(SECRET), "{first}");

    let after = r#"version: 1
tools:
  bash: { kind: agent.bash }
  api:
    kind: http.request
    base_url: https://api.example.com
    routes: [ { method: GET, path: /x } ]
    auth: { header: Authorization, value: "Bearer ${file:TOKEN}" }
agents:
  a:
    keys: ["${env:MCP_SECRETS_TEST_KEY}"]
    allowed_tools: [bash, api]
"#
    .replace("TOKEN", &token.display().to_string());
    std::fs::write(&cfg, &after).unwrap();
    unsafe { libc::kill(mcp.child.id() as i32, libc::SIGHUP) };
    // Wait for the reload's outcome (a hang guard, not a timing check).
    let outcome = loop {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(l) if l.contains("config reloaded") || l.contains("reload refused") => break l,
            Ok(_) => continue,
            Err(e) => panic!("no reload outcome: {e}"),
        }
    };
    assert!(outcome.contains("config reloaded"), "{outcome}\n{after}");

    let second = mcp.bash("key-for-agent-a", &cat);
    drop(mcp);
    assert!(second.contains("done"), "{second}");
    assert!(!second.contains(SECRET), "after the reload: {second}");
}
