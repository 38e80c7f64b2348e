//! Notes with a revision history: an example of a library written against anysql that picks
//! neither an executor nor a database.
//!
//! It depends on `anysql` with `default-features = false` and only the `macros` and `migrate`
//! features, so it compiles no runtime and no driver. Every function takes an
//! [`Executor`] (`&engine`, `&mut conn` or `&mut tx`), and the application that
//! uses it — the axum service on tokio, the trillium service on smol, over SQLite or PostgreSQL —
//! makes those choices. Its migrations are embedded with [`anysql::migrate!`] and run by
//! [`migrator`].
//!
//! ```
//! # smol::block_on(async {
//! let engine = anysql::create_async_engine("sqlite::memory:")?;
//! notes::migrator().run(&engine).await?;
//! let note = notes::create(&engine, &notes::NewNote {
//!     title: "groceries".into(),
//!     body: "eggs".into(),
//! })
//! .await?;
//! let edited = notes::update(&engine, note.id, &notes::NewNote {
//!     title: "groceries".into(),
//!     body: "eggs, flour".into(),
//! })
//! .await?
//! .expect("the note exists");
//! assert_eq!(edited.revision, 2);
//! assert_eq!(notes::history(&engine, note.id).await?[0].body, "eggs");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

use anysql::migrate::Migrator;
use anysql::prelude::*;
use anysql::BoxStream;
use serde::{Deserialize, Serialize};

/// A note as stored: its id, its text and how many times it was written.
#[derive(Debug, Clone, PartialEq, Eq, FromRow, Serialize, Deserialize)]
pub struct Note {
    /// The note's id, handed out in order from 1.
    pub id: i64,
    /// Its title.
    pub title: String,
    /// Its text.
    pub body: String,
    /// 1 when created, one more for every update.
    pub revision: i64,
}

/// What a client sends to create or replace a note.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewNote {
    /// The title.
    pub title: String,
    /// The text.
    pub body: String,
}

/// An earlier revision of a note, kept by [`update`].
#[derive(Debug, Clone, PartialEq, Eq, FromRow, Serialize, Deserialize)]
pub struct Revision {
    /// Which revision this was.
    pub revision: i64,
    /// Its title then.
    pub title: String,
    /// Its text then.
    pub body: String,
}

const COLUMNS: &str = "id, title, body, revision";

/// The migrations that create the notes tables, embedded at compile time.
pub fn migrator() -> Migrator {
    anysql::migrate!("migrations")
}

/// Creates a note: takes the next id and inserts the note, in one transaction (a savepoint when
/// `db` is a transaction already).
pub async fn create(db: impl Executor<'_>, note: &NewNote) -> Result<Note, Error> {
    let mut tx = db.begin().await?;
    let id: i64 = query_scalar("UPDATE note_ids SET next_id = next_id + 1 RETURNING next_id - 1")
        .fetch_one(&mut tx)
        .await?;
    let created = query_as(format!(
        "INSERT INTO notes ({COLUMNS}) VALUES ($1, $2, $3, 1) RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(&note.title)
    .bind(&note.body)
    .fetch_one(&mut tx)
    .await?;
    tx.commit().await?;
    Ok(created)
}

/// One note, if it exists.
pub async fn get(db: impl Executor<'_>, id: i64) -> Result<Option<Note>, Error> {
    query_as(format!("SELECT {COLUMNS} FROM notes WHERE id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await
}

/// Every note, in order of id.
pub async fn list(db: impl Executor<'_>) -> Result<Vec<Note>, Error> {
    query_as(format!("SELECT {COLUMNS} FROM notes ORDER BY id"))
        .fetch_all(db)
        .await
}

/// Every note, in order of id, as a stream that holds a bounded number of rows in memory
/// (for exports of any size).
pub fn stream<'e>(db: impl Executor<'e>) -> BoxStream<'e, Note> {
    query_as(format!("SELECT {COLUMNS} FROM notes ORDER BY id")).fetch(db)
}

/// Replaces a note's title and text, keeping the old ones in its history, in one transaction:
/// either both happen or neither does. `None` if there is no such note.
pub async fn update(db: impl Executor<'_>, id: i64, note: &NewNote) -> Result<Option<Note>, Error> {
    let mut tx = db.begin().await?;
    let kept = query(
        "INSERT INTO note_history (note_id, revision, title, body) \
         SELECT id, revision, title, body FROM notes WHERE id = $1",
    )
    .bind(id)
    .execute(&mut tx)
    .await?;
    if kept == 0 {
        // Dropping the transaction rolls it back; nothing was written anyway.
        return Ok(None);
    }
    let updated = query_as(format!(
        "UPDATE notes SET title = $2, body = $3, revision = revision + 1 WHERE id = $1 \
         RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(&note.title)
    .bind(&note.body)
    .fetch_one(&mut tx)
    .await?;
    tx.commit().await?;
    Ok(Some(updated))
}

/// A note's earlier revisions, oldest first.
pub async fn history(db: impl Executor<'_>, id: i64) -> Result<Vec<Revision>, Error> {
    query_as("SELECT revision, title, body FROM note_history WHERE note_id = $1 ORDER BY revision")
        .bind(id)
        .fetch_all(db)
        .await
}

/// Deletes a note and its history; whether there was one.
pub async fn delete(db: impl Executor<'_>, id: i64) -> Result<bool, Error> {
    let deleted = query("DELETE FROM notes WHERE id = $1")
        .bind(id)
        .execute(db)
        .await?;
    Ok(deleted > 0)
}
