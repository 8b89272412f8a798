//! `auth/`: the token store, AppRole and Kubernetes auth methods.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use serde_json::{Value, json};

use super::state::{AppRole, KubernetesRole, State, Token, parse_duration, string_list};
use super::{Ctx, Op, denied, error, ok};
use crate::http::Response;

/// Whether this is a login call (which needs no token): `auth/<approle|kubernetes mount>/login`.
pub(crate) fn is_login(state: &State, ctx: &Ctx<'_>) -> bool {
    ctx.path
        .strip_prefix("auth/")
        .and_then(|p| p.strip_suffix("/login"))
        .is_some_and(|mount| {
            state
                .auth
                .get(&format!("{}{mount}/", ctx.ns))
                .is_some_and(|a| a.kind == "approle" || a.kind == "kubernetes")
        })
}

fn auth_block(id: &str, token: &Token) -> Value {
    json!({
        "client_token": id,
        "accessor": token.accessor,
        "policies": token.policies,
        "token_policies": token.policies,
        "identity_policies": null,
        "metadata": token.meta,
        "lease_duration": token.ttl.map_or(0, |t| t.as_secs()),
        "renewable": token.renewable,
        "entity_id": "",
        "token_type": "service",
        "orphan": true,
        "mfa_requirement": null,
        "num_uses": 0,
    })
}

fn login_response(id: &str, token: &Token) -> Response {
    Response::json(200, &super::envelope(None, Some(auth_block(id, token))))
}

fn with_default(mut policies: Vec<String>) -> Vec<String> {
    if !policies.iter().any(|p| p == "default") {
        policies.insert(0, "default".to_owned());
    }
    policies
}

pub(crate) fn handle(state: &mut State, ctx: &Ctx<'_>) -> Response {
    let rest = ctx.path.trim_start_matches("auth/");
    if let Some(token_path) = rest.strip_prefix("token/") {
        return token(state, ctx, token_path);
    }
    let Some((mount, endpoint)) = state
        .auth
        .keys()
        .filter_map(|k| k.strip_prefix(ctx.ns.as_str()))
        .find_map(|local| {
            let local = local.trim_end_matches('/');
            rest.strip_prefix(local)
                .and_then(|e| e.strip_prefix('/').or((e.is_empty()).then_some("")))
                .map(|e| (local.to_owned(), e.to_owned()))
        })
    else {
        return error(
            404,
            &format!("no handler for route \"{}\". route entry not found.", ctx.path),
        );
    };
    let key = format!("{}{mount}/", ctx.ns);
    let kind = state.auth[&key].kind.clone();
    let body = if ctx.op == Op::Write {
        match ctx.body() {
            Ok(b) => b,
            Err(e) => return e,
        }
    } else {
        Value::Null
    };
    match kind.as_str() {
        "approle" => approle(state, &key, &endpoint, ctx.op, &body),
        "kubernetes" => kubernetes(state, &key, &endpoint, ctx.op, &body),
        _ => error(404, "no handler for route"),
    }
}

fn token(state: &mut State, ctx: &Ctx<'_>, path: &str) -> Response {
    let caller = ctx
        .req
        .header("x-vault-token")
        .map(str::to_owned)
        .or_else(|| {
            ctx.req
                .header("authorization")
                .and_then(|h| h.strip_prefix("Bearer "))
                .map(str::to_owned)
        })
        .unwrap_or_default();
    let body = if ctx.op == Op::Write {
        match ctx.body() {
            Ok(b) => b,
            Err(e) => return e,
        }
    } else {
        Value::Null
    };
    match (path, ctx.op) {
        ("lookup-self", Op::Read) | ("lookup", Op::Write) => {
            let id = if path == "lookup" {
                body["token"].as_str().unwrap_or_default().to_owned()
            } else {
                caller
            };
            let Some(t) = state.tokens.get(&id).filter(|t| t.live()) else {
                return error(403, "bad token");
            };
            ok(json!({
                "accessor": t.accessor, "creation_time": 0, "creation_ttl": t.ttl.map_or(0, |d| d.as_secs()),
                "display_name": t.display_name, "entity_id": "", "expire_time": if t.expires.is_some() { Value::String(crate::time::now_rfc3339()) } else { Value::Null },
                "explicit_max_ttl": 0, "id": id, "issue_time": t.created, "meta": t.meta, "num_uses": 0, "orphan": true,
                "path": t.path, "policies": t.policies, "renewable": t.renewable, "ttl": t.remaining(), "type": "service",
            }))
        }
        ("renew-self", Op::Write) => {
            let Some(t) = state.tokens.get_mut(&caller) else {
                return denied();
            };
            if !t.renewable {
                return error(400, "lease is not renewable");
            }
            let increment = parse_duration(&body["increment"]).or(t.ttl).unwrap_or_default();
            t.expires = Some(std::time::Instant::now() + increment);
            t.ttl = Some(increment);
            let t = t.clone();
            login_response(&caller, &t)
        }
        ("revoke-self", Op::Write) => {
            state.tokens.remove(&caller);
            Response::no_content()
        }
        ("create" | "create-orphan", Op::Write) => {
            let mut policies = string_list(body.get("policies"));
            if policies.is_empty() {
                let parent = state
                    .tokens
                    .get(&caller)
                    .map(|t| t.policies.clone())
                    .unwrap_or_default();
                policies = parent;
            } else if body["no_default_policy"].as_bool() != Some(true) {
                // As Vault does: explicit policies come with `default` unless asked not to.
                policies = with_default(policies);
            }
            let ttl = parse_duration(&body["ttl"]);
            let meta: BTreeMap<String, String> = body["meta"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
                        .collect()
                })
                .unwrap_or_default();
            let name = body["display_name"].as_str().unwrap_or("token");
            let (id, t) = state.issue(policies, ttl, name, "auth/token/create", meta);
            login_response(&id, &t)
        }
        _ => error(
            404,
            &format!("no handler for route \"auth/token/{path}\". route entry not found."),
        ),
    }
}

fn approle(state: &mut State, key: &str, endpoint: &str, op: Op, body: &Value) -> Response {
    let parts: Vec<&str> = endpoint.split('/').collect();
    match (parts.as_slice(), op) {
        (["login"], Op::Write) => {
            let (role_id, secret_id) = (
                body["role_id"].as_str().unwrap_or_default(),
                body["secret_id"].as_str().unwrap_or_default(),
            );
            let found = state.auth[key]
                .approle_roles
                .iter()
                .find(|(_, r)| r.role_id == role_id)
                .map(|(n, r)| (n.clone(), r.clone()));
            match found {
                Some((name, role)) if role.secret_ids.contains(secret_id) => {
                    let (id, t) = state.issue(
                        with_default(role.policies.clone()),
                        role.ttl,
                        &format!("approle-{name}"),
                        &format!("{key}login"),
                        BTreeMap::from([("role_name".to_owned(), name)]),
                    );
                    login_response(&id, &t)
                }
                _ => error(400, "invalid role or secret ID"),
            }
        }
        (["role"], Op::List) => ok(json!({ "keys": state.auth[key].approle_roles.keys().collect::<Vec<_>>() })),
        (["role", name], Op::Write) => {
            let role_id = state.id("");
            let auth = state.auth.get_mut(key).expect("exists");
            let role = auth.approle_roles.entry((*name).to_owned()).or_insert(AppRole {
                role_id,
                secret_ids: BTreeSet::new(),
                policies: Vec::new(),
                ttl: None,
            });
            let policies = [
                string_list(body.get("token_policies")),
                string_list(body.get("policies")),
            ]
            .concat();
            if !policies.is_empty() {
                role.policies = policies;
            }
            if let Some(ttl) = parse_duration(&body["token_ttl"]) {
                role.ttl = Some(ttl);
            }
            Response::no_content()
        }
        (["role", name], Op::Read) => match state.auth[key].approle_roles.get(*name) {
            Some(r) => ok(json!({ "token_policies": r.policies, "token_ttl": r.ttl.map_or(0, |t| t.as_secs()) })),
            None => super::not_found(),
        },
        (["role", name, "role-id"], Op::Read) => match state.auth[key].approle_roles.get(*name) {
            Some(r) => ok(json!({ "role_id": r.role_id })),
            None => super::not_found(),
        },
        (["role", name, "role-id"], Op::Write) => {
            match state.auth.get_mut(key).expect("exists").approle_roles.get_mut(*name) {
                Some(r) => {
                    r.role_id = body["role_id"].as_str().unwrap_or_default().to_owned();
                    Response::no_content()
                }
                None => super::not_found(),
            }
        }
        (["role", name, "secret-id"], Op::Write) => {
            let secret_id = state.id("");
            let accessor = state.id("");
            match state.auth.get_mut(key).expect("exists").approle_roles.get_mut(*name) {
                Some(r) => {
                    r.secret_ids.insert(secret_id.clone());
                    ok(
                        json!({ "secret_id": secret_id, "secret_id_accessor": accessor, "secret_id_ttl": 0, "secret_id_num_uses": 0 }),
                    )
                }
                None => error(400, &format!("role \"{name}\" does not exist")),
            }
        }
        (["role", name], Op::Delete) => {
            state.auth.get_mut(key).expect("exists").approle_roles.remove(*name);
            Response::no_content()
        }
        _ => error(404, "no handler for route"),
    }
}

/// The service account (namespace, name) a Kubernetes JWT names, from its claims (legacy or
/// projected tokens). The signature is not checked: the emulator trusts the token's claims.
fn service_account(jwt: &str) -> Option<(String, String)> {
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    if let (Some(ns), Some(name)) = (
        claims["kubernetes.io/serviceaccount/namespace"].as_str(),
        claims["kubernetes.io/serviceaccount/service-account.name"].as_str(),
    ) {
        return Some((ns.to_owned(), name.to_owned()));
    }
    if let (Some(ns), Some(name)) = (
        claims["kubernetes.io"]["namespace"].as_str(),
        claims["kubernetes.io"]["serviceaccount"]["name"].as_str(),
    ) {
        return Some((ns.to_owned(), name.to_owned()));
    }
    let sub = claims["sub"].as_str()?.strip_prefix("system:serviceaccount:")?;
    let (ns, name) = sub.split_once(':')?;
    Some((ns.to_owned(), name.to_owned()))
}

fn bound(allowed: &[String], value: &str) -> bool {
    allowed.iter().any(|a| a == "*" || a == value)
}

fn kubernetes(state: &mut State, key: &str, endpoint: &str, op: Op, body: &Value) -> Response {
    let parts: Vec<&str> = endpoint.split('/').collect();
    match (parts.as_slice(), op) {
        (["config"], Op::Write) => Response::no_content(),
        (["config"], Op::Read) => {
            ok(json!({ "kubernetes_host": "https://kubernetes.default.svc", "disable_iss_validation": true }))
        }
        (["role", name], Op::Write) => {
            let role = KubernetesRole {
                service_accounts: string_list(body.get("bound_service_account_names")),
                namespaces: string_list(body.get("bound_service_account_namespaces")),
                policies: [
                    string_list(body.get("token_policies")),
                    string_list(body.get("policies")),
                ]
                .concat(),
                ttl: parse_duration(&body["token_ttl"]).or_else(|| parse_duration(&body["ttl"])),
            };
            state
                .auth
                .get_mut(key)
                .expect("exists")
                .k8s_roles
                .insert((*name).to_owned(), role);
            Response::no_content()
        }
        (["login"], Op::Write) => {
            let role_name = body["role"].as_str().unwrap_or_default();
            let Some(role) = state.auth[key].k8s_roles.get(role_name).cloned() else {
                return error(400, &format!("invalid role name \"{role_name}\""));
            };
            let Some((ns, name)) = service_account(body["jwt"].as_str().unwrap_or_default()) else {
                return error(403, "permission denied");
            };
            if !bound(&role.service_accounts, &name) {
                return error(403, "service account name not authorized");
            }
            if !bound(&role.namespaces, &ns) {
                return error(403, "namespace not authorized");
            }
            let meta = BTreeMap::from([
                ("role".to_owned(), role_name.to_owned()),
                ("service_account_name".to_owned(), name),
                ("service_account_namespace".to_owned(), ns),
            ]);
            let (id, t) = state.issue(
                with_default(role.policies),
                role.ttl,
                &format!("kubernetes-{role_name}"),
                &format!("{key}login"),
                meta,
            );
            login_response(&id, &t)
        }
        _ => error(404, "no handler for route"),
    }
}
