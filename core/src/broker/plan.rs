//! The fan-out plan: who receives an event, and with which EVENT.Details.
//!
//! Pure decisions, no I/O: publisher exclusion (`exclude_me`), publisher disclosure
//! (`disclose_me`), subscriber black/white listing, the `topic` detail of pattern
//! subscriptions, which other nodes get the event, and which retained events a new
//! subscriber receives. The router executes a plan: it encodes each planned message
//! once per serializer group and pushes the frames to the sessions.

use std::collections::HashMap;

use crate::broker::{Audience, Subscription};
use crate::ids::{NodeId, SessionId, SubscriptionId};
use crate::wamp::codec::Serializer;
use crate::wamp::uri::{self, MatchPolicy};
use crate::wamp::value::{Dict, Value, dict_bool};

/// A subscriber (or publisher) session as the broker sees it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Member<'a> {
    /// Session id.
    pub session: SessionId,
    /// Its authid.
    pub authid: &'a str,
    /// Its authrole.
    pub authrole: &'a str,
    /// The serializer its frames are encoded with.
    pub serializer: Serializer,
}

impl Member<'_> {
    fn admitted_by(&self, audience: &Audience) -> bool {
        audience.admits(self.session, self.authid, self.authrole)
    }
}

/// Sessions that receive the same encoded frame.
#[derive(Clone, Debug, PartialEq)]
pub struct Group {
    /// The serializer all of them use.
    pub serializer: Serializer,
    /// Positions of the receivers in the subscriber list the plan was made from.
    pub members: Vec<usize>,
}

/// Where a publication goes, as read from the subscription index.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Routes {
    /// Matching subscriptions this node has subscribers (or history) for.
    pub local: Vec<(SubscriptionId, MatchPolicy)>,
    /// Other nodes with matching subscriptions, and which ones, in order of first match.
    pub remote: Vec<(NodeId, Vec<SubscriptionId>)>,
}

/// Splits the subscriptions matching a topic into this node's and other nodes'.
pub fn routes(matching: &[&Subscription], here: NodeId) -> Routes {
    let mut r = Routes::default();
    for s in matching {
        for &node in s.nodes.iter().filter(|&&n| n != here) {
            match r.remote.iter_mut().find(|(n, _)| *n == node) {
                Some((_, ids)) => ids.push(s.id),
                None => r.remote.push((node, vec![s.id])),
            }
        }
        if s.nodes.contains(&here) {
            r.local.push((s.id, s.policy));
        }
    }
    r
}

/// The session a publication skips: the publisher unless it set `exclude_me` false.
pub fn skipped(options: &Dict, publisher: SessionId) -> Option<SessionId> {
    let exclude_me = options.get("exclude_me").and_then(Value::as_bool).unwrap_or(true);
    exclude_me.then_some(publisher)
}

/// The EVENT.Details disclosing the publisher when it asked (`disclose_me`), else empty.
pub fn disclosure(options: &Dict, publisher: &Member<'_>) -> Dict {
    let mut d = Dict::new();
    if dict_bool(options, "disclose_me") {
        d.insert("publisher".into(), publisher.session.0.into());
        d.insert("publisher_authid".into(), publisher.authid.into());
        d.insert("publisher_authrole".into(), publisher.authrole.into());
    }
    d
}

/// One subscription's share of a publication: the EVENT to build and who gets it.
#[derive(Clone, Debug, PartialEq)]
pub struct Delivery {
    /// EVENT.Subscription.
    pub subscription: SubscriptionId,
    /// EVENT.Details.
    pub details: Dict,
    /// The receivers, one group per serializer (one encoding each).
    pub groups: Vec<Group>,
}

/// A publication's fan-out rules, common to all its matching subscriptions.
#[derive(Clone, Copy, Debug)]
pub struct Fanout<'a> {
    /// The concrete topic.
    pub topic: &'a str,
    /// EVENT.Details common to all subscribers.
    pub details: &'a Dict,
    /// Who may receive it.
    pub audience: &'a Audience,
    /// The publisher when it excluded itself.
    pub skip: Option<SessionId>,
}

impl Fanout<'_> {
    /// EVENT.Details for a subscription: pattern matches learn the concrete topic.
    pub fn details_for(&self, policy: MatchPolicy) -> Dict {
        with_topic(self.details.clone(), self.topic, policy)
    }

    /// The plan for one matching subscription and its subscribers on this node.
    pub fn delivery(
        &self,
        subscription: SubscriptionId,
        policy: MatchPolicy,
        subscribers: &[Member<'_>],
    ) -> Delivery {
        Delivery { subscription, details: self.details_for(policy), groups: self.groups(subscribers) }
    }

    /// The receivers among one subscription's subscribers, grouped by serializer in
    /// order of first appearance.
    pub fn groups(&self, subscribers: &[Member<'_>]) -> Vec<Group> {
        let open = self.audience.is_open();
        let mut groups: Vec<Group> = Vec::new();
        let admitted = subscribers
            .iter()
            .enumerate()
            .filter(|(_, m)| Some(m.session) != self.skip && (open || m.admitted_by(self.audience)));
        for (i, m) in admitted {
            match groups.iter_mut().find(|g| g.serializer == m.serializer) {
                Some(g) => g.members.push(i),
                None => groups.push(Group { serializer: m.serializer, members: vec![i] }),
            }
        }
        groups
    }
}

fn with_topic(mut details: Dict, topic: &str, policy: MatchPolicy) -> Dict {
    if policy != MatchPolicy::Exact {
        details.insert("topic".into(), topic.into());
    }
    details
}

/// The retained events a new subscription of `(pattern, policy)` matches, by topic.
pub fn retained_matching<'m, E>(
    retained: &'m HashMap<String, E>,
    pattern: &str,
    policy: MatchPolicy,
) -> Vec<(&'m str, &'m E)> {
    match policy {
        MatchPolicy::Exact => {
            retained.get_key_value(pattern).map(|(t, e)| (t.as_str(), e)).into_iter().collect()
        }
        _ => retained
            .iter()
            .filter(|(t, _)| uri::matches(pattern, policy, t))
            .map(|(t, e)| (t.as_str(), e))
            .collect(),
    }
}

/// EVENT.Details of a retained event for a new subscriber, or `None` when the
/// event's audience (if it has a readable one) does not admit the subscriber.
pub fn retained_details(
    details: Dict,
    topic: &str,
    policy: MatchPolicy,
    audience: Option<&Audience>,
    subscriber: &Member<'_>,
) -> Option<Dict> {
    if !audience.is_none_or(|a| subscriber.admitted_by(a)) {
        return None;
    }
    let mut details = details;
    details.insert("retained".into(), true.into());
    Some(with_topic(details, topic, policy))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::dict;

    fn member(
        session: u64,
        authid: &'static str,
        authrole: &'static str,
        serializer: Serializer,
    ) -> Member<'static> {
        Member { session: SessionId(session), authid, authrole, serializer }
    }

    fn list<T: Into<Value> + Clone>(items: &[T]) -> Value {
        Value::List(items.iter().cloned().map(Into::into).collect())
    }

    fn audience(options: Dict) -> Audience {
        Audience::from_options(&options).expect("valid audience")
    }

    /// Sessions 1..=4, all JSON: alice/user, bob/user, carol/admin, alice/admin.
    fn four() -> Vec<Member<'static>> {
        vec![
            member(1, "alice", "user", Serializer::Json),
            member(2, "bob", "user", Serializer::Json),
            member(3, "carol", "admin", Serializer::Json),
            member(4, "alice", "admin", Serializer::Json),
        ]
    }

    /// The session ids a fan-out reaches among `subs`.
    fn receivers(f: &Fanout<'_>, subs: &[Member<'_>]) -> Vec<u64> {
        let mut ids: Vec<u64> =
            f.groups(subs).iter().flat_map(|g| g.members.iter().map(|&i| subs[i].session.0)).collect();
        ids.sort_unstable();
        ids
    }

    fn fanout<'a>(details: &'a Dict, audience: &'a Audience, skip: Option<SessionId>) -> Fanout<'a> {
        Fanout { topic: "com.x.update", details, audience, skip }
    }

    #[test]
    fn exclude_me_defaults_to_true() {
        assert_eq!(skipped(&Dict::new(), SessionId(7)), Some(SessionId(7)));
        assert_eq!(skipped(&dict! { "exclude_me" => true }, SessionId(7)), Some(SessionId(7)));
        let (d, a) = (Dict::new(), Audience::default());
        assert_eq!(receivers(&fanout(&d, &a, skipped(&Dict::new(), SessionId(2))), &four()), vec![1, 3, 4]);
    }

    #[test]
    fn exclude_me_false_delivers_to_the_publisher() {
        let skip = skipped(&dict! { "exclude_me" => false }, SessionId(2));
        assert_eq!(skip, None);
        let (d, a) = (Dict::new(), Audience::default());
        assert_eq!(receivers(&fanout(&d, &a, skip), &four()), vec![1, 2, 3, 4]);
    }

    #[test]
    fn exclude_and_eligible_by_session_id() {
        let d = Dict::new();
        let a = audience(dict! { "exclude" => list(&[3u64]) });
        assert_eq!(receivers(&fanout(&d, &a, None), &four()), vec![1, 2, 4]);
        let a = audience(dict! { "eligible" => list(&[2u64, 3]) });
        assert_eq!(receivers(&fanout(&d, &a, None), &four()), vec![2, 3]);
    }

    #[test]
    fn exclude_and_eligible_by_authid() {
        let d = Dict::new();
        let a = audience(dict! { "exclude_authid" => list(&["alice"]) });
        assert_eq!(receivers(&fanout(&d, &a, None), &four()), vec![2, 3]);
        let a = audience(dict! { "eligible_authid" => list(&["alice", "carol"]) });
        assert_eq!(receivers(&fanout(&d, &a, None), &four()), vec![1, 3, 4]);
    }

    #[test]
    fn exclude_and_eligible_by_authrole() {
        let d = Dict::new();
        let a = audience(dict! { "exclude_authrole" => list(&["admin"]) });
        assert_eq!(receivers(&fanout(&d, &a, None), &four()), vec![1, 2]);
        let a = audience(dict! { "eligible_authrole" => list(&["admin"]) });
        assert_eq!(receivers(&fanout(&d, &a, None), &four()), vec![3, 4]);
    }

    #[test]
    fn black_and_white_rules_combine_with_and() {
        let d = Dict::new();
        let a = audience(dict! {
            "eligible" => list(&[1u64, 2, 3, 4]),
            "eligible_authid" => list(&["alice", "bob"]),
            "exclude_authrole" => list(&["admin"]),
            "exclude" => list(&[2u64]),
        });
        assert_eq!(receivers(&fanout(&d, &a, None), &four()), vec![1]);
        assert_eq!(receivers(&fanout(&d, &a, Some(SessionId(1))), &four()), Vec::<u64>::new());
    }

    #[test]
    fn pattern_subscription_gets_the_topic_detail() {
        let d = dict! { "publisher" => 9u64 };
        let a = Audience::default();
        let f = fanout(&d, &a, None);
        for policy in [MatchPolicy::Prefix, MatchPolicy::Wildcard] {
            assert_eq!(f.details_for(policy), dict! { "publisher" => 9u64, "topic" => "com.x.update" });
        }
    }

    #[test]
    fn exact_subscription_gets_no_topic_detail() {
        let d = dict! { "publisher" => 9u64 };
        let a = Audience::default();
        assert_eq!(fanout(&d, &a, None).details_for(MatchPolicy::Exact), dict! { "publisher" => 9u64 });
    }

    #[test]
    fn one_encoding_group_per_serializer() {
        let subs = vec![
            member(1, "a", "r", Serializer::Json),
            member(2, "a", "r", Serializer::MsgPack),
            member(3, "a", "r", Serializer::Json),
            member(4, "a", "r", Serializer::Cbor),
            member(5, "a", "r", Serializer::MsgPack),
        ];
        let (d, a) = (Dict::new(), Audience::default());
        let groups = fanout(&d, &a, Some(SessionId(5))).groups(&subs);
        assert_eq!(
            groups,
            vec![
                Group { serializer: Serializer::Json, members: vec![0, 2] },
                Group { serializer: Serializer::MsgPack, members: vec![1] },
                Group { serializer: Serializer::Cbor, members: vec![3] },
            ]
        );
    }

    #[test]
    fn delivery_names_subscription_details_and_groups() {
        let subs = vec![member(1, "a", "r", Serializer::Cbor), member(2, "b", "r", Serializer::Json)];
        let (d, a) = (Dict::new(), audience(dict! { "exclude" => list(&[2u64]) }));
        let plan = fanout(&d, &a, None).delivery(SubscriptionId(8), MatchPolicy::Wildcard, &subs);
        let expected = Delivery {
            subscription: SubscriptionId(8),
            details: dict! { "topic" => "com.x.update" },
            groups: vec![Group { serializer: Serializer::Cbor, members: vec![0] }],
        };
        assert_eq!(plan, expected);
    }

    #[test]
    fn nobody_admitted_means_no_groups() {
        let (d, a) = (Dict::new(), audience(dict! { "eligible" => list(&[99u64]) }));
        assert!(fanout(&d, &a, None).groups(&four()).is_empty());
    }

    #[test]
    fn disclosure_only_when_asked() {
        let p = member(5, "alice", "user", Serializer::Cbor);
        assert_eq!(disclosure(&Dict::new(), &p), Dict::new());
        assert_eq!(
            disclosure(&dict! { "disclose_me" => true }, &p),
            dict! { "publisher" => 5u64, "publisher_authid" => "alice", "publisher_authrole" => "user" }
        );
    }

    #[test]
    fn routes_split_local_and_remote_interest() {
        let sub = |id: u64, policy, nodes: &[u64]| Subscription {
            id: SubscriptionId(id),
            uri: "com".into(),
            policy,
            created_ms: 0,
            nodes: nodes.iter().map(|&n| NodeId(n)).collect::<BTreeSet<_>>(),
        };
        let (a, b, c) = (
            sub(10, MatchPolicy::Exact, &[1, 2]),
            sub(11, MatchPolicy::Prefix, &[2, 3]),
            sub(12, MatchPolicy::Wildcard, &[1]),
        );
        let r = routes(&[&a, &b, &c], NodeId(1));
        assert_eq!(
            r.local,
            vec![(SubscriptionId(10), MatchPolicy::Exact), (SubscriptionId(12), MatchPolicy::Wildcard)]
        );
        assert_eq!(
            r.remote,
            vec![
                (NodeId(2), vec![SubscriptionId(10), SubscriptionId(11)]),
                (NodeId(3), vec![SubscriptionId(11)])
            ]
        );
    }

    #[test]
    fn retained_events_matching_a_new_subscription() {
        let retained: HashMap<String, u32> =
            [("com.x.a".to_owned(), 1), ("com.x.b".to_owned(), 2), ("org.y".to_owned(), 3)].into();
        let mut prefix = retained_matching(&retained, "com.x", MatchPolicy::Prefix);
        prefix.sort_unstable();
        assert_eq!(prefix, vec![("com.x.a", &1), ("com.x.b", &2)]);
        assert_eq!(retained_matching(&retained, "org.y", MatchPolicy::Exact), vec![("org.y", &3)]);
        assert!(retained_matching(&retained, "com.x", MatchPolicy::Exact).is_empty());
    }

    #[test]
    fn retained_eligibility_for_a_new_subscriber() {
        let me = member(4, "alice", "admin", Serializer::Json);
        let d = dict! { "publisher" => 1u64 };
        let admitted = retained_details(d.clone(), "com.x.a", MatchPolicy::Exact, None, &me);
        assert_eq!(admitted, Some(dict! { "publisher" => 1u64, "retained" => true }));
        let only_users = audience(dict! { "eligible_authrole" => list(&["user"]) });
        assert_eq!(retained_details(d.clone(), "com.x.a", MatchPolicy::Exact, Some(&only_users), &me), None);
        let not_bob = audience(dict! { "exclude_authid" => list(&["bob"]) });
        let pattern = retained_details(d, "com.x.a", MatchPolicy::Prefix, Some(&not_bob), &me);
        assert_eq!(pattern, Some(dict! { "publisher" => 1u64, "retained" => true, "topic" => "com.x.a" }));
    }
}
