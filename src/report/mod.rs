//! Reporting: the run record, events, and the renderers for each output format.
//!
//! The engine produces a [`RunReport`] and emits [`Event`]s; renderers turn them into text.
//! Renderers return strings; only `output.rs` prints.

pub mod compact;
mod events;
pub mod github;
pub mod human;
pub mod json;
pub mod metrics;
pub mod progress;
mod run_report;

pub use events::{Event, EventSink, NoEvents, Phase};
pub use run_report::{
    GuardedDeletes, MergeReport, Outcome, Problem, RunLock, RunReport, Summary, TargetReport, TargetStatus,
    WithheldDeletes,
};
