//! `--discovery-cache FILE --discovery-ttl 1h`: a scheduled job over hundreds of accounts need
//! not walk the organization every run. The file holds the accounts each group's methods
//! listed and a hash of the pipeline file it was made for; a different file (any change to it)
//! never reuses it. It holds accounts, not targets: targets are made from them by the same
//! selection fresh discovery uses, so an edited cache cannot name a target outside the merge
//! store or import what the pipeline does not. Written atomically, mode 0600, never through a
//! link.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Account, Collected};

/// What the cache file holds.
#[derive(Debug, Serialize, Deserialize)]
struct CacheFile {
    /// Format version.
    version: u32,
    /// SHA-256 of the pipeline file's bytes.
    config_sha256: String,
    /// When discovery ran (seconds since the epoch).
    created_at: u64,
    /// The accounts each group listed.
    accounts: BTreeMap<String, Vec<Account>>,
}

/// The format version this build reads and writes (1 held targets, which were trusted).
const VERSION: u32 = 2;

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The hash a cache entry is keyed by.
pub(crate) fn config_hash(config: &[u8]) -> String {
    Sha256::digest(config)
        .iter()
        .fold(String::with_capacity(64), |mut hex, b| {
            use std::fmt::Write as _;
            let _ = write!(hex, "{b:02x}");
            hex
        })
}

/// The accounts of a fresh result for `hash` from `path`, if there is one holding every group
/// in `groups`. An unreadable or foreign file is ignored (with a log line): the cache only
/// ever saves work.
pub(crate) fn load<'a>(
    path: &Path,
    hash: &str,
    ttl: Duration,
    groups: impl IntoIterator<Item = &'a String>,
) -> Option<Collected> {
    let bytes = match crate::files::read_regular(path) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return None,
        Err(e) => {
            tracing::warn!(cache = %path.display(), "ignoring the discovery cache: {e}");
            return None;
        }
    };
    let file: CacheFile = match serde_json::from_slice(&bytes) {
        Ok(file) => file,
        Err(e) => {
            tracing::warn!(cache = %path.display(), "ignoring an unreadable discovery cache: {e}");
            return None;
        }
    };
    if file.version != VERSION || file.config_sha256 != hash {
        tracing::info!(cache = %path.display(), "discovery cache is for another pipeline file or version; discovering again");
        return None;
    }
    let age = now().saturating_sub(file.created_at);
    if age >= ttl.as_secs() {
        tracing::info!(cache = %path.display(), age_seconds = age, "discovery cache expired; discovering again");
        return None;
    }
    let mut accounts = file.accounts;
    let mut collected = Collected::new();
    for group in groups {
        let Some(found) = accounts.remove(group) else {
            tracing::warn!(cache = %path.display(), group = %group, "the discovery cache lacks a group; discovering again");
            return None;
        };
        collected.insert(group.clone(), Ok(found));
    }
    tracing::info!(cache = %path.display(), age_seconds = age, "using cached discovery results");
    Some(collected)
}

/// Saves a result (only complete ones: a failed group is discovered again next time).
pub(crate) fn save(path: &Path, hash: &str, collected: &Collected) -> Result<(), String> {
    let mut accounts = BTreeMap::new();
    for (group, found) in collected {
        match found {
            Ok(found) => accounts.insert(group.clone(), found.clone()),
            Err(_) => return Ok(()),
        };
    }
    let file = CacheFile {
        version: VERSION,
        config_sha256: hash.to_owned(),
        created_at: now(),
        accounts,
    };
    let text = serde_json::to_string_pretty(&file).map_err(|e| e.to_string())?;
    crate::files::create_private_dirs(crate::files::parent(path))
        .and_then(|()| crate::files::write_atomic(path, text.as_bytes()))
        .map_err(|e| format!("cannot write the discovery cache {}: {e}", path.display()))
}
