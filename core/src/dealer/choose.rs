//! Callee choice, the one path every call takes (a client's, a rerouted one, the
//! router's own): among a registration's callees not tried yet and whose node is
//! reachable, the invoke policy picks one. A callee that answered
//! `wamp.error.unavailable` "virtually does not exist" for the rest of the call.

use super::action::Refusal;
use super::index::{Callee, Registration};
use super::policy::InvokePolicy;
use crate::ids::{NodeId, RegistrationId, SessionId};
use crate::wamp::uri::MatchPolicy;

/// What the dealer reads from outside its own state: the replicated registrations,
/// which nodes are reachable, and the REGISTER handshakes in progress.
pub trait Registry {
    /// Calls `found` with the registration a call of `procedure` in `realm` goes to;
    /// with `exact_only`, pattern-based registrations are not considered.
    fn registration(
        &self,
        realm: &str,
        procedure: &str,
        exact_only: bool,
        found: &mut dyn FnMut(&Registration),
    );
    /// False while the link to `node` is known to be broken.
    fn reachable(&self, node: NodeId) -> bool;
    /// The next round-robin turn of a registration.
    fn next_turn(&self, realm: &str, registration: RegistrationId) -> usize;
    /// True while `session` has a REGISTER committed or in flight but was not told
    /// REGISTERED for `registration`: its INVOCATIONs must wait.
    fn awaits_registration(&self, session: SessionId, registration: RegistrationId) -> bool;
    /// True while this node's table lists `callee` (a session here) among the
    /// callees of `registration` in `realm`.
    fn lists_callee(&self, realm: &str, registration: RegistrationId, callee: SessionId) -> bool;
    /// True while this node is fenced (cut off from the cluster's quorum, or not yet
    /// caught up after): it starts no invocation.
    fn fenced(&self) -> bool {
        false
    }
}

/// The callee a call goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Choice {
    /// The registration serving the call.
    pub registration: RegistrationId,
    /// Its match policy (non-exact ones tell the callee the procedure).
    pub policy: MatchPolicy,
    /// The chosen callee.
    pub callee: Callee,
    /// How many callees the registration has.
    pub callees: usize,
}

/// Picks a callee of `reg` by its invoke policy among those not in `tried` and
/// available (its node reachable, the callee not leaving). When no callee is
/// available on a first try, the others are candidates still (the link may be
/// back; a failure is answered then).
pub fn choose(
    reg: &Registration,
    tried: &[(NodeId, SessionId)],
    available: impl Fn(&Callee) -> bool,
    turn: impl FnOnce() -> usize,
    random: u64,
) -> Result<Choice, Refusal> {
    let untried = |c: &&Callee| !tried.contains(&(c.node, c.session));
    let up: Vec<&Callee> = reg.callees.iter().filter(untried).filter(|c| available(c)).collect();
    let candidates = if up.is_empty() && tried.is_empty() { reg.callees.iter().collect() } else { up };
    if candidates.is_empty() {
        return Err(if tried.is_empty() { Refusal::NoSuchProcedure } else { Refusal::NoAvailableCallee });
    }
    let turn = if reg.invoke == InvokePolicy::RoundRobin { turn() } else { 0 };
    let callee = *candidates[reg.invoke.pick(candidates.len(), turn, random as usize)];
    Ok(Choice { registration: reg.id, policy: reg.policy, callee, callees: reg.callees.len() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(invoke: InvokePolicy, callees: &[(u64, u64)]) -> Registration {
        Registration {
            id: RegistrationId(7),
            uri: "com.app.proc".into(),
            policy: MatchPolicy::Exact,
            invoke,
            created_ms: 0,
            callees: callees
                .iter()
                .map(|&(n, s)| Callee { node: NodeId(n), session: SessionId(s), disclose_caller: false })
                .collect(),
        }
    }

    #[test]
    fn first_policy_skips_a_callee_on_an_unreachable_node() {
        let r = reg(InvokePolicy::First, &[(2, 20), (1, 10)]);
        let c = choose(&r, &[], |c| c.node != NodeId(2), || 0, 0).unwrap();
        assert_eq!(c.callee.session, SessionId(10));
        assert_eq!(c.callees, 2);
    }

    #[test]
    fn rerouting_skips_tried_callees_and_runs_out() {
        let r = reg(InvokePolicy::RoundRobin, &[(1, 10), (1, 11)]);
        let tried = [(NodeId(1), SessionId(10))];
        assert_eq!(choose(&r, &tried, |_| true, || 0, 0).unwrap().callee.session, SessionId(11));
        let all = [(NodeId(1), SessionId(10)), (NodeId(1), SessionId(11))];
        assert_eq!(choose(&r, &all, |_| true, || 0, 0), Err(Refusal::NoAvailableCallee));
    }

    #[test]
    fn with_every_node_unreachable_a_first_try_still_picks_a_callee() {
        let r = reg(InvokePolicy::Last, &[(2, 20), (3, 30)]);
        assert_eq!(choose(&r, &[], |_| false, || 0, 0).unwrap().callee.session, SessionId(30));
    }

    #[test]
    fn round_robin_and_random_use_their_inputs() {
        let r = reg(InvokePolicy::RoundRobin, &[(1, 10), (1, 11), (1, 12)]);
        assert_eq!(choose(&r, &[], |_| true, || 4, 0).unwrap().callee.session, SessionId(11));
        let r = reg(InvokePolicy::Random, &[(1, 10), (1, 11), (1, 12)]);
        assert_eq!(choose(&r, &[], |_| true, || 0, 5).unwrap().callee.session, SessionId(12));
    }
}
