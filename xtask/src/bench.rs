//! `cargo xtask bench`: the benchmarks (docs/benchmarks.md): anysql against the raw drivers and its peers.
//!
//! Two binaries, one after the other, on the same sizes:
//! - `anysql-benches` (`benches/harness`, a member of this workspace): raw rusqlite, raw tokio-postgres and
//!   anysql on tokio, smol and async-std;
//! - `anysql-bench-peers` (`benches/peers`, its own workspace and lockfile, because sqlx-sqlite links another
//!   `libsqlite3-sys`): sqlx and tokio-rusqlite, with the raw drivers measured again.
//!
//! Then `anysql-benches report` merges their JSON, prints one table and draws the chart. The report lives
//! in the harness so that xtask itself needs neither serde_json nor plotters.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use xtask::load::Load;

use crate::pg::tls::TlsCluster;
use crate::pg::{self, PgMode, PgSupply, ServerBinaries};

pub const USAGE: &str = "\
Usage: cargo xtask bench [--quick] [--loaded] [--only S1,P1] [--json PATH] [--pg auto|throwaway|none]
       cargo xtask bench --tracing [--quick] [--pg MODE]

Builds the benchmark binaries in release mode, runs the main harness (raw drivers, anysql on tokio,
smol and async-std) and then the peers (sqlx, tokio-rusqlite) on the same sizes, and prints one table:
each cell is the median µs/op (µs/row for S4/P3, ops/s for S5, tx/s for S6/P6, MB for M1) and its
cost relative to the raw driver, with the target and whether it holds on every runtime; under each
timed row, the process's CPU time per operation and its ratio to raw's.

Options:
  --quick           a tenth of the sizes and 3 repetitions instead of 5 (under two minutes)
  --loaded          run every workload while a separate process keeps every core busy
                    (`anysql-benches load`, normal priority, killed at the end); anysql also
                    runs with busy_poll=0 and inline_limit=0 (`anysql-<runtime>-nospin`), and the
                    table says whether its default configuration costs no more than that
  --only LIST       only these workloads, e.g. S1,P1 (S1-S6, P1-P6, M1)
  --json PATH       where to write the merged results (default target/bench/results.json)
  --pg MODE         where PostgreSQL comes from: auto (ANYSQL_PG_URL, else the default service,
                    else a throwaway cluster; the default), throwaway, or none (skip P1-P6)
  --tracing         instead of the table: what the `tracing` feature costs anysql on tokio in S1
                    and P1, in three states measured in turn for five rounds (three with
                    --quick): built without the feature, with it and no subscriber, and with a
                    `tracing-subscriber` fmt layer formatting every statement's span (into a
                    sink); writes target/bench/tracing.md

With PostgreSQL and its server binaries, P1 and P3 also run over TLS (rows P1t and P3t: anysql with
sslmode=verify-full, raw tokio-postgres over the same rustls) against a throwaway cluster with
`ssl = on` in target/anysql-pg-tls; the other rows stay in plaintext.

Writes target/bench/results.json, target/bench/results.md and the chart: docs/bench.svg for a full
run of every workload, target/bench/bench.svg for --quick or --only runs (so that a partial or noisy
run never replaces the chart the README shows). A --loaded run writes results-loaded.json,
results-loaded.md and bench-loaded.svg in target/bench instead, with each ratio beside that of the
last idle run's results.json when there is one.";

#[derive(Debug, Default)]
struct Options {
    quick: bool,
    loaded: bool,
    only: Option<String>,
    json: Option<PathBuf>,
    pg: PgMode,
    tracing: bool,
    help: bool,
}

impl Options {
    fn parse(args: &[String]) -> Result<Options> {
        let mut options = Options::default();
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let mut value = || {
                args.next()
                    .with_context(|| format!("{arg} needs a value\n\n{USAGE}"))
            };
            match arg.as_str() {
                "--quick" => options.quick = true,
                "--loaded" => options.loaded = true,
                "--tracing" => options.tracing = true,
                "--only" => options.only = Some(value()?.clone()),
                // Relative to where the user ran cargo, not to the workspace root.
                "--json" => options.json = Some(std::env::current_dir()?.join(value()?)),
                "--pg" => options.pg = value()?.parse()?,
                "-h" | "--help" => options.help = true,
                other => bail!("unknown argument `{other}`\n\n{USAGE}"),
            }
        }
        Ok(options)
    }

    /// The arguments both binaries' `run` take.
    fn run_args(&self, json: &Path, pg: bool) -> Vec<String> {
        let mut args = vec![
            "run".to_owned(),
            "--json".to_owned(),
            json.display().to_string(),
        ];
        if self.quick {
            args.push("--quick".to_owned());
        }
        if self.loaded {
            args.push("--loaded".to_owned());
        }
        if let Some(only) = &self.only {
            args.extend(["--only".to_owned(), only.clone()]);
        }
        if !pg {
            args.push("--no-pg".to_owned());
        }
        args
    }
}

pub fn run(sh: &Shell, args: &[String]) -> Result<ExitCode> {
    let options = Options::parse(args)?;
    if options.help {
        println!("{USAGE}");
        return Ok(ExitCode::SUCCESS);
    }
    let root = crate::workspace_root();
    let target = crate::target_dir();
    let out_dir = target.join("bench");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let peers_manifest = root.join("benches/peers/Cargo.toml");
    // Under this workspace's target directory (CARGO_TARGET_DIR included), beside the harness.
    let peers_target = target.join("peers");

    if options.tracing {
        if options.loaded || options.only.is_some() {
            bail!("--tracing measures S1 and P1 on its own; it takes neither --loaded nor --only");
        }
        return tracing_cost(sh, &options, &cargo, &target, &out_dir);
    }

    println!("== building the benchmarks (release)");
    cmd!(sh, "{cargo} build --release --locked -p anysql-benches").run()?;
    cmd!(
        sh,
        "{cargo} build --release --locked --manifest-path {peers_manifest} --target-dir {peers_target}"
    )
    .run()?;
    let harness = target.join("release/anysql-benches");
    let peers = peers_target.join("release/anysql-bench-peers");

    let mut server = None;
    match pg::acquire(options.pg, &target) {
        PgSupply::Ready(found) => {
            println!("PostgreSQL: {}", found.origin);
            server = Some(found);
        }
        PgSupply::Unavailable(why) => println!("PostgreSQL: skipped ({why})"),
        PgSupply::Broken(why) => println!("PostgreSQL: skipped: {why}"),
    }
    let pg_url = server.as_ref().map(|s| s.url.clone());
    let mut tls_cluster = None;
    if pg_url.is_some() {
        match ServerBinaries::find().map(|binaries| TlsCluster::start(binaries, &target)) {
            Some(Ok(cluster)) => tls_cluster = Some(cluster),
            Some(Err(error)) => println!("PostgreSQL with TLS: skipped: {error:#}"),
            None => println!("PostgreSQL with TLS: skipped (no server binaries for a TLS cluster)"),
        }
    }

    let result = (|| -> Result<()> {
        std::fs::create_dir_all(&out_dir)
            .with_context(|| format!("cannot create {}", out_dir.display()))?;
        let suffix = if options.loaded { "-loaded" } else { "" };
        let main_json = out_dir.join(format!("main{suffix}.json"));
        let peers_json = out_dir.join(format!("peers{suffix}.json"));
        let _env = pg_url.as_ref().map(|url| sh.push_env("ANYSQL_PG_URL", url));

        // Dropped at the end of this closure, whether it returns or unwinds: the load stops
        // before the report and before the servers shut down.
        let _load = if options.loaded {
            let mut command = std::process::Command::new(&harness);
            command.arg("load");
            let load = Load::start(command)?;
            println!(
                "\n== under load: process {} keeps every core busy",
                load.pid()
            );
            Some(load)
        } else {
            None
        };

        println!("\n== anysql and the raw drivers");
        let args = options.run_args(&main_json, pg_url.is_some());
        let tls_env: Vec<(&str, String)> = match &tls_cluster {
            Some(cluster) => vec![
                ("ANYSQL_PG_TLS_URL", cluster.url()),
                (
                    "ANYSQL_PG_TLS_CA",
                    cluster.cert_dir().join("ca.pem").display().to_string(),
                ),
            ],
            None => Vec::new(),
        };
        cmd!(sh, "{harness} {args...}").envs(tls_env).run()?;

        println!("\n== the peers: sqlx, tokio-rusqlite");
        let args = options.run_args(&peers_json, pg_url.is_some());
        cmd!(sh, "{peers} {args...}").run()?;

        drop(_load);

        let json = options
            .json
            .clone()
            .unwrap_or_else(|| out_dir.join(format!("results{suffix}.json")));
        let markdown = out_dir.join(format!("results{suffix}.md"));
        let svg = if options.loaded {
            out_dir.join("bench-loaded.svg")
        } else if options.quick || options.only.is_some() {
            out_dir.join("bench.svg")
        } else {
            root.join("docs/bench.svg")
        };
        let mut idle = Vec::new();
        let idle_json = out_dir.join("results.json");
        if options.loaded && idle_json.exists() {
            idle = vec!["--idle".to_owned(), idle_json.display().to_string()];
        }
        cmd!(
            sh,
            "{harness} report --input {main_json} --input {peers_json} --json {json} --markdown {markdown} --svg {svg} {idle...}"
        )
        .quiet()
        .run()?;
        Ok(())
    })();

    if let Some(mut cluster) = tls_cluster {
        cluster.stop()?;
    }
    if let Some(server) = server {
        server.shut_down()?;
    }
    result?;
    Ok(ExitCode::SUCCESS)
}

/// `--tracing`: the harness built twice, without and with the `tracing` feature, measuring
/// anysql on tokio in S1 and P1 in three states, in turn, round after round.
fn tracing_cost(
    sh: &Shell,
    options: &Options,
    cargo: &str,
    target: &Path,
    out_dir: &Path,
) -> Result<ExitCode> {
    std::fs::create_dir_all(out_dir)
        .with_context(|| format!("cannot create {}", out_dir.display()))?;
    let built = target.join("release/anysql-benches");
    let plain = out_dir.join("anysql-benches-plain");
    let traced = out_dir.join("anysql-benches-traced");
    println!("== building the harness without and with the tracing feature (release)");
    cmd!(sh, "{cargo} build --release --locked -p anysql-benches").run()?;
    std::fs::copy(&built, &plain).with_context(|| format!("cannot copy {}", built.display()))?;
    cmd!(
        sh,
        "{cargo} build --release --locked -p anysql-benches --features tracing"
    )
    .run()?;
    std::fs::copy(&built, &traced).with_context(|| format!("cannot copy {}", built.display()))?;

    let server = match pg::acquire(options.pg, target) {
        PgSupply::Ready(found) => {
            println!("PostgreSQL: {}", found.origin);
            Some(found)
        }
        PgSupply::Unavailable(why) => {
            println!("PostgreSQL: skipped ({why}); S1 only");
            None
        }
        PgSupply::Broken(why) => {
            println!("PostgreSQL: skipped: {why}; S1 only");
            None
        }
    };
    let result = (|| -> Result<()> {
        let _env = server
            .as_ref()
            .map(|s| sh.push_env("ANYSQL_PG_URL", &s.url));
        let rounds = if options.quick { 3 } else { 5 };
        let mut round_args = Vec::new();
        for round in 0..rounds {
            let mut files = Vec::new();
            for (state, binary, subscriber) in [
                ("plain", &plain, false),
                ("off", &traced, false),
                ("on", &traced, true),
            ] {
                println!("\n== round {}/{rounds}: {state}", round + 1);
                let json = out_dir.join(format!("tracing-{round}-{state}.json"));
                let mut args = Options {
                    quick: options.quick,
                    only: Some(if server.is_some() { "S1,P1" } else { "S1" }.to_owned()),
                    ..Options::default()
                }
                .run_args(&json, server.is_some());
                args.extend(["--impls".to_owned(), "anysql-tokio".to_owned()]);
                let command = cmd!(sh, "{binary} {args...}");
                if subscriber {
                    command.env("ANYSQL_BENCH_SUBSCRIBER", "1").run()?;
                } else {
                    command.env_remove("ANYSQL_BENCH_SUBSCRIBER").run()?;
                }
                files.push(json.display().to_string());
            }
            round_args.extend(["--round".to_owned(), files.join(",")]);
        }
        let markdown = out_dir.join("tracing.md");
        println!();
        cmd!(
            sh,
            "{plain} tracing-cost {round_args...} --markdown {markdown}"
        )
        .run()?;
        Ok(())
    })();
    if let Some(server) = server {
        server.shut_down()?;
    }
    result?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Options> {
        Options::parse(&args.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn loaded_reaches_both_binaries() {
        let options = parse(&["--loaded", "--quick", "--only", "P6,S6"]).unwrap();
        assert!(options.loaded && options.quick);
        let args = options.run_args(Path::new("/tmp/out.json"), true);
        assert_eq!(
            args,
            [
                "run",
                "--json",
                "/tmp/out.json",
                "--quick",
                "--loaded",
                "--only",
                "P6,S6"
            ]
        );
        let args = parse(&[]).unwrap().run_args(Path::new("x.json"), false);
        assert!(!args.iter().any(|a| a == "--loaded"));
        assert_eq!(args.last().map(String::as_str), Some("--no-pg"));
    }

    #[test]
    fn tracing_is_an_option() {
        assert!(parse(&["--tracing", "--quick"]).unwrap().tracing);
        assert!(!parse(&[]).unwrap().tracing);
    }

    #[test]
    fn unknown_arguments_are_refused() {
        let error = parse(&["--load"]).unwrap_err();
        assert!(format!("{error}").contains("unknown argument `--load`"));
    }
}
