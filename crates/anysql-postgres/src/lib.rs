//! The PostgreSQL driver for anysql, over tokio-postgres, on any executor.
//!
//! [`PostgresDriver`] serves `postgres://` and `postgresql://` URLs (and libpq `key=value` strings). It
//! uses tokio-postgres with `default-features = false`: no tokio runtime, reactor or timer is pulled
//! in. Every socket is opened by the engine's [`Runtime`](anysql_core::Runtime) (TCP with
//! `TCP_NODELAY`, or a Unix socket) and handed to `Config::connect_raw`, so the same driver runs on
//! tokio, smol and async-std.
//!
//! ```no_run
//! # fn runtime() -> anysql_core::SharedRuntime { unimplemented!() }
//! # async fn demo() -> Result<(), anysql_core::Error> {
//! use anysql_core::EngineBuilder;
//! use anysql_postgres::PostgresDriver;
//!
//! let engine = EngineBuilder::new("postgres://app:secret@db.internal/app?application_name=web")
//!     .driver(PostgresDriver)
//!     .shared_runtime(runtime())
//!     .build()?;
//! let name: String = engine.fetch_scalar("SELECT name FROM users WHERE id = $1", (42,)).await?;
//! # let _ = name;
//! # Ok(())
//! # }
//! ```
//!
//! # Connection URL
//!
//! `postgres://[user[:password]@][host][:port][,host[:port]...][/dbname][?option=value&...]`, as
//! libpq writes it. User, password, host and database name are percent-decoded. A host that starts
//! with `/` is a Unix socket *directory*: the socket is `<dir>/.s.PGSQL.<port>`, as in libpq
//! (`postgres:///app?host=/var/run/postgresql`, or `postgres://app@%2Fvar%2Frun%2Fpostgresql/app`).
//! With no host at all, the first of `/run/postgresql`, `/var/run/postgresql` and `/tmp` that has
//! a socket is tried, then `localhost`. Several hosts are tried in order; the error lists every
//! attempt.
//!
//! | option | meaning | default |
//! |---|---|---|
//! | `host`, `port` | hosts (comma-separated) and ports (one for all, or one per host) | the local socket, then `localhost`; `5432` |
//! | `user`, `password`, `dbname` | as in the URL's parts; these win over them | |
//! | `application_name` | reported in `pg_stat_activity` | |
//! | `options` | server options, such as `-c search_path=foo` (`options=-c%20search_path%3Dfoo`) | |
//! | `connect_timeout` | seconds per host (fractions allowed; 0 = none), through the runtime's timer | none |
//! | `sslmode` | `disable`, `allow`, `prefer`, `require`, `verify-ca` or `verify-full`, as in libpq: see [TLS](#tls) | `prefer` |
//! | `sslrootcert` | a PEM file of the CAs the server's certificate must chain to, or `system` for the platform's trusted roots | none |
//! | `sslcert`, `sslkey` | a client certificate (PEM, with its chain) and its private key (PEM: PKCS#8, PKCS#1 or SEC1), sent when the server asks for one | none |
//! | `statement_cache_capacity` | prepared statements kept per connection; `0` = unnamed statements only | `100` |
//! | `pgbouncer` | `true` = unnamed statements only (PgBouncer transaction pooling) | `false` |
//! | `drive` | `inline` or `spawned`: see [Driving the connection](#driving-the-connection) | `inline` |
//! | `shared` | `true`: the engine's own statements outside transactions share one pipelined connection; see [Shared connection](#shared-connection) | `true` |
//! | `target_session_attrs` | `any`, `read-write`, `read-only`, `primary`, `standby` or `prefer-standby`: which kind of server to connect to; see [Several hosts](#several-hosts-failover-and-read-replicas) | `any` |
//! | `load_balance_hosts` | `disable` (in order) or `random` (shuffled for each connection) | `disable` |
//! | `replica_hosts` | read replicas, `host[:port]` items separated by commas, each a pool of its own with these settings; see [Several hosts](#several-hosts-failover-and-read-replicas) | none |
//! | `busy_poll` | how long a caller may busy-poll the socket for a reply before its task sleeps, in inline mode (see [Busy-polling](#busy-polling)); a duration such as `200us`, at most `10ms`; `0` turns it off | `200us` |
//!
//! The libpq `key=value` form takes the same keys
//! (`host=/var/run/postgresql dbname=app user=app password='a b'`). Unknown options are
//! configuration errors when the engine is built. No message, `Debug` or `Display` shows the
//! password.
//!
//! # Several hosts, failover and read replicas
//!
//! A URL may name several hosts, as libpq's do: `postgres://app@h1:5432,h2:5433/app`, or
//! `host=h1,h2 port=5432,5433` (in the query or the `key=value` form). Each new connection tries
//! them in order (shuffled, with `load_balance_hosts=random`), each within its own
//! `connect_timeout`, until one lets the login in and is of the kind `target_session_attrs` asks
//! for, with libpq's meaning:
//!
//! | `target_session_attrs` | the server must | checked with |
//! |---|---|---|
//! | `any` (default) | accept the login | |
//! | `read-write` | allow writes | `SHOW transaction_read_only` is `off` |
//! | `read-only` | refuse writes | `SHOW transaction_read_only` is `on` |
//! | `primary` | not be in recovery | `pg_is_in_recovery()` is false |
//! | `standby` | be in recovery | `pg_is_in_recovery()` is true |
//! | `prefer-standby` | be a standby if any host is one; else any server, on a second pass | |
//!
//! A host of the wrong kind counts as a failed attempt, and when none is left the connect error
//! lists every host tried with its reason ("… 127.0.0.1:5433: the server is read-only
//! (target_session_attrs=read-write)").
//!
//! **Failover.** With `target_session_attrs=read-write` (or `primary`) the engine survives a
//! failover without being rebuilt: connections to the old primary fail (a connection error each,
//! once) and are discarded, and the new ones go to whichever host is the primary now. A statement
//! refused because the session is read-only (SQLSTATE `25006`, what a primary demoted to a standby
//! answers) also marks its connection broken on such an engine, so the pool replaces it rather
//! than handing it out again; on other engines `25006` is an ordinary database error.
//!
//! **Read replicas.** `replica_hosts=r1:5432,r2:5432` gives the engine one pool per replica, with
//! the URL's other settings (user, password, database, pool options) and any server accepted;
//! [`Engine::reader`](anysql_core::Engine::reader) sends reads there, falling back to the primary
//! when no replica can be reached, and [`Engine::replicas`](anysql_core::Engine::replicas) reports
//! each pool. [`EngineBuilder::replica`](anysql_core::EngineBuilder::replica) adds replicas with
//! URLs of their own.
//!
//! # TLS
//!
//! With the `tls` feature (on by default, and part of the anysql facade's `postgres` feature), connections over TCP use TLS as libpq's `sslmode`
//! says, through [rustls](https://docs.rs/rustls) over the runtime's own socket, on tokio, smol
//! and async-std alike; no OpenSSL. The driver sends the `SSLRequest` itself and, if the server
//! agrees, runs the handshake; tokio-postgres then speaks the protocol over the decrypted stream.
//!
//! | `sslmode` | TLS | the server's certificate |
//! |---|---|---|
//! | `disable` | never | |
//! | `allow` | only if the server refuses the plaintext connection (then a second attempt with TLS) | not checked |
//! | `prefer` (the default) | if the server offers it; plaintext if it does not, or if it refuses the connection over TLS | not checked |
//! | `require` | always: a server without TLS is an error | not checked; with an `sslrootcert` *file*, checked as in `verify-ca` (as libpq does) |
//! | `verify-ca` | always | must chain to a CA of `sslrootcert` |
//! | `verify-full` | always | must chain to a CA of `sslrootcert` and name the host connected to: a DNS name, or an IP address (which gets no SNI) |
//!
//! `verify-ca` and `verify-full` need `sslrootcert`: a file, or `system` for the platform's
//! trusted roots. With `sslrootcert=system` the default mode is `verify-full` and a weaker one is
//! a configuration error, as in libpq 16 (every public CA can vouch for any name, so only the
//! name check makes it safe). The platform's roots are checked by the platform's verifier
//! (`rustls-platform-verifier`) rather than a copy of Mozilla's list compiled in (`webpki-roots`):
//! `system` then means what it means for libpq, the certificates the machine trusts, including a
//! company CA installed there and, on Linux, `SSL_CERT_FILE`/`SSL_CERT_DIR`; on macOS and Windows
//! the operating system also checks revocation.
//!
//! Unix sockets never use TLS, whatever the mode (libpq does the same). Cancel requests go over TLS,
//! checked the same way, when their connection does. A client certificate is sent when
//! `sslcert` and `sslkey` are given, for `pg_hba.conf` lines with the `cert` method or
//! `clientcert=verify-full`.
//!
//! The files are read when the engine is built: a missing or unreadable one is a configuration
//! error then, naming it. Unlike libpq, nothing is read from `~/.postgresql/` by default and the
//! `PGSSL*` environment variables are not consulted: give the options in the URL. Encrypted private
//! keys (`sslpassword`) and certificate revocation lists (`sslcrl`) are not supported.
//!
//! ```no_run
//! # fn runtime() -> anysql_core::SharedRuntime { unimplemented!() }
//! # async fn demo() -> Result<(), anysql_core::Error> {
//! use anysql_core::EngineBuilder;
//! use anysql_postgres::PostgresDriver;
//!
//! let engine = EngineBuilder::new(
//!     "postgres://app@db.example.com/app?sslmode=verify-full&sslrootcert=/etc/app/db-ca.pem",
//! )
//! .driver(PostgresDriver)
//! .shared_runtime(runtime())
//! .build()?;
//! let tls: bool = engine
//!     .fetch_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", ())
//!     .await?;
//! assert!(tls);
//! # Ok(())
//! # }
//! ```
//!
//! The crypto provider is *ring*: it builds with nothing but a C compiler, where aws-lc-rs
//! compiles a far larger C library, takes much longer to build and needs CMake or NASM on some
//! targets. It is passed
//! to rustls explicitly, so a dependency tree that also enables aws-lc-rs (which leaves rustls
//! without a process-wide default) does not make connecting panic. Without the `tls` feature,
//! `disable`, `allow` and `prefer` connect in plaintext (as a libpq built without SSL support
//! does) and the modes that need TLS are configuration errors.
//!
//! # Driving the connection
//!
//! tokio-postgres splits a connection into a `Client`, which sends requests, and a `Connection`
//! future, which does the socket I/O and must be polled. There are two ways to poll it:
//!
//! - **inline** (the default): the [`PgConnection`] owns the future, and every operation polls it
//!   beside its own future, from the task that awaits the operation. No task is spawned and no
//!   other thread is woken. The two are polled with a waker that notices when one wakes the other
//!   during the same poll (queueing a request, delivering a reply) and polls again at once instead
//!   of going through the executor. When no operation runs nothing polls the connection, which is
//!   fine: replies to abandoned requests are discarded the next time it is polled, and
//!   [`is_broken`](anysql_core::DriverConnection::is_broken), which the pool asks before handing a
//!   connection out, polls a connection that has sat unpolled for 10 ms once, without blocking, so
//!   a session the server ended while it sat idle is noticed there, as in spawned mode.
//! - **spawned**: the future runs as a task on the runtime, as in tokio-postgres' README. Each
//!   query then takes a wake-up of that task, and another back, possibly across threads.
//!
//! Inline is the default: where the spawned connection task runs on another thread than the
//! caller (smol's global executor), inline driving saves the cross-thread hand-off on every query;
//! on tokio the two modes are within the noise of each other. The measurements behind this choice
//! are in the repository's `docs/benchmarks.md` ("PostgreSQL drive modes").
//!
//! # Busy-polling
//!
//! In inline mode, when an operation and the connection both wait for the server, the awaiting
//! task does not go to sleep at once: for up to `busy_poll` (200 µs) it reads the socket directly
//! from the operating system ([`Socket::try_read_direct`](anysql_core::Socket::try_read_direct),
//! through the socket's descriptor or a duplicate of it), yielding its OS thread between tries, and
//! handles the reply as soon as its bytes are there. The bytes go into a small read-ahead buffer
//! that tokio-postgres reads first, so they reach it in order. While it busy-polls, a read that
//! finds nothing registers nothing with the runtime's reactor; the last poll before the task sleeps
//! does, so no reply is ever missed (and the reactors that anysql's runtimes use are edge-triggered
//! or re-armed per wait, so bytes taken directly cause at most a spurious wake-up).
//!
//! Why: on a virtual machine, a thread that sleeps lets its vCPU halt, and waking it costs tens of
//! microseconds, more than a point query; on async-std a reply also goes through the reactor
//! thread (3.4 context switches per query). But the spinning thread occupies a core, and when the
//! server runs on the same machine (as in the benchmarks) it may be the core the server wanted. So
//! each connection keeps moving averages of its waits (from the moment the task would sleep until
//! the operation makes progress) that busy-polled and of those that slept, decides at the start
//! of each wait to busy-poll only while that has been the faster way, and tries the other way on
//! one wait in 16 to notice when that changes. [`SpinPolicy`](anysql_core::spin::SpinPolicy)
//! stops it altogether while waits take longer than twice `busy_poll` (slow queries, a crowded
//! machine). The cost is CPU: up to `busy_poll` of one core per wait while it pays, and an
//! executor thread held for that long (other tasks on that thread wait; an idle connection never
//! spins). So only a caller waiting alone among its engine's callers busy-polls
//! ([`Waiters`](anysql_core::spin::Waiters)): when several tasks wait on connections of the same
//! engine, perhaps on one executor thread, each lets the others run, and their requests go out
//! side by side. `busy_poll=0` turns it off, for machines where CPU matters more than latency. It never
//! runs in spawned mode, on the engine's shared connection, in the pool's health check or when a
//! connection is dropped.
//!
//! The measurements behind the default `busy_poll` are in the repository's `docs/benchmarks.md`
//! ("Busy-polling: the PostgreSQL `busy_poll` budget").
//!
//! A pooled connection serves one operation at a time (the core only uses `&mut self`);
//! tokio-postgres pipelines the requests of one operation, which
//! [`execute_many`](anysql_core::DriverConnection::execute_many) uses. Concurrent callers are
//! pipelined on the shared connection, next.
//!
//! # Shared connection
//!
//! The statements an [`Engine`](anysql_core::Engine) runs itself, outside any transaction
//! (`engine.execute`, `engine.fetch_all`, `fetch_one`, `fetch_optional`, `fetch_scalar`,
//! `fetch_all_as`), go over **one shared connection** that every task uses at once
//! ([`anysql_core::Connector::connect_shared`]), instead of each taking
//! a pooled connection for a single round trip. Its tokio-postgres `Connection` runs as a task on
//! the runtime (spawned mode: replies must reach whichever caller waits), so the requests of
//! concurrent callers are written back to back and answered in order by one server session, as
//! with a tokio-postgres `Client` shared between tasks. With many tasks querying, the server then
//! reads and answers several requests per wake-up instead of waking one backend per query
//! (`docs/benchmarks.md` in the repository has the figures).
//!
//! - `engine.acquire()`, `engine.begin()` and transactions use pooled connections, exclusively,
//!   as before; so does transaction-control SQL sent through the engine (`BEGIN`, `COMMIT`,
//!   `SAVEPOINT`, …), which would otherwise change the session under other callers' statements.
//!   Other session state set through `engine.execute` (`SET`, temporary tables) lands on the shared
//!   session; as with a pool, where it would land on some pooled connection, set it in the URL
//!   (`options=-c …`) or on an acquired connection instead.
//! - The shared connection is opened on first use and is not counted in
//!   [`Engine::status`](anysql_core::Engine::status): the engine holds at most `max_size` pooled
//!   connections plus this one.
//! - A dropped future leaves the others alone: tokio-postgres discards the replies nobody waits
//!   for. But the server still runs its statement to the end, and the statements queued behind it
//!   on the shared connection wait for that (on a pooled connection, `reset` would cancel it after
//!   50 ms). For statements that may run long, use `engine.acquire()`, or bound them with a
//!   `statement_timeout` (`options=-c%20statement_timeout%3D5s`).
//!   A statement that fails on the server fails alone (each is its own implicit transaction).
//!   When the session ends (terminated, server restart), statements in flight fail with
//!   [`Connection`] errors and the next statement opens a new shared connection.
//! - Named statements are cached per shared connection as on pooled ones (the cache is locked only
//!   to look a statement up, never while a query runs). A statement prepared for a future that is
//!   dropped during its preparation stays on the server until the connection closes.
//! - Not used with `pgbouncer=true` (PgBouncer in transaction mode may send pipelined statements
//!   to different server sessions), when an `after_connect` hook is set (it runs on pooled
//!   connections only), or with `shared=false`.
//! - No busy-polling on it: its connection task sleeps between replies, and under load it is
//!   woken for batches of them.
//!
//! # Statements
//!
//! Each connection keeps a bounded LRU of named prepared statements keyed by SQL text
//! (`statement_cache_capacity`, default 100, with the column decoders and the shared column names
//! of each). An evicted statement is closed on the server. A statement invalidated by a schema
//! change ("cached plan must not change result type") is dropped from the cache so that the next
//! call prepares it afresh.
//!
//! With `statement_cache_capacity=0` or `pgbouncer=true` the driver uses unnamed statements only,
//! each sent with its parameters in one round trip (`query_typed`): safe behind PgBouncer in
//! transaction pooling mode. There is no Describe round trip to learn the parameter types, so each
//! value declares one: integers `int8`, floats `float8`, bools `bool`, bytes `bytea`, dates and
//! times `date`, `time`, `timestamp` and `timestamptz`, UUIDs `uuid`, JSON `jsonb`, IP addresses
//! `inet`, and an array the array type of its first non-NULL element's (`int8[]`), all sent in
//! binary; text, numerics, NULL, and arrays of text or numerics (and empty ones, and those of
//! NULLs) leave the type to the server (OID 0) and are sent in text format, for the server to
//! parse as whatever type it infers. Type mistakes that the named mode reports as [`Parameter`]
//! errors before sending are then the server's errors (`22P02` invalid input, `22003` out of range,
//! `42883` no such operator), and a function that wants an `int4` needs a cast
//! (`repeat('x', $1::int4)`). Where the server can convert the declared type to the one it wants,
//! it does, as a cast would: JSON into a `json` column is stored in `jsonb`'s spelling, and a
//! `Timestamp` into a `timestamptz` column (or a `TimestampTz` into a `timestamp` one), which the
//! named mode refuses, is converted in the session's time zone.
//!
//! A statement without parameters runs through the simple query protocol: one round trip, no
//! prepared statement, and several statements separated by `;` are allowed.
//!
//! Refused before anything is sent, whatever the entry point: `COPY … FROM STDIN` and
//! `COPY … TO STDOUT` through `execute` or `fetch` (also inside a multi-statement string; an
//! [`InvalidStatement`] error pointing to the COPY API, see [COPY](#copy); COPY with a file on
//! the server runs as usual), and a statement with more than 65,535 parameters, the protocol's
//! limit (a [`Parameter`] error naming the limit and the count). The connection stays usable, and
//! so do the other callers' statements.
//!
//! # Types
//!
//! Each PostgreSQL type decodes into one [`Value`](anysql_core::Value) variant, and each variant
//! binds to the types in its row (and to more, below). The Rust types are those anysql-core converts
//! the variant to and from, some behind its features; the driver maps variants, never Rust types,
//! so it needs no date, UUID or JSON crate of its own (nor postgres-types' `with-chrono-0_4` and
//! like features): the binary formats come from postgres-protocol's codecs.
//!
//! | PostgreSQL | [`Value`](anysql_core::Value) | Rust types (anysql-core feature) |
//! |---|---|---|
//! | `int2`, `int4`, `int8`, `oid` | `Int` | `i8`–`i64`, `u8`–`u32`, `u64` (above `i64::MAX` it binds as `Numeric`) |
//! | `float4`, `float8` | `Float` | `f32`, `f64` |
//! | `numeric` | `Numeric`: the exact decimal text PostgreSQL prints, scale kept (`1.50` for `numeric(10,2)`), `NaN`, `Infinity`, `-Infinity` | `String`; integers when whole and in range (`sum(bigint)` is `numeric`); `rust_decimal::Decimal` (`decimal`, up to 28 digits: a wider value is an error, never rounded); `bigdecimal::BigDecimal` (`bigdecimal`, any precision); never silently `f64` (cast to `float8` for that) |
//! | `text`, `varchar`, `char(n)`, `name`, enums, `citext`, unknown literals | `Text` | `String`, `&str` |
//! | `bytea` | `Blob` | `Vec<u8>`, `&[u8]`, `[u8; N]` |
//! | `bool` | `Bool` | `bool` |
//! | `date` | `Date` | `chrono::NaiveDate` (`chrono`), `time::Date` (`time`) |
//! | `time` | `Time` | `chrono::NaiveTime`, `time::Time` |
//! | `timestamp` | `Timestamp` | `chrono::NaiveDateTime`, `time::PrimitiveDateTime` |
//! | `timestamptz` | `TimestampTz` (decoded at offset 0) | `chrono::DateTime<Utc>`, `DateTime<FixedOffset>`, `DateTime<Local>`, `time::OffsetDateTime` |
//! | `uuid` | `Uuid` | `uuid::Uuid` (`uuid`) |
//! | `json`, `jsonb` | `Json` | `serde_json::Value`, `Json<T>` for serde types (`json`), `String` |
//! | `inet`, `cidr` | `Inet` (one address); a network (`10.0.0.0/8`) is `Text`, as below | `std::net::IpAddr`; `String` |
//! | `interval`, `timetz`, ranges and multiranges, composites and records, `bit`, `varbit`, `macaddr`, `macaddr8`, `"char"`, `pg_lsn`, `point`, `line`, `lseg`, `box`, `path`, `polygon`, `circle` | `Text`: the server's own text of the value (below) | `String` |
//! | one-dimensional arrays of the types above (`int4[]`, `text[]`, `uuid[]`, `timestamptz[]`, `jsonb[]`, `interval[]`, `int4range[]`, …) | `Array`, NULL elements `Null` | `Vec<T>`, `Vec<Option<T>>`, `&[T]` |
//! | NULL of any type | `Null` | `Option<T>` |
//!
//! ## Types read as text
//!
//! tokio-postgres asks the server for every result column in binary (its API has no per-column
//! choice of format), so the text of a type anysql has no variant for never comes over the wire.
//! For the types in the table's `Text` row the driver writes it itself, from the binary value,
//! exactly as PostgreSQL's output function does, so such a column decodes into `String` (and,
//! as a [`Value`](anysql_core::Value), is `Text`) without a cast in the SQL, and reads the same
//! as `expression::text` would:
//!
//! - `interval` in the default `IntervalStyle`, `postgres`: `1 year 2 mons -3 days +04:05:06.5`;
//! - `timetz`: `12:00:00.5+05:30`;
//! - ranges and multiranges of the types in the table: `[1,5)`, `empty`, `(,)`,
//!   `["2020-01-01 00:00:00",infinity)`, `{[1,3),[5,7)}`;
//! - composites and anonymous records (`ROW(…)`) whose fields are of the types in the table, with
//!   PostgreSQL's quoting: `(1,"a b",)`;
//! - `bit`/`varbit` `1010`, `macaddr` `08:00:2b:01:02:03`, `"char"`, `pg_lsn` `16/B374D848`, an
//!   `inet` or `cidr` network `10.0.0.0/8`, and the geometric types: `(1.5,-2)`, `<(1,2),3>`;
//! - arrays of all of these, as an `Array` of their texts.
//!
//! The values inside are written as under PostgreSQL's default settings, whatever the session's:
//! `DateStyle` ISO, shortest exact floats (`extra_float_digits` 1), `bytea` in hex, and
//! timestamps with a time zone **in UTC** (`2020-01-01 12:00:00+00`), where the server's own text
//! would follow the session's `TimeZone`. A session that sets `IntervalStyle`, `DateStyle` or
//! `TimeZone` to something else still gets these forms; cast in the SQL for the session's.
//!
//! Domains decode as their base type. Each of these is a [`Decode`] error naming the column and
//! its type, and saying what to do, when a row is decoded: `infinity` and `-infinity` dates and
//! timestamps (no Rust type holds them: cast the column to `text`, or filter with `isfinite`);
//! an array of more than one dimension (`unnest` it, or cast to `text`); `money`, whose text
//! follows the server's `lc_monetary` (its currency symbol and separators, which the driver
//! cannot reproduce exactly: cast to `numeric` for the exact amount, or to `text`); a record or
//! composite with a field of a type not in the table; and any other type (`tsvector`, `xml`,
//! extension types, …: cast to `text`). An array's lower bound is not kept. An `IpAddr` decoded
//! from a network is an error saying so (take `host(…)::inet` for the address alone).
//!
//! ## Binding
//!
//! Parameters take their type from the prepared statement. NULL binds to anything. An `Int` binds
//! to the integer types (range-checked: 70000 for an `int2` is a [`Parameter`] error naming `$n`),
//! to the float types (converted) and to `numeric`; a `Float` to the float types and `numeric`; a
//! `Bool` to `bool`; a `Blob` to `bytea`; a `Text` to the text types (`json` among them) and,
//! through PostgreSQL's text input, to every other type but the integer, float, `bool` and
//! `bytea` types (`date`, `numeric`, `uuid`, `jsonb`, arrays, `interval`, …); a `Numeric`, as its
//! exact text, to `numeric`, the text types and those same types (not to the integer, float,
//! `bool` or `bytea` types, which would round it or refuse it: cast the placeholder,
//! `$1::numeric`).
//!
//! - `Date` binds to `date`, `Time` to `time` (00:00:00 to 24:00:00), `Timestamp` to `timestamp`,
//!   and `TimestampTz` to `timestamptz`: the instant, whatever offset it carries, never shifted
//!   by the session's `TimeZone`. Values outside PostgreSQL's range (dates from 4714-11-24 BC to
//!   5874897-12-31, timestamps from 4714-11-24 00:00:00 BC to 294276-12-31 23:59:59.999999) are
//!   [`Parameter`] errors, never `infinity`.
//! - **Below a microsecond**, which PostgreSQL does not keep, times and timestamps are truncated
//!   toward the past (`…:05.123456789` is stored as `…:05.123456`), whether sent in binary or as
//!   text: nothing is carried into the next second or day (`23:59:59.9999999` stays on its day),
//!   and the result is the same every time. (PostgreSQL's own text input would round.)
//! - A `Timestamp` is refused for a `timestamptz` parameter, and a `TimestampTz` for a `timestamp`
//!   one: PostgreSQL would convert either in the session's time zone, so the value stored would
//!   depend on a setting. The error says what to bind instead, or how to ask for the conversion
//!   explicitly (`$1::timestamp` on a `timestamptz` column has PostgreSQL read the local time in
//!   the session's zone).
//! - `Uuid` binds to `uuid`; `Json` to `jsonb`, `json` and the text types; `Inet` to `inet` and
//!   `cidr` (one address: the full netmask).
//! - `Array` binds to an array type whose element type takes every element by these rules (NULL
//!   elements included; the empty array too), so `WHERE id = ANY($1)` takes a `Vec<i64>` for an
//!   `int4` column, each element range-checked. An element that does not fit is a [`Parameter`]
//!   error naming its index. Arrays of arrays are refused (one dimension only).
//! - `Invalid` (a parameter that could not be made, such as a `Json<T>` whose serialization failed)
//!   binds to nothing: the statement fails with a [`Parameter`] error carrying its message, and the
//!   statement is not run.
//!
//! Anything else is a [`Parameter`] error naming the placeholder and both types, raised before
//! anything is sent. One exception: a placeholder that nothing in the statement types, which
//! PostgreSQL makes `text` (`SELECT $1`), takes the type of a value that cannot bind to `text`:
//! `int8`, `float8`, `bool`, `bytea`, `date`, `time`, `timestamp`, `timestamptz`, `uuid`, `inet`,
//! and for arrays the array of their first non-NULL element's type, or `text[]` (`numeric[]`) for
//! arrays of text (numerics), empty ones and those of NULLs. The statement is prepared again with
//! that type and cached separately, so `SELECT $1` returns what was bound, as on SQLite. (JSON
//! binds to `text`, so in named mode `SELECT $1` returns it as `Text`; unnamed statements declare
//! it `jsonb`.) If the server refuses that type (`WHERE name = $1` with an integer: no operator
//! `text = bigint`), its error is returned. Wrong parameter counts are reported before sending in
//! both statement modes.
//!
//! # Errors
//!
//! - Server errors are [`Database`] errors with the SQLSTATE as [`code`](anysql_core::Error::code),
//!   the constraint kind (`23505` unique, `23503` foreign key, `23502` not null, `23514` check),
//!   constraint and table names, and [`is_retryable`](anysql_core::Error::is_retryable) for
//!   `40001` and `40P01`. The message carries the server's detail and hint.
//! - A session the server ends (`pg_terminate_backend`, shutdown, restart: FATAL errors, `57P0x`
//!   and class `08`), a closed socket and other I/O errors are [`Connection`] errors, so
//!   [`is_connection`](anysql_core::Error::is_connection) is true; the message names the SQLSTATE
//!   (`… (code 57P01)`) and the source is the server's error. Either way the connection reports
//!   [`is_broken`](anysql_core::DriverConnection::is_broken) from then on. ([`Closed`] is for
//!   engines and connections the application closed.)
//! - Connect failures are [`Connection`] errors whose message names the URL (without password) and
//!   every host tried, and whose source is the last cause. A login the server rejects (wrong
//!   password `28P01`, unknown role `28000`, unknown database `3D000`) is a connect failure too, of
//!   kind [`Connection`], with the server's message as the source: the engine cannot work
//!   with these settings, whichever statement comes next.
//! - `COMMIT` of a transaction in which a statement failed is a [`Database`] error with code
//!   `25P02` saying it was rolled back (PostgreSQL itself answers with a silent `ROLLBACK`), whether
//!   through [`Transaction::commit`](anysql_core::Transaction::commit) or a `COMMIT` statement.
//!
//! # Cancellation and reset
//!
//! [`cancel_handle`](anysql_core::DriverConnection::cancel_handle) opens a new socket through the
//! runtime to the host the connection uses and sends PostgreSQL's cancel request. After an
//! operation was interrupted (its future dropped), [`reset`](anysql_core::DriverConnection::reset)
//! queues a `ROLLBACK` behind whatever is in flight; if that has not finished within 50 ms it sends a
//! cancel request, so a dropped `pg_sleep(10)` costs about 50 ms, not 10 s. It then absorbs a late
//! cancel signal before declaring the connection clean.
//!
//! Whether a transaction is open is the server's word, not the driver's bookkeeping: the driver
//! follows the message framing of the bytes it reads and keeps the transaction status of each
//! ReadyForQuery message (`I` idle, `T` in a transaction, `E` in a failed one), at a cost per
//! message, not per byte. [`in_transaction`](anysql_core::DriverConnection::in_transaction)
//! reports it (and `true` while a reply is still unread), so a connection that ran `BEGIN` through
//! `execute`, in a multi-statement string or through the raw client is rolled back before it goes
//! back to the pool; `reset` fails, and the connection is discarded, if the server still reports a
//! transaction after its `ROLLBACK`.
//!
//! # Transactions
//!
//! [`Connection::begin`](anysql_core::Connection::begin) sends nothing: the transaction's `BEGIN`
//! (with its isolation level, `READ ONLY` and `DEFERRABLE` options) travels with the transaction's
//! first statement, so that statement costs one round trip instead of two. When that statement
//! goes by the extended protocol (a query, or `execute` with parameters), the `BEGIN` is written
//! as Parse, Bind and Execute messages right before it, with no Sync in between: the server takes
//! both in one implicit block, and if the `BEGIN` fails it skips the statement, which never runs
//! outside the transaction. The driver takes the `BEGIN`'s replies out of the stream before
//! tokio-postgres reads it. What the application sees does not change:
//!
//! - the first statement runs inside the transaction, with its options, and if it fails the
//!   transaction is aborted as before (later statements fail with `25P02`, `rollback` works);
//! - if the `BEGIN` itself fails (`BEGIN ISOLATION LEVEL SERIALIZABLE` on a standby), the first
//!   statement reports its error, with its SQLSTATE; the transaction never started, so its later
//!   statements fail with `25P02`, `rollback` succeeds and `commit` fails;
//! - `begin` then `commit` with no statement in between sends `BEGIN …; COMMIT` in one round trip
//!   (so an error of the `BEGIN` is still reported); `begin` then `rollback` sends nothing;
//! - a first statement without parameters (the simple protocol, which cannot share an implicit
//!   block), a savepoint, a batch, a COPY and [`PgConnection::with_client`] have the `BEGIN` sent
//!   first, alone, as before;
//! - a future dropped after its statement carried the `BEGIN` leaves the driver to learn, with a
//!   round trip before the next statement, whether the transaction opened (if it did not, the
//!   statement did not run, and the `BEGIN` goes with the next statement); a connection dropped
//!   with it is reset, as always.
//!
//! The `BEGIN` is deferred only when the session is idle by the server's current word; otherwise
//! (a transaction opened with SQL, a reply still unread) it runs at once, and `begin` reports its
//! errors. `COMMIT` cannot travel with a statement awaited on its own: nothing says which statement
//! is the last, and each statement's result (or error) is the caller's before it decides to
//! commit. The caller who knows can say so with a pipeline (below).
//!
//! # Pipelines
//!
//! [`Transaction::commit_with`](anysql_core::Transaction::commit_with) writes the
//! [`Pipeline`](anysql_core::Pipeline)'s statements and the `COMMIT` in one write and reads their
//! replies together: a transaction of a read and two writes (P6 in docs/benchmarks.md) takes two
//! round trips instead of four. The server runs the statements in order, each after the one
//! before it has taken effect; if one fails, the transaction is aborted, the statements after it
//! are refused (`25P02`), the transaction is rolled back, and the caller gets the failed
//! statement's error, its message naming the statement.
//!
//! When every statement is sent by the extended protocol (its prepared statement cached, or an
//! unnamed statement with parameters) and the pipeline ends with `COMMIT`, the statements and the
//! `COMMIT` also share one implicit block of the extended protocol: only the `COMMIT` ends with a
//! Sync, so the server answers them all with one write instead of one per statement (in P6, the
//! server's writes per transaction fall from four to two). The driver hands tokio-postgres the
//! ReadyForQuery it would have had after each statement; if one fails, the server skips the rest,
//! `COMMIT` included, the driver gives each skipped statement the error the server gives a
//! statement in a failed transaction (`25P02`) and then sends the `ROLLBACK` the `COMMIT` would
//! have been. What the caller sees is the same either way. One thing differs for a caller who
//! drops the `commit_with` future after its statements were written: if one of them then fails,
//! nothing sends that `ROLLBACK`, and the aborted transaction keeps its locks until the connection
//! is used again or goes back to the pool, which rolls it back at once (a `COMMIT` of its own would
//! have ended it right away). Nothing of it is committed.
//!
//! A statement whose prepared statement is not cached yet is prepared only once the
//! statements before it have run (one of them may create the table it uses): the pipeline goes
//! out in runs, and the `COMMIT` with the last. A nested transaction's `RELEASE SAVEPOINT` travels
//! the same way. Where pipelining is not safe (a statement that controls the transaction itself,
//! or a server status not known to be an open, healthy transaction), the statements run one by
//! one, with the same outcome. A pipeline that must open its transaction (on the engine, on a
//! connection outside one) has the `BEGIN` sent first, alone, as for a batch.
//!
//! # Batches
//!
//! [`execute_many`](anysql_core::DriverConnection::execute_many) prepares once, checks every
//! parameter set, then pipelines the executes (up to 256 in flight) behind a `BEGIN` and before a
//! `COMMIT` of its own when no transaction is open: about one round trip for the whole batch, and
//! atomic (if one set fails, none is applied, as asyncpg's `executemany`). Inside a transaction the
//! batch joins it, and a failure aborts the transaction as any failed statement does. Whether a
//! transaction is open is what the server last reported (see above), so transactions opened with
//! SQL or through [`PgConnection::with_client`] count. (For transaction-control SQL it would be
//! wrong to wrap the batch, and while the server's status is not known: then the sets run one by
//! one, stopping at the first error.)
//!
//! # COPY
//!
//! [`Connection::copy_in`](anysql_core::Connection::copy_in) runs a `COPY … FROM STDIN` and gives
//! a writer that takes text or CSV data in chunks of any size;
//! [`copy_out`](anysql_core::Connection::copy_out) streams a `COPY … TO STDOUT` in chunks (one per
//! row for text and CSV), with tokio-postgres' backpressure: the socket is read only as fast as
//! the stream is; [`copy_in_rows`](anysql_core::Connection::copy_in_rows) loads typed rows over
//! binary COPY with tokio-postgres' `BinaryCopyInWriter`, each value converted as a parameter of
//! the column's type would be (the column types come from preparing `SELECT columns FROM table`).
//! All three work on transactions too. A writer dropped before `finish` has tokio-postgres send
//! `CopyFail` before the next request: none of the COPY's rows is kept, and a transaction it ran
//! in is aborted, so its `COMMIT` fails with `25P02` (rolled back). A COPY OUT dropped early is
//! drained (or cancelled, after 50 ms) by the reset before the connection's next use. The COPY
//! statement is prepared as a named statement and closed with requests pipelined after it, which
//! PgBouncer's transaction pooling may send to another server session outside a transaction (and
//! lose the answers to): with `pgbouncer=true`, a COPY outside a transaction is refused with an
//! [`Unsupported`](anysql_core::ErrorKind::Unsupported) error before anything is sent; run it
//! inside one. A [`Listener`](anysql_core::Listener) needs a session of its own, so with
//! `pgbouncer=true` it is refused the same way: open it with an engine on the server's own URL.
//!
//! # Notifications and notices
//!
//! The driver polls tokio-postgres' `Connection` through `poll_message`, in both drive modes, so
//! the messages the server sends unasked are routed, not dropped:
//!
//! - Notifications go to a [`Listener`](anysql_core::Listener), which
//!   [`Engine::listener`](anysql_core::Engine::listener) opens on a connection of its own (outside
//!   the pool, in spawned mode so that it reads notifications while the application does not
//!   poll). Channel names are quoted as given (case-sensitive). It reconnects with backoff and
//!   `LISTEN`s again after its session ends; see its docs for the stream's items and for the
//!   bounded buffer. [`Engine::notify`](anysql_core::Engine::notify) runs
//!   `SELECT pg_notify($1, $2)`. Other connections' notifications are discarded (only a listener
//!   `LISTEN`s).
//! - Notices (`RAISE NOTICE`, `WARNING`s such as "there is no transaction in progress") become
//!   [`log`](https://docs.rs/log) records with target [`NOTICE_TARGET`]
//!   (`anysql_postgres::notice`), at the level of their severity: `WARNING` is `warn`, `NOTICE`,
//!   `INFO` and `LOG` are `info`, `DEBUG` is `debug`. The text is
//!   `SEVERITY SQLSTATE: message`, then `; detail: …` and `; hint: …` when the server sends them
//!   (`WARNING 01000: careful; hint: look`). Any `log` logger (or tracing's `log` bridge) shows
//!   them; filter on the target to silence them.
//!
//! # The raw client
//!
//! [`Connection::driver_connection::<PgConnection>()`](anysql_core::Connection::driver_connection)
//! gives the [`PgConnection`]; [`PgConnection::with_client`] runs tokio-postgres code with its
//! `Client` while driving the connection, for what anysql does not cover (other types, the
//! replication protocol).
//!
//! # Known limitations
//!
//! - TLS: no encrypted private keys (`sslpassword`), CRLs (`sslcrl`), `sslnegotiation=direct`
//!   or `~/.postgresql/` defaults (see [TLS](#tls)).
//! - `target_session_attrs` is checked with a query after the login, one round trip more per
//!   new connection when it is not `any`; the server's `in_hot_standby` report is not used.
//! - In unnamed mode, columns of non-built-in types (enums, domains) make tokio-postgres look the
//!   type up with a named statement of its own.
//! - PostgreSQL's cancel request is a signal to the backend: a late one can, rarely, cancel the
//!   statement after the one it was meant for (`57014`).
//!
//! [`Parameter`]: anysql_core::ErrorKind::Parameter
//! [`Decode`]: anysql_core::ErrorKind::Decode
//! [`Database`]: anysql_core::ErrorKind::Database
//! [`InvalidStatement`]: anysql_core::ErrorKind::InvalidStatement
//! [`Closed`]: anysql_core::ErrorKind::Closed
//! [`Connection`]: anysql_core::ErrorKind::Connection

mod cancel;
mod connect;
mod connection;
mod copy;
mod deferred;
mod error;
mod hosts;
mod io;
mod listen;
mod notice;
mod options;
mod pipeline;
mod request;
mod session;
mod shared;
mod socket;
mod sql;
mod statements;
mod tls;
mod types;

use std::sync::Arc;

use anysql_core::{AsyncDriver, ConnectOptions, Connector, Error};

pub use connect::PgConnector;
pub use connection::PgConnection;
pub use hosts::{LoadBalanceHosts, TargetSessionAttrs};
pub use notice::NOTICE_TARGET;
pub use options::{
    DriveMode, PgConnectOptions, PgHost, DEFAULT_PORT, DEFAULT_STATEMENT_CACHE_CAPACITY,
};
pub use tls::{SslMode, SslRootCert};
/// The tokio-postgres crate this driver is built on, for [`PgConnection::with_client`].
pub use tokio_postgres;

/// The PostgreSQL driver: serves `postgres://` and `postgresql://` URLs and libpq `key=value`
/// strings.
#[derive(Debug, Clone, Copy, Default)]
pub struct PostgresDriver;

impl AsyncDriver for PostgresDriver {
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn schemes(&self) -> &'static [&'static str] {
        &["postgres", "postgresql"]
    }

    fn accepts_key_value(&self) -> bool {
        true
    }

    fn connector(&self, options: &ConnectOptions) -> Result<Arc<dyn Connector>, Error> {
        Ok(Arc::new(PgConnector::new(PgConnectOptions::parse(
            options,
        )?)))
    }
}
