//! Test support for the example services: [`check_service`] starts a service binary on a fresh
//! database (a temporary SQLite file, or a new PostgreSQL database that is dropped afterwards),
//! waits for its `listening on http://ADDR` line, drives its whole HTTP API with a minimal
//! HTTP/1.1 client, and checks what it printed: one span per statement with OpenTelemetry's
//! attribute names, and no parameter value anywhere.
//!
//! PostgreSQL comes from `ANYSQL_PG_URL`; without it the PostgreSQL run is skipped with a message,
//! except under `CI=true`, where that is a failure.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use serde_json::{json, Value};

/// A running service, stopped (by its PID, through `Child::kill`) when dropped.
struct Service {
    child: Child,
    addr: SocketAddr,
    stderr: Arc<Mutex<String>>,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Service {
    fn start(binary: &str, database_url: &str) -> Service {
        let mut child = Command::new(binary)
            .env("DATABASE_URL", database_url)
            .env("BIND", "127.0.0.1:0")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {binary}: {e}"));
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err = child.stderr.take().expect("piped stderr");
        let sink = Arc::clone(&stderr);
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut line = String::new();
        let addr = loop {
            line.clear();
            let read = stdout
                .read_line(&mut line)
                .expect("reading the service's output");
            if read == 0 {
                let status = child.wait().ok();
                panic!(
                    "{binary} ended before listening ({status:?}); its stderr:\n{}",
                    stderr.lock().unwrap()
                );
            }
            if let Some(addr) = line.trim().strip_prefix("listening on http://") {
                break addr.parse().expect("a socket address");
            }
        };
        // Keep reading stdout so the service never blocks on a full pipe.
        thread::spawn(move || {
            let mut rest = String::new();
            while stdout.read_line(&mut rest).is_ok_and(|n| n > 0) {
                rest.clear();
            }
        });
        Service {
            child,
            addr,
            stderr,
        }
    }

    /// Sends one request and returns the status and the body.
    fn request(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, String) {
        let mut stream = TcpStream::connect(self.addr).expect("connecting to the service");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let body = body.map(Value::to_string).unwrap_or_default();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        )
        .unwrap();
        let mut response = Vec::new();
        stream
            .read_to_end(&mut response)
            .expect("reading the response");
        let response = String::from_utf8(response).expect("a UTF-8 response");
        let (head, rest) = response
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("a malformed response: {response:?}"));
        let status: u16 = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status in {head:?}"));
        let chunked = head
            .lines()
            .any(|l| l.eq_ignore_ascii_case("transfer-encoding: chunked"));
        let body = if chunked {
            dechunk(rest)
        } else {
            rest.to_owned()
        };
        (status, body)
    }

    fn json(&self, method: &str, path: &str, body: Option<&Value>, expect: u16) -> Value {
        let (status, text) = self.request(method, path, body);
        assert_eq!(status, expect, "{method} {path}: {text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method} {path}: {e}: {text:?}"))
    }
}

fn dechunk(mut rest: &str) -> String {
    let mut body = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n").expect("a chunk size");
        let size = usize::from_str_radix(size.trim(), 16).expect("a hex chunk size");
        if size == 0 {
            return body;
        }
        body.push_str(&after[..size]);
        rest = &after[size + 2..];
    }
}

/// A value the tests send that must never show in the service's output.
const SECRET: &str = "parameter-value-that-must-not-be-logged";

fn exercise(service: &Service, system: &str) {
    assert_eq!(
        service.request("GET", "/health", None),
        (200, "ok".to_owned())
    );
    assert_eq!(service.json("GET", "/notes", None, 200), json!([]));

    let first = service.json(
        "POST",
        "/notes",
        Some(&json!({"title": "groceries", "body": SECRET})),
        201,
    );
    assert_eq!(first["title"], "groceries");
    assert_eq!(first["revision"], 1);
    let id = first["id"].as_i64().expect("an id");
    let second = service.json(
        "POST",
        "/notes",
        Some(&json!({"title": "books", "body": "Dune"})),
        201,
    );
    assert_eq!(second["id"].as_i64(), Some(id + 1));

    // The update and its history entry are one transaction.
    let updated = service.json(
        "PUT",
        &format!("/notes/{id}"),
        Some(&json!({"title": "groceries", "body": "eggs, flour"})),
        200,
    );
    assert_eq!(updated["revision"], 2);
    assert_eq!(updated["body"], "eggs, flour");
    let history = service.json("GET", &format!("/notes/{id}/history"), None, 200);
    assert_eq!(
        history,
        json!([{"revision": 1, "title": "groceries", "body": SECRET}])
    );
    assert_eq!(
        service.json("GET", &format!("/notes/{id}"), None, 200),
        updated
    );

    let missing = id + 100;
    let (status, _) = service.request("GET", &format!("/notes/{missing}"), None);
    assert_eq!(status, 404);
    let (status, _) = service.request(
        "PUT",
        &format!("/notes/{missing}"),
        Some(&json!({"title": "x", "body": "y"})),
    );
    assert_eq!(status, 404);
    let (status, _) = service.request("POST", "/notes", Some(&json!({"title": 5})));
    assert!((400..500).contains(&status), "a bad body: {status}");

    // Many notes, streamed back one JSON line each.
    for i in 0..50 {
        service.json(
            "POST",
            "/notes",
            Some(&json!({"title": format!("n{i}"), "body": "b"})),
            201,
        );
    }
    let (status, export) = service.request("GET", "/notes/export", None);
    assert_eq!(status, 200);
    let lines: Vec<Value> = export
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 52, "{export}");
    assert_eq!(lines[0], updated);
    assert_eq!(
        service
            .json("GET", "/notes", None, 200)
            .as_array()
            .map(Vec::len),
        Some(52)
    );

    let (status, _) = service.request("DELETE", &format!("/notes/{id}"), None);
    assert_eq!(status, 204);
    let (status, _) = service.request("DELETE", &format!("/notes/{id}"), None);
    assert_eq!(status, 404);

    // What it printed: one span per statement, with OpenTelemetry's names, and no parameter.
    thread::sleep(Duration::from_millis(200));
    let output = service.stderr.lock().unwrap().clone();
    let spans: Vec<&str> = output
        .lines()
        .filter(|l| l.contains("anysql.statement") && l.contains("close"))
        .collect();
    assert!(spans.len() >= 60, "spans:\n{output}");
    for name in [
        "db.system.name",
        "db.query.text",
        "db.operation.name",
        "otel.name",
    ] {
        assert!(spans.iter().all(|l| l.contains(name)), "{name}:\n{output}");
    }
    assert!(
        spans
            .iter()
            .all(|l| l.contains(&format!("db.system.name=\"{system}\""))
                || l.contains(&format!("db.system.name={system}"))),
        "{output}"
    );
    assert!(spans.iter().any(|l| l.contains("INSERT notes")), "{output}");
    assert!(
        !output.contains(SECRET),
        "a parameter value was printed:\n{output}"
    );
}

/// Starts `binary` (a service built from this workspace's examples) on a fresh SQLite database
/// and on a fresh PostgreSQL database, and drives its API on each.
pub fn check_service(binary: &str) {
    for (system, base) in [
        ("sqlite", Some("sqlite:".to_owned())),
        ("postgresql", std::env::var("ANYSQL_PG_URL").ok()),
    ] {
        let Some(base) = base else {
            let ci = std::env::var("CI").is_ok_and(|v| !matches!(v.as_str(), "" | "0" | "false"));
            assert!(
                !ci,
                "ANYSQL_PG_URL is not set; under CI the PostgreSQL run must happen"
            );
            eprintln!("skipping PostgreSQL: ANYSQL_PG_URL is not set");
            continue;
        };
        let database = smol::block_on(anysql::testing::fresh_database(&base))
            .unwrap_or_else(|e| panic!("a fresh {system} database: {e}"));
        let url = database.url().to_owned();
        let outcome = std::panic::catch_unwind(|| {
            let service = Service::start(binary, &url);
            exercise(&service, system);
        });
        // The database goes whatever happened; the service is stopped already.
        smol::block_on(database.close());
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    }
}
