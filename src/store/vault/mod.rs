//! HashiCorp Vault KV (v1 and v2) as a source, a target and a merge store.
//!
//! Listing is a breadth-first walk (`walk.rs`) with bounded concurrency, depth and count limits
//! and a visited set; it either completes or fails, never returning part of a tree (deletes are
//! planned from it). A source reads each secret as soon as the walk finds it, in the same
//! concurrency slots, so a deep tree's listing and the reads overlap. Keys Vault returns with
//! `..` or NUL are errors; `//` is normalised. KV v2
//! secrets whose latest version is deleted or destroyed are skipped when reading a source and
//! reported. Values are JSON objects, kept exactly (numbers included).
//!
//! Ownership (`ownership.rs`): on KV v2 in each secret's `custom_metadata` (`managed-by: secretsync`,
//! `secretsync:target: <target>`); on KV v1 in a manifest secret `.secretsync-manifest` next to
//! the secrets. Only a secret owned by the caller can be deleted. Every KV v2 write uses
//! check-and-set against the version last read, so two runs cannot silently interleave.
//! Deleting (from a target or the merge store) is a soft delete on KV v2: the history stays and
//! `vault kv undelete` recovers it. The merge store is `merge_store.rs`; the connection (settings,
//! login, raw API, error classes) is `connection/`.

mod check;
mod connection;
mod merge_store;
mod ownership;
mod walk;

pub use check::check_pipeline;

use connection::VaultError;
pub use merge_store::VaultMergeStore;
use ownership::Seen;

pub(crate) use connection::{TOKEN_HINT, VaultConnection, VaultEndpoint, VaultLogin, endpoint};

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures_util::stream::{self, StreamExt};
use serde_json::{Map, Value};
use vaultrs::api::kv2::requests::{SetSecretMetadataRequest, SetSecretRequestOptions};

use super::{
    Capabilities, EntryMeta, ErrorClass, Fetched, Listing, OWNER_TAG, OWNER_VALUE, Owner, Receipt, Store, StoreError,
    TARGET_TAG, WritableStore,
};
use crate::model::{SecretPath, SecretSet, SecretValue};

/// Name of the KV v1 ownership manifest and of the merge-store commit marker.
const MANIFEST: &str = ".secretsync-manifest";
const MERGED_MARKER: &str = ".secretsync-merged";
/// A secret name standing for "any secret in this folder" when asking for capabilities.
const PROBE: &str = "secretsync-capability-probe";

/// What a Vault store is used as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// Read only; ownership not tracked.
    Source,
    /// Synced into; ownership tracked; deletes are soft.
    Target,
    /// A target's merged result; deletes are soft too (history is kept).
    Merge,
}

/// Listing limits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) max_depth: u64,
    pub(crate) max_secrets: u64,
    pub(crate) concurrency: usize,
}

/// A Vault KV location.
pub struct VaultStore {
    conn: Arc<VaultConnection>,
    mount: String,
    /// KV engine version of the mount: 1 or 2.
    kv_version: u8,
    /// The folder (inside the mount) this store's paths are relative to.
    base: Option<String>,
    /// Subtrees to read (sources), relative to `base`; empty = everything.
    filters: Vec<SecretPath>,
    role: Role,
    limits: Limits,
    /// KV v2: what was last seen of each secret (version for check-and-set, owner to skip
    /// rewriting ownership that is already recorded).
    seen: Mutex<HashMap<SecretPath, Seen>>,
    /// KV v1: the ownership manifest as last read or written (one writer per store: the
    /// target's apply, and the lock keeps its read-modify-writes in order).
    manifest: tokio::sync::Mutex<Option<BTreeMap<String, String>>>,
    /// Sources: read each secret's `custom_metadata` as its labels (a `filter` asks for them).
    read_labels: bool,
}

impl std::fmt::Debug for VaultStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl VaultStore {
    pub(crate) fn new(
        conn: Arc<VaultConnection>,
        mount: &str,
        kv_version: u8,
        base: Option<String>,
        filters: Vec<SecretPath>,
        role: Role,
        limits: Limits,
    ) -> Self {
        let base = base.map(|b| b.trim_matches('/').to_owned()).filter(|b| !b.is_empty());
        Self {
            conn,
            mount: mount.trim_matches('/').to_owned(),
            kv_version,
            base,
            filters,
            role,
            limits,
            seen: Mutex::new(HashMap::new()),
            manifest: tokio::sync::Mutex::new(None),
            read_labels: false,
        }
    }

    /// A source that reads each secret's KV v2 `custom_metadata` as its labels (one metadata
    /// read per secret, made only when a `filter` names `custom_metadata`).
    #[must_use]
    pub(crate) fn reading_labels(mut self, read: bool) -> Self {
        debug_assert!(!read || self.kv_version == 2, "KV v1 has no custom metadata");
        self.read_labels = read && self.kv_version == 2;
        self
    }

    /// The path inside the mount of a store-relative path.
    fn full(&self, rel: &str) -> String {
        match (&self.base, rel.is_empty()) {
            (Some(base), true) => base.clone(),
            (Some(base), false) => format!("{base}/{rel}"),
            (None, _) => rel.to_owned(),
        }
    }

    /// The API path of a secret, for messages (`secret/data/app/db`).
    fn api_path(&self, full: &str, section: &str) -> String {
        let full = full.trim_matches('/');
        match (self.kv_version, full.is_empty()) {
            (2, true) => format!("{}/{section}", self.mount),
            (2, false) => format!("{}/{section}/{full}", self.mount),
            (_, true) => self.mount.clone(),
            (_, false) => format!("{}/{full}", self.mount),
        }
    }

    fn error(&self, err: &VaultError, doing: &str, path: Option<&SecretPath>) -> StoreError {
        let at = path.map(|p| format!(" `{p}`")).unwrap_or_default();
        let mut e = StoreError::new(
            err.class,
            format!("{}: cannot {doing}{at}: {}", self.describe(), err.summary()),
        );
        if let Some(p) = path {
            e = e.at(p);
        }
        e
    }

    /// Writes without check-and-set (manifest, markers, history records); returns the KV v2
    /// version written (`None` on KV v1).
    async fn write_raw(&self, rel: &str, data: &Value) -> Result<Option<u64>, VaultError> {
        let full = &self.full(rel);
        let what = self.api_path(full, "data");
        let (mount, v2) = (self.mount.as_str(), self.kv_version == 2);
        self.conn
            .call(&what, "update", |c| async move {
                if v2 {
                    vaultrs::kv2::set(&*c, mount, full, &data)
                        .await
                        .map(|m| Some(m.version))
                } else {
                    let map: HashMap<&str, &Value> = data
                        .as_object()
                        .map(|m| m.iter().map(|(k, v)| (k.as_str(), v)).collect())
                        .unwrap_or_default();
                    vaultrs::kv1::set(&*c, mount, full, &map).await.map(|()| None)
                }
            })
            .await
    }

    /// Writes a bookkeeping secret that must not exist yet: KV v2 with check-and-set 0, so a
    /// second writer gets a conflict (`Ok(None)` on KV v1, which has no check-and-set: the
    /// caller reads first).
    pub(super) async fn create_raw(&self, rel: &str, data: &Value) -> Result<Option<u64>, VaultError> {
        if self.kv_version != 2 {
            return self.write_raw(rel, data).await;
        }
        let full = &self.full(rel);
        let what = self.api_path(full, "data");
        let mount = self.mount.as_str();
        self.conn
            .call(&what, "create", |c| async move {
                let options = SetSecretRequestOptions { cas: 0 };
                vaultrs::kv2::set_with_options(&*c, mount, full, &data, options)
                    .await
                    .map(|m| Some(m.version))
            })
            .await
    }

    async fn read(&self, path: &SecretPath) -> Result<Option<SecretValue>, StoreError> {
        let full = &self.full(path.as_str());
        let what = self.api_path(full, "data");
        let (mount, v2) = (self.mount.as_str(), self.kv_version == 2);
        let result = self
            .conn
            .call(&what, "read", |c| async move {
                if v2 {
                    vaultrs::kv2::read::<Map<String, Value>>(&*c, mount, full).await
                } else {
                    vaultrs::kv1::get::<Map<String, Value>>(&*c, mount, full).await
                }
            })
            .await;
        match result {
            Ok(map) => Ok(Some(SecretValue::Json(map))),
            // Missing, or (KV v2) its latest version is deleted or destroyed.
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(self.error(&e, "read", Some(path))),
        }
    }
}

#[async_trait]
impl Store for VaultStore {
    fn describe(&self) -> String {
        let mut at = format!("vault:{}/{}", self.conn.describe(), self.mount);
        if let Some(base) = &self.base {
            at.push('/');
            at.push_str(base);
        }
        at
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            ownership: self.role != Role::Source,
            binary: false,
            hierarchical: false,
            soft_delete: self.kv_version == 2 && self.role != Role::Source,
            json_only: true,
        }
    }

    async fn list(&self) -> Result<Listing, StoreError> {
        let paths = self.walk().await?;
        let mut listing = Listing::default();
        match (self.role, self.kv_version) {
            (Role::Source, _) => {
                listing.entries = paths.into_iter().map(|p| (p, EntryMeta::unmanaged())).collect();
            }
            (_, 2) => {
                let metas: Vec<(SecretPath, Option<(Owner, bool, u64)>)> = stream::iter(paths)
                    .map(|p| async move {
                        let meta = self.metadata(&p).await?;
                        Ok::<_, StoreError>((p, meta))
                    })
                    .buffered(self.limits.concurrency.max(1))
                    .collect::<Vec<_>>()
                    .await
                    .into_iter()
                    .collect::<Result<_, _>>()?;
                for (path, meta) in metas {
                    if let Some((owner, deleted, _)) = meta {
                        listing.entries.insert(
                            path,
                            EntryMeta {
                                owner,
                                pending_deletion: deleted,
                                drift: None,
                                labels: None,
                            },
                        );
                    }
                }
            }
            _ => {
                let managed = self.read_manifest().await?;
                *self.manifest.lock().await = Some(managed.clone());
                for path in paths {
                    let meta = managed
                        .get(path.as_str())
                        .map_or_else(EntryMeta::unmanaged, |t| EntryMeta::owned_by(t));
                    listing.entries.insert(path, meta);
                }
            }
        }
        Ok(listing)
    }

    async fn get(&self, path: &SecretPath) -> Result<Option<SecretValue>, StoreError> {
        self.read(path).await
    }

    async fn get_many(&self, paths: &[SecretPath]) -> Result<Fetched, StoreError> {
        super::get_concurrently(paths, self.limits.concurrency, |p| async move { self.read(&p).await }).await
    }

    async fn read_all(&self) -> Result<(Listing, SecretSet), StoreError> {
        let (mut listing, fetched) = if self.role == Role::Source {
            // A source's listing needs no metadata, so its secrets are read while the walk goes on.
            let (paths, mut read_along) = self.walk_reading(true).await?;
            let mut fetched = Vec::with_capacity(paths.len());
            for path in &paths {
                let value = match read_along.remove(path) {
                    Some(value) => value?,
                    None => self.read(path).await?,
                };
                fetched.push((path.clone(), value.map(Arc::new)));
            }
            let mut listing = Listing {
                entries: paths.into_iter().map(|p| (p, EntryMeta::unmanaged())).collect(),
                ..Listing::default()
            };
            if self.read_labels {
                let paths: Vec<SecretPath> = listing.entries.keys().cloned().collect();
                let labels: Vec<(SecretPath, crate::filter::Labels)> = stream::iter(paths)
                    .map(|p| async move { Ok::<_, StoreError>((p.clone(), self.custom_metadata(&p).await?)) })
                    .buffered(self.limits.concurrency.max(1))
                    .collect::<Vec<_>>()
                    .await
                    .into_iter()
                    .collect::<Result<_, _>>()?;
                for (path, labels) in labels {
                    if let Some(meta) = listing.entries.get_mut(&path) {
                        meta.labels = Some(Arc::new(labels));
                    }
                }
            }
            (listing, fetched)
        } else {
            let mut listing = self.list().await?;
            // Secrets this store deleted itself (target, merge store) are known from the listing
            // and not worth a warning; a source only finds out when the read comes back empty.
            listing.entries.retain(|_, meta| !meta.pending_deletion);
            let paths: Vec<SecretPath> = listing.entries.keys().cloned().collect();
            let fetched = self.get_many(&paths).await?;
            (listing, fetched)
        };
        let mut set = SecretSet::new();
        for (path, value) in fetched {
            if let Some(v) = value {
                set.insert(path, v);
            } else {
                let full = &self.full(path.as_str());
                listing.notes.push(format!(
                    "{}: skipped `{}`: its latest version is deleted or destroyed (or it was deleted while being read)",
                    self.describe(),
                    self.api_path(full, "data")
                ));
                listing.entries.remove(&path);
            }
        }
        Ok((listing, set))
    }

    fn check_value(&self, path: &SecretPath, value: &SecretValue) -> Result<(), String> {
        if self.role != Role::Source && (path.as_str() == MANIFEST || path.as_str() == MERGED_MARKER) {
            return Err(format!("`{path}` is a name secretsync reserves in Vault stores"));
        }
        match value {
            SecretValue::Json(_) if self.role == Role::Source => Ok(()),
            SecretValue::Json(map) => match number_vault_would_change(map) {
                None => Ok(()),
                Some(at) => Err(format!(
                    "Vault keeps JSON numbers as 64-bit floating point, and the number at `{at}` in `{path}` has more digits than that holds (or is out of its range), so Vault would store a different number; write it as a string in the source"
                )),
            },
            other => Err(format!(
                "Vault KV holds JSON objects and `{path}` is a {} secret; store it as a JSON object in the source (for example {{\"value\": \"…\"}})",
                other.kind()
            )),
        }
    }
}

/// Where (`db.ports[2]`) the first number in `map` is that Vault would not store exactly, if any.
fn number_vault_would_change(map: &Map<String, Value>) -> Option<String> {
    fn walk(value: &Value, at: &mut String) -> bool {
        match value {
            Value::Number(n) => !crate::model::survives_float64(n),
            Value::Array(items) => items.iter().enumerate().any(|(i, item)| {
                let len = at.len();
                let _ = write!(at, "[{i}]");
                let found = walk(item, at);
                if !found {
                    at.truncate(len);
                }
                found
            }),
            Value::Object(map) => map.iter().any(|(key, item)| {
                let len = at.len();
                if !at.is_empty() {
                    at.push('.');
                }
                at.push_str(key);
                let found = walk(item, at);
                if !found {
                    at.truncate(len);
                }
                found
            }),
            _ => false,
        }
    }
    let mut at = String::new();
    map.iter()
        .any(|(key, value)| {
            at.clear();
            at.push_str(key);
            walk(value, &mut at)
        })
        .then_some(at)
}

#[async_trait]
impl WritableStore for VaultStore {
    /// Relies on the preceding `list` (or `get`): on KV v2 the version it saw (`Seen`) is the
    /// check-and-set version, so a secret changed since is refused instead of overwritten, and
    /// the owner it saw spares rewriting ownership already recorded (without a listing, `put`
    /// reads the metadata first); on KV v1 the manifest as last read, kept under a lock.
    /// Vault's request ids are not exposed by its client library: receipts name the KV
    /// operation and the version written.
    async fn put(&self, path: &SecretPath, value: &SecretValue, owner: &str) -> Result<Receipt, StoreError> {
        self.check_value(path, value)
            .map_err(|m| StoreError::new(ErrorClass::Invalid, format!("{}: {m}", self.describe())).at(path))?;
        let SecretValue::Json(map) = value else {
            unreachable!("checked above")
        };
        let full = &self.full(path.as_str());
        let data = &Value::Object(map.clone());
        if self.kv_version == 2 {
            let cas = self.current_version(path).await?;
            let what = self.api_path(full, "data");
            let mount = self.mount.as_str();
            let answer = self
                .conn
                .call(&what, if cas == 0 { "create" } else { "update" }, |c| async move {
                    let options = SetSecretRequestOptions {
                        cas: u32::try_from(cas).unwrap_or(u32::MAX),
                    };
                    vaultrs::kv2::set_with_options(&*c, mount, full, data, options).await
                })
                .await;
            let version = match answer {
                Ok(written) => written.version,
                Err(e) if e.class == ErrorClass::Conflict => {
                    // A retry after a lost reply meets its own write: Vault already holds
                    // exactly this value, so the write happened.
                    let holds_it = matches!(self.read(path).await?, Some(now) if now.semantic_eq(value));
                    if !holds_it {
                        return Err(StoreError::new(
                            ErrorClass::Conflict,
                            format!(
                                "{}: `{path}` changed in Vault after secretsync read it (check-and-set, version {cas}); run again to plan against the new value",
                                self.describe()
                            ),
                        )
                        .at(path));
                    }
                    tracing::debug!(%path, "a check-and-set write found its own earlier attempt applied");
                    self.metadata(path).await?.map_or(cas + 1, |(_, _, v)| v)
                }
                Err(e) => return Err(self.error(&e, "write", Some(path))),
            };
            let already_ours = self
                .seen_of(path)
                .is_some_and(|seen| matches!(&seen.owner, Owner::Target(t) if &**t == owner));
            let recorded = Owner::Target(owner.into());
            self.remember(path, version, recorded);
            let mut receipt = Receipt::of("kv2 write", None).with_version(Some(version.to_string()));
            if already_ours {
                return Ok(receipt);
            }
            let custom = &HashMap::from([
                (OWNER_TAG.to_owned(), OWNER_VALUE.to_owned()),
                (TARGET_TAG.to_owned(), owner.to_owned()),
            ]);
            let what = self.api_path(full, "metadata");
            self.conn
                .call(&what, "update", |c| async move {
                    let mut request = SetSecretMetadataRequest::builder();
                    request.custom_metadata(custom.clone());
                    vaultrs::kv2::set_metadata(&*c, mount, full, Some(&mut request)).await
                })
                .await
                .map_err(|e| self.error(&e, "record ownership of", Some(path)))?;
            receipt.push("kv2 metadata", None);
            return Ok(receipt);
        }
        // Ownership is claimed before the write: a failure in between leaves a claim on a
        // secret that may not exist (harmless), never a secret of ours recorded as nobody's.
        self.claim(owner, std::slice::from_ref(path)).await?;
        self.write_raw(path.as_str(), data)
            .await
            .map(|_| Receipt::of("kv1 write", None))
            .map_err(|e| self.error(&e, "write", Some(path)))
    }

    async fn prepare(&self, owner: &str, paths: &[SecretPath]) -> Result<(), StoreError> {
        if self.kv_version == 1 && self.role != Role::Source {
            self.claim(owner, paths).await?;
        }
        Ok(())
    }

    async fn delete(&self, path: &SecretPath, owner: &str) -> Result<Receipt, StoreError> {
        let full = &self.full(path.as_str());
        let refuse = || {
            StoreError::new(
                ErrorClass::Conflict,
                format!(
                    "{}: refusing to delete `{path}`: it is not managed by target `{owner}`",
                    self.describe()
                ),
            )
            .at(path)
        };
        let mount = self.mount.as_str();
        if self.kv_version == 2 {
            match self.metadata(path).await? {
                None => return Ok(Receipt::default()),
                Some((Owner::Target(t), _, _)) if &*t == owner => {}
                Some(_) => return Err(refuse()),
            }
            // Soft: the latest version is deleted, the history stays (`vault kv undelete`).
            let what = self.api_path(full, "data");
            self.conn
                .call(&what, "delete", |c| async move {
                    vaultrs::kv2::delete_latest(&*c, mount, full).await
                })
                .await
                .map_err(|e| self.error(&e, "delete", Some(path)))?;
            self.seen().remove(path);
            return Ok(Receipt::of("kv2 delete", None));
        }
        let mut cached = self.manifest.lock().await;
        let managed = self.manifest_in(&mut cached).await?;
        if managed.get(path.as_str()).map(String::as_str) != Some(owner) {
            return if self
                .exists(full)
                .await
                .map_err(|e| self.error(&e, "read", Some(path)))?
            {
                Err(refuse())
            } else {
                Ok(Receipt::default())
            };
        }
        let what = self.api_path(full, "data");
        self.conn
            .call(&what, "delete", |c| async move {
                vaultrs::kv1::delete(&*c, mount, full).await
            })
            .await
            .map_err(|e| self.error(&e, "delete", Some(path)))?;
        let mut updated = managed.clone();
        updated.remove(path.as_str());
        self.write_manifest(&updated).await?;
        *cached = Some(updated);
        Ok(Receipt::of("kv1 delete", None))
    }

    async fn restore(&self, path: &SecretPath) -> Result<Receipt, StoreError> {
        if self.kv_version != 2 {
            return Err(StoreError::new(
                ErrorClass::Unsupported,
                format!("{}: KV v1 cannot restore deleted secrets", self.describe()),
            )
            .at(path));
        }
        let version = self.current_version(path).await?;
        let full = &self.full(path.as_str());
        let what = self.api_path(full, "undelete");
        let mount = self.mount.as_str();
        self.conn
            .call(&what, "update", |c| async move {
                vaultrs::kv2::undelete_versions(&*c, mount, full, vec![version]).await
            })
            .await
            .map(|()| Receipt::of("kv2 undelete", None).with_version(Some(version.to_string())))
            .map_err(|e| self.error(&e, "restore", Some(path)))
    }
}
