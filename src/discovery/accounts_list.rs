//! Accounts from a list kept elsewhere: an SSM parameter (`ssm:/name`; a `StringList`, or a
//! JSON array) or a local file (`file:accounts.json`, JSON or YAML). An entry is an account id
//! or an object `{ id, name, tags }`.

use std::collections::BTreeMap;

use serde_json::Value;

use super::Account;
use super::invalid;
use crate::failure::Failure;

/// Parses a list's text: a JSON or YAML array, or (from SSM `StringList`) comma-separated ids.
pub(crate) fn parse(text: &str, from: &str) -> Result<Vec<Account>, Failure> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(invalid(format!("{from} is empty")));
    }
    let value = if trimmed.starts_with(['[', '{', '-']) || trimmed.contains('\n') {
        crate::config::data_from_yaml(trimmed)
            .map_err(|e| invalid(format!("{from} is not a JSON or YAML list: {e}")))?
    } else {
        Value::Array(
            trimmed
                .split(',')
                .map(|id| Value::String(id.trim().to_owned()))
                .collect(),
        )
    };
    let Value::Array(items) = value else {
        return Err(invalid(format!("{from} is not a list of accounts")));
    };
    let found_by = format!("listed in {from}");
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let (id, name, tags) = match item {
            Value::String(id) => (id.trim().to_owned(), String::new(), BTreeMap::new()),
            // An unquoted id in YAML is a number: ids are 12 digits, so pad it back.
            Value::Number(n) => (format!("{n:0>12}"), String::new(), BTreeMap::new()),
            Value::Object(map) => {
                let id = match map.get("id").or_else(|| map.get("Id")) {
                    Some(Value::String(s)) => s.trim().to_owned(),
                    Some(Value::Number(n)) => format!("{n:0>12}"),
                    _ => return Err(invalid(format!("{from}: entry {} has no `id`", i + 1))),
                };
                let name = map
                    .get("name")
                    .or_else(|| map.get("Name"))
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let tags = map
                    .get("tags")
                    .and_then(Value::as_object)
                    .map(|t| {
                        t.iter()
                            .map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
                            .collect()
                    })
                    .unwrap_or_default();
                (id, name.to_owned(), tags)
            }
            other => {
                return Err(invalid(format!(
                    "{from}: entry {} is {other}, not an account id or object",
                    i + 1
                )));
            }
        };
        if id.is_empty() {
            continue;
        }
        if id.len() != 12 || !id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid(format!("{from}: `{id}` is not a 12-digit account id")));
        }
        out.push(Account {
            id,
            name,
            status: "ACTIVE".to_owned(),
            tags,
            found_by: found_by.clone(),
        });
    }
    Ok(out)
}

/// The accounts in SSM parameter `name`.
pub(crate) async fn from_ssm(aws: &super::Clients, name: &str) -> Result<Vec<Account>, Failure> {
    let out = super::call(
        &aws.session,
        ("ssm", "GetParameter"),
        format!("ssm:GetParameter({name})"),
        || aws.ssm.get_parameter().name(name).with_decryption(true).send(),
    )
    .await?;
    let value = out.parameter().and_then(|p| p.value()).unwrap_or_default();
    parse(value, &format!("ssm:{name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_take_ids_objects_and_string_lists() {
        let ids: Vec<String> = parse("111111111111, 222222222222", "ssm:/x")
            .unwrap()
            .into_iter()
            .map(|a| a.id)
            .collect();
        assert_eq!(ids, ["111111111111", "222222222222"]);
        let objects = parse(
            r#"[{"id": "333333333333", "name": "Data", "tags": {"env": "prod"}}, "444444444444"]"#,
            "f",
        )
        .unwrap();
        assert_eq!(
            (objects[0].name.as_str(), objects[0].tags["env"].as_str()),
            ("Data", "prod")
        );
        assert_eq!(objects[1].id, "444444444444");
        let yaml = parse("- 012345678901\n- id: '555555555555'\n  name: Five\n", "file:a.yaml").unwrap();
        assert_eq!(yaml[0].id, "012345678901", "an unquoted YAML id keeps its leading zero");
        assert_eq!(yaml[1].name, "Five");
        assert!(
            parse("12345", "ssm:/x")
                .unwrap_err()
                .message
                .contains("`12345` is not a 12-digit account id")
        );
        assert!(parse("  ", "ssm:/x").unwrap_err().message.contains("is empty"));
        assert!(parse(r#"{"a": 1}"#, "f").unwrap_err().message.contains("not a list"));
    }
}
