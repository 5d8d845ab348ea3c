//! The files a config reads secrets from, and the sandbox every jail built
//! from it gets: each `${file:}` reference anywhere in the model, the
//! private key files, and the extra paths a caller adds (the CA), masked.

use std::path::PathBuf;

use airlock_config::*;

const SRC: &str = r#"version: 1
sandbox:
  filesystem: { deny_read: ["~/.ssh", "/srv/secrets/cred-token"] }
  network: { allow: [example.com] }
credentials:
  - host: example.com
    header: Authorization
    value: "Bearer ${file:/srv/secrets/cred-token}"
  - host: example.org
    header: X-Both
    value: "${env:AIRLOCK_NOT_A_FILE}:${file:/srv/secrets/cred-two}"
tools:
  db:
    kind: postgres.query
    dsn: "postgres://u:${file:/srv/secrets/pg-pass}@db/x"
    sql: SELECT 1
  api:
    kind: http.request
    base_url: https://api.example.com
    routes: [ { method: GET, path: /x } ]
    auth: { header: Authorization, value: "Bearer ${file:/srv/secrets/api-token}" }
  bash: { kind: agent.bash }
agents:
  a: { keys: ["${file:/srv/secrets/agent-key}"], allowed_tools: [db] }
audit:
  dir: /var/lib/airlock/audit
  signing_key: /etc/airlock/audit-signing.key
worker:
  environment_id: e
  api_key: "${file:/srv/secrets/worker-key}"
"#;

#[test]
fn every_file_reference_is_listed_once() {
    let c = load_str(SRC, "/etc/airlock/airlock.yaml").unwrap_or_else(|d| panic!("{d}"));
    let files = c.secret_files();
    let want: Vec<PathBuf> = [
        "cred-token",
        "cred-two",
        "api-token",
        "pg-pass",
        "agent-key",
        "worker-key",
    ]
    .iter()
    .map(|n| PathBuf::from("/srv/secrets").join(n))
    .collect();
    for w in &want {
        assert!(files.contains(w), "{} missing from {files:?}", w.display());
    }
    assert_eq!(files.len(), want.len(), "{files:?}");
    assert_eq!(
        c.key_files(),
        vec![PathBuf::from("/etc/airlock/audit-signing.key")]
    );
}

#[test]
fn the_jail_sandbox_hides_secret_files_keys_and_the_ca() {
    let c = load_str(SRC, "/etc/airlock/airlock.yaml").unwrap_or_else(|d| panic!("{d}"));
    let sb = c.jail_sandbox(["/home/u/.local/state/airlock/ca"]);
    let deny = &sb.filesystem.deny_read;
    for p in [
        "~/.ssh",
        "/srv/secrets/cred-token",
        "/srv/secrets/worker-key",
        "/etc/airlock/audit-signing.key",
        "/home/u/.local/state/airlock/ca",
    ] {
        assert!(deny.iter().any(|d| d == p), "{p} not in {deny:?}");
    }
    // Already listed in the file: not twice.
    assert_eq!(
        deny.iter()
            .filter(|d| *d == "/srv/secrets/cred-token")
            .count(),
        1
    );
    // The rest of the section is the file's.
    assert_eq!(sb.network.allow, c.sandbox.network.allow);
    assert_eq!(sb.filesystem.allow_write, c.sandbox.filesystem.allow_write);
    // The config itself is unchanged.
    assert_eq!(c.sandbox.filesystem.deny_read.len(), 2);
}

#[test]
fn a_config_without_secrets_still_hides_the_ca() {
    let c = Config::default();
    assert!(c.secret_files().is_empty());
    let sb = c.jail_sandbox([PathBuf::from("/var/lib/airlock/ca")]);
    assert_eq!(
        sb.filesystem.deny_read,
        vec!["/var/lib/airlock/ca".to_string()]
    );
    // A relative path (`--ca-dir ca`) is this process's, not the workdir's.
    let sb = c.jail_sandbox(["ca"]);
    let here = std::env::current_dir().unwrap().join("ca");
    assert_eq!(sb.filesystem.deny_read, vec![here.display().to_string()]);
}
