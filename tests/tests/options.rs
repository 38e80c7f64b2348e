//! URLs and option values, whatever they hold: building an engine never panics, every value out of
//! range is a configuration error, and no password shows in any output (issue #10).
//!
//! These tests do not depend on the cell: they build engines for every compiled-in driver, and only
//! ever connect to `127.0.0.1:1` or `:2`, which refuse at once.

use std::time::Duration;

use anysql::core::{redact, ConnectOptions};
use anysql::postgres::{PgConnectOptions, PgHost};
use anysql::ErrorKind;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// Distinctive words passwords are made of: none of them occurs in any message, so finding one in
/// an output means (part of) a password leaked.
const WORDS: &[&str] = &["Zqxv", "Wkjy", "Qjzvb", "Xyzzk", "Fnord"];

/// The characters that break URLs and `key=value` strings, and some that are not ASCII.
const SPECIALS: &[&str] = &[
    "#", "/", "?", "@", ":", "%", "&", "=", "'", "\\", " ", "+", ",", "[", "]", "%40", "%2", "é",
    "🔑", "\t",
];

/// Every option the pool and the drivers know, and some they do not.
const OPTIONS: &[&str] = &[
    "max_size",
    "min_idle",
    "acquire_timeout",
    "idle_timeout",
    "max_lifetime",
    "health_check",
    "mode",
    "busy_timeout",
    "journal_mode",
    "synchronous",
    "foreign_keys",
    "statement_cache_capacity",
    "busy_poll",
    "writer_gate",
    "inline_limit",
    "host",
    "port",
    "user",
    "dbname",
    "application_name",
    "options",
    "connect_timeout",
    "sslmode",
    "pgbouncer",
    "drive",
    "shared",
    "keepalives",
    "colour",
];

fn password() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        prop::sample::select(WORDS).prop_map(str::to_owned),
        prop::sample::select(SPECIALS).prop_map(str::to_owned),
    ];
    (
        prop::collection::vec(piece.clone(), 0..4),
        prop::sample::select(WORDS),
        prop::collection::vec(piece, 0..4),
    )
        .prop_map(|(before, word, after)| format!("{}{word}{}", before.concat(), after.concat()))
}

fn option_value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<u64>().prop_map(|n| n.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u128>().prop_map(|n| n.to_string()),
        (0u32..100_000).prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| f.to_string()),
        (any::<i16>(), -400i32..400).prop_map(|(m, e)| format!("{m}e{e}")),
        (
            0u64..100_000,
            prop::sample::select(&["", "s", "ms", "us", "m", "h", "min", "d"][..])
        )
            .prop_map(|(n, unit)| format!("{n}{unit}")),
        prop::sample::select(
            &[
                "",
                " ",
                "inf",
                "-inf",
                "NaN",
                "-0",
                "0",
                "1",
                "1e20",
                "1e30",
                "1e400",
                "18446744073709551616",
                "0x10",
                "1.5.3",
                "+3",
                "-5s",
                "true",
                "off",
                "none",
                "inline",
                "ro",
                "wal",
                "disable",
                "😀",
                "%FF",
                "1,2,3",
                "/tmp",
            ][..]
        )
        .prop_map(str::to_owned),
    ]
}

/// `text` percent-encoded for a URL's user info or query.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// `text` as a quoted libpq value.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// `text` as an unquoted libpq value: whitespace, quotes and backslashes escaped.
fn escape(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_whitespace() || c == '\\' || c == '\'' {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A URL or `key=value` string with `password` in it, in one of many shapes, and an option.
fn url(shape: u8, scheme: &str, password: &str, option: &str, value: &str) -> String {
    let raw_query = format!("{option}={value}");
    let query = format!("{option}={}", encode(value));
    match shape % 12 {
        0 => format!("{scheme}://user:{password}@127.0.0.1:1/db?{raw_query}"),
        1 => format!(
            "{scheme}://user:{}@127.0.0.1:1/db?{query}",
            encode(password)
        ),
        2 => format!("{scheme}://127.0.0.1:1/db?{query}&password={password}"),
        3 => format!("{scheme}://127.0.0.1:1/db?password={password}&{raw_query}"),
        4 => format!(
            "{scheme}://root:pw@127.0.0.1:1/db?{query}&password={}",
            encode(password)
        ),
        5 => format!("{scheme}://127.0.0.1:1/db?sslpassword={password}&{query}"),
        6 => format!(
            "{scheme}://127.0.0.1:1/db?pass%77ord={}&{query}",
            encode(password)
        ),
        7 => format!("{scheme}://user:{password}@127.0.0.1:1,127.0.0.1:2/db?{raw_query}"),
        8 => format!(
            "host=127.0.0.1 port=1 password={} dbname=db {option}={}",
            quote(password),
            quote(value)
        ),
        9 => format!(
            "host=127.0.0.1 {option}={} password={} dbname=db",
            escape(value),
            escape(password)
        ),
        10 => format!("host=127.0.0.1 port=1 password={password} {option}={value}"),
        _ => format!("{scheme}:user:{password}@127.0.0.1:1/db?{raw_query}"),
    }
}

/// Whether connecting with `url` only ever tries `127.0.0.1` on port 1 or 2.
fn connects_only_to_closed_ports(url: &str) -> bool {
    let Ok(options) = ConnectOptions::parse(url) else {
        return false;
    };
    if options.scheme() != "postgres" && options.scheme() != "postgresql" {
        return false;
    }
    let Ok(pg) = PgConnectOptions::parse(&options) else {
        return false;
    };
    pg.hosts().iter().all(|host| {
        matches!(host, PgHost::Tcp { host, port } if host == "127.0.0.1" && (*port == 1 || *port == 2))
    })
}

/// Everything anysql shows for `url`: parse results, redactions, the builder, the build error or
/// the engine, and for PostgreSQL the connect error.
async fn outputs(url: &str) -> Vec<String> {
    let mut shown = vec![redact(url)];
    match ConnectOptions::parse(url) {
        Ok(options) => {
            shown.push(format!("{options} {options:?} {}", options.redacted()));
            let postgres = matches!(options.scheme(), "postgres" | "postgresql");
            if let Some(pg) = postgres
                .then(|| PgConnectOptions::parse(&options).ok())
                .flatten()
            {
                shown.push(format!("{pg:?} {}", pg.redacted()));
            }
        }
        Err(err) => shown.push(format!("{err} {err:?}")),
    }
    let builder = anysql::builder(url).acquire_timeout(Duration::from_secs(5));
    shown.push(format!("{builder:?}"));
    match builder.build() {
        Ok(engine) => {
            shown.push(format!("{engine:?} {}", engine.url()));
            if connects_only_to_closed_ports(url) {
                match engine.acquire().await {
                    Ok(_) => shown.push("connected to a closed port?".to_owned()),
                    Err(err) => shown.push(format!("{err} {err:?}")),
                }
            }
        }
        Err(err) => shown.push(format!("{err} {err:?}")),
    }
    shown
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn generated_urls_never_panic_and_never_show_a_password() {
    let runtime = runtime();
    let mut runner = TestRunner::new(Config {
        cases: 400,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (
        any::<u8>(),
        prop::sample::select(&["sqlite", "postgres", "postgresql"][..]),
        password(),
        prop::sample::select(OPTIONS),
        option_value(),
    );
    runner
        .run(&strategy, |(shape, scheme, password, option, value)| {
            let url = url(shape, scheme, &password, option, &value);
            let shown = runtime.block_on(outputs(&url));
            for output in &shown {
                for word in WORDS.iter().filter(|w| password.contains(**w)) {
                    prop_assert!(
                        !output.contains(word),
                        "`{word}` of the password shows for {url:?}: {output}"
                    );
                }
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn generated_option_values_are_accepted_or_configuration_errors() {
    let runtime = runtime();
    let mut runner = TestRunner::new(Config {
        cases: 400,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (
        prop::sample::select(&["sqlite::memory:", "postgres://127.0.0.1:1/db"][..]),
        prop::sample::select(OPTIONS),
        option_value(),
        any::<bool>(),
    );
    runner
        .run(&strategy, |(base, option, value, key_value)| {
            let url = if key_value && base.starts_with("postgres") {
                format!("host=127.0.0.1 port=1 dbname=db {option}={}", quote(&value))
            } else {
                format!("{base}?{option}={}", encode(&value))
            };
            let result = runtime.block_on(async { anysql::builder(&url).build().map(drop) });
            if let Err(err) = result {
                prop_assert_eq!(err.kind(), ErrorKind::Configuration, "{}: {}", url, err);
            }
            Ok(())
        })
        .unwrap();
}

/// Issue #10: `max_size=10000000000000000000` panicked in the semaphore when the engine was built.
#[test]
fn a_huge_max_size_is_a_configuration_error() {
    runtime().block_on(async {
        for url in [
            "sqlite::memory:?max_size=10000000000000000000",
            "sqlite::memory:?max_size=10001",
            "postgres://127.0.0.1:1/db?max_size=10000000000000000000",
        ] {
            let err = anysql::builder(url).build().map(drop).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Configuration, "{url}: {err}");
            assert!(
                err.message().contains("max_size") && err.message().contains("1 to 10000"),
                "{err}"
            );
        }
        for build in [
            anysql::builder("sqlite::memory:").max_size(usize::MAX),
            anysql::builder("sqlite::memory:").max_size(0),
            anysql::builder("sqlite::memory:").min_idle(usize::MAX),
            anysql::builder("sqlite::memory:").acquire_timeout(Duration::MAX),
            anysql::builder("sqlite::memory:").idle_timeout(Some(Duration::MAX)),
            anysql::builder("sqlite::memory:").max_lifetime(Some(Duration::MAX)),
        ] {
            let err = build.build().map(drop).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Configuration, "{err}");
        }
        anysql::builder("sqlite::memory:")
            .max_size(10_000)
            .build()
            .unwrap();
    });
}

/// Issue #10: `connect_timeout=1e20` (and more) panicked in `Duration::from_secs_f64`.
#[test]
fn a_huge_connect_timeout_is_a_configuration_error() {
    runtime().block_on(async {
        for value in [
            "1e20",
            "1e30",
            "18446744073709551616",
            "-1",
            "inf",
            "NaN",
            "",
        ] {
            for url in [
                format!("postgres://127.0.0.1:1/db?connect_timeout={value}"),
                format!("host=127.0.0.1 port=1 connect_timeout='{value}'"),
            ] {
                let err = anysql::builder(&url).build().map(drop).unwrap_err();
                assert_eq!(err.kind(), ErrorKind::Configuration, "{url}: {err}");
                assert!(
                    err.message().contains("connect_timeout") && err.message().contains("86400"),
                    "{err}"
                );
            }
        }
    });
}

/// Issue #10: the query-string password, the one used, showed in the engine's Debug, in
/// `engine.url()` and in every connect error.
#[test]
fn a_query_string_password_never_shows() {
    runtime().block_on(async {
        let url = "postgres://root:pw@127.0.0.1:1/test?password=other";
        let engine = anysql::builder(url)
            .acquire_timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        let err = engine.acquire().await.unwrap_err();
        let shown = format!("{engine:?} {} {err} {err:?}", engine.url());
        assert!(
            !shown.contains("other") && !shown.contains("pw@"),
            "{shown}"
        );
        assert!(shown.contains("127.0.0.1:1"), "{shown}");
    });
}

/// Issue #10: an unencoded `#` in the password put it whole into the options' Display and Debug,
/// the builder's Debug and the parse error ("`S3cr` is not a valid port").
#[test]
fn a_password_with_an_unencoded_hash_never_shows() {
    runtime().block_on(async {
        for url in [
            "postgres://root:S3cr#3tPw@host/test",
            "postgres://root:S3cr/3tPw@127.0.0.1:1/test",
            "postgres://root:S3cr?3tPw@127.0.0.1:1/test",
        ] {
            let mut shown = redact(url);
            if let Ok(options) = ConnectOptions::parse(url) {
                shown += &format!(" {options} {options:?}");
            }
            let builder = anysql::builder(url);
            shown += &format!(" {builder:?}");
            match builder.build() {
                Ok(engine) => shown += &format!(" {engine:?} {}", engine.url()),
                Err(err) => shown += &format!(" {err} {err:?}"),
            }
            assert!(
                !shown.contains("S3cr") && !shown.contains("3tPw"),
                "{url}: {shown}"
            );
        }
    });
}
