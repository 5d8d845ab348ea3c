//! `airlock up` with no routes: gateway, connector and the built-in MCP
//! server on one machine; an agent call goes through all three layers, runs
//! in the jail, and lands in the signed audit log.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const AIRLOCK: &str = env!("CARGO_BIN_EXE_airlock");

fn post(port: u16, key: &str, body: &str) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        s,
        "POST /t/local/tools HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\n\
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
fn up_serves_the_jailed_toolset_through_the_tunnel_and_audits_it() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut up = Command::new(AIRLOCK)
        .args(["up", "--dir"])
        .arg(dir.path())
        .args(["--port", &port.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(up.stdout.take().unwrap()).lines();
    let t = Instant::now();
    let mut key = String::new();
    for l in lines.by_ref() {
        let l = l.unwrap();
        if let Some(k) = l.strip_prefix("agent key: ") {
            key = k.to_string();
        }
        if l.contains("claude mcp add --transport http airlock-tools") {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "airlock up did not come up"
        );
    }
    assert!(key.starts_with("alk_"), "no agent key printed");
    std::thread::spawn(move || for _ in lines {});

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
