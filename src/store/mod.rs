//! Stores: where secrets are read from and written to.
//!
//! Two small traits — [`Store`] (list, get) and [`WritableStore`] (put, delete) — that every
//! backend implements, so the engine, the conformance suite and the read-only decorator work
//! with any of them; every remote call inside a store goes through `resilience`. Stores know nothing about dry runs or delete
//! policy: they do what they are told and classify their errors ([`ErrorClass`]); the engine
//! decides.
//!
//! Ownership: every store that can be a target records which target wrote a secret (file
//! stores in a manifest, AWS in tags, Vault in metadata). A secret not recorded as ours is
//! never deleted, and `delete` itself refuses to remove a secret owned by someone else.

pub mod aws;
mod build;
pub mod check;
#[doc(hidden)]
pub mod conformance;
mod error;
mod file;
pub mod memory;
mod read_only;
pub mod vault;

pub use build::BuildContext;
pub use error::{ErrorClass, StoreError};
pub use file::{FileMergeStore, FileStore, MANIFEST_FILE};
pub use memory::{MemoryMergeStore, MemoryStore};
pub use read_only::ReadOnly;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

use crate::model::{SecretPath, SecretSet, SecretValue};

pub use crate::model::{OWNER_TAG, OWNER_VALUE, TARGET_TAG};

/// Values read by [`Store::get_many`], in the order asked; `None` for missing secrets.
pub type Fetched = Vec<(SecretPath, Option<Arc<SecretValue>>)>;

/// Which listed secrets [`Store::list_and_read`] reads, by their path and listing entry.
pub type WantedValue<'a> = dyn Fn(&SecretPath, &EntryMeta) -> bool + Send + Sync + 'a;

/// `get_many` for stores that read one secret per request: up to `concurrency` reads in
/// flight, answers in the order asked, the first error wins.
pub(crate) async fn get_concurrently<F, Fut>(
    paths: &[SecretPath],
    concurrency: usize,
    read: F,
) -> Result<Fetched, StoreError>
where
    F: Fn(SecretPath) -> Fut,
    Fut: std::future::Future<Output = Result<Option<SecretValue>, StoreError>>,
{
    use futures_util::stream::{self, StreamExt};
    stream::iter(paths.iter().cloned())
        .map(|p| {
            let read = read(p.clone());
            async move { read.await.map(|v| (p, v.map(Arc::new))) }
        })
        .buffered(concurrency.max(1))
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

/// What a store can do, so callers ask instead of guessing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Capabilities {
    /// Records which target owns each secret.
    pub ownership: bool,
    /// Keeps binary values exactly.
    pub binary: bool,
    /// Paths are folders: `a` and `a/b` cannot both be secrets.
    pub hierarchical: bool,
    /// Deleted secrets linger and can be restored (AWS recovery window, Vault KV v2): they are
    /// still listed, as pending deletion.
    pub soft_delete: bool,
    /// Holds only JSON objects (Vault KV); other kinds are refused by `check_value`.
    pub json_only: bool,
}

/// Who manages a listed secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// Not created by secretsync (or its marker was removed).
    Unmanaged,
    /// Created by secretsync for this target (shared text: listings repeat it per secret).
    Target(Arc<str>),
}

/// What a listing knows about one secret without reading its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryMeta {
    /// Who manages it.
    pub owner: Owner,
    /// Scheduled for deletion (restorable).
    pub pending_deletion: bool,
    /// What differs besides the value (tags, encryption key), for stores that manage more than
    /// the value; `put` brings it in line. `None` when nothing does.
    pub drift: Option<String>,
    /// The secret's labels (Secrets Manager tags, KV v2 `custom_metadata`), read for sources
    /// whose `filter` asks for them; `None` when not read.
    pub labels: Option<Arc<crate::filter::Labels>>,
}

impl EntryMeta {
    /// An entry managed by `target`.
    pub fn owned_by(target: &str) -> Self {
        Self {
            owner: Owner::Target(target.into()),
            pending_deletion: false,
            drift: None,
            labels: None,
        }
    }

    /// Whether `target` manages this entry.
    pub fn is_owned_by(&self, target: &str) -> bool {
        matches!(&self.owner, Owner::Target(t) if &**t == target)
    }

    /// An entry not managed by secretsync.
    pub fn unmanaged() -> Self {
        Self {
            owner: Owner::Unmanaged,
            pending_deletion: false,
            drift: None,
            labels: None,
        }
    }
}

/// A complete listing of a store's scope. Stores return this or an error — never a partial
/// list, because deletes are planned from it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    /// Every secret in scope.
    pub entries: BTreeMap<SecretPath, EntryMeta>,
    /// Things the user should know about the read (secrets skipped, and why); never values.
    pub notes: Vec<String>,
    /// The name each listed secret is kept under, where it differs from its path (a file store
    /// keeps JSON `a` in `a.json`), so planning sees a desired secret that would overwrite a
    /// different secret the store already holds.
    pub stored_as: BTreeMap<SecretPath, String>,
}

/// A place secrets can be read from.
#[async_trait]
pub trait Store: Send + Sync + fmt::Debug {
    /// A stable, human-readable id such as `file:./targets/staging` (never contains secrets).
    fn describe(&self) -> String;

    /// What this store can do.
    fn capabilities(&self) -> Capabilities;

    /// Every secret in scope, or an error.
    async fn list(&self) -> Result<Listing, StoreError>;

    /// One secret's value; a missing secret is `Ok(None)`.
    async fn get(&self, path: &SecretPath) -> Result<Option<SecretValue>, StoreError>;

    /// Several values at once, in the order asked (stores with batch reads override this).
    /// Values are shared (`Arc`): the engine keeps them in sets without copying.
    async fn get_many(&self, paths: &[SecretPath]) -> Result<Fetched, StoreError> {
        let mut out = Vec::with_capacity(paths.len());
        for path in paths {
            out.push((path.clone(), self.get(path).await?.map(Arc::new)));
        }
        Ok(out)
    }

    /// The listing, and the values of the listed secrets `wanted` picks (never those pending
    /// deletion), in the order listed. Stores that list in pages override it to read each page's
    /// values while the next page is being listed. A failed value read comes back apart from the
    /// listing, so the caller decides what it costs.
    async fn list_and_read(
        &self,
        wanted: &WantedValue<'_>,
    ) -> Result<(Listing, Result<Fetched, StoreError>), StoreError> {
        let listing = self.list().await?;
        let paths: Vec<SecretPath> = listing
            .entries
            .iter()
            .filter(|(path, meta)| !meta.pending_deletion && wanted(path, meta))
            .map(|(path, _)| path.clone())
            .collect();
        let values = if paths.is_empty() {
            Ok(Vec::new())
        } else {
            self.get_many(&paths).await
        };
        Ok((listing, values))
    }

    /// The listing and every value, for sources.
    async fn read_all(&self) -> Result<(Listing, SecretSet), StoreError> {
        let listing = self.list().await?;
        let paths: Vec<SecretPath> = listing.entries.keys().cloned().collect();
        let mut set = SecretSet::new();
        for (path, value) in self.get_many(&paths).await? {
            if let Some(value) = value {
                set.insert(path, value);
            }
        }
        Ok((listing, set))
    }

    /// Whether `value` can be stored at `path` here; the reason if not. Checked while
    /// planning, so an unstorable secret is a plan error instead of a failed write.
    fn check_value(&self, _path: &SecretPath, _value: &SecretValue) -> Result<(), String> {
        Ok(())
    }

    /// The name the store keeps `path` under, for stores where two different secrets could end
    /// up under one name (a file store keeps JSON `a` in `a.json`). `None` (the default) means
    /// the path itself, so no two secrets can collide.
    fn storage_name(&self, _path: &SecretPath, _value: &SecretValue) -> Option<String> {
        None
    }
}

/// What a write did, as the provider tells it: the calls that changed something, with their
/// request ids (to find them in `CloudTrail` or a Vault audit device), and the version the write
/// left current. Never a value.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Receipt {
    /// The calls that changed something, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub calls: Vec<ProviderCall>,
    /// The version now current (Secrets Manager `VersionId`, KV v2 version, S3 `VersionId`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// One call of a write.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProviderCall {
    /// The API operation (`PutSecretValue`, `TagResource`, `kv2 write`).
    pub operation: String,
    /// The provider's request id, where it gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl Receipt {
    /// A receipt of one call.
    pub fn of(operation: &str, request_id: Option<&str>) -> Self {
        let mut receipt = Self::default();
        receipt.push(operation, request_id);
        receipt
    }

    /// Records one more call.
    pub fn push(&mut self, operation: &str, request_id: Option<&str>) {
        // Most writes are one call: a receipt per change of a large first sync is held until
        // the run ends, so no spare capacity.
        self.calls.reserve_exact(1);
        self.calls.push(ProviderCall {
            operation: operation.to_owned(),
            request_id: request_id.map(str::to_owned),
        });
    }

    /// Appends `later`'s calls; its version, when it has one, is the current one.
    #[must_use]
    pub fn then(mut self, later: Self) -> Self {
        self.calls.extend(later.calls);
        if later.version.is_some() {
            self.version = later.version;
        }
        self
    }

    /// The same receipt with `version` current.
    #[must_use]
    pub fn with_version(mut self, version: Option<String>) -> Self {
        self.version = version;
        self
    }
}

/// A place secrets can also be written to.
#[async_trait]
pub trait WritableStore: Store {
    /// Creates or replaces a secret and records `owner` as its owner. Idempotent.
    async fn put(&self, path: &SecretPath, value: &SecretValue, owner: &str) -> Result<Receipt, StoreError>;

    /// Deletes a secret owned by `owner`. Deleting a missing secret is `Ok`; deleting a secret
    /// owned by anyone else is an error of class [`ErrorClass::Conflict`].
    async fn delete(&self, path: &SecretPath, owner: &str) -> Result<Receipt, StoreError>;

    /// Called once before a batch of writes for `owner`, with every path about to be put, so a
    /// store that records ownership in one place (a KV v1 manifest) claims them in one write
    /// instead of one per secret. Optional: `put` records ownership either way.
    async fn prepare(&self, _owner: &str, _paths: &[SecretPath]) -> Result<(), StoreError> {
        Ok(())
    }

    /// Called once after a batch of writes for `owner` (also when some failed or the run was
    /// interrupted), so a store that records ownership in one place saves it once per batch.
    async fn finish(&self, _owner: &str) -> Result<(), StoreError> {
        Ok(())
    }

    /// How many writes to this store may be in flight at once (default one at a time). Stores
    /// whose writes are independent API calls and whose rate the resilience layer limits (Secrets
    /// Manager) allow more, so a large first sync runs at the service's quota instead of at one
    /// round trip per secret.
    fn write_concurrency(&self) -> usize {
        1
    }

    /// The target is planned and only the secrets in `writing` will be written: a store may
    /// forget what its listing and reads told it about every other secret. A run plans every
    /// target before it applies any (the run-wide `max_deletes` guard needs every plan), so
    /// what stores keep between the two is held for all targets at once.
    fn planned(&self, _writing: &std::collections::BTreeSet<SecretPath>) {}

    /// Cancels a pending deletion (stores with [`Capabilities::soft_delete`]).
    async fn restore(&self, path: &SecretPath) -> Result<Receipt, StoreError> {
        Err(StoreError::new(
            ErrorClass::Unsupported,
            format!("{} cannot restore deleted secrets", self.describe()),
        )
        .at(path))
    }
}

/// A run lock as stored.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct LockInfo {
    /// Who holds it (`secretsync on HOST, pid N`).
    pub holder: String,
    /// The run's id (`lock release --id` takes it).
    pub run: String,
    /// When it was taken (the holder's clock, seconds since the epoch; informational).
    pub acquired_at: u64,
    /// How often it was renewed (so every renewal changes the object's `ETag`).
    #[serde(default)]
    pub renewals: u64,
    /// The S3 key.
    #[serde(skip)]
    pub key: String,
    /// When it was last written or renewed (S3's clock).
    #[serde(skip)]
    pub renewed_at: u64,
    /// Not renewed for long enough that its run is taken to have died.
    #[serde(skip)]
    pub stale: bool,
}

/// Where merged results live between the merge and the sync phase: one writable scope per
/// target (`{root}/{target}/…`).
#[async_trait]
pub trait MergeStore: Send + Sync + fmt::Debug {
    /// A stable, human-readable id.
    fn describe(&self) -> String;

    /// The scope holding `target`'s merged result.
    fn for_target(&self, target: &str) -> Arc<dyn WritableStore>;

    /// Whether a complete merged result for `target` is there (so `--sync-only` can tell
    /// "merged to nothing" from "never merged", and never reads a half-written result).
    async fn has_result(&self, target: &str) -> Result<bool, StoreError>;

    /// Marks `target`'s merged result as being rewritten: [`MergeStore::has_result`] is false
    /// until [`MergeStore::commit`], so a merge that fails halfway cannot feed a later
    /// `--sync-only` run a mix of old and new values.
    async fn begin(&self, target: &str) -> Result<(), StoreError>;

    /// Marks `target`'s merged result as complete.
    async fn commit(&self, target: &str) -> Result<(), StoreError>;

    /// The names of the history records kept beside the merged results (`history` names
    /// them: `00000012`, `00000012@staging`), in any order. A store with no history yet
    /// returns none.
    async fn history_names(&self) -> Result<Vec<String>, StoreError>;

    /// One history record (a JSON object); `None` when it is not there.
    async fn history_read(&self, name: &str) -> Result<Option<serde_json::Value>, StoreError>;

    /// Writes a history record (a JSON object, kept as privately as the merged results);
    /// returns the store's own version of it where the store keeps versions.
    async fn history_write(&self, name: &str, record: &serde_json::Value) -> Result<Option<String>, StoreError>;

    /// Removes a history record for good (a missing record is fine).
    async fn history_remove(&self, name: &str) -> Result<(), StoreError>;

    /// Takes the run lock before a run writes (stores shared between machines, such as S3):
    /// an error names who holds it. Local stores need none.
    async fn lock(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Whether [`MergeStore::lock`] takes a real lock (a store shared between machines).
    fn has_run_lock(&self) -> bool {
        false
    }

    /// Gives the run lock back (a no-op when this run does not hold it).
    async fn unlock(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// The run locks held on this store (`lock status`); `None` for stores without one.
    async fn locks(&self) -> Result<Option<Vec<LockInfo>>, StoreError> {
        Ok(None)
    }

    /// Breaks the lock of run `run` (`lock release --id`).
    async fn release_lock(&self, run: &str) -> Result<LockInfo, StoreError> {
        let _ = run;
        Err(StoreError::new(
            ErrorClass::Unsupported,
            format!(
                "{} has no run lock (only S3 merge stores are shared between machines)",
                self.describe()
            ),
        ))
    }
}
