//! The cluster as the router sees it: one trait, [`Replicate`], implemented by
//! [`Cluster`]. The router commits routing commands, follows node purges and
//! changes the membership through it, and so needs none of the cluster's modules
//! (`membership`, `status`, the Raft log types).

use std::future::Future;
use std::pin::Pin;

use tokio::sync::broadcast;

use super::node::Cluster;
use super::types::{NodeDownEvent, Request};
use crate::ids::NodeId;
use crate::table::{Command, Outcome};

/// A future answered by the cluster.
pub type Pending<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the router asks of the cluster.
pub trait Replicate: Send + Sync {
    /// This node's id.
    fn node_id(&self) -> NodeId;
    /// This process's incarnation.
    fn incarnation(&self) -> u64;
    /// Commits a routing command and returns what applying it produced, once this
    /// node has applied it; the error says why it was not committed.
    fn commit(&self, cmd: Command) -> Pending<'_, Result<Outcome, String>>;
    /// The nodes the replicated liveness table has up, this one included.
    fn nodes_up(&self) -> Vec<NodeId>;
    /// Node purges as they are applied on this node.
    fn node_down_events(&self) -> broadcast::Receiver<NodeDownEvent>;
    /// Leaves the cluster gracefully, then stops Raft and the gRPC server.
    fn retire(&self) -> Pending<'_, ()>;
    /// Node `node`'s role in the membership as this node sees it (`voter`,
    /// `learner`), `None` if it is not a member.
    fn role_of(&self, node: u64) -> Option<String>;
    /// Makes node `node` a voter (through the leader); the log index.
    fn promote(&self, node: u64) -> Pending<'_, Result<u64, String>>;
    /// Removes node `node` from the cluster for good (through the leader); the log
    /// index.
    fn remove(&self, node: u64) -> Pending<'_, Result<u64, String>>;
}

impl Replicate for Cluster {
    fn node_id(&self) -> NodeId {
        NodeId(self.id())
    }

    fn incarnation(&self) -> u64 {
        Cluster::incarnation(self)
    }

    fn commit(&self, cmd: Command) -> Pending<'_, Result<Outcome, String>> {
        Box::pin(self.propose(Request::Route(cmd)))
    }

    fn nodes_up(&self) -> Vec<NodeId> {
        self.replicated().nodes().into_iter().filter(|(_, n)| n.up).map(|(id, _)| NodeId(id)).collect()
    }

    fn node_down_events(&self) -> broadcast::Receiver<NodeDownEvent> {
        self.subscribe_node_down()
    }

    fn retire(&self) -> Pending<'_, ()> {
        Box::pin(Cluster::retire(self))
    }

    fn role_of(&self, node: u64) -> Option<String> {
        let status = super::status::build(self);
        status.members.into_iter().find(|m| m.node_id == node && m.role != "gone").map(|m| m.role)
    }

    fn promote(&self, node: u64) -> Pending<'_, Result<u64, String>> {
        Box::pin(super::membership::promote(self, node))
    }

    fn remove(&self, node: u64) -> Pending<'_, Result<u64, String>> {
        Box::pin(super::membership::remove(self, node))
    }
}
