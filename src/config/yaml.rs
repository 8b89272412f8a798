//! The only module that names the YAML parser: YAML text → a tree of nodes that remember
//! where they came from.
//!
//! Why not deserialise straight from a serde YAML crate? Those report the location of the
//! first error only. Users of a pipeline file need every mistake at once, each with
//! `file:line:col`, including the semantic ones found after parsing (an unknown import, a
//! cycle). So we parse with `saphyr-parser` — a maintained, pure-Rust YAML 1.2 parser that
//! gives a span for every event — into [`Node`]s, and deserialise from those (see `de.rs`).
//!
//! This layer also does what YAML parsers disagree about or get wrong for config files:
//! duplicate keys are errors, aliases are expanded with a size budget (no "billion laughs"),
//! merge keys (`<<: *defaults`) are supported, and a file must hold exactly one document.

use std::collections::BTreeMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

use super::diagnostics::{Diagnostic, Mark};

/// How a scalar was written; only plain scalars are subject to type resolution
/// (`true`, `12`, `null`); quoted and block scalars are always strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    /// Unquoted.
    Plain,
    /// `'…'` or `"…"`.
    Quoted,
    /// `|` or `>`.
    Block,
}

/// A node of the parsed document.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    /// Where the node starts.
    pub mark: Mark,
    /// What it holds.
    pub kind: NodeKind,
}

/// The three YAML node kinds.
#[derive(Debug, Clone)]
pub(crate) enum NodeKind {
    /// A scalar with its text, style and optional core-schema tag (`str`, `int`, …).
    Scalar(String, Style, Option<String>),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in document order (merge keys already applied).
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// Whether this is a null scalar (`~`, `null`, empty) — what `key:` with no value gives.
    pub(crate) fn is_null(&self) -> bool {
        match &self.kind {
            NodeKind::Scalar(text, Style::Plain, None) => {
                matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL")
            }
            NodeKind::Scalar(_, _, Some(tag)) => tag == "null",
            _ => false,
        }
    }

    /// A short description of the node's kind for error messages ("a list", "a string").
    pub(crate) fn describe(&self) -> &'static str {
        match &self.kind {
            NodeKind::Seq(_) => "a list",
            NodeKind::Map(_) => "a mapping",
            NodeKind::Scalar(..) if self.is_null() => "an empty value",
            NodeKind::Scalar(_, Style::Quoted | Style::Block, _) => "a string",
            NodeKind::Scalar(text, Style::Plain, _) => match text.as_str() {
                "true" | "True" | "TRUE" | "false" | "False" | "FALSE" => "a boolean",
                t if t.parse::<i64>().is_ok() || t.parse::<u64>().is_ok() => "a number",
                t if t.parse::<f64>().is_ok() => "a number",
                _ => "a string",
            },
        }
    }
}

/// Upper bound on nodes created by expanding aliases.
const MAX_NODES: usize = 1_000_000;
/// Deepest nesting of lists and mappings (the deepest real pipeline is about ten levels; every
/// later step walks the tree recursively).
const MAX_DEPTH: usize = 64;
/// Upper bound on scalar text created by expanding aliases: a few long anchored strings
/// aliased many times cost few nodes but gigabytes of text.
const MAX_ALIAS_BYTES: usize = 64 * 1024 * 1024;

/// Parses one YAML document. Syntax errors stop parsing (one diagnostic); duplicate keys are
/// collected and parsing goes on, so they are all reported together.
pub(crate) fn parse(source: &str) -> Result<(Node, Vec<Diagnostic>), Diagnostic> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(source);
    let mut documents = 0;
    while let Some(event) = parser.next_event() {
        let (event, span) = event.map_err(|err| {
            let m = err.marker();
            let diagnostic = Diagnostic::error(
                Mark::new(m.line(), m.col() + 1),
                format!("YAML syntax error: {}", err.info()),
            );
            // `{ path: ${DIR} }`: inside `{ }` or `[ ]` the `{` of `${` starts a mapping.
            let line = source.lines().nth(m.line().saturating_sub(1)).unwrap_or_default();
            if line.contains("${") && (line.contains('{') || line.contains('[')) {
                diagnostic.with_hint("inside `{ … }` or `[ … ]`, quote a value holding `${VAR}`: write `\"${VAR}\"`")
            } else {
                diagnostic
            }
        })?;
        let mark = mark_of(&span);
        match event {
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    return Err(Diagnostic::error(
                        mark,
                        "a pipeline file holds one YAML document, but a second one starts here",
                    )
                    .with_hint("remove the `---` separator or split the file"));
                }
            }
            Event::Scalar(text, style, anchor, tag) => {
                let style = match style {
                    ScalarStyle::Plain => Style::Plain,
                    ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted => Style::Quoted,
                    _ => Style::Block,
                };
                let tag = match tag {
                    None => None,
                    Some(tag) if tag.is_yaml_core_schema() => Some(tag.suffix.clone()),
                    Some(tag) => {
                        return Err(Diagnostic::error(mark, format!("unsupported YAML tag `{tag}`"))
                            .with_hint("pipeline files use plain YAML values; remove the tag"));
                    }
                };
                builder.finish(
                    Node {
                        mark,
                        kind: NodeKind::Scalar(text.into_owned(), style, tag),
                    },
                    anchor,
                );
            }
            Event::SequenceStart(..) | Event::MappingStart(..) if builder.stack.len() >= MAX_DEPTH => {
                return Err(
                    Diagnostic::error(mark, "the file nests lists and mappings more than 64 levels deep")
                        .with_hint("a pipeline file is a few levels deep; check for a runaway `[` or `{`"),
                );
            }
            Event::SequenceStart(anchor, _) => builder.stack.push(Frame::new(mark, anchor, false)),
            Event::MappingStart(anchor, _) => builder.stack.push(Frame::new(mark, anchor, true)),
            Event::SequenceEnd | Event::MappingEnd => {
                let frame = builder.stack.pop().expect("parser balances start and end events");
                let anchor = frame.anchor;
                let node = frame.into_node(&mut builder.diagnostics)?;
                builder.finish(node, anchor);
            }
            Event::Alias(id) => {
                // The cost is known before the copy is made, so a bomb stops without being built.
                let (node, cost) = builder.anchors.get(&id).ok_or_else(|| {
                    Diagnostic::error(mark, "alias refers to an anchor that is not defined before it")
                })?;
                builder.nodes += cost.nodes;
                builder.alias_bytes += cost.bytes;
                if builder.nodes > MAX_NODES || builder.alias_bytes > MAX_ALIAS_BYTES {
                    return Err(Diagnostic::error(
                        mark,
                        "aliases expand to more than 1,000,000 nodes or 64 MiB of text",
                    )
                    .with_hint("the file repeats anchors many times or recursively; write the values out instead"));
                }
                let node = node.clone();
                builder.finish(node, 0);
            }
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => {}
        }
    }
    let root = builder.root.ok_or_else(|| {
        Diagnostic::error(Mark::new(1, 1), "the pipeline file is empty")
            .with_hint("start from examples/quickstart/pipeline.yaml")
    })?;
    Ok((root, builder.diagnostics))
}

fn mark_of(span: &Span) -> Mark {
    Mark::new(span.start.line(), span.start.col() + 1)
}

/// What copying a node costs: its nodes and the bytes of its scalars.
#[derive(Debug, Clone, Copy, Default)]
struct Cost {
    nodes: usize,
    bytes: usize,
}

fn cost_of(node: &Node) -> Cost {
    let own = Cost {
        nodes: 1,
        bytes: match &node.kind {
            NodeKind::Scalar(text, ..) => text.len(),
            _ => 0,
        },
    };
    let children: Vec<&Node> = match &node.kind {
        NodeKind::Scalar(..) => Vec::new(),
        NodeKind::Seq(items) => items.iter().collect(),
        NodeKind::Map(entries) => entries.iter().flat_map(|(k, v)| [k, v]).collect(),
    };
    children.into_iter().map(cost_of).fold(own, |sum, c| Cost {
        nodes: sum.nodes.saturating_add(c.nodes),
        bytes: sum.bytes.saturating_add(c.bytes),
    })
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    /// Anchored nodes with what copying them costs.
    anchors: BTreeMap<usize, (Node, Cost)>,
    root: Option<Node>,
    diagnostics: Vec<Diagnostic>,
    nodes: usize,
    alias_bytes: usize,
}

impl Builder {
    fn finish(&mut self, node: Node, anchor: usize) {
        self.nodes += 1;
        if anchor != 0 {
            let cost = cost_of(&node);
            self.anchors.insert(anchor, (node.clone(), cost));
        }
        match self.stack.last_mut() {
            Some(frame) => frame.push(node),
            None => self.root = Some(node),
        }
    }
}

struct Frame {
    mark: Mark,
    anchor: usize,
    is_map: bool,
    items: Vec<Node>,
}

impl Frame {
    fn new(mark: Mark, anchor: usize, is_map: bool) -> Self {
        Self {
            mark,
            anchor,
            is_map,
            items: Vec::new(),
        }
    }

    fn push(&mut self, node: Node) {
        self.items.push(node);
    }

    fn into_node(self, diagnostics: &mut Vec<Diagnostic>) -> Result<Node, Diagnostic> {
        if !self.is_map {
            return Ok(Node {
                mark: self.mark,
                kind: NodeKind::Seq(self.items),
            });
        }
        let mut explicit: Vec<(Node, Node)> = Vec::new();
        let mut merged: Vec<(Node, Node)> = Vec::new();
        let mut seen: BTreeMap<String, Mark> = BTreeMap::new();
        let mut items = self.items.into_iter();
        while let (Some(key), Some(value)) = (items.next(), items.next()) {
            if matches!(&key.kind, NodeKind::Scalar(k, Style::Plain, None) if k == "<<") {
                merged.extend(merge_key_entries(&value)?);
                continue;
            }
            if let NodeKind::Scalar(text, ..) = &key.kind {
                if let Some(first) = seen.get(text) {
                    diagnostics.push(
                        Diagnostic::error(
                            key.mark,
                            format!("duplicate key `{text}` (first defined at line {})", first.line),
                        )
                        .with_hint("YAML keeps only one of them; remove or rename one"),
                    );
                    continue;
                }
                seen.insert(text.clone(), key.mark);
            }
            explicit.push((key, value));
        }
        for (key, value) in merged {
            if let NodeKind::Scalar(text, ..) = &key.kind {
                if seen.contains_key(text) {
                    continue;
                }
                seen.insert(text.clone(), key.mark);
            }
            explicit.push((key, value));
        }
        Ok(Node {
            mark: self.mark,
            kind: NodeKind::Map(explicit),
        })
    }
}

/// The entries a merge key (`<<`) contributes: one mapping, or a list of mappings where
/// earlier ones take precedence.
fn merge_key_entries(value: &Node) -> Result<Vec<(Node, Node)>, Diagnostic> {
    match &value.kind {
        NodeKind::Map(entries) => Ok(entries.clone()),
        NodeKind::Seq(maps) => {
            let mut out = Vec::new();
            for m in maps {
                match &m.kind {
                    NodeKind::Map(entries) => out.extend(entries.iter().cloned()),
                    _ => return Err(merge_key_error(m)),
                }
            }
            Ok(out)
        }
        NodeKind::Scalar(..) => Err(merge_key_error(value)),
    }
}

fn merge_key_error(node: &Node) -> Diagnostic {
    Diagnostic::error(
        node.mark,
        format!(
            "a merge key (`<<`) takes a mapping or a list of mappings, not {}",
            node.describe()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map_keys(node: &Node) -> Vec<String> {
        match &node.kind {
            NodeKind::Map(entries) => entries
                .iter()
                .map(|(k, _)| match &k.kind {
                    NodeKind::Scalar(t, ..) => t.clone(),
                    _ => "?".into(),
                })
                .collect(),
            _ => vec![],
        }
    }

    #[test]
    fn records_positions() {
        let (root, diags) = parse("a: 1\nb:\n  c: [x, y]\n").unwrap();
        assert!(diags.is_empty());
        let NodeKind::Map(entries) = &root.kind else { panic!() };
        assert_eq!(entries[1].0.mark, Mark::new(2, 1));
        assert_eq!(entries[1].1.mark, Mark::new(3, 3));
    }

    #[test]
    fn reports_every_duplicate_key() {
        let (_, diags) = parse("a: 1\nb: 2\na: 3\nb: 4\n").unwrap();
        let text: Vec<String> = diags
            .iter()
            .map(|d| format!("{}:{} {}", d.mark.line, d.mark.col, d.message))
            .collect();
        assert_eq!(
            text,
            [
                "3:1 duplicate key `a` (first defined at line 1)",
                "4:1 duplicate key `b` (first defined at line 2)",
            ]
        );
    }

    #[test]
    fn syntax_errors_have_a_location() {
        let err = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.message.starts_with("YAML syntax error"), "{}", err.message);
        assert!(err.mark.line >= 1);
    }

    #[test]
    fn expands_aliases_and_merge_keys() {
        let (root, diags) = parse("d: &d {x: 1, y: 2}\ne:\n  <<: *d\n  y: 3\n").unwrap();
        assert!(diags.is_empty());
        let NodeKind::Map(entries) = &root.kind else { panic!() };
        assert_eq!(map_keys(&entries[1].1), ["y", "x"]);
    }

    #[test]
    fn rejects_a_second_document_and_an_empty_file() {
        assert!(parse("a: 1\n---\nb: 2\n").unwrap_err().message.contains("second one"));
        assert!(parse("").unwrap_err().message.contains("empty"));
        assert!(parse("# only a comment\n").unwrap_err().message.contains("empty"));
    }

    #[test]
    fn bounds_alias_expansion() {
        use std::fmt::Write as _;
        let mut src = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..8 {
            let p = i - 1;
            let _ = writeln!(
                src,
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]"
            );
        }
        assert!(parse(&src).unwrap_err().message.contains("1,000,000"));
    }

    #[test]
    fn an_unquoted_variable_in_a_flow_mapping_gets_a_quoting_hint() {
        let err = parse("sources: { s: { file: { path: ${SRC_DIR} } } }\n").unwrap_err();
        assert!(
            err.hint
                .as_deref()
                .unwrap_or_default()
                .contains("quote a value holding `${VAR}`"),
            "{err:?}"
        );
        assert!(parse("a: {b: \"${X}\"}\n").is_ok());
    }

    #[test]
    fn bounds_the_text_aliases_copy_and_the_nesting() {
        use std::fmt::Write as _;
        // 100 KB anchored once and aliased 10,000 times: few nodes, a gigabyte of text.
        let mut src = format!("big: &big \"{}\"\nmany: [", "x".repeat(100_000));
        for _ in 0..10_000 {
            let _ = write!(src, "*big, ");
        }
        src.push_str("]\n");
        let err = parse(&src).unwrap_err();
        assert!(err.message.contains("64 MiB of text"), "{}", err.message);

        let deep_flow = format!("a: {}1{}\n", "[".repeat(10_000), "]".repeat(10_000));
        assert!(parse(&deep_flow).is_err(), "the parser's own limit");
        let mut deep_block = String::new();
        for level in 0..100 {
            let _ = writeln!(deep_block, "{}a:", " ".repeat(level));
        }
        let err = parse(&deep_block).unwrap_err();
        assert!(err.message.contains("more than 64 levels deep"), "{}", err.message);
        assert!(parse(&format!("a: {}1{}\n", "[".repeat(60), "]".repeat(60))).is_ok());
    }
}
