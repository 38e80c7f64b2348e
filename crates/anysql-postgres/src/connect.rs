//! Opening connections: sockets through the runtime, the startup handshake through
//! `Config::connect_raw`, every host in turn.

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::sync::Arc;

use anysql_core::spin::Waiters;
use anysql_core::{
    BoxSocket, Connector, DriverConnection, Error, Runtime, RuntimeExt, ServerInfo,
    SharedConnection, SharedRuntime,
};
use async_trait::async_trait;
use tokio_postgres::{Client, Config, NoTls, SimpleQueryMessage};

use crate::cancel::PgCanceller;
use crate::connection::PgConnection;
use crate::hosts::Check;
use crate::io::{Io, RawConnection};
use crate::options::{DriveMode, PgConnectOptions, PgHost};
use crate::shared::PgShared;
use crate::socket::{PgSocket, SocketHandle};
use crate::tls::{CancelTls, Step, TlsError};

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
    Tls(TlsError),
    Timeout(std::time::Duration),
    /// The server let the login in but is not of the kind `target_session_attrs` asks for, or
    /// could not say which kind it is.
    Rejected(String),
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
            Attempt::Tls(e) => Box::new(e),
            Attempt::Timeout(d) => Box::new(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("timed out after {d:?} (connect_timeout)"),
            )),
            Attempt::Rejected(why) => why.into(),
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
            Attempt::Rejected(_) => {
                "no host is of the kind target_session_attrs asks for; check the hosts' roles, or \
                 wait for a failover to finish"
            }
            Attempt::Tls(TlsError::Refused(_)) => {
                "the server does not offer TLS; check sslmode and the server's `ssl` setting"
            }
            Attempt::Tls(_) => {
                "check sslmode, sslrootcert, sslcert and sslkey, and the server's certificate"
            }
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
            Attempt::Tls(e) => write!(f, "{e}"),
            Attempt::Timeout(d) => write!(f, "timed out after {d:?}"),
            Attempt::Rejected(why) => f.write_str(why),
        }
    }
}

/// A connection made: the client, its connection future, the socket's handle, and how its cancel
/// requests are secured.
type Connected = (Client, RawConnection, SocketHandle, Option<CancelTls>);

/// Connects to `host`, trying plaintext and TLS in the order `sslmode` gives (see
/// [`TlsOptions::plan`](crate::tls::TlsOptions::plan)). As libpq, the next step is tried only when
/// the server refused this one (an error from the server, or a failed handshake), never when the
/// host could not be reached.
async fn connect_host(
    runtime: &dyn Runtime,
    host: &PgHost,
    config: &Config,
    options: &PgConnectOptions,
) -> Result<Connected, Attempt> {
    let plan = options.tls.plan(host);
    let mut last = None;
    for (index, &step) in plan.iter().enumerate() {
        match connect_step(runtime, host, config, options, step).await {
            Ok(connected) => return Ok(connected),
            Err((attempt, used_tls)) => {
                let retry = match &attempt {
                    // Refused by the server: over TLS (`prefer`) or in plaintext (`allow`). A
                    // `prefer` try that found no TLS was plaintext already: nothing else to try.
                    Attempt::Pg(e) => {
                        e.as_db_error().is_some() && (used_tls || step == Step::Plain)
                    }
                    Attempt::Tls(e) => e.allows_fallback(),
                    Attempt::Io(_) | Attempt::Timeout(_) | Attempt::Rejected(_) => false,
                };
                last = Some(attempt);
                if !retry || index + 1 == plan.len() {
                    break;
                }
            }
        }
    }
    Err(last.unwrap_or_else(|| Attempt::Io(io::Error::other("no connection attempt was made"))))
}

async fn connect_step(
    runtime: &dyn Runtime,
    host: &PgHost,
    config: &Config,
    options: &PgConnectOptions,
    step: Step,
) -> Result<Connected, (Attempt, bool)> {
    let socket = open_socket(runtime, host)
        .await
        .map_err(|e| (Attempt::Io(e), false))?;
    let (socket, cancel_tls) = options
        .tls
        .secure(socket, host, step)
        .await
        .map_err(|e| (Attempt::Tls(e), false))?;
    let used_tls = cancel_tls.is_some();
    let (socket, handle) = PgSocket::new(socket);
    let (client, conn) = config
        .connect_raw(socket, NoTls)
        .await
        .map_err(|e| (Attempt::Pg(e), used_tls))?;
    Ok((client, conn, handle, cancel_tls))
}

/// Opens a connection to `host` and checks that the server passes `check`.
async fn open_checked(
    options: &PgConnectOptions,
    host: &PgHost,
    config: &Config,
    waiters: &Arc<Waiters>,
    runtime: &SharedRuntime,
    check: Check,
) -> Result<PgConnection, Attempt> {
    let (client, conn, socket, cancel_tls) =
        connect_host(&**runtime, host, config, options).await?;
    let canceller = Arc::new(PgCanceller::new(
        client.cancel_token(),
        host.clone(),
        options.connect_timeout,
        cancel_tls,
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
    let mut conn = PgConnection::new(
        client,
        io,
        server,
        Arc::clone(runtime),
        canceller,
        options.statement_cache_capacity,
        options.unnamed_statements(),
    );
    conn.set_discard_on_read_only(options.routing.target.wants_writes());
    conn.behind_pgbouncer = options.pgbouncer;
    let Some(query) = check.query() else {
        return Ok(conn);
    };
    let answer = conn
        .with_client(|client| {
            Box::pin(async move {
                let messages = client.simple_query(query).await?;
                Ok::<_, tokio_postgres::Error>(messages.into_iter().find_map(|m| match m {
                    SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
                    _ => None,
                }))
            })
        })
        .await;
    let verdict = match answer {
        Ok(Some(answer)) => check.judge(&answer),
        Ok(None) => Err(format!("`{query}` returned no row")),
        Err(e) => Err(format!("`{query}` failed: {e}")),
    };
    match verdict {
        Ok(()) => Ok(conn),
        Err(why) => {
            // Not the host wanted: said goodbye to before the next one is tried.
            let _ = DriverConnection::close(Box::new(conn)).await;
            Err(Attempt::Rejected(why))
        }
    }
}

impl PgConnection {
    /// Opens a connection with `options`, doing all I/O through `runtime`: each host in turn (or
    /// in a random order, with `load_balance_hosts=random`), each within `connect_timeout`, until
    /// one lets the login in and is of the kind `target_session_attrs` asks for.
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
        let order = options.routing.order(&options.hosts);
        for &check in options.routing.target.passes() {
            for &host in &order {
                // The connect timeout covers the whole attempt on a host: the login and the check.
                let attempt = open_checked(options, host, config, waiters, runtime, check);
                let result = match options.connect_timeout {
                    Some(limit) => match runtime.timeout(limit, attempt).await {
                        Ok(result) => result,
                        Err(_) => Err(Attempt::Timeout(limit)),
                    },
                    None => attempt.await,
                };
                match result {
                    Ok(conn) => return Ok(conn),
                    Err(attempt) => failures.push((host, attempt)),
                }
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

    /// The first host (or none, when the URL is ambiguous about where its password ends) and
    /// the database, which defaults to the user's name as in libpq.
    fn server_info(&self) -> ServerInfo {
        let mut info = ServerInfo::new("postgresql");
        if let Some(database) = self.options.dbname().or(self.options.user()) {
            info = info.namespace(database);
        }
        match self.options.hosts().first() {
            _ if self.options.concealed => {}
            Some(PgHost::Tcp { host, port }) => info = info.address(host.as_str()).port(*port),
            Some(PgHost::Unix { path }) => {
                let dir = path.parent().unwrap_or(path);
                info = info.address(dir.display().to_string());
            }
            None => {}
        }
        info
    }

    /// A connector for each of `replica_hosts`: these options with that one host.
    fn replicas(&self) -> Vec<(String, Arc<dyn Connector>)> {
        self.options
            .replica_hosts()
            .iter()
            .map(|host| {
                let options = self.options.for_replica(host);
                let description = options.redacted().to_owned();
                (
                    description,
                    Arc::new(PgConnector::new(options)) as Arc<dyn Connector>,
                )
            })
            .collect()
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
        if self.options.pgbouncer {
            // PgBouncer's transaction pooling hands the session back to its pool after the LISTEN
            // statement, so the notifications would go to whichever client has it next.
            return Err(Error::unsupported(
                "a Listener needs a session of its own, which PgBouncer's transaction pooling \
                 (pgbouncer=true) does not give: open the listener with an engine whose URL \
                 points at the server itself, without pgbouncer=true",
            ));
        }
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
