//! The plan: what to change in one target so that it holds the desired secrets.
//!
//! Pure and synchronous (`engine::apply` executes plans; nothing here writes). The same
//! function plans dry runs and real runs, so a dry run shows exactly what a run would do.
//!
//! Rules, per secret:
//! - desired, absent → **create**; desired, ours, different → **update**; equal (JSON compared
//!   semantically) → **unchanged**;
//! - desired, present but not created by secretsync → **conflict**, or **adopt** with
//!   `adopt_existing`/`--adopt`; owned by another target → always a conflict;
//! - desired, ours, scheduled for deletion → **restore** (and update if it differs);
//! - desired but not storable here (size, name, kind) → **invalid**;
//! - ours, no longer desired → **delete** only with `delete_orphans` and only when the listing
//!   and every import were read completely; otherwise **orphan** (kept, reported);
//! - anything else in the target is not ours and is never touched.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::filter::{Filter, Verdict};
use crate::model::{SecretPath, SecretSet, SecretValue, ValueKind};
use crate::store::{EntryMeta, Listing, Owner, Store};

/// What the plan does with one secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Write a new secret.
    Create,
    /// Replace the value of a secret we own.
    Update,
    /// Remove a secret we own that is no longer desired.
    Delete,
    /// Cancel the pending deletion of a desired secret (and update it if needed).
    Restore,
    /// Take ownership of an existing secret (and update it if needed).
    Adopt,
    /// A same-named secret exists that we may not touch.
    Conflict,
    /// The desired secret cannot be stored in this target.
    Invalid,
    /// A secret we own that is no longer desired, kept because deletes are off.
    Orphan,
    /// Already as desired.
    Unchanged,
}

impl Action {
    /// Whether applying this action writes to the target.
    pub fn writes(self) -> bool {
        matches!(
            self,
            Self::Create | Self::Update | Self::Delete | Self::Restore | Self::Adopt
        )
    }

    /// Whether this action is a problem the user must resolve.
    pub fn is_problem(self) -> bool {
        matches!(self, Self::Conflict | Self::Invalid)
    }

    /// The sigil used in human output.
    pub fn sigil(self) -> &'static str {
        match self {
            Self::Create => "+",
            Self::Update => "~",
            Self::Delete => "-",
            Self::Restore => "↺",
            Self::Adopt => "@",
            Self::Conflict | Self::Invalid => "!",
            Self::Orphan => "?",
            Self::Unchanged => "=",
        }
    }

    /// The lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Update => "update",
            Self::Delete => "delete",
            Self::Restore => "restore",
            Self::Adopt => "adopt",
            Self::Conflict => "conflict",
            Self::Invalid => "invalid",
            Self::Orphan => "orphan",
            Self::Unchanged => "unchanged",
        }
    }
}

/// Which top-level keys differ between two values (names only, never values); shown through
/// [`KeyNames`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct KeyDiff {
    /// Keys only in the desired value.
    added: Vec<String>,
    /// Keys only in the current value.
    removed: Vec<String>,
    /// Keys in both whose values differ.
    changed: Vec<String>,
}

impl KeyDiff {
    fn between(actual: Option<&SecretValue>, desired: &SecretValue) -> Self {
        match (actual, desired) {
            (Some(SecretValue::Json(a)), SecretValue::Json(d)) => Self {
                added: d.keys().filter(|k| !a.contains_key(*k)).cloned().collect(),
                removed: a.keys().filter(|k| !d.contains_key(*k)).cloned().collect(),
                changed: d
                    .iter()
                    .filter(|(k, v)| a.get(*k).is_some_and(|av| !crate::model::json_semantic_eq(av, v)))
                    .map(|(k, _)| k.clone())
                    .collect(),
            },
            _ => Self::default(),
        }
    }
}

/// Why a planned delete is held back instead of made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Withheld {
    /// The run planned more deletes than `max_deletes`.
    MaxDeletes,
    /// A source this target reads (directly or through a target it imports) read no secrets, or
    /// the target has nothing to sync at all: more likely a source gone wrong than intended.
    EmptySource,
}

impl Withheld {
    /// Why, in a few words.
    pub fn reason(self) -> &'static str {
        match self {
            Self::MaxDeletes => "the run planned more deletes than `max_deletes`",
            Self::EmptySource => "a source it reads came back empty (pass `--allow-empty-sources` if that is intended)",
        }
    }

    /// A short label for a change line.
    pub fn label(self) -> &'static str {
        match self {
            Self::MaxDeletes => "over max_deletes",
            Self::EmptySource => "a source read empty",
        }
    }
}

/// What happened when the change was applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyResult {
    /// Written.
    Applied,
    /// The write failed (boxed: a plan holds a result per change, and few fail).
    Failed(Box<crate::failure::Failure>),
    /// Not attempted (withheld deletes, interruption, an earlier failure).
    NotAttempted(String),
}

/// One planned change.
#[derive(Debug, Clone)]
pub struct Change {
    /// The secret's path in the target (before any `secret_prefix`).
    pub path: SecretPath,
    /// What to do.
    pub action: Action,
    /// Whether the value must also be written (always for create/update/adopt; for restore
    /// when the value differs).
    pub write_value: bool,
    /// Whether the desired value differs from the current one (or there is none).
    pub differs: bool,
    /// Kind of the desired value (or of the current one for deletes).
    pub kind: Option<ValueKind>,
    /// Kind of the current value when it changes kind.
    pub previous_kind: Option<ValueKind>,
    /// Key-level difference for JSON values (see [`Change::key_names`]); boxed and absent when
    /// empty, since most changes of a large plan (creates, deletes) have none to hold.
    keys: Option<Box<KeyDiff>>,
    /// A new JSON value: every key of `desired` is added. Derived when shown rather than held,
    /// since a first sync into many accounts plans a million of these.
    all_keys_added: bool,
    /// Why (conflicts, invalid secrets, orphans).
    pub note: Option<String>,
    /// Why a delete was held back, if it was.
    pub withheld: Option<Withheld>,
    /// The desired value (for applying and for `--show-values`). Never serialised.
    pub desired: Option<Arc<SecretValue>>,
    /// The current value, when read (for `--show-values`). Never serialised.
    pub actual: Option<Arc<SecretValue>>,
    /// Set by `engine::apply`.
    pub result: Option<ApplyResult>,
    /// What the provider said about an applied write (request ids, version), for the audit
    /// log; boxed, since most changes of a large plan never get one.
    pub receipt: Option<Box<crate::store::Receipt>>,
}

/// Which top-level keys a change adds, removes or changes (names only), borrowed from the
/// change: reports show the names of every planned change, a million of them for a first
/// sync of 10,000 secrets into 100 accounts, without copying one.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct KeyNames<'a> {
    /// Keys only in the desired value.
    #[serde(skip_serializing_if = "AddedKeys::is_empty")]
    pub added: AddedKeys<'a>,
    /// Keys only in the current value.
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub removed: &'a [String],
    /// Keys in both whose values differ.
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub changed: &'a [String],
}

impl KeyNames<'_> {
    /// Whether no key is named.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// The added keys of [`KeyNames`]: listed by the plan, or every key of a new JSON value.
#[derive(Debug, Clone, Copy)]
pub enum AddedKeys<'a> {
    /// Keys the plan found only in the desired value.
    Listed(&'a [String]),
    /// Every key of this (new) value.
    AllOf(&'a serde_json::Map<String, serde_json::Value>),
}

impl<'a> AddedKeys<'a> {
    /// The names, in order.
    pub fn iter(self) -> impl Iterator<Item = &'a str> {
        let (listed, all) = match self {
            Self::Listed(keys) => (Some(keys), None),
            Self::AllOf(map) => (None, Some(map)),
        };
        listed
            .into_iter()
            .flatten()
            .map(String::as_str)
            .chain(all.into_iter().flat_map(|m| m.keys().map(String::as_str)))
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        match self {
            Self::Listed(keys) => keys.is_empty(),
            Self::AllOf(map) => map.is_empty(),
        }
    }
}

impl serde::Serialize for AddedKeys<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl Change {
    /// Which top-level keys the change adds, removes or changes (names only).
    pub fn key_names(&self) -> KeyNames<'_> {
        let keys: &[String] = &[];
        let (added, removed, changed) = self.keys.as_deref().map_or((keys, keys, keys), |k| {
            (k.added.as_slice(), k.removed.as_slice(), k.changed.as_slice())
        });
        let added = match (self.all_keys_added, self.desired.as_deref()) {
            (true, Some(SecretValue::Json(d))) => AddedKeys::AllOf(d),
            _ => AddedKeys::Listed(added),
        };
        KeyNames {
            added,
            removed,
            changed,
        }
    }

    fn new(path: SecretPath, action: Action) -> Self {
        Self {
            path,
            action,
            write_value: false,
            differs: false,
            kind: None,
            previous_kind: None,
            keys: None,
            all_keys_added: false,
            note: None,
            withheld: None,
            desired: None,
            actual: None,
            result: None,
            receipt: None,
        }
    }
}

/// Counts of a plan's actions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    /// Creates.
    pub create: u64,
    /// Updates.
    pub update: u64,
    /// Deletes (including withheld ones).
    pub delete: u64,
    /// Restores.
    pub restore: u64,
    /// Adoptions.
    pub adopt: u64,
    /// Conflicts.
    pub conflict: u64,
    /// Invalid secrets.
    pub invalid: u64,
    /// Orphans kept.
    pub orphan: u64,
    /// Unchanged secrets.
    pub unchanged: u64,
}

impl Counts {
    /// Adds one action.
    pub fn add(&mut self, action: Action) {
        *match action {
            Action::Create => &mut self.create,
            Action::Update => &mut self.update,
            Action::Delete => &mut self.delete,
            Action::Restore => &mut self.restore,
            Action::Adopt => &mut self.adopt,
            Action::Conflict => &mut self.conflict,
            Action::Invalid => &mut self.invalid,
            Action::Orphan => &mut self.orphan,
            Action::Unchanged => &mut self.unchanged,
        } += 1;
    }

    /// Adds another set of counts.
    pub fn merge(&mut self, other: &Counts) {
        self.create += other.create;
        self.update += other.update;
        self.delete += other.delete;
        self.restore += other.restore;
        self.adopt += other.adopt;
        self.conflict += other.conflict;
        self.invalid += other.invalid;
        self.orphan += other.orphan;
        self.unchanged += other.unchanged;
    }

    /// Changes that write.
    pub fn changes(&self) -> u64 {
        self.create + self.update + self.delete + self.restore + self.adopt
    }

    /// Problems to resolve.
    pub fn problems(&self) -> u64 {
        self.conflict + self.invalid
    }
}

/// The plan for one target.
///
/// Unchanged secrets are only counted: at organisation scale (10,000 secrets × 1,000
/// accounts) almost everything is unchanged, and keeping a record (and the current value)
/// per unchanged secret would dominate memory.
#[derive(Debug, Clone, Default)]
pub struct TargetPlan {
    /// Every secret that is not unchanged, sorted by path.
    pub changes: Vec<Change>,
    /// Secrets already as desired.
    pub unchanged: u64,
    /// Whether deletes were allowed (complete listing and imports).
    pub deletes_allowed: bool,
    /// What filters removed, when the target or its sources have any.
    pub filtered: Option<Filtered>,
}

/// What filters removed from a target's plan.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Filtered {
    /// The target's own filter: desired secrets it removed (not written).
    pub target: crate::filter::Removed,
    /// Secrets in the target outside its filter: neither written nor deleted.
    pub left_alone: u64,
    /// Each directly imported source's filter: secrets it removed from what the source gave.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub sources: BTreeMap<String, crate::filter::Removed>,
}

impl TargetPlan {
    /// Counts by action.
    pub fn counts(&self) -> Counts {
        let mut counts = Counts {
            unchanged: self.unchanged,
            ..Counts::default()
        };
        for change in &self.changes {
            counts.add(change.action);
        }
        counts
    }

    /// Whether applying the plan would write anything.
    pub fn has_writes(&self) -> bool {
        self.changes.iter().any(|c| c.action.writes() && c.withheld.is_none())
    }
}

/// Planning options.
#[derive(Debug, Clone, Copy)]
pub struct PlanOptions<'a> {
    /// The target being planned (owner of what it writes).
    pub target: &'a str,
    /// Delete owned secrets that are no longer desired.
    pub delete_orphans: bool,
    /// Take over unmanaged same-named secrets.
    pub adopt: bool,
    /// Whether the listing and every import were read completely (else no deletes).
    pub complete: bool,
    /// The target's filter. Listed secrets outside it are left alone (never deleted) yet still
    /// occupy their storage names: a write that would land on one is a conflict. `desired` is
    /// expected to be filtered already.
    pub filter: Option<&'a Filter>,
}

impl PlanOptions<'_> {
    /// Whether `path` is this target's to write or delete (inside its filter, if any).
    fn manages(&self, path: &SecretPath) -> bool {
        self.filter.is_none_or(|f| f.verdict(path, None) == Verdict::Kept)
    }
}

/// Plans `target` from its desired set, its listing and the current values of the desired
/// secrets that exist (`actual`). `store` answers storability questions only.
///
/// The three inputs are sorted maps, so they are walked together in one pass (as rclone's
/// `march` walks source and destination) instead of being looked up secret by secret.
pub fn plan(
    desired: &SecretSet,
    listing: &Listing,
    actual: &BTreeMap<SecretPath, Arc<SecretValue>>,
    store: &dyn Store,
    options: PlanOptions<'_>,
) -> TargetPlan {
    let mut changes: Vec<Change> = Vec::new();
    let mut unchanged = 0u64;
    let mut names = StorageNames::default();
    let mut listed = listing.entries.iter().peekable();
    let mut values = actual.iter().peekable();
    for (path, value) in desired {
        while let Some((orphan_path, meta)) = listed.next_if(|(p, _)| *p < path) {
            changes.extend(orphan(orphan_path, meta, options));
        }
        let meta = listed.next_if(|(p, _)| *p == path).map(|(_, m)| m);
        while values.next_if(|(p, _)| *p < path).is_some() {}
        let current = values.next_if(|(p, _)| *p == path).map(|(_, v)| v);
        let change = plan_one(path, value, meta, current, store, options);
        let name = store.storage_name(path, value);
        if let Some(change) = change {
            names.add(name, Some(changes.len()));
            changes.push(change);
        } else {
            names.add(name, None);
            unchanged += 1;
        }
    }
    for (orphan_path, meta) in listed {
        changes.extend(orphan(orphan_path, meta, options));
    }
    names.mark_collisions(&mut changes, store.capabilities().hierarchical);
    mark_overwrites_of_held_secrets(&mut changes, listing, store, options);
    // Plans of every target are held until the apply: no spare capacity in each.
    changes.shrink_to_fit();
    debug_assert!(
        changes.windows(2).all(|w| w[0].path < w[1].path),
        "changes are in path order"
    );
    TargetPlan {
        changes,
        unchanged,
        deletes_allowed: options.complete && options.delete_orphans,
        filtered: None,
    }
}

/// The change for one desired secret, or `None` when it is already as desired.
fn plan_one(
    path: &SecretPath,
    value: &Arc<SecretValue>,
    meta: Option<&EntryMeta>,
    current: Option<&Arc<SecretValue>>,
    store: &dyn Store,
    options: PlanOptions<'_>,
) -> Option<Change> {
    let storable = store.check_value(path, value);
    let differs = current.is_none_or(|c| !Arc::ptr_eq(c, value) && !c.semantic_eq(value));
    let in_line = |m: &EntryMeta| m.is_owned_by(options.target) && !m.pending_deletion && m.drift.is_none();
    if storable.is_ok() && !differs && meta.is_some_and(in_line) {
        return None;
    }
    let mut change = Change::new(path.clone(), Action::Create);
    change.kind = Some(value.kind());
    change.desired = Some(Arc::clone(value));
    if let Err(reason) = storable {
        change.action = Action::Invalid;
        change.note = Some(reason);
        return Some(change);
    }
    change.actual = current.cloned();
    change.differs = differs;
    if current.is_some_and(|c| c.kind() != value.kind()) {
        change.previous_kind = current.map(|c| c.kind());
    }
    match meta {
        None => {
            change.action = Action::Create;
            change.write_value = true;
        }
        Some(meta) => match &meta.owner {
            Owner::Target(owner) if &**owner == options.target => {
                change.action = if meta.pending_deletion {
                    Action::Restore
                } else if current.is_none() {
                    Action::Create
                } else {
                    Action::Update
                };
                change.write_value = differs;
                if !differs && !meta.pending_deletion {
                    change.note.clone_from(&meta.drift);
                }
            }
            Owner::Target(owner) => {
                change.action = Action::Conflict;
                change.note = Some(format!(
                    "managed by target `{owner}`; two targets cannot write the same secret"
                ));
            }
            Owner::Unmanaged if options.adopt => {
                change.action = if meta.pending_deletion {
                    Action::Restore
                } else {
                    Action::Adopt
                };
                change.write_value = true;
                if meta.pending_deletion {
                    change.note =
                        Some("scheduled for deletion and not created by secretsync; restored and adopted".to_owned());
                }
            }
            Owner::Unmanaged => {
                change.action = Action::Conflict;
                change.note = Some(
                    "exists but was not created by secretsync; pass `--adopt` (or set `pipeline.sync.adopt_existing`) to take it over"
                        .to_owned(),
                );
            }
        },
    }
    if change.write_value {
        let keys = KeyDiff::between(current.map(|c| &**c), value);
        change.keys = (keys != KeyDiff::default()).then(|| Box::new(keys));
        change.all_keys_added = current.is_none() && matches!(**value, SecretValue::Json(_));
    }
    Some(change)
}

/// What to do with a listed secret that is not desired: ours and not already being deleted
/// → delete (when allowed) or keep as an orphan; anything else is not ours to touch.
fn orphan(path: &SecretPath, meta: &EntryMeta, options: PlanOptions<'_>) -> Option<Change> {
    if meta.pending_deletion || !meta.is_owned_by(options.target) || !options.manages(path) {
        return None;
    }
    let mut change = Change::new(path.clone(), Action::Orphan);
    if options.delete_orphans && options.complete {
        change.action = Action::Delete;
    } else if options.delete_orphans {
        change.note = Some("not deleted: an import or the listing of this target was incomplete".to_owned());
    } else {
        change.note = Some("no longer desired; set `pipeline.sync.delete_orphans: true` to delete it".to_owned());
    }
    Some(change)
}

/// A write whose storage name is the name another secret the target holds is kept under (a
/// file store keeps JSON `x` in `x.json`, where a human's text file `x.json` may already be)
/// would replace that secret: a conflict unless it is this target's or adoption was asked for.
fn mark_overwrites_of_held_secrets(
    changes: &mut [Change],
    listing: &Listing,
    store: &dyn Store,
    options: PlanOptions<'_>,
) {
    let mut held: Option<BTreeMap<&str, (&SecretPath, &EntryMeta)>> = None;
    for change in changes.iter_mut().filter(|c| c.write_value) {
        let Some(value) = &change.desired else { continue };
        let Some(name) = store.storage_name(&change.path, value) else {
            continue;
        };
        let held = held.get_or_insert_with(|| {
            listing
                .entries
                .iter()
                .map(|(path, meta)| {
                    let name = listing.stored_as.get(path).map_or(path.as_str(), String::as_str);
                    (name, (path, meta))
                })
                .collect()
        });
        let Some((other, meta)) = held.get(name.as_str()).filter(|(other, _)| **other != change.path) else {
            continue;
        };
        if !options.manages(other) {
            change.action = Action::Conflict;
            change.write_value = false;
            change.keys = None;
            change.all_keys_added = false;
            change.note = Some(format!(
                "would be stored as `{name}`, which holds `{other}`, outside this target's filter; rename one, or widen the filter"
            ));
            continue;
        }
        match &meta.owner {
            Owner::Target(owner) if &**owner == options.target => {}
            Owner::Target(owner) => {
                change.action = Action::Conflict;
                change.write_value = false;
                change.keys = None;
                change.all_keys_added = false;
                change.note = Some(format!(
                    "would be stored as `{name}`, which holds `{other}` of target `{owner}`; rename one"
                ));
            }
            Owner::Unmanaged if options.adopt => {
                change.note = Some(format!(
                    "replaces `{name}`, which held `{other}` (not created by secretsync; adopted)"
                ));
            }
            Owner::Unmanaged => {
                change.action = Action::Conflict;
                change.write_value = false;
                change.keys = None;
                change.all_keys_added = false;
                change.note = Some(format!(
                    "would be stored as `{name}`, which already holds `{other}`, not created by secretsync; rename one, or pass `--adopt` to replace it"
                ));
            }
        }
    }
}

/// Storage names of the desired secrets, for stores that have them (see
/// [`Store::storage_name`]): two secrets stored under one name, or one needed both as a secret
/// and as a folder, cannot both be written. Unchanged secrets take part (they occupy their
/// name) but only changes are marked invalid.
#[derive(Default)]
struct StorageNames {
    names: Vec<(String, Option<usize>)>,
}

impl StorageNames {
    fn add(&mut self, name: Option<String>, change: Option<usize>) {
        if let Some(name) = name {
            self.names.push((name, change));
        }
    }

    fn mark_collisions(self, changes: &mut [Change], hierarchical: bool) {
        let mut owners: BTreeMap<&str, Vec<Option<usize>>> = BTreeMap::new();
        let mut folders: BTreeSet<&str> = BTreeSet::new();
        for (name, change) in &self.names {
            if change.is_some_and(|i| changes[i].action == Action::Invalid) {
                continue;
            }
            owners.entry(name.as_str()).or_default().push(*change);
            if hierarchical {
                let mut rest = name.as_str();
                while let Some((folder, _)) = rest.rsplit_once('/') {
                    folders.insert(folder);
                    rest = folder;
                }
            }
        }
        let mut notes: Vec<(usize, String)> = Vec::new();
        for (name, entries) in &owners {
            let indexes: Vec<usize> = entries.iter().flatten().copied().collect();
            if entries.len() > 1 {
                let paths: Vec<String> = indexes.iter().map(|&i| format!("`{}`", changes[i].path)).collect();
                let others = entries.len() - indexes.len();
                let with = if others > 0 {
                    format!(" (and {others} unchanged secret)")
                } else {
                    String::new()
                };
                for &i in &indexes {
                    notes.push((
                        i,
                        format!(
                            "{}{with} would all be stored as `{name}`; rename one",
                            paths.join(" and ")
                        ),
                    ));
                }
            }
            if folders.contains(name) {
                for &i in &indexes {
                    notes.push((
                        i,
                        format!("`{name}` is needed both as a secret and as a folder of other secrets; rename one"),
                    ));
                }
            }
        }
        for (i, note) in notes {
            changes[i].action = Action::Invalid;
            changes[i].write_value = false;
            changes[i].note = Some(note);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{EntryMeta, FileStore, MemoryStore};

    fn p(s: &str) -> SecretPath {
        SecretPath::parse(s).unwrap()
    }

    fn json(text: &str) -> Arc<SecretValue> {
        Arc::new(SecretValue::from_string(text.into()))
    }

    fn options(delete_orphans: bool, adopt: bool) -> PlanOptions<'static> {
        PlanOptions {
            target: "T",
            delete_orphans,
            adopt,
            complete: true,
            filter: None,
        }
    }

    /// A change's key names as owned lists, to compare.
    fn names(change: &Change) -> (Vec<&str>, Vec<String>, Vec<String>) {
        let keys = change.key_names();
        (
            keys.added.iter().collect(),
            keys.removed.to_vec(),
            keys.changed.to_vec(),
        )
    }

    fn actions(plan: &TargetPlan) -> Vec<(String, Action)> {
        plan.changes.iter().map(|c| (c.path.to_string(), c.action)).collect()
    }

    #[test]
    fn classifies_every_case() {
        let store = MemoryStore::new("t");
        let desired: SecretSet = [
            (p("new"), json(r#"{"a":1}"#)),
            (p("same"), json(r#"{"a":1.0}"#)),
            (p("changed"), json(r#"{"a":2,"b":1}"#)),
            (p("foreign"), json(r#"{"a":1}"#)),
            (p("sibling"), json(r#"{"a":1}"#)),
            (p("dying"), json(r#"{"a":1}"#)),
        ]
        .into_iter()
        .collect();
        let mut listing = Listing::default();
        listing.entries.insert(p("same"), EntryMeta::owned_by("T"));
        listing.entries.insert(p("changed"), EntryMeta::owned_by("T"));
        listing.entries.insert(p("foreign"), EntryMeta::unmanaged());
        listing.entries.insert(p("sibling"), EntryMeta::owned_by("Other"));
        listing.entries.insert(
            p("dying"),
            EntryMeta {
                pending_deletion: true,
                ..EntryMeta::owned_by("T")
            },
        );
        listing.entries.insert(p("stale"), EntryMeta::owned_by("T"));
        listing.entries.insert(p("human"), EntryMeta::unmanaged());
        let actual = [
            (p("same"), json(r#"{"a":1}"#)),
            (p("changed"), json(r#"{"a":1,"c":1}"#)),
            (p("dying"), json(r#"{"a":1}"#)),
        ]
        .into_iter()
        .collect();

        let plan_keep = plan(&desired, &listing, &actual, &store, options(false, false));
        assert_eq!(
            actions(&plan_keep),
            [
                ("changed".into(), Action::Update),
                ("dying".into(), Action::Restore),
                ("foreign".into(), Action::Conflict),
                ("new".into(), Action::Create),
                ("sibling".into(), Action::Conflict),
                ("stale".into(), Action::Orphan),
            ]
        );
        assert_eq!(plan_keep.unchanged, 1, "`same` is unchanged (1 vs 1.0)");
        let changed = &plan_keep.changes[0];
        assert_eq!(names(changed), (vec!["b"], vec!["c".to_owned()], vec!["a".to_owned()]));
        let created = &plan_keep.changes[3];
        assert_eq!(created.action, Action::Create);
        let desired_keys: Vec<&str> = match created.desired.as_deref() {
            Some(SecretValue::Json(map)) => map.keys().map(String::as_str).collect(),
            _ => panic!("`new` is a JSON value"),
        };
        assert!(!desired_keys.is_empty());
        assert_eq!(
            names(created),
            (desired_keys, vec![], vec![]),
            "a create adds every key"
        );
        assert!(
            plan_keep.changes[1].key_names().is_empty(),
            "a restore of the same value names no key"
        );
        assert!(
            !plan_keep.changes[1].write_value,
            "restore of an unchanged value writes no value"
        );

        let plan_all = plan(&desired, &listing, &actual, &store, options(true, true));
        let got = actions(&plan_all);
        assert!(got.contains(&("foreign".into(), Action::Adopt)));
        assert!(
            got.contains(&("sibling".into(), Action::Conflict)),
            "another target's secret is never adopted"
        );
        assert!(got.contains(&("stale".into(), Action::Delete)));
        assert!(
            !got.iter().any(|(p, _)| p == "human"),
            "unmanaged secrets are never touched"
        );

        let incomplete = plan(
            &desired,
            &listing,
            &actual,
            &store,
            PlanOptions {
                complete: false,
                ..options(true, false)
            },
        );
        assert!(
            actions(&incomplete).contains(&("stale".into(), Action::Orphan)),
            "no deletes without a complete read"
        );
    }

    #[test]
    fn drift_beside_an_equal_value_is_an_update_that_writes_no_value() {
        let store = MemoryStore::new("t");
        let desired: SecretSet = [(p("tagged"), json(r#"{"a":1}"#)), (p("fine"), json(r#"{"a":1}"#))]
            .into_iter()
            .collect();
        let mut listing = Listing::default();
        let drifted = EntryMeta {
            drift: Some("tags differ: +env".to_owned()),
            labels: None,
            ..EntryMeta::owned_by("T")
        };
        listing.entries.insert(p("tagged"), drifted);
        listing.entries.insert(p("fine"), EntryMeta::owned_by("T"));
        let actual = [(p("tagged"), json(r#"{"a":1}"#)), (p("fine"), json(r#"{"a":1}"#))]
            .into_iter()
            .collect();
        let planned = plan(&desired, &listing, &actual, &store, options(false, false));
        assert_eq!(actions(&planned), [("tagged".into(), Action::Update)]);
        let change = &planned.changes[0];
        assert_eq!(change.note.as_deref(), Some("tags differ: +env"));
        assert!(!change.write_value && !change.differs);
        assert_eq!(planned.unchanged, 1);
    }

    #[test]
    fn file_store_collisions_are_invalid() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path(), "t");
        let desired: SecretSet = [
            (p("a"), json(r#"{"x":1}"#)),
            (p("a.json"), Arc::new(SecretValue::Text("[1]".into()))),
            (p("b"), Arc::new(SecretValue::Text("t".into()))),
            (p("b/c"), Arc::new(SecretValue::Text("t".into()))),
            (p("ok"), Arc::new(SecretValue::Text("t".into()))),
        ]
        .into_iter()
        .collect();
        let plan = plan(
            &desired,
            &Listing::default(),
            &BTreeMap::new(),
            &store,
            options(false, false),
        );
        assert_eq!(
            actions(&plan),
            [
                ("a".into(), Action::Invalid),
                ("a.json".into(), Action::Invalid),
                ("b".into(), Action::Invalid),
                ("b/c".into(), Action::Create),
                ("ok".into(), Action::Create),
            ]
        );
        assert_eq!(
            plan.changes[0].note.as_deref(),
            Some("`a` and `a.json` would all be stored as `a.json`; rename one")
        );
    }
}
