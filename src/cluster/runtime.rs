//! Starting a node: the Raft replica with the data-path `Link` service on the same
//! gRPC port, the router on top of it, the links to the other nodes, and the reaction
//! to nodes being declared down.
//!
//! When another node is purged, every call routed to it is answered at once. When
//! *this* node is purged (it was cut off from the majority longer than the lease),
//! its routing entries are gone cluster-wide: rather than re-creating them under new
//! ids its clients do not know, the node ends every local session
//! (`wamp.close.system_shutdown`) so clients reconnect and register afresh.

use std::sync::{Arc, OnceLock};

use tokio::sync::broadcast::error::RecvError;

use super::ClusterError;
use super::link::pb::link_server::LinkServer;
use super::link::{GrpcLinks, LinkService, ReplyPaths, Resolver};
use crate::config::Config;
use crate::ids::NodeId;
use crate::router::Router;
use crate::router::link::on_node_lost;
use crate::router::replica::Replica;
use crate::wamp::errors;

/// Starts this node: joins (or forms) the cluster, then returns the router.
pub async fn start(cfg: &Config) -> Result<Arc<Router>, ClusterError> {
    let slot: Arc<OnceLock<Arc<Router>>> = Arc::new(OnceLock::new());
    let replies = Arc::new(ReplyPaths::default());
    let links = LinkService::new(slot.clone(), replies.clone(), cfg.cluster.tls.is_some());
    let routes = tonic::service::Routes::new(LinkServer::new(links));
    let replica = Replica::start(&cfg.cluster, routes).await?;
    let node = replica.cluster().map(|c| c.id()).unwrap_or(cfg.cluster.node_id);
    let router = Router::with_replica(cfg.clone(), NodeId(node), replica);
    slot.set(router.clone()).ok();
    let weak = Arc::downgrade(&router);
    let resolve: Resolver = Arc::new(move |n: NodeId| weak.upgrade()?.replica.cluster()?.node_addr(n.0));
    let links = GrpcLinks::new(&router, resolve, replies);
    if let Some(cluster) = router.replica.cluster() {
        let reporter = Arc::downgrade(&links);
        cluster
            .set_link_reporter(Arc::new(move || reporter.upgrade().map(|l| l.states()).unwrap_or_default()));
    }
    router.set_links(links);
    tokio::spawn(watch_node_down(router.clone()));
    for realm in router.realms() {
        crate::router::history::pin(&router, realm).await;
    }
    Ok(router)
}

async fn watch_node_down(router: Arc<Router>) {
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
            on_node_lost(&router, NodeId(ev.node));
            if ev.publisher == router.node.0 {
                crate::router::testament::publish_orphans(&router, ev.testaments);
            }
            continue;
        }
        let mine = router.replica.cluster().map(|c| c.incarnation()).unwrap_or(0);
        if ev.incarnation == mine {
            tracing::warn!("this node was declared down by the cluster: ending local sessions");
            router.kill_all_sessions(errors::SYSTEM_SHUTDOWN, "this node was cut off from the cluster");
            for realm in router.realms() {
                crate::router::history::pin(&router, realm).await;
            }
        }
    }
}
