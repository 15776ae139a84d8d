//! The `[[realms.history]]` entries of a realm: topics whose events are kept for
//! `wamp.subscription.get_events` (see `router::history`).

use serde::Deserialize;

use crate::wamp::uri::{self, MatchPolicy, UriCheck};

/// Most events a topic may be configured to keep.
pub const MAX_LIMIT: usize = 100_000;

/// A `[[realms.history]]` entry that cannot be used, or a bad
/// `wamp.subscription.get_events` argument; the message names the key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HistoryError {
    /// `match` is none of the known policies.
    #[error("history match {0:?} is not exact, prefix or wildcard")]
    Match(Option<String>),
    /// The topic is not a valid URI or pattern for its policy.
    #[error("history topic {topic:?} is not a valid {policy} URI")]
    Topic { topic: String, policy: &'static str },
    /// `limit` is 0 or above [`MAX_LIMIT`].
    #[error("history limit {limit} for {topic:?} must be 1..={MAX_LIMIT}")]
    Limit { limit: usize, topic: String },
    /// A `get_events` keyword argument has the wrong type; the message says which.
    #[error("{key} must be {expected}")]
    Argument { key: String, expected: &'static str },
}

/// `[[realms.history]]`: a topic (or pattern) whose events are kept.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HistoryConfig {
    /// The topic URI or pattern.
    pub topic: String,
    /// `exact` (default), `prefix` or `wildcard`.
    #[serde(rename = "match", default)]
    pub match_policy: Option<String>,
    /// Events kept; the oldest is dropped beyond it.
    #[serde(default = "default_limit")]
    pub limit: usize,
}

fn default_limit() -> usize {
    100
}

impl HistoryConfig {
    /// The match policy, or why the configuration is wrong.
    pub fn policy(&self) -> Result<MatchPolicy, HistoryError> {
        let policy = MatchPolicy::parse(self.match_policy.as_deref())
            .ok_or_else(|| HistoryError::Match(self.match_policy.clone()))?;
        if !uri::is_valid_pattern(&self.topic, policy, UriCheck::Loose) {
            return Err(HistoryError::Topic { topic: self.topic.clone(), policy: policy.as_str() });
        }
        if self.limit == 0 || self.limit > MAX_LIMIT {
            return Err(HistoryError::Limit { limit: self.limit, topic: self.topic.clone() });
        }
        Ok(policy)
    }
}
