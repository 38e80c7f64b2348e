//! [`Listener`]: notifications from the database (PostgreSQL's `LISTEN`/`NOTIFY`) as a stream,
//! on a connection of its own that comes back by itself.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use futures_core::Stream;

use crate::driver::Connector;
use crate::error::{Error, ErrorKind};
use crate::runtime::{BoxFuture, SharedRuntime};

/// How many notifications a [`Listener`] buffers by default before it drops new ones (see
/// [`Listener`], Slow consumers).
pub const DEFAULT_LISTENER_CAPACITY: usize = 1024;

/// The first wait before a [`Listener`] tries to reconnect again after a failed attempt.
const BACKOFF_START: Duration = Duration::from_millis(100);

/// The longest wait between reconnect attempts.
const BACKOFF_CAP: Duration = Duration::from_secs(10);

/// One notification: what `NOTIFY channel, 'payload'` (or `pg_notify`) sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    channel: String,
    payload: String,
    process_id: i32,
}

impl Notification {
    /// A notification on `channel` with `payload`, sent by the server process `process_id`. For
    /// drivers.
    pub fn new(channel: impl Into<String>, payload: impl Into<String>, process_id: i32) -> Self {
        Notification {
            channel: channel.into(),
            payload: payload.into(),
            process_id,
        }
    }

    /// The channel it was sent on.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// Its payload (empty if none was given).
    pub fn payload(&self) -> &str {
        &self.payload
    }

    /// The process ID of the server session that sent it.
    pub fn process_id(&self) -> i32 {
        self.process_id
    }
}

/// A driver's listening connection, for [`Listener`]. Built by
/// [`Connector::connect_listener`].
#[async_trait]
pub trait DriverListener: Send + fmt::Debug + 'static {
    /// Starts listening on `channel`.
    async fn listen(&mut self, channel: &str) -> Result<(), Error>;

    /// Stops listening on `channel`.
    async fn unlisten(&mut self, channel: &str) -> Result<(), Error>;

    /// Stops listening on every channel.
    async fn unlisten_all(&mut self) -> Result<(), Error>;

    /// Listens on exactly `channels` and no other, in one step on the server: after a reconnect,
    /// or when a change of channels was interrupted.
    async fn listen_exactly(&mut self, channels: &[String]) -> Result<(), Error>;

    /// The next notification: `Ready(None)` once the connection has ended, `Ready(Some(Err))` for
    /// an error after which the connection goes on (such as
    /// [`ErrorKind::NotificationsMissed`] when the buffer overflowed).
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Notification, Error>>>;
}

/// The error of the listener methods on a driver without notifications.
pub(crate) fn unsupported() -> Error {
    Error::unsupported(
        "notifications (LISTEN/NOTIFY) are not supported by this database driver (PostgreSQL only)",
    )
}

/// Receives notifications (PostgreSQL's `LISTEN`/`NOTIFY`) as a [`Stream`] of
/// `Result<Notification, Error>`.
///
/// From [`Engine::listener`](crate::Engine::listener). It runs on a connection of its own, which
/// does not count in the pool's size, and listens to the channels given to
/// [`listen`](Self::listen) until [`unlisten`](Self::unlisten) or
/// [`unlisten_all`](Self::unlisten_all); these may be called at any time, also while the stream is
/// being read elsewhere in the same task. Notifications of one sender arrive in the order they were
/// committed.
///
/// # The stream never ends
///
/// When its connection dies (a server restart, `pg_terminate_backend`, the network), the listener
/// yields an [`ErrorKind::NotificationsMissed`] error (notifications sent while it is away are
/// lost), then reconnects by itself with a capped exponential backoff (100 ms doubling up to
/// 10 s, while the stream is polled, or at once on the next `listen`/`unlisten`), listens again
/// to every channel, and goes on. Each failed reconnect attempt yields its
/// connection error; the stream goes on after it. An `Err` item is therefore information, never
/// the end: keep reading (check [`Error::is_notifications_missed`] to resynchronise the state the
/// notifications were about).
///
/// # Slow consumers
///
/// Notifications are read from the socket as they come, whether or not the stream is being
/// polled, into a buffer of a bounded size ([`DEFAULT_LISTENER_CAPACITY`], or the one given to
/// [`Engine::listener_with_capacity`](crate::Engine::listener_with_capacity)). When it is full,
/// newer notifications are dropped, never the buffered ones, and once the application catches up
/// the stream yields an [`ErrorKind::NotificationsMissed`] error saying how many were dropped,
/// before the notifications that came after. Memory stays bounded, and the connection never
/// stalls (the server's own notification queue is not left to fill up).
///
/// # Cancellation
///
/// The futures of `listen`, `unlisten` and `unlisten_all` may be dropped at any await point: the
/// listener then does not know what the server listens to, and the next of these calls makes the
/// server listen to exactly the listener's channels before it does its own work.
///
/// ```no_run
/// # async fn demo(engine: anysql_core::Engine) -> Result<(), anysql_core::Error> {
/// use futures_lite::StreamExt;
///
/// let mut listener = engine.listener().await?;
/// listener.listen("jobs").await?;
/// engine.notify("jobs", "42").await?;
/// while let Some(item) = listener.next().await {
///     match item {
///         Ok(n) => println!("{} from {}: {}", n.channel(), n.process_id(), n.payload()),
///         // Reconnected, or fell behind: look at the jobs table instead of trusting the stream.
///         Err(e) if e.is_notifications_missed() => println!("resync: {e}"),
///         Err(e) => println!("listener: {e}"), // a failed reconnect; it tries again
///     }
/// #   break;
/// }
/// # Ok(())
/// # }
/// ```
pub struct Listener {
    connector: Arc<dyn Connector>,
    runtime: SharedRuntime,
    capacity: usize,
    /// The channels, unique, in the order they were added.
    channels: Vec<String>,
    /// A change of channels was interrupted, so what the server listens to is unknown.
    unsynced: bool,
    state: State,
    /// Failed reconnect attempts since the last success.
    attempts: u32,
    /// An item to yield before anything else.
    announce: Option<Error>,
}

/// A change of channels, for [`Listener::run`].
enum Op<'a> {
    Listen(&'a str),
    Unlisten(&'a str),
    UnlistenAll,
}

enum State {
    Connected(Box<dyn DriverListener>),
    /// Waiting before the next reconnect attempt.
    Waiting(BoxFuture<'static, ()>),
    Connecting(BoxFuture<'static, Result<Box<dyn DriverListener>, Error>>),
}

impl Listener {
    /// Opens the listener's connection.
    pub(crate) async fn open(
        connector: Arc<dyn Connector>,
        runtime: SharedRuntime,
        capacity: usize,
    ) -> Result<Listener, Error> {
        if capacity == 0 {
            return Err(Error::configuration(
                "a listener's buffer capacity must be at least 1",
            ));
        }
        let inner = connector.connect_listener(&runtime, capacity).await?;
        Ok(Listener {
            connector,
            runtime,
            capacity,
            channels: Vec::new(),
            unsynced: false,
            state: State::Connected(inner),
            attempts: 0,
            announce: None,
        })
    }

    /// Starts listening on `channel` (a no-op if it already does). The name is taken as it is
    /// (case-sensitive, quoted for the server); it must not be empty or contain a NUL.
    ///
    /// If the connection is down and cannot be reopened at once, this returns that connection
    /// error, and the channel is kept: the listener listens on it once it has reconnected.
    pub async fn listen(&mut self, channel: &str) -> Result<(), Error> {
        check_channel(channel)?;
        if self.channels.iter().any(|c| c == channel) && !self.unsynced {
            return Ok(());
        }
        self.connected().await?;
        let added = !self.channels.iter().any(|c| c == channel);
        if added {
            self.channels.push(channel.to_owned());
        }
        let result = self.run(Op::Listen(channel)).await;
        if result.as_ref().is_err_and(|e| !e.is_connection()) && added {
            // The server refused it: not listening.
            self.channels.retain(|c| c != channel);
        }
        result
    }

    /// Stops listening on `channel` (a no-op if it did not).
    pub async fn unlisten(&mut self, channel: &str) -> Result<(), Error> {
        check_channel(channel)?;
        if !self.channels.iter().any(|c| c == channel) && !self.unsynced {
            return Ok(());
        }
        self.connected().await?;
        self.channels.retain(|c| c != channel);
        self.run(Op::Unlisten(channel)).await
    }

    /// Stops listening on every channel.
    pub async fn unlisten_all(&mut self) -> Result<(), Error> {
        self.connected().await?;
        self.channels.clear();
        self.run(Op::UnlistenAll).await
    }

    /// The channels it listens on, in the order they were added.
    pub fn channels(&self) -> &[String] {
        &self.channels
    }

    /// Runs a change of channels on the connection (already made in `self.channels`), marked
    /// unsynced while it runs; on a lost connection, reconnects once, which listens to the new
    /// set.
    async fn run(&mut self, op: Op<'_>) -> Result<(), Error> {
        let State::Connected(inner) = &mut self.state else {
            return self.connected().await;
        };
        self.unsynced = true;
        let result = match op {
            Op::Listen(channel) => inner.listen(channel).await,
            Op::Unlisten(channel) => inner.unlisten(channel).await,
            Op::UnlistenAll => inner.unlisten_all().await,
        };
        match result {
            Ok(()) => {
                self.unsynced = false;
                Ok(())
            }
            Err(e) if e.is_connection() => {
                self.lost();
                // The reconnect listens to the channels as they are now, this change included.
                self.connected().await
            }
            Err(e) => {
                // The statement failed on the server, which changed nothing.
                self.unsynced = false;
                Err(e)
            }
        }
    }

    /// Records that the connection was lost: the stream says so next, and the next use
    /// reconnects.
    fn lost(&mut self) {
        if self.announce.is_none() {
            self.announce = Some(Error::new(
                ErrorKind::NotificationsMissed,
                "the listener's connection was lost, so notifications sent meanwhile may have \
                 been missed; it reconnects and listens again to every channel by itself",
            ));
        }
        self.state = State::Connecting(self.connect());
    }

    /// Makes sure the connection is up and listens to exactly the listener's channels: reconnects
    /// now if it is down (one attempt, without waiting out the backoff).
    async fn connected(&mut self) -> Result<(), Error> {
        loop {
            match &mut self.state {
                State::Connected(inner) => {
                    if !self.unsynced {
                        return Ok(());
                    }
                    match inner.listen_exactly(&self.channels).await {
                        Ok(()) => {
                            self.unsynced = false;
                            return Ok(());
                        }
                        Err(e) if e.is_connection() => self.lost(),
                        Err(e) => return Err(e),
                    }
                }
                State::Waiting(_) => self.state = State::Connecting(self.connect()),
                State::Connecting(connecting) => match connecting.await {
                    Ok(inner) => self.connected_again(inner),
                    Err(e) => {
                        self.failed_attempt();
                        return Err(e);
                    }
                },
            }
        }
    }

    fn connected_again(&mut self, inner: Box<dyn DriverListener>) {
        self.state = State::Connected(inner);
        self.attempts = 0;
        // The new connection listens to the channels as they were when it started; a change made
        // since is only possible through `connected`, which connects first.
        self.unsynced = false;
    }

    fn failed_attempt(&mut self) {
        self.attempts = self.attempts.saturating_add(1);
        let wait = backoff(self.attempts);
        self.state = State::Waiting(self.runtime.sleep(wait));
    }

    /// A new connection that listens to the current channels.
    fn connect(&self) -> BoxFuture<'static, Result<Box<dyn DriverListener>, Error>> {
        let connector = Arc::clone(&self.connector);
        let runtime = Arc::clone(&self.runtime);
        let capacity = self.capacity;
        let channels = self.channels.clone();
        Box::pin(async move {
            let mut inner = connector.connect_listener(&runtime, capacity).await?;
            if !channels.is_empty() {
                inner.listen_exactly(&channels).await?;
            }
            Ok(inner)
        })
    }
}

/// The wait after the `attempts`-th failed reconnect attempt in a row: doubling from
/// [`BACKOFF_START`] up to [`BACKOFF_CAP`], with up to a quarter of jitter so that many listeners
/// do not reconnect in step.
fn backoff(attempts: u32) -> Duration {
    let exponent = attempts.saturating_sub(1).min(16);
    let base = BACKOFF_START.saturating_mul(1 << exponent).min(BACKOFF_CAP);
    let jitter = base.mul_f64(fastrand::f64() * 0.25);
    base - jitter
}

fn check_channel(channel: &str) -> Result<(), Error> {
    if channel.is_empty() || channel.contains('\0') {
        return Err(Error::parameter(
            "a channel name must not be empty or contain a NUL character",
        ));
    }
    Ok(())
}

impl Stream for Listener {
    type Item = Result<Notification, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(e) = this.announce.take() {
                return Poll::Ready(Some(Err(e)));
            }
            match &mut this.state {
                State::Connected(inner) => match inner.poll_next(cx) {
                    Poll::Ready(Some(item)) => return Poll::Ready(Some(item)),
                    Poll::Ready(None) => this.lost(),
                    Poll::Pending => return Poll::Pending,
                },
                State::Waiting(wait) => {
                    std::task::ready!(wait.as_mut().poll(cx));
                    this.state = State::Connecting(this.connect());
                }
                State::Connecting(connecting) => {
                    match std::task::ready!(connecting.as_mut().poll(cx)) {
                        Ok(inner) => this.connected_again(inner),
                        Err(e) => {
                            this.failed_attempt();
                            return Poll::Ready(Some(Err(e.context(format!(
                                "the listener could not reconnect (attempt {}); it tries again",
                                this.attempts
                            )))));
                        }
                    }
                }
            }
        }
    }
}

impl fmt::Debug for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Connected(_) => "connected",
            State::Waiting(_) => "waiting to reconnect",
            State::Connecting(_) => "reconnecting",
        };
        f.debug_struct("Listener")
            .field("channels", &self.channels)
            .field("state", &state)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        for attempts in 1..40 {
            let wait = backoff(attempts);
            let exponent = (attempts - 1).min(16);
            let base = BACKOFF_START.saturating_mul(1 << exponent).min(BACKOFF_CAP);
            assert!(
                wait <= base && wait >= base.mul_f64(0.75),
                "{attempts}: {wait:?}"
            );
        }
        assert!(backoff(100) <= BACKOFF_CAP);
    }

    #[test]
    fn the_user_types_can_move_between_tasks() {
        fn send<T: Send>() {}
        send::<Listener>();
        send::<Notification>();
        send::<crate::CopyIn<'static>>();
        send::<crate::CopyInRows<'static>>();
        send::<crate::CopyOut<'static>>();
    }

    #[test]
    fn channel_names_are_checked() {
        assert_eq!(check_channel("").unwrap_err().kind(), ErrorKind::Parameter);
        assert_eq!(
            check_channel("a\0b").unwrap_err().kind(),
            ErrorKind::Parameter
        );
        assert!(check_channel("Jobs \"x\"").is_ok());
    }
}
