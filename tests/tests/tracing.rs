//! The `tracing` feature on every cell: one span per statement with OpenTelemetry's attribute
//! names, no parameter value anywhere in what is recorded or printed, pool events, and the
//! slow-statement warning.
//!
//! One process-wide subscriber, installed before the first statement, captures every span and
//! event with a `tracing-subscriber` layer and prints them once more through a `fmt` layer into a
//! buffer. (Subscribers scoped to each test's future race with each other in `tracing-core`'s
//! global callsite cache when tests run in parallel, and lose spans now and then.) Each test
//! names its tables and queries uniquely and picks out its own spans by them.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::future::Future;
use std::io;
use std::sync::{Arc, Mutex, OnceLock};

use anysql::prelude::*;
use anysql_conformance::{unique_name, TestDb};
use futures_lite::StreamExt;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt as _};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

anysql_conformance::cell_tests!(
    cell,
    None,
    every_statement_has_one_span_with_the_otel_attributes,
    no_parameter_value_reaches_any_output,
    slow_statements_are_warned_about_above_the_threshold,
    pool_events_are_reported,
    copy_has_a_span_from_its_start_to_its_end,
    a_pipeline_has_one_span_with_its_commit,
);

/// The fields of one span or event, as text.
type Fields = BTreeMap<String, String>;

#[derive(Default, Clone)]
struct Captured {
    /// Every closed `anysql.statement` span, in the order they closed.
    spans: Vec<Fields>,
    /// Every event: its target, level and fields (the message under `message`).
    events: Vec<(String, Level, Fields)>,
}

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Captured>>);

struct FieldsVisitor<'a>(&'a mut Fields);

impl Visit for FieldsVisitor<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

/// The fields of an open span, kept in its extensions until it closes.
struct Open(Fields);

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Fields::new();
        attrs.record(&mut FieldsVisitor(&mut fields));
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(Open(fields));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            if let Some(open) = span.extensions_mut().get_mut::<Open>() {
                values.record(&mut FieldsVisitor(&mut open.0));
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut fields = Fields::new();
        event.record(&mut FieldsVisitor(&mut fields));
        let meta = event.metadata();
        self.0
            .lock()
            .unwrap()
            .events
            .push((meta.target().to_owned(), *meta.level(), fields));
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(&id) {
            if span.name() == "anysql.statement" {
                if let Some(open) = span.extensions_mut().remove::<Open>() {
                    self.0.lock().unwrap().spans.push(open.0);
                }
            }
        }
    }
}

/// What a `fmt` layer printed.
#[derive(Clone, Default)]
struct Printed(Arc<Mutex<Vec<u8>>>);

impl io::Write for Printed {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Printed {
    type Writer = Printed;

    fn make_writer(&'a self) -> Printed {
        self.clone()
    }
}

impl Printed {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// The process-wide capture: installed once, before any statement runs.
fn capture() -> &'static (Capture, Printed) {
    static CAPTURE: OnceLock<(Capture, Printed)> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let capture = Capture::default();
        let printed = Printed::default();
        let subscriber = tracing_subscriber::registry().with(capture.clone()).with(
            tracing_subscriber::fmt::layer()
                .with_writer(printed.clone())
                .with_ansi(false)
                .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE),
        );
        tracing::subscriber::set_global_default(subscriber)
            .expect("no other global subscriber in this test binary");
        (capture, printed)
    })
}

/// Runs `work`, then returns a copy of everything captured so far (by every test) and of
/// everything printed.
async fn traced<T>(work: impl Future<Output = T>) -> (T, Captured, String) {
    let (capture, printed) = capture();
    let out = work.await;
    let captured = {
        let all = capture.0.lock().unwrap();
        Captured {
            spans: all.spans.clone(),
            events: all.events.clone(),
        }
    };
    (out, captured, printed.text())
}

fn field<'a>(span: &'a Fields, name: &str) -> Option<&'a str> {
    span.get(name).map(String::as_str)
}

/// The one span whose `db.query.text` is `sql`.
fn span_of<'a>(captured: &'a Captured, sql: &str) -> &'a Fields {
    let matching: Vec<&Fields> = captured
        .spans
        .iter()
        .filter(|s| field(s, "db.query.text") == Some(sql))
        .collect();
    assert_eq!(
        matching.len(),
        1,
        "one span for {sql:?}; spans: {:#?}",
        captured.spans
    );
    matching[0]
}

const SECRET: &str = "s3cr3t-parameter-value";

async fn every_statement_has_one_span_with_the_otel_attributes(db: TestDb) -> Result<(), Error> {
    let engine = db.engine();
    let table = unique_name("traced_notes");
    let create = format!("CREATE TABLE {table} (id BIGINT PRIMARY KEY, body TEXT NOT NULL)");
    let insert = format!("INSERT INTO {table} (id, body) VALUES ($1, $2)");
    let select = format!("SELECT id, body FROM {table} ORDER BY id");
    let stream = format!("SELECT body FROM {table} WHERE id > $1");
    let failing = format!("INSERT INTO {table} (id, body) VALUES (1, 'again')");
    let (result, captured, _) = traced(async {
        query(&create).execute(&engine).await?;
        query(&insert)
            .bind(1i64)
            .bind(SECRET)
            .execute(&engine)
            .await?;
        query(&insert)
            .execute_many(&engine, [(2i64, "b"), (3i64, "c")])
            .await?;
        let rows: Vec<(i64, String)> = query_as(&select).fetch_all(&engine).await?;
        assert_eq!(rows.len(), 3);
        let mut conn = engine.acquire().await?;
        let streamed: Vec<String> = query_scalar(&stream)
            .bind(1i64)
            .fetch(&mut conn)
            .try_collect()
            .await?;
        assert_eq!(streamed, ["b", "c"]);
        drop(conn);
        let err = query(&failing).execute(&engine).await.unwrap_err();
        Ok::<_, Error>(err)
    })
    .await;
    let err = result?;
    // This test's spans: those naming its table.
    let captured = Captured {
        spans: captured
            .spans
            .into_iter()
            .filter(|s| field(s, "db.query.text").is_some_and(|sql| sql.contains(&table)))
            .collect(),
        events: Vec::new(),
    };
    assert_eq!(captured.spans.len(), 6, "{:#?}", captured.spans);

    let system = if db.is_postgres() {
        "postgresql"
    } else {
        "sqlite"
    };
    for span in &captured.spans {
        assert_eq!(field(span, "db.system.name"), Some(system), "{span:#?}");
        assert_eq!(field(span, "otel.kind"), Some("client"), "{span:#?}");
        assert!(
            field(span, "db.namespace").is_some_and(|n| !n.is_empty()),
            "{span:#?}"
        );
        if db.is_postgres() {
            let address = field(span, "server.address").unwrap_or_default();
            assert!(!address.is_empty(), "{span:#?}");
            if !address.starts_with('/') {
                assert!(field(span, "server.port").is_some(), "{span:#?}");
            }
        }
    }

    let s = span_of(&captured, &create);
    assert_eq!(field(s, "otel.name"), Some("CREATE"));
    assert_eq!(field(s, "db.operation.name"), Some("CREATE"));

    let inserts: Vec<&Fields> = captured
        .spans
        .iter()
        .filter(|s| field(s, "db.query.text") == Some(&*insert))
        .collect();
    assert_eq!(inserts.len(), 2, "{:#?}", captured.spans);
    for s in &inserts {
        assert_eq!(
            field(s, "otel.name"),
            Some(format!("INSERT {table}").as_str())
        );
        assert_eq!(field(s, "db.collection.name"), Some(table.as_str()));
    }
    assert_eq!(field(inserts[0], "db.response.affected_rows"), Some("1"));
    assert_eq!(field(inserts[0], "db.operation.batch.size"), None);
    assert_eq!(field(inserts[1], "db.operation.batch.size"), Some("2"));
    assert_eq!(field(inserts[1], "db.response.affected_rows"), Some("2"));

    let s = span_of(&captured, &select);
    assert_eq!(
        field(s, "otel.name"),
        Some(format!("SELECT {table}").as_str())
    );
    assert_eq!(field(s, "db.response.returned_rows"), Some("3"));
    assert_eq!(field(s, "error.type"), None);

    let s = span_of(&captured, &stream);
    assert_eq!(field(s, "db.response.returned_rows"), Some("2"));

    let s = span_of(&captured, &failing);
    let code = err.code().expect("a unique violation has a code");
    assert_eq!(field(s, "db.response.status_code"), Some(code));
    assert_eq!(field(s, "error.type"), Some(code));
    assert_eq!(field(s, "otel.status_code"), Some("ERROR"));
    assert_eq!(field(s, "db.response.affected_rows"), None);
    Ok(())
}

async fn no_parameter_value_reaches_any_output(db: TestDb) -> Result<(), Error> {
    let engine = db.engine();
    let table = unique_name("traced_secrets");
    let (result, captured, printed) = traced(async {
        query(format!("CREATE TABLE {table} (body TEXT)"))
            .execute(&engine)
            .await?;
        query(format!("INSERT INTO {table} (body) VALUES ($1)"))
            .bind(SECRET)
            .execute(&engine)
            .await?;
        let mut tx = engine.begin().await?;
        query(format!("UPDATE {table} SET body = $1 WHERE body = $2"))
            .bind(SECRET)
            .bind(SECRET)
            .execute(&mut tx)
            .await?;
        tx.commit().await?;
        // A failing statement's error is recorded, not its parameters.
        let _ = query(format!(
            "SELECT body FROM {table} WHERE body = $1 AND nonexistent = $2"
        ))
        .bind(SECRET)
        .bind(SECRET)
        .fetch_all(&engine)
        .await
        .unwrap_err();
        Ok::<_, Error>(())
    })
    .await;
    result?;
    let ours = captured
        .spans
        .iter()
        .filter(|s| field(s, "db.query.text").is_some_and(|sql| sql.contains(&table)))
        .count();
    assert_eq!(ours, 4, "{:#?}", captured.spans);
    let mut recorded = String::new();
    for fields in captured
        .spans
        .iter()
        .chain(captured.events.iter().map(|(_, _, f)| f))
    {
        writeln!(recorded, "{fields:?}").unwrap();
    }
    assert!(!recorded.contains(SECRET), "{recorded}");
    assert!(printed.contains(&table), "{printed}");
    assert!(printed.contains("anysql.statement"), "{printed}");
    assert!(printed.contains("db.query.text"), "{printed}");
    assert!(!printed.contains(SECRET), "{printed}");
    Ok(())
}

async fn slow_statements_are_warned_about_above_the_threshold(db: TestDb) -> Result<(), Error> {
    // Each query is its own (`SELECT 1 AS <unique name>`), so its warnings are told apart.
    let select_one = || format!("SELECT 1 AS {}", unique_name("slow"));
    let warnings = |captured: &Captured, sql: &str| {
        captured
            .events
            .iter()
            .filter(|(target, level, fields)| {
                target == "anysql::slow_statement"
                    && *level == Level::WARN
                    && fields.get("db.query.text").map(String::as_str) == Some(sql)
            })
            .count()
    };
    // Every statement takes at least no time.
    let everything = db.engine_with("slow_statement=0ms");
    let sql = select_one();
    let (result, captured, _) = traced(query_scalar::<i64>(&sql).fetch_one(&everything)).await;
    assert_eq!(result?, 1);
    assert_eq!(warnings(&captured, &sql), 1, "{:#?}", captured.events);

    let nothing = db.engine_with("slow_statement=1h");
    let sql = select_one();
    let (result, captured, _) = traced(query_scalar::<i64>(&sql).fetch_one(&nothing)).await;
    assert_eq!(result?, 1);
    assert_eq!(warnings(&captured, &sql), 0, "{:#?}", captured.events);

    // Off by default.
    let sql = select_one();
    let (result, captured, _) = traced(query_scalar::<i64>(&sql).fetch_one(&db.engine())).await;
    assert_eq!(result?, 1);
    assert_eq!(warnings(&captured, &sql), 0, "{:#?}", captured.events);

    // The builder sets it too, and a threshold out of range fails the build.
    let built = db
        .builder()
        .slow_statement(Some(std::time::Duration::ZERO))
        .build()?;
    let sql = select_one();
    let (result, captured, _) = traced(query_scalar::<i64>(&sql).fetch_one(&built)).await;
    assert_eq!(result?, 1);
    assert_eq!(warnings(&captured, &sql), 1, "{:#?}", captured.events);
    let err = anysql::builder(&format!(
        "{}{}slow_statement=2d",
        db.url,
        if db.url.contains('?') { '&' } else { '?' }
    ))
    .build()
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Configuration);
    assert!(err.message().contains("slow_statement"), "{err}");
    Ok(())
}

async fn pool_events_are_reported(db: TestDb) -> Result<(), Error> {
    let engine = db.engine_with("max_size=1");
    let (result, captured, _) = traced(async {
        let mut conn = engine.acquire().await?;
        query("SELECT 1").execute(&mut conn).await?;
        drop(conn);
        Ok::<_, Error>(())
    })
    .await;
    result?;
    // This engine's events: its pool's description holds the test's own schema or directory.
    let token = db
        .schema
        .clone()
        .unwrap_or_else(|| db.url.split('?').next().unwrap_or_default().to_owned());
    let ours: Vec<&Fields> = captured
        .events
        .iter()
        .filter(|(target, level, _)| target == "anysql::pool" && *level == Level::DEBUG)
        .map(|(_, _, fields)| fields)
        .filter(|fields| fields.get("pool").is_some_and(|p| p.contains(&token)))
        .collect();
    let messages: Vec<&str> = ours
        .iter()
        .filter_map(|fields| fields.get("message").map(String::as_str))
        .collect();
    assert!(messages.contains(&"connection opened"), "{messages:?}");
    assert!(messages.contains(&"connection acquired"), "{messages:?}");
    let acquired = ours
        .iter()
        .find(|f| f.get("message").map(String::as_str) == Some("connection acquired"))
        .unwrap();
    assert!(acquired.contains_key("wait_us"), "{acquired:?}");
    Ok(())
}

async fn copy_has_a_span_from_its_start_to_its_end(db: TestDb) -> Result<(), Error> {
    let engine = db.engine();
    let table = unique_name("traced_copy");
    let copy_in = format!("COPY {table} (id, body) FROM STDIN (FORMAT csv)");
    let copy_rows = format!("COPY {table} (id, body) FROM STDIN (FORMAT binary)");
    let copy_out = format!("COPY (SELECT id, body FROM {table} ORDER BY id) TO STDOUT");
    let (result, captured, printed) = traced(async {
        let mut conn = engine.acquire().await?;
        query(format!("CREATE TABLE {table} (id BIGINT, body TEXT)"))
            .execute(&mut conn)
            .await?;
        if !db.is_postgres() {
            let err = conn.copy_in(&copy_in).await.unwrap_err();
            return Ok::<_, Error>(Some(err));
        }
        // In a transaction, as COPY must be behind PgBouncer.
        let mut tx = conn.begin().await?;
        let mut copy = tx.copy_in(&copy_in).await?;
        copy.send(b"1,a\n2,b\n").await?;
        assert_eq!(copy.finish().await?, 2);
        let mut rows = tx.copy_in_rows(&table, &["id", "body"]).await?;
        rows.write(&(3i64, SECRET)).await?;
        assert_eq!(rows.finish().await?, 1);
        let mut out = tx.copy_out(&copy_out).await?;
        let mut data = Vec::new();
        while let Some(chunk) = out.next().await {
            data.extend_from_slice(&chunk?);
        }
        drop(out);
        assert_eq!(data.iter().filter(|&&b| b == b'\n').count(), 3);
        tx.commit().await?;
        Ok(None)
    })
    .await;
    if let Some(err) = result? {
        assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
        let s = span_of(&captured, &copy_in);
        assert_eq!(field(s, "error.type"), Some("unsupported"));
        assert_eq!(field(s, "otel.status_code"), Some("ERROR"));
        return Ok(());
    }
    for sql in [&copy_in, &copy_rows, &copy_out] {
        let s = span_of(&captured, sql);
        assert_eq!(field(s, "db.operation.name"), Some("COPY"), "{s:#?}");
        assert_eq!(field(s, "error.type"), None, "{s:#?}");
    }
    assert_eq!(
        field(span_of(&captured, &copy_in), "db.response.affected_rows"),
        Some("2")
    );
    assert_eq!(
        field(span_of(&captured, &copy_rows), "db.response.affected_rows"),
        Some("1")
    );
    assert!(!printed.contains(SECRET), "a COPY value was printed");
    Ok(())
}

/// A pipeline's statements and the `COMMIT` sent with them share one span: their SQL joined by
/// `; `, the batch size, the rows they changed together; no parameter value.
async fn a_pipeline_has_one_span_with_its_commit(db: TestDb) -> Result<(), Error> {
    let engine = db.engine();
    let table = unique_name("traced_pipeline");
    query(format!(
        "CREATE TABLE {table} (id BIGINT PRIMARY KEY, body TEXT NOT NULL)"
    ))
    .execute(&engine)
    .await?;
    let insert = format!("INSERT INTO {table} (id, body) VALUES ($1, $2)");
    let update = format!("UPDATE {table} SET body = $1 WHERE id >= $2");
    let (changed, captured, printed) = traced(async {
        let mut tx = engine.begin().await?;
        query_scalar::<i64>(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(&mut tx)
            .await?;
        tx.commit_with(anysql::Pipeline::from_iter([
            query(&insert).bind(1i64).bind(SECRET),
            query(&insert).bind(2i64).bind("b"),
            query(&update).bind("c").bind(1i64),
        ]))
        .await
    })
    .await;
    assert_eq!(changed?, [1, 1, 2]);
    let s = span_of(&captured, &format!("{insert}; {insert}; {update}; COMMIT"));
    assert_eq!(field(s, "db.operation.batch.size"), Some("4"));
    assert_eq!(field(s, "db.response.affected_rows"), Some("4"));
    assert_eq!(
        field(s, "otel.name"),
        Some(format!("INSERT {table}").as_str())
    );
    assert!(!printed.contains(SECRET));
    assert!(!format!("{:?}", captured.spans).contains(SECRET));
    Ok(())
}
