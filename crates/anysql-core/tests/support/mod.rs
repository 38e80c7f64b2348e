//! What the core's integration tests share: a runtime on smol's global executor that opens no
//! sockets.

use std::time::Duration;

use anysql_core::runtime::BoxFuture;
use anysql_core::{BoxSocket, Runtime};
use async_trait::async_trait;

/// anysql's [`Runtime`] on smol, for drivers that need no sockets.
#[derive(Debug, Clone, Copy)]
pub struct Smol;

#[async_trait]
impl Runtime for Smol {
    fn name(&self) -> &'static str {
        "smol (test)"
    }
    fn spawn(&self, task: BoxFuture<'static, ()>) {
        smol::spawn(task).detach();
    }
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            smol::Timer::after(duration).await;
        })
    }
    async fn connect_tcp(&self, _: &str, _: u16) -> std::io::Result<BoxSocket> {
        Err(std::io::Error::other("no sockets in this test"))
    }
}
