//! Retained events (PUBLISH.Options.retain), as kept by every node since cluster
//! design v2: the publishing node stamps the event and sends it on the links; every
//! node keeps, per realm, one event per topic in a [`RetainedSet`].
//!
//! - **Last writer wins** by [`Stamp`]: (publish time, publishing node). The time is
//!   a hybrid clock ([`Clock`]): wall-clock microseconds, but always past every
//!   stamp this node issued or received, so a publication made after a node learned
//!   of another one replaces it even when the two nodes' clocks disagree. The node
//!   id breaks ties, so every node picks the same winner whatever order the events
//!   arrive in (a merge is commutative and idempotent).
//! - **Bounded** per realm ([`Bounds`]): at most `max_events` events of at most
//!   `max_bytes` ([`RetainedEvent::size`]); past a bound the *oldest by stamp* go
//!   first, so nodes holding the same events keep the same ones. An event larger than
//!   `max_bytes` by itself is never kept.

use std::collections::{BTreeSet, HashMap};

use crate::ids::NodeId;

/// When and where a retained event was published: the order of last-writer-wins.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Stamp {
    /// Hybrid clock time, microseconds since the Unix epoch ([`Clock`]).
    pub time_us: u64,
    /// The publishing node.
    pub node: NodeId,
}

/// A retained event: what a new subscriber with `get_retained` receives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetainedEvent {
    /// Its place in last-writer-wins.
    pub stamp: Stamp,
    /// The publication id.
    pub publication: u64,
    /// EVENT.Details common to all subscribers, neutral-encoded.
    pub details: Vec<u8>,
    /// Args and kwargs, neutral-encoded.
    pub payload: Vec<u8>,
    /// Black/white listing rules of the publication (PUBLISH options),
    /// neutral-encoded: a retained event reaches only the subscribers the original
    /// one could reach.
    pub audience: Vec<u8>,
}

impl RetainedEvent {
    /// What the event counts against [`Bounds::max_bytes`], with its topic.
    pub fn size(&self, topic: &str) -> u64 {
        (topic.len() + self.details.len() + self.payload.len() + self.audience.len()) as u64
    }
}

/// The per-realm bounds (`limits.max_retained_events`, `limits.max_retained_bytes`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounds {
    /// Events kept per realm.
    pub max_events: u64,
    /// Total [`RetainedEvent::size`] kept per realm.
    pub max_bytes: u64,
}

/// What became of an offered event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Offered {
    /// Kept as its topic's retained event.
    Kept,
    /// Not kept: the topic has a newer (or the same) event, or it is older than
    /// everything the bounds leave room for.
    Stale,
    /// Not kept: larger than [`Bounds::max_bytes`] by itself.
    TooLarge,
}

/// The retained events of one realm, one per topic.
#[derive(Clone, Debug, Default)]
pub struct RetainedSet {
    by_topic: HashMap<String, RetainedEvent>,
    /// (stamp, topic) of every event, oldest first.
    order: BTreeSet<(Stamp, String)>,
    bytes: u64,
}

impl RetainedSet {
    /// Merges `event` as the retained event of `topic`: kept when newer than the
    /// topic's current one; then the oldest events are dropped until `bounds` hold.
    pub fn offer(&mut self, topic: &str, event: RetainedEvent, bounds: Bounds) -> Offered {
        let size = event.size(topic);
        if size > bounds.max_bytes || bounds.max_events == 0 {
            return Offered::TooLarge;
        }
        if self.by_topic.get(topic).is_some_and(|old| old.stamp >= event.stamp) {
            return Offered::Stale;
        }
        if let Some(old) = self.by_topic.remove(topic) {
            self.order.remove(&(old.stamp, topic.to_owned()));
            self.bytes -= old.size(topic);
        }
        let stamp = event.stamp;
        self.order.insert((stamp, topic.to_owned()));
        self.bytes += size;
        self.by_topic.insert(topic.to_owned(), event);
        while self.by_topic.len() as u64 > bounds.max_events || self.bytes > bounds.max_bytes {
            let Some((_, oldest)) = self.order.pop_first() else { break };
            if let Some(gone) = self.by_topic.remove(&oldest) {
                self.bytes -= gone.size(&oldest);
            }
        }
        if self.by_topic.get(topic).is_some_and(|e| e.stamp == stamp) {
            Offered::Kept
        } else {
            Offered::Stale
        }
    }

    /// The events by topic.
    pub fn events(&self) -> &HashMap<String, RetainedEvent> {
        &self.by_topic
    }

    /// How many events are kept, and their total size.
    pub fn usage(&self) -> (usize, u64) {
        (self.by_topic.len(), self.bytes)
    }
}

/// A node's hybrid clock for [`Stamp::time_us`]: never behind the wall clock, and
/// always past every stamp it issued or saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Clock {
    last: u64,
}

impl Clock {
    /// The time of a new publication at wall-clock `now_us`.
    pub fn tick(&mut self, now_us: u64) -> u64 {
        self.last = now_us.max(self.last + 1);
        self.last
    }

    /// Takes note of a stamp from another node.
    pub fn observe(&mut self, time_us: u64) {
        self.last = self.last.max(time_us);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(time_us: u64, node: u64, payload_len: usize) -> RetainedEvent {
        RetainedEvent {
            stamp: Stamp { time_us, node: NodeId(node) },
            publication: time_us,
            details: Vec::new(),
            payload: vec![0; payload_len],
            audience: Vec::new(),
        }
    }

    const WIDE: Bounds = Bounds { max_events: 100, max_bytes: u64::MAX };

    fn topics(s: &RetainedSet) -> Vec<String> {
        let mut t: Vec<String> = s.events().keys().cloned().collect();
        t.sort();
        t
    }

    fn publication(s: &RetainedSet, topic: &str) -> Option<u64> {
        s.events().get(topic).map(|e| e.publication)
    }

    #[test]
    fn the_newest_stamp_wins_whatever_the_arrival_order() {
        let events = [event(10, 1, 1), event(30, 2, 1), event(30, 1, 1), event(20, 3, 1)];
        let mut forward = RetainedSet::default();
        let mut backward = RetainedSet::default();
        for e in &events {
            forward.offer("t", e.clone(), WIDE);
        }
        for e in events.iter().rev() {
            backward.offer("t", e.clone(), WIDE);
        }
        let winner = Some(Stamp { time_us: 30, node: NodeId(2) });
        assert_eq!(forward.events().get("t").map(|e| e.stamp), winner);
        assert_eq!(backward.events().get("t").map(|e| e.stamp), winner, "the node id breaks the tie");
    }

    #[test]
    fn an_older_or_repeated_event_is_stale() {
        let mut s = RetainedSet::default();
        assert_eq!(s.offer("t", event(20, 1, 1), WIDE), Offered::Kept);
        assert_eq!(s.offer("t", event(20, 1, 1), WIDE), Offered::Stale);
        assert_eq!(s.offer("t", event(10, 9, 1), WIDE), Offered::Stale);
        assert_eq!(publication(&s, "t"), Some(20));
        assert_eq!(s.usage(), (1, 2));
    }

    #[test]
    fn beyond_the_count_the_oldest_go() {
        let mut s = RetainedSet::default();
        let bounds = Bounds { max_events: 3, max_bytes: u64::MAX };
        for (t, topic) in [(1, "a"), (2, "b"), (3, "c"), (4, "a"), (5, "d")] {
            s.offer(topic, event(t, 1, 10), bounds);
        }
        // "a" was retained again after "b" and "c": "b" is the oldest when "d" comes
        assert_eq!(topics(&s), ["a", "c", "d"]);
        assert_eq!(s.usage(), (3, 33));
        // an event older than all three kept does not push a newer one out
        assert_eq!(s.offer("z", event(0, 1, 10), bounds), Offered::Stale);
        assert_eq!(topics(&s), ["a", "c", "d"]);
    }

    #[test]
    fn beyond_the_bytes_the_oldest_go() {
        let mut s = RetainedSet::default();
        let bounds = Bounds { max_events: 100, max_bytes: 250 };
        for (t, topic) in [(1, "a"), (2, "b"), (3, "c")] {
            s.offer(topic, event(t, 1, 99), bounds);
        }
        assert_eq!(topics(&s), ["b", "c"]);
        s.offer("c", event(4, 1, 9), bounds);
        s.offer("d", event(5, 1, 99), bounds);
        assert_eq!(topics(&s), ["b", "c", "d"]);
        assert_eq!(s.usage(), (3, 210));
    }

    #[test]
    fn an_event_larger_than_the_bound_changes_nothing() {
        let mut s = RetainedSet::default();
        let bounds = Bounds { max_events: 100, max_bytes: 100 };
        s.offer("a", event(1, 1, 10), bounds);
        assert_eq!(s.offer("a", event(2, 1, 200), bounds), Offered::TooLarge);
        assert_eq!(publication(&s, "a"), Some(1));
    }

    #[test]
    fn nodes_merging_the_same_events_keep_the_same_ones() {
        let bounds = Bounds { max_events: 2, max_bytes: u64::MAX };
        let all =
            [("a", event(1, 1, 1)), ("b", event(2, 2, 1)), ("c", event(3, 1, 1)), ("a", event(4, 2, 1))];
        let mut one = RetainedSet::default();
        let mut two = RetainedSet::default();
        for (topic, e) in &all {
            one.offer(topic, e.clone(), bounds);
        }
        for (topic, e) in all.iter().rev() {
            two.offer(topic, e.clone(), bounds);
        }
        assert_eq!(topics(&one), ["a", "c"]);
        assert_eq!(one.events(), two.events());
    }

    #[test]
    fn the_clock_runs_past_what_it_issued_and_saw() {
        let mut c = Clock::default();
        assert_eq!(c.tick(100), 100);
        assert_eq!(c.tick(100), 101, "two publications in one microsecond");
        c.observe(500);
        assert_eq!(c.tick(200), 501, "a remote stamp ahead of the wall clock");
        assert_eq!(c.tick(1000), 1000);
    }
}
