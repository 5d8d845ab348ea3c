//! `airlock config` as a real process: exit codes, both output formats,
//! the example and the schema, and secret values never printed.

use std::process::{Command, Output};

fn airlock(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_airlock"));
    cmd.arg("config").args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run airlock config")
}

/// A fresh directory for one test, removed when it ends.
struct Scratch(tempfile::TempDir);

impl std::ops::Deref for Scratch {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        self.0.path()
    }
}

fn dir(name: &str) -> Scratch {
    Scratch(
        tempfile::Builder::new()
            .prefix(&format!("airlock-config-cli-{name}-"))
            .tempdir()
            .unwrap(),
    )
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

/// `worker:` loads (a file written for a later version still checks) but
/// nothing reads it: `config check` says so in a note, not an error.
#[test]
fn the_reserved_worker_section_gets_a_note() {
    let d = dir("worker-note");
    let with = write(
        &d,
        "with.yaml",
        "version: 1\nworker: { environment_id: e, api_key: \"${env:AIRLOCK_T_UNUSED}\" }\n",
    );
    let without = write(&d, "without.yaml", "version: 1\n");
    let out = airlock(&["check", "--no-secrets", &with], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("note: the `worker:` section is reserved")
            && err.contains("unused by this version")
            && !err.contains("error"),
        "{err}"
    );
    let out = airlock(&["check", &without], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!text(&out).contains("note:"), "{}", text(&out));
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

// --- `--config FILE` on the commands that run from it -----------------------

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_airlock"));
    c.env("AIRLOCK_LOG", "warn");
    c
}

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// HTTP/1.1 upstream that answers with the request path and keeps every
/// request head it saw.
fn upstream() -> (u16, Arc<Mutex<Vec<String>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let heads = seen.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let heads = heads.clone();
            std::thread::spawn(move || {
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut head = String::new();
                loop {
                    let mut h = String::new();
                    if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                    head.push_str(&h);
                }
                let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
                heads.lock().unwrap().push(head);
                let _ = write!(
                    s,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{path}",
                    path.len()
                );
            });
        }
    });
    (port, seen)
}

fn http(addr: &str, request: &str) -> String {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return String::new();
    };
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = s.write_all(request.as_bytes());
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

fn b64(s: &str) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in s.as_bytes().chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The proxy takes its host rules and credentials from the file; the
/// credential reaches the upstream and its value is printed nowhere.
#[test]
fn proxy_runs_from_config() {
    let d = dir("proxy");
    let (port, seen) = upstream();
    let file = write(
        &d,
        "airlock.yaml",
        &format!(
            "version: 1\n\
sandbox:\n  network:\n    allow: [\"127.0.0.1:{port}\"]\n    allow_private: [127.0.0.1/32]\n\
credentials:\n  - {{ host: \"127.0.0.1:{port}\", header: X-Api-Key, value: \"${{env:AIRLOCK_T_UPSTREAM_KEY}}\", plain_http: true }}\n"
        ),
    );
    let mut child = bin()
        .args(["proxy", "--config", &file, "--listen", "127.0.0.1:0"])
        .env("AIRLOCK_T_UPSTREAM_KEY", "SENTINEL-proxy-c0ffee")
        .env_remove("AIRLOCK_PROXY_AUTH")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let listen = lines.next().unwrap().unwrap();
    let cred = lines.next().unwrap().unwrap();
    let stderr = child.stderr.take().unwrap();
    let proxy = Kill(child);
    let addr = listen.rsplit(' ').next().unwrap().to_string();
    let auth = b64(cred.strip_prefix("proxy credential: ").unwrap());
    let ok = http(
        &addr,
        &format!("GET http://127.0.0.1:{port}/x HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nProxy-Authorization: Basic {auth}\r\n\r\n"),
    );
    assert!(ok.starts_with("HTTP/1.1 200") && ok.ends_with("/x"), "{ok}");
    let head = seen
        .lock()
        .unwrap()
        .pop()
        .expect("upstream saw the request");
    assert!(
        head.to_ascii_lowercase()
            .contains("x-api-key: sentinel-proxy-c0ffee"),
        "credential not injected: {head}"
    );
    let denied = http(
        &addr,
        &format!("GET http://127.0.0.2:{port}/ HTTP/1.1\r\nHost: 127.0.0.2:{port}\r\nProxy-Authorization: Basic {auth}\r\n\r\n"),
    );
    assert!(denied.starts_with("HTTP/1.1 403"), "{denied}");
    assert!(!denied.contains("SENTINEL"), "{denied}");
    drop(proxy);
    let mut err = String::new();
    BufReader::new(stderr).read_to_string(&mut err).unwrap();
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(
        !err.contains("SENTINEL") && !rest.concat().contains("SENTINEL"),
        "{err}"
    );
}

/// A bad file, or a credential that cannot be resolved, stops the proxy
/// before it listens, naming the place.
#[test]
fn proxy_refuses_a_bad_config() {
    let d = dir("proxy-bad");
    let bad = write(
        &d,
        "bad.yaml",
        "version: 1\nsandbox: { network: { alow: [x.com] } }\n",
    );
    let out = bin()
        .args(["proxy", "--config", &bad, "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "{bad}:2:23: error: unknown key `alow` in `sandbox.network`"
        )),
        "{err}"
    );
    let unset = write(
        &d,
        "unset.yaml",
        "version: 1\ncredentials: [{ host: x.com, header: X-Key, value: \"${env:AIRLOCK_T_NOT_SET}\" }]\n",
    );
    let out = bin()
        .args(["proxy", "--config", &unset, "--listen", "127.0.0.1:0"])
        .env_remove("AIRLOCK_T_NOT_SET")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("AIRLOCK_T_NOT_SET") && err.contains("not set"),
        "{err}"
    );
}

fn run_ok(args: &[&str]) -> String {
    let o = bin().args(args).output().expect("run airlock");
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .last()
        .unwrap_or("")
        .trim()
        .to_string()
}

/// Gateway and connector run from config files with relative paths and a
/// `${file:}` token; `--listen` flags override the file's addresses.
#[test]
fn gateway_and_connector_run_from_config() {
    let d = dir("tunnel");
    let ds = d.to_str().unwrap();
    let state = format!("{ds}/state.db");
    run_ok(&["tunnel", "certs", ds]);
    let token = run_ok(&[
        "tunnel",
        "create",
        "corp",
        "--ca",
        &format!("{ds}/tunnel-ca.pem"),
        "--state",
        &state,
    ]);
    let key = run_ok(&[
        "key", "create", "--agent", "ci", "--tunnel", "corp", "--route", "web", "--state", &state,
    ]);
    let tools_key = run_ok(&[
        "key", "create", "--agent", "ci", "--tunnel", "corp", "--route", "tools", "--state", &state,
    ]);
    // The built-in MCP server behind route `tools`: one jailed tool for `ci`.
    write(
        &d,
        "mcp.yaml",
        "version: 1\ntools:\n  bash: { kind: agent.bash }\nagents:\n  ci:\n    allowed_tools: [bash]\n",
    );
    write(&d, "token", &format!("{token}\n"));
    let gw_file = write(
        &d,
        "gateway.yaml",
        "version: 1\ngateway:\n  state: state.db\n  tls_cert: gateway.pem\n  tls_key: gateway.key\n  agent_tls: false\n  ping_interval: 1s\n  ping_timeout: 2s\n",
    );
    let mut gw = bin()
        .args([
            "gateway",
            "--config",
            &gw_file,
            "--listen",
            "127.0.0.1:0",
            "--tunnel-listen",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(gw.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _gw = Kill(gw);
    let w: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        w.get(3).map(|s| s.starts_with("http://")),
        Some(true),
        "{line}"
    );
    let agents = w[3].trim_start_matches("http://").to_string();
    let link_port = w[5].rsplit(':').next().unwrap();
    assert_eq!(w.get(6), Some(&"identity-key"), "{line}");
    let identity_key = w[7];

    let (up, _) = upstream();
    let conn_file = write(
        &d,
        "connector.yaml",
        &format!(
            "version: 1\nconnector:\n  gateway: \"localhost:{link_port}\"\n  tunnel: corp\n  token: \"${{file:{ds}/token}}\"\n  ca: gateway-ca.pem\n  client_cert: connector.pem\n  client_key: connector.key\n  ping_interval: 1s\n  ping_timeout: 2s\n  identity_key: \"{identity_key}\"\n  routes:\n    web: {{ url: \"http://127.0.0.1:{up}/base\" }}\n    tools: {{ builtin: mcp.yaml }}\n"
        ),
    );
    let _conn = Kill(
        bin()
            .args(["connect", "--config", &conn_file])
            .current_dir(&*d)
            .env_remove("AIRLOCK_TUNNEL_TOKEN")
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let t = Instant::now();
    loop {
        let r = http(
            &agents,
            &format!("GET /t/corp/web/hello HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {key}\r\nConnection: close\r\n\r\n"),
        );
        if r.starts_with("HTTP/1.1 200") {
            assert!(r.ends_with("/base/hello"), "{r}");
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "no request through the tunnel: {r}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The `builtin:` route: the agent's identity reaches `airlock mcp` as the
    // gateway's signed assertion, and the tool runs in the jail.
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"bash","arguments":{"command":"echo builtin-$((40+2))"},"_meta":{"io.modelcontextprotocol/clientInfo":{"name":"t","version":"1"},"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}"#;
    let req = format!(
        "POST /t/corp/tools HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {tools_key}\r\nContent-Type: application/json\r\n\
Accept: application/json, text/event-stream\r\nMCP-Protocol-Version: 2026-07-28\r\nMcp-Method: tools/call\r\nMcp-Name: bash\r\n\
Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let t = Instant::now();
    loop {
        let r = http(&agents, &req);
        if r.contains("builtin-42") {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(20), "builtin route: {r}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The `web` key is scoped to its route: no entry to `tools`.
    let r = http(&agents, &req.replace(&tools_key, &key));
    assert!(!r.contains("builtin-42"), "{r}");
}

/// An independent validator (Python `jsonschema`, draft 2020-12) accepts the
/// schema itself and the example, and rejects broken files the loader rejects.
#[test]
fn schema_validates_with_an_independent_validator() {
    let d = dir("schema");
    let schema = airlock(&["schema"], &[]);
    let schema = write(
        &d,
        "schema.json",
        &String::from_utf8(schema.stdout).unwrap(),
    );
    let example = airlock(&["example"], &[]);
    let example = write(
        &d,
        "example.yaml",
        &String::from_utf8(example.stdout).unwrap(),
    );
    let broken = [
        "version: 1\nsandbox: { limits: { memory: 256KB } }\n",
        "version: 1\nsandbx: {}\n",
        "version: 1\ntools: { b: { kind: agent.bash, max_rows: 1 } }\n",
        "version: 1\nconnector: { gateway: \"g:1\", tunnel: t, token: \"${env:T}\", ca: a, client_cert: b, client_key: c, routes: { r: { url: \"http://x/\", builtin: y } } }\n",
        "version: 2\n",
    ];
    let mut files = vec![example];
    for (i, b) in broken.iter().enumerate() {
        files.push(write(&d, &format!("broken{i}.yaml"), b));
    }
    let script = r#"
import json, sys, yaml, jsonschema
schema = json.load(open(sys.argv[1]))
jsonschema.Draft202012Validator.check_schema(schema)
v = jsonschema.Draft202012Validator(schema)
for f in sys.argv[2:]:
    print(f, "valid" if v.is_valid(yaml.safe_load(open(f))) else "invalid")
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&schema)
        .args(&files)
        .output()
        .expect("python3 (scripts/setup.d/config-schema.sh installs jsonschema and pyyaml)");
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let verdicts: Vec<&str> = stdout
        .lines()
        .map(|l| l.rsplit(' ').next().unwrap())
        .collect();
    assert_eq!(
        verdicts,
        ["valid", "invalid", "invalid", "invalid", "invalid", "invalid"],
        "{stdout}"
    );
    for f in &files[1..] {
        assert_eq!(
            airlock(&["check", "--no-secrets", f], &[]).status.code(),
            Some(1)
        );
    }
}
