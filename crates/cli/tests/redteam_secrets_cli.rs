//! Red-team: secrets airlock itself reads, read by the command directly.
//! A credential written `${file:/path}` is injected by the proxy so that
//! "the credential itself never enters" the jail, and the interception
//! CA's private key stays outside; but both files are ordinary files of
//! the user the command runs as (the caller, or the workdir's owner when
//! airlock is root), and the jail's view of `/` is readable. Known gap,
//! skipped unless AIRLOCK_REDTEAM_KNOWN_GAPS is set; passes once airlock
//! hides the files it reads secrets from. Both callers.

#[macro_use]
mod support;
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;
use support::{chown_jail, workdir, write, Jail};

both_modes!(secret_files_and_the_ca_key_are_hidden);

const SECRET: &str = "s3cr3t-T0KEN-redteam-value";

fn secret_files_and_the_ca_key_are_hidden(j: &Jail) {
    if std::env::var_os("AIRLOCK_REDTEAM_KNOWN_GAPS").is_none() {
        eprintln!("SKIPPED: known gap (see the red-team report); set AIRLOCK_REDTEAM_KNOWN_GAPS=1");
        return;
    }
    // Outside /tmp (the jail's /tmp is its own), as a user keeps them.
    let state = tempfile::Builder::new()
        .prefix("airlock-redteam-state")
        .tempdir_in("/var/tmp")
        .unwrap();
    std::fs::set_permissions(state.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    chown_jail(state.path());
    let token = state.path().join("gh-token");
    write(&token, &format!("{SECRET}\n"));
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    chown_jail(&token);
    let ca = state.path().join("ca");

    let d = workdir();
    let cfg = d.path().join("cred.yaml");
    write(
        &cfg,
        &format!(
            "version: 1\nsandbox:\n  network:\n    allow: [\"example.com\"]\n\
             credentials:\n  - host: example.com\n    header: Authorization\n    \
             value: \"Bearer ${{file:{}}}\"\n",
            token.display()
        ),
    );
    let script = format!(
        "cat {} ; cat {}/ca.key ; true",
        token.display(),
        ca.display()
    );
    let o = j
        .cmd()
        .arg("run")
        .arg("--config")
        .arg(&cfg)
        .arg("--ca-dir")
        .arg(&ca)
        .arg("--workdir")
        .arg(d.path())
        .args(["--", "/bin/sh", "-c", &script])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "stderr {err}");
    // The control: the key exists (airlock created it for this run).
    assert!(ca.join("ca.key").exists());
    assert!(!out.contains(SECRET), "the ${{file:}} credential: {out}");
    assert!(
        !out.contains("PRIVATE KEY"),
        "the CA key ({:?} caller): {out}",
        j.mode
    );
}
