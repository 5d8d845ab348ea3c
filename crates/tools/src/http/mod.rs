//! `http.request`: one base URL and an allow-list of `METHOD /path`
//! routes. The agent picks a route, fills its `{name}` segments, and may add
//! query parameters and a JSON body; it never chooses the host, the scheme,
//! headers or credentials. Redirects are never followed: a 3xx comes back
//! as the result, with its `Location`.

mod path;
mod redact;

use std::time::Duration;

use airlock_config::body::{nesting_depth, MAX_BODY_DEPTH};
use airlock_config::secret::resolve_ref;
use airlock_config::{HttpRequest, HttpRoute, Secret};
use futures_util::StreamExt;
use reqwest::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use serde_json::{json, Map, Value};
use zeroize::Zeroizing;

use crate::args::{clip, Args};
use crate::{CallContext, Limits, ToolError, ToolImpl, ToolOutput};

pub use path::{canonical_path, route_matches, MAX_PATH};

/// Most query parameters, and the longest key or value.
pub const MAX_QUERY_PARAMS: usize = 64;
pub const MAX_QUERY_VALUE: usize = 2048;
/// Largest JSON body the agent may send (serialised).
pub const MAX_BODY: usize = 1024 * 1024;
/// Response headers shown to the model; everything else is dropped.
const SHOWN_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "location",
    "retry-after",
    "etag",
    "last-modified",
    "x-request-id",
];

/// One declared `http.request` tool.
pub struct HttpTool {
    name: String,
    base: url::Url,
    auth: Option<(HeaderName, Secret)>,
    client: reqwest::Client,
}

impl HttpTool {
    pub fn new(name: &str, c: &HttpRequest) -> Result<HttpTool, ToolError> {
        if !matches!(c.base_url.scheme(), "http" | "https") || c.base_url.host().is_none() {
            return Err(ToolError::Config(format!(
                "tools.{name}.base_url must be an http or https URL with a host"
            )));
        }
        if c.base_url.query().is_some() || c.base_url.fragment().is_some() {
            return Err(ToolError::Config(format!(
                "tools.{name}.base_url must not have a query or fragment"
            )));
        }
        let auth = match &c.auth {
            Some(a) => {
                let h = HeaderName::from_bytes(a.header.as_bytes()).map_err(|_| {
                    ToolError::Config(format!(
                        "tools.{name}.auth.header is not a valid header name"
                    ))
                })?;
                Some((h, a.value.clone()))
            }
            None => None,
        };
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| ToolError::Config(format!("tools.{name}: HTTP client: {e}")))?;
        Ok(HttpTool {
            name: name.to_string(),
            base: c.base_url.clone(),
            auth,
            client,
        })
    }

    /// The URL for a canonical path: the base URL's path plus the route
    /// path, then checked to still be on the base's scheme, host and port.
    fn url(&self, path: &str, query: Option<&Map<String, Value>>) -> Result<url::Url, ToolError> {
        let mut u = self.base.clone();
        let joined = format!("{}{}", self.base.path().trim_end_matches('/'), path);
        u.set_path(&joined);
        if let Some(q) = query {
            let mut pairs = u.query_pairs_mut();
            for (k, v) in q {
                pairs.append_pair(k, v.as_str().unwrap_or_default());
            }
        }
        if u.scheme() != self.base.scheme()
            || u.host() != self.base.host()
            || u.port_or_known_default() != self.base.port_or_known_default()
            || u.path() != joined
        {
            return Err(ToolError::denied(
                "the path would leave the configured base URL",
            ));
        }
        Ok(u)
    }
}

fn methods(limits: &Limits) -> Vec<String> {
    let mut m: Vec<String> = limits
        .routes
        .iter()
        .map(|r| r.method.to_ascii_uppercase())
        .collect();
    m.sort();
    m.dedup();
    m
}

fn allowed_list(limits: &Limits) -> String {
    if limits.routes.is_empty() {
        return "(none)".into();
    }
    limits
        .routes
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The `body` property of the input schema: absent when no route takes a
/// body (so a client sees that none may be sent); the route's own schema
/// when exactly one route takes one; otherwise `anyOf` the routes' schemas,
/// each titled with its route (the tool checks the body against the schema
/// of the route the call names, which the description says).
fn body_schema(limits: &Limits) -> Option<Value> {
    let with: Vec<&HttpRoute> = limits.routes.iter().filter(|r| r.body.is_some()).collect();
    let without: Vec<String> = limits
        .routes
        .iter()
        .filter(|r| r.body.is_none())
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    let schema_of = |r: &HttpRoute| r.body.as_ref().map(|b| b.to_json()).unwrap_or_default();
    let mut note = String::from(
        "JSON request body, checked against the route's schema before anything is sent",
    );
    if !without.is_empty() {
        note.push_str(&format!(
            "; these routes take no body: {}",
            without.join(", ")
        ));
    }
    match with.as_slice() {
        [] => None,
        [r] => {
            let mut s = schema_of(r);
            let own = s
                .get("description")
                .and_then(Value::as_str)
                .map(str::to_string);
            let mut d = format!("{note}. Required for {} {}", r.method, r.path);
            if let Some(own) = own {
                d = format!("{own}. {d}");
            }
            s["description"] = d.into();
            Some(s)
        }
        many => {
            let variants: Vec<Value> = many
                .iter()
                .map(|r| {
                    let mut s = schema_of(r);
                    s["title"] = format!("{} {}", r.method, r.path).into();
                    s
                })
                .collect();
            Some(json!({
                "description": format!("{note}. Required for the routes that declare one; each variant's title names its route"),
                "anyOf": variants,
            }))
        }
    }
}

/// Query values: strings, numbers and booleans, all sent as text.
fn canonical_query(v: &Value) -> Result<Map<String, Value>, ToolError> {
    let Value::Object(m) = v else {
        return Err(ToolError::invalid(
            "`query` must be an object of names to string, number or boolean values",
        ));
    };
    if m.len() > MAX_QUERY_PARAMS {
        return Err(ToolError::invalid(format!(
            "`query` has {} parameters; the most accepted is {MAX_QUERY_PARAMS}",
            m.len()
        )));
    }
    let mut out = Map::new();
    for (k, v) in m {
        if k.is_empty() || k.len() > MAX_QUERY_VALUE || k.chars().any(char::is_control) {
            return Err(ToolError::invalid(format!(
                "query parameter name `{}` is empty, too long or has control characters",
                clip(k, 40)
            )));
        }
        let s = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => {
                return Err(ToolError::invalid(format!(
                    "query parameter `{}` must be a string, number or boolean",
                    clip(k, 40)
                )))
            }
        };
        if s.len() > MAX_QUERY_VALUE {
            return Err(ToolError::invalid(format!(
                "query parameter `{}` is {} bytes; the most accepted is {MAX_QUERY_VALUE}",
                clip(k, 40),
                s.len()
            )));
        }
        out.insert(k.clone(), Value::String(s));
    }
    Ok(out)
}

#[async_trait::async_trait]
impl ToolImpl for HttpTool {
    fn input_schema(&self, limits: &Limits) -> Value {
        let routes: Vec<String> = limits
            .routes
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect();
        let mut schema = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "properties": {
                "method": {"type": "string", "enum": methods(limits), "description": "HTTP method of the route"},
                "path": {"type": "string", "maxLength": MAX_PATH, "pattern": "^/",
                         "description": format!("Path of one allowed route, `{{name}}` filled with one segment. Routes: {}", routes.join(", "))},
                "query": {"type": "object", "maxProperties": MAX_QUERY_PARAMS,
                          "additionalProperties": {"type": ["string", "number", "boolean"]},
                          "description": "Query parameters"},
            },
            "required": ["method", "path"],
            "additionalProperties": false,
        });
        if let Some(b) = body_schema(limits) {
            schema["properties"]["body"] = b;
        }
        schema
    }

    fn canonicalize(&self, args: &Value, limits: &Limits) -> Result<Value, ToolError> {
        let a = Args::new(args, &["method", "path", "query", "body"])?;
        let method_raw = a.str("method", 16)?;
        if method_raw.is_empty() || !method_raw.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(ToolError::invalid(format!(
                "`method` `{}` is not an HTTP method; use one of: {}",
                clip(method_raw, 16),
                methods(limits).join(", ")
            )));
        }
        let method = method_raw.to_ascii_uppercase();
        let path = canonical_path(a.str("path", MAX_PATH)?)?;
        if !limits.routes.iter().any(|r| r.matches(&method, &path)) {
            return Err(ToolError::denied(format!(
                "`{method} {}` is not an allowed route; allowed: {}",
                clip(&path, 120),
                allowed_list(limits)
            )));
        }
        let mut out = Map::new();
        out.insert("method".into(), method.clone().into());
        out.insert("path".into(), path.clone().into());
        if let Some(q) = a.get("query") {
            out.insert("query".into(), Value::Object(canonical_query(q)?));
        }
        // Every route this request matches (overlapping patterns may give
        // more than one): the body must satisfy each of them.
        let matched: Vec<&HttpRoute> = limits
            .routes
            .iter()
            .filter(|r| r.matches(&method, &path))
            .collect();
        match a.get("body") {
            Some(body) => {
                if let Some(r) = matched.iter().find(|r| r.body.is_none()) {
                    return Err(ToolError::invalid(format!(
                        "`{} {}` takes no `body`; send the request without one",
                        r.method, r.path
                    )));
                }
                // Depth first and without recursion: everything after this
                // (size, validation, the audit copy) walks the value.
                if nesting_depth(body, MAX_BODY_DEPTH) > MAX_BODY_DEPTH {
                    return Err(ToolError::invalid(format!(
                        "`body` nests deeper than {MAX_BODY_DEPTH} levels of arrays and objects"
                    )));
                }
                let size = serde_json::to_vec(body)
                    .map(|v| v.len())
                    .unwrap_or(usize::MAX);
                if size > MAX_BODY {
                    return Err(ToolError::invalid(format!(
                        "`body` is {size} bytes; the most accepted is {MAX_BODY}"
                    )));
                }
                for r in &matched {
                    if let Some(Err(errors)) = r.body.as_ref().map(|s| s.validate(body)) {
                        let list: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
                        return Err(ToolError::invalid(format!(
                            "`body` does not match the schema of `{} {}`: {}",
                            r.method,
                            r.path,
                            list.join("; ")
                        )));
                    }
                }
                out.insert("body".into(), body.clone());
            }
            None => {
                if let Some(r) = matched.iter().find(|r| r.body.is_some()) {
                    return Err(ToolError::invalid(format!(
                        "`{} {}` needs a JSON `body`; see the `body` schema of this tool",
                        r.method, r.path
                    )));
                }
            }
        }
        Ok(Value::Object(out))
    }

    async fn call(
        &self,
        ctx: &CallContext,
        args: Value,
        limits: &Limits,
    ) -> Result<ToolOutput, ToolError> {
        let args = self.canonicalize(&args, limits)?;
        let method_s = args["method"].as_str().unwrap_or_default();
        let method = reqwest::Method::from_bytes(method_s.as_bytes())
            .map_err(|_| ToolError::invalid("bad method"))?;
        let path = args["path"].as_str().unwrap_or_default();
        let url = self.url(path, args.get("query").and_then(Value::as_object))?;
        let mut req = self.client.request(method, url);
        if let Some(body) = args.get("body") {
            let bytes = serde_json::to_vec(body)
                .map_err(|_| ToolError::invalid("`body` is not serialisable"))?;
            req = req
                .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                .body(bytes);
        }
        // Values that must never come back to the model, should the service
        // echo them: the header value and each secret it was built from.
        let mut secrets: Vec<Zeroizing<String>> = Vec::new();
        if let Some((header, secret)) = &self.auth {
            // The agent hears only that the credential is missing; the
            // operator's log names the tool and the reference to fix (the
            // reference, `${env:NAME}` or `${file:PATH}`, never a value).
            let unavailable = |r: &dyn std::fmt::Display, e: &dyn std::fmt::Display| {
                tracing::warn!(
                    tool = %self.name,
                    secret = %r,
                    error = %e,
                    "tool `{}`: its credential {r} is not available ({e}); the call failed",
                    self.name
                );
                ToolError::failed("this tool's credential is not available; tell the operator")
            };
            // Each reference on its own first, so the log can say which.
            for r in secret.refs() {
                secrets.push(resolve_ref(&r).map_err(|e| unavailable(&r, &e))?);
            }
            let value = secret.resolve().map_err(|e| unavailable(secret, &e))?;
            secrets.push(Zeroizing::new(value.expose().to_string()));
            let mut hv = HeaderValue::from_str(value.expose()).map_err(|_| {
                ToolError::failed(
                    "this tool's credential is not a valid header value; tell the operator",
                )
            })?;
            hv.set_sensitive(true);
            req = req.header(header.clone(), hv);
        }
        let cap = limits.max_response_size;
        let timeout = limits.timeout;
        let exchange = async {
            let resp = req.send().await.map_err(|e| {
                tracing::info!(tool = %self.name, error = %e, "upstream request failed");
                ToolError::failed(if e.is_connect() {
                    "could not connect to the service; try again later".to_string()
                } else {
                    "the request to the service failed before a response arrived".to_string()
                })
            })?;
            let status = resp.status();
            let mut headers = Map::new();
            for name in SHOWN_HEADERS {
                if let Some(v) = resp.headers().get(*name).and_then(|v| v.to_str().ok()) {
                    headers.insert((*name).to_string(), clip(v, 512).into());
                }
            }
            let is_json = resp
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|ct| {
                    let ct = ct.to_ascii_lowercase();
                    ct.starts_with("application/json") || ct.contains("+json")
                });
            // Streamed, stopping at the cap: a huge body costs at most `cap`.
            let mut body = Vec::new();
            let mut truncated = false;
            let mut stream = resp.bytes_stream();
            while let Some(chunk) = stream.next().await {
                let chunk =
                    chunk.map_err(|_| ToolError::failed("the response body was cut off"))?;
                let room = (cap as usize).saturating_sub(body.len());
                if chunk.len() > room {
                    body.extend_from_slice(&chunk[..room]);
                    truncated = true;
                    break;
                }
                body.extend_from_slice(&chunk);
            }
            Ok::<_, ToolError>((status, headers, is_json, body, truncated))
        };
        let (status, mut headers, is_json, mut body, truncated) = tokio::select! {
            r = exchange => r?,
            _ = ctx.cancel.cancelled() => return Err(ToolError::Cancelled),
            _ = tokio::time::sleep(timeout) => return Err(ToolError::Timeout(timeout)),
        };
        redact::body(&mut body, &secrets, truncated);
        for v in headers.values_mut() {
            let mut b = v.as_str().unwrap_or_default().as_bytes().to_vec();
            redact::body(&mut b, &secrets, false);
            *v = String::from_utf8_lossy(&b).into_owned().into();
        }
        let parsed = if is_json && !truncated {
            serde_json::from_slice::<Value>(&body).ok()
        } else {
            None
        };
        let text_body = match std::str::from_utf8(&body) {
            Ok(s) => Some(s.to_string()),
            // A cut in the middle of a character is still text.
            Err(e) if truncated && e.error_len().is_none() => {
                Some(String::from_utf8_lossy(&body[..e.valid_up_to()]).into_owned())
            }
            Err(_) => None,
        };
        let mut v = json!({"status": status.as_u16(), "headers": headers, "truncated": truncated});
        let shown = match (&parsed, &text_body) {
            (Some(j), _) => {
                v["json"] = j.clone();
                serde_json::to_string_pretty(j).unwrap_or_default()
            }
            (None, Some(t)) => {
                v["text"] = t.clone().into();
                t.clone()
            }
            (None, None) => {
                v["binary_size"] = body.len().into();
                format!("binary body, {} bytes", body.len())
            }
        };
        let mut text = format!("HTTP {status}\n");
        for (k, val) in &headers {
            text.push_str(&format!("{k}: {}\n", val.as_str().unwrap_or("")));
        }
        text.push('\n');
        text.push_str(&shown);
        if truncated {
            text.push_str(&format!("\n… response truncated at {cap} bytes"));
        }
        Ok(ToolOutput {
            text,
            structured: Some(v),
            is_error: status.is_client_error() || status.is_server_error(),
        })
    }
}
