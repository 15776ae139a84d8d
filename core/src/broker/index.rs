//! The subscription index: which subscriptions exist, and which nodes are interested.
//!
//! Every node keeps one per realm, built from its own interest and what the other
//! nodes tell it over the links (no consensus: each node owns its interest). It
//! records per-node *interest* (a node with at least one local subscriber, or one
//! that keeps the topic's event history), never individual sessions.
//!
//! Subscription ids are the same on every node without a consensus round: each is
//! derived from (realm, uri, match policy) by [`derive_id`], a 64-bit FNV-1a hash
//! folded into the WAMP id range `1..=2^53`. Two different subscriptions of one realm
//! collide with probability about n²/2^54 for n subscriptions (below 10^-4 for a
//! million); the router checks for it and refuses the second SUBSCRIBE with an
//! error rather than merging two topics.

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::ids::{NodeId, SubscriptionId};
use crate::wamp::pattern::PatternIndex;
use crate::wamp::uri::MatchPolicy;

/// One subscription: a topic (or pattern) and the nodes with local subscribers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Subscription {
    /// Router-scope id, shared by all subscribers of the same (uri, policy).
    pub id: SubscriptionId,
    /// Topic or pattern.
    pub uri: String,
    /// How `uri` matches topics.
    pub policy: MatchPolicy,
    /// When it was created, milliseconds since the Unix epoch (from the command).
    pub created_ms: u64,
    /// Nodes with at least one local subscriber.
    pub nodes: BTreeSet<NodeId>,
}

/// The id every node gives the subscription to `(uri, policy)` in `realm`.
pub fn derive_id(realm: &str, uri: &str, policy: MatchPolicy) -> SubscriptionId {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0100_0000_01b3;
    let mut h = OFFSET;
    for part in [realm.as_bytes(), &[0], uri.as_bytes(), &[0], policy.as_str().as_bytes()] {
        for &b in part {
            h ^= u64::from(b);
            h = h.wrapping_mul(PRIME);
        }
    }
    SubscriptionId(h % crate::ids::MAX_ID + 1)
}

/// All subscriptions of one realm. Serialized as the list of subscriptions; the
/// pattern index is rebuilt when read back.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(from = "Vec<Subscription>", into = "Vec<Subscription>")]
pub struct SubscriptionIndex {
    subs: HashMap<SubscriptionId, Subscription>,
    index: PatternIndex<SubscriptionId>,
}

impl From<Vec<Subscription>> for SubscriptionIndex {
    fn from(list: Vec<Subscription>) -> Self {
        let mut idx = SubscriptionIndex::default();
        for s in list {
            idx.index.insert(&s.uri, s.policy, s.id);
            idx.subs.insert(s.id, s);
        }
        idx
    }
}

impl From<SubscriptionIndex> for Vec<Subscription> {
    fn from(idx: SubscriptionIndex) -> Self {
        let mut list: Vec<_> = idx.subs.into_values().collect();
        list.sort_by_key(|s| s.id);
        list
    }
}

impl SubscriptionIndex {
    /// The subscription for `(uri, policy)`, if any.
    pub fn find(&self, uri: &str, policy: MatchPolicy) -> Option<&Subscription> {
        self.index.get(uri, policy).and_then(|id| self.subs.get(id))
    }

    /// A subscription by id.
    pub fn get(&self, id: SubscriptionId) -> Option<&Subscription> {
        self.subs.get(&id)
    }

    /// Records that `node` has a subscriber for `(uri, policy)`, creating the
    /// subscription with `new_id` when it does not exist. Returns its id.
    pub fn add_interest(
        &mut self,
        node: NodeId,
        uri: &str,
        policy: MatchPolicy,
        new_id: impl FnOnce() -> SubscriptionId,
        now_ms: u64,
    ) -> SubscriptionId {
        if let Some(&existing) = self.index.get(uri, policy) {
            if let Some(s) = self.subs.get_mut(&existing) {
                s.nodes.insert(node);
            }
            return existing;
        }
        let id = new_id();
        let sub = Subscription {
            id,
            uri: uri.to_owned(),
            policy,
            created_ms: now_ms,
            nodes: BTreeSet::from([node]),
        };
        self.index.insert(uri, policy, id);
        self.subs.insert(id, sub);
        id
    }

    /// Removes `node`'s interest; deletes the subscription when no node is left.
    /// Returns true when the subscription was deleted.
    pub fn remove_interest(&mut self, node: NodeId, id: SubscriptionId) -> bool {
        let Some(sub) = self.subs.get_mut(&id) else {
            return false;
        };
        sub.nodes.remove(&node);
        if !sub.nodes.is_empty() {
            return false;
        }
        if let Some(sub) = self.subs.remove(&id) {
            self.index.remove(&sub.uri, sub.policy);
        }
        true
    }

    /// Replaces `node`'s whole interest with `entries` (a full interest set from the
    /// node); ids are derived for `realm`.
    pub fn replace_node(
        &mut self,
        realm: &str,
        node: NodeId,
        entries: &[(String, MatchPolicy)],
        now_ms: u64,
    ) {
        self.remove_node(node);
        for (uri, policy) in entries {
            self.add_interest(node, uri, *policy, || derive_id(realm, uri, *policy), now_ms);
        }
    }

    /// The (uri, policy) of every subscription `node` is interested in.
    pub fn interest_of(&self, node: NodeId) -> Vec<(String, MatchPolicy)> {
        self.subs.values().filter(|s| s.nodes.contains(&node)).map(|s| (s.uri.clone(), s.policy)).collect()
    }

    /// Removes `node` from every subscription (the node is gone).
    pub fn remove_node(&mut self, node: NodeId) {
        let ids: Vec<_> = self.subs.values().filter(|s| s.nodes.contains(&node)).map(|s| s.id).collect();
        for id in ids {
            self.remove_interest(node, id);
        }
    }

    /// Every subscription matching the concrete `topic`.
    pub fn matching<'a>(&'a self, topic: &str, out: &mut Vec<&'a Subscription>) {
        let mut ids = Vec::new();
        self.index.matches(topic, &mut ids);
        out.extend(ids.into_iter().filter_map(|id| self.subs.get(id)));
    }

    /// All subscriptions.
    pub fn iter(&self) -> impl Iterator<Item = &Subscription> {
        self.subs.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_ids_are_stable_distinct_and_valid() {
        let a = derive_id("realm1", "com.app.topic", MatchPolicy::Exact);
        assert_eq!(a, derive_id("realm1", "com.app.topic", MatchPolicy::Exact));
        assert_ne!(a, derive_id("realm1", "com.app.topic", MatchPolicy::Prefix));
        assert_ne!(a, derive_id("realm2", "com.app.topic", MatchPolicy::Exact));
        assert!(crate::ids::valid_id(a.0));
        let ids: std::collections::HashSet<_> =
            (0..100_000).map(|i| derive_id("r", &format!("t.{i}"), MatchPolicy::Exact)).collect();
        assert_eq!(ids.len(), 100_000);
    }

    #[test]
    fn a_full_interest_set_replaces_what_was_known_of_a_node() {
        let mut idx = SubscriptionIndex::default();
        let n2 = NodeId(2);
        idx.add_interest(n2, "a", MatchPolicy::Exact, || derive_id("r", "a", MatchPolicy::Exact), 0);
        idx.add_interest(NodeId(1), "b", MatchPolicy::Exact, || derive_id("r", "b", MatchPolicy::Exact), 0);
        idx.replace_node("r", n2, &[("b".into(), MatchPolicy::Exact), ("c.".into(), MatchPolicy::Prefix)], 0);
        assert!(idx.find("a", MatchPolicy::Exact).is_none());
        let mut got = idx.interest_of(n2);
        got.sort();
        assert_eq!(got, vec![("b".to_owned(), MatchPolicy::Exact), ("c.".to_owned(), MatchPolicy::Prefix)]);
        assert_eq!(idx.find("b", MatchPolicy::Exact).map(|s| s.nodes.len()), Some(2));
    }

    fn counter() -> impl FnMut() -> SubscriptionId {
        let mut n = 0;
        move || {
            n += 1;
            SubscriptionId(n)
        }
    }

    #[test]
    fn same_topic_same_id_across_nodes() {
        let mut idx = SubscriptionIndex::default();
        let mut next = counter();
        let a = idx.add_interest(NodeId(1), "a.b", MatchPolicy::Exact, &mut next, 0);
        let b = idx.add_interest(NodeId(2), "a.b", MatchPolicy::Exact, &mut next, 0);
        let c = idx.add_interest(NodeId(1), "a.b", MatchPolicy::Prefix, &mut next, 0);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(!idx.remove_interest(NodeId(1), a));
        assert!(idx.remove_interest(NodeId(2), a));
        assert!(idx.get(a).is_none());
        let d = idx.add_interest(NodeId(1), "a.b", MatchPolicy::Exact, &mut next, 0);
        assert_ne!(a, d, "a deleted subscription's id is not reused");
    }

    #[test]
    fn matching_covers_all_policies() {
        let mut idx = SubscriptionIndex::default();
        let mut next = counter();
        idx.add_interest(NodeId(1), "com.x.update", MatchPolicy::Exact, &mut next, 0);
        idx.add_interest(NodeId(1), "com.x", MatchPolicy::Prefix, &mut next, 0);
        idx.add_interest(NodeId(1), "com..update", MatchPolicy::Wildcard, &mut next, 0);
        idx.add_interest(NodeId(1), "org", MatchPolicy::Prefix, &mut next, 0);
        let mut out = Vec::new();
        idx.matching("com.x.update", &mut out);
        assert_eq!(out.len(), 3);
        out.clear();
        idx.matching("com.y.update", &mut out);
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn node_removal_purges_interest() {
        let mut idx = SubscriptionIndex::default();
        let mut next = counter();
        let a = idx.add_interest(NodeId(1), "a", MatchPolicy::Exact, &mut next, 0);
        let b = idx.add_interest(NodeId(2), "b", MatchPolicy::Exact, &mut next, 0);
        idx.add_interest(NodeId(2), "a", MatchPolicy::Exact, &mut next, 0);
        idx.remove_node(NodeId(2));
        assert!(idx.get(b).is_none());
        assert_eq!(idx.get(a).map(|s| s.nodes.len()), Some(1));
    }
}
