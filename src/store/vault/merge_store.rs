//! Vault as the merge store: one folder per target under the configured location, and a commit
//! marker written once a target's merged result is complete.

use std::sync::Arc;

use async_trait::async_trait;

use super::connection::VaultError;
use super::walk::Folder;
use super::{Limits, MERGED_MARKER, Role, VaultConnection, VaultStore};
use crate::model::{SecretPath, SecretValue};
use crate::store::{ErrorClass, MergeStore, StoreError, WritableStore};

/// A Vault merge store: `{mount}/{prefix}{target}/…`.
#[derive(Debug)]
pub struct VaultMergeStore {
    conn: Arc<VaultConnection>,
    mount: String,
    kv_version: u8,
    prefix: Option<String>,
    limits: Limits,
}

impl VaultMergeStore {
    pub(crate) fn new(
        conn: Arc<VaultConnection>,
        mount: String,
        kv_version: u8,
        prefix: Option<String>,
        limits: Limits,
    ) -> Self {
        Self {
            conn,
            mount,
            kv_version,
            prefix: prefix.map(|p| p.trim_matches('/').to_owned()).filter(|p| !p.is_empty()),
            limits,
        }
    }

    fn scope(&self, target: &str) -> VaultStore {
        let base = match &self.prefix {
            Some(prefix) => format!("{prefix}/{target}"),
            None => target.to_owned(),
        };
        VaultStore::new(
            Arc::clone(&self.conn),
            &self.mount,
            self.kv_version,
            Some(base),
            Vec::new(),
            Role::Merge,
            self.limits,
        )
    }
}

#[async_trait]
impl MergeStore for VaultMergeStore {
    fn describe(&self) -> String {
        let mut at = format!("vault:{}/{}", self.conn.describe(), self.mount);
        if let Some(prefix) = &self.prefix {
            at.push('/');
            at.push_str(prefix);
        }
        at
    }

    fn for_target(&self, target: &str) -> Arc<dyn WritableStore> {
        Arc::new(self.scope(target))
    }

    async fn has_result(&self, target: &str) -> Result<bool, StoreError> {
        let scope = self.scope(target);
        scope
            .exists(&scope.full(MERGED_MARKER))
            .await
            .map_err(|e| scope.error(&e, "read the merge marker of", None))
    }

    async fn begin(&self, target: &str) -> Result<(), StoreError> {
        let scope = self.scope(target);
        scope
            .remove_for_good(MERGED_MARKER)
            .await
            .map_err(|e| scope.error(&e, "remove the merge marker of", None))
    }

    async fn commit(&self, target: &str) -> Result<(), StoreError> {
        let scope = self.scope(target);
        let marker = serde_json::json!({ "committed_at": now() });
        scope
            .write_raw(MERGED_MARKER, &marker)
            .await
            .map(|_| ())
            .map_err(|e| scope.error(&e, "write the merge marker of", None))
    }

    async fn history_names(&self) -> Result<Vec<String>, StoreError> {
        let scope = self.scope(HISTORY_FOLDER);
        match scope.list_folder(scope.full("")).await {
            Ok((_, Folder::Keys(keys))) => Ok(keys.into_iter().filter(|k| !k.ends_with('/')).collect()),
            Ok((_, Folder::Missing)) => Ok(Vec::new()),
            Err(e) => Err(scope.error(&e, "list the history in", None)),
        }
    }

    async fn history_read(&self, name: &str) -> Result<Option<serde_json::Value>, StoreError> {
        let scope = self.scope(HISTORY_FOLDER);
        let path = SecretPath::parse(name).map_err(|e| {
            StoreError::new(
                ErrorClass::Invalid,
                format!("`{name}` is not a history record name: {e}"),
            )
        })?;
        Ok(scope.read(&path).await?.and_then(|value| match value {
            SecretValue::Json(map) => Some(serde_json::Value::Object(map)),
            _ => None,
        }))
    }

    /// Records are never rewritten: KV v2 creates them with check-and-set 0; KV v1 (no
    /// check-and-set) reads first, under the run lock. Finding the same record is this run's
    /// own earlier attempt (a retry after a lost reply); another record is a conflict.
    async fn history_write(&self, name: &str, record: &serde_json::Value) -> Result<Option<String>, StoreError> {
        let scope = self.scope(HISTORY_FOLDER);
        let held_elsewhere = |held: Option<serde_json::Value>| match held {
            Some(held) if held == *record => Ok(None),
            _ => Err(StoreError::new(
                ErrorClass::Conflict,
                format!("{}: another run recorded the history record `{name}`", self.describe()),
            )
            .with_hint("run one job at a time against this merge store; run again to record a revision")),
        };
        if self.kv_version != 2
            && let Some(held) = self.history_read(name).await?
        {
            return held_elsewhere(Some(held));
        }
        match scope.create_raw(name, record).await {
            Ok(version) => Ok(version.map(|v| v.to_string())),
            Err(e) if e.class == ErrorClass::Conflict => held_elsewhere(self.history_read(name).await?),
            Err(e) => Err(scope.error(&e, &format!("write the history record `{name}` in"), None)),
        }
    }

    async fn history_remove(&self, name: &str) -> Result<(), StoreError> {
        let scope = self.scope(HISTORY_FOLDER);
        scope
            .remove_for_good(name)
            .await
            .map_err(|e| scope.error(&e, &format!("remove the history record `{name}` from"), None))
    }
}

/// The folder beside the targets' folders that holds revision records and snapshots (target
/// names start with a letter or digit, so no target's folder is this one).
const HISTORY_FOLDER: &str = ".secretsync-history";

impl VaultStore {
    /// Removes a bookkeeping secret (the merge marker, a history record) for good — KV v2:
    /// every version, so `exists` sees it gone.
    pub(super) async fn remove_for_good(&self, rel: &str) -> Result<(), VaultError> {
        let full = &self.full(rel);
        let what = self.api_path(full, if self.kv_version == 2 { "metadata" } else { "data" });
        let (mount, v2) = (self.mount.as_str(), self.kv_version == 2);
        let result = self
            .conn
            .call(&what, "delete", |c| async move {
                if v2 {
                    vaultrs::kv2::delete_metadata(&*c, mount, full).await
                } else {
                    vaultrs::kv1::delete(&*c, mount, full).await
                }
            })
            .await;
        match result {
            Err(e) if !e.is_not_found() => Err(e),
            _ => Ok(()),
        }
    }
}

/// Seconds since the epoch, as text (for markers).
pub(super) fn now() -> String {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        .to_string()
}
