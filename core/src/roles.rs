//! Authorization, without I/O: which role may `call`, `register`, `publish` and
//! `subscribe` on which URI, and whose identity the router discloses.
//!
//! ```toml
//! [[realms.roles]]
//! name = "user"
//! [[realms.roles.permissions]]
//! uri = "com.example."         # the pattern
//! match = "prefix"             # exact (default), prefix or wildcard
//! call = true                  # each action defaults to false
//! register = false
//! publish = true
//! subscribe = true
//! disclose = { caller = true, publisher = false }   # disclose this role's identity
//!
//! [[realms.roles]]
//! name = "device"
//! authorizer = "com.example.authorize"   # a WAMP procedure decides (dynamic)
//! authorizer_role = "backend"            # the only role that may register it
//! cache_ttl_ms = 10000                   # cache its answers (0: don't)
//! cache_size = 10000                     # at most this many cached answers
//! ```
//!
//! A realm with no roles at all (in the file or set at run time) authorizes every
//! action: the development default. Once it has roles, a session whose role is not
//! among them may do nothing. Within a role the most specific matching permission
//! decides, with the same precedence as pattern-based registrations: exact, then
//! longest prefix, then the best wildcard.
//!
//! A dynamic authorizer is called as `authorize(session, uri, action, options)`
//! (Crossbar.io's signature: `session` is `{session, authid, authrole, authmethod,
//! authprovider}`) and answers a boolean or `{"allow": bool, "disclose": bool,
//! "cache": bool}`. Its answers are cached per (authid, authrole, uri, action) for
//! `cache_ttl_ms` unless it says `cache: false`; an error or no answer denies.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::wamp::coverage::Pattern;
use crate::wamp::pattern::PatternIndex;
use crate::wamp::uri::{self, MatchPolicy};
use crate::wamp::value::Value;

/// Something a session asks to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    Call,
    Register,
    Publish,
    Subscribe,
}

impl Action {
    /// The action as the configuration and authorizers spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Call => "call",
            Action::Register => "register",
            Action::Publish => "publish",
            Action::Subscribe => "subscribe",
        }
    }
}

/// Identity disclosure for a role's actions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Disclose {
    /// Callees see this role's callers (as if they set `disclose_me`).
    #[serde(default)]
    pub caller: bool,
    /// Subscribers see this role's publishers.
    #[serde(default)]
    pub publisher: bool,
}

/// One permission of a role.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Permission {
    /// The URI pattern.
    pub uri: String,
    /// `exact`, `prefix` or `wildcard`.
    #[serde(rename = "match", default)]
    pub match_policy: Option<String>,
    #[serde(default)]
    pub call: bool,
    #[serde(default)]
    pub register: bool,
    #[serde(default)]
    pub publish: bool,
    #[serde(default)]
    pub subscribe: bool,
    #[serde(default)]
    pub disclose: Disclose,
}

impl Permission {
    fn allows(&self, action: Action) -> bool {
        match action {
            Action::Call => self.call,
            Action::Register => self.register,
            Action::Publish => self.publish,
            Action::Subscribe => self.subscribe,
        }
    }
}

/// A role: static permissions, or a dynamic authorizer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleConfig {
    /// The authrole.
    pub name: String,
    /// Static permissions.
    #[serde(default)]
    pub permissions: Vec<Permission>,
    /// A WAMP procedure deciding instead (then `permissions` must be empty).
    #[serde(default)]
    pub authorizer: Option<String>,
    /// The only authrole that may register `authorizer` (required with it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorizer_role: Option<String>,
    /// How long an authorizer's answer is reused, in milliseconds (0: never).
    #[serde(default = "default_ttl")]
    pub cache_ttl_ms: u64,
    /// Most answers cached for this role.
    #[serde(default = "default_cache_size")]
    pub cache_size: usize,
}

fn default_ttl() -> u64 {
    10_000
}

fn default_cache_size() -> usize {
    10_000
}

/// A role definition (configured or set at run time) that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RoleError {
    /// The role has no name.
    #[error("a role needs a name")]
    Unnamed,
    /// The role is malformed; the reason names the field.
    #[error("role {role:?}: {reason}")]
    Invalid { role: String, reason: String },
    /// The WAMP value does not convert to a role definition.
    #[error("{0}")]
    Value(String),
}

impl RoleConfig {
    /// Checks the role; the message names what is wrong.
    pub fn check(&self) -> Result<(), RoleError> {
        let bad = |reason: String| RoleError::Invalid { role: self.name.clone(), reason };
        if self.name.is_empty() {
            return Err(RoleError::Unnamed);
        }
        if let Some(a) = &self.authorizer {
            if !self.permissions.is_empty() {
                return Err(bad("`authorizer` and `permissions` exclude each other".into()));
            }
            if !uri::is_valid(a, uri::UriCheck::Loose) {
                return Err(bad(format!("authorizer {a:?} is not a valid URI")));
            }
            if self.authorizer_role.as_deref().is_none_or(str::is_empty) {
                return Err(bad(format!(
                    "authorizer needs authorizer_role, the only role that may register {a:?}"
                )));
            }
        }
        if self.cache_size == 0 && self.cache_ttl_ms > 0 {
            return Err(bad("cache_size must be positive".into()));
        }
        for p in &self.permissions {
            let policy = MatchPolicy::parse(p.match_policy.as_deref())
                .ok_or_else(|| bad(format!("match {:?} is not exact, prefix or wildcard", p.match_policy)))?;
            let empty_prefix = policy == MatchPolicy::Prefix && p.uri.is_empty();
            if !empty_prefix && !uri::is_valid_pattern(&p.uri, policy, uri::UriCheck::Loose) {
                return Err(bad(format!(
                    "permission uri {:?} is not a valid {} pattern",
                    p.uri,
                    policy.as_str()
                )));
            }
        }
        Ok(())
    }

    /// The role from a WAMP value (`junction.role.set`), checked.
    pub fn from_value(name: &str, v: &Value) -> Result<RoleConfig, RoleError> {
        let mut json = serde_json::to_value(v).map_err(|e| RoleError::Value(e.to_string()))?;
        if let Some(obj) = json.as_object_mut() {
            obj.insert("name".into(), name.into());
        }
        let role: RoleConfig = serde_json::from_value(json)
            .map_err(|e| RoleError::Invalid { role: name.to_owned(), reason: e.to_string() })?;
        role.check()?;
        Ok(role)
    }

    /// The role as a WAMP value (`junction.role.get`).
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).ok().and_then(|j| serde_json::from_value(j).ok()).unwrap_or(Value::Null)
    }
}

/// A role ready for checks.
#[derive(Debug)]
pub enum Role {
    /// Static permissions by URI pattern.
    Static(StaticRole),
    /// A procedure decides, answers cached.
    Dynamic { procedure: String, cache: std::sync::Mutex<Cache> },
}

impl Role {
    /// Compiles a checked role.
    pub fn new(cfg: &RoleConfig) -> Role {
        match &cfg.authorizer {
            Some(p) => Role::Dynamic {
                procedure: p.clone(),
                cache: std::sync::Mutex::new(Cache::new(cfg.cache_ttl_ms, cfg.cache_size)),
            },
            None => {
                let mut index = PatternIndex::default();
                let mut all = Vec::with_capacity(cfg.permissions.len());
                for p in &cfg.permissions {
                    let policy = MatchPolicy::parse(p.match_policy.as_deref()).unwrap_or(MatchPolicy::Exact);
                    index.insert(&p.uri, policy, p.clone());
                    all.push((policy, p.clone()));
                }
                Role::Static(StaticRole { index, all })
            }
        }
    }
}

/// A role's static permissions: indexed for concrete URIs, and listed for patterns.
#[derive(Debug, Default)]
pub struct StaticRole {
    index: PatternIndex<Permission>,
    /// Every permission with its parsed match policy.
    all: Vec<(MatchPolicy, Permission)>,
}

/// A static decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    pub allow: bool,
    pub disclose: bool,
}

/// Decides `action` on the concrete `uri` from static permissions.
pub fn decide(role: &StaticRole, uri: &str, action: Action) -> Decision {
    match role.index.best(uri) {
        Some(p) if p.allows(action) => Decision {
            allow: true,
            disclose: match action {
                Action::Call => p.disclose.caller,
                Action::Publish => p.disclose.publisher,
                _ => false,
            },
        },
        _ => Decision { allow: false, disclose: false },
    }
}

/// True when the permission deciding a call to `uri` allows it and its pattern lies
/// inside `namespace` (e.g. `wamp.`): an explicit grant, not a catch-all.
pub fn names_namespace(role: &StaticRole, uri: &str, namespace: &str) -> bool {
    role.index.best(uri).is_some_and(|p| p.allows(Action::Call) && p.uri.starts_with(namespace))
}

/// Decides `action` (a SUBSCRIBE or REGISTER) on a pattern: allowed only when every
/// URI the pattern can match is allowed. The most specific permission covering the
/// whole pattern must allow it, and no permission that denies it may take precedence
/// over that one on any URI the pattern shares with it (a deny for `com.app.secret.`
/// stops a subscription to prefix `com.app.` even though `com.app.` is allowed).
/// Disclosure does not apply to these actions.
pub fn decide_pattern(role: &StaticRole, uri: &str, policy: MatchPolicy, action: Action) -> Decision {
    const DENY: Decision = Decision { allow: false, disclose: false };
    let asked = Pattern::new(uri, policy);
    if asked.policy == MatchPolicy::Exact {
        return decide(role, uri, action);
    }
    let mut covering = role.all.iter().filter(|r| pattern(r).covers(&asked));
    let Some(first) = covering.next() else { return DENY };
    let best = covering.fold(first, |best, r| if pattern(r).beats(&pattern(best)) { r } else { best });
    if !best.1.allows(action) {
        return DENY;
    }
    let best_pattern = pattern(best);
    let overruled = role
        .all
        .iter()
        .any(|r| !r.1.allows(action) && pattern(r).intersects(&asked) && pattern(r).beats(&best_pattern));
    if overruled { DENY } else { Decision { allow: true, disclose: false } }
}

fn pattern((policy, p): &(MatchPolicy, Permission)) -> Pattern<'_> {
    Pattern::new(&p.uri, *policy)
}

/// Reads an authorizer's answer: a boolean, or `{allow, disclose, cache}`.
/// Returns the decision and whether it may be cached.
pub fn parse_answer(v: &Value) -> Option<(Decision, bool)> {
    match v {
        Value::Bool(b) => Some((Decision { allow: *b, disclose: false }, true)),
        Value::Dict(d) => {
            let flag = |k: &str, default: bool| d.get(k).and_then(Value::as_bool).unwrap_or(default);
            let allow = d.get("allow").and_then(Value::as_bool)?;
            Some((Decision { allow, disclose: flag("disclose", false) }, flag("cache", true)))
        }
        _ => None,
    }
}

/// What a session asks to do, on a URI or a pattern.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Asked<'a> {
    pub uri: &'a str,
    /// How a SUBSCRIBE or REGISTER matches; exact for everything else.
    pub policy: MatchPolicy,
    pub action: Action,
}

impl Asked<'_> {
    fn key(&self, authid: &str, authrole: &str) -> CacheKey {
        (authid.to_owned(), authrole.to_owned(), self.uri.to_owned(), self.policy, self.action)
    }
}

type CacheKey = (String, String, String, MatchPolicy, Action);

/// Cached authorizer answers: bounded in size (oldest first out) and in age.
#[derive(Debug)]
pub struct Cache {
    ttl_ms: u64,
    size: usize,
    entries: HashMap<CacheKey, (Decision, u64)>,
    order: VecDeque<(CacheKey, u64)>,
}

impl Cache {
    /// A cache keeping at most `size` answers for `ttl_ms` each.
    pub fn new(ttl_ms: u64, size: usize) -> Self {
        Cache { ttl_ms, size, entries: HashMap::new(), order: VecDeque::new() }
    }

    /// A cached answer still fresh at `now_ms`.
    pub fn get(&self, authid: &str, authrole: &str, asked: Asked, now_ms: u64) -> Option<Decision> {
        let key = asked.key(authid, authrole);
        self.entries.get(&key).filter(|(_, at)| now_ms < at + self.ttl_ms).map(|(d, _)| *d)
    }

    /// Keeps an answer given at `now_ms`.
    pub fn put(&mut self, authid: &str, authrole: &str, asked: Asked, d: Decision, now_ms: u64) {
        if self.ttl_ms == 0 || self.size == 0 {
            return;
        }
        let key = asked.key(authid, authrole);
        while self.entries.len() >= self.size {
            let Some((old, at)) = self.order.pop_front() else { break };
            if self.entries.get(&old).is_some_and(|(_, t)| *t == at) {
                self.entries.remove(&old);
            }
        }
        self.entries.insert(key.clone(), (d, now_ms));
        self.order.push_back((key, now_ms));
        // Entries replaced by a newer answer leave stale order records: drop them
        // once they outnumber the live entries, so `order` stays bounded too.
        if self.order.len() > 2 * self.size {
            let entries = &self.entries;
            self.order.retain(|(k, at)| entries.get(k).is_some_and(|(_, t)| t == at));
        }
    }

    /// Number of cached answers.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perm(uri: &str, m: &str, call: bool, publish: bool) -> Permission {
        Permission {
            uri: uri.into(),
            match_policy: Some(m.into()),
            call,
            register: false,
            publish,
            subscribe: false,
            disclose: Disclose { caller: call, publisher: false },
        }
    }

    fn role(perms: Vec<Permission>) -> StaticRole {
        let cfg = RoleConfig {
            name: "r".into(),
            permissions: perms,
            authorizer: None,
            authorizer_role: None,
            cache_ttl_ms: 0,
            cache_size: 1,
        };
        assert_eq!(cfg.check(), Ok(()));
        match Role::new(&cfg) {
            Role::Static(i) => i,
            Role::Dynamic { .. } => panic!("static role expected"),
        }
    }

    #[test]
    fn most_specific_permission_decides() {
        let r = role(vec![
            perm("com.app.", "prefix", true, true),
            perm("com.app.admin.", "prefix", false, false),
            perm("com.app.admin.status", "exact", true, false),
            perm("com..public", "wildcard", false, true),
        ]);
        assert!(decide(&r, "com.app.x", Action::Call).allow);
        assert!(decide(&r, "com.app.x", Action::Call).disclose);
        assert!(!decide(&r, "com.app.x", Action::Register).allow, "actions default to false");
        assert!(!decide(&r, "com.app.admin.kill", Action::Call).allow, "longer prefix wins");
        assert!(decide(&r, "com.app.admin.status", Action::Call).allow, "exact wins");
        assert!(decide(&r, "com.other.public", Action::Publish).allow, "wildcard");
        assert!(!decide(&r, "org.x", Action::Call).allow, "nothing matches: denied");
    }

    #[test]
    fn bad_roles_are_refused() {
        let mut cfg = RoleConfig {
            name: "r".into(),
            permissions: vec![perm("com.app.", "prefix", true, true)],
            authorizer: Some("com.example.authorize".into()),
            authorizer_role: Some("backend".into()),
            cache_ttl_ms: 10,
            cache_size: 10,
        };
        assert!(cfg.check().is_err(), "authorizer with permissions");
        cfg.authorizer = None;
        cfg.permissions[0].match_policy = Some("fuzzy".into());
        assert!(cfg.check().unwrap_err().to_string().contains("fuzzy"));
        cfg.permissions[0].match_policy = Some("exact".into());
        cfg.permissions[0].uri = "com..x".into();
        assert!(cfg.check().is_err(), "empty component in an exact URI");
    }

    #[test]
    fn authorizer_answers() {
        assert_eq!(parse_answer(&Value::Bool(true)), Some((Decision { allow: true, disclose: false }, true)));
        let d = crate::dict! { "allow" => true, "disclose" => true, "cache" => false };
        assert_eq!(parse_answer(&Value::Dict(d)), Some((Decision { allow: true, disclose: true }, false)));
        assert_eq!(parse_answer(&Value::Dict(crate::dict! { "disclose" => true })), None);
        assert_eq!(parse_answer(&Value::from("yes")), None);
    }

    fn sub(r: &StaticRole, uri: &str, policy: MatchPolicy) -> bool {
        decide_pattern(r, uri, policy, Action::Subscribe).allow
    }

    fn perm_sub(uri: &str, m: &str, subscribe: bool) -> Permission {
        Permission { subscribe, register: subscribe, ..perm(uri, m, false, false) }
    }

    #[test]
    fn a_pattern_is_allowed_only_when_every_uri_it_matches_is() {
        use MatchPolicy::*;
        let r =
            role(vec![perm_sub("com.app.", "prefix", true), perm_sub("com.app.secret.", "prefix", false)]);
        assert!(!sub(&r, "com.app.", Prefix), "would receive com.app.secret.*");
        assert!(!sub(&r, "com.app", Prefix), "would receive com.app.secret.*");
        assert!(!sub(&r, "com.app..x", Wildcard), "com.app.secret.x");
        assert!(!sub(&r, "com..", Wildcard), "com.x.y is not allowed at all");
        assert!(!sub(&r, "", Prefix));
        assert!(sub(&r, "com.app.public.", Prefix));
        assert!(sub(&r, "com.app.public..x", Wildcard));
        assert!(sub(&r, "com.app.x", Wildcard), "no wildcard component: exact");
        assert!(!sub(&r, "com.app.secret.x", Exact));
        assert!(!decide_pattern(&r, "com.app.", Prefix, Action::Register).allow, "register too");
        let broad = role(vec![perm_sub("com.", "prefix", false), perm_sub("com.app.", "prefix", true)]);
        assert!(sub(&broad, "com.app.", Prefix), "a less specific deny never decides inside com.app.");
        assert!(!sub(&broad, "com.", Prefix));
        let exact_deny =
            role(vec![perm_sub("com.app.", "prefix", true), perm_sub("com.app.x.admin", "exact", false)]);
        assert!(!sub(&exact_deny, "com.app..admin", Wildcard));
        assert!(sub(&exact_deny, "com.app..status", Wildcard));
        let wild =
            role(vec![perm_sub("com..events", "wildcard", true), perm_sub("com.secret.", "wildcard", false)]);
        assert!(!sub(&wild, "com..events", Wildcard), "com.secret.events is denied");
        assert!(sub(&wild, "com.public.events", Wildcard));
    }

    fn ask(uri: &str, action: Action) -> Asked<'_> {
        Asked { uri, policy: MatchPolicy::Exact, action }
    }

    #[test]
    fn cache_is_bounded_in_size_and_age() {
        let yes = Decision { allow: true, disclose: false };
        let mut c = Cache::new(100, 2);
        c.put("a", "r", ask("u1", Action::Call), yes, 0);
        c.put("a", "r", ask("u2", Action::Call), yes, 10);
        assert_eq!(c.get("a", "r", ask("u1", Action::Call), 50), Some(yes));
        assert_eq!(c.get("a", "r", ask("u1", Action::Publish), 50), None, "per action");
        assert_eq!(c.get("b", "r", ask("u1", Action::Call), 50), None, "per authid");
        assert_eq!(c.get("a", "r", ask("u1", Action::Call), 100), None, "expired");
        c.put("a", "r", ask("u3", Action::Call), yes, 20);
        assert_eq!(c.len(), 2, "size bound");
        assert_eq!(c.get("a", "r", ask("u1", Action::Call), 30), None, "oldest evicted");
        for i in 0..100 {
            c.put("a", "r", ask("u2", Action::Call), yes, 30 + i);
        }
        assert!(c.order.len() <= 4 && c.len() <= 2);
        let mut off = Cache::new(0, 10);
        off.put("a", "r", ask("u", Action::Call), yes, 0);
        assert!(off.is_empty());
    }
}
