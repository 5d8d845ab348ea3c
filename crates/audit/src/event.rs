//! What callers record: an [`Event`] built with a few chained setters.
//! `who` comes from the authenticated channel (the caller's job: never copy
//! it from a request body); `intent` is the client's own words, stored as
//! untrusted.

use serde::Serialize;
use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    ToolCall,
    PolicyDecision,
    Egress,
    JailRun,
    Tunnel,
    Auth,
    System,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::ToolCall => "tool_call",
            Kind::PolicyDecision => "policy_decision",
            Kind::Egress => "egress",
            Kind::JailRun => "jail_run",
            Kind::Tunnel => "tunnel",
            Kind::Auth => "auth",
            Kind::System => "system",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Who {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tunnel: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub allowed: bool,
    /// The rule that decided.
    pub rule: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Egress {
    pub host: String,
    pub port: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub addr: Option<String>,
    pub bytes_up: u64,
    pub bytes_down: u64,
    /// Name of the credential injected, never its value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// One thing that happened.
#[derive(Debug, Clone)]
pub struct Event {
    pub kind: Kind,
    pub who: Who,
    pub intent: Option<String>,
    pub tool: Option<String>,
    pub args: Option<Value>,
    pub decision: Option<Decision>,
    pub status: Option<String>,
    pub duration_us: Option<u64>,
    pub result: Option<String>,
    pub egress: Option<Egress>,
    pub detail: Option<Value>,
}

impl Event {
    pub fn new(kind: Kind) -> Event {
        Event {
            kind,
            who: Who::default(),
            intent: None,
            tool: None,
            args: None,
            decision: None,
            status: None,
            duration_us: None,
            result: None,
            egress: None,
            detail: None,
        }
    }
    pub fn who(mut self, who: Who) -> Self {
        self.who = who;
        self
    }
    pub fn agent(mut self, a: impl Into<String>) -> Self {
        self.who.agent = Some(a.into());
        self
    }
    pub fn session(mut self, s: Option<impl Into<String>>) -> Self {
        self.who.session = s.map(Into::into);
        self
    }
    pub fn tunnel(mut self, t: impl Into<String>) -> Self {
        self.who.tunnel = Some(t.into());
        self
    }
    pub fn intent(mut self, i: Option<impl Into<String>>) -> Self {
        self.intent = i.map(Into::into);
        self
    }
    pub fn tool(mut self, t: impl Into<String>) -> Self {
        self.tool = Some(t.into());
        self
    }
    pub fn args(mut self, a: Value) -> Self {
        self.args = Some(a);
        self
    }
    pub fn decision(
        mut self,
        allowed: bool,
        rule: impl Into<String>,
        reason: Option<String>,
    ) -> Self {
        self.decision = Some(Decision {
            allowed,
            rule: rule.into(),
            reason,
        });
        self
    }
    pub fn status(mut self, s: impl Into<String>) -> Self {
        self.status = Some(s.into());
        self
    }
    pub fn duration(mut self, d: std::time::Duration) -> Self {
        self.duration_us = Some(d.as_micros() as u64);
        self
    }
    pub fn result(mut self, r: impl Into<String>) -> Self {
        self.result = Some(r.into());
        self
    }
    pub fn egress(mut self, e: Egress) -> Self {
        self.egress = Some(e);
        self
    }
    pub fn detail(mut self, d: Value) -> Self {
        self.detail = Some(d);
        self
    }

    /// The record body (without seq, time and chain fields), redacted.
    pub(crate) fn into_body(self, r: &crate::redact::Redactor) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("kind".into(), self.kind.as_str().into());
        let who = serde_json::to_value(&self.who).unwrap_or(Value::Null);
        if who.as_object().is_some_and(|o| !o.is_empty()) {
            m.insert("who".into(), who);
        }
        if let Some(i) = self.intent {
            m.insert(
                "intent".into(),
                serde_json::json!({"text": r.text(&i), "untrusted": true}),
            );
        }
        if let Some(t) = self.tool {
            m.insert("tool".into(), t.into());
        }
        if let Some(mut a) = self.args {
            m.insert(
                "args_hash".into(),
                r.keyed_hash(&crate::canonical::to_vec(&a)).into(),
            );
            r.value(&mut a);
            m.insert("args".into(), a);
        }
        if let Some(d) = self.decision {
            let mut v = serde_json::to_value(&d).unwrap_or(Value::Null);
            r.value(&mut v);
            m.insert("decision".into(), v);
        }
        if let Some(s) = self.status {
            m.insert("status".into(), s.into());
        }
        if let Some(d) = self.duration_us {
            m.insert("duration_us".into(), d.into());
        }
        if let Some(s) = self.result {
            m.insert("result".into(), r.text(&s).into());
        }
        if let Some(e) = self.egress {
            m.insert(
                "egress".into(),
                serde_json::to_value(&e).unwrap_or(Value::Null),
            );
        }
        if let Some(mut d) = self.detail {
            r.value(&mut d);
            m.insert("detail".into(), d);
        }
        m
    }
}
