//! `secretsync migrate --from terraform-secretsmanager`: turns the three YAML files of the
//! Terraform Secrets Manager pipeline (targets, secrets, accounts) into a pipeline file that
//! validates and runs — and says what it could not carry over or had to guess.
//!
//! Input formats (as jbcom/secretsync's migrate read them, plus the forms it mishandled):
//! - targets: `{targets: [{name, description?, imports?, secrets?}]}` or a bare list;
//! - secrets: `{secrets: [{name, vault_path, vault_mount?, keys?, transforms?}]}` or a bare list;
//! - accounts: `{accounts: [{name, account_id, region?, role_arn?}]}`, a bare list, or a map of
//!   name → `{account_id, …}` or name → account id (the Go tool silently read the map as empty).
//!
//! Each secret becomes a Vault source reading `vault_path` from `vault_mount` (default `secret`);
//! each target with an account becomes an AWS target importing its secrets, then its imports.
//! Nothing is dropped silently: every field or item that cannot be carried over, and every
//! value that had to be guessed, is a [`Note`], printed and written into the file's header.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde_json::Value;

/// What a note is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum NoteKind {
    /// Not carried over.
    Dropped,
    /// Carried over with a value or meaning chosen by the migration.
    Guessed,
}

/// One thing the user must review.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Note {
    /// Dropped or guessed.
    pub kind: NoteKind,
    /// What, where and why (names the file and the item).
    pub text: String,
}

/// The three input files, by the name to show in messages, and their text.
#[derive(Debug, Clone)]
pub struct Inputs<'a> {
    /// `targets.yaml` and its text.
    pub targets: (&'a str, &'a str),
    /// `secrets.yaml` and its text.
    pub secrets: (&'a str, &'a str),
    /// `accounts.yaml` and its text.
    pub accounts: (&'a str, &'a str),
    /// The Vault address to write (else `VAULT_ADDR` is used at run time).
    pub vault_address: Option<&'a str>,
}

/// A converted pipeline.
#[derive(Debug, Clone)]
pub struct Migrated {
    /// The pipeline file.
    pub yaml: String,
    /// Sources written.
    pub sources: usize,
    /// Targets written.
    pub targets: usize,
    /// What to review, sorted.
    pub notes: Vec<Note>,
}

/// An input that cannot be converted at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {message}")]
pub struct MigrateError {
    /// The input file the problem is in, as given on the command line.
    pub file: String,
    /// What is wrong with it.
    pub message: String,
}

/// jbcom/secretsync's source names: lowercase, `/` and `-` become `_`, and the extension after
/// the last dot goes (`team/API-keys.json` → `team_api_keys`).
pub fn source_name(secret: &str) -> String {
    let base = match secret.rfind('.') {
        Some(dot) if dot > 0 => &secret[..dot],
        _ => secret,
    };
    base.to_lowercase().replace(['/', '-'], "_")
}

struct Reader<'a> {
    file: &'a str,
}

impl Reader<'_> {
    fn fail(&self, message: impl Into<String>) -> MigrateError {
        MigrateError {
            file: self.file.to_owned(),
            message: message.into(),
        }
    }

    /// The entries of a `{key: [...]}` document or a bare list.
    fn list(&self, text: &str, key: &str) -> Result<Vec<Value>, MigrateError> {
        let doc = crate::config::data_from_yaml(text).map_err(|e| self.fail(e))?;
        match doc {
            Value::Array(items) => Ok(items),
            Value::Object(mut map) => match map.remove(key) {
                Some(Value::Array(items)) => Ok(items),
                Some(_) => Err(self.fail(format!("`{key}` must be a list"))),
                None => Err(self.fail(format!(
                    "expected a list, or a `{key}:` key holding one (found keys: {})",
                    map.keys().cloned().collect::<Vec<_>>().join(", ")
                ))),
            },
            Value::Null => Ok(Vec::new()),
            _ => Err(self.fail(format!("expected a list of {key}"))),
        }
    }

    fn string(&self, entry: &Value, key: &str, at: &str) -> Result<Option<String>, MigrateError> {
        match entry.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(_) => Err(self.fail(format!("{at}: `{key}` must be text"))),
        }
    }

    fn required(&self, entry: &Value, key: &str, at: &str) -> Result<String, MigrateError> {
        self.string(entry, key, at)?
            .filter(|s| !s.is_empty())
            .ok_or_else(|| self.fail(format!("{at} has no `{key}`")))
    }

    fn names(&self, entry: &Value, key: &str, at: &str) -> Result<Vec<String>, MigrateError> {
        match entry.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| self.fail(format!("{at}: `{key}` must be a list of names")))
                })
                .collect(),
            Some(Value::String(one)) => Ok(vec![one.clone()]),
            Some(_) => Err(self.fail(format!("{at}: `{key}` must be a list of names"))),
        }
    }

    /// Notes every key of `entry` outside `known`.
    fn unknown_keys(&self, entry: &Value, known: &[&str], at: &str, notes: &mut Vec<Note>) {
        if let Some(map) = entry.as_object() {
            for key in map.keys().filter(|k| !known.contains(&k.as_str())) {
                notes.push(Note {
                    kind: NoteKind::Dropped,
                    text: format!("{}: {at}: `{key}` has no secretsync equivalent", self.file),
                });
            }
        }
    }
}

struct Secret {
    source: String,
    mount: String,
    path: String,
}

struct TargetOut {
    name: String,
    account: String,
    description: Option<String>,
    imports: Vec<String>,
}

struct Account {
    id: String,
    region: Option<String>,
    role_arn: Option<String>,
}

/// Converts the Terraform Secrets Manager pipeline's files.
pub fn terraform_secretsmanager(inputs: &Inputs<'_>) -> Result<Migrated, MigrateError> {
    let mut notes = Vec::new();
    let secrets = read_secrets(inputs.secrets, &mut notes)?;
    let accounts = read_accounts(inputs.accounts, &mut notes)?;
    let reader = Reader { file: inputs.targets.0 };
    let entries = reader.list(inputs.targets.1, "targets")?;

    let mut targets: Vec<TargetOut> = Vec::new();
    let mut raw_imports: Vec<(usize, Vec<String>)> = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, entry) in entries.iter().enumerate() {
        let at = format!("target #{}", i + 1);
        let name = reader.required(entry, "name", &at)?;
        let at = format!("target `{name}`");
        if !seen.insert(name.clone()) {
            return Err(reader.fail(format!("{at} is listed twice")));
        }
        reader.unknown_keys(entry, &["name", "description", "imports", "secrets"], &at, &mut notes);
        let Some(account) = accounts.get(&name) else {
            notes.push(Note {
                kind: NoteKind::Dropped,
                text: format!(
                    "{}: {at}: no account named `{name}` in {}; the target was not converted",
                    reader.file, inputs.accounts.0
                ),
            });
            continue;
        };
        let mut imports = Vec::new();
        for secret in reader.names(entry, "secrets", &at)? {
            match secrets.get(&secret) {
                Some(s) => imports.push(s.source.clone()),
                None => notes.push(Note {
                    kind: NoteKind::Dropped,
                    text: format!(
                        "{}: {at}: secret `{secret}` is not in {}; not imported",
                        reader.file, inputs.secrets.0
                    ),
                }),
            }
        }
        raw_imports.push((targets.len(), reader.names(entry, "imports", &at)?));
        targets.push(TargetOut {
            name,
            account: account.id.clone(),
            description: reader.string(entry, "description", &at)?,
            imports,
        });
    }
    // Imports name other targets; those that were not converted cannot be imported.
    let converted: BTreeSet<String> = targets.iter().map(|t| t.name.clone()).collect();
    for (index, imports) in raw_imports {
        let target = &mut targets[index];
        for import in imports {
            if converted.contains(&import) && import != target.name {
                if !target.imports.contains(&import) {
                    target.imports.push(import);
                }
            } else {
                notes.push(Note {
                    kind: NoteKind::Dropped,
                    text: format!(
                        "{}: target `{}`: import `{import}` is not a converted target; not imported",
                        reader.file, target.name
                    ),
                });
            }
        }
    }
    if targets.is_empty() {
        return Err(reader.fail(format!(
            "no target could be converted (each needs an account of the same name in {})",
            inputs.accounts.0
        )));
    }
    let used: BTreeSet<&str> = targets
        .iter()
        .flat_map(|t| t.imports.iter().map(String::as_str))
        .collect();
    let roles_defaulted = targets
        .iter()
        .filter(|t| accounts.values().any(|a| a.id == t.account && a.role_arn.is_none()))
        .count();
    if roles_defaulted > 0 {
        notes.push(Note {
            kind: NoteKind::Guessed,
            text: format!(
                "{}: {roles_defaulted} account(s) have no `role_arn`: secretsync assumes `OrganizationAccountAccessRole` there (jbcom/secretsync assumed `AWSControlTowerExecution`); set `aws.control_tower` or `aws.execution_context.custom_role_pattern` if you use another role",
                inputs.accounts.0
            ),
        });
    }
    for secret in secrets.values() {
        if !used.contains(secret.source.as_str()) {
            notes.push(Note {
                kind: NoteKind::Dropped,
                text: format!(
                    "{}: secret source `{}` is imported by no converted target; not written",
                    inputs.secrets.0, secret.source
                ),
            });
        }
    }
    if inputs.vault_address.is_none() {
        notes.push(Note {
            kind: NoteKind::Guessed,
            text:
                "the Vault address is not in the file: VAULT_ADDR is used at run time (pass --vault-addr to write one)"
                    .to_owned(),
        });
    }

    let mut yaml = String::new();
    let _ = writeln!(
        yaml,
        "# Converted by `secretsync migrate --from terraform-secretsmanager` from\n# {}, {} and {}.\n# Review the notes, then run `secretsync validate` and `secretsync plan` with this file.",
        inputs.targets.0, inputs.secrets.0, inputs.accounts.0
    );
    notes.sort();
    notes.dedup();
    for note in &notes {
        let kind = match note.kind {
            NoteKind::Dropped => "dropped",
            NoteKind::Guessed => "guessed",
        };
        let _ = writeln!(yaml, "# {kind}: {}", note.text.replace('\n', " "));
    }
    if let Some(address) = inputs.vault_address {
        let _ = writeln!(yaml, "\nvault:\n  address: {}", quoted(address));
    }
    yaml.push_str("\nsources:\n");
    let mut written_sources = 0;
    let by_source: BTreeMap<&str, &Secret> = secrets.values().map(|s| (s.source.as_str(), s)).collect();
    for (name, secret) in by_source.iter().filter(|(n, _)| used.contains(*n)) {
        let _ = writeln!(
            yaml,
            "  {}:\n    vault: {{ mount: {}, paths: [{}] }}",
            quoted(name),
            quoted(&secret.mount),
            quoted(&secret.path)
        );
        written_sources += 1;
    }
    yaml.push_str("\ntargets:\n");
    for target in &targets {
        let account = accounts.values().find(|a| a.id == target.account);
        let _ = writeln!(yaml, "  {}:", quoted(&target.name));
        let _ = writeln!(yaml, "    account_id: {}", quoted(&target.account));
        if let Some(region) = account.and_then(|a| a.region.as_deref()) {
            let _ = writeln!(yaml, "    region: {}", quoted(region));
        }
        if let Some(role) = account.and_then(|a| a.role_arn.as_deref()) {
            let _ = writeln!(yaml, "    role_arn: {}", quoted(role));
        }
        if let Some(description) = &target.description {
            let _ = writeln!(yaml, "    description: {}", quoted(description));
        }
        let imports: Vec<String> = target.imports.iter().map(|i| quoted(i)).collect();
        let _ = writeln!(yaml, "    imports: [{}]", imports.join(", "));
    }
    Ok(Migrated {
        yaml,
        sources: written_sources,
        targets: targets.len(),
        notes,
    })
}

fn read_secrets((file, text): (&str, &str), notes: &mut Vec<Note>) -> Result<BTreeMap<String, Secret>, MigrateError> {
    let reader = Reader { file };
    let mut out: BTreeMap<String, Secret> = BTreeMap::new();
    let mut sources: BTreeMap<String, String> = BTreeMap::new();
    for (i, entry) in reader.list(text, "secrets")?.iter().enumerate() {
        let at = format!("secret #{}", i + 1);
        let name = reader.required(entry, "name", &at)?;
        let at = format!("secret `{name}`");
        let path = reader.required(entry, "vault_path", &at)?.trim_matches('/').to_owned();
        let mount = reader
            .string(entry, "vault_mount", &at)?
            .unwrap_or_else(|| "secret".to_owned())
            .trim_matches('/')
            .to_owned();
        reader.unknown_keys(
            entry,
            &["name", "vault_path", "vault_mount", "keys", "transforms"],
            &at,
            notes,
        );
        if entry.get("keys").is_some_and(|k| !k.is_null()) {
            notes.push(Note {
                kind: NoteKind::Dropped,
                text: format!("{file}: {at}: `keys` (a subset of keys) is not supported: the whole secret is synced"),
            });
        }
        if entry.get("transforms").is_some_and(|k| !k.is_null()) {
            notes.push(Note {
                kind: NoteKind::Dropped,
                text: format!("{file}: {at}: `transforms` are not supported: values are synced unchanged"),
            });
        }
        if path.rsplit('/').next() != Some(name.as_str()) {
            notes.push(Note {
                kind: NoteKind::Guessed,
                text: format!(
                    "{file}: {at}: secretsync names secrets by their Vault path, so it is synced as `{path}`, not `{name}`"
                ),
            });
        }
        let source = source_name(&name);
        if let Some(other) = sources.insert(source.clone(), name.clone()) {
            return Err(reader.fail(format!(
                "secrets `{other}` and `{name}` both become source `{source}`; rename one"
            )));
        }
        if out.insert(name.clone(), Secret { source, mount, path }).is_some() {
            return Err(reader.fail(format!("{at} is listed twice")));
        }
    }
    Ok(out)
}

fn read_accounts((file, text): (&str, &str), notes: &mut Vec<Note>) -> Result<BTreeMap<String, Account>, MigrateError> {
    let reader = Reader { file };
    let doc = crate::config::data_from_yaml(text).map_err(|e| reader.fail(e))?;
    // A map of name → account (unless it is the `{accounts: [...]}` form).
    let entries: Vec<Value> = match doc {
        Value::Object(map) if !map.get("accounts").is_some_and(Value::is_array) => map
            .into_iter()
            .map(|(name, v)| match v {
                Value::Object(mut fields) => {
                    fields.entry("name").or_insert(Value::String(name));
                    Value::Object(fields)
                }
                other => serde_json::json!({ "name": name, "account_id": other }),
            })
            .collect(),
        _ => reader.list(text, "accounts")?,
    };
    let mut out = BTreeMap::new();
    for (i, entry) in entries.iter().enumerate() {
        let at = format!("account #{}", i + 1);
        let name = reader.required(entry, "name", &at)?;
        let at = format!("account `{name}`");
        reader.unknown_keys(entry, &["name", "account_id", "region", "role_arn"], &at, notes);
        let mut id = reader.required(entry, "account_id", &at)?;
        if !id.chars().all(|c| c.is_ascii_digit()) || id.len() > 12 {
            return Err(reader.fail(format!("{at}: `account_id` `{id}` is not a 12-digit AWS account id")));
        }
        if id.len() < 12 {
            let padded = format!("{id:0>12}");
            notes.push(Note {
                kind: NoteKind::Guessed,
                text: format!(
                    "{file}: {at}: account id `{id}` has fewer than 12 digits (a YAML number losing its leading zeros?); written as `{padded}` — quote ids in YAML"
                ),
            });
            id = padded;
        }
        let account = Account {
            id,
            region: reader.string(entry, "region", &at)?,
            role_arn: reader.string(entry, "role_arn", &at)?,
        };
        if out.insert(name.clone(), account).is_some() {
            return Err(reader.fail(format!("{at} is listed twice")));
        }
    }
    Ok(out)
}

/// A YAML double-quoted scalar (JSON string syntax is valid YAML).
fn quoted(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs<'a>(targets: &'a str, secrets: &'a str, accounts: &'a str) -> Inputs<'a> {
        Inputs {
            targets: ("targets.yaml", targets),
            secrets: ("secrets.yaml", secrets),
            accounts: ("accounts.yaml", accounts),
            vault_address: Some("http://127.0.0.1:8200"),
        }
    }

    #[test]
    fn source_names_follow_the_go_tool() {
        assert_eq!(source_name("My-Secret.v2"), "my_secret");
        assert_eq!(source_name("team/API-keys.json"), "team_api_keys");
        assert_eq!(source_name("plain"), "plain");
    }

    #[test]
    fn wrapped_bare_and_map_forms_give_the_same_pipeline() {
        let wrapped = terraform_secretsmanager(&inputs(
            "targets:\n  - { name: Dev, secrets: [db] }\n",
            "secrets:\n  - { name: db, vault_path: app/db }\n",
            "accounts:\n  - { name: Dev, account_id: '111111111111' }\n",
        ))
        .unwrap();
        let bare = terraform_secretsmanager(&inputs(
            "- { name: Dev, secrets: [db] }\n",
            "- { name: db, vault_path: app/db }\n",
            "Dev: '111111111111'\n",
        ))
        .unwrap();
        let map = terraform_secretsmanager(&inputs(
            "- { name: Dev, secrets: [db] }\n",
            "- { name: db, vault_path: app/db }\n",
            "Dev: { account_id: '111111111111' }\n",
        ))
        .unwrap();
        assert_eq!(wrapped.yaml, bare.yaml);
        assert_eq!(wrapped.yaml, map.yaml, "the map form is read, not silently empty");
        assert!(
            wrapped
                .yaml
                .contains("\"db\":\n    vault: { mount: \"secret\", paths: [\"app/db\"] }"),
            "{}",
            wrapped.yaml
        );
        assert!(
            wrapped
                .yaml
                .contains("  \"Dev\":\n    account_id: \"111111111111\"\n    imports: [\"db\"]"),
            "{}",
            wrapped.yaml
        );
        assert_eq!((wrapped.sources, wrapped.targets), (1, 1));
    }

    #[test]
    fn everything_dropped_or_guessed_is_noted() {
        let m = terraform_secretsmanager(&inputs(
            "- { name: Dev, secrets: [db, ghost], imports: [Nowhere], owner: team-a }\n- { name: Orphan, secrets: [db] }\n",
            "- { name: db-creds, vault_path: app/db, keys: [user], transforms: { user: upper } }\n- { name: db, vault_path: app/db }\n- { name: unused, vault_path: x/unused }\n",
            "- { name: Dev, account_id: 11111111111 }\n",
        ))
        .unwrap();
        let texts: Vec<String> = m.notes.iter().map(|n| n.text.clone()).collect();
        let expect = [
            "targets.yaml: target `Dev`: `owner` has no secretsync equivalent",
            "targets.yaml: target `Dev`: secret `ghost` is not in secrets.yaml; not imported",
            "targets.yaml: target `Dev`: import `Nowhere` is not a converted target; not imported",
            "targets.yaml: target `Orphan`: no account named `Orphan` in accounts.yaml; the target was not converted",
            "secrets.yaml: secret `db-creds`: `keys` (a subset of keys) is not supported: the whole secret is synced",
            "secrets.yaml: secret `db-creds`: `transforms` are not supported: values are synced unchanged",
            "secrets.yaml: secret `db-creds`: secretsync names secrets by their Vault path, so it is synced as `app/db`, not `db-creds`",
            "secrets.yaml: secret source `unused` is imported by no converted target; not written",
            "accounts.yaml: account `Dev`: account id `11111111111` has fewer than 12 digits",
        ];
        for e in expect {
            assert!(
                texts.iter().any(|t| t.starts_with(e)),
                "missing note `{e}` in {texts:#?}"
            );
        }
        assert!(
            m.yaml.contains("# dropped: targets.yaml: target `Dev`: secret `ghost`"),
            "{}",
            m.yaml
        );
        assert!(m.yaml.contains("account_id: \"011111111111\""), "{}", m.yaml);
        let body: Vec<&str> = m.yaml.lines().filter(|l| !l.starts_with('#')).collect();
        assert!(!body.iter().any(|l| l.contains("unused")), "{body:#?}");
    }

    #[test]
    fn unusable_inputs_name_the_file_and_item() {
        let err = terraform_secretsmanager(&inputs(
            "- { name: Dev }\n",
            "- { name: db }\n",
            "Dev: '111111111111'\n",
        ))
        .unwrap_err();
        assert_eq!(err.to_string(), "secrets.yaml: secret `db` has no `vault_path`");
        let err = terraform_secretsmanager(&inputs(
            "- { name: Dev }\n",
            "- { name: a-b, vault_path: x }\n- { name: a_b, vault_path: y }\n",
            "Dev: '111111111111'\n",
        ))
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "secrets.yaml: secrets `a-b` and `a_b` both become source `a_b`; rename one"
        );
        let err = terraform_secretsmanager(&inputs("- { name: Dev }\n", "[]\n", "Dev: 'abc'\n")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "accounts.yaml: account `Dev`: `account_id` `abc` is not a 12-digit AWS account id"
        );
        let err = terraform_secretsmanager(&inputs("- { name: Dev }\n", "[]\n", "Prod: '111111111111'\n")).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("targets.yaml: no target could be converted"),
            "{err}"
        );
    }
}
