//! Running a command with its stdout and stderr merged into one captured stream.
//!
//! `cargo test` writes its progress to stderr and libtest writes to stdout. Reading both through one pipe
//! keeps them in the order they happened, so a failing cell's log reads like a terminal session.

use std::io::{self, BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use xshell::Cmd;

/// What a finished command left behind.
#[derive(Debug)]
pub struct Captured {
    /// Whether the command exited with status 0.
    pub success: bool,
    /// A printable form of the exit status, for messages.
    pub status: String,
    /// Everything the command wrote to stdout and stderr, interleaved.
    pub output: String,
    /// Wall time from spawn to exit.
    pub elapsed: Duration,
}

/// Runs `cmd` with stdin closed, capturing its merged output.
///
/// With `echo`, every line is also copied to our stdout as it arrives, for `--verbose` runs.
pub fn run_captured(cmd: Cmd<'_>, echo: bool) -> Result<Captured> {
    let display = cmd.to_string();
    let mut command: Command = cmd.into();
    let (reader, writer) = io::pipe().context("failed to create a pipe")?;
    command
        .stdin(Stdio::null())
        .stdout(writer.try_clone().context("failed to clone a pipe")?)
        .stderr(writer);

    let start = Instant::now();
    let mut child = command
        .spawn()
        .with_context(|| format!("failed to start `{display}`"))?;
    // The command still holds our copies of the write end; without dropping them the read below never sees EOF.
    drop(command);

    let mut output = Vec::new();
    let mut reader = BufReader::new(reader);
    let mut line = Vec::new();
    let stdout = io::stdout();
    loop {
        line.clear();
        let read = reader
            .read_until(b'\n', &mut line)
            .with_context(|| format!("failed to read the output of `{display}`"))?;
        if read == 0 {
            break;
        }
        if echo {
            let mut out = stdout.lock();
            // A closed stdout (e.g. `| head`) must not abort the run, so write errors are ignored.
            let _ = out.write_all(&line);
            let _ = out.flush();
        }
        output.extend_from_slice(&line);
    }

    let status = child
        .wait()
        .with_context(|| format!("failed to wait for `{display}`"))?;
    Ok(Captured {
        success: status.success(),
        status: status.to_string(),
        output: String::from_utf8_lossy(&output).into_owned(),
        elapsed: start.elapsed(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use xshell::{cmd, Shell};

    #[test]
    fn merges_stdout_and_stderr_in_order() {
        let sh = Shell::new().unwrap();
        let script = "echo one; echo two >&2; echo three; exit 3";
        let captured = run_captured(cmd!(sh, "sh -c {script}"), false).unwrap();
        assert!(!captured.success);
        assert_eq!(captured.output, "one\ntwo\nthree\n");
    }

    #[test]
    fn reports_success() {
        let sh = Shell::new().unwrap();
        let captured = run_captured(cmd!(sh, "true"), false).unwrap();
        assert!(captured.success);
        assert!(captured.output.is_empty());
    }
}
