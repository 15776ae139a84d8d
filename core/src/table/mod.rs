//! The routing table: a deterministic state machine fed by [`Command`]s.
//!
//! It holds what needs a single winner and so is replicated through consensus —
//! per realm, the registration index (per-callee entries), retained events,
//! testaments and roles changed at run time — and nothing that one node owns
//! (its sessions, its subscription interest: see `router::interest`). Applying the
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
    /// Retained events by topic.
    #[serde(default)]
    pub retained: HashMap<String, Retained>,
    /// Topics of the retained events by [`Retained::seq`], oldest first.
    #[serde(default)]
    retained_order: BTreeMap<u64, String>,
    /// Total [`Retained::size`] of the retained events.
    #[serde(default)]
    retained_bytes: u64,
    /// Last [`Retained::seq`] handed out.
    #[serde(default)]
    retained_seq: u64,
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

impl RealmTable {
    /// Keeps `event` as the retained event of `topic`, then drops the oldest events
    /// until the bounds hold. An event larger than `max_bytes` by itself is not kept
    /// and changes nothing (the publisher refuses it before proposing it).
    fn retain(&mut self, topic: String, mut event: Retained, max_events: u64, max_bytes: u64) {
        let size = event.size(&topic);
        if size > max_bytes || max_events == 0 {
            return;
        }
        if self.retained_order.len() != self.retained.len() {
            self.rebuild_retained_order();
        }
        if let Some(old) = self.retained.remove(&topic) {
            self.retained_order.remove(&old.seq);
            self.retained_bytes = self.retained_bytes.saturating_sub(old.size(&topic));
        }
        self.retained_seq += 1;
        event.seq = self.retained_seq;
        self.retained_order.insert(event.seq, topic.clone());
        self.retained_bytes += size;
        self.retained.insert(topic, event);
        while self.retained.len() as u64 > max_events || self.retained_bytes > max_bytes {
            let Some((_, oldest)) = self.retained_order.pop_first() else { break };
            if let Some(gone) = self.retained.remove(&oldest) {
                self.retained_bytes = self.retained_bytes.saturating_sub(gone.size(&oldest));
            }
        }
    }

    /// Orders retained events kept by a version that did not order them (by their
    /// sequence number, then topic), and recounts their bytes.
    fn rebuild_retained_order(&mut self) {
        let mut all: Vec<(&String, &mut Retained)> = self.retained.iter_mut().collect();
        all.sort_by(|a, b| (a.1.seq, a.0).cmp(&(b.1.seq, b.0)));
        self.retained_order.clear();
        self.retained_bytes = 0;
        for (topic, event) in all {
            self.retained_seq += 1;
            event.seq = self.retained_seq;
            self.retained_order.insert(event.seq, topic.clone());
            self.retained_bytes += event.size(topic);
        }
    }

    /// How many retained events the realm keeps, and their total size.
    pub fn retained_usage(&self) -> (usize, u64) {
        (self.retained.len(), self.retained_bytes)
    }
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
            Command::Retain { realm, topic, event, max_events, max_bytes } => {
                self.realms.entry(realm).or_default().retain(topic, event, max_events, max_bytes);
                Outcome::Done
            }
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

    fn retain(topic: &str, payload_len: usize, max_events: u64, max_bytes: u64) -> Command {
        let event = Retained {
            publication: 1,
            details: Vec::new(),
            payload: vec![0; payload_len],
            audience: Vec::new(),
            seq: 0,
        };
        Command::Retain { realm: "r".into(), topic: topic.into(), event, max_events, max_bytes }
    }

    fn retained_topics(t: &RoutingTable) -> Vec<String> {
        let mut topics: Vec<String> =
            t.realm("r").map(|r| r.retained.keys().cloned().collect()).unwrap_or_default();
        topics.sort();
        topics
    }

    #[test]
    fn retained_events_beyond_the_count_drop_the_oldest() {
        let mut t = RoutingTable::default();
        for topic in ["a", "b", "c", "a", "d"] {
            t.apply(retain(topic, 10, 3, u64::MAX));
        }
        // "a" was retained again after "b" and "c": "b" is the oldest when "d" comes.
        assert_eq!(retained_topics(&t), ["a", "c", "d"]);
        assert_eq!(t.realm("r").map(RealmTable::retained_usage), Some((3, 33)));
    }

    #[test]
    fn retained_events_beyond_the_bytes_drop_the_oldest() {
        let mut t = RoutingTable::default();
        for topic in ["a", "b", "c"] {
            t.apply(retain(topic, 99, 100, 250));
        }
        assert_eq!(retained_topics(&t), ["b", "c"]);
        t.apply(retain("c", 9, 100, 250));
        t.apply(retain("d", 99, 100, 250));
        assert_eq!(retained_topics(&t), ["b", "c", "d"]);
        assert_eq!(t.realm("r").map(RealmTable::retained_usage), Some((3, 210)));
    }

    #[test]
    fn a_retained_event_larger_than_the_bound_changes_nothing() {
        let mut t = RoutingTable::default();
        t.apply(retain("a", 10, 100, 100));
        t.apply(retain("a", 200, 100, 100));
        assert_eq!(t.realm("r").and_then(|r| r.retained.get("a")).map(|e| e.payload.len()), Some(10));
    }

    #[test]
    fn retained_events_of_an_older_snapshot_are_ordered_and_bounded() {
        let mut t = RoutingTable::default();
        let r = t.realms.entry("r".into()).or_default();
        for topic in ["x", "y"] {
            let e =
                Retained { publication: 1, details: vec![], payload: vec![0; 9], audience: vec![], seq: 0 };
            r.retained.insert(topic.into(), e);
        }
        t.apply(retain("z", 9, 2, u64::MAX));
        assert_eq!(retained_topics(&t), ["y", "z"]);
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
