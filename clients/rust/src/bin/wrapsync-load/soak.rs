//! Soak sampling: while the load runs, the node processes' resident memory
//! and open file descriptors, and the database files' sizes, read from
//! `/proc` and the file system every few seconds; after the run, how fast
//! each process's memory grew once warm (least squares, MB per hour).

use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// What to watch.
#[derive(Debug, Clone, Default)]
pub struct Watch {
    pub pids: Vec<u32>,
    pub files: Vec<PathBuf>,
    pub every: Duration,
    /// Samples before this are left out of the slope.
    pub warmup: Duration,
}

/// One reading.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub at: Duration,
    /// Per pid: resident bytes and open descriptors (`None`: gone).
    pub processes: Vec<Option<(u64, u64)>>,
    /// Per file: bytes (0 when absent, as a WAL right after a truncate).
    pub files: Vec<u64>,
}

/// `VmRSS` of a `/proc/<pid>/status` text, in bytes.
pub fn resident_bytes(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
}

fn process(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
    Some((resident_bytes(&status)?, fds))
}

impl Watch {
    pub fn is_empty(&self) -> bool {
        self.pids.is_empty() && self.files.is_empty()
    }

    pub fn sample(&self, started: Instant) -> Sample {
        Sample {
            at: started.elapsed(),
            processes: self.pids.iter().map(|&pid| process(pid)).collect(),
            files: self
                .files
                .iter()
                .map(|f| std::fs::metadata(f).map_or(0, |m| m.len()))
                .collect(),
        }
    }

    /// Samples every `every` until `stop` turns true, then once more.
    pub async fn run(
        self,
        started: Instant,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> (Watch, Vec<Sample>) {
        let mut samples = vec![self.sample(started)];
        loop {
            tokio::select! {
                _ = tokio::time::sleep(self.every) => samples.push(self.sample(started)),
                _ = stop.changed() => break,
            }
        }
        samples.push(self.sample(started));
        (self, samples)
    }
}

/// The least-squares slope of `points` (x, y); `None` under two distinct x.
pub fn slope(points: &[(f64, f64)]) -> Option<f64> {
    let n = points.len() as f64;
    if points.len() < 2 {
        return None;
    }
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
    (sxx > 0.0).then(|| sxy / sxx)
}

fn mb(bytes: u64) -> f64 {
    (bytes as f64 / 1e4).round() / 100.0
}

/// The report: per process the resident memory at the end of warm-up and
/// at the end, its slope after warm-up (MB/hour) and the most descriptors;
/// per file the largest size; and every sample.
pub fn report(watch: &Watch, samples: &[Sample]) -> Value {
    let warm: Vec<&Sample> = samples.iter().filter(|s| s.at >= watch.warmup).collect();
    let processes: Vec<Value> = watch
        .pids
        .iter()
        .enumerate()
        .map(|(i, pid)| {
            let points: Vec<(f64, f64)> = warm
                .iter()
                .filter_map(|s| {
                    s.processes[i].map(|(rss, _)| (s.at.as_secs_f64() / 3600.0, rss as f64 / 1e6))
                })
                .collect();
            let rss = |s: Option<&&Sample>| s.and_then(|s| s.processes[i]).map(|p| mb(p.0));
            json!({
                "pid": pid,
                "rss_mb_after_warmup": rss(warm.first()),
                "rss_mb_at_end": rss(warm.last()),
                "rss_mb_max": samples.iter().filter_map(|s| s.processes[i]).map(|p| mb(p.0)).fold(0.0, f64::max),
                "rss_slope_mb_per_hour": slope(&points).map(|s| (s * 100.0).round() / 100.0),
                "fds_max": samples.iter().filter_map(|s| s.processes[i]).map(|p| p.1).max(),
                "fds_at_end": samples.last().and_then(|s| s.processes[i]).map(|p| p.1),
            })
        })
        .collect();
    let files: Vec<Value> = watch
        .files
        .iter()
        .enumerate()
        .map(|(i, f)| {
            json!({
                "file": f.display().to_string(),
                "mb_max": samples.iter().map(|s| mb(s.files[i])).fold(0.0, f64::max),
                "mb_at_end": samples.last().map(|s| mb(s.files[i])),
            })
        })
        .collect();
    let series: Vec<Value> = samples
        .iter()
        .map(|s| {
            json!({
                "t_s": (s.at.as_secs_f64() * 10.0).round() / 10.0,
                "rss_mb": s.processes.iter().map(|p| p.map(|p| mb(p.0))).collect::<Vec<_>>(),
                "fds": s.processes.iter().map(|p| p.map(|p| p.1)).collect::<Vec<_>>(),
                "file_mb": s.files.iter().map(|&b| mb(b)).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "every_s": watch.every.as_secs_f64(),
        "warmup_s": watch.warmup.as_secs_f64(),
        "processes": processes,
        "files": files,
        "samples": series,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resident_memory_is_read_from_proc_status() {
        let status = "Name:\twrapsync\nVmPeak:\t  900 kB\nVmRSS:\t   105904 kB\nThreads:\t9\n";
        assert_eq!(resident_bytes(status), Some(105_904 * 1024));
        assert_eq!(resident_bytes("Name:\tx\n"), None);
        let own = process(std::process::id());
        assert!(own.is_some_and(|(rss, fds)| rss > 0 && fds > 0));
    }

    #[test]
    fn the_slope_is_least_squares() {
        assert_eq!(slope(&[(0.0, 1.0)]), None);
        assert_eq!(slope(&[(1.0, 1.0), (1.0, 2.0)]), None);
        let line: Vec<(f64, f64)> = (0..10).map(|x| (x as f64, 3.0 * x as f64 + 2.0)).collect();
        assert!(slope(&line).is_some_and(|s| (s - 3.0).abs() < 1e-9));
        let flat = [(0.0, 5.0), (1.0, 6.0), (2.0, 4.0), (3.0, 5.0)];
        assert!(slope(&flat).is_some_and(|s| s.abs() < 0.31));
    }

    #[test]
    fn warm_up_samples_are_left_out_of_the_slope() {
        let watch = Watch {
            pids: vec![1],
            files: vec![PathBuf::from("/db")],
            every: Duration::from_secs(60),
            warmup: Duration::from_secs(120),
        };
        // Growing fast while warming up (0-60 s), flat after.
        let samples: Vec<Sample> = [(0, 10), (60, 100), (120, 200), (1800, 200), (3600, 200)]
            .iter()
            .map(|&(t, mb)| Sample {
                at: Duration::from_secs(t),
                processes: vec![Some((mb * 1_000_000, 12))],
                files: vec![4096],
            })
            .collect();
        let r = report(&watch, &samples);
        assert_eq!(r["processes"][0]["rss_slope_mb_per_hour"], 0.0);
        assert_eq!(r["processes"][0]["rss_mb_after_warmup"], 200.0);
        assert_eq!(r["processes"][0]["fds_max"], 12);
        assert_eq!(r["samples"].as_array().map(Vec::len), Some(5));
    }
}
