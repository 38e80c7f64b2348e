//! Cancel requests, sent over a new socket opened by the runtime.

use std::fmt;
use std::time::Duration;

use anysql_core::{CancelQuery, Error, RuntimeExt, SharedRuntime};
use async_trait::async_trait;
use tokio_postgres::{CancelToken, NoTls};

use crate::connect::open_socket;
use crate::options::PgHost;

/// How long a cancel request may take when no `connect_timeout` is set.
const DEFAULT_CANCEL_TIMEOUT: Duration = Duration::from_secs(10);

/// Cancels the query running on one connection: PostgreSQL's cancel protocol needs a new
/// connection to the same server, carrying the backend's process id and secret key.
pub(crate) struct PgCanceller {
    token: CancelToken,
    host: PgHost,
    timeout: Duration,
}

impl PgCanceller {
    pub(crate) fn new(token: CancelToken, host: PgHost, timeout: Option<Duration>) -> Self {
        PgCanceller {
            token,
            host,
            timeout: timeout.unwrap_or(DEFAULT_CANCEL_TIMEOUT),
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
            self.token
                .cancel_query_raw(socket, NoTls)
                .await
                .map_err(|e| {
                    Error::connection(format!("sending a cancel request to {} failed", self.host))
                        .with_source(e)
                })
        };
        runtime.timeout(self.timeout, request).await?
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
            .finish_non_exhaustive()
    }
}
