//! Temporary: interleaved S1 variants.
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anysql_core::runtime::BoxFuture;
use anysql_core::{
    AsyncDriver, BoxSocket, ConnectOptions, DriverConnection, Runtime, SharedRuntime, Value,
};
use anysql_sqlite::SqliteDriver;
use async_trait::async_trait;

#[derive(Debug)]
struct ThreadRuntime;
#[async_trait]
impl Runtime for ThreadRuntime {
    fn name(&self) -> &'static str {
        "threads"
    }
    fn spawn(&self, task: BoxFuture<'static, ()>) {
        std::thread::spawn(move || futures_lite::future::block_on(task));
    }
    fn sleep(&self, _d: Duration) -> BoxFuture<'static, ()> {
        Box::pin(std::future::pending())
    }
    async fn connect_tcp(&self, _: &str, _: u16) -> io::Result<BoxSocket> {
        Err(io::Error::other("no"))
    }
}
type Conn = Box<dyn DriverConnection>;
fn connect(url: &str, worker_spin: u64) -> Conn {
    std::env::set_var("ANYSQL_WORKER_SPIN_US", worker_spin.to_string());
    let c = SqliteDriver::new()
        .connector(&ConnectOptions::parse(url).unwrap())
        .unwrap();
    let rt: SharedRuntime = Arc::new(ThreadRuntime);
    futures_lite::future::block_on(c.connect(&rt)).unwrap()
}
async fn s1(conn: &mut Conn, n: i64) {
    for i in 0..n {
        let row = conn
            .fetch_optional(
                "SELECT id, name, v FROM t WHERE id = $1",
                vec![Value::Int(i % 20_000 + 1)],
            )
            .await
            .unwrap()
            .unwrap();
        let r: (i64, String, f64) = row.decode().unwrap();
        std::hint::black_box(r);
    }
}
fn main() {
    let n: i64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5000);
    let rounds: usize = std::env::args()
        .nth(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or(15);
    let dir = std::env::temp_dir().join(format!("anysql-spin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("b.db");
    let raw = rusqlite::Connection::open(&path).unwrap();
    raw.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, v REAL);").unwrap();
    {
        let tx = raw.unchecked_transaction().unwrap();
        for i in 1..=20_000i64 {
            tx.execute(
                "INSERT INTO t VALUES (?1, ?2, ?3)",
                rusqlite::params![i, format!("name {i}"), i as f64 * 0.5],
            )
            .unwrap();
        }
        tx.commit().unwrap();
    }
    let url = format!("sqlite://{}", path.display());
    let only: Option<usize> = std::env::var("ONLY").ok().and_then(|v| v.parse().ok());
    let variants: Vec<(String, u64, u64)> = vec![
        ("consumer 0, worker 0".into(), 0, 0),
        ("consumer 50, worker 0".into(), 50, 0),
        ("consumer 0, worker 50".into(), 0, 50),
        ("consumer 50, worker 50".into(), 50, 50),
    ];
    let variants: Vec<_> = variants
        .into_iter()
        .enumerate()
        .filter(|(i, _)| only.is_none_or(|o| o == *i))
        .map(|(_, v)| v)
        .collect();
    let mt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let mut conns: Vec<Option<Conn>> = variants
        .iter()
        .map(|(_, c, w)| Some(connect(&format!("{url}?busy_poll={c}us"), *w)))
        .collect();
    let mut raw_t = vec![];
    let mut bo: Vec<Vec<f64>> = vec![vec![]; variants.len()];
    let mut mtt: Vec<Vec<f64>> = vec![vec![]; variants.len()];
    for _ in 0..rounds {
        let t = Instant::now();
        {
            let mut st = raw
                .prepare_cached("SELECT id, name, v FROM t WHERE id = ?1")
                .unwrap();
            for i in 0..n {
                let r: (i64, String, f64) = st
                    .query_row([i % 20_000 + 1], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                    .unwrap();
                std::hint::black_box(r);
            }
        }
        raw_t.push(t.elapsed().as_secs_f64() * 1e6 / n as f64);
        for (k, slot) in conns.iter_mut().enumerate() {
            let mut c = slot.take().unwrap();
            let t = Instant::now();
            futures_lite::future::block_on(s1(&mut c, n));
            bo[k].push(t.elapsed().as_secs_f64() * 1e6 / n as f64);
            let t = Instant::now();
            c = mt.block_on(async move {
                tokio::spawn(async move {
                    s1(&mut c, n).await;
                    c
                })
                .await
                .unwrap()
            });
            mtt[k].push(t.elapsed().as_secs_f64() * 1e6 / n as f64);
            *slot = Some(c);
        }
    }
    let stat = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        (v[0], v[v.len() / 2])
    };
    let (rmin, rmed) = stat(&mut raw_t);
    println!("raw: min {rmin:.2} med {rmed:.2}");
    for (k, (name, _, _)) in variants.iter().enumerate() {
        let (a, b) = stat(&mut bo[k]);
        let (c, d) = stat(&mut mtt[k]);
        println!("{name:24} block_on min {a:6.2} ({:.2}x) med {b:6.2} ({:.2}x) | tokio-mt min {c:6.2} ({:.2}x) med {d:6.2} ({:.2}x)", a / rmin, b / rmed, c / rmin, d / rmed);
    }
    let ns = anysql_sqlite::PROBE_NS.load(std::sync::atomic::Ordering::Relaxed);
    let cnt = anysql_sqlite::PROBE_N.load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "worker time per command: {:.2} us over {cnt}",
        ns as f64 / cnt as f64 / 1000.0
    );
    println!(
        "hist <=0.8 <=1.0 <=1.2 <=1.5 <=2 <=3 <=5 >5: {:?}",
        anysql_sqlite::PROBE_H
            .iter()
            .map(|a| a.load(std::sync::atomic::Ordering::Relaxed))
            .collect::<Vec<_>>()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
