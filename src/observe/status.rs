//! What a running router shows the operations layer, without that layer importing
//! the router: readiness, the JSON documents of the admin API, the gauges sampled on
//! demand, and killing a session. The router implements [`StatusSource`]; `main`
//! hands it to `ops` as an `Arc<dyn StatusSource>`.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use serde_json::Value;

use super::metrics::RaftSample;

/// Why a node is not ready: the text `/readyz` answers with its 503.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotReady(pub String);

impl fmt::Display for NotReady {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NotReady {}

impl From<&str> for NotReady {
    fn from(why: &str) -> Self {
        NotReady(why.to_owned())
    }
}

impl From<String> for NotReady {
    fn from(why: String) -> Self {
        NotReady(why)
    }
}

/// The readiness verdict: `Err` names the first reason the node is not ready.
pub type Readiness = Result<(), NotReady>;

/// A readiness check that may wait for the state machine to catch up.
pub type ReadinessCheck<'a> = Pin<Box<dyn Future<Output = Readiness> + Send + 'a>>;

/// The gauges read from the router rather than updated as things happen.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sample {
    /// The Raft view, on a cluster node.
    pub raft: Option<RaftSample>,
    /// Data-path link state per peer node id: true when up (or not known broken).
    pub links: Vec<(u64, bool)>,
    /// Calls made on this node in flight.
    pub calls_in_flight: Option<usize>,
    /// Subscription interest of this node's lingering on the others.
    pub interest_lingering: Option<usize>,
    /// Per realm: registrations in the routing table, subscriptions (topics with
    /// subscribers on any node).
    pub routes: Vec<(String, usize, usize)>,
}

/// A running router as the operations layer sees it.
pub trait StatusSource: Send + Sync {
    /// The readiness verdict without waiting.
    fn readiness_now(&self) -> Readiness;
    /// The readiness verdict, waiting a little if only the state machine lags.
    fn readiness(&self) -> ReadinessCheck<'_>;
    /// Cluster health (`/readyz?cluster=1`): member, leader known, caught up, not
    /// fenced.
    fn cluster_readiness(&self) -> ReadinessCheck<'_>;
    /// True once the graceful drain started.
    fn draining(&self) -> bool;
    /// `GET /api/status`: this node, its realms' session counts and its view of
    /// the cluster, with `readiness` as checked by the caller.
    fn status(&self, readiness: Readiness) -> Value;
    /// `GET /api/sessions[?realm=R]`: the sessions joined on this node.
    fn sessions(&self, realm: Option<&str>) -> Value;
    /// `GET /api/stats`: this node's counters since it started.
    fn stats(&self) -> Value;
    /// Kills a session on this node with GOODBYE `reason`; false when no such session.
    fn kill(&self, session: u64, reason: &str, message: &str) -> bool;
    /// The sampled gauges, now.
    fn sample(&self) -> Sample;
}
