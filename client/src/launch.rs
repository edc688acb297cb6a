//! Starting a local `riptide serve` and knowing where it listens, without racing anyone for
//! a port: the one helper the server's, the quorum's and the bench harness's tests, the bench
//! harness's `--spawn` and the broker's own start-up check share.
//!
//! - **Ready file**: `riptide serve --ready-file PATH` writes [`Ready`] (JSON: every bound
//!   address) atomically, and only once the node answers ApiVersions on its Kafka listener. A
//!   launcher passes port 0 for every listener and reads the ports back from it.
//! - **Readiness is an answer**: [`probe_api_versions`] sends ApiVersions v0 over a plain
//!   blocking socket and checks the answer. A bare TCP connect proves nothing: a process that
//!   was just killed can still complete handshakes on its io_uring-held listener.
//! - **A loopback host per node** ([`LoopbackHost`], see docs/TESTING.md "Ports"): a node
//!   listens on an address of 127.0.0.0/8 that no other node on this machine uses, held by a
//!   lock file for as long as the process lives. Outgoing connections get their source port
//!   on 127.0.0.1, which never conflicts with a listener bound to another address, so a node
//!   can be restarted on the port it had (clients keep their bootstrap) and a controller can
//!   be given a fixed port in advance (the other voters must dial it before it runs).

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::ApiVersionsResponse;
use kafka_protocol::protocol::Decodable;

/// What a node reports in its ready file. Addresses are the bound ones (a configured port 0
/// replaced by the kernel's choice).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Ready {
    pub node_id: i32,
    pub pid: u32,
    /// The Kafka listener (PLAINTEXT), absent on a controller-only node.
    pub kafka: Option<SocketAddr>,
    /// The CONTROLLER listener, on a node that is a controller.
    pub controller: Option<SocketAddr>,
    pub rest: Option<SocketAddr>,
    pub metrics: Option<SocketAddr>,
    /// Every Kafka listener by name (`PLAINTEXT`, `SSL`, `SASL_SSL`, ...).
    #[serde(default)]
    pub listeners: std::collections::BTreeMap<String, SocketAddr>,
}

impl Ready {
    /// Writes `self` to `path` atomically: a temp file beside it, fsynced, then renamed, so a
    /// reader sees the whole file or none.
    pub fn write_atomically(&self, path: &Path) -> std::io::Result<()> {
        let tmp = path.with_extension("tmp");
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        let mut f = File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    }

    pub fn read(path: &Path) -> std::io::Result<Ready> {
        let text = std::fs::read_to_string(path)?;
        serde_json::from_str(&text).map_err(|e| std::io::Error::other(format!("{}: {e}", path.display())))
    }
}

/// Sends ApiVersions v0 to `addr` and waits up to `timeout` for a well-formed answer with
/// error code 0 and at least one API. Blocking: for launchers and start-up, not shards.
pub fn probe_api_versions(addr: SocketAddr, timeout: Duration) -> std::io::Result<()> {
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    const CORRELATION_ID: i32 = 0x5249_5054; // "RIPT"
    let client_id = b"riptide-probe";
    let mut req = Vec::with_capacity(32);
    req.extend_from_slice(&((2 + 2 + 4 + 2 + client_id.len()) as i32).to_be_bytes());
    req.extend_from_slice(&18i16.to_be_bytes()); // ApiVersions
    req.extend_from_slice(&0i16.to_be_bytes());
    req.extend_from_slice(&CORRELATION_ID.to_be_bytes());
    req.extend_from_slice(&(client_id.len() as i16).to_be_bytes());
    req.extend_from_slice(client_id);
    s.write_all(&req)?;
    let mut size = [0u8; 4];
    s.read_exact(&mut size)?;
    let size = i32::from_be_bytes(size);
    if !(8..=1 << 20).contains(&size) {
        return Err(std::io::Error::other(format!("ApiVersions answer of {size} bytes")));
    }
    let mut body = vec![0u8; size as usize];
    s.read_exact(&mut body)?;
    let correlation = i32::from_be_bytes([body[0], body[1], body[2], body[3]]);
    if correlation != CORRELATION_ID {
        return Err(std::io::Error::other(format!("ApiVersions answer for correlation id {correlation}")));
    }
    let mut rest = Bytes::from(body).slice(4..);
    let resp = ApiVersionsResponse::decode(&mut rest, 0)
        .map_err(|e| std::io::Error::other(format!("ApiVersions answer: {e}")))?;
    if resp.error_code != 0 || resp.api_keys.is_empty() {
        return Err(std::io::Error::other(format!(
            "ApiVersions answered error {} with {} APIs",
            resp.error_code,
            resp.api_keys.len()
        )));
    }
    Ok(())
}

/// An address of 127.0.0.0/8 reserved for one node of this process (see the module comment).
/// The reservation is an exclusive lock on a file under the temp dir, released when this value
/// is dropped or the process dies, so it never goes stale.
#[derive(Debug)]
pub struct LoopbackHost {
    pub ip: Ipv4Addr,
    _lock: File,
}

impl LoopbackHost {
    /// Reserves a free one: 127.A.B.C with A in 100..=199 (clear of 127.0.0.x, which other
    /// programs use), tried from a random start.
    pub fn reserve() -> std::io::Result<LoopbackHost> {
        let dir = std::env::temp_dir().join("riptide-loopback-hosts");
        std::fs::create_dir_all(&dir)?;
        let seed = u64::from(std::process::id()).wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
        const SPACE: u64 = 100 * 254 * 254;
        for i in 0..4096u64 {
            let n = seed.wrapping_add(i.wrapping_mul(7919)) % SPACE;
            let ip = Ipv4Addr::new(
                127,
                100 + (n / (254 * 254)) as u8,
                1 + (n / 254 % 254) as u8,
                1 + (n % 254) as u8,
            );
            let lock = File::create(dir.join(ip.to_string()))?;
            if lock.try_lock().is_ok() {
                return Ok(LoopbackHost { ip, _lock: lock });
            }
        }
        Err(std::io::Error::other("no free loopback host after 4096 tries"))
    }

    /// `ip:port`.
    pub fn addr(&self, port: u16) -> SocketAddr {
        SocketAddr::from((self.ip, port))
    }
}

/// Waits until `child` has written `ready_file` and its Kafka listener answers ApiVersions
/// (or, for a controller-only node, until the file exists). Fails at once, with the tail of
/// `log`, when the child exits first, and after `limit` otherwise.
pub fn wait_ready(
    child: &mut Child,
    ready_file: &Path,
    log: &Path,
    limit: Duration,
) -> Result<Ready, String> {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("riptide exited at start ({status}): {}", log_tail(log)));
        }
        if let Ok(ready) = Ready::read(ready_file) {
            match ready.kafka {
                None => return Ok(ready),
                Some(addr) => match probe_api_versions(addr, Duration::from_secs(2)) {
                    Ok(()) => return Ok(ready),
                    Err(e) if Instant::now() >= deadline => {
                        return Err(format!("{addr} does not answer ApiVersions: {e}: {}", log_tail(log)))
                    }
                    Err(_) => {}
                },
            }
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "no ready file {} after {} s: {}",
                ready_file.display(),
                limit.as_secs(),
                log_tail(log)
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The last 3000 bytes of a log file, for failure messages.
pub fn log_tail(log: &Path) -> String {
    let text = std::fs::read(log).unwrap_or_default();
    let from = text.len().saturating_sub(3000);
    String::from_utf8_lossy(&text[from..]).trim().to_string()
}

/// The ready-file path a launcher uses for a node whose data lives in `data_dir`.
pub fn ready_file_for(data_dir: &Path) -> PathBuf {
    let mut p = data_dir.as_os_str().to_owned();
    p.push(".ready.json");
    PathBuf::from(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_files_round_trip() {
        let dir = std::env::temp_dir().join(format!("riptide-ready-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("r.json");
        let r = Ready {
            node_id: 3,
            pid: 42,
            kafka: Some("127.100.1.1:40000".parse().expect("addr")),
            controller: None,
            rest: Some("127.100.1.1:40001".parse().expect("addr")),
            metrics: None,
            listeners: [("SSL".to_string(), "127.100.1.1:40002".parse().expect("addr"))].into(),
        };
        r.write_atomically(&path).expect("write");
        assert_eq!(Ready::read(&path).expect("read"), r);
        assert!(!path.with_extension("tmp").exists());
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn loopback_hosts_are_exclusive_and_bindable() {
        let a = LoopbackHost::reserve().expect("a");
        let b = LoopbackHost::reserve().expect("b");
        assert_ne!(a.ip, b.ip);
        assert!(a.ip.is_loopback() && b.ip.is_loopback());
        let l = std::net::TcpListener::bind(a.addr(0)).expect("bind on the reserved host");
        assert_eq!(l.local_addr().expect("addr").ip(), std::net::IpAddr::V4(a.ip));
    }
}
