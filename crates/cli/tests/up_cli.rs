//! `airlock up` with no routes: gateway, connector and the built-in MCP
//! server on one machine; an agent call goes through all three layers, runs
//! in the jail, and lands in the signed audit log.

#[macro_use]
mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::{chown_jail, Jail};

const AIRLOCK: &str = env!("CARGO_BIN_EXE_airlock");

both_modes!(the_agent_jails_cannot_read_up_s_own_secrets);

fn post(port: u16, key: &str, body: &str) -> String {
    support::post_tools_call(&format!("127.0.0.1:{port}"), "/t/local/tools", key, body)
}

/// Starts `airlock up` in `dir`; the process, its port and the agent key.
fn start_up(dir: &std::path::Path) -> (std::process::Child, u16, String) {
    start_up_as(None, dir)
}

/// The same, started by `caller` (see support::Jail) when given.
fn start_up_as(caller: Option<&Jail>, dir: &std::path::Path) -> (std::process::Child, u16, String) {
    // A port found free can be taken before `up` binds it (another test's
    // outgoing connection): then `up` exits saying so, and a new port is
    // tried. Any other early exit fails the test with `up`'s stderr.
    for _ in 0..3 {
        if let Some(started) = try_start_up(caller, dir) {
            return started;
        }
    }
    panic!("airlock up found its port taken three times");
}

fn try_start_up(
    caller: Option<&Jail>,
    dir: &std::path::Path,
) -> Option<(std::process::Child, u16, String)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut up = caller
        .map(Jail::cmd)
        .unwrap_or_else(|| Command::new(AIRLOCK))
        .args(["up", "--dir"])
        .arg(dir)
        .args(["--port", &port.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = up.stderr.take().unwrap();
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut { stderr }, &mut s);
        s
    });
    let mut lines = BufReader::new(up.stdout.take().unwrap()).lines();
    let t = Instant::now();
    let mut key = String::new();
    for l in lines.by_ref() {
        let l = l.unwrap();
        if let Some(k) = l.strip_prefix("agent key: ") {
            key = k.to_string();
        }
        if l.starts_with("airlock is up:") {
            // The count is "N of M" against the configured links (2), never
            // a bare count that reads as the whole.
            assert!(
                l.ends_with(" of 2 links up.") && !l.contains(" 0 of "),
                "{l}"
            );
        }
        if l.contains("claude mcp add --transport http airlock-tools") {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "airlock up did not come up"
        );
    }
    if !key.starts_with("alk_") {
        let _ = up.wait();
        let err = err.join().unwrap();
        if err.contains("in use") {
            return None;
        }
        panic!("no agent key printed; airlock up said: {err}");
    }
    std::thread::spawn(move || for _ in lines {});
    // The banner can come before the connector's link is up (the gateway
    // then answers 503): wait for the link, with a request the server
    // refuses anyway (its headers do not match the body).
    let probe = r#"{"jsonrpc":"2.0","id":0,"method":"ping"}"#;
    while post(port, &key, probe).starts_with("HTTP/1.1 503") {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the tunnel link did not come up"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Some((up, port, key))
}

/// Red-team: the built-in server's MCP config (DIR/airlock.yaml) names
/// only the audit key, but DIR also holds the tunnel token, the agent key,
/// the PKI's private keys and the gateway's state. With an unprivileged
/// caller they belong to the uid the agent's commands run as, so the jail
/// must mask them: the agent could otherwise impersonate the connector (or
/// sign certificates with the CA key). `up` passes them to its MCP server
/// with `--deny-read`.
fn the_agent_jails_cannot_read_up_s_own_secrets(j: &Jail) {
    // Not under /tmp, which is the jail's own.
    let dir = tempfile::Builder::new()
        .prefix("airlock-up-secrets")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    chown_jail(dir.path());
    let (mut up, port, key) = start_up_as(Some(j), dir.path());
    let d = dir.path().display();
    let command = format!(
        "for f in {d}/tunnel-token {d}/agent-key {d}/gateway.db {d}/pki/*; do echo \"== $f\"; head -c 300 $f 2>&1; echo; done; echo end"
    );
    let call = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": "bash", "arguments": {"command": command},
        "_meta": {"io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"},
                  "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                  "io.modelcontextprotocol/clientCapabilities": {}}}})
    .to_string();
    let r = post(port, &key, &call);
    let _ = up.kill();
    let _ = up.wait();
    assert!(r.starts_with("HTTP/1.1 200") && r.contains("end"), "{r}");
    let token = std::fs::read_to_string(dir.path().join("tunnel-token")).unwrap();
    assert!(!r.contains(token.trim()), "the tunnel token was read: {r}");
    assert!(!r.contains(&key), "the agent key file was read: {r}");
    assert!(!r.contains("PRIVATE KEY"), "a private key was read: {r}");
    assert!(
        !r.contains("SQLite format"),
        "the gateway state was read: {r}"
    );
}

#[test]
fn up_serves_the_jailed_toolset_through_the_tunnel_and_audits_it() {
    let dir = tempfile::tempdir().unwrap();
    let (mut up, port, key) = start_up(dir.path());

    let call = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"bash","arguments":{"command":"id -u; echo made > proof.txt; cat ~/.ssh/id_rsa 2>/dev/null || echo no-ssh"},"_meta":{"io.modelcontextprotocol/clientInfo":{"name":"test","version":"1"},"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}"#;
    let r = post(port, &key, call);
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert!(r.contains(r#"1000\n"#) && r.contains("no-ssh"), "{r}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("workspace/proof.txt")).unwrap(),
        "made\n"
    );
    // Layer 1: a wrong key never reaches the server.
    let r = post(port, "alk_wrong", call);
    assert!(r.starts_with("HTTP/1.1 401"), "{r}");

    unsafe { libc::kill(up.id() as i32, libc::SIGTERM) };
    let t = Instant::now();
    while up.try_wait().unwrap().is_none() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "airlock up did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let audit = dir.path().join("audit");
    let pubkey = dir.path().join("audit.key.pub");
    let o = Command::new(AIRLOCK)
        .args(["audit", "query"])
        .arg(&audit)
        .args(["--kind", "tool_call", "--format", "jsonl"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("\"agent\":\"local-agent\"") && text.contains("\"tool\":\"bash\""),
        "{text}"
    );
    let o = Command::new(AIRLOCK)
        .args(["audit", "verify"])
        .arg(&audit)
        .arg("--key")
        .arg(&pubkey)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
}

/// Issue #7: progress of a jailed `bash` call crosses gateway, tunnel and
/// connector as it is sent. The command prints a line every 300 ms; the
/// client sees a progress event per line at that pace, long before the
/// result, not a burst at the end.
#[test]
fn progress_notifications_cross_the_tunnel_as_they_are_sent() {
    let dir = tempfile::tempdir().unwrap();
    let (mut up, port, key) = start_up(dir.path());
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"bash","arguments":{"command":"for i in 1 2 3; do echo tick-$i; sleep 0.3; done"},"_meta":{"progressToken":"p1","io.modelcontextprotocol/clientInfo":{"name":"test","version":"1"},"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}"#;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "POST /t/local/tools HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\n\
Accept: application/json, text/event-stream\r\nMCP-Protocol-Version: 2026-07-28\r\nMcp-Method: tools/call\r\nMcp-Name: bash\r\n\
Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let sent = Instant::now();
    // Each JSON-RPC message of the SSE body, stamped when its bytes came.
    let mut raw = String::new();
    let mut seen: Vec<(Duration, String)> = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = s.read(&mut buf).unwrap_or(0);
        if n == 0 {
            break;
        }
        raw.push_str(&String::from_utf8_lossy(&buf[..n]));
        while let Some(i) = raw.find("\n") {
            let line: String = raw.drain(..=i).collect();
            if let Some(d) = line.trim().strip_prefix("data:") {
                seen.push((sent.elapsed(), d.trim().to_string()));
            }
        }
        if seen.iter().any(|(_, d)| d.contains("\"result\"")) {
            break;
        }
    }
    let result_at = seen
        .iter()
        .find(|(_, d)| d.contains("\"result\""))
        .map(|(t, _)| *t)
        .unwrap_or_else(|| panic!("no result: {seen:?}"));
    let result = &seen
        .iter()
        .find(|(_, d)| d.contains("\"result\""))
        .unwrap()
        .1;
    assert!(result.contains("tick-1\\ntick-2\\ntick-3"), "{result}");
    let ticks: Vec<Duration> = seen
        .iter()
        .filter(|(_, d)| d.contains("notifications/progress") && d.contains("last line: tick-"))
        .map(|(t, _)| *t)
        .collect();
    assert!(ticks.len() >= 2, "{seen:?}");
    assert!(
        seen.iter()
            .filter(|(_, d)| d.contains("notifications/progress"))
            .all(|(_, d)| d.contains("\"progressToken\":\"p1\"")),
        "{seen:?}"
    );
    // The final report (progress == total) is on the wire before the result.
    let fin = seen
        .iter()
        .position(|(_, d)| d.contains("exit status 0, 21 bytes of output"))
        .unwrap_or_else(|| panic!("no final report: {seen:?}"));
    let res = seen
        .iter()
        .position(|(_, d)| d.contains("\"result\""))
        .unwrap();
    assert!(fin < res, "{seen:?}");
    // Spread like the command's output, and the first well before the end.
    let spread = *ticks.last().unwrap() - ticks[0];
    assert!(
        spread >= Duration::from_millis(350),
        "bunched ({spread:?}): {seen:?}"
    );
    assert!(
        result_at - ticks[0] >= Duration::from_millis(400),
        "the first progress came with the result: {seen:?}"
    );
    eprintln!(
        "progress through the tunnel: ticks at {:?}, result at {result_at:?}",
        ticks
    );
    unsafe { libc::kill(up.id() as i32, libc::SIGTERM) };
    let t = Instant::now();
    while up.try_wait().unwrap().is_none() && t.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = up.kill();
}

/// The processes whose parent is `pid`.
fn children(pid: u32) -> Vec<u32> {
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(p) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        // The fields after the command name (which may hold spaces): state, ppid.
        let ppid = stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|s| s.parse::<u32>().ok());
        if ppid == Some(pid) {
            v.push(p);
        }
    }
    v
}

#[test]
fn a_killed_up_takes_its_mcp_server_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let (mut up, _port, _key) = start_up(dir.path());
    let kids = children(up.id());
    assert!(
        !kids.is_empty(),
        "airlock up runs its MCP server as a child process"
    );
    up.kill().unwrap(); // SIGKILL: no orderly shutdown, no kill_on_drop
    up.wait().unwrap();
    let t = Instant::now();
    // A zombie waiting for a reaper that is slow (or absent in a container)
    // has ended all the same.
    let alive = |p: &u32| {
        std::fs::read_to_string(format!("/proc/{p}/stat"))
            .is_ok_and(|s| !s.rsplit_once(") ").is_some_and(|(_, r)| r.starts_with('Z')))
    };
    while kids.iter().any(alive) {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "still running after airlock up was killed: {kids:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
