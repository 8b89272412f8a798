//! Targets, sources and the merge store must not overlap: two targets writing one folder, or a
//! target writing where a source reads, would delete each other's secrets. Compared as places
//! (a normalised folder, or Vault address + namespace + mount + folder).

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use super::Compiler;
use crate::config::diagnostics::Mark;
use crate::config::pipeline::{FileLocation, MergeStoreSpec, Source, Target, TargetKind, VaultLocation, VaultSettings};
use crate::model::SecretPath;

impl Compiler<'_> {
    /// A place secretsync writes to (a target or the merge store) that overlaps a source or
    /// another such place would let a sync overwrite or delete secrets another part of the
    /// pipeline reads — or feed merged output back in as source secrets. Checked for folders
    /// and for Vault locations on the same Vault (as far as the file tells: address and
    /// namespace as written).
    pub(super) fn overlapping_directories(
        &mut self,
        vault: &VaultSettings,
        sources: &BTreeMap<String, Source>,
        merge: Option<&MergeStoreSpec>,
        targets: &BTreeMap<String, Target>,
    ) {
        let mut places: Vec<Place> = Vec::new();
        for (name, source) in sources {
            match source {
                Source::File(f) => places.push(Place::folder(format!("source `{name}`"), f)),
                Source::Vault(v) if v.paths.is_empty() => {
                    places.push(Place::vault(vault, format!("source `{name}`"), v, None));
                }
                Source::Vault(v) => {
                    for filter in &v.paths {
                        places.push(Place::vault(
                            vault,
                            format!("source `{name}`"),
                            v,
                            Some(filter.as_str()),
                        ));
                    }
                }
                Source::Aws(_) => {}
            }
        }
        let merge_store = match merge {
            Some(MergeStoreSpec::File(f)) => Some(Place::folder("the merge store".to_owned(), f)),
            Some(MergeStoreSpec::Vault(v)) => Some(Place::vault(
                vault,
                "the merge store".to_owned(),
                v,
                v.paths.first().map(SecretPath::as_str),
            )),
            _ => None,
        };
        let writing_targets = targets.iter().filter_map(|(name, t)| match &t.kind {
            TargetKind::File(f) => Some(Place::folder(format!("target `{name}`"), f)),
            TargetKind::Vault(v) => Some(Place::vault(
                vault,
                format!("target `{name}`"),
                v,
                v.paths.first().map(SecretPath::as_str),
            )),
            TargetKind::Aws(_) => None,
        });
        for writer in merge_store.into_iter().chain(writing_targets) {
            for other in &places {
                if writer.overlaps(other) {
                    self.error(
                        writer.mark,
                        format!(
                            "{} writes to `{}`, which overlaps {} (`{}`)",
                            writer.label, writer.written, other.label, other.written
                        ),
                    )
                    .hint =
                        Some("give every target and the merge store its own folder, outside the sources".to_owned());
                }
            }
            places.push(writer);
        }
    }
}

/// Somewhere the pipeline reads or writes, for the overlap check.
struct Place {
    label: String,
    written: String,
    mark: Mark,
    at: PlaceAt,
}

enum PlaceAt {
    Folder(PathBuf),
    /// The address as written, and the path segments from the namespace down to the folder.
    Vault(Option<String>, Vec<String>),
}

impl Place {
    fn folder(label: String, location: &FileLocation) -> Self {
        Self {
            label,
            written: location.written.clone(),
            mark: location.mark,
            at: PlaceAt::Folder(normalise(&location.path)),
        }
    }

    fn vault(settings: &VaultSettings, label: String, location: &VaultLocation, folder: Option<&str>) -> Self {
        let full = match folder {
            Some(f) => format!("{}/{f}", location.mount),
            None => location.mount.clone(),
        };
        let namespace = location.namespace.clone().or_else(|| settings.namespace.clone());
        // Vault routes `kv/x` in namespace `a/b` and `b/kv/x` in namespace `a` to the same
        // place, so the namespace's names lead the path compared.
        let segments = namespace
            .iter()
            .flat_map(|ns| ns.split('/'))
            .chain(full.split('/'))
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        let written = match &namespace {
            Some(ns) => format!("vault: {full} in namespace {ns}"),
            None => format!("vault: {full}"),
        };
        Self {
            label,
            written,
            mark: location.mark,
            at: PlaceAt::Vault(location.address.clone().or_else(|| settings.address.clone()), segments),
        }
    }

    fn overlaps(&self, other: &Self) -> bool {
        match (&self.at, &other.at) {
            (PlaceAt::Folder(a), PlaceAt::Folder(b)) => a.starts_with(b) || b.starts_with(a),
            (PlaceAt::Vault(va, a), PlaceAt::Vault(vb, b)) => va == vb && (a.starts_with(b) || b.starts_with(a)),
            _ => false,
        }
    }
}

/// Lexically normalises a path (`a/./b/../c` → `a/c`) without touching the file system.
fn normalise(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
}
