//! The cost of the `tracing` feature: `anysql-benches tracing-cost`, which `cargo xtask bench
//! --tracing` runs after measuring anysql on tokio in three builds and states, round after round:
//!
//! - `plain`: the harness as usual, without the feature (what every other row measures);
//! - `off`: the harness built with `--features tracing` and no subscriber (the spans exist but
//!   nobody listens: the price of compiling the feature in);
//! - `on`: that build with a `tracing-subscriber` `fmt` layer that formats every statement's
//!   span when it closes (into a sink), as an application that logs each statement would.
//!
//! Each round measures the three one after the other, so the ratios `off / plain` and
//! `on / plain` are paired by round; the table gives their median and range.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::report::read_json;

/// Installs the subscriber of the `on` state when `ANYSQL_BENCH_SUBSCRIBER` is set: a `fmt`
/// layer at `INFO` that formats each span when it closes and writes it to a sink.
#[cfg(feature = "tracing")]
pub fn install_subscriber() {
    if std::env::var_os("ANYSQL_BENCH_SUBSCRIBER").is_none() {
        return;
    }
    let subscriber = tracing_subscriber::fmt()
        .with_writer(std::io::sink)
        .with_max_level(tracing_subscriber::filter::LevelFilter::INFO)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .finish();
    if tracing::subscriber::set_global_default(subscriber).is_err() {
        eprintln!("warning: a global subscriber was already set");
    }
}

/// The three result files of one round.
struct Round {
    plain: Value,
    off: Value,
    on: Value,
}

/// The median µs/op of `imp` on `workload` in one result file.
fn median(results: &Value, workload: &str, imp: &str) -> Option<f64> {
    results["results"]
        .as_array()?
        .iter()
        .find(|r| r["workload"] == workload && r["impl"] == imp)?["value"]
        .as_f64()
}

fn median_of(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// The table: for each workload, the plain median and the `off` and `on` ratios to it.
fn table(rounds: &[Round], imp: &str) -> String {
    let mut workloads: Vec<String> = Vec::new();
    for round in rounds {
        for r in round.plain["results"].as_array().into_iter().flatten() {
            let w = r["workload"].as_str().unwrap_or_default().to_owned();
            if r["impl"] == imp && !workloads.contains(&w) {
                workloads.push(w);
            }
        }
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| workload | {imp}, no feature (µs/op) | feature on, no subscriber | feature on, fmt subscriber |"
    );
    let _ = writeln!(out, "|---|---|---|---|");
    for w in &workloads {
        let mut plain = Vec::new();
        let mut off = Vec::new();
        let mut on = Vec::new();
        for round in rounds {
            let (Some(p), Some(f), Some(n)) = (
                median(&round.plain, w, imp),
                median(&round.off, w, imp),
                median(&round.on, w, imp),
            ) else {
                continue;
            };
            plain.push(p);
            off.push(f / p);
            on.push(n / p);
        }
        if plain.is_empty() {
            continue;
        }
        let cell = |ratios: &[f64]| {
            let lo = ratios.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            format!("{:.2}× ({lo:.2}–{hi:.2})", median_of(ratios.to_vec()))
        };
        let _ = writeln!(
            out,
            "| {w} | {:.2} | {} | {} |",
            median_of(plain.clone()),
            cell(&off),
            cell(&on)
        );
    }
    let _ = writeln!(
        out,
        "\n{} rounds; each ratio is the traced build's median over the plain build's in the same round (median, range).",
        rounds.len()
    );
    out
}

/// `tracing-cost --round plain.json,off.json,on.json [--round …] [--markdown out.md]`.
pub fn main(args: &[String]) -> Result<(), String> {
    let mut rounds = Vec::new();
    let mut markdown: Option<PathBuf> = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--round" => {
                let list = args
                    .next()
                    .ok_or("--round needs plain.json,off.json,on.json")?;
                let files: Vec<&str> = list.split(',').collect();
                let [plain, off, on] = files[..] else {
                    return Err(format!("--round {list}: three files, plain,off,on"));
                };
                rounds.push(Round {
                    plain: read_json(Path::new(plain))?,
                    off: read_json(Path::new(off))?,
                    on: read_json(Path::new(on))?,
                });
            }
            "--markdown" => {
                markdown = Some(PathBuf::from(args.next().ok_or("--markdown needs a path")?));
            }
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    if rounds.is_empty() {
        return Err("tracing-cost needs at least one --round".to_owned());
    }
    let text = table(&rounds, "anysql-tokio");
    println!("{text}");
    if let Some(path) = markdown {
        std::fs::write(&path, &text)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn results(value: f64) -> Value {
        serde_json::json!({"results": [
            {"workload": "S1", "impl": "anysql-tokio", "value": value},
            {"workload": "S1", "impl": "raw", "value": 1.0},
        ]})
    }

    #[test]
    fn ratios_are_paired_by_round() {
        let rounds = vec![
            Round {
                plain: results(10.0),
                off: results(10.0),
                on: results(12.0),
            },
            Round {
                plain: results(20.0),
                off: results(22.0),
                on: results(30.0),
            },
            Round {
                plain: results(10.0),
                off: results(10.5),
                on: results(11.0),
            },
        ];
        let text = table(&rounds, "anysql-tokio");
        assert!(
            text.contains("| S1 | 10.00 | 1.05× (1.00–1.10) | 1.20× (1.10–1.50) |"),
            "{text}"
        );
        assert!(text.contains("3 rounds"), "{text}");
    }
}
