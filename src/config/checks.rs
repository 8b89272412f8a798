//! Pure checks of single values (account ids, regions, ARNs, bucket names, templates).
//! Each returns a message for the user on failure; `compile/` attaches the location.
//! Values checked here are identifiers, never secrets, so messages may quote them.

use std::sync::LazyLock;

use regex::Regex;

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("static pattern compiles")
}

static REGION: LazyLock<Regex> = LazyLock::new(|| re(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$"));
static ROLE_ARN: LazyLock<Regex> =
    LazyLock::new(|| re(r"^arn:aws(-[a-z]+)*:iam::\d{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}$"));
static NAME: LazyLock<Regex> = LazyLock::new(|| re(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"));
static SESSION_NAME: LazyLock<Regex> = LazyLock::new(|| re(r"^[A-Za-z0-9_+=,.@-]{2,64}$"));
static EXTERNAL_ID: LazyLock<Regex> = LazyLock::new(|| re(r"^[A-Za-z0-9_+=,.@:/-]{2,1224}$"));
static AWS_NAME_CHARS: LazyLock<Regex> = LazyLock::new(|| re(r"^[A-Za-z0-9/_+=.@-]*$"));
static OU_ID: LazyLock<Regex> = LazyLock::new(|| re(r"^ou-[0-9a-z]{4,32}-[a-z0-9]{8,32}$"));
static ROOT_ID: LazyLock<Regex> = LazyLock::new(|| re(r"^r-[0-9a-z]{4,32}$"));
static PLACEHOLDER: LazyLock<Regex> = LazyLock::new(|| re(r"\{\{\s*([^{}]*?)\s*\}\}"));

/// A 12-digit AWS account id.
pub(crate) fn account_id(value: &str) -> Result<(), String> {
    if value.len() == 12 && value.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(format!("`{value}` is not an AWS account id (12 digits)"))
    }
}

/// An AWS region name such as `us-east-1`.
pub(crate) fn region(value: &str) -> Result<(), String> {
    if REGION.is_match(value) {
        Ok(())
    } else {
        Err(format!("`{value}` is not an AWS region (like `us-east-1`)"))
    }
}

/// An IAM role ARN (`arn:aws:iam::123456789012:role/Name`, paths allowed).
pub(crate) fn role_arn(value: &str) -> Result<(), String> {
    if ROLE_ARN.is_match(value) {
        Ok(())
    } else {
        Err(format!(
            "`{value}` is not an IAM role ARN (like `arn:aws:iam::123456789012:role/SecretsSync`)"
        ))
    }
}

/// A role ARN template: must contain `{{.AccountID}}` and be an ARN once it is filled in.
pub(crate) fn role_template(value: &str) -> Result<(), String> {
    if !value.contains(super::pipeline::ACCOUNT_ID_PLACEHOLDER) {
        return Err(format!(
            "`{value}` must contain `{{{{.AccountID}}}}` so that each account gets its own role"
        ));
    }
    role_arn(&value.replace(super::pipeline::ACCOUNT_ID_PLACEHOLDER, "123456789012")).map_err(|_| {
        format!("`{value}` is not a role ARN template (like `arn:aws:iam::{{{{.AccountID}}}}:role/SecretsSync`)")
    })
}

/// A name for a source, target or dynamic target group. Names become path segments in merge
/// stores, so they are restricted to letters, digits, `_`, `-` and `.`.
pub(crate) fn name(value: &str) -> Result<(), String> {
    if NAME.is_match(value) {
        Ok(())
    } else {
        Err(format!(
            "`{value}` is not a valid name: use letters, digits, `_`, `-` and `.`, starting with a letter or digit (at most 128)"
        ))
    }
}

/// An `http(s)://host[:port][/path]` URL.
pub(crate) fn url(value: &str) -> Result<(), String> {
    let rest = value.strip_prefix("https://").or_else(|| value.strip_prefix("http://"));
    match rest {
        Some(rest) if !rest.is_empty() && !rest.starts_with('/') && !rest.contains(char::is_whitespace) => Ok(()),
        _ => Err(format!("`{value}` is not an http:// or https:// URL")),
    }
}

/// The name of an environment variable (`CI_JOB_JWT_V2`), not `${…}` or a value.
pub(crate) fn env_name(value: &str) -> Result<(), String> {
    let mut chars = value.chars();
    let starts_well = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if starts_well && chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        Ok(())
    } else {
        Err("expected the name of an environment variable (letters, digits and `_`), not its value".to_owned())
    }
}

/// A Vault namespace path: `/`-separated names, none empty, reserved or holding spaces.
pub(crate) fn namespace(value: &str) -> Result<(), String> {
    const RESERVED: [&str; 6] = ["root", "sys", "audit", "auth", "cubbyhole", "identity"];
    let trimmed = value.trim_matches('/');
    if trimmed.is_empty() {
        return Err(
            "a namespace is empty; leave the key out for the root namespace (on a source, target or merge store: `/`)"
                .to_owned(),
        );
    }
    for name in trimmed.split('/') {
        if name.is_empty() {
            return Err(format!("the namespace `{value}` has an empty name between two `/`"));
        }
        if name.contains(char::is_whitespace) {
            return Err(format!("the namespace `{value}` contains a space"));
        }
        if RESERVED.contains(&name) {
            return Err(format!("`{name}` in the namespace `{value}` is a name Vault reserves"));
        }
    }
    Ok(())
}

/// An STS role session name.
pub(crate) fn session_name(value: &str) -> Result<(), String> {
    if SESSION_NAME.is_match(value) {
        Ok(())
    } else {
        Err("a role session name is 2–64 characters of letters, digits and `_+=,.@-`".to_owned())
    }
}

/// An STS external id (not echoed: it is often treated as a shared secret).
pub(crate) fn external_id(value: &str) -> Result<(), String> {
    if EXTERNAL_ID.is_match(value) {
        Ok(())
    } else {
        Err("an external id is 2–1224 characters of letters, digits and `_+=,.@:/-`".to_owned())
    }
}

/// A Secrets Manager name prefix.
pub(crate) fn secret_prefix(value: &str) -> Result<(), String> {
    if value.len() <= 256 && AWS_NAME_CHARS.is_match(value) {
        Ok(())
    } else {
        Err(format!(
            "`{value}` is not a valid secret name prefix: use letters, digits and `/_+=.@-`"
        ))
    }
}

/// A Secrets Manager description (at most 2,048 characters).
pub(crate) fn description(value: &str) -> Result<(), String> {
    if value.chars().count() <= 2048 {
        Ok(())
    } else {
        Err("a secret description is at most 2,048 characters".to_owned())
    }
}

/// An S3 bucket name.
pub(crate) fn bucket(value: &str) -> Result<(), String> {
    let ok = (3..=63).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && value.as_bytes()[0].is_ascii_alphanumeric()
        && value.as_bytes()[value.len() - 1].is_ascii_alphanumeric()
        && !value.contains("..")
        && value.parse::<std::net::Ipv4Addr>().is_err();
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{value}` is not a valid S3 bucket name (3–63 lowercase letters, digits, `.` and `-`, starting and ending with a letter or digit)"
        ))
    }
}

/// Tag keys and values we may write, and that do not collide with our ownership tags.
pub(crate) fn tag(key: &str, value: &str) -> Result<(), String> {
    if key.is_empty() || key.chars().count() > 128 {
        return Err(format!("tag key `{key}` must be 1–128 characters"));
    }
    if key.to_ascii_lowercase().starts_with("aws:") {
        return Err(format!("tag key `{key}` uses the reserved `aws:` prefix"));
    }
    if key == crate::model::OWNER_TAG || key.starts_with("secretsync:") {
        return Err(format!(
            "tag key `{key}` is reserved: secretsync uses `managed-by` and `secretsync:…` to mark the secrets it owns"
        ));
    }
    if key.contains(' ') {
        return Err(format!("tag key `{key}` contains a space; use `-`, `_`, `.` or `:`"));
    }
    if value.chars().count() > 256 {
        return Err(format!("the value of tag `{key}` is longer than 256 characters"));
    }
    Ok(())
}

/// An Organizations OU id, root id, or OU path (`Workloads/Prod`).
pub(crate) fn ou(value: &str) -> Result<(), String> {
    if value.starts_with("ou-") {
        return if OU_ID.is_match(value) {
            Ok(())
        } else {
            Err(format!("`{value}` is not an OU id (like `ou-abcd-12345678`)"))
        };
    }
    if value.starts_with("r-") && ROOT_ID.is_match(value) {
        return Ok(());
    }
    if value.trim_matches('/').split('/').all(|s| !s.trim().is_empty()) {
        Ok(())
    } else {
        Err(format!(
            "`{value}` is neither an OU id nor an OU path like `Workloads/Prod`"
        ))
    }
}

/// A discovered-target name template: only `{{account_id}}`, `{{account_name}}` and
/// `{{tag:KEY}}`, and at least one of them (or every account would get the same name).
pub(crate) fn name_template(value: &str) -> Result<(), String> {
    let mut any = false;
    for capture in PLACEHOLDER.captures_iter(value) {
        let inner = &capture[1];
        let known = inner == "account_id"
            || inner == "account_name"
            || inner.strip_prefix("tag:").is_some_and(|k| !k.is_empty());
        if !known {
            return Err(format!(
                "unknown placeholder `{}` in name template; use `{{{{account_id}}}}`, `{{{{account_name}}}}` or `{{{{tag:KEY}}}}`",
                &capture[0]
            ));
        }
        any = true;
    }
    if any {
        Ok(())
    } else {
        Err(format!(
            "name template `{value}` has no placeholder, so every account would get the same target name"
        ))
    }
}

/// A regular expression.
pub(crate) fn regex(value: &str) -> Result<(), String> {
    Regex::new(value).map(|_| ()).map_err(|err| {
        let detail = err.to_string();
        let last = detail
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("invalid")
            .trim();
        format!(
            "`{value}` is not a valid regular expression: {}",
            last.trim_start_matches("error: ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_well_formed_values() {
        account_id("012345678901").unwrap();
        region("us-east-1").unwrap();
        region("us-gov-west-1").unwrap();
        region("ap-southeast-2").unwrap();
        role_arn("arn:aws:iam::123456789012:role/path/to/Role").unwrap();
        role_arn("arn:aws-us-gov:iam::123456789012:role/R").unwrap();
        role_template("arn:aws:iam::{{.AccountID}}:role/R").unwrap();
        name("Serverless_Stg").unwrap();
        name("prod-overrides.v2").unwrap();
        url("https://vault.example.com:8200").unwrap();
        url("http://127.0.0.1:5000").unwrap();
        namespace("platform").unwrap();
        env_name("CI_JOB_JWT_V2").unwrap();
        namespace("/teams/payments/").unwrap();
        bucket("my-bucket.merged").unwrap();
        ou("ou-abcd-12345678").unwrap();
        ou("Workloads/Prod").unwrap();
        ou("r-ab12").unwrap();
        name_template("sandbox-{{account_name}}").unwrap();
        name_template("{{tag:Team}}-{{ account_id }}").unwrap();
        regex("^prod-.*$").unwrap();
        tag("env", "staging").unwrap();
    }

    #[test]
    fn rejects_malformed_values_with_a_reason() {
        assert_eq!(
            account_id("12345").unwrap_err(),
            "`12345` is not an AWS account id (12 digits)"
        );
        assert!(account_id("12345678901a").is_err());
        assert!(region("us-east").is_err());
        assert!(region("US-EAST-1").is_err());
        assert!(role_arn("arn:aws:iam::123:role/X").is_err());
        assert!(role_arn("arn:aws:iam::123456789012:user/X").is_err());
        assert!(
            role_template("arn:aws:iam::123456789012:role/X")
                .unwrap_err()
                .contains("{{.AccountID}}")
        );
        assert!(name("a/b").is_err());
        assert!(name("-x").is_err());
        assert!(url("vault.example.com").is_err());
        assert!(namespace("").unwrap_err().contains("root namespace"));
        assert!(env_name("eyJhbGciOi.x.y").unwrap_err().contains("not its value"));
        assert!(env_name("1ABC").is_err());
        assert!(namespace("a//b").unwrap_err().contains("empty name"));
        assert!(namespace("team a").unwrap_err().contains("space"));
        assert_eq!(
            namespace("platform/sys").unwrap_err(),
            "`sys` in the namespace `platform/sys` is a name Vault reserves"
        );
        assert!(bucket("My_Bucket").is_err());
        assert!(bucket("192.168.1.1").is_err());
        assert!(ou("ou-bad").is_err());
        assert!(name_template("static").unwrap_err().contains("no placeholder"));
        assert!(
            name_template("{{.AccountID}}")
                .unwrap_err()
                .contains("unknown placeholder")
        );
        assert!(
            regex("(unclosed")
                .unwrap_err()
                .starts_with("`(unclosed` is not a valid regular expression")
        );
        assert!(tag("managed-by", "me").unwrap_err().contains("reserved"));
        assert!(tag("aws:foo", "x").is_err());
    }
}
