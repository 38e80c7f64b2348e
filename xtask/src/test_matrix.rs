//! `cargo xtask test-matrix`: the conformance suite for every runtime × driver cell.
//!
//! The suite is one set of test binaries built once with every feature; the cell is chosen at run time
//! through `ANYSQL_TEST_RUNTIME` and `ANYSQL_TEST_DRIVER`. Every cell runs the same `cargo test` command,
//! so after the first build no cell recompiles anything.

use std::process::ExitCode;

use anyhow::{bail, ensure, Context, Result};
use xshell::{cmd, Shell};

use crate::pg::tls::TlsCluster;
use crate::pg::{self, PgMode, PgSupply, ServerBinaries};
use crate::process::{self, Captured};
use crate::report::{self, Outcome, Row};

const RUNTIMES: [&str; 3] = ["tokio", "smol", "async-std"];
const DRIVERS: [&str; 2] = ["sqlite", "postgres"];
const SUITE: &str = "anysql-conformance";
const UNIT_ROW: &str = "unit & doc tests";
/// The example services, started as programs and driven over HTTP by their tests, on SQLite and
/// on the PostgreSQL server the cells use (so they run with the cells, not in the unit step).
const SERVICES: [&str; 2] = ["axum-service", "smol-service"];
const SERVICES_ROW: &str = "example services over HTTP";
/// The facade's optional features that need no runtime or driver, each built alone: the type
/// features, tracing, migrations and the test helper.
const ALONE_FEATURES: [&str; 9] = [
    "chrono",
    "time",
    "uuid",
    "json",
    "decimal",
    "bigdecimal",
    "tracing",
    "migrate",
    "testing",
];

pub const USAGE: &str = "\
Usage: cargo xtask test-matrix [OPTIONS] [-- <TEST ARGS>...]

Runs the conformance suite (package anysql-conformance) once per runtime x driver cell and prints a
table of results. Without filters it first runs the unit and doc tests of every other crate.

Options:
  --runtime <NAMES>   only these runtimes: tokio, smol, async-std (repeatable or comma-separated)
  --driver <NAMES>    only these drivers: sqlite, postgres (repeatable or comma-separated); with
                      postgres, three more cells per runtime run too: the suite through a
                      throwaway PgBouncer (transaction pooling), the replica tests (a primary
                      and a standby of their own), and the TLS tests against a throwaway
                      cluster with `ssl = on` (target/anysql-pg-tls)
  --pg <MODE>         where PostgreSQL comes from:
                        auto       ANYSQL_PG_URL, else postgres://root@127.0.0.1:5432/test,
                                   else a throwaway cluster (the default)
                        throwaway  always start a throwaway cluster in target/anysql-pg
                        none       skip the PostgreSQL cells
  --list              print the selected cells and exit
  -v, --verbose       stream every command's output (otherwise only failures are shown in full)
  -h, --help          print this help
  -- <TEST ARGS>      passed to the test binaries, e.g. a test name filter; also skips the unit step

Exits non-zero if any cell fails. With CI set (CI=true), a PostgreSQL cell that cannot run is a failure.
The last line is always `N passed, N failed, N skipped` over all cells.";

/// One runtime × driver combination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cell {
    runtime: &'static str,
    driver: &'static str,
    /// PostgreSQL through a real PgBouncer in transaction-pooling mode, in PgBouncer-safe mode
    /// (unnamed statements only): one extra cell per runtime.
    pgbouncer: bool,
    /// The multi-host, read-replica and failover tests (`replica_only::`), each with a primary
    /// and a streaming standby of its own: one extra cell per runtime.
    replicas: bool,
    /// The TLS tests (`tests/tests/tls.rs`) against the TLS cluster: one extra cell per runtime.
    tls: bool,
}

impl Cell {
    fn name(self) -> String {
        if self.pgbouncer {
            format!("{} × {} (pgbouncer)", self.runtime, self.driver)
        } else if self.replicas {
            format!("{} × {} (replicas)", self.runtime, self.driver)
        } else if self.tls {
            format!("{} × {} (tls)", self.runtime, self.driver)
        } else {
            format!("{} × {}", self.runtime, self.driver)
        }
    }

    fn needs_postgres(self) -> bool {
        self.driver == "postgres"
    }

    /// Tests written for the other database, which return at once here and are skipped so that
    /// the counts only show what really ran.
    fn foreign_tests(self) -> &'static str {
        if self.needs_postgres() {
            "sqlite_only::"
        } else {
            "pg_only::"
        }
    }

    /// The libtest arguments that choose this cell's tests: the replica cells run the
    /// `replica_only::` tests alone, which every other cell skips.
    fn test_filter(self) -> Vec<&'static str> {
        if self.replicas {
            vec!["replica_only::"]
        } else if self.tls {
            // The TLS cells run the TLS binary alone (`--test tls`), all of it.
            Vec::new()
        } else {
            vec![
                "--skip",
                self.foreign_tests(),
                "--skip",
                "replica_only::",
                "--skip",
                "tls_only::",
            ]
        }
    }
}

#[derive(Debug, Default, PartialEq, Eq)]
struct Options {
    runtimes: Vec<&'static str>,
    drivers: Vec<&'static str>,
    pg: PgMode,
    list: bool,
    verbose: bool,
    help: bool,
    test_args: Vec<String>,
    /// Extra arguments for `cargo test` itself, such as `--test torture`.
    cargo_args: Vec<String>,
    /// Extra environment for every cell.
    env: Vec<(&'static str, String)>,
}

impl Options {
    fn parse(args: &[String]) -> Result<Options> {
        let mut options = Options::default();
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let (flag, inline_value) = match arg.split_once('=') {
                Some((flag, value)) if flag.starts_with("--") => (flag, Some(value.to_owned())),
                _ => (arg.as_str(), None),
            };
            if inline_value.is_some() && ["--list", "--verbose", "--help"].contains(&flag) {
                bail!("{flag} takes no value");
            }
            let mut value = |name: &str| -> Result<String> {
                match inline_value.clone() {
                    Some(value) => Ok(value),
                    None => args
                        .next()
                        .cloned()
                        .with_context(|| format!("{name} needs a value")),
                }
            };
            match flag {
                "--" => {
                    options.test_args = args.by_ref().cloned().collect();
                }
                "--runtime" => {
                    add_names(&mut options.runtimes, &value(flag)?, &RUNTIMES, "runtime")?
                }
                "--driver" => add_names(&mut options.drivers, &value(flag)?, &DRIVERS, "driver")?,
                "--pg" => options.pg = value(flag)?.parse()?,
                "--list" => options.list = true,
                "-v" | "--verbose" => options.verbose = true,
                "-h" | "--help" => options.help = true,
                other => bail!("unknown argument `{other}`\n\n{USAGE}"),
            }
        }
        Ok(options)
    }

    /// The selected cells, in a fixed order whatever the order of the filters.
    fn cells(&self) -> Vec<Cell> {
        let mut cells = Vec::new();
        for runtime in RUNTIMES {
            for driver in DRIVERS {
                let wanted = (self.runtimes.is_empty() || self.runtimes.contains(&runtime))
                    && (self.drivers.is_empty() || self.drivers.contains(&driver));
                if wanted {
                    cells.push(Cell {
                        runtime,
                        driver,
                        pgbouncer: false,
                        replicas: false,
                        tls: false,
                    });
                }
            }
        }
        let postgres: Vec<&'static str> = cells
            .iter()
            .filter(|c| c.needs_postgres())
            .map(|c| c.runtime)
            .collect();
        // The torture run (`cargo_args`) has no replica tests.
        let extra: &[(bool, bool)] = if self.cargo_args.is_empty() {
            &[(true, false), (false, true)]
        } else {
            &[(true, false)]
        };
        for &(pgbouncer, replicas) in extra {
            for &runtime in &postgres {
                cells.push(Cell {
                    runtime,
                    driver: "postgres",
                    pgbouncer,
                    replicas,
                    tls: false,
                });
            }
        }
        // The TLS tests have their own binary; a run narrowed to other binaries (the torture run)
        // has no TLS cells.
        if self.cargo_args.is_empty() {
            for &runtime in &postgres {
                cells.push(Cell {
                    runtime,
                    driver: "postgres",
                    pgbouncer: false,
                    replicas: false,
                    tls: true,
                });
            }
        }
        cells
    }

    /// The unit step belongs to the full matrix only: a filtered run asks about particular cells.
    fn runs_unit_step(&self) -> bool {
        self.runtimes.is_empty() && self.drivers.is_empty() && self.test_args.is_empty()
    }
}

fn add_names(
    into: &mut Vec<&'static str>,
    names: &str,
    known: &[&'static str],
    what: &str,
) -> Result<()> {
    for name in names
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
    {
        let Some(&known_name) = known.iter().find(|&&known_name| known_name == name) else {
            bail!(
                "unknown {what} `{name}`; expected one of: {}",
                known.join(", ")
            );
        };
        if !into.contains(&known_name) {
            into.push(known_name);
        }
    }
    Ok(())
}

/// Whether we run under CI, where every cell must really run.
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| {
        !matches!(
            value.trim().to_ascii_lowercase().as_str(),
            "" | "0" | "false"
        )
    })
}

pub fn run(sh: &Shell, args: &[String]) -> Result<ExitCode> {
    run_with(sh, Options::parse(args)?)
}

/// `cargo xtask torture`: the cancellation torture test alone, larger, on every cell.
pub mod torture {
    use super::*;

    pub const USAGE: &str = "\
Usage: cargo xtask torture [--ops N] [--seed S] [--runtime <NAMES>] [--driver <NAMES>] [--pg <MODE>]

Runs the cancellation torture test (tests/tests/torture.rs) on every runtime x driver cell with N
operations (default 100000), each cut short by a timeout of seeded random length, and prints its
counts: operations, cancellations, leaked connections, sessions idle in transaction, lost rows.
Exits non-zero if any cell fails. Other options are those of test-matrix.";

    pub fn run(sh: &Shell, args: &[String]) -> Result<ExitCode> {
        let mut ops = "100000".to_owned();
        let mut seed = None;
        let mut rest = Vec::new();
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--ops" => ops = args.next().cloned().context("--ops needs a value")?,
                "--seed" => seed = Some(args.next().cloned().context("--seed needs a value")?),
                "-h" | "--help" => {
                    println!("{USAGE}");
                    return Ok(ExitCode::SUCCESS);
                }
                _ => rest.push(arg.clone()),
            }
        }
        ops.parse::<u64>()
            .map_err(|_| anyhow::anyhow!("--ops takes a whole number, not `{ops}`"))?;
        let mut options = Options::parse(&rest)?;
        ensure!(
            options.test_args.is_empty(),
            "torture takes no test arguments\n\n{USAGE}"
        );
        options.cargo_args = vec!["--test".into(), "torture".into()];
        options.test_args = vec!["--nocapture".into()];
        options.env.push(("ANYSQL_TORTURE_OPS", ops));
        if let Some(seed) = seed {
            seed.parse::<u64>()
                .map_err(|_| anyhow::anyhow!("--seed takes a whole number, not `{seed}`"))?;
            options.env.push(("ANYSQL_TORTURE_SEED", seed));
        }
        run_with(sh, options)
    }
}

fn run_with(sh: &Shell, options: Options) -> Result<ExitCode> {
    if options.help {
        println!("{USAGE}");
        return Ok(ExitCode::SUCCESS);
    }
    let cells = options.cells();
    if options.list {
        if options.runs_unit_step() {
            println!(
                "{UNIT_ROW:<22}  cargo test --workspace --exclude {SUITE} --exclude {}",
                SERVICES.join(" --exclude ")
            );
            println!(
                "{SERVICES_ROW:<22}  ANYSQL_PG_URL=... cargo test -p {}",
                SERVICES.join(" -p ")
            );
        }
        for cell in &cells {
            println!(
                "{:<30}  ANYSQL_TEST_RUNTIME={} ANYSQL_TEST_DRIVER={}{}",
                cell.name(),
                cell.runtime,
                cell.driver,
                if cell.pgbouncer {
                    " ANYSQL_PG_PGBOUNCER=1 ANYSQL_PG_PGBOUNCER_URL=<a throwaway PgBouncer>"
                } else if cell.replicas {
                    " (replica_only:: tests, each with a primary and a standby of its own)"
                } else if cell.tls {
                    " ANYSQL_PG_TLS_URL=<TLS cluster> ANYSQL_PG_TLS_DIR=<certificates> --test tls"
                } else {
                    ""
                }
            );
        }
        return Ok(ExitCode::SUCCESS);
    }

    let runner = Runner {
        sh,
        cargo: std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()),
        verbose: options.verbose,
    };
    let mut rows = Vec::new();
    if options.runs_unit_step() && options.cargo_args.is_empty() {
        rows.push(runner.unit_step()?);
        rows.extend(runner.facade_steps()?);
    }
    let services = options.runs_unit_step() && options.cargo_args.is_empty();
    if runner.build_suite()? {
        rows.extend(runner.cells(&cells, &options, services)?);
    } else {
        rows.extend(cells.iter().map(|cell| {
            let note = "the conformance suite does not build".to_owned();
            Row::not_run(cell.name(), Outcome::Fail, note)
        }));
    }

    section("summary");
    print!("{}", report::render_table(&rows));
    println!("{}", report::totals_line(&rows));
    let failed = rows.iter().any(|row| row.outcome == Outcome::Fail);
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// What every step of a run shares.
#[derive(Debug)]
struct Runner<'a> {
    sh: &'a Shell,
    /// The cargo that runs us (`$CARGO`), so every step uses the same toolchain.
    cargo: String,
    verbose: bool,
}

impl Runner<'_> {
    /// The unit and doc tests of every crate but the conformance suite.
    fn unit_step(&self) -> Result<Row> {
        section(UNIT_ROW);
        let cargo = &self.cargo;
        let services = SERVICES.iter().flat_map(|s| ["--exclude", s]);
        let command = cmd!(
            self.sh,
            "{cargo} test --workspace --locked --no-fail-fast --exclude {SUITE}"
        )
        .args(services);
        run_tests(UNIT_ROW, command, "", self.verbose)
    }

    /// The facade as applications see it: with no feature at all (a library's view: building an
    /// engine is a clear error), the quickstart example run unchanged on each runtime, and each
    /// type feature built alone; and the core's unit tests with every type feature, which the
    /// workspace step (default features) leaves out; and the PostgreSQL driver's unit tests without
    /// its `tls` feature.
    fn facade_steps(&self) -> Result<Vec<Row>> {
        let cargo = &self.cargo;
        let mut rows = Vec::new();
        section("facade without features");
        let command = cmd!(
            self.sh,
            "{cargo} test -p anysql --locked --no-default-features --lib"
        );
        rows.push(run_tests(
            "facade without features",
            command,
            "",
            self.verbose,
        )?);
        for runtime in RUNTIMES {
            let name = format!("quickstart on {runtime}");
            section(&name);
            let features = format!("runtime-{runtime},sqlite");
            let command = cmd!(
                self.sh,
                "{cargo} run -q -p anysql --locked --example quickstart --no-default-features --features {features}"
            );
            let run = run_logged(command, "", self.verbose)?;
            // The example names the runtime it ran on and ends with its count of tasks.
            let expected = [format!(" on {runtime}"), "2 tasks, 1 open".to_owned()];
            let missing: Vec<&String> = expected
                .iter()
                .filter(|e| !run.output.contains(e.as_str()))
                .collect();
            let passed = run.success && missing.is_empty();
            if !passed || self.verbose {
                println!("{}", run.output.trim_end());
            }
            let note = format!("expected output {missing:?} ({})", run.status);
            rows.push(whole_step(name, &run, passed, note));
        }
        section("postgres driver without tls");
        let command = cmd!(
            self.sh,
            "{cargo} test -p anysql-postgres --locked --no-default-features --lib"
        );
        rows.push(run_tests(
            "postgres driver without tls",
            command,
            "",
            self.verbose,
        )?);
        section("core with every type feature");
        let command = cmd!(
            self.sh,
            "{cargo} test -p anysql-core --locked --all-features --lib"
        );
        rows.push(run_tests(
            "core with every type feature",
            command,
            "",
            self.verbose,
        )?);
        for feature in ALONE_FEATURES {
            let name = format!("facade with {feature} alone");
            section(&name);
            let command = cmd!(
                self.sh,
                "{cargo} check -q -p anysql --locked --no-default-features --features {feature}"
            );
            let run = run_logged(command, "", self.verbose)?;
            if !run.success && !self.verbose {
                println!("{}", run.output.trim_end());
            }
            let note = format!("does not build ({})", run.status);
            rows.push(whole_step(name, &run, run.success, note));
        }
        Ok(rows)
    }

    /// Builds the suite once, so that the cells only run it. Returns whether it built.
    fn build_suite(&self) -> Result<bool> {
        section("building the conformance suite");
        let cargo = &self.cargo;
        let command = cmd!(self.sh, "{cargo} test -p {SUITE} --locked --no-run");
        let build = run_logged(command, "", self.verbose)?;
        if build.success {
            println!("built in {:.1}s", build.elapsed.as_secs_f64());
        } else {
            if !self.verbose {
                println!("{}", build.output.trim_end());
            }
            println!("the conformance suite does not build ({})", build.status);
        }
        Ok(build.success)
    }

    /// Runs `cells` in order, with a PostgreSQL server found or started for those that need one,
    /// then (with `services`) the example services on that server.
    fn cells(&self, cells: &[Cell], options: &Options, services: bool) -> Result<Vec<Row>> {
        let postgres = if services || cells.iter().any(|cell| cell.needs_postgres()) {
            section("PostgreSQL");
            let supply = pg::acquire(options.pg, &crate::target_dir());
            match &supply {
                PgSupply::Ready(server) => println!("PostgreSQL: using {}", server.origin),
                PgSupply::Unavailable(why) => println!("PostgreSQL: none available: {why}"),
                PgSupply::Broken(why) => println!("PostgreSQL: {why}"),
            }
            Some(supply)
        } else {
            None
        };
        // A real PgBouncer in front of that server, for the (pgbouncer) cells.
        let bouncer = match &postgres {
            Some(PgSupply::Ready(server)) if cells.iter().any(|cell| cell.pgbouncer) => {
                section("PgBouncer");
                let supply = start_pgbouncer(server);
                match &supply {
                    Ok(bouncer) => println!("PgBouncer: listening on 127.0.0.1:{}", bouncer.port()),
                    Err((_, why)) => println!("PgBouncer: {why}"),
                }
                Some(supply)
            }
            _ => None,
        };
        let server_binaries = pg::ServerBinaries::find().is_some();
        let pg_dbname = match &postgres {
            Some(PgSupply::Ready(server)) => {
                pg::parse_url(&server.url).ok().and_then(|url| url.dbname)
            }
            _ => None,
        }
        .unwrap_or_else(|| "test".to_owned());
        let mut tls = if cells.iter().any(|cell| cell.tls) {
            section("PostgreSQL with TLS");
            Some(start_tls_cluster())
        } else {
            None
        };

        let mut rows = Vec::new();
        for &cell in cells {
            let mut env = vec![
                ("ANYSQL_TEST_RUNTIME", cell.runtime.to_owned()),
                ("ANYSQL_TEST_DRIVER", cell.driver.to_owned()),
            ];
            env.extend(options.env.iter().cloned());
            if cell.pgbouncer {
                env.push(("ANYSQL_PG_PGBOUNCER", "1".to_owned()));
                match &bouncer {
                    Some(Ok(bouncer)) => {
                        env.push(("ANYSQL_PG_PGBOUNCER_URL", bouncer.url(&pg_dbname)));
                    }
                    Some(Err((outcome, why))) => {
                        rows.push(Row::not_run(cell.name(), *outcome, why.clone()));
                        continue;
                    }
                    // No server: the PostgreSQL check below reports it.
                    None => {}
                }
            }
            if cell.replicas && !server_binaries {
                let why = "no PostgreSQL server binaries (initdb, pg_ctl, pg_basebackup) for a primary and a standby";
                let (outcome, why) = if in_ci() {
                    (Outcome::Fail, format!("CI requires them: {why}"))
                } else {
                    (Outcome::Skipped, why.to_owned())
                };
                rows.push(Row::not_run(cell.name(), outcome, why));
                continue;
            }
            if cell.needs_postgres() {
                let cannot_run = match &postgres {
                    Some(PgSupply::Ready(server)) => {
                        env.push(("ANYSQL_PG_URL", server.url.clone()));
                        if let Some(dir) = &server.socket_dir {
                            env.push(("ANYSQL_PG_SOCKET_DIR", dir.display().to_string()));
                        }
                        None
                    }
                    Some(PgSupply::Unavailable(why)) if in_ci() => {
                        Some((Outcome::Fail, format!("CI requires PostgreSQL: {why}")))
                    }
                    Some(PgSupply::Unavailable(why)) => Some((Outcome::Skipped, why.clone())),
                    Some(PgSupply::Broken(why)) => Some((Outcome::Fail, why.clone())),
                    None => unreachable!("PostgreSQL is looked for whenever a cell needs it"),
                };
                if let Some((outcome, why)) = cannot_run {
                    rows.push(Row::not_run(cell.name(), outcome, why));
                    continue;
                }
            }
            if cell.tls {
                match &tls {
                    Some(Ok(cluster)) => env.extend(cluster.env()),
                    Some(Err((outcome, why))) => {
                        rows.push(Row::not_run(cell.name(), *outcome, why.clone()));
                        continue;
                    }
                    None => unreachable!("the TLS cluster is started whenever a cell needs it"),
                }
            }
            rows.push(self.cell(cell, env, options)?);
        }
        if let Some(Ok(cluster)) = tls.as_mut() {
            if let Err(error) = cluster.stop() {
                rows.push(Row::not_run(
                    "PostgreSQL TLS cluster shutdown".to_owned(),
                    Outcome::Fail,
                    format!("{error:#}"),
                ));
            }
        }

        if services {
            rows.push(self.services(postgres.as_ref())?);
        }

        if let Some(Ok(mut bouncer)) = bouncer {
            if let Err(error) = bouncer.stop() {
                let note = format!("{error:#}");
                rows.push(Row::not_run(
                    "PgBouncer shutdown".to_owned(),
                    Outcome::Fail,
                    note,
                ));
            }
        }
        // An early return above drops the server, which stops a throwaway cluster all the same.
        if let Some(PgSupply::Ready(server)) = postgres {
            if let Err(error) = server.shut_down() {
                let note = format!("{error:#}");
                rows.push(Row::not_run(
                    "PostgreSQL shutdown".to_owned(),
                    Outcome::Fail,
                    note,
                ));
            }
        }
        Ok(rows)
    }

    /// The example services' tests, which start each service on a fresh SQLite database and a
    /// fresh PostgreSQL database and drive its HTTP API.
    fn services(&self, postgres: Option<&PgSupply>) -> Result<Row> {
        section(SERVICES_ROW);
        let mut env = Vec::new();
        match postgres {
            Some(PgSupply::Ready(server)) => env.push(("ANYSQL_PG_URL", server.url.clone())),
            Some(PgSupply::Unavailable(why)) if in_ci() => {
                let note = format!("CI requires PostgreSQL: {why}");
                return Ok(Row::not_run(SERVICES_ROW.to_owned(), Outcome::Fail, note));
            }
            // The services' tests skip their PostgreSQL half without a URL (and fail under CI).
            Some(PgSupply::Unavailable(_)) | None => {}
            Some(PgSupply::Broken(why)) => {
                return Ok(Row::not_run(
                    SERVICES_ROW.to_owned(),
                    Outcome::Fail,
                    why.clone(),
                ));
            }
        }
        let cargo = &self.cargo;
        let packages = SERVICES.iter().flat_map(|s| ["-p", s]);
        let command = cmd!(self.sh, "{cargo} test --locked --no-fail-fast")
            .args(packages)
            .envs(env.clone());
        let shown_env: Vec<String> = env
            .iter()
            .map(|(key, value)| format!("{key}={}", pg::redact(value)))
            .collect();
        run_tests(SERVICES_ROW, command, &shown_env.join(" "), self.verbose)
    }

    fn cell(&self, cell: Cell, env: Vec<(&str, String)>, options: &Options) -> Result<Row> {
        let name = cell.name();
        section(&name);
        let cargo = &self.cargo;
        let mut command = cmd!(self.sh, "{cargo} test -p {SUITE} --locked --no-fail-fast")
            .args(&options.cargo_args);
        if cell.tls {
            command = command.args(["--test", "tls"]);
        }
        let command = command
            .arg("--")
            .args(&options.test_args)
            .args(cell.test_filter());
        let shown_env: Vec<String> = env
            .iter()
            .map(|(key, value)| format!("{key}={}", pg::redact(value)))
            .collect();
        let row = run_tests(&name, command.envs(env), &shown_env.join(" "), self.verbose)?;
        if row.outcome == Outcome::Fail {
            println!(
                "to rerun this cell{}: cargo xtask test-matrix --runtime {} --driver {}",
                if cell.tls { " (and the others)" } else { "" },
                cell.runtime,
                cell.driver
            );
        }
        Ok(row)
    }
}

/// Starts a PgBouncer in front of `server`; `Err` holds how the (pgbouncer) cells end instead
/// (skipped without the program, failed under CI or when it does not start).
fn start_pgbouncer(server: &pg::PgServer) -> Result<pg::pgbouncer::PgBouncer, (Outcome, String)> {
    let unavailable = |why: String| {
        if in_ci() {
            (Outcome::Fail, format!("CI requires PgBouncer: {why}"))
        } else {
            (Outcome::Skipped, why)
        }
    };
    let Some(program) = pg::pgbouncer::find() else {
        return Err(unavailable(
            "no `pgbouncer` program (apt-get install pgbouncer; .ci/run installs it)".to_owned(),
        ));
    };
    let parsed = pg::parse_url(&server.url).map_err(|why| (Outcome::Fail, why))?;
    if parsed.has_password {
        return Err(unavailable(
            "the server's URL has a password; the throwaway PgBouncer needs a user the server trusts".to_owned(),
        ));
    }
    let user = parsed.user.unwrap_or_else(|| "postgres".to_owned());
    pg::pgbouncer::PgBouncer::start(&program, &crate::target_dir(), &parsed.endpoint, &user)
        .map_err(|error| (Outcome::Fail, format!("PgBouncer did not start: {error:#}")))
}

/// Starts the TLS cluster, or says why not: a failure under CI or when the server binaries are
/// there but the cluster does not start, a skip otherwise.
fn start_tls_cluster() -> Result<TlsCluster, (Outcome, String)> {
    let Some(binaries) = ServerBinaries::find() else {
        let why = "the TLS cells need the PostgreSQL server binaries (initdb, pg_ctl) for a \
                   throwaway cluster with `ssl = on`"
            .to_owned();
        let outcome = if in_ci() {
            Outcome::Fail
        } else {
            Outcome::Skipped
        };
        println!("PostgreSQL with TLS: {why}");
        return Err((outcome, why));
    };
    match TlsCluster::start(binaries, &crate::target_dir()) {
        Ok(cluster) => {
            println!(
                "PostgreSQL with TLS: a throwaway cluster on port {}, certificates in {}",
                cluster.port(),
                cluster.cert_dir().display()
            );
            Ok(cluster)
        }
        Err(error) => {
            let why = format!("the TLS cluster did not start: {error:#}");
            println!("PostgreSQL with TLS: {why}");
            Err((Outcome::Fail, why))
        }
    }
}

/// Runs one `cargo test` invocation and turns it into a table row. Its libtest summary lines are always
/// printed (the CI harness reads them); the rest of the output only when it fails or with `--verbose`.
fn run_tests(name: &str, command: xshell::Cmd<'_>, env: &str, verbose: bool) -> Result<Row> {
    let captured = run_logged(command, env, verbose)?;
    let counts = report::sum_summaries(&captured.output);
    if !verbose {
        if captured.success {
            for line in captured
                .output
                .lines()
                .filter(|line| report::is_summary_line(line) || line.starts_with("torture "))
            {
                println!("{}", line.trim());
            }
        } else {
            println!("{}", captured.output.trim_end());
        }
    }
    let outcome = if captured.success {
        Outcome::Pass
    } else {
        Outcome::Fail
    };
    let note = if captured.success || counts.is_some_and(|counts| counts.failed > 0) {
        String::new()
    } else {
        format!(
            "failed without a failing test: build error or crash ({})",
            captured.status
        )
    };
    println!(
        "{name}: {} in {:.1}s",
        if captured.success { "PASS" } else { "FAIL" },
        captured.elapsed.as_secs_f64()
    );
    Ok(Row {
        name: name.to_owned(),
        outcome,
        counts,
        elapsed: Some(captured.elapsed),
        note,
    })
}

/// Prints the command line (after `env`, the variables it sets, if any) and runs it captured.
/// The row of a step that passes or fails as a whole (an example's run, a build), with `note`
/// when it fails.
fn whole_step(name: String, run: &Captured, passed: bool, note: String) -> Row {
    println!(
        "{name}: {} in {:.1}s",
        if passed { "PASS" } else { "FAIL" },
        run.elapsed.as_secs_f64()
    );
    Row {
        name,
        outcome: if passed { Outcome::Pass } else { Outcome::Fail },
        counts: Some(report::Counts {
            passed: u64::from(passed),
            failed: u64::from(!passed),
            ignored: 0,
        }),
        elapsed: Some(run.elapsed),
        note: if passed { String::new() } else { note },
    }
}

fn run_logged(command: xshell::Cmd<'_>, env: &str, verbose: bool) -> Result<Captured> {
    if env.is_empty() {
        println!("$ {command}");
    } else {
        println!("$ {env} {command}");
    }
    process::run_captured(command, verbose)
}

fn section(title: &str) {
    println!("\n==> {title}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Options> {
        Options::parse(&args.iter().map(|arg| arg.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn no_arguments_select_six_cells_the_pgbouncer_replica_and_tls_cells_and_the_unit_step() {
        let options = parse(&[]).unwrap();
        let cells = options.cells();
        assert_eq!(cells.len(), 15);
        assert!(options.runs_unit_step());
        assert_eq!(cells[0].name(), "tokio × sqlite");
        assert_eq!(cells[6].name(), "tokio × postgres (pgbouncer)");
        assert_eq!(cells[8].name(), "async-std × postgres (pgbouncer)");
        assert_eq!(cells[9].name(), "tokio × postgres (replicas)");
        assert_eq!(cells[11].name(), "async-std × postgres (replicas)");
        assert_eq!(
            cells[0].test_filter(),
            [
                "--skip",
                "pg_only::",
                "--skip",
                "replica_only::",
                "--skip",
                "tls_only::"
            ]
        );
        assert_eq!(
            cells[6].test_filter(),
            [
                "--skip",
                "sqlite_only::",
                "--skip",
                "replica_only::",
                "--skip",
                "tls_only::"
            ]
        );
        assert_eq!(cells[9].test_filter(), ["replica_only::"]);
        assert_eq!(cells[12].name(), "tokio × postgres (tls)");
        assert_eq!(cells[14].name(), "async-std × postgres (tls)");
        assert!(cells[12].test_filter().is_empty());
        let sqlite_only = parse(&["--driver", "sqlite"]).unwrap();
        assert!(sqlite_only.cells().iter().all(|c| !c.tls));
    }

    #[test]
    fn the_torture_run_has_no_replica_cells() {
        let mut options = parse(&["--driver", "postgres"]).unwrap();
        options.cargo_args = vec!["--test".into(), "torture".into()];
        let names: Vec<String> = options.cells().into_iter().map(Cell::name).collect();
        assert!(
            names.iter().all(|name| !name.contains("replicas")),
            "{names:?}"
        );
        assert_eq!(names.len(), 6);
    }

    #[test]
    fn filters_are_repeatable_and_comma_separated() {
        let options = parse(&[
            "--runtime",
            "smol,tokio",
            "--runtime=async-std",
            "--driver",
            "postgres",
        ])
        .unwrap();
        let names: Vec<String> = options.cells().into_iter().map(Cell::name).collect();
        assert_eq!(
            names,
            [
                "tokio × postgres",
                "smol × postgres",
                "async-std × postgres",
                "tokio × postgres (pgbouncer)",
                "smol × postgres (pgbouncer)",
                "async-std × postgres (pgbouncer)",
                "tokio × postgres (replicas)",
                "smol × postgres (replicas)",
                "async-std × postgres (replicas)",
                "tokio × postgres (tls)",
                "smol × postgres (tls)",
                "async-std × postgres (tls)",
            ]
        );
        assert!(!options.runs_unit_step());
    }

    #[test]
    fn pass_through_arguments() {
        let options = parse(&["--verbose", "--", "pool::", "--exact", "--runtime"]).unwrap();
        assert!(options.verbose);
        assert_eq!(options.test_args, ["pool::", "--exact", "--runtime"]);
        assert!(!options.runs_unit_step());
    }

    #[test]
    fn pg_mode_and_list() {
        let options = parse(&["--pg", "throwaway", "--list"]).unwrap();
        assert_eq!(options.pg, PgMode::Throwaway);
        assert!(options.list);
        assert_eq!(parse(&["--pg=none"]).unwrap().pg, PgMode::None);
    }

    #[test]
    fn errors_are_clear() {
        let error = parse(&["--runtime", "glommio"]).unwrap_err().to_string();
        assert!(error.contains("unknown runtime `glommio`"), "{error}");
        let error = parse(&["--jobs", "2"]).unwrap_err().to_string();
        assert!(error.contains("unknown argument `--jobs`"), "{error}");
        let error = parse(&["--driver"]).unwrap_err().to_string();
        assert!(error.contains("--driver needs a value"), "{error}");
        let error = parse(&["--pg", "docker"]).unwrap_err().to_string();
        assert!(error.contains("unknown --pg value"), "{error}");
        let error = parse(&["--list=yes"]).unwrap_err().to_string();
        assert!(error.contains("--list takes no value"), "{error}");
    }
}
