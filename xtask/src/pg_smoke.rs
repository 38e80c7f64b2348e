//! `cargo xtask pg-smoke`: a diagnostic for the throwaway PostgreSQL cluster.
//!
//! Starts the cluster exactly as `test-matrix` would, runs `select 1` through `psql`, stops it, and checks
//! that no server process is left. Useful when the PostgreSQL cells misbehave on a new machine.

use std::process::ExitCode;

use anyhow::{bail, ensure, Context, Result};
use xshell::{cmd, Shell};

use crate::pg::{Cluster, ServerBinaries};

pub const USAGE: &str = "\
Usage: cargo xtask pg-smoke

Starts a throwaway PostgreSQL cluster in target/anysql-pg (as test-matrix --pg throwaway does), runs
`select 1` against it with psql, stops it and checks that no server process is left.";

pub fn run(sh: &Shell, args: &[String]) -> Result<ExitCode> {
    match args {
        [] => {}
        [help] if help == "-h" || help == "--help" => {
            println!("{USAGE}");
            return Ok(ExitCode::SUCCESS);
        }
        [other, ..] => bail!("unknown argument `{other}`\n\n{USAGE}"),
    }

    let binaries = ServerBinaries::find().context(
        "no PostgreSQL server binaries (initdb, pg_ctl) on PATH or in /usr/lib/postgresql/*/bin",
    )?;
    println!(
        "PostgreSQL: server binaries in {}",
        binaries.dir().display()
    );
    let mut cluster = Cluster::start(binaries, &crate::target_dir())?;
    println!("PostgreSQL: started {}", cluster.url());

    let psql = cluster.binaries().tool("psql");
    let port = cluster.port().to_string();
    let query = cmd!(
        sh,
        "{psql} -X -A -t -w -h 127.0.0.1 -p {port} -U postgres -d test -c 'select 1'"
    );
    println!("$ {query}");
    let mut answer = query.read();
    // The Unix-socket tests need the socket too.
    if let (Ok(_), Some(dir)) = (&answer, cluster.socket_dir()) {
        let query = cmd!(
            sh,
            "{psql} -X -A -t -w -h {dir} -p {port} -U postgres -d test -c 'select 1'"
        );
        println!("$ {query}");
        answer = query.read();
    }
    // Stop before judging the answer, so a failed query still leaves nothing running.
    let stopped = cluster.stop();

    let answer = answer.context("psql could not query the throwaway cluster")?;
    ensure!(answer.trim() == "1", "`select 1` answered {answer:?}");
    stopped?;
    let over = if cluster.socket_dir().is_some() {
        "TCP and the Unix socket"
    } else {
        "TCP"
    };
    println!("pg-smoke: ok (select 1 answered 1 over {over}; the cluster is stopped and left no process)");
    Ok(ExitCode::SUCCESS)
}
