//! Redaction before anything is written: secret-bearing field names at any
//! depth, content rules for common secret formats, and the exact values of
//! secrets airlock resolved itself. Each secret becomes a typed placeholder
//! with a keyed fingerprint (`[REDACTED:github-token:3f9a1c]`), so two uses
//! of one secret can be matched without revealing it.

use regex::{Regex, RegexSet};
use serde_json::Value;

use crate::keys::{hex, hmac};

/// Field names whose values are always redacted (compared lowercased, with
/// `-` and `_` removed, so `API-Key`, `api_key` and `apikey` all match).
pub const DEFAULT_FIELDS: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "secret",
    "clientsecret",
    "token",
    "accesstoken",
    "refreshtoken",
    "idtoken",
    "apikey",
    "authorization",
    "proxyauthorization",
    "cookie",
    "setcookie",
    "privatekey",
    "credential",
    "credentials",
    "sessiontoken",
    "dsn",
    "connectionstring",
    "xapikey",
];

struct Rule {
    kind: &'static str,
    re: Regex,
    /// Capture group holding the secret (0: the whole match).
    group: usize,
}

/// Content rules, most specific first.
const RULES: &[(&str, &str, usize)] = &[
    (
        "private-key",
        r"-----BEGIN[A-Z ]{0,30} PRIVATE KEY-----[\s\S]*?-----END[A-Z ]{0,30} PRIVATE KEY-----",
        0,
    ),
    (
        "jwt",
        r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{10,}",
        0,
    ),
    ("anthropic-key", r"\bsk-ant-[A-Za-z0-9_-]{20,}", 0),
    (
        "openai-key",
        r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}",
        0,
    ),
    ("github-token", r"\bgh[pousr]_[A-Za-z0-9]{36,}", 0),
    ("github-pat", r"\bgithub_pat_[A-Za-z0-9_]{22,}", 0),
    ("gitlab-token", r"\bglpat-[A-Za-z0-9_-]{20,}", 0),
    ("slack-token", r"\bxox[abposr]-[A-Za-z0-9-]{10,}", 0),
    (
        "slack-webhook",
        r"https://hooks\.slack\.com/services/[A-Za-z0-9/_-]{20,}",
        0,
    ),
    (
        "stripe-key",
        r"\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}",
        0,
    ),
    (
        "aws-access-key-id",
        r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA)[A-Z0-9]{16}\b",
        0,
    ),
    (
        "aws-secret-key",
        r#"(?i)aws.{0,20}?(?:secret|private)?.{0,10}?key["']?\s*[:=]\s*["']?([A-Za-z0-9/+=]{40})\b"#,
        1,
    ),
    ("gcp-api-key", r"\bAIza[0-9A-Za-z_-]{35}", 0),
    ("google-oauth-secret", r"\bGOCSPX-[A-Za-z0-9_-]{20,}", 0),
    ("google-oauth-token", r"\bya29\.[0-9A-Za-z_-]{20,}", 0),
    (
        "azure-storage-key",
        r"(?i)AccountKey=([A-Za-z0-9+/=]{40,})",
        1,
    ),
    ("huggingface-token", r"\bhf_[A-Za-z0-9]{30,}", 0),
    ("npm-token", r"\bnpm_[A-Za-z0-9]{36}\b", 0),
    ("pypi-token", r"\bpypi-[A-Za-z0-9_-]{50,}", 0),
    ("dockerhub-token", r"\bdckr_pat_[A-Za-z0-9_-]{20,}", 0),
    (
        "sendgrid-key",
        r"\bSG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}",
        0,
    ),
    ("twilio-key", r"\bSK[0-9a-fA-F]{32}\b", 0),
    (
        "shopify-token",
        r"\bshp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}\b",
        0,
    ),
    ("databricks-token", r"\bdapi[a-f0-9]{32}\b", 0),
    (
        "url-password",
        r"\b[a-zA-Z][a-zA-Z0-9+.-]{1,20}://[^/\s:@]{1,100}:([^@\s/]{1,200})@",
        1,
    ),
    (
        "auth-header",
        r"(?i)\b(?:bearer|basic|token)\s+([A-Za-z0-9._~+/=-]{12,})",
        1,
    ),
    (
        "keyword-secret",
        r#"(?i)(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|auth)["']?\s*[:=]\s*["']?([^\s"',;&]{8,})"#,
        1,
    ),
];

/// Redacts JSON values and text with one per-log fingerprint key.
pub struct Redactor {
    key: [u8; 32],
    fields: Vec<String>,
    rules: Vec<Rule>,
    /// All of `rules` in one automaton: text none of them matches (most
    /// text) is scanned once instead of once per rule.
    any_rule: RegexSet,
    /// Resolved secret values (longest first), always redacted by value.
    known: Vec<(String, String)>,
}

fn norm_field(s: &str) -> String {
    s.chars()
        .filter(|c| *c != '-' && *c != '_')
        .flat_map(char::to_lowercase)
        .collect()
}

/// Shannon entropy in bits per character.
fn entropy(s: &str) -> f64 {
    let mut counts = [0u32; 256];
    for b in s.bytes() {
        counts[b as usize] += 1;
    }
    let n = s.len() as f64;
    counts
        .iter()
        .filter(|c| **c > 0)
        .map(|c| {
            let p = *c as f64 / n;
            -p * p.log2()
        })
        .sum()
}

impl Redactor {
    pub fn new(key: [u8; 32], extra_fields: &[String]) -> Redactor {
        let mut fields: Vec<String> = DEFAULT_FIELDS.iter().map(|s| s.to_string()).collect();
        fields.extend(extra_fields.iter().map(|f| norm_field(f)));
        let rules = RULES
            .iter()
            .map(|(kind, re, group)| Rule {
                kind,
                re: Regex::new(re).expect("built-in rule compiles"),
                group: *group,
            })
            .collect();
        let any_rule =
            RegexSet::new(RULES.iter().map(|(_, re, _)| re)).expect("built-in rules compile");
        Redactor {
            key,
            fields,
            rules,
            any_rule,
            known: Vec::new(),
        }
    }

    /// A secret airlock resolved (`${env:…}`/`${file:…}`): its value is
    /// redacted wherever it appears, as `[REDACTED:<name>:…]`.
    pub fn add_known_secret(&mut self, name: &str, value: &str) {
        if value.len() >= 4 && !self.known.iter().any(|(_, v)| v == value) {
            self.known.push((name.to_string(), value.to_string()));
            self.known.sort_by_key(|k| std::cmp::Reverse(k.1.len()));
        }
    }

    pub fn placeholder(&self, kind: &str, secret: &str) -> String {
        let fp = hex(&hmac(&self.key, secret.as_bytes())[..3]);
        format!("[REDACTED:{kind}:{fp}]")
    }

    /// Keyed hash of raw bytes (argument hashes).
    pub fn keyed_hash(&self, data: &[u8]) -> String {
        hex(&hmac(&self.key, data))
    }

    fn is_secret_field(&self, name: &str) -> bool {
        let n = norm_field(name);
        self.fields.contains(&n)
    }

    /// Redacts a JSON value in place.
    pub fn value(&self, v: &mut Value) {
        match v {
            Value::String(s) => {
                if let Some(r) = self.text_changed(s) {
                    *s = r;
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|x| self.value(x)),
            Value::Object(m) => {
                for (k, x) in m.iter_mut() {
                    if self.is_secret_field(k) && !x.is_null() {
                        let raw = match &*x {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        // Keep a recognisable scheme word (`Bearer`) out of the fingerprint.
                        let kind = format!("field-{}", norm_field(k));
                        *x = Value::String(self.placeholder(&kind, &raw));
                    } else {
                        self.value(x);
                    }
                }
            }
            _ => {}
        }
    }

    /// Redacts free text.
    pub fn text(&self, s: &str) -> String {
        self.text_changed(s).unwrap_or_else(|| s.to_string())
    }

    fn text_changed(&self, s: &str) -> Option<String> {
        let mut out: Option<String> = None;
        for (name, val) in &self.known {
            let cur = out.as_deref().unwrap_or(s);
            if cur.contains(val.as_str()) {
                out = Some(cur.replace(val.as_str(), &self.placeholder(name, val)));
            }
        }
        // Exact shortcut: if no rule matches, the loop below changes nothing.
        // When one does, every rule still runs in order on the text as the
        // earlier ones left it.
        if !self.any_rule.is_match(out.as_deref().unwrap_or(s)) {
            return out;
        }
        for rule in &self.rules {
            let cur = out.as_deref().unwrap_or(s);
            if !rule.re.is_match(cur) {
                continue;
            }
            let mut changed = false;
            let replaced = rule.re.replace_all(cur, |c: &regex::Captures| {
                let whole = c.get(0).expect("match").as_str();
                let Some(m) = c.get(rule.group) else {
                    return whole.to_string();
                };
                let secret = m.as_str();
                if secret.starts_with("[REDACTED:")
                    || (rule.kind == "keyword-secret" && entropy(secret) < 3.0)
                {
                    return whole.to_string();
                }
                changed = true;
                let start = m.start() - c.get(0).expect("match").start();
                format!(
                    "{}{}{}",
                    &whole[..start],
                    self.placeholder(rule.kind, secret),
                    &whole[start + secret.len()..]
                )
            });
            if changed {
                out = Some(replaced.into_owned());
            }
        }
        out
    }
}
