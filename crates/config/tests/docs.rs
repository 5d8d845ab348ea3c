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
