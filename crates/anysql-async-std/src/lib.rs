//! The async-std runtime for anysql.
//!
//! [`AsyncStdRuntime`] implements [`anysql_core::Runtime`] on async-std's global runtime, which runs
//! on its own threads: it works from any thread. Its sockets are async-io's (async-std runs on
//! async-io's reactor), handed to the drivers as an
//! [`AsyncIoSocket`], which anysql-smol shares.
//!
//! async-std is discontinued upstream; this crate is kept for the applications that still run on it.
//!
//! # Examples
//!
//! ```
//! use anysql_core::{Runtime, RuntimeExt};
//! use anysql_async_std::AsyncStdRuntime;
//! use std::time::Duration;
//!
//! async_std::task::block_on(async {
//!     let runtime = AsyncStdRuntime::new();
//!     let slow = runtime.sleep(Duration::from_secs(10));
//!     assert!(runtime.timeout(Duration::from_millis(1), slow).await.is_err());
//! });
//! ```

use std::io;
use std::path::Path;
use std::time::Duration;

use anysql_core::runtime::AsyncIoSocket;
use anysql_core::runtime::BoxFuture;
use anysql_core::{BoxSocket, Runtime};
use async_io::Async;

/// anysql's [`Runtime`] on async-std.
#[derive(Debug, Clone, Copy, Default)]
pub struct AsyncStdRuntime {
    _private: (),
}

impl AsyncStdRuntime {
    /// The async-std runtime.
    pub fn new() -> Self {
        AsyncStdRuntime::default()
    }

    /// Whether the caller is running inside an async-std task.
    pub fn is_current() -> bool {
        async_std::task::try_current().is_some()
    }
}

#[async_trait::async_trait]
impl Runtime for AsyncStdRuntime {
    fn name(&self) -> &'static str {
        "async-std"
    }

    fn spawn(&self, task: BoxFuture<'static, ()>) {
        drop(async_std::task::spawn(task));
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(async_std::task::sleep(duration))
    }

    async fn connect_tcp(&self, host: &str, port: u16) -> io::Result<BoxSocket> {
        let stream = async_std::net::TcpStream::connect((host, port)).await?;
        stream.set_nodelay(true)?;
        let stream = std::net::TcpStream::try_from(stream)?;
        Ok(Box::new(AsyncIoSocket::tcp(Async::new(stream)?)))
    }

    #[cfg(unix)]
    async fn connect_unix(&self, path: &Path) -> io::Result<BoxSocket> {
        let stream = async_std::os::unix::net::UnixStream::connect(path).await?;
        let stream = std::os::unix::net::UnixStream::try_from(stream)?;
        Ok(Box::new(AsyncIoSocket::unix(Async::new(stream)?)))
    }

    fn spawn_blocking(&self, work: Box<dyn FnOnce() + Send + 'static>) {
        drop(async_std::task::spawn_blocking(work));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use tokio::io::AsyncReadExt;

    #[test]
    fn connects_and_reads() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut socket, _) = listener.accept().unwrap();
            socket.write_all(b"hi").unwrap();
        });
        let runtime = AsyncStdRuntime::new();
        assert!(!AsyncStdRuntime::is_current());
        async_std::task::block_on(async {
            assert!(AsyncStdRuntime::is_current());
            let mut socket = runtime.connect_tcp("127.0.0.1", port).await.unwrap();
            let mut buf = [0; 2];
            socket.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"hi");
        });
        server.join().unwrap();
    }
}
