//! `LISTEN`/`NOTIFY`: [`PgListener`], the driver side of anysql's
//! [`Listener`](anysql_core::Listener), and the bounded [`NotificationQueue`] its connection
//! fills.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use anysql_core::{DriverConnection as _, DriverListener, Error, ErrorKind, Notification};
use async_trait::async_trait;

use crate::connection::PgConnection;
use crate::options::{DriveMode, PgConnectOptions};

/// The notifications of one listening connection, waiting to be read: at most `capacity` of them,
/// then a marker counting those dropped.
pub(crate) struct NotificationQueue {
    capacity: usize,
    state: Mutex<QueueState>,
}

#[derive(Default)]
struct QueueState {
    entries: VecDeque<Entry>,
    /// How many entries are notifications.
    notifications: usize,
    closed: bool,
    waker: Option<Waker>,
}

enum Entry {
    Notification(Notification),
    /// This many notifications were dropped here, the buffer being full.
    Dropped(u64),
}

impl NotificationQueue {
    pub(crate) fn new(capacity: usize) -> Self {
        NotificationQueue {
            capacity: capacity.max(1),
            state: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, QueueState> {
        // Nothing panics while it is held.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a notification, or counts it as dropped if the buffer is full.
    pub(crate) fn push(&self, notification: Notification) {
        let mut state = self.lock();
        if state.notifications < self.capacity {
            state.entries.push_back(Entry::Notification(notification));
            state.notifications += 1;
        } else if let Some(Entry::Dropped(n)) = state.entries.back_mut() {
            *n += 1;
        } else {
            state.entries.push_back(Entry::Dropped(1));
        }
        if let Some(waker) = state.waker.take() {
            drop(state);
            waker.wake();
        }
    }

    /// No more notifications will come.
    pub(crate) fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        if let Some(waker) = state.waker.take() {
            drop(state);
            waker.wake();
        }
    }

    fn poll(&self, cx: &mut Context<'_>) -> Poll<Option<Result<Notification, Error>>> {
        let mut state = self.lock();
        match state.entries.pop_front() {
            Some(Entry::Notification(n)) => {
                state.notifications -= 1;
                Poll::Ready(Some(Ok(n)))
            }
            Some(Entry::Dropped(n)) => Poll::Ready(Some(Err(Error::new(
                ErrorKind::NotificationsMissed,
                format!(
                    "{n} notification{} dropped because the listener's buffer ({} \
                     notifications) was full: the application reads them more slowly than they \
                     come",
                    if n == 1 { " was" } else { "s were" },
                    self.capacity
                ),
            )))),
            None if state.closed => Poll::Ready(None),
            None => {
                if !state
                    .waker
                    .as_ref()
                    .is_some_and(|w| w.will_wake(cx.waker()))
                {
                    state.waker = Some(cx.waker().clone());
                }
                Poll::Pending
            }
        }
    }
}

/// Quotes an identifier for PostgreSQL: in double quotes, inner ones doubled.
pub(crate) fn quote_ident(name: &str) -> String {
    let mut quoted = String::with_capacity(name.len() + 2);
    quoted.push('"');
    for c in name.chars() {
        if c == '"' {
            quoted.push('"');
        }
        quoted.push(c);
    }
    quoted.push('"');
    quoted
}

/// A connection that listens, for [`Listener`](anysql_core::Listener): its I/O is spawned on the
/// runtime, so notifications are read as they come, into its queue.
pub(crate) struct PgListener {
    conn: PgConnection,
    queue: Arc<NotificationQueue>,
}

impl PgListener {
    /// Opens a listening connection with `options` (in spawned mode, whatever they say).
    pub(crate) async fn connect(
        options: &PgConnectOptions,
        runtime: &anysql_core::SharedRuntime,
        capacity: usize,
    ) -> Result<PgListener, Error> {
        let mut options = options.clone();
        options.drive = DriveMode::Spawned;
        options.busy_poll = Duration::ZERO;
        let mut conn = PgConnection::connect(&options, runtime).await?;
        let queue = Arc::new(NotificationQueue::new(capacity));
        conn.attach_notifications(Arc::clone(&queue));
        Ok(PgListener { conn, queue })
    }

    async fn run(&mut self, sql: &str) -> Result<(), Error> {
        self.conn.execute(sql, Vec::new()).await.map(drop)
    }
}

#[async_trait]
impl DriverListener for PgListener {
    async fn listen(&mut self, channel: &str) -> Result<(), Error> {
        self.run(&format!("LISTEN {}", quote_ident(channel))).await
    }

    async fn unlisten(&mut self, channel: &str) -> Result<(), Error> {
        self.run(&format!("UNLISTEN {}", quote_ident(channel)))
            .await
    }

    async fn unlisten_all(&mut self) -> Result<(), Error> {
        self.run("UNLISTEN *").await
    }

    /// One simple query, so one implicit transaction: the new set takes effect at once, with no
    /// moment in which a channel of both the old and the new set is not listened to.
    async fn listen_exactly(&mut self, channels: &[String]) -> Result<(), Error> {
        let mut sql = String::from("UNLISTEN *");
        for channel in channels {
            sql.push_str("; LISTEN ");
            sql.push_str(&quote_ident(channel));
        }
        self.run(&sql).await
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Notification, Error>>> {
        self.queue.poll(cx)
    }
}

impl fmt::Debug for PgListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgListener")
            .field("conn", &self.conn)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    fn next(queue: &NotificationQueue) -> Poll<Option<Result<Notification, Error>>> {
        queue.poll(&mut Context::from_waker(Waker::noop()))
    }

    #[test]
    fn a_full_queue_counts_what_it_drops_in_place() {
        let queue = NotificationQueue::new(2);
        for i in 0..5 {
            queue.push(Notification::new("c", i.to_string(), 1));
        }
        let payload = |p: Poll<Option<Result<Notification, Error>>>| match p {
            Poll::Ready(Some(Ok(n))) => n.payload().to_owned(),
            other => panic!("expected a notification, got {other:?}"),
        };
        assert_eq!(payload(next(&queue)), "0");
        // Room again: this one comes after the gap.
        queue.push(Notification::new("c", "5", 1));
        assert_eq!(payload(next(&queue)), "1");
        match next(&queue) {
            Poll::Ready(Some(Err(e))) => {
                assert!(e.is_notifications_missed());
                assert!(
                    e.message().starts_with("3 notifications were dropped"),
                    "{e}"
                );
            }
            other => panic!("expected the gap, got {other:?}"),
        }
        assert_eq!(payload(next(&queue)), "5");
        assert!(next(&queue).is_pending());
        queue.close();
        assert!(matches!(next(&queue), Poll::Ready(None)));
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("jobs"), "\"jobs\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
