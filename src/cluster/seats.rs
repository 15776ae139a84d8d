//! Who holds the voter seats, as pure functions of the leader's view (the
//! [`upkeep`](super::upkeep) loop applies them, one change at a time).
//!
//! The voters are the `voters` lowest node ids among the members that are up
//! ([`desired`]). A scale-down of a StatefulSet removes the highest ordinals, so
//! those are the learners and no scale-down costs a voter seat.
//!
//! [`next_change`] moves the current voter set one step towards that:
//!
//! 1. a learner that should vote and has caught up is promoted (the voter count
//!    goes above `voters` for a moment rather than below);
//! 2. then, while there are more voters than `voters`, the highest voter that
//!    should not vote is demoted to learner; if that is the leader itself, it hands
//!    leadership over first (to the lowest voter that keeps its seat).
//!
//! A change is proposed only when both the current and the resulting voter set have
//! a majority of voters up: a change never costs the cluster its quorum. A voter
//! that is down keeps its seat while it is in its grace period (a restart is not a
//! reason to move seats around); only after that may a learner that is up take it.
//!
//! [`to_forget`] names the learners that have been down longer than
//! `forget_after`: the leader removes them. Voters are removed only by an operator.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// The leader's view of the membership, for one decision.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SeatView {
    /// Current voters.
    pub voters: BTreeSet<u64>,
    /// Current learners.
    pub learners: BTreeSet<u64>,
    /// Members the liveness table has up.
    pub up: BTreeSet<u64>,
    /// Learners whose log is close enough to the leader's to vote at once.
    pub caught_up: BTreeSet<u64>,
    /// Voters that are down but still within their grace period: they keep their seat.
    pub in_grace: BTreeSet<u64>,
    /// How many voters the cluster should have.
    pub target: usize,
    /// This node, the leader.
    pub leader: u64,
}

/// One step towards the desired voter set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeatChange {
    /// Make this learner a voter.
    Promote(u64),
    /// Make this voter a learner.
    Demote(u64),
    /// The leader should not vote: hand leadership to this voter first.
    HandOver(u64),
}

impl SeatView {
    /// Whether `id` counts as up for holding a seat.
    fn holds(&self, id: u64) -> bool {
        self.up.contains(&id) || (self.voters.contains(&id) && self.in_grace.contains(&id))
    }

    /// Whether a majority of `voters` is up.
    fn quorum_up(&self, voters: &BTreeSet<u64>) -> bool {
        let up = voters.iter().filter(|v| self.up.contains(v)).count();
        up * 2 > voters.len()
    }
}

/// The voters the cluster should have: the `target` lowest ids among the members
/// that are up (a voter in its grace period counts as up).
pub fn desired(view: &SeatView) -> BTreeSet<u64> {
    view.voters.union(&view.learners).copied().filter(|id| view.holds(*id)).take(view.target).collect()
}

/// The next membership change towards [`desired`], if one is due and safe.
pub fn next_change(view: &SeatView) -> Option<SeatChange> {
    if !view.quorum_up(&view.voters) {
        return None;
    }
    let want = desired(view);
    let promote = want.iter().copied().find(|id| view.learners.contains(id) && view.caught_up.contains(id));
    if let Some(id) = promote {
        let mut after = view.voters.clone();
        after.insert(id);
        if view.quorum_up(&after) {
            return Some(SeatChange::Promote(id));
        }
    }
    if view.voters.len() <= view.target {
        return None;
    }
    let extra = view.voters.iter().rev().copied().find(|id| !want.contains(id))?;
    if extra == view.leader {
        return want
            .iter()
            .copied()
            .find(|id| *id != view.leader && view.up.contains(id))
            .map(SeatChange::HandOver);
    }
    let mut after = view.voters.clone();
    after.remove(&extra);
    view.quorum_up(&after).then_some(SeatChange::Demote(extra))
}

/// The learners down since longer than `forget_after` at `now` (`down_since`: when
/// the leader first saw each member down).
pub fn to_forget(
    learners: &BTreeSet<u64>,
    down_since: &BTreeMap<u64, Instant>,
    now: Instant,
    forget_after: Duration,
) -> Vec<u64> {
    learners
        .iter()
        .copied()
        .filter(|id| down_since.get(id).is_some_and(|t| now.saturating_duration_since(*t) > forget_after))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ids: &[u64]) -> BTreeSet<u64> {
        ids.iter().copied().collect()
    }

    /// All given members up and caught up, leader 1, 3 seats.
    fn view(voters: &[u64], learners: &[u64]) -> SeatView {
        let all: BTreeSet<u64> = set(voters).union(&set(learners)).copied().collect();
        SeatView {
            voters: set(voters),
            learners: set(learners),
            up: all.clone(),
            caught_up: set(learners),
            in_grace: BTreeSet::new(),
            target: 3,
            leader: 1,
        }
    }

    #[test]
    fn the_lowest_ids_that_are_up_are_wanted() {
        assert_eq!(desired(&view(&[1, 4, 5], &[2, 3])), set(&[1, 2, 3]));
        let mut v = view(&[1, 2, 3], &[4, 5]);
        v.up.remove(&2);
        assert_eq!(desired(&v), set(&[1, 3, 4]));
        v.in_grace.insert(2);
        assert_eq!(desired(&v), set(&[1, 2, 3]), "a voter in its grace period keeps its seat");
        assert_eq!(desired(&view(&[1], &[7])), set(&[1, 7]), "fewer members than seats");
    }

    #[test]
    fn a_settled_cluster_changes_nothing() {
        assert_eq!(next_change(&view(&[1, 2, 3], &[4, 5])), None);
        assert_eq!(next_change(&view(&[1, 2], &[])), None);
        assert_eq!(next_change(&view(&[1], &[])), None);
    }

    #[test]
    fn joiners_fill_the_seats_in_id_order() {
        assert_eq!(next_change(&view(&[1], &[2])), Some(SeatChange::Promote(2)));
        assert_eq!(next_change(&view(&[1, 2], &[3, 4])), Some(SeatChange::Promote(3)));
        let mut v = view(&[1, 2], &[3, 4]);
        v.caught_up.remove(&3);
        assert_eq!(next_change(&v), None, "the lower id waits to catch up, no detour through 4");
    }

    #[test]
    fn a_lower_id_takes_the_seat_of_the_highest_voter_promote_first() {
        // 2 comes back (or joins late) while 4 holds a seat.
        let v = view(&[1, 3, 4], &[2]);
        assert_eq!(next_change(&v), Some(SeatChange::Promote(2)));
        let v = view(&[1, 2, 3, 4], &[]);
        assert_eq!(next_change(&v), Some(SeatChange::Demote(4)));
        // Two extra voters: the highest goes first.
        let v = view(&[1, 2, 3, 4, 5], &[]);
        assert_eq!(next_change(&v), Some(SeatChange::Demote(5)));
    }

    #[test]
    fn the_leader_hands_over_before_giving_up_its_seat() {
        let mut v = view(&[1, 2, 3, 5], &[]);
        v.leader = 5;
        assert_eq!(next_change(&v), Some(SeatChange::HandOver(1)));
        v.up.remove(&1);
        v.in_grace.insert(1);
        assert_eq!(next_change(&v), Some(SeatChange::HandOver(2)), "to a voter that is up");
    }

    #[test]
    fn a_down_voter_keeps_its_seat_during_its_grace_period_only() {
        let mut v = view(&[1, 2, 3], &[4]);
        v.up.remove(&2);
        v.in_grace.insert(2);
        assert_eq!(next_change(&v), None);
        v.in_grace.clear();
        assert_eq!(next_change(&v), Some(SeatChange::Promote(4)));
        let mut v = view(&[1, 2, 3, 4], &[]);
        v.up.remove(&2);
        assert_eq!(next_change(&v), Some(SeatChange::Demote(2)));
    }

    #[test]
    fn no_change_costs_the_quorum() {
        // Two of three voters down: no majority, nothing moves.
        let mut v = view(&[1, 2, 3], &[4, 5]);
        v.up.remove(&2);
        v.up.remove(&3);
        assert_eq!(next_change(&v), None);
        // Four voters, one down: demoting an up voter would leave 2 of 3 up: fine;
        // demoting would never be of an up voter while a down one is in excess.
        let mut v = view(&[1, 2, 3, 4], &[]);
        v.up.remove(&3);
        v.in_grace.insert(3);
        assert_eq!(next_change(&v), Some(SeatChange::Demote(4)));
        // Five voters with two down, the wanted learner up: adding a sixth voter
        // keeps 4 of 6 up, a majority.
        let mut v = view(&[1, 2, 3, 5, 6], &[4]);
        v.target = 5;
        v.up.remove(&5);
        v.up.remove(&6);
        assert_eq!(next_change(&v), Some(SeatChange::Promote(4)));
        // One voter up of two: promoting would make 2 of 3 up, but there is no
        // majority to commit it with in the first place.
        let mut v = view(&[1, 2], &[3]);
        v.up.remove(&2);
        assert_eq!(next_change(&v), None);
    }

    #[test]
    fn only_learners_down_long_enough_are_forgotten() {
        let t0 = Instant::now();
        let after = Duration::from_secs(600);
        let down = BTreeMap::from([(4, t0), (5, t0 + Duration::from_secs(300)), (2, t0)]);
        let now = t0 + Duration::from_secs(601);
        assert_eq!(to_forget(&set(&[4, 5, 6]), &down, now, after), vec![4]);
        assert!(to_forget(&set(&[4]), &down, t0 + after, after).is_empty(), "strictly longer");
    }
}
