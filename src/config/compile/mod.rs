//! Raw config → validated [`Pipeline`]. Pure: no network, no file reads, no environment.
//!
//! Collects every error instead of stopping at the first, so a user fixing a file sees all of
//! its problems in one run; each error carries the position of the value it is about.
//!
//! One file per section of the file (mirroring `raw.rs`): `vault.rs`, `aws.rs`, `sources.rs`,
//! `merge_store.rs`, `targets.rs`, `dynamic_targets.rs`, `settings.rs`; `overlap.rs` checks that
//! no two of them read and write the same place. This file holds the entry point and the
//! helpers every section uses.

mod aws;
mod dynamic_targets;
mod filters;
mod merge_store;
mod overlap;
mod settings;
mod sources;
mod targets;
mod vault;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use super::checks;
use super::de::{Lenient, NamedMap, Spanned};
use super::diagnostics::{Diagnostic, Mark};
use super::pipeline::{FileLocation, LogSettings, Pipeline};
use super::raw::{RawConfig, RawDynamicTarget, RawFileLocation, RawSource, RawTarget};
use crate::graph::{GraphError, TargetGraph};
use crate::model::SecretPath;

/// Compiles a parsed file. Returns the pipeline when there are no errors, plus all errors and
/// warnings found.
pub(crate) fn compile(
    raw: &RawConfig,
    path: &Path,
    base_dir: &Path,
) -> (Option<Pipeline>, Vec<Diagnostic>, Vec<Diagnostic>) {
    let mut c = Compiler {
        base_dir,
        errors: Vec::new(),
        warnings: Vec::new(),
    };
    let log = valid(raw.log.as_ref()).map_or_else(LogSettings::default, |l| LogSettings {
        level: l.level,
        format: l.format,
    });
    let vault = c.vault(valid(raw.vault.as_ref()));
    let aws = c.aws(valid(raw.aws.as_ref()));
    let empty_sources = NamedMap::default();
    let raw_sources = valid(raw.sources.as_ref()).unwrap_or(&empty_sources);
    let empty_targets = NamedMap::default();
    let raw_targets = raw
        .targets
        .as_ref()
        .and_then(|t| t.value.valid())
        .unwrap_or(&empty_targets);
    let empty_dynamic = NamedMap::default();
    let raw_dynamic = valid(raw.dynamic_targets.as_ref()).unwrap_or(&empty_dynamic);
    let names = c.names(raw_sources, raw_targets, raw_dynamic);

    let mut sources = BTreeMap::new();
    let mut source_filters = BTreeMap::new();
    for (name, entry) in &raw_sources.0 {
        if let Some(source) = entry.valid().and_then(|s| c.source(name, s)) {
            let raw = entry.valid().and_then(|s| s.filter.as_ref());
            let filter = c.filter(raw, &format!("sources.{}", name.value), Some(&source));
            if !filter.is_empty() {
                source_filters.insert(name.value.clone(), filter);
            }
            sources.insert(name.value.clone(), source);
        }
    }
    let merge_store = raw
        .merge_store
        .as_ref()
        .and_then(|m| m.value.valid().and_then(|v| c.merge_store(v, m.mark)));

    let history_keep = c.history_keep(raw.merge_store.as_ref().and_then(|m| m.value.valid()));

    let mut targets = BTreeMap::new();
    let mut target_imports: BTreeMap<String, Vec<Spanned<String>>> = BTreeMap::new();
    for (name, entry) in &raw_targets.0 {
        let imports = entry.valid().and_then(|t| t.fields.imports.clone()).unwrap_or_default();
        target_imports.insert(name.value.clone(), imports.clone());
        if let Some(target) = entry.valid().and_then(|t| c.target(name, t, &names)) {
            targets.insert(name.value.clone(), target);
        }
    }
    let mut dynamic_targets = BTreeMap::new();
    for (name, entry) in &raw_dynamic.0 {
        if let Some(dynamic) = entry.valid().and_then(|d| c.dynamic_target(name, d, &names)) {
            dynamic_targets.insert(name.value.clone(), dynamic);
        }
    }
    let settings = c.settings(valid(raw.pipeline.as_ref()));

    if raw_targets.0.is_empty()
        && raw_dynamic.0.is_empty()
        && raw.targets.as_ref().is_none_or(|t| t.value.valid().is_some())
    {
        let mark = raw.targets.as_ref().map_or(Mark::new(1, 1), |t| t.mark);
        c.error(mark, "the pipeline has no targets")
            .hint = Some("add a `targets:` section, e.g. `targets: { Staging: { file: { path: ./out/staging } , imports: [defaults] } }`".to_owned());
    }
    let graph = c.graph(&target_imports, &names);
    c.overlapping_directories(&vault, &sources, merge_store.as_ref(), &targets);

    c.errors.sort_by_key(|d| d.mark);
    c.warnings.sort_by_key(|d| d.mark);
    let Compiler { errors, warnings, .. } = c;
    let pipeline = match graph {
        Some(graph) if errors.is_empty() => Some(Pipeline {
            path: path.to_path_buf(),
            base_dir: base_dir.to_path_buf(),
            log,
            vault,
            aws,
            sources,
            source_filters,
            merge_store,
            history_keep,
            targets,
            dynamic_targets,
            settings,
            graph,
            warnings: warnings.clone(),
        }),
        _ => None,
    };
    (pipeline, errors, warnings)
}

pub(super) fn valid<T>(section: Option<&Lenient<T>>) -> Option<&T> {
    section.and_then(Lenient::valid)
}

/// What every name in the file refers to.
pub(super) struct Names {
    sources: BTreeSet<String>,
    targets: BTreeSet<String>,
    dynamic: BTreeSet<String>,
}

impl Names {
    fn all(&self) -> impl Iterator<Item = &str> {
        self.sources.iter().chain(&self.targets).map(String::as_str)
    }
}

pub(super) struct Compiler<'a> {
    base_dir: &'a Path,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
}

impl Compiler<'_> {
    fn error(&mut self, mark: Mark, message: impl Into<String>) -> &mut Diagnostic {
        self.errors.push(Diagnostic::error(mark, message));
        self.errors.last_mut().expect("just pushed")
    }

    fn warn(&mut self, mark: Mark, message: impl Into<String>, hint: &str) {
        self.warnings.push(Diagnostic::warning(mark, message).with_hint(hint));
    }

    /// Runs `check` on a spanned value, recording `what: message` on failure.
    fn check(&mut self, value: &Spanned<String>, what: &str, check: fn(&str) -> Result<(), String>) -> bool {
        match check(&value.value) {
            Ok(()) => true,
            Err(message) => {
                self.error(value.mark, format!("{what}: {}", not_echoing(value, message)));
                false
            }
        }
    }

    fn checked(
        &mut self,
        value: Option<&Spanned<String>>,
        what: &str,
        check: fn(&str) -> Result<(), String>,
    ) -> Option<String> {
        let value = value?;
        self.check(value, what, check).then(|| value.value.clone())
    }

    fn positive(&mut self, value: Option<&Spanned<u64>>, what: &str, default: u64) -> u64 {
        match value {
            Some(v) if v.value == 0 => {
                self.error(v.mark, format!("`{what}` must be at least 1"));
                default
            }
            Some(v) => v.value,
            None => default,
        }
    }

    fn required<'v, T>(
        &mut self,
        value: Option<&'v Spanned<T>>,
        parent: Mark,
        key: &str,
        path: &str,
    ) -> Option<&'v Spanned<T>> {
        if value.is_none() {
            self.error(parent, format!("missing required key `{key}` in `{path}`"));
        }
        value
    }

    fn location(&mut self, raw: &Spanned<RawFileLocation>, path: &str) -> Option<FileLocation> {
        let written = self.required(raw.path.as_ref(), raw.mark, "path", path)?;
        if written.value.trim().is_empty() {
            self.error(written.mark, format!("`{path}.path` is empty"));
            return None;
        }
        let resolved = Path::new(&written.value);
        let path = if resolved.is_absolute() || self.base_dir == Path::new(".") {
            resolved.to_path_buf()
        } else {
            self.base_dir.join(resolved)
        };
        Some(FileLocation {
            written: written.value.clone(),
            mark: written.mark,
            path,
        })
    }

    fn subtree(&mut self, value: &Spanned<String>, what: &str) -> Option<SecretPath> {
        // `test/*` (jbcom/secretsync's examples) means everything under `test/`, which is what a
        // subtree prefix reads; any other glob would silently read more or less than written.
        if let Some(prefix) = value
            .value
            .strip_suffix("/*")
            .or_else(|| value.value.strip_suffix("/**"))
            && !prefix.contains('*')
            && !prefix.is_empty()
        {
            match &value.written {
                // Taken from the environment: say so without echoing it.
                Some(written) => self.warn(
                    value.mark,
                    format!("{what}: `{written}` (from the environment) ends in `/*` and is read as a subtree"),
                    "paths are subtree prefixes: end the value with `/` instead",
                ),
                None => self.warn(
                    value.mark,
                    format!("{what}: `{}` is read as the subtree `{prefix}/`", value.value),
                    &format!("paths are subtree prefixes: write `{prefix}/`"),
                ),
            }
            return match SecretPath::parse(prefix) {
                Ok(p) => Some(p),
                Err(err) => {
                    self.error(value.mark, format!("{what}: {}", not_echoing(value, err.to_string())));
                    None
                }
            };
        }
        if value.value.contains('*') {
            let suggestion = value.value.split('*').next().unwrap_or_default().trim_end_matches('/');
            let message = not_echoing(
                value,
                format!("`{}` is a glob, but paths are subtree prefixes", value.value),
            );
            let hint = (value.written.is_none()).then(|| {
                if suggestion.is_empty() {
                    "list the subtrees to read, such as `app/`".to_owned()
                } else {
                    format!("write `{suggestion}/` to read everything under `{suggestion}`")
                }
            });
            self.error(value.mark, format!("{what}: {message}")).hint = hint;
            return None;
        }
        match SecretPath::parse(value.value.trim_end_matches('/')) {
            Ok(p) => Some(p),
            Err(err) => {
                self.error(value.mark, format!("{what}: {}", not_echoing(value, err.to_string())));
                None
            }
        }
    }

    fn names(
        &mut self,
        sources: &NamedMap<RawSource>,
        targets: &NamedMap<RawTarget>,
        dynamic: &NamedMap<RawDynamicTarget>,
    ) -> Names {
        let mut names = Names {
            sources: BTreeSet::new(),
            targets: BTreeSet::new(),
            dynamic: BTreeSet::new(),
        };
        let mut first: BTreeMap<String, (&str, Mark)> = BTreeMap::new();
        let groups: [(&str, Vec<&Spanned<String>>); 3] = [
            ("source", sources.0.iter().map(|(n, _)| n).collect()),
            ("target", targets.0.iter().map(|(n, _)| n).collect()),
            ("dynamic target", dynamic.0.iter().map(|(n, _)| n).collect()),
        ];
        for (kind, group) in groups {
            for name in group {
                if let Err(message) = checks::name(&name.value) {
                    self.error(name.mark, format!("{kind} name {message}"));
                }
                if let Some((other, mark)) = first.get(&name.value) {
                    self.error(
                        name.mark,
                        format!(
                            "`{}` is both a {other} (line {}) and a {kind}; names must be unique",
                            name.value, mark.line
                        ),
                    )
                    .hint = Some("rename one of them so that imports are unambiguous".to_owned());
                    continue;
                }
                first.insert(name.value.clone(), (kind, name.mark));
                match kind {
                    "source" => names.sources.insert(name.value.clone()),
                    "target" => names.targets.insert(name.value.clone()),
                    _ => names.dynamic.insert(name.value.clone()),
                };
            }
        }
        names
    }

    fn bounded(
        &mut self,
        value: Option<&Spanned<u64>>,
        what: &str,
        range: std::ops::RangeInclusive<u32>,
        default: u32,
    ) -> u32 {
        let Some(v) = value else { return default };
        if let Some(n) = u32::try_from(v.value).ok().filter(|n| range.contains(n)) {
            n
        } else {
            self.error(
                v.mark,
                format!(
                    "`{what}` must be between {} and {}, not {}",
                    range.start(),
                    range.end(),
                    v.value
                ),
            );
            default
        }
    }

    fn duration(&mut self, value: Option<&Spanned<String>>, what: &str, default: Duration) -> Duration {
        let Some(v) = value else { return default };
        match crate::duration::parse(&v.value) {
            Ok(d) if d.is_zero() => {
                self.error(v.mark, format!("`{what}` must be longer than zero"));
                default
            }
            Ok(d) => d,
            Err(e) => {
                self.error(v.mark, format!("`{what}`: {}", not_echoing(v, e)));
                default
            }
        }
    }

    fn parallel(&mut self, value: Option<&Spanned<u64>>, what: &str) -> usize {
        self.bounded(value, what, 1..=256, 4) as usize
    }

    fn graph(&mut self, imports: &BTreeMap<String, Vec<Spanned<String>>>, names: &Names) -> Option<TargetGraph> {
        let target_imports: BTreeMap<String, Vec<String>> = imports
            .iter()
            .map(|(t, list)| {
                let parents = list
                    .iter()
                    .filter(|i| names.targets.contains(&i.value) && i.value != *t)
                    .map(|i| i.value.clone())
                    .collect();
                (t.clone(), parents)
            })
            .collect();
        match TargetGraph::new(&target_imports) {
            Ok(graph) => Some(graph),
            Err(GraphError::Cycles(cycles)) => {
                for cycle in cycles {
                    let (first, second) = (&cycle.0[0], &cycle.0[1]);
                    let mark = imports[first]
                        .iter()
                        .find(|i| i.value == *second)
                        .map_or(Mark::new(1, 1), |i| i.mark);
                    self.error(mark, format!("import cycle: {cycle}")).hint =
                        Some("each target imports the next; remove one of these imports".to_owned());
                }
                None
            }
            Err(err) => {
                self.error(Mark::new(1, 1), err.to_string());
                None
            }
        }
    }
}

/// `message` about `value`, which must not show a value taken from the environment: the
/// quoted value becomes the text as written (`${ACCOUNT}`), and a message that would still
/// show any of it is replaced by one that does not.
pub(super) fn not_echoing(value: &Spanned<String>, message: String) -> String {
    let Some(written) = &value.written else {
        return message;
    };
    let shown = message.replace(
        &format!("`{}`", value.value),
        &format!("`{written}` (from the environment)"),
    );
    if value.value.is_empty() || reveals(&shown, &value.value, written) {
        format!("`{written}` (from the environment) is not valid here")
    } else {
        shown
    }
}

/// Whether `message` shows any part of `value` (eight characters or more, or all of a shorter
/// value) that is not literal text of `written` — a part that came from the environment.
fn reveals(message: &str, value: &str, written: &str) -> bool {
    const PART: usize = 8;
    let chars: Vec<char> = value.chars().collect();
    if chars.len() < PART {
        return message.contains(value);
    }
    chars.windows(PART).any(|window| {
        let part: String = window.iter().collect();
        !written.contains(&part) && message.contains(&part)
    })
}
