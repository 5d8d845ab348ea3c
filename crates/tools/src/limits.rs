//! The limits one agent's calls of one tool run under: the tool's own
//! settings narrowed by the agent's constraint. A constraint can only
//! tighten: the smaller number wins and sets are intersected, whatever the
//! config loader already checked (fail closed).

use std::time::Duration;

use airlock_config::{Constraint, HttpRoute, Tool, ToolKind};

/// Timeout of the git kinds, which have no `timeout` key of their own.
pub const GIT_TIMEOUT: Duration = Duration::from_secs(30);

/// Effective limits. Fields that do not apply to a tool's kind are zero or
/// empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// git: the repository names this agent may use, sorted.
    pub repos: Vec<String>,
    /// git.read_file: largest file returned, bytes.
    pub max_file_size: u64,
    /// git.list_files / git.log: most entries returned.
    pub max_entries: u32,
    /// postgres.query: most rows returned.
    pub max_rows: u32,
    /// http.request: the routes this agent may call.
    pub routes: Vec<HttpRoute>,
    /// Longest one call may take.
    pub timeout: Duration,
    /// http.request: largest response body read, bytes.
    pub max_response_size: u64,
}

impl Limits {
    /// The tool's limits narrowed by `constraint` (the agent's entry for
    /// this tool, if any).
    pub fn effective(tool: &Tool, constraint: Option<&Constraint>) -> Limits {
        let c = constraint.cloned().unwrap_or_default();
        let min_u64 = |own: u64, narrow: Option<u64>| narrow.map_or(own, |n| n.min(own));
        let min_u32 = |own: u32, narrow: Option<u32>| narrow.map_or(own, |n| n.min(own));
        let min_dur = |own: Duration, narrow: Option<Duration>| narrow.map_or(own, |n| n.min(own));
        let mut l = Limits {
            repos: Vec::new(),
            max_file_size: 0,
            max_entries: 0,
            max_rows: 0,
            routes: Vec::new(),
            timeout: Duration::ZERO,
            max_response_size: 0,
        };
        match &tool.kind {
            ToolKind::GitReadFile(g) | ToolKind::GitListFiles(g) | ToolKind::GitLog(g) => {
                l.repos = g
                    .repos
                    .keys()
                    .filter(|r| c.repos.as_ref().is_none_or(|only| only.contains(r)))
                    .cloned()
                    .collect();
                l.max_file_size =
                    min_u64(g.max_file_size.bytes(), c.max_file_size.map(|b| b.bytes()));
                l.max_entries = min_u32(g.max_entries, c.max_entries);
                l.timeout = min_dur(GIT_TIMEOUT, c.timeout);
            }
            ToolKind::PostgresQuery(p) => {
                l.max_rows = min_u32(p.max_rows, c.max_rows);
                l.timeout = min_dur(p.timeout, c.timeout);
            }
            ToolKind::HttpRequest(h) => {
                l.routes = h
                    .routes
                    .iter()
                    .filter(|r| c.routes.as_ref().is_none_or(|only| only.contains(r)))
                    .cloned()
                    .collect();
                l.timeout = min_dur(h.timeout, c.timeout);
                l.max_response_size = h.max_response_size.bytes();
            }
            _ => {
                l.timeout = c.timeout.unwrap_or(Duration::ZERO);
            }
        }
        l
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_config::{Approval, ByteSize, GitRepos};
    use std::collections::BTreeMap;

    fn git_tool() -> Tool {
        let mut repos = BTreeMap::new();
        repos.insert("a".to_string(), "/a".into());
        repos.insert("b".to_string(), "/b".into());
        Tool {
            description: None,
            approval: Approval::None,
            kind: ToolKind::GitReadFile(GitRepos {
                repos,
                max_file_size: ByteSize::kib(64),
                max_entries: 100,
            }),
        }
    }

    #[test]
    fn constraints_only_narrow() {
        let t = git_tool();
        let l = Limits::effective(&t, None);
        assert_eq!(l.repos, ["a", "b"]);
        assert_eq!(l.max_file_size, 65536);
        let c = Constraint {
            repos: Some(vec!["b".into(), "zzz".into()]),
            max_file_size: Some(ByteSize::mib(10)),
            max_entries: Some(5),
            ..Default::default()
        };
        let l = Limits::effective(&t, Some(&c));
        assert_eq!(
            l.repos,
            ["b"],
            "an unknown repo in a constraint adds nothing"
        );
        assert_eq!(l.max_file_size, 65536, "a larger constraint cannot widen");
        assert_eq!(l.max_entries, 5);
    }
}
