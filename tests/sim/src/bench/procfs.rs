//! What `/proc` tells about one process: CPU time (its own and that of its
//! reaped children), resident memory, threads (and their names) and live
//! child processes.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// Clock ticks per second of the CPU times in `/proc/PID/stat` (`USER_HZ`,
/// 100 on the architectures this runs on).
const TICKS_PER_SECOND: u64 = 100;

/// One reading of `/proc/PID/stat` and `/proc/PID/status`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcSample {
    /// `utime + stime` of the process, in milliseconds.
    pub own_cpu_ms: u64,
    /// `cutime + cstime`: CPU of its children that it waited for, in milliseconds.
    pub children_cpu_ms: u64,
    /// `VmRSS`, KiB.
    pub rss_kib: u64,
    /// `VmHWM` (peak resident set), KiB.
    pub hwm_kib: u64,
    /// `Threads`.
    pub threads: u64,
}

impl ProcSample {
    /// Own and reaped children's CPU, milliseconds.
    pub fn total_cpu_ms(&self) -> u64 {
        self.own_cpu_ms + self.children_cpu_ms
    }
}

/// Why `/proc` could not be read for a process.
#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    /// The file could not be read (the process is gone, or no `/proc`).
    #[error("cannot read {path}: {source}")]
    Read {
        /// File read.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The file does not have the expected shape.
    #[error("unexpected content in {0}")]
    Format(PathBuf),
}

fn read(path: PathBuf) -> Result<String, ProcError> {
    std::fs::read_to_string(&path).map_err(|source| ProcError::Read { path, source })
}

/// Reads the figures of process `pid`.
pub fn sample(pid: u32) -> Result<ProcSample, ProcError> {
    let stat_path = PathBuf::from(format!("/proc/{pid}/stat"));
    let stat = read(stat_path.clone())?;
    let (own, children) = parse_stat_cpu_ticks(&stat).ok_or(ProcError::Format(stat_path))?;
    let status_path = PathBuf::from(format!("/proc/{pid}/status"));
    let status = read(status_path.clone())?;
    let field = |name: &str| status_field(&status, name);
    let (Some(rss_kib), Some(hwm_kib), Some(threads)) =
        (field("VmRSS:"), field("VmHWM:"), field("Threads:"))
    else {
        return Err(ProcError::Format(status_path));
    };
    Ok(ProcSample {
        own_cpu_ms: ticks_to_ms(own),
        children_cpu_ms: ticks_to_ms(children),
        rss_kib,
        hwm_kib,
        threads,
    })
}

fn ticks_to_ms(ticks: u64) -> u64 {
    ticks.saturating_mul(1000) / TICKS_PER_SECOND
}

/// `(utime + stime, cutime + cstime)` in clock ticks from the text of
/// `/proc/PID/stat`. The command name (field 2) is in parentheses and may
/// hold spaces and parentheses, so fields are counted after the last `)`.
pub fn parse_stat_cpu_ticks(stat: &str) -> Option<(u64, u64)> {
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state): utime is field 14
    let num = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    let (utime, stime, cutime, cstime) = (num(11)?, num(12)?, num(13)?, num(14)?);
    Some((utime + stime, cutime + cstime))
}

/// The number after `name` in `/proc/PID/status` (`VmRSS:  1234 kB` → 1234).
pub fn status_field(status: &str, name: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Number of live child processes of `pid` (from the `children` file of
/// each of its threads); `None` when the kernel does not publish it.
pub fn child_count(pid: u32) -> Option<u64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut n = 0u64;
    let mut readable = false;
    for task in tasks.flatten() {
        if let Ok(text) = std::fs::read_to_string(task.path().join("children")) {
            readable = true;
            n += text.split_whitespace().count() as u64;
        }
    }
    readable.then_some(n)
}

/// Threads of `pid` by name (`/proc/PID/task/TID/comm`, which the kernel
/// cuts at 15 bytes); `None` when the task list cannot be read. Threads that
/// end while being read are left out.
pub fn thread_names(pid: u32) -> Option<BTreeMap<String, u64>> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut names = BTreeMap::new();
    for task in tasks.flatten() {
        if let Ok(comm) = std::fs::read_to_string(task.path().join("comm")) {
            *names.entry(comm.trim_end().to_owned()).or_insert(0) += 1;
        }
    }
    Some(names)
}

/// Raises each name's count in `peaks` to its count in `sample`.
pub fn raise_peaks(peaks: &mut BTreeMap<String, u64>, sample: &BTreeMap<String, u64>) {
    for (name, &n) in sample {
        let peak = peaks.entry(name.clone()).or_insert(0);
        *peak = (*peak).max(n);
    }
}

/// First `model name` of `/proc/cpuinfo`.
pub fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|v| v.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
}

/// The three load averages of `/proc/loadavg`.
pub fn load_average() -> Option<String> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let parts: Vec<&str> = text.split_whitespace().take(3).collect();
    (parts.len() == 3).then(|| parts.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_are_read_after_the_command_name() {
        let stat = "4242 (a (odd) name) S 1 4242 4242 0 -1 4194560 500 0 0 0 \
                    150 25 7 3 20 0 9 0 100 1000 200";
        assert_eq!(parse_stat_cpu_ticks(stat), Some((175, 10)));
        assert_eq!(parse_stat_cpu_ticks("12 (x) S 1 2"), None);
        assert_eq!(parse_stat_cpu_ticks("garbage"), None);
    }

    #[test]
    fn status_fields_are_numbers() {
        let status = "Name:\tx\nVmHWM:\t   40256 kB\nVmRSS:\t   18000 kB\nThreads:\t84\n";
        assert_eq!(status_field(status, "VmHWM:"), Some(40256));
        assert_eq!(status_field(status, "VmRSS:"), Some(18000));
        assert_eq!(status_field(status, "Threads:"), Some(84));
        assert_eq!(status_field(status, "VmSwap:"), None);
    }

    #[test]
    fn peaks_are_kept_name_by_name() {
        let mut peaks = BTreeMap::new();
        let sample = |pairs: &[(&str, u64)]| -> BTreeMap<String, u64> {
            pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
        };
        raise_peaks(&mut peaks, &sample(&[("main", 1), ("worker", 3)]));
        raise_peaks(
            &mut peaks,
            &sample(&[("main", 1), ("worker", 1), ("git", 2)]),
        );
        assert_eq!(peaks, sample(&[("git", 2), ("main", 1), ("worker", 3)]));
    }

    #[test]
    fn this_process_threads_have_names() {
        let names = thread_names(std::process::id()).expect("own /proc entry");
        let total: u64 = names.values().sum();
        assert!(total >= 1, "{names:?}");
        assert!(names.keys().all(|n| !n.ends_with('\n')), "{names:?}");
    }

    #[test]
    fn this_process_can_be_sampled() {
        let s = sample(std::process::id()).expect("own /proc entry");
        assert!(s.threads >= 1);
        assert!(s.hwm_kib >= s.rss_kib && s.rss_kib > 0, "{s:?}");
        assert_eq!(ticks_to_ms(7), 70);
    }
}
