//! `graph --format dot` must be valid Graphviz: render it with `dot`.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::support::{QUICKSTART, Test};

#[test]
#[expect(clippy::print_stderr, reason = "the fallback says why it did not render")]
fn dot_output_renders_with_graphviz() {
    let env = Test::quickstart();
    let out = env.args(&["graph", "-c", QUICKSTART, "--format", "dot"]).code(0);
    let names = ["Staging", "Production", "Review", "platform", "prod-overrides"];
    let Ok(mut dot) = Command::new("dot")
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
        // Without Graphviz (CI installs it), check the DOT with an independent parser.
        eprintln!("Graphviz `dot` is not installed: checking the DOT output with pydot instead of rendering it");
        let python = crate::support::repo().join(".venv/bin/python");
        let mut parse = Command::new(&python)
            .args([
                "-c",
                "import sys, pydot\nassert pydot.graph_from_dot_data(sys.stdin.read()), 'not DOT'",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{} (scripts/python-env makes it): {e}", python.display()));
        parse.stdin.take().unwrap().write_all(out.stdout.as_bytes()).unwrap();
        let parsed = parse.wait_with_output().unwrap();
        assert!(
            parsed.status.success(),
            "pydot rejected the output: {}",
            String::from_utf8_lossy(&parsed.stderr)
        );
        for name in names {
            assert!(out.stdout.contains(name), "{name} missing from the graph");
        }
        return;
    };
    dot.stdin.take().unwrap().write_all(out.stdout.as_bytes()).unwrap();
    let rendered = dot.wait_with_output().unwrap();
    assert!(
        rendered.status.success(),
        "dot rejected the output: {}",
        String::from_utf8_lossy(&rendered.stderr)
    );
    let svg = String::from_utf8_lossy(&rendered.stdout).replace("&#45;", "-");
    for name in names {
        assert!(svg.contains(name), "{name} missing from the rendered graph");
    }
}

#[test]
fn every_graph_format() {
    let env = Test::quickstart();
    for format in ["text", "dot", "mermaid", "json"] {
        let out = env.run(&["graph", "-c", QUICKSTART, "--format", format]);
        assert_eq!(out.code, 0);
        insta::assert_snapshot!(format!("graph_{format}"), out.stdout);
    }
}
