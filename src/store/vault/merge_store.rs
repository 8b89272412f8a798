//! Vault as the merge store: one folder per target under the configured location, and a commit
//! marker written once a target's merged result is complete.

use std::sync::Arc;

use async_trait::async_trait;

use super::connection::VaultError;
use super::{Limits, MERGED_MARKER, Role, VaultConnection, VaultStore};
use crate::store::{MergeStore, StoreError, WritableStore};

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
            .remove_marker()
            .await
            .map_err(|e| scope.error(&e, "remove the merge marker of", None))
    }

    async fn commit(&self, target: &str) -> Result<(), StoreError> {
        let scope = self.scope(target);
        let marker = serde_json::json!({ "committed_at": now() });
        scope
            .write_raw(MERGED_MARKER, &marker)
            .await
            .map_err(|e| scope.error(&e, "write the merge marker of", None))
    }
}

impl VaultStore {
    /// Removes the merge marker for good (KV v2: every version, so `exists` sees it gone).
    pub(super) async fn remove_marker(&self) -> Result<(), VaultError> {
        let full = &self.full(MERGED_MARKER);
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
