//! The engine's routing to a driver's shared connection ([`Connector::connect_shared`]), against
//! an in-memory driver on smol: which statements go where, replacement when broken, and the cases
//! that must use the pool.

use std::any::Any;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use anysql_core::{
    AsyncDriver, Columns, ConnectOptions, Connector, DriverConnection, Engine, EngineBuilder,
    Error, ErrorKind, Row, RowSink, RowStream, SharedConnection, SharedRuntime, Value,
};
use async_trait::async_trait;

mod support;
use support::Smol;

#[derive(Debug, Default)]
struct State {
    /// Whether the driver offers a shared connection at all.
    sharing: bool,
    shared_connects: AtomicUsize,
    pooled_connects: AtomicUsize,
    /// Breaks the current shared connection.
    break_shared: AtomicBool,
    /// Every connect hangs, as against a server that accepts and never answers.
    hang: AtomicBool,
}

#[derive(Debug, Clone)]
struct Driver(Arc<State>);

impl AsyncDriver for Driver {
    fn name(&self) -> &'static str {
        "mock"
    }
    fn schemes(&self) -> &'static [&'static str] {
        &["mock"]
    }
    fn connector(&self, _: &ConnectOptions) -> Result<Arc<dyn Connector>, Error> {
        Ok(Arc::new(self.clone()))
    }
}

fn answer(text: String) -> Vec<Row> {
    vec![Row::new(
        Columns::new(["where".to_string()]),
        vec![Value::Text(text)],
    )]
}

#[async_trait]
impl Connector for Driver {
    async fn connect(&self, _: &SharedRuntime) -> Result<Box<dyn DriverConnection>, Error> {
        if self.0.hang.load(Ordering::SeqCst) {
            futures_lite::future::pending::<()>().await;
        }
        self.0.pooled_connects.fetch_add(1, Ordering::SeqCst);
        Ok(Box::new(Pooled))
    }

    async fn connect_shared(
        &self,
        _: &SharedRuntime,
    ) -> Result<Option<Arc<dyn SharedConnection>>, Error> {
        if !self.0.sharing {
            return Ok(None);
        }
        if self.0.hang.load(Ordering::SeqCst) {
            futures_lite::future::pending::<()>().await;
        }
        let n = self.0.shared_connects.fetch_add(1, Ordering::SeqCst);
        self.0.break_shared.store(false, Ordering::SeqCst);
        Ok(Some(Arc::new(Shared {
            n,
            state: Arc::clone(&self.0),
        })))
    }
}

#[derive(Debug)]
struct Shared {
    n: usize,
    state: Arc<State>,
}

#[async_trait]
impl SharedConnection for Shared {
    fn accepts(&self, sql: &str) -> bool {
        !sql.starts_with("BEGIN")
    }
    async fn execute(&self, _: &str, _: Vec<Value>) -> Result<u64, Error> {
        Ok(100 + self.n as u64)
    }
    async fn fetch_all(&self, _: &str, _: Vec<Value>) -> Result<Vec<Row>, Error> {
        Ok(answer(format!("shared {}", self.n)))
    }
    async fn fetch_optional(&self, sql: &str, _: Vec<Value>) -> Result<Option<Row>, Error> {
        if sql == "none" {
            return Ok(None);
        }
        Ok(answer(format!("shared {}", self.n)).pop())
    }
    fn is_broken(&self) -> bool {
        self.state.break_shared.load(Ordering::SeqCst)
    }
}

#[derive(Debug)]
struct Pooled;

#[async_trait]
impl DriverConnection for Pooled {
    async fn execute(&mut self, _: &str, _: Vec<Value>) -> Result<u64, Error> {
        Ok(1)
    }
    async fn fetch_each(
        &mut self,
        _: &str,
        _: Vec<Value>,
        sink: &mut RowSink<'_>,
    ) -> Result<(), Error> {
        for mut row in answer("pooled".into()) {
            if sink(&mut row)?.is_break() {
                break;
            }
        }
        Ok(())
    }
    fn fetch<'a>(&'a mut self, _: &'a str, _: Vec<Value>) -> RowStream<'a> {
        Box::pin(futures_lite::stream::iter(
            answer("pooled".into()).into_iter().map(Ok),
        ))
    }
    async fn ping(&mut self) -> Result<(), Error> {
        Ok(())
    }
    async fn reset(&mut self) -> Result<(), Error> {
        Ok(())
    }
    fn is_broken(&self) -> bool {
        false
    }
    fn in_transaction(&self) -> bool {
        false
    }
    async fn close(self: Box<Self>) -> Result<(), Error> {
        Ok(())
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

fn engine(state: &Arc<State>, hook: bool) -> Engine {
    let mut builder = EngineBuilder::new("mock://db")
        .driver(Driver(Arc::clone(state)))
        .runtime(Smol);
    if hook {
        builder = builder.after_connect(|_| Box::pin(async { Ok(()) }));
    }
    builder.build().unwrap()
}

#[test]
fn engine_statements_use_the_shared_connection_and_transactions_the_pool() {
    let state = Arc::new(State {
        sharing: true,
        ..State::default()
    });
    let engine = engine(&state, false);
    smol::block_on(async {
        let at: String = engine.fetch_scalar("q", ()).await.unwrap();
        assert_eq!(at, "shared 0");
        assert_eq!(engine.execute("write", ()).await.unwrap(), 100);
        assert_eq!(engine.fetch_all("q", ()).await.unwrap().len(), 1);
        let err = engine.fetch_one("none", ()).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::RowNotFound);
        assert_eq!(state.pooled_connects.load(Ordering::SeqCst), 0);

        // What the shared connection refuses, acquired connections and transactions: the pool.
        assert_eq!(engine.execute("BEGIN", ()).await.unwrap(), 1);
        let mut conn = engine.acquire().await.unwrap();
        let at: String = conn.fetch_scalar("q", ()).await.unwrap();
        assert_eq!(at, "pooled");
        drop(conn);
        assert_eq!(state.pooled_connects.load(Ordering::SeqCst), 1);

        // Concurrent callers open it once.
        assert_eq!(state.shared_connects.load(Ordering::SeqCst), 1);

        // Broken: replaced on the next statement.
        state.break_shared.store(true, Ordering::SeqCst);
        let at: String = engine.fetch_scalar("q", ()).await.unwrap();
        assert_eq!(at, "shared 1");
        assert_eq!(state.shared_connects.load(Ordering::SeqCst), 2);

        engine.close().await;
        let err = engine.fetch_scalar::<String>("q", ()).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Closed);
    });
}

#[test]
fn without_sharing_or_with_a_hook_everything_uses_the_pool() {
    for (sharing, hook) in [(false, false), (true, true)] {
        let state = Arc::new(State {
            sharing,
            ..State::default()
        });
        let engine = engine(&state, hook);
        smol::block_on(async {
            for _ in 0..3 {
                let at: String = engine.fetch_scalar("q", ()).await.unwrap();
                assert_eq!(at, "pooled");
            }
        });
        // Neither opens a shared connection.
        let asked = state.shared_connects.load(Ordering::SeqCst);
        assert_eq!(asked, 0);
    }
}

/// Regression: the engine's statements waited for ever on a shared connection whose server
/// never answered, while `acquire` gave up after the acquire timeout.
#[test]
fn engine_statements_honour_the_acquire_timeout_while_the_shared_connection_connects() {
    let state = Arc::new(State {
        sharing: true,
        hang: AtomicBool::new(true),
        ..State::default()
    });
    let engine = EngineBuilder::new("mock://db?acquire_timeout=200ms")
        .driver(Driver(Arc::clone(&state)))
        .runtime(Smol)
        .build()
        .unwrap();
    smol::block_on(async {
        let started = std::time::Instant::now();
        let both = futures_lite::future::zip(
            engine.execute("write", ()),
            engine.fetch_scalar::<String>("q", ()),
        );
        let bounded = futures_lite::future::or(async { Some(both.await) }, async {
            smol::Timer::after(std::time::Duration::from_secs(5)).await;
            None
        });
        let (a, b) = bounded.await.expect("the engine's statements hang");
        let (a, b) = (a.unwrap_err(), b.unwrap_err());
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
        for err in [a, b] {
            assert_eq!(err.kind(), ErrorKind::PoolTimeout, "{err}");
            assert!(err.to_string().contains("shared connection"), "{err}");
        }
        assert_eq!(
            engine.acquire().await.unwrap_err().kind(),
            ErrorKind::PoolTimeout
        );
        // Once the server answers, the engine serves.
        state.hang.store(false, Ordering::SeqCst);
        let at: String = engine.fetch_scalar("q", ()).await.unwrap();
        assert_eq!(at, "shared 0");
    });
}
