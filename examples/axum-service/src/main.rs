//! A JSON CRUD API for notes on axum and tokio, over PostgreSQL or SQLite.
//!
//! ```text
//! DATABASE_URL=sqlite://notes.db cargo run -p axum-service
//! DATABASE_URL=postgres://user@localhost/db BIND=127.0.0.1:8080 cargo run -p axum-service
//! ```
//!
//! At start-up it runs the notes library's migrations, then serves:
//!
//! | request | answer |
//! |---|---|
//! | `GET /health` | `ok` |
//! | `GET /notes` | every note, as a JSON array |
//! | `GET /notes/export` | every note, streamed as JSON lines while the rows arrive |
//! | `POST /notes` `{"title", "body"}` | `201` and the new note |
//! | `GET /notes/{id}` | the note, or `404` |
//! | `PUT /notes/{id}` `{"title", "body"}` | the note after the update (its old text goes to its history, in the same transaction), or `404` |
//! | `GET /notes/{id}/history` | its earlier revisions |
//! | `DELETE /notes/{id}` | `204`, or `404` |
//!
//! Every statement is traced in a span with OpenTelemetry's attribute names (anysql's `tracing`
//! feature), printed on stderr when it closes; `RUST_LOG` picks the levels per target
//! (default `info`), e.g. `RUST_LOG=info,anysql::pool=debug`.

use std::net::SocketAddr;

use anysql::Engine;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures_lite::StreamExt;
use notes::NewNote;
use tracing_subscriber::fmt::format::FmtSpan;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let filter: tracing_subscriber::filter::Targets = std::env::var("RUST_LOG")
        .unwrap_or_else(|_| "info".to_owned())
        .parse()?;
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_span_events(FmtSpan::CLOSE),
        )
        .with(filter)
        .init();

    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "sqlite://notes.db".to_owned());
    let bind: SocketAddr = std::env::var("BIND")
        .unwrap_or_else(|_| "127.0.0.1:3000".to_owned())
        .parse()?;
    let engine = anysql::create_async_engine(&url)?;
    let applied = notes::migrator().run(&engine).await?;
    tracing::info!(migrations = applied.len(), "database ready");

    let app = Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/notes", get(list).post(create))
        .route("/notes/export", get(export))
        .route("/notes/{id}", get(one).put(update).delete(delete))
        .route("/notes/{id}/history", get(history))
        .with_state(engine.clone());
    let listener = tokio::net::TcpListener::bind(bind).await?;
    // The line the tests (and people) wait for; the port is the real one when BIND asks for 0.
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    engine.close().await;
    Ok(())
}

/// A database error as a `500` with a JSON body.
struct Failure(anysql::Error);

impl From<anysql::Error> for Failure {
    fn from(error: anysql::Error) -> Self {
        Failure(error)
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        tracing::error!(error = %self.0, "request failed");
        let body = serde_json::json!({ "error": self.0.to_string() });
        (StatusCode::INTERNAL_SERVER_ERROR, Json(body)).into_response()
    }
}

type Answer<T> = Result<T, Failure>;

/// `404` for `None`.
fn found<T: serde::Serialize>(value: Option<T>) -> Response {
    match value {
        Some(value) => Json(value).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn list(State(engine): State<Engine>) -> Answer<Json<Vec<notes::Note>>> {
    Ok(Json(notes::list(&engine).await?))
}

async fn create(
    State(engine): State<Engine>,
    Json(note): Json<NewNote>,
) -> Answer<(StatusCode, Json<notes::Note>)> {
    Ok((
        StatusCode::CREATED,
        Json(notes::create(&engine, &note).await?),
    ))
}

async fn one(State(engine): State<Engine>, Path(id): Path<i64>) -> Answer<Response> {
    Ok(found(notes::get(&engine, id).await?))
}

async fn update(
    State(engine): State<Engine>,
    Path(id): Path<i64>,
    Json(note): Json<NewNote>,
) -> Answer<Response> {
    Ok(found(notes::update(&engine, id, &note).await?))
}

async fn history(
    State(engine): State<Engine>,
    Path(id): Path<i64>,
) -> Answer<Json<Vec<notes::Revision>>> {
    Ok(Json(notes::history(&engine, id).await?))
}

async fn delete(State(engine): State<Engine>, Path(id): Path<i64>) -> Answer<StatusCode> {
    Ok(match notes::delete(&engine, id).await? {
        true => StatusCode::NO_CONTENT,
        false => StatusCode::NOT_FOUND,
    })
}

/// Streams every note as one JSON line each. The row stream borrows the engine, so a task owns
/// it and hands the lines over a small bounded channel: the response holds a few rows at a time
/// however many there are, and a client that stops reading stops the query.
async fn export(State(engine): State<Engine>) -> Response {
    let (lines, body) = async_channel::bounded::<Result<Vec<u8>, anysql::Error>>(16);
    tokio::spawn(async move {
        let mut rows = notes::stream(&engine);
        while let Some(row) = rows.next().await {
            let line = row.map(|note| {
                let mut line = serde_json::to_vec(&note).expect("a note serializes");
                line.push(b'\n');
                line
            });
            let failed = line.is_err();
            if lines.send(line).await.is_err() || failed {
                break;
            }
        }
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "application/x-ndjson")
        .body(Body::from_stream(body))
        .expect("a valid response")
}
