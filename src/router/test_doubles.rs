//! Test doubles of what the router reads from the cluster layer: a cluster
//! ([`FakeCluster`], behind the `Replicate` seam) and the links to other nodes
//! ([`RecordingLinks`]), so router behaviour that depends on them is tested without
//! sockets or Raft.

use std::collections::HashSet;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use crate::ids::NodeId;
use crate::link::{LinkDown, LinkMsg, Links};

/// Node 1 of a cluster whose readiness, fence, nodes up and node purges the test sets
/// (node 1 alone is up unless `up` says otherwise).
#[derive(Default)]
pub struct FakeCluster {
    pub verdict: Mutex<Option<crate::cluster::NotReady>>,
    pub fenced: AtomicBool,
    pub up: Mutex<Option<Vec<NodeId>>>,
    /// Where the test sends node purges (made when the router first asks).
    pub downs: Mutex<Option<tokio::sync::broadcast::Sender<crate::cluster::NodeDownEvent>>>,
}

impl crate::cluster::Replicate for FakeCluster {
    fn node_id(&self) -> NodeId {
        NodeId(1)
    }
    fn incarnation(&self) -> u64 {
        1
    }
    fn commit(
        &self,
        _: crate::table::Command,
    ) -> crate::cluster::replicate::Pending<'_, Result<crate::table::Outcome, crate::cluster::ReplicateError>>
    {
        Box::pin(async { Err(crate::cluster::ReplicateError::NoLeader) })
    }
    fn nodes_up(&self) -> Vec<NodeId> {
        self.up.lock().unwrap().clone().unwrap_or_else(|| vec![NodeId(1)])
    }
    fn node_down_events(&self) -> tokio::sync::broadcast::Receiver<crate::cluster::NodeDownEvent> {
        self.downs.lock().unwrap().get_or_insert_with(|| tokio::sync::broadcast::channel(16).0).subscribe()
    }
    fn retire(&self) -> crate::cluster::replicate::Pending<'_, ()> {
        Box::pin(async {})
    }
    fn role_of(&self, _: u64) -> Option<String> {
        None
    }
    fn promote(
        &self,
        _: u64,
    ) -> crate::cluster::replicate::Pending<'_, Result<u64, crate::cluster::ReplicateError>> {
        Box::pin(async { Err(crate::cluster::ReplicateError::NoLeader) })
    }
    fn remove(
        &self,
        _: u64,
    ) -> crate::cluster::replicate::Pending<'_, Result<u64, crate::cluster::ReplicateError>> {
        Box::pin(async { Err(crate::cluster::ReplicateError::NoLeader) })
    }
    fn status_document(&self) -> serde_json::Value {
        serde_json::Value::Null
    }
    fn sample(&self, _: &dyn Fn(u64) -> bool) -> crate::observe::status::Sample {
        crate::observe::status::Sample::default()
    }
    fn readiness(&self) -> Result<Option<u64>, crate::cluster::NotReady> {
        match &*self.verdict.lock().unwrap() {
            Some(e) => Err(e.clone()),
            None => Ok(None),
        }
    }
    fn wait_applied(&self, _: u64, _: std::time::Duration) -> crate::cluster::replicate::Pending<'_, bool> {
        Box::pin(async { true })
    }
    fn applied_index(&self) -> Option<u64> {
        Some(0)
    }
    fn fenced(&self) -> bool {
        self.fenced.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Links that hand what is sent to the test (the receiver [`RecordingLinks::new`]
/// returns); a node's link is up while it is in `up`.
pub struct RecordingLinks {
    pub up: Mutex<HashSet<NodeId>>,
    sent: mpsc::UnboundedSender<(NodeId, LinkMsg)>,
}

impl RecordingLinks {
    /// Links up to `up`, and what is sent over them.
    pub fn new(up: &[NodeId]) -> (Arc<RecordingLinks>, mpsc::UnboundedReceiver<(NodeId, LinkMsg)>) {
        let (sent, rx) = mpsc::unbounded_channel();
        (Arc::new(RecordingLinks { up: Mutex::new(up.iter().copied().collect()), sent }), rx)
    }
}

impl Links for RecordingLinks {
    fn send(&self, node: NodeId, msg: LinkMsg) -> Result<(), LinkDown> {
        if !self.is_up(node) {
            return Err(LinkDown(node));
        }
        self.sent.send((node, msg)).ok();
        Ok(())
    }

    fn is_up(&self, node: NodeId) -> bool {
        self.up.lock().unwrap().contains(&node)
    }
}
