//! The [`Runtime`] trait: everything anysql needs from an async executor, and nothing more.

use std::fmt;
use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::error::Error;

#[cfg(feature = "async-io")]
mod async_io_socket;
#[cfg(feature = "async-io")]
pub use async_io_socket::AsyncIoSocket;

/// A boxed, sendable future with no output, as handed to [`Runtime::spawn`].
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A connected byte stream (TCP or Unix), as opened by a [`Runtime`].
///
/// The common interface is tokio's `AsyncRead`/`AsyncWrite` traits (the traits only: they carry no
/// tokio runtime). tokio-postgres speaks these traits, so on tokio the socket is handed over with no
/// adaptation at all; smol and async-std hand theirs over as an `AsyncIoSocket` (the `async-io`
/// feature), which reads async-io's sockets the way tokio reads its own.
///
/// Implementing it for a stream type takes one line (`impl Socket for MyStream {}`); the one
/// method has a default.
pub trait Socket: AsyncRead + AsyncWrite + Send + Unpin + fmt::Debug + 'static {
    /// Reads what the operating system has for this socket *now*, without waiting and without
    /// going through the runtime's reactor: `Some(Ok(n))` with `n` bytes read (`0`: end of
    /// stream), `Some(Err(e))` with [`io::ErrorKind::WouldBlock`] when nothing is there, or `None`
    /// when this socket cannot do it (the default).
    ///
    /// Drivers use it to busy-poll for a reply that is microseconds away, which a reactor only
    /// reports after its thread has been woken. An implementation must leave the reactor's
    /// bookkeeping able to report data that arrives after this call: a reactor that re-arms its
    /// interest on every wait (async-io) or is edge-triggered (tokio, whose edge fires for every
    /// new arrival) qualifies, because bytes taken here can at worst cause a spurious wake-up,
    /// never a lost one. The caller must deliver the bytes it reads to whoever reads the stream.
    fn try_read_direct(&self, buf: &mut [u8]) -> Option<io::Result<usize>> {
        let _ = buf;
        None
    }
}

/// A socket opened by a [`Runtime`].
pub type BoxSocket = Box<dyn Socket>;

/// A runtime's stream made a [`Socket`], with [`Socket::try_read_direct`] served by a duplicate
/// of its file descriptor on Unix.
///
/// The duplicate shares the stream's open file description, so it is non-blocking like the
/// stream, and reading from it takes the same bytes the stream would have read. It costs one file
/// descriptor per socket. The runtime crates wrap their streams in it; a custom [`Runtime`] may
/// too, or implement [`Socket`] for its own type.
///
/// ```
/// # #[cfg(unix)] {
/// use anysql_core::runtime::DirectSocket;
/// use anysql_core::Socket;
/// use std::io::Write;
/// use std::os::fd::AsFd;
///
/// let (mut ours, theirs) = std::os::unix::net::UnixStream::pair()?;
/// theirs.set_nonblocking(true)?;
/// let (stream, _) = tokio::io::duplex(64); // any async stream; here a stand-in
/// let socket = DirectSocket::new(stream, Some(theirs.as_fd().try_clone_to_owned()?));
/// let mut buf = [0; 8];
/// assert_eq!(
///     socket.try_read_direct(&mut buf).unwrap().unwrap_err().kind(),
///     std::io::ErrorKind::WouldBlock
/// );
/// ours.write_all(b"hi")?;
/// assert_eq!(socket.try_read_direct(&mut buf).unwrap()?, 2);
/// assert_eq!(&buf[..2], b"hi");
/// # }
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct DirectSocket<S> {
    /// Declared first so that it closes first; the stream then deregisters from its reactor and
    /// closes the last descriptor of the socket.
    #[cfg(unix)]
    direct: Option<std::fs::File>,
    stream: S,
}

impl<S> DirectSocket<S> {
    /// Wraps `stream`, reading directly through `fd`: a duplicate of the stream's own descriptor
    /// (`stream.as_fd().try_clone_to_owned()`), which must be in non-blocking mode. With `None`
    /// (the duplicate could not be made: no descriptors left), [`Socket::try_read_direct`]
    /// returns `None`.
    #[cfg(unix)]
    pub fn new(stream: S, fd: Option<std::os::fd::OwnedFd>) -> Self {
        DirectSocket {
            direct: fd.map(std::fs::File::from),
            stream,
        }
    }

    /// Wraps `stream` without direct reads.
    pub fn plain(stream: S) -> Self {
        DirectSocket {
            #[cfg(unix)]
            direct: None,
            stream,
        }
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &S {
        &self.stream
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for DirectSocket<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for DirectSocket<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

impl<S> Socket for DirectSocket<S>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + fmt::Debug + 'static,
{
    fn try_read_direct(&self, buf: &mut [u8]) -> Option<io::Result<usize>> {
        #[cfg(unix)]
        {
            use std::io::Read;
            let mut file = self.direct.as_ref()?;
            Some(file.read(buf))
        }
        #[cfg(not(unix))]
        {
            let _ = buf;
            None
        }
    }
}

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
