//! A decorator that refuses every write: targets are wrapped in it for dry runs, so that even
//! a bug in the engine cannot change anything.

use std::sync::Arc;

use async_trait::async_trait;

use super::{Capabilities, ErrorClass, Fetched, Listing, Receipt, Store, StoreError, WantedValue, WritableStore};
use crate::model::{SecretPath, SecretSet, SecretValue};

/// Read-only view of a writable store.
#[derive(Debug)]
pub struct ReadOnly(pub Arc<dyn WritableStore>);

impl ReadOnly {
    fn refuse(&self, path: &SecretPath) -> StoreError {
        StoreError::new(
            ErrorClass::Fatal,
            format!(
                "{}: refusing to write `{path}` during a dry run (this is a bug)",
                self.0.describe()
            ),
        )
        .at(path)
    }
}

#[async_trait]
impl Store for ReadOnly {
    fn describe(&self) -> String {
        self.0.describe()
    }
    fn capabilities(&self) -> Capabilities {
        self.0.capabilities()
    }
    async fn list(&self) -> Result<Listing, StoreError> {
        self.0.list().await
    }
    async fn get(&self, path: &SecretPath) -> Result<Option<SecretValue>, StoreError> {
        self.0.get(path).await
    }
    async fn get_many(&self, paths: &[SecretPath]) -> Result<Fetched, StoreError> {
        self.0.get_many(paths).await
    }
    async fn read_all(&self) -> Result<(Listing, SecretSet), StoreError> {
        self.0.read_all().await
    }
    async fn list_and_read(
        &self,
        wanted: &WantedValue<'_>,
    ) -> Result<(Listing, Result<Fetched, StoreError>), StoreError> {
        self.0.list_and_read(wanted).await
    }
    fn check_value(&self, path: &SecretPath, value: &SecretValue) -> Result<(), String> {
        self.0.check_value(path, value)
    }
    fn storage_name(&self, path: &SecretPath, value: &SecretValue) -> Option<String> {
        self.0.storage_name(path, value)
    }
}

#[async_trait]
impl WritableStore for ReadOnly {
    async fn put(&self, path: &SecretPath, _value: &SecretValue, _owner: &str) -> Result<Receipt, StoreError> {
        Err(self.refuse(path))
    }
    async fn delete(&self, path: &SecretPath, _owner: &str) -> Result<Receipt, StoreError> {
        Err(self.refuse(path))
    }
    async fn restore(&self, path: &SecretPath) -> Result<Receipt, StoreError> {
        Err(self.refuse(path))
    }
    fn planned(&self, writing: &std::collections::BTreeSet<SecretPath>) {
        self.0.planned(writing);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    #[tokio::test]
    async fn refuses_writes_and_passes_reads_through() {
        let inner = Arc::new(MemoryStore::new("x"));
        let path = SecretPath::parse("a").unwrap();
        inner.insert(&path, SecretValue::Text("v".into()), Some("T"));
        let ro = ReadOnly(inner.clone());
        assert!(ro.get(&path).await.unwrap().is_some());
        assert!(ro.put(&path, &SecretValue::Text("w".into()), "T").await.is_err());
        assert!(ro.delete(&path, "T").await.is_err());
        assert_eq!(inner.writes(), 0);
    }
}
