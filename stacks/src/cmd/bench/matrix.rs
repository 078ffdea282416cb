//! `strata bench --matrix FILE.ron`: every stack × payload size × member count of a
//! matrix file, each cell over real UDP on loopback next to the raw UDP multicast
//! baseline of the same size and member count.
//!
//! ```ron
//! Matrix(
//!     seconds: 2.0,                       // how long every member casts, per cell
//!     stacks: ["../stacks/fifo.ron"],     // relative to the matrix file
//!     sizes: [64, 1024],                  // payload bytes (at least 8)
//!     members: [2, 3],                    // member processes
//!     raw: true,                          // run the raw baseline (default true)
//! )
//! ```
//!
//! Cells run size by size, member count by member count: the raw baseline once for
//! each (size, members), then every stack. A cell that fails is recorded with its
//! error and the run goes on. Raw payloads larger than the largest UDP datagram
//! (65,507 B) are sent at that size (`raw_size` in the results).
//!
//! Output directory: `results.csv` (one row per cell), `results.json` (everything,
//! per-member figures included), `results.md` (a table for the README) and
//! `chart.svg` (messages/s and p99 latency per stack, the raw baseline alongside).

use super::{chart, figures, progress, ratio, run_cell, run_raw, Cell, NetOpts, MAX_DATAGRAM};
use anyhow::{bail, Context, Result};
use serde::Deserialize;
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

/// A matrix file.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename = "Matrix", deny_unknown_fields)]
pub struct Matrix {
    /// Seconds every member casts in one cell.
    pub seconds: f64,
    /// Stack descriptors, relative to the matrix file (or the working directory).
    pub stacks: Vec<PathBuf>,
    /// Payload sizes, bytes.
    pub sizes: Vec<usize>,
    /// Member counts.
    pub members: Vec<usize>,
    /// Whether to run the raw UDP baseline.
    #[serde(default = "yes")]
    pub raw: bool,
}

fn yes() -> bool {
    true
}

impl Matrix {
    /// Reads and checks a matrix file; stack paths are resolved against its folder.
    pub fn load(file: &Path) -> Result<Matrix> {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        let mut m: Matrix =
            ron::from_str(&text).map_err(|e| anyhow::anyhow!("{}:{e}", file.display()))?;
        if m.stacks.is_empty() || m.sizes.is_empty() || m.members.is_empty() {
            bail!("{}: stacks, sizes and members must not be empty", file.display());
        }
        if !(m.seconds > 0.0 && m.seconds <= 600.0) {
            bail!("{}: seconds must be in (0, 600]", file.display());
        }
        if m.sizes.iter().any(|&s| s < 8) || m.members.contains(&0) {
            bail!("{}: sizes must be at least 8 and members at least 1", file.display());
        }
        let dir = file.parent().unwrap_or(Path::new("."));
        for s in &mut m.stacks {
            let beside = dir.join(&*s);
            if beside.exists() {
                *s = beside;
            }
        }
        Ok(m)
    }

    /// Stack runs plus raw runs.
    pub fn runs(&self) -> usize {
        let pairs = self.sizes.len() * self.members.len();
        pairs * self.stacks.len() + if self.raw { pairs } else { 0 }
    }
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(0.0)
}

/// One CSV row per cell.
pub const CSV_HEADER: &str = "stack,size,members,seconds,msgs_per_s,mb_per_s,p50_us,p99_us,\
p999_us,sent,lost,retransmissions,complete,raw_size,raw_msgs_per_s,raw_mb_per_s,raw_p50_us,\
raw_p99_us,raw_lost,ratio,error";

fn csv_row(c: &Value) -> String {
    let s = &c["result"];
    let r = &c["raw"];
    let num = |v: &Value| if v.is_null() { String::new() } else { v.to_string() };
    [
        c["stack"].as_str().unwrap_or("").to_string(),
        c["size"].to_string(),
        c["members"].to_string(),
        c["seconds"].to_string(),
        num(&s["msgs_per_s"]),
        num(&s["mb_per_s"]),
        num(&s["latency_us"]["p50"]),
        num(&s["latency_us"]["p99"]),
        num(&s["latency_us"]["p999"]),
        num(&s["sent"]),
        num(&s["lost"]),
        num(&s["retransmissions"]),
        num(&s["complete"]),
        num(&c["raw_size"]),
        num(&r["msgs_per_s"]),
        num(&r["mb_per_s"]),
        num(&r["latency_us"]["p50"]),
        num(&r["latency_us"]["p99"]),
        num(&r["lost"]),
        num(&c["ratio"]),
        format!("\"{}\"", c["error"].as_str().unwrap_or("").replace('"', "'")),
    ]
    .join(",")
}

fn size_label(b: u64) -> String {
    if b >= 1024 && b & 1023 == 0 {
        format!("{} KiB", b / 1024)
    } else {
        format!("{b} B")
    }
}

/// The Markdown table of the cells, for the README.
pub fn markdown(cells: &[Value], command: &str, wall: f64) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "Delivered messages/s per member (mean), one-way latency (worst member), and the \
         raw UDP multicast baseline with the same processes, size and duration; loopback. \
         Generated by `{command}` in {wall:.0} s.\n"
    );
    md.push_str(
        "| stack | size | members | msgs/s | MB/s | p50 µs | p99 µs | raw msgs/s | raw p99 µs | stack/raw |\n",
    );
    md.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for c in cells {
        let s = &c["result"];
        let r = &c["raw"];
        let opt = |v: &Value, w: fn(f64) -> String| {
            if v.is_null() {
                "–".to_string()
            } else {
                w(f(v))
            }
        };
        let int = |x: f64| format!("{x:.0}");
        let err = c["error"].as_str().map(|e| format!(" (failed: {e})")).unwrap_or_default();
        let incomplete = if s["complete"] == json!(false) { " (not all delivered)" } else { "" };
        let _ = writeln!(
            md,
            "| {}{err}{incomplete} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            c["stack"].as_str().unwrap_or(""),
            size_label(c["size"].as_u64().unwrap_or(0)),
            c["members"],
            opt(&s["msgs_per_s"], int),
            opt(&s["mb_per_s"], |x| format!("{x:.1}")),
            opt(&s["latency_us"]["p50"], int),
            opt(&s["latency_us"]["p99"], int),
            opt(&r["msgs_per_s"], int),
            opt(&r["latency_us"]["p99"], int),
            opt(&c["ratio"], |x| format!("{x:.2}")),
        );
    }
    md
}

/// The chart: messages/s and p99 latency per stack, grouped by (size, members),
/// the raw baseline drawn as the last bar of each group.
pub fn svg(cells: &[Value]) -> String {
    let mut groups: Vec<(u64, u64)> = Vec::new();
    let mut stacks: Vec<String> = Vec::new();
    for c in cells {
        let g = (c["size"].as_u64().unwrap_or(0), c["members"].as_u64().unwrap_or(0));
        if !groups.contains(&g) {
            groups.push(g);
        }
        let s = c["stack"].as_str().unwrap_or("").to_string();
        if !stacks.contains(&s) {
            stacks.push(s);
        }
    }
    let labels: Vec<String> =
        groups.iter().map(|&(s, m)| format!("{} × {m}", size_label(s))).collect();
    let pick = |stack: Option<&str>, g: (u64, u64), get: &dyn Fn(&Value) -> &Value| {
        let c = cells.iter().find(|c| {
            (c["size"].as_u64(), c["members"].as_u64()) == (Some(g.0), Some(g.1))
                && stack.is_none_or(|s| c["stack"].as_str() == Some(s))
        })?;
        let v = get(c);
        (!v.is_null() && f(v) > 0.0).then(|| f(v))
    };
    let series = |get: &dyn Fn(&Value) -> &Value, raw: &dyn Fn(&Value) -> &Value| {
        let mut s: Vec<chart::Series> = stacks
            .iter()
            .map(|name| chart::Series {
                name: name.clone(),
                color: None,
                values: groups.iter().map(|&g| pick(Some(name), g, get)).collect(),
            })
            .collect();
        s.push(chart::Series {
            name: "raw UDP".into(),
            color: Some(chart::BASELINE),
            values: groups.iter().map(|&g| pick(None, g, raw)).collect(),
        });
        s
    };
    let rate = series(&|c| &c["result"]["msgs_per_s"], &|c| &c["raw"]["msgs_per_s"]);
    let p99 = series(&|c| &c["result"]["latency_us"]["p99"], &|c| &c["raw"]["latency_us"]["p99"]);
    chart::page(&[
        chart::bars(
            "Delivered messages/s per member (size × members)",
            "messages/s (log)",
            &labels,
            &rate,
            true,
        ),
        chart::bars("p99 one-way latency (size × members)", "µs (log)", &labels, &p99, true),
    ])
}

/// Writes `results.{csv,json,md}` and `chart.svg` into `out`.
pub fn write_all(out: &Path, doc: &Value, command: &str) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let cells = doc["cells"].as_array().cloned().unwrap_or_default();
    let mut csv = String::from(CSV_HEADER);
    csv.push('\n');
    for c in &cells {
        csv.push_str(&csv_row(c));
        csv.push('\n');
    }
    let w = |name: &str, text: String| {
        let p = out.join(name);
        std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))
    };
    w("results.csv", csv)?;
    w("results.json", serde_json::to_string_pretty(doc)? + "\n")?;
    w("results.md", markdown(&cells, command, f(&doc["wall_seconds"])))?;
    w("chart.svg", svg(&cells))?;
    Ok(())
}

pub fn run(file: &Path, out: &Path, net: &NetOpts) -> Result<ExitCode> {
    let m = Matrix::load(file)?;
    let started = Instant::now();
    let total = m.runs();
    progress(format!(
        "matrix {}: {} stacks × {} sizes × {} member counts, {} s per cell: {total} runs",
        file.display(),
        m.stacks.len(),
        m.sizes.len(),
        m.members.len(),
        m.seconds
    ));
    let mut done = 0;
    let mut step = |what: &str| {
        done += 1;
        let el = started.elapsed().as_secs_f64();
        let eta = el / done as f64 * (total - done + 1) as f64 - el / done as f64;
        progress(format!("[{done}/{total}] {what} (elapsed {el:.0} s, about {eta:.0} s left)"));
    };
    let mut cells = Vec::new();
    let mut raws = Vec::new();
    for &size in &m.sizes {
        for &members in &m.members {
            let raw_size = size.min(MAX_DATAGRAM);
            let raw = if m.raw {
                step(&format!("raw UDP, {raw_size} B, {members} members"));
                match run_raw(members, size, m.seconds, 0.0, &net.raw_group) {
                    Ok(r) => Some(figures(&r, m.seconds)),
                    Err(e) => {
                        progress(format!("raw baseline failed: {e:#}"));
                        None
                    }
                }
            } else {
                None
            };
            if let Some(r) = &raw {
                raws.push(
                    json!({"size": size, "raw_size": raw_size, "members": members, "result": r}),
                );
            }
            for stack in &m.stacks {
                let label = stack.file_stem().and_then(|s| s.to_str()).unwrap_or("?").to_string();
                step(&format!("{label}, {size} B, {members} members"));
                let cell =
                    Cell { stack: stack.clone(), members, size, seconds: m.seconds, rate: 0.0 };
                let mut c = json!({
                    "stack": label,
                    "file": stack.display().to_string(),
                    "size": size,
                    "members": members,
                    "seconds": m.seconds,
                    "raw_size": raw.as_ref().map(|_| raw_size),
                    "raw": raw.as_ref().map(strip),
                });
                match run_cell(&cell, net) {
                    Ok(r) => {
                        c["stack"] = r["stack"].clone();
                        c["ratio"] = json!(raw.as_ref().map(|w| ratio(&r, w)));
                        c["result"] = r;
                    }
                    Err(e) => {
                        progress(format!("{label} failed: {e:#}"));
                        c["error"] = json!(format!("{e:#}"));
                    }
                }
                cells.push(c);
            }
        }
    }
    let wall = started.elapsed().as_secs_f64();
    let command = format!(
        "strata bench --matrix {} --out {}{}",
        file.display(),
        out.display(),
        net.group.as_ref().map(|g| format!(" --group {g}")).unwrap_or_default()
    );
    let doc = json!({
        "matrix": file.display().to_string(),
        "seconds_per_cell": m.seconds,
        "wall_seconds": (wall * 10.0).round() / 10.0,
        "command": command,
        "cells": cells,
        "raw": raws,
    });
    write_all(out, &doc, &command)?;
    let failed =
        doc["cells"].as_array().map_or(0, |c| c.iter().filter(|c| !c["error"].is_null()).count());
    println!(
        "{} cells in {wall:.0} s ({failed} failed); wrote results.csv, results.json, results.md \
         and chart.svg to {}",
        cells_len(&doc),
        out.display()
    );
    println!("regenerate with: cargo run --release -p stacks --bin strata -- {}", &command[7..]);
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn cells_len(doc: &Value) -> usize {
    doc["cells"].as_array().map_or(0, |c| c.len())
}

/// A raw run's figures without the per-member detail (kept once under `raw`).
fn strip(r: &Value) -> Value {
    let mut r = r.clone();
    if let Some(o) = r.as_object_mut() {
        o.remove("per_member");
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(stack: &str, rate: f64, raw: Option<f64>) -> Value {
        json!({
            "stack": stack, "size": 1024, "members": 2, "seconds": 1.0, "raw_size": 1024,
            "result": {"msgs_per_s": rate, "mb_per_s": 1.0, "latency_us": {"p50": 10.0, "p99": 90.0, "p999": 100.0},
                       "sent": 10, "lost": 0, "retransmissions": 0, "complete": true},
            "raw": raw.map(|r| json!({"msgs_per_s": r, "mb_per_s": 2.0, "latency_us": {"p50": 5.0, "p99": 9.0}, "lost": 3})),
            "ratio": raw.map(|r| rate / r),
        })
    }

    #[test]
    fn the_shipped_matrix_covers_every_stack_size_and_member_count() {
        let m =
            Matrix::load(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../benches/matrix.ron")))
                .unwrap();
        let names: Vec<_> =
            m.stacks.iter().map(|s| s.file_stem().unwrap().to_str().unwrap()).collect();
        assert_eq!(names, ["fifo", "vsync", "causal", "total", "total-lamport", "safe"]);
        assert!(m.stacks.iter().all(|s| s.exists()), "{:?}", m.stacks);
        assert_eq!(m.sizes, [64, 1024, 8192, 65536]);
        assert_eq!(m.members, [2, 3, 5]);
        assert!(m.raw);
        assert_eq!(m.runs(), 6 * 12 + 12);
    }

    #[test]
    fn csv_rows_have_as_many_fields_as_the_header() {
        let n = CSV_HEADER.split(',').count();
        for c in [cell("fifo", 100.0, Some(200.0)), cell("vsync", 50.0, None)] {
            assert_eq!(csv_row(&c).split(',').count(), n, "{}", csv_row(&c));
        }
        let mut failed = cell("safe", 0.0, None);
        failed["result"] = Value::Null;
        failed["error"] = json!("boom, \"quoted\"");
        assert!(csv_row(&failed).ends_with("\"boom, 'quoted'\""));
    }

    #[test]
    fn markdown_has_one_row_per_cell_and_the_command() {
        let md = markdown(
            &[cell("fifo", 100.0, Some(200.0)), cell("vsync", 50.0, None)],
            "strata x",
            3.0,
        );
        assert!(md.contains("`strata x`"));
        let rows: Vec<_> = md.lines().filter(|l| l.starts_with("| ")).collect();
        assert_eq!(rows.len(), 3, "{md}");
        assert!(
            rows[1].starts_with("| fifo | 1 KiB | 2 | 100 |") && rows[1].ends_with("| 0.50 |"),
            "{}",
            rows[1]
        );
        assert!(rows[2].ends_with("| – | – | – |"), "{}", rows[2]);
    }
}
