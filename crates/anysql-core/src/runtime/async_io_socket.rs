//! [`AsyncIoSocket`]: a socket on async-io's reactor (smol's and async-std's), read the way tokio
//! reads its own: not again once a read has emptied it, until the reactor says there is more.

use std::fmt;
use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, TcpStream};
#[cfg(unix)]
use std::os::unix::net::UnixStream;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use async_io::Async;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::Socket;

/// A TCP or Unix stream registered with async-io's reactor (the one smol and async-std run on),
/// made a [`Socket`] with direct reads (the `async-io` feature).
///
/// async-io's own reader tries the system call first and waits for the reactor only when it
/// finds nothing; a connection that reads until it would block therefore makes one read that
/// fails for every one that succeeds, and another when it starts to wait for the next reply. This
/// socket remembers instead whether its last read emptied the socket (it returned fewer bytes
/// than there was room for, or none) and then asks the reactor first, as tokio does with its
/// readiness flags: on the drivers' request-and-reply traffic that removes two or three failed
/// reads per round trip. A read that came up short while more bytes were arriving loses nothing:
/// async-io re-arms its interest when the task waits, level-triggered, so bytes already there
/// wake the task at once.
///
/// [`Socket::try_read_direct`] reads the stream's own descriptor, without the reactor.
///
/// # Examples
///
/// ```
/// # #[cfg(unix)] {
/// use anysql_core::runtime::AsyncIoSocket;
/// use anysql_core::Socket;
/// use std::io::Write;
///
/// let (mut ours, theirs) = std::os::unix::net::UnixStream::pair()?;
/// let socket = AsyncIoSocket::unix(async_io::Async::new(theirs)?);
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
pub struct AsyncIoSocket {
    stream: Stream,
    /// Whether the last read emptied the socket, so that the next waits for the reactor first.
    drained: bool,
    /// Reads tried, for tests.
    #[cfg(test)]
    reads: usize,
}

enum Stream {
    Tcp(Async<TcpStream>),
    #[cfg(unix)]
    Unix(Async<UnixStream>),
}

impl AsyncIoSocket {
    /// Wraps a connected TCP stream, such as the one inside smol's `TcpStream`
    /// (`Arc<Async<std::net::TcpStream>>::from`) or async-std's (`std::net::TcpStream::try_from`,
    /// then [`Async::new`]).
    pub fn tcp(stream: Async<TcpStream>) -> Self {
        AsyncIoSocket::with(Stream::Tcp(stream))
    }

    /// Wraps a connected Unix stream.
    #[cfg(unix)]
    pub fn unix(stream: Async<UnixStream>) -> Self {
        AsyncIoSocket::with(Stream::Unix(stream))
    }

    fn with(stream: Stream) -> Self {
        AsyncIoSocket {
            stream,
            drained: false,
            #[cfg(test)]
            reads: 0,
        }
    }
}

impl Stream {
    fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.get_ref().read(buf),
            #[cfg(unix)]
            Stream::Unix(s) => s.get_ref().read(buf),
        }
    }

    fn write(&self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.get_ref().write(buf),
            #[cfg(unix)]
            Stream::Unix(s) => s.get_ref().write(buf),
        }
    }

    fn write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.get_ref().write_vectored(bufs),
            #[cfg(unix)]
            Stream::Unix(s) => s.get_ref().write_vectored(bufs),
        }
    }

    fn shutdown(&self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.get_ref().shutdown(Shutdown::Write),
            #[cfg(unix)]
            Stream::Unix(s) => s.get_ref().shutdown(Shutdown::Write),
        }
    }

    fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Stream::Tcp(s) => s.poll_readable(cx),
            #[cfg(unix)]
            Stream::Unix(s) => s.poll_readable(cx),
        }
    }

    fn poll_writable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Stream::Tcp(s) => s.poll_writable(cx),
            #[cfg(unix)]
            Stream::Unix(s) => s.poll_writable(cx),
        }
    }

    /// Runs `write` until it does not find the socket full, waiting for the reactor in between.
    fn poll_write_with(
        &self,
        cx: &mut Context<'_>,
        mut write: impl FnMut(&Self) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        loop {
            match write(self) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    ready!(self.poll_writable(cx))?;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                result => return Poll::Ready(result),
            }
        }
    }
}

impl fmt::Debug for AsyncIoSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.stream {
            Stream::Tcp(_) => "tcp",
            #[cfg(unix)]
            Stream::Unix(_) => "unix",
        };
        f.debug_struct("AsyncIoSocket")
            .field("stream", &kind)
            .field("drained", &self.drained)
            .finish()
    }
}

impl AsyncRead for AsyncIoSocket {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if this.drained {
                // Pending registers the waker; Ready means the reactor saw the socket readable
                // since it was last asked.
                ready!(this.stream.poll_readable(cx))?;
                this.drained = false;
            }
            #[cfg(test)]
            {
                this.reads += 1;
            }
            let unfilled = buf.initialize_unfilled();
            let room = unfilled.len();
            match this.stream.read(unfilled) {
                Ok(n) => {
                    this.drained = n < room;
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => this.drained = true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for AsyncIoSocket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.stream.poll_write_with(cx, |s| s.write(buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.stream.poll_write_with(cx, |s| s.write_vectored(bufs))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Writes go straight to the operating system.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.stream.shutdown())
    }
}

impl Socket for AsyncIoSocket {
    fn try_read_direct(&self, buf: &mut [u8]) -> Option<io::Result<usize>> {
        // The stream's own descriptor, non-blocking since async-io registered it. Bytes read here
        // can at worst make the reactor report the socket readable when it no longer is.
        Some(self.stream.read(buf))
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::future::poll_fn;
    use std::task::Waker;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn pair() -> (AsyncIoSocket, UnixStream) {
        let (ours, theirs) = UnixStream::pair().unwrap();
        (AsyncIoSocket::unix(Async::new(ours).unwrap()), theirs)
    }

    fn poll_read(socket: &mut AsyncIoSocket, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let mut read = ReadBuf::new(buf);
        let mut cx = Context::from_waker(Waker::noop());
        Pin::new(&mut *socket)
            .poll_read(&mut cx, &mut read)
            .map_ok(|()| read.filled().len())
    }

    #[test]
    fn a_read_that_empties_the_socket_makes_the_next_wait_for_the_reactor_without_reading() {
        let (mut socket, mut peer) = pair();
        peer.write_all(b"reply").unwrap();
        let mut buf = [0; 64];
        assert!(matches!(
            poll_read(&mut socket, &mut buf),
            Poll::Ready(Ok(5))
        ));
        assert_eq!(socket.reads, 1);
        // async-io's own reader would try the socket again here, and fail.
        assert!(poll_read(&mut socket, &mut buf).is_pending());
        assert!(poll_read(&mut socket, &mut buf).is_pending());
        assert_eq!(socket.reads, 1, "a drained socket was read again");
    }

    #[test]
    fn a_full_read_reads_again_at_once() {
        let (mut socket, mut peer) = pair();
        peer.write_all(&[7; 100]).unwrap();
        let mut buf = [0; 64];
        assert!(matches!(
            poll_read(&mut socket, &mut buf),
            Poll::Ready(Ok(64))
        ));
        assert!(matches!(
            poll_read(&mut socket, &mut buf),
            Poll::Ready(Ok(36))
        ));
        assert_eq!(socket.reads, 2);
    }

    #[test]
    fn bytes_that_arrive_after_a_short_read_are_read_in_order_and_nothing_is_lost() {
        async_io::block_on(async {
            let (mut socket, mut peer) = pair();
            let writer = std::thread::spawn(move || {
                for i in 0..200u32 {
                    peer.write_all(&i.to_be_bytes()).unwrap();
                    if i % 7 == 0 {
                        std::thread::sleep(std::time::Duration::from_micros(50));
                    }
                }
                peer
            });
            let mut got = Vec::new();
            let mut buf = [0; 13];
            while got.len() < 800 {
                let n = socket.read(&mut buf).await.unwrap();
                got.extend_from_slice(&buf[..n]);
            }
            let expected: Vec<u8> = (0..200u32).flat_map(u32::to_be_bytes).collect();
            assert_eq!(got, expected);
            // The end of the stream comes through too.
            drop(writer.join().unwrap());
            assert_eq!(socket.read(&mut buf).await.unwrap(), 0);
        });
    }

    #[test]
    fn bytes_taken_directly_leave_the_reader_waiting_for_the_next() {
        async_io::block_on(async {
            let (mut socket, mut peer) = pair();
            let mut buf = [0; 8];
            assert!(poll_read(&mut socket, &mut buf).is_pending());
            peer.write_all(b"ab").unwrap();
            assert_eq!(socket.try_read_direct(&mut buf).unwrap().unwrap(), 2);
            // The reactor may report the socket readable though it is empty: the read finds
            // nothing and waits again, for the bytes that come next.
            let reader = async {
                let n = socket.read(&mut buf).await.unwrap();
                buf[..n].to_vec()
            };
            let writer = async {
                async_io::Timer::after(std::time::Duration::from_millis(5)).await;
                peer.write_all(b"cd").unwrap();
            };
            let (got, ()) = futures_lite::future::zip(reader, writer).await;
            assert_eq!(got, b"cd");
        });
    }

    #[test]
    fn writes_and_shutdown_reach_the_peer() {
        async_io::block_on(async {
            let (mut socket, mut peer) = pair();
            socket.write_all(b"request").await.unwrap();
            let bufs = [IoSlice::new(b"one "), IoSlice::new(b"two")];
            let n = poll_fn(|cx| Pin::new(&mut socket).poll_write_vectored(cx, &bufs))
                .await
                .unwrap();
            assert_eq!(n, 7);
            socket.shutdown().await.unwrap();
            let mut all = Vec::new();
            peer.read_to_end(&mut all).unwrap();
            assert_eq!(all, b"requestone two");
        });
    }
}
