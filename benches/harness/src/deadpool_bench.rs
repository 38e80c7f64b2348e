//! P6's raw baseline: tokio-postgres behind deadpool-postgres, a pool of 8, on tokio (multi-thread,
//! 2 workers). Named `raw` in the report: it is the raw driver with the pool an application would
//! put in front of it for transactions, which need a connection of their own each.

use std::hint::black_box;
use std::sync::Arc;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio::runtime::Handle;
use tokio_postgres::NoTls;

use crate::common::{
    pick_account, Bench, Output, RepResult, Sizes, Stopwatch, Workload, ACCT_ROWS,
};
use crate::raw_pg::PgTables;

/// The pool size: that of anysql's engine and of sqlx's pool.
pub const POOL_SIZE: usize = 8;

/// The P6 statements, with this run's table names.
#[derive(Debug)]
struct Sql {
    select: String,
    update: String,
    insert: String,
    clear: String,
}

/// tokio-postgres with deadpool-postgres.
pub struct DeadpoolBench {
    handle: Handle,
    pool: Pool,
    sql: Arc<Sql>,
}

impl std::fmt::Debug for DeadpoolBench {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeadpoolBench")
            .field("pool_size", &POOL_SIZE)
            .finish_non_exhaustive()
    }
}

impl DeadpoolBench {
    /// A pool of [`POOL_SIZE`] for `url` (connections open on first use, in the warm-up round).
    pub fn new(handle: &Handle, url: &str, tables: &PgTables) -> Result<DeadpoolBench, String> {
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| format!("bad PostgreSQL URL: {e}"))?;
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(DeadpoolBench {
            handle: handle.clone(),
            pool,
            sql: Arc::new(Sql {
                select: tables.p6_select(),
                update: tables.p6_update(),
                insert: tables.p6_insert(),
                clear: tables.p6_clear(),
            }),
        })
    }

    /// The pool, if `workloads` holds P6; if it cannot be built, a note in `out` and `None`.
    pub fn for_workloads(
        handle: &Handle,
        url: &str,
        tables: &PgTables,
        workloads: &[Workload],
        out: &mut Output,
    ) -> Option<DeadpoolBench> {
        if !workloads.contains(&Workload::P6) {
            return None;
        }
        DeadpoolBench::new(handle, url, tables)
            .map_err(|e| out.note(format!("deadpool-postgres: cannot build the pool: {e}")))
            .ok()
    }

    fn p6(&self, tasks: usize, per_task: usize) -> RepResult {
        let (pool, sql) = (self.pool.clone(), Arc::clone(&self.sql));
        let work = async move {
            pool.get()
                .await
                .map_err(|e| e.to_string())?
                .batch_execute(&sql.clear)
                .await
                .map_err(|e| e.to_string())?;
            let started = Stopwatch::start();
            let mut handles = Vec::with_capacity(tasks);
            for k in 0..tasks {
                let (pool, sql) = (pool.clone(), Arc::clone(&sql));
                handles.push(tokio::spawn(async move {
                    let mut rng = fastrand::Rng::with_seed(k as u64);
                    for _ in 0..per_task {
                        let (id, delta) = pick_account(&mut rng, ACCT_ROWS);
                        let mut client = pool.get().await.map_err(|e| e.to_string())?;
                        let step = async {
                            let tx = client.transaction().await?;
                            let select = tx.prepare_cached(&sql.select).await?;
                            let update = tx.prepare_cached(&sql.update).await?;
                            let insert = tx.prepare_cached(&sql.insert).await?;
                            let balance: i64 = tx.query_one(&select, &[&id]).await?.get(0);
                            black_box(balance);
                            tx.execute(&update, &[&id, &delta]).await?;
                            tx.execute(&insert, &[&id, &delta]).await?;
                            tx.commit().await
                        };
                        step.await.map_err(|e| e.to_string())?;
                    }
                    Ok::<(), String>(())
                }));
            }
            for handle in handles {
                handle
                    .await
                    .map_err(|e| format!("a P6 task failed: {e}"))??;
            }
            Ok(started.rates(&[("P6", (tasks * per_task) as u64)]))
        };
        match self.handle.block_on(self.handle.spawn(work)) {
            Ok(result) => result,
            Err(e) => Err(format!("the task failed: {e}")),
        }
    }

    /// Closes the pool.
    pub fn close(&self) {
        self.pool.close();
    }
}

impl Bench for DeadpoolBench {
    fn name(&self) -> &'static str {
        "raw"
    }

    fn rep(&mut self, workload: Workload, sizes: &Sizes) -> Option<RepResult> {
        match workload {
            Workload::P6 => Some(self.p6(sizes.p6_tasks, sizes.p6_tx)),
            _ => None,
        }
    }

    fn note(&self, _workload: Workload) -> String {
        format!(
            "tokio-postgres behind deadpool-postgres (pool of {POOL_SIZE}, RecyclingMethod::Fast); \
             client.transaction(), prepare_cached statements"
        )
    }
}
