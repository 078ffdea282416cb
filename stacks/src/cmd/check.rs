//! `strata check FILE...`: validate stack descriptors against the built-in layers.
//!
//! For a good descriptor, prints (on stdout) the stack bottom to top with what each
//! layer requires and provides. For a bad one, prints (on stderr) one line per
//! problem, `FILE:LINE:COL: message`. Every file is checked; the exit status is 0 if
//! all are good and 1 otherwise.

use anyhow::Result;
use stack_core::descriptor::{Descriptor, LayerInfo};
use stack_core::transport::TransportSpec;
use stack_core::Property;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Descriptor files (`stacks/*.ron`).
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let reg = layers::registry();
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr().lock();
    let mut failed = 0;
    let mut printed = false;
    for path in &args.files {
        match Descriptor::load(path, &reg) {
            Ok(d) => {
                if printed {
                    writeln!(out)?;
                }
                write!(out, "{}", summary(&d))?;
                printed = true;
            }
            Err(problems) => {
                failed += 1;
                for p in &problems {
                    writeln!(err, "{p}")?;
                }
            }
        }
    }
    if failed > 0 && args.files.len() > 1 {
        writeln!(err, "{failed} of {} descriptors have problems", args.files.len())?;
    }
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn transport(t: &TransportSpec) -> String {
    match t {
        TransportSpec::Udp(u) => format!("Udp {} via {}", u.group, u.interface),
        TransportSpec::Udpu(u) => format!("Udpu {} ({} seeds)", u.bind, u.seeds.len()),
        TransportSpec::Sim(_) => "Sim".to_string(),
    }
}

fn props(p: &[Property]) -> String {
    if p.is_empty() {
        return "-".into();
    }
    p.iter().map(|p| p.0).collect::<Vec<_>>().join(", ")
}

/// The stack as a table, bottom to top.
fn summary(d: &Descriptor) -> String {
    let mut s = format!(
        "{}: stack `{}`, group `{}` ({:#010x}), transport {}\n",
        d.file,
        d.name,
        d.group,
        d.group_id(),
        transport(&d.transport)
    );
    let head = ["#", "layer", "at", "requires", "provides"];
    let rows: Vec<[String; 5]> = d
        .layer_infos()
        .iter()
        .enumerate()
        .map(|(i, l): (usize, &LayerInfo)| {
            [
                (i + 1).to_string(),
                l.name.to_string(),
                format!("{}:{}", l.line, l.col),
                props(&l.requires),
                props(&l.provides),
            ]
        })
        .collect();
    let mut width = head.map(str::len);
    for r in &rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: [&str; 5]| {
        let mut l = String::from(" ");
        for (k, (c, w)) in cells.iter().zip(width).enumerate() {
            if k == 0 {
                l.push_str(&format!(" {c:>w$}"));
            } else {
                l.push_str(&format!("  {c:<w$}"));
            }
        }
        l.trim_end().to_string() + "\n"
    };
    s.push_str(&line(head));
    for r in &rows {
        s.push_str(&line([&r[0], &r[1], &r[2], &r[3], &r[4]]));
    }
    let all: Vec<Property> = d.provides().into_iter().collect();
    s.push_str(&format!("  layers bottom to top; the stack provides: {}\n", props(&all)));
    s
}
