//! What the router does when the cluster purges a node (the node-down events of
//! [`Replica::node_down_events`](super::replica::Replica::node_down_events)).
//!
//! When another node is purged, its subscription interest is dropped, every call
//! routed to it is answered at once, and the node chosen to publish them publishes
//! its sessions' testaments. When *this*
//! node is purged (it was cut off from the majority longer than the lease), its
//! routing entries are gone cluster-wide: rather than re-creating them under new ids
//! its clients do not know, the node ends every local session
//! (`wamp.close.system_shutdown`) so clients reconnect and register afresh. Its
//! testaments went to a surviving node with the purge, so the ending sessions drop
//! theirs: each testament is published once.

use std::sync::Arc;

use tokio::sync::broadcast::error::RecvError;

use super::Router;
use super::link::on_node_lost;
use crate::ids::NodeId;
use crate::wamp::errors;

/// Follows the node purges applied on this node until the replica stops.
pub async fn watch(router: Arc<Router>) {
    let mut events = router.replica.node_down_events();
    loop {
        let ev = match events.recv().await {
            Ok(ev) => ev,
            Err(RecvError::Lagged(n)) => {
                tracing::warn!(missed = n, "node-down events lagged");
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        if ev.node != router.node.0 {
            // the interest a node sent lives as long as its stream (see
            // drop_node_unless_heard)
            router.interest.drop_node_unless_heard(&router, NodeId(ev.node));
            on_node_lost(&router, NodeId(ev.node));
            if ev.publisher == router.node.0 {
                super::testament::publish_orphans(&router, ev.testaments);
            }
            continue;
        }
        let mine = router.replica.replicate().map(|c| c.incarnation()).unwrap_or(0);
        if ev.incarnation == mine {
            tracing::warn!("this node was declared down by the cluster: ending local sessions");
            // the purge handed this node's testaments to a surviving node, which
            // publishes them: the sessions ending here must not publish them again
            let dropped: usize =
                router.realms().flat_map(|r| r.sessions.iter().map(|s| s.take_testaments().len())).sum();
            if dropped > 0 {
                tracing::info!(testaments = dropped, "testaments left to the node the cluster chose");
            }
            router.kill_all_sessions(errors::SYSTEM_SHUTDOWN, "this node was cut off from the cluster");
            // the others dropped this node's interest (its history pins): send it again
            router.interest.resync_all(&router);
        }
    }
}
