//! `graph --format dot` must be valid Graphviz: render it with `dot`.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::support::TestEnv;

#[test]
fn dot_output_renders_with_graphviz() {
    let env = TestEnv::new();
    env.copy_from_repo("examples/quickstart");
    let out = env.run(&["graph", "-c", "examples/quickstart/pipeline.yaml", "--format", "dot"]);
    assert_eq!(out.code, 0, "{}", out.snapshot());
    let mut dot = Command::new("dot")
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect(
            "Graphviz `dot` must be installed to run this test (Debian: apt-get install graphviz; .ci/run installs it)",
        );
    dot.stdin.take().unwrap().write_all(out.stdout.as_bytes()).unwrap();
    let rendered = dot.wait_with_output().unwrap();
    assert!(
        rendered.status.success(),
        "dot rejected the output: {}",
        String::from_utf8_lossy(&rendered.stderr)
    );
    let svg = String::from_utf8_lossy(&rendered.stdout).replace("&#45;", "-");
    for name in ["Staging", "Production", "Review", "platform", "prod-overrides"] {
        assert!(svg.contains(name), "{name} missing from the rendered graph");
    }
}

#[test]
fn every_graph_format() {
    let env = TestEnv::new();
    env.copy_from_repo("examples/quickstart");
    for format in ["text", "dot", "mermaid", "json"] {
        let out = env.run(&["graph", "-c", "examples/quickstart/pipeline.yaml", "--format", format]);
        assert_eq!(out.code, 0);
        insta::assert_snapshot!(format!("graph_{format}"), out.stdout);
    }
}
