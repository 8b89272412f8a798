//! An in-memory store: the reference implementation of the store contract, used by engine
//! tests, property tests and benchmarks. It can be told to fail, to test error handling.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;

use super::{
    Capabilities, EntryMeta, ErrorClass, Fetched, Listing, MergeStore, Owner, Receipt, Store, StoreError, WritableStore,
};
use crate::model::{SecretPath, SecretValue};

/// Which calls an injected failure affects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailOn {
    /// `list` and `read_all`.
    List,
    /// `get` and `get_many`.
    Get,
    /// `put`, `delete`, `restore`.
    Write,
}

#[derive(Debug, Default)]
struct State {
    /// One shared name per owner, so a large fixture does not hold a copy per secret.
    owners: BTreeMap<String, Arc<str>>,
    secrets: BTreeMap<SecretPath, (Arc<SecretValue>, Owner, bool)>,
    failures: Vec<(FailOn, ErrorClass)>,
    writes: u64,
}

/// An in-memory store.
#[derive(Debug)]
pub struct MemoryStore {
    name: String,
    state: Mutex<State>,
}

impl State {
    fn owner(&mut self, name: &str) -> Arc<str> {
        Arc::clone(self.owners.entry(name.to_owned()).or_insert_with(|| name.into()))
    }
}

impl MemoryStore {
    /// An empty store called `memory:{name}`.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds a secret directly (test setup), owned by `owner` if given.
    pub fn insert(&self, path: &SecretPath, value: SecretValue, owner: Option<&str>) {
        self.insert_shared(path, Arc::new(value), owner);
    }

    /// Adds a secret whose value is shared with other stores (large test fixtures).
    pub fn insert_shared(&self, path: &SecretPath, value: Arc<SecretValue>, owner: Option<&str>) {
        let mut state = self.state();
        let owner = owner.map_or(Owner::Unmanaged, |o| Owner::Target(state.owner(o)));
        state.secrets.insert(path.clone(), (value, owner, false));
    }

    /// Marks a secret as scheduled for deletion (test setup for restores).
    pub fn schedule_deletion(&self, path: &SecretPath) {
        if let Some(entry) = self.state().secrets.get_mut(path) {
            entry.2 = true;
        }
    }

    /// Makes every later call of kind `on` fail with `class`.
    pub fn fail(&self, on: FailOn, class: ErrorClass) {
        self.state().failures.push((on, class));
    }

    /// The live (not deletion-scheduled) secrets and their values.
    pub fn snapshot(&self) -> BTreeMap<SecretPath, SecretValue> {
        self.state()
            .secrets
            .iter()
            .filter(|(_, e)| !e.2)
            .map(|(p, (v, _, _))| (p.clone(), (**v).clone()))
            .collect()
    }

    /// The owner recorded for `path`.
    pub fn owner(&self, path: &SecretPath) -> Option<Owner> {
        self.state().secrets.get(path).map(|e| e.1.clone())
    }

    /// How many writes (puts, deletes, restores) succeeded.
    pub fn writes(&self) -> u64 {
        self.state().writes
    }

    fn check(&self, on: FailOn) -> Result<(), StoreError> {
        match self.state().failures.iter().find(|(f, _)| *f == on) {
            Some((_, class)) => Err(
                StoreError::new(*class, format!("{}: injected {class} failure", self.describe()))
                    .with_hint(format!("the test made {on:?} calls fail")),
            ),
            None => Ok(()),
        }
    }
}

#[async_trait]
impl Store for MemoryStore {
    fn describe(&self) -> String {
        format!("memory:{}", self.name)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            ownership: true,
            binary: true,
            hierarchical: false,
            soft_delete: true,
            json_only: false,
        }
    }

    async fn list(&self) -> Result<Listing, StoreError> {
        self.check(FailOn::List)?;
        let entries = self
            .state()
            .secrets
            .iter()
            .map(|(p, (_, owner, pending))| {
                (
                    p.clone(),
                    EntryMeta {
                        owner: owner.clone(),
                        pending_deletion: *pending,
                        drift: None,
                        labels: None,
                    },
                )
            })
            .collect();
        Ok(Listing {
            entries,
            ..Listing::default()
        })
    }

    async fn get(&self, path: &SecretPath) -> Result<Option<SecretValue>, StoreError> {
        self.check(FailOn::Get)?;
        Ok(self.state().secrets.get(path).map(|(v, _, _)| (**v).clone()))
    }

    async fn get_many(&self, paths: &[SecretPath]) -> Result<Fetched, StoreError> {
        self.check(FailOn::Get)?;
        let state = self.state();
        Ok(paths
            .iter()
            .map(|p| (p.clone(), state.secrets.get(p).map(|(v, _, _)| Arc::clone(v))))
            .collect())
    }
}

#[async_trait]
impl WritableStore for MemoryStore {
    /// Relies on nothing from a preceding `list`: the map is the state.
    /// The receipt's version counts the store's writes (a stand-in for a provider's version).
    async fn put(&self, path: &SecretPath, value: &SecretValue, owner: &str) -> Result<Receipt, StoreError> {
        self.check(FailOn::Write)?;
        let mut state = self.state();
        let owner = Owner::Target(state.owner(owner));
        state
            .secrets
            .insert(path.clone(), (Arc::new(value.clone()), owner, false));
        state.writes += 1;
        Ok(Receipt::default().with_version(Some(state.writes.to_string())))
    }

    async fn delete(&self, path: &SecretPath, owner: &str) -> Result<Receipt, StoreError> {
        self.check(FailOn::Write)?;
        let mut state = self.state();
        match state.secrets.get(path) {
            None => Ok(Receipt::default()),
            Some((_, Owner::Target(t), _)) if &**t == owner => {
                state.secrets.remove(path);
                state.writes += 1;
                Ok(Receipt::default())
            }
            Some(_) => Err(StoreError::new(
                ErrorClass::Conflict,
                format!(
                    "refusing to delete `{path}` in {}: it is not managed by target `{owner}`",
                    self.describe()
                ),
            )
            .at(path)),
        }
    }

    async fn restore(&self, path: &SecretPath) -> Result<Receipt, StoreError> {
        self.check(FailOn::Write)?;
        let mut state = self.state();
        match state.secrets.get_mut(path) {
            Some(entry) => {
                entry.2 = false;
                state.writes += 1;
                Ok(Receipt::default())
            }
            None => Err(StoreError::new(
                ErrorClass::NotFound,
                format!("`{path}` does not exist in {}", self.describe()),
            )
            .at(path)),
        }
    }
}

/// Picks history records by name.
pub type RecordFilter = fn(&str) -> bool;

/// An in-memory merge store (one [`MemoryStore`] per target).
#[derive(Debug, Default)]
pub struct MemoryMergeStore {
    scopes: Mutex<BTreeMap<String, Arc<MemoryStore>>>,
    committed: Mutex<BTreeSet<String>>,
    /// When set, `lock` fails as if another run held the lock.
    held_elsewhere: Mutex<Option<String>>,
    /// History records by name.
    history: Mutex<BTreeMap<String, serde_json::Value>>,
    /// When set, writing a history record whose name this accepts fails (engine tests).
    failing_history: Mutex<Option<RecordFilter>>,
}

impl MemoryMergeStore {
    /// Makes `lock` fail as if `holder` held the run lock.
    pub fn hold_lock_elsewhere(&self, holder: &str) {
        *self
            .held_elsewhere
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(holder.to_owned());
    }

    /// Makes writing the history records `which` accepts fail, as a store that is down would.
    pub fn fail_history_writes(&self, which: RecordFilter) {
        *self
            .failing_history
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(which);
    }

    /// History records by name.
    pub fn history_records(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, serde_json::Value>> {
        self.history.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The scope of `target`, created on first use.
    pub fn scope(&self, target: &str) -> Arc<MemoryStore> {
        let mut scopes = self.scopes.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        Arc::clone(
            scopes
                .entry(target.to_owned())
                .or_insert_with(|| Arc::new(MemoryStore::new(&format!("merge/{target}")))),
        )
    }
}

#[async_trait]
impl MergeStore for MemoryMergeStore {
    fn describe(&self) -> String {
        "memory:merge".to_owned()
    }

    fn for_target(&self, target: &str) -> Arc<dyn WritableStore> {
        self.scope(target)
    }

    async fn has_result(&self, target: &str) -> Result<bool, StoreError> {
        Ok(self
            .committed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(target))
    }

    async fn lock(&self) -> Result<(), StoreError> {
        match &*self
            .held_elsewhere
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
        {
            Some(holder) => Err(StoreError::new(
                ErrorClass::Conflict,
                format!("the merge store is locked by another run ({holder})"),
            )),
            None => Ok(()),
        }
    }

    async fn begin(&self, target: &str) -> Result<(), StoreError> {
        self.committed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(target);
        Ok(())
    }

    async fn commit(&self, target: &str) -> Result<(), StoreError> {
        self.committed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(target.to_owned());
        Ok(())
    }

    async fn history_names(&self) -> Result<Vec<String>, StoreError> {
        Ok(self.history_records().keys().cloned().collect())
    }

    async fn history_read(&self, name: &str) -> Result<Option<serde_json::Value>, StoreError> {
        Ok(self.history_records().get(name).cloned())
    }

    async fn history_write(&self, name: &str, record: &serde_json::Value) -> Result<Option<String>, StoreError> {
        let failing = *self
            .failing_history
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if failing.is_some_and(|fails| fails(name)) {
            return Err(StoreError::new(
                ErrorClass::Transient,
                format!("cannot write the history record `{name}` (failing on purpose)"),
            ));
        }
        // As every merge store: a record is never rewritten with other content.
        let mut records = self.history_records();
        match records.get(name) {
            Some(held) if held != record => Err(StoreError::new(
                ErrorClass::Conflict,
                format!("another run recorded the history record `{name}`"),
            )),
            Some(_) => Ok(None),
            None => {
                records.insert(name.to_owned(), record.clone());
                Ok(None)
            }
        }
    }

    async fn history_remove(&self, name: &str) -> Result<(), StoreError> {
        self.history_records().remove(name);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn passes_the_conformance_suite() {
        let store = MemoryStore::new("conformance");
        crate::store::conformance::run(&store).await.unwrap();
    }

    #[tokio::test]
    async fn keeps_the_history_record_contract() {
        crate::store::conformance::history_records(&MemoryMergeStore::default())
            .await
            .unwrap();
    }
}
