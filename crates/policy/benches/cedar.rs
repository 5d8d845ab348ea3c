//! The same 1,000-tool rule set as `decide`, encoded in Cedar and evaluated
//! by the `cedar-policy` authorizer, for comparison. Checks that both give
//! the same allow/deny answers, then times both on the same calls.
//! `cargo bench -p airlock-policy --features cedar-bench --bench cedar`

mod rules;

use std::hint::black_box;
use std::str::FromStr;
use std::time::Instant;

use airlock_config::Config;
use airlock_policy::Policy;
use cedar_policy::{Authorizer, Context, Decision, Entities, EntityUid, PolicySet, Request};
use serde_json::{json, Value};

/// One permit per agent over the group of its tools; one forbid per
/// constrained (agent, tool) unless the arguments fit the constraint.
fn encode(cfg: &Config) -> (PolicySet, Entities) {
    let mut src = String::new();
    let mut parents: std::collections::BTreeMap<&str, Vec<Value>> = Default::default();
    for (agent, a) in &cfg.agents {
        src.push_str(&format!(
            "permit(principal == Agent::\"{agent}\", action == Action::\"call\", resource in Group::\"{agent}\");\n"
        ));
        for t in &a.allowed_tools {
            parents
                .entry(t.as_str())
                .or_default()
                .push(json!({"type": "Group", "id": agent}));
        }
        for (tool, c) in &a.constraints {
            if let Some(repos) = &c.repos {
                let list: Vec<String> = repos.iter().map(|r| format!("\"{r}\"")).collect();
                src.push_str(&format!(
                    "forbid(principal == Agent::\"{agent}\", action == Action::\"call\", resource == Tool::\"{tool}\") unless {{ [{}].contains(context.repo) }};\n",
                    list.join(", ")
                ));
            }
            if let Some(routes) = &c.routes {
                let alts: Vec<String> = routes
                    .iter()
                    .map(|r| {
                        let like = r
                            .path
                            .split('/')
                            .map(|s| if s.starts_with('{') { "*" } else { s })
                            .collect::<Vec<_>>()
                            .join("/");
                        format!(
                            "(context.method == \"{}\" && context.path like \"{like}\")",
                            r.method
                        )
                    })
                    .collect();
                src.push_str(&format!(
                    "forbid(principal == Agent::\"{agent}\", action == Action::\"call\", resource == Tool::\"{tool}\") unless {{ {} }};\n",
                    alts.join(" || ")
                ));
            }
        }
    }
    let entities: Vec<Value> = cfg
        .tools
        .keys()
        .map(|t| {
            json!({"uid": {"type": "Tool", "id": t}, "attrs": {}, "parents": parents.get(t.as_str()).cloned().unwrap_or_default()})
        })
        .chain(cfg.agents.keys().map(|a| json!({"uid": {"type": "Group", "id": a}, "attrs": {}, "parents": []})))
        .collect();
    let policies = PolicySet::from_str(&src).expect("generated Cedar parses");
    let entities = Entities::from_json_value(Value::Array(entities), None).expect("entities parse");
    (policies, entities)
}

/// The same policies split into one set per agent (what an integration
/// would do, since Cedar evaluates every policy of the set it is given).
fn per_agent(policies: &PolicySet) -> std::collections::HashMap<String, PolicySet> {
    let mut out: std::collections::HashMap<String, Vec<String>> = Default::default();
    for p in policies.policies() {
        let text = p.to_string();
        let agent = text
            .split("Agent::\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or("")
            .to_string();
        out.entry(agent).or_default().push(text);
    }
    out.into_iter()
        .map(|(a, ps)| (a, PolicySet::from_str(&ps.join("\n")).expect("reparses")))
        .collect()
}

fn request(agent: &str, tool: &str, args: &Value) -> Request {
    let ctx = json!({
        "repo": args.get("repo").and_then(Value::as_str).unwrap_or(""),
        "method": args.get("method").and_then(Value::as_str).unwrap_or(""),
        "path": args.get("path").and_then(Value::as_str).unwrap_or(""),
    });
    Request::new(
        EntityUid::from_str(&format!("Agent::\"{agent}\"")).unwrap(),
        EntityUid::from_str("Action::\"call\"").unwrap(),
        EntityUid::from_str(&format!("Tool::\"{tool}\"")).unwrap(),
        Context::from_json_value(ctx, None).unwrap(),
        None,
    )
    .unwrap()
}

fn pct(samples: &mut [u64], p: f64) -> u64 {
    samples.sort_unstable();
    samples[((samples.len() as f64 - 1.0) * p) as usize]
}

fn main() {
    let cfg = rules::config();
    let policy = Policy::compile(&cfg).unwrap();
    let t0 = Instant::now();
    let (policies, entities) = encode(&cfg);
    println!(
        "cedar: {} policies built and parsed in {:?}",
        policies.policies().count(),
        t0.elapsed()
    );
    let authorizer = Authorizer::new();
    let calls = rules::calls();
    let requests: Vec<Request> = calls
        .iter()
        .map(|(a, t, args)| request(a, t, args))
        .collect();

    // Same answers (Cedar has no approval outcome; these rules have none).
    for ((a, t, args), req) in calls.iter().zip(&requests) {
        let ours = policy.decide(a, t, args).label() == "allow";
        let theirs = authorizer
            .is_authorized(req, &policies, &entities)
            .decision()
            == Decision::Allow;
        assert_eq!(
            ours, theirs,
            "{a} {t} {args}: airlock {ours}, cedar {theirs}"
        );
    }
    println!("both engines agree on all {} calls", calls.len());

    let split = per_agent(&policies);
    for ((a, _, _), req) in calls.iter().zip(&requests) {
        let full = authorizer
            .is_authorized(req, &policies, &entities)
            .decision();
        assert_eq!(
            full,
            authorizer
                .is_authorized(req, &split[a], &entities)
                .decision()
        );
    }

    let mut ours = Vec::new();
    for _ in 0..50 {
        for (a, t, args) in &calls {
            let s = Instant::now();
            black_box(policy.decide(a, t, args));
            ours.push(s.elapsed().as_nanos() as u64);
        }
    }
    let mut theirs_split = Vec::new();
    for _ in 0..5 {
        for ((a, _, _), req) in calls.iter().zip(&requests) {
            let s = Instant::now();
            black_box(authorizer.is_authorized(req, &split[a], &entities));
            theirs_split.push(s.elapsed().as_nanos() as u64);
        }
    }
    let mut theirs = Vec::new();
    for req in requests.iter().take(512) {
        let s = Instant::now();
        black_box(authorizer.is_authorized(req, &policies, &entities));
        theirs.push(s.elapsed().as_nanos() as u64);
    }
    println!(
        "airlock decide:                          p50 {:>9} ns  p99 {:>9} ns",
        pct(&mut ours, 0.5),
        pct(&mut ours, 0.99)
    );
    println!(
        "cedar, one policy set per agent:         p50 {:>9} ns  p99 {:>9} ns",
        pct(&mut theirs_split, 0.5),
        pct(&mut theirs_split, 0.99)
    );
    println!(
        "cedar, one policy set (512 calls):       p50 {:>9} ns  p99 {:>9} ns",
        pct(&mut theirs, 0.5),
        pct(&mut theirs, 0.99)
    );
    println!(
        "(cedar figures exclude building the Request and Context; airlock's include everything)"
    );
}
