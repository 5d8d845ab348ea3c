//! The live policy: one immutable snapshot (policy, keys, served tools,
//! listings) swapped whole on reload, so a request sees either the old
//! config or the new one, never a mix.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use airlock_config::Config;
use airlock_policy::{ApprovalStore, Policy};
use arc_swap::ArcSwap;
use rmcp::model::{JsonObject, Tool as McpTool};

use crate::audit::AuditSink;
use crate::auth::KeyTable;
use crate::metrics::Metrics;
use crate::tools::{Catalogs, Served};

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Policy(#[from] airlock_policy::PolicyError),
    #[error(transparent)]
    Keys(#[from] crate::auth::KeyError),
    #[error("{0}")]
    Tool(String),
    #[error("tools.{tool}: the input schema must be a JSON object")]
    Schema { tool: String },
}

/// One tool for one agent.
pub struct Entry {
    pub served: Arc<dyn Served>,
    pub listing: McpTool,
}

pub struct Snapshot {
    pub policy: Policy,
    pub keys: KeyTable,
    /// agent → tool → entry, for allowed tools only.
    pub entries: HashMap<String, HashMap<String, Entry>>,
    /// agent → tools/list in config order.
    pub listings: HashMap<String, Arc<Vec<McpTool>>>,
    /// Declared tool names (metrics labels).
    pub declared: std::collections::HashSet<String>,
}

impl Snapshot {
    /// `with_keys` resolves the agents' HTTP keys; stdio has no use for
    /// them, so it does not need their secrets to be present.
    pub fn build(
        config: &Config,
        catalogs: &Catalogs,
        with_keys: bool,
    ) -> Result<Snapshot, BuildError> {
        let policy = Policy::compile(config)?;
        let keys = if with_keys {
            KeyTable::from_config(config)?
        } else {
            KeyTable::default()
        };
        let mut declared_impls = HashMap::new();
        let mut entries: HashMap<String, HashMap<String, Entry>> = HashMap::new();
        let mut listings = HashMap::new();
        for agent in config.agents.keys() {
            let mut mine = HashMap::new();
            let mut listing = Vec::new();
            for grant in policy.grants(agent) {
                let name = grant.name();
                let declared = match declared_impls.get(name) {
                    Some(d) => Arc::clone(d),
                    None => {
                        let d = catalogs
                            .build(name, grant.tool())
                            .map_err(BuildError::Tool)?;
                        declared_impls.insert(name.to_string(), Arc::clone(&d));
                        d
                    }
                };
                let served = declared
                    .serve(grant.tool(), grant.constraint())
                    .map_err(|e| {
                        BuildError::Tool(format!("tools.{name} for agent {agent}: {e}"))
                    })?;
                let schema: JsonObject = match served.input_schema() {
                    serde_json::Value::Object(o) => o,
                    _ => {
                        return Err(BuildError::Schema {
                            tool: name.to_string(),
                        })
                    }
                };
                let description = grant
                    .tool()
                    .description
                    .clone()
                    .unwrap_or_else(|| default_description(grant.tool().kind.name()));
                let t = McpTool::new(name.to_string(), description, Arc::new(schema));
                listing.push(t.clone());
                mine.insert(name.to_string(), Entry { served, listing: t });
            }
            entries.insert(agent.clone(), mine);
            listings.insert(agent.clone(), Arc::new(listing));
        }
        Ok(Snapshot {
            policy,
            keys,
            entries,
            listings,
            declared: config.tools.keys().cloned().collect(),
        })
    }
}

fn default_description(kind: &str) -> String {
    match kind {
        "agent.bash" => "Run a command in a persistent bash shell inside the session's jail.",
        "agent.read" => "Read a file from the session's workspace.",
        "agent.write" => "Write a file in the session's workspace.",
        "agent.edit" => "Replace one exact, unique string in a file of the session's workspace.",
        "agent.glob" => "List workspace files matching a glob pattern.",
        "agent.grep" => "Search workspace files for a regular expression.",
        "git.read_file" => "Read one file from a configured git repository at a ref.",
        "git.list_files" => "List files of a configured git repository at a ref.",
        "git.log" => "Show the commit log of a configured git repository.",
        "postgres.query" => "Run a fixed, parameterised read-only query.",
        "http.request" => "Call one of the allowed routes of an internal HTTP API.",
        other => return format!("{other} tool"),
    }
    .to_string()
}

/// Everything the server shares across sessions and transports.
pub struct Shared {
    current: ArcSwap<Snapshot>,
    catalogs: Catalogs,
    http_keys: bool,
    pub approvals: Option<ApprovalStore>,
    pub audit: Arc<dyn AuditSink>,
    pub metrics: Metrics,
}

/// Options that do not come from the config file.
pub struct SharedOptions {
    /// The approval state file; without it `approval: required` tools are
    /// always refused.
    pub approvals: Option<PathBuf>,
    pub audit: Arc<dyn AuditSink>,
    /// Resolve agent keys (HTTP). stdio sets this false.
    pub http_keys: bool,
}

impl Shared {
    pub fn new(
        config: &Config,
        catalogs: Catalogs,
        opts: SharedOptions,
    ) -> Result<Arc<Shared>, Box<dyn std::error::Error + Send + Sync>> {
        let snapshot = Snapshot::build(config, &catalogs, opts.http_keys)?;
        let approvals = match &opts.approvals {
            Some(p) => Some(ApprovalStore::open(p)?),
            None => None,
        };
        Ok(Arc::new(Shared {
            current: ArcSwap::from_pointee(snapshot),
            catalogs,
            http_keys: opts.http_keys,
            approvals,
            audit: opts.audit,
            metrics: Metrics::default(),
        }))
    }

    /// Tells the tool catalogs a session is over.
    pub fn session_ended(&self, agent: &str, session: &str) {
        self.catalogs.session_ended(agent, session);
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Builds a new snapshot and swaps it in; on any error the old one stays.
    pub fn reload(&self, config: &Config) -> Result<(), BuildError> {
        match Snapshot::build(config, &self.catalogs, self.http_keys) {
            Ok(s) => {
                self.current.store(Arc::new(s));
                self.metrics.reload(true);
                Ok(())
            }
            Err(e) => {
                self.metrics.reload(false);
                Err(e)
            }
        }
    }
}
