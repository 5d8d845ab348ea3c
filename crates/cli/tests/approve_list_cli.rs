//! `airlock approve --list` says so when nothing waits for approval, on
//! stderr (stdout keeps only request rows for scripts).

use std::process::{Command, Output};

use airlock_policy::ApprovalStore;

fn list(path: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(["approve", "--list", "--approvals"])
        .arg(path)
        .output()
        .unwrap()
}

#[test]
fn an_empty_list_says_there_is_nothing_pending() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("approvals.db");
    let store = ApprovalStore::open(&path).unwrap();
    let out = list(&path);
    assert!(out.status.success());
    assert!(out.stdout.is_empty());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!("no pending approval requests ({})\n", path.display())
    );

    // With a pending request: its row on stdout, and no such note.
    let hash = airlock_policy::call_hash("deploy", &serde_json::json!({"env": "prod"}));
    store
        .request(&hash, "ci", "deploy", r#"{"env":"prod"}"#)
        .unwrap();
    let out = list(&path);
    let rows = String::from_utf8_lossy(&out.stdout);
    assert!(
        rows.contains(&hash.to_hex()) && rows.contains("pending"),
        "{rows}"
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
