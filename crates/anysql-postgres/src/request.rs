//! How one statement becomes a request to the server: the execute of a prepared statement, the
//! simple protocol, or an unnamed statement; and the query that starts a row stream.

use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::Arc;

use anysql_core::{Error, Row, Value};
use futures_lite::StreamExt;
use postgres_types::{ToSql, Type};
use tokio_postgres::{Client, SimpleQueryMessage};

use crate::sql::SqlInfo;
use crate::statements::{Failure, Prepared, Statements};
use crate::types::{self, unnamed_param_type, PgParam, RowPlan};

/// A boxed, sendable future.
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A row stream of tokio-postgres, with how to decode it (known after the first row for unnamed
/// statements).
pub(crate) type Started = (tokio_postgres::RowStream, Option<Arc<RowPlan>>);

/// Starts a query: prepares (or finds) the statement, checks the parameters and sends it.
pub(crate) async fn start_query(
    client: &Client,
    statements: &mut Statements,
    sql: &str,
    info: &SqlInfo,
    params: &[Value],
    unspecified: &Type,
) -> Result<Started, Failure> {
    if statements.unnamed() {
        check_unprepared(info, params)?;
        let typed = types::params(params).map(|p| (p, unnamed_param_type(p.value, unspecified)));
        Ok((client.query_typed_raw(sql, typed).await?, None))
    } else {
        let prepared = statements.for_params(client, sql, params).await?;
        let rows = client
            .query_raw(&prepared.statement, types::params(params))
            .await?;
        Ok((rows, Some(Arc::clone(&prepared.plan))))
    }
}

/// Decodes one row, building the plan from the first row when the statement had none.
pub(crate) fn decode(
    plan: &mut Option<Arc<RowPlan>>,
    row: &tokio_postgres::Row,
) -> Result<Row, Error> {
    plan.get_or_insert_with(|| Arc::new(RowPlan::new(row.columns())))
        .decode(row)
}

/// Runs one statement with parameters and returns the rows it changed.
pub(crate) async fn execute_one(
    client: &Client,
    statements: &mut Statements,
    sql: &str,
    info: &SqlInfo,
    params: &[Value],
    unspecified: &Type,
) -> Result<u64, Failure> {
    let prepared = if params.is_empty() || statements.unnamed() {
        check_unprepared(info, params)?;
        None
    } else {
        Some(statements.for_params(client, sql, params).await?)
    };
    Ok(execute_request(client, sql, params, prepared.as_deref(), unspecified).await?)
}

/// Refuses the parameters of a statement that runs without a prepared statement of its own
/// (the simple protocol, or an unnamed statement), which nothing else checks before the server.
pub(crate) fn check_unprepared(info: &SqlInfo, params: &[Value]) -> Result<(), Error> {
    if params.len() != info.max_param {
        return Err(Error::parameter_count(info.max_param, params.len()));
    }
    Ok(())
}

/// The request that runs a statement and counts the rows it changed: with `prepared`, its
/// execute; without, and without parameters, the simple protocol (one round trip, no prepared
/// statement, several statements separated by semicolons allowed); else an unnamed statement.
/// Its first poll writes the request, so several can be in flight (see [`crate::pipeline`]).
pub(crate) fn execute_request<'a>(
    client: &'a Client,
    sql: &'a str,
    params: &'a [Value],
    prepared: Option<&'a Prepared>,
    unspecified: &'a Type,
) -> BoxFuture<'a, Result<u64, tokio_postgres::Error>> {
    match prepared {
        Some(prepared) => Box::pin(client.execute_raw(&prepared.statement, types::params(params))),
        None if params.is_empty() => Box::pin(async move {
            // Streamed, so that rows a statement returns are dropped as they come, never
            // collected.
            let mut messages = pin!(client.simple_query_raw(sql).await?);
            let mut total = 0;
            while let Some(message) = messages.next().await {
                if let SimpleQueryMessage::CommandComplete(n) = message? {
                    total += n;
                }
            }
            Ok(total)
        }),
        None => Box::pin(async move {
            let values: Vec<PgParam<'_>> = types::params(params).collect();
            client
                .execute_typed(sql, &typed_params(&values, unspecified))
                .await
        }),
    }
}

/// Parameters of an unnamed statement, each with the type sent for it (unspecified for text and
/// NULL, so that the server infers them).
pub(crate) fn typed_params<'v>(
    values: &'v [PgParam<'_>],
    unspecified: &Type,
) -> Vec<(&'v (dyn ToSql + Sync), Type)> {
    values
        .iter()
        .map(|p| {
            (
                p as &(dyn ToSql + Sync),
                unnamed_param_type(p.value, unspecified),
            )
        })
        .collect()
}
