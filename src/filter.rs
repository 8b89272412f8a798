//! Include/exclude filters on sources and targets: which secrets a source contributes and which
//! a target manages.
//!
//! A filter has an `include` and an `exclude` block. Each block is a set of *conditions* —
//! path globs, regular expressions, labels (AWS tags on Secrets Manager sources, KV v2
//! `custom_metadata` on Vault sources) — that must all hold (AND); each condition is a list of
//! patterns, any of which may match (OR). A secret is kept when it matches `include` (or there is
//! none) and does not match `exclude`: `exclude` wins. Compiled once from the config; the engine
//! asks [`Filter::verdict`] for every secret it reads or plans.

use std::collections::BTreeMap;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use regex::RegexSet;

use crate::model::SecretPath;

/// Labels a secret carries (tags, `custom_metadata`).
pub type Labels = BTreeMap<String, String>;

/// One block of conditions, every one of which must hold.
#[derive(Debug, Clone, Default)]
pub struct Conditions {
    /// Path globs (`*` stays within a folder, `**` crosses them), any of which may match.
    paths: Option<GlobSet>,
    /// Regular expressions over the path, any of which may match.
    regex: Option<RegexSet>,
    /// Label key → the values it may have (any of them).
    labels: BTreeMap<String, Vec<String>>,
}

impl Conditions {
    /// Compiles path globs; the error names the pattern that does not compile.
    pub fn with_paths(mut self, globs: &[String]) -> Result<Self, (usize, String)> {
        let mut set = GlobSetBuilder::new();
        for (i, glob) in globs.iter().enumerate() {
            let compiled = GlobBuilder::new(glob)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|e| (i, format!("not a valid glob: {}", e.kind())))?;
            set.add(compiled);
        }
        self.paths = Some(set.build().map_err(|e| (0, format!("the globs do not compile: {e}")))?);
        Ok(self)
    }

    /// Compiles regular expressions (matched anywhere in the path unless anchored).
    pub fn with_regex(mut self, patterns: &[String]) -> Result<Self, (usize, String)> {
        for (i, pattern) in patterns.iter().enumerate() {
            regex::Regex::new(pattern)
                .map_err(|e| (i, format!("not a valid regular expression: {}", first_line(&e))))?;
        }
        self.regex = Some(RegexSet::new(patterns).map_err(|e| (0, first_line(&e)))?);
        Ok(self)
    }

    /// Adds a label condition: `key` must have one of `values`.
    #[must_use]
    pub fn with_label(mut self, key: &str, values: Vec<String>) -> Self {
        self.labels.insert(key.to_owned(), values);
        self
    }

    /// Whether the block names labels (so the store must read them).
    pub fn needs_labels(&self) -> bool {
        !self.labels.is_empty()
    }

    fn matches(&self, path: &SecretPath, labels: Option<&Labels>) -> bool {
        let text = path.as_str();
        self.paths.as_ref().is_none_or(|set| set.is_match(text))
            && self.regex.as_ref().is_none_or(|set| set.is_match(text))
            && self.labels.iter().all(|(key, values)| {
                labels
                    .and_then(|l| l.get(key))
                    .is_some_and(|have| values.iter().any(|v| v == have))
            })
    }
}

fn first_line(e: &regex::Error) -> String {
    e.to_string()
        .lines()
        .last()
        .unwrap_or_default()
        .trim()
        .trim_start_matches("error: ")
        .to_owned()
}

/// An include and an exclude block.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Secrets must match this (all of its conditions), when set.
    pub include: Option<Conditions>,
    /// Secrets matching this are left out, whatever `include` says.
    pub exclude: Option<Conditions>,
}

/// What a filter decided for one secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Kept.
    Kept,
    /// Did not match `include`.
    NotIncluded,
    /// Matched `exclude`.
    Excluded,
}

impl Filter {
    /// Whether the filter does anything.
    pub fn is_empty(&self) -> bool {
        self.include.is_none() && self.exclude.is_none()
    }

    /// Whether a store must read labels for this filter.
    pub fn needs_labels(&self) -> bool {
        [&self.include, &self.exclude]
            .into_iter()
            .flatten()
            .any(Conditions::needs_labels)
    }

    /// What the filter does with `path` (carrying `labels`, when the store read them).
    pub fn verdict(&self, path: &SecretPath, labels: Option<&Labels>) -> Verdict {
        if self.exclude.as_ref().is_some_and(|c| c.matches(path, labels)) {
            Verdict::Excluded
        } else if self.include.as_ref().is_some_and(|c| !c.matches(path, labels)) {
            Verdict::NotIncluded
        } else {
            Verdict::Kept
        }
    }
}

/// How many secrets a filter removed, by block.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Removed {
    /// Did not match `include`.
    pub not_included: u64,
    /// Matched `exclude`.
    pub excluded: u64,
}

impl Removed {
    /// Counts one verdict; whether it keeps the secret.
    pub fn count(&mut self, verdict: Verdict) -> bool {
        match verdict {
            Verdict::Kept => return true,
            Verdict::NotIncluded => self.not_included += 1,
            Verdict::Excluded => self.excluded += 1,
        }
        false
    }

    /// Secrets removed in all.
    pub fn total(&self) -> u64 {
        self.not_included + self.excluded
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> SecretPath {
        SecretPath::parse(text).unwrap()
    }

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn conditions_and_patterns_or_and_exclude_wins() {
        let filter = Filter {
            include: Some(
                Conditions::default()
                    .with_paths(&strings(&["app/*", "shared/**"]))
                    .unwrap()
                    .with_regex(&strings(&["db", "api$"]))
                    .unwrap(),
            ),
            exclude: Some(Conditions::default().with_paths(&strings(&["**/legacy-*"])).unwrap()),
        };
        // Both conditions (a glob AND a regex), any pattern of each.
        assert_eq!(filter.verdict(&p("app/db"), None), Verdict::Kept);
        assert_eq!(filter.verdict(&p("shared/x/api"), None), Verdict::Kept);
        assert_eq!(
            filter.verdict(&p("app/cache"), None),
            Verdict::NotIncluded,
            "regex fails"
        );
        assert_eq!(filter.verdict(&p("other/db"), None), Verdict::NotIncluded, "glob fails");
        // `*` stays within one folder.
        assert_eq!(filter.verdict(&p("app/x/db"), None), Verdict::NotIncluded);
        // Exclude wins over a matching include.
        assert_eq!(filter.verdict(&p("shared/legacy-db"), None), Verdict::Excluded);
        assert_eq!(filter.verdict(&p("other/legacy-db"), None), Verdict::Excluded);
    }

    #[test]
    fn labels_need_every_key_with_any_listed_value() {
        let filter = Filter {
            include: Some(
                Conditions::default()
                    .with_label("team", strings(&["payments", "core"]))
                    .with_label("env", strings(&["prod"])),
            ),
            exclude: Some(Conditions::default().with_label("deprecated", strings(&["true"]))),
        };
        assert!(filter.needs_labels());
        let labels = |pairs: &[(&str, &str)]| -> Labels {
            pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
        };
        let kept = labels(&[("team", "core"), ("env", "prod")]);
        assert_eq!(filter.verdict(&p("a"), Some(&kept)), Verdict::Kept);
        let other_team = labels(&[("team", "web"), ("env", "prod")]);
        assert_eq!(filter.verdict(&p("a"), Some(&other_team)), Verdict::NotIncluded);
        let missing_env = labels(&[("team", "core")]);
        assert_eq!(filter.verdict(&p("a"), Some(&missing_env)), Verdict::NotIncluded);
        assert_eq!(filter.verdict(&p("a"), None), Verdict::NotIncluded, "no labels read");
        let deprecated = labels(&[("team", "core"), ("env", "prod"), ("deprecated", "true")]);
        assert_eq!(filter.verdict(&p("a"), Some(&deprecated)), Verdict::Excluded);
        let mut removed = Removed::default();
        for l in [&kept, &other_team, &deprecated] {
            removed.count(filter.verdict(&p("a"), Some(l)));
        }
        assert_eq!((removed.not_included, removed.excluded, removed.total()), (1, 1, 2));
    }

    #[test]
    fn bad_patterns_name_themselves() {
        let (i, message) = Conditions::default()
            .with_paths(&strings(&["ok/*", "a/[b"]))
            .unwrap_err();
        assert_eq!(i, 1);
        assert!(message.starts_with("not a valid glob"), "{message}");
        let (i, message) = Conditions::default().with_regex(&strings(&["(", "x"])).unwrap_err();
        assert_eq!(i, 0);
        assert!(message.starts_with("not a valid regular expression"), "{message}");
        assert!(Filter::default().is_empty());
        assert_eq!(Filter::default().verdict(&p("x"), None), Verdict::Kept);
    }
}
