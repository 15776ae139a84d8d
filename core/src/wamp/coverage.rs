//! Relations between URI patterns, as sets of the concrete URIs they match: does one
//! pattern cover another (every URI the second matches, the first matches too), do two
//! patterns share a URI, and which of two patterns takes precedence on the URIs they
//! share (exact, then the longer prefix, then the better wildcard — the spec's order,
//! the one [`super::pattern::PatternIndex::best`] follows).
//!
//! Authorization uses them to decide a pattern-based SUBSCRIBE or REGISTER: a pattern
//! is allowed only when every URI it can match is allowed
//! ([`crate::roles::decide_pattern`]).

use super::uri::{self, MatchPolicy};

/// A URI pattern and its match policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pattern<'a> {
    pub uri: &'a str,
    pub policy: MatchPolicy,
}

impl<'a> Pattern<'a> {
    /// The pattern; a wildcard pattern without an empty component matches one URI
    /// and is treated as exact.
    pub fn new(uri: &'a str, policy: MatchPolicy) -> Self {
        let policy = match policy {
            MatchPolicy::Wildcard if !uri.split('.').any(str::is_empty) => MatchPolicy::Exact,
            p => p,
        };
        Pattern { uri, policy }
    }

    /// True when every URI `other` matches is matched by `self` too.
    pub fn covers(&self, other: &Pattern) -> bool {
        use MatchPolicy::*;
        match (self.policy, other.policy) {
            (_, Exact) => uri::matches(self.uri, self.policy, other.uri),
            (Exact, _) => false,
            (Prefix, Prefix) => other.uri.starts_with(self.uri),
            (Prefix, Wildcard) => literal_head(other.uri).starts_with(self.uri),
            (Wildcard, Prefix) => false,
            (Wildcard, Wildcard) => {
                same_length(self.uri, other.uri)
                    && self.uri.split('.').zip(other.uri.split('.')).all(|(s, o)| s.is_empty() || s == o)
            }
        }
    }

    /// True when some URI is matched by both patterns.
    pub fn intersects(&self, other: &Pattern) -> bool {
        use MatchPolicy::*;
        match (self.policy, other.policy) {
            (_, Exact) => uri::matches(self.uri, self.policy, other.uri),
            (Exact, _) => uri::matches(other.uri, other.policy, self.uri),
            (Prefix, Prefix) => self.uri.starts_with(other.uri) || other.uri.starts_with(self.uri),
            (Prefix, Wildcard) => prefix_meets_wildcard(self.uri, other.uri),
            (Wildcard, Prefix) => prefix_meets_wildcard(other.uri, self.uri),
            (Wildcard, Wildcard) => {
                same_length(self.uri, other.uri)
                    && self
                        .uri
                        .split('.')
                        .zip(other.uri.split('.'))
                        .all(|(a, b)| a.is_empty() || b.is_empty() || a == b)
            }
        }
    }

    /// True when, on the URIs both match, `self` takes precedence over `other`.
    pub fn beats(&self, other: &Pattern) -> bool {
        use MatchPolicy::*;
        match (self.policy, other.policy) {
            (Exact, Exact) => false,
            (Exact, _) => true,
            (_, Exact) => false,
            (Prefix, Prefix) => self.uri.len() > other.uri.len(),
            (Prefix, Wildcard) => true,
            (Wildcard, Prefix) => false,
            (Wildcard, Wildcard) => self
                .uri
                .split('.')
                .zip(other.uri.split('.'))
                .find(|(a, b)| a.is_empty() != b.is_empty())
                .is_some_and(|(a, _)| !a.is_empty()),
        }
    }
}

fn same_length(a: &str, b: &str) -> bool {
    a.split('.').count() == b.split('.').count()
}

/// What every URI a wildcard pattern matches starts with: its components up to the
/// first empty one, each followed by a dot.
fn literal_head(wildcard: &str) -> &str {
    let mut end = 0;
    for c in wildcard.split('.') {
        if c.is_empty() {
            break;
        }
        end += c.len() + 1;
    }
    &wildcard[..end.min(wildcard.len())]
}

/// True when some URI matched by `wildcard` starts with `prefix`.
fn prefix_meets_wildcard(prefix: &str, wildcard: &str) -> bool {
    let w: Vec<&str> = wildcard.split('.').collect();
    let p: Vec<&str> = prefix.split('.').collect();
    if p.len() > w.len() {
        return false;
    }
    let (last, whole) = p.split_last().unwrap_or((&"", &[]));
    whole.iter().zip(&w).all(|(pc, wc)| !pc.is_empty() && (wc.is_empty() || wc == pc))
        && (w[whole.len()].is_empty() || w[whole.len()].starts_with(last))
}

#[cfg(test)]
mod tests {
    use super::*;
    use MatchPolicy::*;

    fn p(uri: &str, policy: MatchPolicy) -> Pattern<'_> {
        Pattern::new(uri, policy)
    }

    #[test]
    fn covering() {
        assert!(p("com.app.", Prefix).covers(&p("com.app.x.", Prefix)));
        assert!(p("com.app", Prefix).covers(&p("com.apple", Prefix)));
        assert!(!p("com.app.secret.", Prefix).covers(&p("com.app.", Prefix)));
        assert!(p("com.app.", Prefix).covers(&p("com.app..x", Wildcard)));
        assert!(!p("com.app.x", Prefix).covers(&p("com.app..x", Wildcard)));
        assert!(p("", Prefix).covers(&p("..x", Wildcard)));
        assert!(!p("com..x", Wildcard).covers(&p("com.a", Prefix)));
        assert!(p("com..", Wildcard).covers(&p("com.a.", Wildcard)));
        assert!(!p("com.a.", Wildcard).covers(&p("com..", Wildcard)));
        assert!(p("com..x", Wildcard).covers(&p("com.y.x", Exact)));
        assert!(!p("com.y.x", Exact).covers(&p("com..x", Wildcard)));
        assert_eq!(p("com.a.b", Wildcard).policy, Exact, "no wildcard component: one URI");
    }

    #[test]
    fn intersecting() {
        assert!(p("com.app.secret.", Prefix).intersects(&p("com.app.", Prefix)));
        assert!(!p("com.other.", Prefix).intersects(&p("com.app.", Prefix)));
        assert!(p("com.app.secret.", Prefix).intersects(&p("com..secret.x", Wildcard)));
        assert!(p("com.app.secret.", Prefix).intersects(&p("com.app..x", Wildcard)));
        assert!(!p("com.app.secret.", Prefix).intersects(&p("com.app", Exact)));
        assert!(!p("com.app.secret.", Prefix).intersects(&p("com..", Wildcard)), "too short");
        assert!(p("com.app.sec", Prefix).intersects(&p("com.app.secret", Exact)));
        assert!(p("com.app.sec", Prefix).intersects(&p("com..secret", Wildcard)));
        assert!(!p("com.app.sec", Prefix).intersects(&p("com..public", Wildcard)));
        assert!(p("a..c", Wildcard).intersects(&p("a.b.", Wildcard)));
        assert!(!p("a..c", Wildcard).intersects(&p("a.b.d", Wildcard)));
        assert!(!p("a..c", Wildcard).intersects(&p("a.b", Wildcard)));
    }

    #[test]
    fn precedence_on_shared_uris() {
        assert!(p("com.app.secret.x", Exact).beats(&p("com.app.", Prefix)));
        assert!(p("com.app.secret.", Prefix).beats(&p("com.app.", Prefix)));
        assert!(!p("com.app.", Prefix).beats(&p("com.app.secret.", Prefix)));
        assert!(p("com.", Prefix).beats(&p("com.app..x", Wildcard)));
        assert!(p("a.b.", Wildcard).beats(&p("a..c", Wildcard)), "a concrete component earlier wins");
        assert!(!p("a..c", Wildcard).beats(&p("a.b.", Wildcard)));
    }
}
