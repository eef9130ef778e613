//! [`Demo`]: a real `wrapsync demo` process (three county nodes in one
//! process) and what it wrote to `demo.json`; and [`free_ports`] to give it
//! a run of free ports.

use crate::process::{binary, command, send_signal, stdout_lines, wait_exit};
use crate::{deadline, Context, HarnessError, Result};
use std::fs::{self, OpenOptions};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::mpsc::RecvTimeoutError;
use std::time::Instant;

/// How long the demo may take to seed three nodes and see its shared plans
/// arrive (a debug build on a busy 2-core CI machine).
const READY_SECS: u64 = 300;
/// How long it may take to exit after Ctrl-C.
const STOP_SECS: u64 = 45;

/// A running `wrapsync demo`, SIGKILLed when dropped.
pub struct Demo {
    child: Child,
    log_path: PathBuf,
    /// `demo.json` as the demo wrote it once it said it was ready.
    pub manifest: serde_json::Value,
}

impl Demo {
    /// Runs `wrapsync demo --dir DIR --base-port PORT` (stderr appended to
    /// `log`) and waits for it to say it is ready; panics with its log if
    /// it does not.
    #[track_caller]
    pub fn start(dir: &Path, base_port: u16, log: &Path) -> Demo {
        match Demo::try_start(dir, base_port, log) {
            Ok(demo) => demo,
            Err(e) => panic!(
                "cannot start the demo: {e}\n--- demo log ---\n{}",
                read_tail(log)
            ),
        }
    }

    /// [`Demo::start`], reporting failure instead of panicking.
    pub fn try_start(dir: &Path, base_port: u16, log: &Path) -> Result<Demo> {
        let binary = binary()?;
        let stderr = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .context(|| format!("opening {}", log.display()))?;
        let mut child = command(&binary)
            .arg("demo")
            .arg("--dir")
            .arg(dir)
            .arg("--base-port")
            .arg(base_port.to_string())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .context(|| format!("starting {} demo", binary.display()))?;
        let lines = stdout_lines(&mut child);
        let mut demo = Demo {
            child,
            log_path: log.to_path_buf(),
            manifest: serde_json::Value::Null,
        };
        let lines = lines?;
        let until = deadline(READY_SECS);
        let manifest = loop {
            let left = until.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) => {
                    let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) else {
                        continue;
                    };
                    if event["event"] == "demo_ready" {
                        break event["manifest"]
                            .as_str()
                            .map(PathBuf::from)
                            .ok_or_else(|| {
                                HarnessError::new(format!("demo_ready without a manifest: {line}"))
                            })?;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(HarnessError::new(format!(
                        "the demo was not ready within {READY_SECS}s"
                    )));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = wait_exit(&mut demo.child, deadline(STOP_SECS))?;
                    return Err(HarnessError::new(format!(
                        "the demo closed stdout before it was ready (exit status: {status:?})"
                    )));
                }
            }
        };
        let text =
            fs::read_to_string(&manifest).context(|| format!("reading {}", manifest.display()))?;
        demo.manifest =
            serde_json::from_str(&text).context(|| format!("parsing {}", manifest.display()))?;
        Ok(demo)
    }

    /// Presses Ctrl-C (SIGINT) and waits for the demo to exit; answers its
    /// exit status.
    pub fn interrupt(mut self) -> Result<ExitStatus> {
        send_signal(&self.child, "INT")?;
        match wait_exit(&mut self.child, deadline(STOP_SECS))? {
            Some(status) => Ok(status),
            None => Err(HarnessError::new(format!(
                "the demo did not exit within {STOP_SECS}s of SIGINT (killed it)"
            ))),
        }
    }

    /// Kills the demo with SIGKILL and waits for it.
    pub fn kill(mut self) -> Result<ExitStatus> {
        self.child
            .kill()
            .context(|| "sending SIGKILL to the demo".to_string())?;
        self.child
            .wait()
            .context(|| "reaping the killed demo".to_string())
    }

    /// The tail of what the demo wrote to stderr so far.
    pub fn log(&self) -> String {
        read_tail(&self.log_path)
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        // No-ops once the demo has exited.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read_tail(path: &Path) -> String {
    let log = fs::read_to_string(path).unwrap_or_default();
    let start = log.len().saturating_sub(8000);
    let start = (start..log.len())
        .find(|i| log.is_char_boundary(*i))
        .unwrap_or(log.len());
    log[start..].to_string()
}

/// A port `p` such that `p`, `p + 1`, … `p + count - 1` were all free on
/// 127.0.0.1 a moment ago: the system picks `p` (port 0), and the run is
/// checked by binding each of them.
pub fn free_ports(count: u16) -> Result<u16> {
    for _ in 0..100 {
        let first = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .context(|| "binding port 0".to_string())?
            .port();
        let Some(last) = first.checked_add(count.saturating_sub(1)) else {
            continue;
        };
        let held: std::io::Result<Vec<TcpListener>> = (first..=last)
            .map(|port| TcpListener::bind(("127.0.0.1", port)))
            .collect();
        if held.is_ok() {
            return Ok(first);
        }
    }
    Err(HarnessError::new(format!(
        "found no {count} consecutive free ports in 100 tries"
    )))
}
