//! The gRPC server of a node: the `Raft` service (openraft's RPCs, write
//! forwarding, join/leave, status, leadership transfer), plus whatever other services the node serves on
//! the same port (the data-path `Link` and `Meta` services, passed in as routes).
//!
//! Requests come from the network: anything undecodable is an `INVALID_ARGUMENT`
//! status, never a panic.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

use super::convert::{decode, encode};
use super::membership;
use super::network::MAX_MESSAGE;
use super::node::{Cluster, WriteError};
use super::proto::raft_server::{self, RaftServer};
use super::proto::{
    ClientWriteReply, ClientWriteRequest, ElectReply, ElectRequest, JoinReply, JoinRequest, LeaveReply,
    LeaveRequest, RaftPayload, StatusReply, StatusRequest, TransferReply, TransferRequest, Written,
    client_write_reply, transfer_reply,
};
use super::secure::Caller;
use super::status;
use super::transfer;
use super::types::{Request as RaftRequest, TypeConfig};

/// The `Raft` gRPC service of one node.
pub struct RaftService {
    cluster: Arc<Cluster>,
    /// Mutual TLS: requests claiming a node id must present that node's certificate.
    tls: bool,
}

impl RaftService {
    /// Refuses `request` unless its certificate may speak for `node` (a vote or
    /// leader id of 0 or none claims nobody and needs no check).
    fn speaks_for<T>(&self, request: &Request<T>, node: Option<u64>) -> Result<(), Status> {
        Ok(Caller::of(self.tls, request).speaks_for(node)?)
    }

    /// Answers the requests of a stream with `answer`, one at a time and in order,
    /// each checked against the certificate that opened the stream. The stream ends
    /// when the node shuts down: the peer then reconnects and finds the port closed
    /// (refused: the node is down), instead of going on talking to a connection left
    /// over from the stopped server.
    fn in_order<Req, Resp, A, Fut>(
        &self,
        request: Request<Streaming<Req>>,
        answer: A,
    ) -> Result<Response<Replies<Resp>>, Status>
    where
        Req: Send + 'static,
        Resp: Send + 'static,
        A: Fn(Arc<Cluster>, Caller, Req) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Resp, Status>> + Send + 'static,
    {
        let mut stopping = self.cluster.shutdown_signal();
        if *stopping.borrow() {
            return Err(Status::unavailable("this node is shutting down"));
        }
        let (cluster, caller) = (self.cluster.clone(), Caller::of(self.tls, &request));
        let replies = request
            .into_inner()
            .then(move |msg| {
                let answered = msg.map(|msg| answer(cluster.clone(), caller.clone(), msg));
                async move { answered?.await }
            })
            .take_until(async move {
                stopping.wait_for(|s| *s).await.ok();
            });
        Ok(Response::new(Box::pin(replies)))
    }
}

/// The replies of a stream (`AppendStream`, `WriteStream`), one per request, in order.
type Replies<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

fn bad_request(e: impl std::fmt::Display) -> Status {
    Status::invalid_argument(e.to_string())
}

fn reply<T: serde::Serialize>(what: &'static str, v: &T) -> Result<Response<RaftPayload>, Status> {
    let payload = encode(what, v).map_err(|e| Status::internal(e.to_string()))?;
    Ok(Response::new(RaftPayload { payload, sent_ms: 0 }))
}

/// Answers one AppendEntries: `authorize` checks the leader id it claims against
/// the sender's certificate. A request accepted (not refused for a higher vote)
/// proves contact with the leader as of when it was sent (cluster/fence.rs).
async fn append(
    cluster: &Cluster,
    msg: &RaftPayload,
    authorize: impl Fn(Option<u64>) -> Result<(), Status>,
) -> Result<RaftPayload, Status> {
    let req: openraft::raft::AppendEntriesRequest<TypeConfig> =
        decode("append entries", &msg.payload).map_err(bad_request)?;
    authorize(req.vote.leader_id().voted_for())?;
    let commit = req.leader_commit.map_or(0, |c| c.index);
    let res = cluster.raft.append_entries(req).await;
    if matches!(res, Ok(ref r) if !matches!(r, openraft::raft::AppendEntriesResponse::HigherVote(_))) {
        let now = std::time::Instant::now();
        let sent = super::fence::sent_instant(now, msg.sent_ms, super::fence::unix_ms());
        cluster.fence.contact(sent, now, commit);
    }
    let payload = encode("append entries reply", &res).map_err(|e| Status::internal(e.to_string()))?;
    Ok(RaftPayload { payload, sent_ms: 0 })
}

/// Commits a write forwarded by a follower, if this node leads: `authorize` checks
/// each node the write speaks for against the sender's certificate.
async fn write(
    cluster: &Cluster,
    msg: &ClientWriteRequest,
    authorize: impl Fn(Option<u64>) -> Result<(), Status>,
) -> Result<ClientWriteReply, Status> {
    let req: RaftRequest = decode("client write", &msg.request).map_err(bad_request)?;
    for origin in req.origins() {
        authorize(Some(origin))?;
    }
    let timeout = match msg.timeout_ms {
        0 => cluster.cfg.propose_timeout(),
        ms => Duration::from_millis(ms.min(60_000)),
    };
    let result = match cluster.leader_write(req, timeout).await {
        Ok((outcome, log_index)) => {
            let outcome = encode("outcome", &outcome).map_err(|e| Status::internal(e.to_string()))?;
            client_write_reply::Result::Written(Written { outcome, log_index })
        }
        Err(WriteError::NotLeader(hint)) => client_write_reply::Result::Forward(hint),
        Err(WriteError::Failed(e)) => client_write_reply::Result::Error(e),
    };
    Ok(ClientWriteReply { result: Some(result) })
}

#[tonic::async_trait]
impl raft_server::Raft for RaftService {
    async fn append_entries(&self, request: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        let reply =
            append(&self.cluster, request.get_ref(), |leader| self.speaks_for(&request, leader)).await?;
        Ok(Response::new(reply))
    }

    type AppendStreamStream = Replies<RaftPayload>;

    async fn append_stream(
        &self,
        request: Request<Streaming<RaftPayload>>,
    ) -> Result<Response<Replies<RaftPayload>>, Status> {
        self.in_order(request, |cluster, caller, msg| async move {
            append(&cluster, &msg, |leader| Ok(caller.speaks_for(leader)?)).await
        })
    }

    async fn vote(&self, request: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        let req: openraft::raft::VoteRequest<u64> =
            decode("vote", &request.get_ref().payload).map_err(bad_request)?;
        self.speaks_for(&request, req.vote.leader_id().voted_for())?;
        if self.cluster.is_fresh() {
            // Started without state: it may have voted in this term before.
            return Err(Status::unavailable("this node started with an empty log and has not joined yet"));
        }
        let res = self.cluster.raft.vote(req).await;
        reply("vote reply", &res)
    }

    async fn install_snapshot(&self, request: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        let req: openraft::raft::InstallSnapshotRequest<TypeConfig> =
            decode("install snapshot", &request.get_ref().payload).map_err(bad_request)?;
        self.speaks_for(&request, req.vote.leader_id().voted_for())?;
        let res = self.cluster.raft.install_snapshot(req).await;
        reply("install snapshot reply", &res)
    }

    async fn client_write(
        &self,
        request: Request<ClientWriteRequest>,
    ) -> Result<Response<ClientWriteReply>, Status> {
        let reply = write(&self.cluster, request.get_ref(), |node| self.speaks_for(&request, node)).await?;
        Ok(Response::new(reply))
    }

    type WriteStreamStream = Replies<ClientWriteReply>;

    async fn write_stream(
        &self,
        request: Request<Streaming<ClientWriteRequest>>,
    ) -> Result<Response<Replies<ClientWriteReply>>, Status> {
        self.in_order(request, |cluster, caller, msg| async move {
            write(&cluster, &msg, |node| Ok(caller.speaks_for(node)?)).await
        })
    }

    async fn join(&self, request: Request<JoinRequest>) -> Result<Response<JoinReply>, Status> {
        self.speaks_for(&request, Some(request.get_ref().node_id))?;
        let req = request.into_inner();
        Ok(Response::new(membership::handle_join(&self.cluster, &req).await))
    }

    async fn leave(&self, request: Request<LeaveRequest>) -> Result<Response<LeaveReply>, Status> {
        let req = request.into_inner();
        // Any node takes the request and forwards it to the leader.
        let result = match membership::remove(&self.cluster, req.node_id).await {
            Ok(i) => super::proto::leave_reply::Result::LogIndex(i),
            Err(e) => super::proto::leave_reply::Result::Error(e.to_string()),
        };
        Ok(Response::new(LeaveReply { result: Some(result) }))
    }

    async fn promote(&self, request: Request<LeaveRequest>) -> Result<Response<LeaveReply>, Status> {
        let req = request.into_inner();
        let result = match membership::promote(&self.cluster, req.node_id).await {
            Ok(i) => super::proto::leave_reply::Result::LogIndex(i),
            Err(e) => super::proto::leave_reply::Result::Error(e.to_string()),
        };
        Ok(Response::new(LeaveReply { result: Some(result) }))
    }

    async fn status(&self, _request: Request<StatusRequest>) -> Result<Response<StatusReply>, Status> {
        Ok(Response::new(status::build(&self.cluster)))
    }

    async fn transfer_leader(
        &self,
        request: Request<TransferRequest>,
    ) -> Result<Response<TransferReply>, Status> {
        let to = Some(request.into_inner().to).filter(|t| *t != 0);
        // Any node takes the request and forwards it to the leader.
        let result = match transfer::transfer(&self.cluster, to).await {
            Ok(id) => transfer_reply::Result::LeaderId(id),
            Err(e) => transfer_reply::Result::Error(e.to_string()),
        };
        Ok(Response::new(TransferReply { result: Some(result) }))
    }

    async fn elect(&self, request: Request<ElectRequest>) -> Result<Response<ElectReply>, Status> {
        self.speaks_for(&request, Some(request.get_ref().leader_id))?;
        Ok(Response::new(transfer::handle_elect(&self.cluster, request.get_ref()).await))
    }
}

/// Serves the `Raft` service (and `extra`) on `listener` until `shutdown` flips.
pub async fn serve(
    cluster: Arc<Cluster>,
    listener: TcpListener,
    extra: tonic::service::Routes,
    mut shutdown: watch::Receiver<bool>,
) {
    let addr = listener.local_addr().ok();
    let creds = cluster.credentials().clone();
    let svc = RaftServer::new(RaftService { cluster, tls: creds.has_tls() })
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE);
    let routes = extra.add_service(svc);
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = creds.server_tls() {
        builder = match builder.tls_config(tls) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "cluster TLS configuration refused; not serving");
                return;
            }
        };
    }
    let result = builder
        .http2_keepalive_interval(Some(Duration::from_secs(1)))
        .http2_keepalive_timeout(Some(Duration::from_secs(2)))
        .layer(tonic::service::InterceptorLayer::new(creds.checker()))
        .add_routes(routes)
        .serve_with_incoming_shutdown(incoming, async move {
            shutdown.wait_for(|s| *s).await.ok();
        })
        .await;
    if let Err(e) = result {
        tracing::error!(addr = ?addr, error = %e, "cluster gRPC server stopped");
    }
}
