//! The agent toolset of `airlock mcp` reaches the network only through the
//! egress proxy: allowed hosts work with the credential injected outside the
//! jail, everything else is refused.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::Duration;

const AIRLOCK: &str = env!("CARGO_BIN_EXE_airlock");

fn call(addr: &str, key: &str, command: &str) -> String {
    let body = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": "bash", "arguments": {"command": command},
        "_meta": {"io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"},
                  "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                  "io.modelcontextprotocol/clientCapabilities": {}}}})
    .to_string();
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        s,
        "POST /mcp HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\n\
Accept: application/json, text/event-stream\r\nMCP-Protocol-Version: 2026-07-28\r\nMcp-Method: tools/call\r\nMcp-Name: bash\r\n\
Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

#[test]
fn agent_jails_reach_only_allowed_hosts_through_the_proxy() {
    // An upstream that echoes the request head.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut b = [0u8; 4096];
            let n = s.read(&mut b).unwrap_or(0);
            let head = String::from_utf8_lossy(&b[..n]).to_string();
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{head}",
                head.len()
            );
        }
    });
    let d = tempfile::tempdir().unwrap();
    let wd = d.path().join("work");
    std::fs::create_dir(&wd).unwrap();
    std::fs::set_permissions(&wd, std::fs::Permissions::from_mode(0o755)).unwrap();
    if unsafe { libc::geteuid() } == 0 {
        std::os::unix::fs::chown(&wd, Some(65534), Some(65534)).unwrap();
    }
    let cfg = d.path().join("airlock.yaml");
    std::fs::write(
        &cfg,
        format!(
            "version: 1\nsandbox:\n  network:\n    allow: [\"127.0.0.1:{port}\"]\n    allow_private: [\"127.0.0.1/32\"]\n\
credentials:\n  - name: internal\n    host: \"127.0.0.1:{port}\"\n    header: X-Api-Key\n    value: \"${{env:EGRESS_TEST_SECRET}}\"\n    plain_http: true\n\
tools:\n  bash: {{ kind: agent.bash }}\nagents:\n  a:\n    keys: [\"${{env:EGRESS_TEST_KEY}}\"]\n    allowed_tools: [bash]\n"
        ),
    )
    .unwrap();
    let mut mcp = Command::new(AIRLOCK)
        .args(["mcp", "--config"])
        .arg(&cfg)
        .arg("--workdir")
        .arg(&wd)
        .args(["--listen", "127.0.0.1:0"])
        .env("EGRESS_TEST_SECRET", "sentinel-egress-secret")
        .env("EGRESS_TEST_KEY", "key-for-agent-a")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(mcp.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap()
        .trim_end_matches("/mcp")
        .to_string();

    let out = call(&addr, "key-for-agent-a", &format!(
        "curl -s http://127.0.0.1:{port}/inside; echo; curl -s -o /dev/null -w 'other=%{{http_code}}' http://example.com/; echo; env | grep -c sentinel-egress-secret"
    ));
    let _ = mcp.kill();
    let _ = mcp.wait();
    assert!(out.contains("GET /inside"), "{out}");
    // The upstream got the credential; its echo of it reaches the jail
    // masked (same length) by the proxy.
    let masked = "*".repeat("sentinel-egress-secret".len());
    assert!(
        out.to_lowercase().contains(&format!("x-api-key: {masked}")),
        "the upstream did not get the credential: {out}"
    );
    assert!(
        !out.to_lowercase().contains("x-api-key: sentinel"),
        "the echoed credential reached the jail: {out}"
    );
    assert!(out.contains("other=403"), "{out}");
    assert!(
        out.contains("\\n0\\n") || out.contains("\\n0\""),
        "secret in the jail's env: {out}"
    );
}
