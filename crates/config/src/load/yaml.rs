//! YAML text to a small node tree that keeps the position of every key and
//! value. Duplicate keys, non-scalar keys, tabs in indentation, several
//! documents, deep nesting and alias explosions are refused here.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, ScanError, Span};

use super::diag::Pos;

/// Deeper than any real config; stops recursion before the stack does.
const MAX_DEPTH: usize = 64;
/// Bounds what aliases can expand to ("billion laughs").
const MAX_NODES: usize = 200_000;

#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub pos: Pos,
    pub value: Value,
}

#[derive(Debug, Clone)]
pub(crate) enum Value {
    /// `plain` is false for quoted and block scalars, which are always strings.
    Scalar {
        text: String,
        plain: bool,
    },
    Seq(Vec<Node>),
    Map(Vec<Entry>),
}

#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub key: String,
    pub key_pos: Pos,
    pub value: Node,
}

impl Node {
    /// YAML null: an empty value, `~` or `null`.
    pub fn is_null(&self) -> bool {
        matches!(&self.value, Value::Scalar { text, plain: true }
            if matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    /// How the value reads in an error message.
    pub fn describe(&self) -> String {
        match &self.value {
            _ if self.is_null() => "nothing (null)".to_string(),
            Value::Scalar { text, plain } => {
                let shown: String = text.chars().take(40).collect();
                let shown = if shown.len() < text.len() {
                    format!("{shown}…")
                } else {
                    shown
                };
                if *plain
                    && matches!(
                        text.as_str(),
                        "true" | "false" | "True" | "False" | "TRUE" | "FALSE"
                    )
                {
                    format!("the boolean `{shown}`")
                } else if *plain && text.parse::<f64>().is_ok() {
                    format!("the number `{shown}`")
                } else {
                    format!("the string `{shown}`")
                }
            }
            Value::Seq(_) => "a list".to_string(),
            Value::Map(_) => "a mapping".to_string(),
        }
    }
}

/// A problem found while reading the YAML itself.
pub(crate) struct SyntaxError {
    pub pos: Pos,
    pub message: String,
    pub help: String,
}

/// Parses one document: the tree (`None` for a file with no content) and
/// the problems that did not stop parsing (duplicate keys), or the problems
/// that did.
pub(crate) type Parsed = (Option<Node>, Vec<SyntaxError>);

pub(crate) fn parse(src: &str) -> Result<Parsed, Vec<SyntaxError>> {
    let tabs = tab_indentation(src);
    if !tabs.is_empty() {
        return Err(tabs);
    }
    let mut b = Builder {
        parser: Parser::new_from_str(src),
        anchors: HashMap::new(),
        nodes: 0,
        errors: Vec::new(),
    };
    match b.document() {
        Ok(root) => Ok((root, b.errors)),
        Err(e) => {
            b.errors.push(e);
            Err(b.errors)
        }
    }
}

/// YAML forbids tabs for indentation; the parser's own message for them is
/// obscure, so find them first and say so plainly.
fn tab_indentation(src: &str) -> Vec<SyntaxError> {
    let mut out = Vec::new();
    for (i, line) in src.lines().enumerate() {
        let indent: String = line
            .chars()
            .take_while(|c| *c == ' ' || *c == '\t')
            .collect();
        if let Some(col) = indent.chars().position(|c| c == '\t') {
            if line.trim().is_empty() || line.trim_start().starts_with('#') {
                continue;
            }
            out.push(SyntaxError {
                pos: Pos {
                    line: i + 1,
                    column: col + 1,
                },
                message: "tab character in indentation".to_string(),
                help: "YAML indents with spaces only; replace the tab with spaces".to_string(),
            });
        }
    }
    out
}

struct Builder<'a> {
    parser: Parser<'a, saphyr_parser::StrInput<'a>>,
    anchors: HashMap<usize, Node>,
    nodes: usize,
    errors: Vec<SyntaxError>,
}

fn pos(span: &Span) -> Pos {
    Pos {
        line: span.start.line(),
        column: span.start.col() + 1,
    }
}

fn scan_error(e: &ScanError) -> SyntaxError {
    let m = e.marker();
    SyntaxError {
        pos: Pos {
            line: m.line(),
            column: m.col() + 1,
        },
        message: format!("YAML syntax error: {}", e.info()),
        help: "check the indentation, the quotes and brackets, and that each `key:` is followed by a space"
            .to_string(),
    }
}

impl<'a> Builder<'a> {
    fn next(&mut self) -> Result<(Event<'a>, Span), SyntaxError> {
        match self.parser.next_event() {
            Some(Ok(ev)) => Ok(ev),
            Some(Err(e)) => Err(scan_error(&e)),
            None => Err(SyntaxError {
                pos: Pos::default(),
                message: "unexpected end of the YAML input".to_string(),
                help: "the file ends inside a value; check that it is complete".to_string(),
            }),
        }
    }

    fn document(&mut self) -> Result<Option<Node>, SyntaxError> {
        let mut root = None;
        let mut docs = 0;
        loop {
            let (ev, span) = self.next()?;
            match ev {
                Event::StreamStart | Event::DocumentEnd | Event::Nothing => {}
                Event::StreamEnd => return Ok(root),
                Event::DocumentStart(_) => {
                    docs += 1;
                    if docs == 2 {
                        return Err(SyntaxError {
                            pos: pos(&span),
                            message: "a second YAML document (`---`) in the file".to_string(),
                            help: "an airlock config is one document; remove the `---` and what follows, or merge it into the first".to_string(),
                        });
                    }
                }
                other => root = Some(self.node(other, span, 0)?),
            }
        }
    }

    fn node(&mut self, ev: Event<'a>, span: Span, depth: usize) -> Result<Node, SyntaxError> {
        let at = pos(&span);
        if depth > MAX_DEPTH {
            return Err(SyntaxError {
                pos: at,
                message: format!("values nested more than {MAX_DEPTH} levels deep"),
                help: "an airlock config is a few levels deep; flatten this value".to_string(),
            });
        }
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(SyntaxError {
                pos: at,
                message: format!("the document expands to more than {MAX_NODES} values"),
                help: "aliases (`*name`) expand here; use fewer of them".to_string(),
            });
        }
        let (node, anchor) = match ev {
            Event::Scalar(text, style, anchor, _) => (
                Node {
                    pos: at,
                    value: Value::Scalar {
                        text: text.into_owned(),
                        plain: style == ScalarStyle::Plain,
                    },
                },
                anchor,
            ),
            Event::SequenceStart(anchor, _) => {
                let mut items = Vec::new();
                loop {
                    let (ev, span) = self.next()?;
                    if ev == Event::SequenceEnd {
                        break;
                    }
                    items.push(self.node(ev, span, depth + 1)?);
                }
                (
                    Node {
                        pos: at,
                        value: Value::Seq(items),
                    },
                    anchor,
                )
            }
            Event::MappingStart(anchor, _) => {
                let mut entries: Vec<Entry> = Vec::new();
                loop {
                    let (ev, span) = self.next()?;
                    if ev == Event::MappingEnd {
                        break;
                    }
                    let key = self.node(ev, span, depth + 1)?;
                    let (ev, span) = self.next()?;
                    let value = self.node(ev, span, depth + 1)?;
                    let Value::Scalar { text, .. } = key.value else {
                        self.errors.push(SyntaxError {
                            pos: key.pos,
                            message: "a list or mapping used as a key".to_string(),
                            help: "keys are plain names; check for a stray `?` or brackets"
                                .to_string(),
                        });
                        continue;
                    };
                    if let Some(first) = entries.iter().find(|e| e.key == text) {
                        self.errors.push(SyntaxError {
                            pos: key.pos,
                            message: format!(
                                "duplicate key `{text}` (first set at line {})",
                                first.key_pos.line
                            ),
                            help:
                                "remove one of the two; airlock does not guess which one you meant"
                                    .to_string(),
                        });
                        continue;
                    }
                    entries.push(Entry {
                        key: text,
                        key_pos: key.pos,
                        value,
                    });
                }
                (
                    Node {
                        pos: at,
                        value: Value::Map(entries),
                    },
                    anchor,
                )
            }
            Event::Alias(id) => match self.anchors.get(&id) {
                Some(n) => {
                    self.nodes += count(n);
                    if self.nodes > MAX_NODES {
                        return Err(SyntaxError {
                            pos: at,
                            message: format!(
                                "the document expands to more than {MAX_NODES} values"
                            ),
                            help: "aliases (`*name`) expand here; use fewer of them".to_string(),
                        });
                    }
                    (n.clone(), 0)
                }
                None => {
                    return Err(SyntaxError {
                        pos: at,
                        message: "alias to an unknown anchor".to_string(),
                        help: "define the anchor (`&name`) before using it (`*name`)".to_string(),
                    })
                }
            },
            other => {
                return Err(SyntaxError {
                    pos: at,
                    message: format!("unexpected YAML event {other:?}"),
                    help: "check the structure of the file around here".to_string(),
                })
            }
        };
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        Ok(node)
    }
}

fn count(n: &Node) -> usize {
    match &n.value {
        Value::Scalar { .. } => 1,
        Value::Seq(items) => 1 + items.iter().map(count).sum::<usize>(),
        Value::Map(entries) => 1 + entries.iter().map(|e| 1 + count(&e.value)).sum::<usize>(),
    }
}
