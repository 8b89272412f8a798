//! The command line: clap definitions (every flag's variable is named in `crate::env`). No logic
//! lives here; `commands/` does the work.

mod args;
pub mod reference;

pub use crate::env::EnvVars;
pub use args::*;
