//! The process metrics of the Prometheus conventions (`process_*`, without
//! the service's prefix), read from `/proc` at each scrape and appended to
//! the registry's text by `/metrics`: resident memory, CPU time, open and
//! maximum descriptors, start time. A value that cannot be read is left
//! out of that scrape (no error: the other metrics still answer).

use std::fmt::Write;

/// What `/proc/self/stat` tells, in clock ticks and pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stat {
    /// User and system CPU time, in clock ticks.
    cpu_ticks: u64,
    /// Start time after boot, in clock ticks.
    start_ticks: u64,
}

/// The fields of `/proc/self/stat` after the command name (which may hold
/// spaces and parentheses: the last `)` ends it).
fn parse_stat(text: &str) -> Option<Stat> {
    let (_, rest) = text.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Field 3 (state) is the first after the name: fields 14, 15 and 22 of
    // proc(5) are at 11, 12 and 19.
    let field = |n: usize| fields.get(n).and_then(|f| f.parse::<u64>().ok());
    Some(Stat {
        cpu_ticks: field(11)?.checked_add(field(12)?)?,
        start_ticks: field(19)?,
    })
}

/// `VmRSS` of `/proc/self/status`, in bytes.
fn parse_resident_bytes(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// The boot time (`btime`, Unix seconds) of `/proc/stat`.
fn parse_boot_time(stat: &str) -> Option<u64> {
    let line = stat.lines().find(|l| l.starts_with("btime "))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Clock ticks per second of `/proc` times.
fn ticks_per_second() -> Option<f64> {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
        Ok(Some(t)) if t > 0 => Some(t as f64),
        _ => None,
    }
}

/// One sample with its `HELP` and `TYPE` lines.
fn sample(out: &mut String, name: &str, kind: &str, help: &str, value: f64) {
    let _ = write!(
        out,
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
    );
}

/// Appends the process metrics to `out` (text format 0.0.4).
pub fn append(out: &mut String) {
    let read = |path: &str| std::fs::read_to_string(path).ok();
    if let Some(bytes) = read("/proc/self/status").and_then(|s| parse_resident_bytes(&s)) {
        sample(
            out,
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
            bytes as f64,
        );
    }
    let stat = read("/proc/self/stat").and_then(|s| parse_stat(&s));
    if let (Some(stat), Some(hz)) = (stat, ticks_per_second()) {
        sample(
            out,
            "process_cpu_seconds_total",
            "counter",
            "Total user and system CPU time spent in seconds.",
            stat.cpu_ticks as f64 / hz,
        );
        if let Some(boot) = read("/proc/stat").and_then(|s| parse_boot_time(&s)) {
            sample(
                out,
                "process_start_time_seconds",
                "gauge",
                "Start time of the process since unix epoch in seconds.",
                boot as f64 + stat.start_ticks as f64 / hz,
            );
        }
    }
    if let Ok(n) = crate::descriptors::open_count() {
        sample(
            out,
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
            n as f64,
        );
    }
    if let Ok(n) = crate::descriptors::current_limit() {
        sample(
            out,
            "process_max_fds",
            "gauge",
            "Maximum number of open file descriptors.",
            n as f64,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_files_are_parsed_and_a_command_with_parentheses_is_skipped() {
        let stat = "4242 (a) b (c)) S 1 4242 4242 0 -1 4194560 1000 0 0 0 \
                    250 50 0 0 20 0 8 0 123456 100000000 2500 18446744073709551615";
        assert_eq!(
            parse_stat(stat),
            Some(Stat {
                cpu_ticks: 300,
                start_ticks: 123456
            })
        );
        assert_eq!(parse_stat("4242 (a) S 1"), None);
        assert_eq!(parse_stat("garbage"), None);
        let status = "Name:\thpr\nVmPeak:\t 9000 kB\nVmRSS:\t    2048 kB\n";
        assert_eq!(parse_resident_bytes(status), Some(2048 * 1024));
        assert_eq!(parse_resident_bytes("Name: x\n"), None);
        assert_eq!(
            parse_boot_time("cpu  1 2 3\nbtime 1700000000\nprocesses 9\n"),
            Some(1_700_000_000)
        );
    }

    #[test]
    fn this_process_is_described() {
        let mut out = String::new();
        append(&mut out);
        for name in [
            "process_resident_memory_bytes",
            "process_cpu_seconds_total",
            "process_start_time_seconds",
            "process_open_fds",
            "process_max_fds",
        ] {
            let value = out
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{name} ")))
                .and_then(|v| v.parse::<f64>().ok());
            // A test process may have used less than one clock tick.
            let least = if name == "process_cpu_seconds_total" {
                0.0
            } else {
                1.0
            };
            assert!(value.is_some_and(|v| v >= least), "{name} in\n{out}");
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let start = out
            .lines()
            .find_map(|l| l.strip_prefix("process_start_time_seconds "))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0);
        assert!(
            start <= now + 1.0 && start > now - 86_400.0 * 365.0,
            "{start}"
        );
    }
}
