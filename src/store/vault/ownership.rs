//! Ownership: on KV v2 in each secret's `custom_metadata` (what a metadata read saw is kept as
//! [`Seen`], whose version every write checks and sets against); on KV v1 in the manifest
//! secret next to the secrets, claimed before the writes it covers.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value};

use super::{MANIFEST, VaultStore};
use crate::model::SecretPath;
use crate::store::{OWNER_TAG, OWNER_VALUE, Owner, StoreError, TARGET_TAG};

/// What a KV v2 metadata read told us about a secret.
#[derive(Debug, Clone)]
pub(super) struct Seen {
    pub(super) version: u64,
    pub(super) owner: Owner,
}

impl VaultStore {
    pub(super) fn seen(&self) -> std::sync::MutexGuard<'_, HashMap<SecretPath, Seen>> {
        self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(super) fn seen_of(&self, path: &SecretPath) -> Option<Seen> {
        self.seen().get(path).cloned()
    }

    pub(super) fn remember(&self, path: &SecretPath, version: u64, owner: Owner) {
        self.seen().insert(path.clone(), Seen { version, owner });
    }

    /// KV v2 metadata of one secret: (owner, latest version deleted, current version).
    pub(super) async fn metadata(&self, path: &SecretPath) -> Result<Option<(Owner, bool, u64)>, StoreError> {
        let Some(meta) = self.read_metadata(path).await? else {
            return Ok(None);
        };
        let custom = meta.custom_metadata.unwrap_or_default();
        let owner = match (custom.get(OWNER_TAG).map(String::as_str), custom.get(TARGET_TAG)) {
            (Some(OWNER_VALUE), Some(target)) => Owner::Target(target.as_str().into()),
            _ => Owner::Unmanaged,
        };
        let latest = meta.versions.get(&meta.current_version.to_string());
        let deleted = latest.is_none_or(|v| v.destroyed || !v.deletion_time.is_empty());
        self.remember(path, meta.current_version, owner.clone());
        Ok(Some((owner, deleted, meta.current_version)))
    }

    /// A KV v2 secret's `custom_metadata` (empty when it has none), for source filters.
    pub(super) async fn custom_metadata(&self, path: &SecretPath) -> Result<crate::filter::Labels, StoreError> {
        Ok(self
            .read_metadata(path)
            .await?
            .and_then(|meta| meta.custom_metadata)
            .map(|custom| custom.into_iter().collect())
            .unwrap_or_default())
    }

    async fn read_metadata(
        &self,
        path: &SecretPath,
    ) -> Result<Option<vaultrs::api::kv2::responses::ReadSecretMetadataResponse>, StoreError> {
        let full = &self.full(path.as_str());
        let what = self.api_path(full, "metadata");
        let mount = self.mount.as_str();
        let result = self
            .conn
            .call(&what, "read", |c| async move {
                vaultrs::kv2::read_metadata(&*c, mount, full).await
            })
            .await;
        match result {
            Ok(meta) => Ok(Some(meta)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(self.error(&e, "read the metadata of", Some(path))),
        }
    }

    pub(super) async fn read_manifest(&self) -> Result<BTreeMap<String, String>, StoreError> {
        let full = &self.full(MANIFEST);
        let what = self.api_path(full, "data");
        let mount = self.mount.as_str();
        let result = self
            .conn
            .call(&what, "read", |c| async move {
                vaultrs::kv1::get::<Map<String, Value>>(&*c, mount, full).await
            })
            .await;
        match result {
            Ok(map) => Ok(map
                .get("managed")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| v.as_str().map(|t| (k.clone(), t.to_owned())))
                        .collect()
                })
                .unwrap_or_default()),
            Err(e) if e.is_not_found() => Ok(BTreeMap::new()),
            Err(e) => Err(self.error(&e, "read the ownership manifest", None)),
        }
    }

    pub(super) async fn write_manifest(&self, managed: &BTreeMap<String, String>) -> Result<(), StoreError> {
        let data = serde_json::json!({ "managed": managed });
        self.write_raw(MANIFEST, &data)
            .await
            .map(|_| ())
            .map_err(|e| self.error(&e, "write the ownership manifest", None))
    }

    /// The cached manifest, read on first use.
    pub(super) async fn manifest_in<'m>(
        &self,
        cached: &'m mut Option<BTreeMap<String, String>>,
    ) -> Result<&'m BTreeMap<String, String>, StoreError> {
        if cached.is_none() {
            *cached = Some(self.read_manifest().await?);
        }
        Ok(cached.get_or_insert_with(BTreeMap::new))
    }

    /// Records `owner` for every path in one manifest write (none if nothing changes).
    pub(super) async fn claim(&self, owner: &str, paths: &[SecretPath]) -> Result<(), StoreError> {
        if self.kv_version != 1 {
            return Ok(());
        }
        let mut cached = self.manifest.lock().await;
        let managed = self.manifest_in(&mut cached).await?;
        if paths
            .iter()
            .all(|p| managed.get(p.as_str()).map(String::as_str) == Some(owner))
        {
            return Ok(());
        }
        let mut updated = managed.clone();
        for path in paths {
            updated.insert(path.to_string(), owner.to_owned());
        }
        self.write_manifest(&updated).await?;
        *cached = Some(updated);
        Ok(())
    }

    pub(super) async fn current_version(&self, path: &SecretPath) -> Result<u64, StoreError> {
        if let Some(seen) = self.seen_of(path) {
            return Ok(seen.version);
        }
        Ok(self.metadata(path).await?.map_or(0, |(_, _, v)| v))
    }
}
