//! Configs that must load, and what they load to.

use std::path::PathBuf;
use std::time::Duration;

use airlock_config::spec::{self, Req, Ty};
use airlock_config::*;

#[test]
fn the_example_passes_and_uses_every_section() {
    let c = load_str(EXAMPLE, "/etc/airlock/airlock.yaml").unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(c.version, 1);
    assert!(!c.sandbox.network.allow.is_empty());
    assert_eq!(c.credentials.len(), 1);
    assert!(
        !c.credentials[0].plain_http,
        "HTTPS only unless a config says so"
    );
    assert_eq!(c.tools.len(), 10);
    let kinds: std::collections::BTreeSet<_> = c.tools.values().map(|t| t.kind.name()).collect();
    for k in [
        "agent.bash",
        "agent.read",
        "git.read_file",
        "git.log",
        "postgres.query",
        "http.request",
    ] {
        assert!(kinds.contains(k), "example lacks a {k} tool");
    }
    assert_eq!(c.agents.len(), 2);
    let ci = &c.agents["corp-ci-agent"];
    assert_eq!(
        ci.constraints["git_read_file"].repos.as_deref(),
        Some(&["service-a".to_string()][..])
    );
    assert_eq!(
        ci.constraints["git_read_file"].max_file_size,
        Some(ByteSize::kib(64))
    );
    assert!(matches!(c.agents["reviewer"].keys[0], AgentKey::Sha256(_)));
    assert!(c.gateway.is_some() && c.connector.is_some() && c.worker.is_some());
    let conn = c.connector.unwrap();
    assert!(
        matches!(&conn.routes["tools"], Route::Builtin { config, .. } if config == &PathBuf::from("/etc/airlock/airlock.yaml"))
    );
    assert!(matches!(&conn.routes["files"], Route::Stdio { command } if command[0] == "npx"));
}

#[test]
fn a_minimal_file_gets_the_model_defaults() {
    let c = load_str("version: 1\n", "airlock.yaml").unwrap();
    assert_eq!(c.sandbox.limits, Limits::default());
    assert!(c.tools.is_empty() && c.agents.is_empty() && c.credentials.is_empty());
    assert!(c.audit.is_none(), "no audit: section, no audit log");
    assert!(c.gateway.is_none() && c.connector.is_none() && c.worker.is_none());
    let c = load_str(
        "version: 1\ngateway: { state: g.db, tls_cert: c.pem, tls_key: k.pem }\n\
connector: { gateway: \"gw:7443\", tunnel: t, token: \"${env:T}\", ca: ca.pem, client_cert: c.pem, client_key: k.pem }\n",
        "/srv/conf/airlock.yaml",
    )
    .unwrap();
    let g = c.gateway.unwrap();
    assert_eq!(
        (g.listen.as_str(), g.tunnel_listen.as_str()),
        ("0.0.0.0:8443", "0.0.0.0:7443")
    );
    assert!(g.agent_tls);
    assert_eq!(
        (g.ping_interval, g.ping_timeout, g.assertion_ttl),
        (
            Duration::from_secs(4),
            Duration::from_secs(10),
            Duration::from_secs(60)
        )
    );
    // Relative paths are relative to the config file's directory.
    assert_eq!(g.state, "/srv/conf/g.db");
    assert_eq!(g.tls_cert, PathBuf::from("/srv/conf/c.pem"));
    let k = c.connector.unwrap();
    assert_eq!(
        (k.links, k.ping_interval, k.ping_timeout),
        (2, Duration::from_secs(4), Duration::from_secs(10))
    );
    assert_eq!(k.ca, PathBuf::from("/srv/conf/ca.pem"));
    assert!(k.allowed_ips.is_none());
}

#[test]
fn values_are_decoded() {
    let c = load_str(
        r#"version: 1
sandbox:
  network: { allow: ["*.PyPI.org", "x.com:8443"], allow_private: [10.20.0.0/16], mode: report }
  limits: { memory: 512MiB, timeout: 1m30s, pids: 64 }
tools:
  db:
    kind: postgres.query
    dsn: "${file:/run/secrets/pg}"
    sql: "SELECT $1::int, $2"
    params: [{ name: a, type: integer }, { name: b, type: uuid }]
    timeout: 2s
  api:
    kind: http.request
    base_url: https://api.example.com/v1
    routes: [{ method: GET, path: "/items/{id}" }]
agents:
  a:
    keys: ["${env:A_KEY}"]
    allowed_tools: [db, api]
    constraints:
      db: { max_rows: 10, timeout: 1s }
      api: { routes: ["GET /items/{id}"] }
connector:
  gateway: "gw:7443"
  tunnel: t
  token: "${env:T}"
  ca: /ca
  client_cert: /c
  client_key: /k
  allowed_ips: [127.0.0.1/32]
"#,
        "airlock.yaml",
    )
    .unwrap_or_else(|d| panic!("{d}"));
    let n = &c.sandbox.network;
    assert!(n.allow[0].wildcard && n.allow[0].host == "pypi.org");
    assert_eq!(n.allow[1].port, Some(8443));
    assert_eq!(n.mode, NetworkMode::Report);
    assert_eq!(c.sandbox.limits.memory, ByteSize::mib(512));
    assert_eq!(c.sandbox.limits.timeout, Duration::from_secs(90));
    let ToolKind::PostgresQuery(q) = &c.tools["db"].kind else {
        panic!()
    };
    assert_eq!(q.params[1].ty, SqlType::Uuid);
    assert_eq!(q.dsn.to_string(), "${file:/run/secrets/pg}");
    let k = &c.agents["a"].constraints;
    assert_eq!(k["db"].max_rows, Some(10));
    assert_eq!(k["api"].routes.as_ref().unwrap()[0].path, "/items/{id}");
    assert_eq!(c.connector.unwrap().allowed_ips.unwrap().len(), 1);
}

#[test]
fn secrets_resolve_when_checked() {
    std::env::set_var("AIRLOCK_TEST_RESOLVES", "value-not-shown");
    let src =
        "version: 1\nworker: { environment_id: e, api_key: \"${env:AIRLOCK_TEST_RESOLVES}\" }\n";
    load_str_with(
        src,
        "a.yaml",
        LoadOptions {
            check_secrets: true,
        },
    )
    .unwrap_or_else(|d| panic!("{d}"));
}

/// The spec's documented defaults are the model's defaults.
#[test]
fn spec_defaults_match_the_model() {
    let d = Limits::default();
    for f in spec::LIMITS.fields {
        let Req::Default(v) = f.req else {
            panic!("{} has no default", f.name)
        };
        let src = format!("version: 1\nsandbox: {{ limits: {{ {}: {v} }} }}\n", f.name);
        assert_eq!(
            load_str(&src, "a.yaml").unwrap().sandbox.limits,
            d,
            "default of {}",
            f.name
        );
    }
    let d = Audit::default();
    for f in spec::AUDIT.fields {
        if let Req::Default(v) = f.req {
            let src = format!("version: 1\naudit: {{ {}: {v} }}\n", f.name);
            let a = load_str(&src, "/a.yaml")
                .unwrap()
                .audit
                .expect("audit section present");
            assert_eq!(
                (
                    a.dir,
                    a.segment_size,
                    a.checkpoint_every,
                    a.checkpoint_interval,
                    a.flush_interval,
                    a.export
                ),
                (
                    d.dir.clone(),
                    d.segment_size,
                    d.checkpoint_every,
                    d.checkpoint_interval,
                    d.flush_interval,
                    d.export
                ),
                "default of audit.{}",
                f.name
            );
        }
    }
}

#[test]
fn spec_is_consistent() {
    let Ty::Enum(kinds) = spec::TOOL_COMMON[0].ty else {
        panic!()
    };
    let names: Vec<_> = spec::TOOL_KINDS.iter().map(|k| k.name).collect();
    assert_eq!(
        kinds,
        names.as_slice(),
        "the `kind` enum lists every tool kind"
    );
    let schema = schema::json_schema();
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    assert_eq!(schema["required"], serde_json::json!(["version"]));
    assert_eq!(
        schema["properties"]["tools"]["additionalProperties"]["oneOf"]
            .as_array()
            .unwrap()
            .len(),
        spec::TOOL_KINDS.len()
    );
    assert_eq!(
        schema["properties"]["sandbox"]["properties"]["limits"]["properties"]["memory"]["default"],
        "2GiB"
    );
}

/// Every key the spec describes, set at once (to non-default values where
/// that matters). Loading it proves the decoder applies every key: the
/// loader refuses a clean file with a key no decoder read.
const KITCHEN_SINK: &str = r#"version: 1
sandbox:
  filesystem: { deny_read: ["~/.ssh"], allow_write: ["."], deny_write: [".envrc"] }
  network: { allow: [a.example.com], deny: [b.example.com], allow_private: [10.0.0.0/8], mode: report }
  limits: { memory: 1GiB, pids: 10, cpu_seconds: 5, timeout: 5s, output: 1KiB, tmp_size: 1MiB, open_files: 64, file_size: 1MiB }
credentials:
  - { name: gh, host: api.github.com, header: Authorization, value: "Bearer ${env:GH}", plain_http: true }
tools:
  bash: { kind: agent.bash, description: d, approval: required, timeout: 10s, max_output: 1KiB }
  read: { kind: agent.read, max_bytes: 1KiB }
  write: { kind: agent.write, max_bytes: 1KiB }
  edit: { kind: agent.edit, max_bytes: 1KiB }
  glob: { kind: agent.glob, max_results: 5 }
  grep: { kind: agent.grep, max_output: 1KiB, max_line: 100 }
  git: { kind: git.read_file, repos: { a: /a.git }, max_file_size: 1KiB, max_entries: 5 }
  db:
    kind: postgres.query
    dsn: "${env:PG}"
    sql: SELECT $1
    params: [{ name: id, type: bigint, description: the id }]
    max_rows: 5
    timeout: 1s
  api:
    kind: http.request
    base_url: https://api.example.com
    routes: [{ method: DELETE, path: /x, body: { type: object } }]
    auth: { header: X-Key, value: "${env:K}" }
    max_response_size: 1KiB
    timeout: 1s
agents:
  a:
    keys: ["${env:A}"]
    allowed_tools: [bash, read, git, db, api, glob]
    constraints:
      bash: { timeout: 1s, max_output: 512B }
      read: { max_bytes: 1KiB }
      git: { repos: [a], max_file_size: 512B }
      db: { max_rows: 1, timeout: 1s }
      api: { routes: ["DELETE /x"] }
      glob: { max_results: 1 }
audit:
  dir: /audit
  segment_size: 1MiB
  checkpoint_every: 10
  checkpoint_interval: 1s
  signing_key: /keys/audit.key
  flush_interval: 1ms
  redact_fields: [password]
  export: syslog
gateway:
  listen: 127.0.0.1:1
  tunnel_listen: 127.0.0.1:2
  state: /s.db
  tls_cert: /c.pem
  tls_key: /k.pem
  agent_tls: false
  admin_key: "${env:ADMIN}"
  admin_listen: 127.0.0.1:8444
  ping_interval: 1s
  ping_timeout: 2s
  assertion_ttl: 30s
connector:
  gateway: gw.example.com:7443
  server_name: gw.internal
  tunnel: corp
  name: conn-1
  token: "${env:TOKEN}"
  ca: /ca.pem
  client_cert: /cc.pem
  client_key: /ck.pem
  links: 3
  allowed_ips: [127.0.0.0/8]
  routes:
    h: { url: "http://127.0.0.1:1/mcp" }
    s: { command: [srv, --stdio] }
    b: { builtin: /etc/airlock/airlock.yaml, workdir: /tmp }
  ping_interval: 1s
  ping_timeout: 2s
  proxy: http://proxy.example.com:3128
  identity_key: 3q2+7w0AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=
worker:
  api_url: https://gw.example.com
  environment_id: env_1
  api_key: "${env:API}"
  workdir: /work
  concurrency: 4
"#;

#[test]
fn every_key_of_the_spec_loads_and_is_applied() {
    // The sink names every key the spec has.
    fn keys(fields: &[spec::Field], out: &mut Vec<&'static str>) {
        for f in fields {
            out.push(f.name);
            nested(&f.ty, out);
        }
    }
    fn nested(t: &Ty, out: &mut Vec<&'static str>) {
        match t {
            Ty::Obj(o) => keys(o.fields, out),
            Ty::List(i) | Ty::Map(i) => nested(i, out),
            Ty::Tool => {
                keys(spec::TOOL_COMMON, out);
                for k in spec::TOOL_KINDS {
                    keys(k.fields, out);
                }
            }
            Ty::Route => {
                keys(spec::ROUTE_FORMS, out);
                keys(spec::ROUTE_OPTIONS, out);
            }
            _ => {}
        }
    }
    let mut all = Vec::new();
    keys(spec::ROOT.fields, &mut all);
    for k in all {
        assert!(
            KITCHEN_SINK.contains(&format!("{k}:")),
            "the kitchen sink lacks `{k}`"
        );
    }
    let c = load_str(KITCHEN_SINK, "/etc/airlock/airlock.yaml").unwrap_or_else(|d| panic!("{d}"));
    // Spot checks that values land where they belong.
    assert_eq!(c.sandbox.limits.open_files, 64);
    assert!(c.credentials[0].plain_http);
    assert_eq!(c.sandbox.filesystem.deny_write, [".envrc"]);
    assert_eq!(c.tools["bash"].approval, Approval::Required);
    assert_eq!(
        c.agents["a"].constraints["bash"].max_output,
        Some(ByteSize(512))
    );
    let audit = c.audit.as_ref().expect("audit section");
    assert_eq!(audit.export, AuditExport::Syslog);
    assert_eq!(audit.redact_fields, ["password"]);
    let g = c.gateway.unwrap();
    assert!(!g.agent_tls && g.assertion_ttl == Duration::from_secs(30));
    let k = c.connector.unwrap();
    assert_eq!(
        (k.links, k.name.as_deref(), k.server_name.as_deref()),
        (3, Some("conn-1"), Some("gw.internal"))
    );
    assert_eq!(k.proxy.as_deref(), Some("http://proxy.example.com:3128/"));
    assert_eq!(c.worker.unwrap().concurrency, 4);
}

#[test]
fn an_unreadable_file_is_one_error_without_a_position() {
    let d = load_file(std::path::Path::new("/nonexistent/airlock.yaml")).unwrap_err();
    assert_eq!(d.len(), 1);
    assert_eq!((d.items[0].line, d.items[0].column), (0, 0));
    assert!(
        d.to_string()
            .starts_with("/nonexistent/airlock.yaml: error: cannot read the file: "),
        "{d}"
    );
}
