//! Reading what must not land in shell history: a new admin user's password (from
//! standard input with `--password-stdin`, for scripts, or typed twice at a terminal
//! prompt with echo off), and a personal value to erase (from standard input, or typed at
//! a prompt with echo off).

use anyhow::{Context, bail};
use rustix::termios::{LocalModes, OptionalActions, Termios, isatty, tcgetattr, tcsetattr};
use std::io::{BufRead, Read, Write};

/// The password, read as `from_stdin` says; without it, stdin must be a terminal.
pub fn read(from_stdin: bool) -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if from_stdin {
        let mut text = String::new();
        stdin
            .lock()
            .read_to_string(&mut text)
            .context("reading the password from stdin")?;
        return Ok(strip_newline(text));
    }
    if !isatty(&stdin) {
        bail!("stdin is not a terminal: pass --password-stdin to read the password from it");
    }
    let first = prompt("New password: ")?;
    let second = prompt("Repeat it: ")?;
    if first != second {
        bail!("the two passwords differ; nothing changed");
    }
    Ok(first)
}

/// A value to erase: standard input when it is not a terminal (a pipe or a file), else
/// typed after `label` without echo; surrounding whitespace removed.
pub fn read_value(label: &str) -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    let text = if isatty(&stdin) {
        prompt(label)?
    } else {
        let mut text = String::new();
        stdin
            .lock()
            .read_to_string(&mut text)
            .context("reading the value from stdin")?;
        text
    };
    let value = text.trim();
    if value.is_empty() {
        bail!("no value given (pipe it to standard input, or type it at the prompt)");
    }
    Ok(value.to_string())
}

/// One line typed at the terminal, not echoed.
fn prompt(label: &str) -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    let mut stderr = std::io::stderr();
    write!(stderr, "{label}")?;
    stderr.flush()?;
    let line = {
        let _quiet = Quiet::on(&stdin)?;
        let mut line = String::new();
        stdin.lock().read_line(&mut line)?;
        line
    };
    writeln!(stderr)?;
    Ok(strip_newline(line))
}

/// The line without its one trailing newline (`\n` or `\r\n`); other whitespace is kept.
fn strip_newline(mut text: String) -> String {
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    text
}

/// Terminal echo off for as long as it lives; restored on drop, also on error.
struct Quiet {
    saved: Termios,
}

impl Quiet {
    fn on(stdin: &std::io::Stdin) -> anyhow::Result<Self> {
        let saved = tcgetattr(stdin).context("reading the terminal's settings")?;
        let mut quiet = saved.clone();
        quiet.local_modes.remove(LocalModes::ECHO);
        tcsetattr(stdin, OptionalActions::Now, &quiet).context("turning echo off")?;
        Ok(Self { saved })
    }
}

impl Drop for Quiet {
    fn drop(&mut self) {
        let _ = tcsetattr(std::io::stdin(), OptionalActions::Now, &self.saved);
    }
}

#[cfg(test)]
mod tests {
    use super::strip_newline;

    #[test]
    fn one_trailing_newline_is_dropped() {
        for (typed, password) in [
            ("pass word\n", "pass word"),
            ("pass word\r\n", "pass word"),
            ("pass word", "pass word"),
            (" pass word \n\n", " pass word \n"),
        ] {
            assert_eq!(strip_newline(typed.into()), password);
        }
    }
}
