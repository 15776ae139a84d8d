//! Readiness and the graceful-drain flag of this node.
//!
//! Readiness means *this node can serve clients* (`/readyz` 200): its listeners are
//! up, it has joined the cluster once, it is not fenced and not draining. *Joined
//! once*: the first time, it must be a member with a known leader, its state machine
//! caught up with the commit index, and it must have the other nodes' subscription
//! interest (so its first publications reach their subscribers; waited for at most
//! [`INTEREST_WAIT`] after the listeners came up, so one node whose link cannot
//! connect does not keep the others out of service). After that, an election or a
//! lagging state machine does not take the node out of the client Service: it still
//! routes its own sessions and whatever the links reach. A *fenced* node (cut off
//! from the quorum longer than the lease allows, see `cluster::fence`) is not ready:
//! the cluster may have declared it down, so its clients are better served
//! elsewhere.
//!
//! Cluster health is reported apart (`/readyz?cluster=1`, [`check_cluster`]): member,
//! leader known, caught up with the commit index, not fenced — what an operator or a
//! rollout gate wants, not what decides where clients go.
//!
//! Draining starts at SIGTERM ([`Router::begin_drain`]): readiness fails at once so
//! load balancers stop sending, and listeners refuse new connections
//! ([`Router::draining`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::Router;
use crate::observe::metrics::metrics;
use crate::observe::status::{NotReady, Readiness};

/// How long a readiness check waits for the state machine to catch up with the
/// commit index before reporting the lag.
pub const APPLY_WAIT: Duration = Duration::from_millis(500);

/// How long after its listeners came up readiness waits for the other nodes'
/// subscription interest.
pub const INTEREST_WAIT: Duration = Duration::from_secs(5);

/// Where the node is in its life: listeners bound, draining.
#[derive(Debug, Default)]
pub struct Lifecycle {
    listeners_up: AtomicBool,
    /// When the listeners first came up.
    up_since: std::sync::OnceLock<std::time::Instant>,
    draining: AtomicBool,
    /// Set the first time the node was ready: it has joined the cluster.
    joined: AtomicBool,
}

impl Router {
    /// Marks the client listeners as bound (or not).
    pub fn set_listeners_up(&self, up: bool) {
        if up {
            self.lifecycle.up_since.get_or_init(std::time::Instant::now);
        }
        self.lifecycle.listeners_up.store(up, Ordering::SeqCst);
    }

    /// True once the client listeners are bound.
    pub fn listeners_up(&self) -> bool {
        self.lifecycle.listeners_up.load(Ordering::SeqCst)
    }

    /// Starts the graceful drain: readiness fails from now on and listeners
    /// refuse new connections.
    pub fn begin_drain(&self) {
        if !self.lifecycle.draining.swap(true, Ordering::SeqCst) {
            tracing::info!("draining: /readyz reports 503, new connections are refused");
        }
        metrics().draining.set(1);
    }

    /// True once the graceful drain started: a listener closes new connections
    /// right after accepting them.
    #[inline]
    pub fn draining(&self) -> bool {
        self.lifecycle.draining.load(Ordering::Relaxed)
    }
}

/// The readiness verdict without waiting.
pub fn check_now(router: &Router) -> Readiness {
    let verdict = serving_check(router).map(|_| ());
    if verdict.is_ok() {
        router.lifecycle.joined.store(true, Ordering::SeqCst);
    }
    verdict
}

/// The readiness verdict; if only the state machine lags the commit index (before
/// the node first joined), waits up to [`APPLY_WAIT`] for it to catch up.
pub async fn check(router: &Router) -> Readiness {
    let verdict = match serving_check(router)? {
        None => Ok(()),
        Some(committed) => caught_up(router, committed).await,
    };
    if verdict.is_ok() {
        router.lifecycle.joined.store(true, Ordering::SeqCst);
    }
    verdict
}

/// Cluster health (`/readyz?cluster=1`): a member with a known leader, not fenced,
/// its state machine caught up (waiting up to [`APPLY_WAIT`]).
pub async fn check_cluster(router: &Router) -> Readiness {
    base_check(router)?;
    let Some(cluster) = router.replica.replicate() else { return Ok(()) };
    if cluster.fenced() {
        return Err(fenced());
    }
    match cluster.readiness().map_err(|e| NotReady(e.to_string()))? {
        None => Ok(()),
        Some(committed) => caught_up(router, committed).await,
    }
}

fn fenced() -> NotReady {
    NotReady("fenced: cut off from the cluster's quorum (it may have been declared down)".into())
}

async fn caught_up(router: &Router, committed: u64) -> Readiness {
    let cluster = router.replica.replicate().ok_or("no cluster")?;
    if cluster.wait_applied(committed, APPLY_WAIT).await {
        return Ok(());
    }
    let applied = cluster.applied_index().map(|i| i as i64).unwrap_or(-1);
    Err(NotReady(format!("state machine applied up to {applied}, behind the commit index {committed}")))
}

/// Listeners up and not draining.
fn base_check(router: &Router) -> Result<(), NotReady> {
    if router.draining() {
        return Err("draining".into());
    }
    if !router.listeners_up() {
        return Err("starting: listeners not up yet".into());
    }
    Ok(())
}

/// `Ok(None)` when the node can serve clients, `Ok(Some(index))` when it could but
/// for applying up to the committed `index` before its first join, `Err` otherwise.
fn serving_check(router: &Router) -> Result<Option<u64>, NotReady> {
    base_check(router)?;
    let Some(cluster) = router.replica.replicate() else { return Ok(None) };
    if cluster.fenced() {
        return Err(fenced());
    }
    if router.lifecycle.joined.load(Ordering::SeqCst) {
        return Ok(None);
    }
    let verdict = cluster.readiness().map_err(|e| NotReady(format!("joining: {e}")))?;
    interest_check(router)?;
    Ok(verdict)
}

/// Waits (within [`INTEREST_WAIT`] of the listeners coming up) until every other
/// node up sent its whole subscription interest.
fn interest_check(router: &Router) -> Result<(), NotReady> {
    if router.lifecycle.up_since.get().is_none_or(|t| t.elapsed() > INTEREST_WAIT) {
        return Ok(());
    }
    let missing: Vec<u64> = router
        .replica
        .peers(router.node)
        .into_iter()
        .filter(|n| !router.interest.heard_from(*n))
        .map(|n| n.0)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(NotReady(format!("waiting for the subscription interest of nodes {missing:?}")))
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use crate::ids::NodeId;
    use crate::observe::status::{NotReady, StatusSource};
    use crate::router::Router;
    use crate::router::test_doubles::FakeCluster;

    #[tokio::test]
    async fn ready_once_listening_until_draining() {
        let router = Router::new(Config::default(), NodeId(1));
        let source: &dyn StatusSource = &*router;
        assert_eq!(source.readiness_now(), Err(NotReady("starting: listeners not up yet".into())));
        router.set_listeners_up(true);
        assert_eq!(source.readiness().await, Ok(()));
        assert!(!router.draining() && !source.draining());
        router.begin_drain();
        assert!(router.draining() && source.draining());
        assert_eq!(source.readiness_now(), Err(NotReady("draining".into())));
        assert_eq!(source.status(source.readiness_now())["not_ready_reason"], "draining");
    }

    #[tokio::test]
    async fn readiness_means_can_serve_clients_once_joined_and_cluster_health_is_apart() {
        use std::sync::Arc;
        use std::sync::atomic::Ordering;
        let fake = Arc::new(FakeCluster::default());
        *fake.verdict.lock().unwrap() = Some(crate::cluster::NotReady::NoLeader);
        let replica = crate::router::replica::Replica::new(Arc::default(), fake.clone());
        let router = Router::with_replica(Config::default(), NodeId(1), replica);
        let source: &dyn StatusSource = &*router;
        router.set_listeners_up(true);
        let joining = source.readiness().await.unwrap_err();
        assert!(joining.0.contains("joining") && joining.0.contains("leader"), "{joining:?}");
        *fake.verdict.lock().unwrap() = None;
        assert_eq!(source.readiness().await, Ok(()), "joined: ready");
        assert_eq!(source.cluster_readiness().await, Ok(()));
        *fake.verdict.lock().unwrap() = Some(crate::cluster::NotReady::NoLeader);
        assert_eq!(
            source.readiness().await,
            Ok(()),
            "an election does not take a joined node out of service"
        );
        assert!(source.cluster_readiness().await.unwrap_err().0.contains("leader"), "cluster health says so");
        fake.fenced.store(true, Ordering::SeqCst);
        assert!(source.readiness().await.unwrap_err().0.starts_with("fenced"), "a fenced node serves nobody");
        assert!(source.cluster_readiness().await.unwrap_err().0.starts_with("fenced"));
        fake.fenced.store(false, Ordering::SeqCst);
        assert_eq!(source.readiness().await, Ok(()));
        router.begin_drain();
        assert_eq!(source.readiness().await, Err(NotReady("draining".into())));
        assert_eq!(source.cluster_readiness().await, Err(NotReady("draining".into())));
    }
}
