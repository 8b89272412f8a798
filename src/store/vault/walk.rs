//! The breadth-first walk a listing is: bounded concurrency, depth and count limits and a
//! visited set; it either completes or fails, never returning part of a tree (deletes are
//! planned from it). A source reads each secret as soon as the walk finds it, in the same
//! concurrency slots.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};

use futures_util::future::Either;
use futures_util::stream::{FuturesUnordered, StreamExt};

use super::connection::VaultError;
use super::{MANIFEST, MERGED_MARKER, Role, VaultStore};
use crate::model::{SecretPath, SecretValue};
use crate::store::{ErrorClass, Store, StoreError};

pub(super) enum Folder {
    Keys(Vec<String>),
    Missing,
}

/// Secrets read during a walk, by path: the value, `None` when it vanished (or, KV v2, its
/// latest version is deleted) between listing and reading.
pub(super) type ReadAlong = HashMap<SecretPath, Result<Option<SecretValue>, StoreError>>;

/// What finished in a walk: a folder's listing or a secret's read.
pub(super) enum WalkStep {
    Listed(Result<(String, Folder), VaultError>),
    Read(SecretPath, Result<Option<SecretValue>, StoreError>),
}

impl VaultStore {
    pub(super) async fn list_folder(&self, folder: String) -> Result<(String, Folder), VaultError> {
        let what = self.api_path(&folder, "metadata");
        let (mount, path, v2) = (self.mount.as_str(), folder.as_str(), self.kv_version == 2);
        let result = self
            .conn
            .call(&what, "list", |c| async move {
                if v2 {
                    vaultrs::kv2::list(&*c, mount, path).await
                } else {
                    vaultrs::kv1::list(&*c, mount, path).await.map(|r| r.data.keys)
                }
            })
            .await;
        match result {
            Ok(keys) => Ok((folder, Folder::Keys(keys))),
            Err(e) if e.is_not_found() => Ok((folder, Folder::Missing)),
            Err(e) => Err(e),
        }
    }

    /// Whether a single secret exists at `full` (also when soft-deleted).
    pub(super) async fn exists(&self, full: &str) -> Result<bool, VaultError> {
        let what = self.api_path(full, "metadata");
        let (mount, path) = (self.mount.as_str(), full);
        let result = if self.kv_version == 2 {
            self.conn
                .call(&what, "read", |c| async move {
                    vaultrs::kv2::read_metadata(&*c, mount, path).await.map(|_| ())
                })
                .await
        } else {
            self.conn
                .call(&what, "read", |c| async move {
                    vaultrs::kv1::get_raw(&*c, mount, path).await.map(|_| ())
                })
                .await
        };
        match result {
            Ok(()) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Walks the store's scope breadth first; returns every secret's path relative to `base`.
    pub(super) async fn walk(&self) -> Result<BTreeSet<SecretPath>, StoreError> {
        Ok(self.walk_reading(false).await?.0)
    }

    /// Walks the store's scope breadth first, returning every secret's path relative to `base`;
    /// with `read`, each secret is also read as soon as its folder is listed, sharing the
    /// `list_concurrency` slots with the listing (folders first, so the walk never waits behind
    /// reads) instead of waiting for the whole tree: a deep tree's last levels no longer delay
    /// every read. The reads are answered per path; which one failed first is left to the caller
    /// (in path order, so the error is the same whatever order the answers came in).
    pub(super) async fn walk_reading(&self, read: bool) -> Result<(BTreeSet<SecretPath>, ReadAlong), StoreError> {
        let roots: Vec<(String, bool)> = if self.filters.is_empty() {
            vec![(self.full(""), false)]
        } else {
            self.filters.iter().map(|f| (self.full(f.as_str()), true)).collect()
        };
        let depth_of = |folder: &str| folder.trim_matches('/').split('/').filter(|s| !s.is_empty()).count() as u64;
        let base_depth = self.base.as_deref().map_or(0, depth_of);
        let mut queue: VecDeque<String> = VecDeque::new();
        let mut to_read: VecDeque<SecretPath> = VecDeque::new();
        let mut read_along = ReadAlong::new();
        let mut visited: HashSet<String> = HashSet::new();
        let mut filter_roots: HashSet<String> = HashSet::new();
        for (root, is_filter) in roots {
            if visited.insert(root.clone()) {
                if is_filter {
                    filter_roots.insert(root.clone());
                }
                queue.push_back(root);
            }
        }
        let mut found: BTreeSet<String> = BTreeSet::new();
        let mut in_flight = FuturesUnordered::new();
        loop {
            while in_flight.len() < self.limits.concurrency.max(1) {
                if let Some(folder) = queue.pop_front() {
                    in_flight.push(Either::Left(self.list_step(folder)));
                } else if let Some(path) = to_read.pop_front() {
                    in_flight.push(Either::Right(self.read_step(path)));
                } else {
                    break;
                }
            }
            let Some(step) = in_flight.next().await else { break };
            let (folder, listed) = match step {
                WalkStep::Read(path, value) => {
                    read_along.insert(path, value);
                    continue;
                }
                WalkStep::Listed(result) => result.map_err(|e| self.error(&e, "list", None))?,
            };
            let keys = match listed {
                Folder::Keys(keys) => keys,
                Folder::Missing if filter_roots.contains(&folder) => {
                    if self.exists(&folder).await.map_err(|e| self.error(&e, "read", None))? {
                        if read && let Some(Ok(path)) = self.relative(&folder) {
                            to_read.push_back(path);
                        }
                        found.insert(folder.clone());
                        continue;
                    }
                    return Err(StoreError::new(
                        ErrorClass::NotFound,
                        format!(
                            "{}: nothing at `{}`: no secret and no folder holding secrets (Vault folders exist only while they hold secrets); check `paths`",
                            self.describe(),
                            self.api_path(&folder, "metadata")
                        ),
                    ));
                }
                // The scope's root with nothing in it, or a folder emptied since its parent was listed.
                Folder::Missing => continue,
            };
            for key in keys {
                let (child, is_folder) = child_of(&folder, &key).map_err(|problem| {
                    StoreError::new(
                        ErrorClass::Invalid,
                        format!(
                            "{}: Vault listed a key `{}` under `{folder}/`: {problem}",
                            self.describe(),
                            key.escape_debug()
                        ),
                    )
                })?;
                if is_folder {
                    let depth = depth_of(&child) - base_depth;
                    if depth > self.limits.max_depth {
                        return Err(StoreError::new(
                            ErrorClass::Invalid,
                            format!(
                                "{}: the tree is deeper than {} folders at `{}` (vault.max_traversal_depth); raise the limit or narrow `paths`",
                                self.describe(),
                                self.limits.max_depth,
                                self.api_path(&child, "metadata")
                            ),
                        ));
                    }
                    if visited.insert(child.clone()) {
                        queue.push_back(child);
                    }
                } else {
                    // A key that is no valid path is reported below, in path order.
                    if read && let Some(Ok(path)) = self.relative(&child) {
                        to_read.push_back(path);
                    }
                    found.insert(child);
                    if found.len() as u64 > self.limits.max_secrets {
                        return Err(StoreError::new(
                            ErrorClass::Invalid,
                            format!(
                                "{}: more than {} secrets found (reached at `{}`; vault.max_secrets_per_mount); raise the limit or narrow `paths`",
                                self.describe(),
                                self.limits.max_secrets,
                                self.api_path(&folder, "metadata")
                            ),
                        ));
                    }
                }
            }
        }
        let paths = found
            .iter()
            .filter_map(|full| self.relative(full))
            .collect::<Result<_, _>>()?;
        Ok((paths, read_along))
    }

    /// A walk's listing of one folder.
    pub(super) async fn list_step(&self, folder: String) -> WalkStep {
        WalkStep::Listed(self.list_folder(folder).await)
    }

    /// A walk's read of one secret it found.
    pub(super) async fn read_step(&self, path: SecretPath) -> WalkStep {
        let value = self.read(&path).await;
        WalkStep::Read(path, value)
    }

    /// The store path of the secret at `full` (a path inside the mount): `None` when it is
    /// outside `base` or a name secretsync keeps for itself here; an error when it is no valid
    /// path.
    pub(super) fn relative(&self, full: &str) -> Option<Result<SecretPath, StoreError>> {
        let rel = match &self.base {
            Some(base) => full.strip_prefix(&format!("{base}/"))?,
            None => full,
        };
        if self.role != Role::Source && (rel == MANIFEST || rel == MERGED_MARKER) {
            return None;
        }
        Some(SecretPath::parse(rel).map_err(|e| {
            StoreError::new(
                ErrorClass::Invalid,
                format!("{}: Vault key `{full}`: {e}", self.describe()),
            )
        }))
    }
}

/// The path of `key` as listed under `folder`, and whether it is a folder (ends in `/`).
/// Empty segments (`a//b`) are dropped; `.`, `..` and NUL are refused, since a path built from
/// them could point outside the folder being walked.
pub(super) fn child_of(folder: &str, key: &str) -> Result<(String, bool), &'static str> {
    if key.contains('\0') {
        return Err("it contains a NUL byte");
    }
    let segments: Vec<&str> = key.split('/').filter(|s| !s.is_empty()).collect();
    if segments.iter().any(|s| *s == ".." || *s == ".") {
        return Err("`.` and `..` are not allowed in secret paths");
    }
    if segments.is_empty() {
        return Err("it is empty");
    }
    let name = segments.join("/");
    let child = if folder.is_empty() {
        name
    } else {
        format!("{folder}/{name}")
    };
    Ok((child, key.ends_with('/')))
}

#[cfg(test)]
mod tests {
    use super::child_of;

    #[test]
    fn listed_keys_become_paths_or_errors() {
        assert_eq!(child_of("", "db"), Ok(("db".to_owned(), false)));
        assert_eq!(child_of("app", "nested/"), Ok(("app/nested".to_owned(), true)));
        assert_eq!(
            child_of("app", "a//b"),
            Ok(("app/a/b".to_owned(), false)),
            "`//` is normalised"
        );
        assert_eq!(child_of("app", "ünï cödé/"), Ok(("app/ünï cödé".to_owned(), true)));
        assert!(child_of("app", "../escape").unwrap_err().contains("`..`"));
        assert!(child_of("app", "a/./b").is_err());
        assert!(child_of("app", "nul\0byte").unwrap_err().contains("NUL"));
        assert!(child_of("app", "/").is_err());
    }
}
