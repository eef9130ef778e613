//! What a running process uses, from `/proc`: what the tests that flood a
//! node hold its memory and CPU to. Read as an operator's `ps` would.
#![allow(clippy::expect_used)]

/// A `kB` field of `/proc/{pid}/status`, in bytes.
fn status_bytes(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"));
    kib * 1024
}

/// The process's resident memory now, in bytes (`VmRSS`).
pub fn rss(pid: u32) -> u64 {
    status_bytes(pid, "VmRSS:")
}

/// The process's peak resident memory so far, in bytes (`VmHWM`).
pub fn peak_rss(pid: u32) -> u64 {
    status_bytes(pid, "VmHWM:")
}

/// CPU seconds the process has used (user and system).
pub fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc stat");
    // Fields after the command's closing parenthesis; utime and stime are
    // the 14th and 15th of the whole line.
    let rest = &stat[stat.rfind(')').expect("a stat line") + 2..];
    let fields: Vec<f64> = rest
        .split(' ')
        .skip(11)
        .take(2)
        .map(|f| f.parse().unwrap_or_default())
        .collect();
    fields.iter().sum::<f64>() / 100.0
}
