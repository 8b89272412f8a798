//! Events the engine emits while it runs. Reporters (progress bars, logs) consume them; the
//! engine never prints.

/// A phase of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Reading imports and merging.
    Merge,
    /// Reading targets and planning.
    Plan,
    /// Writing changes.
    Apply,
}

impl Phase {
    /// Lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Merge => "merge",
            Self::Plan => "plan",
            Self::Apply => "apply",
        }
    }
}

/// Something that happened during a run.
#[derive(Debug, Clone)]
pub enum Event {
    /// A phase starts with this many units of work (targets, or changes for apply).
    PhaseStarted {
        /// Which phase starts.
        phase: Phase,
        /// Units of work.
        total: u64,
    },
    /// One unit of work of a phase finished.
    Progress {
        /// The phase the unit belongs to.
        phase: Phase,
        /// The target concerned.
        target: String,
    },
    /// A phase ended.
    PhaseFinished {
        /// Which phase ended.
        phase: Phase,
    },
}

/// Receives events. Implementations must be cheap: the engine calls them inline.
pub trait EventSink: Sync {
    /// Handles one event.
    fn emit(&self, event: Event);
}

/// Discards events.
#[derive(Debug, Default)]
pub struct NoEvents;

impl EventSink for NoEvents {
    fn emit(&self, _event: Event) {}
}
