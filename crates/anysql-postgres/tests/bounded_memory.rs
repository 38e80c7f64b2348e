//! Streaming a large result holds a bounded number of rows in memory, in both drive modes.

mod common;

use anysql_core::DriverConnection;
use common::{url_with, MODES};
use futures_lite::StreamExt;

macro_rules! conn {
    ($url:expr) => {
        match common::try_connect(&$url).await {
            Some(conn) => conn,
            None => return,
        }
    };
}

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

/// M1: a 1,000,000-row result streams in bounded memory. This is the only test in its binary, so
/// the process's peak RSS is this test's.
#[tokio::test]
async fn streams_a_million_rows_in_bounded_memory() {
    for mode in MODES {
        let mut conn = conn!(url_with(mode));
        let sql = "SELECT g, repeat('x', 100) AS pad, g * 0.5::float8 AS half FROM generate_series(1, 1000000) g";
        let mut rows = conn.fetch(sql, vec![]);
        let mut n = 0;
        while let Some(row) = rows.next().await {
            row.unwrap();
            n += 1;
        }
        drop(rows);
        assert_eq!(n, 1_000_000);
        assert_eq!(conn.execute(sql, vec![]).await.unwrap(), 1_000_000);
        let peak = peak_rss_mb();
        eprintln!("{mode}: peak RSS after streaming 1,000,000 rows twice: {peak:.1} MB");
        assert!(peak < 50.0, "{peak} MB");
    }
}
