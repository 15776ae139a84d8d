//! Admission limits, checked when a client says HELLO: joined sessions per node and
//! per source IP address, and a rate limit on failed authentications per source IP.
//!
//! A session holds a [`Seat`] from its HELLO until it leaves (or its authentication
//! fails); dropping the seat gives it back, so a connection that dies at any point
//! never leaks a count. Failed authentications are counted per source IP in a fixed
//! window; an IP that reached the limit is refused at HELLO until its window ends.
//! A handshake counts as a possible failure from its HELLO until it succeeds, so
//! opening many handshakes at once cannot run more guesses than the limit; one
//! abandoned before WELCOME counts as failed.
//! At most `auth_failure_tracked_ips` addresses are tracked: when the table is full,
//! expired windows are dropped first, then the oldest window.
//!
//! IPv6 addresses count per /64 (one host usually owns a whole /64), IPv4-mapped
//! IPv6 addresses as their IPv4 address. Connections without an IP address (Unix
//! sockets) count towards the node's total only.
//!
//! Refusals are ABORTs with Junction URIs ([`TOO_MANY_SESSIONS`], [`RATE_LIMITED`]).
//! Time is passed in (`now`), so the rate limiter is tested without sleeping.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::handle::lock;
use crate::config::Limits;

/// ABORT reason: the node or the client's source IP has as many sessions as allowed.
pub const TOO_MANY_SESSIONS: &str = "junction.error.too_many_sessions";
/// ABORT reason: too many failed authentications from the client's source IP.
pub const RATE_LIMITED: &str = "junction.error.rate_limited";
/// ERROR for a CALL: the caller has as many calls in flight as allowed.
pub use crate::wamp::errors::TOO_MANY_PENDING_CALLS;
/// ABORT reason: the connection did not complete the WAMP handshake in time.
pub const HANDSHAKE_TIMEOUT: &str = "junction.error.handshake_timeout";
/// ERROR for a SUBSCRIBE: the session holds `max_subscriptions_per_session`.
pub const TOO_MANY_SUBSCRIPTIONS: &str = "junction.error.too_many_subscriptions";
/// ERROR for a REGISTER: the session holds `max_registrations_per_session`.
pub const TOO_MANY_REGISTRATIONS: &str = "junction.error.too_many_registrations";
/// ERROR for `wamp.session.add_testament`: the session holds `max_testaments_per_session`.
pub const TOO_MANY_TESTAMENTS: &str = "junction.error.too_many_testaments";
/// ERROR for an acknowledged PUBLISH with `retain`: the event was delivered but is
/// larger than `max_retained_bytes`, so not retained.
pub const RETAINED_EVENT_TOO_LARGE: &str = "junction.error.retained_event_too_large";

/// Why a HELLO is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// `max_sessions` sessions are joined on this node.
    NodeFull(usize),
    /// `max_sessions_per_ip` sessions come from the client's address.
    AddressFull(usize),
    /// The client's address failed to authenticate too often; retry after this long.
    RateLimited(Duration),
}

impl Refusal {
    /// The ABORT reason.
    pub fn uri(self) -> &'static str {
        match self {
            Refusal::NodeFull(_) | Refusal::AddressFull(_) => TOO_MANY_SESSIONS,
            Refusal::RateLimited(_) => RATE_LIMITED,
        }
    }

    /// The ABORT's human-readable message.
    pub fn message(self) -> String {
        match self {
            Refusal::NodeFull(n) => format!("this router node serves at most {n} sessions"),
            Refusal::AddressFull(n) => format!("at most {n} sessions per client address"),
            Refusal::RateLimited(d) => format!(
                "too many failed authentications from this address; retry in {} s",
                d.as_secs_f64().ceil() as u64
            ),
        }
    }
}

/// The admission state of one node.
pub struct Admission {
    max_sessions: usize,
    max_per_ip: usize,
    seats: Mutex<Seats>,
    failures: Mutex<AuthFailures>,
}

#[derive(Default)]
struct Seats {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// A session's place in the node's session counts; given back when dropped.
pub struct Seat {
    admission: Arc<Admission>,
    ip: Option<IpAddr>,
    /// The address whose handshake is in progress (counted against its failures).
    attempt: Option<IpAddr>,
}

impl Seat {
    /// The handshake succeeded: it no longer counts against the address.
    pub fn authenticated(&mut self) {
        if let Some(ip) = self.attempt.take() {
            lock(&self.admission.failures).settle(ip, None);
        }
    }

    /// The handshake failed at `now`: the address's failures grow by one.
    pub fn failed(mut self, now: Instant) {
        if let Some(ip) = self.attempt.take() {
            lock(&self.admission.failures).settle(ip, Some(now));
        }
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        if let Some(ip) = self.attempt.take() {
            lock(&self.admission.failures).settle(ip, Some(Instant::now()));
        }
        let mut seats = lock(&self.admission.seats);
        seats.total -= 1;
        if let Some(ip) = self.ip
            && let Some(n) = seats.per_ip.get_mut(&ip)
        {
            *n -= 1;
            if *n == 0 {
                seats.per_ip.remove(&ip);
            }
        }
    }
}

impl Admission {
    /// Admission state for these limits.
    pub fn new(limits: &Limits) -> Arc<Admission> {
        Arc::new(Admission {
            max_sessions: limits.max_sessions,
            max_per_ip: limits.max_sessions_per_ip,
            seats: Mutex::default(),
            failures: Mutex::new(AuthFailures::new(
                limits.auth_failures_per_ip,
                Duration::from_millis(limits.auth_failure_window_ms),
                limits.auth_failure_tracked_ips,
            )),
        })
    }

    /// Admits a HELLO from `peer`: refused while the address is rate limited or the
    /// node or the address is full; otherwise a seat the session keeps while joined.
    pub fn admit(self: &Arc<Self>, peer: Option<IpAddr>, now: Instant) -> Result<Seat, Refusal> {
        let ip = peer.map(address_key);
        let mut failures = lock(&self.failures);
        if let Some(ip) = ip
            && let Some(wait) = failures.blocked(ip, now)
        {
            return Err(Refusal::RateLimited(wait));
        }
        let mut seats = lock(&self.seats);
        if self.max_sessions > 0 && seats.total >= self.max_sessions {
            return Err(Refusal::NodeFull(self.max_sessions));
        }
        if let Some(ip) = ip {
            let n = seats.per_ip.entry(ip).or_default();
            if self.max_per_ip > 0 && *n >= self.max_per_ip {
                return Err(Refusal::AddressFull(self.max_per_ip));
            }
            *n += 1;
        }
        seats.total += 1;
        let attempt = ip.filter(|_| failures.limit > 0);
        if let Some(ip) = attempt {
            *failures.pending.entry(ip).or_default() += 1;
        }
        Ok(Seat { admission: self.clone(), ip, attempt })
    }

    /// Sessions holding a seat (joined or authenticating).
    pub fn seated(&self) -> usize {
        lock(&self.seats).total
    }
}

/// The address a limit counts under: IPv4 as is (also when IPv4-mapped), IPv6 by /64.
fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(v6.to_bits() & !((1u128 << 64) - 1))),
        },
    }
}

/// Failed authentications per address, in fixed windows, for a bounded set of addresses.
struct AuthFailures {
    limit: u32,
    window: Duration,
    capacity: usize,
    windows: HashMap<IpAddr, Window>,
    /// Handshakes in progress per address (each holds a seat, so this is bounded too).
    pending: HashMap<IpAddr, u32>,
}

/// How long a client is told to wait when its handshakes in progress use up its
/// failure budget (they end within the handshake timeout).
const PENDING_RETRY: Duration = Duration::from_secs(1);

#[derive(Clone, Copy)]
struct Window {
    start: Instant,
    failures: u32,
}

impl AuthFailures {
    fn new(limit: u32, window: Duration, capacity: usize) -> Self {
        AuthFailures { limit, window, capacity, windows: HashMap::new(), pending: HashMap::new() }
    }

    /// How long `ip` stays refused, if it is.
    /// Failures in the current window and handshakes in progress both count.
    fn blocked(&mut self, ip: IpAddr, now: Instant) -> Option<Duration> {
        if self.limit == 0 {
            return None;
        }
        let pending = self.pending.get(&ip).copied().unwrap_or(0);
        let (failures, end) = match self.windows.get(&ip).copied() {
            Some(w) if now < w.start + self.window => (w.failures, Some(w.start + self.window)),
            Some(_) => {
                self.windows.remove(&ip);
                (0, None)
            }
            None => (0, None),
        };
        (failures.saturating_add(pending) >= self.limit).then(|| end.map_or(PENDING_RETRY, |e| e - now))
    }

    /// A handshake from `ip` ended: successfully (`None`) or failed at the instant given.
    fn settle(&mut self, ip: IpAddr, failed_at: Option<Instant>) {
        if let Some(n) = self.pending.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.pending.remove(&ip);
            }
        }
        if let Some(now) = failed_at {
            self.record(ip, now);
        }
    }

    fn record(&mut self, ip: IpAddr, now: Instant) {
        if self.limit == 0 {
            return;
        }
        if !self.windows.contains_key(&ip) && self.windows.len() >= self.capacity {
            self.make_room(now);
        }
        let window = self.window;
        let w = self.windows.entry(ip).or_insert(Window { start: now, failures: 0 });
        if now >= w.start + window {
            *w = Window { start: now, failures: 0 };
        }
        w.failures = w.failures.saturating_add(1);
    }

    /// Drops expired windows, or else the oldest one.
    fn make_room(&mut self, now: Instant) {
        let window = self.window;
        self.windows.retain(|_, w| now < w.start + window);
        if self.windows.len() >= self.capacity
            && let Some(oldest) = self.windows.iter().min_by_key(|(_, w)| w.start).map(|(ip, _)| *ip)
        {
            self.windows.remove(&oldest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max: usize, per_ip: usize, failures: u32, tracked: usize) -> Limits {
        Limits {
            max_sessions: max,
            max_sessions_per_ip: per_ip,
            auth_failures_per_ip: failures,
            auth_failure_window_ms: 60_000,
            auth_failure_tracked_ips: tracked,
            ..Limits::default()
        }
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().expect("address"))
    }

    #[test]
    fn sessions_per_node_and_per_address() {
        let a = Admission::new(&limits(3, 2, 0, 1));
        let now = Instant::now();
        let s1 = a.admit(ip("10.0.0.1"), now).expect("first");
        let _s2 = a.admit(ip("10.0.0.1"), now).expect("second");
        assert_eq!(a.admit(ip("10.0.0.1"), now).err(), Some(Refusal::AddressFull(2)));
        let _s3 = a.admit(None, now).expect("a unix socket counts for the node only");
        assert_eq!(a.admit(ip("10.0.0.2"), now).err(), Some(Refusal::NodeFull(3)));
        drop(s1);
        assert_eq!(a.seated(), 2);
        let _s4 = a.admit(ip("10.0.0.1"), now).expect("a seat given back is free again");
        assert_eq!(a.admit(ip("10.0.0.2"), now).err().map(Refusal::uri), Some(TOO_MANY_SESSIONS));
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let a = Admission::new(&limits(0, 1, 0, 1));
        let now = Instant::now();
        let _s = a.admit(ip("2001:db8:1:2::1"), now).expect("first");
        assert!(a.admit(ip("2001:db8:1:2::ffff"), now).is_err(), "same /64");
        let _t = a.admit(ip("2001:db8:1:3::1"), now).expect("another /64");
        let _u = a.admit(ip("192.0.2.1"), now).expect("v4");
        assert!(a.admit(ip("::ffff:192.0.2.1"), now).is_err(), "mapped v4 is the same address");
    }

    #[test]
    fn failures_rate_limit_an_address_until_the_window_ends() {
        let a = Admission::new(&limits(0, 0, 3, 100));
        let t0 = Instant::now();
        let bad = ip("10.0.0.9");
        for i in 0..3 {
            a.admit(bad, t0).expect("admitted").failed(t0 + Duration::from_secs(i));
        }
        let refused = a.admit(bad, t0 + Duration::from_secs(10)).err();
        assert_eq!(refused, Some(Refusal::RateLimited(Duration::from_secs(50))));
        assert_eq!(refused.map(Refusal::uri), Some(RATE_LIMITED));
        assert!(refused.is_some_and(|r| r.message().contains("retry in 50 s")));
        a.admit(ip("10.0.0.10"), t0).expect("other addresses are not affected").authenticated();
        let mut later = a.admit(bad, t0 + Duration::from_secs(60)).expect("the window ended");
        later.authenticated();
        a.admit(bad, t0 + Duration::from_secs(61)).expect("admitted").failed(t0 + Duration::from_secs(61));
        assert!(a.admit(bad, t0 + Duration::from_secs(62)).is_ok(), "a new window counts from zero");
    }

    #[test]
    fn handshakes_in_progress_count_against_the_failure_limit() {
        let a = Admission::new(&limits(0, 0, 3, 100));
        let t0 = Instant::now();
        let bad = ip("10.0.0.9");
        let mut open: Vec<Seat> = (0..3).map(|_| a.admit(bad, t0).expect("admitted")).collect();
        let refused = a.admit(bad, t0).err();
        assert_eq!(refused, Some(Refusal::RateLimited(PENDING_RETRY)), "three guesses already in flight");
        open[0].authenticated();
        let _joined = a.admit(bad, t0).expect("a handshake that succeeded frees its place");
        assert!(a.admit(bad, t0).is_err());
        open.pop().expect("seat").failed(t0);
        assert!(a.admit(bad, t0).is_err(), "a failure takes the place of the handshake");
        open.pop().expect("seat");
        let refused = a.admit(bad, t0 + Duration::from_secs(1)).err();
        assert!(
            matches!(refused, Some(Refusal::RateLimited(d)) if d > Duration::from_secs(50)),
            "a handshake abandoned before WELCOME counts as failed: {refused:?}"
        );
        assert!(a.admit(ip("10.0.0.10"), t0).is_ok(), "other addresses are not affected");
    }

    #[test]
    fn tracked_addresses_are_bounded() {
        let mut f = AuthFailures::new(2, Duration::from_secs(60), 3);
        let t0 = Instant::now();
        let addr = |i: u8| IpAddr::from([10, 0, 0, i]);
        for i in 0..3 {
            f.record(addr(i), t0 + Duration::from_secs(u64::from(i)));
            f.record(addr(i), t0 + Duration::from_secs(u64::from(i)));
        }
        f.record(addr(9), t0 + Duration::from_secs(5));
        assert_eq!(f.windows.len(), 3);
        assert!(f.blocked(addr(0), t0 + Duration::from_secs(6)).is_none(), "the oldest was dropped");
        assert!(f.blocked(addr(1), t0 + Duration::from_secs(6)).is_some());
        for i in 10..50 {
            f.record(addr(i), t0 + Duration::from_secs(200));
        }
        assert_eq!(f.windows.len(), 3, "expired windows make room, the table never grows past its cap");
    }

    #[test]
    fn zero_disables_each_limit() {
        let a = Admission::new(&limits(0, 0, 0, 1));
        let now = Instant::now();
        let mut seats: Vec<_> = (0..200).map(|_| a.admit(ip("10.0.0.1"), now).expect("no limit")).collect();
        for seat in seats.drain(..100) {
            seat.failed(now);
        }
        assert!(a.admit(ip("10.0.0.1"), now).is_ok());
        assert_eq!(seats.len(), 100);
    }
}
