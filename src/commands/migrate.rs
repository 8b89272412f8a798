//! `secretsync migrate`: read the other tool's files, convert, write the pipeline file (0600,
//! never over an existing file unless `--force`), and print what to review.

use std::fmt::Write as _;
use std::io::Write as _;

use crate::cli::{MigrateArgs, MigrateFrom};
use crate::error::CliError;
use crate::migrate::{self, Inputs, NoteKind};
use crate::output::Printer;

pub(super) fn run(args: &MigrateArgs, printer: Printer) -> Result<u8, CliError> {
    let read = |what: &'static str, path: &std::path::Path| {
        std::fs::read_to_string(path).map_err(|source| CliError::Input {
            what,
            path: path.display().to_string(),
            source,
        })
    };
    let shown = |path: &std::path::Path| path.display().to_string();
    let (targets, secrets, accounts) = (
        read("the targets file", &args.targets)?,
        read("the secrets file", &args.secrets)?,
        read("the accounts file", &args.accounts)?,
    );
    let (t, s, a) = (shown(&args.targets), shown(&args.secrets), shown(&args.accounts));
    let migrated = match args.from {
        MigrateFrom::TerraformSecretsmanager => migrate::terraform_secretsmanager(&Inputs {
            targets: (&t, &targets),
            secrets: (&s, &secrets),
            accounts: (&a, &accounts),
            vault_address: args.vault_addr.as_deref(),
        })?,
    };
    let output = shown(&args.output);
    let write_error = |source| CliError::Output {
        what: "the pipeline file",
        path: output.clone(),
        source,
    };
    // Private, never through a link; `--force` replaces the file atomically.
    let written = if args.force {
        crate::files::write_atomic(&args.output, migrated.yaml.as_bytes())
    } else {
        crate::files::create_new_private(&args.output).and_then(|mut file| {
            file.write_all(migrated.yaml.as_bytes())?;
            file.sync_all()
        })
    };
    match written {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(CliError::usage(
                format!("{output} already exists"),
                Some("choose another --output, or pass --force to replace it"),
            ));
        }
        other => other.map_err(write_error)?,
    }

    let mut text = format!(
        "wrote {output}: {} sources, {} targets\n",
        migrated.sources, migrated.targets
    );
    for note in &migrated.notes {
        let label = match note.kind {
            NoteKind::Dropped => printer.out.yellow("dropped:"),
            NoteKind::Guessed => printer.out.cyan("guessed:"),
        };
        let _ = writeln!(text, "  {label} {}", note.text);
    }
    let _ = writeln!(
        text,
        "next: secretsync validate -c {output}, then secretsync plan -c {output}"
    );
    printer.stdout(&text);
    Ok(0)
}
