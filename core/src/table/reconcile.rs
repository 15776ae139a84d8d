//! Which callee entries of this node the table holds for no reason: the session
//! left (its cleanup did not commit: leader killed, quorum lost), or the session is
//! here but never got the registration (a REGISTER that committed after it was
//! answered as failed). The node proposes their removal ([`super::Command::Unregister`])
//! until the table and its sessions agree again — reconciliation, so a `single`
//! procedure whose callee is gone does not stay taken.

use crate::ids::{NodeId, RegistrationId, SessionId};

use super::RealmTable;

/// What this node knows of a callee entry's session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Holder {
    /// No such session on this node.
    Gone,
    /// The session holds the registration.
    Holds,
    /// The session has a REGISTER in flight: its entry may be about to be answered.
    Registering,
    /// The session is here and does not hold the registration.
    NotHeld,
}

/// The (session, registration) entries of `node` in `table` whose session is gone or
/// does not hold them, as `holder` reports.
pub fn stale_callees(
    table: &RealmTable,
    node: NodeId,
    holder: impl Fn(SessionId, RegistrationId) -> Holder,
) -> Vec<(SessionId, RegistrationId)> {
    let mut out = Vec::new();
    for reg in table.registrations.iter() {
        for c in reg.callees.iter().filter(|c| c.node == node) {
            if matches!(holder(c.session, reg.id), Holder::Gone | Holder::NotHeld) {
                out.push((c.session, reg.id));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dealer::{Callee, InvokePolicy};
    use crate::table::{Command, Outcome, RoutingTable};
    use crate::wamp::uri::MatchPolicy;

    fn register(t: &mut RoutingTable, node: u64, session: u64, procedure: &str) -> RegistrationId {
        let cmd = Command::Register {
            realm: "r".into(),
            callee: Callee { node: NodeId(node), session: SessionId(session), disclose_caller: false },
            procedure: procedure.into(),
            policy: MatchPolicy::Exact,
            invoke: InvokePolicy::RoundRobin,
            now_ms: 0,
        };
        match t.apply(cmd) {
            Outcome::Registered(Ok(id)) => id,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn entries_of_gone_or_unaware_sessions_of_this_node_are_stale() {
        let mut t = RoutingTable::default();
        let p = register(&mut t, 1, 10, "p");
        register(&mut t, 1, 11, "p");
        let q = register(&mut t, 1, 12, "q");
        register(&mut t, 1, 13, "q");
        register(&mut t, 2, 20, "p");
        let holder = |s: SessionId, _| match s.0 {
            10 => Holder::Gone,
            11 => Holder::Holds,
            12 => Holder::NotHeld,
            13 => Holder::Registering,
            _ => panic!("another node's session was asked about"),
        };
        let mut stale = stale_callees(t.realm("r").unwrap(), NodeId(1), holder);
        stale.sort();
        assert_eq!(stale, vec![(SessionId(10), p), (SessionId(12), q)]);
    }
}
