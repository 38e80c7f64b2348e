//! `anysql-benches load [--threads N] [--seconds S]`: the competing load of `cargo xtask bench
//! --loaded`, a process of its own that keeps `N` cores busy (default: all of them) at normal
//! priority.
//!
//! Each thread spins on integer arithmetic that touches no memory beyond its registers. The process
//! exits when its stdin reaches end-of-file (xtask holds the other end of a pipe, and closes it, or
//! dies) or after `S` seconds (default 7200), whichever comes first; xtask also kills it by PID.

use std::hint::black_box;
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The load's settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadArgs {
    /// Busy threads.
    pub threads: usize,
    /// The time limit.
    pub limit: Duration,
}

impl LoadArgs {
    /// Parses the arguments after `load`.
    pub fn parse(args: &[String]) -> Result<LoadArgs, String> {
        let mut load = LoadArgs {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            limit: Duration::from_secs(7200),
        };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let mut number = |what: &str| -> Result<u64, String> {
                let text = args.next().ok_or(format!("{arg} needs {what}"))?;
                text.parse::<u64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or(format!("{arg} {text:?} is not {what}"))
            };
            match arg.as_str() {
                "--threads" => load.threads = number("a positive thread count")? as usize,
                "--seconds" => {
                    load.limit = Duration::from_secs(number("a positive number of seconds")?)
                }
                other => return Err(format!("unknown argument `{other}`")),
            }
        }
        Ok(load)
    }
}

/// One busy thread: arithmetic until `stop`, checked every few million steps.
fn spin(stop: &AtomicBool, seed: u64) {
    let mut x = seed | 1;
    while !stop.load(Ordering::Relaxed) {
        for _ in 0..1 << 20 {
            // xorshift64: a dependent chain the compiler cannot fold away.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
        }
        black_box(x);
    }
}

/// Runs the load until stdin closes or the limit passes.
pub fn main(args: &LoadArgs) -> Result<(), String> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::with_capacity(args.threads);
    for k in 0..args.threads {
        let stop = Arc::clone(&stop);
        threads.push(
            std::thread::Builder::new()
                .name(format!("load-{k}"))
                .spawn(move || spin(&stop, k as u64 + 1))
                .map_err(|e| format!("cannot start a load thread: {e}"))?,
        );
    }
    eprintln!(
        "load: {} busy threads in process {}, for at most {} s",
        args.threads,
        std::process::id(),
        args.limit.as_secs()
    );
    let (closed, ended) = std::sync::mpsc::channel::<()>();
    // Detached: it blocks on stdin until end-of-file; the process exits without it otherwise.
    std::thread::spawn(move || {
        let mut sink = [0u8; 64];
        let mut stdin = std::io::stdin();
        while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
        let _ = closed.send(());
    });
    let _ = ended.recv_timeout(args.limit);
    stop.store(true, Ordering::Relaxed);
    for thread in threads {
        let _ = thread.join();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn parses_threads_and_limit() {
        let load = LoadArgs::parse(&args(&["--threads", "3", "--seconds", "5"])).unwrap();
        assert_eq!(
            load,
            LoadArgs {
                threads: 3,
                limit: Duration::from_secs(5)
            }
        );
        let default = LoadArgs::parse(&[]).unwrap();
        assert!(default.threads >= 1);
        assert_eq!(default.limit, Duration::from_secs(7200));
    }

    #[test]
    fn rejects_bad_arguments() {
        for bad in [
            &["--threads"][..],
            &["--threads", "0"],
            &["--threads", "many"],
            &["--seconds", "-1"],
            &["--nice", "5"],
        ] {
            assert!(LoadArgs::parse(&args(bad)).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn a_spinning_thread_stops_when_told() {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || spin(&stop, 7))
        };
        std::thread::sleep(Duration::from_millis(20));
        stop.store(true, Ordering::Relaxed);
        thread.join().unwrap();
    }
}
