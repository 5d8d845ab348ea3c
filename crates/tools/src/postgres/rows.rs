//! Result rows as JSON. Exact types stay exact: `numeric` becomes a
//! decimal string (a JSON number would round it), `bytea` base64, times
//! RFC 3339; types without a mapping say so instead of guessing.

use std::error::Error;

use base64::Engine;
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use serde_json::{Map, Value};
use tokio_postgres::types::{FromSql, Type};
use tokio_postgres::Row;

/// One row as an object keyed by column name.
pub fn row_json(row: &Row) -> Result<Map<String, Value>, tokio_postgres::Error> {
    let mut out = Map::new();
    for (i, col) in row.columns().iter().enumerate() {
        out.insert(col.name().to_string(), cell(row, i, col.type_())?);
    }
    Ok(out)
}

fn get<'a, T: FromSql<'a>>(row: &'a Row, i: usize) -> Result<Option<T>, tokio_postgres::Error> {
    row.try_get::<_, Option<T>>(i)
}

fn opt<T>(v: Option<T>, f: impl FnOnce(T) -> Value) -> Value {
    v.map_or(Value::Null, f)
}

fn float(f: f64) -> Value {
    serde_json::Number::from_f64(f).map_or_else(|| Value::String(f.to_string()), Value::Number)
}

fn array<'a, T: FromSql<'a>>(
    row: &'a Row,
    i: usize,
    f: impl Fn(T) -> Value,
) -> Result<Value, tokio_postgres::Error> {
    Ok(opt(get::<Vec<Option<T>>>(row, i)?, |v| {
        Value::Array(v.into_iter().map(|x| opt(x, &f)).collect())
    }))
}

fn cell(row: &Row, i: usize, ty: &Type) -> Result<Value, tokio_postgres::Error> {
    Ok(match *ty {
        Type::BOOL => opt(get::<bool>(row, i)?, Value::from),
        Type::INT2 => opt(get::<i16>(row, i)?, Value::from),
        Type::INT4 => opt(get::<i32>(row, i)?, Value::from),
        Type::INT8 => opt(get::<i64>(row, i)?, Value::from),
        Type::OID => opt(get::<u32>(row, i)?, Value::from),
        Type::FLOAT4 => opt(get::<f32>(row, i)?, |f| float(f64::from(f))),
        Type::FLOAT8 => opt(get::<f64>(row, i)?, float),
        Type::NUMERIC => opt(get::<Numeric>(row, i)?, |n| Value::String(n.0)),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => {
            opt(get::<String>(row, i)?, Value::from)
        }
        Type::CHAR => opt(get::<i8>(row, i)?, Value::from),
        Type::UUID => opt(get::<uuid::Uuid>(row, i)?, |u| {
            u.hyphenated().to_string().into()
        }),
        Type::JSON | Type::JSONB => get::<Value>(row, i)?.unwrap_or(Value::Null),
        Type::BYTEA => opt(get::<Vec<u8>>(row, i)?, |b| {
            base64::engine::general_purpose::STANDARD.encode(b).into()
        }),
        Type::TIMESTAMPTZ => opt(get::<DateTime<Utc>>(row, i)?, |t| {
            t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
                .into()
        }),
        Type::TIMESTAMP => opt(get::<NaiveDateTime>(row, i)?, |t| {
            t.format("%Y-%m-%dT%H:%M:%S%.f").to_string().into()
        }),
        Type::DATE => opt(get::<NaiveDate>(row, i)?, |d| {
            d.format("%Y-%m-%d").to_string().into()
        }),
        Type::TIME => opt(get::<NaiveTime>(row, i)?, |t| {
            t.format("%H:%M:%S%.f").to_string().into()
        }),
        Type::BOOL_ARRAY => array::<bool>(row, i, Value::from)?,
        Type::INT2_ARRAY => array::<i16>(row, i, Value::from)?,
        Type::INT4_ARRAY => array::<i32>(row, i, Value::from)?,
        Type::INT8_ARRAY => array::<i64>(row, i, Value::from)?,
        Type::FLOAT8_ARRAY => array::<f64>(row, i, float)?,
        Type::TEXT_ARRAY | Type::VARCHAR_ARRAY => array::<String>(row, i, Value::from)?,
        Type::UUID_ARRAY => array::<uuid::Uuid>(row, i, |u| u.hyphenated().to_string().into())?,
        ref other => opt(get::<Present>(row, i)?, |_| {
            Value::String(format!(
                "<{} values are not shown; cast the column to text in the statement>",
                other.name()
            ))
        }),
    })
}

/// Any non-NULL value of a type without a mapping (only its presence is used).
struct Present;

impl<'a> FromSql<'a> for Present {
    fn from_sql(_: &Type, _: &'a [u8]) -> Result<Self, Box<dyn Error + Sync + Send>> {
        Ok(Present)
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// `numeric` in its exact decimal text form (`NaN`, `Infinity` included).
pub struct Numeric(pub String);

impl<'a> FromSql<'a> for Numeric {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn Error + Sync + Send>> {
        let word = |k: usize| -> Result<u16, Box<dyn Error + Sync + Send>> {
            raw.get(2 * k..2 * k + 2)
                .map(|b| u16::from_be_bytes([b[0], b[1]]))
                .ok_or_else(|| "truncated numeric".into())
        };
        let ndigits = word(0)? as usize;
        let weight = word(1)? as i16 as i32;
        let sign = word(2)?;
        let dscale = word(3)? as usize;
        let digits = (0..ndigits)
            .map(|k| word(4 + k))
            .collect::<Result<Vec<_>, _>>()?;
        match sign {
            0xC000 => return Ok(Numeric("NaN".into())),
            0xD000 => return Ok(Numeric("Infinity".into())),
            0xF000 => return Ok(Numeric("-Infinity".into())),
            _ => {}
        }
        // Digit k (base 10000) has exponent weight - k.
        let at = |exp: i32| -> u16 {
            let k = weight - exp;
            if k >= 0 && (k as usize) < digits.len() {
                digits[k as usize]
            } else {
                0
            }
        };
        let mut s = String::new();
        if sign == 0x4000 {
            s.push('-');
        }
        if weight < 0 {
            s.push('0');
        } else {
            for exp in (0..=weight).rev() {
                if exp == weight {
                    s.push_str(&at(exp).to_string());
                } else {
                    s.push_str(&format!("{:04}", at(exp)));
                }
            }
        }
        if dscale > 0 {
            let mut frac = String::new();
            let groups = dscale.div_ceil(4) as i32;
            for g in 1..=groups {
                frac.push_str(&format!("{:04}", at(-g)));
            }
            frac.truncate(dscale);
            s.push('.');
            s.push_str(&frac);
        }
        Ok(Numeric(s))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::NUMERIC
    }
}
