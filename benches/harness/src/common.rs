//! What the main harness and the peers binary share, so that both measure the same thing the same
//! way: workloads, sizes, arguments, the interleaved measurement loop, the JSON output and the M1
//! child-process protocol.
//!
//! The peers binary (`benches/peers`, its own workspace) includes this file with `#[path]`.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// PostgreSQL when `ANYSQL_PG_URL` is not set: the service on the development machines.
pub const DEFAULT_PG_URL: &str = "postgres://root@127.0.0.1:5432/test";

/// The executor threads of every runtime measured, one per core of the 2-vCPU machine the figures
/// come from: the workers of each tokio runtime the harness builds, async-std's global executor
/// (one thread per core by itself) and smol's (one thread unless `SMOL_THREADS` says otherwise:
/// `main` sets it).
pub const EXECUTOR_THREADS: usize = 2;

/// The workloads (see `docs/benchmarks.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// SQLite point select by primary key, sequential, cached statement.
    S1,
    /// SQLite insert in one transaction, one call per row.
    S2,
    /// SQLite insert of the same rows through the batch API.
    S3,
    /// SQLite fetch all rows, several times.
    S4,
    /// SQLite 4 readers and 1 writer for a fixed time.
    S5,
    /// PostgreSQL point select, sequential.
    P1,
    /// PostgreSQL point select, 64 concurrent tasks.
    P2,
    /// PostgreSQL fetch all rows, several times.
    P3,
    /// PostgreSQL insert in one transaction, one call per row.
    P4,
    /// PostgreSQL bulk load: binary COPY of typed rows, against the batch API.
    P5,
    /// SQLite short write transactions from 8 tasks (`BEGIN IMMEDIATE`, select, update, insert,
    /// commit).
    S6,
    /// PostgreSQL short transactions: 64 tasks on a pool of 8 (`BEGIN`, `SELECT … FOR UPDATE`,
    /// update, insert, commit).
    P6,
    /// Stream a 1,000,000-row result; peak RSS.
    M1,
}

impl Workload {
    /// Every workload, in report order.
    pub const ALL: [Workload; 13] = [
        Workload::S1,
        Workload::S2,
        Workload::S3,
        Workload::S4,
        Workload::S5,
        Workload::S6,
        Workload::P1,
        Workload::P2,
        Workload::P3,
        Workload::P4,
        Workload::P5,
        Workload::P6,
        Workload::M1,
    ];

    /// `S1`, `P2`, …
    pub fn id(self) -> &'static str {
        match self {
            Workload::S1 => "S1",
            Workload::S2 => "S2",
            Workload::S3 => "S3",
            Workload::S4 => "S4",
            Workload::S5 => "S5",
            Workload::P1 => "P1",
            Workload::P2 => "P2",
            Workload::P3 => "P3",
            Workload::P4 => "P4",
            Workload::P5 => "P5",
            Workload::S6 => "S6",
            Workload::P6 => "P6",
            Workload::M1 => "M1",
        }
    }

    fn parse(text: &str) -> Option<Workload> {
        Workload::ALL
            .into_iter()
            .find(|w| w.id().eq_ignore_ascii_case(text.trim()))
    }

    /// Whether the workload needs PostgreSQL.
    pub fn is_postgres(self) -> bool {
        matches!(
            self,
            Workload::P1 | Workload::P2 | Workload::P3 | Workload::P4 | Workload::P5 | Workload::P6
        )
    }
}

/// The unit of a result row (`S5r` and `S5w` are throughputs, `S6`, `P6` and `P6s` transactions
/// per second, `M1*` megabytes, the rest time).
pub fn unit_of(key: &str) -> &'static str {
    match key {
        "S4" | "P3" | "P3t" | "P5" | "P5m" => "us/row",
        "S5r" | "S5w" => "ops/s",
        "S6" | "P6" | "P6s" => "tx/s",
        "M1s" | "M1p" => "MB",
        _ => "us/op",
    }
}

/// How much work each workload does; `--quick` divides the counts by ten.
#[derive(Clone, Debug)]
pub struct Sizes {
    /// Rows in the SQLite table; also the S1 query count and the S2/S3 insert count.
    pub s_rows: usize,
    /// How many times S4 fetches the whole table.
    pub s4_passes: usize,
    /// How long one S5 repetition runs.
    pub s5: Duration,
    /// Rows in the PostgreSQL table; also the P1 query count and the P4 insert count.
    pub p_rows: usize,
    /// P2 concurrent tasks.
    pub p2_tasks: usize,
    /// P2 queries per task.
    pub p2_queries: usize,
    /// How many times P3 fetches the whole table.
    pub p3_passes: usize,
    /// Rows P5 loads per repetition.
    pub p5_rows: usize,
    /// S6 tasks (threads for raw rusqlite).
    pub s6_tasks: usize,
    /// S6 transactions per task.
    pub s6_tx: usize,
    /// P6 tasks.
    pub p6_tasks: usize,
    /// P6 transactions per task.
    pub p6_tx: usize,
    /// Rows in the S6/P6 accounts table (the same in both sizes).
    pub acct_rows: usize,
    /// Rows streamed by M1.
    pub m1_rows: usize,
    /// Timed repetitions per workload (after one warm-up round); the median is reported.
    pub reps: usize,
}

impl Sizes {
    /// The full sizes, or a tenth of them for `--quick`.
    pub fn new(quick: bool) -> Sizes {
        if quick {
            Sizes {
                s_rows: 2_000,
                s4_passes: 10,
                s5: Duration::from_millis(250),
                p_rows: 500,
                p2_tasks: 64,
                p2_queries: 20,
                p3_passes: 10,
                p5_rows: 10_000,
                s6_tasks: 8,
                s6_tx: 50,
                p6_tasks: 64,
                p6_tx: 5,
                acct_rows: ACCT_ROWS,
                m1_rows: 1_000_000,
                reps: 3,
            }
        } else {
            Sizes {
                s_rows: 20_000,
                s4_passes: 10,
                s5: Duration::from_secs(1),
                p_rows: 5_000,
                p2_tasks: 64,
                p2_queries: 200,
                p3_passes: 10,
                p5_rows: 100_000,
                s6_tasks: 8,
                s6_tx: 500,
                p6_tasks: 64,
                p6_tx: 50,
                acct_rows: ACCT_ROWS,
                m1_rows: 1_000_000,
                reps: 5,
            }
        }
    }

    fn to_json(&self) -> String {
        format!(
            "{{\"s_rows\":{},\"s4_passes\":{},\"s5_ms\":{},\"p_rows\":{},\"p2_tasks\":{},\"p2_queries\":{},\
             \"p3_passes\":{},\"p5_rows\":{},\"s6_tasks\":{},\"s6_tx\":{},\"p6_tasks\":{},\"p6_tx\":{},\
             \"acct_rows\":{},\"m1_rows\":{},\"reps\":{}}}",
            self.s_rows,
            self.s4_passes,
            self.s5.as_millis(),
            self.p_rows,
            self.p2_tasks,
            self.p2_queries,
            self.p3_passes,
            self.p5_rows,
            self.s6_tasks,
            self.s6_tx,
            self.p6_tasks,
            self.p6_tx,
            self.acct_rows,
            self.m1_rows,
            self.reps
        )
    }
}

/// Rows in the accounts table of S6 and P6.
pub const ACCT_ROWS: usize = 10_000;

/// The random account (1 to `rows`) and amount (1 to 100) of one S6/P6 transaction.
pub fn pick_account(rng: &mut fastrand::Rng, rows: usize) -> (i64, i64) {
    (rng.i64(1..=rows as i64), rng.i64(1..=100))
}

/// The row every table holds for id `i` (1-based): `(i, "name-i", i / 4)`.
pub fn row_for(i: i64) -> (i64, String, f64) {
    (i, format!("name-{i}"), i as f64 * 0.25)
}

/// The rows S2/S3/P4/P5 insert.
pub fn rows(n: usize) -> Vec<(i64, String, f64)> {
    (1..=n as i64).map(row_for).collect()
}

/// Every implementation either binary measures (the `-nospin` ones with `--loaded` only).
pub const IMPLS: [&str; 9] = [
    "raw",
    "anysql-tokio",
    "anysql-smol",
    "anysql-async-std",
    "anysql-tokio-nospin",
    "anysql-smol-nospin",
    "anysql-async-std-nospin",
    "sqlx",
    "tokio-rusqlite",
];

/// What to run: `run [--quick] [--only S1,P1] [--json path] [--no-pg] [--impls raw,sqlx]`.
#[derive(Clone, Debug)]
pub struct RunArgs {
    /// Smaller sizes and fewer repetitions.
    pub quick: bool,
    /// Only these workloads (all when `None`).
    pub only: Option<Vec<Workload>>,
    /// Where to write the JSON results.
    pub json: Option<PathBuf>,
    /// The PostgreSQL server, or `None` (`--no-pg`) to skip P1-P6 and M1 on PostgreSQL.
    pub pg_url: Option<String>,
    /// Only these implementations (`--impls raw,anysql-tokio`), for profiling one at a time.
    pub impls: Option<Vec<String>>,
    /// The run is under a competing load (`--loaded`, which `cargo xtask bench --loaded` passes
    /// while it keeps every core busy): recorded in the JSON, and the main harness adds anysql's
    /// no-spin configuration.
    pub loaded: bool,
}

impl RunArgs {
    /// Parses the arguments after `run`.
    pub fn parse(args: &[String]) -> Result<RunArgs, String> {
        let mut run = RunArgs {
            quick: false,
            only: None,
            json: None,
            pg_url: Some(pg_url()),
            impls: None,
            loaded: false,
        };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--quick" => run.quick = true,
                "--loaded" => run.loaded = true,
                "--only" => {
                    let list = args.next().ok_or("--only needs a list such as S1,P1")?;
                    let mut only = Vec::new();
                    for id in list.split(',').filter(|s| !s.trim().is_empty()) {
                        only.push(Workload::parse(id).ok_or_else(|| {
                            format!("unknown workload `{id}`; expected S1-S6, P1-P6 or M1")
                        })?);
                    }
                    run.only = Some(only);
                }
                "--json" => run.json = Some(args.next().ok_or("--json needs a path")?.into()),
                "--no-pg" => run.pg_url = None,
                "--impls" => {
                    let list = args
                        .next()
                        .ok_or("--impls needs a list such as raw,anysql-tokio")?;
                    let impls: Vec<String> = list.split(',').map(|s| s.trim().to_owned()).collect();
                    if let Some(bad) = impls.iter().find(|i| !IMPLS.contains(&i.as_str())) {
                        return Err(format!(
                            "unknown implementation `{bad}`; expected {}",
                            IMPLS.join(", ")
                        ));
                    }
                    run.impls = Some(impls);
                }
                other => return Err(format!("unknown argument `{other}`")),
            }
        }
        Ok(run)
    }

    /// Whether implementation `name` was asked for.
    pub fn wants_impl(&self, name: &str) -> bool {
        self.impls
            .as_ref()
            .is_none_or(|impls| impls.iter().any(|i| i == name))
    }

    /// The benches among `benches` that were asked for.
    pub fn filter<'a>(&self, benches: Vec<&'a mut dyn Bench>) -> Vec<&'a mut dyn Bench> {
        benches
            .into_iter()
            .filter(|b| self.wants_impl(b.name()))
            .collect()
    }

    /// Whether `workload` was asked for.
    pub fn selected(&self, workload: Workload) -> bool {
        self.only
            .as_ref()
            .is_none_or(|only| only.contains(&workload))
    }
}

/// `ANYSQL_PG_URL`, else [`DEFAULT_PG_URL`].
pub fn pg_url() -> String {
    std::env::var("ANYSQL_PG_URL")
        .ok()
        .filter(|url| !url.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_PG_URL.to_owned())
}

/// A temporary directory, removed when dropped (also when a panic unwinds).
#[derive(Debug)]
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// Creates `<tmp>/<prefix>-<pid>`, emptied first.
    pub fn new(prefix: &str) -> Result<TempDir, String> {
        let dir = std::env::temp_dir().join(format!("{prefix}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `url` with its password, if any, replaced by `***`.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}{tail}")
        }
        _ => url.to_owned(),
    }
}

/// A prefix for this run's PostgreSQL tables, unique per process and start time.
pub fn unique_table_prefix(tool: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() % 1_000_000_000)
        .unwrap_or(0);
    format!("bench_{tool}_{}_{nanos}", std::process::id())
}

/// Microseconds per item.
pub fn us_per(elapsed: Duration, items: usize) -> f64 {
    elapsed.as_secs_f64() * 1e6 / items.max(1) as f64
}

/// The CPU time this process has used so far, user and system, all its threads together (those
/// that have ended included): `CLOCK_PROCESS_CPUTIME_ID`, the sum `getrusage(RUSAGE_SELF)` reports,
/// at nanosecond resolution.
pub fn process_cpu() -> Duration {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    Duration::new(
        u64::try_from(now.tv_sec).unwrap_or(0),
        u32::try_from(now.tv_nsec).unwrap_or(0),
    )
}

/// The clocks of one measured phase: wall time and this process's CPU time, started together.
///
/// A phase's CPU time is everything the process spent while it ran: the measured code, the
/// runtime's worker threads, any busy-polling or spinning, SQLite itself. A PostgreSQL server's CPU
/// is not in it (another process), nor that of a competing load, which `cargo xtask bench --loaded`
/// runs in a process of its own.
#[derive(Clone, Copy, Debug)]
pub struct Stopwatch {
    wall: Instant,
    cpu: Duration,
}

impl Stopwatch {
    /// Starts both clocks.
    pub fn start() -> Stopwatch {
        Stopwatch {
            cpu: process_cpu(),
            wall: Instant::now(),
        }
    }

    /// When the phase started (wall clock).
    pub fn started_at(&self) -> Instant {
        self.wall
    }

    /// Wall time since the start.
    pub fn elapsed(&self) -> Duration {
        self.wall.elapsed()
    }

    /// CPU time since the start.
    pub fn cpu(&self) -> Duration {
        process_cpu().saturating_sub(self.cpu)
    }

    /// `key`'s figure for a phase of `items` operations (or rows): wall µs and CPU µs per item.
    pub fn per(&self, key: &'static str, items: usize) -> Figure {
        let (wall, cpu) = (self.elapsed(), self.cpu());
        Figure {
            key,
            value: us_per(wall, items),
            cpu_us: Some(us_per(cpu, items)),
        }
    }

    /// Throughputs (operations per second of wall time) for a phase that counted `counts`; the
    /// first figure carries the CPU µs per operation of every kind together (S5: per read or
    /// write), the others none.
    pub fn rates(&self, counts: &[(&'static str, u64)]) -> Vec<Figure> {
        let (secs, cpu) = (self.elapsed().as_secs_f64(), self.cpu());
        let total: u64 = counts.iter().map(|(_, n)| n).sum();
        counts
            .iter()
            .enumerate()
            .map(|(i, (key, n))| Figure {
                key,
                value: *n as f64 / secs,
                cpu_us: (i == 0).then(|| us_per(cpu, total as usize)),
            })
            .collect()
    }
}

/// One figure of a repetition.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Figure {
    /// The result key (`S1`, `S5r`, `P5m`, …).
    pub key: &'static str,
    /// In the key's unit ([`unit_of`]).
    pub value: f64,
    /// This process's CPU time (user and system) per operation or row over the same phase, in µs.
    pub cpu_us: Option<f64>,
}

/// The median of `samples` (the mean of the middle two for an even count).
pub fn median(samples: &[f64]) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// One result row: a workload key (`S1`, `S5r`, `M1s`, …) measured for one implementation.
#[derive(Clone, Debug)]
pub struct Measurement {
    /// `S1` … `P5`, `P5m` (P5's batch API), `S5r`/`S5w` (reads/writes), `M1s`/`M1p`
    /// (SQLite/PostgreSQL).
    pub key: String,
    /// `raw`, `anysql-tokio`, `sqlx`, …
    pub imp: String,
    /// One value per timed repetition.
    pub samples: Vec<f64>,
    /// The CPU µs per operation (or row) of each timed repetition; empty when not measured (M1).
    pub cpu_samples: Vec<f64>,
    /// Anything worth knowing about how it was measured.
    pub note: String,
}

/// Everything one binary reports.
#[derive(Debug)]
pub struct Output {
    source: &'static str,
    quick: bool,
    loaded: bool,
    sizes: Sizes,
    /// The result rows, in the order measured.
    pub results: Vec<Measurement>,
    /// Skipped workloads, failures and other remarks.
    pub notes: Vec<String>,
    /// Settings worth reporting, such as pool sizes.
    pub settings: Vec<(String, String)>,
}

impl Output {
    /// An empty report from `source`; `loaded` for a run under a competing load.
    pub fn new(source: &'static str, quick: bool, loaded: bool, sizes: Sizes) -> Output {
        Output {
            source,
            quick,
            loaded,
            sizes,
            results: Vec::new(),
            notes: Vec::new(),
            settings: Vec::new(),
        }
    }

    /// Records a remark, and prints it.
    pub fn note(&mut self, note: impl Into<String>) {
        let note = note.into();
        eprintln!("note: {note}");
        self.notes.push(note);
    }

    /// The whole report as JSON.
    pub fn to_json(&self) -> String {
        let mut out = String::new();
        let _ = write!(
            out,
            "{{\n  \"source\": {},\n  \"quick\": {},\n  \"mode\": {},\n  \"sizes\": {},\n  \"settings\": {{",
            json_str(self.source),
            self.quick,
            json_str(if self.loaded { "loaded" } else { "idle" }),
            self.sizes.to_json()
        );
        for (i, (key, value)) in self.settings.iter().enumerate() {
            let comma = if i == 0 { "" } else { "," };
            let _ = write!(out, "{comma}\n    {}: {}", json_str(key), json_str(value));
        }
        out.push_str("\n  },\n  \"notes\": [");
        for (i, note) in self.notes.iter().enumerate() {
            let comma = if i == 0 { "" } else { "," };
            let _ = write!(out, "{comma}\n    {}", json_str(note));
        }
        out.push_str("\n  ],\n  \"results\": [");
        for (i, m) in self.results.iter().enumerate() {
            let comma = if i == 0 { "" } else { "," };
            let samples: Vec<String> = m.samples.iter().map(|s| json_num(*s)).collect();
            let cpu_samples: Vec<String> = m.cpu_samples.iter().map(|s| json_num(*s)).collect();
            let cpu = if m.cpu_samples.is_empty() {
                "null".to_owned()
            } else {
                json_num(median(&m.cpu_samples))
            };
            let _ = write!(
                out,
                "{comma}\n    {{\"workload\": {}, \"impl\": {}, \"unit\": {}, \"value\": {}, \"samples\": [{}], \"cpu_us\": {cpu}, \"cpu_samples\": [{}], \"note\": {}}}",
                json_str(&m.key),
                json_str(&m.imp),
                json_str(unit_of(&m.key)),
                json_num(median(&m.samples)),
                samples.join(", "),
                cpu_samples.join(", "),
                json_str(&m.note)
            );
        }
        out.push_str("\n  ]\n}\n");
        out
    }

    /// Writes the JSON to `path`, creating its directory.
    pub fn write(&self, path: &std::path::Path) -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, self.to_json())
    }
}

fn json_num(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.4}")
    } else {
        "null".to_owned()
    }
}

fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The figures one repetition produced, usually one.
pub type RepResult = Result<Vec<Figure>, String>;

/// An implementation under test.
pub trait Bench {
    /// `raw`, `anysql-tokio`, `sqlx`, …
    fn name(&self) -> &'static str;

    /// Runs one repetition of `workload`, or returns `None` if this implementation does not run it.
    fn rep(&mut self, workload: Workload, sizes: &Sizes) -> Option<RepResult>;

    /// How it runs `workload`, for the report (empty if nothing to say).
    fn note(&self, _workload: Workload) -> String {
        String::new()
    }
}

/// The pause before each round of each bench, so that what the previous one left running has
/// stopped: anysql's SQLite connections keep a point read's read transaction open for up to 1 ms
/// after it and spin for up to `busy_poll` after a reply. A read left open on the database file
/// makes the next bench's reads skip SQLite's lock system calls (raw rusqlite's S1 ran twice as
/// fast right after anysql's), and a spinning thread takes a core from it.
const SETTLE: Duration = Duration::from_millis(5);

/// Measures `workload` on every bench: one warm-up round, then `sizes.reps` timed rounds. Rounds are
/// interleaved (each round runs every bench once, in a rotating order) so that drift on a shared,
/// noisy machine hits every implementation alike.
pub fn measure(
    out: &mut Output,
    workload: Workload,
    sizes: &Sizes,
    benches: &mut [&mut dyn Bench],
) {
    let mut order: Vec<usize> = (0..benches.len()).collect();
    // Per bench: (key, wall samples, CPU samples).
    type Samples = Vec<(&'static str, Vec<f64>, Vec<f64>)>;
    let mut samples: Vec<Samples> = vec![Vec::new(); benches.len()];
    let mut failed = vec![false; benches.len()];
    let mut unsupported = vec![false; benches.len()];
    for round in 0..=sizes.reps {
        for &i in &order {
            if failed[i] || unsupported[i] {
                continue;
            }
            let bench = &mut benches[i];
            std::thread::sleep(SETTLE);
            match bench.rep(workload, sizes) {
                None => unsupported[i] = true,
                Some(Err(e)) => {
                    failed[i] = true;
                    out.note(format!("{} {}: failed: {e}", workload.id(), bench.name()));
                }
                Some(Ok(figures)) => {
                    let shown: Vec<String> = figures
                        .iter()
                        .map(|f| {
                            let cpu = f
                                .cpu_us
                                .map_or(String::new(), |c| format!(" (cpu {c:.3} us)"));
                            format!("{} {:.3} {}{cpu}", f.key, f.value, unit_of(f.key))
                        })
                        .collect();
                    let label = if round == 0 { "warm-up" } else { "rep" };
                    eprintln!("  {:<17} {label:<7} {}", bench.name(), shown.join(", "));
                    if round > 0 {
                        for f in figures {
                            let slot = match samples[i].iter().position(|(k, ..)| *k == f.key) {
                                Some(slot) => slot,
                                None => {
                                    samples[i].push((f.key, Vec::new(), Vec::new()));
                                    samples[i].len() - 1
                                }
                            };
                            samples[i][slot].1.push(f.value);
                            samples[i][slot].2.extend(f.cpu_us);
                        }
                    }
                }
            }
        }
        if !order.is_empty() {
            order.rotate_left(1);
        }
    }
    for (i, bench) in benches.iter().enumerate() {
        if failed[i] {
            continue;
        }
        for (key, list, cpu) in std::mem::take(&mut samples[i]) {
            out.results.push(Measurement {
                key: key.to_owned(),
                imp: bench.name().to_owned(),
                samples: list,
                cpu_samples: cpu,
                note: bench.note(workload),
            });
        }
    }
}

/// The database an M1 child streams from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Db {
    /// `M1s`: a recursive CTE on SQLite.
    Sqlite,
    /// `M1p`: `generate_series` on PostgreSQL.
    Postgres,
}

impl Db {
    /// `sqlite` or `pg`, as on the child's command line.
    pub fn arg(self) -> &'static str {
        match self {
            Db::Sqlite => "sqlite",
            Db::Postgres => "pg",
        }
    }

    /// The result key.
    pub fn key(self) -> &'static str {
        match self {
            Db::Sqlite => "M1s",
            Db::Postgres => "M1p",
        }
    }

    /// Parses [`arg`](Self::arg).
    pub fn parse(text: &str) -> Option<Db> {
        match text {
            "sqlite" => Some(Db::Sqlite),
            "pg" => Some(Db::Postgres),
            _ => None,
        }
    }

    /// The query streaming `n` rows of the table's shape.
    pub fn m1_sql(self, n: usize) -> String {
        match self {
            Db::Sqlite => format!(
                "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {n}) \
                 SELECT x, 'name-' || x, x * 0.25 FROM c"
            ),
            Db::Postgres => format!(
                "SELECT g::int8, 'name-' || g, g * 0.25::float8 FROM generate_series(1, {n}) AS g"
            ),
        }
    }
}

/// The arguments of an M1 child: `m1 <sqlite|pg> <impl> [--quick]`.
#[derive(Clone, Debug)]
pub struct M1Args {
    /// Which database.
    pub db: Db,
    /// Which implementation.
    pub imp: String,
    /// Rows to stream.
    pub rows: usize,
    /// The PostgreSQL server.
    pub pg_url: String,
}

impl M1Args {
    /// Parses the arguments after `m1`.
    pub fn parse(args: &[String]) -> Result<M1Args, String> {
        let db = args
            .first()
            .and_then(|a| Db::parse(a))
            .ok_or("m1 needs a database: sqlite or pg")?;
        let imp = args.get(1).ok_or("m1 needs an implementation")?.clone();
        let quick = args[2..].iter().any(|a| a == "--quick");
        Ok(M1Args {
            db,
            imp,
            rows: Sizes::new(quick).m1_rows,
            pg_url: pg_url(),
        })
    }
}

/// `VmHWM` (peak resident set) or `VmRSS` of this process, in MB.
pub fn rss_mb(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<f64>()
                .ok()
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// What an M1 child prints on stdout when it has streamed every row.
pub fn m1_print(rows: usize, base_mb: f64, elapsed: Duration) {
    println!(
        "m1 rows={rows} peak_mb={:.1} base_mb={base_mb:.1} secs={:.3}",
        rss_mb("VmHWM"),
        elapsed.as_secs_f64()
    );
}

/// Streams `db` through `imp` in a fresh child process (this binary, `m1 …`), and records its peak
/// RSS, once per implementation (a fresh process has a meaningful peak only once).
pub fn measure_m1(out: &mut Output, db: Db, imps: &[&'static str], quick: bool) {
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => return out.note(format!("M1: cannot find this binary: {e}")),
    };
    for imp in imps {
        let mut cmd = Command::new(&exe);
        cmd.args(["m1", db.arg(), imp]);
        if quick {
            cmd.arg("--quick");
        }
        let started = Instant::now();
        match cmd.output() {
            Ok(output) if output.status.success() => {
                let text = String::from_utf8_lossy(&output.stdout);
                let field = |name: &str| {
                    text.split_whitespace()
                        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
                        .and_then(|v| v.parse::<f64>().ok())
                };
                match (field("peak_mb"), field("rows")) {
                    (Some(peak), Some(rows)) => {
                        eprintln!(
                            "  {imp:<17} {} peak {peak:.1} MB, {rows} rows in {:.2} s",
                            db.key(),
                            started.elapsed().as_secs_f64()
                        );
                        out.results.push(Measurement {
                            key: db.key().to_owned(),
                            imp: (*imp).to_owned(),
                            samples: vec![peak],
                            cpu_samples: Vec::new(),
                            note: format!(
                                "base {:.1} MB before the query; {rows} rows",
                                field("base_mb").unwrap_or(f64::NAN)
                            ),
                        });
                    }
                    _ => out.note(format!(
                        "{} {imp}: unexpected child output: {text}",
                        db.key()
                    )),
                }
            }
            Ok(output) => out.note(format!(
                "{} {imp}: the child failed ({}): {}",
                db.key(),
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            )),
            Err(e) => out.note(format!("{} {imp}: cannot start the child: {e}", db.key())),
        }
    }
}
