//! The invariants of `ARCHITECTURE.md` that the compiler cannot check, checked over the source
//! text (test code excluded): layers only look down, the environment is read in one place, only
//! `engine/apply.rs` writes and decides what a dry run skips, and only `output.rs` prints. A
//! failure names the file and line that broke the rule.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `src/`, with its text up to its test module.
fn product_sources() -> Vec<(PathBuf, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("src is readable") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    let test_files = test_only_files(&files);
    files
        .into_iter()
        .filter(|f| !test_files.contains(f))
        .map(|f| {
            let text = std::fs::read_to_string(&f).expect("readable");
            let product = match text.find("#[cfg(test)]\nmod ") {
                Some(at) => text[..at].to_owned(),
                None => text,
            };
            (f.strip_prefix(&root).expect("under src").to_path_buf(), product)
        })
        .collect()
}

/// Files that are whole test modules (`#[cfg(test)] mod tests;`).
fn test_only_files(files: &[PathBuf]) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(file).expect("readable");
        let dir = if file.file_name().is_some_and(|n| n == "mod.rs" || n == "lib.rs") {
            file.parent().expect("parent").to_path_buf()
        } else {
            file.with_extension("")
        };
        let mut lines = text.lines().peekable();
        while let Some(line) = lines.next() {
            if line.trim() == "#[cfg(test)]"
                && let Some(next) = lines.peek()
                && let Some(name) = next.trim().strip_prefix("mod ").and_then(|r| r.strip_suffix(';'))
            {
                out.insert(dir.join(format!("{name}.rs")));
            }
        }
    }
    out
}

/// Code lines (comments removed) with their numbers.
fn code_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().filter_map(|(i, line)| {
        let code = match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        };
        (!code.trim().is_empty()).then_some((i + 1, code))
    })
}

/// The top-level modules a line names through `crate::…` (also `crate::{a, b::c}`).
fn crate_references(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let after = &rest[at + "crate::".len()..];
        if let Some(group) = after.strip_prefix('{') {
            let mut depth = 1;
            let mut item = String::new();
            let mut at_item_start = true;
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 1 => break,
                    '}' => depth -= 1,
                    ',' if depth == 1 => {
                        at_item_start = true;
                        item.clear();
                    }
                    c if depth == 1 && at_item_start && (c.is_alphanumeric() || c == '_') => item.push(c),
                    _ if depth == 1 && at_item_start && !item.is_empty() => {
                        out.push(std::mem::take(&mut item));
                        at_item_start = false;
                    }
                    _ => {}
                }
            }
            if at_item_start && !item.is_empty() {
                out.push(item);
            }
        } else {
            let name: String = after.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            out.push(name);
        }
        rest = after;
    }
    out
}

/// `store` for `store/aws/s3.rs`, `plan` for `plan.rs`.
fn top_module(file: &Path) -> String {
    let first = file.components().next().expect("a component");
    first.as_os_str().to_string_lossy().trim_end_matches(".rs").to_owned()
}

#[test]
fn layers_only_look_down() {
    let sources = product_sources();
    let modules: BTreeSet<String> = sources
        .iter()
        .map(|(f, _)| top_module(f))
        .filter(|m| m != "lib" && m != "main")
        .collect();
    // (from, to) → the first place it is used.
    let mut edges: BTreeMap<(String, String), String> = BTreeMap::new();
    for (file, text) in &sources {
        let from = top_module(file);
        for (number, code) in code_lines(text) {
            for to in crate_references(code) {
                if to != from && modules.contains(&to) && modules.contains(&from) {
                    edges
                        .entry((from.clone(), to))
                        .or_insert_with(|| format!("src/{}:{number}", file.display()));
                }
            }
        }
    }
    let mut graph = petgraph::graph::DiGraph::<&str, ()>::new();
    let index: BTreeMap<&str, _> = modules
        .iter()
        .map(|m| (m.as_str(), graph.add_node(m.as_str())))
        .collect();
    for (from, to) in edges.keys() {
        graph.add_edge(index[from.as_str()], index[to.as_str()], ());
    }
    let cycles: Vec<String> = petgraph::algo::tarjan_scc(&graph)
        .into_iter()
        .filter(|scc| scc.len() > 1)
        .map(|scc| {
            let members: BTreeSet<&str> = scc.iter().map(|n| graph[*n]).collect();
            let evidence: Vec<String> = edges
                .iter()
                .filter(|((f, t), _)| members.contains(f.as_str()) && members.contains(t.as_str()))
                .map(|((f, t), at)| format!("  {f} → {t} ({at})"))
                .collect();
            format!("{members:?}:\n{}", evidence.join("\n"))
        })
        .collect();
    assert!(
        cycles.is_empty(),
        "modules that depend on each other (move the shared part down):\n{}",
        cycles.join("\n")
    );
    assert!(edges.len() > 20, "the scan found the uses ({})", edges.len());
}

#[test]
fn the_environment_is_read_only_through_env() {
    let mut offences = Vec::new();
    for (file, text) in product_sources() {
        if file == Path::new("env.rs") {
            continue;
        }
        for (number, code) in code_lines(&text) {
            let reads = ["std::env::var", "env::var_os", "std::env::vars"]
                .iter()
                .any(|call| code.contains(call));
            let literal_name = [
                "\"VAULT_",
                "\"AWS_",
                "\"HOME\"",
                "\"HOSTNAME\"",
                "\"GITHUB_",
                "\"SECRETSYNC_",
            ]
            .iter()
            .any(|prefix| {
                code.match_indices(prefix).any(|(at, _)| {
                    let name: String = code[at + 1..]
                        .chars()
                        .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                        .collect();
                    code[at + 1 + name.len()..].starts_with('"')
                })
            });
            // `env!` names variables of the build (the commit), not of the run.
            let at_build = code.contains("env!(");
            if (reads || literal_name) && !at_build {
                offences.push(format!("src/{}:{number}: {}", file.display(), code.trim()));
            }
        }
    }
    assert!(
        offences.is_empty(),
        "read environment variables through `crate::env` (a named `EnvVars` constant, documented in docs/environment.md):\n{}",
        offences.join("\n")
    );
}

#[test]
fn only_apply_writes_and_decides_dry_runs() {
    const WRITES: &[&str] = &[
        ".put(",
        ".delete(",
        ".restore(",
        ".prepare(",
        ".finish(",
        ".begin(",
        ".commit(",
        ".unlock(",
        ".release_lock(",
        "merge.lock(",
    ];
    let mut offences = Vec::new();
    for (file, text) in product_sources() {
        let holds_stores = ["engine", "commands", "discovery", "report"].contains(&top_module(&file).as_str());
        // `secretsync lock release --id` is the operator breaking a lock by hand: its one write.
        let allowed: &[&str] = match file.to_str() {
            Some("engine/apply.rs") => WRITES,
            Some("commands/lock.rs") => &[".release_lock("],
            _ => &[],
        };
        for (number, code) in code_lines(&text) {
            if holds_stores && WRITES.iter().any(|w| code.contains(w) && !allowed.contains(w)) {
                offences.push(format!("src/{}:{number}: writes: {}", file.display(), code.trim()));
            }
            let in_engine = file.starts_with("engine") && file != Path::new("engine/apply.rs");
            // Declaring the option, handing it to the writer, and reporting what the writer did.
            let declares = code.trim() == "pub dry_run: bool,"
                || code.contains("Writer::new(options.dry_run")
                || code.contains("writer.is_dry_run()");
            if in_engine && code.contains("dry_run") && !declares {
                offences.push(format!(
                    "src/{}:{number}: decides a dry run: {}",
                    file.display(),
                    code.trim()
                ));
            }
        }
    }
    assert!(
        offences.is_empty(),
        "only src/engine/apply.rs writes to stores and decides what a dry run skips:\n{}",
        offences.join("\n")
    );
}

#[test]
fn the_scanner_reads_grouped_and_nested_uses() {
    assert_eq!(
        crate_references("use crate::{config::{A, B}, model::X, plan};"),
        ["config", "model", "plan"]
    );
    assert_eq!(crate_references("let x = crate::store::aws::thing();"), ["store"]);
    assert_eq!(crate_references("no reference"), Vec::<String>::new());
}

#[test]
fn only_output_prints() {
    let mut offences = Vec::new();
    for (file, text) in product_sources() {
        // `commands/` hands stderr to the log subscriber and asks whether it is a terminal.
        if file == Path::new("output.rs") || file.starts_with("commands") {
            continue;
        }
        for (number, code) in code_lines(&text) {
            if ["io::stdout", "io::stderr", "print!(", "println!(", "eprint"]
                .iter()
                .any(|p| code.contains(p))
            {
                offences.push(format!("src/{}:{number}: {}", file.display(), code.trim()));
            }
        }
    }
    assert!(
        offences.is_empty(),
        "print through `output::Printer` (the engine emits events, renderers return strings):\n{}",
        offences.join("\n")
    );
}
