//! `strata bench --memory`: resident memory of every member during a full-speed run.
//!
//! `--members` processes of `--stack` cast `--size` payloads as fast as flow control
//! lets them for `--seconds` (60 s is the reference run); meanwhile every member's
//! `VmRSS` and `VmHWM` are read from `/proc/<pid>/status` every 250 ms. Written to
//! `--out`: `memory.csv` (one row per sample), `memory.svg` (RSS of each member over
//! time) and `memory.json` (the samples' summary). The summary tells whether memory
//! levels off: the growth of each member's RSS over the second half of the run,
//! after warm-up, against its RSS at half time.

use super::{chart, figures, plan, progress, run_stack, Args};
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One reading of one member.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Seconds since sampling started.
    pub t: f64,
    pub member: String,
    /// Resident set size, KiB.
    pub rss_kib: u64,
    /// Peak resident set size so far, KiB.
    pub hwm_kib: u64,
}

/// `VmRSS` and `VmHWM` (KiB) of process `pid`, from `/proc/<pid>/status`.
pub fn read_status(pid: u32) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_status(&text)
}

/// `VmRSS` and `VmHWM` (KiB) of a `/proc/<pid>/status` text.
pub fn parse_status(text: &str) -> Option<(u64, u64)> {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|r| r.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// A thread sampling the memory of some processes until stopped.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Vec<Sample>>,
}

impl Sampler {
    /// Samples `procs` (name, pid) every `every`, starting now.
    pub fn start(procs: Vec<(String, u32)>, every: Duration) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let start = Instant::now();
            let mut out = Vec::new();
            let mut next = start;
            while !flag.load(Ordering::Relaxed) {
                let t = start.elapsed().as_secs_f64();
                for (name, pid) in &procs {
                    if let Some((rss_kib, hwm_kib)) = read_status(*pid) {
                        out.push(Sample { t, member: name.clone(), rss_kib, hwm_kib });
                    }
                }
                next += every;
                while !flag.load(Ordering::Relaxed) && Instant::now() < next {
                    std::thread::sleep(Duration::from_millis(10).min(every));
                }
            }
            out
        });
        Sampler { stop, thread }
    }

    /// Stops sampling and returns the samples.
    pub fn stop(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

/// Per member: RSS at warm-up's end (a tenth of the run), at half time and at the
/// end, the peak, and the growth over the second half in percent.
pub fn summary(samples: &[Sample], seconds: f64) -> Value {
    let mut members: Vec<&str> = samples.iter().map(|s| s.member.as_str()).collect();
    members.sort();
    members.dedup();
    let per: Vec<Value> = members
        .iter()
        .map(|m| {
            let mine: Vec<&Sample> = samples.iter().filter(|s| s.member == *m).collect();
            let at = |t: f64| {
                mine.iter().rev().find(|s| s.t <= t).or(mine.first()).map_or(0, |s| s.rss_kib)
            };
            let half = at(seconds / 2.0);
            let end = mine.iter().rfind(|s| s.t <= seconds).map_or(0, |s| s.rss_kib);
            let growth =
                if half > 0 { (end as f64 - half as f64) / half as f64 * 100.0 } else { 0.0 };
            json!({
                "member": m,
                "rss_kib_warm": at(seconds / 10.0),
                "rss_kib_half": half,
                "rss_kib_end": end,
                "hwm_kib": mine.iter().map(|s| s.hwm_kib).max().unwrap_or(0),
                "second_half_growth_percent": (growth * 10.0).round() / 10.0,
            })
        })
        .collect();
    json!({ "members": per })
}

/// `memory.csv`.
pub fn csv(samples: &[Sample]) -> String {
    let mut s = String::from("t_s,member,vm_rss_kib,vm_hwm_kib\n");
    for x in samples {
        s.push_str(&format!("{:.3},{},{},{}\n", x.t, x.member, x.rss_kib, x.hwm_kib));
    }
    s
}

/// `memory.svg`: RSS (MiB) of each member over time.
pub fn svg(samples: &[Sample], title: &str) -> String {
    let mut members: Vec<&str> = samples.iter().map(|s| s.member.as_str()).collect();
    members.sort();
    members.dedup();
    let lines: Vec<chart::Line> = members
        .iter()
        .map(|m| chart::Line {
            name: format!("{m} VmRSS"),
            points: samples
                .iter()
                .filter(|s| s.member == *m)
                .map(|s| (s.t, s.rss_kib as f64 / 1024.0))
                .collect(),
        })
        .collect();
    chart::page(&[chart::lines(title, "seconds", "resident memory, MiB", &lines, false, false)])
}

pub fn run(args: &Args) -> Result<ExitCode> {
    let o = args.net_opts();
    let (name, net, has_views) = plan(&args.stack, args.members, &o)?;
    let cell = args.cell(args.members);
    progress(format!(
        "memory of {} `{name}` members over {}, {} B casts for {} s",
        args.members,
        net.describe(),
        args.size,
        args.seconds
    ));
    let r = run_stack(&cell, &net, has_views, Some(Duration::from_millis(250)))?;
    if r.memory.is_empty() {
        bail!("no memory sample could be read from /proc");
    }
    let fig = figures(&r.summaries, args.seconds);
    let sum = summary(&r.memory, args.seconds);
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let title = format!(
        "Resident memory of {} `{name}` members, {} B casts at full speed ({:.0} msgs/s each)",
        args.members,
        args.size,
        fig["msgs_per_s"].as_f64().unwrap_or(0.0)
    );
    let doc = json!({
        "stack": name,
        "members": args.members,
        "size": args.size,
        "seconds": args.seconds,
        "msgs_per_s": fig["msgs_per_s"],
        "complete": r.complete,
        "summary": sum["members"],
    });
    std::fs::write(args.out.join("memory.csv"), csv(&r.memory))?;
    std::fs::write(args.out.join("memory.svg"), svg(&r.memory, &title))?;
    std::fs::write(args.out.join("memory.json"), serde_json::to_string_pretty(&doc)? + "\n")?;
    println!("{title}");
    for m in sum["members"].as_array().into_iter().flatten() {
        println!(
            "  {}: RSS {} KiB after warm-up, {} KiB at half time, {} KiB at the end (peak {} KiB): \
             {:+.1} % over the second half",
            m["member"].as_str().unwrap_or(""),
            m["rss_kib_warm"],
            m["rss_kib_half"],
            m["rss_kib_end"],
            m["hwm_kib"],
            m["second_half_growth_percent"].as_f64().unwrap_or(0.0)
        );
    }
    println!("wrote memory.csv, memory.svg and memory.json to {}", args.out.display());
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_fields_are_read_in_kib() {
        let text = "Name:\tstrata\nVmPeak:\t  99 kB\nVmHWM:\t    2048 kB\nVmRSS:\t    1500 kB\n";
        assert_eq!(parse_status(text), Some((1500, 2048)));
        assert_eq!(parse_status("Name: x\n"), None);
        let (rss, hwm) = read_status(std::process::id()).expect("our own status");
        assert!(rss > 0 && hwm >= rss);
    }

    #[test]
    fn summary_reports_growth_over_the_second_half() {
        let s = |t: f64, rss: u64| Sample { t, member: "n1".into(), rss_kib: rss, hwm_kib: rss };
        let samples = [s(0.0, 100), s(1.0, 500), s(5.0, 1000), s(9.9, 1100)];
        let m = &summary(&samples, 10.0)["members"][0];
        assert_eq!(m["rss_kib_warm"], 500);
        assert_eq!(m["rss_kib_half"], 1000);
        assert_eq!(m["rss_kib_end"], 1100);
        assert_eq!(m["second_half_growth_percent"], 10.0);
    }
}
