//! The smol runtime for anysql.
//!
//! [`SmolRuntime`] implements [`anysql_core::Runtime`] on smol's global executor and async-io's
//! reactor, which run on their own threads: it works from any thread and inside any executor.
//! Its sockets are async-io's, handed to the drivers as an
//! [`AsyncIoSocket`] (which anysql-async-std shares): it speaks
//! the tokio io traits the drivers speak and, as tokio does, does not read a socket again that its
//! last read emptied until the reactor reports more.
//!
//! # Examples
//!
//! ```
//! use anysql_core::{Runtime, RuntimeExt};
//! use anysql_smol::SmolRuntime;
//! use std::time::Duration;
//!
//! smol::block_on(async {
//!     let runtime = SmolRuntime::new();
//!     let slow = runtime.sleep(Duration::from_secs(10));
//!     assert!(runtime.timeout(Duration::from_millis(1), slow).await.is_err());
//! });
//! ```

use std::io;
use std::path::Path;
use std::time::Duration;

use anysql_core::runtime::BoxFuture;
use std::sync::Arc;

use anysql_core::runtime::AsyncIoSocket;
use anysql_core::{BoxSocket, Runtime};

/// anysql's [`Runtime`] on smol.
#[derive(Debug, Clone, Copy, Default)]
pub struct SmolRuntime {
    _private: (),
}

impl SmolRuntime {
    /// The smol runtime (its global executor and reactor).
    pub fn new() -> Self {
        SmolRuntime::default()
    }
}

#[async_trait::async_trait]
impl Runtime for SmolRuntime {
    fn name(&self) -> &'static str {
        "smol"
    }

    fn spawn(&self, task: BoxFuture<'static, ()>) {
        smol::spawn(task).detach();
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            smol::Timer::after(duration).await;
        })
    }

    async fn connect_tcp(&self, host: &str, port: u16) -> io::Result<BoxSocket> {
        let stream = smol::net::TcpStream::connect((host, port)).await?;
        stream.set_nodelay(true)?;
        Ok(Box::new(AsyncIoSocket::tcp(unshared(stream.into())?)))
    }

    #[cfg(unix)]
    async fn connect_unix(&self, path: &Path) -> io::Result<BoxSocket> {
        let stream = smol::net::unix::UnixStream::connect(path).await?;
        Ok(Box::new(AsyncIoSocket::unix(unshared(stream.into())?)))
    }

    fn spawn_blocking(&self, work: Box<dyn FnOnce() + Send + 'static>) {
        smol::unblock(work).detach();
    }
}

/// The stream inside a smol stream just connected, which nothing else shares yet.
fn unshared<T>(stream: Arc<smol::Async<T>>) -> io::Result<smol::Async<T>> {
    Arc::try_unwrap(stream).map_err(|_| io::Error::other("the new stream is shared"))
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
        let runtime = SmolRuntime::new();
        smol::block_on(async {
            let mut socket = runtime.connect_tcp("127.0.0.1", port).await.unwrap();
            let mut buf = [0; 2];
            socket.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"hi");
            let (tx, rx) = smol::channel::bounded(1);
            runtime.spawn(Box::pin(async move { tx.send(()).await.unwrap() }));
            rx.recv().await.unwrap();
        });
        server.join().unwrap();
    }
}
