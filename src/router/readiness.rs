//! Readiness and the graceful-drain flag of this node.
//!
//! A node is *ready* (`/readyz` 200) when its listeners are up, it is a member of
//! the Raft cluster with a known leader, its state machine has applied everything
//! committed, it has the other nodes' subscription interest (so its first
//! publications reach their subscribers; waited for at most [`INTEREST_WAIT`] after
//! the listeners came up, so one node whose link cannot connect does not keep the
//! others out of service), and it is not draining. Draining starts at SIGTERM
//! ([`Router::begin_drain`]): readiness fails at once so load balancers stop
//! sending, and listeners refuse new connections ([`Router::draining`]).

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
    cluster_check(router).map(|_| ())
}

/// The readiness verdict; if only the state machine lags the commit index, waits up
/// to [`APPLY_WAIT`] for it to catch up.
pub async fn check(router: &Router) -> Readiness {
    match cluster_check(router)? {
        None => Ok(()),
        Some(committed) => {
            let cluster = router.replica.replicate().ok_or("no cluster")?;
            if cluster.wait_applied(committed, APPLY_WAIT).await {
                Ok(())
            } else {
                let applied = cluster.applied_index().map(|i| i as i64).unwrap_or(-1);
                Err(NotReady(format!(
                    "state machine applied up to {applied}, behind the commit index {committed}"
                )))
            }
        }
    }
}

/// `Ok(None)` when ready, `Ok(Some(index))` when ready but for applying up to
/// the committed `index`, `Err` otherwise.
fn cluster_check(router: &Router) -> Result<Option<u64>, NotReady> {
    if router.draining() {
        return Err("draining".into());
    }
    if !router.listeners_up() {
        return Err("starting: listeners not up yet".into());
    }
    let Some(cluster) = router.replica.replicate() else { return Ok(None) };
    let verdict = cluster.readiness().map_err(|e| NotReady(e.to_string()))?;
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
}
