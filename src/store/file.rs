//! A local directory as a store: one file per secret, for offline runs, examples and tests.
//!
//! Layout: `NAME.json` holding a JSON object is the JSON secret `NAME`; any other file is the
//! text (UTF-8) or binary secret named by its path. Writes are atomic (temp file + rename in
//! the same directory), files are created with mode 0600 and folders with 0700, and JSON is
//! pretty-printed with sorted keys so diffs of a target folder are readable.
//!
//! Ownership lives in `.secretsync-manifest.json` at the root: the files this tool wrote, and
//! for which target. Only files listed there as the caller's can be deleted; everything else
//! in the folder (a README, a file a human added) is left alone.
//!
//! File I/O runs on tokio's blocking pool so the async engine is never stalled by a disk.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::Value;

use super::{Capabilities, EntryMeta, ErrorClass, Fetched, Listing, MergeStore, Store, StoreError, WritableStore};
use crate::model::{SecretPath, SecretSet, SecretValue};

/// The ownership manifest's file name (at the store's root).
pub const MANIFEST_FILE: &str = ".secretsync-manifest.json";
/// Folder of a file merge store holding one empty file per target whose merged result is
/// complete.
const COMMITTED_DIR: &str = ".secretsync-committed";
const TMP_PREFIX: &str = ".secretsync-tmp-";

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Manifest {
    version: u32,
    /// Secret path → owning target.
    managed: BTreeMap<String, String>,
}

#[derive(Debug)]
struct Inner {
    root: PathBuf,
    display: String,
    manifest: Mutex<Option<Manifest>>,
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
        Self {
            inner: Arc::new(Inner {
                root: root.into(),
                display: display.into(),
                manifest: Mutex::new(None),
                must_exist: false,
            }),
        }
    }

    /// A store for a source: reading it fails when the folder does not exist.
    pub fn source(root: impl Into<PathBuf>, display: impl Into<String>) -> Self {
        Self {
            inner: Arc::new(Inner {
                root: root.into(),
                display: display.into(),
                manifest: Mutex::new(None),
                must_exist: true,
            }),
        }
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

fn json_object(bytes: &[u8]) -> Option<serde_json::Map<String, Value>> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Some(map),
        _ => None,
    }
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

    /// Walks the folder. With `values`, also returns every value.
    fn scan(&self, values: bool) -> Result<BTreeMap<SecretPath, Option<SecretValue>>, StoreError> {
        let mut out: BTreeMap<SecretPath, (String, Option<SecretValue>)> = BTreeMap::new();
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
                let meta = fs::metadata(&path).map_err(|e| self.io("read", &path, e))?;
                if meta.is_dir() {
                    if entry.file_type().map_err(|e| self.io("read", &path, e))?.is_symlink() {
                        return Err(self.invalid(format!(
                            "`{rel}` is a symlinked folder; symlinked folders are not followed"
                        )));
                    }
                    dirs.push((path, format!("{rel}/")));
                    continue;
                }
                if !meta.is_file() {
                    return Err(self.invalid(format!("`{rel}` is neither a file nor a folder")));
                }
                let (secret, value) = if let Some(stem) = rel.strip_suffix(".json") {
                    let bytes = fs::read(&path).map_err(|e| self.io("read", &path, e))?;
                    match json_object(&bytes) {
                        Some(map) => (stem.to_owned(), values.then_some(SecretValue::Json(map))),
                        None => (rel.clone(), values.then(|| other_value(bytes))),
                    }
                } else if values {
                    let bytes = fs::read(&path).map_err(|e| self.io("read", &path, e))?;
                    (rel.clone(), Some(other_value(bytes)))
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
        Ok(out.into_iter().map(|(k, (_, v))| (k, v)).collect())
    }

    fn read(&self, path: &SecretPath) -> Result<Option<SecretValue>, StoreError> {
        let json_file = self.root.join(format!("{path}.json"));
        let plain = self.root.join(path.as_str());
        let as_json = match read_if_file(&json_file).map_err(|e| self.io("read", &json_file, e))? {
            Some(bytes) => json_object(&bytes).map(Found::Json),
            None => None,
        };
        let as_other = match read_if_file(&plain).map_err(|e| self.io("read", &plain, e))? {
            Some(bytes) if path.as_str().ends_with(".json") && json_object(&bytes).is_some() => None,
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

    fn manifest<T>(&self, work: impl FnOnce(&mut Manifest) -> T) -> Result<T, StoreError> {
        let mut guard = self.manifest.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if guard.is_none() {
            let file = self.root.join(MANIFEST_FILE);
            let manifest = match fs::read(&file) {
                Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                    self.invalid(format!(
                        "the ownership manifest `{MANIFEST_FILE}` is corrupt ({e}); fix or remove it"
                    ))
                })?,
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => Manifest {
                    version: 1,
                    managed: BTreeMap::new(),
                },
                Err(err) => return Err(self.io("read", &file, err)),
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
        self.write_atomic(&self.root.join(MANIFEST_FILE), &bytes)
    }

    fn write_atomic(&self, target: &Path, bytes: &[u8]) -> Result<(), StoreError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let dir = target.parent().unwrap_or(&self.root);
        create_private_dirs(dir).map_err(|e| self.io("create folder", dir, e))?;
        let tmp = dir.join(format!(
            "{TMP_PREFIX}{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let result = (|| {
            let mut file = private_file(&tmp)?;
            file.write_all(bytes)?;
            file.sync_all()?;
            fs::rename(&tmp, target)
        })();
        if let Err(err) = result {
            let _ = fs::remove_file(&tmp);
            return Err(self.io("write", target, err));
        }
        Ok(())
    }

    fn put(&self, path: &SecretPath, value: &SecretValue, owner: &str) -> Result<(), StoreError> {
        check_value(path, value).map_err(|m| self.invalid(m))?;
        let json_file = self.root.join(format!("{path}.json"));
        let plain = self.root.join(path.as_str());
        let (file, stale) = match value {
            SecretValue::Json(_) => (&json_file, read_if_file(&plain).ok().flatten().map(|_| &plain)),
            _ => (
                &plain,
                read_if_file(&json_file)
                    .ok()
                    .flatten()
                    .filter(|b| json_object(b).is_some())
                    .map(|_| &json_file),
            ),
        };
        self.write_atomic(file, &value.to_bytes())?;
        if let Some(stale) = stale {
            fs::remove_file(stale).map_err(|e| self.io("remove", stale, e))?;
        }
        self.manifest(|m| m.managed.insert(path.to_string(), owner.to_owned()))?;
        self.save_manifest()
    }

    fn delete(&self, path: &SecretPath, owner: &str) -> Result<(), StoreError> {
        let recorded = self.manifest(|m| m.managed.get(path.as_str()).cloned())?;
        let exists = self.read(path)?.is_some();
        if recorded.as_deref() != Some(owner) {
            if !exists {
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
        let json_file = self.root.join(format!("{path}.json"));
        let plain = self.root.join(path.as_str());
        if read_if_file(&json_file)
            .ok()
            .flatten()
            .is_some_and(|b| json_object(&b).is_some())
        {
            fs::remove_file(&json_file).map_err(|e| self.io("remove", &json_file, e))?;
        }
        let plain_is_this_secret = read_if_file(&plain)
            .ok()
            .flatten()
            .is_some_and(|b| !(path.as_str().ends_with(".json") && json_object(&b).is_some()));
        if plain_is_this_secret {
            fs::remove_file(&plain).map_err(|e| self.io("remove", &plain, e))?;
        }
        remove_empty_parents(&self.root, &plain);
        self.manifest(|m| m.managed.remove(path.as_str()))?;
        self.save_manifest()
    }
}

fn read_if_file(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    match fs::metadata(path) {
        Ok(meta) if meta.is_file() => fs::read(path).map(Some),
        Ok(_) => Ok(None),
        Err(err)
            if matches!(
                err.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
            ) =>
        {
            Ok(None)
        }
        Err(err) => Err(err),
    }
}

fn remove_empty_parents(root: &Path, file: &Path) {
    let mut dir = file.parent();
    while let Some(d) = dir {
        if d == root || !d.starts_with(root) || fs::remove_dir(d).is_err() {
            break;
        }
        dir = d.parent();
    }
}

#[cfg(unix)]
fn create_private_dirs(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

#[cfg(not(unix))]
fn create_private_dirs(dir: &Path) -> std::io::Result<()> {
    fs::create_dir_all(dir)
}

#[cfg(unix)]
fn private_file(path: &Path) -> std::io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn private_file(path: &Path) -> std::io::Result<fs::File> {
    fs::OpenOptions::new().write(true).create_new(true).open(path)
}

/// Whether a value can be stored at a path in a file store.
fn check_value(path: &SecretPath, value: &SecretValue) -> Result<(), String> {
    if path.segments().any(|s| s.starts_with(TMP_PREFIX)) || path.as_str() == MANIFEST_FILE {
        return Err(format!("`{path}` is a name secretsync reserves in file stores"));
    }
    let object_text = match value {
        SecretValue::Json(_) => false,
        SecretValue::Text(text) => json_object(text.as_bytes()).is_some(),
        SecretValue::Binary(bytes) => json_object(bytes).is_some(),
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
        self.blocking(|inner| {
            let found = inner.scan(false)?;
            let managed = inner.manifest(|m| m.managed.clone())?;
            let entries = found
                .into_keys()
                .map(|path| {
                    let meta = managed
                        .get(path.as_str())
                        .map_or_else(EntryMeta::unmanaged, |t| EntryMeta::owned_by(t));
                    (path, meta)
                })
                .collect();
            Ok(Listing {
                entries,
                notes: Vec::new(),
            })
        })
        .await
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
        self.blocking(|inner| {
            let found = inner.scan(true)?;
            let managed = inner.manifest(|m| m.managed.clone())?;
            let mut listing = Listing::default();
            let mut set = SecretSet::new();
            for (path, value) in found {
                let meta = managed
                    .get(path.as_str())
                    .map_or_else(EntryMeta::unmanaged, |t| EntryMeta::owned_by(t));
                listing.entries.insert(path.clone(), meta);
                if let Some(value) = value {
                    set.insert(path, Arc::new(value));
                }
            }
            Ok((listing, set))
        })
        .await
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
    async fn put(&self, path: &SecretPath, value: &SecretValue, owner: &str) -> Result<(), StoreError> {
        let (path, value, owner) = (path.clone(), value.clone(), owner.to_owned());
        self.blocking(move |inner| inner.put(&path, &value, &owner)).await
    }

    async fn delete(&self, path: &SecretPath, owner: &str) -> Result<(), StoreError> {
        let (path, owner) = (path.clone(), owner.to_owned());
        self.blocking(move |inner| inner.delete(&path, &owner)).await
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
        Arc::new(FileStore::new(
            self.root.join(target),
            format!("{}/{target}", self.display),
        ))
    }

    async fn has_result(&self, target: &str) -> Result<bool, StoreError> {
        let marker = self.marker(target);
        tokio::fs::try_exists(&marker).await.map_err(|e| {
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
        let store = FileStore::new(self.root.join(target), format!("{}/{target}", self.display));
        store.blocking(Inner::save_manifest).await?;
        let marker = self.marker(target);
        let written = async {
            tokio::fs::create_dir_all(marker.parent().unwrap_or(&self.root)).await?;
            tokio::fs::write(&marker, b"").await
        };
        written.await.map_err(|e| {
            StoreError::from_io(
                format!("{}: cannot write `{}`: {e}", self.describe(), marker.display()),
                e,
            )
        })
    }
}

impl FileMergeStore {
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
}
