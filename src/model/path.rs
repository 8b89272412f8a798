//! `SecretPath`: a validated, normalised, relative secret name such as `api/stripe`.

use std::fmt;
use std::sync::Arc;

/// Why a string is not a valid secret path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The path has no characters (or only slashes).
    #[error("secret path is empty")]
    Empty,
    /// The path starts with `/`.
    #[error("secret path `{0}` starts with `/`; secret paths are relative (write `{trimmed}`)", trimmed = .0.trim_start_matches('/'))]
    LeadingSlash(String),
    /// The path ends with `/`, leaving an empty last segment.
    #[error("secret path `{0}` ends with `/`; a secret path names a secret, not a folder")]
    TrailingSlash(String),
    /// A segment is `.` or `..`.
    #[error("secret path `{0}` contains a `{1}` segment; relative segments are not allowed")]
    DotSegment(String, &'static str),
    /// The path contains a NUL or another control character.
    #[error("secret path `{}` contains a control character", .0.escape_debug())]
    ControlCharacter(String),
    /// A name that parses only once normalised (`a//b` becomes `a/b`), where a store must use
    /// names exactly as they are.
    #[error("`{0}` has an empty segment (`//`) and would be read as `{1}`, a different name")]
    NotNormal(String, String),
}

/// A relative secret path: non-empty `/`-separated segments, none of them empty, `.` or `..`,
/// without control characters. Runs of `/` are collapsed (`a//b` is `a/b`).
///
/// Cloning is cheap (the text is shared), and ordering is plain byte order so that every
/// listing, plan and report sorts the same way on every machine.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SecretPath(Arc<str>);

impl SecretPath {
    /// Validates and normalises `text`.
    pub fn parse(text: &str) -> Result<Self, PathError> {
        if text.chars().any(char::is_control) {
            return Err(PathError::ControlCharacter(text.to_owned()));
        }
        if text.trim_matches('/').is_empty() {
            return Err(PathError::Empty);
        }
        if text.starts_with('/') {
            return Err(PathError::LeadingSlash(text.to_owned()));
        }
        if text.ends_with('/') {
            return Err(PathError::TrailingSlash(text.to_owned()));
        }
        let mut normalised = String::with_capacity(text.len());
        for segment in text.split('/').filter(|s| !s.is_empty()) {
            match segment {
                "." => return Err(PathError::DotSegment(text.to_owned(), ".")),
                ".." => return Err(PathError::DotSegment(text.to_owned(), "..")),
                _ => {}
            }
            if !normalised.is_empty() {
                normalised.push('/');
            }
            normalised.push_str(segment);
        }
        Ok(Self(normalised.into()))
    }

    /// The normalised text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The `/`-separated segments.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    /// `self/other`.
    #[must_use]
    pub fn join(&self, other: &SecretPath) -> SecretPath {
        Self(format!("{}/{}", self.0, other.0).into())
    }

    /// The rest of this path below `prefix`, if this path lies strictly inside it
    /// (segment-wise: `ab/c` is not inside `a`).
    pub fn strip_prefix(&self, prefix: &SecretPath) -> Option<SecretPath> {
        let rest = self.0.strip_prefix(&*prefix.0)?.strip_prefix('/')?;
        Some(Self(rest.into()))
    }

    /// Whether this path equals `prefix` or lies inside it, segment-wise.
    pub fn is_within(&self, prefix: &SecretPath) -> bool {
        *self == *prefix || self.strip_prefix(prefix).is_some()
    }
}

impl fmt::Display for SecretPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SecretPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretPath({:?})", &*self.0)
    }
}

impl std::str::FromStr for SecretPath {
    type Err = PathError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl serde::Serialize for SecretPath {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_repeated_slashes() {
        assert_eq!(SecretPath::parse("a//b///c").unwrap().as_str(), "a/b/c");
    }

    #[test]
    fn rejects_unsafe_paths() {
        assert_eq!(SecretPath::parse(""), Err(PathError::Empty));
        assert_eq!(SecretPath::parse("//"), Err(PathError::Empty));
        assert!(matches!(SecretPath::parse("/a"), Err(PathError::LeadingSlash(_))));
        assert!(matches!(SecretPath::parse("a/"), Err(PathError::TrailingSlash(_))));
        assert!(matches!(
            SecretPath::parse("a/../b"),
            Err(PathError::DotSegment(_, ".."))
        ));
        assert!(matches!(SecretPath::parse(".."), Err(PathError::DotSegment(_, ".."))));
        assert!(matches!(SecretPath::parse("./a"), Err(PathError::DotSegment(_, "."))));
        assert!(matches!(SecretPath::parse("a\0b"), Err(PathError::ControlCharacter(_))));
        assert!(matches!(SecretPath::parse("a\nb"), Err(PathError::ControlCharacter(_))));
    }

    #[test]
    fn keeps_names_that_merely_contain_dots() {
        assert_eq!(SecretPath::parse("a..b/.env").unwrap().as_str(), "a..b/.env");
    }

    #[test]
    fn error_messages_suggest_the_fix() {
        assert_eq!(
            SecretPath::parse("/api/key").unwrap_err().to_string(),
            "secret path `/api/key` starts with `/`; secret paths are relative (write `api/key`)"
        );
    }

    #[test]
    fn prefix_relations_are_segment_wise() {
        let p = |s| SecretPath::parse(s).unwrap();
        assert_eq!(p("a/b/c").strip_prefix(&p("a")), Some(p("b/c")));
        assert_eq!(p("ab/c").strip_prefix(&p("a")), None);
        assert!(p("a").is_within(&p("a")));
        assert!(!p("ab").is_within(&p("a")));
        assert_eq!(p("a").join(&p("b/c")), p("a/b/c"));
    }
}
