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
            // An inline test module (`#[cfg(test)]` then `mod tests {`) ends the product code;
            // `#[cfg(test)] mod fuzz;` only declares one (its file is left out above).
            let inline_tests = text
                .match_indices("#[cfg(test)]\nmod ")
                .find(|(at, _)| text[*at..].lines().nth(1).is_some_and(|l| l.trim_end().ends_with('{')));
            let product = match inline_tests {
                Some((at, _)) => text[..at].to_owned(),
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

/// Code lines (comments removed; a `//` inside a string literal is not a comment) with their
/// numbers.
fn code_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().filter_map(|(i, line)| {
        let code = &line[..comment_start(line).unwrap_or(line.len())];
        (!code.trim().is_empty()).then_some((i + 1, code))
    })
}

/// Where a `//` comment starts on `line`, outside string literals.
fn comment_start(line: &str) -> Option<usize> {
    let bytes = line.as_bytes();
    let mut in_string = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if in_string => i += 1,
            // A char literal (`'"'`, `'\''`) is not the start of a string.
            b'\'' if !in_string && bytes.get(i + 2) == Some(&b'\'') => i += 2,
            b'\'' if !in_string && bytes.get(i + 1) == Some(&b'\\') && bytes.get(i + 3) == Some(&b'\'') => i += 3,
            b'"' => in_string = !in_string,
            b'/' if !in_string && bytes.get(i + 1) == Some(&b'/') => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

/// The product code of a file as one text (comments removed), so a `use crate::{…}` spread
/// over several lines is read whole; with the line each byte offset starts on.
fn code_text(text: &str) -> (String, Vec<usize>) {
    let mut code = String::new();
    let mut line_of = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let kept = &line[..comment_start(line).unwrap_or(line.len())];
        code.push_str(kept);
        code.push('\n');
        line_of.extend(std::iter::repeat_n(number + 1, kept.len() + 1));
    }
    (code, line_of)
}

/// The top-level modules code names through `crate::…` (also `crate::{a, b::c}`), with the
/// byte offset of each mention.
fn crate_references(code: &str) -> Vec<String> {
    crate_references_at(code).into_iter().map(|(_, name)| name).collect()
}

fn crate_references_at(code: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut rest = code;
    let mut offset = 0;
    while let Some(at) = rest.find("crate::") {
        let mention = offset + at;
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
                        if at_item_start && !item.is_empty() {
                            out.push((mention, std::mem::take(&mut item)));
                        }
                        at_item_start = true;
                        item.clear();
                    }
                    c if depth == 1 && at_item_start && (c.is_alphanumeric() || c == '_') => item.push(c),
                    _ if depth == 1 && at_item_start && !item.is_empty() => {
                        out.push((mention, std::mem::take(&mut item)));
                        at_item_start = false;
                    }
                    _ => {}
                }
            }
            if at_item_start && !item.is_empty() {
                out.push((mention, item));
            }
        } else {
            let name: String = after.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            out.push((mention, name));
        }
        offset += at + "crate::".len();
        rest = after;
    }
    out
}

/// `store` for `store/aws/s3.rs`, `plan` for `plan.rs`.
fn top_module(file: &Path) -> String {
    let first = file.components().next().expect("a component");
    first.as_os_str().to_string_lossy().trim_end_matches(".rs").to_owned()
}

/// The layer of each top-level module, from the table under "## Layers" in ARCHITECTURE.md
/// (`| 3 | `config`, `failure` (…) | … |`), so the document and the check cannot disagree.
fn documented_layers() -> BTreeMap<String, u32> {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("ARCHITECTURE.md")).expect("readable");
    let section = doc
        .split("## Layers")
        .nth(1)
        .expect("ARCHITECTURE.md has a Layers section");
    let section = section.split("\n## ").next().unwrap_or(section);
    let mut layers = BTreeMap::new();
    for row in section.lines().filter(|l| l.starts_with("| ")) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let Some(Ok(layer)) = cells.get(1).map(|c| c.parse::<u32>()) else {
            continue;
        };
        // Module names are the backticked words of the second cell outside parentheses.
        let mut depth = 0;
        let mut names = String::new();
        for c in cells[2].chars() {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                c if depth == 0 => names.push(c),
                _ => {}
            }
        }
        for name in names.split('`').skip(1).step_by(2) {
            layers.insert(name.to_owned(), layer);
        }
    }
    layers
}

#[test]
fn layers_only_look_down() {
    let sources = product_sources();
    let modules: BTreeSet<String> = sources
        .iter()
        .map(|(f, _)| top_module(f))
        .filter(|m| !["lib", "main", "architecture"].contains(&m.as_str()))
        .collect();
    // (from, to) → the first place it is used.
    let mut edges: BTreeMap<(String, String), String> = BTreeMap::new();
    for (file, text) in &sources {
        let from = top_module(file);
        let (code, line_of) = code_text(text);
        for (at, to) in crate_references_at(&code) {
            if to != from && modules.contains(&to) && modules.contains(&from) {
                edges
                    .entry((from.clone(), to))
                    .or_insert_with(|| format!("src/{}:{}", file.display(), line_of[at]));
            }
        }
    }
    assert!(edges.len() > 20, "the scan found the uses ({})", edges.len());

    let layers = documented_layers();
    let undocumented: Vec<&String> = modules.iter().filter(|m| !layers.contains_key(*m)).collect();
    assert!(
        undocumented.is_empty(),
        "modules missing from ARCHITECTURE.md's Layers table: {undocumented:?}"
    );
    let upward: Vec<String> = edges
        .iter()
        .filter(|((from, to), _)| layers[to] >= layers[from])
        .map(|((from, to), at)| {
            format!(
                "  {from} (layer {}) → {to} (layer {}) at {at}",
                layers[from], layers[to]
            )
        })
        .collect();
    assert!(
        upward.is_empty(),
        "a module uses one in its own or a higher layer (move the shared part down, or change the \
         table in ARCHITECTURE.md if the design changed):\n{}",
        upward.join("\n")
    );
}

#[test]
fn the_environment_is_read_only_through_env() {
    let mut offences = Vec::new();
    for (file, text) in product_sources() {
        if file == Path::new("env.rs") {
            continue;
        }
        for (number, code) in code_lines(&text) {
            // `std::env` at all (`use std::env;` then `env::var(` included).
            let reads = code.contains("std::env");
            let literal_name = [
                "\"VAULT_",
                "\"AWS_",
                "\"HOME\"",
                "\"HOSTNAME\"",
                "\"GITHUB_",
                "\"ACTIONS_",
                "\"NO_COLOR\"",
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
        ".history_write(",
        ".history_remove(",
        // `apply::execute` writes whatever plan it is given: only the Writer may call it.
        "apply::execute",
    ];
    let mut offences = Vec::new();
    for (file, text) in product_sources() {
        let holds_stores =
            ["engine", "commands", "discovery", "report", "history"].contains(&top_module(&file).as_str());
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
        crate_references("use crate::{config::{A, B}, model::X, plan, store, url_text};"),
        ["config", "model", "plan", "store", "url_text"]
    );
    let (code, line_of) =
        code_text("let s = \"s3://x\"; // crate::hidden\nuse crate::{\n    config::A,\n    store,\n};\n");
    let found: Vec<(usize, String)> = crate_references_at(&code)
        .into_iter()
        .map(|(at, m)| (line_of[at], m))
        .collect();
    assert_eq!(found, [(2, "config".to_owned()), (2, "store".to_owned())]);
    assert_eq!(comment_start("let c = '\"'; // x"), Some(13));
    assert!(documented_layers().len() > 20, "the Layers table was read");
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
