//! A local directory as a store: one file per secret, for offline runs, examples and tests.
//!
//! Layout: `NAME.json` holding a JSON object is the JSON secret `NAME`; any other file is the
//! text (UTF-8) or binary secret named by its path. Symbolic links and anything that is not a
//! regular file or a folder are refused, never followed (a link in a source could read any file
//! on the machine into a target). Writes go through [`crate::files`]: atomic, 0600 files and
//! 0700 folders, the folder flushed after every rename. JSON is pretty-printed with sorted keys
//! so diffs of a target folder are readable.
//!
//! Ownership lives in `.secretsync-manifest.json` at the root: the files this tool wrote, and
//! for which target. Only files listed there as the caller's can be deleted; everything else
//! in the folder (a README, a file a human added) is left alone.
//!
//! Crash consistency: ownership is recorded (and flushed) *before* a file is written, once per
//! batch ([`WritableStore::prepare`]), and a delete removes the file before its manifest entry
//! (saved once per batch, in [`WritableStore::finish`]). So at every point a crash or a full
//! disk leaves either a file we own, a manifest entry without a file (harmless: pruned, and a
//! missing secret is created again) — never a file we wrote that the manifest does not claim,
//! which the next run would see as someone else's and refuse without `--adopt`.
//!
//! File I/O runs on tokio's blocking pool so the async engine is never stalled by a disk.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::Value;

use super::{
    Capabilities, EntryMeta, ErrorClass, Fetched, Listing, MergeStore, Receipt, Store, StoreError, WritableStore,
};
use crate::files::{self, TMP_PREFIX};
use crate::model::{SecretPath, SecretSet, SecretValue};

/// The ownership manifest's file name (at the store's root).
pub const MANIFEST_FILE: &str = ".secretsync-manifest.json";
/// Folder of a file merge store holding one empty file per target whose merged result is
/// complete.
const COMMITTED_DIR: &str = ".secretsync-committed";
/// `{root}/.secretsync-history/`: revision records and snapshots (`history`), outside every
/// target's folder.
const HISTORY_DIR: &str = ".secretsync-history";

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Manifest {
    version: u32,
    /// Secret path → owning target.
    managed: BTreeMap<String, String>,
}

#[derive(Debug)]
struct Inner {
    root: PathBuf,
    /// Links are refused below this folder: the root itself for a store the user points at
    /// (their choice), the merge store's root for a target's scope inside it (secretsync made
    /// `{root}/{target}`, so a link there was planted).
    link_base: PathBuf,
    display: String,
    manifest: Mutex<Option<Manifest>>,
    /// The in-memory manifest has changes not yet saved (deletes, saved by `finish`).
    manifest_dirty: std::sync::atomic::AtomicBool,
    /// Tests: fail every durable step from the n-th on, as a crash or a full disk would.
    #[cfg(test)]
    crash_at: Option<std::sync::atomic::AtomicUsize>,
    /// A source's folder must exist: a misspelled path must not read as "no secrets", which
    /// would turn into deletes downstream. A target's or merge store's folder is created on
    /// first write, so for them a missing folder is simply empty.
    must_exist: bool,
}

/// A directory store.
#[derive(Debug, Clone)]
pub struct FileStore {
    inner: Arc<Inner>,
}

impl FileStore {
    /// A store rooted at `root`, described as `file:{display}`.
    pub fn new(root: impl Into<PathBuf>, display: impl Into<String>) -> Self {
        let root = root.into();
        Self {
            inner: Arc::new(Inner {
                link_base: root.clone(),
                root,
                display: display.into(),
                manifest: Mutex::new(None),
                manifest_dirty: std::sync::atomic::AtomicBool::new(false),
                #[cfg(test)]
                crash_at: None,
                must_exist: false,
            }),
        }
    }

    /// A store for a source: reading it fails when the folder does not exist.
    pub fn source(root: impl Into<PathBuf>, display: impl Into<String>) -> Self {
        let root = root.into();
        Self {
            inner: Arc::new(Inner {
                link_base: root.clone(),
                root,
                display: display.into(),
                manifest: Mutex::new(None),
                manifest_dirty: std::sync::atomic::AtomicBool::new(false),
                #[cfg(test)]
                crash_at: None,
                must_exist: true,
            }),
        }
    }

    /// A store whose `n`-th durable step (1 = the first) and every later one fail, as after a
    /// crash or with a full disk.
    #[cfg(test)]
    fn crashing_at(root: impl Into<PathBuf>, n: usize) -> Self {
        let store = Self::new(root, "crashing");
        let mut inner = Arc::into_inner(store.inner).expect("just made");
        inner.crash_at = Some(std::sync::atomic::AtomicUsize::new(n));
        Self { inner: Arc::new(inner) }
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || work(&inner))
            .await
            .map_err(|err| StoreError::new(ErrorClass::Fatal, format!("file store task failed: {err}")))?
    }
}

/// What a file holds, once classified.
enum Found {
    Json(serde_json::Map<String, Value>),
    Other(Vec<u8>),
}

fn other_value(bytes: Vec<u8>) -> SecretValue {
    match String::from_utf8(bytes) {
        Ok(text) => SecretValue::Text(text),
        Err(err) => SecretValue::Binary(err.into_bytes()),
    }
}

/// Whether `bytes` hold a JSON object. One that cannot be read without changing it (a key
/// twice, nested too deep) counts as an object wherever a file's kind is decided, and is an
/// error where its value is read.
fn holds_object(bytes: &[u8]) -> bool {
    !matches!(crate::model::parse_json_object(bytes), Ok(None))
}

impl Inner {
    fn name(&self) -> String {
        format!("file:{}", self.display)
    }

    fn io(&self, what: &str, path: &Path, err: std::io::Error) -> StoreError {
        let rel = path.strip_prefix(&self.root).unwrap_or(path);
        StoreError::from_io(
            format!("{}: cannot {what} `{}`: {err}", self.name(), rel.display()),
            err,
        )
    }

    fn invalid(&self, message: impl std::fmt::Display) -> StoreError {
        StoreError::new(ErrorClass::Invalid, format!("{}: {message}", self.name()))
    }

    /// Walks the folder: every secret, the file it is in, and with `values` its value.
    fn scan(&self, values: bool) -> Result<BTreeMap<SecretPath, (String, Option<SecretValue>)>, StoreError> {
        let mut out: BTreeMap<SecretPath, (String, Option<SecretValue>)> = BTreeMap::new();
        files::check_no_links_below(&self.link_base, &self.root.join("-"))
            .map_err(|e| self.io("read", &self.root, e))?;
        match fs::metadata(&self.root) {
            Err(err) if err.kind() == std::io::ErrorKind::NotFound && !self.must_exist => return Ok(BTreeMap::new()),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::new(
                    ErrorClass::NotFound,
                    format!(
                        "{}: the folder does not exist (paths are relative to the pipeline file's folder)",
                        self.name()
                    ),
                ));
            }
            Err(err) => return Err(self.io("read", &self.root, err)),
            Ok(meta) if !meta.is_dir() => return Err(self.invalid("the path is not a directory".to_owned())),
            Ok(_) => {}
        }
        let mut dirs = vec![(self.root.clone(), String::new())];
        while let Some((dir, prefix)) = dirs.pop() {
            let mut entries = fs::read_dir(&dir)
                .map_err(|e| self.io("list", &dir, e))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| self.io("list", &dir, e))?;
            entries.sort_by_key(fs::DirEntry::file_name);
            for entry in entries {
                let os_name = entry.file_name();
                let Some(name) = os_name.to_str() else {
                    return Err(self.invalid(format!(
                        "file name `{}{}` is not UTF-8",
                        prefix,
                        os_name.to_string_lossy()
                    )));
                };
                if name.starts_with(TMP_PREFIX) || (prefix.is_empty() && name == MANIFEST_FILE) {
                    continue;
                }
                let rel = format!("{prefix}{name}");
                let path = entry.path();
                let kind = entry.file_type().map_err(|e| self.io("read", &path, e))?;
                if kind.is_symlink() {
                    return Err(self.invalid(format!(
                        "`{rel}` is a symbolic link; links are not followed (one could point at any file on this machine) — copy the file or folder in instead"
                    )));
                }
                if kind.is_dir() {
                    dirs.push((path, format!("{rel}/")));
                    continue;
                }
                if !kind.is_file() {
                    return Err(self.invalid(format!(
                        "`{rel}` is neither a regular file nor a folder (a device, socket or pipe); remove it"
                    )));
                }
                let read = |path: &Path| match files::read_regular(path) {
                    Ok(Some(bytes)) => Ok(bytes),
                    Ok(None) => Err(self.invalid(format!("`{rel}` disappeared while it was being read"))),
                    Err(e) => Err(self.io("read", path, e)),
                };
                let (secret, value) = if let Some(stem) = rel.strip_suffix(".json") {
                    let bytes = read(&path)?;
                    match crate::model::parse_json_object(&bytes) {
                        Ok(Some(map)) => (stem.to_owned(), values.then_some(SecretValue::Json(map))),
                        Ok(None) => (rel.clone(), values.then(|| other_value(bytes))),
                        Err(problem) => return Err(self.invalid(format!("`{rel}`: {problem}"))),
                    }
                } else if values {
                    (rel.clone(), Some(other_value(read(&path)?)))
                } else {
                    (rel.clone(), None)
                };
                let secret_path = SecretPath::parse(&secret).map_err(|e| self.invalid(format!("`{rel}`: {e}")))?;
                if let Some((first, _)) = out.get(&secret_path) {
                    return Err(self.invalid(format!(
                        "both `{first}` and `{rel}` hold a secret named `{secret}`; rename or remove one"
                    )));
                }
                out.insert(secret_path, (rel, value));
            }
        }
        Ok(out)
    }

    /// The listing (owners from the manifest, file names where they differ from the secret's)
    /// and the values of what [`Inner::scan`] found.
    fn listing(
        &self,
        found: BTreeMap<SecretPath, (String, Option<SecretValue>)>,
    ) -> Result<(Listing, SecretSet), StoreError> {
        let managed = self.manifest(|m| m.managed.clone())?;
        let mut listing = Listing::default();
        let mut set = SecretSet::new();
        for (path, (file, value)) in found {
            let meta = managed
                .get(path.as_str())
                .map_or_else(EntryMeta::unmanaged, |t| EntryMeta::owned_by(t));
            listing.entries.insert(path.clone(), meta);
            if file != path.as_str() {
                listing.stored_as.insert(path.clone(), file);
            }
            if let Some(value) = value {
                set.insert(path, Arc::new(value));
            }
        }
        Ok((listing, set))
    }

    /// The bytes of the file at `rel` below the root, `None` when there is none; a symbolic
    /// link on the way or at the end is an error.
    fn read_file(&self, rel: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let file = self.root.join(rel);
        files::check_no_links_below(&self.link_base, &file)
            .and_then(|()| files::read_regular(&file))
            .map_err(|e| self.io("read", &file, e))
    }

    fn read(&self, path: &SecretPath) -> Result<Option<SecretValue>, StoreError> {
        let json_name = format!("{path}.json");
        let as_json = match self.read_file(&json_name)? {
            Some(bytes) => crate::model::parse_json_object(&bytes)
                .map_err(|problem| self.invalid(format!("`{json_name}`: {problem}")))?
                .map(Found::Json),
            None => None,
        };
        let as_other = match self.read_file(path.as_str())? {
            Some(bytes) if path.as_str().ends_with(".json") && holds_object(&bytes) => None,
            Some(bytes) => Some(Found::Other(bytes)),
            None => None,
        };
        match (as_json, as_other) {
            (Some(_), Some(_)) => Err(self.invalid(format!(
                "both `{path}` and `{path}.json` hold the secret `{path}`; rename or remove one"
            ))),
            (Some(Found::Json(map)), None) => Ok(Some(SecretValue::Json(map))),
            (None, Some(Found::Other(bytes))) => Ok(Some(other_value(bytes))),
            _ => Ok(None),
        }
    }

    /// The file holding secret `path` now, if any: `path.json` when it holds a JSON object,
    /// else `path` (unless that is `….json` holding an object, which is another secret).
    fn file_of(&self, path: &SecretPath) -> Result<Option<PathBuf>, StoreError> {
        let json_name = format!("{path}.json");
        if self.read_file(&json_name)?.is_some_and(|b| holds_object(&b)) {
            return Ok(Some(self.root.join(json_name)));
        }
        let plain = self.read_file(path.as_str())?;
        Ok(plain
            .filter(|b| !(path.as_str().ends_with(".json") && holds_object(b)))
            .map(|_| self.root.join(path.as_str())))
    }

    fn manifest<T>(&self, work: impl FnOnce(&mut Manifest) -> T) -> Result<T, StoreError> {
        let mut guard = self.manifest.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if guard.is_none() {
            let manifest = match self.read_file(MANIFEST_FILE)? {
                Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                    self.invalid(format!(
                        "the ownership manifest `{MANIFEST_FILE}` is corrupt ({e}); fix or remove it"
                    ))
                })?,
                None => Manifest {
                    version: 1,
                    managed: BTreeMap::new(),
                },
            };
            *guard = Some(manifest);
        }
        Ok(work(guard.as_mut().expect("loaded above")))
    }

    fn save_manifest(&self) -> Result<(), StoreError> {
        let bytes = self.manifest(|m| {
            let mut bytes = serde_json::to_vec_pretty(m).unwrap_or_default();
            bytes.push(b'\n');
            bytes
        })?;
        self.write_atomic(&self.root.join(MANIFEST_FILE), &bytes)?;
        self.manifest_dirty.store(false, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    /// Records `paths` as `owner`'s and saves the manifest, once, if that changed anything.
    fn claim(&self, paths: &[SecretPath], owner: &str) -> Result<(), StoreError> {
        let changed = self.manifest(|m| {
            let mut changed = false;
            for path in paths {
                if m.managed.get(path.as_str()).is_none_or(|o| o != owner) {
                    m.managed.insert(path.to_string(), owner.to_owned());
                    changed = true;
                }
            }
            changed
        })?;
        if changed || self.manifest_dirty.load(std::sync::atomic::Ordering::SeqCst) {
            self.save_manifest()?;
        }
        Ok(())
    }

    /// Saves entries removed by deletes, dropping entries whose file is gone (a claim whose
    /// write never happened, or a delete whose manifest save a crash prevented).
    fn finish(&self) -> Result<(), StoreError> {
        let recorded: Vec<String> = self.manifest(|m| m.managed.keys().cloned().collect())?;
        let mut gone = Vec::new();
        for name in recorded {
            let Ok(path) = SecretPath::parse(&name) else { continue };
            if self.file_of(&path)?.is_none() {
                gone.push(name);
            }
        }
        if !gone.is_empty() {
            self.manifest(|m| gone.iter().for_each(|n| drop(m.managed.remove(n))))?;
            self.manifest_dirty.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        if self.manifest_dirty.load(std::sync::atomic::Ordering::SeqCst) {
            self.save_manifest()?;
        }
        Ok(())
    }

    /// One durable step (tests inject a crash here).
    #[cfg_attr(not(test), allow(clippy::unused_self, clippy::unnecessary_wraps))]
    fn step(&self, what: &str, path: &Path) -> Result<(), StoreError> {
        #[cfg(test)]
        if let Some(left) = &self.crash_at
            && left
                .fetch_update(
                    std::sync::atomic::Ordering::SeqCst,
                    std::sync::atomic::Ordering::SeqCst,
                    |n| Some(n.saturating_sub(1)),
                )
                .is_ok_and(|before| before <= 1)
        {
            return Err(self.io(what, path, std::io::Error::other("injected crash")));
        }
        let _ = (what, path);
        Ok(())
    }

    fn write_atomic(&self, target: &Path, bytes: &[u8]) -> Result<(), StoreError> {
        self.step("write", target)?;
        files::check_no_links_below(&self.link_base, target)
            .and_then(|()| files::create_private_dirs(files::parent(target)))
            .and_then(|()| files::write_atomic(target, bytes))
            .map_err(|e| self.io("write", target, e))
    }

    fn remove(&self, file: &Path) -> Result<(), StoreError> {
        self.step("remove", file)?;
        fs::remove_file(file)
            .and_then(|()| files::sync_dir(files::parent(file)))
            .map_err(|e| self.io("remove", file, e))
    }

    fn put(&self, path: &SecretPath, value: &SecretValue, owner: &str) -> Result<(), StoreError> {
        check_value(path, value).map_err(|m| self.invalid(m))?;
        // Ownership first: a crash after this leaves a claim without a file (harmless), never
        // a file of ours the manifest does not claim.
        self.claim(std::slice::from_ref(path), owner)?;
        let file = self.root.join(match value {
            SecretValue::Json(_) => format!("{path}.json"),
            _ => path.to_string(),
        });
        // A change of kind moves the secret to another file: the old one goes first, so a
        // crash leaves the secret missing (created again next run), never held twice (which
        // reads as two secrets under one name).
        if let Some(old) = self.file_of(path)?.filter(|old| *old != file) {
            self.remove(&old)?;
        }
        self.write_atomic(&file, &value.to_bytes())
    }

    fn delete(&self, path: &SecretPath, owner: &str) -> Result<(), StoreError> {
        let recorded = self.manifest(|m| m.managed.get(path.as_str()).cloned())?;
        let file = self.file_of(path)?;
        if recorded.as_deref() != Some(owner) {
            if file.is_none() {
                return Ok(());
            }
            return Err(StoreError::new(
                ErrorClass::Conflict,
                format!(
                    "{}: refusing to delete `{path}`: it is not managed by target `{owner}`",
                    self.name()
                ),
            )
            .at(path));
        }
        if let Some(file) = &file {
            self.remove(file)?;
            remove_empty_parents(&self.root, file);
        }
        // The entry goes after the file, saved once per batch by `finish`.
        self.manifest(|m| m.managed.remove(path.as_str()))?;
        self.manifest_dirty.store(true, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }
}

fn remove_empty_parents(root: &Path, file: &Path) {
    let mut dir = file.parent();
    while let Some(d) = dir {
        if d == root || !d.starts_with(root) || fs::remove_dir(d).is_err() {
            break;
        }
        let _ = files::sync_dir(files::parent(d));
        dir = d.parent();
    }
}

/// Whether a value can be stored at a path in a file store.
fn check_value(path: &SecretPath, value: &SecretValue) -> Result<(), String> {
    if path.segments().any(|s| s.starts_with(TMP_PREFIX)) || path.as_str() == MANIFEST_FILE {
        return Err(format!("`{path}` is a name secretsync reserves in file stores"));
    }
    let object_text = match value {
        SecretValue::Json(_) => false,
        SecretValue::Text(text) => holds_object(text.as_bytes()),
        SecretValue::Binary(bytes) => holds_object(bytes),
    };
    if object_text && path.as_str().ends_with(".json") {
        return Err(format!(
            "`{path}` is a {} secret holding a JSON object; a file store would read it back as the JSON secret `{}`",
            value.kind(),
            path.as_str().trim_end_matches(".json")
        ));
    }
    Ok(())
}

#[async_trait]
impl Store for FileStore {
    fn describe(&self) -> String {
        self.inner.name()
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            ownership: true,
            binary: true,
            hierarchical: true,
            soft_delete: false,
            json_only: false,
        }
    }

    async fn list(&self) -> Result<Listing, StoreError> {
        self.blocking(|inner| Ok(inner.listing(inner.scan(false)?)?.0)).await
    }

    async fn get(&self, path: &SecretPath) -> Result<Option<SecretValue>, StoreError> {
        let path = path.clone();
        self.blocking(move |inner| inner.read(&path)).await
    }

    async fn get_many(&self, paths: &[SecretPath]) -> Result<Fetched, StoreError> {
        let paths = paths.to_vec();
        self.blocking(move |inner| {
            paths
                .into_iter()
                .map(|p| inner.read(&p).map(|v| (p, v.map(Arc::new))))
                .collect()
        })
        .await
    }

    async fn read_all(&self) -> Result<(Listing, SecretSet), StoreError> {
        self.blocking(|inner| inner.listing(inner.scan(true)?)).await
    }

    fn check_value(&self, path: &SecretPath, value: &SecretValue) -> Result<(), String> {
        check_value(path, value)
    }

    fn storage_name(&self, path: &SecretPath, value: &SecretValue) -> Option<String> {
        Some(match value {
            SecretValue::Json(_) => format!("{path}.json"),
            _ => path.to_string(),
        })
    }
}

#[async_trait]
impl WritableStore for FileStore {
    /// Relies on the ownership manifest as the store last read it (the preceding `list` reads
    /// it; without one, `put` does), kept in memory and written back with every claim; the
    /// secret's current file is looked up in the folder itself. The crash-consistency steps are
    /// in `Inner::put`.
    async fn put(&self, path: &SecretPath, value: &SecretValue, owner: &str) -> Result<Receipt, StoreError> {
        let (path, value, owner) = (path.clone(), value.clone(), owner.to_owned());
        self.blocking(move |inner| inner.put(&path, &value, &owner)).await?;
        Ok(Receipt::default())
    }

    async fn delete(&self, path: &SecretPath, owner: &str) -> Result<Receipt, StoreError> {
        let (path, owner) = (path.clone(), owner.to_owned());
        self.blocking(move |inner| inner.delete(&path, &owner)).await?;
        Ok(Receipt::default())
    }

    async fn prepare(&self, owner: &str, paths: &[SecretPath]) -> Result<(), StoreError> {
        let (paths, owner) = (paths.to_vec(), owner.to_owned());
        self.blocking(move |inner| inner.claim(&paths, &owner)).await
    }

    async fn finish(&self, _owner: &str) -> Result<(), StoreError> {
        self.blocking(Inner::finish).await
    }
}

/// A directory merge store: `{root}/{target}/…`, one [`FileStore`] per target.
#[derive(Debug, Clone)]
pub struct FileMergeStore {
    root: PathBuf,
    display: String,
}

impl FileMergeStore {
    /// A merge store rooted at `root`.
    pub fn new(root: impl Into<PathBuf>, display: impl Into<String>) -> Self {
        Self {
            root: root.into(),
            display: display.into(),
        }
    }
}

#[async_trait]
impl MergeStore for FileMergeStore {
    fn describe(&self) -> String {
        format!("file:{}", self.display)
    }

    fn for_target(&self, target: &str) -> Arc<dyn WritableStore> {
        Arc::new(self.scope(target))
    }

    async fn has_result(&self, target: &str) -> Result<bool, StoreError> {
        let (root, marker) = (self.root.clone(), self.marker(target));
        let found = tokio::task::spawn_blocking(move || {
            files::check_no_links_below(&root, &marker)
                .and_then(|()| files::read_regular(&marker))
                .map(|m| m.is_some())
                .map_err(|e| (marker, e))
        })
        .await
        .map_err(|err| StoreError::new(ErrorClass::Fatal, format!("file store task failed: {err}")))?;
        found.map_err(|(marker, e)| {
            StoreError::from_io(
                format!("{}: cannot read `{}`: {e}", self.describe(), marker.display()),
                e,
            )
        })
    }

    async fn begin(&self, target: &str) -> Result<(), StoreError> {
        let marker = self.marker(target);
        match tokio::fs::remove_file(&marker).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::from_io(
                format!("{}: cannot remove `{}`: {e}", self.describe(), marker.display()),
                e,
            )),
        }
    }

    async fn commit(&self, target: &str) -> Result<(), StoreError> {
        self.scope(target).blocking(Inner::save_manifest).await?;
        let (root, marker) = (self.root.clone(), self.marker(target));
        tokio::task::spawn_blocking(move || {
            files::check_no_links_below(&root, &marker)
                .and_then(|()| files::create_private_dirs(files::parent(&marker)))
                .and_then(|()| files::write_atomic(&marker, b""))
                .map_err(|e| (marker, e))
        })
        .await
        .map_err(|err| StoreError::new(ErrorClass::Fatal, format!("file store task failed: {err}")))?
        .map_err(|(marker, e)| {
            StoreError::from_io(
                format!("{}: cannot write `{}`: {e}", self.describe(), marker.display()),
                e,
            )
        })
    }

    async fn history_names(&self) -> Result<Vec<String>, StoreError> {
        let (root, dir) = (self.root.clone(), self.root.join(HISTORY_DIR));
        self.history_io("list", dir.clone(), move || {
            files::check_no_links_below(&root, &dir)?;
            let entries = match fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => return Err(e),
            };
            let mut names = Vec::new();
            for entry in entries {
                let name = entry?.file_name();
                if let Some(name) = name.to_str().and_then(|n| n.strip_suffix(".json")) {
                    names.push(name.to_owned());
                }
            }
            Ok(names)
        })
        .await
    }

    async fn history_read(&self, name: &str) -> Result<Option<serde_json::Value>, StoreError> {
        let (root, file) = (self.root.clone(), self.history_file(name));
        let bytes = self
            .history_io("read", file.clone(), move || {
                files::check_no_links_below(&root, &file)?;
                files::read_regular(&file)
            })
            .await?;
        bytes
            .map(|bytes| {
                serde_json::from_slice(&bytes).map_err(|e| {
                    StoreError::new(
                        ErrorClass::Invalid,
                        format!("{}: the history record `{name}` is not JSON: {e}", self.describe()),
                    )
                })
            })
            .transpose()
    }

    async fn history_write(&self, name: &str, record: &serde_json::Value) -> Result<Option<String>, StoreError> {
        let (root, file) = (self.root.clone(), self.history_file(name));
        let bytes = serde_json::to_vec(record).unwrap_or_default();
        let written = self
            .history_io("write", file.clone(), move || {
                files::check_no_links_below(&root, &file)?;
                files::create_private_dirs(files::parent(&file))?;
                // Records are never rewritten: the same bytes are this run's own earlier write.
                match files::read_regular(&file)? {
                    Some(held) => Ok(held == bytes),
                    None => files::write_atomic(&file, &bytes).map(|()| true),
                }
            })
            .await?;
        if !written {
            return Err(StoreError::new(
                ErrorClass::Conflict,
                format!("{}: another run recorded the history record `{name}`", self.describe()),
            )
            .with_hint("run one job at a time against a folder merge store; run again to record a revision"));
        }
        Ok(None)
    }

    async fn history_remove(&self, name: &str) -> Result<(), StoreError> {
        let (root, file) = (self.root.clone(), self.history_file(name));
        self.history_io("remove", file.clone(), move || {
            files::check_no_links_below(&root, &file)?;
            match fs::remove_file(&file) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            }
        })
        .await
    }
}

impl FileMergeStore {
    fn history_file(&self, name: &str) -> PathBuf {
        self.root.join(HISTORY_DIR).join(format!("{name}.json"))
    }

    /// Runs blocking history I/O on `path`, naming the store and the file in its error.
    async fn history_io<T: Send + 'static>(
        &self,
        doing: &str,
        path: PathBuf,
        work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|err| StoreError::new(ErrorClass::Fatal, format!("file store task failed: {err}")))?
            .map_err(|e| {
                StoreError::from_io(
                    format!("{}: cannot {doing} `{}`: {e}", self.describe(), path.display()),
                    e,
                )
            })
    }

    /// The store holding `target`'s merged result; a link at `{root}/{target}` is refused.
    fn scope(&self, target: &str) -> FileStore {
        let store = FileStore::new(self.root.join(target), format!("{}/{target}", self.display));
        let mut inner = Arc::into_inner(store.inner).expect("just made");
        inner.link_base.clone_from(&self.root);
        FileStore { inner: Arc::new(inner) }
    }

    /// `{root}/.secretsync-committed/{target}`: present while `target`'s result is complete.
    /// Outside every target's folder (target names start with a letter or digit).
    fn marker(&self, target: &str) -> PathBuf {
        self.root.join(COMMITTED_DIR).join(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Owner;

    fn p(s: &str) -> SecretPath {
        SecretPath::parse(s).unwrap()
    }

    #[tokio::test]
    async fn history_records_are_private_listed_and_never_overwritten() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let merge = FileMergeStore::new(dir.path().join("m"), "m");
        crate::store::conformance::history_records(&merge).await.unwrap();
        let file = dir.path().join("m/.secretsync-history/00000007.json");
        assert_eq!(fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    }

    #[tokio::test]
    async fn passes_the_conformance_suite() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path().join("root"), "root");
        crate::store::conformance::run(&store).await.unwrap();
    }

    #[tokio::test]
    async fn reads_the_documented_layout() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("api")).unwrap();
        fs::write(root.join("api/stripe.json"), br#"{"key": "sk_test"}"#).unwrap();
        fs::write(root.join("list.json"), b"[1, 2]").unwrap();
        fs::write(root.join("cert.pem"), b"-----BEGIN-----").unwrap();
        fs::write(root.join("blob"), [0xff, 0x00, 0xfe]).unwrap();
        fs::write(root.join("object-in-plain-file"), br#"{"a": 1}"#).unwrap();
        let store = FileStore::new(root, "t");
        let (listing, values) = store.read_all().await.unwrap();
        let names: Vec<&str> = listing.entries.keys().map(SecretPath::as_str).collect();
        assert_eq!(
            names,
            ["api/stripe", "blob", "cert.pem", "list.json", "object-in-plain-file"]
        );
        assert_eq!(values[&p("api/stripe")].kind(), crate::model::ValueKind::Json);
        assert_eq!(values[&p("list.json")].kind(), crate::model::ValueKind::Text);
        assert_eq!(values[&p("blob")].kind(), crate::model::ValueKind::Binary);
        assert_eq!(
            values[&p("object-in-plain-file")].kind(),
            crate::model::ValueKind::Text,
            "only NAME.json files are JSON secrets"
        );
        assert!(listing.entries.values().all(|e| e.owner == Owner::Unmanaged));
        assert_eq!(
            store.get(&p("list.json")).await.unwrap().unwrap().kind(),
            crate::model::ValueKind::Text
        );
        assert!(
            store.get(&p("api/stripe.json")).await.unwrap().is_none(),
            "`api/stripe.json` is the file of secret `api/stripe`"
        );
    }

    #[tokio::test]
    async fn a_missing_source_folder_is_an_error_but_a_missing_target_folder_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("typo");
        let err = FileStore::source(&missing, "./typo").read_all().await.unwrap_err();
        assert_eq!(err.class, ErrorClass::NotFound);
        assert!(err.message.contains("does not exist"), "{}", err.message);
        assert!(
            FileStore::new(&missing, "./typo")
                .list()
                .await
                .unwrap()
                .entries
                .is_empty()
        );
    }

    #[tokio::test]
    async fn ambiguous_names_are_an_error_not_a_guess() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("db.json"), br#"{"a": 1}"#).unwrap();
        fs::write(dir.path().join("db"), b"text").unwrap();
        let store = FileStore::new(dir.path(), "t");
        let err = store.list().await.unwrap_err();
        assert_eq!(err.class, ErrorClass::Invalid);
        assert!(err.message.contains("hold a secret named `db`"), "{}", err.message);
        assert!(store.get(&p("db")).await.is_err());
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn writes_are_private_and_leave_no_temp_files() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path().join("t"), "t");
        store
            .put(&p("a/b"), &SecretValue::from_string(r#"{"z":1,"a":2}"#.into()), "T")
            .await
            .unwrap();
        let file = dir.path().join("t/a/b.json");
        assert_eq!(fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(
            fs::metadata(dir.path().join("t/a")).unwrap().permissions().mode() & 0o777,
            0o700
        );
        assert_eq!(fs::read_to_string(&file).unwrap(), "{\n  \"a\": 2,\n  \"z\": 1\n}\n");
        let leftovers: Vec<_> = fs::read_dir(dir.path().join("t/a"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, [std::ffi::OsString::from("b.json")]);
    }

    #[tokio::test]
    async fn changing_kind_replaces_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path(), "t");
        store
            .put(&p("x"), &SecretValue::Text("plain".into()), "T")
            .await
            .unwrap();
        store
            .put(&p("x"), &SecretValue::from_string(r#"{"a":1}"#.into()), "T")
            .await
            .unwrap();
        assert!(!dir.path().join("x").exists());
        assert_eq!(store.list().await.unwrap().entries.len(), 1);
        store
            .put(&p("x"), &SecretValue::Text("plain again".into()), "T")
            .await
            .unwrap();
        assert!(!dir.path().join("x.json").exists());
        assert_eq!(
            store.get(&p("x")).await.unwrap().unwrap().kind(),
            crate::model::ValueKind::Text
        );
    }

    #[tokio::test]
    async fn unowned_files_are_never_deleted() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("README"), b"written by a human").unwrap();
        let store = FileStore::new(dir.path(), "t");
        let err = store.delete(&p("README"), "T").await.unwrap_err();
        assert_eq!(err.class, ErrorClass::Conflict);
        assert!(dir.path().join("README").exists());
        store
            .put(&p("mine"), &SecretValue::Text("x".into()), "Other")
            .await
            .unwrap();
        assert_eq!(
            store.delete(&p("mine"), "T").await.unwrap_err().class,
            ErrorClass::Conflict
        );
        assert!(dir.path().join("mine").exists());
    }

    #[tokio::test]
    async fn text_that_would_read_back_as_json_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path(), "t");
        let err = store
            .put(&p("x.json"), &SecretValue::Text(r#"{"a":1}"#.into()), "T")
            .await
            .unwrap_err();
        assert_eq!(err.class, ErrorClass::Invalid);
        assert!(
            store
                .check_value(&p("x.json"), &SecretValue::Text("[1]".into()))
                .is_ok()
        );
        assert!(
            store
                .check_value(&p(MANIFEST_FILE), &SecretValue::Text("x".into()))
                .is_err()
        );
    }

    /// Plans `desired` against the store and applies it, as a run does.
    async fn sync(store: &FileStore, desired: &[(&str, SecretValue)], adopt: bool) -> crate::plan::TargetPlan {
        let desired: SecretSet = desired.iter().map(|(k, v)| (p(k), Arc::new(v.clone()))).collect();
        let (listing, actual) = store.read_all().await.unwrap();
        let actual = actual.into_iter().collect();
        let options = crate::plan::PlanOptions {
            target: "T",
            delete_orphans: true,
            adopt,
            complete: true,
            filter: None,
        };
        let mut plan = crate::plan::plan(&desired, &listing, &actual, store, options);
        let cancel = tokio_util::sync::CancellationToken::new();
        crate::engine::apply::execute(&mut plan, store, "T", &cancel, &|| {}).await;
        plan
    }

    fn json_value(text: &str) -> SecretValue {
        SecretValue::from_string(text.into())
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn links_and_special_files_in_a_source_are_refused_and_named() {
        use std::os::unix::fs::symlink;
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        fs::create_dir_all(src.join("app")).unwrap();
        fs::write(dir.path().join("elsewhere"), "outside the folder").unwrap();
        fs::write(src.join("app/ok"), "fine").unwrap();
        symlink("/proc/self/environ", src.join("app/env")).unwrap();
        let store = FileStore::source(&src, "./src");
        let err = store.read_all().await.unwrap_err();
        assert_eq!(err.class, ErrorClass::Invalid);
        assert!(
            err.message
                .contains("`app/env` is a symbolic link; links are not followed"),
            "{err}"
        );
        assert!(store.list().await.is_err(), "listing refuses it too");
        fs::remove_file(src.join("app/env")).unwrap();
        symlink("../../elsewhere", src.join("app/up")).unwrap();
        let err = store.read_all().await.unwrap_err();
        assert!(err.message.contains("`app/up` is a symbolic link"), "{err}");
        assert!(!err.to_string().contains("outside the folder"));
        // Reading one secret by name does not follow it either.
        let err = store.get(&p("app/up")).await.unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        fs::remove_file(src.join("app/up")).unwrap();
        let status = std::process::Command::new("mkfifo")
            .arg(src.join("app/pipe"))
            .status()
            .unwrap();
        assert!(status.success());
        let err = store.read_all().await.unwrap_err();
        assert!(
            err.message
                .contains("`app/pipe` is neither a regular file nor a folder"),
            "{err}"
        );
        fs::remove_file(src.join("app/pipe")).unwrap();
        symlink(dir.path(), src.join("linked")).unwrap();
        let err = store.read_all().await.unwrap_err();
        assert!(err.message.contains("`linked` is a symbolic link"), "{err}");
        fs::remove_file(src.join("linked")).unwrap();
        assert_eq!(store.read_all().await.unwrap().1.len(), 1);
    }

    #[tokio::test]
    async fn a_humans_file_under_the_name_a_secret_would_take_is_a_conflict_until_adopted() {
        let dir = tempfile::tempdir().unwrap();
        // A text file `notes.json` (not a JSON object) is the text secret `notes.json`; the
        // JSON secret `notes` would be written to the same file.
        fs::write(dir.path().join("notes.json"), "a human's notes").unwrap();
        let store = FileStore::new(dir.path(), "t");
        let plan = sync(&store, &[("notes", json_value(r#"{"k":1}"#))], false).await;
        let change = &plan.changes[0];
        assert_eq!(change.action, crate::plan::Action::Conflict, "{change:?}");
        assert!(
            change
                .note
                .as_deref()
                .unwrap()
                .contains("already holds `notes.json`, not created by secretsync"),
            "{change:?}"
        );
        assert_eq!(
            fs::read_to_string(dir.path().join("notes.json")).unwrap(),
            "a human's notes"
        );

        let plan = sync(&store, &[("notes", json_value(r#"{"k":1}"#))], true).await;
        assert!(
            plan.changes
                .iter()
                .any(|c| c.path == p("notes") && c.result == Some(crate::plan::ApplyResult::Applied))
        );
        let fresh = FileStore::new(dir.path(), "t");
        let plan = sync(&fresh, &[("notes", json_value(r#"{"k":1}"#))], false).await;
        assert!(plan.changes.is_empty(), "converged: {:?}", plan.changes);
    }

    /// The state before the crashing run: two secrets of ours, a human's README.
    async fn crash_scene(root: &Path) {
        fs::create_dir_all(root).unwrap();
        fs::write(root.join("README"), "a human's file").unwrap();
        let store = FileStore::new(root, "t");
        let before = [
            ("keep", json_value(r#"{"v":1}"#)),
            ("gone/old", SecretValue::Text("old".into())),
            ("kind", SecretValue::Text("text".into())),
        ];
        sync(&store, &before, false).await;
    }

    #[tokio::test]
    async fn a_crash_between_any_two_steps_leaves_a_state_the_next_run_repairs_without_adopt() {
        let desired = [
            ("keep", json_value(r#"{"v":2}"#)),
            ("kind", json_value(r#"{"now":"json"}"#)),
            ("new/a", SecretValue::Text("a".into())),
            ("new/b", json_value(r#"{"b":1}"#)),
        ];
        let mut crashed_at_least_once = false;
        for n in 1.. {
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path().join("t");
            crash_scene(&root).await;
            let crashing = FileStore::crashing_at(&root, n);
            let first = sync(&crashing, &desired, false).await;
            let crashed = first.changes.iter().any(
                |c| matches!(&c.result, Some(crate::plan::ApplyResult::Failed(e)) if e.one_line().contains("injected crash")),
            );
            // The next run: a new process, no `--adopt`.
            let next = FileStore::new(&root, "t");
            let repair = sync(&next, &desired, false).await;
            assert!(
                repair
                    .changes
                    .iter()
                    .all(|c| c.result == Some(crate::plan::ApplyResult::Applied)),
                "crash at step {n}: the next run did not repair it: {:?}",
                repair.changes
            );
            let settled = FileStore::new(&root, "t");
            let (listing, values) = settled.read_all().await.unwrap();
            let want: SecretSet = desired
                .iter()
                .map(|(k, v)| (p(k), Arc::new(v.clone())))
                .chain([(p("README"), Arc::new(SecretValue::Text("a human's file".into())))])
                .collect();
            assert_eq!(
                values.keys().collect::<Vec<_>>(),
                want.keys().collect::<Vec<_>>(),
                "crash at step {n}"
            );
            for (path, value) in &want {
                assert!(values[path].semantic_eq(value), "crash at step {n}: `{path}` differs");
            }
            assert!(!listing.entries[&p("README")].is_owned_by("T"), "crash at step {n}");
            assert!(
                sync(&settled, &desired, false).await.changes.is_empty(),
                "crash at step {n}: not converged"
            );
            let temp_left = walk(&root).into_iter().any(|f| f.contains(crate::files::TMP_PREFIX));
            assert!(!temp_left, "crash at step {n}: a temporary file was left");
            if !crashed {
                assert!(crashed_at_least_once, "the injection never fired");
                break;
            }
            crashed_at_least_once = true;
        }
    }

    fn walk(dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        for entry in fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                out.extend(walk(&entry.path()));
            } else {
                out.push(entry.path().display().to_string());
            }
        }
        out
    }

    #[tokio::test]
    async fn a_batch_saves_the_manifest_once_not_once_per_secret() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::crashing_at(dir.path(), usize::MAX);
        let desired: Vec<(String, SecretValue)> = (0..50)
            .map(|i| (format!("s{i:02}"), SecretValue::Text(format!("v{i}"))))
            .collect();
        let desired: Vec<(&str, SecretValue)> = desired.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        let steps = || {
            usize::MAX
                - store
                    .inner
                    .crash_at
                    .as_ref()
                    .unwrap()
                    .load(std::sync::atomic::Ordering::SeqCst)
        };
        sync(&store, &desired, false).await;
        assert_eq!(steps(), 51, "50 files and one manifest save");
        sync(&store, &[], false).await;
        assert_eq!(steps(), 51 + 51, "50 removals and one manifest save");
    }

    #[tokio::test]
    async fn a_json_file_a_reader_would_change_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("dup.json"), r#"{"user": "a", "user": "b"}"#).unwrap();
        let store = FileStore::source(dir.path(), "./src");
        let err = store.read_all().await.unwrap_err();
        assert_eq!(err.class, ErrorClass::Invalid);
        assert!(
            err.message
                .contains("`dup.json`: the JSON object has the key `user` twice"),
            "{err}"
        );
        let err = store.get(&p("dup")).await.unwrap_err();
        assert!(err.message.contains("twice"), "{err}");
        fs::remove_file(dir.path().join("dup.json")).unwrap();
        let deep = format!("{}1{}", r#"{"k":"#.repeat(200), "}".repeat(200));
        fs::write(dir.path().join("deep.json"), deep).unwrap();
        let err = store.read_all().await.unwrap_err();
        assert!(
            err.message
                .contains("`deep.json`: the JSON object is nested more than 128 levels"),
            "{err}"
        );
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_link_planted_as_a_targets_merge_folder_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = dir.path().join("elsewhere");
        fs::create_dir_all(&elsewhere).unwrap();
        fs::create_dir_all(dir.path().join("merged")).unwrap();
        std::os::unix::fs::symlink(&elsewhere, dir.path().join("merged/T")).unwrap();
        let merge = FileMergeStore::new(dir.path().join("merged"), "merged");
        let scope = merge.for_target("T");
        let err = scope
            .put(&p("db"), &SecretValue::Text("secret".into()), "T")
            .await
            .unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        assert!(scope.list().await.is_err(), "nor read through it");
        assert_eq!(
            fs::read_dir(&elsewhere).unwrap().count(),
            0,
            "nothing written where the link points"
        );
    }
}
