//! Interest changes paced one batch in flight per node: what a node tells another of
//! its subscription interest (and its acknowledged retained events) waits while the
//! last batch that asked for an acknowledgement is unanswered, and goes as one batch
//! when the answer comes.
//!
//! A new-topic SUBSCRIBE on a node of a cluster costs a link frame to every other
//! node and an acknowledgement back. Sent as each is made, the frames of many
//! sessions subscribing at once went one or two per socket write, and on every node
//! each write and each read (a system call, a wake-up of the peer's connection
//! task) cost far more than the frame. Held back while one change per peer is
//! unanswered, the changes made meanwhile leave together when the answer comes: an
//! idle link sends a change at once, a busy one sends batches as large as the
//! changes made during one round trip — the same adaptive batching as a group commit,
//! with no timer on the path.
//!
//! Order is kept: a change is held whenever an earlier one to that node is, and the
//! held changes leave in the order they were offered. Acknowledgements themselves
//! are never paced (two nodes waiting on each other's held acknowledgements would
//! stall). A peer that does not answer holds the changes for at most [`HOLD_LIMIT`]:
//! the next change offered after it, or [`Pacing::overdue`], sends them anyway. When
//! the link to a node is lost, [`Pacing::lost`] returns what was held, to be sent
//! (or fail) in order like the rest.
//!
//! Plain state: the caller sends what the methods return, in order, under the same
//! lock that guards this, so no other change can slip between them.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::LinkMsg;
use crate::ids::NodeId;

/// How long changes are held behind an unanswered one at most.
pub const HOLD_LIMIT: Duration = Duration::from_millis(20);

/// The changes to one node: the last one sent that asked for an acknowledgement and
/// is not answered yet (with when it was sent), and what waits behind it.
#[derive(Default)]
struct Lane {
    unanswered: Option<(u64, Instant)>,
    held: Vec<LinkMsg>,
}

impl Lane {
    /// True while an unanswered change holds back the ones after it at `now`.
    fn holds(&self, now: Instant) -> bool {
        self.unanswered.is_some_and(|(_, sent)| now.saturating_duration_since(sent) < HOLD_LIMIT)
    }

    /// Sends what is held and then `next`: returns them, and waits for the last of
    /// them that asks for an acknowledgement.
    fn release(&mut self, next: Option<LinkMsg>, now: Instant) -> Vec<LinkMsg> {
        let mut out = std::mem::take(&mut self.held);
        out.extend(next);
        self.unanswered = out.iter().rev().find_map(acknowledged_under).map(|seq| (seq, now));
        out
    }
}

/// The number a change asks to be acknowledged under, if it does.
pub fn acknowledged_under(msg: &LinkMsg) -> Option<u64> {
    match msg {
        LinkMsg::Interest { seq, .. } | LinkMsg::Retained { seq, .. } if *seq > 0 => Some(*seq),
        _ => None,
    }
}

/// The changes held per node.
#[derive(Default)]
pub struct Pacing {
    lanes: HashMap<NodeId, Lane>,
}

impl Pacing {
    /// A change for `node`: returns what to send now, in order (empty when it is held).
    pub fn offer(&mut self, node: NodeId, msg: LinkMsg, now: Instant) -> Vec<LinkMsg> {
        let lane = self.lanes.entry(node).or_default();
        if lane.holds(now) {
            lane.held.push(msg);
            return Vec::new();
        }
        lane.release(Some(msg), now)
    }

    /// `node` acknowledged change `seq`: when it is the one waited for, returns what
    /// was held behind it.
    pub fn acked(&mut self, node: NodeId, seq: u64, now: Instant) -> Vec<LinkMsg> {
        match self.lanes.get_mut(&node) {
            Some(lane) if lane.unanswered.is_some_and(|(s, _)| s == seq) => lane.release(None, now),
            _ => Vec::new(),
        }
    }

    /// The link to `node` is lost (or its changes must be sent again): waits for
    /// nothing more from it; returns what was held, to be sent in order.
    pub fn lost(&mut self, node: NodeId) -> Vec<LinkMsg> {
        self.lanes.remove(&node).map(|l| l.held).unwrap_or_default()
    }

    /// What was held longer than [`HOLD_LIMIT`] behind an unanswered change, by node,
    /// to be sent now.
    pub fn overdue(&mut self, now: Instant) -> Vec<(NodeId, Vec<LinkMsg>)> {
        let mut out = Vec::new();
        for (&node, lane) in &mut self.lanes {
            if !lane.held.is_empty() && !lane.holds(now) {
                out.push((node, lane.release(None, now)));
            }
        }
        self.lanes.retain(|_, l| l.unanswered.is_some());
        out
    }

    /// Changes held, over every node.
    pub fn held(&self) -> usize {
        self.lanes.values().map(|l| l.held.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wamp::uri::MatchPolicy;

    fn on(topic: &str, seq: u64) -> LinkMsg {
        LinkMsg::Interest {
            realm: "r".into(),
            topic: topic.into(),
            policy: MatchPolicy::Exact,
            on: true,
            seq,
        }
    }

    fn off(topic: &str) -> LinkMsg {
        LinkMsg::Interest {
            realm: "r".into(),
            topic: topic.into(),
            policy: MatchPolicy::Exact,
            on: false,
            seq: 0,
        }
    }

    const N2: NodeId = NodeId(2);
    const N3: NodeId = NodeId(3);

    #[test]
    fn an_idle_link_sends_a_change_at_once() {
        let mut p = Pacing::default();
        let t = Instant::now();
        assert_eq!(p.offer(N2, off("a"), t), [off("a")], "nothing unanswered");
        assert_eq!(p.offer(N2, off("b"), t), [off("b")], "a change asking no answer holds nothing back");
        assert_eq!(p.offer(N2, on("c", 1), t), [on("c", 1)]);
        assert_eq!(p.offer(N3, on("c", 1), t), [on("c", 1)], "each node is paced on its own");
    }

    #[test]
    fn changes_made_during_a_round_trip_leave_together_in_order_when_it_is_answered() {
        let mut p = Pacing::default();
        let t = Instant::now();
        assert_eq!(p.offer(N2, on("a", 1), t), [on("a", 1)]);
        assert!(p.offer(N2, on("b", 2), t).is_empty());
        assert!(p.offer(N2, off("x"), t).is_empty());
        assert!(p.offer(N2, on("c", 4), t).is_empty());
        assert_eq!(p.held(), 3);
        assert!(p.acked(N2, 2, t).is_empty(), "not the change waited for");
        assert!(p.acked(N3, 1, t).is_empty(), "another node's answer");
        assert_eq!(p.acked(N2, 1, t), [on("b", 2), off("x"), on("c", 4)]);
        assert!(
            p.offer(N2, on("d", 5), t).is_empty(),
            "held behind the batch, whose last change is waited for"
        );
        assert!(p.acked(N2, 2, t).is_empty());
        assert_eq!(p.acked(N2, 4, t), [on("d", 5)]);
        assert_eq!(p.acked(N2, 5, t), []);
        assert_eq!(p.offer(N2, on("e", 6), t), [on("e", 6)], "answered: idle again");
    }

    #[test]
    fn a_peer_that_does_not_answer_holds_changes_for_the_hold_limit_at_most() {
        let mut p = Pacing::default();
        let t = Instant::now();
        p.offer(N2, on("a", 1), t);
        assert!(p.offer(N2, on("b", 2), t + HOLD_LIMIT / 2).is_empty());
        assert!(p.overdue(t + HOLD_LIMIT / 2).is_empty());
        let late = t + HOLD_LIMIT;
        assert_eq!(p.overdue(late), [(N2, vec![on("b", 2)])]);
        assert!(p.offer(N2, on("c", 3), late).is_empty(), "b is waited for now");
        let later = late + HOLD_LIMIT;
        assert_eq!(p.offer(N2, off("d"), later), [on("c", 3), off("d")], "the next change sends them");
        assert!(p.offer(N2, off("e"), later).is_empty(), "c is waited for");
    }

    #[test]
    fn a_lost_link_gives_back_what_was_held_and_waits_for_nothing() {
        let mut p = Pacing::default();
        let t = Instant::now();
        p.offer(N2, on("a", 1), t);
        p.offer(N2, on("b", 2), t);
        p.offer(N2, off("c"), t);
        assert_eq!(p.lost(N2), [on("b", 2), off("c")]);
        assert_eq!(p.held(), 0);
        assert!(p.acked(N2, 1, t).is_empty());
        assert_eq!(p.offer(N2, on("d", 3), t), [on("d", 3)]);
    }

    #[test]
    fn acknowledged_changes_are_interest_and_retained_events_asking_for_it() {
        assert_eq!(acknowledged_under(&on("a", 7)), Some(7));
        assert_eq!(acknowledged_under(&off("a")), None);
        assert_eq!(acknowledged_under(&LinkMsg::InterestAck { seq: 7 }), None);
        let sync = LinkMsg::InterestSync { realm: "r".into(), entries: Vec::new() };
        assert_eq!(acknowledged_under(&sync), None);
    }
}
