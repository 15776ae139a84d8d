//! The cluster's part of starting a node's data path. The `Link` service is made
//! first ([`DataPath::new`]) so it is served on the Raft gRPC port from the start (a
//! node must serve Raft to join); once the wiring has built the router, the links
//! to the other nodes are connected to it ([`DataPath::connect`]) through the
//! [`LinkHandler`] seam, so this layer never builds or names the router.

use std::sync::{Arc, OnceLock};

use super::config::ClusterConfig;
use super::link::pb::link_server::LinkServer;
use super::link::{GrpcLinks, Inbound, LinkService, Redial, ReplyPaths, Resolver};
use super::node::Cluster;
use crate::ids::NodeId;
use crate::link::LinkHandler;

/// The receiving half of the data path, waiting for its handler.
pub struct DataPath {
    /// Where the `Link` service delivers, once set.
    slot: Arc<OnceLock<Inbound>>,
    /// Reply paths shared by the service (which opens them) and the links (which
    /// send answers on them).
    replies: Arc<ReplyPaths>,
    /// Streams from a node wake the link to it out of its reconnect backoff.
    redial: Arc<Redial>,
}

impl DataPath {
    /// The data path of a node configured by `cfg`, and the gRPC routes of its `Link`
    /// service, to serve with the cluster (`extra` of [`Cluster::start`]).
    pub fn new(cfg: &ClusterConfig) -> (DataPath, tonic::service::Routes) {
        let slot: Arc<OnceLock<Inbound>> = Arc::new(OnceLock::new());
        let replies = Arc::new(ReplyPaths::default());
        let redial = Arc::new(Redial::default());
        let service = LinkService::new(slot.clone(), replies.clone(), redial.clone(), cfg.tls.is_some());
        let server = LinkServer::new(service)
            .max_decoding_message_size(super::network::MAX_MESSAGE)
            .max_encoding_message_size(super::network::MAX_MESSAGE);
        let routes = tonic::service::Routes::new(server);
        (DataPath { slot, replies, redial }, routes)
    }

    /// Delivers what other nodes send to `handler` from now on, and returns the links
    /// from this node of `cluster` to the others, for the router to send on. Peers
    /// are found in the cluster's membership; `junction cluster status` reports the
    /// links' states.
    pub fn connect(self, cluster: &Arc<Cluster>, handler: Arc<dyn LinkHandler>) -> Arc<GrpcLinks> {
        let me = NodeId(cluster.id());
        let weak = Arc::downgrade(&handler);
        self.slot.set(Inbound { node: me, handler }).ok();
        let members = Arc::downgrade(cluster);
        let resolve: Resolver = Arc::new(move |n: NodeId| members.upgrade()?.node_addr(n.0));
        let links =
            GrpcLinks::new(me, weak, cluster.credentials().clone(), resolve, self.replies, self.redial);
        let reporter = Arc::downgrade(&links);
        cluster
            .set_link_reporter(Arc::new(move || reporter.upgrade().map(|l| l.states()).unwrap_or_default()));
        links
    }
}
