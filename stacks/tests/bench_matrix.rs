//! `strata bench --matrix` runs a short matrix end to end and writes well-formed
//! CSV, JSON, Markdown and SVG; `strata bench --layers` reports one row per layer.

mod common;

use common::*;
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn a_short_matrix_writes_csv_json_markdown_and_svg() {
    let dir = Dir::new("matrix");
    let file = dir.0.join("short.ron");
    std::fs::write(
        &file,
        format!(
            "Matrix(seconds: 1.0, stacks: [\"{}\"], sizes: [1024], members: [2])",
            stack("fifo.ron")
        ),
    )
    .unwrap();
    let out = dir.0.join("out");
    let mut c = Command::new(STRATA);
    c.args(["bench", "--matrix", file.to_str().unwrap(), "--out", out.to_str().unwrap()])
        .args(["--group", "239.255.42.47:7447", "--raw-group", "239.255.42.48:7448"])
        .args(["--udpu-port", "7571"])
        .stderr(Stdio::inherit());
    let mut m = Member::spawn("matrix", c);
    let (ok, _) = m.finish(Duration::from_secs(90));
    assert!(ok, "bench --matrix exits 0: {:?}", m.seen);
    assert!(
        m.seen.iter().any(|l| l.starts_with("regenerate with: cargo run --release -p stacks")),
        "prints the command that regenerates the results: {:?}",
        m.seen
    );

    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    let rows: Vec<Vec<&str>> = csv.lines().map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 2, "header and one cell: {csv}");
    assert_eq!(rows[0].len(), rows[1].len(), "{csv}");
    let col = |name: &str| rows[0].iter().position(|h| *h == name).unwrap();
    assert_eq!(rows[1][col("stack")], "fifo");
    assert_eq!(rows[1][col("size")], "1024");
    assert_eq!(rows[1][col("members")], "2");
    assert_eq!(rows[1][col("complete")], "true", "{csv}");
    let num = |name: &str| rows[1][col(name)].parse::<f64>().unwrap();
    assert!(num("msgs_per_s") > 0.0 && num("raw_msgs_per_s") > 0.0, "{csv}");
    assert!(num("p99_us") > 0.0, "{csv}");
    let ratio = num("ratio");
    assert!((ratio - num("msgs_per_s") / num("raw_msgs_per_s")).abs() < 0.01, "{csv}");

    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    let cells = json["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 1);
    assert_eq!(cells[0]["result"]["per_member"].as_array().unwrap().len(), 2);
    assert_eq!(json["raw"].as_array().unwrap().len(), 1, "one baseline per (size, members)");
    assert!(json["wall_seconds"].as_f64().unwrap() > 0.0);

    let md = std::fs::read_to_string(out.join("results.md")).unwrap();
    assert_eq!(md.lines().filter(|l| l.starts_with("| fifo | 1 KiB | 2 |")).count(), 1, "{md}");

    let svg = std::fs::read_to_string(out.join("chart.svg")).unwrap();
    assert!(
        svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\"") && svg.ends_with("</svg>\n")
    );
    assert_eq!(svg.matches("<svg").count(), svg.matches("</svg>").count());
    assert_eq!(svg.matches("<g ").count(), 2, "messages/s and p99 charts");
    assert_eq!(svg.matches("<title>").count(), 4, "stack and raw bar in each chart");
    assert!(svg.contains(">raw UDP</text>"));
}

#[test]
fn layers_reports_one_row_per_layer_with_positive_nanoseconds() {
    let mut c = Command::new(STRATA);
    c.args(["bench", "--layers", "--stack", &stack("vsync.ron"), "--members", "3"])
        .args(["--size", "256", "--messages", "300", "--json"])
        .stderr(Stdio::inherit());
    let mut m = Member::spawn("layers", c);
    let (ok, json) = m.finish(Duration::from_secs(60));
    assert!(ok, "{:?}", m.seen);
    let j = json.expect("one JSON object");
    assert_eq!(j["complete"], true, "{j}");
    assert_eq!(j["deliveries"], 3 * 3 * 300);
    let names: Vec<&str> =
        j["layers"].as_array().unwrap().iter().map(|l| l["layer"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["bundle", "nak", "frag", "stable", "flow", "suspect", "membership", "flush"],
        "one row per layer of vsync.ron, bottom to top"
    );
    for l in j["layers"].as_array().unwrap() {
        assert!(l["ns_per_delivery"].as_f64().unwrap() > 0.0, "{l}");
        assert!(l["events"].as_u64().unwrap() >= 900, "{l}");
    }
    let nak = &j["layers"][1];
    assert!(nak["bytes_per_cast"].as_f64().unwrap() >= 2.0, "nak numbers every cast: {nak}");
    assert!(j["run_ns_per_delivery"]["profiling_off"].as_f64().unwrap() > 0.0);
    assert!(j["overhead_percent"].is_number());
}
