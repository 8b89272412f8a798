//! Names for discovered targets (`name_template`) and the account-name matching behind
//! `account_name_patterns`.

use std::collections::BTreeMap;

use regex::Regex;

use crate::config::NameMatching;
use crate::config::raw::MatchStrategy;

/// Renders `template` for an account: `{{account_id}}`, `{{account_name}}`, `{{tag:KEY}}`.
/// An unknown tag renders empty. The result is made a valid target name: runs of characters
/// other than letters, digits, `_`, `-` and `.` become `_`, leading and trailing ones are
/// trimmed, and it is cut to 128 characters. `None` when nothing is left.
pub(crate) fn target_name(template: &str, id: &str, name: &str, tags: &BTreeMap<String, String>) -> Option<String> {
    let mut rendered = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        rendered.push_str(&rest[..start]);
        let Some(end) = rest[start..].find("}}") else {
            rendered.push_str(&rest[start..]);
            rest = "";
            break;
        };
        let inner = rest[start + 2..start + end].trim();
        match inner {
            "account_id" => rendered.push_str(id),
            "account_name" => rendered.push_str(name),
            _ => {
                if let Some(key) = inner.strip_prefix("tag:") {
                    rendered.push_str(tags.get(key).map_or("", String::as_str));
                }
            }
        }
        rest = &rest[start + end + 2..];
    }
    rendered.push_str(rest);
    let mut out = String::new();
    let mut pending_gap = false;
    for c in rendered.chars() {
        if c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.' {
            if pending_gap && !out.is_empty() {
                out.push('_');
            }
            pending_gap = false;
            out.push(c);
        } else {
            pending_gap = true;
        }
    }
    let trimmed: String = out
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .chars()
        .take(128)
        .collect();
    let trimmed = trimmed
        .trim_end_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_owned();
    (!trimmed.is_empty()).then_some(trimmed)
}

/// An account name as `name_matching` says to compare it.
pub(crate) fn normalise(name: &str, matching: &NameMatching) -> String {
    let mut name = name.trim().to_owned();
    let fold = |s: &str| {
        if matching.case_insensitive {
            s.to_lowercase()
        } else {
            s.to_owned()
        }
    };
    for prefix in &matching.strip_prefixes {
        if fold(&name).starts_with(&fold(prefix))
            && let Some(rest) = name.get(prefix.len()..)
        {
            name = rest.to_owned();
        }
    }
    for suffix in &matching.strip_suffixes {
        if fold(&name).ends_with(&fold(suffix))
            && let Some(rest) = name.get(..name.len().saturating_sub(suffix.len()))
        {
            name = rest.to_owned();
        }
    }
    if matching.normalize_keys || matching.strategy == MatchStrategy::Loose {
        let mut out = String::new();
        for c in name.chars() {
            if c.is_alphanumeric() {
                out.push(c);
            } else if !out.ends_with('-') {
                out.push('-');
            }
        }
        out.trim_matches('-').clone_into(&mut name);
    }
    name
}

/// A compiled `account_name_patterns` entry.
#[derive(Debug)]
pub(crate) struct Pattern {
    regex: Regex,
    /// The static target whose imports a matching account takes.
    pub(crate) target: Option<String>,
    /// As written, for reasons.
    pub(crate) written: String,
}

impl Pattern {
    /// Compiles `pattern` under `matching`'s strategy (checked at load time, so it compiles).
    pub(crate) fn new(pattern: &str, target: Option<String>, matching: &NameMatching) -> Option<Self> {
        let body = match matching.strategy {
            MatchStrategy::Exact => format!("^(?:{pattern})$"),
            MatchStrategy::Fuzzy | MatchStrategy::Loose => pattern.to_owned(),
        };
        let regex = regex::RegexBuilder::new(&body)
            .case_insensitive(matching.case_insensitive)
            .build()
            .ok()?;
        Some(Self {
            regex,
            target,
            written: pattern.to_owned(),
        })
    }

    /// Whether the (normalised) name matches.
    pub(crate) fn matches(&self, normalised: &str) -> bool {
        self.regex.is_match(normalised)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matching(strategy: MatchStrategy) -> NameMatching {
        NameMatching {
            strategy,
            normalize_keys: false,
            case_insensitive: true,
            strip_prefixes: vec!["aws-".into(), "acct-".into()],
            strip_suffixes: vec!["-account".into()],
        }
    }

    #[test]
    fn templates_render_and_become_valid_names() {
        let tags = BTreeMap::from([("env".to_owned(), "prod".to_owned())]);
        assert_eq!(
            target_name("{{account_name}}", "111111111111", "Serverless Stg (Test) #1", &tags).as_deref(),
            Some("Serverless_Stg_Test_1")
        );
        assert_eq!(
            target_name("sandbox-{{tag:env}}-{{account_id}}", "111111111111", "x", &tags).as_deref(),
            Some("sandbox-prod-111111111111")
        );
        assert_eq!(target_name("{{tag:missing}}", "1", "x", &tags), None, "nothing left");
        assert_eq!(target_name("{{account_name}}", "1", "--üï--", &tags), None);
        assert_eq!(
            target_name("{{account_name}}", "1", &"a".repeat(300), &tags).map(|n| n.len()),
            Some(128)
        );
    }

    #[test]
    fn names_normalise_before_patterns_match() {
        let exact = matching(MatchStrategy::Exact);
        assert_eq!(normalise("AWS-Prod-Account", &exact), "Prod");
        assert_eq!(
            normalise("acct-aws-x", &exact),
            "aws-x",
            "prefixes strip once each, in order"
        );
        let p = Pattern::new("prod", None, &exact).unwrap();
        assert!(
            p.matches(&normalise("AWS-Prod-Account", &exact)),
            "case-insensitive whole match"
        );
        assert!(!p.matches("production"), "exact means the whole name");
        let fuzzy = Pattern::new("prod", None, &matching(MatchStrategy::Fuzzy)).unwrap();
        assert!(fuzzy.matches("production"));
        let loose = matching(MatchStrategy::Loose);
        assert_eq!(normalise("Data  Team (EU)", &loose), "Data-Team-EU");
    }
}
