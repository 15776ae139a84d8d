//! Graceful drain of a node (SIGTERM), before its sessions are told to leave:
//! 1. the registrations of this node's callees are withdrawn from the cluster, so no
//!    new call is routed here (shared registrations go on with the callees on the
//!    other nodes — the "hand-over");
//! 2. invocations already served here get up to a deadline to finish (calls made
//!    from here end with their callers' sessions: a client fails its own pending
//!    calls when it answers GOODBYE);
//!
//! then `main` sends GOODBYE `wamp.close.system_shutdown` and leaves the cluster.

use std::time::Duration;

use super::Router;
use crate::table::Command;

/// Withdraws every local callee's registrations (one command per session, all
/// proposed at once so the cluster commits them in a few batches), giving up after
/// `limit`: what is not withdrawn by then goes when the node leaves the cluster.
pub async fn withdraw_registrations(router: &Router, limit: Duration) {
    let mut withdrawals = Vec::new();
    for realm in router.realms() {
        let sessions: Vec<_> = realm.sessions.iter().map(|s| s.clone()).collect();
        for s in sessions {
            let regs = s.take_registrations();
            if regs.is_empty() {
                continue;
            }
            let cmd = Command::SessionGone {
                realm: realm.name.clone(),
                node: router.node,
                session: s.id,
                registrations: regs.clone(),
                subscriptions: Vec::new(),
            };
            withdrawals.push(async move {
                if let Err(e) = router.replica.propose(cmd).await {
                    tracing::warn!(error = %e, session = %s.id, "registrations not withdrawn before the drain");
                }
                for id in regs {
                    super::rpc::registration_events(router, realm, s.id, id, false);
                }
            });
        }
    }
    let n = withdrawals.len();
    if tokio::time::timeout(limit, futures_util::future::join_all(withdrawals)).await.is_err() {
        tracing::warn!(sessions = n, "registrations not all withdrawn within the drain's bound");
    }
}

/// Waits until no local session serves an invocation, or until `limit` passed;
/// returns true when the node went idle.
pub async fn wait_idle(router: &Router, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let busy = router.dealing.lock().is_serving();
        if !busy {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
