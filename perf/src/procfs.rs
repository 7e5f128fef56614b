//! CPU time and memory of a process, read from `/proc/<pid>/stat` and `/proc/<pid>/status`.
//!
//! The benchmarks judge the supervisor by what the kernel charged to it, not by what it says
//! of itself: CPU as a share of one core over a window, resident memory now and at its peak.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// One reading of a process's counters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcSample {
    /// When it was read (for CPU shares over a window).
    pub at: Instant,
    /// User plus system CPU time of all its threads so far.
    pub cpu: Duration,
    /// Resident set size now (`VmRSS`), in KiB.
    pub rss_kib: u64,
    /// Peak resident set size so far (`VmHWM`), in KiB.
    pub peak_rss_kib: u64,
    pub threads: u64,
}

impl ProcSample {
    /// Reads `/proc/<pid>/stat` and `/proc/<pid>/status`.
    pub fn read(pid: u32) -> anyhow::Result<ProcSample> {
        let at = Instant::now();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .with_context(|| format!("reading /proc/{pid}/stat (has process {pid} exited?)"))?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .with_context(|| format!("reading /proc/{pid}/status"))?;
        let (ticks, threads) = parse_stat(&stat)?;
        Ok(ProcSample {
            at,
            cpu: ticks_to_duration(ticks, clock_ticks_per_second()),
            rss_kib: status_field_kib(&status, "VmRSS")?,
            peak_rss_kib: status_field_kib(&status, "VmHWM")?,
            threads,
        })
    }

    /// CPU used between `earlier` and `self`, as a percentage of one core.
    pub fn cpu_percent_since(&self, earlier: &ProcSample) -> f64 {
        let wall = self.at.saturating_duration_since(earlier.at).as_secs_f64();
        if wall <= 0.0 {
            return 0.0;
        }
        let cpu = self.cpu.saturating_sub(earlier.cpu).as_secs_f64();
        100.0 * cpu / wall
    }
}

/// `utime + stime` (in clock ticks) and the thread count from the text of `/proc/<pid>/stat`.
/// The command name (field 2) may hold spaces and parentheses, so fields are counted from
/// the last `)`.
pub fn parse_stat(text: &str) -> anyhow::Result<(u64, u64)> {
    let Some((_, rest)) = text.rsplit_once(')') else {
        bail!("unexpected /proc stat format (no command name): {text:?}");
    };
    // rest starts at field 3 (state): utime is field 14, stime 15, num_threads 20.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |number: usize| -> anyhow::Result<u64> {
        fields
            .get(number - 3)
            .with_context(|| format!("/proc stat has no field {number}: {text:?}"))?
            .parse()
            .with_context(|| format!("/proc stat field {number} is not a number: {text:?}"))
    };
    Ok((field(14)? + field(15)?, field(20)?))
}

/// A `Name:   1234 kB` line of `/proc/<pid>/status`, in KiB.
pub fn status_field_kib(text: &str, name: &str) -> anyhow::Result<u64> {
    let line = text
        .lines()
        .find(|line| line.split(':').next() == Some(name))
        .with_context(|| format!("/proc status has no {name} line"))?;
    let value = line[name.len() + 1..]
        .split_whitespace()
        .next()
        .with_context(|| format!("/proc status line without a value: {line:?}"))?;
    value
        .parse()
        .with_context(|| format!("/proc status {name} is not a number: {line:?}"))
}

fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf only reads a constant of the running system.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as u64
    } else {
        100
    }
}

fn ticks_to_duration(ticks: u64, per_second: u64) -> Duration {
    Duration::from_secs(ticks / per_second)
        + Duration::from_nanos((ticks % per_second) * 1_000_000_000 / per_second)
}

/// Raises this process's open-file limit to its hard limit, so 1,000 streams (and the
/// supervisor, which inherits the limit) have sockets enough. Returns the new soft limit.
pub fn raise_open_file_limit() -> anyhow::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: get/setrlimit read and write the struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            bail!(
                "getrlimit(RLIMIT_NOFILE) failed: {}",
                std::io::Error::last_os_error()
            );
        }
        limit.rlim_cur = limit.rlim_max;
        if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
            bail!(
                "setrlimit(RLIMIT_NOFILE) failed: {}",
                std::io::Error::last_os_error()
            );
        }
    }
    Ok(limit.rlim_cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        // A command name with spaces and a parenthesis, as a thread may have.
        let text = "42 (a (weird) name) S 1 42 42 0 -1 4194560 100 0 0 0 250 30 0 0 20 0 7 0 \
                    1000 2000000 500 18446744073709551615";
        assert_eq!(parse_stat(text).unwrap(), (280, 7));
    }

    #[test]
    fn status_values_are_read_in_kib() {
        let text = "Name:\ttraptor\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\n";
        assert_eq!(status_field_kib(text, "VmRSS").unwrap(), 102_400);
        assert_eq!(status_field_kib(text, "VmHWM").unwrap(), 204_800);
        assert!(status_field_kib(text, "VmSwap").is_err());
    }

    #[test]
    fn this_process_burning_cpu_shows_up_as_cpu_time() {
        let pid = std::process::id();
        let before = ProcSample::read(pid).unwrap();
        let spin_until = Instant::now() + Duration::from_millis(300);
        let mut x = 0u64;
        while Instant::now() < spin_until {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        std::hint::black_box(x);
        let after = ProcSample::read(pid).unwrap();
        let percent = after.cpu_percent_since(&before);
        // One thread spinning: about one core (ticks are 10 ms, the machine may be shared).
        assert!(percent > 30.0 && percent < 150.0, "{percent}");
        assert!(after.rss_kib > 0 && after.peak_rss_kib >= after.rss_kib);
    }

    #[test]
    fn ticks_convert_exactly() {
        assert_eq!(ticks_to_duration(250, 100), Duration::from_millis(2500));
    }
}

/// Machine-wide CPU time from the first line of `/proc/stat`, to tell whether the machine
/// had idle cores during a measurement (it is shared: other work may take them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MachineSample {
    /// Ticks spent busy (everything but idle and iowait), all cores together.
    pub busy: u64,
    /// Ticks in total, all cores together.
    pub total: u64,
}

impl MachineSample {
    pub fn read() -> anyhow::Result<MachineSample> {
        let text = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
        parse_machine_stat(&text)
    }

    /// Busy share of all cores between `earlier` and `self`, in percent.
    pub fn busy_percent_since(&self, earlier: &MachineSample) -> f64 {
        let total = self.total.saturating_sub(earlier.total);
        if total == 0 {
            return 0.0;
        }
        100.0 * self.busy.saturating_sub(earlier.busy) as f64 / total as f64
    }
}

/// The `cpu ` line of `/proc/stat`: user nice system idle iowait irq softirq steal ...
pub fn parse_machine_stat(text: &str) -> anyhow::Result<MachineSample> {
    let line = text
        .lines()
        .find(|l| l.starts_with("cpu "))
        .context("/proc/stat has no `cpu ` line")?;
    let values: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().context("a /proc/stat cpu field is not a number"))
        .collect::<anyhow::Result<_>>()?;
    if values.len() < 5 {
        bail!("/proc/stat cpu line too short: {line:?}");
    }
    // guest time is already counted in user: leave out the last two fields if present.
    let total: u64 = values.iter().take(8).sum();
    let idle = values[3] + values[4];
    Ok(MachineSample {
        busy: total - idle,
        total,
    })
}

#[cfg(test)]
mod machine_tests {
    use super::*;

    #[test]
    fn busy_share_leaves_out_idle_and_iowait() {
        let a = parse_machine_stat("cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3 4 5\n").unwrap();
        let b = parse_machine_stat("cpu  250 0 100 850 100 0 0 0 0 0\n").unwrap();
        assert_eq!(
            a,
            MachineSample {
                busy: 150,
                total: 1000
            }
        );
        // 200 busy ticks out of 300.
        assert!((b.busy_percent_since(&a) - 66.666).abs() < 0.01);
    }
}
