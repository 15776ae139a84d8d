//! This process's resource use, read from `/proc/self` and `getrusage` (Linux;
//! elsewhere what cannot be read is `None`): resident memory, CPU time, open file
//! descriptors and their limit. Read when the gauges are sampled, not on a timer.

/// Resident set size, bytes (`/proc/self/statm`, resident pages × page size).
pub fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf only reads a system constant.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    (page > 0).then(|| pages * page as u64)
}

/// User plus system CPU time of the whole process, seconds.
pub fn cpu_seconds() -> Option<f64> {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a rusage into the pointer it is given.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: initialised by the successful call above (and zeroed before).
    let u = unsafe { usage.assume_init() };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Some(secs(u.ru_utime) + secs(u.ru_stime))
}

/// Open file descriptors (entries of `/proc/self/fd`, less the one reading it).
pub fn open_fds() -> Option<u64> {
    let n = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
    Some(n.saturating_sub(1))
}

/// The soft limit of open file descriptors (`RLIMIT_NOFILE`).
pub fn max_fds() -> Option<u64> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes a rlimit into the pointer it is given.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    (rc == 0 && lim.rlim_cur != libc::RLIM_INFINITY).then_some(lim.rlim_cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_os = "linux")]
    fn the_process_reads_itself() {
        assert!(rss_bytes().is_some_and(|b| b > 1 << 20), "{:?}", rss_bytes());
        assert!(cpu_seconds().is_some_and(|s| s >= 0.0));
        let f = std::fs::File::open("/proc/self/statm").unwrap();
        assert!(open_fds().is_some_and(|n| n >= 3));
        drop(f);
        assert!(max_fds().is_some_and(|n| n >= 3));
    }
}
