//! The registration index: procedures, their invoke policy and their callees.
//!
//! Part of the replicated routing table. Callees are recorded one by one, in
//! registration order, with the node they are connected to, so invoke policies work
//! across the cluster and a second `single` registration is refused everywhere.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::policy::InvokePolicy;
use crate::ids::{NodeId, RegistrationId, SessionId};
use crate::wamp::pattern::PatternIndex;
use crate::wamp::uri::MatchPolicy;

/// One callee of a registration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Callee {
    /// The node the callee is connected to.
    pub node: NodeId,
    /// The callee's session.
    pub session: SessionId,
    /// Callers are disclosed to this callee (REGISTER.Options.disclose_caller).
    #[serde(default)]
    pub disclose_caller: bool,
}

/// One registration: a procedure (or pattern) and its callees.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Registration {
    /// Router-scope id.
    pub id: RegistrationId,
    /// Procedure or pattern.
    pub uri: String,
    /// How `uri` matches procedures.
    pub policy: MatchPolicy,
    /// Which callee gets a call.
    pub invoke: InvokePolicy,
    /// When it was created, milliseconds since the Unix epoch (from the command).
    pub created_ms: u64,
    /// Callees in registration order.
    pub callees: Vec<Callee>,
}

/// Why a registration was refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum RegisterError {
    /// The procedure is registered with `single`, or by this very session.
    #[error("procedure already exists")]
    AlreadyExists,
    /// The procedure is registered with another invoke policy.
    #[error("procedure is registered with invoke policy '{0}'")]
    PolicyConflict(String),
    /// The registration does not exist or the session is not one of its callees.
    #[error("no such registration")]
    NoSuchRegistration,
}

/// All registrations of one realm. Serialized as the list of registrations; the
/// pattern index is rebuilt when read back.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(from = "Vec<Registration>", into = "Vec<Registration>")]
pub struct RegistrationIndex {
    regs: HashMap<RegistrationId, Registration>,
    index: PatternIndex<RegistrationId>,
}

impl From<Vec<Registration>> for RegistrationIndex {
    fn from(list: Vec<Registration>) -> Self {
        let mut idx = RegistrationIndex::default();
        for r in list {
            idx.index.insert(&r.uri, r.policy, r.id);
            idx.regs.insert(r.id, r);
        }
        idx
    }
}

impl From<RegistrationIndex> for Vec<Registration> {
    fn from(idx: RegistrationIndex) -> Self {
        let mut list: Vec<_> = idx.regs.into_values().collect();
        list.sort_by_key(|r| r.id);
        list
    }
}

impl RegistrationIndex {
    /// The registration for `(uri, policy)`, if any.
    pub fn find(&self, uri: &str, policy: MatchPolicy) -> Option<&Registration> {
        self.index.get(uri, policy).and_then(|id| self.regs.get(id))
    }

    /// A registration by id.
    pub fn get(&self, id: RegistrationId) -> Option<&Registration> {
        self.regs.get(&id)
    }

    /// Adds a callee, creating the registration with `new_id` if needed.
    pub fn add_callee(
        &mut self,
        callee: Callee,
        uri: &str,
        policy: MatchPolicy,
        invoke: InvokePolicy,
        new_id: impl FnOnce() -> RegistrationId,
        now_ms: u64,
    ) -> Result<RegistrationId, RegisterError> {
        if let Some(&existing) = self.index.get(uri, policy) {
            let reg = self.regs.get_mut(&existing).ok_or(RegisterError::NoSuchRegistration)?;
            if reg.invoke == InvokePolicy::Single || reg.callees.iter().any(|c| c.session == callee.session) {
                return Err(RegisterError::AlreadyExists);
            }
            if reg.invoke != invoke {
                return Err(RegisterError::PolicyConflict(reg.invoke.as_str().to_owned()));
            }
            reg.callees.push(callee);
            return Ok(existing);
        }
        let id = new_id();
        let reg = Registration {
            id,
            uri: uri.to_owned(),
            policy,
            invoke,
            created_ms: now_ms,
            callees: vec![callee],
        };
        self.index.insert(uri, policy, id);
        self.regs.insert(id, reg);
        Ok(id)
    }

    /// Removes a session from a registration; deletes the registration when it has
    /// no callee left (returns `Ok(true)` then).
    pub fn remove_callee(&mut self, session: SessionId, id: RegistrationId) -> Result<bool, RegisterError> {
        let reg = self.regs.get_mut(&id).ok_or(RegisterError::NoSuchRegistration)?;
        let before = reg.callees.len();
        reg.callees.retain(|c| c.session != session);
        if reg.callees.len() == before {
            return Err(RegisterError::NoSuchRegistration);
        }
        if !reg.callees.is_empty() {
            return Ok(false);
        }
        self.delete(id);
        Ok(true)
    }

    /// Removes every callee on `node` (the node is gone).
    pub fn remove_node(&mut self, node: NodeId) {
        let ids: Vec<_> = self.regs.keys().copied().collect();
        for id in ids {
            if let Some(reg) = self.regs.get_mut(&id) {
                reg.callees.retain(|c| c.node != node);
                if reg.callees.is_empty() {
                    self.delete(id);
                }
            }
        }
    }

    fn delete(&mut self, id: RegistrationId) {
        if let Some(reg) = self.regs.remove(&id) {
            self.index.remove(&reg.uri, reg.policy);
        }
    }

    /// The registration that serves `procedure`: exact match first, then the longest
    /// prefix, then the best wildcard pattern (the spec's precedence).
    pub fn lookup(&self, procedure: &str) -> Option<&Registration> {
        self.index.best(procedure).and_then(|id| self.regs.get(id))
    }

    /// All registrations.
    pub fn iter(&self) -> impl Iterator<Item = &Registration> {
        self.regs.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn callee(node: u64, session: u64) -> Callee {
        Callee { node: NodeId(node), session: SessionId(session), disclose_caller: false }
    }

    fn reg(
        idx: &mut RegistrationIndex,
        c: Callee,
        uri: &str,
        invoke: InvokePolicy,
        id: u64,
    ) -> Result<RegistrationId, RegisterError> {
        idx.add_callee(c, uri, MatchPolicy::Exact, invoke, || RegistrationId(id), 0)
    }

    #[test]
    fn single_is_exclusive() {
        let mut idx = RegistrationIndex::default();
        assert_eq!(reg(&mut idx, callee(1, 1), "a", InvokePolicy::Single, 1), Ok(RegistrationId(1)));
        assert_eq!(
            reg(&mut idx, callee(2, 2), "a", InvokePolicy::Single, 2),
            Err(RegisterError::AlreadyExists)
        );
        assert_eq!(
            reg(&mut idx, callee(2, 2), "a", InvokePolicy::RoundRobin, 2),
            Err(RegisterError::AlreadyExists)
        );
    }

    #[test]
    fn shared_registration_and_policy_conflict() {
        let mut idx = RegistrationIndex::default();
        let id = reg(&mut idx, callee(1, 1), "a", InvokePolicy::RoundRobin, 1).unwrap_or_default();
        assert_eq!(reg(&mut idx, callee(2, 2), "a", InvokePolicy::RoundRobin, 9), Ok(id));
        assert_eq!(
            reg(&mut idx, callee(2, 2), "a", InvokePolicy::RoundRobin, 9),
            Err(RegisterError::AlreadyExists)
        );
        assert_eq!(
            reg(&mut idx, callee(3, 3), "a", InvokePolicy::First, 9),
            Err(RegisterError::PolicyConflict("roundrobin".into()))
        );
        assert_eq!(idx.remove_callee(SessionId(1), id), Ok(false));
        assert_eq!(idx.remove_callee(SessionId(1), id), Err(RegisterError::NoSuchRegistration));
        assert_eq!(idx.remove_callee(SessionId(2), id), Ok(true));
        assert!(idx.lookup("a").is_none());
    }

    #[test]
    fn lookup_precedence() {
        let mut idx = RegistrationIndex::default();
        let mut add = |uri: &str, policy, id| {
            idx.add_callee(callee(1, id), uri, policy, InvokePolicy::Single, || RegistrationId(id), 0)
        };
        add("com.a.b", MatchPolicy::Exact, 1).ok();
        add("com.a", MatchPolicy::Prefix, 2).ok();
        add("com", MatchPolicy::Prefix, 3).ok();
        add("com..b", MatchPolicy::Wildcard, 4).ok();
        assert_eq!(idx.lookup("com.a.b").map(|r| r.id), Some(RegistrationId(1)));
        assert_eq!(idx.lookup("com.a.c").map(|r| r.id), Some(RegistrationId(2)));
        assert_eq!(idx.lookup("com.x.c").map(|r| r.id), Some(RegistrationId(3)));
        assert_eq!(idx.lookup("org.x.c").map(|r| r.id), None);
    }

    #[test]
    fn node_down_removes_its_callees() {
        let mut idx = RegistrationIndex::default();
        let id = reg(&mut idx, callee(1, 1), "a", InvokePolicy::First, 1).unwrap_or_default();
        reg(&mut idx, callee(2, 2), "a", InvokePolicy::First, 9).ok();
        idx.remove_node(NodeId(1));
        assert_eq!(idx.get(id).map(|r| r.callees.clone()), Some(vec![callee(2, 2)]));
        idx.remove_node(NodeId(2));
        assert!(idx.get(id).is_none());
    }
}
