//! `anysql-benches report`: merges the JSON of the main harness and of the peers binary, prints one
//! table (workloads × implementations, each cell the value and its ratio to raw, then the target and
//! whether it holds; under each timed row the CPU time per operation and its ratio to raw's), and
//! writes the merged JSON, a Markdown copy of the table and the chart.
//!
//! A loaded run (`cargo xtask bench --loaded`) also has the no-spin configuration of anysql
//! (`anysql-<runtime>-nospin`: `busy_poll=0`, `inline_limit=0`) and a column saying, for each
//! runtime, whether anysql's default configuration costs no more than it within the noise; with
//! `--idle results.json` (an idle run's merged JSON) each ratio is shown beside the idle one.
//!
//! This lives here rather than in xtask so that xtask, which every `cargo xtask test-matrix` builds,
//! stays free of serde_json and plotters.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use plotters::prelude::*;
use serde_json::{json, Map, Value};

use crate::common::{median, unit_of};

/// The table's implementation columns, in order (the no-spin ones only when a run has them).
const COLUMNS: [&str; 6] = [
    "raw",
    "anysql-tokio",
    "anysql-smol",
    "anysql-async-std",
    "sqlx",
    "tokio-rusqlite",
];
const ANYSQL: [&str; 3] = ["anysql-tokio", "anysql-smol", "anysql-async-std"];
/// The no-spin configuration of each of [`ANYSQL`], in the same order.
const NOSPIN: [&str; 3] = [
    "anysql-tokio-nospin",
    "anysql-smol-nospin",
    "anysql-async-std-nospin",
];
const PEERS: [&str; 2] = ["sqlx", "tokio-rusqlite"];
const MAIN_SOURCE: &str = "anysql-benches";
/// The options of anysql's no-spin configuration (`run --loaded`): the latency levers that spend
/// the caller's CPU turned off. SQLite: no spinning for a reply (`busy_poll=0`), no inline
/// statements (`inline_limit=0`); PostgreSQL: no busy-polling of the socket (`busy_poll=0`).
pub const NOSPIN_SQLITE_OPTIONS: &str = "busy_poll=0&inline_limit=0";
/// See [`NOSPIN_SQLITE_OPTIONS`].
pub const NOSPIN_PG_OPTIONS: &str = "busy_poll=0";

/// Whether `unit` is a throughput (higher is better), such as `ops/s` or `tx/s`.
fn is_rate(unit: &str) -> bool {
    unit.ends_with("/s")
}

/// The smallest relative difference the loaded comparison counts as more than noise.
const NOISE_FLOOR: f64 = 0.05;

/// A target (see `docs/benchmarks.md`).
#[derive(Clone, Copy, Debug)]
enum Target {
    /// Ratio to raw at most this.
    Ratio(f64),
    /// P2: ratio to raw at most this, and this many times faster than sqlx.
    RatioAndVsSqlx(f64, f64),
    /// P5: ratio to raw at most this, and this many times faster than the batch API (`P5m`) on
    /// the same runtime.
    RatioAndVsBatch(f64, f64),
    /// P6: at least this many times raw's throughput, and this many times sqlx's.
    Throughput(f64, f64),
    /// Peak RSS below this many MB.
    Megabytes(f64),
}

impl Target {
    fn text(self) -> String {
        match self {
            Target::Ratio(r) => format!("≤ {r}×"),
            Target::RatioAndVsSqlx(r, s) => format!("≤ {r}×, {s}× faster than sqlx"),
            Target::RatioAndVsBatch(r, s) => format!("≤ {r}×, {s}× faster than execute_many"),
            Target::Throughput(r, s) => format!("≥ {r}× raw's tx/s, ≥ {s}× sqlx's"),
            Target::Megabytes(mb) => format!("< {mb} MB"),
        }
    }

    /// The cost ratio the chart draws as the target line.
    fn line(self) -> Option<f64> {
        match self {
            Target::Ratio(t) | Target::RatioAndVsSqlx(t, _) | Target::RatioAndVsBatch(t, _) => {
                Some(t)
            }
            Target::Throughput(t, _) => Some(1.0 / t),
            Target::Megabytes(_) => None,
        }
    }
}

/// The table's rows: key, label, target.
const ROWS: [(&str, &str, Option<Target>); 19] = [
    ("S1", "S1 point select", Some(Target::Ratio(1.5))),
    ("S2", "S2 insert, 1 call/row", Some(Target::Ratio(4.0))),
    ("S3", "S3 batch insert", Some(Target::Ratio(1.5))),
    ("S4", "S4 fetch all", Some(Target::Ratio(1.2))),
    ("S5r", "S5 reads (4 tasks)", None),
    ("S5w", "S5 writes (1 task)", None),
    ("S6", "S6 write tx, 8 tasks", None),
    ("P1", "P1 point select", Some(Target::Ratio(0.85))),
    ("P2", "P2 64 tasks", Some(Target::RatioAndVsSqlx(1.0, 3.0))),
    ("P3", "P3 fetch all", Some(Target::Ratio(1.1))),
    // Both sides over TLS (verify-full), on the TLS cluster: no target of their own yet.
    ("P1t", "P1 point select, TLS", None),
    ("P3t", "P3 fetch all, TLS", None),
    ("P4", "P4 insert in a tx", None),
    (
        "P5",
        "P5 bulk load, copy_in_rows",
        Some(Target::RatioAndVsBatch(1.2, 5.0)),
    ),
    ("P5m", "P5 bulk load, execute_many", None),
    (
        "P6",
        "P6 short tx, 64 tasks/8 conns",
        Some(Target::Throughput(1.25, 1.5)),
    ),
    ("P6s", "P6, one await per statement", None),
    (
        "M1s",
        "M1 stream 1M rows, SQLite",
        Some(Target::Megabytes(50.0)),
    ),
    (
        "M1p",
        "M1 stream 1M rows, PostgreSQL",
        Some(Target::Megabytes(50.0)),
    ),
];

/// One implementation's result for one key, as a binary recorded it.
#[derive(Clone, Debug, Default, PartialEq)]
struct Found {
    /// The median.
    value: f64,
    /// One per timed round.
    samples: Vec<f64>,
    /// The median CPU µs per operation (or row), if measured.
    cpu: Option<f64>,
    /// One per timed round.
    cpu_samples: Vec<f64>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Cell {
    value: f64,
    /// Cost relative to raw: time / raw time, or raw throughput / throughput. `None` for raw itself
    /// and for memory.
    ratio: Option<f64>,
    /// CPU µs per operation (or row) over the measured phases.
    cpu: Option<f64>,
    /// CPU relative to raw's CPU per operation. `None` for raw itself.
    cpu_ratio: Option<f64>,
    /// The same cell's ratio in an idle run, shown beside a loaded run's.
    idle_ratio: Option<f64>,
}

/// How anysql's default configuration compares with its no-spin one on one runtime.
#[derive(Clone, Copy, Debug, PartialEq)]
struct VsNospin {
    /// The default configuration's cost over the no-spin one's (median of the per-round ratios).
    relative: f64,
    /// The noise band: the larger of [`NOISE_FLOOR`] and half the spread of the per-round ratios.
    noise: f64,
}

impl VsNospin {
    /// No worse than the no-spin configuration, within the noise.
    fn holds(self) -> bool {
        self.relative <= 1.0 + self.noise
    }
}

#[derive(Debug)]
struct TableRow {
    key: &'static str,
    label: &'static str,
    unit: &'static str,
    target: Option<Target>,
    cells: Vec<(&'static str, Option<Cell>)>,
    holds: String,
    /// The raw figure measured in the peers process, which the peers' ratios use.
    peers_raw: Option<f64>,
    /// Per anysql runtime, the comparison with its no-spin configuration (loaded runs).
    vs_nospin: Vec<(&'static str, Option<VsNospin>)>,
}

impl TableRow {
    fn cell(&self, imp: &str) -> Option<Cell> {
        self.cells
            .iter()
            .find(|(i, _)| *i == imp)
            .and_then(|(_, c)| *c)
    }

    fn has_cpu(&self) -> bool {
        self.cells
            .iter()
            .any(|(_, c)| c.is_some_and(|c| c.cpu.is_some()))
    }

    /// The loaded comparison's verdict per runtime (relative cost ± noise), or empty if the row has
    /// none.
    fn nospin_text(&self) -> String {
        let parts: Vec<String> = self
            .vs_nospin
            .iter()
            .filter_map(|(imp, vs)| {
                let vs = (*vs)?;
                let runtime = imp.trim_start_matches("anysql-");
                let verdict = if vs.holds() { "yes" } else { "no" };
                Some(format!(
                    "{runtime} {verdict} ({:.2}× ±{:.2})",
                    vs.relative, vs.noise
                ))
            })
            .collect();
        parts.join(", ")
    }
}

struct Inputs {
    runs: Vec<Value>,
    /// An idle run's merged JSON (`report --idle`), to show its ratios beside a loaded run's.
    idle: Option<Value>,
}

fn numbers(value: &Value) -> Vec<f64> {
    value
        .as_array()
        .map(|s| s.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default()
}

impl Inputs {
    /// `key` for `imp`, from the main harness (`main`) or the peers.
    fn result(&self, key: &str, imp: &str, main: bool) -> Option<Found> {
        let result = self
            .runs
            .iter()
            .filter(|run| (run["source"] == MAIN_SOURCE) == main)
            .flat_map(|run| run["results"].as_array().into_iter().flatten())
            .find(|r| r["workload"] == key && r["impl"] == imp)?;
        Some(Found {
            value: result["value"].as_f64()?,
            samples: numbers(&result["samples"]),
            cpu: result["cpu_us"].as_f64(),
            cpu_samples: numbers(&result["cpu_samples"]),
        })
    }

    fn quick(&self) -> bool {
        self.runs.iter().any(|run| run["quick"] == true)
    }

    /// Whether the runs were measured under load (`run --loaded`).
    fn loaded(&self) -> bool {
        self.runs.iter().any(|run| run["mode"] == "loaded")
    }

    /// Whether any run has the no-spin configuration.
    fn has_nospin(&self) -> bool {
        self.runs
            .iter()
            .flat_map(|run| run["results"].as_array().into_iter().flatten())
            .any(|r| r["impl"].as_str().is_some_and(|i| NOSPIN.contains(&i)))
    }

    /// The columns of the table: the no-spin ones after anysql's when a run has them.
    fn columns(&self) -> Vec<&'static str> {
        let mut columns = vec![COLUMNS[0], COLUMNS[1], COLUMNS[2], COLUMNS[3]];
        if self.has_nospin() {
            columns.extend(NOSPIN);
        }
        columns.extend(&COLUMNS[4..]);
        columns
    }

    /// The idle run's ratio of `imp` on `key`.
    fn idle_ratio(&self, key: &str, imp: &str) -> Option<f64> {
        let idle = self.idle.as_ref()?;
        idle["table"]
            .as_array()?
            .iter()
            .find(|row| row["workload"] == key)?["cells"][imp]["ratio"]
            .as_f64()
    }
}

fn cost_ratio(key: &str, value: f64, raw: f64) -> f64 {
    if is_rate(unit_of(key)) {
        raw / value
    } else {
        value / raw
    }
}

/// The per-round ratios `ratio(imp, raw)` when both have one sample per round of the same process
/// (rounds interleave the implementations, so a round's two samples were taken seconds apart and
/// share the machine's state), else `None`.
fn per_round(
    imp: &[f64],
    raw: &[f64],
    paired: bool,
    ratio: impl Fn(f64, f64) -> f64,
) -> Option<Vec<f64>> {
    (paired && !imp.is_empty() && imp.len() == raw.len())
        .then(|| imp.iter().zip(raw).map(|(v, r)| ratio(*v, *r)).collect())
}

/// The cost of `imp` relative to `raw`: the median of the per-round ratios when both come from one
/// process (`paired`), else the ratio of the medians.
fn paired_ratio(key: &str, imp: &Found, raw: &Found, paired: bool) -> f64 {
    match per_round(&imp.samples, &raw.samples, paired, |v, r| {
        cost_ratio(key, v, r)
    }) {
        Some(ratios) => median(&ratios),
        None => cost_ratio(key, imp.value, raw.value),
    }
}

/// CPU per operation relative to raw's, paired by round like [`paired_ratio`].
fn cpu_ratio(imp: &Found, raw: &Found, paired: bool) -> Option<f64> {
    let (cpu, raw_cpu) = (imp.cpu?, raw.cpu?);
    Some(
        match per_round(&imp.cpu_samples, &raw.cpu_samples, paired, |v, r| v / r) {
            Some(ratios) => median(&ratios),
            None => cpu / raw_cpu,
        },
    )
}

/// anysql's default configuration against its no-spin one on `key`: the median of the per-round
/// cost ratios, and the noise band (half their spread, at least [`NOISE_FLOOR`]). Without paired
/// rounds, the ratio of the medians with the floor as the band.
fn vs_nospin(key: &str, default: &Found, nospin: &Found) -> VsNospin {
    match per_round(&default.samples, &nospin.samples, true, |v, n| {
        cost_ratio(key, v, n)
    }) {
        Some(ratios) => {
            let (lo, hi) = ratios
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), r| {
                    (lo.min(*r), hi.max(*r))
                });
            VsNospin {
                relative: median(&ratios),
                noise: ((hi - lo) / 2.0).max(NOISE_FLOOR),
            }
        }
        None => VsNospin {
            relative: cost_ratio(key, default.value, nospin.value),
            noise: NOISE_FLOOR,
        },
    }
}

/// The key of the raw figure `key` is compared to: P5's batch-API row (`P5m`) against the raw
/// binary COPY, P6 with one await per statement (`P6s`) against raw's P6, the others against
/// their own.
fn raw_key(key: &str) -> &str {
    match key {
        "P5m" => "P5",
        "P6s" => "P6",
        other => other,
    }
}

fn build_rows(inputs: &Inputs) -> Vec<TableRow> {
    let columns = inputs.columns();
    let mut rows = Vec::new();
    let mut batch_ratios: Vec<(&'static str, f64)> = Vec::new();
    for (key, label, target) in ROWS {
        let unit = unit_of(key);
        let main_raw = inputs.result(raw_key(key), "raw", true);
        let peers_raw = inputs.result(raw_key(key), "raw", false);
        let mut cells = Vec::new();
        for &imp in &columns {
            let cell = if imp == "raw" && raw_key(key) != key {
                // Shown in the row of its own key.
                None
            } else if imp == "raw" {
                main_raw.as_ref().or(peers_raw.as_ref()).map(|raw| Cell {
                    value: raw.value,
                    cpu: raw.cpu,
                    ..Cell::default()
                })
            } else {
                let is_peer = PEERS.contains(&imp);
                // Each against the raw run of its own process, where there is one; else the
                // other process's, not paired by round (results of a main process that did not
                // run P6's raw baseline yet).
                let (raw, paired) = match (is_peer, &main_raw, &peers_raw) {
                    (true, _, Some(raw)) | (false, Some(raw), _) => (Some(raw), true),
                    (true, Some(raw), None) | (false, None, Some(raw)) => (Some(raw), false),
                    (_, None, None) => (None, false),
                };
                inputs.result(key, imp, !is_peer).map(|result| Cell {
                    value: result.value,
                    ratio: match (unit, raw) {
                        ("MB", _) | (_, None) => None,
                        (_, Some(raw)) => Some(paired_ratio(key, &result, raw, paired)),
                    },
                    cpu: result.cpu,
                    cpu_ratio: raw.and_then(|raw| cpu_ratio(&result, raw, paired)),
                    idle_ratio: inputs.idle_ratio(key, imp),
                })
            };
            cells.push((imp, cell));
        }
        if cells.iter().all(|(_, c)| c.is_none()) {
            continue;
        }
        let vs_nospin = ANYSQL
            .iter()
            .zip(NOSPIN)
            .filter(|_| unit != "MB")
            .map(|(imp, nospin)| {
                let pair = inputs
                    .result(key, imp, true)
                    .zip(inputs.result(key, nospin, true));
                (*imp, pair.map(|(d, n)| vs_nospin(key, &d, &n)))
            })
            .collect();
        let row = TableRow {
            key,
            label,
            unit,
            target,
            cells,
            holds: String::new(),
            peers_raw: peers_raw.map(|raw| raw.value),
            vs_nospin,
        };
        if key == "P5m" {
            batch_ratios = ANYSQL
                .iter()
                .filter_map(|imp| Some((*imp, row.cell(imp)?.value)))
                .collect();
        }
        rows.push(row);
    }
    // P5's target compares it with the batch API, whose row comes after it.
    for row in &mut rows {
        row.holds = holds(row, &batch_ratios);
    }
    rows
}

/// Whether the row's target holds on every runtime, and if not where it misses. `batch` holds
/// the batch API's P5 figures (`P5m`) per implementation.
fn holds(row: &TableRow, batch: &[(&str, f64)]) -> String {
    let Some(target) = row.target else {
        return String::new();
    };
    let mut misses = Vec::new();
    let mut seen = 0;
    for imp in ANYSQL {
        let Some(cell) = row.cell(imp) else { continue };
        let runtime = imp.trim_start_matches("anysql-");
        match target {
            Target::Megabytes(limit) => {
                seen += 1;
                if cell.value >= limit {
                    misses.push(format!("{runtime} {:.1} MB", cell.value));
                }
            }
            Target::Ratio(limit) => {
                let Some(ratio) = cell.ratio else { continue };
                seen += 1;
                if ratio > limit {
                    misses.push(format!("{runtime} {ratio:.2}×"));
                }
            }
            Target::RatioAndVsSqlx(limit, factor) => {
                let Some(ratio) = cell.ratio else { continue };
                seen += 1;
                let vs_sqlx = row
                    .cell("sqlx")
                    .and_then(|c| c.ratio)
                    .map(|sqlx| sqlx / ratio);
                let mut why = Vec::new();
                if ratio > limit {
                    why.push(format!("{ratio:.2}×"));
                }
                match vs_sqlx {
                    Some(v) if v < factor => why.push(format!("{v:.1}× faster than sqlx")),
                    None => why.push("no sqlx figure".to_owned()),
                    _ => {}
                }
                if !why.is_empty() {
                    misses.push(format!("{runtime} {}", why.join(", ")));
                }
            }
            Target::Throughput(vs_raw, vs_sqlx) => {
                let Some(ratio) = cell.ratio else { continue };
                seen += 1;
                // The ratio is a cost (raw's throughput over this one's).
                let of_raw = 1.0 / ratio;
                let of_sqlx = row
                    .cell("sqlx")
                    .and_then(|c| c.ratio)
                    .map(|sqlx| sqlx / ratio);
                let mut why = Vec::new();
                if of_raw < vs_raw {
                    why.push(format!("{of_raw:.2}× raw"));
                }
                match of_sqlx {
                    Some(v) if v < vs_sqlx => why.push(format!("{v:.2}× sqlx")),
                    None => why.push("no sqlx figure".to_owned()),
                    _ => {}
                }
                if !why.is_empty() {
                    misses.push(format!("{runtime} {}", why.join(", ")));
                }
            }
            Target::RatioAndVsBatch(limit, factor) => {
                let Some(ratio) = cell.ratio else { continue };
                seen += 1;
                let vs_batch = batch
                    .iter()
                    .find(|(i, _)| *i == imp)
                    .map(|(_, batch)| batch / cell.value);
                let mut why = Vec::new();
                if ratio > limit {
                    why.push(format!("{ratio:.2}×"));
                }
                match vs_batch {
                    Some(v) if v < factor => why.push(format!("{v:.1}× faster than execute_many")),
                    None => why.push("no execute_many figure".to_owned()),
                    _ => {}
                }
                if !why.is_empty() {
                    misses.push(format!("{runtime} {}", why.join(", ")));
                }
            }
        }
    }
    match (seen, misses.is_empty()) {
        (0, _) => "n/a".to_owned(),
        (_, true) => "yes".to_owned(),
        (_, false) => format!("no: {}", misses.join("; ")),
    }
}

fn fmt_value(unit: &str, v: f64) -> String {
    match unit {
        u if is_rate(u) && v >= 10_000.0 => format!("{:.0}k/s", v / 1000.0),
        u if is_rate(u) => format!("{v:.0}/s"),
        "MB" => format!("{v:.1} MB"),
        _ if v < 1.0 => format!("{v:.3}"),
        _ if v < 10.0 => format!("{v:.2}"),
        _ if v < 100.0 => format!("{v:.1}"),
        _ => format!("{v:.0}"),
    }
}

/// A number of µs (CPU per operation).
fn fmt_us(v: f64) -> String {
    fmt_value("us/op", v)
}

fn fmt_cell(unit: &str, cell: Option<Cell>) -> String {
    let Some(cell) = cell else {
        return "—".to_owned();
    };
    let value = fmt_value(unit, cell.value);
    match (cell.ratio, cell.idle_ratio) {
        (None, _) => value,
        (Some(r), None) => format!("{value} ({r:.2}×)"),
        (Some(r), Some(idle)) => format!("{value} ({r:.2}×, idle {idle:.2}×)"),
    }
}

fn fmt_cpu_cell(cell: Option<Cell>) -> String {
    match cell.and_then(|c| Some((c.cpu?, c.cpu_ratio))) {
        None => "—".to_owned(),
        Some((cpu, None)) => fmt_us(cpu),
        Some((cpu, Some(r))) => format!("{} ({r:.2}×)", fmt_us(cpu)),
    }
}

fn unit_label(unit: &str) -> &str {
    match unit {
        "us/op" => "µs/op",
        "us/row" => "µs/row",
        other => other,
    }
}

/// The unit of a CPU row: CPU µs per what the row's unit counts.
fn cpu_unit_label(unit: &str) -> &'static str {
    match unit {
        "us/row" => "CPU µs/row",
        "tx/s" => "CPU µs/tx",
        _ => "CPU µs/op",
    }
}

fn table_cells(rows: &[TableRow], columns: &[&str]) -> (Vec<String>, Vec<Vec<String>>) {
    let nospin = rows
        .iter()
        .any(|r| r.vs_nospin.iter().any(|(_, v)| v.is_some()));
    let mut header = vec!["workload".to_owned(), "unit".to_owned()];
    header.extend(columns.iter().map(|c| (*c).to_owned()));
    header.extend(["target".to_owned(), "holds".to_owned()]);
    if nospin {
        header.push("≤ nospin".to_owned());
    }
    let mut body = Vec::new();
    for row in rows {
        let mut line = vec![row.label.to_owned(), unit_label(row.unit).to_owned()];
        line.extend(row.cells.iter().map(|(_, cell)| fmt_cell(row.unit, *cell)));
        line.push(row.target.map(Target::text).unwrap_or_default());
        line.push(row.holds.clone());
        if nospin {
            line.push(row.nospin_text());
        }
        body.push(line);
        if row.has_cpu() {
            let mut line = vec![
                format!("{} CPU", row.key.trim_end_matches(['r', 'w'])),
                cpu_unit_label(row.unit).to_owned(),
            ];
            line.extend(row.cells.iter().map(|(_, cell)| fmt_cpu_cell(*cell)));
            line.extend([String::new(), String::new()]);
            if nospin {
                line.push(String::new());
            }
            body.push(line);
        }
    }
    (header, body)
}

/// The columns aligned left: the labels and the verdicts (the trailing `tail` columns).
fn left_aligned(i: usize, len: usize, tail: usize) -> bool {
    i < 2 || i + tail >= len
}

fn render_text(rows: &[TableRow], columns: &[&str]) -> String {
    let (header, body) = table_cells(rows, columns);
    let tail = header.len() - 2 - columns.len();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for line in &body {
        for (w, cell) in widths.iter_mut().zip(line) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut push_line = |cells: &[String]| {
        let mut text = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            let pad = w - cell.chars().count();
            if i == 0 || (i > 1 && left_aligned(i, cells.len(), tail)) {
                let _ = write!(text, "{cell}{}  ", " ".repeat(pad));
            } else {
                let _ = write!(text, "{}{cell}  ", " ".repeat(pad));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    push_line(&header);
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    push_line(&rule);
    for line in &body {
        push_line(line);
    }
    out
}

fn render_markdown(rows: &[TableRow], columns: &[&str]) -> String {
    let (header, body) = table_cells(rows, columns);
    let tail = header.len() - 2 - columns.len();
    let mut out = format!("| {} |\n", header.join(" | "));
    let align: Vec<&str> = (0..header.len())
        .map(|i| {
            if left_aligned(i, header.len(), tail) {
                "---"
            } else {
                "---:"
            }
        })
        .collect();
    let _ = writeln!(out, "|{}|", align.join("|"));
    for line in body {
        let _ = writeln!(out, "| {} |", line.join(" | "));
    }
    out
}

fn peers_raw_line(rows: &[TableRow]) -> Option<String> {
    let parts: Vec<String> = rows
        .iter()
        .filter(|r| r.unit != "MB")
        .filter_map(|r| {
            r.peers_raw
                .map(|v| format!("{} {}", r.key, fmt_value(r.unit, v)))
        })
        .collect();
    (!parts.is_empty()).then(|| {
        format!(
            "sqlx and tokio-rusqlite ratios are to raw re-measured in the peers process (rusqlite 0.37 / \
             tokio-postgres, same code and sizes; P6's raw is tokio-postgres behind deadpool-postgres \
             in both processes): {}",
            parts.join(", ")
        )
    })
}

fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|r| r.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        })
        .unwrap_or_default();
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    json!({ "nproc": nproc, "cpu": cpu, "os": std::env::consts::OS })
}

/// `git describe --always --dirty` of the working directory, if git answers.
fn commit() -> Option<String> {
    let output = std::process::Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// Reads and parses one JSON file.
pub(crate) fn read_json(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_str::<Value>(&text).map_err(|e| format!("{} is not JSON: {e}", path.display()))
}

/// `report --input a.json [--input b.json] [--json out] [--markdown out.md] [--svg chart.svg]
/// [--idle idle-results.json]`.
pub fn main(args: &[String]) -> Result<(), String> {
    let mut inputs = Vec::new();
    let (mut json_out, mut markdown_out, mut svg_out, mut idle_in): (
        Option<PathBuf>,
        Option<PathBuf>,
        Option<PathBuf>,
        Option<PathBuf>,
    ) = (None, None, None, None);
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .map(PathBuf::from)
                .ok_or_else(|| format!("{arg} needs a path"))
        };
        match arg.as_str() {
            "--input" => inputs.push(value()?),
            "--json" => json_out = Some(value()?),
            "--markdown" => markdown_out = Some(value()?),
            "--svg" => svg_out = Some(value()?),
            "--idle" => idle_in = Some(value()?),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    if inputs.is_empty() {
        return Err("report needs at least one --input".to_owned());
    }
    let mut runs = Vec::new();
    for path in &inputs {
        runs.push(read_json(path)?);
    }
    let mut inputs = Inputs { runs, idle: None };
    let mut extra_notes = Vec::new();
    if let Some(path) = &idle_in {
        if !inputs.loaded() {
            extra_notes.push(format!(
                "--idle {} ignored: this run is not a loaded one",
                path.display()
            ));
        } else {
            match read_json(path) {
                Ok(idle) if idle["mode"] == "loaded" => extra_notes.push(format!(
                    "--idle {}: that run was loaded too; no idle ratios shown",
                    path.display()
                )),
                Ok(idle) => inputs.idle = Some(idle),
                // A missing idle run only means there is nothing to show beside.
                Err(e) => extra_notes.push(format!("no idle ratios shown: {e}")),
            }
        }
    }
    let rows = build_rows(&inputs);
    let columns = inputs.columns();
    let mode = if inputs.loaded() { "loaded" } else { "idle" };

    let machine = machine();
    let round_trip = inputs
        .runs
        .iter()
        .find_map(|run| run["settings"]["core_round_trip_ns"].as_str())
        .map_or(String::new(), |ns| {
            format!(", core-to-core cache-line round trip {ns} ns")
        });
    println!(
        "\nanysql benchmarks{}{} — {} cores, {}{round_trip}; cells: value (cost relative to raw, lower is better); \
         CPU rows: the process's CPU time (user + system) per operation (ratio to raw's)\n",
        if inputs.quick() { " (--quick: a tenth of the sizes, noisy)" } else { "" },
        if inputs.loaded() {
            " under load (every core busy with competing threads at normal priority)"
        } else {
            ""
        },
        machine["nproc"],
        machine["cpu"].as_str().unwrap_or("unknown CPU"),
    );
    print!("{}", render_text(&rows, &columns));
    let mut footnote = peers_raw_line(&rows);
    if rows
        .iter()
        .any(|r| r.vs_nospin.iter().any(|(_, v)| v.is_some()))
    {
        let line = format!(
            "≤ nospin: per runtime, anysql's cost over that of the same runtime with {} (SQLite) and {} \
             (PostgreSQL), median of the per-round ratios ± the noise; yes when at most 1 + the noise (half the \
             spread of those ratios, at least {:.0}%)",
            NOSPIN_SQLITE_OPTIONS,
            NOSPIN_PG_OPTIONS,
            NOISE_FLOOR * 100.0
        );
        footnote = Some(match footnote {
            Some(first) => format!("{first}\n\n{line}"),
            None => line,
        });
    }
    if let Some(line) = &footnote {
        println!("\n{line}");
    }
    let notes: Vec<&str> = inputs
        .runs
        .iter()
        .flat_map(|r| r["notes"].as_array().into_iter().flatten())
        .filter_map(Value::as_str)
        .chain(extra_notes.iter().map(String::as_str))
        .collect();
    for note in &notes {
        println!("note: {note}");
    }

    if let Some(path) = &json_out {
        let mut settings = Map::new();
        for run in &inputs.runs {
            if let Some(map) = run["settings"].as_object() {
                settings.extend(map.clone());
            }
        }
        let table: Vec<Value> = rows
            .iter()
            .map(|row| {
                let cells: Map<String, Value> = row
                    .cells
                    .iter()
                    .filter_map(|(imp, cell)| {
                        cell.map(|c| {
                            (
                                (*imp).to_owned(),
                                json!({
                                    "value": c.value,
                                    "ratio": c.ratio,
                                    "cpu_us": c.cpu,
                                    "cpu_ratio": c.cpu_ratio,
                                    "idle_ratio": c.idle_ratio,
                                }),
                            )
                        })
                    })
                    .collect();
                json!({
                    "workload": row.key,
                    "label": row.label,
                    "unit": row.unit,
                    "target": row.target.map(Target::text),
                    "holds": row.holds,
                    "peers_raw": row.peers_raw,
                    "cells": cells,
                    "vs_nospin": row
                        .vs_nospin
                        .iter()
                        .filter_map(|(imp, vs)| {
                            vs.map(|vs| {
                                (
                                    (*imp).to_owned(),
                                    json!({
                                        "relative": vs.relative,
                                        "noise": vs.noise,
                                        "holds": vs.holds(),
                                    }),
                                )
                            })
                        })
                        .collect::<Map<String, Value>>(),
                })
            })
            .collect();
        let generated = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let merged = json!({
            "generated_unix": generated,
            "quick": inputs.quick(),
            "mode": mode,
            "commit": commit(),
            "machine": machine,
            "ratio": "cost relative to raw: time / raw time, or raw throughput / throughput (S5, S6, P6); lower is better",
            "cpu": "cpu_us: the process's CPU time (user + system, all threads) per operation or row over the measured phases; cpu_ratio: over raw's",
            "columns": columns,
            "table": table,
            "settings": settings,
            "notes": notes,
            "runs": inputs.runs,
        });
        write_file(
            path,
            &serde_json::to_string_pretty(&merged).map_err(|e| e.to_string())?,
        )?;
        println!("\nwrote {}", path.display());
    }
    if let Some(path) = &markdown_out {
        let mut text = render_markdown(&rows, &columns);
        if let Some(line) = &footnote {
            let _ = write!(text, "\n{line}\n");
        }
        write_file(path, &text)?;
        println!("wrote {}", path.display());
    }
    if let Some(path) = &svg_out {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        chart(path, &rows, inputs.quick())
            .map_err(|e| format!("cannot draw {}: {e}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

fn write_file(path: &Path, text: &str) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

const COLORS: [RGBColor; 6] = [
    RGBColor(120, 120, 120), // raw
    RGBColor(31, 119, 180),  // anysql-tokio
    RGBColor(44, 160, 44),   // anysql-smol
    RGBColor(23, 190, 207),  // anysql-async-std
    RGBColor(255, 127, 14),  // sqlx
    RGBColor(148, 103, 189), // tokio-rusqlite
];

fn color(imp: &str) -> RGBColor {
    COLORS[COLUMNS.iter().position(|c| *c == imp).unwrap_or(0)]
}

/// Two panels: the ratio to raw of every timed workload (log scale, with the raw line and the
/// targets), and M1's peak RSS.
fn chart(path: &Path, rows: &[TableRow], quick: bool) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(path, (1280, 540)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(940);

    let timed: Vec<&TableRow> = rows.iter().filter(|r| r.unit != "MB").collect();
    let bar_imps = &COLUMNS[1..];
    let ratios = timed
        .iter()
        .flat_map(|r| bar_imps.iter().filter_map(|imp| r.cell(imp)?.ratio));
    let (lo, hi) = ratios.fold((0.5f64, 2.0f64), |(lo, hi), r| (lo.min(r), hi.max(r)));
    let (lo, hi) = (lo * 0.8, hi * 1.8);
    let n = timed.len().max(1);
    let names: Vec<&str> = timed.iter().map(|r| r.key).collect();
    let x_label = |x: &f64| {
        let i = x.round();
        if (x - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < names.len() {
            names[i as usize].to_owned()
        } else {
            String::new()
        }
    };
    let y_label = |y: &f64| format!("{y}×");
    let caption = if quick {
        "cost relative to the raw driver (lower is better, log scale) — --quick run"
    } else {
        "cost relative to the raw driver (lower is better, log scale)"
    };
    let mut chart = ChartBuilder::on(&left)
        .caption(caption, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(56)
        .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), (lo..hi).log_scale())?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .light_line_style(WHITE)
        .x_labels(2 * n + 1)
        .x_label_formatter(&x_label)
        .y_label_formatter(&y_label)
        .y_desc("ratio to raw")
        .draw()?;
    let width = 0.84 / bar_imps.len() as f64;
    for (k, imp) in bar_imps.iter().enumerate() {
        let c = color(imp);
        let bars: Vec<Rectangle<(f64, f64)>> = timed
            .iter()
            .enumerate()
            .filter_map(|(i, row)| {
                let ratio = row.cell(imp)?.ratio?;
                let x0 = i as f64 - 0.42 + k as f64 * width;
                Some(Rectangle::new(
                    [(x0, lo), (x0 + width * 0.9, ratio.clamp(lo, hi))],
                    c.filled(),
                ))
            })
            .collect();
        chart
            .draw_series(bars)?
            .label(*imp)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], c.filled()));
    }
    chart
        .draw_series(std::iter::once(PathElement::new(
            vec![(-0.5, 1.0), (n as f64 - 0.5, 1.0)],
            BLACK.stroke_width(1),
        )))?
        .label("raw = 1×")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 12, y)], BLACK.stroke_width(1)));
    let targets: Vec<PathElement<(f64, f64)>> = timed
        .iter()
        .enumerate()
        .filter_map(|(i, row)| {
            let t = row.target?.line()?;
            Some(PathElement::new(
                vec![(i as f64 - 0.46, t), (i as f64 + 0.46, t)],
                RED.stroke_width(3),
            ))
        })
        .collect();
    chart
        .draw_series(targets)?
        .label("target")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 12, y)], RED.stroke_width(3)));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;

    // M1: peak RSS.
    let m1: Vec<&TableRow> = rows.iter().filter(|r| r.unit == "MB").collect();
    let top = m1
        .iter()
        .flat_map(|r| r.cells.iter().filter_map(|(_, c)| c.map(|c| c.value)))
        .fold(60.0f64, f64::max)
        * 1.15;
    let m = m1.len().max(1);
    let m1_names: Vec<&str> = m1
        .iter()
        .map(|r| {
            if r.key == "M1s" {
                "SQLite"
            } else {
                "PostgreSQL"
            }
        })
        .collect();
    let m1_label = |x: &f64| {
        let i = x.round();
        if (x - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < m1_names.len() {
            m1_names[i as usize].to_owned()
        } else {
            String::new()
        }
    };
    let mut chart = ChartBuilder::on(&right)
        .caption("M1 peak RSS, 1M rows streamed (MB)", ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(40)
        .build_cartesian_2d(-0.5f64..(m as f64 - 0.5), 0f64..top)?;
    let mb_label = |y: &f64| format!("{y:.0}");
    chart
        .configure_mesh()
        .disable_x_mesh()
        .light_line_style(WHITE)
        .x_labels(2 * m + 1)
        .x_label_formatter(&m1_label)
        .y_label_formatter(&mb_label)
        .draw()?;
    let width = 0.84 / COLUMNS.len() as f64;
    for (k, imp) in COLUMNS.iter().enumerate() {
        let c = color(imp);
        let bars: Vec<Rectangle<(f64, f64)>> = m1
            .iter()
            .enumerate()
            .filter_map(|(i, row)| {
                let mb = row.cell(imp)?.value;
                let x0 = i as f64 - 0.42 + k as f64 * width;
                Some(Rectangle::new(
                    [(x0, 0.0), (x0 + width * 0.9, mb)],
                    c.filled(),
                ))
            })
            .collect();
        let series = chart.draw_series(bars)?;
        if *imp == "raw" {
            series
                .label("raw")
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], c.filled()));
        }
    }
    chart
        .draw_series(std::iter::once(PathElement::new(
            vec![(-0.5, 50.0), (m as f64 - 0.5, 50.0)],
            RED.stroke_width(3),
        )))?
        .label("target: 50 MB")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 12, y)], RED.stroke_width(3)));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One binary's JSON with `results`: (key, impl, samples, CPU samples).
    fn run(source: &str, mode: &str, results: &[(&str, &str, &[f64], &[f64])]) -> Value {
        let results: Vec<Value> = results
            .iter()
            .map(|(key, imp, samples, cpu)| {
                json!({
                    "workload": key,
                    "impl": imp,
                    "value": median(samples),
                    "samples": samples,
                    "cpu_us": if cpu.is_empty() { Value::Null } else { json!(median(cpu)) },
                    "cpu_samples": cpu,
                })
            })
            .collect();
        json!({ "source": source, "quick": false, "mode": mode, "results": results })
    }

    fn main_run(results: &[(&str, &str, &[f64], &[f64])]) -> Value {
        run(MAIN_SOURCE, "idle", results)
    }

    fn row<'a>(rows: &'a [TableRow], key: &str) -> &'a TableRow {
        rows.iter().find(|r| r.key == key).expect("the row")
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn cpu_cells_carry_the_cpu_per_operation_and_its_paired_ratio() {
        let inputs = Inputs {
            runs: vec![main_run(&[
                ("P1", "raw", &[50.0, 60.0, 55.0], &[10.0, 12.0, 8.0]),
                (
                    "P1",
                    "anysql-tokio",
                    &[25.0, 30.0, 28.0],
                    &[30.0, 24.0, 40.0],
                ),
            ])],
            idle: None,
        };
        let rows = build_rows(&inputs);
        let p1 = row(&rows, "P1");
        let raw = p1.cell("raw").unwrap();
        assert_eq!(raw.cpu, Some(10.0));
        assert_eq!(raw.cpu_ratio, None);
        let tokio = p1.cell("anysql-tokio").unwrap();
        assert_eq!(tokio.cpu, Some(30.0));
        // Per round: 3.0, 2.0, 5.0; the median is 3.0 (the ratio of the medians would be 3.0 too,
        // so check the paired wall ratio as well: 0.5, 0.5, 0.509 -> 0.5).
        assert!(close(tokio.cpu_ratio.unwrap(), 3.0));
        assert!(close(tokio.ratio.unwrap(), 0.5));
        assert!(p1.has_cpu());

        let text = render_text(&rows, &inputs.columns());
        let cpu_line = text.lines().find(|l| l.starts_with("P1 CPU")).unwrap();
        assert!(cpu_line.contains("CPU µs/op"), "{cpu_line}");
        assert!(cpu_line.contains("10.0"), "{cpu_line}");
        assert!(cpu_line.contains("30.0 (3.00×)"), "{cpu_line}");
        let markdown = render_markdown(&rows, &inputs.columns());
        assert!(
            markdown.contains("| P1 CPU | CPU µs/op | 10.0 | 30.0 (3.00×) |"),
            "{markdown}"
        );
    }

    #[test]
    fn cpu_ratio_pairs_rounds_not_medians() {
        let raw = Found {
            value: 1.0,
            samples: vec![1.0; 3],
            cpu: Some(20.0),
            cpu_samples: vec![10.0, 20.0, 40.0],
        };
        let imp = Found {
            value: 1.0,
            samples: vec![1.0; 3],
            cpu: Some(40.0),
            cpu_samples: vec![40.0, 20.0, 40.0],
        };
        // Paired: per round 4, 1, 1 -> 1. Unpaired (other processes): the medians, 40 / 20 -> 2.
        assert!(close(cpu_ratio(&imp, &raw, true).unwrap(), 1.0));
        assert!(close(cpu_ratio(&imp, &raw, false).unwrap(), 2.0));
        let no_cpu = Found { cpu: None, ..raw };
        assert_eq!(cpu_ratio(&imp, &no_cpu, true), None);
    }

    #[test]
    fn the_s5_cpu_row_comes_once_and_rows_without_cpu_have_none() {
        let inputs = Inputs {
            runs: vec![main_run(&[
                ("S5r", "raw", &[1000.0], &[2.0]),
                ("S5w", "raw", &[100.0], &[]),
                ("M1s", "raw", &[5.0], &[]),
            ])],
            idle: None,
        };
        let rows = build_rows(&inputs);
        let text = render_text(&rows, &inputs.columns());
        assert_eq!(text.matches("S5 CPU").count(), 1, "{text}");
        assert!(!text.contains("M1s CPU"));
        assert!(!row(&rows, "S5w").has_cpu());
    }

    #[test]
    fn p6_is_paired_with_the_raw_run_of_its_own_process_when_there_is_one() {
        let inputs = Inputs {
            runs: vec![
                main_run(&[
                    ("P6", "raw", &[1000.0, 2000.0, 4000.0], &[20.0]),
                    ("P6", "anysql-tokio", &[1250.0, 2500.0, 5000.0], &[20.0]),
                    ("P6s", "anysql-tokio", &[1000.0, 2000.0, 4000.0], &[25.0]),
                ]),
                run(
                    "anysql-bench-peers",
                    "idle",
                    &[
                        ("P6", "raw", &[3000.0, 3000.0, 3000.0], &[20.0]),
                        ("P6", "sqlx", &[800.0, 800.0, 800.0], &[30.0]),
                    ],
                ),
            ],
            idle: None,
        };
        let rows = build_rows(&inputs);
        let p6 = row(&rows, "P6");
        // The raw column shows this process's figure, and the ratio pairs rounds: 0.8 in each
        // (the medians of the two processes would give 3000 / 2500 = 1.2).
        assert_eq!(p6.cell("raw").unwrap().value, 2000.0);
        assert!(close(p6.cell("anysql-tokio").unwrap().ratio.unwrap(), 0.8));
        // P6s against the same raw run.
        let p6s = row(&rows, "P6s");
        assert!(close(p6s.cell("anysql-tokio").unwrap().ratio.unwrap(), 1.0));
    }

    #[test]
    fn p6_is_compared_with_the_peers_raw_run_unpaired_and_checks_its_target() {
        let inputs = |anysql: f64| Inputs {
            runs: vec![
                main_run(&[(
                    "P6",
                    "anysql-tokio",
                    &[anysql, anysql * 4.0, anysql],
                    &[50.0],
                )]),
                run(
                    "anysql-bench-peers",
                    "idle",
                    &[
                        ("P6", "raw", &[1000.0, 1000.0, 4000.0], &[20.0]),
                        ("P6", "sqlx", &[800.0, 800.0, 800.0], &[30.0]),
                    ],
                ),
            ],
            idle: None,
        };
        let rows = build_rows(&inputs(1300.0));
        let p6 = row(&rows, "P6");
        assert_eq!(p6.unit, "tx/s");
        // The raw column shows the peers' deadpool figure.
        assert_eq!(p6.cell("raw").unwrap().value, 1000.0);
        // Unpaired: the medians, 1000 / 1300 (paired rounds would give 1000/1300, 1000/5200,
        // 4000/1300 -> 0.77 as well; the CPU ratio shows the medians: 50 / 20).
        let tokio = p6.cell("anysql-tokio").unwrap();
        assert!(close(tokio.ratio.unwrap(), 1000.0 / 1300.0));
        assert!(close(tokio.cpu_ratio.unwrap(), 2.5));
        // 1.3× raw's throughput, 1.625× sqlx's.
        assert_eq!(p6.holds, "yes");
        let rows = build_rows(&inputs(1200.0));
        let holds = &row(&rows, "P6").holds;
        assert!(holds.starts_with("no: tokio 1.20× raw"), "{holds}");
        assert!(!holds.contains("sqlx"), "{holds}");
        let rows = build_rows(&inputs(900.0));
        let holds = &row(&rows, "P6").holds;
        assert!(
            holds.contains("0.90× raw") && holds.contains("1.12× sqlx"),
            "{holds}"
        );
    }

    #[test]
    fn vs_nospin_holds_within_the_noise_and_not_beyond() {
        let found = |samples: &[f64]| Found {
            value: median(samples),
            samples: samples.to_vec(),
            ..Found::default()
        };
        // Times: per round 1.1, 0.9, 1.0 -> 1.0, within the noise.
        let vs = vs_nospin("P1", &found(&[110.0, 90.0, 100.0]), &found(&[100.0; 3]));
        assert!(close(vs.relative, 1.0) && vs.holds());
        // 8% worse in every round: the spread is nil, the floor 5%: it does not hold.
        let vs = vs_nospin("P1", &found(&[108.0; 3]), &found(&[100.0; 3]));
        assert!(close(vs.relative, 1.08) && close(vs.noise, NOISE_FLOOR) && !vs.holds());
        // 8% worse at the median, but the rounds spread by ±20%: within the noise.
        let vs = vs_nospin("P1", &found(&[88.0, 108.0, 128.0]), &found(&[100.0; 3]));
        assert!(close(vs.noise, 0.2) && vs.holds());
        // Throughputs are inverted: half the no-spin throughput costs 2×.
        let vs = vs_nospin("S6", &found(&[1000.0; 3]), &found(&[2000.0; 3]));
        assert!(close(vs.relative, 2.0) && !vs.holds());
        let vs = vs_nospin("S6", &found(&[2000.0; 3]), &found(&[1000.0; 3]));
        assert!(close(vs.relative, 0.5) && vs.holds());
    }

    #[test]
    fn a_loaded_run_shows_the_nospin_columns_the_verdicts_and_the_idle_ratios() {
        let loaded = run(
            MAIN_SOURCE,
            "loaded",
            &[
                ("P1", "raw", &[100.0, 100.0, 100.0], &[10.0; 3]),
                ("P1", "anysql-tokio", &[60.0, 60.0, 60.0], &[30.0; 3]),
                ("P1", "anysql-tokio-nospin", &[80.0, 80.0, 80.0], &[12.0; 3]),
                ("P1", "anysql-smol", &[90.0, 90.0, 90.0], &[30.0; 3]),
                ("P1", "anysql-smol-nospin", &[70.0, 70.0, 70.0], &[12.0; 3]),
            ],
        );
        let idle = json!({
            "mode": "idle",
            "table": [{ "workload": "P1", "cells": { "anysql-tokio": { "ratio": 0.5 } } }],
        });
        let inputs = Inputs {
            runs: vec![loaded],
            idle: Some(idle),
        };
        assert!(inputs.loaded());
        let columns = inputs.columns();
        assert_eq!(columns[4], "anysql-tokio-nospin");
        assert_eq!(columns.len(), COLUMNS.len() + NOSPIN.len());
        let rows = build_rows(&inputs);
        let p1 = row(&rows, "P1");
        assert_eq!(p1.cell("anysql-tokio").unwrap().idle_ratio, Some(0.5));
        assert_eq!(p1.cell("anysql-smol").unwrap().idle_ratio, None);
        assert_eq!(
            p1.nospin_text(),
            "tokio yes (0.75× ±0.05), smol no (1.29× ±0.05)"
        );
        let text = render_text(&rows, &columns);
        assert!(text.contains("≤ nospin"), "{text}");
        assert!(text.contains("60.0 (0.60×, idle 0.50×)"), "{text}");
        assert!(
            text.contains("tokio yes (0.75× ±0.05), smol no (1.29× ±0.05)"),
            "{text}"
        );
        // The price of spinning: 3× raw's CPU, against 1.2× without.
        let cpu_line = text.lines().find(|l| l.starts_with("P1 CPU")).unwrap();
        assert!(cpu_line.contains("30.0 (3.00×)") && cpu_line.contains("12.0 (1.20×)"));
    }

    #[test]
    fn an_idle_run_has_no_nospin_column() {
        let inputs = Inputs {
            runs: vec![main_run(&[
                ("P1", "raw", &[100.0], &[10.0]),
                ("P1", "anysql-tokio", &[60.0], &[30.0]),
            ])],
            idle: None,
        };
        assert!(!inputs.loaded());
        assert_eq!(inputs.columns(), COLUMNS.to_vec());
        let rows = build_rows(&inputs);
        assert!(rows
            .iter()
            .all(|r| r.vs_nospin.iter().all(|(_, v)| v.is_none())));
        assert!(!render_text(&rows, &inputs.columns()).contains("nospin"));
    }
}
