//! docs/config.md's key reference is generated from the spec the loader
//! uses; this test fails when they differ. `AIRLOCK_BLESS=1 cargo test -p
//! airlock-config --test docs` rewrites the generated part.

const BEGIN: &str = "<!-- BEGIN GENERATED: key reference (crates/config/src/spec.rs) -->\n";
const END: &str = "<!-- END GENERATED -->\n";

#[test]
fn docs_config_md_matches_the_spec() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/config.md");
    let doc = std::fs::read_to_string(&path).expect("docs/config.md exists");
    let (Some(b), Some(e)) = (doc.find(BEGIN), doc.find(END)) else {
        panic!("docs/config.md lacks the generated-section markers");
    };
    let current = &doc[b + BEGIN.len()..e];
    let wanted = airlock_config::docs::reference_markdown();
    if current == wanted {
        return;
    }
    if std::env::var_os("AIRLOCK_BLESS").is_some() {
        let new = format!("{}{BEGIN}{wanted}{}", &doc[..b], &doc[e..]);
        std::fs::write(&path, new).unwrap();
        return;
    }
    panic!("docs/config.md is out of date with crates/config/src/spec.rs; run `AIRLOCK_BLESS=1 cargo test -p airlock-config --test docs`");
}

/// Every ```yaml block in README.md and docs/*.md is something a reader will
/// paste into airlock.yaml: each must load (with `version: 1` added when the
/// block leaves it out; secret references are parsed, not resolved). A block
/// that is deliberately part of a section (`# ...` standing for the rest) is
/// marked by a `<!-- fragment -->` line just before its fence and skipped.
#[test]
fn yaml_examples_in_the_docs_load() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = vec![root.join("README.md")];
    for e in std::fs::read_dir(root.join("docs")).expect("docs/ exists") {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "md") {
            files.push(p);
        }
    }
    files.sort();
    let (mut checked, mut failures) = (0, Vec::new());
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap();
        let name = path
            .strip_prefix(&root)
            .unwrap_or(path)
            .display()
            .to_string();
        for block in yaml_blocks(&text) {
            if block.fragment {
                continue;
            }
            checked += 1;
            let src = if block.text.lines().any(|l| l.starts_with("version:")) {
                block.text.clone()
            } else {
                format!("version: 1\n{}", block.text)
            };
            if let Err(d) = airlock_config::load_str(&src, "/airlock-docs-test/airlock.yaml") {
                failures.push(format!("{name}:{}: {d}", block.line));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "yaml examples in the docs that do not load (mark a partial one `<!-- fragment -->`):\n{}",
        failures.join("\n")
    );
    // The docs hold several full examples; finding none means the scan broke.
    assert!(checked >= 7, "only {checked} yaml blocks found in the docs");
}

struct YamlBlock {
    /// 1-based line of the opening fence.
    line: usize,
    text: String,
    fragment: bool,
}

/// The ```yaml blocks of a Markdown text, de-indented (a block inside a list
/// item is indented like the item's text).
fn yaml_blocks(text: &str) -> Vec<YamlBlock> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let fence = lines[i].trim_start();
        let indent = lines[i].len() - fence.len();
        if !fence.starts_with("```") {
            i += 1;
            continue;
        }
        let lang = fence.trim_start_matches('`').trim();
        let start = i;
        i += 1;
        let mut body = String::new();
        while i < lines.len() && lines[i].trim() != "```" {
            let l = lines[i];
            body.push_str(
                l.get(indent.min(l.len() - l.trim_start().len())..)
                    .unwrap_or(""),
            );
            body.push('\n');
            i += 1;
        }
        i += 1;
        if lang == "yaml" || lang == "yml" {
            let fragment = start > 0 && lines[start - 1].trim() == "<!-- fragment -->";
            out.push(YamlBlock {
                line: start + 1,
                text: body,
                fragment,
            });
        }
    }
    out
}
