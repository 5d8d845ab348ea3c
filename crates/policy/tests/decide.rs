//! Decisions against a config loaded by the real loader.

use airlock_config::{load_str, Config, Constraint, HttpRoute};
use airlock_policy::{call_hash, Decision, Policy, PolicyError};
use serde_json::json;

const YAML: &str = r#"
version: 1
tools:
  read: { kind: agent.read }
  grep: { kind: agent.grep }
  git_read_file:
    kind: git.read_file
    repos: { service-a: /srv/a.git, service-b: /srv/b.git }
  api:
    kind: http.request
    base_url: https://api.intra.example.com
    routes:
      - { method: POST, path: /deploy }
      - { method: GET, path: "/status/{id}" }
    approval: required
agents:
  ci:
    allowed_tools: [git_read_file, api, read]
    constraints:
      git_read_file: { repos: [service-a] }
      api: { routes: ["GET /status/{id}"] }
  reviewer:
    allowed_tools: [grep]
"#;

fn policy() -> Policy {
    Policy::compile(&load_str(YAML, "test.yaml").expect("valid config")).expect("compiles")
}

#[test]
fn allowed_tool_is_allowed_with_its_rule() {
    let p = policy();
    let d = p.decide("ci", "read", &json!({"path": "a.txt"}));
    assert_eq!(d.label(), "allow");
    assert_eq!(d.rule(), "agents.ci.allowed_tools[read]");
}

#[test]
fn tools_are_listed_only_to_agents_that_may_call_them() {
    let p = policy();
    let ci: Vec<&str> = p.grants("ci").map(|g| g.name()).collect();
    assert_eq!(ci, ["git_read_file", "api", "read"]);
    let rev: Vec<&str> = p.grants("reviewer").map(|g| g.name()).collect();
    assert_eq!(rev, ["grep"]);
    assert_eq!(p.grants("nobody").count(), 0);
}

#[test]
fn unlisted_undeclared_and_unknown_agent_are_denied_with_reasons() {
    let p = policy();
    match p.decide("reviewer", "read", &json!({})) {
        Decision::Deny { rule, reason } => {
            assert_eq!(&*rule, "agents.reviewer.allowed_tools");
            assert!(
                reason.contains("not allowed for agent `reviewer`"),
                "{reason}"
            );
        }
        d => panic!("{d:?}"),
    }
    match p.decide("ci", "rm_rf", &json!({})) {
        Decision::Deny { reason, .. } => assert!(reason.contains("no tool named `rm_rf`")),
        d => panic!("{d:?}"),
    }
    match p.decide("mallory", "read", &json!({})) {
        Decision::Deny { rule, .. } => assert_eq!(&*rule, "agents"),
        d => panic!("{d:?}"),
    }
}

#[test]
fn constrained_repo_is_enforced_even_if_the_tool_would_accept_it() {
    let p = policy();
    assert_eq!(
        p.decide(
            "ci",
            "git_read_file",
            &json!({"repo": "service-a", "path": "x"})
        )
        .label(),
        "allow"
    );
    match p.decide(
        "ci",
        "git_read_file",
        &json!({"repo": "service-b", "path": "x"}),
    ) {
        Decision::Deny { rule, reason } => {
            assert_eq!(&*rule, "agents.ci.constraints.git_read_file");
            assert!(reason.contains("allowed: service-a"), "{reason}");
        }
        d => panic!("{d:?}"),
    }
    // Missing or mistyped repo fails closed.
    assert_eq!(
        p.decide("ci", "git_read_file", &json!({"path": "x"}))
            .label(),
        "deny"
    );
    assert_eq!(
        p.decide("ci", "git_read_file", &json!({"repo": ["service-a"]}))
            .label(),
        "deny"
    );
}

#[test]
fn constrained_routes_are_enforced_and_approval_names_the_exact_call() {
    let p = policy();
    let post = json!({"method": "POST", "path": "/deploy"});
    assert_eq!(
        p.decide("ci", "api", &post).label(),
        "deny",
        "route narrowed away"
    );
    let get = json!({"method": "GET", "path": "/status/42"});
    match p.decide("ci", "api", &get) {
        Decision::NeedsApproval { call_hash: h, rule } => {
            assert_eq!(h, call_hash("api", &get));
            assert_eq!(&*rule, "tools.api.approval");
        }
        d => panic!("{d:?}"),
    }
    let traversal = json!({"method": "GET", "path": "/status/42/../../deploy"});
    assert_eq!(p.decide("ci", "api", &traversal).label(), "deny");
}

#[test]
fn a_constraint_that_widens_or_names_unknown_tools_is_refused() {
    let base: Config = load_str(YAML, "t.yaml").unwrap();

    let mut c = base.clone();
    c.agents.get_mut("ci").unwrap().constraints.insert(
        "git_read_file".into(),
        Constraint {
            repos: Some(vec!["service-z".into()]),
            ..Default::default()
        },
    );
    assert!(matches!(
        Policy::compile(&c),
        Err(PolicyError::WideningConstraint { field: "repos", .. })
    ));

    let mut c = base.clone();
    c.agents.get_mut("ci").unwrap().constraints.insert(
        "api".into(),
        Constraint {
            routes: Some(vec![HttpRoute {
                method: "DELETE".into(),
                path: "/deploy".into(),
                body: None,
            }]),
            ..Default::default()
        },
    );
    assert!(matches!(
        Policy::compile(&c),
        Err(PolicyError::WideningConstraint {
            field: "routes",
            ..
        })
    ));

    let mut c = base.clone();
    c.agents
        .get_mut("ci")
        .unwrap()
        .allowed_tools
        .push("ghost".into());
    assert!(matches!(
        Policy::compile(&c),
        Err(PolicyError::UnknownTool { .. })
    ));

    let mut c = base;
    c.agents
        .get_mut("reviewer")
        .unwrap()
        .constraints
        .insert("read".into(), Constraint::default());
    assert!(matches!(
        Policy::compile(&c),
        Err(PolicyError::ConstraintForUnlistedTool { .. })
    ));
}
