//! Where the messages the server sends unasked go: notices ([`log_notice`]) and notifications
//! (a [`Route`] to a listener's queue).
//!
//! tokio-postgres hands them over from `Connection::poll_message`; [`poll_connection`] drives the
//! connection that way, in both drive modes, so that nothing is dropped silently.

use std::sync::{Arc, Mutex, PoisonError};
use std::task::{ready, Context, Poll};

use tokio_postgres::error::{DbError, Severity};
use tokio_postgres::AsyncMessage;

use crate::io::RawConnection;
use crate::listen::NotificationQueue;

/// The `log` target of server notices.
pub const NOTICE_TARGET: &str = "anysql_postgres::notice";

/// Where one connection's notifications go: nowhere, unless a listener is attached.
#[derive(Default)]
pub(crate) struct Route {
    notifications: Mutex<Option<Arc<NotificationQueue>>>,
}

impl Route {
    /// Sends this connection's notifications to `queue` from now on.
    pub(crate) fn attach(&self, queue: Arc<NotificationQueue>) {
        *self.lock() = Some(queue);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Arc<NotificationQueue>>> {
        // Nothing panics while it is held.
        self.notifications
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn deliver(&self, message: AsyncMessage) {
        match message {
            AsyncMessage::Notice(notice) => log_notice(&notice),
            AsyncMessage::Notification(n) => {
                if let Some(queue) = self.lock().as_ref() {
                    queue.push(anysql_core::Notification::new(
                        n.channel(),
                        n.payload(),
                        n.process_id(),
                    ));
                }
            }
            // `AsyncMessage` is non-exhaustive.
            _ => {}
        }
    }

    /// The connection has ended: the listener's stream learns it once the notifications
    /// already buffered are read.
    pub(crate) fn ended(&self) {
        if let Some(queue) = self.lock().take() {
            queue.close();
        }
    }
}

/// Polls tokio-postgres' connection until it ends, routing the messages the server sends
/// unasked: what `Connection`'s own `Future` impl does, minus dropping notifications (and
/// logging notices at `info` whatever their severity).
pub(crate) fn poll_connection(
    conn: &mut RawConnection,
    cx: &mut Context<'_>,
    route: &Route,
) -> Poll<Result<(), tokio_postgres::Error>> {
    loop {
        match ready!(conn.poll_message(cx)) {
            Some(Ok(message)) => route.deliver(message),
            Some(Err(e)) => return Poll::Ready(Err(e)),
            None => return Poll::Ready(Ok(())),
        }
    }
}

/// The `log` level of a notice of this severity: `WARNING` is `warn`, `NOTICE`, `INFO` and `LOG`
/// are `info`, `DEBUG` is `debug`.
pub(crate) fn level(severity: Option<Severity>) -> log::Level {
    match severity {
        Some(Severity::Warning) => log::Level::Warn,
        Some(Severity::Debug) => log::Level::Debug,
        Some(Severity::Notice | Severity::Info | Severity::Log) => log::Level::Info,
        // Errors never come as notices; an unknown severity is shown rather than lost.
        _ => log::Level::Warn,
    }
}

/// The text of a notice's log record: severity, SQLSTATE, message, then detail and hint.
pub(crate) fn describe(notice: &DbError) -> String {
    let mut text = format!(
        "{} {}: {}",
        notice.severity(),
        notice.code().code(),
        notice.message()
    );
    if let Some(detail) = notice.detail() {
        text.push_str("; detail: ");
        text.push_str(detail);
    }
    if let Some(hint) = notice.hint() {
        text.push_str("; hint: ");
        text.push_str(hint);
    }
    text
}

/// Logs a notice through the `log` crate, target [`NOTICE_TARGET`], at its [`level`].
fn log_notice(notice: &DbError) {
    let level = level(notice.parsed_severity());
    if log::log_enabled!(target: NOTICE_TARGET, level) {
        log::log!(target: NOTICE_TARGET, level, "{}", describe(notice));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_follow_the_severity() {
        assert_eq!(level(Some(Severity::Warning)), log::Level::Warn);
        assert_eq!(level(Some(Severity::Notice)), log::Level::Info);
        assert_eq!(level(Some(Severity::Info)), log::Level::Info);
        assert_eq!(level(Some(Severity::Log)), log::Level::Info);
        assert_eq!(level(Some(Severity::Debug)), log::Level::Debug);
        assert_eq!(level(None), log::Level::Warn);
    }
}
