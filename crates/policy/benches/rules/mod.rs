//! The bench rule set shared by the airlock and Cedar benches.

use std::collections::BTreeMap;

use airlock_config::{
    Agent, Approval, Config, Constraint, GitRepos, HttpRequest, HttpRoute, Tool, ToolKind,
};
use serde_json::json;

/// 1,000 tools (git and http alternating), 20 agents each allowed 500 of them,
/// with repo and route constraints on some.
pub fn config() -> Config {
    let mut c = Config::default();
    for i in 0..1000 {
        let kind = if i % 2 == 0 {
            ToolKind::GitReadFile(GitRepos {
                repos: (0..4)
                    .map(|r| (format!("repo{r}"), format!("/srv/{r}.git").into()))
                    .collect(),
                max_file_size: airlock_config::ByteSize::kib(256),
                max_entries: 100,
            })
        } else {
            ToolKind::HttpRequest(HttpRequest {
                base_url: "https://api.intra".parse().unwrap(),
                routes: vec![
                    HttpRoute {
                        method: "GET".into(),
                        path: "/status/{id}".into(),
                        body: None,
                    },
                    HttpRoute {
                        method: "POST".into(),
                        path: "/deploy".into(),
                        body: None,
                    },
                ],
                auth: None,
                max_response_size: airlock_config::ByteSize::kib(256),
                timeout: std::time::Duration::from_secs(10),
            })
        };
        c.tools.insert(
            format!("tool{i:04}"),
            Tool {
                description: None,
                approval: Approval::None,
                kind,
            },
        );
    }
    for a in 0..20 {
        let allowed: Vec<String> = (0..1000)
            .filter(|i| (i + a) % 2 == 0 || i % 3 == 0)
            .map(|i| format!("tool{i:04}"))
            .collect();
        let mut constraints = BTreeMap::new();
        for t in allowed.iter().step_by(3) {
            let i: usize = t[4..].parse().unwrap();
            let con = if i % 2 == 0 {
                Constraint {
                    repos: Some(vec!["repo1".into(), "repo2".into()]),
                    ..Default::default()
                }
            } else {
                Constraint {
                    routes: Some(vec![HttpRoute {
                        method: "GET".into(),
                        path: "/status/{id}".into(),
                        body: None,
                    }]),
                    ..Default::default()
                }
            };
            constraints.insert(t.clone(), con);
        }
        c.agents.insert(
            format!("agent{a:02}"),
            Agent {
                keys: vec![],
                allowed_tools: allowed,
                constraints,
            },
        );
    }
    c
}

/// A fixed mix of calls: every agent, tools of both kinds, some outside
/// the agent's grants or constraints.
pub fn calls() -> Vec<(String, String, serde_json::Value)> {
    (0..4096)
        .map(|n| {
            let a = format!("agent{:02}", n % 20);
            let i = (n * 7919) % 1000;
            let args = if i % 2 == 0 {
                json!({"repo": format!("repo{}", n % 4), "path": "src/lib.rs", "ref": "HEAD"})
            } else {
                json!({"method": if n % 2 == 0 { "GET" } else { "POST" }, "path": format!("/status/{n}")})
            };
            (a, format!("tool{i:04}"), args)
        })
        .collect()
}
