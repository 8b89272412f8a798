//! The only module that prints. Everything else returns text.
//!
//! Results go to stdout, logs and errors to stderr. Colour is decided once per stream
//! (`--color`, `NO_COLOR`, whether the stream is a terminal). A closed pipe (`| head`) is not
//! an error.

use std::io::{IsTerminal, Write};

use owo_colors::OwoColorize;

/// `--color` choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ColorChoice {
    /// Colour when writing to a terminal and `NO_COLOR` is unset.
    #[default]
    Auto,
    /// Always colour.
    Always,
    /// Never colour.
    Never,
}

/// Styles text when colour is on; plain text otherwise.
#[derive(Debug, Clone, Copy, Default)]
pub struct Styler {
    /// Whether to emit ANSI colours.
    pub color: bool,
}

macro_rules! style {
    ($($name:ident),*) => {
        $(
            /// Applies the style when colour is on.
            pub fn $name(self, text: &str) -> String {
                if self.color { text.$name().to_string() } else { text.to_owned() }
            }
        )*
    };
}

impl Styler {
    style!(green, red, yellow, cyan, magenta, bold, dimmed);
}

/// Where output goes.
#[derive(Debug, Clone, Copy)]
pub struct Printer {
    /// Styling for stdout.
    pub out: Styler,
    /// Styling for stderr.
    pub err: Styler,
}

impl Printer {
    /// Decides colour for both streams.
    pub fn new(choice: ColorChoice, no_color_env: bool) -> Self {
        let decide = |is_tty: bool| match choice {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => is_tty && !no_color_env,
        };
        Self {
            out: Styler {
                color: decide(std::io::stdout().is_terminal()),
            },
            err: Styler {
                color: decide(std::io::stderr().is_terminal()),
            },
        }
    }

    /// Writes `text` to stdout (adding a final newline if missing).
    pub fn stdout(&self, text: &str) {
        write_all(&mut std::io::stdout().lock(), text);
    }

    /// Streams a large document to stdout through `write` (which ends it with a newline).
    pub fn stdout_streamed(&self, write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) {
        let mut stdout = std::io::stdout().lock();
        // As in `write_all`: a reader that went away is not our error.
        let _ = write(&mut stdout).and_then(|()| stdout.flush());
    }

    /// Writes `text` to stderr (adding a final newline if missing).
    pub fn stderr(&self, text: &str) {
        write_all(&mut std::io::stderr().lock(), text);
    }
}

fn write_all(stream: &mut dyn Write, text: &str) {
    if text.is_empty() {
        return;
    }
    let result = stream.write_all(text.as_bytes()).and_then(|()| {
        if text.ends_with('\n') {
            Ok(())
        } else {
            stream.write_all(b"\n")
        }
    });
    // A reader that went away (`secretsync plan | head`) is not our error; anything else on a
    // terminal stream cannot be reported anywhere either.
    let _ = result.and_then(|()| stream.flush());
}

/// `text` (an error from a server, a note) fit for one line of output: line breaks become a
/// visible `⏎` and other control characters (a terminal escape, a backspace) are shown escaped,
/// so text from outside can neither forge lines of the report nor drive the terminal.
pub fn one_line(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(|c| c.is_control() && c != '\t') {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' | '\r' => out.push_str(" ⏎ "),
            '\t' => out.push('\t'),
            c if c.is_control() => out.extend(c.escape_default()),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod one_line_tests {
    use super::one_line;

    #[test]
    fn breaks_and_control_characters_cannot_forge_lines_or_drive_the_terminal() {
        assert_eq!(one_line("plain text"), "plain text");
        assert_eq!(
            one_line("denied\r\n  ✓ in sync\n\u{1b}[2J"),
            "denied ⏎   ✓ in sync ⏎ \\u{1b}[2J"
        );
    }
}
