//! Progress bars on stderr (indicatif), only when stderr is a terminal.

use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressStyle};

use super::{Event, EventSink};

/// Shows one bar per phase.
#[derive(Debug, Default)]
pub struct ProgressBars {
    bar: Mutex<Option<ProgressBar>>,
}

impl EventSink for ProgressBars {
    fn emit(&self, event: Event) {
        let mut slot = self.bar.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match event {
            Event::PhaseStarted { phase, total } => {
                let bar = ProgressBar::new(total);
                bar.set_style(
                    ProgressStyle::with_template("{prefix:>6} [{bar:30}] {pos}/{len} {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_bar())
                        .progress_chars("=> "),
                );
                bar.set_prefix(phase.name());
                *slot = Some(bar);
            }
            Event::Progress { target, .. } => {
                if let Some(bar) = slot.as_ref() {
                    bar.set_message(target);
                    bar.inc(1);
                }
            }
            Event::PhaseFinished { .. } => {
                if let Some(bar) = slot.take() {
                    bar.finish_and_clear();
                }
            }
        }
    }
}

/// A spinner with a message on stderr, for work whose size is not known in advance
/// (discovery); when not shown (stderr is not a terminal, or `--no-progress`), it does nothing.
#[derive(Debug, Clone)]
pub struct Spinner(Option<ProgressBar>);

impl Spinner {
    /// A spinner, shown when `shown` (the caller checks for a terminal).
    pub fn new(shown: bool) -> Self {
        if !shown {
            return Self(None);
        }
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} discover {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        Self(Some(bar))
    }

    /// Shows what is being done now.
    pub fn message(&self, step: &str) {
        if let Some(bar) = &self.0 {
            bar.set_message(step.to_owned());
        }
    }

    /// Removes the spinner.
    pub fn clear(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}
