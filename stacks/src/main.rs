//! `strata`: the command-line tool over Strata's stacks.
//!
//! One module per command under `cmd/`; `main` only parses the command line and
//! dispatches.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

mod cmd;
mod proc;

#[derive(Parser)]
#[command(name = "strata", version, about = "Group communication stacks: check, run, measure")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check stack descriptors: print each stack bottom to top, or every problem found.
    Check(cmd::check::Args),
    /// Run a group in the deterministic simulator and print a JSON summary.
    Sim(cmd::sim::Args),
    /// Run one real group member: join, cast, print views and deliveries, trace.
    Member(cmd::member::Args),
    /// Three members on loopback: views, a burst, a crash, a join, and the checkers' verdict.
    Demo(cmd::demo::Args),
    /// Throughput and latency of N member processes on loopback (optionally against raw UDP).
    Bench(cmd::bench::Args),
}

/// Keeps freed memory for reuse instead of handing it back to the system at once.
///
/// A member receiving large messages allocates and frees receive arenas (256 KiB),
/// bundles and reassembly buffers (up to 64 KiB) at a high rate. With glibc's
/// defaults, memory freed at the top of the heap beyond 128 KiB is returned to the
/// system and faulted back in (and zeroed) by the next allocation: measured on fifo,
/// 3 members, 8 KiB messages 115-148k -> 204k msgs/s per member and 64 KiB
/// 15-17k -> 21-25k with the thresholds below, 1 KiB unchanged. It bounds what a
/// member may keep unused at 16 MiB. Set before any thread starts.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` only changes allocator parameters; no other thread exists yet.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 16 << 20);
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // For the commands that only write their own output, a reader that stops early
    // (`strata member ... | head`) ends the process quietly, as it does for other
    // command-line tools, instead of a panic in `println!` on the broken pipe.
    // `demo` and `bench` keep SIGPIPE ignored: they write to their members' stdin and
    // must see a member that is gone as an error, not be killed by it.
    if matches!(cli.command, Command::Check(_) | Command::Sim(_) | Command::Member(_)) {
        // SAFETY: restoring SIGPIPE's default disposition before any thread starts.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    tune_allocator();
    let result = match cli.command {
        Command::Check(args) => cmd::check::run(args),
        Command::Sim(args) => cmd::sim::run(args),
        Command::Member(args) => cmd::member::run(args),
        Command::Demo(args) => cmd::demo::run(args),
        Command::Bench(args) => cmd::bench::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("strata: {e:#}");
            ExitCode::FAILURE
        }
    }
}
