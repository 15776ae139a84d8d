//! Event history (`wamp.subscription.get_events`, Advanced Profile "Event History"):
//! the last events of subscriptions on topics configured to keep history
//! (`[[realms.history]]`), bounded per topic by its `limit` and, in memory, by
//! `limits.max_history_bytes`: the oldest events are dropped first.
//!
//! At start every node pins its interest in each configured (topic, match) — a
//! "dummy" subscription, as the spec suggests — so the subscription exists before
//! anyone subscribes and every publication reaches every node, where `pubsub::deliver`
//! records it. Every node therefore holds the whole history and answers
//! `get_events` by itself; a node that restarts starts with an empty history.
//! Publications with session-based black/white lists are not kept (spec); authid and
//! authrole rules are kept and applied to whoever asks.

use std::collections::VecDeque;
use std::sync::Mutex;

use super::now_ms;
use crate::broker::Audience;
use crate::dict;
use crate::ids::{PublicationId, SubscriptionId};
use crate::wamp::message::Payload;
use crate::wamp::value::{Dict, List, Value};

pub use crate::config::history::{HistoryConfig, HistoryError, MAX_LIMIT};

/// Pins this node's interest in every topic `realm` keeps history for, and starts
/// keeping it. Run at start.
pub fn pin(router: &super::Router, realm: &super::realm::Realm) {
    for cfg in &realm.history_config {
        let Ok(policy) = cfg.policy() else { continue };
        let _serial = super::handle::lock(&realm.membership);
        let (id, _, _) = router.interest.gain(router, realm, &cfg.topic, policy);
        realm.keep_history(id, cfg.limit, router.config.limits.max_history_bytes);
    }
}

/// One kept event.
#[derive(Clone, Debug)]
struct Kept {
    ms: u64,
    publication: PublicationId,
    topic: String,
    details: Dict,
    payload: Payload,
    audience: Audience,
}

impl Kept {
    /// Roughly the bytes the event takes in memory.
    fn memory_size(&self) -> usize {
        let details = self.details.iter().map(|(k, v)| k.len() + v.memory_size()).sum::<usize>();
        std::mem::size_of::<Kept>() + self.topic.len() + self.payload.memory_size() + details
    }
}

/// The kept events of one subscription, with their total [`Kept::memory_size`].
#[derive(Debug)]
pub struct History {
    limit: usize,
    max_bytes: usize,
    events: Mutex<(VecDeque<Kept>, usize)>,
}

impl History {
    /// An empty history keeping at most `limit` events of at most `max_bytes`.
    pub fn new(limit: usize, max_bytes: usize) -> Self {
        History { limit, max_bytes, events: Mutex::new((VecDeque::new(), 0)) }
    }

    /// Keeps an event (unless its audience names sessions).
    pub fn record(
        &self,
        topic: &str,
        publication: PublicationId,
        details: &Dict,
        payload: &Payload,
        audience: &Audience,
    ) {
        if audience.names_sessions() {
            return;
        }
        let kept = Kept {
            ms: now_ms(),
            publication,
            topic: topic.to_owned(),
            details: details.clone(),
            payload: payload.clone(),
            audience: audience.clone(),
        };
        let size = kept.memory_size();
        if size > self.max_bytes {
            return;
        }
        let mut guard = self.events.lock().unwrap_or_else(|e| e.into_inner());
        let (events, bytes) = &mut *guard;
        while events.len() >= self.limit || *bytes + size > self.max_bytes {
            let Some(oldest) = events.pop_front() else { break };
            *bytes = bytes.saturating_sub(oldest.memory_size());
        }
        *bytes += size;
        events.push_back(kept);
    }

    /// The events `query` selects, as `get_events` returns them, for a caller with
    /// `authid`/`authrole`.
    pub fn query(&self, subscription: SubscriptionId, q: &Query, authid: &str, authrole: &str) -> List {
        let guard = self.events.lock().unwrap_or_else(|e| e.into_inner());
        let events = &guard.0;
        let pos = |p: Option<u64>| p.and_then(|p| events.iter().position(|e| e.publication.0 == p));
        let (from, after, before, until) = (
            pos(q.from_publication),
            pos(q.after_publication),
            pos(q.before_publication),
            pos(q.until_publication),
        );
        let selected = events.iter().enumerate().filter(|(i, e)| {
            from.is_none_or(|f| *i >= f)
                && after.is_none_or(|a| *i > a)
                && before.is_none_or(|b| *i < b)
                && until.is_none_or(|u| *i <= u)
                && q.from_time.is_none_or(|t| e.ms >= t)
                && q.after_time.is_none_or(|t| e.ms > t)
                && q.before_time.is_none_or(|t| e.ms < t)
                && q.until_time.is_none_or(|t| e.ms <= t)
                && q.topic.as_deref().is_none_or(|t| t == e.topic)
                && e.audience.admits(crate::ids::SessionId(0), authid, authrole)
        });
        let as_value = |(_, e): (usize, &Kept)| {
            let mut v = dict! {
                "timestamp" => super::meta::iso8601(e.ms),
                "subscription" => subscription.0,
                "publication" => e.publication.0,
                "topic" => e.topic.as_str(),
                "details" => e.details.clone(),
            };
            let payload = e.payload.arguments();
            if let Some(args) = &payload.args {
                v.insert("args".into(), Value::List(args.clone()));
            }
            if let Some(kwargs) = &payload.kwargs {
                v.insert("kwargs".into(), Value::Dict(kwargs.clone()));
            }
            Value::Dict(v)
        };
        let limit = q.limit.unwrap_or(usize::MAX);
        if q.reverse {
            selected.rev().take(limit).map(as_value).collect()
        } else {
            selected.take(limit).map(as_value).collect()
        }
    }
}

/// The filters of `wamp.subscription.get_events` (all given ones must hold).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Query {
    pub reverse: bool,
    pub limit: Option<usize>,
    pub from_time: Option<u64>,
    pub after_time: Option<u64>,
    pub before_time: Option<u64>,
    pub until_time: Option<u64>,
    pub topic: Option<String>,
    pub from_publication: Option<u64>,
    pub after_publication: Option<u64>,
    pub before_publication: Option<u64>,
    pub until_publication: Option<u64>,
}

impl Query {
    /// Reads the filters from the call's keyword arguments, or says which is wrong.
    pub fn from_kwargs(kw: &Dict) -> Result<Query, HistoryError> {
        let wrong = |key: &str, expected| HistoryError::Argument { key: key.to_owned(), expected };
        let time = |key: &str| -> Result<Option<u64>, HistoryError> {
            match kw.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => v
                    .as_str()
                    .and_then(parse_rfc3339)
                    .map(Some)
                    .ok_or_else(|| wrong(key, "an RFC 3339 timestamp")),
            }
        };
        let id = |key: &str| -> Result<Option<u64>, HistoryError> {
            match kw.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => {
                    v.as_u64().filter(|&n| n > 0).map(Some).ok_or_else(|| wrong(key, "a positive integer"))
                }
            }
        };
        let reverse = match kw.get("reverse") {
            None | Some(Value::Null) => false,
            Some(v) => v.as_bool().ok_or_else(|| wrong("reverse", "a boolean"))?,
        };
        let topic = match kw.get("topic") {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.as_str().ok_or_else(|| wrong("topic", "a URI"))?.to_owned()),
        };
        Ok(Query {
            reverse,
            limit: id("limit")?.map(|n| n as usize),
            from_time: time("from_time")?,
            after_time: time("after_time")?,
            before_time: time("before_time")?,
            until_time: time("until_time")?,
            topic,
            from_publication: id("from_publication")?,
            after_publication: id("after_publication")?,
            before_publication: id("before_publication")?,
            until_publication: id("until_publication")?,
        })
    }
}

/// Milliseconds since the epoch of an RFC 3339 timestamp
/// (`2026-11-24T21:29:49.123Z`, `2026-11-24T22:29:49+01:00`).
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = s.get(from..from + len)?;
        part.bytes().all(|c| c.is_ascii_digit()).then(|| part.parse().ok())?
    };
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut millis = 0i64;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let padded: String = frac[..digits].chars().chain("000".chars()).take(3).collect();
        millis = padded.parse().ok()?;
        rest = &frac[digits..];
    }
    let offset_min = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && matches!(rest.as_bytes()[0], b'+' | b'-') && rest.as_bytes()[3] == b':' => {
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            sign * (rest[1..3].parse::<i64>().ok()? * 60 + rest[4..6].parse::<i64>().ok()?)
        }
        _ => return None,
    };
    // days from the civil date (Howard Hinnant's algorithm)
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_min * 60;
    u64::try_from(secs * 1000 + millis).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips_with_iso8601() {
        for ms in [0u64, 951_782_400_000, 1_795_000_000_123, 4_102_444_799_999] {
            assert_eq!(parse_rfc3339(&super::super::meta::iso8601(ms)), Some(ms));
        }
        assert_eq!(parse_rfc3339("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(parse_rfc3339("1970-01-01T00:00:01.5Z"), Some(1500));
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00"), None);
        assert_eq!(parse_rfc3339("1970-13-01T00:00:00Z"), None);
        assert_eq!(parse_rfc3339("not a time at all!!!"), None);
    }

    fn ev(h: &History, n: u64, topic: &str) {
        let payload = Payload::args(vec![n.into()]);
        h.record(topic, PublicationId(n), &Dict::new(), &payload, &Audience::default());
    }

    fn pubs(list: &List) -> Vec<u64> {
        list.iter().filter_map(|v| v.as_dict()?.get("publication")?.as_u64()).collect()
    }

    #[test]
    fn keeps_the_last_events_and_filters_them() {
        let h = History::new(4, usize::MAX);
        for n in 1..=6 {
            ev(&h, n, if n % 2 == 0 { "a.even" } else { "a.odd" });
        }
        let all = |q: Query| pubs(&h.query(SubscriptionId(9), &q, "x", "y"));
        assert_eq!(all(Query::default()), vec![3, 4, 5, 6], "bounded by the limit");
        assert_eq!(all(Query { reverse: true, limit: Some(2), ..Query::default() }), vec![6, 5]);
        assert_eq!(all(Query { after_publication: Some(4), ..Query::default() }), vec![5, 6]);
        assert_eq!(all(Query { from_publication: Some(4), ..Query::default() }), vec![4, 5, 6]);
        assert_eq!(all(Query { before_publication: Some(5), ..Query::default() }), vec![3, 4]);
        assert_eq!(all(Query { until_publication: Some(5), ..Query::default() }), vec![3, 4, 5]);
        assert_eq!(all(Query { topic: Some("a.even".into()), ..Query::default() }), vec![4, 6]);
        assert_eq!(all(Query { from_time: Some(u64::MAX), ..Query::default() }), Vec::<u64>::new());
        assert_eq!(all(Query { until_time: Some(u64::MAX), ..Query::default() }), vec![3, 4, 5, 6]);
    }

    #[test]
    fn history_beyond_its_bytes_drops_the_oldest() {
        let size = |n: u64| {
            let h = History::new(10, usize::MAX);
            ev(&h, n, "t");
            h.events.lock().map(|g| g.1).unwrap_or_default()
        };
        let one = size(1);
        let h = History::new(100, 3 * one);
        for n in 1..=5 {
            ev(&h, n, "t");
        }
        assert_eq!(pubs(&h.query(SubscriptionId(1), &Query::default(), "u", "r")), vec![3, 4, 5]);
        let big = Payload::args(vec![Value::Str("x".repeat(4 * one))]);
        h.record("t", PublicationId(6), &Dict::new(), &big, &Audience::default());
        assert_eq!(
            pubs(&h.query(SubscriptionId(1), &Query::default(), "u", "r")),
            vec![3, 4, 5],
            "an event larger than the bound is not kept"
        );
    }

    #[test]
    fn audience_rules() {
        let h = History::new(10, usize::MAX);
        let by_role = Audience::from_options(&dict! { "eligible_authrole" => vec![Value::from("admin")] });
        let by_session = Audience::from_options(&dict! { "exclude" => vec![Value::from(5u64)] });
        h.record("t", PublicationId(1), &Dict::new(), &Payload::default(), &by_role.unwrap_or_default());
        h.record("t", PublicationId(2), &Dict::new(), &Payload::default(), &by_session.unwrap_or_default());
        assert_eq!(pubs(&h.query(SubscriptionId(1), &Query::default(), "u", "admin")), vec![1]);
        assert!(h.query(SubscriptionId(1), &Query::default(), "u", "user").is_empty());
    }

    #[test]
    fn bad_filters_are_refused() {
        assert!(Query::from_kwargs(&dict! { "from_time" => "yesterday" }).is_err());
        assert!(Query::from_kwargs(&dict! { "limit" => 0u64 }).is_err());
        assert!(Query::from_kwargs(&dict! { "reverse" => "yes" }).is_err());
        let q = Query::from_kwargs(&dict! { "limit" => 3u64, "reverse" => true });
        assert_eq!(q, Ok(Query { limit: Some(3), reverse: true, ..Query::default() }));
    }
}
