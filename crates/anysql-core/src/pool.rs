//! The connection pool behind an [`Engine`](crate::Engine): [`PoolOptions`] and [`PoolStatus`].

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use crate::connection::Connection;
use crate::driver::{Connector, DriverConnection};
use crate::error::{Error, ErrorKind};
use crate::option_values::{parse_bool, parse_duration};
use crate::runtime::{with_deadline, BoxFuture, SharedRuntime};

/// A hook run on every new connection before it is first handed out, from
/// [`EngineBuilder::after_connect`](crate::EngineBuilder::after_connect).
pub type AfterConnect =
    Arc<dyn for<'c> Fn(&'c mut Connection) -> BoxFuture<'c, Result<(), Error>> + Send + Sync>;

/// A `DEBUG` event with target `anysql::pool` (the `tracing` feature); without the feature its
/// arguments are not even evaluated.
macro_rules! pool_event {
    ($($arg:tt)+) => {
        #[cfg(feature = "tracing")]
        {
            ::tracing::debug!(target: "anysql::pool", $($arg)+);
        }
    };
}

/// How the pool behind an engine behaves. Set it on the builder or in the URL's query string:
/// `?max_size=8&acquire_timeout=5s`.
///
/// Durations in URLs take a unit: `250ms`, `5s`, `2m`, `1h`; a bare number means seconds.
///
/// Every value is checked when the engine is built; one out of range fails the build with a
/// configuration error naming the option and its limits:
///
/// | option | limits | default |
/// |---|---|---|
/// | `max_size` | 1 to 10 000 ([`PoolOptions::MAX_SIZE`]) | 10 |
/// | `min_idle` | 0 to `max_size` | 0 |
/// | `acquire_timeout` | 0 to 1 day ([`PoolOptions::MAX_ACQUIRE_TIMEOUT`]) | 30 s |
/// | `idle_timeout` | `off`, or up to 365 days ([`PoolOptions::MAX_LIFETIME`]) | 10 min |
/// | `max_lifetime` | `off`, or up to 365 days ([`PoolOptions::MAX_LIFETIME`]) | 30 min |
/// | `health_check` | `true` or `false` | `true` |
/// | `health_check_after` | 0 to 1 day: how long a connection must have been idle to be pinged on its way out (`0s`: always) | 1 s |
/// | `slow_statement` | `off`, or up to 1 day: statements that take at least this long are logged as a warning (needs the `tracing` feature) | off |
#[derive(Debug, Clone)]
pub struct PoolOptions {
    pub(crate) max_size: usize,
    pub(crate) min_idle: usize,
    pub(crate) acquire_timeout: Duration,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) max_lifetime: Option<Duration>,
    pub(crate) health_check: bool,
    pub(crate) health_check_after: Duration,
    pub(crate) reset_timeout: Duration,
    pub(crate) slow_statement: Option<Duration>,
}

impl Default for PoolOptions {
    fn default() -> Self {
        PoolOptions {
            max_size: 10,
            min_idle: 0,
            acquire_timeout: Duration::from_secs(30),
            idle_timeout: Some(Duration::from_secs(600)),
            max_lifetime: Some(Duration::from_secs(1800)),
            health_check: true,
            health_check_after: Duration::from_secs(1),
            reset_timeout: Duration::from_secs(5),
            slow_statement: None,
        }
    }
}

const URL_PARAMS: &[&str] = &[
    "max_size",
    "min_idle",
    "acquire_timeout",
    "idle_timeout",
    "max_lifetime",
    "health_check",
    "health_check_after",
    "slow_statement",
];

impl PoolOptions {
    /// The most connections a pool may open (`max_size`): far below what its semaphore can count,
    /// and more than any database serves at once.
    pub const MAX_SIZE: usize = 10_000;

    /// The longest `acquire_timeout`: one day.
    pub const MAX_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

    /// The longest `idle_timeout` and `max_lifetime`: 365 days (turn them off to keep connections
    /// for ever).
    pub const MAX_LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);

    pub(crate) fn is_url_param(key: &str) -> bool {
        URL_PARAMS.contains(&key)
    }

    /// Applies one URL parameter; `secret` keeps its value out of the message (it may be part of a
    /// password, see [`ConnectOptions::is_secret_pool_param`](crate::ConnectOptions::is_secret_pool_param)).
    pub(crate) fn apply_url_param(
        &mut self,
        key: &str,
        value: &str,
        secret: bool,
    ) -> Result<(), Error> {
        let bad = |what: &str| {
            let shown = if secret {
                "(not shown: it may be part of a password)".to_owned()
            } else {
                format!("`{value}`")
            };
            Error::configuration(format!(
                "invalid value {shown} for pool option `{key}`: expected {what}"
            ))
        };
        let count = |max: usize| {
            value
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| *n <= max)
                .ok_or_else(|| bad(&format!("a whole number from 0 to {max}")))
        };
        let duration = |max: Duration, limit: &str| {
            parse_duration(value).filter(|d| *d <= max).ok_or_else(|| {
                bad(&format!(
                    "a duration such as 500ms, 5s or 2m, at most {limit}"
                ))
            })
        };
        let optional_duration = |max: Duration, limit: &str| match value.trim() {
            "none" | "off" | "0" => Ok(None),
            _ => duration(max, limit).map(Some),
        };
        match key {
            "max_size" => {
                self.max_size = value
                    .trim()
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=Self::MAX_SIZE).contains(n))
                    .ok_or_else(|| bad(&format!("a whole number from 1 to {}", Self::MAX_SIZE)))?
            }
            "min_idle" => self.min_idle = count(Self::MAX_SIZE)?,
            "acquire_timeout" => {
                self.acquire_timeout = duration(Self::MAX_ACQUIRE_TIMEOUT, "1 day (24h)")?
            }
            "idle_timeout" => {
                self.idle_timeout = optional_duration(Self::MAX_LIFETIME, "365 days (8760h)")?
            }
            "max_lifetime" => {
                self.max_lifetime = optional_duration(Self::MAX_LIFETIME, "365 days (8760h)")?
            }
            "health_check" => {
                self.health_check = parse_bool(value).ok_or_else(|| bad("true or false"))?
            }
            "health_check_after" => {
                self.health_check_after = duration(Self::MAX_ACQUIRE_TIMEOUT, "1 day (24h)")?
            }
            "slow_statement" => {
                self.slow_statement = optional_duration(Self::MAX_ACQUIRE_TIMEOUT, "1 day (24h)")?
            }
            _ => return Err(Error::configuration(format!("unknown pool option `{key}`"))),
        }
        Ok(())
    }

    /// Checks every setting, from the URL and from the builder's methods alike.
    pub(crate) fn validate(&self) -> Result<(), Error> {
        if !(1..=Self::MAX_SIZE).contains(&self.max_size) {
            return Err(Error::configuration(format!(
                "the pool's max_size ({}) is out of range: it must be from 1 to {}",
                self.max_size,
                Self::MAX_SIZE
            )));
        }
        if self.min_idle > self.max_size {
            return Err(Error::configuration(format!(
                "the pool's min_idle ({}) is larger than its max_size ({}); it must be from 0 to max_size",
                self.min_idle, self.max_size
            )));
        }
        if self.acquire_timeout > Self::MAX_ACQUIRE_TIMEOUT {
            return Err(Error::configuration(format!(
                "the pool's acquire_timeout ({:?}) is out of range: it must be at most 1 day (24h)",
                self.acquire_timeout
            )));
        }
        if self.health_check_after > Self::MAX_ACQUIRE_TIMEOUT {
            return Err(Error::configuration(format!(
                "the pool's health_check_after ({:?}) is out of range: it must be at most 1 day (24h)",
                self.health_check_after
            )));
        }
        if let Some(threshold) = self.slow_statement {
            if cfg!(not(feature = "tracing")) {
                return Err(Error::configuration(
                    "slow_statement needs anysql's `tracing` feature, which logs the slow statements; \
                     enable it, or remove the option",
                ));
            }
            if threshold > Self::MAX_ACQUIRE_TIMEOUT {
                return Err(Error::configuration(format!(
                    "the slow_statement threshold ({threshold:?}) is out of range: it must be at most 1 day (24h), \
                     or None to turn it off"
                )));
            }
        }
        for (name, value) in [
            ("idle_timeout", self.idle_timeout),
            ("max_lifetime", self.max_lifetime),
        ] {
            if value.is_some_and(|d| d > Self::MAX_LIFETIME) {
                return Err(Error::configuration(format!(
                    "the pool's {name} ({:?}) is out of range: it must be at most 365 days (8760h), or None to \
                     turn it off",
                    value.unwrap_or_default()
                )));
            }
        }
        Ok(())
    }
}

/// A snapshot of the pool, from [`Engine::status`](crate::Engine::status).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolStatus {
    /// Open connections, idle and in use.
    pub size: usize,
    /// Open connections waiting in the pool.
    pub idle: usize,
    /// Connections handed out (including those being reset after an interrupted operation).
    pub in_use: usize,
    /// Tasks waiting for a connection.
    pub waiting: usize,
    /// The most connections the pool opens.
    pub max_size: usize,
}

/// Counters since the engine was built, from [`Engine::metrics`](crate::Engine::metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct PoolMetrics {
    /// Connections opened.
    pub connections_created: u64,
    /// Connections discarded because they were broken or could not be reset.
    pub connections_closed_broken: u64,
    /// Successful acquires.
    pub acquires: u64,
    /// Acquires that gave up after the acquire timeout.
    pub acquire_timeouts: u64,
    /// Total time spent waiting in acquire.
    pub acquire_wait: Duration,
}

pub(crate) struct IdleConnection {
    pub(crate) conn: Box<dyn DriverConnection>,
    pub(crate) created_at: Instant,
    idle_since: Instant,
}

#[derive(Default)]
struct Counters {
    created: AtomicU64,
    closed_broken: AtomicU64,
    acquires: AtomicU64,
    acquire_timeouts: AtomicU64,
    acquire_wait_ns: AtomicU64,
}

pub(crate) struct PoolShared {
    pub(crate) connector: Arc<dyn Connector>,
    pub(crate) runtime: SharedRuntime,
    pub(crate) options: PoolOptions,
    pub(crate) description: String,
    pub(crate) after_connect: Option<AfterConnect>,
    /// Fair (FIFO) permits, one per connection the pool may open: tokio's semaphore queues waiters
    /// in order, where async-lock's lets a newcomer overtake a woken waiter. Only tokio's `sync`
    /// feature is used; it needs no tokio runtime.
    permits: Arc<Semaphore>,
    /// Notified when a lease ends, for a graceful close.
    returned: Notify,
    idle: Mutex<VecDeque<IdleConnection>>,
    size: AtomicUsize,
    in_use: AtomicUsize,
    waiting: AtomicUsize,
    closed: AtomicBool,
    last_connect_error: Mutex<Option<String>>,
    counters: Counters,
}

/// A slot taken from the pool: the permit and the bookkeeping needed to give a connection back.
pub(crate) struct Lease {
    pub(crate) pool: Arc<PoolShared>,
    pub(crate) created_at: Instant,
    /// Released after the lease's own drop, so a woken waiter finds the connection already idle.
    _permit: OwnedSemaphorePermit,
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.pool.in_use.fetch_sub(1, Ordering::AcqRel) == 1 && self.pool.is_closed() {
            self.pool.returned.notify_waiters();
        }
    }
}

impl PoolShared {
    pub(crate) fn new(
        connector: Arc<dyn Connector>,
        runtime: SharedRuntime,
        mut options: PoolOptions,
        description: String,
        after_connect: Option<AfterConnect>,
    ) -> Arc<Self> {
        if let Some(limit) = connector.max_pool_size() {
            options.max_size = options.max_size.min(limit);
            options.min_idle = options.min_idle.min(options.max_size);
        }
        let pool = Arc::new(PoolShared {
            permits: Arc::new(Semaphore::new(options.max_size)),
            returned: Notify::new(),
            after_connect,
            connector,
            runtime,
            options,
            description,
            idle: Mutex::new(VecDeque::new()),
            size: AtomicUsize::new(0),
            in_use: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            last_connect_error: Mutex::new(None),
            counters: Counters::default(),
        });
        if let Some(interval) = pool.maintenance_interval() {
            let weak = Arc::downgrade(&pool);
            let runtime = Arc::clone(&pool.runtime);
            pool.runtime
                .spawn(Box::pin(maintain(weak, runtime, interval)));
        }
        pool
    }

    /// How often the background task expires idle connections and refills `min_idle`, if it
    /// has anything to do at all.
    fn maintenance_interval(&self) -> Option<Duration> {
        let o = &self.options;
        let shortest = [o.idle_timeout, o.max_lifetime].into_iter().flatten().min();
        match (shortest, o.min_idle > 0) {
            (None, false) => None,
            (shortest, refill) => {
                let mut interval = shortest.map_or(Duration::from_secs(30), |d| d / 4);
                if refill {
                    interval = interval.min(Duration::from_secs(1));
                }
                Some(interval.clamp(Duration::from_millis(50), Duration::from_secs(30)))
            }
        }
    }

    /// Closes expired idle connections, then opens connections up to `min_idle`.
    async fn maintain_once(self: &Arc<Self>) {
        let expired: VecDeque<IdleConnection> = {
            let mut idle = self.idle();
            let (keep, expired) = idle
                .drain(..)
                .partition(|c| !c.conn.is_broken() && !self.expired(c));
            *idle = keep;
            expired
        };
        for entry in expired {
            self.discard(entry.conn, false);
        }
        while !self.is_closed() && self.size.load(Ordering::Acquire) < self.options.min_idle {
            // Never wait for a slot: the refill must not compete with users for connections.
            let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() else {
                break;
            };
            match self.open().await {
                Ok(conn) => {
                    let lease = self.lease(Instant::now(), permit);
                    lease.put_idle(conn);
                }
                Err(_) => break,
            }
        }
    }

    fn idle(&self) -> MutexGuard<'_, VecDeque<IdleConnection>> {
        // The lock is never held across user code or an await, so poisoning cannot leave it
        // inconsistent; take the data either way.
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    fn closed_error(&self) -> Error {
        Error::closed(format!("the engine for {} is closed", self.description))
    }

    /// Takes a connection: an idle one if it is healthy, else a new one.
    pub(crate) async fn acquire(
        self: &Arc<Self>,
    ) -> Result<(Box<dyn DriverConnection>, Lease), Error> {
        if self.is_closed() {
            return Err(self.closed_error());
        }
        let started = Instant::now();
        let timeout = self.options.acquire_timeout;
        let result = with_deadline(&*self.runtime, Some(timeout), self.acquire_inner()).await;
        let waited = started.elapsed();
        self.counters.acquire_wait_ns.fetch_add(
            u64::try_from(waited.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        match result {
            Ok(ok) => {
                self.counters.acquires.fetch_add(1, Ordering::Relaxed);
                pool_event!(
                    wait_us = u64::try_from(waited.as_micros()).unwrap_or(u64::MAX),
                    "connection acquired"
                );
                Ok(ok)
            }
            Err(e) if e.kind() == ErrorKind::Timeout => {
                self.counters
                    .acquire_timeouts
                    .fetch_add(1, Ordering::Relaxed);
                let status = self.status();
                let mut message = format!(
                    "timed out after {timeout:?} waiting for a connection to {} ({} of {} in use, {} waiting); \
                     raise max_size or acquire_timeout, or return connections sooner",
                    self.description, status.in_use, status.max_size, status.waiting
                );
                let last = self
                    .last_connect_error
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone();
                if let Some(cause) = last {
                    message = format!("{message}; the last connect attempt failed: {cause}");
                }
                pool_event!(%message, "acquire timed out");
                Err(Error::new(ErrorKind::PoolTimeout, message))
            }
            Err(e) => Err(e),
        }
    }

    async fn acquire_inner(self: &Arc<Self>) -> Result<(Box<dyn DriverConnection>, Lease), Error> {
        let permit = {
            self.waiting.fetch_add(1, Ordering::Relaxed);
            let _waiting = DecrementOnDrop(&self.waiting);
            Arc::clone(&self.permits)
                .acquire_owned()
                .await
                .map_err(|_| self.closed_error())?
        };
        loop {
            if self.is_closed() {
                return Err(self.closed_error());
            }
            let candidate = self.idle().pop_back();
            let Some(mut idle) = candidate else { break };
            if idle.conn.is_broken() || self.expired(&idle) {
                self.discard(idle.conn, true);
                continue;
            }
            if self.options.health_check
                && idle.idle_since.elapsed() >= self.options.health_check_after
            {
                // Until it is leased, the connection is counted in `size` but held by this future
                // alone: if the future is dropped during the check, the guard frees its place.
                let uncount = Uncount(self);
                let ping = with_deadline(
                    &*self.runtime,
                    Some(self.options.reset_timeout.min(self.options.acquire_timeout)),
                    idle.conn.ping(),
                );
                let healthy = ping.await.is_ok();
                std::mem::forget(uncount);
                if !healthy {
                    self.discard(idle.conn, true);
                    continue;
                }
            }
            return Ok((idle.conn, self.lease(idle.created_at, permit)));
        }
        let conn = self.open().await?;
        Ok((conn, self.lease(Instant::now(), permit)))
    }

    /// Opens a new connection and runs the `after_connect` hook on it. The caller holds a permit.
    async fn open(&self) -> Result<Box<dyn DriverConnection>, Error> {
        let opened = async {
            let mut conn = self.connector.connect(&self.runtime).await?;
            if let Some(hook) = &self.after_connect {
                let mut setup = Connection::unpooled(conn);
                hook(&mut setup)
                    .await
                    .map_err(|e| e.context("the after_connect hook failed"))?;
                conn = setup.into_driver();
            }
            Ok::<_, Error>(conn)
        };
        match opened.await {
            Ok(conn) => {
                self.size.fetch_add(1, Ordering::AcqRel);
                self.counters.created.fetch_add(1, Ordering::Relaxed);
                pool_event!(pool = %self.description, "connection opened");
                *self
                    .last_connect_error
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = None;
                Ok(conn)
            }
            Err(e) => {
                pool_event!(pool = %self.description, error = %e, "connect failed");
                *self
                    .last_connect_error
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = Some(e.to_string());
                Err(e)
            }
        }
    }

    fn expired(&self, idle: &IdleConnection) -> bool {
        self.options
            .max_lifetime
            .is_some_and(|max| idle.created_at.elapsed() >= max)
            || self
                .options
                .idle_timeout
                .is_some_and(|max| idle.idle_since.elapsed() >= max)
    }

    /// Drops a connection for good and frees its place in the count.
    pub(crate) fn discard(&self, conn: Box<dyn DriverConnection>, broken: bool) {
        self.size.fetch_sub(1, Ordering::AcqRel);
        if broken {
            self.counters.closed_broken.fetch_add(1, Ordering::Relaxed);
        }
        pool_event!(broken, "connection discarded");
        drop(conn);
    }

    pub(crate) fn status(&self) -> PoolStatus {
        let size = self.size.load(Ordering::Acquire);
        let idle = self.idle().len();
        PoolStatus {
            size,
            idle,
            in_use: self.in_use.load(Ordering::Acquire),
            waiting: self.waiting.load(Ordering::Relaxed),
            max_size: self.options.max_size,
        }
    }

    fn lease(self: &Arc<Self>, created_at: Instant, permit: OwnedSemaphorePermit) -> Lease {
        self.in_use.fetch_add(1, Ordering::AcqRel);
        Lease {
            pool: Arc::clone(self),
            created_at,
            _permit: permit,
        }
    }

    pub(crate) fn metrics(&self) -> PoolMetrics {
        let c = &self.counters;
        PoolMetrics {
            connections_created: c.created.load(Ordering::Relaxed),
            connections_closed_broken: c.closed_broken.load(Ordering::Relaxed),
            acquires: c.acquires.load(Ordering::Relaxed),
            acquire_timeouts: c.acquire_timeouts.load(Ordering::Relaxed),
            acquire_wait: Duration::from_nanos(c.acquire_wait_ns.load(Ordering::Relaxed)),
        }
    }

    /// Closes the pool: acquires fail from now on (waiting ones too), idle connections are closed
    /// now, and the call returns once every connection in use has come back and been closed.
    pub(crate) async fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.permits.close();
        let idle: Vec<_> = self.idle().drain(..).collect();
        for entry in idle {
            self.size.fetch_sub(1, Ordering::AcqRel);
            let _ = entry.conn.close().await;
        }
        loop {
            let returned = self.returned.notified();
            if self.in_use.load(Ordering::Acquire) == 0 {
                break;
            }
            returned.await;
        }
    }
}

impl Lease {
    /// Gives a connection back. A connection that needs a reset is reset on a background task first,
    /// holding its slot until then, so the pool never hands out one in an unknown state.
    pub(crate) fn release(self, mut conn: Box<dyn DriverConnection>, needs_reset: bool) {
        let pool = Arc::clone(&self.pool);
        if pool.is_closed() || conn.is_broken() {
            let broken = conn.is_broken();
            pool.discard(conn, broken);
            return;
        }
        if !needs_reset {
            self.put_idle(conn);
            return;
        }
        let runtime = Arc::clone(&pool.runtime);
        let timeout = pool.options.reset_timeout;
        runtime.spawn(Box::pin(async move {
            let reset = with_deadline(&*pool.runtime, Some(timeout), conn.reset()).await;
            pool_event!(
                ok = reset.is_ok(),
                "connection reset after an interrupted operation"
            );
            match reset {
                Ok(()) if !conn.is_broken() && !pool.is_closed() => self.put_idle(conn),
                _ => pool.discard(conn, true),
            }
        }));
    }

    fn put_idle(self, conn: Box<dyn DriverConnection>) {
        let now = Instant::now();
        self.pool.idle().push_back(IdleConnection {
            conn,
            created_at: self.created_at,
            idle_since: now,
        });
    }
}

/// The background task of a pool: holds only a weak reference, and ends when the engine is dropped
/// or closed.
async fn maintain(pool: Weak<PoolShared>, runtime: SharedRuntime, interval: Duration) {
    loop {
        // The first round runs at once, so `min_idle` connections are there early.
        {
            let Some(pool) = pool.upgrade() else { return };
            if pool.is_closed() {
                return;
            }
            pool.maintain_once().await;
        }
        runtime.sleep(interval).await;
    }
}

/// Frees the place in `size` of a connection that is dropped by a cancelled future, unless
/// forgotten first.
struct Uncount<'p>(&'p PoolShared);

impl Drop for Uncount<'_> {
    fn drop(&mut self) {
        self.0.size.fetch_sub(1, Ordering::AcqRel);
        self.0
            .counters
            .closed_broken
            .fetch_add(1, Ordering::Relaxed);
    }
}

struct DecrementOnDrop<'a>(&'a AtomicUsize);

impl Drop for DecrementOnDrop<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_params_are_checked() {
        let mut o = PoolOptions::default();
        o.apply_url_param("max_size", "3", false).unwrap();
        o.apply_url_param("idle_timeout", "off", false).unwrap();
        assert_eq!((o.max_size, o.idle_timeout), (3, None));
        let err = o
            .apply_url_param("acquire_timeout", "soon", false)
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Configuration);
        o.max_size = 0;
        assert!(o.validate().is_err());
    }

    /// `slow_statement` works with the `tracing` feature, which logs the warnings, and is a clear
    /// configuration error without it (never silently ignored).
    #[test]
    fn slow_statement_needs_the_tracing_feature() {
        let mut o = PoolOptions::default();
        o.apply_url_param("slow_statement", "500ms", false).unwrap();
        assert_eq!(o.slow_statement, Some(Duration::from_millis(500)));
        let checked = o.validate();
        if cfg!(feature = "tracing") {
            checked.unwrap();
        } else {
            let err = checked.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Configuration);
            assert!(err.message().contains("`tracing` feature"), "{err}");
        }
        o.apply_url_param("slow_statement", "off", false).unwrap();
        assert_eq!(o.slow_statement, None);
        o.validate().unwrap();
        let err = o
            .apply_url_param("slow_statement", "25h", false)
            .unwrap_err();
        assert!(err.message().contains("slow_statement"), "{err}");
    }

    /// Issue #10: `max_size=10000000000000000000` panicked in the semaphore.
    #[test]
    fn out_of_range_values_are_configuration_errors() {
        for (key, value) in [
            ("max_size", "10000000000000000000"),
            ("max_size", "10001"),
            ("max_size", "0"),
            ("max_size", "-1"),
            ("max_size", ""),
            ("min_idle", "18446744073709551616"),
            ("acquire_timeout", "25h"),
            ("acquire_timeout", "1e20"),
            ("acquire_timeout", "inf"),
            ("acquire_timeout", "NaN"),
            ("acquire_timeout", "-5s"),
            ("idle_timeout", "100000h"),
            ("max_lifetime", "18446744073709551616"),
        ] {
            let err = PoolOptions::default()
                .apply_url_param(key, value, false)
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Configuration, "{key}={value}");
            assert!(err.message().contains(key), "{err}");
            assert!(
                err.message().contains("at most") || err.message().contains(" to "),
                "{err}"
            );
        }
        let err = PoolOptions::default()
            .apply_url_param("max_size", "pw", true)
            .unwrap_err();
        assert!(!err.message().contains("pw"), "{err}");
        let mut o = PoolOptions::default();
        o.apply_url_param("max_size", "10000", false).unwrap();
        o.apply_url_param("acquire_timeout", "24h", false).unwrap();
        o.validate().unwrap();
        for set in [
            (|o: &mut PoolOptions| o.max_size = usize::MAX) as fn(&mut PoolOptions),
            |o| o.acquire_timeout = Duration::MAX,
            |o| o.idle_timeout = Some(Duration::MAX),
            |o| o.max_lifetime = Some(Duration::from_secs(366 * 24 * 3600)),
            |o| o.min_idle = 11,
        ] {
            let mut o = PoolOptions::default();
            set(&mut o);
            let err = o.validate().unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Configuration, "{o:?}");
        }
    }
}
