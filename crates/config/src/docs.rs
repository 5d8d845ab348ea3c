//! The key reference of `docs/config.md`, generated from [`crate::spec`].

use std::fmt::Write;

use crate::spec::{self, Field, Obj, Req, Ty};

/// Markdown: one table per mapping, in file order.
pub fn reference_markdown() -> String {
    let mut out = String::new();
    let mut seen = Vec::new();
    section(&mut out, &spec::ROOT, &mut seen);
    out
}

fn section(out: &mut String, obj: &'static Obj, seen: &mut Vec<&'static str>) {
    if seen.contains(&obj.path) {
        return;
    }
    seen.push(obj.path);
    let title = if obj.path.is_empty() {
        "Top level".to_string()
    } else {
        format!("`{}`", obj.path)
    };
    let _ = writeln!(out, "### {title}\n\n{}\n", obj.doc);
    table(out, obj.fields.iter());
    for f in obj.fields {
        nested(out, &f.ty, seen);
    }
}

fn nested(out: &mut String, t: &Ty, seen: &mut Vec<&'static str>) {
    match t {
        Ty::Obj(o) => section(out, o, seen),
        Ty::List(i) | Ty::Map(i) => nested(out, i, seen),
        Ty::Tool => tools(out, seen),
        Ty::Schema => section(out, &spec::BODY_SCHEMA, seen),
        Ty::Route => {
            let _ = writeln!(
                out,
                "### `connector.routes.NAME`\n\nA route sets exactly one of these keys.\n"
            );
            table(out, spec::ROUTE_FORMS.iter());
            let _ = writeln!(out, "It may also set:\n");
            table(out, spec::ROUTE_OPTIONS.iter());
        }
        _ => {}
    }
}

fn tools(out: &mut String, seen: &mut Vec<&'static str>) {
    let _ = writeln!(
        out,
        "### `tools.NAME`\n\nEvery tool takes these keys; `kind` decides which others it takes (below).\n"
    );
    table(out, spec::TOOL_COMMON.iter());
    for k in spec::TOOL_KINDS {
        let _ = writeln!(out, "#### `kind: {}`\n\n{}\n", k.name, k.doc);
        table(out, k.fields.iter());
    }
    for k in spec::TOOL_KINDS {
        for f in k.fields {
            nested(out, &f.ty, seen);
        }
    }
}

fn table<'a>(out: &mut String, fields: impl Iterator<Item = &'a Field>) {
    out.push_str("| key | type | default | meaning |\n|---|---|---|---|\n");
    for f in fields {
        let default = match f.req {
            Req::Required => "**required**".to_string(),
            Req::Optional => "not set".to_string(),
            Req::Default(d) => format!("`{d}`"),
        };
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} |",
            f.name,
            f.ty.describe().replace('|', "\\|"),
            default,
            f.doc.replace('|', "\\|")
        );
    }
    out.push('\n');
}
