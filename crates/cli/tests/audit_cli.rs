//! `airlock audit` with the real binary: a jailed run and its egress land
//! in the log, redacted; verify, query and tail read it back; tampering is
//! named; secrets never reach the log.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

const AIRLOCK: &str = env!("CARGO_BIN_EXE_airlock");

fn airlock(args: &[&str]) -> (i32, String, String) {
    let o = Command::new(AIRLOCK)
        .args(args)
        .env("AIRLOCK_TEST_TOKEN", "sentinel-token-4242")
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn workdir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    if unsafe { libc::geteuid() } == 0 {
        std::os::unix::fs::chown(d.path(), Some(65534), Some(65534)).unwrap();
    }
    d
}

fn p(x: &Path) -> &str {
    x.to_str().unwrap()
}

#[test]
fn a_jailed_run_is_audited_verified_and_queried() {
    let state = tempfile::tempdir().unwrap();
    let log = state.path().join("audit");
    let key = state.path().join("audit.key");
    let (code, out, err) = airlock(&["audit", "keygen", "--out", p(&key)]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("ed25519:"));
    let pubkey = format!("{}.pub", key.display());
    // A second keygen never overwrites a key.
    assert_ne!(airlock(&["audit", "keygen", "--out", p(&key)]).0, 0);

    // An HTTP server the jail may reach, that the proxy injects a token for.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for s in l.incoming().take(2) {
            let Ok(mut s) = s else { continue };
            let mut b = [0u8; 2048];
            let _ = s.read(&mut b);
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
        }
    });
    let wd = workdir();
    let cfg = state.path().join("airlock.yaml");
    std::fs::write(
        &cfg,
        format!(
            "version: 1\nsandbox:\n  network:\n    allow: [\"127.0.0.1:{port}\"]\n    allow_private: [\"127.0.0.1/32\"]\n\
credentials:\n  - host: \"127.0.0.1:{port}\"\n    header: Authorization\n    value: \"Bearer ${{env:AIRLOCK_TEST_TOKEN}}\"\n    plain_http: true\n\
audit:\n  dir: {}\n  signing_key: {}\n  checkpoint_every: 2\n",
            log.display(),
            key.display()
        ),
    )
    .unwrap();
    let script = format!("curl -s http://127.0.0.1:{port}/a; curl -s -o /dev/null http://denied.example/; echo sentinel-token-4242 >/dev/null");
    let (code, _, err) = airlock(&[
        "run",
        "--config",
        p(&cfg),
        "--workdir",
        p(wd.path()),
        "--",
        "/bin/sh",
        "-c",
        &script,
    ]);
    assert_eq!(code, 0, "{err}");

    let (code, out, _) = airlock(&["audit", "verify", p(&log), "--key", &pubkey]);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("OK:"), "{out}");

    let (code, out, _) = airlock(&[
        "audit",
        "query",
        p(&log),
        "--kind",
        "egress",
        "--format",
        "jsonl",
    ]);
    assert_eq!(code, 0);
    let recs: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(recs.len(), 2, "{out}");
    let allowed = recs
        .iter()
        .find(|r| r["decision"]["allowed"] == true)
        .unwrap();
    assert_eq!(allowed["egress"]["credential"], format!("127.0.0.1:{port}"));
    let denied = recs
        .iter()
        .find(|r| r["decision"]["allowed"] == false)
        .unwrap();
    assert_eq!(denied["egress"]["host"], "denied.example");

    let (_, out, _) = airlock(&[
        "audit",
        "query",
        p(&log),
        "--kind",
        "jail_run",
        "--format",
        "jsonl",
    ]);
    let run: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(run["status"], "0");
    // The run's own arguments mention the token's value: redacted by value.
    assert!(run["args"].to_string().contains("[REDACTED:"), "{run}");

    let (_, out, _) = airlock(&["audit", "query", p(&log), "--decision", "deny"]);
    assert!(out.contains("denied.example"), "{out}");
    let (_, out, _) = airlock(&["audit", "tail", p(&log), "-n", "1", "--format", "jsonl"]);
    assert_eq!(out.lines().count(), 1);

    // The secret value is nowhere in the log.
    for e in std::fs::read_dir(&log).unwrap() {
        let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
        assert!(!text.contains("sentinel-token-4242"));
    }

    // Tampering is named, with exit status 1.
    let seg = log.join("00000001.jsonl");
    let text = std::fs::read_to_string(&seg).unwrap();
    std::fs::write(&seg, text.replacen("denied.example", "denied.exampl3", 1)).unwrap();
    let (code, out, _) = airlock(&["audit", "verify", p(&log), "--key", &pubkey]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("TAMPERED") && out.contains("first problem at 00000001.jsonl:"),
        "{out}"
    );
    // Bad input: a clear error.
    let (code, _, err) = airlock(&["audit", "query", p(&log), "--since", "yesterday-ish"]);
    assert_ne!(code, 0);
    assert!(err.contains("--since"), "{err}");
}
