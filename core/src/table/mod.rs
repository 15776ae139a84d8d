//! The routing table: a deterministic state machine fed by [`Command`]s.
//!
//! It holds what needs a single winner and so is replicated through consensus —
//! per realm, the registration index (per-callee entries), testaments and roles
//! changed at run time — and nothing that one node owns (its sessions, its
//! subscription interest: see `router::interest`; the retained events it publishes:
//! see [`crate::broker::retained`]). `Command::Retain` of older logs replays as a
//! no-op: retained events committed before cluster design v2 are not carried over
//! (the `retained` field of an older snapshot is ignored when it is decoded). Applying the
//! same commands in the same order gives the same table and the same ids on every
//! node: ids come from a counter inside the table, timestamps from the command. A single node applies commands directly; a cluster
//! applies them through Raft. Either way, routers read the table and never mutate it
//! except through [`RoutingTable::apply`].

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::broker::index::derive_id;
use crate::dealer::{RegisterError, RegistrationIndex};
use crate::ids::RegistrationId;
use crate::roles::RoleConfig;

mod command;
pub mod reconcile;

pub use command::{Command, Outcome, Retained, StoredTestament};

/// Routing state of one realm.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RealmTable {
    /// Registrations and their callees.
    pub registrations: RegistrationIndex,
    /// Testaments of the realm's sessions, in the order they were added.
    #[serde(default)]
    pub testaments: Vec<StoredTestament>,
    /// Roles changed at run time, over those of the configuration file: `None`
    /// removes a role.
    #[serde(default)]
    pub roles: BTreeMap<String, Option<RoleConfig>>,
    /// Counts role changes, so nodes know when to recompile their rules.
    #[serde(default)]
    pub roles_version: u64,
}

/// The whole replicated routing state.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RoutingTable {
    realms: HashMap<String, RealmTable>,
    /// Last id handed out for subscriptions and registrations (router scope).
    last_id: u64,
}

impl RoutingTable {
    /// The table of `realm`, if anything was ever routed in it.
    pub fn realm(&self, realm: &str) -> Option<&RealmTable> {
        self.realms.get(realm)
    }

    /// Applies one command. Deterministic: no clocks, no randomness.
    pub fn apply(&mut self, cmd: Command) -> Outcome {
        let last_id = &mut self.last_id;
        let mut next = || {
            *last_id += 1;
            *last_id
        };
        match cmd {
            // subscriptions are owned by nodes since cluster design v2: these commands
            // of older logs replay as no-ops
            Command::Subscribe { realm, topic, policy, .. } => {
                Outcome::Subscribed(derive_id(&realm, &topic, policy))
            }
            Command::Unsubscribe { .. } => Outcome::Removed(Ok(false)),
            Command::Register { realm, callee, procedure, policy, invoke, now_ms } => {
                let t = self.realms.entry(realm).or_default();
                let r = t.registrations.add_callee(
                    callee,
                    &procedure,
                    policy,
                    invoke,
                    || RegistrationId(next()),
                    now_ms,
                );
                Outcome::Registered(r)
            }
            Command::Unregister { realm, session, registration } => {
                let r = match self.realms.get_mut(&realm) {
                    Some(t) => t.registrations.remove_callee(session, registration),
                    None => Err(RegisterError::NoSuchRegistration),
                };
                Outcome::Removed(r)
            }
            Command::SessionGone { realm, session, registrations, .. } => {
                if let Some(t) = self.realms.get_mut(&realm) {
                    for id in registrations {
                        t.registrations.remove_callee(session, id).ok();
                    }
                    t.testaments.retain(|x| x.session != session);
                }
                Outcome::Done
            }
            Command::AddTestament { realm, testament } => {
                self.realms.entry(realm).or_default().testaments.push(testament);
                Outcome::Done
            }
            Command::FlushTestaments { realm, session, detached } => {
                if let Some(t) = self.realms.get_mut(&realm) {
                    t.testaments.retain(|x| x.session != session || x.detached != detached);
                }
                Outcome::Done
            }
            // retained events are kept by the nodes since cluster design v2
            Command::Retain { .. } => Outcome::Done,
            Command::SetRole { realm, role } => {
                let t = self.realms.entry(realm).or_default();
                t.roles.insert(role.name.clone(), Some(role));
                t.roles_version += 1;
                Outcome::Done
            }
            Command::RemoveRole { realm, name } => {
                let t = self.realms.entry(realm).or_default();
                t.roles.insert(name, None);
                t.roles_version += 1;
                Outcome::Done
            }
            Command::NodeDown { node } => {
                let mut orphaned = Vec::new();
                let mut realms: Vec<_> = self.realms.iter_mut().collect();
                realms.sort_by(|a, b| a.0.cmp(b.0));
                for (name, t) in realms {
                    t.registrations.remove_node(node);
                    let (gone, kept) =
                        std::mem::take(&mut t.testaments).into_iter().partition(|x| x.node == node);
                    t.testaments = kept;
                    orphaned.extend(gone.into_iter().map(|x: StoredTestament| (name.clone(), x)));
                }
                Outcome::Orphaned(orphaned)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dealer::{Callee, InvokePolicy};
    use crate::ids::{NodeId, SessionId};
    use crate::wamp::uri::MatchPolicy;

    fn sub(realm: &str, node: u64, topic: &str) -> Command {
        Command::Subscribe {
            realm: realm.into(),
            node: NodeId(node),
            topic: topic.into(),
            policy: MatchPolicy::Exact,
            now_ms: 1,
        }
    }

    fn reg(node: u64, session: u64, procedure: &str) -> Command {
        Command::Register {
            realm: "r".into(),
            callee: Callee { node: NodeId(node), session: SessionId(session), disclose_caller: false },
            procedure: procedure.into(),
            policy: MatchPolicy::Exact,
            invoke: InvokePolicy::Single,
            now_ms: 1,
        }
    }

    #[test]
    fn retain_commands_of_older_logs_replay_as_no_ops() {
        let mut t = RoutingTable::default();
        let event =
            Retained { publication: 1, details: Vec::new(), payload: vec![1], audience: Vec::new(), seq: 0 };
        let cmd =
            Command::Retain { realm: "r".into(), topic: "t".into(), event, max_events: 9, max_bytes: 99 };
        assert_eq!(t.apply(cmd), Outcome::Done);
        assert!(t.realm("r").is_none(), "nothing was kept");
    }

    #[test]
    fn subscribe_commands_of_older_logs_replay_as_no_ops() {
        let mut t = RoutingTable::default();
        let id = derive_id("r", "a", MatchPolicy::Exact);
        assert_eq!(t.apply(sub("r", 1, "a")), Outcome::Subscribed(id));
        assert_eq!(t.last_id, 0, "no id was handed out");
        let unsub = Command::Unsubscribe { realm: "r".into(), node: NodeId(1), subscription: id };
        assert_eq!(t.apply(unsub), Outcome::Removed(Ok(false)));
    }

    #[test]
    fn replicas_applying_the_same_commands_agree() {
        let cmds =
            vec![sub("r", 1, "a"), reg(1, 10, "p"), sub("r", 2, "a"), reg(2, 20, "p"), sub("r", 2, "b")];
        let mut a = RoutingTable::default();
        let mut b = RoutingTable::default();
        let ra: Vec<_> = cmds.iter().cloned().map(|c| a.apply(c)).collect();
        let rb: Vec<_> = cmds.into_iter().map(|c| b.apply(c)).collect();
        assert_eq!(ra, rb);
        assert_eq!(ra[0], ra[2], "same topic, same subscription id");
        assert_eq!(ra[3], Outcome::Registered(Err(RegisterError::AlreadyExists)));
    }

    #[test]
    fn session_gone_purges_callees() {
        let mut t = RoutingTable::default();
        let Outcome::Registered(Ok(r)) = t.apply(reg(1, 10, "p")) else { panic!("register") };
        t.apply(Command::SessionGone {
            realm: "r".into(),
            node: NodeId(1),
            session: SessionId(10),
            registrations: vec![r],
            subscriptions: Vec::new(),
        });
        let realm = t.realm("r").expect("realm table");
        assert!(realm.registrations.lookup("p").is_none());
    }

    #[test]
    fn node_down_purges_everywhere_and_survives_serde() {
        let mut t = RoutingTable::default();
        t.apply(reg(1, 10, "p"));
        t.apply(reg(2, 20, "q"));
        t.apply(Command::NodeDown { node: NodeId(1) });
        assert!(t.realm("r").is_some_and(|r| r.registrations.lookup("p").is_none()));
        assert!(t.realm("r").is_some_and(|r| r.registrations.lookup("q").is_some()));
        let snapshot = serde_json::to_vec(&t).unwrap_or_default();
        let restored: RoutingTable = serde_json::from_slice(&snapshot).unwrap_or_default();
        assert_eq!(restored.last_id, t.last_id);
        assert!(restored.realm("r").is_some_and(|r| r.registrations.lookup("q").is_some()));
    }
}
