//! How long a cache line takes to go from one core to another and back, measured at the start of a
//! run and reported beside the table.
//!
//! Every hop between an async task and a SQLite connection's thread moves a few cache lines
//! between cores, one after the other, so this figure sets the floor of S1 and S2 above raw
//! rusqlite. On the 2-vCPU machines the benchmarks run on it is not fixed: on the same day and
//! code it measured 410–560 ns while S1 came out at 1.8–1.9× raw, where earlier runs had S1 at
//! 1.35×. Reporting it lets a reader tell a slower machine from a slower anysql.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Round trips per measurement.
const ROUND_TRIPS: u64 = 100_000;

/// The median over three measurements of one cache line's round trip between two threads that
/// spin on it, in nanoseconds.
pub fn round_trip_ns() -> u64 {
    let mut samples: Vec<u64> = (0..3).map(|_| measure()).collect();
    samples.sort_unstable();
    samples[1]
}

fn measure() -> u64 {
    let line = Arc::new(AtomicU64::new(0));
    let other = Arc::clone(&line);
    // The other thread answers every odd value with the next even one.
    let echo = std::thread::spawn(move || {
        for turn in 0..ROUND_TRIPS {
            let ask = 2 * turn + 1;
            while other.load(Ordering::Acquire) != ask {
                std::hint::spin_loop();
            }
            other.store(ask + 1, Ordering::Release);
        }
    });
    let started = Instant::now();
    for turn in 0..ROUND_TRIPS {
        let ask = 2 * turn + 1;
        line.store(ask, Ordering::Release);
        while line.load(Ordering::Acquire) != ask + 1 {
            std::hint::spin_loop();
        }
    }
    let elapsed = started.elapsed();
    // The echo thread has answered every round trip, so it ends at once.
    let _ = echo.join();
    u64::try_from(elapsed.as_nanos() / u128::from(ROUND_TRIPS)).unwrap_or(u64::MAX)
}
