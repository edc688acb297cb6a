//! The few system calls the harness makes directly, each wrapped safely here (the only
//! `unsafe` in the crate): CPU time of this process and of the broker, and SIGTERM to a child.

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
}
