//! Self-fencing: a node that may have been declared down starts no invocation and
//! delivers no event that came over a link until it has caught up with the cluster.
//!
//! The leader declares a node down after `lease_ms` without an answer. So a node
//! that has no *proof* of contact with a quorum for three quarters of the lease
//! (see [`crate::dealer::fence_start`]) fences itself: by then the others may be
//! about to give its work away (a `single` registration to a standby, its calls
//! answered `wamp.error.canceled`). Proof of contact:
//! - on a follower or learner, an `AppendEntries` the leader sent, counted from when
//!   the leader *sent* it (a wall-clock stamp on the RPC; a request that waited in a
//!   socket buffer while this process was paused proves nothing new);
//! - on the leader, acknowledgements from a quorum of voters, counted from when the
//!   acknowledged requests were sent;
//! - a node that is the only voter is never fenced.
//!
//! Leaving the fence needs more than contact: the node must also have applied the
//! log up to the commit index the leader sent with that contact — which holds the
//! `Down` entry if the cluster declared this node down meanwhile, so its routing
//! entries are gone (and its sessions end) before it routes again.
//!
//! The check is made when it matters, from stored instants ([`Fence::is_fenced`]);
//! nothing has to run on time for it to hold after a pause.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A node's fence.
#[derive(Debug)]
pub struct Fence {
    /// What the stored instants count from.
    origin: Instant,
    /// Without proof of contact this long, the node fences itself.
    after: Duration,
    /// The last proven contact with a quorum, in ms since `origin`.
    contact_ms: AtomicU64,
    /// True while fenced (until caught up after contact resumed).
    latched: AtomicBool,
    /// The only voter: never fenced.
    alone: AtomicBool,
    /// While fenced: the commit index to apply before the fence lifts, once a
    /// contact told it.
    need: Mutex<Option<u64>>,
}

impl Fence {
    /// A fence for a node whose cluster declares nodes down after `lease`; the node
    /// counts as in contact when it starts.
    pub fn new(lease: Duration, now: Instant) -> Fence {
        Fence {
            origin: now,
            after: crate::dealer::fence_start(lease),
            contact_ms: AtomicU64::new(0),
            latched: AtomicBool::new(false),
            alone: AtomicBool::new(false),
            need: Mutex::new(None),
        }
    }

    fn ms(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.origin).as_millis() as u64
    }

    /// Proof of contact with a quorum as of `at`, learnt at `now`, from a leader
    /// whose commit index was `commit` (0 on the leader itself). A contact that
    /// ends a silence longer than the fence raises it first, so it lifts only once
    /// the node has applied up to `commit`.
    pub fn contact(&self, at: Instant, now: Instant, commit: u64) {
        let before = self.contact_ms.fetch_max(self.ms(at), Ordering::Relaxed);
        let ends_silence = self.ms(now).saturating_sub(before) > self.after.as_millis() as u64;
        if ends_silence {
            self.latched.store(true, Ordering::Release);
        }
        if self.latched.load(Ordering::Acquire) {
            // the contact that ends a silence sets the index to reach; later ones
            // do not raise it, or a cluster that keeps writing would keep a node
            // that applies a moment behind the leader fenced
            let mut need = self.need.lock().unwrap_or_else(|e| e.into_inner());
            if ends_silence || need.is_none() {
                *need = Some(commit);
            }
        }
    }

    /// Whether this node is the only voter.
    pub fn set_alone(&self, alone: bool) {
        self.alone.store(alone, Ordering::Relaxed);
    }

    /// True when the node must start no invocation and deliver no linked event at
    /// `now`; `applied` tells how far it applied the log (asked only while fenced).
    pub fn is_fenced(&self, now: Instant, applied: impl FnOnce() -> u64) -> bool {
        if self.alone.load(Ordering::Relaxed) {
            return false;
        }
        let stale = self.ms(now).saturating_sub(self.contact_ms.load(Ordering::Relaxed))
            > self.after.as_millis() as u64;
        if stale {
            if !self.latched.swap(true, Ordering::AcqRel) {
                tracing::warn!(after_ms = self.after.as_millis() as u64, "no contact with a quorum: fenced");
            }
            return true;
        }
        if !self.latched.load(Ordering::Acquire) {
            return false;
        }
        let mut need = self.need.lock().unwrap_or_else(|e| e.into_inner());
        match *need {
            Some(index) if applied() >= index => {
                *need = None;
                self.latched.store(false, Ordering::Release);
                tracing::info!(index, "in contact with a quorum and caught up: fence lifted");
                false
            }
            _ => true,
        }
    }
}

/// When a peer's AppendEntries was sent, from its wall-clock stamp `sent_ms` (Unix
/// ms, 0 for none): `now` less the time it travelled, as far as the clocks tell.
pub fn sent_instant(now: Instant, sent_ms: u64, now_unix_ms: u64) -> Instant {
    let age = Duration::from_millis(now_unix_ms.saturating_sub(sent_ms));
    if sent_ms == 0 { now } else { now.checked_sub(age).unwrap_or(now) }
}

/// Wall-clock time in Unix milliseconds.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// On the leader: when a quorum of the voters last acknowledged, from when each
/// other voter's last acknowledged AppendEntries was sent (`None`: none yet).
/// `voters` counts this node.
pub fn quorum_contact(now: Instant, voters: usize, mut acked: Vec<Option<Instant>>) -> Option<Instant> {
    let others_needed = (voters / 2 + 1).saturating_sub(1);
    if others_needed == 0 {
        return Some(now);
    }
    acked.sort_unstable_by(|a, b| b.cmp(a));
    acked.get(others_needed - 1).copied().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: Duration = Duration::from_millis(2000);

    #[test]
    fn fence_rises_without_contact_and_lifts_only_when_caught_up() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let f = Fence::new(LEASE, t0);
        f.contact(at(100), at(100), 5);
        assert!(!f.is_fenced(at(1500), || 5));
        assert!(f.is_fenced(at(1700), || 5), "1.5 s without contact: fenced");
        // a contact resumes, the leader's commit index is 9: not until applied
        f.contact(at(6000), at(6000), 9);
        assert!(f.is_fenced(at(6001), || 8));
        assert!(!f.is_fenced(at(6002), || 9));
        assert!(!f.is_fenced(at(6003), || 8), "once lifted, applying may lag again");
    }

    #[test]
    fn fence_a_contact_sent_before_a_pause_proves_nothing_new() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let f = Fence::new(LEASE, t0);
        f.contact(at(1000), at(1000), 3);
        assert!(f.is_fenced(at(7000), || 3));
        // read after the pause, sent before it
        let sent = sent_instant(at(7000), 1_000_000, 1_006_000);
        f.contact(sent, at(7000), 3);
        assert!(f.is_fenced(at(7001), || 3));
    }

    #[test]
    fn fence_a_fresh_contact_after_a_silence_waits_for_the_log_even_unchecked() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let f = Fence::new(LEASE, t0);
        // nobody asked during the silence; the first thing seen is a fresh contact
        f.contact(at(6000), at(6000), 12);
        assert!(f.is_fenced(at(6001), || 11), "the Down entry may be in 12");
        assert!(!f.is_fenced(at(6002), || 12));
    }

    #[test]
    fn fence_lifts_at_the_commit_index_of_the_contact_that_ended_the_silence() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let f = Fence::new(LEASE, t0);
        assert!(f.is_fenced(at(3000), || 0));
        f.contact(at(6000), at(6000), 12);
        // the cluster keeps writing: each later contact brings a higher commit
        // index, which the node applies a moment after it; the fence must not
        // chase them
        f.contact(at(6100), at(6100), 13);
        f.contact(at(6200), at(6200), 14);
        assert!(!f.is_fenced(at(6201), || 13), "caught up with the contact that ended the silence");
    }

    #[test]
    fn fence_a_second_silence_waits_for_the_contact_that_ends_it() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let f = Fence::new(LEASE, t0);
        f.contact(at(6000), at(6000), 12);
        // never asked, so never lifted; a second silence, then a contact at 30
        f.contact(at(9000), at(9000), 30);
        assert!(f.is_fenced(at(9001), || 12), "the Down entry may be in 30");
        assert!(!f.is_fenced(at(9002), || 30));
    }

    #[test]
    fn fence_a_lone_voter_is_never_fenced() {
        let t0 = Instant::now();
        let f = Fence::new(LEASE, t0);
        f.set_alone(true);
        assert!(!f.is_fenced(t0 + Duration::from_secs(60), || 0));
    }

    #[test]
    fn fence_leader_contact_is_the_quorums_oldest_needed_ack() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        assert_eq!(quorum_contact(at(9), 1, vec![]), Some(at(9)));
        assert_eq!(quorum_contact(at(9), 3, vec![Some(at(5)), None]), Some(at(5)));
        assert_eq!(quorum_contact(at(9), 3, vec![None, None]), None);
        assert_eq!(quorum_contact(at(9), 5, vec![Some(at(5)), Some(at(7)), Some(at(1)), None]), Some(at(5)));
    }
}
