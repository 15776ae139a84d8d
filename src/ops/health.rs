//! Liveness, readiness and the graceful-drain flag.
//!
//! A node is *ready* (`/readyz` 200) when its listeners are up, it is a member of
//! the Raft cluster with a known leader, its state machine has applied everything
//! committed, and it is not draining. Draining starts at SIGTERM
//! ([`begin_drain`]): `/readyz` turns 503 at once so load balancers stop sending,
//! and listeners refuse new connections ([`draining`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::router::Router;

static LISTENERS_UP: AtomicBool = AtomicBool::new(false);
static DRAINING: AtomicBool = AtomicBool::new(false);

/// How long a readiness check waits for the state machine to catch up with the
/// commit index before reporting the lag.
pub const APPLY_WAIT: Duration = Duration::from_millis(500);

/// Marks the client listeners as bound (or not).
pub fn set_listeners_up(up: bool) {
    LISTENERS_UP.store(up, Ordering::SeqCst);
}

/// True once the client listeners are bound.
pub fn listeners_up() -> bool {
    LISTENERS_UP.load(Ordering::SeqCst)
}

/// Starts the graceful drain: readiness fails from now on and listeners should
/// refuse new connections.
pub fn begin_drain() {
    if !DRAINING.swap(true, Ordering::SeqCst) {
        tracing::info!("draining: /readyz reports 503, new connections are refused");
    }
    crate::observe::metrics::metrics().draining.set(1);
}

/// True once the graceful drain started: a listener should close new connections
/// right after accepting them.
#[inline]
pub fn draining() -> bool {
    DRAINING.load(Ordering::Relaxed)
}

/// The readiness verdict without waiting: `Err` names the first reason the node is
/// not ready.
pub fn check_now(router: Option<&Router>) -> Result<(), String> {
    cluster_check(router).map(|_| ())
}

/// The readiness verdict; if only the state machine lags the commit index, waits up
/// to [`APPLY_WAIT`] for it to catch up.
pub async fn check(router: Option<&Router>) -> Result<(), String> {
    match cluster_check(router)? {
        None => Ok(()),
        Some(committed) => {
            let cluster = router.and_then(|r| r.replica.cluster()).ok_or("no cluster")?;
            if cluster.replicated().wait_applied(committed, APPLY_WAIT).await {
                Ok(())
            } else {
                let applied = cluster.replicated().applied_index().map(|i| i as i64).unwrap_or(-1);
                Err(format!("state machine applied up to {applied}, behind the commit index {committed}"))
            }
        }
    }
}

/// `Ok(None)` when ready, `Ok(Some(index))` when ready but for applying up to
/// the committed `index`, `Err` otherwise.
fn cluster_check(router: Option<&Router>) -> Result<Option<u64>, String> {
    if draining() {
        return Err("draining".into());
    }
    let router = router.ok_or("starting: not joined to the cluster yet")?;
    if !listeners_up() {
        return Err("starting: listeners not up yet".into());
    }
    let Some(cluster) = router.replica.cluster() else { return Ok(None) };
    if cluster.is_shut_down() {
        return Err("the cluster node has stopped".into());
    }
    let (member, leader) = {
        let metrics = cluster.raft().metrics();
        let m = metrics.borrow();
        (m.membership_config.membership().get_node(&cluster.id()).is_some(), m.current_leader)
    };
    if !member {
        return Err("not a member of the cluster".into());
    }
    if leader.is_none() {
        return Err("no Raft leader known".into());
    }
    let committed = cluster.committed_index();
    let applied = cluster.replicated().applied_index().map(|i| i as i64).unwrap_or(-1);
    if committed >= 0 && applied < committed { Ok(Some(committed as u64)) } else { Ok(None) }
}
