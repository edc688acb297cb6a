//! Brokers the harness starts itself: a local riptide (`--spawn`: release binary, a fresh data
//! directory, a free port, stopped and cleaned up afterwards) or the built-in discard broker
//! (`--discard`, this same binary as a child process, so its CPU stays out of the harness's
//! own). Also CPU-time readings for the report.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// A port nobody listens on right now (bound to 127.0.0.1 and released).
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The riptide binary: `explicit`, `$RIPTIDE_BIN`, the one beside this executable (same target
/// directory), or `riptide` on the PATH.
pub fn riptide_binary(explicit: Option<&Path>) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    if let Some(p) = std::env::var_os("RIPTIDE_BIN") {
        return PathBuf::from(p);
    }
    let beside = std::env::current_exe().ok().and_then(|e| e.parent().map(|d| d.join("riptide")));
    beside.filter(|p| p.is_file()).unwrap_or_else(|| PathBuf::from("riptide"))
}

/// A broker process this run started; stopped on `stop` or drop.
pub struct ChildBroker {
    child: Child,
    pub addr: String,
    pub label: String,
    data_dir: Option<PathBuf>,
    log: PathBuf,
}

/// How to start riptide.
pub struct RiptideOptions<'a> {
    pub binary: PathBuf,
    pub config: Option<&'a Path>,
    pub shards: Option<usize>,
    /// Parent of the fresh data directory.
    pub data_parent: &'a Path,
    pub extra_args: &'a [String],
}

impl ChildBroker {
    /// `riptide serve` on a free port with a fresh data directory.
    pub fn riptide(o: &RiptideOptions<'_>) -> Result<ChildBroker> {
        let port = free_port().map_err(|e| Error::Process(format!("no free port: {e}")))?;
        let data_dir = o.data_parent.join(format!("riptide-bench-data-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data_dir);
        std::fs::create_dir_all(&data_dir).map_err(|e| Error::file(&data_dir, e))?;
        let mut cmd = Command::new(&o.binary);
        cmd.arg("serve").arg("--data-dir").arg(&data_dir).arg("--listen").arg(format!("127.0.0.1:{port}"));
        cmd.args(["--metrics-listen", "off", "--rest-listen", "off"]);
        if let Some(c) = o.config {
            cmd.arg("--config").arg(c);
        }
        if let Some(s) = o.shards {
            cmd.arg("--shards").arg(s.to_string());
        }
        cmd.args(o.extra_args);
        let label = format!("riptide (spawned: {})", o.binary.display());
        let log = o.data_parent.join(format!("riptide-bench-broker-{port}.log"));
        ChildBroker::start(cmd, port, label, Some(data_dir), log)
    }

    /// This executable's `discard-broker` on a free port.
    pub fn discard(partitions: u32, log_dir: &Path) -> Result<ChildBroker> {
        let port = free_port().map_err(|e| Error::Process(format!("no free port: {e}")))?;
        let exe = std::env::current_exe().map_err(|e| Error::Process(format!("own executable: {e}")))?;
        let mut cmd = Command::new(exe);
        cmd.arg("discard-broker").arg("--listen").arg(format!("127.0.0.1:{port}"));
        cmd.arg("--partitions").arg(partitions.to_string());
        let log = log_dir.join(format!("riptide-bench-discard-{port}.log"));
        ChildBroker::start(
            cmd,
            port,
            "discard broker (answers Produce at once, stores nothing)".into(),
            None,
            log,
        )
    }

    fn start(
        mut cmd: Command,
        port: u16,
        label: String,
        data_dir: Option<PathBuf>,
        log: PathBuf,
    ) -> Result<ChildBroker> {
        let log_file = std::fs::File::create(&log).map_err(|e| Error::file(&log, e))?;
        let err_file = log_file.try_clone().map_err(|e| Error::file(&log, e))?;
        cmd.stdin(Stdio::null()).stdout(log_file).stderr(err_file);
        let child =
            cmd.spawn().map_err(|e| Error::Process(format!("cannot start {:?}: {e}", cmd.get_program())))?;
        let mut broker = ChildBroker { child, addr: format!("127.0.0.1:{port}"), label, data_dir, log };
        broker.wait_listening(Duration::from_secs(30))?;
        Ok(broker)
    }

    fn wait_listening(&mut self, limit: Duration) -> Result<()> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                return Err(Error::Process(format!("broker exited at start ({status}): {}", log.trim())));
            }
            if std::net::TcpStream::connect(&self.addr).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(Error::Process(format!("broker not listening on {} after {} s", self.addr, limit.as_secs())))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then SIGKILL after 10 s; removes the data directory and the log.
    pub fn stop(mut self) {
        self.terminate();
    }

    fn terminate(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            crate::sys::terminate(self.child.id());
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        if let Some(dir) = self.data_dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
        let _ = std::fs::remove_file(&self.log);
    }
}

impl Drop for ChildBroker {
    fn drop(&mut self) {
        self.terminate();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_free() {
        let port = free_port().expect("port");
        assert!(port > 0);
        assert!(TcpListener::bind(("127.0.0.1", port)).is_ok());
    }
}
