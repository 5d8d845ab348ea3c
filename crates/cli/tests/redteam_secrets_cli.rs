//! Red-team: secrets airlock itself reads, read by the command directly.
//! A credential written `${file:/path}` is injected by the proxy so that
//! "the credential itself never enters" the jail, and the interception
//! CA's private key stays outside; but both files are ordinary files of
//! the user the command runs as (the caller, or the workdir's owner when
//! airlock is root), and the jail's view of `/` is readable. airlock masks
//! every file the config reads a secret from, and the CA's directory, in
//! every jail it builds from a config, inside writable paths too. Both
//! callers.

#[macro_use]
mod support;
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;
use support::{chown_jail, workdir, write, Jail};

both_modes!(
    secret_files_and_the_ca_key_are_hidden,
    secrets_in_writable_paths_and_the_default_ca_stay_hidden
);

const SECRET: &str = "s3cr3t-T0KEN-redteam-value";

fn secret_files_and_the_ca_key_are_hidden(j: &Jail) {
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

/// The masks win over allow-write (a secret file in the workdir or in an
/// allow-write directory is neither readable nor writable, and survives
/// the run), and the CA in its default directory (no `--ca-dir`) is hidden.
fn secrets_in_writable_paths_and_the_default_ca_stay_hidden(j: &Jail) {
    let state = tempfile::Builder::new()
        .prefix("airlock-redteam-xdg")
        .tempdir_in("/var/tmp")
        .unwrap();
    std::fs::set_permissions(state.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    chown_jail(state.path());
    // The default place of the CA, which this run creates.
    let ca = state.path().join("airlock/ca");
    let extra = state.path().join("extra");
    std::fs::create_dir(&extra).unwrap();
    chown_jail(&extra);
    let in_extra = extra.join("token");
    write(&in_extra, &format!("{SECRET}-extra\n"));
    chown_jail(&in_extra);

    let d = workdir();
    let in_workdir = d.path().join(".tok");
    write(&in_workdir, &format!("{SECRET}-workdir\n"));
    chown_jail(&in_workdir);
    let cfg = state.path().join("cred.yaml");
    write(
        &cfg,
        &format!(
            "version: 1\nsandbox:\n  filesystem:\n    allow_write: [\"{}\"]\n  \
             network:\n    allow: [\"example.com\"]\n\
             credentials:\n  - host: example.com\n    header: Authorization\n    \
             value: \"Bearer ${{file:{}}}\"\n\
             tools:\n  db:\n    kind: postgres.query\n    \
             dsn: \"postgres://u:${{file:{}}}@db/x\"\n    sql: SELECT 1\n",
            extra.display(),
            in_extra.display(),
            in_workdir.display()
        ),
    );
    let script = format!(
        "cat {x}; cat {w}; cat {ca}/ca.key; ls -a {ca}; \
         echo overwritten > {x}; echo overwritten > {w}; rm -f {w}; mv {w} {w}.moved; \
         cat {w}.moved; touch {extra}/probe && echo extra-writable; true",
        x = in_extra.display(),
        w = in_workdir.display(),
        ca = ca.display(),
        extra = extra.display(),
    );
    let o = j
        .cmd()
        .env("XDG_STATE_HOME", state.path())
        .arg("run")
        .arg("--config")
        .arg(&cfg)
        .arg("--workdir")
        .arg(d.path())
        .args(["--", "/bin/sh", "-c", &script])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "stderr {err}");
    // The control: the allow-write directory is writable.
    assert!(out.contains("extra-writable"), "{out} {err}");
    assert!(ca.join("ca.key").exists());
    assert!(!out.contains(SECRET), "a secret file: {out}");
    assert!(!out.contains("PRIVATE KEY"), "the default CA key: {out}");
    assert!(!out.contains("ca.key"), "the CA directory is listed: {out}");
    // Neither file was overwritten, removed or moved.
    assert_eq!(
        std::fs::read_to_string(&in_extra).unwrap(),
        format!("{SECRET}-extra\n")
    );
    assert_eq!(
        std::fs::read_to_string(&in_workdir).unwrap(),
        format!("{SECRET}-workdir\n")
    );
}
