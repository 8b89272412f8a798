//! Every YAML and shell snippet in the README and `docs/` is checked, so the documentation
//! cannot drift from the product: pipeline snippets must load without a single error (partial
//! ones inside a minimal pipeline), other YAML (workflows, manifests) must parse, and every
//! `secretsync …` command line must be accepted by the command-line parser.

use std::path::{Path, PathBuf};

use crate::support::{Test, repo};

/// Markdown files with snippets.
fn documents() -> Vec<PathBuf> {
    let root = repo();
    let mut out = vec![root.join("README.md"), root.join("CONTRIBUTING.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    out.extend(docs);
    out
}

/// The fenced blocks of `language` in `path`, with the line each starts on.
fn blocks(path: &Path, languages: &[&str]) -> Vec<(usize, String)> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut out = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, line) in text.lines().enumerate() {
        if current.is_some() && line.trim_start().starts_with("```") {
            out.extend(current.take());
            continue;
        }
        match &mut current {
            Some((_, body)) => {
                body.push_str(line);
                body.push('\n');
            }
            None => {
                if let Some(lang) = line.trim_start().strip_prefix("```")
                    && languages.contains(&lang.trim())
                {
                    current = Some((i + 1, String::new()));
                }
            }
        }
    }
    out
}

/// Top-level keys of a YAML snippet.
fn top_keys(yaml: &str) -> Vec<&str> {
    yaml.lines()
        .filter(|l| !l.starts_with([' ', '#', '-']) && l.contains(':'))
        .filter_map(|l| l.split(':').next())
        .collect()
}

const PIPELINE_KEYS: &[&str] = &[
    "log",
    "vault",
    "aws",
    "sources",
    "merge_store",
    "targets",
    "dynamic_targets",
    "pipeline",
];

/// Whether `yaml` is one YAML document (or several, separated by `---`) that parses.
fn parses(yaml: &str) -> Result<(), String> {
    let mut parser = saphyr_parser::Parser::new_from_str(yaml);
    while let Some(event) = parser.next_event() {
        event.map_err(|e| format!("{}: {}", e.marker().line(), e.info()))?;
    }
    Ok(())
}

#[test]
fn every_yaml_snippet_in_the_docs_loads() {
    let mut checked = 0;
    for doc in documents() {
        for (line, yaml) in blocks(&doc, &["yaml", "yml"]) {
            let at = format!("{}:{line}", doc.strip_prefix(repo()).unwrap().display());
            let keys = top_keys(&yaml);
            if keys.is_empty() || !keys.iter().all(|k| PIPELINE_KEYS.contains(k)) {
                parses(&yaml).unwrap_or_else(|e| panic!("{at}: not valid YAML: {e}\n{yaml}"));
                checked += 1;
                continue;
            }
            let mut text = yaml.clone();
            if !keys.contains(&"sources") {
                text.push_str("sources: { zz-source: { file: { path: ./zz } } }\n");
            }
            if !keys.contains(&"targets") {
                text.push_str("targets: { zz-target: { imports: [zz-source], file: { path: ./zz-out } } }\n");
            }
            let env = |_: &str| Some("value-from-env".to_owned());
            if let Err(err) = secretsync::config::load_str(&text, Path::new("snippet.yaml"), Path::new("."), &env) {
                panic!("{at}: the snippet does not load:\n{err}\n{text}");
            }
            checked += 1;
        }
    }
    assert!(checked >= 6, "the snippets were found ({checked})");
}

#[test]
fn every_secretsync_command_in_the_docs_parses() {
    let env = Test::new();
    let mut checked = 0;
    for doc in documents() {
        for (line, script) in blocks(&doc, &["sh", "bash", "shell", "console", "text"]) {
            let joined = script.replace("\\\n", " ");
            for command in joined.lines() {
                let command = command.trim().trim_start_matches("$ ");
                let Some(args) = command
                    .strip_prefix("secretsync ")
                    .or_else(|| command.strip_prefix("cargo run --locked -- "))
                else {
                    continue;
                };
                let args = args.split(" #").next().unwrap_or_default();
                let args = args.split(['|', ';']).next().unwrap_or_default();
                // `[--flag value]` marks an optional part in usage lines: check it too.
                let args = args.replace(['[', ']'], "");
                let mut words: Vec<&str> = args.split_whitespace().collect();
                words.push("--help");
                let out = env.run(&words);
                let at = format!("{}:{line}", doc.strip_prefix(repo()).unwrap().display());
                assert_eq!(
                    out.code, 0,
                    "{at}: `secretsync {args}` is not accepted:\n{}",
                    out.stderr
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 3, "the commands were found ({checked})");
}
