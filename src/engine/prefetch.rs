//! Reading targets: while the merge phase reads the sources, the targets about to be planned
//! are already being listed, and the values of the secrets each one manages read. Neither depends
//! on the desired set, and against remote stores both phases wait on round trips, so overlapping
//! them takes the shorter wait off the run (issue #9's benchmark). Values of secrets a target does
//! not manage are read only once they are known to be desired. Prefetching is bounded by
//! [`PREFETCH_ENTRIES`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::stream::{self, StreamExt};
use tracing::Instrument as _;

use super::apply::Actual;
use super::run::{Engine, Prefetched};
use crate::model::{SecretPath, SecretSet, SecretValue};
use crate::store::{EntryMeta, Owner, Store, StoreError};

/// Prefetching stops once its listings hold this many secrets (about 15 MB); later targets are
/// listed when they are planned, as without prefetching.
pub(super) const PREFETCH_ENTRIES: usize = 100_000;

/// The paths in both sorted sequences, by walking them together (no lookups).
fn sorted_intersection<'a>(
    left: impl Iterator<Item = &'a SecretPath>,
    right: impl Iterator<Item = &'a SecretPath>,
) -> Vec<SecretPath> {
    let mut right = right.peekable();
    let mut out = Vec::new();
    for path in left {
        while right.next_if(|r| *r < path).is_some() {}
        if right.next_if(|r| *r == path).is_some() {
            out.push(path.clone());
        }
    }
    out
}

impl Engine<'_> {
    /// Lists the selected targets and reads the values of the secrets each manages,
    /// `sync_parallel` targets at a time, until the first stage is over or
    /// [`PREFETCH_ENTRIES`] secrets were listed; planning takes what was read.
    pub(super) async fn prefetch_listings(&self, merged_all: &AtomicBool) {
        if !self.options.sync_phase {
            return;
        }
        let stores = self
            .options
            .selected
            .iter()
            .flat_map(|name| self.pipeline.targets[name].units())
            .filter_map(|unit| match self.stores.targets.get(&unit) {
                Some(Ok(store)) => Some((unit, Arc::clone(store))),
                _ => None,
            });
        let phase = tracing::info_span!("phase", phase = "prefetch", otel.name = tracing::field::Empty);
        crate::telemetry::name(&phase, "prefetch");
        let phase = &phase;
        stream::iter(stores)
            .for_each_concurrent(self.options.sync_parallel.max(1), |(name, store)| async move {
                if merged_all.load(Ordering::SeqCst)
                    || self.prefetched.load(Ordering::SeqCst) >= PREFETCH_ENTRIES
                    || self.stop_reason().is_some()
                {
                    return;
                }
                let span = tracing::info_span!(parent: phase, "target", target = %name, phase = "prefetch");
                let read = async {
                    // Outside the target's filter a secret is left alone, so its value is
                    // never needed (nor read).
                    let owner = crate::config::target_of_unit(&name);
                    let filter = &self.pipeline.targets[owner].filter;
                    let managed = |path: &SecretPath, meta: &EntryMeta| {
                        matches!(&meta.owner, Owner::Target(t) if t.as_ref() == owner)
                            && filter.verdict(path, None) == crate::filter::Verdict::Kept
                    };
                    let (listing, values) = self.interruptible(store.list_and_read(&managed)).await?;
                    self.prefetched.fetch_add(listing.entries.len(), Ordering::SeqCst);
                    // A failed read here is only a missed head start: planning reads them again
                    // and reports what fails then.
                    Ok((listing, values.unwrap_or_default()))
                };
                let prefetched = read.instrument(span).await;
                self.listings_lock().insert(name.clone(), prefetched);
            })
            .await;
    }

    pub(super) fn listings_lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Prefetched>> {
        self.listings.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Lists a store (unless its listing was `prefetched`) and reads the current values of the
    /// desired secrets it holds.
    pub(super) async fn read_actual(
        &self,
        store: &dyn Store,
        desired: &SecretSet,
        prefetched: Option<Prefetched>,
    ) -> Result<Actual, StoreError> {
        let (listing, early) = match prefetched {
            Some(prefetched) => prefetched?,
            None => (self.interruptible(store.list()).await?, Vec::new()),
        };
        let wanted = sorted_intersection(desired.keys(), listing.entries.keys());
        let mut early: BTreeMap<SecretPath, Option<Arc<SecretValue>>> = early.into_iter().collect();
        let missing: Vec<SecretPath> = wanted.iter().filter(|p| !early.contains_key(*p)).cloned().collect();
        let late = if missing.is_empty() {
            Vec::new()
        } else {
            self.interruptible(store.get_many(&missing)).await?
        };
        // Only desired secrets' values: a managed secret no longer desired was read ahead but is
        // planned from its listing alone, as before.
        let actual = wanted
            .into_iter()
            .filter_map(|p| early.remove(&p).flatten().map(|v| (p, v)))
            .chain(late.into_iter().filter_map(|(p, v)| v.map(|v| (p, v))))
            .collect();
        Ok((listing, actual))
    }
}
