//! An emulator of the part of HashiCorp Vault's HTTP API secretsync uses, built from Vault's API
//! documentation because no Vault binary can be installed from the registries this project
//! reaches. Where Docker runs, `docker-compose.test.yml` offers real Vault for the same tests.
//!
//! Covered, with Vault's status codes, JSON shapes and `{"errors":[…]}` bodies:
//! `sys/health`, `sys/seal-status`, `sys/seal`, `sys/unseal`, `sys/mounts` (kv v1 and v2),
//! `sys/internal/ui/mounts[/<path>]`, `sys/auth`, `sys/policies/acl` (and `sys/policy`),
//! `sys/namespaces`; KV v1 read/write/delete/list; KV v2 `data` (versions, `?version=`, CAS),
//! `metadata` (read, write, patch, list, delete), `delete`, `undelete`, `destroy`, `config`;
//! `LIST` and `GET ?list=true`; tokens by `X-Vault-Token` or `Authorization: Bearer`,
//! `auth/token/{lookup-self,renew-self,revoke-self,create}`; AppRole; Kubernetes login (the
//! JWT's claims are checked against the role, its signature is not); namespaces by
//! `X-Vault-Namespace` and by path prefix; ACL policies; a sealed mode; token expiry.
//!
//! Not Vault API, for tests only: `POST /__emulator/expire-token {"token": …}` makes a token
//! expire now (so tests need not wait for a TTL); `POST /__emulator/expire-tokens` expires every
//! token but the root token (for a token the test never sees, such as one from a login).
//!
//! Simplifications (documented so tests do not rely on them): policies are global by name and
//! their paths are matched against the namespace-qualified path; tokens are valid in every
//! namespace; writes need `create` or `update`, whichever the policy grants.

mod acl;
mod auth;
mod kv;
mod state;
mod sys;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use hyper::Method;
use serde_json::{Value, json};

use crate::http::{Request, Response, bind, serve};
use state::State;

/// A running emulator.
#[derive(Debug, Clone)]
pub struct RunningVault {
    /// Where it listens (`http://{addr}`).
    pub addr: SocketAddr,
    /// The root token.
    pub root_token: String,
}

/// The emulator's shared state.
#[derive(Debug)]
pub struct Emulator {
    state: Mutex<State>,
}

/// Starts an emulator on `addr` (loopback; port 0 for any free port) in the current runtime.
pub async fn start(addr: SocketAddr, root_token: &str) -> std::io::Result<RunningVault> {
    let listener = bind(addr).await?;
    let addr = listener.local_addr()?;
    let emulator = Arc::new(Emulator {
        state: Mutex::new(State::new(root_token)),
    });
    let handler = Arc::new(move |req: Request| {
        let emulator = Arc::clone(&emulator);
        async move { emulator.handle(&req) }
    });
    #[expect(clippy::disallowed_methods, reason = "a test server runs until the process ends")]
    tokio::spawn(serve(listener, handler));
    Ok(RunningVault {
        addr,
        root_token: root_token.to_owned(),
    })
}

/// Vault's standard response envelope.
pub(crate) fn envelope(data: Option<Value>, auth: Option<Value>) -> Value {
    json!({
        "request_id": "00000000-0000-0000-0000-000000000000",
        "lease_id": "",
        "renewable": false,
        "lease_duration": 0,
        "data": data,
        "wrap_info": null,
        "warnings": null,
        "auth": auth,
    })
}

/// `200 {data: …}`.
pub(crate) fn ok(data: Value) -> Response {
    Response::json(200, &envelope(Some(data), None))
}

/// `{"errors": [message]}` with `status`.
pub(crate) fn error(status: u16, message: &str) -> Response {
    Response::json(status, &json!({ "errors": [message] }))
}

/// Vault's 404 for a missing secret or an empty listing: `{"errors": []}`.
pub(crate) fn not_found() -> Response {
    Response::json(404, &json!({ "errors": [] }))
}

/// Vault's 403.
pub(crate) fn denied() -> Response {
    error(403, "1 error occurred:\n\t* permission denied\n\n")
}

/// What a request needs from the ACL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Read,
    List,
    Write,
    Delete,
}

impl Op {
    fn capabilities(self) -> &'static [&'static str] {
        match self {
            Self::Read => &["read"],
            Self::List => &["list"],
            Self::Write => &["create", "update", "patch"],
            Self::Delete => &["delete"],
        }
    }
}

/// A request after namespace resolution.
pub(crate) struct Ctx<'a> {
    pub(crate) req: &'a Request,
    /// Namespace, `""` or `a/b/`.
    pub(crate) ns: String,
    /// Path inside the namespace, without `/v1/` and surrounding slashes.
    pub(crate) path: String,
    pub(crate) op: Op,
    /// The caller's token, once authenticated.
    pub(crate) token: Option<state::Token>,
}

impl Ctx<'_> {
    pub(crate) fn body(&self) -> Result<Value, Response> {
        self.req.json().map_err(|e| error(400, &e))
    }
}

impl Emulator {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Handles one request.
    pub(crate) fn handle(&self, req: &Request) -> Response {
        if let Some(admin) = req.path.strip_prefix("/__emulator/") {
            return self.admin(admin, req);
        }
        let Some(raw) = req.path.strip_prefix("/v1/") else {
            return error(404, "no handler for route");
        };
        let listing = req.method.as_str() == "LIST" || req.query("list").is_some_and(|v| v == "true");
        let op = if listing {
            Op::List
        } else {
            match req.method {
                Method::GET | Method::HEAD => Op::Read,
                Method::DELETE => Op::Delete,
                _ => Op::Write,
            }
        };
        let mut state = self.lock();
        let header_ns = req.header("x-vault-namespace").unwrap_or("").trim_matches('/');
        let mut ns = if header_ns.is_empty() {
            String::new()
        } else {
            format!("{header_ns}/")
        };
        if !ns.is_empty() && !state.namespaces.contains(&ns) {
            return error(403, &format!("namespace not found: {ns}"));
        }
        let mut path = raw.trim_matches('/').to_owned();
        while let Some((first, rest)) = path.split_once('/') {
            let candidate = format!("{ns}{first}/");
            if !state.namespaces.contains(&candidate) {
                break;
            }
            ns = candidate;
            path = rest.to_owned();
        }
        let mut ctx = Ctx {
            req,
            ns,
            path,
            op,
            token: None,
        };

        let unauthenticated = ["sys/health", "sys/seal-status", "sys/unseal"];
        if unauthenticated.contains(&ctx.path.as_str()) {
            return sys::handle(&mut state, &ctx);
        }
        if state.sealed {
            return error(503, "Vault is sealed");
        }
        if auth::is_login(&state, &ctx) {
            return auth::handle(&mut state, &ctx);
        }
        let presented = req.header("x-vault-token").map(str::to_owned).or_else(|| {
            req.header("authorization")
                .and_then(|h| h.strip_prefix("Bearer "))
                .map(str::to_owned)
        });
        let Some(token) = presented
            .and_then(|t| state.tokens.get(&t).cloned())
            .filter(state::Token::live)
        else {
            return denied();
        };
        // Granted to every token (Vault's default policy).
        let self_service = [
            "auth/token/lookup-self",
            "auth/token/renew-self",
            "auth/token/revoke-self",
            "sys/capabilities-self",
        ];
        let policies: Vec<&acl::Policy> = token.policies.iter().filter_map(|p| state.policies.get(p)).collect();
        if let Some(rest) = ctx.path.strip_prefix("sys/internal/ui/mounts/") {
            // Vault answers the mount preflight to any token that may do anything in the mount.
            let visible = token.is_root()
                || find_mount(&state, &ctx.ns, rest).is_some_and(|(key, _)| acl::any_access_under(&policies, &key));
            if !visible {
                return sys::preflight_denied(&ctx.path);
            }
        } else if !token.is_root() && !self_service.contains(&ctx.path.as_str()) {
            // Vault checks listings against the folder path, with its trailing slash.
            let slash = if ctx.op == Op::List { "/" } else { "" };
            let acl_path = format!("{}{}{slash}", ctx.ns, ctx.path);
            if !acl::allowed(&policies, &acl_path, ctx.op.capabilities()) {
                return denied();
            }
        }
        if ctx.path == "sys/capabilities-self" {
            return sys::capabilities_self(&ctx, &token, &policies);
        }
        ctx.token = Some(token);
        if ctx.path.starts_with("sys/") {
            return sys::handle(&mut state, &ctx);
        }
        if ctx.path.starts_with("auth/") {
            return auth::handle(&mut state, &ctx);
        }
        kv::handle(&mut state, &ctx)
    }

    fn admin(&self, path: &str, req: &Request) -> Response {
        let mut state = self.lock();
        match path {
            "expire-token" => {
                let token = req
                    .json()
                    .ok()
                    .and_then(|b| b["token"].as_str().map(str::to_owned))
                    .unwrap_or_default();
                match state.tokens.get_mut(&token) {
                    Some(t) => {
                        t.expires = Some(std::time::Instant::now());
                        Response::no_content()
                    }
                    None => error(404, "no such token"),
                }
            }
            // Every token but the root token expires now (a long run outliving its login).
            "expire-tokens" => {
                let now = std::time::Instant::now();
                for token in state.tokens.values_mut().filter(|t| !t.is_root()) {
                    token.expires = Some(now);
                }
                Response::no_content()
            }
            _ => error(404, "no such emulator control"),
        }
    }
}

/// Finds the mount owning `path` in namespace `ns` (longest prefix; mounts of child
/// namespaces are not visible), returning its key and the path inside it.
pub(crate) fn find_mount(state: &State, ns: &str, path: &str) -> Option<(String, String)> {
    let full = format!("{ns}{path}/");
    visible_mounts(state, ns)
        .filter(|m| full.starts_with(m.as_str()))
        .max_by_key(|m| m.len())
        .map(|m| (m.clone(), full[m.len()..].trim_end_matches('/').to_owned()))
}

/// The mount keys namespace `ns` sees: its own, not those of its child namespaces.
pub(crate) fn visible_mounts<'s>(state: &'s State, ns: &'s str) -> impl Iterator<Item = &'s String> {
    state.mounts.keys().filter(move |m| {
        m.starts_with(ns)
            && !state
                .namespaces
                .iter()
                .any(|n| n.len() > ns.len() && n.starts_with(ns) && m.starts_with(n.as_str()))
    })
}

/// Immediate children of `prefix` among `keys`, Vault style: `name` for a key, `name/` for a
/// folder; sorted.
pub(crate) fn children<'k>(keys: impl Iterator<Item = &'k String>, prefix: &str) -> Vec<String> {
    let folder = if prefix.is_empty() {
        String::new()
    } else {
        format!("{prefix}/")
    };
    let mut out: Vec<String> = keys
        .filter_map(|k| k.strip_prefix(folder.as_str()))
        .filter(|rest| !rest.is_empty())
        .map(|rest| match rest.split_once('/') {
            Some((seg, _)) => format!("{seg}/"),
            None => rest.to_owned(),
        })
        .collect();
    out.sort();
    out.dedup();
    out
}
