//! The engine: runs the merge and sync phases over the target graph with bounded
//! parallelism, and records everything in a [`RunReport`](crate::report::RunReport).
//!
//! `run.rs` orders the phases and plans; `merge_phase.rs` merges (or, with `--sync-only`, reads
//! merged results back); `prefetch.rs` reads targets ahead while the merge phase runs;
//! `apply.rs` is the only code in the product that writes to a target or a merge store, and the
//! only code that decides what a dry run skips. The engine never prints; it emits events.

pub(crate) mod apply;
mod merge_phase;
mod prefetch;
mod run;
#[cfg(test)]
mod tests;

pub use apply::AuditLines;
pub use run::{Engine, RunOptions, Stores};
