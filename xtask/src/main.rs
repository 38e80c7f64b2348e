//! Project automation for anysql, run as `cargo xtask <command>` (the alias is in `.cargo/config.toml`).
//!
//! Every command is a module with a `run` function and a usage text; adding one is one entry in
//! [`COMMANDS`].

mod bench;
mod pg_smoke;
mod report;
mod test_matrix;

use xtask::{pg, process};

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use xshell::Shell;

/// A `cargo xtask` subcommand.
#[derive(Debug)]
struct Command {
    name: &'static str,
    summary: &'static str,
    /// Diagnostics are listed separately in the help.
    diagnostic: bool,
    run: fn(&Shell, &[String]) -> Result<ExitCode>,
}

const COMMANDS: &[Command] = &[
    Command {
        name: "test-matrix",
        summary: "unit and doc tests, then the conformance suite for every runtime x driver cell",
        diagnostic: false,
        run: test_matrix::run,
    },
    Command {
        name: "torture",
        summary: "the cancellation torture test alone, larger (--ops 100000), on every cell",
        diagnostic: false,
        run: test_matrix::torture::run,
    },
    Command {
        name: "bench",
        summary: "the benchmarks: anysql against the raw drivers, sqlx and tokio-rusqlite",
        diagnostic: false,
        run: bench::run,
    },
    Command {
        name: "pg-smoke",
        summary: "start a throwaway PostgreSQL cluster, run `select 1`, stop it",
        diagnostic: true,
        run: pg_smoke::run,
    },
];

fn main() -> Result<ExitCode> {
    let args = std::env::args_os()
        .skip(1)
        .map(|arg| {
            arg.into_string()
                .map_err(|arg| anyhow::anyhow!("argument {arg:?} is not UTF-8"))
        })
        .collect::<Result<Vec<String>>>()?;

    let sh = Shell::new().context("failed to create a shell")?;
    sh.change_dir(workspace_root());

    match args.first().map(String::as_str) {
        None | Some("help" | "-h" | "--help") => {
            println!("{}", help());
            Ok(ExitCode::SUCCESS)
        }
        Some(name) => match COMMANDS.iter().find(|command| command.name == name) {
            Some(command) => (command.run)(&sh, &args[1..]),
            None => {
                eprintln!("error: unknown command `{name}`\n\n{}", help());
                Ok(ExitCode::from(2))
            }
        },
    }
}

fn help() -> String {
    let mut text = String::from("Usage: cargo xtask <COMMAND> [ARGS]\n\nCommands:\n");
    let width = COMMANDS
        .iter()
        .map(|command| command.name.len())
        .max()
        .unwrap_or(0);
    let list = |text: &mut String, diagnostic: bool| {
        for command in COMMANDS
            .iter()
            .filter(|command| command.diagnostic == diagnostic)
        {
            text.push_str(&format!("  {:width$}  {}\n", command.name, command.summary));
        }
    };
    list(&mut text, false);
    text.push_str(&format!(
        "  {:width$}  print this help\n\nDiagnostics:\n",
        "help"
    ));
    list(&mut text, true);
    text.push_str("\nRun `cargo xtask <COMMAND> --help` for a command's options.");
    text
}

/// The workspace root: xtask lives one level below it.
fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits inside the workspace")
}

/// Cargo's target directory, honouring `CARGO_TARGET_DIR`.
fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => workspace_root().join(dir),
        _ => workspace_root().join("target"),
    }
}
