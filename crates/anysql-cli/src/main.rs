//! `anysql`, the command-line tool of anysql: creates migration files and runs, lists and
//! reverts migrations on any database URL anysql knows (`sqlite:`, `postgres://`).
//!
//! ```text
//! anysql migrate add NAME [--reversible] [--source DIR]
//! anysql migrate run    [--database-url URL] [--source DIR]
//! anysql migrate info   [--database-url URL] [--source DIR]
//! anysql migrate revert [--database-url URL] [--source DIR]
//! ```
//!
//! The URL comes from `--database-url`, else from the `DATABASE_URL` environment variable; the
//! migrations directory is `--source`, else `migrations`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anysql::migrate::{parse_file_name, MigrationState, Migrator};

const USAGE: &str = "\
anysql: create and run SQL migrations on SQLite and PostgreSQL

Usage:
  anysql migrate add NAME [--reversible] [--source DIR]
  anysql migrate run    [--database-url URL] [--source DIR]
  anysql migrate info   [--database-url URL] [--source DIR]
  anysql migrate revert [--database-url URL] [--source DIR]

Commands:
  migrate add NAME   create DIR/<UTC timestamp>_NAME.sql (and .down.sql with --reversible)
  migrate run        apply every pending migration, each in its own transaction
  migrate info       list the migrations and whether each is applied
  migrate revert     revert the last applied migration with its .down.sql file

Options:
  -D, --database-url URL  the database (default: the DATABASE_URL environment variable), such as
                          sqlite:app.db or postgres://user:password@localhost/app
  -s, --source DIR        the migrations directory (default: migrations)
  -r, --reversible        with add: also create the .down.sql file
  -h, --help              print this help
  -V, --version           print the version

A migration file whose first line is `-- anysql:no-transaction` runs outside a transaction.";

/// A command line that could not be understood: printed with a hint, exit code 2.
#[derive(Debug)]
struct Usage(String);

#[derive(Debug, PartialEq, Eq)]
enum Command {
    Help,
    Version,
    Add { name: String, reversible: bool },
    Run,
    Info,
    Revert,
}

#[derive(Debug)]
struct Args {
    command: Command,
    database_url: Option<String>,
    source: PathBuf,
}

fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Args, Usage> {
    use lexopt::prelude::*;
    let usage = |e: lexopt::Error| Usage(e.to_string());
    let mut parser = lexopt::Parser::from_args(args);
    let mut words: Vec<String> = Vec::new();
    let mut database_url = None;
    let mut source = None;
    let mut reversible = false;
    let mut help = false;
    let mut version = false;
    while let Some(arg) = parser.next().map_err(usage)? {
        match arg {
            Short('D') | Long("database-url") => {
                database_url = Some(parser.value().map_err(usage)?.string().map_err(usage)?)
            }
            Short('s') | Long("source") => {
                source = Some(PathBuf::from(parser.value().map_err(usage)?))
            }
            Short('r') | Long("reversible") => reversible = true,
            Short('h') | Long("help") => help = true,
            Short('V') | Long("version") => version = true,
            Value(word) => words.push(word.string().map_err(usage)?),
            _ => return Err(usage(arg.unexpected())),
        }
    }
    let command = if help {
        Command::Help
    } else if version {
        Command::Version
    } else {
        match words.iter().map(String::as_str).collect::<Vec<_>>()[..] {
            ["migrate", "add", name] => Command::Add {
                name: name.to_owned(),
                reversible,
            },
            ["migrate", "add"] => return Err(Usage("migrate add needs a NAME".into())),
            ["migrate", "run"] => Command::Run,
            ["migrate", "info"] => Command::Info,
            ["migrate", "revert"] => Command::Revert,
            [] => Command::Help,
            ["migrate"] => {
                return Err(Usage(
                    "migrate needs a command: add, run, info or revert".into(),
                ))
            }
            ["migrate", other, ..] => {
                return Err(Usage(format!(
                    "unknown migrate command {other:?}: expected add, run, info or revert"
                )))
            }
            [other, ..] => {
                return Err(Usage(format!(
                    "unknown command {other:?}: expected migrate"
                )))
            }
        }
    };
    if reversible && !matches!(command, Command::Add { .. } | Command::Help) {
        return Err(Usage("--reversible goes with migrate add".into()));
    }
    Ok(Args {
        command,
        database_url,
        source: source.unwrap_or_else(|| PathBuf::from("migrations")),
    })
}

fn main() -> ExitCode {
    let args = match parse(std::env::args_os().skip(1)) {
        Ok(args) => args,
        Err(Usage(message)) => {
            eprintln!("error: {message}\n\nrun `anysql --help` for usage");
            return ExitCode::from(2);
        }
    };
    match smol::block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let engine = || -> Result<anysql::Engine, String> {
        let url = match &args.database_url {
            Some(url) => url.clone(),
            None => std::env::var("DATABASE_URL").map_err(|_| {
                "no database given: pass --database-url URL or set DATABASE_URL".to_owned()
            })?,
        };
        anysql::builder(&url)
            .max_size(2)
            .build()
            .map_err(|e| e.to_string())
    };
    let migrator = || {
        Migrator::from_dir(&args.source).map_err(|e| {
            if args.source.is_dir() {
                e.to_string()
            } else {
                format!("{e} (create one with `anysql migrate add NAME`, or point --source at it)")
            }
        })
    };
    match &args.command {
        Command::Help => println!("{USAGE}"),
        Command::Version => println!("anysql {}", env!("CARGO_PKG_VERSION")),
        Command::Add { name, reversible } => add(&args.source, name, *reversible)?,
        Command::Run => {
            let migrator = migrator()?;
            let engine = engine()?;
            let applied = migrator.run(&engine).await.map_err(|e| e.to_string());
            engine.close().await;
            let applied = applied?;
            if applied.is_empty() {
                println!("nothing to apply: the database is up to date");
            }
            for m in applied {
                println!("applied {}/{} ({:?})", m.version, m.name, m.duration);
            }
        }
        Command::Info => {
            let migrator = migrator()?;
            let engine = engine()?;
            let info = migrator.info(&engine).await.map_err(|e| e.to_string());
            engine.close().await;
            let info = info?;
            if info.is_empty() {
                println!("no migrations in {}", args.source.display());
            }
            for line in info {
                let when = match (&line.applied_at, line.state) {
                    (Some(at), MigrationState::Applied | MigrationState::Edited) => {
                        format!("  applied {at}")
                    }
                    _ => String::new(),
                };
                println!(
                    "{:>14}  {:<8} {}{}",
                    line.version,
                    line.state.as_str(),
                    line.name,
                    when
                );
            }
        }
        Command::Revert => {
            let migrator = migrator()?;
            let engine = engine()?;
            let reverted = migrator.revert(&engine).await.map_err(|e| e.to_string());
            engine.close().await;
            let m = reverted?;
            println!("reverted {}/{} ({:?})", m.version, m.name, m.duration);
        }
    }
    Ok(())
}

/// Creates the migration files: the version is the UTC time as `YYYYMMDDHHMMSS`, or one more
/// than the highest version in the directory if that is not below it.
fn add(dir: &Path, name: &str, reversible: bool) -> Result<(), String> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(format!(
            "the migration name {name:?} may hold only letters, digits, `_` and `-`"
        ));
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| format!("cannot create the directory {}: {e}", dir.display()))?;
    let mut highest = None;
    let entries = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read the directory {}: {e}", dir.display()))?;
    for entry in entries.flatten() {
        if let Some(Ok(Some(file))) = entry.file_name().to_str().map(parse_file_name) {
            highest = highest.max(Some(file.version));
        }
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| format!("the clock is before 1970: {e}"))?
        .as_secs();
    let mut version = timestamp(now);
    if let Some(highest) = highest {
        if highest >= version {
            version = highest + 1;
        }
    }
    let up = dir.join(format!("{version}_{name}.sql"));
    write_new(
        &up,
        &format!("-- {name}: the SQL that applies this migration.\n"),
    )?;
    println!("created {}", up.display());
    if reversible {
        let down = dir.join(format!("{version}_{name}.down.sql"));
        write_new(
            &down,
            &format!("-- {name}: the SQL that reverts this migration.\n"),
        )?;
        println!("created {}", down.display());
    }
    Ok(())
}

fn write_new(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    file.write_all(text.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Seconds since 1970 as the UTC time `YYYYMMDDHHMMSS`, read as an integer.
fn timestamp(secs: u64) -> i64 {
    let days = (secs / 86_400) as i64;
    let rest = secs % 86_400;
    let (year, month, day) = civil_date(days);
    let (h, m, s) = (rest / 3600, rest % 3600 / 60, rest % 60);
    format!("{year:04}{month:02}{day:02}{h:02}{m:02}{s:02}")
        .parse()
        .expect("fourteen digits fit an i64")
}

/// The proleptic Gregorian date `days` after 1970-01-01: the days are counted in 400-year eras
/// of 146,097 days, from a March 1st start so that the leap day ends each year.
fn civil_date(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468; // days since 0000-03-01
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Result<Args, Usage> {
        parse(line.split_whitespace().map(OsString::from))
    }

    #[test]
    fn commands_and_options_parse() {
        let a = args("migrate add create_people -r -s db/m").unwrap();
        assert_eq!(
            a.command,
            Command::Add {
                name: "create_people".into(),
                reversible: true
            }
        );
        assert_eq!(a.source, PathBuf::from("db/m"));
        let a = args("migrate run --database-url sqlite:x.db").unwrap();
        assert_eq!(
            (a.command, a.database_url.as_deref()),
            (Command::Run, Some("sqlite:x.db"))
        );
        assert_eq!(args("migrate info").unwrap().command, Command::Info);
        assert_eq!(args("migrate revert").unwrap().command, Command::Revert);
        assert_eq!(args("").unwrap().command, Command::Help);
        for (bad, needle) in [
            ("migrate", "needs a command"),
            ("migrate add", "needs a NAME"),
            ("migrate frob", "unknown migrate command"),
            ("frob", "unknown command"),
            ("migrate run --bogus", "bogus"),
            ("migrate run -r", "--reversible goes with"),
        ] {
            let Err(Usage(message)) = args(bad) else {
                panic!("{bad:?} parsed")
            };
            assert!(message.contains(needle), "{bad:?}: {message}");
        }
    }

    #[test]
    fn timestamps_are_utc_calendar_times() {
        assert_eq!(timestamp(0), 19700101000000);
        assert_eq!(timestamp(951_782_400), 20000229000000); // a leap day
        assert_eq!(timestamp(1_767_225_599), 20251231235959);
        assert_eq!(timestamp(4_107_542_400), 21000301000000); // 2100 is no leap year
    }
}
