//! `anysql-bench-peers`: sqlx and tokio-rusqlite on the same workloads as the main harness.
//!
//! sqlx 0.9 (tokio, SQLite and PostgreSQL) and tokio-rusqlite (SQLite). It lives in its own
//! workspace because sqlx-sqlite links another `libsqlite3-sys` than anysql's rusqlite. It also
//! re-measures the raw drivers (rusqlite 0.37, the SQLite the peers link, and tokio-postgres), with
//! the very code of the main harness, so that the peers' ratios come from one process and one
//! SQLite build. P6's raw baseline, tokio-postgres behind deadpool-postgres (a pool of 8), is
//! measured only here, and the main harness's anysql rows are compared with it.
//!
//! ```text
//! anysql-bench-peers run [--quick] [--loaded] [--only S1,P1] [--json path] [--no-pg] [--impls raw,…]
//! anysql-bench-peers m1 <sqlite|pg> <impl> [--quick]
//! ```
//!
//! `cargo xtask bench` runs it after the main harness and merges both outputs into one table.

#[path = "../../harness/src/common.rs"]
mod common;
#[path = "../../harness/src/deadpool_bench.rs"]
mod deadpool_bench;
#[path = "../../harness/src/raw_pg.rs"]
mod raw_pg;
#[path = "../../harness/src/raw_sqlite.rs"]
mod raw_sqlite;
mod sqlx_bench;
mod tokio_rusqlite_bench;

use std::process::ExitCode;

use common::{measure, measure_m1, Bench, Db, M1Args, Output, RunArgs, Sizes, Workload};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("run") => RunArgs::parse(&args[1..]).and_then(run),
        Some("m1") => M1Args::parse(&args[1..]).and_then(|m1| m1_child(&m1)),
        _ => Err("usage: anysql-bench-peers run [--quick] [--loaded] [--only S1,P1] [--json path] [--no-pg] [--impls raw,…]\n       \
                  anysql-bench-peers m1 <sqlite|pg> <impl> [--quick]"
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

/// A tokio multi-thread runtime with 2 workers.
pub fn tokio_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

fn m1_child(args: &M1Args) -> Result<(), String> {
    match (args.db, args.imp.as_str()) {
        (Db::Sqlite, "raw") => raw_sqlite::m1(args),
        (Db::Postgres, "raw") => raw_pg::m1(args),
        (_, "sqlx") => sqlx_bench::m1(args),
        (Db::Sqlite, "tokio-rusqlite") => tokio_rusqlite_bench::m1(args),
        (_, imp) => Err(format!("unknown implementation `{imp}`")),
    }
}

fn run(args: RunArgs) -> Result<(), String> {
    let sizes = Sizes::new(args.quick);
    let mut out = Output::new("anysql-bench-peers", args.quick, args.loaded, sizes.clone());
    out.settings.push((
        "peers_sqlite_version".into(),
        rusqlite::version().to_owned(),
    ));
    out.settings.push((
        "sqlx_pg_max_connections".into(),
        sqlx_bench::PG_MAX_CONNECTIONS.to_string(),
    ));
    out.settings.push((
        "deadpool_pool_size".into(),
        deadpool_bench::POOL_SIZE.to_string(),
    ));
    out.settings.push((
        "sqlx_s3_chunk_rows".into(),
        sqlx_bench::S3_CHUNK.to_string(),
    ));
    let tokio = tokio_runtime();

    let selected = |postgres: bool| -> Vec<Workload> {
        Workload::ALL
            .into_iter()
            .filter(|w| *w != Workload::M1 && w.is_postgres() == postgres && args.selected(*w))
            .collect()
    };
    let (sqlite_workloads, pg_workloads) = (selected(false), selected(true));

    let tmp = common::TempDir::new("anysql-bench-peers")?;
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

    let tables = raw_pg::PgTables::new(&common::unique_table_prefix("peers"));
    let pg_url = args.pg_url.clone().unwrap_or_default();
    if args.pg_url.is_none() && !pg_workloads.is_empty() {
        out.note("PostgreSQL workloads skipped: --no-pg");
    }
    let mut raw_pg =
        if args.pg_url.is_none() || (pg_workloads.is_empty() && !args.selected(Workload::M1)) {
            None
        } else {
            match raw_pg::RawPg::setup(tokio.handle(), &pg_url, tables.clone(), sizes.p_rows) {
                Ok(pg) => Some(pg),
                Err(e) => {
                    out.note(format!(
                        "PostgreSQL workloads skipped: cannot use {}: {e}",
                        common::redact(&pg_url)
                    ));
                    None
                }
            }
        };

    let result = (|| {
        let pg = raw_pg.as_ref().map(|_| (pg_url.as_str(), &tables));
        let mut sqlx =
            match sqlx_bench::SqlxBench::new(tokio.handle(), sqlite_path.as_deref(), pg, &sizes) {
                Ok(bench) => Some(bench),
                Err(e) => {
                    out.note(format!("sqlx: cannot open the pools: {e}"));
                    None
                }
            };
        if let Some(path) = &sqlite_path {
            let mut raw =
                raw_sqlite::RawSqlite::new(path, sizes.s_rows).map_err(|e| e.to_string())?;
            let mut tokio_rusqlite =
                match tokio_rusqlite_bench::TokioRusqliteBench::new(tokio.handle(), path, &sizes) {
                    Ok(bench) => Some(bench),
                    Err(e) => {
                        out.note(format!("tokio-rusqlite: cannot open: {e}"));
                        None
                    }
                };
            for &workload in &sqlite_workloads {
                eprintln!("{}", workload.id());
                let mut benches: Vec<&mut dyn Bench> = vec![&mut raw];
                benches.extend(sqlx.as_mut().map(|b| b as &mut dyn Bench));
                benches.extend(tokio_rusqlite.as_mut().map(|b| b as &mut dyn Bench));
                measure(&mut out, workload, &sizes, &mut args.filter(benches));
            }
        }
        if let Some(raw) = raw_pg.as_mut() {
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
                benches.extend(sqlx.as_mut().map(|b| b as &mut dyn Bench));
                measure(&mut out, workload, &sizes, &mut args.filter(benches));
            }
            if let Some(deadpool) = &deadpool {
                deadpool.close();
            }
        }
        if let Some(sqlx) = &sqlx {
            sqlx.close();
        }
        if args.selected(Workload::M1) {
            eprintln!("M1 ({} rows, one child process each)", sizes.m1_rows);
            measure_m1(
                &mut out,
                Db::Sqlite,
                &["raw", "sqlx", "tokio-rusqlite"],
                args.quick,
            );
            if raw_pg.is_some() {
                measure_m1(&mut out, Db::Postgres, &["raw", "sqlx"], args.quick);
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
