//! Compiling the config into per-agent lookup tables, and the decision.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use airlock_config::{Approval, Config, Constraint, HttpRoute, Tool, ToolKind};
use serde_json::Value;

use crate::canonical::call_hash;
use crate::decision::Decision;

/// A config the policy refuses to run with. The loader checks the same
/// things; the policy checks again because a half-checked policy must never
/// serve (fail closed).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    #[error("agents.{agent}.allowed_tools names `{tool}`, which is not declared under tools:; declare it or remove it from the list")]
    UnknownTool { agent: String, tool: String },
    #[error("agents.{agent}.constraints.{tool}: the tool is not in the agent's allowed_tools; add it there or drop the constraint")]
    ConstraintForUnlistedTool { agent: String, tool: String },
    #[error("agents.{agent}.constraints.{tool}.{field}: {problem}")]
    WideningConstraint {
        agent: String,
        tool: String,
        field: &'static str,
        problem: String,
    },
}

/// One tool one agent may call, with what narrows it.
#[derive(Debug)]
pub struct Grant {
    name: Arc<str>,
    tool: Arc<Tool>,
    constraint: Option<Constraint>,
    /// Repositories the agent may name (git tools), after the constraint.
    repos: Option<HashSet<String>>,
    /// Routes the agent may call (http.request), after the constraint.
    routes: Option<Vec<HttpRoute>>,
    allow_rule: Arc<str>,
    constraint_rule: Arc<str>,
}

impl Grant {
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The tool's declaration.
    pub fn tool(&self) -> &Tool {
        &self.tool
    }
    /// The agent's narrowing of this tool, if any.
    pub fn constraint(&self) -> Option<&Constraint> {
        self.constraint.as_ref()
    }
    pub fn needs_approval(&self) -> bool {
        self.tool.approval == Approval::Required
    }
}

#[derive(Debug, Default)]
struct AgentTable {
    grants: HashMap<Arc<str>, Grant>,
    /// Tool names in config order, for tools/list.
    order: Vec<Arc<str>>,
    not_listed_rule: Arc<str>,
}

/// The compiled policy. Immutable: a reload compiles a new one and swaps it
/// in whole.
#[derive(Debug, Default)]
pub struct Policy {
    agents: HashMap<String, AgentTable>,
    declared: HashSet<String>,
}

impl Policy {
    pub fn compile(config: &Config) -> Result<Policy, PolicyError> {
        let tools: HashMap<&str, Arc<Tool>> = config
            .tools
            .iter()
            .map(|(name, tool)| (name.as_str(), Arc::new(tool.clone())))
            .collect();
        let mut agents = HashMap::new();
        for (agent_name, agent) in &config.agents {
            let mut table = AgentTable {
                not_listed_rule: format!("agents.{agent_name}.allowed_tools").into(),
                ..AgentTable::default()
            };
            for tool_name in &agent.allowed_tools {
                let Some(tool) = tools.get(tool_name.as_str()) else {
                    return Err(PolicyError::UnknownTool {
                        agent: agent_name.clone(),
                        tool: tool_name.clone(),
                    });
                };
                if table.grants.contains_key(tool_name.as_str()) {
                    continue;
                }
                let constraint = agent.constraints.get(tool_name).cloned();
                let (repos, routes) =
                    narrowed_sets(agent_name, tool_name, tool, constraint.as_ref())?;
                let name: Arc<str> = tool_name.as_str().into();
                table.order.push(name.clone());
                table.grants.insert(
                    name.clone(),
                    Grant {
                        name,
                        tool: tool.clone(),
                        constraint,
                        repos,
                        routes,
                        allow_rule: format!("agents.{agent_name}.allowed_tools[{tool_name}]")
                            .into(),
                        constraint_rule: format!("agents.{agent_name}.constraints.{tool_name}")
                            .into(),
                    },
                );
            }
            if let Some(tool) = agent
                .constraints
                .keys()
                .find(|t| !table.grants.contains_key(t.as_str()))
            {
                return Err(PolicyError::ConstraintForUnlistedTool {
                    agent: agent_name.clone(),
                    tool: tool.clone(),
                });
            }
            agents.insert(agent_name.clone(), table);
        }
        Ok(Policy {
            agents,
            declared: config.tools.keys().cloned().collect(),
        })
    }

    pub fn has_agent(&self, agent: &str) -> bool {
        self.agents.contains_key(agent)
    }

    /// The tools `agent` may call, in the order its `allowed_tools` lists
    /// them; empty for an unknown agent.
    pub fn grants<'a>(&'a self, agent: &str) -> impl Iterator<Item = &'a Grant> + 'a {
        let table = self.agents.get(agent);
        table
            .into_iter()
            .flat_map(|t| t.order.iter().filter_map(move |n| t.grants.get(n)))
    }

    pub fn grant(&self, agent: &str, tool: &str) -> Option<&Grant> {
        self.agents.get(agent)?.grants.get(tool)
    }

    /// The decision for one call. `args` must be the tool's canonical form
    /// of the arguments (validated and normalised by the tool first).
    pub fn decide(&self, agent: &str, tool: &str, args: &Value) -> Decision {
        let Some(table) = self.agents.get(agent) else {
            return Decision::Deny {
                rule: "agents".into(),
                reason: format!("agent `{agent}` is not configured; no tool may be called"),
            };
        };
        let Some(grant) = table.grants.get(tool) else {
            let reason = if self.declared.contains(tool) {
                format!("tool `{tool}` is not allowed for agent `{agent}`; call only the tools tools/list shows")
            } else {
                format!("there is no tool named `{tool}`; call only the tools tools/list shows")
            };
            return Decision::Deny {
                rule: table.not_listed_rule.clone(),
                reason,
            };
        };
        if let Some(reason) = grant.argument_violation(args) {
            return Decision::Deny {
                rule: grant.constraint_rule.clone(),
                reason,
            };
        }
        if grant.needs_approval() {
            return Decision::NeedsApproval {
                rule: format!("tools.{tool}.approval").into(),
                call_hash: call_hash(tool, args),
            };
        }
        Decision::Allow {
            rule: grant.allow_rule.clone(),
        }
    }
}

impl Grant {
    /// Re-checks the constraint-bearing arguments (the tool's canonicaliser
    /// checks them too; a decision must not depend on it having done so).
    fn argument_violation(&self, args: &Value) -> Option<String> {
        if let Some(repos) = &self.repos {
            let repo = args.get("repo").and_then(Value::as_str);
            match repo {
                Some(r) if repos.contains(r) => {}
                Some(r) => {
                    let mut allowed: Vec<&str> = repos.iter().map(String::as_str).collect();
                    allowed.sort_unstable();
                    return Some(format!(
                        "repository `{r}` is not allowed here; allowed: {}",
                        allowed.join(", ")
                    ));
                }
                None => return Some("the `repo` argument is required".into()),
            }
        }
        if let Some(routes) = &self.routes {
            let method = args.get("method").and_then(Value::as_str);
            let path = args.get("path").and_then(Value::as_str);
            let (Some(method), Some(path)) = (method, path) else {
                return Some("the `method` and `path` arguments are required".into());
            };
            if !routes.iter().any(|r| r.matches(method, path)) {
                let allowed: Vec<String> = routes
                    .iter()
                    .map(|r| format!("{} {}", r.method, r.path))
                    .collect();
                return Some(format!(
                    "`{method} {path}` is not an allowed route; allowed: {}",
                    allowed.join(", ")
                ));
            }
        }
        None
    }
}

type Narrowed = (Option<HashSet<String>>, Option<Vec<HttpRoute>>);

/// The repo and route sets a constraint leaves, checked to be subsets.
fn narrowed_sets(
    agent: &str,
    tool_name: &str,
    tool: &Tool,
    c: Option<&Constraint>,
) -> Result<Narrowed, PolicyError> {
    let widen = |field: &'static str, problem: String| PolicyError::WideningConstraint {
        agent: agent.to_string(),
        tool: tool_name.to_string(),
        field,
        problem,
    };
    let Some(c) = c else { return Ok((None, None)) };
    let mut repos = None;
    let mut routes = None;
    match &tool.kind {
        ToolKind::GitReadFile(g) | ToolKind::GitListFiles(g) | ToolKind::GitLog(g) => {
            if let Some(list) = &c.repos {
                if let Some(extra) = list.iter().find(|r| !g.repos.contains_key(r.as_str())) {
                    return Err(widen(
                        "repos",
                        format!("`{extra}` is not one of the tool's repos; a constraint may only narrow"),
                    ));
                }
                repos = Some(list.iter().cloned().collect());
            }
            if let Some(m) = c.max_file_size {
                if m > g.max_file_size {
                    return Err(widen(
                        "max_file_size",
                        format!("{m} exceeds the tool's {}", g.max_file_size),
                    ));
                }
            }
            if let Some(m) = c.max_entries {
                if m > g.max_entries {
                    return Err(widen(
                        "max_entries",
                        format!("{m} exceeds the tool's {}", g.max_entries),
                    ));
                }
            }
        }
        ToolKind::HttpRequest(h) => {
            if let Some(list) = &c.routes {
                if let Some(extra) = list.iter().find(|r| !h.routes.contains(r)) {
                    return Err(widen(
                        "routes",
                        format!(
                            "`{} {}` is not one of the tool's routes; a constraint may only narrow",
                            extra.method, extra.path
                        ),
                    ));
                }
                routes = Some(list.clone());
            }
            if let Some(t) = c.timeout {
                if t > h.timeout {
                    return Err(widen(
                        "timeout",
                        format!("{t:?} exceeds the tool's {:?}", h.timeout),
                    ));
                }
            }
        }
        ToolKind::PostgresQuery(q) => {
            if let Some(m) = c.max_rows {
                if m > q.max_rows {
                    return Err(widen(
                        "max_rows",
                        format!("{m} exceeds the tool's {}", q.max_rows),
                    ));
                }
            }
            if let Some(t) = c.timeout {
                if t > q.timeout {
                    return Err(widen(
                        "timeout",
                        format!("{t:?} exceeds the tool's {:?}", q.timeout),
                    ));
                }
            }
        }
        ToolKind::AgentBash(b) => {
            if let Some(t) = c.timeout {
                if t > b.timeout {
                    return Err(widen(
                        "timeout",
                        format!("{t:?} exceeds the tool's {:?}", b.timeout),
                    ));
                }
            }
            if let Some(m) = c.max_output {
                if m > b.max_output {
                    return Err(widen(
                        "max_output",
                        format!("{m} exceeds the tool's {}", b.max_output),
                    ));
                }
            }
        }
        ToolKind::AgentRead(r) => check_max(&widen, "max_bytes", c.max_bytes, r.max_bytes)?,
        ToolKind::AgentWrite(w) => check_max(&widen, "max_bytes", c.max_bytes, w.max_bytes)?,
        ToolKind::AgentEdit(e) => check_max(&widen, "max_bytes", c.max_bytes, e.max_bytes)?,
        ToolKind::AgentGlob(g) => {
            if let Some(m) = c.max_results {
                if m > g.max_results {
                    return Err(widen(
                        "max_results",
                        format!("{m} exceeds the tool's {}", g.max_results),
                    ));
                }
            }
        }
        ToolKind::AgentGrep(g) => check_max(&widen, "max_output", c.max_output, g.max_output)?,
    }
    Ok((repos, routes))
}

fn check_max(
    widen: &dyn Fn(&'static str, String) -> PolicyError,
    field: &'static str,
    value: Option<airlock_config::ByteSize>,
    tool_max: airlock_config::ByteSize,
) -> Result<(), PolicyError> {
    match value {
        Some(v) if v > tool_max => Err(widen(field, format!("{v} exceeds the tool's {tool_max}"))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use airlock_config::route_path_matches as route_matches;

    #[test]
    fn route_patterns_match_whole_segments_only() {
        assert!(route_matches("/a/{id}/b", "/a/42/b"));
        assert!(!route_matches("/a/{id}/b", "/a//b"));
        assert!(!route_matches("/a/{id}/b", "/a/42/b/c"));
        assert!(!route_matches("/a/{id}/b", "/a/42"));
        assert!(route_matches("/deploy", "/deploy"));
        assert!(!route_matches("/deploy", "/deploy/"));
        assert!(!route_matches("/deploy", "/Deploy"));
    }
}
