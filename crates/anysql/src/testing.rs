//! A database of its own for each test (the `testing` feature): a temporary SQLite file, or a
//! uniquely named PostgreSQL database created on the server of the URL given and dropped
//! afterwards.
//!
//! It is plain async code, so it works on every runtime: call it from the test attribute of the
//! executor you use (`#[tokio::test]`, `#[async_std::test]`, or `smol::block_on` in a `#[test]`);
//! the engine it builds finds the running runtime as [`create_async_engine`](crate::create_async_engine)
//! does. [`with_fresh_database`] drops the database even when the test fails or panics;
//! [`fresh_database`] hands the database over, to end with [`TestDatabase::close`].
//!
//! ```
//! # #[cfg(all(feature = "sqlite", feature = "runtime-smol"))]
//! # fn main() {
//! // In a test: `#[test] fn counts() { smol::block_on(async { .. }) }`.
//! smol::block_on(async {
//!     let url = anysql::testing::database_url(); // ANYSQL_TEST_DATABASE_URL, else `sqlite:`
//!     anysql::testing::with_fresh_database(&url, |engine| async move {
//!         anysql::query("CREATE TABLE t (x INTEGER)").execute(&engine).await?;
//!         let n: i64 = anysql::query_scalar("SELECT count(*) FROM t").fetch_one(&engine).await?;
//!         assert_eq!(n, 0);
//!         Ok::<(), anysql::Error>(())
//!     })
//!     .await
//!     .unwrap();
//! });
//! # }
//! # #[cfg(not(all(feature = "sqlite", feature = "runtime-smol")))]
//! # fn main() {}
//! ```

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::{Engine, Error};

/// The database URL tests run against: `ANYSQL_TEST_DATABASE_URL`, else `DATABASE_URL`, else
/// `sqlite:` (a temporary SQLite file per test).
pub fn database_url() -> String {
    std::env::var("ANYSQL_TEST_DATABASE_URL")
        .or_else(|_| std::env::var("DATABASE_URL"))
        .unwrap_or_else(|_| "sqlite:".to_owned())
}

/// A fresh database for one test, and an engine on it. Made by [`fresh_database`].
#[derive(Debug)]
pub struct TestDatabase {
    url: String,
    engine: Engine,
    cleanup: Cleanup,
}

#[derive(Debug)]
enum Cleanup {
    Done,
    SqliteDir(PathBuf),
    Postgres { admin_url: String, name: String },
}

/// A name no other test, process or run uses.
fn unique_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "anysql_test_{}_{}_{nanos:09}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Creates a database of its own for one test, on the database `url` names:
///
/// - a `sqlite:` URL gives a new file in a new temporary directory (the URL's path is not used;
///   its query string, such as `?busy_timeout=1s`, is kept);
/// - a `postgres://` URL gives a new database with a unique name on that server, created
///   through the URL's own database (which the URL's user must be allowed to `CREATE DATABASE`
///   in); the URL's query string is kept.
///
/// End it with [`TestDatabase::close`], or use [`with_fresh_database`], which does.
pub async fn fresh_database(url: &str) -> Result<TestDatabase, Error> {
    let lower = url.to_ascii_lowercase();
    let name = unique_name();
    if lower.starts_with("sqlite:") {
        let query = url.split_once('?').map(|(_, q)| q);
        let dir = std::env::temp_dir().join(&name);
        std::fs::create_dir_all(&dir).map_err(|e| {
            Error::configuration(format!(
                "cannot create the test directory {}",
                dir.display()
            ))
            .with_source(e)
        })?;
        let mut test_url = format!("sqlite://{}", dir.join("test.db").display());
        if let Some(query) = query {
            test_url.push('?');
            test_url.push_str(query);
        }
        let engine = crate::builder(&test_url).build()?;
        Ok(TestDatabase {
            url: test_url,
            engine,
            cleanup: Cleanup::SqliteDir(dir),
        })
    } else if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
        let test_url = with_database_name(url, &name)?;
        let admin = crate::builder(url).max_size(1).build()?;
        let created = crate::query(format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await;
        admin.close().await;
        created?;
        let cleanup = Cleanup::Postgres {
            admin_url: url.to_owned(),
            name,
        };
        match crate::builder(&test_url).build() {
            Ok(engine) => Ok(TestDatabase {
                url: test_url,
                engine,
                cleanup,
            }),
            Err(e) => {
                drop_database(cleanup).await;
                Err(e)
            }
        }
    } else {
        Err(Error::configuration(format!(
            "a fresh test database needs a `sqlite:` or `postgres://` URL, not {url:?}"
        )))
    }
}

/// `url` with its database (the path) replaced by `name`.
fn with_database_name(url: &str, name: &str) -> Result<String, Error> {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let scheme_end = base
        .find("://")
        .map(|i| i + 3)
        .ok_or_else(|| Error::configuration(format!("{url:?} is not a postgres:// URL")))?;
    let authority_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{name}", &base[..authority_end]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    Ok(out)
}

async fn drop_database(cleanup: Cleanup) {
    match cleanup {
        Cleanup::Done => {}
        Cleanup::SqliteDir(dir) => {
            let _ = std::fs::remove_dir_all(dir);
        }
        Cleanup::Postgres { admin_url, name } => {
            if let Ok(admin) = crate::builder(&admin_url).max_size(1).build() {
                let _ = crate::query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&admin)
                    .await;
                admin.close().await;
            }
        }
    }
}

impl TestDatabase {
    /// The URL of the test's own database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// An engine on the test's own database (clones share its pool).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Closes the engine and removes the database: the SQLite file and its directory, or the
    /// PostgreSQL database (`DROP DATABASE … WITH (FORCE)`, which ends sessions still open).
    pub async fn close(mut self) {
        self.engine.close().await;
        let cleanup = std::mem::replace(&mut self.cleanup, Cleanup::Done);
        drop_database(cleanup).await;
    }
}

impl Drop for TestDatabase {
    /// A database not [`close`](TestDatabase::close)d: a SQLite directory is removed here; a
    /// PostgreSQL database is dropped on a task of the engine's runtime, if it still runs.
    fn drop(&mut self) {
        match std::mem::replace(&mut self.cleanup, Cleanup::Done) {
            Cleanup::Done => {}
            Cleanup::SqliteDir(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            cleanup @ Cleanup::Postgres { .. } => {
                let engine = self.engine.clone();
                self.engine.runtime().spawn(Box::pin(async move {
                    engine.close().await;
                    drop_database(cleanup).await;
                }));
            }
        }
    }
}

/// Runs `test` with an engine on a fresh database (see [`fresh_database`]) and removes the
/// database afterwards, also when `test` returns an error or panics (the panic then goes on).
pub async fn with_fresh_database<F, Fut, T, E>(url: &str, test: F) -> Result<T, E>
where
    F: FnOnce(Engine) -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: From<Error>,
{
    let db = fresh_database(url).await?;
    let outcome = CatchUnwind(Box::pin(test(db.engine.clone()))).await;
    db.close().await;
    match outcome {
        Ok(result) => result,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// Polls a future, turning a panic into an `Err`.
struct CatchUnwind<F>(Pin<Box<F>>);

impl<F: Future> Future for CatchUnwind<F> {
    type Output = std::thread::Result<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.0.as_mut();
        match std::panic::catch_unwind(AssertUnwindSafe(move || inner.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(value)) => Poll::Ready(Ok(value)),
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::with_database_name;

    #[test]
    fn the_database_name_replaces_the_path_and_keeps_the_query() {
        let cases = [
            ("postgres://u@h:5432/test", "postgres://u@h:5432/x"),
            (
                "postgres://u@h/test?sslmode=disable",
                "postgres://u@h/x?sslmode=disable",
            ),
            ("postgres://h", "postgres://h/x"),
            ("postgres://h?a=b", "postgres://h/x?a=b"),
        ];
        for (url, want) in cases {
            assert_eq!(with_database_name(url, "x").unwrap(), want);
        }
    }
}
