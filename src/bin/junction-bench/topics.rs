//! The pub/sub scenario's topic space: the concrete topics publishers publish to, each
//! subscriber's subscription (an exact topic, or a prefix or wildcard pattern), and
//! which topics a subscription matches (the expected fan-out, for flow control and
//! loss accounting).
//!
//! Exact: topic t is `<base>.<t>`, subscriber s subscribes to topic s mod T.
//! Patterns: N distinct patterns; topic t is `<base>.g<t mod N>.t<t>.event`, and
//! subscriber s subscribes to pattern g = s mod N: prefix `<base>.g<g>.` or wildcard
//! `<base>.g<g>..event`, which match exactly the topics of group g.

use junction::dict;
use junction::wamp::value::Dict;

use crate::cli::Match;

/// Topics and subscriptions of one run.
pub struct TopicSpace {
    /// The concrete topics, by index.
    pub topics: Vec<String>,
    base: String,
    policy: Match,
    patterns: usize,
}

impl TopicSpace {
    /// `topics` topics under `base`; `patterns` distinct patterns unless `policy` is exact.
    pub fn new(base: &str, topics: usize, policy: Match, patterns: usize) -> TopicSpace {
        let (topics, patterns) = (topics.max(1), patterns.max(1));
        let names = (0..topics)
            .map(|t| match policy {
                Match::Exact => format!("{base}.{t}"),
                Match::Prefix | Match::Wildcard => format!("{base}.g{}.t{t}.event", t % patterns),
            })
            .collect();
        TopicSpace { topics: names, base: base.to_owned(), policy, patterns }
    }

    /// True when subscribers use patterns (events then carry their topic's index).
    pub fn is_pattern(&self) -> bool {
        self.policy != Match::Exact
    }

    /// Subscriber `s`'s SUBSCRIBE topic and options.
    pub fn subscription(&self, s: usize) -> (String, Dict) {
        let g = s % self.patterns;
        match self.policy {
            Match::Exact => (self.topics[s % self.topics.len()].clone(), Dict::new()),
            Match::Prefix => (format!("{}.g{g}.", self.base), dict! { "match" => "prefix" }),
            Match::Wildcard => (format!("{}.g{g}..event", self.base), dict! { "match" => "wildcard" }),
        }
    }

    /// True when subscriber `s` receives events published to topic `t`.
    pub fn matches(&self, s: usize, t: usize) -> bool {
        match self.policy {
            Match::Exact => s % self.topics.len() == t,
            Match::Prefix | Match::Wildcard => s % self.patterns == t % self.patterns,
        }
    }

    /// The topics subscriber `s` receives.
    pub fn topics_of(&self, s: usize) -> Vec<usize> {
        (0..self.topics.len()).filter(|&t| self.matches(s, t)).collect()
    }

    /// Subscribers per topic, for `subscribers` subscribers.
    pub fn fanout(&self, subscribers: usize) -> Vec<u64> {
        let mut fanout = vec![0u64; self.topics.len()];
        for s in 0..subscribers {
            for t in self.topics_of(s) {
                fanout[t] += 1;
            }
        }
        fanout
    }

    /// The label's suffix: empty for exact, else e.g. `-wildcard100`.
    pub fn label_suffix(&self) -> String {
        match self.policy {
            Match::Exact => String::new(),
            Match::Prefix => format!("-prefix{}", self.patterns),
            Match::Wildcard => format!("-wildcard{}", self.patterns),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use junction::wamp::pattern::PatternIndex;
    use junction::wamp::uri::MatchPolicy;

    #[test]
    fn patterns_match_exactly_their_group() {
        for (policy, wamp) in [(Match::Prefix, MatchPolicy::Prefix), (Match::Wildcard, MatchPolicy::Wildcard)]
        {
            let space = TopicSpace::new("bench.topic.x", 30, policy, 12);
            let mut index = PatternIndex::default();
            for s in 0..12 {
                index.insert(&space.subscription(s).0, wamp, s);
            }
            for (t, topic) in space.topics.iter().enumerate() {
                let mut out = Vec::new();
                index.matches(topic, &mut out);
                let mut got: Vec<usize> = out.into_iter().copied().collect();
                got.sort();
                let want: Vec<usize> = (0..12).filter(|&s| space.matches(s, t)).collect();
                assert_eq!(got, want, "{policy:?} {topic}");
            }
            assert_eq!(space.fanout(24).iter().sum::<u64>(), 30 * 2);
        }
    }
}
