//! Who may receive an event: publisher exclusion and subscriber black/white listing
//! (`exclude`, `eligible`, `exclude_authid`, `eligible_authid`, `exclude_authrole`,
//! `eligible_authrole`). All given rules must admit a subscriber (AND semantics).
//! The rules travel with an event to other nodes, so every node applies them.

use crate::ids::SessionId;
use crate::wamp::value::{Dict, Value};

/// The option keys that make up an audience.
pub const KEYS: [&str; 6] =
    ["exclude", "eligible", "exclude_authid", "eligible_authid", "exclude_authrole", "eligible_authrole"];

/// The receivers a publication admits.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Audience {
    exclude: Vec<u64>,
    eligible: Option<Vec<u64>>,
    exclude_authid: Vec<String>,
    eligible_authid: Option<Vec<String>>,
    exclude_authrole: Vec<String>,
    eligible_authrole: Option<Vec<String>>,
}

/// A malformed audience option.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("PUBLISH option {0} must be a list of {1}")]
pub struct AudienceError(pub &'static str, pub &'static str);

fn ids(d: &Dict, key: &'static str) -> Result<Option<Vec<u64>>, AudienceError> {
    let Some(v) = d.get(key) else { return Ok(None) };
    let list = v.as_list().ok_or(AudienceError(key, "session ids"))?;
    list.iter()
        .map(|i| i.as_u64().ok_or(AudienceError(key, "session ids")))
        .collect::<Result<_, _>>()
        .map(Some)
}

fn strings(d: &Dict, key: &'static str) -> Result<Option<Vec<String>>, AudienceError> {
    let Some(v) = d.get(key) else { return Ok(None) };
    let list = v.as_list().ok_or(AudienceError(key, "strings"))?;
    list.iter()
        .map(|i| i.as_str().map(str::to_owned).ok_or(AudienceError(key, "strings")))
        .collect::<Result<_, _>>()
        .map(Some)
}

impl Audience {
    /// Reads the audience from PUBLISH.Options.
    pub fn from_options(d: &Dict) -> Result<Audience, AudienceError> {
        Ok(Audience {
            exclude: ids(d, "exclude")?.unwrap_or_default(),
            eligible: ids(d, "eligible")?,
            exclude_authid: strings(d, "exclude_authid")?.unwrap_or_default(),
            eligible_authid: strings(d, "eligible_authid")?,
            exclude_authrole: strings(d, "exclude_authrole")?.unwrap_or_default(),
            eligible_authrole: strings(d, "eligible_authrole")?,
        })
    }

    /// True when a rule names sessions by id: such a publication is not kept in
    /// event history (session ids mean nothing to a later session).
    pub fn names_sessions(&self) -> bool {
        !self.exclude.is_empty() || self.eligible.is_some()
    }

    /// True when no rule is set (every subscriber is admitted).
    pub fn is_open(&self) -> bool {
        *self == Audience::default()
    }

    /// True when a subscriber with this identity may receive the event.
    pub fn admits(&self, session: SessionId, authid: &str, authrole: &str) -> bool {
        let in_ids = |l: &Vec<u64>| l.contains(&session.0);
        let in_strs = |l: &Vec<String>, s: &str| l.iter().any(|x| x == s);
        !in_ids(&self.exclude)
            && self.eligible.as_ref().is_none_or(in_ids)
            && !in_strs(&self.exclude_authid, authid)
            && self.eligible_authid.as_ref().is_none_or(|l| in_strs(l, authid))
            && !in_strs(&self.exclude_authrole, authrole)
            && self.eligible_authrole.as_ref().is_none_or(|l| in_strs(l, authrole))
    }

    /// The audience as PUBLISH options again (to forward it to another node).
    pub fn to_options(&self) -> Dict {
        let mut d = Dict::new();
        let ids = |l: &[u64]| Value::List(l.iter().map(|&i| Value::from(i)).collect());
        let strs = |l: &[String]| Value::List(l.iter().map(|s| Value::from(s.as_str())).collect());
        if !self.exclude.is_empty() {
            d.insert("exclude".into(), ids(&self.exclude));
        }
        if let Some(l) = &self.eligible {
            d.insert("eligible".into(), ids(l));
        }
        if !self.exclude_authid.is_empty() {
            d.insert("exclude_authid".into(), strs(&self.exclude_authid));
        }
        if let Some(l) = &self.eligible_authid {
            d.insert("eligible_authid".into(), strs(l));
        }
        if !self.exclude_authrole.is_empty() {
            d.insert("exclude_authrole".into(), strs(&self.exclude_authrole));
        }
        if let Some(l) = &self.eligible_authrole {
            d.insert("eligible_authrole".into(), strs(l));
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dict;

    fn list<T: Into<Value> + Clone>(items: &[T]) -> Value {
        Value::List(items.iter().cloned().map(Into::into).collect())
    }

    #[test]
    fn open_audience_admits_everyone() {
        let a = Audience::from_options(&Dict::new()).unwrap_or_default();
        assert!(a.is_open());
        assert!(a.admits(SessionId(1), "x", "y"));
    }

    #[test]
    fn rules_combine_with_and() {
        let opts = dict! {
            "eligible" => list(&[1u64, 2, 3]),
            "exclude" => list(&[2u64]),
            "eligible_authrole" => list(&["user"]),
            "exclude_authid" => list(&["mallory"]),
        };
        let a = Audience::from_options(&opts).expect("valid");
        assert!(a.admits(SessionId(1), "alice", "user"));
        assert!(!a.admits(SessionId(2), "alice", "user"), "excluded id");
        assert!(!a.admits(SessionId(4), "alice", "user"), "not eligible");
        assert!(!a.admits(SessionId(3), "alice", "admin"), "role not eligible");
        assert!(!a.admits(SessionId(3), "mallory", "user"), "authid excluded");
        assert_eq!(Audience::from_options(&a.to_options()), Ok(a));
    }

    #[test]
    fn malformed_rules_are_errors() {
        assert!(Audience::from_options(&dict! { "exclude" => "x" }).is_err());
        assert!(Audience::from_options(&dict! { "eligible_authid" => list(&[1u64]) }).is_err());
    }
}
