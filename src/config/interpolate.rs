//! `${NAME}`, `${NAME:-default}` and `$${NAME}` in string values.
//!
//! Substitution happens on the parsed scalar, so substituted text is never parsed as YAML
//! (a value containing `: ` or `#` cannot change the structure of the file). Errors name the
//! variable and never include its value.

use std::borrow::Cow;

/// Why a value could not be interpolated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum InterpolationError {
    /// `${NAME}` with `NAME` unset and no default.
    Unset(String),
    /// `${` without a closing `}`.
    Unterminated,
    /// `${…}` whose name is not `[A-Za-z_][A-Za-z0-9_]*`.
    InvalidName(String),
}

impl InterpolationError {
    /// The message and hint for a diagnostic.
    pub(crate) fn message_and_hint(&self) -> (String, String) {
        match self {
            Self::Unset(name) => (
                format!("environment variable `{name}` is not set (used as `${{{name}}}`)"),
                format!(
                    "set `{name}`, give a default with `${{{name}:-default}}`, or write `$${{{name}}}` for a literal `${{{name}}}`"
                ),
            ),
            Self::Unterminated => (
                "`${` is not closed by `}`".to_owned(),
                "write `${NAME}`, or `$${` for a literal `${`".to_owned(),
            ),
            Self::InvalidName(name) => (
                format!("`${{{name}}}` is not a valid variable reference"),
                "variable names are letters, digits and `_`, not starting with a digit; write `$${` for a literal `${`"
                    .to_owned(),
            ),
        }
    }
}

/// Substitutes variables in `text` using `lookup`. Returns the text unchanged (borrowed) when
/// it contains no `$`.
pub(crate) fn interpolate<'a>(
    text: &'a str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Cow<'a, str>, InterpolationError> {
    if !text.contains('$') {
        return Ok(Cow::Borrowed(text));
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        if let Some(after) = rest.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(after) = rest.strip_prefix("${") {
            let end = after.find('}').ok_or(InterpolationError::Unterminated)?;
            let inner = &after[..end];
            let (name, default) = match inner.split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (inner, None),
            };
            if !is_valid_name(name) {
                return Err(InterpolationError::InvalidName(inner.to_owned()));
            }
            match (lookup(name), default) {
                (Some(value), Some(default)) if value.is_empty() => out.push_str(default),
                (Some(value), _) => out.push_str(&value),
                (None, Some(default)) => out.push_str(default),
                (None, None) => return Err(InterpolationError::Unset(name.to_owned())),
            }
            rest = &after[end + 1..];
        } else {
            out.push('$');
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    Ok(Cow::Owned(out))
}

fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "REGION" => Some("eu-west-1".into()),
            "EMPTY" => Some(String::new()),
            "TRICKY" => Some("a: b # not yaml".into()),
            _ => None,
        }
    }

    fn run(text: &str) -> Result<String, InterpolationError> {
        interpolate(text, &env).map(Cow::into_owned)
    }

    #[test]
    fn substitutes_defaults_and_escapes() {
        assert_eq!(run("plain").unwrap(), "plain");
        assert_eq!(run("${REGION}").unwrap(), "eu-west-1");
        assert_eq!(run("x-${REGION}-y").unwrap(), "x-eu-west-1-y");
        assert_eq!(run("${MISSING:-us-east-1}").unwrap(), "us-east-1");
        assert_eq!(run("${EMPTY:-fallback}").unwrap(), "fallback");
        assert_eq!(run("${EMPTY}").unwrap(), "");
        assert_eq!(run("${MISSING:-}").unwrap(), "");
        assert_eq!(run("$${REGION}").unwrap(), "${REGION}");
        assert_eq!(run("cost: $5 and $").unwrap(), "cost: $5 and $");
        assert_eq!(
            run("${TRICKY}").unwrap(),
            "a: b # not yaml",
            "substituted text is not re-parsed"
        );
        assert_eq!(run("${REGION}${REGION}").unwrap(), "eu-west-1eu-west-1");
    }

    #[test]
    fn reports_problems_by_name() {
        assert_eq!(run("${MISSING}"), Err(InterpolationError::Unset("MISSING".into())));
        assert_eq!(run("${REGION"), Err(InterpolationError::Unterminated));
        assert_eq!(run("${1ABC}"), Err(InterpolationError::InvalidName("1ABC".into())));
        assert_eq!(run("${}"), Err(InterpolationError::InvalidName(String::new())));
        let (message, hint) = InterpolationError::Unset("VAULT_TOKEN".into()).message_and_hint();
        assert_eq!(
            message,
            "environment variable `VAULT_TOKEN` is not set (used as `${VAULT_TOKEN}`)"
        );
        assert!(hint.contains("${VAULT_TOKEN:-default}"));
    }
}
