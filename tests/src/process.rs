//! The `wrapsync` process itself: finding the binary, running it with a
//! clean environment, and starting, killing and stopping `wrapsync node`.

use crate::{deadline, wait_for, Context, HarnessError, Result};
use std::fs::OpenOptions;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Instant;

/// How long a node may take to print its listening line (migrations on a
/// busy 2-core CI machine included).
const START_SECS: u64 = 60;
/// How long a node may take to exit after SIGTERM.
const STOP_SECS: u64 = 30;

/// The `wrapsync` binary under test: `$WRAPSYNC_BIN`, else the workspace's
/// debug build.
pub(crate) fn binary() -> Result<PathBuf> {
    let path = match std::env::var_os("WRAPSYNC_BIN") {
        Some(path) => PathBuf::from(path),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/wrapsync"),
    };
    if path.is_file() {
        Ok(path)
    } else {
        Err(HarnessError::new(format!(
            "the wrapsync binary is not at {}: build it with \
             `cargo build -p wrapsync-server` (or point WRAPSYNC_BIN at it)",
            path.display()
        )))
    }
}

/// A command for the binary with no `WRAPSYNC_*` variables inherited from
/// the test's environment: the config file the harness wrote is the truth.
pub(crate) fn command(binary: &Path) -> Command {
    let mut cmd = Command::new(binary);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("WRAPSYNC_") {
            cmd.env_remove(key);
        }
    }
    cmd.stdin(Stdio::null());
    cmd
}

/// Waits for `child` to exit until `deadline`; `None` if it is still running.
pub(crate) fn wait_exit(child: &mut Child, deadline: Instant) -> Result<Option<ExitStatus>> {
    let mut failure = None;
    let status = wait_for(deadline, || match child.try_wait() {
        Ok(status) => status,
        Err(e) => {
            failure = Some(e);
            Some(ExitStatus::default())
        }
    });
    match failure {
        Some(e) => Err(HarnessError::new(format!(
            "waiting for a child process: {e}"
        ))),
        None => Ok(status),
    }
}

/// The lines `child` prints on its (piped) stdout, drained for the child's
/// whole life, so that a chatty process can never block on a full pipe.
pub(crate) fn stdout_lines(child: &mut Child) -> Result<mpsc::Receiver<String>> {
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| HarnessError::new("the child's stdout was not piped"))?;
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            // The receiver may be gone (nobody waits any more): keep draining.
            let _ = lines.send(line);
        }
    });
    Ok(received)
}

/// Sends `signal` (`TERM`, `INT`, …) to `child` with `kill(1)`.
pub(crate) fn send_signal(child: &Child, signal: &str) -> Result<()> {
    let pid = child.id().to_string();
    let status = Command::new("kill")
        .args([format!("-{signal}").as_str(), &pid])
        .status()
        .context(|| format!("running kill -{signal}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(HarnessError::new(format!(
            "kill -{signal} {pid} failed: {status}"
        )))
    }
}

/// A running `wrapsync node`, SIGKILLed when dropped.
pub(crate) struct Process {
    pub(crate) child: Child,
    pub(crate) url: String,
    pub(crate) node_id: String,
}

impl Process {
    /// Starts the node and waits for its `listening` line.
    pub(crate) fn start(binary: &Path, config: &Path, log: &Path) -> Result<Self> {
        Self::start_as(binary, "node", config, log)
    }

    /// Starts `wrapsync <role>` (`node`, `hub`) and waits for its
    /// `listening` line.
    pub(crate) fn start_as(binary: &Path, role: &str, config: &Path, log: &Path) -> Result<Self> {
        let stderr = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .context(|| format!("opening {}", log.display()))?;
        let mut child = command(binary)
            .arg(role)
            .arg("--config")
            .arg(config)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .context(|| format!("starting {} {role}", binary.display()))?;
        let listening = stdout_lines(&mut child);
        let mut process = Process {
            child,
            url: String::new(),
            node_id: String::new(),
        };
        let listening = listening?;
        let until = deadline(START_SECS);
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match listening.recv_timeout(left) {
                Ok(line) => {
                    let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) else {
                        continue;
                    };
                    if event["event"] != "listening" {
                        continue;
                    }
                    let url = event["url"].as_str().ok_or_else(|| {
                        HarnessError::new(format!("listening line without a url: {line}"))
                    })?;
                    process.url = url.trim_end_matches('/').to_string();
                    process.node_id = event["node_id"].as_str().unwrap_or_default().to_string();
                    return Ok(process);
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(HarnessError::new(format!(
                        "the node printed no `listening` line within {START_SECS}s"
                    )));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = wait_exit(&mut process.child, deadline(STOP_SECS))?;
                    return Err(HarnessError::new(format!(
                        "the node closed stdout before listening (exit status: {status:?})"
                    )));
                }
            }
        }
    }

    pub(crate) fn kill(mut self) -> Result<ExitStatus> {
        // `Child::kill` is SIGKILL on Unix: no chance to flush anything.
        self.child
            .kill()
            .context(|| "sending SIGKILL to the node".to_string())?;
        self.child
            .wait()
            .context(|| "reaping the killed node".to_string())
    }

    pub(crate) fn terminate(mut self) -> Result<ExitStatus> {
        send_signal(&self.child, "TERM")?;
        match wait_exit(&mut self.child, deadline(STOP_SECS))? {
            Some(status) => Ok(status),
            None => Err(HarnessError::new(format!(
                "the node did not exit within {STOP_SECS}s of SIGTERM (killed it)"
            ))),
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // Already exited (killed or stopped) children make these no-ops.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
