//! Pipelines: requests written before the first reply is read. [`run`] is the path of
//! [`execute_many`](anysql_core::DriverConnection::execute_many) (one statement, every parameter
//! set, inside a transaction of its own when none is open), [`run_statements`] that of
//! [`execute_pipeline`](anysql_core::DriverConnection::execute_pipeline) (statements in the open
//! transaction, then the statement that ends it).

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use anysql_core::Value;
use postgres_types::Type;
use tokio_postgres::Client;

use crate::request::{check_unprepared, execute_one, execute_request, BoxFuture};
use crate::socket::{SocketHandle, TxnStatus};
use crate::sql::{is_plain_commit, SqlInfo};
use crate::statements::{Failure, Prepared, Statements};
use crate::types::check_params;

/// How many requests of a pipeline are in flight at once.
const PIPELINE_WINDOW: usize = 256;

/// One request: it answers with the rows it changed.
type Request<'a> = BoxFuture<'a, Result<u64, tokio_postgres::Error>>;

/// Sends `BEGIN` (with `wrap`), the executes of `sql` with each of `sets` and `COMMIT` without
/// waiting in between, and returns the total of rows changed or the first error. Run it driven
/// by the connection's [`Io`](crate::io::Io).
pub(crate) async fn run(
    client: &Client,
    statements: &mut Statements,
    unspecified: &Type,
    sql: &str,
    info: &SqlInfo,
    sets: &[Vec<Value>],
    wrap: bool,
) -> Result<u64, Failure> {
    {
        let prepared = if statements.unnamed() {
            for set in sets {
                check_unprepared(info, set)?;
            }
            None
        } else {
            let prepared = statements.for_params(client, sql, &sets[0]).await?;
            for set in sets {
                check_params(set, prepared.statement.params())?;
            }
            Some(prepared)
        };
        let prepared = prepared.as_deref();

        // With `wrap`: `BEGIN`, the sets, `COMMIT`.
        let (first, count) = if wrap {
            (1, sets.len() + 2)
        } else {
            (0, sets.len())
        };
        // A set that failed before it was sent (its values could not be encoded) leaves the
        // transaction healthy on the server: then the batch ends with ROLLBACK, not COMMIT.
        let failed = AtomicBool::new(false);
        let request = |index: usize| match index.checked_sub(first).map(|set| sets.get(set)) {
            Some(Some(set)) => (
                true,
                execute_request(client, sql, set, prepared, unspecified),
            ),
            None => (false, control(client, "BEGIN")),
            Some(None) if failed.load(Ordering::Relaxed) => (false, control(client, "ROLLBACK")),
            Some(None) => (false, control(client, "COMMIT")),
        };
        let mut total = 0u64;
        let mut first_error: Option<tokio_postgres::Error> = None;
        in_order(count, request, None, |counts, result| match result {
            Ok(n) if counts => total += n,
            Ok(_) => {}
            // The first error is the cause; later ones are "current transaction is aborted".
            Err(e) => {
                failed.store(true, Ordering::Relaxed);
                first_error.get_or_insert(e);
            }
        })
        .await;
        match first_error {
            Some(e) => Err(Failure::Pg(e)),
            None => Ok(total),
        }
    }
}

/// Runs `statements` (their SQL scanned in `infos`) in order in the open transaction, then
/// `end`, and returns the rows each changed, or the position of the first that failed
/// (`statements.len()` for `end`) with its error. Run it driven by the connection's
/// [`Io`](crate::io::Io).
///
/// Each run of statements that can be sent as they are (their prepared statement cached,
/// unnamed statements, or no parameters) goes out in one write, `end` with the last run. A
/// statement that must be prepared first waits for the statements before it and runs alone, as
/// one awaited on its own would: one of those may create what it uses.
///
/// With `join` (the connection's socket, given when every request written has been answered,
/// the transaction is open and the connection is polled only by its operations), a last run of
/// statements of the extended protocol ending with `COMMIT` is joined into one implicit block of the
/// extended protocol (see [`crate::socket`]): the server answers the statements and the
/// `COMMIT` with one write. If a statement fails, the server skips the rest, `COMMIT`
/// included, and the transaction is then rolled back, as the `COMMIT` would have done.
pub(crate) async fn run_statements(
    client: &Client,
    cache: &mut Statements,
    unspecified: &Type,
    statements: &[(&str, Vec<Value>)],
    infos: &[SqlInfo],
    end: &str,
    join: Option<&SocketHandle>,
) -> Result<Vec<u64>, (usize, Failure)> {
    let count = statements.len();
    let mut changed = Vec::with_capacity(count);
    let mut next = 0;
    loop {
        let mut ready: Vec<Option<Arc<Prepared>>> = Vec::new();
        for (index, (sql, params)) in statements.iter().enumerate().skip(next) {
            if params.is_empty() || cache.unnamed() {
                check_unprepared(&infos[index], params).map_err(|e| (index, e.into()))?;
                ready.push(None);
            } else if let Some(prepared) = cache.cached_for_params(sql, params) {
                ready.push(Some(prepared));
            } else {
                break;
            }
        }
        let upto = next + ready.len();
        if ready.is_empty() && next < count {
            let (sql, params) = &statements[next];
            let rows = execute_one(client, cache, sql, &infos[next], params, unspecified)
                .await
                .map_err(|f| (next, f))?;
            changed.push(rows);
            next += 1;
            continue;
        }
        let last = upto == count;
        // The run's statements, then `end` after the last run.
        let requests = upto - next + usize::from(last);
        // Each statement goes by the extended protocol: prepared, or an unnamed statement with
        // parameters (without, it would go by the simple protocol).
        let extended = (next..upto)
            .all(|index| ready[index - next].is_some() || !statements[index].1.is_empty());
        let join = join
            .filter(|_| last && requests <= PIPELINE_WINDOW && is_plain_commit(end) && extended);
        // A statement that failed before it was sent (its values could not be encoded) leaves
        // the transaction healthy on the server: then `end` is not sent, and a `COMMIT` becomes
        // a `ROLLBACK` (a savepoint is left for the caller's rollback to undo).
        let failed = AtomicBool::new(false);
        let request = |at: usize| match next + at {
            _ if next + at >= upto && failed.load(Ordering::Relaxed) => (
                count,
                control(client, if is_plain_commit(end) { "ROLLBACK" } else { "" }),
            ),
            index if index < upto => {
                let (sql, params) = &statements[index];
                let prepared = ready[at].as_deref();
                (
                    index,
                    execute_request(client, sql, params, prepared, unspecified),
                )
            }
            // Joined, `end` goes by the extended protocol, in the block.
            _ if join.is_some() => (count, extended_control(client, end)),
            _ => (count, control(client, end)),
        };
        let mut first_error: Option<(usize, Failure)> = None;
        let forget = ForgetJoin(join);
        in_order(requests, request, join, |index, result| match result {
            Ok(rows) if index < count => changed.push(rows),
            Ok(_) => {}
            Err(e) => {
                failed.store(true, Ordering::Relaxed);
                first_error.get_or_insert((index, Failure::Pg(e)));
            }
        })
        .await;
        drop(forget);
        if let Some(socket) = join {
            if matches!(first_error, Some((index, _)) if index < count)
                && socket.txn_status() == TxnStatus::Failed
            {
                // The `COMMIT` was skipped with the statements after the one that failed: it
                // would have rolled the transaction back. An error here leaves the session
                // failed, which the session learns from the server's status.
                let _ = control(client, "ROLLBACK").await;
            }
        }
        if let Some(failed) = first_error {
            return Err(failed);
        }
        if last {
            return Ok(changed);
        }
        next = upto;
    }
}

/// The request of a transaction-control statement (`BEGIN`, `COMMIT`, `RELEASE SAVEPOINT …`), in
/// the simple protocol.
fn control<'a>(client: &'a Client, sql: &'a str) -> Request<'a> {
    Box::pin(async move { client.batch_execute(sql).await.map(|()| 0) })
}

/// Forgets a join armed for requests that the connection had not written yet, once they are
/// answered or when the pipeline's future is dropped: they go out later, unjoined, and nothing
/// else is joined.
struct ForgetJoin<'a>(Option<&'a SocketHandle>);

impl Drop for ForgetJoin<'_> {
    fn drop(&mut self) {
        if let Some(socket) = self.0 {
            socket.clear_join();
        }
    }
}

/// The request of a transaction-control statement in the extended protocol (an unnamed
/// statement), which can share an implicit block with the statements before it.
fn extended_control<'a>(client: &'a Client, sql: &'a str) -> Request<'a> {
    Box::pin(client.execute_typed(sql, &[]))
}

/// Sends `count` requests, made by `request` from their position, without waiting in between,
/// at most [`PIPELINE_WINDOW`] in flight, and hands each one's tag and result to `each`, in order.
/// With `join`, the requests are joined into one block (see [`SocketHandle::join_next`]) if all
/// of them are queued at once.
async fn in_order<'a, T>(
    count: usize,
    mut request: impl FnMut(usize) -> (T, Request<'a>),
    mut join: Option<&SocketHandle>,
    mut each: impl FnMut(T, Result<u64, tokio_postgres::Error>),
) {
    let mut sent = 0;
    let mut in_flight: VecDeque<(T, Request<'a>)> = VecDeque::new();
    poll_fn(|cx: &mut Context<'_>| loop {
        // Send more while the window has room: the first poll of each request writes it into
        // the client's queue.
        while in_flight.len() < PIPELINE_WINDOW && sent < count {
            let (tag, mut future) = request(sent);
            sent += 1;
            match future.as_mut().poll(cx) {
                Poll::Ready(result) => each(tag, result),
                Poll::Pending => in_flight.push_back((tag, future)),
            }
        }
        // Only the first time, and only if every request is queued and none has failed
        // before the connection wrote it.
        if let Some(socket) = join.take() {
            if in_flight.len() == count {
                socket.join_next(count);
            }
        }
        // Replies come back in order, so only the oldest can be complete.
        let mut progressed = false;
        while let Some((_, future)) = in_flight.front_mut() {
            match future.as_mut().poll(cx) {
                Poll::Ready(result) => {
                    if let Some((tag, _)) = in_flight.pop_front() {
                        each(tag, result);
                    }
                    progressed = true;
                }
                Poll::Pending => break,
            }
        }
        if in_flight.is_empty() && sent == count {
            return Poll::Ready(());
        }
        if !progressed {
            return Poll::Pending;
        }
    })
    .await
}
