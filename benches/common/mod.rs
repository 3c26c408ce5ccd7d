//! What the benchmarks read about a running process from /proc (Linux only).
#![allow(dead_code)] // each benchmark uses a part

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// `flurfunk node` on loopback without mDNS, on the data in `dir`.
pub fn headless_node(bin: &str, dir: &Path) -> Command {
    let mut command = Command::new(bin);
    command.arg("--data-dir").arg(dir).args([
        "node",
        "--demo",
        "--no-mdns",
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
    ]);
    command
}

/// Start `command` with its output discarded and give it `settle` to start up.
pub fn spawn_settled(command: &mut Command, settle: Duration) -> Child {
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(settle);
    // A process that ended at start (e.g. refusing to run without a network key) must
    // stop the benchmark, not be measured as 0 MB.
    if let Ok(Some(status)) = child.try_wait() {
        panic!("{command:?} ended during start-up: {status}");
    }
    child
}

/// Resident set size in KiB; 0 if the process is gone.
pub fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS:")
}

/// (anonymous, file-backed) parts of the resident set in KiB: heap and stacks versus pages
/// of the program and libraries, which the kernel can drop and read again.
pub fn rss_split_kib(pid: u32) -> (u64, u64) {
    (status_kib(pid, "RssAnon:"), status_kib(pid, "RssFile:"))
}

fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// User + system CPU time so far, in clock ticks (USER_HZ, 100 on Linux).
pub fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(11) + field(12)
}
