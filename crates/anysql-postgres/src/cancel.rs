//! Cancel requests, sent over a new socket opened by the runtime (over TLS when the connection
//! they cancel uses it).

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use anysql_core::{BoxSocket, CancelQuery, Error, RuntimeExt, SharedRuntime};
use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::{CancelToken, NoTls};

use crate::connect::open_socket;
use crate::options::PgHost;
use crate::tls::CancelTls;

/// How long a cancel request may take when no `connect_timeout` is set.
const DEFAULT_CANCEL_TIMEOUT: Duration = Duration::from_secs(10);

/// Cancels the query running on one connection: PostgreSQL's cancel protocol needs a new
/// connection to the same server, carrying the backend's process id and secret key.
pub(crate) struct PgCanceller {
    token: CancelToken,
    host: PgHost,
    timeout: Duration,
    /// `Some` when the connection went over TLS: the cancel request does too.
    tls: Option<CancelTls>,
}

impl PgCanceller {
    pub(crate) fn new(
        token: CancelToken,
        host: PgHost,
        timeout: Option<Duration>,
        tls: Option<CancelTls>,
    ) -> Self {
        PgCanceller {
            token,
            host,
            timeout: timeout.unwrap_or(DEFAULT_CANCEL_TIMEOUT),
            tls,
        }
    }

    /// The server this connection is connected to.
    pub(crate) fn host(&self) -> &PgHost {
        &self.host
    }

    pub(crate) async fn cancel_on(&self, runtime: &SharedRuntime) -> Result<(), Error> {
        let request = async {
            let socket = open_socket(&**runtime, &self.host).await.map_err(|e| {
                Error::connection(format!(
                    "could not open a socket to {} to send a cancel request",
                    self.host
                ))
                .with_source(e)
            })?;
            let socket = match &self.tls {
                Some(tls) => tls.secure(socket, &self.host).await.map_err(|e| {
                    Error::connection(format!(
                        "could not secure the cancel request to {} with TLS",
                        self.host
                    ))
                    .with_source(e)
                })?,
                None => socket,
            };
            self.token
                .cancel_query_raw(AwaitServerClose { socket }, NoTls)
                .await
                .map_err(|e| {
                    Error::connection(format!("sending a cancel request to {} failed", self.host))
                        .with_source(e)
                })
        };
        runtime.timeout(self.timeout, request).await?
    }
}

/// The cancel socket, whose shutdown also waits for the server to close its end.
///
/// tokio-postgres returns from `cancel_query_raw` as soon as the request is written. The server
/// signals the backend first and closes the socket after, so waiting for that close means the
/// cancel has landed when `cancel()` returns. Without it, a cancel sent by `reset()` could arrive
/// late and cancel the caller's next statement instead of the abandoned one.
///
/// Our side stays open until the server has closed its own, as libpq's does: PgBouncer 1.18
/// forwards the request to the server and, when the client's end closes before the server's
/// (a write shutdown is such a close), frees the client twice and exits ("bad client state").
struct AwaitServerClose {
    socket: BoxSocket,
}

impl AsyncRead for AwaitServerClose {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.socket).poll_read(cx, buf)
    }
}

impl AsyncWrite for AwaitServerClose {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.socket).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.socket).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // No shutdown of our side (see above): the socket closes when it is dropped. The server sends nothing back on a cancel connection: read until it closes. A reset is a
        // close too (the server process handling the request may exit without a clean shutdown).
        let mut scratch = [0_u8; 64];
        loop {
            let mut buf = ReadBuf::new(&mut scratch);
            match ready!(Pin::new(&mut self.socket).poll_read(cx, &mut buf)) {
                Ok(()) if buf.filled().is_empty() => return Poll::Ready(Ok(())),
                Ok(()) => continue,
                Err(_) => return Poll::Ready(Ok(())),
            }
        }
    }
}

#[async_trait]
impl CancelQuery for PgCanceller {
    async fn cancel(&self, runtime: &SharedRuntime) -> Result<(), Error> {
        self.cancel_on(runtime).await
    }
}

impl fmt::Debug for PgCanceller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgCanceller")
            .field("host", &self.host)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}
