//! `secretsync audit verify FILE`: checks the hash chain of an audit log written by
//! `pipeline --audit-log` and prints the head hash to keep elsewhere.

use crate::cli::AuditCommand;
use crate::error::CliError;
use crate::output::Printer;

pub(super) fn run(command: &AuditCommand, printer: Printer) -> Result<u8, CliError> {
    match command {
        AuditCommand::Verify { file } => {
            let verified = crate::audit::verify(file)?;
            let plural = |n: u64, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
            printer.stdout(&format!(
                "{}: {} of {}, chain intact; head {}\n",
                file.display(),
                plural(verified.lines, "line"),
                plural(verified.runs, "run"),
                verified.head
            ));
            Ok(0)
        }
    }
}
