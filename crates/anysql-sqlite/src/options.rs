//! The SQLite URL: where the database is and how each connection is set up.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anysql_core::option_values::{parse_bool, parse_duration, percent_decode};
use anysql_core::{redact, ConnectOptions, Error};
use rusqlite::OpenFlags;

use crate::reply::DEFAULT_BUSY_POLL;

/// The default `inline_limit`: a point query (or a write in WAL mode) that took SQLite up to
/// 100 µs lately runs on the caller's thread. Tokio's guidance is that a task should reach an
/// `.await` within 10–100 µs; an inline statement holds its executor thread for about as long as
/// it took last time. (20 µs until an autocommit insert beside four readers on a loaded 2-core
/// machine was found to turn slow under 20 µs often enough that the writer kept hopping to its
/// thread and waiting behind the readers' turns: `docs/benchmarks.md`, S5.)
pub(crate) const DEFAULT_INLINE_LIMIT: Duration = Duration::from_micros(100);

/// The most `inline_limit` may be.
const MAX_INLINE_LIMIT: Duration = Duration::from_millis(1);

/// The most `busy_timeout` may be: one day.
const MAX_BUSY_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// The most `statement_cache_capacity` may be.
const MAX_STATEMENT_CACHE_CAPACITY: usize = 10_000;

/// The query parameters the SQLite driver knows.
pub(crate) const KNOWN_PARAMS: &[&str] = &[
    "mode",
    "busy_timeout",
    "journal_mode",
    "synchronous",
    "foreign_keys",
    "statement_cache_capacity",
    "busy_poll",
    "writer_gate",
    "inline_limit",
];

/// Which database a connector opens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// A database file (absolute path, resolved when the engine is built).
    File(PathBuf),
    /// The engine's private in-memory database, shared by all its connections: a `memdb` VFS URI.
    Memory(String),
}

/// How a database file is opened: the URL's `mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Ro,
    Rw,
    Rwc,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Mode::Ro => "ro",
            Mode::Rw => "rw",
            Mode::Rwc => "rwc",
        }
    }
}

/// Everything needed to open and set up one connection. Validated once, when the engine is built.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) target: Target,
    pub(crate) mode: Mode,
    pub(crate) busy_timeout: Duration,
    /// The journal mode to set, and whether the URL asked for it (an explicit mode the database
    /// refuses is an error; the default WAL is best effort).
    pub(crate) journal_mode: Option<(&'static str, bool)>,
    pub(crate) synchronous: Option<&'static str>,
    pub(crate) foreign_keys: bool,
    pub(crate) statement_cache_capacity: usize,
    /// How long a caller busy-polls for a reply before it lets its executor sleep.
    pub(crate) busy_poll: Duration,
    /// Whether the connector's connections take turns to write through its writer gate.
    pub(crate) writer_gate: bool,
    /// A statement that ran within this lately runs on the caller's thread where it may (zero:
    /// never); see the crate docs, Inline statements.
    pub(crate) inline_limit: Duration,
}

impl Config {
    /// Parses and checks a `sqlite:` URL.
    pub(crate) fn from_options(options: &ConnectOptions) -> Result<Self, Error> {
        let target = parse_location(options.location())?;
        let mut mode = Mode::Rwc;
        let mut busy_timeout = Duration::from_secs(5);
        let mut journal_mode = None;
        let mut synchronous = None;
        let mut foreign_keys = true;
        let mut statement_cache_capacity = 128;
        let mut busy_poll = DEFAULT_BUSY_POLL;
        let mut writer_gate = true;
        let mut inline_limit = DEFAULT_INLINE_LIMIT;
        for (index, (key, value)) in options.params().iter().enumerate() {
            let secret = options.is_secret_param(index);
            let bad = |expected: &str| {
                let shown = if secret {
                    "(not shown: it may be part of a password)".to_owned()
                } else {
                    format!("`{value}`")
                };
                Error::configuration(format!(
                    "invalid value {shown} for sqlite option `{key}`: expected {expected}"
                ))
            };
            let lower = value.trim().to_ascii_lowercase();
            match key.as_str() {
                "mode" => {
                    mode = match lower.as_str() {
                        "ro" => Mode::Ro,
                        "rw" => Mode::Rw,
                        "rwc" => Mode::Rwc,
                        _ => return Err(bad("ro, rw or rwc")),
                    }
                }
                "busy_timeout" => {
                    busy_timeout = parse_duration(&lower)
                        .filter(|d| *d <= MAX_BUSY_TIMEOUT)
                        .ok_or_else(|| {
                            bad("a duration of at most 1 day (24h), such as 500ms, 5s or 2m (a bare number is seconds)")
                        })?;
                }
                "journal_mode" => {
                    let mode = ["delete", "truncate", "persist", "memory", "wal", "off"]
                        .into_iter()
                        .find(|m| *m == lower)
                        .ok_or_else(|| bad("delete, truncate, persist, memory, wal or off"))?;
                    journal_mode = Some((mode, true));
                }
                "synchronous" => {
                    synchronous = Some(match lower.as_str() {
                        "off" | "0" => "OFF",
                        "normal" | "1" => "NORMAL",
                        "full" | "2" => "FULL",
                        "extra" | "3" => "EXTRA",
                        _ => return Err(bad("off, normal, full or extra")),
                    });
                }
                "foreign_keys" => {
                    foreign_keys = parse_bool(&lower).ok_or_else(|| bad("true or false"))?;
                }
                "statement_cache_capacity" => {
                    statement_cache_capacity = lower
                        .parse::<usize>()
                        .ok()
                        .filter(|n| *n <= MAX_STATEMENT_CACHE_CAPACITY)
                        .ok_or_else(|| {
                            bad("a whole number from 0 to 10000 (0 turns the cache off)")
                        })?;
                }
                "busy_poll" => {
                    busy_poll = parse_duration(&lower)
                        .filter(|d| *d <= Duration::from_millis(10))
                        .ok_or_else(|| bad("a duration of at most 10ms, such as 50us (0 turns busy-polling off)"))?;
                }
                "writer_gate" => {
                    writer_gate = parse_bool(&lower).ok_or_else(|| bad("true or false"))?;
                }
                "inline_limit" => {
                    inline_limit = parse_duration(&lower)
                        .filter(|d| *d <= MAX_INLINE_LIMIT)
                        .ok_or_else(|| bad("a duration of at most 1ms, such as 20us (0 runs every statement on the connection's thread)"))?;
                }
                other => return Err(options.unknown_param(other, KNOWN_PARAMS)),
            }
        }
        if journal_mode.is_none() && matches!(target, Target::File(_)) && mode != Mode::Ro {
            journal_mode = Some(("wal", false));
        }
        if synchronous.is_none() && matches!(journal_mode, Some(("wal", _))) {
            synchronous = Some("NORMAL");
        }
        Ok(Config {
            target,
            mode,
            busy_timeout,
            journal_mode,
            synchronous,
            foreign_keys,
            statement_cache_capacity,
            busy_poll,
            writer_gate,
            inline_limit,
        })
    }

    /// The flags the pooled connections open with.
    pub(crate) fn open_flags(&self) -> OpenFlags {
        let mode = match self.mode {
            Mode::Ro => OpenFlags::SQLITE_OPEN_READ_ONLY,
            Mode::Rw => OpenFlags::SQLITE_OPEN_READ_WRITE,
            Mode::Rwc => OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
        };
        let uri = match self.target {
            // File paths are taken literally, never as `file:` URIs.
            Target::File(_) => OpenFlags::empty(),
            Target::Memory(_) => OpenFlags::SQLITE_OPEN_URI,
        };
        mode | uri | OpenFlags::SQLITE_OPEN_NO_MUTEX
    }

    /// What the database is, for messages.
    pub(crate) fn describe(&self) -> Describe<'_> {
        Describe(self)
    }

    /// The database for telemetry's `db.namespace`: the file (redacted as in messages) or
    /// `:memory:`.
    pub(crate) fn namespace(&self) -> String {
        match &self.target {
            Target::File(path) => redact(&path.display().to_string()),
            Target::Memory(_) => ":memory:".to_owned(),
        }
    }

    pub(crate) fn mode_str(&self) -> &'static str {
        self.mode.as_str()
    }
}

/// Formats a [`Config`]'s database for messages.
pub(crate) struct Describe<'a>(&'a Config);

impl fmt::Display for Describe<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0.target {
            // A path from a URL with user info (`sqlite://u:pw@host/db`) would show the password.
            Target::File(path) => write!(f, "`{}`", redact(&path.display().to_string())),
            Target::Memory(_) => f.write_str("`:memory:`"),
        }
    }
}

/// A unique `memdb` URI: `file:/anysql-mem-<pid>-<n>?vfs=memdb`. The leading `/` makes the database
/// shared by every connection of the process that opens the same name.
pub(crate) fn memory_uri() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("file:/anysql-mem-{}-{n}?vfs=memdb", std::process::id())
}

/// Reads the part of the URL after `sqlite:`: `data.db`, `//data.db`, `///abs/data.db`, `:memory:`
/// or `//:memory:`.
pub(crate) fn parse_location(location: &str) -> Result<Target, Error> {
    let location = location.strip_prefix("//").unwrap_or(location);
    if location == ":memory:" {
        return Ok(Target::Memory(memory_uri()));
    }
    if location.is_empty() {
        return Err(Error::configuration(
            "the sqlite url names no database: use `sqlite:data.db` (relative), \
             `sqlite:///absolute/path.db` or `sqlite::memory:`",
        ));
    }
    let decoded = percent_decode(location).ok_or_else(|| {
        Error::configuration(format!(
            "the sqlite database path `{}` is not valid utf-8 once percent-decoded",
            redact(location)
        ))
    })?;
    if decoded.contains('\0') {
        return Err(Error::configuration(
            "the sqlite database path contains a nul byte",
        ));
    }
    let path = windows_drive_path(&decoded);
    let absolute = std::path::absolute(path).map_err(|e| {
        Error::configuration(format!(
            "cannot resolve the sqlite database path `{}` against the current directory: {e}",
            redact(&decoded)
        ))
    })?;
    Ok(Target::File(absolute))
}

/// `sqlite:///C:/data.db` names `C:/data.db` on Windows; elsewhere the path is kept as is.
fn windows_drive_path(path: &str) -> &Path {
    if cfg!(windows) {
        let bytes = path.as_bytes();
        if bytes.len() >= 3
            && bytes[0] == b'/'
            && bytes[1].is_ascii_alphabetic()
            && bytes[2] == b':'
        {
            return Path::new(&path[1..]);
        }
    }
    Path::new(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use anysql_core::ErrorKind;

    fn config(url: &str) -> Result<Config, Error> {
        Config::from_options(&ConnectOptions::parse(url)?)
    }

    fn file(url: &str) -> PathBuf {
        match config(url).unwrap().target {
            Target::File(path) => path,
            other => panic!("{url}: {other:?}"),
        }
    }

    #[test]
    fn url_forms() {
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(file("sqlite:data.db"), cwd.join("data.db"));
        assert_eq!(file("sqlite://data.db"), cwd.join("data.db"));
        assert_eq!(
            file("sqlite://dir/data.db?mode=rw"),
            cwd.join("dir/data.db")
        );
        assert_eq!(file("sqlite:///tmp/abs.db"), PathBuf::from("/tmp/abs.db"));
        assert_eq!(
            file("sqlite:///tmp/with%20space.db"),
            PathBuf::from("/tmp/with space.db")
        );
        assert_eq!(file("sqlite:///tmp/100%.db"), PathBuf::from("/tmp/100%.db"));
        assert_eq!(file("sqlite:///tmp/a b.db"), PathBuf::from("/tmp/a b.db"));
        assert_eq!(file("sqlite:my data.db"), cwd.join("my data.db"));
        // `sqlite://:memory:` is refused by `ConnectOptions::parse` today ("empty host"); the driver
        // reads its location all the same.
        assert!(matches!(
            parse_location("//:memory:"),
            Ok(Target::Memory(_))
        ));
        for memory in ["sqlite::memory:", "sqlite::memory:?foreign_keys=off"] {
            let c = config(memory).unwrap();
            assert!(
                matches!(&c.target, Target::Memory(uri) if uri.contains("vfs=memdb")),
                "{memory}"
            );
            assert_eq!(c.journal_mode, None);
        }
        let a = config("sqlite::memory:").unwrap().target;
        let b = config("sqlite::memory:").unwrap().target;
        assert_ne!(a, b, "each engine gets its own in-memory database");
    }

    #[test]
    fn defaults() {
        let c = config("sqlite:data.db").unwrap();
        assert_eq!(c.mode, Mode::Rwc);
        assert_eq!(c.busy_timeout, Duration::from_secs(5));
        assert_eq!(c.journal_mode, Some(("wal", false)));
        assert_eq!(c.synchronous, Some("NORMAL"));
        assert!(c.foreign_keys);
        assert_eq!(c.statement_cache_capacity, 128);
        assert_eq!(c.busy_poll, Duration::from_micros(50));
        assert!(c.writer_gate);
        assert_eq!(c.inline_limit, Duration::from_micros(100));
        let ro = config("sqlite:data.db?mode=ro").unwrap();
        assert_eq!((ro.journal_mode, ro.synchronous), (None, None));
        let delete = config("sqlite:data.db?journal_mode=DELETE").unwrap();
        assert_eq!(
            (delete.journal_mode, delete.synchronous),
            (Some(("delete", true)), None)
        );
    }

    #[test]
    fn options_are_parsed() {
        let c = config(
            "sqlite:x.db?mode=rw&busy_timeout=250ms&synchronous=full&foreign_keys=off&statement_cache_capacity=0",
        )
        .unwrap();
        assert_eq!(c.mode, Mode::Rw);
        assert_eq!(c.busy_timeout, Duration::from_millis(250));
        assert_eq!(c.synchronous, Some("FULL"));
        assert!(!c.foreign_keys);
        assert_eq!(c.statement_cache_capacity, 0);
        assert!(c.writer_gate);
        assert!(!config("sqlite:x.db?writer_gate=false").unwrap().writer_gate);
        assert!(
            !config("sqlite::memory:?writer_gate=off")
                .unwrap()
                .writer_gate
        );
        assert_eq!(
            config("sqlite:x.db?busy_timeout=2").unwrap().busy_timeout,
            Duration::from_secs(2)
        );
        assert_eq!(
            config("sqlite:x.db?inline_limit=0").unwrap().inline_limit,
            Duration::ZERO
        );
        assert_eq!(
            config("sqlite:x.db?inline_limit=1ms").unwrap().inline_limit,
            Duration::from_millis(1)
        );
    }

    #[test]
    fn bad_urls_are_configuration_errors() {
        for (url, needle) in [
            ("sqlite:x.db?mode=memory", "ro, rw or rwc"),
            ("sqlite:x.db?busy_timeout=soon", "duration"),
            ("sqlite:x.db?busy_timeout=1000h", "duration"),
            ("sqlite:x.db?journal_mode=fast", "wal"),
            ("sqlite:x.db?synchronous=maybe", "normal"),
            ("sqlite:x.db?foreign_keys=perhaps", "true or false"),
            ("sqlite:x.db?statement_cache_capacity=-1", "whole number"),
            ("sqlite:x.db?colour=blue", "unknown option `colour`"),
            ("sqlite:x.db?busy_poll=1s", "at most 10ms"),
            ("sqlite:x.db?writer_gate=sometimes", "true or false"),
            ("sqlite:x.db?inline_limit=2ms", "at most 1ms"),
            ("sqlite:x.db?inline_limit=always", "at most 1ms"),
            ("sqlite:", "names no database"),
            ("sqlite://", "names no database"),
            ("sqlite:%FF.db", "utf-8"),
        ] {
            let err = config(url).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Configuration, "{url}");
            assert!(err.message().contains(needle), "{url}: {err}");
        }
        let err = config("sqlite:x.db?colour=blue").unwrap_err();
        assert!(
            err.message().contains("busy_timeout"),
            "lists the known options: {err}"
        );
    }

    /// Issue #10: every value out of range is a configuration error naming the option and its
    /// limits, never a panic.
    #[test]
    fn out_of_range_values_name_their_limits() {
        for (url, needle) in [
            ("sqlite:x.db?busy_timeout=25h", "at most 1 day"),
            ("sqlite:x.db?busy_timeout=1e20", "at most 1 day"),
            (
                "sqlite:x.db?busy_timeout=18446744073709551616",
                "at most 1 day",
            ),
            ("sqlite:x.db?busy_timeout=inf", "at most 1 day"),
            ("sqlite:x.db?busy_timeout=", "at most 1 day"),
            (
                "sqlite:x.db?statement_cache_capacity=10001",
                "from 0 to 10000",
            ),
            (
                "sqlite:x.db?statement_cache_capacity=99999999999999999999999",
                "from 0 to 10000",
            ),
            ("sqlite:x.db?busy_poll=1e30", "at most 10ms"),
            ("sqlite:x.db?inline_limit=NaN", "at most 1ms"),
        ] {
            let err = config(url).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Configuration, "{url}");
            let key = url.split(['?', '=']).nth(1).unwrap();
            assert!(
                err.message().contains(needle) && err.message().contains(key),
                "{url}: {err}"
            );
        }
        assert_eq!(
            config("sqlite:x.db?busy_timeout=24h").unwrap().busy_timeout,
            MAX_BUSY_TIMEOUT
        );
    }

    #[test]
    fn values_that_may_be_a_password_are_not_quoted() {
        let err = config("sqlite://u:pw?mode=Secr3t@x.db").unwrap_err();
        assert!(!err.to_string().contains("Secr3t"), "{err}");
        assert!(err.message().contains("mode"), "{err}");
        let c = config("sqlite://u:Secr3t@host/x.db").unwrap();
        assert!(!c.describe().to_string().contains("Secr3t"));
    }
}
