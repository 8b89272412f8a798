//! `--discovery-cache FILE --discovery-ttl 1h`: a scheduled job over hundreds of accounts need
//! not walk the organization every run. The file holds the result and a hash of the pipeline
//! file it was made for; a different file (any change to it) never reuses it.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Discovered;

/// What the cache file holds.
#[derive(Debug, Serialize, Deserialize)]
struct CacheFile {
    /// Format version.
    version: u32,
    /// SHA-256 of the pipeline file's bytes.
    config_sha256: String,
    /// When discovery ran (seconds since the epoch).
    created_at: u64,
    /// The result.
    discovered: Discovered,
}

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

/// A fresh result for `hash` from `path`, if there is one. An unreadable or foreign file is
/// ignored (with a log line): the cache only ever saves work.
pub(crate) fn load(path: &Path, hash: &str, ttl: Duration) -> Option<Discovered> {
    let text = std::fs::read_to_string(path).ok()?;
    let file: CacheFile = match serde_json::from_str(&text) {
        Ok(file) => file,
        Err(e) => {
            tracing::warn!(cache = %path.display(), "ignoring an unreadable discovery cache: {e}");
            return None;
        }
    };
    if file.version != 1 || file.config_sha256 != hash {
        tracing::info!(cache = %path.display(), "discovery cache is for another pipeline file; discovering again");
        return None;
    }
    let age = now().saturating_sub(file.created_at);
    if age >= ttl.as_secs() {
        tracing::info!(cache = %path.display(), age_seconds = age, "discovery cache expired; discovering again");
        return None;
    }
    tracing::info!(cache = %path.display(), age_seconds = age, "using cached discovery results");
    Some(file.discovered)
}

/// Saves a result (only complete ones: a failed group is discovered again next time).
pub(crate) fn save(path: &Path, hash: &str, discovered: &Discovered) -> Result<(), String> {
    if discovered.groups.iter().any(|g| g.error.is_some()) {
        return Ok(());
    }
    let file = CacheFile {
        version: 1,
        config_sha256: hash.to_owned(),
        created_at: now(),
        discovered: discovered.clone(),
    };
    let text = serde_json::to_string_pretty(&file).map_err(|e| e.to_string())?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    std::fs::write(path, text).map_err(|e| format!("cannot write the discovery cache {}: {e}", path.display()))
}
