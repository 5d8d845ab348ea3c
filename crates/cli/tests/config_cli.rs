//! `airlock config` as a real process: exit codes, both output formats,
//! the example and the schema, and secret values never printed.

use std::path::PathBuf;
use std::process::{Command, Output};

fn airlock(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_airlock"));
    cmd.arg("config").args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run airlock config")
}

/// A fresh directory for one test.
fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("airlock-config-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn example_passes_check() {
    let d = dir("example");
    let example = airlock(&["example"], &[]);
    assert!(example.status.success());
    let file = write(
        &d,
        "airlock.yaml",
        &String::from_utf8(example.stdout).unwrap(),
    );
    let out = airlock(&["check", "--no-secrets", &file], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains(": ok (10 tools, 2 agents"),
        "{}",
        text(&out)
    );
    // Without --no-secrets, the example's references must resolve.
    let out = airlock(&["check", &file], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("cannot resolve secret ${env:GITHUB_TOKEN}"),
        "{}",
        text(&out)
    );
}

#[test]
fn exit_codes_and_formats() {
    let d = dir("codes");
    let bad = write(
        &d,
        "bad.yaml",
        "version: 1\nsandbx: {}\ntools: { r: { kind: agent.read, max_bytes: 1KB } }\n",
    );
    let out = airlock(&["check", &bad], &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("{bad}:2:1: error: unknown key `sandbx` in the top level\n  help: did you mean `sandbox`?")), "{stderr}");
    assert!(
        stderr.contains(&format!("{bad}:3:44: error: `1KB` is ambiguous")),
        "{stderr}"
    );
    assert!(stderr.contains("2 error(s)"), "{stderr}");

    let out = airlock(&["check", "--format", "json", &bad], &[]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(v["valid"], false);
    assert_eq!(v["errors"].as_array().unwrap().len(), 2);
    assert_eq!(v["errors"][1]["line"], 3);
    assert_eq!(v["errors"][1]["column"], 44);

    let good = write(&d, "good.yaml", "version: 1\n");
    let out = airlock(&["check", "--format", "json", &good], &[]);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v, serde_json::json!({ "valid": true, "errors": [] }));

    let missing = d.join("missing.yaml").display().to_string();
    let out = airlock(&["check", &missing], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("cannot read the file"));
    let out = airlock(&["check", "--format", "json", &missing], &[]);
    assert_eq!(out.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["valid"], false);
}

#[test]
fn schema_is_json_schema_of_every_section() {
    let out = airlock(&["schema"], &[]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["$schema"], "https://json-schema.org/draft/2020-12/schema");
    for section in [
        "version",
        "sandbox",
        "credentials",
        "tools",
        "agents",
        "audit",
        "gateway",
        "connector",
        "worker",
    ] {
        assert!(
            v["properties"][section].is_object(),
            "schema lacks {section}"
        );
    }
    assert_eq!(v["additionalProperties"], false);
}

const SENTINELS: &[&str] = &[
    "SENTINEL-env-4f1d9c",
    "SENTINEL-file-7a2e5b",
    "SENTINEL-clear-91c3aa",
];

/// Secret values reach neither stdout nor stderr, in either format, whether
/// the file is valid, invalid, or holds a value in clear by mistake.
#[test]
fn secret_values_are_never_printed() {
    let d = dir("secrets");
    let secret_file = write(&d, "token", "SENTINEL-file-7a2e5b\n");
    let env = [
        ("AIRLOCK_T_GITHUB", "SENTINEL-env-4f1d9c"),
        ("AIRLOCK_T_PG", "SENTINEL-env-4f1d9c"),
    ];
    let valid = format!(
        "version: 1\n\
credentials:\n  - {{ host: api.github.com, header: Authorization, value: \"Bearer ${{env:AIRLOCK_T_GITHUB}}\" }}\n\
tools:\n  db: {{ kind: postgres.query, dsn: \"${{env:AIRLOCK_T_PG}}\", sql: SELECT 1 }}\n\
worker: {{ environment_id: e, api_key: \"${{file:{secret_file}}}\" }}\n"
    );
    let invalid = format!(
        "{valid}audit: {{ dri: /x }}\nagents: {{ a: {{ keys: [SENTINEL-clear-91c3aa] }} }}\n\
gateway: {{ state: s, tls_cert: c, tls_key: k, admin_key: \"${{env:AIRLOCK_T_UNSET}}\" }}\n"
    );
    let valid = write(&d, "valid.yaml", &valid);
    let invalid = write(&d, "invalid.yaml", &invalid);
    let mut runs = 0;
    for (file, code) in [(&valid, 0), (&invalid, 1)] {
        for format in ["human", "json"] {
            for extra in [&[][..], &["--no-secrets"][..]] {
                let mut args = vec!["check", "--format", format];
                args.extend_from_slice(extra);
                args.push(file);
                let out = airlock(&args, &env);
                assert_eq!(out.status.code(), Some(code), "{args:?}: {}", text(&out));
                let all = text(&out);
                for s in SENTINELS {
                    assert!(!all.contains(s), "{args:?} printed a secret value:\n{all}");
                }
                runs += 1;
            }
        }
    }
    assert_eq!(runs, 8);
    // The invalid file does report the problems around the secrets.
    let out = airlock(&["check", &invalid], &env);
    let all = text(&out);
    assert!(all.contains("a secret is written in clear"), "{all}");
    assert!(
        all.contains("cannot resolve secret ${env:AIRLOCK_T_UNSET}"),
        "{all}"
    );
}
