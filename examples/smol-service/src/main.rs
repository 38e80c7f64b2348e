//! The notes API of `axum-service`, on smol, with the trillium HTTP server (whose smol adapter
//! runs on smol's own executor crates), over PostgreSQL or SQLite.
//!
//! ```text
//! DATABASE_URL=sqlite://notes.db cargo run -p smol-service
//! DATABASE_URL=postgres://user@localhost/db BIND=127.0.0.1:8080 cargo run -p smol-service
//! ```
//!
//! The routes, answers and logging are those of `axum-service`: the two differ only in the
//! executor and the HTTP server, and share every line of database code through the `notes`
//! library.

use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use anysql::Engine;
use futures_lite::{AsyncRead, Stream, StreamExt};
use notes::NewNote;
use tracing_subscriber::fmt::format::FmtSpan;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use trillium::{Body, Conn, KnownHeaderName, State, Status};
use trillium_router::{Router, RouterConnExt};

fn main() -> Result<(), Box<dyn std::error::Error>> {
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

    smol::block_on(async {
        let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "sqlite://notes.db".to_owned());
        let bind: SocketAddr = std::env::var("BIND")
            .unwrap_or_else(|_| "127.0.0.1:3000".to_owned())
            .parse()?;
        let engine = anysql::create_async_engine(&url)?;
        let applied = notes::migrator().run(&engine).await?;
        tracing::info!(migrations = applied.len(), "database ready");

        let router = Router::new()
            .get("/health", |conn: Conn| async move { conn.ok("ok") })
            .get("/notes", list)
            .post("/notes", create)
            .get("/notes/export", export)
            .get("/notes/:id", one)
            .put("/notes/:id", update)
            .delete("/notes/:id", delete)
            .get("/notes/:id/history", history);
        let listener = smol::net::TcpListener::bind(bind).await?;
        // The line the tests (and people) wait for; the port is the real one when BIND asks for 0.
        println!("listening on http://{}", listener.local_addr()?);
        trillium_smol::config()
            .with_prebound_server(listener)
            .run_async((State::new(engine.clone()), router))
            .await;
        engine.close().await;
        Ok(())
    })
}

/// The engine, which the `State` handler put on every request.
fn engine(conn: &Conn) -> Engine {
    conn.state::<Engine>()
        .cloned()
        .expect("the State handler runs first")
}

/// Answers with `value` as JSON and `status`.
fn json(conn: Conn, status: Status, value: &impl serde::Serialize) -> Conn {
    match serde_json::to_vec(value) {
        Ok(body) => conn
            .with_response_header(KnownHeaderName::ContentType, "application/json")
            .with_status(status)
            .with_body(body)
            .halt(),
        Err(e) => fail(conn, &e),
    }
}

/// A `500` with the error as JSON.
fn fail(conn: Conn, error: &dyn std::fmt::Display) -> Conn {
    tracing::error!(error = %error, "request failed");
    let body = serde_json::json!({ "error": error.to_string() }).to_string();
    conn.with_response_header(KnownHeaderName::ContentType, "application/json")
        .with_status(Status::InternalServerError)
        .with_body(body)
        .halt()
}

/// The JSON answer for a database result; `404` for `Ok(None)`.
fn answer<T: serde::Serialize>(conn: Conn, result: Result<Option<T>, anysql::Error>) -> Conn {
    match result {
        Ok(Some(value)) => json(conn, Status::Ok, &value),
        Ok(None) => conn.with_status(Status::NotFound).halt(),
        Err(e) => fail(conn, &e),
    }
}

/// The `:id` of the route, or a `404` for one that is not a number.
fn id(conn: &Conn) -> Option<i64> {
    conn.param("id")?.parse().ok()
}

/// The request's JSON body as a note, or the `400` answer.
async fn new_note(conn: &mut Conn) -> Result<NewNote, String> {
    let body = conn
        .request_body_string()
        .await
        .map_err(|e| e.to_string())?;
    serde_json::from_str(&body).map_err(|e| e.to_string())
}

fn bad_request(conn: Conn, why: String) -> Conn {
    conn.with_status(Status::BadRequest).with_body(why).halt()
}

async fn list(conn: Conn) -> Conn {
    let result = notes::list(&engine(&conn)).await.map(Some);
    answer(conn, result)
}

async fn create(mut conn: Conn) -> Conn {
    let note = match new_note(&mut conn).await {
        Ok(note) => note,
        Err(why) => return bad_request(conn, why),
    };
    match notes::create(&engine(&conn), &note).await {
        Ok(created) => json(conn, Status::Created, &created),
        Err(e) => fail(conn, &e),
    }
}

async fn one(conn: Conn) -> Conn {
    let Some(id) = id(&conn) else {
        return conn.with_status(Status::NotFound).halt();
    };
    let result = notes::get(&engine(&conn), id).await;
    answer(conn, result)
}

async fn update(mut conn: Conn) -> Conn {
    let Some(id) = id(&conn) else {
        return conn.with_status(Status::NotFound).halt();
    };
    let note = match new_note(&mut conn).await {
        Ok(note) => note,
        Err(why) => return bad_request(conn, why),
    };
    let result = notes::update(&engine(&conn), id, &note).await;
    answer(conn, result)
}

async fn history(conn: Conn) -> Conn {
    let Some(id) = id(&conn) else {
        return conn.with_status(Status::NotFound).halt();
    };
    let result = notes::history(&engine(&conn), id).await.map(Some);
    answer(conn, result)
}

async fn delete(conn: Conn) -> Conn {
    let Some(id) = id(&conn) else {
        return conn.with_status(Status::NotFound).halt();
    };
    match notes::delete(&engine(&conn), id).await {
        Ok(true) => conn.with_status(Status::NoContent).halt(),
        Ok(false) => conn.with_status(Status::NotFound).halt(),
        Err(e) => fail(conn, &e),
    }
}

/// Streams every note as one JSON line each, as `axum-service` does: a task owns the row stream
/// (which borrows the engine) and hands the lines over a small bounded channel, which the
/// response body reads.
async fn export(conn: Conn) -> Conn {
    let engine = engine(&conn);
    let (lines, body) = async_channel::bounded::<Vec<u8>>(16);
    smol::spawn(async move {
        let mut rows = notes::stream(&engine);
        while let Some(row) = rows.next().await {
            let line = match row
                .map_err(|e| e.to_string())
                .and_then(|note| serde_json::to_vec(&note).map_err(|e| e.to_string()))
            {
                Ok(mut line) => {
                    line.push(b'\n');
                    line
                }
                Err(error) => {
                    // Headers are gone by now: end the body with the error, as a JSON line.
                    tracing::error!(error = %error, "export failed");
                    let _ = lines
                        .send(
                            serde_json::json!({ "error": error })
                                .to_string()
                                .into_bytes(),
                        )
                        .await;
                    break;
                }
            };
            if lines.send(line).await.is_err() {
                // The client went away: dropping the stream ends the query.
                break;
            }
        }
    })
    .detach();
    conn.with_response_header(KnownHeaderName::ContentType, "application/x-ndjson")
        .with_status(Status::Ok)
        .with_body(Body::new_streaming(ChannelReader::new(body), None))
        .halt()
}

/// The receiving end of a channel of byte chunks as an `AsyncRead`, for a streaming body.
struct ChannelReader {
    chunks: Pin<Box<async_channel::Receiver<Vec<u8>>>>,
    current: Vec<u8>,
    offset: usize,
}

impl ChannelReader {
    fn new(chunks: async_channel::Receiver<Vec<u8>>) -> Self {
        ChannelReader {
            chunks: Box::pin(chunks),
            current: Vec::new(),
            offset: 0,
        }
    }
}

impl AsyncRead for ChannelReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        while this.offset == this.current.len() {
            match this.chunks.as_mut().poll_next(cx) {
                Poll::Ready(Some(chunk)) => {
                    this.current = chunk;
                    this.offset = 0;
                }
                Poll::Ready(None) => return Poll::Ready(Ok(0)),
                Poll::Pending => return Poll::Pending,
            }
        }
        let n = buf.len().min(this.current.len() - this.offset);
        buf[..n].copy_from_slice(&this.current[this.offset..this.offset + n]);
        this.offset += n;
        Poll::Ready(Ok(n))
    }
}
