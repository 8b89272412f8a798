//! `docs/cli.md`, generated from the clap definitions (a test fails when the committed file is
//! stale), so the reference cannot drift from what `--help` says.

use std::fmt::Write as _;

use clap::CommandFactory as _;

use super::Cli;

/// The CLI reference: the top-level help, then every command's long help.
pub fn markdown() -> String {
    // Values of variables set where the docs are generated must not leak into them.
    let mut root = hide_env_values(Cli::command().term_width(100));
    let mut out = String::from(
        "# Command-line reference\n\n\
         Generated from the clap definitions by `SECRETSYNC_BLESS=1 cargo nextest run cli_reference`;\n\
         a test fails when it is stale. Every flag also has a `SECRETSYNC_*` variable\n\
         ([environment.md](environment.md)); exit codes are in [exit-codes.md](exit-codes.md).\n\n",
    );
    out.push_str("## secretsync\n\n```text\n");
    out.push_str(&root.render_long_help().to_string());
    out.push_str("```\n");
    for sub in root.get_subcommands_mut() {
        if sub.get_name() == "help" {
            continue;
        }
        let name = sub.get_name().to_owned();
        let help = sub
            .clone()
            .term_width(100)
            .bin_name(format!("secretsync {name}"))
            .render_long_help();
        let _ = write!(out, "\n## secretsync {name}\n\n```text\n{help}```\n");
    }
    // Trailing spaces clap leaves on blank lines are not part of the text.
    out.lines().map(str::trim_end).collect::<Vec<_>>().join("\n") + "\n"
}

fn hide_env_values(cmd: clap::Command) -> clap::Command {
    cmd.mut_args(|a| a.hide_env_values(true))
        .mut_subcommands(hide_env_values)
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_reference_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/cli.md");
        let current = std::fs::read_to_string(path).unwrap_or_default();
        let fresh = super::markdown();
        if current != fresh {
            if std::env::var_os("SECRETSYNC_BLESS").is_some() {
                std::fs::write(path, fresh).unwrap();
            } else {
                panic!("docs/cli.md is stale; regenerate it with `SECRETSYNC_BLESS=1 cargo nextest run cli_reference`");
            }
        }
        assert!(current.contains("## secretsync migrate") && current.contains("--metrics-push"));
    }
}
