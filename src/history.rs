//! Revisions of the merged results, so a bad push can be seen and undone.
//!
//! Every run that changes a target's merged result writes a *snapshot* of that result beside the
//! merge store (`{seq}@{target}`), and at its end one *revision record* (`{seq}`): who ran it,
//! when, the config's hash, and per target a content hash and the secret names created, updated
//! and deleted — never values. A target's state at revision N is its newest snapshot at or
//! before N; a target with no snapshot at all has not changed since history began, so its
//! current merged result is its state at every revision.
//!
//! This module is the format and the rules (names, retention, lookups); the merge stores keep
//! the records (a history folder or prefix beside the merged results) and `engine::apply`
//! writes them, so writing stays in one place.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};

use crate::failure::{ErrorClass, Failure};
use crate::model::{SecretPath, SecretSet, SecretValue};
use crate::store::MergeStore;

/// Who ran a run: what the machine says (OS user, GitHub Actions context) and, when a revision
/// is recorded, the identities the run's credentials belong to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The operating-system user (`USER`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_user: Option<String>,
    /// In GitHub Actions: the actor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub github_actor: Option<String>,
    /// `owner/repo`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub github_repository: Option<String>,
    /// The workflow's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub github_workflow: Option<String>,
    /// The commit the workflow runs on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub github_sha: Option<String>,
    /// The AWS caller (`sts:GetCallerIdentity` ARN), when the run used AWS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_caller_arn: Option<String>,
    /// The Vault token's identity (display name and entity id), when the run used Vault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vault_identity: Option<String>,
}

impl Identity {
    /// The identity from the process environment.
    pub fn from_env() -> Self {
        use crate::env::{EnvVars, var};
        let set = |name: &str| var(name).filter(|v| !v.is_empty());
        Self {
            os_user: set(EnvVars::USER),
            github_actor: set(EnvVars::GITHUB_ACTOR),
            github_repository: set(EnvVars::GITHUB_REPOSITORY),
            github_workflow: set(EnvVars::GITHUB_WORKFLOW),
            github_sha: set(EnvVars::GITHUB_SHA),
            aws_caller_arn: None,
            vault_identity: None,
        }
    }

    /// One line for people: `alice (aws arn:…; vault …; github octocat on org/repo)`.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if let Some(arn) = &self.aws_caller_arn {
            parts.push(format!("aws {arn}"));
        }
        if let Some(vault) = &self.vault_identity {
            parts.push(format!("vault {vault}"));
        }
        if let Some(actor) = &self.github_actor {
            let mut github = format!("github {actor}");
            if let Some(repo) = &self.github_repository {
                let _ = write!(github, " on {repo}");
            }
            if let Some(sha) = &self.github_sha {
                let _ = write!(github, "@{}", sha.get(..12).unwrap_or(sha));
            }
            parts.push(github);
        }
        let user = self.os_user.as_deref().unwrap_or("unknown user");
        if parts.is_empty() {
            user.to_owned()
        } else {
            format!("{user} ({})", parts.join("; "))
        }
    }
}

/// Finds out who the run's credentials belong to; asked only when a revision is recorded or a
/// run appends to `--audit-log`, so a run that changes nothing makes no identity call.
#[async_trait]
pub trait Identify: Send + Sync {
    /// The identity to record.
    async fn identify(&self) -> Identity;
}

/// The environment's identity only (tests, and runs without network identities).
#[derive(Debug, Clone, Default)]
pub struct FixedIdentity(pub Identity);

#[async_trait]
impl Identify for FixedIdentity {
    async fn identify(&self) -> Identity {
        self.0.clone()
    }
}

/// What a revision did to one target's merged result. Names and counts only: a hash of the
/// values would let anyone who can list the history test guesses of a short secret, so hashes
/// live in the snapshot, which holds the values anyway.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetChange {
    /// Secrets in the merged result after the run.
    pub secrets: usize,
    /// Secret names added.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub created: Vec<String>,
    /// Secret names whose value changed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub updated: Vec<String>,
    /// Secret names removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deleted: Vec<String>,
    /// The store's version of the snapshot (S3 `VersionId` on a versioned bucket, the KV v2
    /// version), when the store has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_version: Option<String>,
}

/// One revision record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revision {
    /// Its number (1, 2, …; newer is larger).
    pub revision: u64,
    /// The run's id (its log lines, JSON report and audit-log lines carry it too).
    pub run_id: String,
    /// When it was recorded (UTC).
    pub time: String,
    /// For a rollback: the revision it went back to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_to: Option<u64>,
    /// Who ran it.
    pub identity: Identity,
    /// SHA-256 of the pipeline file the run used.
    pub config_sha256: String,
    /// What changed, per target.
    pub targets: BTreeMap<String, TargetChange>,
}

/// What a run records its revision with.
#[derive(Clone, Copy)]
pub struct Recording<'a> {
    /// Revisions to keep (at least 1).
    pub keep: u32,
    /// The run's id.
    pub run_id: &'a str,
    /// SHA-256 of the pipeline file.
    pub config_sha256: &'a str,
    /// For a rollback: the revision it goes back to.
    pub rollback_to: Option<u64>,
    /// Who is running.
    pub identify: &'a dyn Identify,
}

impl std::fmt::Debug for Recording<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recording")
            .field("keep", &self.keep)
            .field("run_id", &self.run_id)
            .field("rollback_to", &self.rollback_to)
            .finish_non_exhaustive()
    }
}

/// A history record's name, parsed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum RecordName {
    /// `00000012`: revision 12's record.
    Revision(u64),
    /// `00000012@staging`: `staging`'s merged result as revision 12 left it.
    Snapshot(u64, String),
    /// `00000012-audit-5d0b3c8e1f2a4b6c`: the audit lines of run `5d0b…`, made when revision
    /// 12 was the newest (pruned with it).
    Audit(u64, String),
}

impl RecordName {
    /// Parses a record name; `None` for names that are not history records.
    pub fn parse(name: &str) -> Option<Self> {
        // At least eight digits; more only past 99,999,999 (no leading zero), as `Display`
        // writes them.
        let digits = name.bytes().take_while(u8::is_ascii_digit).count();
        if digits < 8 || digits > 8 && name.starts_with('0') {
            return None;
        }
        let seq = name[..digits].parse().ok()?;
        let rest = &name[digits..];
        if rest.is_empty() {
            return Some(Self::Revision(seq));
        }
        if let Some(target) = rest.strip_prefix('@').filter(|t| !t.is_empty()) {
            return Some(Self::Snapshot(seq, target.to_owned()));
        }
        let run = rest.strip_prefix("-audit-").filter(|r| !r.is_empty())?;
        Some(Self::Audit(seq, run.to_owned()))
    }

    /// The revision number.
    pub fn seq(&self) -> u64 {
        match self {
            Self::Revision(seq) | Self::Snapshot(seq, _) | Self::Audit(seq, _) => *seq,
        }
    }
}

impl std::fmt::Display for RecordName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Revision(seq) => write!(f, "{seq:08}"),
            Self::Snapshot(seq, target) => write!(f, "{seq:08}@{target}"),
            Self::Audit(seq, run) => write!(f, "{seq:08}-audit-{run}"),
        }
    }
}

/// The number the next revision gets: one more than any record's (snapshots of a run that
/// died before its record count too, so nothing is ever overwritten).
pub fn next_revision<'a>(names: impl IntoIterator<Item = &'a RecordName>) -> u64 {
    names.into_iter().map(RecordName::seq).max().unwrap_or(0) + 1
}

/// The records retention removes so that `keep` revisions remain. With K the oldest kept
/// revision: older revision records go, and each target keeps its snapshots from K on plus, if
/// it has none at K, its newest one before K (its state at K). So every kept revision can still be rolled back to,
/// and a target's current snapshot is never removed, however old.
pub fn to_prune(names: &[RecordName], keep: u32) -> Vec<RecordName> {
    let mut revisions: Vec<u64> = names
        .iter()
        .filter_map(|n| match n {
            RecordName::Revision(seq) => Some(*seq),
            RecordName::Snapshot(..) | RecordName::Audit(..) => None,
        })
        .collect();
    revisions.sort_unstable_by(|a, b| b.cmp(a));
    let keep = usize::try_from(keep.max(1)).unwrap_or(usize::MAX);
    let Some(&oldest_kept) = revisions.get(keep - 1) else {
        return Vec::new();
    };
    // Each target's state at K: its newest snapshot at or before K.
    let mut state_at_oldest: BTreeMap<&str, u64> = BTreeMap::new();
    for name in names {
        if let RecordName::Snapshot(seq, target) = name
            && *seq <= oldest_kept
        {
            let slot = state_at_oldest.entry(target).or_insert(*seq);
            *slot = (*slot).max(*seq);
        }
    }
    let mut prune: Vec<RecordName> = names
        .iter()
        .filter(|name| match name {
            RecordName::Revision(seq) | RecordName::Audit(seq, _) => *seq < oldest_kept,
            RecordName::Snapshot(seq, target) => {
                *seq < oldest_kept && state_at_oldest.get(target.as_str()) != Some(seq)
            }
        })
        .cloned()
        .collect();
    prune.sort_by_key(ToString::to_string);
    prune
}

/// SHA-256 of a merged result: every path with its kind and canonical bytes, in path order.
pub fn content_hash(set: &SecretSet) -> String {
    let mut hash = Sha256::new();
    for (path, value) in set {
        hash.update(path.as_str().as_bytes());
        hash.update([0]);
        hash.update(value.kind().to_string().as_bytes());
        hash.update([0]);
        let bytes = value.to_bytes();
        hash.update((bytes.len() as u64).to_be_bytes());
        hash.update(&bytes);
    }
    hex(&hash.finalize())
}

/// SHA-256 of text, in hex (the pipeline file's hash).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// What a run saw in a target's merged result before writing it: every name, and the value of
/// each name it was about to write (the values it read). A later check recomputes it from the
/// previous snapshot; when the two differ, the merged result changed between the two
/// snapshots without being recorded.
pub fn observation_hash<'a>(
    names: impl IntoIterator<Item = &'a SecretPath>,
    value: impl Fn(&SecretPath) -> Option<&'a SecretValue>,
) -> String {
    let mut hash = Sha256::new();
    for path in names {
        hash.update(path.as_str().as_bytes());
        hash.update([0]);
        match value(path) {
            Some(value) => {
                hash.update(value.kind().to_string().as_bytes());
                hash.update([0]);
                let bytes = value.to_bytes();
                hash.update((bytes.len() as u64).to_be_bytes());
                hash.update(&bytes);
            }
            None => hash.update([1]),
        }
    }
    hex(&hash.finalize())
}

/// A snapshot as stored: `{"target": …, "revision": N, "sha256": …, "before": …, "secrets":
/// {path: {"json"|"text"|"hex": …}}}` (a JSON object, so every merge store — Vault KV included
/// — can hold it). `sha256` is the [`content_hash`]; `before` the run's
/// [`observation_hash`] of the merged result it replaced.
pub fn snapshot_record(target: &str, seq: u64, set: &SecretSet, before: &str) -> Value {
    let secrets: Map<String, Value> = set
        .iter()
        .map(|(path, value)| {
            let encoded = match &**value {
                SecretValue::Json(map) => ("json", Value::Object(map.clone())),
                SecretValue::Text(text) => ("text", Value::String(text.clone())),
                SecretValue::Binary(bytes) => ("hex", Value::String(hex(bytes))),
            };
            (
                path.to_string(),
                Value::Object(Map::from_iter([(encoded.0.to_owned(), encoded.1)])),
            )
        })
        .collect();
    serde_json::json!({
        "target": target,
        "revision": seq,
        "sha256": content_hash(set),
        "before": before,
        "secrets": secrets,
    })
}

/// The merged result a snapshot holds; an error names what is wrong (never a value).
pub fn snapshot_from_record(record: &Value) -> Result<SecretSet, String> {
    let secrets = record
        .get("secrets")
        .and_then(Value::as_object)
        .ok_or("it has no `secrets` object")?;
    let mut set = SecretSet::new();
    for (path, encoded) in secrets {
        let path = SecretPath::parse(path).map_err(|e| format!("secret `{path}`: {e}"))?;
        let value = match encoded.as_object().and_then(|o| o.iter().next()) {
            Some((kind, Value::Object(map))) if kind == "json" => SecretValue::Json(map.clone()),
            Some((kind, Value::String(text))) if kind == "text" => SecretValue::Text(text.clone()),
            Some((kind, Value::String(text))) if kind == "hex" => {
                SecretValue::Binary(unhex(text).ok_or_else(|| format!("secret `{path}`: its bytes are not hex"))?)
            }
            _ => return Err(format!("secret `{path}` is not `{{json|text|hex: …}}`")),
        };
        set.insert(path, Arc::new(value));
    }
    Ok(set)
}

/// Where a target's state at a revision is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateAt {
    /// In this snapshot.
    Snapshot(RecordName),
    /// The target has no snapshot at all: its merged result has not changed since history
    /// began, so the current one is its state.
    Current,
    /// Its history starts after the revision asked (or that part was pruned).
    Unknown {
        /// The target's oldest snapshot.
        first: u64,
    },
}

/// A merge store's history, as listed: record names and the revision records.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// Every record name.
    pub names: Vec<RecordName>,
    /// Revision records by number.
    pub revisions: BTreeMap<u64, Revision>,
}

impl History {
    /// Lists and reads `merge`'s revision records (snapshots are read on demand).
    pub async fn load(merge: &dyn MergeStore) -> Result<Self, Failure> {
        let listed = merge
            .history_names()
            .await
            .map_err(|e| e.failure().context("cannot list the merge store's history"))?;
        let mut names: Vec<RecordName> = listed.iter().filter_map(|n| RecordName::parse(n)).collect();
        names.sort();
        let mut revisions = BTreeMap::new();
        for name in &names {
            if let RecordName::Revision(seq) = name {
                let Some(record) = merge
                    .history_read(&name.to_string())
                    .await
                    .map_err(|e| e.failure().context(format!("cannot read revision {seq}")))?
                else {
                    continue;
                };
                // One damaged record must not hide the others (or block a rollback to them).
                match serde_json::from_value::<Revision>(record) {
                    Ok(revision) => {
                        revisions.insert(*seq, revision);
                    }
                    Err(e) => tracing::warn!(
                        "revision {seq} in {} is not a revision record ({e}); it is left out",
                        merge.describe()
                    ),
                }
            }
        }
        Ok(Self { names, revisions })
    }

    /// The revision `text` names: a number (`12`), `latest`, or `previous` (the one before
    /// the latest).
    pub fn resolve(&self, text: &str) -> Result<u64, Failure> {
        let newest: Vec<u64> = self.revisions.keys().rev().copied().collect();
        let listed = || {
            let shown: Vec<String> = newest.iter().take(5).map(u64::to_string).collect();
            if shown.is_empty() {
                "the merge store has no revisions yet (a revision is recorded by every run that changes a merged result)".to_owned()
            } else {
                format!("newest revisions: {}", shown.join(", "))
            }
        };
        if text.trim() == "live" {
            return Err(Failure::new(
                ErrorClass::Invalid,
                "`live` is not a revision: history holds merged results, not what the targets hold now",
            )
            .with_hint("to compare revision N with the live targets, run `secretsync rollback --to N --dry-run`: its plan is the difference"));
        }
        let wanted = match text.trim().trim_start_matches(['r', '#']) {
            "latest" => newest.first().copied(),
            "previous" => newest.get(1).copied(),
            number => number.parse::<u64>().ok().filter(|n| self.revisions.contains_key(n)),
        };
        wanted.ok_or_else(|| {
            Failure::new(ErrorClass::NotFound, format!("no revision `{text}` in the history"))
                .with_hint(format!("{}; `secretsync history` lists them", listed()))
        })
    }

    /// Where `target`'s state at `revision` is.
    pub fn state_at(&self, target: &str, revision: u64) -> StateAt {
        let seqs = self.snapshots_of(target);
        match (seqs.range(..=revision).next_back(), seqs.first()) {
            (Some(seq), _) => StateAt::Snapshot(RecordName::Snapshot(*seq, target.to_owned())),
            (None, None) => StateAt::Current,
            (None, Some(first)) => StateAt::Unknown { first: *first },
        }
    }

    /// The revisions with a snapshot of `target`.
    fn snapshots_of(&self, target: &str) -> BTreeSet<u64> {
        self.names
            .iter()
            .filter_map(|n| match n {
                RecordName::Snapshot(seq, t) if t == target => Some(*seq),
                _ => None,
            })
            .collect()
    }

    /// `target`'s merged result at `revision` (`None`: it has no snapshot, so its current
    /// merged result is its state at every revision), checked against what came after it.
    ///
    /// Its newest snapshot at or before `revision` is its state there only if nothing changed
    /// the merged result between that snapshot and the next one (or, after the newest, the
    /// current merged result) without being recorded: a run with history off, an older
    /// secretsync, or a run whose snapshot could not be written. Such a change is found by
    /// comparing what the next snapshot's run saw before writing (`before`) with the earlier
    /// snapshot, or the current merged result with the newest one; the target is then refused
    /// rather than put back to a state it may never have had at `revision`.
    pub async fn checked_state(
        &self,
        merge: &dyn MergeStore,
        target: &str,
        revision: u64,
    ) -> Result<Option<SecretSet>, Failure> {
        let record = match self.state_at(target, revision) {
            StateAt::Current => return Ok(None),
            StateAt::Unknown { first } => {
                return Err(Failure::new(
                    ErrorClass::NotFound,
                    format!(
                        "`{target}` has no recorded state at revision {revision} (its history begins at revision {first})"
                    ),
                )
                .with_hint(format!(
                    "use revision {first} or later, or leave `{target}` out (`--targets`)"
                )));
            }
            StateAt::Snapshot(record) => record,
        };
        let at = record.seq();
        let state = read_snapshot(merge, &record).await?;
        if at == revision {
            return Ok(Some(state));
        }
        let next = self.snapshots_of(target).range(at + 1..).next().copied();
        let unchanged = if let Some(next) = next {
            let name = RecordName::Snapshot(next, target.to_owned());
            let record = read_record(merge, &name).await?;
            let later = snapshot_from_record(&record).map_err(|problem| unreadable(merge, &name, &problem))?;
            let seen = observation_hash(state.keys(), |p| later.contains_key(p).then(|| &*state[p]));
            record.get("before").and_then(Value::as_str) == Some(seen.as_str())
        } else {
            let (listing, current) = merge
                .for_target(target)
                .read_all()
                .await
                .map_err(|e| e.failure().context(format!("cannot read `{target}`'s merged result")))?;
            let live = listing.entries.iter().filter(|(_, meta)| !meta.pending_deletion);
            live.clone().count() == state.len()
                && live.map(|(p, _)| p).all(|p| match (current.get(p), state.get(p)) {
                    (Some(now), Some(then)) => now.semantic_eq(then),
                    _ => false,
                })
        };
        if unchanged {
            return Ok(Some(state));
        }
        let after = next.map_or_else(|| "since".to_owned(), |n| format!("between it and revision {n}"));
        Err(Failure::new(
            ErrorClass::Guarded,
            format!(
                "`{target}`'s state at revision {revision} is not known: its merged result was recorded at revision {at}, and changed {after} without being recorded (a run with history off, an older secretsync, or a snapshot that could not be written)"
            ),
        )
        .with_hint(format!(
            "use revision {at} (its recorded state){}, or leave `{target}` out (`--targets`)",
            next.map_or_else(String::new, |n| format!(" or {n}"))
        )))
    }

    /// Every target with a snapshot.
    pub fn targets(&self) -> BTreeSet<String> {
        self.names
            .iter()
            .filter_map(|n| match n {
                RecordName::Snapshot(_, t) => Some(t.clone()),
                RecordName::Revision(_) | RecordName::Audit(..) => None,
            })
            .collect()
    }
}

/// Reads a snapshot's merged result.
pub async fn read_snapshot(merge: &dyn MergeStore, name: &RecordName) -> Result<SecretSet, Failure> {
    let record = read_record(merge, name).await?;
    snapshot_from_record(&record).map_err(|problem| unreadable(merge, name, &problem))
}

async fn read_record(merge: &dyn MergeStore, name: &RecordName) -> Result<Value, Failure> {
    merge
        .history_read(&name.to_string())
        .await
        .map_err(|e| e.failure().context(format!("cannot read the snapshot `{name}`")))?
        .ok_or_else(|| {
            Failure::new(
                ErrorClass::NotFound,
                format!("the snapshot `{name}` is listed but could not be read"),
            )
        })
}

fn unreadable(merge: &dyn MergeStore, name: &RecordName, problem: &str) -> Failure {
    Failure::new(
        ErrorClass::Invalid,
        format!(
            "the snapshot `{name}` in {} cannot be read: {problem}",
            merge.describe()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<RecordName> {
        list.iter().map(|n| RecordName::parse(n).unwrap()).collect()
    }

    fn shown(list: &[RecordName]) -> Vec<String> {
        list.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn record_names_round_trip_and_foreign_names_are_ignored() {
        for name in [
            "00000001",
            "00000012@staging",
            "00000012@a.b-c_d",
            "00000012-audit-5d0b3c8e1f2a4b6c",
            "00000012@x-audit-y",
        ] {
            assert_eq!(RecordName::parse(name).unwrap().to_string(), name);
        }
        assert_eq!(
            RecordName::parse("00000012@x-audit-y"),
            Some(RecordName::Snapshot(12, "x-audit-y".to_owned()))
        );
        for other in [
            "1",
            "0000001x",
            "00000001@",
            "lock.json",
            "000000001",
            "0123456789",
            "00000001-audit-",
            "00000001-x",
        ] {
            assert_eq!(RecordName::parse(other), None, "{other}");
        }
        assert_eq!(next_revision(&names(&["00000003", "00000007@a"])), 8);
        // Past eight digits the name grows, and still parses and sorts by number.
        let big = RecordName::Snapshot(123_456_789, "a".to_owned());
        assert_eq!(big.to_string(), "123456789@a");
        assert_eq!(RecordName::parse("123456789@a"), Some(big));
        assert_eq!(next_revision(&names(&["99999999", "123456789"])), 123_456_790);
        assert_eq!(next_revision(&[]), 1);
    }

    #[test]
    fn retention_keeps_the_newest_revisions_and_every_targets_state_at_the_oldest_kept() {
        // Revisions 1..=4; `a` changed in 1, 2 and 4; `b` only in 1; the audit lines of runs
        // made while 1 and 4 were the newest.
        let all = names(&[
            "00000001",
            "00000001-audit-r1",
            "00000001@a",
            "00000001@b",
            "00000002",
            "00000002@a",
            "00000003",
            "00000004",
            "00000004@a",
            "00000004-audit-r4",
        ]);
        // keep 4 (exactly the number there is): nothing goes.
        assert!(to_prune(&all, 4).is_empty());
        assert!(to_prune(&all, 5).is_empty());
        // keep 3: revision 1's record goes; `a`@1 goes (a@2 is its state at 2); `b`@1 stays
        // (b's current state).
        assert_eq!(
            shown(&to_prune(&all, 3)),
            ["00000001", "00000001-audit-r1", "00000001@a"]
        );
        // keep 2 (oldest kept = 3): a@2 is a's state at 3, so it stays.
        assert_eq!(
            shown(&to_prune(&all, 2)),
            ["00000001", "00000001-audit-r1", "00000001@a", "00000002"]
        );
        // keep 1: only revision 4; a@4 is current, b@1 is b's state.
        assert_eq!(
            shown(&to_prune(&all, 1)),
            [
                "00000001",
                "00000001-audit-r1",
                "00000001@a",
                "00000002",
                "00000002@a",
                "00000003"
            ]
        );
        // keep 0 is treated as 1: the current revision is never pruned.
        assert_eq!(to_prune(&all, 0), to_prune(&all, 1));
    }

    #[test]
    fn a_targets_state_is_its_newest_snapshot_at_or_before_the_revision() {
        let history = History {
            names: names(&[
                "00000001",
                "00000001@a",
                "00000002",
                "00000003",
                "00000003@a",
                "00000003@b",
            ]),
            revisions: BTreeMap::new(),
        };
        let snap = |n: &str| StateAt::Snapshot(RecordName::parse(n).unwrap());
        assert_eq!(history.state_at("a", 2), snap("00000001@a"));
        assert_eq!(history.state_at("a", 3), snap("00000003@a"));
        assert_eq!(history.state_at("b", 1), StateAt::Unknown { first: 3 });
        assert_eq!(history.state_at("c", 1), StateAt::Current);
    }

    #[test]
    fn snapshots_keep_every_kind_of_value_exactly() {
        let mut set = SecretSet::new();
        let json: Map<String, Value> = serde_json::from_str(r#"{"n": 1.50, "deep": {"k": [1, "x"]}}"#).unwrap();
        set.insert(SecretPath::parse("app/db").unwrap(), Arc::new(SecretValue::Json(json)));
        set.insert(
            SecretPath::parse("cert").unwrap(),
            Arc::new(SecretValue::Text("-----BEGIN".into())),
        );
        set.insert(
            SecretPath::parse("blob").unwrap(),
            Arc::new(SecretValue::Binary(vec![0, 255, 16])),
        );
        let record = snapshot_record("t", 3, &set, "");
        let text = serde_json::to_string(&record).unwrap();
        let back = snapshot_from_record(&serde_json::from_str(&text).unwrap()).unwrap();
        assert_eq!(back.len(), 3);
        for (path, value) in &set {
            assert!(back[path].semantic_eq(value), "{path}");
            assert_eq!(back[path].to_bytes(), value.to_bytes(), "{path}");
        }
        assert_eq!(content_hash(&back), content_hash(&set));
        let mut changed = set.clone();
        changed.insert(
            SecretPath::parse("cert").unwrap(),
            Arc::new(SecretValue::Text("other".into())),
        );
        assert_ne!(content_hash(&changed), content_hash(&set));
    }

    #[test]
    fn revisions_are_named_by_number_latest_or_previous() {
        let revision = |n: u64| Revision {
            revision: n,
            run_id: format!("run{n}"),
            time: String::new(),
            rollback_to: None,
            identity: Identity::default(),
            config_sha256: String::new(),
            targets: BTreeMap::new(),
        };
        let history = History {
            names: Vec::new(),
            revisions: (1..=3).map(|n| (n, revision(n))).collect(),
        };
        assert_eq!(history.resolve("2").unwrap(), 2);
        assert_eq!(history.resolve("r2").unwrap(), 2);
        assert_eq!(history.resolve("latest").unwrap(), 3);
        assert_eq!(history.resolve("previous").unwrap(), 2);
        assert!(
            history
                .resolve("live")
                .unwrap_err()
                .hint
                .unwrap()
                .contains("rollback --to N --dry-run")
        );
        let missing = history.resolve("9").unwrap_err();
        assert_eq!(missing.class, ErrorClass::NotFound);
        assert!(missing.hint.unwrap().contains("3, 2, 1"));
    }
}
