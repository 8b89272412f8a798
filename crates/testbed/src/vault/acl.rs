//! ACL policies: the HCL subset Vault policies use (`path "…" { capabilities = [...] }`) and
//! Vault's glob rules (`*` at the end matches any suffix, `+` matches one path segment; the
//! most specific matching path wins; `deny` overrides everything).

use std::collections::BTreeSet;
use std::sync::LazyLock;

use regex::Regex;

static RULE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r#"path\s+"([^"]*)"\s*\{([^}]*)\}"#).expect("static regex"));
static CAPS: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"capabilities\s*=\s*\[([^\]]*)\]").expect("static regex"));

const KNOWN: &[&str] = &["create", "read", "update", "patch", "delete", "list", "sudo", "deny"];

/// One `path` stanza.
#[derive(Debug, Clone)]
pub(crate) struct Rule {
    pattern: String,
    capabilities: BTreeSet<String>,
}

/// A parsed policy.
#[derive(Debug, Clone)]
pub(crate) struct Policy {
    pub(crate) text: String,
    rules: Vec<Rule>,
}

impl Policy {
    /// Parses the HCL subset; errors read like Vault's.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let mut rules = Vec::new();
        for stanza in RULE.captures_iter(text) {
            let caps = CAPS
                .captures(&stanza[2])
                .ok_or_else(|| format!("path {:?}: missing capabilities", &stanza[1]))?;
            let capabilities: BTreeSet<String> = caps[1]
                .split(',')
                .map(|c| c.trim().trim_matches('"').to_owned())
                .filter(|c| !c.is_empty())
                .collect();
            if let Some(bad) = capabilities.iter().find(|c| !KNOWN.contains(&c.as_str())) {
                return Err(format!("path {:?}: invalid capability {bad:?}", &stanza[1]));
            }
            rules.push(Rule {
                pattern: stanza[1].trim_start_matches('/').to_owned(),
                capabilities,
            });
        }
        if rules.is_empty() && !text.trim().is_empty() {
            return Err("no path stanzas found".to_owned());
        }
        Ok(Self {
            text: text.to_owned(),
            rules,
        })
    }
}

fn matches(pattern: &str, path: &str) -> bool {
    let (body, glob) = match pattern.strip_suffix('*') {
        Some(body) => (body, true),
        None => (pattern, false),
    };
    let mut re = String::from("^");
    for (i, segment) in body.split('/').enumerate() {
        if i > 0 {
            re.push('/');
        }
        if segment == "+" {
            re.push_str("[^/]+");
        } else {
            re.push_str(&regex::escape(segment));
        }
    }
    if glob {
        re.push_str(".*");
    }
    re.push('$');
    Regex::new(&re).is_ok_and(|r| r.is_match(path))
}

/// Specificity for picking among matching rules: exact beats glob; then longer literal text.
fn specificity(pattern: &str) -> (bool, usize, usize) {
    let exact = !pattern.ends_with('*') && !pattern.contains('+');
    (
        exact,
        pattern.replace(['*', '+'], "").len(),
        usize::MAX - pattern.matches('+').count(),
    )
}

/// Whether `policies` grant `needed` (any of them) on `path`.
pub(crate) fn allowed(policies: &[&Policy], path: &str, needed: &[&str]) -> bool {
    let mut best: Option<&Rule> = None;
    let mut denied = false;
    for rule in policies
        .iter()
        .flat_map(|p| &p.rules)
        .filter(|r| matches(&r.pattern, path))
    {
        denied |= rule.capabilities.contains("deny");
        if best.is_none_or(|b| specificity(&rule.pattern) > specificity(&b.pattern)) {
            best = Some(rule);
        }
    }
    if denied {
        return false;
    }
    best.is_some_and(|rule| needed.iter().any(|n| rule.capabilities.contains(*n)))
}

/// The capabilities `policies` grant on `path`, as `sys/capabilities-self` reports them
/// (`["deny"]` when nothing is granted).
pub(crate) fn capabilities(policies: &[&Policy], path: &str) -> Vec<String> {
    let mut best: Option<&Rule> = None;
    for rule in policies
        .iter()
        .flat_map(|p| &p.rules)
        .filter(|r| matches(&r.pattern, path))
    {
        if rule.capabilities.contains("deny") {
            return vec!["deny".to_owned()];
        }
        if best.is_none_or(|b| specificity(&rule.pattern) > specificity(&b.pattern)) {
            best = Some(rule);
        }
    }
    match best {
        Some(rule) if !rule.capabilities.is_empty() => rule.capabilities.iter().cloned().collect(),
        _ => vec!["deny".to_owned()],
    }
}

/// Whether `policies` grant anything (other than `deny`) on some path under `prefix` — what
/// Vault requires for the mount preflight (`sys/internal/ui/mounts/<path>`).
pub(crate) fn any_access_under(policies: &[&Policy], prefix: &str) -> bool {
    policies.iter().flat_map(|p| &p.rules).any(|rule| {
        if rule.capabilities.iter().all(|c| c == "deny") {
            return false;
        }
        let literal = rule.pattern.split('+').next().unwrap_or("").trim_end_matches('*');
        literal.starts_with(prefix) || (prefix.starts_with(literal) && rule.pattern.len() > literal.len())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_follow_vault_rules() {
        assert!(matches("secret/data/*", "secret/data/a/b"));
        assert!(matches("secret/data/*", "secret/data/"));
        assert!(matches("secret/data/app*", "secret/data/app-x/y"));
        assert!(!matches("secret/data/app", "secret/data/app/x"));
        assert!(matches("secret/data/app", "secret/data/app"));
        assert!(matches("secret/+/app", "secret/data/app"));
        assert!(!matches("secret/+/app", "secret/data/x/app"));
        assert!(matches("secret/+/*", "secret/data/x/app"));
    }

    #[test]
    fn most_specific_rule_wins_and_deny_overrides() {
        let p = Policy::parse(
            r#"
            path "secret/data/*" { capabilities = ["read", "list"] }
            path "secret/data/admin/*" { capabilities = ["deny"] }
            path "secret/data/exact" { capabilities = ["create", "update"] }
            "#,
        )
        .unwrap();
        assert!(allowed(&[&p], "secret/data/app", &["read"]));
        assert!(!allowed(&[&p], "secret/data/app", &["update"]));
        assert!(!allowed(&[&p], "secret/data/admin/key", &["read"]));
        assert!(allowed(&[&p], "secret/data/exact", &["update"]));
        assert!(
            !allowed(&[&p], "secret/data/exact", &["read"]),
            "the exact rule replaces the glob"
        );
        assert!(!allowed(&[&p], "other/x", &["read"]));
        assert!(Policy::parse(r#"path "x" { capabilities = ["fly"] }"#).is_err());
    }

    #[test]
    fn capabilities_and_access_under_a_mount() {
        let p = Policy::parse(
            r#"
            path "team/kv/data/app/*" { capabilities = ["read"] }
            path "team/kv/data/app/secret" { capabilities = ["deny"] }
            path "ops/*" { capabilities = ["list", "read"] }
            "#,
        )
        .unwrap();
        assert_eq!(capabilities(&[&p], "team/kv/data/app/x"), ["read"]);
        assert_eq!(capabilities(&[&p], "team/kv/data/app/secret"), ["deny"]);
        assert_eq!(capabilities(&[&p], "elsewhere"), ["deny"]);
        assert_eq!(capabilities(&[&p], "ops/a"), ["list", "read"]);
        assert!(any_access_under(&[&p], "team/kv/"));
        assert!(any_access_under(&[&p], "ops/nested/"));
        assert!(!any_access_under(&[&p], "other/"));
    }
}
