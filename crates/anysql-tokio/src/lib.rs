//! The tokio runtime for anysql.
//!
//! [`TokioRuntime`] implements [`anysql_core::Runtime`] on a tokio [`Handle`]. Sockets are tokio's
//! own streams, handed to the drivers with no adaptation. The handle is entered around every
//! operation that needs tokio's reactor or timer, so futures made by this runtime may be polled from
//! anywhere, even from a thread that is not a tokio worker.
//!
//! # Examples
//!
//! ```
//! use anysql_core::{Runtime, RuntimeExt};
//! use anysql_tokio::TokioRuntime;
//! use std::time::Duration;
//!
//! let tokio = tokio::runtime::Runtime::new()?;
//! let runtime = TokioRuntime::from_handle(tokio.handle().clone());
//! tokio.block_on(async {
//!     runtime.sleep(Duration::from_millis(1)).await;
//!     let slow = runtime.sleep(Duration::from_secs(10));
//!     assert!(runtime.timeout(Duration::from_millis(1), slow).await.is_err());
//! });
//! # Ok::<(), std::io::Error>(())
//! ```

use std::future::Future;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use anysql_core::runtime::BoxFuture;
use anysql_core::runtime::DirectSocket;
use anysql_core::{BoxSocket, Error, ErrorKind, Runtime};
use tokio::runtime::Handle;

/// anysql's [`Runtime`] on tokio.
#[derive(Debug, Clone)]
pub struct TokioRuntime {
    handle: Handle,
}

impl TokioRuntime {
    /// The tokio runtime the caller is running on.
    ///
    /// Fails with [`ErrorKind::NoRuntime`] outside a tokio runtime, or when the runtime was built
    /// without timers (use `enable_all()` on the builder, as `#[tokio::main]` does).
    pub fn current() -> Result<Self, Error> {
        let handle = Handle::try_current().map_err(|_| {
            Error::new(
                ErrorKind::NoRuntime,
                "no tokio runtime is running on this thread: call from inside a tokio runtime, \
                 or pass one with TokioRuntime::from_handle",
            )
        })?;
        let runtime = TokioRuntime { handle };
        runtime.check_timers()?;
        Ok(runtime)
    }

    /// A runtime over `handle`. The runtime must have I/O and timers enabled.
    pub fn from_handle(handle: Handle) -> Self {
        TokioRuntime { handle }
    }

    /// The tokio handle.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    fn check_timers(&self) -> Result<(), Error> {
        let _enter = self.handle.enter();
        // tokio panics when a timer is created on a runtime without timers, and has no way to ask;
        // find out now, once, without the panic message reaching the user's stderr.
        quietly(|| catch_unwind(|| drop(tokio::time::sleep(Duration::ZERO)))).map_err(|_| {
            Error::new(
                ErrorKind::NoRuntime,
                "the tokio runtime has timers disabled: build it with enable_all() or enable_time()",
            )
        })
    }
}

thread_local! {
    /// Set while this thread runs code whose panic is expected and caught (a probe of tokio's
    /// configuration): the panic hook then stays silent.
    static QUIET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `probe` with panics on this thread kept off stderr; panics elsewhere, and outside the
/// probe, reach the hook that was installed before (the default one prints them as usual).
fn quietly<T>(probe: impl FnOnce() -> T) -> T {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(std::cell::Cell::get) {
                previous(info);
            }
        }));
    });
    let was = QUIET.with(|quiet| quiet.replace(true));
    let result = probe();
    QUIET.with(|quiet| quiet.set(was));
    result
}

/// Polls a future quietly (see [`quietly`]): tokio panics when a socket is opened on a runtime
/// without I/O, and the caller turns that panic into an error.
struct Quiet<F>(F);

impl<F: Future + Unpin> Future for Quiet<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        quietly(|| Pin::new(&mut self.0).poll(cx))
    }
}

/// Polls a future with the runtime's handle entered, so that tokio resources it creates find their
/// reactor and timer even when polled from a thread outside the runtime.
struct Entered<F> {
    handle: Handle,
    future: Pin<Box<F>>,
}

impl<F: Future> Future for Entered<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        let _enter = this.handle.enter();
        this.future.as_mut().poll(cx)
    }
}

impl TokioRuntime {
    async fn entered<F: Future>(&self, future: F) -> io::Result<F::Output> {
        let entered = Entered {
            handle: self.handle.clone(),
            future: Box::pin(future),
        };
        futures_lite::FutureExt::catch_unwind(AssertUnwindSafe(Quiet(entered)))
            .await
            .map_err(|_| {
                io::Error::other(
                    "the tokio runtime has I/O disabled: build it with enable_all() or enable_io()",
                )
            })
    }
}

/// Wraps a tokio stream so that drivers can busy-poll it ([`Socket::try_read_direct`]).
///
/// Reading through the duplicated descriptor bypasses tokio's cached readiness, which only a turn
/// of the reactor updates. It cannot lose a wake-up: tokio registers sockets edge-triggered, and
/// the kernel signals an edge for every arrival of new data, whatever was read in between; bytes
/// read directly can only make tokio's next read find nothing and wait again (a spurious wake-up).
///
/// [`Socket::try_read_direct`]: anysql_core::Socket::try_read_direct
#[cfg(unix)]
fn direct<S: std::os::fd::AsFd>(stream: S) -> DirectSocket<S> {
    let fd = stream.as_fd().try_clone_to_owned().ok();
    DirectSocket::new(stream, fd)
}

#[cfg(not(unix))]
fn direct<S>(stream: S) -> DirectSocket<S> {
    DirectSocket::plain(stream)
}

#[async_trait::async_trait]
impl Runtime for TokioRuntime {
    fn name(&self) -> &'static str {
        "tokio"
    }

    fn spawn(&self, task: BoxFuture<'static, ()>) {
        drop(self.handle.spawn(task));
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        let _enter = self.handle.enter();
        // The sleep keeps its own handle to the timer, so it may be polled anywhere.
        Box::pin(tokio::time::sleep(duration))
    }

    async fn connect_tcp(&self, host: &str, port: u16) -> io::Result<BoxSocket> {
        let stream = self
            .entered(tokio::net::TcpStream::connect((host, port)))
            .await??;
        stream.set_nodelay(true)?;
        Ok(Box::new(direct(stream)))
    }

    #[cfg(unix)]
    async fn connect_unix(&self, path: &Path) -> io::Result<BoxSocket> {
        let stream = self
            .entered(tokio::net::UnixStream::connect(path))
            .await??;
        Ok(Box::new(direct(stream)))
    }

    fn spawn_blocking(&self, work: Box<dyn FnOnce() + Send + 'static>) {
        drop(self.handle.spawn_blocking(work));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn outside_a_runtime_is_a_clear_error() {
        let err = TokioRuntime::current().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NoRuntime);
    }

    #[test]
    fn timers_disabled_is_a_clear_error() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let err = rt.block_on(async { TokioRuntime::current() }).unwrap_err();
        assert!(err.message().contains("timers disabled"), "{err}");
    }

    /// Regression: the clear error for a runtime without timers or I/O came after a panic message
    /// and backtrace on stderr. The probes run in a child process, whose stderr is checked.
    #[test]
    fn a_misconfigured_runtime_gives_the_error_and_prints_nothing() {
        if std::env::var_os("ANYSQL_TOKIO_PROBE_CHILD").is_some() {
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            let err = rt.block_on(async { TokioRuntime::current() }).unwrap_err();
            assert!(err.message().contains("timers disabled"), "{err}");
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .unwrap();
            let runtime = rt.block_on(async { TokioRuntime::current() }).unwrap();
            let err = rt
                .block_on(runtime.connect_tcp("127.0.0.1", 1))
                .map(drop)
                .unwrap_err();
            assert!(err.to_string().contains("I/O disabled"), "{err}");
            return;
        }
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "tests::a_misconfigured_runtime_gives_the_error_and_prints_nothing",
                "--nocapture",
            ])
            .env("ANYSQL_TOKIO_PROBE_CHILD", "1")
            .env("RUST_BACKTRACE", "1")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("1 passed"));
        assert!(!stderr.contains("panicked"), "{stderr}");
    }

    #[test]
    fn sockets_work_when_polled_outside_tokio() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        rt.spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            socket.write_all(b"hi").await.unwrap();
        });
        let runtime = TokioRuntime::from_handle(rt.handle().clone());
        // Polled by futures-lite's block_on on this (non-tokio) thread.
        let mut socket =
            futures_lite::future::block_on(runtime.connect_tcp("127.0.0.1", port)).unwrap();
        let mut buf = [0; 2];
        futures_lite::future::block_on(async {
            let (tx, rx) = std::sync::mpsc::channel();
            runtime.spawn(Box::pin(async move { tx.send(()).unwrap() }));
            runtime.sleep(Duration::from_millis(1)).await;
            rx.recv().unwrap();
        });
        rt.block_on(socket.read_exact(&mut buf)).unwrap();
        assert_eq!(&buf, b"hi");
    }

    #[test]
    fn connection_refused_is_an_io_error() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let runtime = TokioRuntime::from_handle(rt.handle().clone());
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let err = rt
            .block_on(runtime.connect_tcp("127.0.0.1", port))
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
    }
}
