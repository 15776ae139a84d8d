//! A realm's node-local state: its joined sessions and which local sessions hang off
//! each subscription. The replicated part (subscriptions, registrations) lives in the
//! routing table; this is what stays on the node.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use dashmap::DashMap;

use super::handle::SessionHandle;
use super::history::{History, HistoryConfig};
use crate::config::RealmConfig;
use crate::ids::{RegistrationId, SessionId, SubscriptionId};
use crate::wamp::uri::UriCheck;

/// Local subscribers of one subscription, as an immutable snapshot so a publish
/// clones one `Arc` under the read lock and fans out without holding it.
pub type Subscribers = Arc<[Arc<SessionHandle>]>;

/// One realm on this node.
pub struct Realm {
    /// The realm's URI.
    pub name: String,
    /// URI checking for this realm.
    pub uri_check: UriCheck,
    /// Joined sessions on this node.
    pub sessions: DashMap<SessionId, Arc<SessionHandle>>,
    /// Local subscribers per subscription.
    local_subs: RwLock<HashMap<SubscriptionId, Subscribers>>,
    /// Serialises changes of this node's local subscribers with the interest
    /// changes they cause and their sending on the links ([`super::interest`]), so
    /// the other nodes learn them in order. Never held across an await.
    pub membership: std::sync::Mutex<()>,
    /// Round-robin turn per registration.
    turns: DashMap<RegistrationId, usize>,
    /// Event history of the subscriptions this node keeps it for (pinned interest).
    histories: RwLock<HashMap<SubscriptionId, Arc<History>>>,
    /// The topics configured to keep history.
    pub history_config: Vec<HistoryConfig>,
    /// The roles of the configuration file (replaced by a configuration reload).
    roles_config: RwLock<Arc<Vec<crate::auth::roles::RoleConfig>>>,
    /// Counts configuration reloads, so compiled rules know they are stale.
    pub config_generation: std::sync::atomic::AtomicU64,
    /// The realm's roles, compiled (see [`super::authorize`]).
    pub rules: super::authorize::RealmRules,
    /// Where this realm's dynamic authenticators are registered.
    pub authenticator_realm: String,
    /// How clients authenticate (replaced by a configuration reload).
    auth: RwLock<Arc<RealmAuth>>,
    /// This realm's dynamic authenticator procedures and the role that may register
    /// them in `authenticator_realm` (replaced by a configuration reload).
    authenticators: RwLock<Arc<Authenticators>>,
}

/// A realm's dynamic authenticators, served in its `authenticator_realm`.
#[derive(Debug, Default)]
pub struct Authenticators {
    /// The procedure URIs.
    pub procedures: Vec<String>,
    /// The only authrole that may register them.
    pub role: String,
}

impl Authenticators {
    fn of(cfg: &RealmConfig) -> Self {
        cfg.auth.as_ref().map_or_else(Authenticators::default, |a| Authenticators {
            procedures: a.authenticators(),
            role: a.authenticator_role.clone().unwrap_or_default(),
        })
    }
}

/// How a realm's clients authenticate: `Ok(None)` admits anonymous clients as
/// `anonymous`; `Err` when the configuration could not be turned into an
/// authenticator (every HELLO is refused).
pub type RealmAuth = Result<Option<crate::auth::Authenticator>, crate::config::ConfigError>;

impl Realm {
    /// A realm from its configuration.
    pub fn new(cfg: &RealmConfig) -> Self {
        Realm {
            name: cfg.name.clone(),
            uri_check: cfg.uri_check,
            sessions: DashMap::new(),
            local_subs: RwLock::default(),
            membership: std::sync::Mutex::new(()),
            turns: DashMap::new(),
            histories: RwLock::default(),
            history_config: cfg.history.clone(),
            roles_config: RwLock::new(Arc::new(cfg.roles.clone())),
            config_generation: std::sync::atomic::AtomicU64::new(0),
            rules: Default::default(),
            authenticator_realm: cfg
                .auth
                .as_ref()
                .and_then(|a| a.authenticator_realm.clone())
                .unwrap_or_else(|| cfg.name.clone()),
            auth: RwLock::new(Arc::new(cfg.authenticator())),
            authenticators: RwLock::new(Arc::new(Authenticators::of(cfg))),
        }
    }

    /// How clients authenticate now.
    pub fn auth(&self) -> Arc<RealmAuth> {
        self.auth.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// This realm's dynamic authenticators now.
    pub fn authenticators(&self) -> Arc<Authenticators> {
        self.authenticators.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The roles of the configuration file now.
    pub fn roles_config(&self) -> Arc<Vec<crate::auth::roles::RoleConfig>> {
        self.roles_config.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Takes the authentication and roles of a reloaded configuration; sessions
    /// already joined keep their identity.
    pub fn reload(&self, cfg: &RealmConfig) {
        *self.auth.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(cfg.authenticator());
        *self.roles_config.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(cfg.roles.clone());
        *self.authenticators.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(Authenticators::of(cfg));
        self.config_generation.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    /// A joined local session.
    pub fn session(&self, id: SessionId) -> Option<Arc<SessionHandle>> {
        self.sessions.get(&id).map(|s| s.clone())
    }

    /// The local subscribers of a subscription.
    pub fn subscribers(&self, id: SubscriptionId) -> Option<Subscribers> {
        self.local_subs.read().unwrap_or_else(|e| e.into_inner()).get(&id).cloned()
    }

    /// True when some local session is subscribed to `id`.
    pub fn has_local_interest(&self, id: SubscriptionId) -> bool {
        self.subscribers(id).is_some()
    }

    /// Adds a local subscriber.
    pub fn add_subscriber(&self, id: SubscriptionId, session: Arc<SessionHandle>) {
        let mut map = self.local_subs.write().unwrap_or_else(|e| e.into_inner());
        let mut list: Vec<_> = map.get(&id).map(|l| l.to_vec()).unwrap_or_default();
        if !list.iter().any(|s| s.id == session.id) {
            list.push(session);
        }
        map.insert(id, list.into());
    }

    /// Removes a local subscriber; returns true when this node's interest in the
    /// subscription ended (it was the last one and the subscription keeps no history).
    pub fn remove_subscriber(&self, id: SubscriptionId, session: SessionId) -> bool {
        let mut map = self.local_subs.write().unwrap_or_else(|e| e.into_inner());
        let Some(list) = map.get(&id) else { return false };
        let rest: Vec<_> = list.iter().filter(|s| s.id != session).cloned().collect();
        if rest.is_empty() {
            map.remove(&id);
            self.history(id).is_none()
        } else {
            map.insert(id, rest.into());
            false
        }
    }

    /// The event history of a subscription, if this node keeps one.
    pub fn history(&self, id: SubscriptionId) -> Option<Arc<History>> {
        let map = self.histories.read().unwrap_or_else(|e| e.into_inner());
        if map.is_empty() { None } else { map.get(&id).cloned() }
    }

    /// Starts keeping history for subscription `id` (this node's interest is pinned).
    pub fn keep_history(&self, id: SubscriptionId, limit: usize, max_bytes: usize) {
        let mut map = self.histories.write().unwrap_or_else(|e| e.into_inner());
        map.entry(id).or_insert_with(|| Arc::new(History::new(limit, max_bytes)));
    }

    /// The next round-robin turn of a registration.
    pub fn next_turn(&self, id: RegistrationId) -> usize {
        let mut t = self.turns.entry(id).or_insert(0);
        *t = t.wrapping_add(1);
        *t - 1
    }
}
