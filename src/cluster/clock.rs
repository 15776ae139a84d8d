//! Raft's clock, which stops while this process is stopped.
//!
//! openraft times elections with its runtime's `Instant`. A follower that was
//! paused (SIGSTOP, a VM freeze, a long GC-like stall) wakes up with every timer
//! long expired: on its first tick it starts an election with a higher term, and
//! the healthy leader, seeing that term in the follower's replies, steps down — the
//! whole cluster is leaderless for an election or two. Raft's pre-vote would stop
//! that; openraft 0.9 has none. Here the same end is reached from the other side:
//! Raft's clock leaves out the time the process was stopped, so after a pause the
//! follower's election timer still has its whole timeout to run, during which the
//! leader's heartbeats arrive and reset it. A follower that really lost its leader
//! still elects one after a full election timeout of running time.
//!
//! A stall is a gap of more than [`STALL`] between two readings of the monotonic
//! clock, taken every [`TICK`] by a watchdog thread and at every reading Raft makes
//! (so the first reading after a resume accounts for the gap, whichever comes
//! first). A starved watchdog (more than [`STALL`] without running) counts as a
//! stall too: elections are delayed by the starvation, never hastened.
//!
//! Only Raft's timers run on this clock. The fence ([`super::fence`]) and the
//! leader's liveness checks use the real monotonic clock: they must see the pause.

use std::future::Future;
use std::ops::{Add, AddAssign, Sub, SubAssign};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use openraft::{AsyncRuntime, OptionalSend, TokioRuntime};

/// A gap between readings longer than this is a stall of the process.
pub const STALL: Duration = Duration::from_millis(300);
/// How often the watchdog reads the clock.
pub const TICK: Duration = Duration::from_millis(20);

/// The stalls seen so far.
struct Stalls {
    origin: std::time::Instant,
    /// The last reading, in µs since `origin`.
    last_us: AtomicU64,
    /// The stalled time left out of Raft's clock, in µs.
    stalled_us: AtomicU64,
}

impl Stalls {
    /// Reads the real clock, accounting for a stall since the last reading; returns
    /// (real µs since origin, stalled µs).
    fn read(&self) -> (u64, u64) {
        let now = self.origin.elapsed().as_micros() as u64;
        let last = self.last_us.fetch_max(now, Ordering::AcqRel);
        let gap = now.saturating_sub(last);
        if gap > STALL.as_micros() as u64 {
            let left_out = gap - TICK.as_micros() as u64;
            let total = self.stalled_us.fetch_add(left_out, Ordering::AcqRel) + left_out;
            tracing::info!(stalled_ms = gap / 1000, "this process was stalled: Raft's timers leave it out");
            return (now, total);
        }
        (now, self.stalled_us.load(Ordering::Acquire))
    }
}

fn stalls() -> &'static Stalls {
    static STALLS: OnceLock<Stalls> = OnceLock::new();
    STALLS.get_or_init(|| {
        let s = Stalls {
            origin: std::time::Instant::now(),
            last_us: AtomicU64::new(0),
            stalled_us: AtomicU64::new(0),
        };
        std::thread::Builder::new()
            .name("raft-clock".into())
            .spawn(|| {
                loop {
                    std::thread::sleep(TICK);
                    stalls().read();
                }
            })
            .expect("the Raft clock's watchdog thread starts");
        s
    })
}

/// A point on Raft's clock: real monotonic time less the stalls before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RaftInstant(tokio::time::Instant);

impl RaftInstant {
    /// The real instant at which this point of Raft's time falls, given the
    /// stalls so far.
    fn real(self) -> tokio::time::Instant {
        let (_, stalled) = stalls().read();
        self.0 + Duration::from_micros(stalled)
    }
}

impl Add<Duration> for RaftInstant {
    type Output = RaftInstant;
    fn add(self, d: Duration) -> RaftInstant {
        RaftInstant(self.0 + d)
    }
}

impl AddAssign<Duration> for RaftInstant {
    fn add_assign(&mut self, d: Duration) {
        self.0 += d;
    }
}

impl Sub<Duration> for RaftInstant {
    type Output = RaftInstant;
    fn sub(self, d: Duration) -> RaftInstant {
        RaftInstant(self.0 - d)
    }
}

impl SubAssign<Duration> for RaftInstant {
    fn sub_assign(&mut self, d: Duration) {
        self.0 -= d;
    }
}

impl Sub<RaftInstant> for RaftInstant {
    type Output = Duration;
    fn sub(self, other: RaftInstant) -> Duration {
        self.0.saturating_duration_since(other.0)
    }
}

impl openraft::Instant for RaftInstant {
    fn now() -> RaftInstant {
        let s = stalls();
        let (_, stalled) = s.read();
        let real = tokio::time::Instant::now();
        RaftInstant(real.checked_sub(Duration::from_micros(stalled)).unwrap_or(real))
    }
}

/// The Tokio runtime with [`RaftInstant`] as its clock.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PausedClockRuntime;

impl AsyncRuntime for PausedClockRuntime {
    type JoinError = <TokioRuntime as AsyncRuntime>::JoinError;
    type JoinHandle<T: OptionalSend + 'static> = <TokioRuntime as AsyncRuntime>::JoinHandle<T>;
    type Sleep = tokio::time::Sleep;
    type Instant = RaftInstant;
    type TimeoutError = <TokioRuntime as AsyncRuntime>::TimeoutError;
    type Timeout<R, T: Future<Output = R> + OptionalSend> = tokio::time::Timeout<T>;
    type ThreadLocalRng = <TokioRuntime as AsyncRuntime>::ThreadLocalRng;
    type OneshotSender<T: OptionalSend> = <TokioRuntime as AsyncRuntime>::OneshotSender<T>;
    type OneshotReceiverError = <TokioRuntime as AsyncRuntime>::OneshotReceiverError;
    type OneshotReceiver<T: OptionalSend> = <TokioRuntime as AsyncRuntime>::OneshotReceiver<T>;

    fn spawn<T>(future: T) -> Self::JoinHandle<T::Output>
    where
        T: Future + OptionalSend + 'static,
        T::Output: OptionalSend + 'static,
    {
        TokioRuntime::spawn(future)
    }

    fn sleep(duration: Duration) -> Self::Sleep {
        tokio::time::sleep(duration)
    }

    fn sleep_until(deadline: RaftInstant) -> Self::Sleep {
        tokio::time::sleep_until(deadline.real())
    }

    fn timeout<R, F: Future<Output = R> + OptionalSend>(
        duration: Duration,
        future: F,
    ) -> Self::Timeout<R, F> {
        tokio::time::timeout(duration, future)
    }

    fn timeout_at<R, F: Future<Output = R> + OptionalSend>(
        deadline: RaftInstant,
        future: F,
    ) -> Self::Timeout<R, F> {
        tokio::time::timeout_at(deadline.real(), future)
    }

    fn is_panic(join_error: &Self::JoinError) -> bool {
        TokioRuntime::is_panic(join_error)
    }

    fn thread_rng() -> Self::ThreadLocalRng {
        TokioRuntime::thread_rng()
    }

    fn oneshot<T>() -> (Self::OneshotSender<T>, Self::OneshotReceiver<T>)
    where
        T: OptionalSend,
    {
        TokioRuntime::oneshot()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raft_clock_leaves_out_a_stall_and_runs_otherwise() {
        let s = Stalls {
            origin: std::time::Instant::now() - Duration::from_secs(10),
            last_us: AtomicU64::new(1_000_000),
            stalled_us: AtomicU64::new(0),
        };
        // 9 s since the last reading: a stall, left out less one tick
        let (_, stalled) = s.read();
        assert!(stalled >= 8_900_000, "stalled {stalled} µs");
        // read again at once: no new stall
        let (_, again) = s.read();
        assert_eq!(again, stalled);
    }

    #[test]
    fn raft_clock_is_monotonic_and_close_to_real_time_without_stalls() {
        use openraft::Instant as _;
        let a = RaftInstant::now();
        std::thread::sleep(Duration::from_millis(30));
        let b = RaftInstant::now();
        assert!(b > a);
        assert!(b - a >= Duration::from_millis(30));
        assert!(b - a < STALL, "{:?}", b - a);
    }
}
