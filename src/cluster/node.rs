//! A cluster node: the Raft instance, its stores, the gRPC server, and the write
//! path ([`Cluster::propose`]) the router's replica of the routing table commits
//! through.
//!
//! Write path (design.md): [`Cluster::propose`] commits on the leader with
//! `client_write` when this node leads; otherwise it forwards the request to the
//! leader over the `ClientWrite` RPC and then waits until its own state machine has
//! applied that log index, so the caller reads its own write. While no leader is
//! known it retries; after `propose_timeout` it gives up with a "no quorum" error —
//! a node cut off from the majority refuses changes instead of diverging.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use openraft::error::{ClientWriteError, RaftError};
use openraft::storage::RaftLogStorage;
use openraft::{BasicNode, ServerState};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::config::ClusterConfig;
use super::convert::{decode, encode};
use super::log_store::LogStore;
use super::network::{CallError, Network, Peers};
use super::proto::{ClientWriteRequest, LeaderHint, client_write_reply};
use super::replicate::ReplicateError;
use super::secure::Credentials;
use super::state_machine::{Replicated, StateMachine};
use super::types::{NodeDownEvent, Raft, Request};
use super::{ClusterError, liveness, membership, server, upkeep};
use crate::table::{Outcome, RoutingTable};

/// How a data-path link to another node is doing, for `cluster status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkState {
    /// The peer.
    pub node: u64,
    /// Its address.
    pub addr: String,
    /// "up", "connecting", "down".
    pub state: String,
    /// Frames sent to the peer.
    pub frames_sent: u64,
    /// Frames for the peer not sent (link down, queue full or discarded).
    pub frames_dropped: u64,
    /// Frames the peer numbered that never arrived here.
    pub frames_missed: u64,
}

/// Reports the link states; installed by the link layer.
pub type LinkReporter = Arc<dyn Fn() -> Vec<LinkState> + Send + Sync>;

/// Why a leader-side write failed.
#[derive(Debug)]
pub(crate) enum WriteError {
    /// This node is not the leader; the hint names the one it knows of.
    NotLeader(LeaderHint),
    /// Not committed in time, or Raft refused.
    Failed(String),
}

/// One node of the cluster.
pub struct Cluster {
    pub(crate) id: u64,
    pub(crate) addr: String,
    pub(crate) incarnation: u64,
    pub(crate) cfg: ClusterConfig,
    pub(crate) raft: Raft,
    pub(crate) state: Arc<Replicated>,
    pub(crate) peers: Arc<Peers>,
    pub(crate) committed: Arc<AtomicI64>,
    /// Serialises membership changes (openraft allows one at a time).
    pub(crate) membership_lock: tokio::sync::Mutex<()>,
    links: RwLock<Option<LinkReporter>>,
    local_addr: Option<SocketAddr>,
    /// Set by [`Cluster::retire`]: this node is leaving on purpose.
    retiring: AtomicBool,
    /// Set while this leader hands leadership over ([`super::transfer`]): it takes
    /// no writes and changes no membership meanwhile.
    pub(crate) handing_over: AtomicBool,
    /// This process started without Raft state (no log, no vote) and has not joined
    /// since: it reports so when joining, and does not vote meanwhile. Kept in the
    /// log store too, so that it survives a restart before the node joined.
    fresh: AtomicBool,
    /// The log store (shared with Raft), for that flag.
    log: LogStore,
    shutdown: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// The secret and TLS identity used with peers.
    creds: Credentials,
    /// Whether this node may route (see [`super::fence`]).
    pub(crate) fence: super::fence::Fence,
    /// Routing commands waiting to be committed, batched.
    pub(crate) proposals: super::proposals::Proposals,
}

/// The Raft settings derived from the cluster configuration.
fn raft_config(cfg: &ClusterConfig) -> Result<openraft::Config, ClusterError> {
    let c = openraft::Config {
        cluster_name: "junction".into(),
        heartbeat_interval: cfg.heartbeat_ms,
        election_timeout_min: cfg.election_timeout_ms,
        election_timeout_max: cfg.election_timeout_ms * 2,
        install_snapshot_timeout: 2000.max(cfg.election_timeout_ms),
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(cfg.snapshot_logs),
        max_in_snapshot_log_to_keep: cfg.snapshot_logs / 5,
        ..Default::default()
    };
    c.validate().map_err(|e| ClusterError::Config(format!("cluster: {e}")))
}

impl Cluster {
    /// Starts this node: opens its stores, serves gRPC, starts Raft, initialises
    /// the cluster (bootstrap node, or a lone node) or joins it through the peers,
    /// and announces its incarnation. Returns once the node is a member whose state
    /// machine has applied its own announcement.
    ///
    /// `extra` are further gRPC services served on the same port (the data-path
    /// `Link` and `Meta` services); pass `Routes::default()` for none.
    pub async fn start(
        cfg: &ClusterConfig,
        table: Arc<RwLock<RoutingTable>>,
        extra: tonic::service::Routes,
    ) -> Result<Arc<Cluster>, ClusterError> {
        cfg.validate().map_err(|e| ClusterError::Config(e.to_string()))?;
        let (mut log, sm) = match &cfg.data_dir {
            Some(dir) => (
                LogStore::open(dir).map_err(|e| ClusterError::Storage(e.to_string()))?,
                StateMachine::open(table, Some(dir)).map_err(|e| ClusterError::Storage(e.to_string()))?,
            ),
            None => (
                LogStore::in_memory(),
                StateMachine::open(table, None).map_err(|e| ClusterError::Storage(e.to_string()))?,
            ),
        };
        let state = sm.shared();
        let committed = log.committed_index();
        let storage = |e: super::log_store::LogStoreError| ClusterError::Storage(e.to_string());
        let fresh = is_empty(&mut log).await? || log.unjoined().map_err(storage)?;
        if fresh {
            log.set_unjoined(true).map_err(storage)?;
        }
        let own_log = log.clone();
        let listener =
            match cfg.listen_addr() {
                Some(a) => Some(tokio::net::TcpListener::bind(a).await.map_err(|e| {
                    ClusterError::Config(format!("cannot listen for cluster gRPC on {a}: {e}"))
                })?),
                None => None,
            };
        let local_addr = listener.as_ref().and_then(|l| l.local_addr().ok());
        let addr = match (&cfg.advertise, local_addr) {
            (Some(a), _) if !a.is_empty() => a.clone(),
            (_, Some(l)) => l.to_string(),
            _ => String::new(),
        };
        let connect_timeout = Duration::from_millis(cfg.election_timeout_ms.clamp(100, 1000));
        let creds = Credentials::from_config(cfg).map_err(|e| ClusterError::Config(e.to_string()))?;
        let peers = Arc::new(Peers::new(connect_timeout, creds.clone()));
        let raft = Raft::new(cfg.node_id, Arc::new(raft_config(cfg)?), Network::new(peers.clone()), log, sm)
            .await
            .map_err(|e| ClusterError::Raft(format!("cannot start Raft: {e}")))?;
        let (shutdown, _) = watch::channel(false);
        let (proposals, queue) = super::proposals::Proposals::new();
        let cluster = Arc::new(Cluster {
            id: cfg.node_id,
            addr: addr.clone(),
            incarnation: incarnation(),
            cfg: cfg.clone(),
            raft,
            state,
            peers,
            committed,
            membership_lock: tokio::sync::Mutex::new(()),
            links: RwLock::new(None),
            local_addr,
            retiring: AtomicBool::new(false),
            handing_over: AtomicBool::new(false),
            fresh: AtomicBool::new(fresh),
            log: own_log,
            shutdown,
            tasks: Mutex::new(Vec::new()),
            creds,
            fence: super::fence::Fence::new(cfg.lease(), std::time::Instant::now()),
            proposals,
        });
        cluster.add_task(tokio::spawn(super::proposals::run(Arc::downgrade(&cluster), queue)));
        if let Some(listener) = listener {
            let task =
                tokio::spawn(server::serve(cluster.clone(), listener, extra, cluster.shutdown.subscribe()));
            cluster.add_task(task);
        }
        if cfg.initialises() {
            let initialized =
                cluster.raft.is_initialized().await.map_err(|e| ClusterError::Raft(e.to_string()))?;
            if !initialized {
                let members = BTreeMap::from([(cfg.node_id, BasicNode::new(addr))]);
                if let Err(e) = cluster.raft.initialize(members).await {
                    tracing::debug!(error = %e, "raft initialize");
                }
            }
        }
        cluster.add_task(tokio::spawn(liveness::run(cluster.clone())));
        cluster.add_task(tokio::spawn(upkeep::run(cluster.clone())));
        if let Err(e) = membership::announce(&cluster, cfg.join_timeout()).await {
            cluster.shutdown().await;
            return Err(e);
        }
        cluster.add_task(tokio::spawn(membership::watch_self(cluster.clone())));
        tracing::info!(node = cluster.id, addr = %cluster.addr, incarnation = cluster.incarnation, "cluster node started");
        Ok(cluster)
    }

    /// The secret and TLS identity this node presents to and expects from peers.
    pub fn credentials(&self) -> &Credentials {
        &self.creds
    }

    fn add_task(&self, task: JoinHandle<()>) {
        self.tasks.lock().unwrap_or_else(|e| e.into_inner()).push(task);
    }

    /// This node's Raft id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The address other nodes reach this node's gRPC server at ("" without one).
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The address the gRPC server is bound to, if any (useful with port 0).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// This process's incarnation (start time in microseconds).
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// The configuration the node was started with.
    pub fn config(&self) -> &ClusterConfig {
        &self.cfg
    }

    /// The Raft handle (metrics, admin calls).
    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    /// The applied replicated state (node liveness table, applied index).
    pub fn replicated(&self) -> &Arc<Replicated> {
        &self.state
    }

    /// The shared channels to the other nodes (the link layer may reuse them).
    pub fn peers(&self) -> &Arc<Peers> {
        &self.peers
    }

    /// Node purges (NodeDown, new incarnation, removal) as they are applied here.
    pub fn subscribe_node_down(&self) -> tokio::sync::broadcast::Receiver<NodeDownEvent> {
        self.state.subscribe_node_down()
    }

    /// Installs the link-state reporter shown by `cluster status`.
    pub fn set_link_reporter(&self, reporter: LinkReporter) {
        *self.links.write().unwrap_or_else(|e| e.into_inner()) = Some(reporter);
    }

    pub(crate) fn link_states(&self) -> Vec<LinkState> {
        let reporter = self.links.read().unwrap_or_else(|e| e.into_inner()).clone();
        reporter.map(|r| r()).unwrap_or_default()
    }

    /// The current leader and its address, if known.
    pub fn leader(&self) -> Option<(u64, String)> {
        let m = self.raft.metrics();
        let m = m.borrow();
        let id = m.current_leader?;
        let addr = m.membership_config.membership().get_node(&id).map(|n| n.addr.clone()).unwrap_or_default();
        Some((id, addr))
    }

    /// True when this node is the leader.
    pub fn is_leader(&self) -> bool {
        let m = self.raft.metrics();
        let m = m.borrow();
        m.state == ServerState::Leader && m.current_leader == Some(self.id)
    }

    /// The address of `node` from the membership, or from the liveness table.
    pub fn node_addr(&self, node: u64) -> Option<String> {
        let from_membership = {
            let m = self.raft.metrics();
            let m = m.borrow();
            m.membership_config.membership().get_node(&node).map(|n| n.addr.clone())
        };
        from_membership.or_else(|| self.state.node(node).map(|n| n.addr))
    }

    pub(crate) fn hint(&self) -> LeaderHint {
        match self.leader() {
            Some((id, addr)) => LeaderHint { leader_id: id, leader_addr: addr },
            None => LeaderHint { leader_id: 0, leader_addr: String::new() },
        }
    }

    /// Commits `req` on this node, which must be the leader, within `timeout`.
    pub(crate) async fn leader_write(
        &self,
        req: Request,
        timeout: Duration,
    ) -> Result<(Outcome, u64), WriteError> {
        if !self.is_leader() {
            return Err(WriteError::NotLeader(self.hint()));
        }
        if self.is_handing_over() {
            return Err(WriteError::Failed("the leader is handing leadership over; retry".into()));
        }
        match tokio::time::timeout(timeout, self.raft.client_write(req)).await {
            Err(_) => Err(WriteError::Failed(format!(
                "the leader could not commit within {} ms (no quorum reachable)",
                timeout.as_millis()
            ))),
            Ok(Ok(resp)) => Ok((resp.data, resp.log_id.index)),
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => {
                let addr = f.leader_node.map(|n| n.addr).unwrap_or_default();
                Err(WriteError::NotLeader(LeaderHint {
                    leader_id: f.leader_id.unwrap_or(0),
                    leader_addr: addr,
                }))
            }
            Ok(Err(e)) => Err(WriteError::Failed(e.to_string())),
        }
    }

    /// Forwards `req` to the leader at `addr`.
    async fn forward(
        &self,
        addr: &str,
        req: &Request,
        timeout: Duration,
    ) -> Result<Forwarded, ReplicateError> {
        let call = |e: &dyn std::fmt::Display| ReplicateError::Call(e.to_string());
        let request = encode("request", req).map_err(|e| call(&e))?;
        let msg = ClientWriteRequest { request, timeout_ms: timeout.as_millis() as u64 };
        // Leave the leader its whole commit timeout plus a little for the answer.
        let reply = self.peers.client_write(addr, msg, timeout + Duration::from_millis(200)).await;
        match reply {
            Err(e @ CallError::Unreachable { .. }) => Err(call(&e)),
            Err(e) => Err(call(&e)),
            Ok(r) => match r.result {
                Some(client_write_reply::Result::Written(w)) => {
                    let outcome: Outcome = decode("outcome", &w.outcome).map_err(|e| call(&e))?;
                    Ok(Forwarded::Written(outcome, w.log_index))
                }
                Some(client_write_reply::Result::Forward(h)) => Ok(Forwarded::Moved(h)),
                Some(client_write_reply::Result::Error(e)) => {
                    Err(ReplicateError::Leader { addr: addr.to_owned(), message: e })
                }
                None => Err(ReplicateError::EmptyLeaderReply { addr: addr.to_owned() }),
            },
        }
    }

    /// Commits `req` through Raft from any node and returns the outcome of applying
    /// it; when this returns, this node has applied the entry.
    pub async fn propose(&self, req: Request) -> Result<Outcome, ReplicateError> {
        self.propose_until(req, Instant::now() + self.cfg.propose_timeout()).await
    }

    /// Like [`Cluster::propose`], giving up at `deadline`. Each proposal is timed
    /// (`junction_raft_proposal_duration_seconds`, failures counted by reason) and
    /// traced: a `raft.propose` span, a child of the current span if there is one.
    pub async fn propose_until(&self, req: Request, deadline: Instant) -> Result<Outcome, ReplicateError> {
        use tracing::Instrument;
        let started = Instant::now();
        let span = crate::observe::spans::propose_span(
            req.kind(),
            req.commands(),
            self.id,
            crate::observe::spans::Parent::None,
        );
        let result = self.propose_inner(req, deadline).instrument(span.clone()).await;
        let failure = result.as_ref().err().map(ReplicateError::failure);
        if let Some(why) = failure {
            crate::observe::spans::set_error(&span, why);
        }
        crate::observe::metrics::raft_proposal(started.elapsed().as_secs_f64(), failure);
        result
    }

    async fn propose_inner(&self, req: Request, deadline: Instant) -> Result<Outcome, ReplicateError> {
        let timeout = self.cfg.propose_timeout();
        let mut last_err = String::from("no leader known");
        let mut metrics = self.raft.metrics();
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() || *self.shutdown.borrow() {
                return Err(ReplicateError::NoQuorum { timeout_ms: timeout.as_millis(), last: last_err });
            }
            match self.leader() {
                Some((id, _)) if id == self.id => match self.leader_write(req.clone(), remaining).await {
                    Ok((outcome, _)) => return Ok(outcome),
                    Err(WriteError::NotLeader(_)) => {
                        last_err = "leadership changed".into();
                        pause(&mut metrics, remaining, 20).await;
                    }
                    Err(WriteError::Failed(e)) => {
                        last_err = e;
                        pause(&mut metrics, remaining, 50).await;
                    }
                },
                Some((id, addr)) if !addr.is_empty() => match self.forward(&addr, &req, remaining).await {
                    Ok(Forwarded::Written(outcome, index)) => {
                        let left = deadline
                            .saturating_duration_since(Instant::now())
                            .max(Duration::from_millis(100));
                        if self.state.wait_applied(index, left).await {
                            return Ok(outcome);
                        }
                        return Err(ReplicateError::NotApplied { index, timeout_ms: timeout.as_millis() });
                    }
                    Ok(Forwarded::Moved(h)) => {
                        last_err = format!("node {id} is no longer the leader (it names {})", h.leader_id);
                        pause(&mut metrics, remaining, 20).await;
                    }
                    Err(e) => {
                        last_err = format!("leader {id}: {e}");
                        pause(&mut metrics, remaining, 50).await;
                    }
                },
                _ => {
                    last_err = "no leader known (election running or no quorum)".into();
                    pause(&mut metrics, remaining, 100).await;
                }
            }
        }
    }

    /// Graceful stop: declares this incarnation down first (so the other nodes purge
    /// its entries and fail calls routed to it now, not after the lease), then
    /// [`Cluster::shutdown`]. Call it after the node's sessions have left.
    pub async fn retire(&self) {
        if !self.is_shut_down() && !self.retiring.swap(true, Ordering::SeqCst) {
            let down = Request::Down { node: self.id, incarnation: self.incarnation };
            let propose = self.propose(down);
            if let Ok(Err(e)) = tokio::time::timeout(Duration::from_secs(1), propose).await {
                tracing::debug!(error = %e, "could not announce this node's departure");
            }
        }
        self.shutdown().await;
    }

    /// True while this leader hands leadership over to another voter.
    pub fn is_handing_over(&self) -> bool {
        self.handing_over.load(Ordering::SeqCst)
    }

    /// True while this process, started without Raft state, has not joined yet.
    pub(crate) fn is_fresh(&self) -> bool {
        self.fresh.load(Ordering::SeqCst)
    }

    /// Records that this node joined: it is no longer fresh.
    pub(crate) fn set_joined(&self) {
        if self.fresh.swap(false, Ordering::SeqCst)
            && let Err(e) = self.log.set_unjoined(false)
        {
            tracing::warn!(error = %e, "cannot record that this node joined");
        }
    }

    /// True once [`Cluster::retire`] was called.
    pub(crate) fn is_retiring(&self) -> bool {
        self.retiring.load(Ordering::SeqCst)
    }

    /// Stops the gRPC server, the background tasks and Raft. Idempotent.
    pub async fn shutdown(&self) {
        self.shutdown.send_replace(true);
        let tasks: Vec<_> = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        if let Err(e) = self.raft.shutdown().await {
            tracing::debug!(error = %e, "raft shutdown");
        }
        for t in tasks {
            t.abort();
            t.await.ok();
        }
    }

    /// True once [`Cluster::shutdown`] was called.
    pub fn is_shut_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    pub(crate) fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Index of the last committed entry this node knows of (-1 for none).
    pub fn committed_index(&self) -> i64 {
        self.committed.load(Ordering::Relaxed)
    }
}

enum Forwarded {
    Written(Outcome, u64),
    Moved(LeaderHint),
}

/// Waits up to `ms` (bounded by `remaining`) or until the Raft metrics change.
async fn pause(
    metrics: &mut watch::Receiver<openraft::RaftMetrics<u64, BasicNode>>,
    remaining: Duration,
    ms: u64,
) {
    let wait = remaining.min(Duration::from_millis(ms));
    metrics.borrow_and_update();
    tokio::time::timeout(wait, metrics.changed()).await.ok();
    // Metrics change often (heartbeats); never spin faster than every 10 ms.
    tokio::time::sleep(Duration::from_millis(10).min(wait)).await;
}

/// Whether the store holds no Raft state at all: no log entry (purged or not) and
/// no vote.
async fn is_empty(log: &mut LogStore) -> Result<bool, ClusterError> {
    let storage = |e: openraft::StorageError<u64>| ClusterError::Storage(e.to_string());
    let state = log.get_log_state().await.map_err(storage)?;
    let vote = log.read_vote().await.map_err(storage)?;
    Ok(state.last_log_id.is_none() && vote.is_none())
}

/// A fresh incarnation: the start time in microseconds since the Unix epoch.
fn incarnation() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(1)
        .max(1)
}
