//! `secretsync graph`: the inheritance graph as text, Graphviz DOT, Mermaid or JSON.

use std::fmt::Write as _;

use super::{init_logging, load};
use crate::cli::{GlobalArgs, GraphArgs, GraphFormat};
use crate::config::{ImportKind, Pipeline};
use crate::error::CliError;
use crate::output::Printer;

pub(super) fn run(global: &GlobalArgs, args: &GraphArgs, printer: Printer) -> Result<u8, CliError> {
    let pipeline = load(global, printer)?;
    init_logging(global, Some(&pipeline))?;
    let text = match args.format {
        GraphFormat::Text => text(&pipeline),
        GraphFormat::Dot => dot(&pipeline),
        GraphFormat::Mermaid => mermaid(&pipeline),
        GraphFormat::Json => json(&pipeline),
    };
    printer.stdout(&text);
    Ok(0)
}

/// Levels, execution order and an inheritance tree.
pub(crate) fn text(p: &Pipeline) -> String {
    let mut out = String::from("Sources (level 0)\n");
    for (name, source) in &p.sources {
        let _ = writeln!(out, "  {name:<20} {}", source.describe());
    }
    out.push_str("\nTargets by level\n");
    for (i, level) in p.graph.levels().iter().enumerate() {
        let _ = writeln!(out, "  level {}", i + 1);
        for name in level {
            let t = &p.targets[name];
            let imports: Vec<&str> = t.imports.iter().map(|i| i.name.as_str()).collect();
            let _ = writeln!(
                out,
                "    {name:<20} {}  ← {}",
                t.kind.describe(),
                if imports.is_empty() {
                    "(nothing)".to_owned()
                } else {
                    imports.join(", ")
                }
            );
        }
    }
    out.push_str("\nExecution order\n");
    for (i, name) in p.graph.order().iter().enumerate() {
        let _ = writeln!(out, "  {}. {name}", i + 1);
    }
    out.push_str("\nInheritance\n");
    let roots: Vec<String> = p
        .graph
        .order()
        .into_iter()
        .filter(|n| p.graph.parents(n).is_empty())
        .collect();
    for root in roots {
        let _ = writeln!(out, "  {root}");
        tree(&mut out, p, &root, "  ");
    }
    out
}

fn tree(out: &mut String, p: &Pipeline, name: &str, prefix: &str) {
    let children: Vec<&str> = p.graph.children(name).collect();
    for (i, child) in children.iter().enumerate() {
        let last = i + 1 == children.len();
        let _ = writeln!(out, "{prefix}{} {child}", if last { "└──" } else { "├──" });
        tree(
            out,
            p,
            child,
            &format!("{prefix}{}", if last { "    " } else { "│   " }),
        );
    }
}

fn quote(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Graphviz DOT: sources as cylinders, targets as boxes, inheritance edges bold.
pub(crate) fn dot(p: &Pipeline) -> String {
    let mut out = String::from("digraph secretsync {\n  rankdir=LR;\n  node [shape=box, fontname=\"Helvetica\"];\n");
    out.push_str("  subgraph cluster_sources {\n    label=\"sources\";\n    style=dashed;\n");
    for (name, source) in &p.sources {
        let _ = writeln!(
            out,
            "    {} [shape=cylinder, label={}];",
            quote(&format!("source:{name}")),
            quote(&format!("{name}\n{}", source.describe()))
        );
    }
    out.push_str("  }\n");
    for name in p.graph.order() {
        let t = &p.targets[&name];
        let _ = writeln!(
            out,
            "  {} [label={}];",
            quote(&format!("target:{name}")),
            quote(&format!("{name}\n{}", t.kind.describe()))
        );
    }
    for name in p.graph.order() {
        for import in &p.targets[&name].imports {
            let (from, style) = match import.kind {
                ImportKind::Source => (format!("source:{}", import.name), "solid"),
                ImportKind::Target => (format!("target:{}", import.name), "bold"),
            };
            let _ = writeln!(
                out,
                "  {} -> {} [style={style}];",
                quote(&from),
                quote(&format!("target:{name}"))
            );
        }
    }
    out.push_str("}\n");
    out
}

/// A Mermaid flowchart.
pub(crate) fn mermaid(p: &Pipeline) -> String {
    let ids: std::collections::BTreeMap<(bool, &str), String> = p
        .sources
        .keys()
        .enumerate()
        .map(|(i, n)| ((false, n.as_str()), format!("s{i}")))
        .chain(
            p.targets
                .keys()
                .enumerate()
                .map(|(i, n)| ((true, n.as_str()), format!("t{i}"))),
        )
        .collect();
    let label = |text: &str| text.replace('"', "#quot;");
    let mut out = String::from("flowchart LR\n  subgraph sources\n");
    for name in p.sources.keys() {
        let _ = writeln!(out, "    {}[(\"{}\")]", ids[&(false, name.as_str())], label(name));
    }
    out.push_str("  end\n");
    for name in p.graph.order() {
        let _ = writeln!(out, "  {}[\"{}\"]", ids[&(true, name.as_str())], label(&name));
    }
    for name in p.graph.order() {
        for import in &p.targets[&name].imports {
            let is_target = import.kind == ImportKind::Target;
            let arrow = if is_target { "==>" } else { "-->" };
            let _ = writeln!(
                out,
                "  {} {arrow} {}",
                ids[&(is_target, import.name.as_str())],
                ids[&(true, name.as_str())]
            );
        }
    }
    out
}

/// Machine-readable graph.
pub(crate) fn json(p: &Pipeline) -> String {
    let sources: Vec<serde_json::Value> = p
        .sources
        .iter()
        .map(|(name, s)| serde_json::json!({ "name": name, "kind": s.kind(), "description": s.describe() }))
        .collect();
    let targets: Vec<serde_json::Value> = p
        .graph
        .order()
        .iter()
        .map(|name| {
            let t = &p.targets[name];
            let imports: Vec<serde_json::Value> = t
                .imports
                .iter()
                .map(|i| serde_json::json!({ "name": i.name, "kind": if i.kind == ImportKind::Source { "source" } else { "target" } }))
                .collect();
            serde_json::json!({ "name": name, "level": p.graph.level(name), "kind": t.kind.kind(), "destination": t.kind.describe(), "imports": imports })
        })
        .collect();
    let value = serde_json::json!({ "sources": sources, "targets": targets, "levels": p.graph.levels(), "order": p.graph.order() });
    let mut text = serde_json::to_string_pretty(&value).unwrap_or_default();
    text.push('\n');
    text
}
