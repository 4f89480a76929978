//! What the kernel knows about a process (pipgate, the origin, or the benchmark itself): CPU
//! time and resident memory.

use std::time::Duration;

use crate::Res;

/// Reads the clock-tick length once (`getconf CLK_TCK`; 100 Hz when unavailable).
pub(crate) fn tick() -> Duration {
    let hz = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<u64>().ok())
        .filter(|&hz| hz > 0)
        .unwrap_or(100);
    Duration::from_nanos(1_000_000_000 / hz)
}

/// utime + stime of the whole process (every thread, live or exited).
pub(crate) fn cpu(pid: u32, tick: Duration) -> Res<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or("bad /proc stat")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = f.get(11).ok_or("no utime")?.parse()?;
    let stime: u64 = f.get(12).ok_or("no stime")?.parse()?;
    Ok(tick * (utime + stime) as u32)
}

/// CPU time of the live threads of a process, from the scheduler's nanosecond counters
/// (`/proc/PID/task/*/schedstat`): clock ticks are too coarse for a few hundred milliseconds of
/// load. Threads that exited in between are not counted.
pub(crate) fn cpu_ns(pid: u32) -> Res<Duration> {
    let mut total = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let path = task?.path().join("schedstat");
        // A thread may exit between the listing and the read.
        let Ok(stat) = std::fs::read_to_string(path) else {
            continue;
        };
        total += stat
            .split_whitespace()
            .next()
            .ok_or("empty schedstat")?
            .parse::<u64>()?;
    }
    Ok(Duration::from_nanos(total))
}

/// A `Vm*` line of /proc/PID/status, in KiB.
fn status_kib(pid: u32, key: &str) -> Res<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with(key))
        .ok_or_else(|| format!("no {key} in /proc/{pid}/status"))?;
    let kib = line
        .split_whitespace()
        .nth(1)
        .ok_or("bad status line")?
        .parse()?;
    Ok(kib)
}

/// Peak resident set since start or the last [`reset_peak`], in MiB.
pub(crate) fn peak_rss_mib(pid: u32) -> Res<f64> {
    Ok(status_kib(pid, "VmHWM:")? as f64 / 1024.0)
}

/// Current resident set, in MiB.
pub(crate) fn rss_mib(pid: u32) -> Res<f64> {
    Ok(status_kib(pid, "VmRSS:")? as f64 / 1024.0)
}

/// Resets VmHWM to the current RSS (`echo 5 > clear_refs`, Linux >= 4.0), so each load's
/// peak is its own.
pub(crate) fn reset_peak(pid: u32) -> Res<()> {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5")?;
    Ok(())
}
