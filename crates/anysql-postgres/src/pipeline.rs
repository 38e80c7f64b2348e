//! The pipeline of [`execute_many`](anysql_core::DriverConnection::execute_many): every set's
//! execute written before the first reply is read, inside a transaction of its own when none is
//! open.

use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::{Context, Poll};

use anysql_core::{Error, Value};
use postgres_types::Type;
use tokio_postgres::Client;

use crate::connection::typed_params;
use crate::sql::SqlInfo;
use crate::statements::{Failure, Prepared, Statements};
use crate::types::{self, check_params, PgParam};

/// How many statements of an `execute_many` batch are in flight at once.
const PIPELINE_WINDOW: usize = 256;

/// A boxed, sendable future.
type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Sends `BEGIN` (with `wrap`), the executes of `sql` with each of `sets` and `COMMIT` without
/// waiting in between, at most [`PIPELINE_WINDOW`] at a time, and returns the total of rows
/// changed or the first error. Run it driven by the connection's [`Io`](crate::io::Io).
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
                if set.len() != info.max_param {
                    return Err(Error::parameter_count(info.max_param, set.len()).into());
                }
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

        let steps = wrap
            .then_some(Step::Begin)
            .into_iter()
            .chain((0..sets.len()).map(Step::Execute))
            .chain(wrap.then_some(Step::Commit));
        let mut steps = steps.peekable();
        let make = |step: &Step| step_future(step, client, sql, sets, prepared, unspecified);
        let mut in_flight: VecDeque<(bool, BoxFuture<'_, Result<u64, tokio_postgres::Error>>)> =
            VecDeque::new();
        let mut total = 0u64;
        let mut first_error: Option<tokio_postgres::Error> = None;
        poll_fn(|cx: &mut Context<'_>| loop {
            // Send more while the window has room: the first poll of each future writes its
            // request into the client's queue.
            while in_flight.len() < PIPELINE_WINDOW {
                let Some(step) = steps.next() else { break };
                let counts = matches!(step, Step::Execute(_));
                let mut future = make(&step);
                match future.as_mut().poll(cx) {
                    Poll::Ready(result) => record(&mut total, &mut first_error, counts, result),
                    Poll::Pending => in_flight.push_back((counts, future)),
                }
            }
            // Replies come back in order, so only the oldest can be complete.
            let mut progressed = false;
            while let Some((counts, future)) = in_flight.front_mut() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(result) => {
                        record(&mut total, &mut first_error, *counts, result);
                        in_flight.pop_front();
                        progressed = true;
                    }
                    Poll::Pending => break,
                }
            }
            if in_flight.is_empty() && steps.peek().is_none() {
                return Poll::Ready(());
            }
            if !progressed {
                return Poll::Pending;
            }
        })
        .await;
        match first_error {
            Some(e) => Err(Failure::Pg(e)),
            None => Ok(total),
        }
    }
}

/// One request of the pipeline.
enum Step {
    Begin,
    Execute(usize),
    Commit,
}

fn step_future<'s>(
    step: &Step,
    client: &'s Client,
    sql: &'s str,
    sets: &'s [Vec<Value>],
    prepared: Option<&'s Prepared>,
    unspecified: &'s Type,
) -> BoxFuture<'s, Result<u64, tokio_postgres::Error>> {
    match *step {
        Step::Begin => Box::pin(async move { client.batch_execute("BEGIN").await.map(|()| 0) }),
        Step::Commit => Box::pin(async move { client.batch_execute("COMMIT").await.map(|()| 0) }),
        Step::Execute(i) => {
            let set = &sets[i];
            match prepared {
                Some(p) => Box::pin(client.execute_raw(&p.statement, types::params(set))),
                None => Box::pin(async move {
                    let values: Vec<PgParam<'_>> = types::params(set).collect();
                    client
                        .execute_typed(sql, &typed_params(&values, unspecified))
                        .await
                }),
            }
        }
    }
}

fn record(
    total: &mut u64,
    first_error: &mut Option<tokio_postgres::Error>,
    counts: bool,
    result: Result<u64, tokio_postgres::Error>,
) {
    match result {
        Ok(n) if counts => *total += n,
        Ok(_) => {}
        Err(e) => {
            // The first error is the cause; later ones are "current transaction is aborted".
            if first_error.is_none() {
                *first_error = Some(e);
            }
        }
    }
}
