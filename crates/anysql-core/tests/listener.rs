//! [`Listener`]'s own logic against an in-memory driver on smol: reconnects that listen again to
//! every channel, failed attempts that the stream reports and survives, interrupted channel
//! changes that are made good, and the unsupported error of drivers without notifications.

use std::any::Any;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use anysql_core::{
    AsyncDriver, ConnectOptions, Connector, DriverConnection, DriverListener, Engine,
    EngineBuilder, Error, ErrorKind, Listener, Notification, RowSink, RowStream, SharedRuntime,
    Value,
};
use async_trait::async_trait;
use futures_lite::StreamExt;

mod support;
use support::Smol;

/// The mock server: what the current listening session listens to, and what it has to deliver.
#[derive(Debug, Default)]
struct Server {
    /// The sessions opened so far.
    sessions: usize,
    /// Connect attempts still to fail.
    refuse: usize,
    /// The current session's channels, and whether it is alive.
    listening: Vec<String>,
    alive: bool,
    /// Notifications waiting for the current session.
    queue: VecDeque<Notification>,
    /// Every statement-like call, in order, for the assertions.
    log: Vec<String>,
    /// The next `listen` call never finishes.
    hang_next_listen: bool,
    waker: Option<Waker>,
}

type Shared = Arc<Mutex<Server>>;

#[derive(Debug, Clone)]
struct Driver {
    server: Shared,
    notifications: bool,
}

impl AsyncDriver for Driver {
    fn name(&self) -> &'static str {
        "mock"
    }
    fn schemes(&self) -> &'static [&'static str] {
        &["mock"]
    }
    fn connector(&self, _: &ConnectOptions) -> Result<Arc<dyn Connector>, Error> {
        Ok(Arc::new(self.clone()))
    }
}

#[async_trait]
impl Connector for Driver {
    async fn connect(&self, _: &SharedRuntime) -> Result<Box<dyn DriverConnection>, Error> {
        Ok(Box::new(Pooled))
    }

    async fn connect_listener(
        &self,
        runtime: &SharedRuntime,
        capacity: usize,
    ) -> Result<Box<dyn DriverListener>, Error> {
        if !self.notifications {
            // The core's default.
            let plain = Plain;
            return plain.connect_listener(runtime, capacity).await;
        }
        let mut server = self.server.lock().unwrap();
        if server.refuse > 0 {
            server.refuse -= 1;
            return Err(Error::connection("refused"));
        }
        server.sessions += 1;
        server.alive = true;
        server.listening.clear();
        let session = server.sessions;
        Ok(Box::new(MockListener {
            server: Arc::clone(&self.server),
            session,
        }))
    }

    fn notify_statement(&self) -> Option<&'static str> {
        self.notifications.then_some("NOTIFY")
    }
}

/// A connector with the default (unsupported) listener methods.
#[derive(Debug)]
struct Plain;

#[async_trait]
impl Connector for Plain {
    async fn connect(&self, _: &SharedRuntime) -> Result<Box<dyn DriverConnection>, Error> {
        Ok(Box::new(Pooled))
    }
}

#[derive(Debug)]
struct MockListener {
    server: Shared,
    session: usize,
}

impl MockListener {
    /// The server, if this session is still the live one.
    fn live(&self) -> Result<std::sync::MutexGuard<'_, Server>, Error> {
        let server = self.server.lock().unwrap();
        if server.alive && server.sessions == self.session {
            Ok(server)
        } else {
            Err(Error::connection("the session is gone"))
        }
    }
}

#[async_trait]
impl DriverListener for MockListener {
    async fn listen(&mut self, channel: &str) -> Result<(), Error> {
        let hang = {
            let mut server = self.live()?;
            server.log.push(format!("LISTEN {channel}"));
            std::mem::take(&mut server.hang_next_listen)
        };
        if hang {
            futures_lite::future::pending::<()>().await;
        }
        let mut server = self.live()?;
        if !server.listening.iter().any(|c| c == channel) {
            server.listening.push(channel.to_owned());
        }
        Ok(())
    }

    async fn unlisten(&mut self, channel: &str) -> Result<(), Error> {
        let mut server = self.live()?;
        server.log.push(format!("UNLISTEN {channel}"));
        server.listening.retain(|c| c != channel);
        Ok(())
    }

    async fn unlisten_all(&mut self) -> Result<(), Error> {
        let mut server = self.live()?;
        server.log.push("UNLISTEN *".to_owned());
        server.listening.clear();
        Ok(())
    }

    async fn listen_exactly(&mut self, channels: &[String]) -> Result<(), Error> {
        let mut server = self.live()?;
        server.log.push(format!("EXACTLY {}", channels.join(",")));
        server.listening = channels.to_vec();
        Ok(())
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Notification, Error>>> {
        let mut server = self.server.lock().unwrap();
        if !(server.alive && server.sessions == self.session) {
            return Poll::Ready(None);
        }
        match server.queue.pop_front() {
            Some(n) => Poll::Ready(Some(Ok(n))),
            None => {
                server.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

/// Sends a notification to the live session, if it listens on the channel.
fn notify(server: &Shared, channel: &str, payload: &str) {
    let mut server = server.lock().unwrap();
    if server.alive && server.listening.iter().any(|c| c == channel) {
        server
            .queue
            .push_back(Notification::new(channel, payload, 7));
        if let Some(waker) = server.waker.take() {
            waker.wake();
        }
    }
}

/// Ends the live session, as `pg_terminate_backend` would.
fn kill(server: &Shared) {
    let mut server = server.lock().unwrap();
    server.alive = false;
    server.listening.clear();
    server.queue.clear();
    if let Some(waker) = server.waker.take() {
        waker.wake();
    }
}

#[derive(Debug)]
struct Pooled;

#[async_trait]
impl DriverConnection for Pooled {
    async fn execute(&mut self, _: &str, _: Vec<Value>) -> Result<u64, Error> {
        Ok(0)
    }
    async fn fetch_each(
        &mut self,
        _: &str,
        _: Vec<Value>,
        _: &mut RowSink<'_>,
    ) -> Result<(), Error> {
        Ok(())
    }
    fn fetch<'a>(&'a mut self, _: &'a str, _: Vec<Value>) -> RowStream<'a> {
        Box::pin(futures_lite::stream::empty())
    }
    async fn ping(&mut self) -> Result<(), Error> {
        Ok(())
    }
    async fn reset(&mut self) -> Result<(), Error> {
        Ok(())
    }
    fn is_broken(&self) -> bool {
        false
    }
    fn in_transaction(&self) -> bool {
        false
    }
    async fn close(self: Box<Self>) -> Result<(), Error> {
        Ok(())
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

fn engine(server: &Shared, notifications: bool) -> Engine {
    EngineBuilder::new("mock://db")
        .driver(Driver {
            server: Arc::clone(server),
            notifications,
        })
        .runtime(Smol)
        .build()
        .unwrap()
}

async fn next(listener: &mut Listener) -> Result<Notification, Error> {
    futures_lite::future::or(
        async { listener.next().await.expect("the stream never ends") },
        async {
            smol::Timer::after(Duration::from_secs(10)).await;
            panic!("nothing from the listener within 10 s")
        },
    )
    .await
}

#[test]
fn a_lost_session_is_reported_then_every_channel_is_listened_to_again() {
    let server = Shared::default();
    smol::block_on(async {
        let engine = engine(&server, true);
        let mut listener = engine.listener().await.unwrap();
        listener.listen("a").await.unwrap();
        listener.listen("b").await.unwrap();
        notify(&server, "a", "1");
        assert_eq!(next(&mut listener).await.unwrap().payload(), "1");

        kill(&server);
        // Two reconnect attempts fail: each is an error item, and the stream goes on.
        server.lock().unwrap().refuse = 2;
        let missed = next(&mut listener).await.unwrap_err();
        assert_eq!(missed.kind(), ErrorKind::NotificationsMissed, "{missed}");
        for attempt in 1..=2 {
            let e = next(&mut listener).await.unwrap_err();
            assert!(e.is_connection(), "{e}");
            assert!(e.to_string().contains(&format!("attempt {attempt}")), "{e}");
        }
        // The third attempt gets through and listens to both channels in one step.
        let waiting = {
            let server = Arc::clone(&server);
            smol::spawn(async move {
                loop {
                    if server.lock().unwrap().listening.len() == 2 {
                        notify(&server, "b", "2");
                        return;
                    }
                    smol::Timer::after(Duration::from_millis(5)).await;
                }
            })
        };
        let n = next(&mut listener).await.unwrap();
        assert_eq!((n.channel(), n.payload(), n.process_id()), ("b", "2", 7));
        waiting.await;
        let server = server.lock().unwrap();
        assert_eq!(server.sessions, 2);
        assert_eq!(server.log.last().unwrap(), "EXACTLY a,b");
    });
}

#[test]
fn a_change_on_a_lost_session_reconnects_at_once() {
    let server = Shared::default();
    smol::block_on(async {
        let engine = engine(&server, true);
        let mut listener = engine.listener().await.unwrap();
        listener.listen("a").await.unwrap();
        kill(&server);
        // The LISTEN fails on the dead session; the listener reconnects with both channels.
        listener.listen("b").await.unwrap();
        assert_eq!(server.lock().unwrap().listening, ["a", "b"]);
        // The stream still says that notifications may have been missed.
        let e = next(&mut listener).await.unwrap_err();
        assert!(e.is_notifications_missed(), "{e}");
        notify(&server, "a", "after");
        assert_eq!(next(&mut listener).await.unwrap().payload(), "after");

        // Down, and it cannot come back now: the caller gets the error, the channel is kept.
        kill(&server);
        server.lock().unwrap().refuse = 1;
        let e = listener.listen("c").await.unwrap_err();
        assert!(e.is_connection(), "{e}");
        assert_eq!(listener.channels(), ["a", "b", "c"]);
        listener.unlisten("a").await.unwrap();
        assert_eq!(server.lock().unwrap().listening, ["b", "c"]);
    });
}

#[test]
fn an_interrupted_change_is_made_good_by_the_next_one() {
    let server = Shared::default();
    smol::block_on(async {
        let engine = engine(&server, true);
        let mut listener = engine.listener().await.unwrap();
        listener.listen("a").await.unwrap();
        server.lock().unwrap().hang_next_listen = true;
        // Dropped while the server has not answered.
        assert!(futures_lite::future::poll_once(listener.listen("b"))
            .await
            .is_none());
        assert_eq!(server.lock().unwrap().listening, ["a"]);
        // The next change first makes the server listen to exactly the listener's channels.
        listener.listen("c").await.unwrap();
        let server = server.lock().unwrap();
        assert_eq!(server.listening, ["a", "b", "c"]);
        let log: Vec<&str> = server.log.iter().map(String::as_str).collect();
        assert_eq!(log, ["LISTEN a", "LISTEN b", "EXACTLY a,b", "LISTEN c"]);
    });
}

#[test]
fn drivers_without_notifications_say_so() {
    let server = Shared::default();
    smol::block_on(async {
        let engine = engine(&server, false);
        let e = engine.listener().await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
        let e = engine.notify("c", "p").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
        let mut conn = engine.acquire().await.unwrap();
        let e = conn.copy_in("COPY t FROM STDIN").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
        assert!(engine.listener_with_capacity(0).await.is_err());
    });
}
