//! URI rules: loose and strict checking, match policies, and the reserved `wamp.` prefix.
//!
//! Loose URIs (the default) forbid whitespace, `#` and empty components; strict URIs
//! (a realm option) allow only `[0-9a-z_]` in each component. Pattern-based
//! subscriptions and registrations use `prefix` (a URI that may end anywhere) or
//! `wildcard` (empty components stand for "any component").

/// How a realm checks URIs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UriCheck {
    /// `^([^\s\.#]+\.)*([^\s\.#]+)$`
    #[default]
    Loose,
    /// `^([0-9a-z_]+\.)*([0-9a-z_]+)$`
    Strict,
}

/// How a subscription or registration matches URIs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum MatchPolicy {
    /// The URI must be equal.
    Exact,
    /// The URI must start with the pattern.
    Prefix,
    /// Empty components of the pattern match any one component.
    Wildcard,
}

impl MatchPolicy {
    /// Parses the `match` option; absent means exact.
    pub fn parse(s: Option<&str>) -> Option<MatchPolicy> {
        match s {
            None | Some("exact") => Some(MatchPolicy::Exact),
            Some("prefix") => Some(MatchPolicy::Prefix),
            Some("wildcard") => Some(MatchPolicy::Wildcard),
            Some(_) => None,
        }
    }

    /// The option value as the spec spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            MatchPolicy::Exact => "exact",
            MatchPolicy::Prefix => "prefix",
            MatchPolicy::Wildcard => "wildcard",
        }
    }
}

fn component_ok(c: &str, check: UriCheck) -> bool {
    match check {
        UriCheck::Loose => !c.is_empty() && !c.chars().any(|ch| ch.is_whitespace() || ch == '#'),
        UriCheck::Strict => {
            !c.is_empty() && c.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        }
    }
}

/// True when `uri` is a valid concrete URI (topic, procedure, error) under `check`.
pub fn is_valid(uri: &str, check: UriCheck) -> bool {
    !uri.is_empty() && uri.split('.').all(|c| component_ok(c, check))
}

/// True when `pattern` is valid for the given match policy.
pub fn is_valid_pattern(pattern: &str, policy: MatchPolicy, check: UriCheck) -> bool {
    match policy {
        MatchPolicy::Exact => is_valid(pattern, check),
        MatchPolicy::Prefix => {
            let trimmed = pattern.strip_suffix('.').unwrap_or(pattern);
            is_valid(trimmed, check)
        }
        MatchPolicy::Wildcard => {
            pattern.contains('.') && pattern.split('.').all(|c| c.is_empty() || component_ok(c, check))
        }
    }
}

/// True when `uri` lies in the namespace reserved for the router (`wamp.`).
pub fn is_reserved(uri: &str) -> bool {
    uri.starts_with("wamp.") || uri.starts_with("junction.")
}

/// True when the concrete `uri` matches `pattern` under `policy`.
pub fn matches(pattern: &str, policy: MatchPolicy, uri: &str) -> bool {
    match policy {
        MatchPolicy::Exact => pattern == uri,
        MatchPolicy::Prefix => uri.starts_with(pattern),
        MatchPolicy::Wildcard => {
            let mut p = pattern.split('.');
            let mut u = uri.split('.');
            loop {
                match (p.next(), u.next()) {
                    (None, None) => return true,
                    (Some(pc), Some(uc)) if pc.is_empty() || pc == uc => {}
                    _ => return false,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loose_uris() {
        for ok in ["com.myapp.topic1", "a", "com.my-app.Ünïcode", "a.b.c.d_e"] {
            assert!(is_valid(ok, UriCheck::Loose), "{ok}");
        }
        for bad in ["", "com..a", ".com", "com.", "com.my app", "com.#a", "a.\tb"] {
            assert!(!is_valid(bad, UriCheck::Loose), "{bad:?}");
        }
    }

    #[test]
    fn strict_uris() {
        assert!(is_valid("com.myapp.topic_1", UriCheck::Strict));
        for bad in ["com.MyApp", "com.my-app", "com..a", "com.ü"] {
            assert!(!is_valid(bad, UriCheck::Strict), "{bad}");
        }
    }

    #[test]
    fn patterns() {
        assert!(is_valid_pattern("com.myapp.", MatchPolicy::Prefix, UriCheck::Loose));
        assert!(is_valid_pattern("com..update", MatchPolicy::Wildcard, UriCheck::Loose));
        assert!(!is_valid_pattern("com..update", MatchPolicy::Exact, UriCheck::Loose));
        assert!(!is_valid_pattern("com.#.update", MatchPolicy::Wildcard, UriCheck::Loose));
        assert!(matches("com.myapp", MatchPolicy::Prefix, "com.myapp.a.b"));
        assert!(matches("com..update", MatchPolicy::Wildcard, "com.x.update"));
        assert!(!matches("com..update", MatchPolicy::Wildcard, "com.x.y.update"));
        assert!(!matches("com..update", MatchPolicy::Wildcard, "com.x"));
        assert!(matches("a.b", MatchPolicy::Exact, "a.b"));
        assert!(!matches("a.b", MatchPolicy::Exact, "a.b.c"));
    }

    #[test]
    fn reserved_and_policy_parse() {
        assert!(is_reserved("wamp.session.count"));
        assert!(!is_reserved("wampx.a"));
        assert!(is_reserved("junction.cluster.status"), "the router's own procedures");
        assert!(!is_reserved("junctionx.a"));
        assert_eq!(MatchPolicy::parse(None), Some(MatchPolicy::Exact));
        assert_eq!(MatchPolicy::parse(Some("prefix")), Some(MatchPolicy::Prefix));
        assert_eq!(MatchPolicy::parse(Some("regex")), None);
    }
}
