//! `airlock doctor` against the real kernel of the machine running the tests.

use std::process::Command;

const FEATURES: &[&str] = &[
    "user_namespaces",
    "mount_namespace",
    "network_namespace",
    "pid_namespace",
    "ipc_namespace",
    "uts_namespace",
    "landlock",
    "seccomp_filter",
    "seccomp_user_notif",
    "cgroups",
    "overlayfs",
    "dmesg_restrict",
    "legacy_tiocsti",
];

fn doctor(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_airlock"))
        .arg("doctor")
        .args(args)
        .output()
        .expect("run airlock doctor")
}

#[test]
fn json_names_every_feature_and_agrees_with_exit_status() {
    let out = doctor(&["--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("doctor prints JSON");
    let features = v["features"].as_array().expect("features array");
    for id in FEATURES {
        let f = features
            .iter()
            .find(|f| f["id"] == *id)
            .unwrap_or_else(|| panic!("doctor does not report {id}"));
        let state = f["state"].as_str().unwrap();
        assert!(
            ["ok", "degraded", "missing", "warning"].contains(&state),
            "{id}: {state}"
        );
        assert!(
            !f["airlock"].as_str().unwrap().is_empty(),
            "{id} says what airlock does"
        );
        if state != "ok" && f["required"] == true {
            assert!(f["fix"].is_string(), "{id} is missing but names no fix");
        }
    }
    let blocking = features
        .iter()
        .any(|f| f["required"] == true && f["state"] == "missing");
    assert_eq!(v["ok"], !blocking);
    assert_eq!(
        out.status.success(),
        !blocking,
        "exit status follows required features"
    );
}

#[test]
fn human_output_lists_each_feature_with_its_state() {
    let out = doctor(&[]);
    let text = String::from_utf8(out.stdout).unwrap();
    for id in FEATURES {
        assert!(
            text.lines().any(|l| l.starts_with(id)),
            "{id} missing from:\n{text}"
        );
    }
    assert!(text.contains("The jail can") || text.contains("The jail cannot"));
}

#[test]
fn unknown_format_is_a_usage_error() {
    let out = doctor(&["--format", "xml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("possible values"));
}
