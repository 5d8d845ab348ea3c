//! Typed statement parameters: JSON arguments checked against the declared
//! [`SqlType`] (no coercion from strings, so `"1; DROP TABLE t"` is never an
//! integer), then bound in the server's binary format for the type the
//! server inferred for that placeholder.

use std::error::Error;

use airlock_config::{SqlParam, SqlType};
use bytes::BytesMut;
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;
use tokio_postgres::types::{IsNull, ToSql, Type};

use crate::args::{as_int, clip};
use crate::ToolError;

/// Longest text parameter.
pub const MAX_TEXT: usize = 64 * 1024;

/// One checked parameter value.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    Int(i64),
    Float(f64),
    Text(String),
    Bool(bool),
    Uuid(uuid::Uuid),
    Timestamp(DateTime<Utc>),
    Date(NaiveDate),
}

pub fn type_name(t: SqlType) -> &'static str {
    match t {
        SqlType::Integer => "integer",
        SqlType::BigInt => "bigint",
        SqlType::Float => "float",
        SqlType::Text => "text",
        SqlType::Boolean => "boolean",
        SqlType::Uuid => "uuid",
        SqlType::Timestamp => "timestamp",
        SqlType::Date => "date",
    }
}

/// JSON Schema of one parameter.
pub fn schema(p: &SqlParam) -> Value {
    let mut s = match p.ty {
        SqlType::Integer => {
            serde_json::json!({"type": "integer", "minimum": i32::MIN, "maximum": i32::MAX})
        }
        SqlType::BigInt => {
            serde_json::json!({"type": "integer", "minimum": i64::MIN, "maximum": i64::MAX})
        }
        SqlType::Float => serde_json::json!({"type": "number"}),
        SqlType::Text => serde_json::json!({"type": "string", "maxLength": MAX_TEXT}),
        SqlType::Boolean => serde_json::json!({"type": "boolean"}),
        SqlType::Uuid => serde_json::json!({"type": "string", "format": "uuid"}),
        SqlType::Timestamp => serde_json::json!({"type": "string", "format": "date-time",
            "description": "RFC 3339 with an offset, like 2024-05-01T12:00:00Z"}),
        SqlType::Date => serde_json::json!({"type": "string", "format": "date",
            "description": "YYYY-MM-DD"}),
    };
    if let Some(d) = &p.description {
        let merged = match s.get("description").and_then(Value::as_str) {
            Some(fmt) => format!("{d} ({fmt})"),
            None => d.clone(),
        };
        s["description"] = merged.into();
    }
    s
}

/// Checks one argument against its declared type.
pub fn check(p: &SqlParam, v: &Value) -> Result<Param, ToolError> {
    let want = type_name(p.ty);
    let wrong = || {
        let shown = match v {
            Value::String(s) => format!("the string \"{}\"", clip(s, 40)),
            other => clip(&other.to_string(), 40),
        };
        ToolError::invalid(format!(
            "parameter `{}` must be {} {want}; got {shown}",
            p.name,
            if want.starts_with(['a', 'i', 'u']) {
                "an"
            } else {
                "a"
            }
        ))
    };
    Ok(match p.ty {
        SqlType::Integer => {
            let n = as_int(v).ok_or_else(wrong)?;
            if i32::try_from(n).is_err() {
                return Err(ToolError::invalid(format!(
                    "parameter `{}` is out of range for an integer ({} to {})",
                    p.name,
                    i32::MIN,
                    i32::MAX
                )));
            }
            Param::Int(n)
        }
        SqlType::BigInt => Param::Int(as_int(v).ok_or_else(wrong)?),
        SqlType::Float => {
            let f = match v {
                Value::Number(n) => n.as_f64().ok_or_else(wrong)?,
                _ => return Err(wrong()),
            };
            Param::Float(f)
        }
        SqlType::Text => {
            let s = v.as_str().ok_or_else(wrong)?;
            if s.len() > MAX_TEXT {
                return Err(ToolError::invalid(format!(
                    "parameter `{}` is {} bytes; the most accepted is {MAX_TEXT}",
                    p.name,
                    s.len()
                )));
            }
            if s.contains('\0') {
                return Err(ToolError::invalid(format!(
                    "parameter `{}` contains a NUL character",
                    p.name
                )));
            }
            Param::Text(s.to_string())
        }
        SqlType::Boolean => Param::Bool(v.as_bool().ok_or_else(wrong)?),
        SqlType::Uuid => {
            let s = v.as_str().ok_or_else(wrong)?;
            Param::Uuid(uuid::Uuid::try_parse(s).map_err(|_| wrong())?)
        }
        SqlType::Timestamp => {
            let s = v.as_str().ok_or_else(wrong)?;
            let t = DateTime::parse_from_rfc3339(s).map_err(|_| {
                ToolError::invalid(format!(
                    "parameter `{}` must be an RFC 3339 timestamp with an offset, like 2024-05-01T12:00:00Z",
                    p.name
                ))
            })?;
            Param::Timestamp(t.with_timezone(&Utc))
        }
        SqlType::Date => {
            let s = v.as_str().ok_or_else(wrong)?;
            Param::Date(NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| {
                ToolError::invalid(format!(
                    "parameter `{}` must be a date like 2024-05-01",
                    p.name
                ))
            })?)
        }
    })
}

impl Param {
    /// The canonical JSON form (what the policy and the audit log see).
    pub fn to_json(&self) -> Value {
        match self {
            Param::Int(n) => (*n).into(),
            Param::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
            Param::Text(s) => s.clone().into(),
            Param::Bool(b) => (*b).into(),
            Param::Uuid(u) => u.hyphenated().to_string().into(),
            Param::Timestamp(t) => t
                .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
                .into(),
            Param::Date(d) => d.format("%Y-%m-%d").to_string().into(),
        }
    }

    /// Whether this value can be sent for a placeholder the server typed `ty`.
    pub fn fits(&self, ty: &Type) -> bool {
        match self {
            Param::Int(n) => match *ty {
                Type::INT2 => i16::try_from(*n).is_ok(),
                Type::INT4 => i32::try_from(*n).is_ok(),
                Type::INT8 => true,
                _ => false,
            },
            Param::Float(_) => matches!(*ty, Type::FLOAT4 | Type::FLOAT8),
            Param::Text(_) => matches!(*ty, Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME),
            Param::Bool(_) => *ty == Type::BOOL,
            Param::Uuid(_) => *ty == Type::UUID,
            Param::Timestamp(_) => matches!(*ty, Type::TIMESTAMPTZ | Type::TIMESTAMP),
            Param::Date(_) => *ty == Type::DATE,
        }
    }
}

impl ToSql for Param {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        match self {
            Param::Int(n) => match *ty {
                Type::INT2 => i16::try_from(*n)?.to_sql(ty, out),
                Type::INT4 => i32::try_from(*n)?.to_sql(ty, out),
                _ => n.to_sql(ty, out),
            },
            Param::Float(f) => {
                if *ty == Type::FLOAT4 {
                    (*f as f32).to_sql(ty, out)
                } else {
                    f.to_sql(ty, out)
                }
            }
            Param::Text(s) => s.as_str().to_sql(ty, out),
            Param::Bool(b) => b.to_sql(ty, out),
            Param::Uuid(u) => u.to_sql(ty, out),
            Param::Timestamp(t) => {
                if *ty == Type::TIMESTAMP {
                    t.naive_utc().to_sql(ty, out)
                } else {
                    t.to_sql(ty, out)
                }
            }
            Param::Date(d) => d.to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        // Checked per placeholder with `fits` before binding.
        true
    }

    tokio_postgres::types::to_sql_checked!();
}
