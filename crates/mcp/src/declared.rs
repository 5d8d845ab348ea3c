//! The declared tool kinds of `airlock-tools` (git, postgres, http) as a
//! [`Catalog`]: one implementation per tool, narrowed per agent by
//! [`Limits::effective`].

use std::sync::Arc;

use airlock_config::{Constraint, Tool};
use airlock_tools::{build_tool, CallContext, Limits, ToolError, ToolImpl};
use serde_json::Value;

use crate::tools::{ArgError, CallCtx, Catalog, Declared, Output, Served};

/// Builds `git.*`, `postgres.query` and `http.request` tools.
pub struct DeclaredTools;

struct Shared(Arc<dyn ToolImpl>);

struct ForAgent {
    imp: Arc<dyn ToolImpl>,
    limits: Limits,
}

impl Catalog for DeclaredTools {
    fn build(&self, name: &str, tool: &Tool) -> Result<Option<Arc<dyn Declared>>, String> {
        match build_tool(name, tool) {
            Ok(Some(imp)) => Ok(Some(Arc::new(Shared(Arc::from(imp))))),
            Ok(None) => Ok(None),
            Err(e) => Err(format!("tools.{name}: {e}")),
        }
    }
}

impl Declared for Shared {
    fn serve(
        &self,
        tool: &Tool,
        constraint: Option<&Constraint>,
    ) -> Result<Arc<dyn Served>, String> {
        Ok(Arc::new(ForAgent {
            imp: self.0.clone(),
            limits: Limits::effective(tool, constraint),
        }))
    }
}

#[async_trait::async_trait]
impl Served for ForAgent {
    fn input_schema(&self) -> Value {
        self.imp.input_schema(&self.limits)
    }

    fn canonicalize(&self, args: &Value) -> Result<Value, ArgError> {
        self.imp
            .canonicalize(args, &self.limits)
            .map_err(|e| match e {
                ToolError::InvalidArguments(m) => ArgError::Invalid(m),
                ToolError::Denied(m) => ArgError::Denied(m),
                other => ArgError::Invalid(other.to_string()),
            })
    }

    async fn call(&self, ctx: &CallCtx, args: Value) -> Result<Output, String> {
        let cc = CallContext {
            agent: ctx.agent.clone(),
            session: ctx.session.clone(),
            cancel: ctx.cancel.clone(),
        };
        // These tools are one round trip each (a query, a request, a git
        // read): progress is "started" and "done", which tells a waiting
        // client the call passed the policy and when the remote side answered.
        let started = std::time::Instant::now();
        if let Some(p) = &ctx.progress {
            p.report(0.0, Some(1.0), "running").await;
        }
        let out = self.imp.call(&cc, args, &self.limits).await;
        if let Some(p) = &ctx.progress {
            let ms = started.elapsed().as_millis();
            let what = if out.is_ok() { "done" } else { "failed" };
            p.report(1.0, Some(1.0), format!("{what} after {ms} ms"))
                .await;
        }
        let out = out.map_err(|e| e.to_string())?;
        Ok(Output {
            text: out.text,
            structured: out.structured,
            is_error: out.is_error,
        })
    }
}
