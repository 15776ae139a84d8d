//! The router: realms, their sessions, and the broker and dealer operations that
//! route messages between sessions.

pub mod admin;
pub mod auth_work;
pub mod authorize;
pub mod bridge;
pub mod dealing;
pub mod drain;
pub mod guard;
pub mod handle;
pub mod history;
pub mod interest;
pub mod limits;
pub mod link;
pub mod meta;
pub mod outbox;
pub mod pubsub;
pub mod purge;
pub mod query;
pub mod readiness;
pub mod realm;
pub mod reconcile;
pub mod reload;
pub mod replica;
pub mod retained;
pub mod revoke;
pub mod rpc;
pub mod session;
pub mod stats;
pub mod status;
#[cfg(test)]
pub mod test_doubles;
pub mod testament;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, Weak};

use dashmap::DashMap;

use tokio::sync::watch;

use crate::config::{Config, ConfigError};
use crate::ids::{IdSequence, NodeId, QueryId, SessionId};
use crate::link::{LinkDown, LinkMsg, Links};
use realm::Realm;
use replica::Replica;

/// The product name and version, sent as WELCOME.Details.agent.
pub const AGENT: &str = concat!("junction-", env!("CARGO_PKG_VERSION"));

/// One router node.
pub struct Router {
    /// This node's id in the cluster.
    pub node: NodeId,
    /// Served realms by name.
    realms: HashMap<String, Arc<Realm>>,
    /// The replicated routing table.
    pub replica: Replica,
    /// The configuration the router was started with.
    pub config: Config,
    /// Flips to true on shutdown; every connection watches it.
    shutdown: watch::Sender<bool>,
    /// Links to the other nodes, made by the cluster layer and set once by the wiring (`main.rs`).
    links: OnceLock<Arc<dyn Links>>,
    /// Every call and invocation in flight on this node ([`dealing`]).
    pub dealing: dealing::Dealing,
    /// Every node's subscription interest, as this node knows it ([`interest`]).
    pub interest: interest::Interest,
    /// Retained events of every node, as this node keeps them ([`retained`]).
    pub retained: retained::RetainedEvents,
    /// Meta query ids.
    query_ids: IdSequence,
    /// Meta queries sent to other nodes and awaiting their answer, by query id.
    pub queries: DashMap<QueryId, tokio::sync::oneshot::Sender<query::Answer>>,
    /// Session counts and the authentication-failure rate limit (`[limits]`).
    pub admission: Arc<limits::Admission>,
    /// Costly authentication checks, off the async workers and bounded.
    pub auth_work: auth_work::AuthWork,
    /// This router, for tasks spawned from a `&Router`.
    this: Weak<Router>,
    /// Reads the configuration again as the router was started (file and flags),
    /// for `junction.config.reload`; none when started without a file.
    config_loader: OnceLock<ConfigLoader>,
    /// Listeners bound, draining ([`readiness`]).
    lifecycle: readiness::Lifecycle,
}

/// Reads the configuration again, or says why it cannot.
pub type ConfigLoader = Arc<dyn Fn() -> Result<Config, ConfigError> + Send + Sync>;

/// What a configuration reload did.
#[derive(Debug, Default, PartialEq)]
pub struct Reloaded {
    /// What took effect.
    pub applied: Vec<String>,
    /// What changed in the file but takes a restart.
    pub restart_required: Vec<String>,
}

impl Router {
    /// A router whose table applies commands directly, without Raft: for tests that
    /// need a router synchronously. A running node uses [`Router::with_replica`].
    pub fn new(config: Config, node: NodeId) -> Arc<Router> {
        Router::with_replica(config, node, Replica::default())
    }

    /// A router serving the configured realms over `replica`.
    pub fn with_replica(config: Config, node: NodeId, replica: Replica) -> Arc<Router> {
        let realms = config.realms.iter().map(|r| (r.name.clone(), Arc::new(Realm::new(r)))).collect();
        let (shutdown, _) = watch::channel(false);
        let admission = limits::Admission::new(&config.limits);
        let dealing = dealing::Dealing::new(node, config.cluster.lease());
        Arc::new_cyclic(|this| Router {
            node,
            realms,
            replica,
            config,
            shutdown,
            links: OnceLock::new(),
            dealing,
            interest: interest::Interest::default(),
            retained: retained::RetainedEvents::default(),
            query_ids: IdSequence::default(),
            queries: DashMap::new(),
            admission,
            auth_work: auth_work::AuthWork::per_core(),
            this: this.clone(),
            config_loader: OnceLock::new(),
            lifecycle: readiness::Lifecycle::default(),
        })
    }

    /// Installs how to read the configuration again (once, by `main`).
    pub fn set_config_loader(&self, loader: ConfigLoader) {
        self.config_loader.set(loader).ok();
    }

    /// Reads the configuration again, if the router was started with a file.
    pub fn load_config(&self) -> Option<Result<Config, ConfigError>> {
        self.config_loader.get().map(|l| l())
    }

    /// Applies what can change without a restart from a reloaded (and validated)
    /// configuration: each served realm's authentication and roles. The rest is
    /// reported as needing a restart, but for `[log] level`, which the caller
    /// applies (the process's log filter is not the router's).
    pub fn reload(&self, cfg: &Config) -> Reloaded {
        let mut out = Reloaded::default();
        for r in &cfg.realms {
            match self.realm(&r.name) {
                Some(realm) => {
                    realm.reload(r);
                    out.applied.push(format!("realm {}: authentication and roles", r.name));
                    let old = self.config.realms.iter().find(|o| o.name == r.name);
                    if old.is_some_and(|o| o.history != r.history || o.uri_check != r.uri_check) {
                        out.restart_required.push(format!("realm {}: history or uri_check", r.name));
                    }
                }
                None => out.restart_required.push(format!("realm {} added", r.name)),
            }
        }
        for r in &self.config.realms {
            if !cfg.realms.iter().any(|n| n.name == r.name) {
                out.restart_required.push(format!("realm {} removed", r.name));
            }
        }
        let sections = [
            ("[websocket]", cfg.websocket != self.config.websocket),
            ("[rawsocket]", cfg.rawsocket != self.config.rawsocket),
            ("[limits]", cfg.limits != self.config.limits),
            ("[admin]", cfg.admin != self.config.admin),
            ("[telemetry]", cfg.telemetry != self.config.telemetry),
            ("[cluster]", cfg.cluster != self.config.cluster),
            ("[[webhooks]]", cfg.webhooks != self.config.webhooks),
            ("[log] json", cfg.log.json != self.config.log.json),
            ("[bridge]", cfg.bridge != self.config.bridge),
        ];
        for (name, changed) in sections {
            if changed {
                out.restart_required.push(name.to_owned());
            }
        }
        out
    }

    /// This router as an `Arc` (`None` only while it is being dropped).
    pub fn arc(&self) -> Option<Arc<Router>> {
        self.this.upgrade()
    }

    /// Installs the links to other nodes (once, by the wiring that builds the router and the cluster).
    pub fn set_links(&self, links: Arc<dyn Links>) {
        if self.links.set(links).is_err() {
            tracing::warn!("links were already installed");
        }
    }

    /// Sends a data-path message to another node.
    pub fn send_link(&self, node: NodeId, msg: LinkMsg) -> Result<(), LinkDown> {
        self.links.get().ok_or(LinkDown(node))?.send(node, msg)
    }

    /// True while this node is fenced (cut off from the cluster's quorum, or not
    /// caught up after): it starts no invocation and delivers no event that came
    /// over a link.
    pub fn fenced(&self) -> bool {
        self.replica.replicate().is_some_and(|c| c.fenced())
    }

    /// True when `node` is this node or its link is not known to be broken.
    pub fn reachable(&self, node: NodeId) -> bool {
        node == self.node || self.links.get().is_none_or(|l| l.is_up(node))
    }

    /// A fresh meta query id.
    pub fn next_query_id(&self) -> QueryId {
        QueryId(self.query_ids.next())
    }

    /// A joined session on this node, in any realm.
    pub fn session(&self, id: SessionId) -> Option<Arc<handle::SessionHandle>> {
        self.realms.values().find_map(|r| r.session(id))
    }

    /// A served realm.
    pub fn realm(&self, name: &str) -> Option<Arc<Realm>> {
        self.realms.get(name).cloned()
    }

    /// Every served realm.
    pub fn realms(&self) -> impl Iterator<Item = &Arc<Realm>> {
        self.realms.values()
    }

    /// Total joined sessions on this node.
    pub fn session_count(&self) -> usize {
        self.realms.values().map(|r| r.sessions.len()).sum()
    }

    /// A receiver that changes to `true` when the router shuts down.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Ends every session on this node with GOODBYE `reason`.
    pub fn kill_all_sessions(&self, reason: &str, message: &str) {
        for realm in self.realms.values() {
            for s in realm.sessions.iter() {
                s.kill(reason, message);
            }
        }
    }

    /// Tells every session to leave (GOODBYE `wamp.close.system_shutdown`).
    pub fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
    }
}

/// Milliseconds since the Unix epoch, for command timestamps.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
