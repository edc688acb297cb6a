//! Brokers the harness starts itself: a local riptide (`--spawn`: release binary, a fresh data
//! directory, a free port, stopped and cleaned up afterwards) or the built-in discard broker
//! (`--discard`, this same binary as a child process, so its CPU stays out of the harness's
//! own). Also CPU-time readings for the report.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use riptide_client::launch;

use crate::error::{Error, Result};

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
    ready_file: PathBuf,
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

/// A name for this process's n-th child's files (data directory, log, ready file).
fn child_name(kind: &str) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    format!("riptide-bench-{kind}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

impl ChildBroker {
    /// `riptide serve` on port 0 of 127.0.0.1 with a fresh data directory; the port comes back
    /// in its ready file.
    pub fn riptide(o: &RiptideOptions<'_>) -> Result<ChildBroker> {
        let name = child_name("data");
        let data_dir = o.data_parent.join(&name);
        let _ = std::fs::remove_dir_all(&data_dir);
        std::fs::create_dir_all(&data_dir).map_err(|e| Error::file(&data_dir, e))?;
        let ready_file = launch::ready_file_for(&data_dir);
        let mut cmd = Command::new(&o.binary);
        cmd.arg("serve").arg("--data-dir").arg(&data_dir).args(["--listen", "127.0.0.1:0"]);
        cmd.args(["--metrics-listen", "off", "--rest-listen", "off"]).arg("--ready-file").arg(&ready_file);
        if let Some(c) = o.config {
            cmd.arg("--config").arg(c);
        }
        if let Some(s) = o.shards {
            cmd.arg("--shards").arg(s.to_string());
        }
        cmd.args(o.extra_args);
        let label = format!("riptide (spawned: {})", o.binary.display());
        let log = o.data_parent.join(format!("{name}.log"));
        ChildBroker::start(cmd, label, Some(data_dir), log, ready_file)
    }

    /// This executable's `discard-broker` on port 0 of 127.0.0.1.
    pub fn discard(partitions: u32, log_dir: &Path) -> Result<ChildBroker> {
        let name = child_name("discard");
        let ready_file = log_dir.join(format!("{name}.ready.json"));
        let exe = std::env::current_exe().map_err(|e| Error::Process(format!("own executable: {e}")))?;
        let mut cmd = Command::new(exe);
        cmd.args(["discard-broker", "--listen", "127.0.0.1:0", "--ready-file"]).arg(&ready_file);
        cmd.arg("--partitions").arg(partitions.to_string());
        let log = log_dir.join(format!("{name}.log"));
        ChildBroker::start(
            cmd,
            "discard broker (answers Produce at once, stores nothing)".into(),
            None,
            log,
            ready_file,
        )
    }

    fn start(
        mut cmd: Command,
        label: String,
        data_dir: Option<PathBuf>,
        log: PathBuf,
        ready_file: PathBuf,
    ) -> Result<ChildBroker> {
        let _ = std::fs::remove_file(&ready_file);
        let log_file = std::fs::File::create(&log).map_err(|e| Error::file(&log, e))?;
        let err_file = log_file.try_clone().map_err(|e| Error::file(&log, e))?;
        cmd.stdin(Stdio::null()).stdout(log_file).stderr(err_file);
        let mut child =
            cmd.spawn().map_err(|e| Error::Process(format!("cannot start {:?}: {e}", cmd.get_program())))?;
        let ready = launch::wait_ready(&mut child, &ready_file, &log, Duration::from_secs(60));
        let mut broker = ChildBroker { child, addr: String::new(), label, data_dir, log, ready_file };
        match ready {
            Ok(launch::Ready { kafka: Some(addr), .. }) => broker.addr = addr.to_string(),
            Ok(_) => return Err(Error::Process("the broker reported no Kafka listener".into())),
            Err(e) => return Err(Error::Process(e)),
        }
        Ok(broker)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The fresh data directory of a spawned riptide (watched for segment events).
    pub fn data_dir(&self) -> Option<&Path> {
        self.data_dir.as_deref()
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
        let _ = std::fs::remove_file(&self.ready_file);
    }
}

impl Drop for ChildBroker {
    fn drop(&mut self) {
        self.terminate();
    }
}
