//! Broken configs, each with the exact line, column and message of every
//! error the loader must report (all of them, in file order).

use airlock_config::{load_bytes, load_str, load_str_with, LoadOptions};

/// Loads `src` and asserts the complete list of errors.
fn expect(src: &str, want: &[(usize, usize, &str)]) {
    let diags = match load_str(src, "airlock.yaml") {
        Ok(_) => panic!("config was accepted:\n{src}"),
        Err(d) => d,
    };
    let got: Vec<(usize, usize, &str)> = diags
        .items
        .iter()
        .map(|d| (d.line, d.column, d.message.as_str()))
        .collect();
    assert_eq!(got, want, "\nfull report:\n{diags}");
    for d in &diags.items {
        assert_eq!(d.file, "airlock.yaml");
        assert!(!d.help.is_empty(), "no fix offered for {d}");
    }
}

/// The help of the only error.
fn help(src: &str) -> String {
    let d = load_str(src, "airlock.yaml").unwrap_err();
    assert_eq!(d.len(), 1, "{d}");
    d.items[0].help.clone()
}

#[test]
fn empty_file() {
    expect("", &[(1, 1, "the file is empty")]);
    expect("~\n", &[(1, 1, "the file is empty")]);
}

#[test]
fn suggestions_and_valid_keys_are_in_the_help() {
    assert_eq!(
        help("version: 1\nsandbx: {}\n"),
        "did you mean `sandbox`? valid keys in the top level: `version`, `sandbox`, `credentials`, `tools`, `agents`, `audit`, `gateway`, `connector` and `worker`"
    );
    assert_eq!(
        help("version: 1\nsandbox: { limits: { memroy: 1GiB } }\n"),
        "did you mean `memory`? valid keys in `sandbox.limits`: `memory`, `pids`, `cpu_seconds`, `timeout`, `output`, `tmp_size`, `open_files` and `file_size`"
    );
    assert_eq!(
        help("version: 1\ntools: { g: { kind: git.log, repos: { a: /a } } }\nagents: { x: { allowed_tools: [gg] } }\n"),
        "did you mean `g`? declared tools: `g`"
    );
    assert_eq!(
        help("version: 1\nsandbox: { limits: { output: 256KB } }\n"),
        "write `256KiB` for binary units or the exact number of bytes"
    );
    assert!(help("version: 1\ntools: { r: { kind: agent.reed } }\n")
        .starts_with("did you mean `agent.read`?"));
}

#[test]
fn display_and_json_forms() {
    let d = load_str("version: 1\nsandbx: {}\n", "dir/airlock.yaml").unwrap_err();
    let text = d.to_string();
    assert!(
        text.starts_with("dir/airlock.yaml:2:1: error: unknown key `sandbx` in the top level\n  help: did you mean `sandbox`?"),
        "{text}"
    );
    let j = d.to_json();
    assert_eq!(j["valid"], false);
    assert_eq!(j["errors"][0]["file"], "dir/airlock.yaml");
    assert_eq!(j["errors"][0]["line"], 2);
    assert_eq!(j["errors"][0]["column"], 1);
    assert_eq!(
        j["errors"][0]["message"],
        "unknown key `sandbx` in the top level"
    );
    assert!(j["errors"][0]["help"]
        .as_str()
        .unwrap()
        .contains("`sandbox`"));
}

#[test]
fn unresolvable_secrets_are_reported_by_location() {
    let src = "version: 1\n\
credentials:\n  - { host: a.example.com, header: X-Key, value: \"k ${env:AIRLOCK_TEST_SURELY_UNSET}\" }\n\
worker: { environment_id: e, api_key: \"${file:/nonexistent/airlock-key}\" }\n";
    // Syntax alone is fine.
    load_str(src, "airlock.yaml").unwrap();
    let d = load_str_with(
        src,
        "airlock.yaml",
        LoadOptions {
            check_secrets: true,
        },
    )
    .unwrap_err();
    let got: Vec<_> = d
        .items
        .iter()
        .map(|d| (d.line, d.column, d.message.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (3, 50, "cannot resolve secret ${env:AIRLOCK_TEST_SURELY_UNSET}: environment variable `AIRLOCK_TEST_SURELY_UNSET` is not set"),
            (4, 39, "cannot resolve secret ${file:/nonexistent/airlock-key}: cannot read secret file `/nonexistent/airlock-key`: entity not found"),
        ]
    );
}

#[test]
fn not_utf8() {
    let d = load_bytes(
        b"version: 1\nsandbox: \xff\n",
        "airlock.yaml",
        LoadOptions::default(),
    )
    .unwrap_err();
    assert_eq!((d.items[0].line, d.items[0].column), (2, 10));
    assert_eq!(d.items[0].message, "the file is not valid UTF-8");
}

#[test]
fn alias_explosion_is_refused() {
    let mut src = String::from("version: 1\na0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..8 {
        let p = i - 1;
        src.push_str(&format!(
            "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    let d = load_str(&src, "airlock.yaml").unwrap_err();
    assert_eq!(d.len(), 1, "{d}");
    assert!(d.items[0].message.contains("expands to more than"), "{d}");
}

#[test]
fn deep_nesting_is_refused_without_overflow() {
    // 100 levels: refused by airlock's own limit.
    let src = format!("version: 1\nx: {}{}\n", "[".repeat(100), "]".repeat(100));
    let d = load_str(&src, "airlock.yaml").unwrap_err();
    assert_eq!(d.len(), 1, "{d}");
    assert_eq!(d.items[0].message, "values nested more than 64 levels deep");
    // 5000 levels: refused by the parser's recursion limit, still one clear error.
    let src = format!("version: 1\nx: {}{}\n", "[".repeat(5000), "]".repeat(5000));
    let d = load_str(&src, "airlock.yaml").unwrap_err();
    assert_eq!(d.len(), 1, "{d}");
    assert!(d.items[0].message.contains("recursion limit"), "{d}");
}

#[test]
fn a_secret_in_clear_is_never_echoed() {
    for src in [
        "version: 1\nworker: { environment_id: e, api_key: sk-live-SENTINEL123 }\n",
        "version: 1\nworker: { environment_id: e, api_key: 12345678 }\n",
        "version: 1\nagents: { a: { keys: [SENTINEL123] } }\n",
        "version: 1\nconnector: { gateway: g:1, tunnel: t, token: \"tok-SENTINEL123 ${env:}\", ca: /a, client_cert: /b, client_key: /c }\n",
    ] {
        let d = load_str(src, "airlock.yaml").unwrap_err();
        let all = format!("{d}{}", d.to_json());
        assert!(!all.contains("SENTINEL123") && !all.contains("12345678"), "{all}");
    }
}

#[test]
fn unknown_top_level_key_suggests() {
    expect(
        r#"version: 1
sandbx: {}
"#,
        &[(2, 1, "unknown key `sandbx` in the top level")],
    );
}

#[test]
fn misplaced_top_level_key_names_its_section() {
    expect(
        r#"version: 1
network: { allow: [x.com] }
"#,
        &[(2, 1, "unknown key `network` in the top level")],
    );
}

#[test]
fn unknown_key_in_filesystem() {
    expect(
        r#"version: 1
sandbox:
  filesystem:
    deny_reads: ["~/.ssh"]
"#,
        &[(4, 5, "unknown key `deny_reads` in `sandbox.filesystem`")],
    );
}

#[test]
fn unknown_key_in_limits() {
    expect(
        r#"version: 1
sandbox:
  limits: { memroy: 1GiB }
"#,
        &[(3, 13, "unknown key `memroy` in `sandbox.limits`")],
    );
}

#[test]
fn unknown_key_in_tool_belongs_to_other_kind() {
    expect(
        r#"version: 1
tools:
  bash: { kind: agent.bash, max_rows: 3 }
"#,
        &[(3, 29, "unknown key `max_rows` in tool `bash`")],
    );
}

#[test]
fn unknown_key_in_agent() {
    expect(
        r#"version: 1
tools: { read: { kind: agent.read } }
agents:
  ci:
    allowed_tool: [read]
"#,
        &[(5, 5, "unknown key `allowed_tool` in agent `ci`")],
    );
}

#[test]
fn unknown_key_in_audit_without_suggestion() {
    expect(
        r#"version: 1
audit:
  directory_of_logs: /x
"#,
        &[(3, 3, "unknown key `directory_of_logs` in `audit`")],
    );
}

#[test]
fn unknown_key_in_gateway() {
    expect(
        r#"version: 1
gateway:
  state: /s.db
  tls_cert: /c.pem
  tls_key: /k.pem
  listn: 0.0.0.0:8443
"#,
        &[(6, 3, "unknown key `listn` in `gateway`")],
    );
}

#[test]
fn unknown_key_in_route_and_no_form() {
    expect(
        r#"version: 1
connector:
  gateway: gw.example.com:7443
  tunnel: corp
  token: ${env:TOKEN}
  ca: /ca.pem
  client_cert: /c.pem
  client_key: /k.pem
  routes:
    docs: { uri: "http://127.0.0.1:8000/mcp" }
"#,
        &[
            (
                10,
                5,
                "route `docs` sets none of `url`, `command` or `builtin`",
            ),
            (10, 13, "unknown key `uri` in route `docs`"),
        ],
    );
}

#[test]
fn section_of_wrong_type() {
    expect(
        r#"version: 1
sandbox: [filesystem]
"#,
        &[(2, 10, "`sandbox` must be a mapping of keys, found a list")],
    );
}

#[test]
fn list_of_wrong_type() {
    expect(
        r#"version: 1
sandbox:
  network:
    allow: api.github.com
"#,
        &[
            (4, 12, "expected a list (`[a, b]` or one `- item` per line), found the string `api.github.com`"),
        ],
    );
}

#[test]
fn boolean_of_wrong_type() {
    expect(
        r#"version: 1
gateway:
  state: /s.db
  tls_cert: /c.pem
  tls_key: /k.pem
  agent_tls: yes
"#,
        &[(6, 14, "expected `true` or `false`, found the string `yes`")],
    );
}

#[test]
fn number_of_wrong_type() {
    expect(
        r#"version: 1
sandbox:
  limits:
    pids: "256"
    open_files: 0
"#,
        &[
            (4, 11, "expected a whole number ≥ 1, found the string `256`"),
            (5, 17, "`0` is less than 1"),
        ],
    );
}

#[test]
fn size_decimal_unit_is_ambiguous() {
    expect(
        r#"version: 1
sandbox:
  limits: { output: 256KB }
"#,
        &[(3, 21, "`256KB` is ambiguous (1000 or 1024?)")],
    );
}

#[test]
fn size_negative() {
    expect(
        r#"version: 1
sandbox:
  limits: { memory: -1MiB }
"#,
        &[(3, 21, "`-1MiB` is not a size")],
    );
}

#[test]
fn duration_without_unit() {
    expect(
        r#"version: 1
sandbox:
  limits: { timeout: 120 }
"#,
        &[(3, 22, "`120` has no unit")],
    );
}

#[test]
fn duration_in_words() {
    expect(
        r#"version: 1
sandbox:
  limits: { timeout: 2 minutes }
"#,
        &[(3, 22, "`2 minutes` is not a duration")],
    );
}

#[test]
fn host_wildcard_without_dot() {
    expect(
        r#"version: 1
sandbox:
  network:
    allow: ["*foo.com"]
"#,
        &[(4, 13, "`*foo.com` uses `*` in the middle of a name")],
    );
}

#[test]
fn host_wildcard_in_the_middle() {
    expect(
        r#"version: 1
sandbox:
  network:
    allow: ["a.*.com"]
"#,
        &[(4, 13, "`a.*.com` uses `*` in the middle of a name")],
    );
}

#[test]
fn host_port_out_of_range() {
    expect(
        r#"version: 1
sandbox:
  network:
    deny: ["foo.com:99999"]
"#,
        &[(4, 12, "`99999` in `foo.com:99999` is not a port")],
    );
}

#[test]
fn host_written_as_url() {
    expect(
        r#"version: 1
sandbox:
  network:
    allow: ["https://api.github.com/"]
"#,
        &[(4, 13, "`https://api.github.com/` looks like a URL")],
    );
}

#[test]
fn cidr_bad_and_host_bits() {
    expect(
        r#"version: 1
sandbox:
  network:
    allow_private: [10.0.0.1, 10.1.2.3/8, nonsense]
"#,
        &[
            (4, 21, "`10.0.0.1` is not a CIDR"),
            (4, 31, "`10.1.2.3/8` has host bits set after the prefix"),
            (4, 43, "`nonsense` is not a CIDR"),
        ],
    );
}

#[test]
fn bad_urls() {
    expect(
        r#"version: 1
tools:
  api:
    kind: http.request
    base_url: ftp://files.example.com
    routes: [{ method: GET, path: /x }]
  api2:
    kind: http.request
    base_url: not a url
    routes: [{ method: GET, path: /x }]
"#,
        &[
            (
                5,
                15,
                "`ftp://files.example.com` is a `ftp:` URL, not http or https",
            ),
            (
                9,
                15,
                "`not a url` is not a URL (relative URL without a base)",
            ),
        ],
    );
}

#[test]
fn enum_typo_suggests() {
    expect(
        r#"version: 1
sandbox:
  network:
    mode: enforcing
"#,
        &[(4, 11, "`enforcing` is not a valid value here")],
    );
}

#[test]
fn undeclared_tool_suggests() {
    expect(
        r#"version: 1
tools:
  git_read_file: { kind: git.read_file, repos: { a: /srv/a.git } }
agents:
  ci:
    allowed_tools: [git_readfile, deploy]
"#,
        &[
            (
                6,
                21,
                "agent `ci` is allowed tool `git_readfile`, which is not declared under `tools:`",
            ),
            (
                6,
                35,
                "agent `ci` is allowed tool `deploy`, which is not declared under `tools:`",
            ),
        ],
    );
}

#[test]
fn loosened_size_constraint() {
    expect(
        r#"version: 1
tools:
  git_read_file: { kind: git.read_file, repos: { a: /srv/a.git }, max_file_size: 256KiB }
agents:
  ci:
    allowed_tools: [git_read_file]
    constraints:
      git_read_file: { max_file_size: 1MiB }
"#,
        &[(
            8,
            39,
            "`max_file_size: 1MiB` loosens tool `git_read_file`'s own limit of 256KiB",
        )],
    );
}

#[test]
fn loosened_timeout_and_rows() {
    expect(
        r#"version: 1
tools:
  bash: { kind: agent.bash, timeout: 30s }
  db:
    kind: postgres.query
    dsn: ${env:PG_DSN}
    sql: SELECT 1
    max_rows: 5
agents:
  ci:
    allowed_tools: [bash, db]
    constraints:
      bash: { timeout: 2m }
      db: { max_rows: 6, timeout: 5s }
"#,
        &[
            (
                13,
                24,
                "`timeout: 2m` loosens tool `bash`'s own limit of 30s",
            ),
            (14, 23, "`max_rows: 6` loosens tool `db`'s own limit of 5"),
        ],
    );
}

#[test]
fn constraint_field_not_applicable() {
    expect(
        r#"version: 1
tools:
  read: { kind: agent.read }
agents:
  ci:
    allowed_tools: [read]
    constraints:
      read: { max_rows: 1, repos: [a] }
"#,
        &[
            (
                8,
                15,
                "`max_rows` does not apply to tool `read` (kind `agent.read`)",
            ),
            (
                8,
                28,
                "`repos` does not apply to tool `read` (kind `agent.read`)",
            ),
        ],
    );
}

#[test]
fn constraint_repo_not_in_tool() {
    expect(
        r#"version: 1
tools:
  git: { kind: git.log, repos: { service-a: /a.git, service-b: /b.git } }
agents:
  ci:
    allowed_tools: [git]
    constraints:
      git: { repos: [service-a, service-c] }
"#,
        &[(
            8,
            33,
            "repository `service-c` is not one of tool `git`'s repos",
        )],
    );
}

#[test]
fn constraint_route_not_in_tool() {
    expect(
        r#"version: 1
tools:
  api:
    kind: http.request
    base_url: https://api.example.com
    routes: [{ method: GET, path: /status }]
agents:
  ci:
    allowed_tools: [api]
    constraints:
      api: { routes: ["POST /status"] }
"#,
        &[(
            11,
            23,
            "route `POST /status` is not one of tool `api`'s routes",
        )],
    );
}

#[test]
fn constraint_on_tool_not_allowed_or_not_declared() {
    expect(
        r#"version: 1
tools:
  read: { kind: agent.read }
  glob: { kind: agent.glob }
agents:
  ci:
    allowed_tools: [read]
    constraints:
      glob: { max_results: 5 }
      nope: { max_results: 5 }
"#,
        &[
            (
                9,
                7,
                "constraint for tool `glob`, which agent `ci` is not allowed to call",
            ),
            (
                10,
                7,
                "constraint for tool `nope`, which is not declared under `tools:`",
            ),
        ],
    );
}

#[test]
fn secret_syntax_empty_env() {
    expect(
        r#"version: 1
credentials:
  - host: api.github.com
    header: Authorization
    value: "Bearer ${env:}"
"#,
        &[(
            5,
            12,
            "bad secret reference: `${env:}` does not name an environment variable",
        )],
    );
}

#[test]
fn secret_syntax_unknown_source_and_relative_file() {
    expect(
        r#"version: 1
tools:
  db: { kind: postgres.query, dsn: "${vault:pg}", sql: SELECT 1 }
  db2: { kind: postgres.query, dsn: "${file:pg.txt}", sql: SELECT 1 }
"#,
        &[
            (3, 36, "bad secret reference: `${vault:pg}` is not a secret reference"),
            (4, 37, "bad secret reference: `${file:pg.txt}` must be an absolute path, like `${file:/run/secrets/token}`"),
        ],
    );
}

#[test]
fn secret_in_clear_is_refused() {
    expect(
        r#"version: 1
worker:
  environment_id: env_1
  api_key: sk-ant-REDACTME
"#,
        &[(
            4,
            12,
            "a secret is written in clear in the file (its value is not shown here)",
        )],
    );
}

#[test]
fn yaml_syntax_error() {
    expect(
        r#"version: 1
tools: [read, glob
agents: {}
"#,
        &[(
            3,
            7,
            "YAML syntax error: illegal placement of ':' indicator",
        )],
    );
}

#[test]
fn duplicate_keys() {
    expect(
        r#"version: 1
audit:
  dir: /a
  dir: /b
tools:
  read: { kind: agent.read }
  read: { kind: agent.write }
"#,
        &[
            (4, 3, "duplicate key `dir` (first set at line 3)"),
            (7, 3, "duplicate key `read` (first set at line 6)"),
        ],
    );
}

#[test]
fn tab_indentation() {
    expect(
        r#"version: 1
sandbox:
	limits: {}
"#,
        &[(3, 1, "tab character in indentation")],
    );
}

#[test]
fn comments_only_is_empty() {
    expect(
        r#"# nothing here
"#,
        &[(1, 1, "the file is empty")],
    );
}

#[test]
fn wrong_version() {
    expect(
        r#"version: 2
"#,
        &[(1, 10, "unsupported config version 2")],
    );
}

#[test]
fn missing_version() {
    expect(
        r#"sandbox: {}
"#,
        &[(1, 1, "the top level is missing `version`")],
    );
}

#[test]
fn version_as_string() {
    expect(
        r#"version: "one"
"#,
        &[(1, 10, "expected the version number, found the string `one`")],
    );
}

#[test]
fn missing_required_keys() {
    expect(
        r#"version: 1
tools:
  db: { kind: postgres.query }
  thing: { description: no kind }
"#,
        &[
            (3, 3, "tool `db` is missing `dsn`"),
            (3, 3, "tool `db` is missing `sql`"),
            (4, 3, "tool `thing` is missing `kind`"),
        ],
    );
}

#[test]
fn tool_kind_typo() {
    expect(
        r#"version: 1
tools:
  read: { kind: agent.reed }
"#,
        &[(3, 17, "`agent.reed` is not a tool kind")],
    );
}

#[test]
fn sql_placeholders_must_match_params() {
    expect(
        r#"version: 1
tools:
  db:
    kind: postgres.query
    dsn: ${env:PG_DSN}
    sql: SELECT * FROM t WHERE a = $1 AND b = $2 AND c = '$9'
    params: [{ name: a, type: integer }]
  db2:
    kind: postgres.query
    dsn: ${env:PG_DSN}
    sql: SELECT $1, $2
    params: [{ name: a, type: integer }, { name: a, type: text }]
"#,
        &[
            (6, 10, "the statement uses `$2` but declares 1 param(s)"),
            (8, 3, "param `a` is declared twice"),
        ],
    );
}

#[test]
fn route_with_two_forms_and_https_url() {
    expect(
        r#"version: 1
connector:
  gateway: gw.example.com:7443
  tunnel: corp
  token: ${env:TOKEN}
  ca: /ca.pem
  client_cert: /c.pem
  client_key: /k.pem
  routes:
    both: { url: "http://127.0.0.1:1/mcp", command: [server] }
    tls: { url: "https://127.0.0.1:1/mcp" }
    empty: { command: [] }
"#,
        &[
            (10, 5, "route `both` sets `url` and `command` at once"),
            (11, 17, "route URLs are `http://` only"),
            (12, 23, "route `empty` has an empty command"),
        ],
    );
}

#[test]
fn agent_keys_bad_digest_and_shared() {
    expect(
        r#"version: 1
agents:
  a: { keys: ["${env:SHARED_KEY}"] }
  b: { keys: ["sha256:abc"] }
  c: { keys: ["${env:SHARED_KEY}"] }
"#,
        &[
            (4, 15, "`sha256:` must be followed by 64 hex digits"),
            (5, 15, "agent `c` uses the same key as agent `a`"),
        ],
    );
}

#[test]
fn audit_signing_key_inside_audit_dir() {
    expect(
        r#"version: 1
audit:
  dir: /var/lib/airlock/audit
  signing_key: /var/lib/airlock/audit/key
"#,
        &[(4, 16, "the audit signing key is inside the audit directory")],
    );
}

#[test]
fn gateway_limits() {
    expect(
        r#"version: 1
gateway:
  listen: 0.0.0.0:8443
  tunnel_listen: 0.0.0.0:8443
  state: /s.db
  tls_cert: /c.pem
  tls_key: /k.pem
  assertion_ttl: 10m
  ping_interval: 0s
"#,
        &[
            (4, 18, "`tunnel_listen` is the same address as `listen`"),
            (8, 18, "`assertion_ttl` must be between 1s and 300s"),
            (9, 18, "`ping_interval` must be longer than 0"),
        ],
    );
}

#[test]
fn connector_values() {
    expect(
        r#"version: 1
connector:
  gateway: gw.example.com
  tunnel: corp
  token: ${env:TOKEN}
  ca: ~/ca.pem
  client_cert: /c.pem
  client_key: /k.pem
  links: 100
  proxy: https://proxy:3128
"#,
        &[
            (3, 12, "`gw.example.com` is not an address `host:port`"),
            (6, 7, "`~/ca.pem`: `~` is not expanded in this path"),
            (10, 10, "`proxy` must be an `http://` CONNECT proxy"),
        ],
    );
}

#[test]
fn two_documents() {
    expect(
        r#"version: 1
---
version: 1
"#,
        &[(2, 1, "a second YAML document (`---`) in the file")],
    );
}

#[test]
fn invalid_names() {
    expect(
        r#"version: 1
tools:
  "bad name": { kind: agent.read }
agents:
  "": {}
"#,
        &[
            (3, 3, "`bad name` is not a valid tool name"),
            (5, 3, "`` is not a valid agent name"),
        ],
    );
}

#[test]
fn http_routes_checked() {
    expect(
        r#"version: 1
tools:
  api:
    kind: http.request
    base_url: "https://user:pw@api.example.com/v1?x=1"
    routes:
      - { method: get, path: /a }
      - { method: GET, path: "../etc" }
      - { method: GET, path: /b }
      - { method: GET, path: /b }
    auth: { header: "Bad Header", value: "${env:T}" }
"#,
        &[
            (5, 15, "`base_url` has a query or fragment"),
            (5, 15, "`base_url` carries credentials"),
            (7, 19, "`get` is not a valid value here"),
            (8, 30, "`../etc` is not a route path"),
            (11, 21, "`Bad Header` is not an HTTP header name"),
        ],
    );
}

#[test]
fn multiple_errors_in_one_file() {
    expect(
        r#"version: 1
sandbox:
  network:
    alow: [x.com]
  limits: { memory: lots, timeout: 5 }
tools:
  read: { kind: agent.read, max_bytes: 1GB }
agents:
  ci:
    allowed_tools: [reed]
"#,
        &[
            (4, 5, "unknown key `alow` in `sandbox.network`"),
            (5, 21, "`lots` is not a size"),
            (5, 36, "`5` has no unit"),
            (7, 40, "`1GB` is ambiguous (1000 or 1024?)"),
            (
                10,
                21,
                "agent `ci` is allowed tool `reed`, which is not declared under `tools:`",
            ),
        ],
    );
}

#[test]
fn empty_filesystem_entries_and_duplicate_credentials() {
    expect(
        r#"version: 1
sandbox:
  filesystem: { deny_read: [""] }
credentials:
  - { host: api.github.com, header: Authorization, value: "Bearer ${env:A}" }
  - { host: api.github.com, header: authorization, value: "Bearer ${env:B}" }
"#,
        &[
            (3, 29, "an empty value"),
            (6, 5, "a second credential for host `api.github.com` and header `authorization` (the first is entry 1)"),
        ],
    );
}

/// Every truncation, every deleted line and every line with its first `:`
/// removed, every line dedented, of the example: the loader never
/// panics, and every error points inside the file.
#[test]
fn mutations_never_panic_and_errors_point_into_the_file() {
    let src = airlock_config::EXAMPLE;
    let lines: Vec<&str> = src.lines().collect();
    let mut variants: Vec<String> = Vec::new();
    for (i, _) in src.char_indices().step_by(3) {
        variants.push(src[..i].to_string());
    }
    for i in 0..lines.len() {
        let mut v = lines.clone();
        v.remove(i);
        variants.push(v.join("\n"));
        let mut v = lines.clone();
        let no_colon = v[i].replacen(':', " ", 1);
        v[i] = &no_colon;
        variants.push(v.join("\n"));
        let mut v = lines.clone();
        let dedent = v[i].trim_start().to_string();
        v[i] = &dedent;
        variants.push(v.join("\n"));
    }
    let mut errors = 0;
    for v in &variants {
        if let Err(d) = load_str(v, "airlock.yaml") {
            assert!(!d.is_empty());
            let n = v.lines().count().max(1);
            for e in &d.items {
                assert!(
                    e.line >= 1 && e.line <= n + 1 && e.column >= 1,
                    "{e} is outside the file:\n{v}"
                );
                assert!(!e.message.is_empty() && !e.help.is_empty(), "{e}");
            }
            errors += 1;
        }
    }
    assert!(errors > variants.len() / 2, "most mutations must be caught");
}

#[test]
fn merge_keys_are_refused_with_a_reason() {
    let src = "version: 1\nx: &d { timeout: 5s }\ntools:\n  bash: { kind: agent.bash, <<: *d }\n";
    let d = load_str(src, "airlock.yaml").unwrap_err();
    let got: Vec<_> = d
        .items
        .iter()
        .map(|d| (d.line, d.column, d.message.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (2, 1, "unknown key `x` in the top level"),
            (4, 29, "unknown key `<<` in tool `bash`"),
        ]
    );
    assert!(
        d.items[1]
            .help
            .starts_with("YAML merge keys are not supported"),
        "{d}"
    );
}
