//! The few system calls the harness makes directly, each wrapped safely here (the only
//! `unsafe` in the crate): CPU time of this process and of the broker, and SIGTERM to a child.
//! Also the broker's memory from /proc (no system call needed).

/// Sends SIGTERM to `pid` (a child of ours, so the pid is not reused before we reap it).
pub fn terminate(pid: u32) {
    // SAFETY: kill(2) has no memory effects; the pid is our unreaped child's.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
}

/// CPU seconds (user + system) this process has used.
pub fn own_cpu_seconds() -> f64 {
    // SAFETY: getrusage writes only into the zeroed struct we own.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u
    };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// CPU seconds (user + system) of process `pid`, from /proc.
pub fn pid_cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf has no memory effects.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some(ticks / per_second.max(1.0))
}

/// Resident set size of process `pid` now and its peak (`VmRSS`, `VmHWM`), in bytes.
pub fn pid_rss_bytes(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kib: u64 = line[name.len()..].trim().trim_end_matches("kB").trim().parse().ok()?;
        Some(kib * 1024)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Resets the peak RSS of `pid` (`VmHWM`) to its current RSS, so the peak covers only what
/// follows; false when not allowed (another user's process, or an old kernel).
pub fn reset_peak_rss(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), b"5").is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_readings_of_ourselves_agree() {
        let start = own_cpu_seconds();
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_add(i.wrapping_mul(i));
        }
        assert!(x > 0);
        assert!(own_cpu_seconds() >= start);
        let from_proc = pid_cpu_seconds(std::process::id()).expect("/proc readable");
        assert!(from_proc >= 0.0 && from_proc <= own_cpu_seconds() + 0.05);
    }

    #[test]
    fn rss_readings_of_ourselves_make_sense() {
        let (rss, peak) = pid_rss_bytes(std::process::id()).expect("/proc readable");
        assert!(rss > 100_000 && peak >= rss, "{rss} {peak}");
        assert_eq!(pid_rss_bytes(u32::MAX), None);
    }
}
