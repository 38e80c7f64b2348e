//! The engine's shared connection ([`Connector::connect_shared`](crate::Connector::connect_shared)):
//! opened on first use, replaced when broken, dropped when the engine closes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use crate::driver::SharedConnection;
use crate::error::{Error, ErrorKind};
use crate::pool::PoolShared;
use crate::runtime::with_deadline;

/// Where an [`Engine`](crate::Engine) keeps its shared connection.
#[derive(Default)]
pub(crate) struct SharedSlot {
    current: RwLock<Option<Arc<dyn SharedConnection>>>,
    /// One task connects; the others wait for it instead of opening connections of their own.
    connecting: tokio::sync::Mutex<()>,
    /// The driver has no shared connection for these options: never ask again.
    unsupported: AtomicBool,
}

impl SharedSlot {
    fn healthy(&self) -> Option<Arc<dyn SharedConnection>> {
        let current = self.current.read().unwrap_or_else(PoisonError::into_inner);
        current.as_ref().filter(|c| !c.is_broken()).cloned()
    }

    /// The shared connection to run `sql` on, opening it if need be; `None` when `sql` must go
    /// through a pooled connection instead (no shared connection for this driver, an
    /// `after_connect` hook that only a pooled connection runs, a closed engine, or a statement
    /// the connection does not accept).
    pub(crate) async fn get(
        &self,
        pool: &PoolShared,
        sql: &str,
    ) -> Result<Option<Arc<dyn SharedConnection>>, Error> {
        if self.unsupported.load(Ordering::Relaxed)
            || pool.after_connect.is_some()
            || pool.is_closed()
        {
            return Ok(None);
        }
        let conn = match self.healthy() {
            Some(conn) => conn,
            None => {
                // Connecting (or waiting for the task that connects) honours the acquire
                // timeout, as taking a pooled connection does.
                let timeout = pool.options.acquire_timeout;
                let connected =
                    with_deadline(&*pool.runtime, Some(timeout), self.connect(pool)).await;
                match connected {
                    Ok(Some(conn)) => conn,
                    Ok(None) => return Ok(None),
                    Err(e) if e.kind() == ErrorKind::Timeout => {
                        return Err(Error::new(
                            ErrorKind::PoolTimeout,
                            format!(
                                "timed out after {timeout:?} opening the engine's shared connection to {}; \
                                 check that the server answers, or raise acquire_timeout",
                                pool.description
                            ),
                        ))
                    }
                    Err(e) => return Err(e),
                }
            }
        };
        if !conn.accepts(sql) {
            return Ok(None);
        }
        // Checked here, where the statement is known to run on the shared connection: one that
        // falls back to a pooled connection is checked there, so no statement is scanned twice.
        crate::sql::check_statement(sql)?;
        Ok(Some(conn))
    }

    /// Opens the shared connection, or waits for the task that is opening it; `None` when the
    /// driver has none or the engine closed meanwhile.
    async fn connect(&self, pool: &PoolShared) -> Result<Option<Arc<dyn SharedConnection>>, Error> {
        let _connecting = self.connecting.lock().await;
        if let Some(conn) = self.healthy() {
            return Ok(Some(conn));
        }
        match pool.connector.connect_shared(&pool.runtime).await? {
            None => {
                self.unsupported.store(true, Ordering::Relaxed);
                Ok(None)
            }
            Some(_) if pool.is_closed() => Ok(None),
            Some(conn) => {
                *self.current.write().unwrap_or_else(PoisonError::into_inner) =
                    Some(Arc::clone(&conn));
                Ok(Some(conn))
            }
        }
    }

    /// Drops the shared connection (statements running on it finish first).
    pub(crate) fn clear(&self) {
        self.current
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }
}
