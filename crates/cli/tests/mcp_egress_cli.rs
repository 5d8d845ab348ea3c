//! The agent toolset of `airlock mcp` reaches the network only through the
//! egress proxy: allowed hosts work with the credential injected outside the
//! jail, everything else is refused.

#[allow(unused_macros)]
mod support;

use std::io::{Read, Write};

use support::{jail_dir, mcp_command, Mcp};

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
    jail_dir(&wd);
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
    let mut cmd = mcp_command(&cfg, &wd);
    cmd.env("EGRESS_TEST_SECRET", "sentinel-egress-secret")
        .env("EGRESS_TEST_KEY", "key-for-agent-a");
    let mcp = Mcp::spawn(cmd);
    let out = mcp.bash("key-for-agent-a", &format!(
        "curl -s http://127.0.0.1:{port}/inside; echo; curl -s -o /dev/null -w 'other=%{{http_code}}' http://example.com/; echo; env | grep -c sentinel-egress-secret"
    ));
    drop(mcp);
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
