//! `postgres.query`: one fixed, parameterised statement per tool. The agent
//! supplies typed parameter values only; the SQL never changes. Each call
//! runs in `BEGIN READ ONLY` with `SET LOCAL statement_timeout`, through a
//! portal that fetches at most `max_rows + 1` rows (the extra row only
//! reports truncation), so no argument can make the server send more.
//! The statement is prepared (extended protocol), which PostgreSQL refuses
//! for more than one command.

mod params;
mod rows;
mod tls;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use airlock_config::{PostgresQuery, Secret, SqlParam};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use serde_json::{json, Map, Value};
use tokio::sync::OnceCell;
use tokio_postgres::config::SslMode;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::NoTls;

use crate::args::Args;
use crate::{CallContext, Limits, ToolError, ToolImpl, ToolOutput};

pub use params::{Param, MAX_TEXT};
pub use rows::Numeric;

/// Connections kept per tool.
const POOL_SIZE: usize = 4;

/// A tool's connection pool, and the TLS connector its connections use
/// (also needed to cancel a running query).
struct Db {
    pool: Pool,
    tls: Option<tls::MakeRustls>,
}

/// One declared `postgres.query` tool.
pub struct PostgresTool {
    name: String,
    sql: String,
    params: Vec<SqlParam>,
    dsn: Secret,
    /// Built at the first call (the DSN is resolved then, not at load).
    db: OnceCell<Db>,
}

impl PostgresTool {
    pub fn new(name: &str, c: &PostgresQuery) -> Result<PostgresTool, ToolError> {
        if c.sql.trim().is_empty() {
            return Err(ToolError::Config(format!("tools.{name}.sql is empty")));
        }
        let mut seen = std::collections::HashSet::new();
        for p in &c.params {
            if p.name.is_empty() || !seen.insert(p.name.as_str()) {
                return Err(ToolError::Config(format!(
                    "tools.{name}.params: parameter names must be non-empty and unique (`{}`)",
                    p.name
                )));
            }
        }
        Ok(PostgresTool {
            name: name.to_string(),
            sql: c.sql.clone(),
            params: c.params.clone(),
            dsn: c.dsn.clone(),
            db: OnceCell::new(),
        })
    }

    async fn db(&self) -> Result<&Db, ToolError> {
        self.db
            .get_or_try_init(|| async {
                let unavailable = || {
                    ToolError::failed("the database is not available right now; tell the operator")
                };
                let dsn = self.dsn.resolve().map_err(|e| {
                    tracing::warn!(tool = %self.name, error = %e, "DSN unavailable");
                    unavailable()
                })?;
                // The parse error may quote the DSN: log nothing of it.
                let mut cfg = tokio_postgres::Config::from_str(dsn.expose()).map_err(|_| {
                    tracing::warn!(tool = %self.name, "DSN does not parse");
                    unavailable()
                })?;
                cfg.application_name("airlock");
                if cfg.get_connect_timeout().is_none() {
                    cfg.connect_timeout(Duration::from_secs(10));
                }
                let mc = || ManagerConfig {
                    recycling_method: RecyclingMethod::Fast,
                };
                let mgr = match cfg.get_ssl_mode() {
                    SslMode::Require => {
                        let tls = tls::client_config().map_err(|e| {
                            tracing::warn!(tool = %self.name, error = %e, "TLS setup");
                            unavailable()
                        })?;
                        let tls = tls::MakeRustls(Arc::new(tls));
                        (Manager::from_config(cfg, tls.clone(), mc()), Some(tls))
                    }
                    // `prefer` (the default) and `disable`: plaintext, as
                    // asked; say `sslmode=require` to get verified TLS.
                    _ => {
                        cfg.ssl_mode(SslMode::Disable);
                        (Manager::from_config(cfg, NoTls, mc()), None)
                    }
                };
                let (mgr, tls) = mgr;
                let pool = Pool::builder(mgr)
                    .max_size(POOL_SIZE)
                    .build()
                    .map_err(|e| {
                        tracing::warn!(tool = %self.name, error = %e, "pool");
                        unavailable()
                    })?;
                Ok(Db { pool, tls })
            })
            .await
    }

    /// Parameters in statement order, checked against their declared types.
    fn checked(&self, args: &Value) -> Result<Vec<Param>, ToolError> {
        let names: Vec<&str> = self.params.iter().map(|p| p.name.as_str()).collect();
        let a = Args::new(args, &names)?;
        self.params
            .iter()
            .map(|p| match a.get(&p.name) {
                Some(v) => params::check(p, v),
                None => Err(ToolError::invalid(format!(
                    "parameter `{}` ({}) is required",
                    p.name,
                    params::type_name(p.ty)
                ))),
            })
            .collect()
    }
}

/// A database error as the model should see it. Server messages describe
/// the statement, not the connection, so they are safe to show.
fn db_error(tool: &str, e: &tokio_postgres::Error, timeout: Duration) -> ToolError {
    if let Some(db) = e.as_db_error() {
        if *db.code() == SqlState::QUERY_CANCELED {
            return ToolError::Timeout(timeout);
        }
        return ToolError::failed(format!(
            "the database refused the query: {} (SQLSTATE {})",
            db.message(),
            db.code().code()
        ));
    }
    tracing::warn!(tool = %tool, error = %e, "database connection error");
    ToolError::failed("the database connection failed; try again later")
}

#[async_trait::async_trait]
impl ToolImpl for PostgresTool {
    fn input_schema(&self, _limits: &Limits) -> Value {
        let mut props = Map::new();
        for p in &self.params {
            props.insert(p.name.clone(), params::schema(p));
        }
        let required: Vec<&str> = self.params.iter().map(|p| p.name.as_str()).collect();
        json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "properties": props,
            "required": required,
            "additionalProperties": false,
        })
    }

    fn canonicalize(&self, args: &Value, _limits: &Limits) -> Result<Value, ToolError> {
        let values = self.checked(args)?;
        let mut out = Map::new();
        for (p, v) in self.params.iter().zip(values) {
            out.insert(p.name.clone(), v.to_json());
        }
        Ok(Value::Object(out))
    }

    async fn call(
        &self,
        ctx: &CallContext,
        args: Value,
        limits: &Limits,
    ) -> Result<ToolOutput, ToolError> {
        let values = self.checked(&args)?;
        let timeout = limits.timeout;
        let max_rows = limits.max_rows.min(i32::MAX as u32 - 1);
        let deadline = tokio::time::Instant::now() + timeout;
        let stop = async {
            tokio::select! {
                _ = ctx.cancel.cancelled() => ToolError::Cancelled,
                _ = tokio::time::sleep_until(deadline) => ToolError::Timeout(timeout),
            }
        };
        tokio::pin!(stop);

        let db = tokio::select! {
            d = self.db() => d?,
            e = &mut stop => return Err(e),
        };
        let mut client = tokio::select! {
            c = db.pool.get() => c.map_err(|e| {
                tracing::warn!(tool = %self.name, error = %e, "pool get");
                ToolError::failed("the database is not reachable right now; try again later")
            })?,
            e = &mut stop => return Err(e),
        };
        let cancel_token = client.cancel_token();
        let tool = self.name.as_str();
        let sql = self.sql.as_str();
        let work = async {
            let tx = client
                .build_transaction()
                .read_only(true)
                .start()
                .await
                .map_err(|e| db_error(tool, &e, timeout))?;
            let ms = timeout.as_millis().clamp(1, i32::MAX as u128);
            // The `SELECT 1` takes the transaction's snapshot, after which
            // PostgreSQL refuses `SET TRANSACTION READ WRITE`: read-only
            // cannot be undone even by the tool's own statement.
            tx.batch_execute(&format!("SET LOCAL statement_timeout = {ms}; SELECT 1"))
                .await
                .map_err(|e| db_error(tool, &e, timeout))?;
            let stmt = tx.prepare_cached(sql).await.map_err(|e| {
                tracing::warn!(tool = %tool, error = %e, "prepare failed");
                ToolError::failed(format!(
                    "this tool's statement cannot run ({}); tell the operator",
                    e.as_db_error().map_or("connection error", |d| d.message())
                ))
            })?;
            if stmt.params().len() != values.len() {
                return Err(ToolError::failed(format!(
                    "this tool is misconfigured: the statement has {} parameters but {} are declared; tell the operator",
                    stmt.params().len(),
                    values.len()
                )));
            }
            for ((v, ty), p) in values.iter().zip(stmt.params()).zip(&self.params) {
                if !v.fits(ty) {
                    return Err(ToolError::invalid(format!(
                        "parameter `{}` does not fit the statement's `{}` placeholder (declared {}; out of range or mismatched)",
                        p.name,
                        ty.name(),
                        params::type_name(p.ty)
                    )));
                }
            }
            let refs: Vec<&(dyn ToSql + Sync)> =
                values.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
            let portal = tx
                .bind(&stmt, &refs)
                .await
                .map_err(|e| db_error(tool, &e, timeout))?;
            let rows = tx
                .query_portal(&portal, max_rows as i32 + 1)
                .await
                .map_err(|e| db_error(tool, &e, timeout))?;
            let columns: Vec<String> = stmt
                .columns()
                .iter()
                .map(|c| c.name().to_string())
                .collect();
            let truncated = rows.len() > max_rows as usize;
            let mut out = Vec::with_capacity(rows.len().min(max_rows as usize));
            for row in rows.iter().take(max_rows as usize) {
                out.push(Value::Object(
                    rows::row_json(row).map_err(|e| db_error(tool, &e, timeout))?,
                ));
            }
            // Read-only: nothing to keep; rollback also closes the portal.
            tx.rollback()
                .await
                .map_err(|e| db_error(tool, &e, timeout))?;
            Ok::<_, ToolError>((columns, out, truncated))
        };
        let outcome = tokio::select! {
            r = work => Ok(r),
            e = &mut stop => Err(e),
        };
        let (columns, rows, truncated) = match outcome {
            Ok(r) => r?,
            Err(e) => {
                // Stop the server-side query too, and never reuse a
                // connection left mid-statement.
                let tls = db.tls.clone();
                tokio::spawn(async move {
                    let _ = match tls {
                        Some(tls) => cancel_token.cancel_query(tls).await,
                        None => cancel_token.cancel_query(NoTls).await,
                    };
                });
                let _ = deadpool_postgres::Object::take(client);
                return Err(e);
            }
        };
        let n = rows.len();
        let mut text = serde_json::to_string_pretty(&rows).unwrap_or_default();
        if truncated {
            text.push_str(&format!(
                "\n… more rows exist; only the first {max_rows} are returned"
            ));
        }
        Ok(ToolOutput {
            text,
            structured: Some(json!({
                "columns": columns, "rows": rows, "row_count": n, "truncated": truncated,
            })),
            is_error: false,
        })
    }
}
