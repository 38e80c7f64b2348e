//! Opening a connection and applying the URL's settings to it.

use super::*;

/// Opens and sets up a connection as `config` says.
///
/// Also says whether the database is in WAL mode: as the `journal_mode` pragma that set it
/// answered; `false` when the URL set none (in-memory and read-only databases), since asking
/// would load the schema at once, and a connection opened before a table was created would then
/// not see it while another connection holds the database.
pub(crate) fn open(config: &Config) -> Result<(rusqlite::Connection, bool), Error> {
    let conn = match &config.target {
        Target::File(path) => rusqlite::Connection::open_with_flags(path, config.open_flags()),
        Target::Memory(uri) => rusqlite::Connection::open_with_flags(uri, config.open_flags()),
    }
    .map_err(|e| open_error(config, &e))?;
    let wal = setup(&conn, config)?;
    Ok((conn, wal))
}

fn setup(conn: &rusqlite::Connection, config: &Config) -> Result<bool, Error> {
    let failed = |e: rusqlite::Error| open_error(config, &e);
    conn.busy_timeout(config.busy_timeout).map_err(failed)?;
    conn.set_prepared_statement_cache_capacity(config.statement_cache_capacity);
    let mut wal = false;
    if let Some((mode, explicit)) = config.journal_mode {
        let set: String = conn
            .query_row(&format!("PRAGMA journal_mode = {mode}"), [], |row| {
                row.get(0)
            })
            .map_err(failed)?;
        if explicit && !set.eq_ignore_ascii_case(mode) {
            return Err(Error::configuration(format!(
                "the sqlite database {} cannot use journal_mode={mode} (it stays in {set} mode); \
                 remove journal_mode from the url or pick another mode",
                config.describe()
            )));
        }
        wal = set.eq_ignore_ascii_case("wal");
    }
    let mut pragmas = format!(
        "PRAGMA foreign_keys = {};",
        if config.foreign_keys { "ON" } else { "OFF" }
    );
    if let Some(synchronous) = config.synchronous {
        pragmas.push_str(&format!("PRAGMA synchronous = {synchronous};"));
    }
    conn.execute_batch(&pragmas).map_err(failed)?;
    Ok(wal)
}

/// A connection error for a database that could not be opened, saying what to do.
fn open_error(config: &Config, error: &rusqlite::Error) -> Error {
    let detail = match error {
        rusqlite::Error::SqliteFailure(_, Some(message)) => message.clone(),
        other => other.to_string(),
    };
    let code = error.sqlite_error_code();
    let what = config.describe();
    let mode = config.mode_str();
    let hint = match (&config.target, code) {
        (Target::File(path), Some(rusqlite::ErrorCode::CannotOpen)) => {
            let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
            if path.is_dir() {
                "it is a directory, not a database file; check the path".to_owned()
            } else if !path.exists() && mode != "rwc" {
                format!("the file does not exist; check the path, or use ?mode=rwc to create it (mode is {mode})")
            } else if !path.exists() && parent.is_some_and(|p| !p.is_dir()) {
                "its directory does not exist; create the directory first".to_owned()
            } else {
                "check that the file and its directory exist and that this process may read and write them, \
                 or open it read-only with ?mode=ro"
                    .to_owned()
            }
        }
        (_, Some(rusqlite::ErrorCode::PermissionDenied | rusqlite::ErrorCode::ReadOnly)) => {
            "permission denied; check the permissions of the file and its directory, or open it with ?mode=ro"
                .to_owned()
        }
        (_, Some(rusqlite::ErrorCode::NotADatabase)) => {
            "the file is not a sqlite database (or is encrypted); check the path".to_owned()
        }
        (_, Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)) => {
            "another connection holds a lock on it; retry, or raise busy_timeout".to_owned()
        }
        _ => "check the path and the url's options".to_owned(),
    };
    Error::connection(format!(
        "cannot open the sqlite database {what} (mode={mode}): {detail}; {hint}"
    ))
}
