//! `sys/` endpoints: health, seal, mounts, auth mounts, policies, namespaces.

use serde_json::{Map, Value, json};

use super::acl::Policy;
use super::state::{AuthMount, Mount, State};
use super::{Ctx, Op, error, find_mount, ok, visible_mounts};
use crate::http::Response;

/// The Vault version the emulator reports.
pub(crate) const VERSION: &str = "1.17.6-emulator";

/// Vault's answer when the preflight mount lookup is not allowed or the mount does not exist
/// (the same, on purpose, so that mounts cannot be probed).
pub(crate) fn preflight_denied(path: &str) -> Response {
    let rest = path.trim_start_matches("sys/internal/ui/mounts/");
    error(
        403,
        &format!(
            "preflight capability check returned 403, please ensure client's policies grant access to path \"{rest}/\""
        ),
    )
}

fn seal_status(state: &State) -> Value {
    json!({
        "type": "shamir", "initialized": true, "sealed": state.sealed, "t": 1, "n": 1, "progress": 0,
        "nonce": "", "version": VERSION, "build_date": "2026-01-01T00:00:00Z", "migration": false,
        "cluster_name": "secretsync-testbed", "cluster_id": "00000000-0000-0000-0000-000000000001",
        "recovery_seal": false, "storage_type": "inmem",
    })
}

/// `POST sys/capabilities-self` (`paths` or `path`): each path's capabilities for the calling
/// token, keyed by path, and `capabilities` for the first one.
pub(crate) fn capabilities_self(
    ctx: &Ctx<'_>,
    token: &super::state::Token,
    policies: &[&super::acl::Policy],
) -> Response {
    let body = match ctx.body() {
        Ok(body) => body,
        Err(response) => return response,
    };
    let paths: Vec<String> = match (&body["paths"], &body["path"]) {
        (Value::Array(list), _) => list.iter().filter_map(|p| p.as_str().map(str::to_owned)).collect(),
        (_, Value::String(one)) => vec![one.clone()],
        _ => return error(400, "missing required 'paths' parameter"),
    };
    let mut out = Map::new();
    for path in &paths {
        let caps = if token.is_root() {
            vec!["root".to_owned()]
        } else {
            super::acl::capabilities(policies, &format!("{}{}", ctx.ns, path.trim_start_matches('/')))
        };
        out.insert(path.clone(), json!(caps));
    }
    if let Some(first) = paths.first() {
        out.insert("capabilities".to_owned(), out[first].clone());
    }
    ok(Value::Object(out))
}

pub(crate) fn handle(state: &mut State, ctx: &Ctx<'_>) -> Response {
    let path = ctx.path.as_str();
    let (head, tail) = match path.strip_prefix("sys/") {
        Some(rest) => rest.split_once('/').unwrap_or((rest, "")),
        None => return error(404, "no handler for route"),
    };
    match (head, tail, ctx.op) {
        ("health", _, _) => {
            let status = if state.sealed { 503 } else { 200 };
            Response::json(
                status,
                &json!({
                    "initialized": true, "sealed": state.sealed, "standby": false, "performance_standby": false,
                    "replication_performance_mode": "disabled", "replication_dr_mode": "disabled",
                    "server_time_utc": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
                    "version": VERSION, "cluster_name": "secretsync-testbed", "cluster_id": "00000000-0000-0000-0000-000000000001",
                }),
            )
        }
        ("seal-status", _, _) => Response::json(200, &seal_status(state)),
        ("seal", _, Op::Write) => {
            state.sealed = true;
            Response::no_content()
        }
        ("unseal", _, Op::Write) => {
            state.sealed = false;
            Response::json(200, &seal_status(state))
        }
        ("mounts", "", Op::Read) => {
            let all: Map<String, Value> = visible_mounts(state, &ctx.ns)
                .map(|key| {
                    let local = &key[ctx.ns.len()..];
                    (local.to_owned(), state.mounts[key].info(local))
                })
                .collect();
            let mut body = super::envelope(Some(Value::Object(all.clone())), None);
            if let Value::Object(top) = &mut body {
                top.extend(all);
            }
            Response::json(200, &body)
        }
        ("mounts", mount, Op::Write) if !mount.is_empty() => enable_mount(state, ctx, mount),
        ("mounts", mount, Op::Delete) if !mount.is_empty() => {
            state.mounts.remove(&format!("{}{}/", ctx.ns, mount.trim_matches('/')));
            Response::no_content()
        }
        ("internal", "ui/mounts", Op::Read) => {
            let secret: Map<String, Value> = visible_mounts(state, &ctx.ns)
                .map(|key| {
                    let local = &key[ctx.ns.len()..];
                    (local.to_owned(), state.mounts[key].info(local))
                })
                .collect();
            ok(json!({ "secret": secret, "auth": {} }))
        }
        ("internal", rest, Op::Read) if rest.starts_with("ui/mounts/") => {
            let target = rest.trim_start_matches("ui/mounts/");
            match find_mount(state, &ctx.ns, target) {
                Some((key, _)) => {
                    let local = key[ctx.ns.len()..].to_owned();
                    ok(state.mounts[&key].info(&local))
                }
                None => preflight_denied(path),
            }
        }
        ("auth", "", Op::Read) => {
            let all: Map<String, Value> = state
                .auth
                .iter()
                .filter_map(|(k, a)| {
                    k.strip_prefix(ctx.ns.as_str()).map(|local| {
                        (
                            local.to_owned(),
                            json!({ "type": a.kind, "accessor": a.accessor, "description": "" }),
                        )
                    })
                })
                .collect();
            ok(Value::Object(all))
        }
        ("auth", mount, Op::Write) if !mount.is_empty() => {
            let body = match ctx.body() {
                Ok(b) => b,
                Err(e) => return e,
            };
            let kind = body["type"].as_str().unwrap_or_default().to_owned();
            if !["approle", "kubernetes", "userpass"].contains(&kind.as_str()) {
                return error(400, &format!("plugin not found in the catalog: {kind}"));
            }
            let key = format!("{}{}/", ctx.ns, mount.trim_matches('/'));
            if state.auth.contains_key(&key) {
                return error(400, &format!("path is already in use at {}/", mount.trim_matches('/')));
            }
            let accessor = state.id(&format!("auth_{kind}_"));
            state.auth.insert(
                key,
                AuthMount {
                    kind,
                    accessor,
                    approle_roles: Default::default(),
                    k8s_roles: Default::default(),
                },
            );
            Response::no_content()
        }
        ("auth", mount, Op::Delete) if !mount.is_empty() => {
            state.auth.remove(&format!("{}{}/", ctx.ns, mount.trim_matches('/')));
            Response::no_content()
        }
        ("policies", rest, op) if rest.starts_with("acl/") => policy(state, ctx, rest.trim_start_matches("acl/"), op),
        ("policy", name, op) if !name.is_empty() => policy(state, ctx, name, op),
        ("namespaces", "", Op::List) => {
            let keys: Vec<String> = state
                .namespaces
                .iter()
                .filter_map(|n| n.strip_prefix(ctx.ns.as_str()))
                .filter(|n| !n.is_empty() && n.trim_end_matches('/').split('/').count() == 1)
                .map(str::to_owned)
                .collect();
            if keys.is_empty() {
                super::not_found()
            } else {
                ok(json!({ "keys": keys }))
            }
        }
        ("namespaces", name, Op::Write) if !name.is_empty() => {
            let full = format!("{}{}/", ctx.ns, name.trim_matches('/'));
            state.namespaces.insert(full.clone());
            ok(json!({ "id": name, "path": full, "custom_metadata": {} }))
        }
        ("namespaces", name, Op::Delete) if !name.is_empty() => {
            let full = format!("{}{}/", ctx.ns, name.trim_matches('/'));
            state.namespaces.remove(&full);
            state.mounts.retain(|k, _| !k.starts_with(&full));
            state.auth.retain(|k, _| !k.starts_with(&full));
            Response::no_content()
        }
        _ => error(404, &format!("no handler for route \"{path}\". route entry not found.")),
    }
}

fn enable_mount(state: &mut State, ctx: &Ctx<'_>, mount: &str) -> Response {
    let body = match ctx.body() {
        Ok(b) => b,
        Err(e) => return e,
    };
    let version = match (
        body["type"].as_str().unwrap_or_default(),
        body["options"]["version"].as_str(),
    ) {
        ("kv-v2", _) | ("kv", Some("2")) => 2,
        ("kv", None | Some("1" | "")) => 1,
        (kind, _) => return error(400, &format!("plugin not found in the catalog: {kind}")),
    };
    let local = format!("{}/", mount.trim_matches('/'));
    let key = format!("{}{local}", ctx.ns);
    if let Some(existing) = state
        .mounts
        .keys()
        .find(|m| m.starts_with(&key) || key.starts_with(m.as_str()))
    {
        return error(
            400,
            &format!(
                "path is already in use at {}",
                &existing[ctx.ns.len().min(existing.len())..]
            ),
        );
    }
    let accessor = state.id("kv_");
    let description = body["description"].as_str().unwrap_or_default().to_owned();
    state.mounts.insert(key, Mount::new(version, description, accessor));
    Response::no_content()
}

fn policy(state: &mut State, ctx: &Ctx<'_>, name: &str, op: Op) -> Response {
    match op {
        Op::Read => match state.policies.get(name) {
            Some(p) => ok(json!({ "name": name, "policy": p.text, "rules": p.text })),
            None => super::not_found(),
        },
        Op::Write => {
            let body = match ctx.body() {
                Ok(b) => b,
                Err(e) => return e,
            };
            let text = body["policy"]
                .as_str()
                .or_else(|| body["rules"].as_str())
                .unwrap_or_default();
            match Policy::parse(text) {
                Ok(p) => {
                    state.policies.insert(name.to_owned(), p);
                    Response::no_content()
                }
                Err(e) => error(400, &format!("failed to parse policy: {e}")),
            }
        }
        Op::Delete => {
            state.policies.remove(name);
            Response::no_content()
        }
        Op::List => ok(json!({ "keys": state.policies.keys().collect::<Vec<_>>() })),
    }
}
