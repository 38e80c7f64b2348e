//! [`PgConnectOptions`]: a PostgreSQL URL or libpq `key=value` string, parsed.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use anysql_core::option_values::{parse_bool, parse_duration, percent_decode};
use anysql_core::{ConnectOptions, Error};

use crate::hosts::{LoadBalanceHosts, Routing, TargetSessionAttrs, ROUTING_OPTIONS};
use crate::tls::{SslMode, SslRootCert, TlsOptions};

/// The default PostgreSQL port.
pub const DEFAULT_PORT: u16 = 5432;

/// The default size of the per-connection statement cache.
pub const DEFAULT_STATEMENT_CACHE_CAPACITY: usize = 100;

/// How long a caller busy-polls the socket for a reply by default (the `busy_poll` option): long
/// enough for a round trip to a server whose vCPU has to wake up; waits that take longer than
/// that turn spinning off on their own (see the crate docs, Busy-polling).
pub const DEFAULT_BUSY_POLL: Duration = Duration::from_micros(200);

/// The most `busy_poll` may be.
const MAX_BUSY_POLL: Duration = Duration::from_millis(10);

/// The most `statement_cache_capacity` may be.
pub(crate) const MAX_STATEMENT_CACHE_CAPACITY: usize = 10_000;

/// The longest `connect_timeout`: one day (`86400`). The shortest one that is not `0` (no limit)
/// is a millisecond.
pub(crate) const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// Every option this driver understands, in the URL query and in the `key=value` form.
pub(crate) const KNOWN_OPTIONS: &[&str] = &[
    "host",
    "port",
    "user",
    "password",
    "dbname",
    "application_name",
    "options",
    "connect_timeout",
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "statement_cache_capacity",
    "pgbouncer",
    "drive",
    "busy_poll",
    "shared",
    "target_session_attrs",
    "load_balance_hosts",
    "replica_hosts",
];

/// How the tokio-postgres connection future (the half that does the socket I/O) is driven.
///
/// Selected with the URL option `drive=inline|spawned`; see the crate docs for measurements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DriveMode {
    /// The connection is polled by whichever task awaits an operation, together with the
    /// operation: no spawned task and no cross-thread wake-up. The default.
    #[default]
    Inline,
    /// The connection is spawned on the engine's runtime, as tokio-postgres' README does.
    Spawned,
}

impl DriveMode {
    /// The URL spelling: `"inline"` or `"spawned"`.
    pub fn as_str(self) -> &'static str {
        match self {
            DriveMode::Inline => "inline",
            DriveMode::Spawned => "spawned",
        }
    }
}

/// One place to connect to: a TCP host and port, or a Unix socket file.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PgHost {
    /// A TCP host name or IP address (without brackets) and port.
    Tcp {
        /// The host name or address.
        host: String,
        /// The port.
        port: u16,
    },
    /// A Unix domain socket: the socket file itself, `<dir>/.s.PGSQL.<port>` as libpq builds it.
    Unix {
        /// The path of the socket file.
        path: PathBuf,
    },
}

impl fmt::Display for PgHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PgHost::Tcp { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            PgHost::Tcp { host, port } => write!(f, "{host}:{port}"),
            PgHost::Unix { path } => write!(f, "{}", path.display()),
        }
    }
}

/// The PostgreSQL connection settings, parsed from a URL (`postgres://` or `postgresql://`) or a
/// libpq `key=value` string.
///
/// Every value is checked when parsed, and one out of range is a configuration error naming the
/// option and its limits: `port` 1 to 65535, `connect_timeout` 0 (no limit) or 0.001 to 86400
/// seconds (1 day), `statement_cache_capacity` 0 to 10000, `busy_poll` at most 10ms.
///
/// `Debug` never shows the password, nor, when the URL is ambiguous about where its password ends
/// (an unencoded `#`, `/`, `?` or `@` in it), the hosts and database name that may hold part of it.
#[derive(Clone)]
pub struct PgConnectOptions {
    pub(crate) hosts: Vec<PgHost>,
    pub(crate) user: Option<String>,
    pub(crate) password: Option<String>,
    pub(crate) dbname: Option<String>,
    pub(crate) application_name: Option<String>,
    pub(crate) options: Option<String>,
    pub(crate) connect_timeout: Option<Duration>,
    pub(crate) statement_cache_capacity: usize,
    pub(crate) pgbouncer: bool,
    pub(crate) drive: DriveMode,
    pub(crate) busy_poll: Duration,
    pub(crate) shared: bool,
    pub(crate) routing: Routing,
    pub(crate) tls: TlsOptions,
    pub(crate) redacted: String,
    /// Whether the hosts, database name or other settings may hold part of a password (see
    /// [`ConnectOptions::conceals`]): messages then show `***` for them.
    pub(crate) concealed: bool,
}

/// A host as written, before ports and defaults are applied.
struct HostSpec {
    host: String,
    port: Option<u16>,
}

impl PgConnectOptions {
    /// Parses the driver's part of `options`: its URL (or `key=value` string) and its query
    /// parameters. Unknown parameters are configuration errors.
    pub fn parse(options: &ConnectOptions) -> Result<Self, Error> {
        let raw = options.as_str();
        let mut builder = Builder::new(options);
        if options.url().is_none() && !raw.contains("://") {
            parse_key_value(raw, &mut builder)?;
        } else {
            builder.parse_url_base(raw)?;
            for (index, (key, value)) in options.params().iter().enumerate() {
                // A secret parameter's value is never quoted; the hosts it names still show in
                // connect errors, as `?password=x&host=h1,h2` names them plainly.
                builder.conceal = options.is_secret_param(index);
                builder.apply(key, value)?;
            }
            builder.conceal = false;
        }
        builder.finish()
    }

    /// The places to connect to, tried in order.
    pub fn hosts(&self) -> &[PgHost] {
        &self.hosts
    }

    /// The user name; `None` means the operating system user, as libpq does.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// Whether a password was given (the password itself is never exposed).
    pub fn has_password(&self) -> bool {
        self.password.is_some()
    }

    /// The database name; `None` means the server's default (the user name).
    pub fn dbname(&self) -> Option<&str> {
        self.dbname.as_deref()
    }

    /// The `application_name` reported to the server.
    pub fn application_name(&self) -> Option<&str> {
        self.application_name.as_deref()
    }

    /// The command-line `options` sent to the server, such as `-c search_path=foo`.
    pub fn server_options(&self) -> Option<&str> {
        self.options.as_deref()
    }

    /// The time limit for connecting to each host.
    pub fn connect_timeout(&self) -> Option<Duration> {
        self.connect_timeout
    }

    /// The number of prepared statements each connection keeps; 0 means unnamed statements only.
    pub fn statement_cache_capacity(&self) -> usize {
        self.statement_cache_capacity
    }

    /// Whether `pgbouncer=true` was given.
    pub fn pgbouncer(&self) -> bool {
        self.pgbouncer
    }

    /// Whether only unnamed statements are used (`pgbouncer=true` or a statement cache of 0), which
    /// is safe behind PgBouncer in transaction pooling mode.
    pub fn unnamed_statements(&self) -> bool {
        self.pgbouncer || self.statement_cache_capacity == 0
    }

    /// How the connection is driven.
    pub fn drive_mode(&self) -> DriveMode {
        self.drive
    }

    /// Whether the engine runs its statements outside transactions on one shared, pipelined
    /// connection (the `shared` option; see the crate docs).
    pub fn shared(&self) -> bool {
        self.shared
    }

    /// How long a caller busy-polls the socket for a reply before its task sleeps (zero: never);
    /// see the crate docs, Performance.
    pub fn busy_poll(&self) -> Duration {
        self.busy_poll
    }

    /// Which kind of server a connection must reach (`target_session_attrs`).
    pub fn target_session_attrs(&self) -> TargetSessionAttrs {
        self.routing.target
    }

    /// In which order the hosts are tried (`load_balance_hosts`).
    pub fn load_balance_hosts(&self) -> LoadBalanceHosts {
        self.routing.load_balance
    }

    /// The hosts of the engine's read replicas (`replica_hosts`), each served by a pool of its own
    /// with these same settings.
    pub fn replica_hosts(&self) -> &[PgHost] {
        &self.routing.replica_hosts
    }

    /// The options of the replica at `host`: these settings with that one host, any server
    /// accepted, and no replicas of its own.
    pub(crate) fn for_replica(&self, host: &PgHost) -> PgConnectOptions {
        let mut options = self.clone();
        options.hosts = vec![host.clone()];
        options.routing = Routing::default();
        options.redacted = format!("{} (replica {})", self.redacted, self.shown_host(host));
        options
    }

    /// The `sslmode` in force (`prefer` when none is given, `verify-full` with
    /// `sslrootcert=system`, as in libpq). `require` with an `sslrootcert` file checks the
    /// certificate chain as `verify-ca` does, as in libpq.
    pub fn ssl_mode(&self) -> SslMode {
        self.tls.mode
    }

    /// The `sslrootcert` option: the CAs the server's certificate must chain to.
    pub fn ssl_root_cert(&self) -> Option<&SslRootCert> {
        self.tls.root_cert.as_ref()
    }

    /// The `sslcert` option: the client certificate (PEM), sent when the server asks for one.
    pub fn ssl_cert(&self) -> Option<&std::path::Path> {
        self.tls.cert.as_deref()
    }

    /// The `sslkey` option: the client certificate's private key (PEM).
    pub fn ssl_key(&self) -> Option<&std::path::Path> {
        self.tls.key.as_deref()
    }

    /// The URL with its password masked, for messages.
    pub fn redacted(&self) -> &str {
        &self.redacted
    }

    /// `host` as messages show it: `***` when the URL is ambiguous about where its password ends.
    pub(crate) fn shown_host(&self, host: &PgHost) -> String {
        if self.concealed {
            "***".to_owned()
        } else {
            host.to_string()
        }
    }

    pub(crate) fn to_config(&self) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        if let Some(user) = &self.user {
            config.user(user);
        }
        if let Some(password) = &self.password {
            config.password(password);
        }
        if let Some(dbname) = &self.dbname {
            config.dbname(dbname);
        }
        if let Some(name) = &self.application_name {
            config.application_name(name);
        }
        if let Some(options) = &self.options {
            config.options(options);
        }
        // The driver negotiates TLS itself (see `tls`) and hands tokio-postgres the stream it
        // speaks the protocol over, plaintext or decrypted.
        config.ssl_mode(tokio_postgres::config::SslMode::Disable);
        config
    }
}

impl fmt::Debug for PgConnectOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hidden = |shown: &dyn fmt::Debug| -> String {
            if self.concealed {
                "***".to_owned()
            } else {
                format!("{shown:?}")
            }
        };
        f.debug_struct("PgConnectOptions")
            .field("hosts", &format_args!("{}", hidden(&self.hosts)))
            .field("user", &format_args!("{}", hidden(&self.user)))
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("dbname", &format_args!("{}", hidden(&self.dbname)))
            .field(
                "application_name",
                &format_args!("{}", hidden(&self.application_name)),
            )
            .field("options", &format_args!("{}", hidden(&self.options)))
            .field("connect_timeout", &self.connect_timeout)
            .field("statement_cache_capacity", &self.statement_cache_capacity)
            .field("pgbouncer", &self.pgbouncer)
            .field("drive", &self.drive)
            .field("busy_poll", &self.busy_poll)
            .field("shared", &self.shared)
            .field("target_session_attrs", &self.routing.target)
            .field("load_balance_hosts", &self.routing.load_balance)
            .field(
                "replica_hosts",
                &format_args!("{}", hidden(&self.routing.replica_hosts)),
            )
            .field("tls", &self.tls)
            .finish()
    }
}

struct Builder<'o> {
    source: &'o ConnectOptions,
    hosts: Vec<HostSpec>,
    ports: Option<Vec<Option<u16>>>,
    user: Option<String>,
    password: Option<String>,
    dbname: Option<String>,
    application_name: Option<String>,
    options: Option<String>,
    connect_timeout: Option<Duration>,
    statement_cache_capacity: usize,
    pgbouncer: bool,
    drive: DriveMode,
    busy_poll: Duration,
    shared: bool,
    routing: Routing,
    tls: TlsOptions,
    /// Whether `sslmode` was given (`sslrootcert=system` changes the default).
    ssl_mode_given: bool,
    /// Whether the value being applied may be part of a password: messages must not quote it.
    conceal: bool,
    /// Whether any part of the settings may hold part of a password.
    concealed: bool,
}

impl<'o> Builder<'o> {
    fn new(source: &'o ConnectOptions) -> Self {
        Builder {
            source,
            hosts: Vec::new(),
            ports: None,
            user: None,
            password: None,
            dbname: None,
            application_name: None,
            options: None,
            connect_timeout: None,
            statement_cache_capacity: DEFAULT_STATEMENT_CACHE_CAPACITY,
            pgbouncer: false,
            drive: DriveMode::Inline,
            busy_poll: DEFAULT_BUSY_POLL,
            shared: true,
            routing: Routing::default(),
            tls: TlsOptions::default(),
            ssl_mode_given: false,
            conceal: false,
            concealed: false,
        }
    }

    /// `text` quoted for a message, or a note that it is not shown when it may be part of a
    /// password.
    fn quote(&self, text: &str, secret: bool) -> String {
        if secret {
            "(not shown: it may be part of a password)".to_owned()
        } else {
            format!("`{text}`")
        }
    }

    /// The value being applied, quoted for a message unless it may be part of a password.
    fn value(&self, value: &str) -> String {
        self.quote(value, self.conceal)
    }

    fn error(&self, what: impl fmt::Display) -> Error {
        Error::configuration(format!(
            "invalid database url `{}`: {what}",
            self.source.redacted()
        ))
    }

    /// Parses `scheme://[user[:password]@][host[:port][,host[:port]...]][/dbname]`, without the
    /// query, which the core has already split off and decoded.
    fn parse_url_base(&mut self, raw: &str) -> Result<(), Error> {
        let Some((_, rest)) = raw.split_once("://").filter(|(scheme, _)| {
            scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        }) else {
            // No `://` right after the scheme (`postgres:user://..`): whatever follows may be a
            // password, so it is neither parsed nor shown.
            return Err(self.error(
                "expected `postgres://user@host:port/dbname` or a `key=value` connection string",
            ));
        };
        let rest = rest.split(['?', '#']).next().unwrap_or("");
        let (authority, path) = match rest.find('/') {
            Some(slash) => (&rest[..slash], &rest[slash + 1..]),
            None => (rest, ""),
        };
        let hostlist = match authority.rfind('@') {
            Some(at) => {
                let userinfo = &authority[..at];
                let (user, password) = match userinfo.split_once(':') {
                    Some((user, password)) => (user, Some(password)),
                    None => (userinfo, None),
                };
                if !user.is_empty() {
                    // A user name inside a masked part is a piece of a password.
                    self.concealed |= self.source.conceals(user);
                    self.user = Some(self.decode(user, "user name")?);
                }
                if let Some(password) = password {
                    self.password = Some(self.decode(password, "password")?);
                }
                &authority[at + 1..]
            }
            None => authority,
        };
        // A password with an unencoded `#`, `/`, `?` or `@` may end up in the hosts or the
        // database name: then they are never shown.
        self.concealed |= self.source.conceals(hostlist) || self.source.conceals(path);
        if !hostlist.is_empty() {
            for item in hostlist.split(',') {
                let spec = self.parse_host_item(item)?;
                self.hosts.push(spec);
            }
        }
        if !path.is_empty() {
            self.dbname = Some(self.decode(path, "database name")?);
        }
        Ok(())
    }

    fn parse_host_item(&self, item: &str) -> Result<HostSpec, Error> {
        let secret = self.source.conceals(item);
        let (host, port) = if let Some(bracketed) = item.strip_prefix('[') {
            let Some(close) = bracketed.find(']') else {
                return Err(self.error(format!(
                    "unterminated `[` in host {}",
                    self.quote(item, secret)
                )));
            };
            let after = &bracketed[close + 1..];
            let port = match after.strip_prefix(':') {
                Some(port) => Some(port),
                None if after.is_empty() => None,
                None => {
                    return Err(self.error(format!(
                        "unexpected {} after host {}",
                        self.quote(after, secret),
                        self.quote(item, secret)
                    )))
                }
            };
            (bracketed[..close].to_owned(), port)
        } else {
            match item.rsplit_once(':') {
                Some((host, port)) => (self.decode(host, "host")?, Some(port)),
                None => (self.decode(item, "host")?, None),
            }
        };
        let port = match port {
            None | Some("") => None,
            Some(port) => Some(self.parse_port(port, secret)?),
        };
        Ok(HostSpec { host, port })
    }

    fn parse_port(&self, port: &str, secret: bool) -> Result<u16, Error> {
        match port.trim().parse::<u16>() {
            Ok(port) if port > 0 => Ok(port),
            _ => Err(self.error(format!(
                "{} is not a valid port; use a number from 1 to 65535",
                self.quote(port, secret)
            ))),
        }
    }

    fn decode(&self, text: &str, what: &str) -> Result<String, Error> {
        percent_decode(text)
            .ok_or_else(|| self.error(format!("the {what} is not valid percent-encoded UTF-8")))
    }

    fn apply(&mut self, key: &str, value: &str) -> Result<(), Error> {
        match key {
            "host" => {
                let ports: Vec<Option<u16>> = self.hosts.iter().map(|h| h.port).collect();
                self.hosts = value
                    .split(',')
                    .map(|h| HostSpec {
                        host: h.trim().to_owned(),
                        port: None,
                    })
                    .collect();
                // `postgres://:5433/db?host=/run/postgresql` keeps the port written in the URL.
                if ports.len() == 1 && ports[0].is_some() && self.ports.is_none() {
                    self.ports = Some(vec![ports[0]]);
                }
            }
            "port" => {
                let mut ports = Vec::new();
                for port in value.split(',') {
                    let port = port.trim();
                    ports.push(if port.is_empty() {
                        None
                    } else {
                        Some(self.parse_port(port, self.conceal)?)
                    });
                }
                self.ports = Some(ports);
            }
            "user" => self.user = Some(value.to_owned()),
            "password" => self.password = Some(value.to_owned()),
            "dbname" => self.dbname = Some(value.to_owned()),
            "application_name" => self.application_name = Some(value.to_owned()),
            "options" => self.options = Some(value.to_owned()),
            "connect_timeout" => {
                // Seconds, as libpq (fractions allowed); 0 means no limit.
                let limit = value
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|s| s.is_finite() && *s >= 0.0)
                    .and_then(|s| {
                        if s == 0.0 {
                            Some(None)
                        } else {
                            Duration::try_from_secs_f64(s)
                                .ok()
                                .filter(|d| {
                                    (Duration::from_millis(1)..=MAX_CONNECT_TIMEOUT).contains(d)
                                })
                                .map(Some)
                        }
                    })
                    .ok_or_else(|| {
                        self.error(format!(
                            "connect_timeout {} is out of range; use a number of seconds from 0.001 to \
                             86400 (1 day), or 0 for no limit",
                            self.value(value)
                        ))
                    })?;
                self.connect_timeout = limit;
            }
            "sslmode" => {
                self.tls.mode = SslMode::parse(value).ok_or_else(|| {
                    self.error(format!(
                        "unknown sslmode {}; use disable, allow, prefer, require, verify-ca or verify-full",
                        self.value(value)
                    ))
                })?;
                self.ssl_mode_given = true;
            }
            "sslrootcert" => {
                self.tls.root_cert = Some(if value == "system" {
                    SslRootCert::System
                } else {
                    SslRootCert::File(PathBuf::from(value))
                });
            }
            "sslcert" => self.tls.cert = Some(PathBuf::from(value)),
            "sslkey" => self.tls.key = Some(PathBuf::from(value)),
            "statement_cache_capacity" => {
                self.statement_cache_capacity = value
                    .trim()
                    .parse()
                    .ok()
                    .filter(|n| *n <= MAX_STATEMENT_CACHE_CAPACITY)
                    .ok_or_else(|| {
                        self.error(format!(
                            "statement_cache_capacity {} is out of range; use a whole number from 0 to {}, 0 \
                             to disable the cache",
                            self.value(value),
                            MAX_STATEMENT_CACHE_CAPACITY
                        ))
                    })?;
            }
            "pgbouncer" => {
                self.pgbouncer = parse_bool(value).ok_or_else(|| {
                    self.error(format!(
                        "pgbouncer {} is not a boolean; use true or false",
                        self.value(value)
                    ))
                })?;
            }
            "drive" => {
                self.drive = match value {
                    "inline" => DriveMode::Inline,
                    "spawned" => DriveMode::Spawned,
                    other => {
                        return Err(self.error(format!(
                            "drive {} is unknown; use inline or spawned",
                            self.value(other)
                        )));
                    }
                };
            }
            "busy_poll" => {
                self.busy_poll = parse_duration(value)
                    .filter(|d| *d <= MAX_BUSY_POLL)
                    .ok_or_else(|| {
                        self.error(format!(
                            "busy_poll {} is not a duration of at most 10ms; use one such as 50us \
                             (0 turns busy-polling off)",
                            self.value(value)
                        ))
                    })?;
            }
            "shared" => {
                self.shared = parse_bool(value).ok_or_else(|| {
                    self.error(format!(
                        "shared {} is not a boolean; use true or false",
                        self.value(value)
                    ))
                })?;
            }
            key if ROUTING_OPTIONS.contains(&key) => {
                let shown = self.value(value);
                let applied = self.routing.apply(key, value, &shown);
                applied.map_err(|message| self.error(message))?;
            }
            other => return Err(self.source.unknown_param(other, KNOWN_OPTIONS)),
        }
        Ok(())
    }

    fn finish(self) -> Result<PgConnectOptions, Error> {
        let mut specs = self.hosts;
        if let Some(ports) = &self.ports {
            if specs.is_empty() {
                specs.push(HostSpec {
                    host: String::new(),
                    port: None,
                });
            }
            match (ports.len(), specs.len()) {
                (1, _) => specs.iter_mut().for_each(|h| h.port = ports[0]),
                (p, h) if p == h => {
                    for (spec, port) in specs.iter_mut().zip(ports) {
                        spec.port = *port;
                    }
                }
                (p, h) => {
                    return Err(Error::configuration(format!(
                        "invalid database url `{}`: {p} ports were given for {h} hosts; give one port for \
                         all hosts or one per host",
                        self.source.redacted()
                    )));
                }
            }
        }
        let mut hosts = Vec::new();
        for spec in specs {
            let port = spec.port.unwrap_or(DEFAULT_PORT);
            if spec.host.is_empty() {
                hosts.extend(default_hosts(port));
            } else if spec.host.starts_with('/') {
                hosts.push(PgHost::Unix {
                    path: socket_path(&spec.host, port),
                });
            } else {
                hosts.push(PgHost::Tcp {
                    host: spec.host,
                    port,
                });
            }
        }
        if hosts.is_empty() {
            hosts.extend(default_hosts(DEFAULT_PORT));
        }
        let tls = self.tls.finish(self.ssl_mode_given).map_err(|why| {
            Error::configuration(format!(
                "the TLS settings of `{}` are not usable: {why}",
                self.source.redacted()
            ))
        })?;
        Ok(PgConnectOptions {
            hosts,
            user: self.user,
            password: self.password,
            dbname: self.dbname,
            application_name: self.application_name,
            options: self.options,
            connect_timeout: self.connect_timeout,
            statement_cache_capacity: self.statement_cache_capacity,
            pgbouncer: self.pgbouncer,
            drive: self.drive,
            busy_poll: self.busy_poll,
            shared: self.shared,
            routing: self.routing,
            tls,
            redacted: self.source.redacted(),
            concealed: self.concealed,
        })
    }
}

/// `<dir>/.s.PGSQL.<port>`, the socket file libpq uses for a socket directory.
fn socket_path(dir: &str, port: u16) -> PathBuf {
    PathBuf::from(dir).join(format!(".s.PGSQL.{port}"))
}

/// Where to connect when no host is given: as libpq, the local Unix socket (the first of the usual
/// socket directories that has one), then `localhost` over TCP.
fn default_hosts(port: u16) -> Vec<PgHost> {
    let mut hosts = Vec::new();
    if cfg!(unix) {
        for dir in ["/run/postgresql", "/var/run/postgresql", "/tmp"] {
            let path = socket_path(dir, port);
            if path.exists() {
                hosts.push(PgHost::Unix { path });
                break;
            }
        }
    }
    hosts.push(PgHost::Tcp {
        host: "localhost".to_owned(),
        port,
    });
    hosts
}

/// Parses a libpq `key=value` connection string: values may be single-quoted, with `\'` and `\\`
/// escapes inside the quotes.
fn parse_key_value(raw: &str, builder: &mut Builder<'_>) -> Result<(), Error> {
    let mut chars = raw.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(());
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            // The key is not quoted: it may be the tail of an unquoted password with a space.
            return Err(
                builder.error("expected `key=value` pairs in the key=value connection string")
            );
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    Some('\\') => match chars.next() {
                        Some(c) => value.push(c),
                        None => return Err(builder.error("unterminated quoted value")),
                    },
                    Some('\'') => break,
                    Some(c) => value.push(c),
                    None => return Err(builder.error("unterminated quoted value")),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    if let Some(escaped) = chars.next() {
                        value.push(escaped);
                    }
                } else {
                    value.push(c);
                }
            }
        }
        // Several hosts or ports are comma-separated, exactly as in the URL query. A value is not
        // quoted in messages when the string has a password (it may be part of it, as in
        // `port= password=x`, where the value is `password=x`); the redacted string shows the
        // others.
        builder.conceal = builder.source.conceals(&value);
        // A value holding `=` swallowed the next pair (`host= password=x` sets the host to
        // `password=x`, as libpq reads it): the hosts and names it lands in are never shown.
        builder.concealed |= builder.conceal && value.contains('=');
        builder.apply(&key, &value)?;
        builder.conceal = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anysql_core::ErrorKind;

    fn parse(url: &str) -> Result<PgConnectOptions, Error> {
        PgConnectOptions::parse(&ConnectOptions::parse(url)?)
    }

    /// Found by the property test: a password holding `//` made `postgres:user://pw@h` parse
    /// with the password as the user name.
    #[test]
    fn a_url_whose_scheme_is_not_followed_by_slashes_never_shows_its_tail() {
        let err = parse("postgres:user://Zqxv@127.0.0.1:1/db?host=0").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Configuration);
        assert!(!err.to_string().contains("Zqxv"), "{err}");
    }

    /// Found by the property test: an empty `host=` takes the next pair as its value, as libpq
    /// reads it, and the host then holds the password.
    #[test]
    fn a_value_that_swallowed_a_password_never_shows() {
        let options = parse("host=127.0.0.1 host= password=Zqxv dbname=db").unwrap();
        let shown = format!("{options:?} {}", options.redacted());
        assert!(!shown.contains("Zqxv"), "{shown}");
    }

    fn tcp(host: &str, port: u16) -> PgHost {
        PgHost::Tcp {
            host: host.to_owned(),
            port,
        }
    }

    #[test]
    fn a_full_url() {
        let o = parse(
            "postgresql://ro%40t:p%40ss%3Aw@db.example:6543/my%20db?application_name=app&options=-c%20search_path%3Dfoo\
             &connect_timeout=3&sslmode=prefer&statement_cache_capacity=7&drive=spawned",
        )
        .unwrap();
        assert_eq!(o.hosts(), &[tcp("db.example", 6543)]);
        assert_eq!(o.user(), Some("ro@t"));
        assert_eq!(o.password.as_deref(), Some("p@ss:w"));
        assert_eq!(o.dbname(), Some("my db"));
        assert_eq!(o.application_name(), Some("app"));
        assert_eq!(o.server_options(), Some("-c search_path=foo"));
        assert_eq!(o.connect_timeout(), Some(Duration::from_secs(3)));
        assert_eq!(o.statement_cache_capacity(), 7);
        assert!(!o.unnamed_statements());
        assert_eq!(o.drive_mode(), DriveMode::Spawned);
        let shown = format!("{o:?} {}", o.redacted());
        assert!(
            !shown.contains("p@ss") && !shown.contains("p%40ss"),
            "{shown}"
        );
    }

    #[test]
    fn defaults() {
        let o = parse("postgres://root@127.0.0.1/test").unwrap();
        assert_eq!(o.hosts(), &[tcp("127.0.0.1", 5432)]);
        assert_eq!(
            o.statement_cache_capacity(),
            DEFAULT_STATEMENT_CACHE_CAPACITY
        );
        assert_eq!(o.drive_mode(), DriveMode::Inline);
        assert_eq!(o.busy_poll(), DEFAULT_BUSY_POLL);
        assert_eq!(o.connect_timeout(), None);
        assert!(!o.pgbouncer());
        assert!(o.user() == Some("root") && !o.has_password());
    }

    #[test]
    fn ipv6_hosts() {
        let o = parse("postgres://u@[::1]:5433/db").unwrap();
        assert_eq!(o.hosts(), &[tcp("::1", 5433)]);
        assert_eq!(o.hosts()[0].to_string(), "[::1]:5433");
    }

    /// Parses `raw` the way the driver does, without the core's `url`-crate check first: the core
    /// rejects some libpq-valid URLs (`user@/db`, `h1:1,h2:2`) before the driver sees them.
    fn parse_lenient(raw: &str) -> Result<PgConnectOptions, Error> {
        let source = ConnectOptions::parse("postgres://placeholder/db").unwrap();
        let mut builder = Builder::new(&source);
        let (base, query) = raw.split_once('?').unwrap_or((raw, ""));
        builder.parse_url_base(base)?;
        for (key, value) in query.split('&').filter_map(|kv| kv.split_once('=')) {
            builder.apply(key, value)?;
        }
        builder.finish()
    }

    #[test]
    fn several_hosts_in_the_query() {
        let o = parse("postgres:///db?host=h1,h2&port=5432,5433").unwrap();
        assert_eq!(o.hosts(), &[tcp("h1", 5432), tcp("h2", 5433)]);
        let o = parse("postgres:///db?host=h1,h2&port=6000&user=u").unwrap();
        assert_eq!(o.hosts(), &[tcp("h1", 6000), tcp("h2", 6000)]);
        assert_eq!(o.user(), Some("u"));
        let o = parse_lenient("postgres://u@/db?host=h1,h2&port=5432,5433").unwrap();
        assert_eq!(o.hosts(), &[tcp("h1", 5432), tcp("h2", 5433)]);
        let err = parse("postgres:///db?host=h1,h2,h3&port=1,2").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Configuration);
        assert!(err.message().contains("3 hosts"), "{err}");
    }

    #[test]
    fn several_hosts_in_the_authority() {
        let o = parse_lenient("postgres://u@h1:5432,h2:5433,h3/db").unwrap();
        assert_eq!(
            o.hosts(),
            &[tcp("h1", 5432), tcp("h2", 5433), tcp("h3", 5432)]
        );
        let o = parse_lenient("postgresql://u:pw@[::1]:1,h2/db").unwrap();
        assert_eq!(o.hosts(), &[tcp("::1", 1), tcp("h2", 5432)]);
        assert_eq!(o.password.as_deref(), Some("pw"));
    }

    #[test]
    fn unix_socket_directories() {
        let o = parse("postgres:///test?host=/var/run/postgresql&user=root").unwrap();
        assert_eq!(
            o.hosts(),
            &[PgHost::Unix {
                path: "/var/run/postgresql/.s.PGSQL.5432".into()
            }]
        );
        let o = parse_lenient("postgres://root@/test?host=/var/run/postgresql").unwrap();
        assert_eq!(
            o.hosts(),
            &[PgHost::Unix {
                path: "/var/run/postgresql/.s.PGSQL.5432".into()
            }]
        );
        let o = parse("postgres://root@%2Ftmp%2Fpg:5999/test").unwrap();
        assert_eq!(
            o.hosts(),
            &[PgHost::Unix {
                path: "/tmp/pg/.s.PGSQL.5999".into()
            }]
        );
        let o = parse_lenient("postgres://root@:6000/test?host=/sock").unwrap();
        assert_eq!(
            o.hosts(),
            &[PgHost::Unix {
                path: "/sock/.s.PGSQL.6000".into()
            }]
        );
    }

    #[test]
    fn no_host_means_the_local_socket_then_localhost() {
        let o = parse("postgres:///test").unwrap();
        assert_eq!(o.hosts().last(), Some(&tcp("localhost", 5432)));
        assert_eq!(o.dbname(), Some("test"));
    }

    #[test]
    fn pgbouncer_and_capacity_zero_select_unnamed_statements() {
        assert!(parse("postgres://h/db?pgbouncer=true")
            .unwrap()
            .unnamed_statements());
        assert!(parse("postgres://h/db?statement_cache_capacity=0")
            .unwrap()
            .unnamed_statements());
        assert!(!parse("postgres://h/db?pgbouncer=false")
            .unwrap()
            .unnamed_statements());
        assert_eq!(
            parse("postgres://h/db?pgbouncer=maybe").unwrap_err().kind(),
            ErrorKind::Configuration
        );
    }

    /// (Without the `tls` feature the modes that need TLS are refused: see `tls::tests`.)
    #[cfg(feature = "tls")]
    #[test]
    fn ssl_options_follow_libpq() {
        let mode = |url: &str| parse(url).unwrap().ssl_mode();
        assert_eq!(mode("postgres://h/db"), SslMode::Prefer);
        assert_eq!(mode("postgres://h/db?sslmode=disable"), SslMode::Disable);
        assert_eq!(mode("postgres://h/db?sslmode=allow"), SslMode::Allow);
        assert_eq!(mode("host=h sslmode=require"), SslMode::Require);
        assert!(parse("postgres://h/db?sslmode=bogus").is_err());
        // The checking modes need a CA; the error names the options to give.
        for checking in ["verify-ca", "verify-full"] {
            let err = parse(&format!("postgres://u:secret@h/db?sslmode={checking}")).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Configuration);
            assert!(err.message().contains("sslrootcert"), "{err}");
            assert!(!err.to_string().contains("secret"), "{err}");
        }
        // `sslrootcert=system` makes verify-full the default and refuses weaker modes.
        let o = parse("postgres://h/db?sslrootcert=system").unwrap();
        assert_eq!(o.ssl_mode(), SslMode::VerifyFull);
        assert_eq!(o.ssl_root_cert(), Some(&SslRootCert::System));
        let err = parse("postgres://h/db?sslrootcert=system&sslmode=require").unwrap_err();
        assert!(err.message().contains("verify-full"), "{err}");
        // A client certificate needs its key, and the other way round.
        assert!(parse("postgres://h/db?sslcert=/c.pem")
            .unwrap_err()
            .message()
            .contains("sslkey"));
        assert!(parse("postgres://h/db?sslkey=/k.pem")
            .unwrap_err()
            .message()
            .contains("sslcert"));
        // Files are read when the options are parsed: a missing one is a clear error then.
        let err = parse("postgres://h/db?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem")
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Configuration);
        assert!(
            err.message().contains("/nonexistent/ca.pem")
                && err.message().contains("cannot be read"),
            "{err}"
        );
    }

    #[test]
    fn busy_poll_parses_durations_and_rejects_bad_ones() {
        let limit = |url: &str| parse(url).unwrap().busy_poll();
        assert_eq!(limit("postgres://h/db?busy_poll=0"), Duration::ZERO);
        assert_eq!(
            limit("postgres://h/db?busy_poll=100us"),
            Duration::from_micros(100)
        );
        assert_eq!(
            limit("postgres://h/db?busy_poll=10ms"),
            Duration::from_millis(10)
        );
        assert_eq!(
            parse("host=h busy_poll=20us").unwrap().busy_poll(),
            Duration::from_micros(20)
        );
        for bad in ["soon", "11ms", "1s", "-5us"] {
            let err = parse(&format!("postgres://h/db?busy_poll={bad}")).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Configuration, "{bad}: {err}");
            let message = err.message();
            assert!(
                message.contains("busy_poll") && message.contains("at most 10ms"),
                "{message}"
            );
            assert_eq!(message, message.to_lowercase(), "{message}");
        }
    }

    #[test]
    fn shared_is_a_switch() {
        assert!(parse("postgres://h/db").unwrap().shared());
        assert!(!parse("postgres://h/db?shared=false").unwrap().shared());
        let err = parse("postgres://h/db?shared=sometimes").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Configuration);
        assert!(err.message().contains("use true or false"), "{err}");
    }

    #[test]
    fn unknown_and_bad_options() {
        let err = parse("postgres://u:secret@h/db?colour=blue").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Configuration);
        assert!(
            err.message().contains("colour") && err.message().contains("statement_cache_capacity"),
            "{err}"
        );
        assert!(!err.to_string().contains("secret"), "{err}");
        for bad in [
            "postgres://h/db?connect_timeout=soon",
            "postgres://h/db?statement_cache_capacity=-1",
            "postgres://h/db?drive=sideways",
            "postgres://h:0/db",
            "postgres://[::1/db",
        ] {
            let err = parse(bad).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Configuration, "{bad}: {err}");
        }
        assert_eq!(
            parse("postgres://h/db?connect_timeout=0")
                .unwrap()
                .connect_timeout(),
            None
        );
    }

    #[test]
    fn key_value_form() {
        let o = parse(
            "host=/var/run/postgresql port=5433 user=root password='a b\\'c' dbname=test \
             options='-c search_path=foo' pgbouncer=true",
        )
        .unwrap();
        assert_eq!(
            o.hosts(),
            &[PgHost::Unix {
                path: "/var/run/postgresql/.s.PGSQL.5433".into()
            }]
        );
        assert_eq!(o.password.as_deref(), Some("a b'c"));
        assert_eq!(o.server_options(), Some("-c search_path=foo"));
        assert!(o.unnamed_statements());
        assert!(!format!("{o:?} {}", o.redacted()).contains("a b"));
        let o = parse("host=h1,h2 port=1,2 dbname=x").unwrap();
        assert_eq!(o.hosts(), &[tcp("h1", 1), tcp("h2", 2)]);
        let err = parse("host=h nope=1").unwrap_err();
        assert!(err.message().contains("nope"), "{err}");
        assert!(parse("host=h sslmode=verify-full")
            .unwrap_err()
            .message()
            .contains("sslrootcert"));
        assert!(parse("host=h password='open").is_err());
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b%2F").as_deref(), Some("a b/"));
        assert_eq!(percent_decode("%C3%A9").as_deref(), Some("é"));
    }

    /// Issue #10: `connect_timeout=1e20` panicked in `Duration::from_secs_f64`.
    #[test]
    fn out_of_range_values_are_configuration_errors() {
        for (option, value) in [
            ("connect_timeout", "1e20"),
            ("connect_timeout", "1e30"),
            ("connect_timeout", "18446744073709551616"),
            ("connect_timeout", "86401"),
            ("connect_timeout", "-1"),
            ("connect_timeout", "NaN"),
            ("connect_timeout", "inf"),
            ("connect_timeout", ""),
            ("connect_timeout", "1e-9"),
            ("statement_cache_capacity", "10001"),
            ("statement_cache_capacity", "18446744073709551615"),
            ("port", "65536"),
            ("port", "-1"),
            ("busy_poll", "1e20"),
        ] {
            for url in [
                format!("postgres://h/db?{option}={value}"),
                format!("host=h {option}='{value}'"),
            ] {
                let err = parse(&url).unwrap_err();
                assert_eq!(err.kind(), ErrorKind::Configuration, "{url}: {err}");
                let message = err.message();
                assert!(message.contains(option), "{url}: {message}");
                assert!(
                    message.contains(" to ") || message.contains("at most"),
                    "names the limits: {message}"
                );
            }
        }
        let o = parse("host=h connect_timeout=86400 statement_cache_capacity=10000").unwrap();
        assert_eq!(o.connect_timeout(), Some(MAX_CONNECT_TIMEOUT));
        assert_eq!(o.statement_cache_capacity(), MAX_STATEMENT_CACHE_CAPACITY);
        assert_eq!(
            parse("postgres://h/db?connect_timeout=1.5")
                .unwrap()
                .connect_timeout(),
            Some(Duration::from_millis(1500))
        );
    }

    /// Issue #10: an unencoded `#` in the password made the parse error "`S3cr` is not a valid
    /// port".
    #[test]
    fn pieces_of_a_password_are_never_quoted() {
        for url in [
            "postgres://root:S3cr#3tPw@host/test",
            "postgres://root:S3cr/3tPw@host/test",
            "postgres://root:S3cr?3tPw@host/test",
            "postgres://root:[S3cr#3tPw@host/test",
            "postgres://root:S3cr?connect_timeout=3tPw@host/test",
            "postgres://root:S3cr?drive=3tPw@host/test",
            "host=h password=S3cr 3tPw",
        ] {
            let err = parse(url).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Configuration, "{url}: {err}");
            let shown = format!("{err} {err:?}");
            assert!(
                !shown.contains("S3cr") && !shown.contains("3tPw"),
                "{url}: {shown}"
            );
        }
        // It parses, as a port: the hosts and database name are never shown.
        let o = parse("postgres://root:12#3tPw@host/test").unwrap();
        let shown = format!("{o:?} {} {}", o.redacted(), o.shown_host(&o.hosts()[0]));
        assert!(!shown.contains("12") && !shown.contains("3tPw"), "{shown}");
        let o = parse("postgres://root:12/3tPw@host/test").unwrap();
        assert!(!format!("{o:?}").contains("3tPw"), "{o:?}");
        // A correct URL shows its hosts.
        let o = parse("postgres://root:pw@host:6000/test").unwrap();
        assert_eq!(o.shown_host(&o.hosts()[0]), "host:6000");
    }
}
