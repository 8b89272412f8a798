//! `validate --check-vault`: for every Vault the pipeline uses, is it reachable and unsealed,
//! do the credentials work, and may the token do what each source, target and merge store
//! needs? Read-only: capabilities are asked with `sys/capabilities-self`, nothing is written.

use std::collections::{BTreeMap, BTreeSet};

use super::Role;
use super::connection::health;
use crate::config::{MergeStoreSpec, Pipeline, Source, TargetKind, VaultLocation};
use crate::model::SecretPath;
use crate::store::BuildContext;
use crate::store::build::join;
use crate::store::check::CheckLine;

/// Every Vault location in the pipeline, with its role, in a stable order.
fn locations(pipeline: &Pipeline) -> Vec<(String, &VaultLocation, Role)> {
    let mut out = Vec::new();
    for (name, source) in &pipeline.sources {
        if let Source::Vault(v) = source {
            out.push((format!("source `{name}`"), v, Role::Source));
        }
    }
    if let Some(MergeStoreSpec::Vault(v)) = &pipeline.merge_store {
        out.push(("the merge store".to_owned(), v, Role::Merge));
    }
    for (name, target) in &pipeline.targets {
        if let TargetKind::Vault(v) = &target.kind {
            out.push((format!("target `{name}`"), v, Role::Target));
        }
    }
    out
}

/// Runs every check; the lines come in a stable order (connections first, then locations).
pub async fn check_pipeline(pipeline: &Pipeline, context: &BuildContext) -> Vec<CheckLine> {
    let locations = locations(pipeline);
    let mut lines = Vec::new();
    let mut endpoints = BTreeSet::new();
    for (subject, location, _) in &locations {
        match context.vault_endpoint(location) {
            Ok(endpoint) => {
                endpoints.insert(endpoint);
            }
            Err(e) => lines.push(CheckLine::fail(subject.clone(), e.to_string(), e.hint.clone())),
        }
    }
    let mut usable = BTreeMap::new();
    for endpoint in &endpoints {
        let at = endpoint.describe();
        let version = match health(&context.vault, endpoint, &*context.env).await {
            Ok(version) => version,
            Err(problem) => {
                lines.push(CheckLine::fail(
                    at,
                    problem,
                    Some("check `vault.address` (or VAULT_ADDR) and that Vault is unsealed".to_owned()),
                ));
                usable.insert(endpoint.clone(), false);
                continue;
            }
        };
        let connected = match context.vault_connection(endpoint).await {
            Ok(conn) => conn.verify().await.map(|()| conn).map_err(|e| (e.message, e.hint)),
            Err(e) => Err((e.to_string(), e.hint.clone())),
        };
        match connected {
            Ok(conn) => {
                let policies = conn.policies();
                lines.push(CheckLine::pass(
                    at,
                    format!(
                        "Vault {version}, unsealed; logged in with {} (policies: {policies})",
                        conn.login_method()
                    ),
                ));
                usable.insert(endpoint.clone(), true);
            }
            Err((message, hint)) => {
                lines.push(CheckLine::fail(at, message, hint));
                usable.insert(endpoint.clone(), false);
            }
        }
    }
    for (subject, location, role) in &locations {
        let Ok(endpoint) = context.vault_endpoint(location) else {
            continue;
        };
        if usable.get(&endpoint) != Some(&true) {
            lines.push(CheckLine::fail(
                subject.clone(),
                format!("not checked: {} cannot be used (see above)", endpoint.describe()),
                None,
            ));
            continue;
        }
        lines.push(check_location(context, subject, location, *role).await);
    }
    lines
}

/// The capabilities a role needs, as (capability, API path) pairs, for the folder `folder`
/// (inside the mount; empty for the mount root). `probe` stands for "any secret in the folder".
fn needed(mount: &str, version: u8, folder: &str, role: Role) -> Vec<(&'static str, String)> {
    let under = |section: &str, rest: &str| {
        let inner = [folder, rest]
            .iter()
            .filter(|s| !s.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join("/");
        match (version, section) {
            (2, section) => format!("{mount}/{section}/{inner}"),
            _ => format!("{mount}/{inner}"),
        }
    };
    let folder_path = format!("{}/", under("metadata", "").trim_end_matches('/'));
    let any = super::PROBE;
    let mut out = vec![("list", folder_path), ("read", under("data", any))];
    match (role, version) {
        (Role::Source, _) => {}
        (Role::Target | Role::Merge, 2) => {
            out.push(("read", under("metadata", any)));
            out.push(("create", under("data", any)));
            out.push(("update", under("data", any)));
            out.push(("update", under("metadata", any)));
            out.push(("delete", under("data", any)));
            if role == Role::Merge {
                out.push(("delete", under("metadata", super::MERGED_MARKER)));
            }
        }
        (Role::Target | Role::Merge, _) => {
            out.push(("create", under("data", any)));
            out.push(("update", under("data", any)));
            out.push(("delete", under("data", any)));
            out.push(("update", under("data", super::MANIFEST)));
        }
    }
    out
}

async fn check_location(context: &BuildContext, subject: &str, location: &VaultLocation, role: Role) -> CheckLine {
    let (conn, mount) = match context.vault_parts(location).await {
        Ok(parts) => parts,
        Err(e) => return CheckLine::fail(subject.to_owned(), e.to_string(), e.hint.clone()),
    };
    let base = mount.base.as_deref();
    let folders: Vec<String> = match role {
        Role::Source if !location.paths.is_empty() => location
            .paths
            .iter()
            .map(|p| join(base, Some(p.as_str())).unwrap_or_default())
            .collect(),
        _ => vec![join(base, location.paths.first().map(SecretPath::as_str)).unwrap_or_default()],
    };
    let mut wanted: Vec<(&'static str, String)> = Vec::new();
    for folder in &folders {
        wanted.extend(needed(&mount.mount, mount.version, folder, role));
    }
    let mut paths: Vec<String> = wanted.iter().map(|(_, p)| p.clone()).collect();
    paths.sort();
    paths.dedup();
    let granted = match conn.capabilities(&paths).await {
        Ok(granted) => granted,
        Err(e) => {
            return CheckLine::fail(
                subject.to_owned(),
                format!("cannot ask Vault for the token's capabilities: {}", e.summary()),
                None,
            );
        }
    };
    let shown = |p: &str| p.replace(super::PROBE, "*");
    let missing: Vec<String> = wanted
        .iter()
        .filter(|(cap, path)| {
            let caps = granted.get(path).map(Vec::as_slice).unwrap_or_default();
            !caps.iter().any(|c| c == "root" || c == cap)
        })
        .map(|(cap, path)| format!("{cap} on `{}`", shown(path)))
        .collect();
    let scope = folders
        .iter()
        .map(|f| {
            if f.is_empty() {
                format!("{}/", mount.mount)
            } else {
                format!("{}/{f}/", mount.mount)
            }
        })
        .collect::<Vec<_>>()
        .join(", ");
    let what = match role {
        Role::Source => "list and read",
        Role::Target | Role::Merge => "list, read, write and delete",
    };
    if missing.is_empty() {
        return CheckLine::pass(
            subject.to_owned(),
            format!("{scope} (KV v{}): {what} allowed", mount.version),
        );
    }
    let listed = conn.policies();
    CheckLine::fail(
        subject.to_owned(),
        format!(
            "{scope} (KV v{}): the token's policies ({listed}) do not grant {}",
            mount.version,
            missing.join(", ")
        ),
        Some("add the missing capabilities to one of the token's policies".to_owned()),
    )
}
