//! `filter:` on sources and targets: patterns compiled here, so a bad glob or regular
//! expression is a config error at its own `file:line:col`, and a label condition on a store
//! that has no labels is refused instead of silently matching nothing.

use super::Compiler;
use crate::config::de::Spanned;
use crate::config::pipeline::Source;
use crate::config::raw::{RawConditions, RawFilter};
use crate::filter::{Conditions, Filter};

impl Compiler<'_> {
    /// Compiles `path.filter`; `source` is the source it filters (`None` for a target).
    pub(super) fn filter(&mut self, raw: Option<&Spanned<RawFilter>>, path: &str, source: Option<&Source>) -> Filter {
        let Some(raw) = raw else {
            return Filter::default();
        };
        let path = format!("{path}.filter");
        let mut block = |name: &str, raw: Option<&Spanned<RawConditions>>| {
            raw.map(|b| self.conditions(b, &format!("{path}.{name}"), source))
        };
        let filter = Filter {
            include: block("include", raw.value.include.as_ref()),
            exclude: block("exclude", raw.value.exclude.as_ref()),
        };
        if filter.is_empty() {
            self.error(raw.mark, format!("`{path}` has neither `include` nor `exclude`"))
                .hint =
                Some("add `include: { paths: [\"app/*\"] }` or `exclude: { … }`, or remove `filter`".to_owned());
        }
        filter
    }

    fn conditions(&mut self, block: &Spanned<RawConditions>, path: &str, source: Option<&Source>) -> Conditions {
        let raw = &block.value;
        let mut conditions = Conditions::default();
        if raw.paths.is_none() && raw.regex.is_none() && raw.tags.is_none() && raw.custom_metadata.is_none() {
            // An empty block matches every secret: an empty `exclude` would leave the target
            // nothing to manage, an empty `include` would filter nothing.
            self.error(block.mark, format!("`{path}` names no condition")).hint =
                Some("give it `paths`, `regex`, `tags` or `custom_metadata`, or remove it".to_owned());
        }
        let patterns = |list: &Option<Vec<Spanned<String>>>| -> Vec<String> {
            list.iter().flatten().map(|p| p.value.clone()).collect()
        };
        for (key, list) in [("paths", &raw.paths), ("regex", &raw.regex)] {
            let Some(spanned) = list else { continue };
            if spanned.is_empty() {
                self.error(
                    block.mark,
                    format!("`{path}.{key}` is an empty list, which no secret matches"),
                )
                .hint = Some(format!("list at least one pattern, or remove `{key}`"));
                continue;
            }
            let compiled = if key == "paths" {
                conditions.clone().with_paths(&patterns(list))
            } else {
                conditions.clone().with_regex(&patterns(list))
            };
            match compiled {
                Ok(c) => conditions = c,
                Err((i, message)) => {
                    let at = &spanned[i.min(spanned.len() - 1)];
                    let shown = at.written.as_deref().unwrap_or(&at.value);
                    self.error(at.mark, format!("`{path}.{key}`: `{shown}` is {message}"))
                        .hint = Some(if key == "paths" {
                        "globs use `*` (within a folder), `**` (across folders), `?`, `[abc]`, `{a,b}`".to_owned()
                    } else {
                        "regular expressions follow the Rust `regex` syntax (no look-around); escape `.` as `\\.`"
                            .to_owned()
                    });
                }
            }
        }
        let labels = [
            ("tags", &raw.tags, "aws"),
            ("custom_metadata", &raw.custom_metadata, "vault"),
        ];
        for (key, map, kind) in labels {
            let Some(map) = map else { continue };
            match source {
                Some(s) if s.kind() == kind => {
                    if let Source::Vault(v) = s
                        && v.kv_version == Some(1)
                    {
                        self.error(map.mark, format!("`{path}.{key}`: KV v1 has no custom metadata"))
                            .hint = Some("filter by `paths` or `regex`, or use a KV v2 mount".to_owned());
                    }
                }
                _ => {
                    let what = if kind == "aws" {
                        "Secrets Manager sources"
                    } else {
                        "Vault KV v2 sources"
                    };
                    self.error(map.mark, format!("`{path}.{key}` applies to {what} only"))
                        .hint = Some("filter this by `paths` or `regex`".to_owned());
                    continue;
                }
            }
            for (label, values) in &map.value {
                if values.0.is_empty() {
                    self.error(
                        map.mark,
                        format!("`{path}.{key}.{label}` lists no value, which no secret matches"),
                    )
                    .hint = Some(format!("give `{label}` a value or a list of values, or remove it"));
                }
                conditions = conditions.with_label(label, values.0.clone());
            }
        }
        conditions
    }
}
