//! The subscription index: which subscriptions exist, and which nodes are interested.
//!
//! This is part of the replicated routing table: it records per-node *interest*
//! (a node with at least one local subscriber), never individual sessions, which stay
//! local to the node. Subscription ids are handed in by the table's deterministic id
//! counter, so every node applying the same commands assigns the same ids.

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
