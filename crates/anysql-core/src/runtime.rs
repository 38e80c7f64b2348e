//! The [`Runtime`] trait: everything anysql needs from an async executor, and nothing more.

use std::fmt;
use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::error::Error;

/// A boxed, sendable future with no output, as handed to [`Runtime::spawn`].
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A connected byte stream (TCP or Unix), as opened by a [`Runtime`].
///
/// The common interface is tokio's `AsyncRead`/`AsyncWrite` traits (the traits only: they carry no
/// tokio runtime). tokio-postgres speaks these traits, so on tokio the socket is handed over with no
/// adaptation at all; smol and async-std adapt their futures-io streams once, in their own crate.
pub trait Socket: AsyncRead + AsyncWrite + Send + Unpin + fmt::Debug + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + fmt::Debug + 'static> Socket for T {}

/// A socket opened by a [`Runtime`].
pub type BoxSocket = Box<dyn Socket>;

/// What anysql needs from an async executor: spawning, timers, sockets and (optionally) blocking work.
///
/// A runtime is a plain value carried by the [`Engine`](crate::Engine), never a global or a cfg switch,
/// so a library written against anysql never picks an executor and two engines on two executors can
/// live in one process. The implementations live in `anysql-tokio`, `anysql-smol` and
/// `anysql-async-std`; implement it yourself to run anysql on another executor.
#[async_trait]
pub trait Runtime: Send + Sync + fmt::Debug + 'static {
    /// A short name for messages and tables, such as `"tokio"`.
    fn name(&self) -> &'static str;

    /// Spawns a detached task. The task must be driven to completion even if nobody awaits it.
    fn spawn(&self, task: BoxFuture<'static, ()>);

    /// Returns a future that completes after `duration`.
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()>;

    /// Opens a TCP connection with `TCP_NODELAY` set.
    async fn connect_tcp(&self, host: &str, port: u16) -> io::Result<BoxSocket>;

    /// Opens a Unix domain socket connection.
    ///
    /// The default reports [`io::ErrorKind::Unsupported`], for platforms without Unix sockets.
    async fn connect_unix(&self, path: &Path) -> io::Result<BoxSocket> {
        let _ = path;
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "unix sockets are not supported by this runtime",
        ))
    }

    /// Runs blocking work without stalling the executor.
    ///
    /// The default runs it on a new OS thread; runtimes with a blocking pool override this.
    fn spawn_blocking(&self, work: Box<dyn FnOnce() + Send + 'static>) {
        std::thread::spawn(work);
    }
}

/// A cheap, cloneable handle to a [`Runtime`].
pub type SharedRuntime = Arc<dyn Runtime>;

/// Extension methods available on every [`Runtime`].
pub trait RuntimeExt: Runtime {
    /// Runs `future`, failing with [`ErrorKind::Timeout`](crate::ErrorKind::Timeout) if it takes longer
    /// than `duration`. The future is dropped when the time runs out.
    fn timeout<'a, F, T>(&self, duration: Duration, future: F) -> BoxFuture<'a, Result<T, Error>>
    where
        F: Future<Output = T> + Send + 'a,
        T: Send + 'a,
    {
        let sleep = self.sleep(duration);
        Box::pin(futures_lite::future::or(
            async move { Ok(future.await) },
            async move {
                sleep.await;
                Err(Error::timeout(duration))
            },
        ))
    }
}

impl<R: Runtime + ?Sized> RuntimeExt for R {}

/// Runs `future` with a deadline on `runtime`; `None` means no deadline.
pub(crate) async fn with_deadline<F, T>(
    runtime: &dyn Runtime,
    duration: Option<Duration>,
    future: F,
) -> Result<T, Error>
where
    F: Future<Output = Result<T, Error>> + Send,
    T: Send,
{
    match duration {
        None => future.await,
        Some(duration) => runtime.timeout(duration, future).await?,
    }
}
