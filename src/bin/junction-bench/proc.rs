//! Reads a process's CPU time (`/proc/PID/stat`, utime + stime) and resident memory
//! (`/proc/PID/status`, VmRSS), summed over the router's processes, so throughput
//! can be given per router CPU-second and memory per session; raises this process's
//! open-file limit for scenarios with many connections, and reads the kernel's TCP
//! counters (accept-queue overflows).
//!
//! [`Pids::counters`] reads the router's per-operation cost counters: read and write
//! syscalls (`syscr`, `syscw` of `/proc/PID/io`, all threads of the process) and
//! voluntary / involuntary context switches, summed over every thread
//! (`/proc/PID/task/*/status`; `/proc/PID/status` alone is the main thread's).
//! The kernel counts only `read`/`readv` in `syscr` and `write`/`writev` in `syscw`:
//! socket I/O through `recvfrom`/`sendto` (what Rust's std uses on TCP sockets) is not
//! counted, nor are `epoll_wait`, `futex` and the like; [`PerfSyscalls`] counts them all.

/// Clock ticks per second of `/proc/PID/stat` times (`getconf CLK_TCK`; 100 on Linux).
const CLK_TCK: f64 = 100.0;

/// The processes that make up the router under test (empty when not given).
#[derive(Clone, Debug, Default)]
pub struct Pids(pub Vec<u32>);

impl Pids {
    /// True when no PID was given.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// User + system CPU seconds of all the processes, or `None` if unreadable.
    pub fn cpu_seconds(&self) -> Option<f64> {
        if self.is_empty() {
            return None;
        }
        self.0.iter().map(|&p| cpu_seconds(&format!("/proc/{p}/stat"))).sum()
    }

    /// CPU seconds of each process, in the order given (`None` where unreadable).
    pub fn cpu_each(&self) -> Vec<Option<f64>> {
        self.0.iter().map(|&p| cpu_seconds(&format!("/proc/{p}/stat"))).collect()
    }

    /// Syscall and context-switch counters summed over all the processes and their
    /// threads, or `None` if any is unreadable.
    pub fn counters(&self) -> Option<Counters> {
        if self.is_empty() {
            return None;
        }
        let mut sum = Counters::default();
        for &p in &self.0 {
            sum = sum.plus(&counters(p)?);
        }
        Some(sum)
    }

    /// Resident memory of all the processes in bytes, or `None` if unreadable.
    pub fn rss_bytes(&self) -> Option<u64> {
        if self.is_empty() {
            return None;
        }
        self.0.iter().map(|&p| rss_bytes(p)).sum()
    }
}

/// Cumulative cost counters of a process (or a sum of processes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Read syscalls (`syscr`).
    pub syscr: u64,
    /// Write syscalls (`syscw`).
    pub syscw: u64,
    /// Voluntary context switches (the thread blocked), all threads.
    pub voluntary: u64,
    /// Involuntary context switches (the thread was preempted), all threads.
    pub involuntary: u64,
}

impl Counters {
    fn plus(&self, o: &Counters) -> Counters {
        Counters {
            syscr: self.syscr + o.syscr,
            syscw: self.syscw + o.syscw,
            voluntary: self.voluntary + o.voluntary,
            involuntary: self.involuntary + o.involuntary,
        }
    }

    /// What happened between `self` (earlier) and `later`.
    pub fn delta(&self, later: &Counters) -> Counters {
        Counters {
            syscr: later.syscr.saturating_sub(self.syscr),
            syscw: later.syscw.saturating_sub(self.syscw),
            voluntary: later.voluntary.saturating_sub(self.voluntary),
            involuntary: later.involuntary.saturating_sub(self.involuntary),
        }
    }
}

fn counters(pid: u32) -> Option<Counters> {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    let mut c = Counters {
        syscr: status_field(&io, "syscr:")?,
        syscw: status_field(&io, "syscw:")?,
        ..Counters::default()
    };
    // Threads may come and go between listing and reading: skip the vanished ones.
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()?.flatten() {
        let Ok(status) = std::fs::read_to_string(task.path().join("status")) else { continue };
        c.voluntary += status_field(&status, "voluntary_ctxt_switches:").unwrap_or(0);
        c.involuntary += status_field(&status, "nonvoluntary_ctxt_switches:").unwrap_or(0);
    }
    Some(c)
}

/// The number after `key` on the line starting with it (`/proc` key-value files).
fn status_field(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| l.strip_prefix(key))?.split_whitespace().next()?.parse().ok()
}

/// Counts every syscall the router's processes make (all threads, `recv`, `sendto`,
/// `epoll_wait` and `futex` included) with `perf stat -e raw_syscalls:sys_enter -p`,
/// from [`PerfSyscalls::start`] to [`PerfSyscalls::stop`]. Needs `perf` and the
/// permission to trace the processes (root, or `perf_event_paranoid` <= 1 for one's
/// own processes); perf needs a few milliseconds to attach, missed from the count.
pub struct PerfSyscalls(std::process::Child);

impl PerfSyscalls {
    /// Starts counting, or `None` without PIDs or when perf cannot be started.
    pub fn start(pids: &Pids) -> Option<PerfSyscalls> {
        if pids.is_empty() {
            return None;
        }
        let list: Vec<String> = pids.0.iter().map(u32::to_string).collect();
        let child = std::process::Command::new("perf")
            .args(["stat", "-x", ",", "-e", "raw_syscalls:sys_enter", "-p", &list.join(",")])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| eprintln!("perf: {e}"))
            .ok()?;
        Some(PerfSyscalls(child))
    }

    /// Stops perf and returns the syscalls it counted (`None` if it failed).
    pub fn stop(self) -> Option<u64> {
        let pid = libc::pid_t::try_from(self.0.id()).ok()?;
        // SAFETY: signalling our own child process, which has not been waited for.
        unsafe { libc::kill(pid, libc::SIGINT) };
        let out = self.0.wait_with_output().ok()?;
        let text = String::from_utf8_lossy(&out.stderr);
        let n = parse_perf_count(&text, "raw_syscalls:sys_enter");
        if n.is_none() {
            eprintln!("perf stat gave no syscall count: {}", text.trim());
        }
        n
    }
}

/// The count of `event` in `perf stat -x ,` output (`count,unit,event,...`).
fn parse_perf_count(text: &str, event: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let mut f = l.split(',');
        let count = f.next()?;
        f.nth(1).filter(|e| *e == event)?;
        count.trim().parse().ok()
    })
}

/// The 1-minute load average (`/proc/loadavg`): how busy the machine was, since the
/// router and the load generator share it with whatever else runs.
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg").ok()?.split_whitespace().next()?.parse().ok()
}

/// Raises this process's open-file soft limit to its hard limit (one descriptor per
/// connection); returns the soft limit now in force.
pub fn raise_nofile_limit() -> Option<u64> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `lim` is a live, writable rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut lim) } != 0 {
        return None;
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
        // SAFETY: a pointer to a live rlimit.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raw const raised) } == 0 {
            lim = raised;
        }
    }
    Some(lim.rlim_cur)
}

/// A `TcpExt` counter of `/proc/net/netstat` (this network namespace, all sockets),
/// e.g. `ListenOverflows`: connections a full accept queue dropped (the client
/// retransmits its SYN after a second).
pub fn tcp_ext_counter(name: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/net/netstat").ok()?;
    parse_tcp_ext(&text, name)
}

fn parse_tcp_ext(text: &str, name: &str) -> Option<u64> {
    let mut rows = text.lines().filter(|l| l.starts_with("TcpExt:"));
    let (keys, values) = (rows.next()?, rows.next()?);
    let at = keys.split_whitespace().position(|k| k == name)?;
    values.split_whitespace().nth(at)?.parse().ok()
}

/// CPU seconds used so far by this process (the load generator).
pub fn self_cpu_seconds() -> Option<f64> {
    cpu_seconds("/proc/self/stat")
}

fn cpu_seconds(path: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(path).ok()?;
    parse_stat_cpu(&stat)
}

/// utime + stime from a `stat` line, in seconds. The command name (field 2) may
/// contain spaces and parentheses, so fields are counted after its closing `)`.
fn parse_stat_cpu(stat: &str) -> Option<f64> {
    let after = &stat[stat.rfind(')')? + 1..];
    let mut fields = after.split_whitespace();
    // After ")": state is field 3; utime and stime are fields 14 and 15.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / CLK_TCK)
}

fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vm_rss(&status)
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_command_names() {
        let stat = "1234 (my (odd) proc) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 4 0 100 0 0";
        assert_eq!(parse_stat_cpu(stat), Some(3.0));
    }

    #[test]
    fn parses_tcp_ext() {
        let text = "TcpExt: SyncookiesSent ListenOverflows\nTcpExt: 3 17\nIpExt: InNoRoutes\nIpExt: 0\n";
        assert_eq!(parse_tcp_ext(text, "ListenOverflows"), Some(17));
        assert_eq!(parse_tcp_ext(text, "Nope"), None);
    }

    #[test]
    fn parses_vm_rss() {
        let status = "Name:\tjunction\nVmPeak:\t  9999 kB\nVmRSS:\t   2048 kB\n";
        assert_eq!(parse_vm_rss(status), Some(2048 * 1024));
    }

    #[test]
    fn parses_perf_output() {
        let text = "\n12345,,raw_syscalls:sys_enter,2003554343,100.00,,\n";
        assert_eq!(parse_perf_count(text, "raw_syscalls:sys_enter"), Some(12345));
        assert_eq!(
            parse_perf_count("<not counted>,,raw_syscalls:sys_enter,0,0,,", "raw_syscalls:sys_enter"),
            None
        );
    }

    #[test]
    fn parses_counter_fields() {
        let io = "rchar: 10\nwchar: 20\nsyscr: 3\nsyscw: 4\n";
        assert_eq!(status_field(io, "syscr:"), Some(3));
        assert_eq!(status_field(io, "syscw:"), Some(4));
        let status = "voluntary_ctxt_switches:\t7\nnonvoluntary_ctxt_switches:\t2\n";
        assert_eq!(status_field(status, "voluntary_ctxt_switches:"), Some(7));
        assert_eq!(status_field(status, "nonvoluntary_ctxt_switches:"), Some(2));
    }

    #[test]
    fn reads_own_process() {
        assert!(Pids(vec![std::process::id()]).counters().is_some());
        assert!(self_cpu_seconds().is_some());
        assert!(Pids(vec![std::process::id()]).rss_bytes().unwrap_or(0) > 0);
    }
}
