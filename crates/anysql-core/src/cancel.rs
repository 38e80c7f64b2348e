//! [`CancelHandle`]: cancels a running query from another task.

use std::fmt;
use std::sync::Arc;

use crate::driver::CancelQuery;
use crate::error::Error;
use crate::runtime::SharedRuntime;

/// Cancels the query running on a connection, from another task. From
/// [`Connection::cancel_handle`](crate::Connection::cancel_handle).
///
/// The cancelled query fails with a database error; the connection stays usable.
#[derive(Clone)]
pub struct CancelHandle {
    inner: Arc<dyn CancelQuery>,
    runtime: SharedRuntime,
}

impl CancelHandle {
    /// A handle over a driver's canceller. For drivers.
    pub fn new(inner: Arc<dyn CancelQuery>, runtime: SharedRuntime) -> Self {
        CancelHandle { inner, runtime }
    }

    /// Asks the server to cancel whatever the connection is running now. If nothing is running,
    /// nothing happens.
    pub async fn cancel(&self) -> Result<(), Error> {
        self.inner.cancel(&self.runtime).await
    }
}

impl fmt::Debug for CancelHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelHandle")
            .field("query", &self.inner)
            .finish_non_exhaustive()
    }
}
