//! The engine: runs the merge and sync phases over the target graph with bounded
//! parallelism, and records everything in a [`RunReport`](crate::report::RunReport).
//!
//! `apply.rs` is the only code in the product that writes to a target or a merge store, and
//! the only code that knows about dry runs. The engine never prints; it emits events.

pub(crate) mod apply;
mod run;
#[cfg(test)]
mod tests;

pub use apply::execute as apply_plan;
pub use run::{BuildFailure, Engine, RunOptions, Stores};
