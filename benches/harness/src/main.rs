//! `anysql-benches`: the benchmark harness (workloads and targets: `docs/benchmarks.md`).
//!
//! It measures, in one process run, raw rusqlite (synchronous, S*), raw tokio-postgres (tokio
//! multi-thread runtime with 2 workers, the connection spawned, P*) and anysql on tokio, smol and
//! async-std (every workload). The peers (sqlx, tokio-rusqlite) live in `benches/peers`, their own
//! workspace, because sqlx-sqlite links another `libsqlite3-sys`; `cargo xtask bench` runs both
//! binaries and then this one's `report` to print one table.
//!
//! ```text
//! anysql-benches run [--quick] [--loaded] [--only S1,P1] [--json path] [--no-pg] [--impls raw,…]   measure, print progress, write JSON
//! anysql-benches m1 <sqlite|pg> <impl> [--quick]              one M1 child (fresh process, peak RSS)
//! anysql-benches report --input a.json [--input b.json] [--json out.json] [--svg chart.svg] [--idle idle.json]
//! anysql-benches load [--threads N] [--seconds S]                 the competing load of --loaded runs
//! anysql-benches tracing-cost --round plain.json,off.json,on.json   the tracing feature's cost
//! ```
//!
//! PostgreSQL comes from `ANYSQL_PG_URL`, else `postgres://root@127.0.0.1:5432/test`; this run's
//! tables have a unique name and are dropped at the end. anysql connects to it with
//! `sslmode=disable` unless the URL says otherwise, as raw tokio-postgres does. With
//! `ANYSQL_PG_TLS_URL` (a server with TLS on) and `ANYSQL_PG_TLS_CA` (its CA), which `cargo xtask
//! bench` sets with a TLS cluster of its own, P1 and P3 also run over TLS (rows `P1t`, `P3t`).

mod common;
mod core_latency;
mod deadpool_bench;
mod load;
mod raw_pg;
mod raw_sqlite;
mod raw_tls;
mod report;
mod tls_rows;
mod tracing_cost;

#[cfg(feature = "anysql")]
mod anysql_bench;

use std::process::ExitCode;

use common::{measure, measure_m1, Bench, Db, M1Args, Output, RunArgs, Sizes, Workload};

fn main() -> ExitCode {
    if std::env::var_os("SMOL_THREADS").is_none() {
        // smol's global executor reads it when it starts. Set before any thread starts, so that
        // nothing reads the environment meanwhile.
        std::env::set_var("SMOL_THREADS", common::EXECUTOR_THREADS.to_string());
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("run") => RunArgs::parse(&args[1..]).and_then(run),
        Some("m1") => M1Args::parse(&args[1..]).and_then(|m1| m1_child(&m1)),
        Some("report") => report::main(&args[1..]),
        Some("tracing-cost") => tracing_cost::main(&args[1..]),
        Some("load") => load::LoadArgs::parse(&args[1..]).and_then(|load| load::main(&load)),
        _ => Err("usage: anysql-benches run [--quick] [--loaded] [--only S1,P1] [--json path] [--no-pg] [--impls raw,…]\n       \
                  anysql-benches m1 <sqlite|pg> <impl> [--quick]\n       \
                  anysql-benches report --input a.json [--input b.json] [--json out.json] [--svg chart.svg] [--idle idle.json]\n       \
                  anysql-benches load [--threads N] [--seconds S]\n       \
                  anysql-benches tracing-cost --round plain.json,off.json,on.json [--round …] [--markdown out.md]"
            .to_owned()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The implementations this binary measures for M1, besides `raw`.
#[cfg(feature = "anysql")]
const ANYSQL_IMPLS: &[&str] = &["anysql-tokio", "anysql-smol", "anysql-async-std"];
#[cfg(not(feature = "anysql"))]
const ANYSQL_IMPLS: &[&str] = &[];

fn m1_child(args: &M1Args) -> Result<(), String> {
    match (args.db, args.imp.as_str()) {
        (Db::Sqlite, "raw") => raw_sqlite::m1(args),
        (Db::Postgres, "raw") => raw_pg::m1(args),
        #[cfg(feature = "anysql")]
        (_, imp) if ANYSQL_IMPLS.contains(&imp) => anysql_bench::m1(args),
        (_, imp) => Err(format!("unknown implementation `{imp}`")),
    }
}

/// The anysql configurations to measure: each runtime with the defaults, and with `loaded` each
/// runtime's no-spin configuration too (`true`).
#[cfg(feature = "anysql")]
fn anysql_configs(
    tokio: &tokio::runtime::Handle,
    loaded: bool,
) -> Vec<(anysql_bench::Spawner, bool)> {
    use anysql_bench::Spawner;
    let spawners = || {
        [
            Spawner::Tokio(tokio.clone()),
            Spawner::Smol,
            Spawner::AsyncStd,
        ]
    };
    let mut configs: Vec<(Spawner, bool)> = spawners().into_iter().map(|s| (s, false)).collect();
    if loaded {
        configs.extend(spawners().into_iter().map(|s| (s, true)));
    }
    configs
}

fn run(args: RunArgs) -> Result<(), String> {
    #[cfg(feature = "tracing")]
    tracing_cost::install_subscriber();
    let sizes = Sizes::new(args.quick);
    let mut out = Output::new("anysql-benches", args.quick, args.loaded, sizes.clone());
    out.settings
        .push(("sqlite_version".into(), rusqlite::version().to_owned()));
    out.settings.push(("tokio_workers".into(), "2".into()));
    out.settings.push((
        "core_round_trip_ns".into(),
        core_latency::round_trip_ns().to_string(),
    ));
    #[cfg(feature = "anysql")]
    out.settings.push((
        "anysql_pg_max_size".into(),
        anysql_bench::PG_MAX_SIZE.to_string(),
    ));
    #[cfg(not(feature = "anysql"))]
    out.note("built without the `anysql` feature: only the raw drivers are measured");

    // One tokio runtime (multi-thread, 2 workers) for raw tokio-postgres and anysql on tokio.
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(common::EXECUTOR_THREADS)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start tokio: {e}"))?;

    let selected = |postgres: bool| -> Vec<Workload> {
        Workload::ALL
            .into_iter()
            .filter(|w| *w != Workload::M1 && w.is_postgres() == postgres && args.selected(*w))
            .collect()
    };
    let (sqlite_workloads, pg_workloads) = (selected(false), selected(true));

    let tmp = common::TempDir::new("anysql-benches")?;
    let dir = tmp.0.clone();
    let sqlite_path = if sqlite_workloads.is_empty() {
        None
    } else {
        eprintln!("SQLite: {} rows in {}", sizes.s_rows, dir.display());
        Some(
            raw_sqlite::create_database(&dir, sizes.s_rows)
                .map_err(|e| format!("SQLite setup: {e}"))?,
        )
    };

    let tables = raw_pg::PgTables::new(&common::unique_table_prefix("main"));
    let pg_url = args.pg_url.clone().unwrap_or_default();
    if args.pg_url.is_none() && !pg_workloads.is_empty() {
        out.note("PostgreSQL workloads skipped: --no-pg");
    }
    let mut raw_pg =
        if args.pg_url.is_none() || (pg_workloads.is_empty() && !args.selected(Workload::M1)) {
            None
        } else {
            match raw_pg::RawPg::setup(tokio.handle(), &pg_url, tables.clone(), sizes.p_rows) {
                Ok(pg) => {
                    eprintln!(
                        "PostgreSQL: {} (tables {}, {})",
                        common::redact(&pg_url),
                        tables.t,
                        tables.ins
                    );
                    Some(pg)
                }
                Err(e) => {
                    out.note(format!(
                        "PostgreSQL workloads skipped: cannot use {}: {e}",
                        common::redact(&pg_url)
                    ));
                    None
                }
            }
        };

    // The TLS rows (P1t, P3t): `ANYSQL_PG_TLS_URL` is a server with TLS on (which `cargo xtask
    // bench` starts) and `ANYSQL_PG_TLS_CA` the CA its certificate is signed by.
    let tls_target = match (
        std::env::var("ANYSQL_PG_TLS_URL"),
        std::env::var("ANYSQL_PG_TLS_CA"),
    ) {
        (Ok(url), Ok(ca)) if !url.trim().is_empty() => Some((url, std::path::PathBuf::from(ca))),
        _ => None,
    };
    let tls_workloads: Vec<Workload> = pg_workloads
        .iter()
        .copied()
        .filter(|w| matches!(w, Workload::P1 | Workload::P3))
        .collect();
    let tls_tables = raw_pg::PgTables::new(&common::unique_table_prefix("tls"));
    let mut raw_tls = match &tls_target {
        Some((url, ca)) if !tls_workloads.is_empty() => {
            let connect = raw_tls::connect(url.clone(), ca.clone());
            match raw_pg::RawPg::setup_with(
                tokio.handle(),
                connect,
                tls_tables.clone(),
                sizes.p_rows,
            ) {
                Ok(pg) => {
                    eprintln!("PostgreSQL over TLS: {}", common::redact(url));
                    Some(pg)
                }
                Err(e) => {
                    out.note(format!(
                        "TLS rows skipped: cannot use {}: {e}",
                        common::redact(url)
                    ));
                    None
                }
            }
        }
        _ => None,
    };

    let result = (|| {
        #[cfg(feature = "anysql")]
        let mut anysql: Vec<anysql_bench::AnysqlBench> = {
            use anysql_bench::AnysqlBench;
            let mut benches = Vec::new();
            for (spawner, nospin) in anysql_configs(tokio.handle(), args.loaded) {
                let name = if nospin {
                    spawner.nospin_name()
                } else {
                    spawner.impl_name()
                };
                // Plaintext, as the raw baseline: without it a server offering TLS would get
                // anysql's default, sslmode=prefer.
                let plain_url = if pg_url.contains("sslmode=") {
                    pg_url.clone()
                } else {
                    let joint = if pg_url.contains('?') { '&' } else { '?' };
                    format!("{pg_url}{joint}sslmode=disable")
                };
                let pg = raw_pg.as_ref().map(|_| (plain_url.as_str(), &tables));
                match AnysqlBench::new(spawner, sqlite_path.as_deref(), pg, &sizes, nospin) {
                    Ok((bench, problems)) => {
                        benches.push(bench);
                        problems.into_iter().for_each(|p| out.note(p));
                    }
                    Err(e) => out.note(format!("{name}: cannot build the engines: {e}")),
                }
            }
            benches
        };

        if let Some(path) = &sqlite_path {
            let mut raw =
                raw_sqlite::RawSqlite::new(path, sizes.s_rows).map_err(|e| e.to_string())?;
            for &workload in &sqlite_workloads {
                eprintln!("{}", workload.id());
                let mut benches: Vec<&mut dyn Bench> = vec![&mut raw];
                #[cfg(feature = "anysql")]
                benches.extend(anysql.iter_mut().map(|b| b as &mut dyn Bench));
                measure(&mut out, workload, &sizes, &mut args.filter(benches));
            }
        }
        if let Some(raw) = raw_pg.as_mut() {
            // P6's raw baseline, in this process too, so that anysql's P6 is paired with it by
            // round (the peers process measures it again for sqlx).
            let mut deadpool = deadpool_bench::DeadpoolBench::for_workloads(
                tokio.handle(),
                &pg_url,
                &tables,
                &pg_workloads,
                &mut out,
            );
            for &workload in &pg_workloads {
                eprintln!("{}", workload.id());
                let mut benches: Vec<&mut dyn Bench> = vec![raw];
                benches.extend(deadpool.as_mut().map(|b| b as &mut dyn Bench));
                #[cfg(feature = "anysql")]
                benches.extend(anysql.iter_mut().map(|b| b as &mut dyn Bench));
                measure(&mut out, workload, &sizes, &mut args.filter(benches));
            }
            if let Some(deadpool) = &deadpool {
                deadpool.close();
            }
        }
        #[cfg(feature = "anysql")]
        for bench in &anysql {
            bench.close();
        }
        if let (Some(raw), Some((url, ca))) = (raw_tls.take(), &tls_target) {
            #[cfg(feature = "anysql")]
            let mut anysql_tls: Vec<tls_rows::TlsRows<anysql_bench::AnysqlBench>> = {
                use anysql_bench::AnysqlBench;
                let joint = if url.contains('?') { '&' } else { '?' };
                let tls_url = format!(
                    "{url}{joint}sslmode=verify-full&sslrootcert={}",
                    ca.display()
                );
                let mut benches = Vec::new();
                for (spawner, nospin) in anysql_configs(tokio.handle(), args.loaded) {
                    let name = if nospin {
                        spawner.nospin_name()
                    } else {
                        spawner.impl_name()
                    };
                    let pg = Some((tls_url.as_str(), &tls_tables));
                    match AnysqlBench::new(spawner, None, pg, &sizes, nospin) {
                        Ok((bench, problems)) => {
                            benches.push(tls_rows::TlsRows(bench));
                            problems.into_iter().for_each(|p| out.note(p));
                        }
                        Err(e) => out.note(format!("{name}: cannot build the TLS engines: {e}")),
                    }
                }
                benches
            };
            let mut raw = tls_rows::TlsRows(raw);
            for &workload in &tls_workloads {
                eprintln!("{} over TLS", workload.id());
                let mut benches: Vec<&mut dyn Bench> = vec![&mut raw];
                #[cfg(feature = "anysql")]
                benches.extend(anysql_tls.iter_mut().map(|b| b as &mut dyn Bench));
                measure(&mut out, workload, &sizes, &mut args.filter(benches));
            }
            #[cfg(feature = "anysql")]
            for bench in &anysql_tls {
                bench.0.close();
            }
            if let Err(e) = raw.0.drop_tables() {
                out.note(format!("dropping the TLS cluster's tables failed: {e}"));
            }
        }

        if args.selected(Workload::M1) {
            let imps: Vec<&'static str> = std::iter::once("raw")
                .chain(ANYSQL_IMPLS.iter().copied())
                .collect();
            eprintln!("M1 ({} rows, one child process each)", sizes.m1_rows);
            measure_m1(&mut out, Db::Sqlite, &imps, args.quick);
            if raw_pg.is_some() {
                measure_m1(&mut out, Db::Postgres, &imps, args.quick);
            }
        }
        Ok::<(), String>(())
    })();

    if let Some(pg) = raw_pg.as_mut() {
        if let Err(e) = pg.drop_tables() {
            out.note(format!("dropping the PostgreSQL tables failed: {e}"));
        }
    }
    drop(tmp);
    result?;

    match &args.json {
        Some(path) => out
            .write(path)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?,
        None => print!("{}", out.to_json()),
    }
    Ok(())
}
