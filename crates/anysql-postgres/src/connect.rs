//! Opening connections: sockets through the runtime, the startup handshake through
//! `Config::connect_raw`, every host in turn.

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::sync::Arc;

use anysql_core::spin::Waiters;
use anysql_core::{
    BoxSocket, Connector, DriverConnection, Error, Runtime, RuntimeExt, SharedConnection,
    SharedRuntime,
};
use async_trait::async_trait;
use tokio_postgres::{Client, Config, NoTls};

use crate::cancel::PgCanceller;
use crate::connection::PgConnection;
use crate::io::{Io, RawConnection};
use crate::options::{DriveMode, PgConnectOptions, PgHost};
use crate::shared::PgShared;
use crate::socket::{PgSocket, SocketHandle};

/// Opens a socket to `host` through `runtime`: TCP (with `TCP_NODELAY`) or a Unix socket.
pub(crate) async fn open_socket(runtime: &dyn Runtime, host: &PgHost) -> io::Result<BoxSocket> {
    match host {
        PgHost::Tcp { host, port } => runtime.connect_tcp(host, *port).await,
        PgHost::Unix { path } => runtime.connect_unix(path).await,
    }
}

/// Why one host could not be used.
enum Attempt {
    Io(io::Error),
    Pg(tokio_postgres::Error),
    Timeout(std::time::Duration),
}

impl Attempt {
    fn into_source(self) -> Box<dyn StdError + Send + Sync> {
        match self {
            Attempt::Io(e) => Box::new(e),
            Attempt::Pg(e) => match e.as_db_error() {
                // The server's own words ("password authentication failed for user …").
                Some(db) => Box::new(db.clone()),
                None => Box::new(e),
            },
            Attempt::Timeout(d) => Box::new(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("timed out after {d:?} (connect_timeout)"),
            )),
        }
    }

    /// What to check, for the errors where that is known.
    fn hint(&self) -> &'static str {
        match self {
            Attempt::Pg(e) => match e.as_db_error().map(|db| db.code().code()) {
                Some("28P01" | "28000") => "check the user name and password, and pg_hba.conf",
                Some("3D000") => "check the database name",
                Some("53300") => "the server has too many connections; lower the pool size or raise max_connections",
                Some("57P03") => "the server is starting up or shutting down; retry shortly",
                _ => "check that the server is running and accepts connections there",
            },
            Attempt::Io(e) if e.kind() == io::ErrorKind::Unsupported => {
                "this runtime cannot open Unix sockets; connect over TCP instead"
            }
            _ => "check that the server is running and accepts connections there",
        }
    }
}

impl fmt::Display for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Attempt::Io(e) => write!(f, "{e}"),
            Attempt::Pg(e) => match e.as_db_error() {
                Some(db) => write!(f, "{} (code {})", db.message(), db.code().code()),
                None => write!(f, "{e}"),
            },
            Attempt::Timeout(d) => write!(f, "timed out after {d:?}"),
        }
    }
}

async fn connect_host(
    runtime: &dyn Runtime,
    host: &PgHost,
    config: &Config,
) -> Result<(Client, RawConnection, SocketHandle), Attempt> {
    let socket = open_socket(runtime, host).await.map_err(Attempt::Io)?;
    let (socket, handle) = PgSocket::new(socket);
    let (client, conn) = config
        .connect_raw(socket, NoTls)
        .await
        .map_err(Attempt::Pg)?;
    Ok((client, conn, handle))
}

impl PgConnection {
    /// Opens a connection with `options`, doing all I/O through `runtime`: each host in turn, each
    /// within `connect_timeout`.
    ///
    /// Failures are [`ErrorKind::Connection`](anysql_core::ErrorKind::Connection) errors whose
    /// message names the (password-free) URL and whose source is the cause, including
    /// authentication failures (the server's message, such as "password authentication failed for
    /// user …", is the source).
    pub async fn connect(
        options: &PgConnectOptions,
        runtime: &SharedRuntime,
    ) -> Result<PgConnection, Error> {
        let waiters = Arc::default();
        Self::connect_with(options, &options.to_config(), &waiters, runtime).await
    }

    /// [`connect`](Self::connect), counting this connection's waits among `waiters` (its
    /// engine's), so that it busy-polls only while no other caller of the engine waits.
    pub(crate) async fn connect_with(
        options: &PgConnectOptions,
        config: &Config,
        waiters: &Arc<Waiters>,
        runtime: &SharedRuntime,
    ) -> Result<PgConnection, Error> {
        let mut failures: Vec<(&PgHost, Attempt)> = Vec::new();
        for host in &options.hosts {
            let attempt = connect_host(&**runtime, host, config);
            let result = match options.connect_timeout {
                Some(limit) => match runtime.timeout(limit, attempt).await {
                    Ok(result) => result,
                    Err(_) => Err(Attempt::Timeout(limit)),
                },
                None => attempt.await,
            };
            match result {
                Ok((client, conn, socket)) => {
                    let canceller = Arc::new(PgCanceller::new(
                        client.cancel_token(),
                        host.clone(),
                        options.connect_timeout,
                    ));
                    let server = socket.clone();
                    let io = Io::start(
                        conn,
                        socket,
                        options.drive,
                        options.busy_poll,
                        Arc::clone(waiters),
                        runtime,
                    );
                    return Ok(PgConnection::new(
                        client,
                        io,
                        server,
                        Arc::clone(runtime),
                        canceller,
                        options.statement_cache_capacity,
                        options.unnamed_statements(),
                    ));
                }
                Err(attempt) => failures.push((host, attempt)),
            }
        }
        Err(connect_error(options, failures))
    }
}

fn connect_error(options: &PgConnectOptions, mut failures: Vec<(&PgHost, Attempt)>) -> Error {
    let url = options.redacted();
    let Some((last_host, last)) = failures.pop() else {
        return Error::connection(format!("could not connect to `{url}`: it names no host"));
    };
    let hint = last.hint();
    let last_host = options.shown_host(last_host);
    // The cause of the last attempt follows as the error's source: "…; tried h:5432: <cause>".
    let message = if failures.is_empty() {
        format!("could not connect to PostgreSQL for `{url}` ({hint}); tried {last_host}")
    } else {
        let earlier: Vec<String> = failures
            .iter()
            .map(|(host, why)| format!("{}: {why}", options.shown_host(host)))
            .collect();
        format!(
            "could not connect to any PostgreSQL host of `{url}` ({hint}); tried {}; then {last_host}",
            earlier.join("; ")
        )
    };
    Error::connection(message).with_source(last.into_source())
}

/// Opens [`PgConnection`]s for one engine; built by [`PostgresDriver`](crate::PostgresDriver).
pub struct PgConnector {
    options: PgConnectOptions,
    config: Config,
    /// The callers waiting on this engine's connections.
    waiters: Arc<Waiters>,
}

impl PgConnector {
    /// A connector for `options`.
    pub fn new(options: PgConnectOptions) -> Self {
        let config = options.to_config();
        PgConnector {
            options,
            config,
            waiters: Arc::default(),
        }
    }

    /// The parsed options.
    pub fn options(&self) -> &PgConnectOptions {
        &self.options
    }
}

#[async_trait]
impl Connector for PgConnector {
    async fn connect(&self, runtime: &SharedRuntime) -> Result<Box<dyn DriverConnection>, Error> {
        let conn =
            PgConnection::connect_with(&self.options, &self.config, &self.waiters, runtime).await?;
        Ok(Box::new(conn))
    }

    /// One pipelined connection for the engine's statements outside transactions, its I/O
    /// spawned on the runtime; none with `pgbouncer=true` (PgBouncer may hand pipelined
    /// statements to different server sessions) or `shared=false`.
    async fn connect_shared(
        &self,
        runtime: &SharedRuntime,
    ) -> Result<Option<Arc<dyn SharedConnection>>, Error> {
        if !self.options.shared || self.options.pgbouncer {
            return Ok(None);
        }
        let mut options = self.options.clone();
        options.drive = DriveMode::Spawned;
        options.busy_poll = std::time::Duration::ZERO;
        let conn =
            PgConnection::connect_with(&options, &self.config, &self.waiters, runtime).await?;
        Ok(Some(Arc::new(PgShared::new(
            conn,
            options.statement_cache_capacity,
            options.unnamed_statements(),
        ))))
    }

    /// A connection of its own in spawned mode, its notifications routed to a queue of
    /// `capacity` (see [`Listener`](anysql_core::Listener)).
    async fn connect_listener(
        &self,
        runtime: &SharedRuntime,
        capacity: usize,
    ) -> Result<Box<dyn anysql_core::DriverListener>, Error> {
        let listener = crate::listen::PgListener::connect(&self.options, runtime, capacity).await?;
        Ok(Box::new(listener))
    }

    fn notify_statement(&self) -> Option<&'static str> {
        Some("SELECT pg_notify($1, $2)")
    }
}

impl fmt::Debug for PgConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgConnector")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}
