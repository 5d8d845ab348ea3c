//! The tunnel sections' newer keys: a `builtin:` route's `workdir` (resolved
//! against the config file's directory, checked to exist, with file:line
//! otherwise) and the gateway's `admin_listen` / `admin_key`.

use airlock_config::{load_file, load_str, AgentKey, Route};

const CONNECTOR: &str = "version: 1
connector:
  gateway: gw.example.com:7443
  tunnel: corp
  token: \"${env:TOKEN}\"
  ca: /ca.pem
  client_cert: /cc.pem
  client_key: /ck.pem
  identity_key: 3q2+7w0AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=
  routes:
";

#[test]
fn a_builtin_routes_workdir_is_relative_to_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("ws")).unwrap();
    let file = dir.path().join("airlock.yaml");
    std::fs::write(
        &file,
        format!("{CONNECTOR}    tools: {{ builtin: mcp.yaml, workdir: ws }}\n    other: {{ builtin: mcp.yaml }}\n"),
    )
    .unwrap();
    let c = load_file(&file).unwrap_or_else(|d| panic!("{d}"));
    let routes = c.connector.unwrap().routes;
    match &routes["tools"] {
        Route::Builtin { config, workdir } => {
            assert_eq!(config, &dir.path().join("mcp.yaml"));
            assert_eq!(workdir.as_deref(), Some(dir.path().join("ws").as_path()));
        }
        r => panic!("{r:?}"),
    }
    assert!(matches!(
        &routes["other"],
        Route::Builtin { workdir: None, .. }
    ));
}

#[test]
fn a_missing_or_misplaced_workdir_is_an_error_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("plain"), "").unwrap();
    let file = dir.path().join("airlock.yaml");
    std::fs::write(
        &file,
        format!(
            "{CONNECTOR}    a: {{ builtin: m.yaml, workdir: nope }}\n    b: {{ builtin: m.yaml, workdir: plain }}\n    c: {{ url: \"http://127.0.0.1:1/mcp\", workdir: . }}\n"
        ),
    )
    .unwrap();
    let d = load_file(&file).unwrap_err();
    let got: Vec<(usize, &str)> = d
        .items
        .iter()
        .map(|i| (i.line, i.message.as_str()))
        .collect();
    assert_eq!(got.len(), 3, "{d}");
    assert_eq!(got[0].0, 11);
    assert!(
        got[0].1.starts_with("route `a`: workdir `")
            && got[0].1.contains("nope` cannot be used: No such file"),
        "{d}"
    );
    assert_eq!(got[1].0, 12);
    assert!(got[1].1.ends_with("plain` is not a directory"), "{d}");
    assert_eq!(
        got[2],
        (13, "route `c`: `workdir` applies to `builtin:` routes only")
    );
    for i in &d.items {
        assert!(i.file.ends_with("airlock.yaml") && i.column > 0 && !i.help.is_empty());
    }
}

const GATEWAY: &str = "version: 1
gateway:
  state: /s.db
  tls_cert: /c.pem
  tls_key: /k.pem
";

#[test]
fn the_admin_api_needs_a_key_in_either_form() {
    let d = load_str(
        &format!("{GATEWAY}  admin_listen: 127.0.0.1:8444\n"),
        "a.yaml",
    )
    .unwrap_err();
    assert_eq!(d.len(), 1, "{d}");
    assert_eq!(
        (d.items[0].line, d.items[0].message.as_str()),
        (6, "`admin_listen` needs `admin_key`")
    );
    let d = load_str(
        &format!("{GATEWAY}  listen: 127.0.0.1:8444\n  admin_listen: 127.0.0.1:8444\n  admin_key: \"${{env:K}}\"\n"),
        "a.yaml",
    )
    .unwrap_err();
    assert!(
        d.items[0]
            .message
            .starts_with("`admin_listen` is the same address"),
        "{d}"
    );

    let h = "ab".repeat(32);
    let c = load_str(
        &format!("{GATEWAY}  admin_listen: 127.0.0.1:8444\n  admin_key: sha256:{h}\n"),
        "a.yaml",
    )
    .unwrap_or_else(|d| panic!("{d}"));
    let g = c.gateway.unwrap();
    assert_eq!(g.admin_listen.as_deref(), Some("127.0.0.1:8444"));
    assert!(matches!(g.admin_key, Some(AgentKey::Sha256(b)) if b == [0xab; 32]));
    let c = load_str(&format!("{GATEWAY}  admin_key: \"${{env:K}}\"\n"), "a.yaml").unwrap();
    let g = c.gateway.unwrap();
    assert!(g.admin_listen.is_none() && matches!(g.admin_key, Some(AgentKey::Secret(_))));
}
