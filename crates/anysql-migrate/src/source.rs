//! [`Migration`]s and where they come from: a directory read at run time, or files embedded by
//! `anysql::migrate!` at compile time.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::{MigrateError, MigrateErrorKind};

/// The first-line comment by which a migration file opts out of its transaction.
pub const NO_TRANSACTION: &str = "-- anysql:no-transaction";

/// One migration: a version, a name, the SQL that applies it and, optionally, the SQL that
/// reverts it.
///
/// ```
/// use anysql_migrate::Migration;
///
/// let m = Migration::new(1, "create_people", "CREATE TABLE people (id INTEGER)", None);
/// assert_eq!(m.version(), 1);
/// assert!(m.in_transaction());
/// assert_eq!(m.checksum().len(), 64);
///
/// let m = Migration::new(2, "vacuum", "-- anysql:no-transaction\nVACUUM", None);
/// assert!(!m.in_transaction());
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Migration {
    version: i64,
    name: Cow<'static, str>,
    up: Cow<'static, str>,
    down: Option<Cow<'static, str>>,
    checksum: String,
}

impl Migration {
    /// A migration from its parts. The SQL may hold several statements; a first line of exactly
    /// `-- anysql:no-transaction` (see [`NO_TRANSACTION`]) runs it outside a transaction.
    pub fn new(
        version: i64,
        name: impl Into<Cow<'static, str>>,
        up: impl Into<Cow<'static, str>>,
        down: Option<Cow<'static, str>>,
    ) -> Migration {
        let up = up.into();
        let checksum = checksum(&up);
        Migration {
            version,
            name: name.into(),
            up,
            down,
            checksum,
        }
    }

    /// The version: migrations run in increasing order of it.
    pub fn version(&self) -> i64 {
        self.version
    }

    /// The name, from the file name after the version.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The SQL that applies the migration.
    pub fn up(&self) -> &str {
        &self.up
    }

    /// The SQL that reverts it, from its `.down.sql` file.
    pub fn down(&self) -> Option<&str> {
        self.down.as_deref()
    }

    /// Whether the migration runs in a transaction: true unless its first line is
    /// `-- anysql:no-transaction`.
    pub fn in_transaction(&self) -> bool {
        in_transaction(&self.up)
    }

    /// The SHA-256 of the up SQL, in lowercase hex: recorded when the migration is applied and
    /// compared on every later run.
    pub fn checksum(&self) -> &str {
        &self.checksum
    }
}

impl fmt::Debug for Migration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Migration")
            .field("version", &self.version)
            .field("name", &self.name)
            .field("in_transaction", &self.in_transaction())
            .field("has_down", &self.down.is_some())
            .finish()
    }
}

/// Whether `sql` runs in a transaction: its first line is not the opt-out comment.
pub(crate) fn in_transaction(sql: &str) -> bool {
    sql.lines().next().map(str::trim) != Some(NO_TRANSACTION)
}

fn checksum(sql: &str) -> String {
    let digest = Sha256::digest(sql.as_bytes());
    let mut hex = String::with_capacity(64);
    for byte in digest.iter() {
        hex.push_str(&format!("{byte:02x}"));
    }
    hex
}

/// What a migration file's name says: `<version>_<name>.sql` or `<version>_<name>.down.sql`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileName {
    /// The version.
    pub version: i64,
    /// The name.
    pub name: String,
    /// Whether this is the `.down.sql` file.
    pub down: bool,
}

/// Parses a migration file name: `Ok(None)` for a file that is not SQL (ignored), an error for a
/// `.sql` file whose name does not follow `<version>_<name>.sql`.
///
/// ```
/// use anysql_migrate::parse_file_name;
///
/// let f = parse_file_name("20260102030405_create_people.down.sql").unwrap().unwrap();
/// assert_eq!((f.version, f.name.as_str(), f.down), (20260102030405, "create_people", true));
/// assert!(parse_file_name("README.md").unwrap().is_none());
/// assert!(parse_file_name("create_people.sql").is_err());
/// ```
pub fn parse_file_name(file: &str) -> Result<Option<FileName>, MigrateError> {
    let Some(stem) = file.strip_suffix(".sql") else {
        return Ok(None);
    };
    let (stem, down) = match stem.strip_suffix(".down") {
        Some(stem) => (stem, true),
        None => (stem, false),
    };
    let bad = |why: &str| {
        MigrateError::new(
            MigrateErrorKind::Source,
            format!(
                "the migration file {file:?} {why}: name migration files \
                 `<version>_<name>.sql` (and `<version>_<name>.down.sql` to revert), with an \
                 integer version such as 20260102030405"
            ),
        )
    };
    let Some((version, name)) = stem.split_once('_') else {
        return Err(bad("has no `_` between its version and its name"));
    };
    if version.is_empty() || !version.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("does not start with an integer version"));
    }
    let version: i64 = version
        .parse()
        .map_err(|_| bad("has a version too large for a 64-bit integer"))?;
    if name.is_empty() {
        return Err(bad("has no name after its version"));
    }
    Ok(Some(FileName {
        version,
        name: name.to_owned(),
        down,
    }))
}

/// Pairs up files into migrations, sorted by version: every version has one up file and at most
/// one down file with the same name.
pub(crate) fn collect(
    files: impl IntoIterator<Item = (String, String)>,
) -> Result<Vec<Migration>, MigrateError> {
    #[derive(Default)]
    struct Pair {
        name: String,
        up: Option<String>,
        down: Option<String>,
    }
    let mut by_version: BTreeMap<i64, Pair> = BTreeMap::new();
    for (file, text) in files {
        let Some(parsed) = parse_file_name(&file)? else {
            continue;
        };
        let pair = by_version.entry(parsed.version).or_default();
        let slot = if parsed.down {
            &mut pair.down
        } else {
            &mut pair.up
        };
        if slot.is_some() || (!pair.name.is_empty() && pair.name != parsed.name) {
            return Err(MigrateError::new(
                MigrateErrorKind::Source,
                format!(
                    "two migration files share the version {}: {:?} and {file:?}; give each \
                     migration its own version",
                    parsed.version,
                    if pair.name.is_empty() {
                        &parsed.name
                    } else {
                        &pair.name
                    }
                ),
            ));
        }
        *slot = Some(text);
        pair.name = parsed.name;
    }
    by_version
        .into_iter()
        .map(|(version, pair)| match pair.up {
            Some(up) => Ok(Migration::new(
                version,
                pair.name,
                up,
                pair.down.map(Cow::Owned),
            )),
            None => Err(MigrateError::new(
                MigrateErrorKind::Source,
                format!(
                    "the migration {version}_{}.down.sql has no {version}_{}.sql to go with it",
                    pair.name, pair.name
                ),
            )),
        })
        .collect()
}

/// Reads every `.sql` file of `dir` (not its subdirectories).
pub(crate) fn read_dir(dir: &Path) -> Result<Vec<Migration>, MigrateError> {
    let io_error = |what: &str, e: std::io::Error| {
        MigrateError::new(
            MigrateErrorKind::Source,
            format!("cannot read the migrations {what} {}: {e}", dir.display()),
        )
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| io_error("directory", e))? {
        let entry = entry.map_err(|e| io_error("directory", e))?;
        let path = entry.path();
        if !path.is_file() {
            continue;
        }
        let Some(file) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if !file.ends_with(".sql") {
            continue;
        }
        let text = std::fs::read_to_string(&path).map_err(|e| {
            MigrateError::new(
                MigrateErrorKind::Source,
                format!("cannot read the migration file {}: {e}", path.display()),
            )
        })?;
        files.push((file.to_owned(), text));
    }
    collect(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(names: &[&str]) -> Vec<(String, String)> {
        names
            .iter()
            .map(|n| (n.to_string(), format!("-- {n}")))
            .collect()
    }

    #[test]
    fn versions_sort_numerically_and_downs_pair_up() {
        let ms = collect(files(&[
            "10_b.sql",
            "9_a.sql",
            "10_b.down.sql",
            "notes.txt",
        ]))
        .unwrap();
        assert_eq!(ms.iter().map(|m| m.version()).collect::<Vec<_>>(), [9, 10]);
        assert_eq!(ms[1].down(), Some("-- 10_b.down.sql"));
        assert_eq!(ms[0].down(), None);
    }

    #[test]
    fn bad_names_and_duplicates_are_clear_errors() {
        for (names, needle) in [
            (&["1_a.sql", "1_b.sql"][..], "share the version 1"),
            (&["1_a.sql", "01_a.sql"][..], "share the version 1"),
            (&["2_a.down.sql"][..], "has no 2_a.sql"),
            (&["x_a.sql"][..], "integer version"),
            (&["1.sql"][..], "no `_`"),
            (&["1_.sql"][..], "no name"),
            (&["99999999999999999999_a.sql"][..], "too large"),
        ] {
            let err = collect(files(names)).unwrap_err();
            assert_eq!(err.kind(), MigrateErrorKind::Source);
            assert!(err.to_string().contains(needle), "{names:?}: {err}");
        }
    }

    #[test]
    fn the_opt_out_is_the_first_line_only() {
        assert!(!in_transaction("-- anysql:no-transaction\nVACUUM"));
        assert!(!in_transaction("  -- anysql:no-transaction  \r\nVACUUM"));
        assert!(in_transaction("VACUUM\n-- anysql:no-transaction"));
        assert!(in_transaction(""));
    }

    #[test]
    fn an_edit_changes_the_checksum() {
        let a = Migration::new(1, "a", "CREATE TABLE t (x INTEGER)", None);
        let b = Migration::new(1, "a", "CREATE TABLE t (x INTEGER, y INTEGER)", None);
        assert_ne!(a.checksum(), b.checksum());
        assert_eq!(
            Migration::new(1, "a", "", None).checksum(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
