//! `anysql-benches report`: merges the JSON of the main harness and of the peers binary, prints one
//! table (workloads × implementations, each cell the value and its ratio to raw, then the target and
//! whether it holds), and writes the merged JSON, a Markdown copy of the table and the chart.
//!
//! This lives here rather than in xtask so that xtask, which every `cargo xtask test-matrix` builds,
//! stays free of serde_json and plotters.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use plotters::prelude::*;
use serde_json::{json, Map, Value};

/// The table's implementation columns, in order.
const COLUMNS: [&str; 6] = [
    "raw",
    "anysql-tokio",
    "anysql-smol",
    "anysql-async-std",
    "sqlx",
    "tokio-rusqlite",
];
const ANYSQL: [&str; 3] = ["anysql-tokio", "anysql-smol", "anysql-async-std"];
const PEERS: [&str; 2] = ["sqlx", "tokio-rusqlite"];
const MAIN_SOURCE: &str = "anysql-benches";

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
    /// Peak RSS below this many MB.
    Megabytes(f64),
}

impl Target {
    fn text(self) -> String {
        match self {
            Target::Ratio(r) => format!("≤ {r}×"),
            Target::RatioAndVsSqlx(r, s) => format!("≤ {r}×, {s}× faster than sqlx"),
            Target::RatioAndVsBatch(r, s) => format!("≤ {r}×, {s}× faster than execute_many"),
            Target::Megabytes(mb) => format!("< {mb} MB"),
        }
    }
}

/// The table's rows: key, label, target.
const ROWS: [(&str, &str, Option<Target>); 16] = [
    ("S1", "S1 point select", Some(Target::Ratio(1.5))),
    ("S2", "S2 insert, 1 call/row", Some(Target::Ratio(4.0))),
    ("S3", "S3 batch insert", Some(Target::Ratio(1.5))),
    ("S4", "S4 fetch all", Some(Target::Ratio(1.2))),
    ("S5r", "S5 reads (4 tasks)", None),
    ("S5w", "S5 writes (1 task)", None),
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

#[derive(Clone, Copy, Debug)]
struct Cell {
    value: f64,
    /// Cost relative to raw: time / raw time, or raw throughput / throughput. `None` for raw itself
    /// and for memory.
    ratio: Option<f64>,
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
}

impl TableRow {
    fn cell(&self, imp: &str) -> Option<Cell> {
        self.cells
            .iter()
            .find(|(i, _)| *i == imp)
            .and_then(|(_, c)| *c)
    }
}

struct Inputs {
    runs: Vec<Value>,
}

impl Inputs {
    /// The median of `key` for `imp`, from the main harness (`main`) or the peers, and the
    /// samples of every round.
    fn result(&self, key: &str, imp: &str, main: bool) -> Option<(f64, Vec<f64>)> {
        let result = self
            .runs
            .iter()
            .filter(|run| (run["source"] == MAIN_SOURCE) == main)
            .flat_map(|run| run["results"].as_array().into_iter().flatten())
            .find(|r| r["workload"] == key && r["impl"] == imp)?;
        let samples = result["samples"]
            .as_array()
            .map(|s| s.iter().filter_map(Value::as_f64).collect())
            .unwrap_or_default();
        Some((result["value"].as_f64()?, samples))
    }

    fn quick(&self) -> bool {
        self.runs.iter().any(|run| run["quick"] == true)
    }
}

fn cost_ratio(key: &str, value: f64, raw: f64) -> f64 {
    if crate::common::unit_of(key) == "ops/s" {
        raw / value
    } else {
        value / raw
    }
}

/// The cost of `imp` relative to `raw`: the median of the per-round ratios when both have one sample
/// per round (rounds interleave the implementations, so a round's two samples were taken seconds
/// apart and share the machine's state), else the ratio of the medians.
fn paired_ratio(key: &str, imp: &(f64, Vec<f64>), raw: &(f64, Vec<f64>)) -> f64 {
    if !imp.1.is_empty() && imp.1.len() == raw.1.len() {
        let ratios: Vec<f64> = imp
            .1
            .iter()
            .zip(&raw.1)
            .map(|(v, r)| cost_ratio(key, *v, *r))
            .collect();
        crate::common::median(&ratios)
    } else {
        cost_ratio(key, imp.0, raw.0)
    }
}

/// The key of the raw figure `key` is compared to: P5's batch-API row (`P5m`) against the raw
/// binary COPY, the others against their own.
fn raw_key(key: &str) -> &str {
    match key {
        "P5m" => "P5",
        other => other,
    }
}

fn build_rows(inputs: &Inputs) -> Vec<TableRow> {
    let mut rows = Vec::new();
    let mut batch_ratios: Vec<(&'static str, f64)> = Vec::new();
    for (key, label, target) in ROWS {
        let unit = crate::common::unit_of(key);
        let main_raw = inputs.result(raw_key(key), "raw", true);
        let peers_raw = inputs.result(raw_key(key), "raw", false);
        let mut cells = Vec::new();
        for imp in COLUMNS {
            let cell = if imp == "raw" && raw_key(key) != key {
                // Shown in the row of its own key.
                None
            } else if imp == "raw" {
                main_raw
                    .as_ref()
                    .or(peers_raw.as_ref())
                    .map(|(value, _)| Cell {
                        value: *value,
                        ratio: None,
                    })
            } else {
                let is_peer = PEERS.contains(&imp);
                let raw = if is_peer {
                    peers_raw.as_ref().or(main_raw.as_ref())
                } else {
                    main_raw.as_ref()
                };
                inputs.result(key, imp, !is_peer).map(|result| Cell {
                    value: result.0,
                    ratio: match (unit, raw) {
                        ("MB", _) | (_, None) => None,
                        (_, Some(raw)) => Some(paired_ratio(key, &result, raw)),
                    },
                })
            };
            cells.push((imp, cell));
        }
        if cells.iter().all(|(_, c)| c.is_none()) {
            continue;
        }
        let row = TableRow {
            key,
            label,
            unit,
            target,
            cells,
            holds: String::new(),
            peers_raw: peers_raw.map(|(value, _)| value),
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
        "ops/s" if v >= 10_000.0 => format!("{:.0}k/s", v / 1000.0),
        "ops/s" => format!("{v:.0}/s"),
        "MB" => format!("{v:.1} MB"),
        _ if v < 1.0 => format!("{v:.3}"),
        _ if v < 10.0 => format!("{v:.2}"),
        _ if v < 100.0 => format!("{v:.1}"),
        _ => format!("{v:.0}"),
    }
}

fn fmt_cell(unit: &str, cell: Option<Cell>) -> String {
    match cell {
        None => "—".to_owned(),
        Some(Cell { value, ratio: None }) => fmt_value(unit, value),
        Some(Cell {
            value,
            ratio: Some(r),
        }) => format!("{} ({r:.2}×)", fmt_value(unit, value)),
    }
}

fn unit_label(unit: &str) -> &str {
    match unit {
        "us/op" => "µs/op",
        "us/row" => "µs/row",
        other => other,
    }
}

fn table_cells(rows: &[TableRow]) -> (Vec<String>, Vec<Vec<String>>) {
    let mut header = vec!["workload".to_owned(), "unit".to_owned()];
    header.extend(COLUMNS.iter().map(|c| (*c).to_owned()));
    header.extend(["target".to_owned(), "holds".to_owned()]);
    let body = rows
        .iter()
        .map(|row| {
            let mut line = vec![row.label.to_owned(), unit_label(row.unit).to_owned()];
            line.extend(row.cells.iter().map(|(_, cell)| fmt_cell(row.unit, *cell)));
            line.push(row.target.map(Target::text).unwrap_or_default());
            line.push(row.holds.clone());
            line
        })
        .collect();
    (header, body)
}

fn render_text(rows: &[TableRow]) -> String {
    let (header, body) = table_cells(rows);
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
            if i == 0 || i + 2 >= cells.len() {
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

fn render_markdown(rows: &[TableRow]) -> String {
    let (header, body) = table_cells(rows);
    let mut out = format!("| {} |\n", header.join(" | "));
    let align: Vec<&str> = (0..header.len())
        .map(|i| {
            if i < 2 || i + 2 >= header.len() {
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
             tokio-postgres, same code and sizes): {}",
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

/// `report --input a.json [--input b.json] [--json out] [--markdown out.md] [--svg chart.svg]`.
pub fn main(args: &[String]) -> Result<(), String> {
    let mut inputs = Vec::new();
    let (mut json_out, mut markdown_out, mut svg_out): (
        Option<PathBuf>,
        Option<PathBuf>,
        Option<PathBuf>,
    ) = (None, None, None);
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
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    if inputs.is_empty() {
        return Err("report needs at least one --input".to_owned());
    }
    let mut runs = Vec::new();
    for path in &inputs {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        runs.push(
            serde_json::from_str::<Value>(&text)
                .map_err(|e| format!("{} is not JSON: {e}", path.display()))?,
        );
    }
    let inputs = Inputs { runs };
    let rows = build_rows(&inputs);

    let machine = machine();
    let round_trip = inputs
        .runs
        .iter()
        .find_map(|run| run["settings"]["core_round_trip_ns"].as_str())
        .map_or(String::new(), |ns| {
            format!(", core-to-core cache-line round trip {ns} ns")
        });
    println!(
        "\nanysql benchmarks{} — {} cores, {}{round_trip}; cells: value (cost relative to raw, lower is better)\n",
        if inputs.quick() { " (--quick: a tenth of the sizes, noisy)" } else { "" },
        machine["nproc"],
        machine["cpu"].as_str().unwrap_or("unknown CPU"),
    );
    print!("{}", render_text(&rows));
    let footnote = peers_raw_line(&rows);
    if let Some(line) = &footnote {
        println!("\n{line}");
    }
    let notes: Vec<&str> = inputs
        .runs
        .iter()
        .flat_map(|r| r["notes"].as_array().into_iter().flatten())
        .filter_map(Value::as_str)
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
                                json!({ "value": c.value, "ratio": c.ratio }),
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
                })
            })
            .collect();
        let generated = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let merged = json!({
            "generated_unix": generated,
            "quick": inputs.quick(),
            "commit": commit(),
            "machine": machine,
            "ratio": "cost relative to raw: time / raw time, or raw throughput / throughput (S5); lower is better",
            "columns": COLUMNS,
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
        let mut text = render_markdown(&rows);
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
            let t = match row.target? {
                Target::Ratio(t) | Target::RatioAndVsSqlx(t, _) | Target::RatioAndVsBatch(t, _) => {
                    t
                }
                Target::Megabytes(_) => return None,
            };
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
