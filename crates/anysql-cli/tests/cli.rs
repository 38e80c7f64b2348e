//! Runs the built `anysql` binary as a user would: `migrate add`, `run`, `info` and `revert`,
//! against a SQLite file and against PostgreSQL.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A new empty directory for one test.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "anysql_cli_{name}_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `anysql ARGS` in `dir` with `DATABASE_URL` set to `url` (or unset).
fn anysql(dir: &Path, url: Option<&str>, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_anysql"));
    command
        .current_dir(dir)
        .args(args)
        .env_remove("DATABASE_URL");
    if let Some(url) = url {
        command.env("DATABASE_URL", url);
    }
    command.output().expect("running the anysql binary")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Runs and expects success; returns stdout.
fn ok(dir: &Path, url: Option<&str>, args: &[&str]) -> String {
    let output = anysql(dir, url, args);
    assert!(
        output.status.success(),
        "anysql {args:?} failed: {}{}",
        stdout(&output),
        stderr(&output)
    );
    stdout(&output)
}

/// The files `migrate add` created, from its output.
fn created(out: &str) -> Vec<PathBuf> {
    out.lines()
        .filter_map(|l| l.strip_prefix("created "))
        .map(PathBuf::from)
        .collect()
}

/// The whole workflow on one database: add two migrations, run, info, revert, and the errors.
fn workflow(dir: &Path, url: &str) {
    // `add` creates the directory and timestamped files; `--reversible` adds the down file.
    let out = ok(
        dir,
        None,
        &["migrate", "add", "create_items", "--reversible"],
    );
    let files = created(&out);
    assert_eq!(files.len(), 2, "{out}");
    let up = dir.join(&files[0]);
    let down = dir.join(&files[1]);
    let up_name = up.file_name().unwrap().to_str().unwrap().to_owned();
    let (version, rest) = up_name.split_once('_').unwrap();
    assert_eq!(version.len(), 14, "a UTC timestamp: {up_name}");
    assert!(version.starts_with("20"), "{up_name}");
    assert_eq!(rest, "create_items.sql");
    assert!(down.to_str().unwrap().ends_with("_create_items.down.sql"));
    std::fs::write(
        &up,
        "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL);\n",
    )
    .unwrap();
    std::fs::write(&down, "DROP TABLE items;\n").unwrap();

    let out = ok(dir, None, &["migrate", "add", "first_item"]);
    let files = created(&out);
    assert_eq!(files.len(), 1, "no down file without --reversible: {out}");
    let second = dir.join(&files[0]);
    let second_version: i64 = second
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .split('_')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        second_version > version.parse::<i64>().unwrap(),
        "versions increase"
    );
    std::fs::write(
        &second,
        "INSERT INTO items (id, name) VALUES (1, 'first');\n",
    )
    .unwrap();

    let out = ok(dir, None, &["migrate", "info", "--database-url", url]);
    assert_eq!(out.matches("pending").count(), 2, "{out}");

    let out = ok(dir, None, &["migrate", "run", "--database-url", url]);
    assert!(
        out.contains("applied") && out.contains("create_items") && out.contains("first_item"),
        "{out}"
    );
    // DATABASE_URL works as well as the option.
    let out = ok(dir, Some(url), &["migrate", "run"]);
    assert!(out.contains("up to date"), "{out}");
    let out = ok(dir, Some(url), &["migrate", "info"]);
    assert_eq!(out.matches("applied").count(), 2, "{out}");

    // first_item has no down file.
    let output = anysql(dir, Some(url), &["migrate", "revert"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("has no") && stderr(&output).contains(".down.sql"),
        "{}",
        stderr(&output)
    );
    std::fs::remove_file(&second).unwrap();
    let output = anysql(dir, Some(url), &["migrate", "run"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("no migration file has that version"),
        "{}",
        stderr(&output)
    );
    std::fs::write(
        &second,
        "INSERT INTO items (id, name) VALUES (1, 'first');\n-- edited\n",
    )
    .unwrap();
    let output = anysql(dir, Some(url), &["migrate", "run"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("was edited after it was applied"),
        "{}",
        stderr(&output)
    );
    std::fs::write(
        &second,
        "INSERT INTO items (id, name) VALUES (1, 'first');\n",
    )
    .unwrap();
    let reversible = format!("{second_version}_first_item.down.sql");
    std::fs::write(
        dir.join("migrations").join(&reversible),
        "DELETE FROM items;\n",
    )
    .unwrap();

    let out = ok(dir, Some(url), &["migrate", "revert"]);
    assert!(
        out.contains("reverted") && out.contains("first_item"),
        "{out}"
    );
    let out = ok(dir, Some(url), &["migrate", "revert"]);
    assert!(out.contains("create_items"), "{out}");
    let out = ok(dir, Some(url), &["migrate", "info"]);
    assert_eq!(out.matches("pending").count(), 2, "{out}");
    let output = anysql(dir, Some(url), &["migrate", "revert"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("nothing to revert"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn migrate_on_a_sqlite_file() {
    let dir = temp_dir("sqlite");
    // A relative URL, as the README writes it: the file lands in the working directory.
    workflow(&dir, "sqlite:app.db");
    assert!(dir.join("app.db").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn migrate_on_postgres() {
    let base = std::env::var("ANYSQL_PG_URL")
        .unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/test".to_owned());
    let fresh = smol::block_on(anysql::testing::fresh_database(&base));
    let db = match fresh {
        Ok(db) => db,
        Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI needs PostgreSQL at {base}: {e}")
        }
        Err(e) => {
            eprintln!("skipped: no PostgreSQL at {base}: {e}");
            return;
        }
    };
    let dir = temp_dir("postgres");
    let url = db.url().to_owned();
    let result = std::panic::catch_unwind(|| workflow(&dir, &url));
    smol::block_on(db.close());
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

#[test]
fn usage_errors_say_what_is_wrong() {
    let dir = temp_dir("usage");
    let output = anysql(&dir, None, &["migrate", "run"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("--database-url URL or set DATABASE_URL"),
        "{}",
        stderr(&output)
    );

    let output = anysql(&dir, Some("sqlite:x.db"), &["migrate", "run"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("anysql migrate add NAME"),
        "no directory yet: {}",
        stderr(&output)
    );

    let output = anysql(
        &dir,
        Some("mysql://localhost/x"),
        &["migrate", "info", "-s", "."],
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("mysql"), "{}", stderr(&output));

    for (args, needle) in [
        (&["migrate", "frob"][..], "unknown migrate command"),
        (&["migrate", "add"][..], "needs a NAME"),
        (&["migrate", "run", "--bogus"][..], "bogus"),
    ] {
        let output = anysql(&dir, None, args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(
            stderr(&output).contains(needle),
            "{args:?}: {}",
            stderr(&output)
        );
    }
    let output = anysql(&dir, None, &["migrate", "add", "bad name!"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("only letters, digits"),
        "{}",
        stderr(&output)
    );

    assert!(ok(&dir, None, &["--help"]).contains("migrate add NAME"));
    assert!(ok(&dir, None, &["--version"]).starts_with("anysql "));
    let _ = std::fs::remove_dir_all(&dir);
}
