//! The command line: clap definitions and the names of the environment variables behind every
//! flag. No logic lives here; `commands/` does the work.

mod args;
pub mod env_vars;
pub mod reference;

pub use args::*;
pub use env_vars::EnvVars;
