//! KV secrets engines, version 1 and 2.

use serde_json::{Map, Value, json};

use super::state::{Entry, Mount, State, Version, custom_value};
use super::{Ctx, Op, error, find_mount, not_found, ok};
use crate::http::Response;
use crate::time::now_rfc3339;

/// Default number of versions kept per key (Vault's mount default).
const DEFAULT_MAX_VERSIONS: u64 = 10;

pub(crate) fn handle(state: &mut State, ctx: &Ctx<'_>) -> Response {
    let Some((mount_key, rest)) = find_mount(state, &ctx.ns, &ctx.path) else {
        return error(
            404,
            &format!("no handler for route \"{}\". route entry not found.", ctx.path),
        );
    };
    let mount = state.mounts.get_mut(&mount_key).expect("found above");
    if mount.version == 1 {
        v1(mount, ctx, &rest)
    } else {
        v2(mount, ctx, &rest)
    }
}

fn object(body: &Value, what: &str) -> Result<Map<String, Value>, Response> {
    match body {
        Value::Object(map) => Ok(map.clone()),
        _ => Err(error(400, &format!("{what} must be a JSON object"))),
    }
}

fn list<'k>(keys: impl Iterator<Item = &'k String>, prefix: &str) -> Response {
    let found = super::children(keys, prefix);
    if found.is_empty() {
        not_found()
    } else {
        ok(json!({ "keys": found }))
    }
}

fn v1(mount: &mut Mount, ctx: &Ctx<'_>, path: &str) -> Response {
    match ctx.op {
        Op::List => list(mount.v1.keys(), path),
        Op::Read => match mount.v1.get(path) {
            Some(data) => ok(Value::Object(data.clone())),
            None => not_found(),
        },
        Op::Write => {
            if path.is_empty() {
                return error(405, "cannot write to the root of a mount");
            }
            let data = match ctx.body().and_then(|b| object(&b, "the secret")) {
                Ok(d) => d,
                Err(e) => return e,
            };
            mount.v1.insert(path.to_owned(), data);
            Response::no_content()
        }
        Op::Delete => {
            mount.v1.remove(path);
            Response::no_content()
        }
    }
}

fn versions_of(body: &Value) -> Result<Vec<u64>, Response> {
    let versions: Vec<u64> = body["versions"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default();
    if versions.is_empty() {
        Err(error(400, "no version number provided"))
    } else {
        Ok(versions)
    }
}

fn v2(mount: &mut Mount, ctx: &Ctx<'_>, rest: &str) -> Response {
    let (section, path) = rest.split_once('/').unwrap_or((rest, ""));
    let body = match ctx.op {
        Op::Write => match ctx.body() {
            Ok(b) => b,
            Err(e) => return e,
        },
        _ => Value::Null,
    };
    let now = now_rfc3339();
    match (section, ctx.op) {
        ("config", Op::Read) => ok(
            json!({ "cas_required": mount.cas_required, "delete_version_after": "0s", "max_versions": mount.max_versions }),
        ),
        ("config", Op::Write) => {
            if let Some(v) = body["max_versions"].as_u64() {
                mount.max_versions = v;
            }
            if let Some(v) = body["cas_required"].as_bool() {
                mount.cas_required = v;
            }
            Response::no_content()
        }
        ("data", Op::Read) => read(mount, path, ctx.req.query("version")),
        ("data", Op::Write) => write(mount, path, &body, &now),
        ("data", Op::Delete) => {
            if let Some(entry) = mount.v2.get_mut(path) {
                let current = entry.current_version;
                if let Some(v) = entry.versions.get_mut(&current)
                    && v.deletion_time.is_empty()
                {
                    v.deletion_time = now;
                }
            }
            Response::no_content()
        }
        ("delete" | "undelete" | "destroy", Op::Write) => {
            let versions = match versions_of(&body) {
                Ok(v) => v,
                Err(e) => return e,
            };
            if let Some(entry) = mount.v2.get_mut(path) {
                for n in versions {
                    let Some(v) = entry.versions.get_mut(&n) else { continue };
                    match section {
                        "delete" if v.deletion_time.is_empty() => v.deletion_time.clone_from(&now),
                        "undelete" if !v.destroyed => v.deletion_time.clear(),
                        "destroy" => {
                            v.destroyed = true;
                            v.data = None;
                        }
                        _ => {}
                    }
                }
            }
            Response::no_content()
        }
        ("metadata", Op::List) => list(mount.v2.keys(), path),
        ("metadata", Op::Read) => match mount.v2.get(path) {
            Some(entry) => ok(metadata(entry)),
            None => not_found(),
        },
        ("metadata", Op::Write) => {
            let entry = mount.v2.entry(path.to_owned()).or_insert_with(|| Entry::new(&now));
            if let Some(v) = body["max_versions"].as_u64() {
                entry.max_versions = v;
            }
            if let Some(v) = body["cas_required"].as_bool() {
                entry.cas_required = v;
            }
            if let Some(custom) = body.get("custom_metadata").filter(|c| !c.is_null()) {
                let Value::Object(map) = custom else {
                    return error(400, "custom_metadata must be an object");
                };
                let patch = ctx.req.method.as_str() == "PATCH";
                if !patch {
                    entry.custom_metadata.clear();
                }
                for (k, v) in map {
                    match v {
                        Value::String(s) => {
                            entry.custom_metadata.insert(k.clone(), s.clone());
                        }
                        Value::Null if patch => {
                            entry.custom_metadata.remove(k);
                        }
                        _ => return error(400, "custom_metadata values must be strings"),
                    }
                }
            }
            entry.updated_time = now;
            Response::no_content()
        }
        ("metadata", Op::Delete) => {
            mount.v2.remove(path);
            Response::no_content()
        }
        _ => error(
            404,
            "Invalid path for a versioned K/V secrets engine. See the API docs for the appropriate API endpoints to use. If using the Vault CLI, use 'vault kv get' for this operation.",
        ),
    }
}

fn read(mount: &Mount, path: &str, version: Option<&str>) -> Response {
    let Some(entry) = mount.v2.get(path) else {
        return not_found();
    };
    let number = match version.filter(|v| !v.is_empty() && *v != "0") {
        Some(v) => match v.parse::<u64>() {
            Ok(n) => n,
            Err(_) => return error(400, "version must be a number"),
        },
        None => entry.current_version,
    };
    let Some(found) = entry.versions.get(&number) else {
        return not_found();
    };
    let meta = found.metadata(number, &entry.custom_metadata);
    if found.readable() {
        ok(json!({ "data": found.data, "metadata": meta }))
    } else {
        // Vault answers a deleted or destroyed version with 404 and the metadata.
        Response::json(
            404,
            &super::envelope(Some(json!({ "data": null, "metadata": meta })), None),
        )
    }
}

fn write(mount: &mut Mount, path: &str, body: &Value, now: &str) -> Response {
    if path.is_empty() {
        return error(405, "cannot write to the root of a mount");
    }
    let data = match object(&body["data"], "`data`") {
        Ok(d) => d,
        Err(e) => return e,
    };
    let cas = body["options"]["cas"].as_u64();
    let mount_cas = mount.cas_required;
    let mount_max = mount.max_versions;
    let entry = mount.v2.entry(path.to_owned()).or_insert_with(|| Entry::new(now));
    if (mount_cas || entry.cas_required) && cas.is_none() {
        return error(400, "check-and-set parameter required for this call");
    }
    if let Some(cas) = cas
        && cas != entry.current_version
    {
        return error(400, "check-and-set parameter did not match the current version");
    }
    let version = entry.current_version + 1;
    entry.versions.insert(
        version,
        Version {
            data: Some(data),
            created_time: now.to_owned(),
            deletion_time: String::new(),
            destroyed: false,
        },
    );
    entry.current_version = version;
    entry.updated_time = now.to_owned();
    let max = [entry.max_versions, mount_max]
        .into_iter()
        .find(|m| *m > 0)
        .unwrap_or(DEFAULT_MAX_VERSIONS);
    while entry.versions.len() as u64 > max {
        let oldest = *entry.versions.keys().next().expect("not empty");
        entry.versions.remove(&oldest);
    }
    entry.oldest_version = entry.versions.keys().next().copied().unwrap_or(0);
    ok(json!({
        "created_time": now,
        "custom_metadata": custom_value(&entry.custom_metadata),
        "deletion_time": "",
        "destroyed": false,
        "version": version,
    }))
}

fn metadata(entry: &Entry) -> Value {
    let versions: Map<String, Value> = entry
        .versions
        .iter()
        .map(|(n, v)| {
            (
                n.to_string(),
                json!({ "created_time": v.created_time, "deletion_time": v.deletion_time, "destroyed": v.destroyed }),
            )
        })
        .collect();
    json!({
        "cas_required": entry.cas_required,
        "created_time": entry.created_time,
        "current_version": entry.current_version,
        "custom_metadata": custom_value(&entry.custom_metadata),
        "delete_version_after": "0s",
        "max_versions": entry.max_versions,
        "oldest_version": entry.oldest_version,
        "updated_time": entry.updated_time,
        "versions": versions,
    })
}
