//! The Raft network over gRPC: one lazily connected tonic channel per peer address,
//! shared by openraft's replication clients and by this node's own calls (write
//! forwarding, join, status).
//!
//! AppendEntries, the bulk of the traffic, go on one long-lived stream per
//! replication client (`AppendStream`), a request and its reply at a time as
//! openraft sends them, and the writes this node forwards to the leader on one per
//! leader (`WriteStream`, a write that finds it busy goes as a unary call); see
//! [`super::stream`]. A peer that does not serve them (an older version) gets unary
//! calls. Votes, snapshots and the rest are unary calls.
//!
//! Every RPC has a deadline (openraft's hard TTL, or the caller's), and its outcome
//! feeds [`Peers::health`]: when a node last answered, and since when connecting to
//! it is refused. The leader's liveness check ([`super::liveness`]) reads it — any
//! answer, even a Raft-level rejection, proves the node is alive.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::BasicNode;
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{Backoff, RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use super::secure::{AddSecret, Credentials};
use super::stream::{OnStream, StreamError};

use super::convert::{decode, encode};
use super::proto::raft_client::RaftClient;
use super::proto::{ClientWriteReply, ClientWriteRequest, RaftPayload};
use super::types::{RaftNodeId, TypeConfig};

/// Largest gRPC message accepted or sent between nodes (snapshot chunks, batches).
pub const MAX_MESSAGE: usize = 64 * 1024 * 1024;

/// What the leader knows about a peer's reachability.
#[derive(Clone, Copy, Debug, Default)]
pub struct Health {
    /// Last time the node answered an RPC.
    pub last_ok: Option<Instant>,
    /// Since when every connection attempt has been refused (no process listening).
    pub refused_since: Option<Instant>,
    /// When the last AppendEntries the node accepted from this leader was sent.
    pub acked_sent: Option<Instant>,
}

/// The channels to the other nodes and their health.
pub struct Peers {
    channels: Mutex<HashMap<String, Channel>>,
    /// Per leader address, the stream this node forwards writes on.
    writes: Mutex<HashMap<String, Arc<WriteStream>>>,
    health: Mutex<HashMap<RaftNodeId, Health>>,
    connect_timeout: Duration,
    /// The secret and TLS identity presented to peers.
    creds: Credentials,
}

/// The stream a follower forwards writes to one leader on, one write at a time.
type WriteStream = tokio::sync::Mutex<OnStream<ClientWriteRequest, ClientWriteReply>>;

/// A failed call to a peer.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The peer could not be reached (connection failed, timed out).
    #[error("{addr} unreachable: {message}")]
    Unreachable { addr: String, message: String, refused: bool },
    /// The peer answered with an error or garbage.
    #[error("{addr}: {message}")]
    Failed { addr: String, message: String },
}

impl Peers {
    /// No channels yet; connections time out after `connect_timeout`.
    pub fn new(connect_timeout: Duration, creds: Credentials) -> Peers {
        Peers {
            channels: Mutex::new(HashMap::new()),
            writes: Mutex::new(HashMap::new()),
            health: Mutex::new(HashMap::new()),
            connect_timeout,
            creds,
        }
    }

    /// The (lazily connected, cached) channel to `addr`.
    pub fn channel(&self, addr: &str) -> Result<Channel, CallError> {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = channels.get(addr) {
            return Ok(c.clone());
        }
        let endpoint = self
            .creds
            .endpoint(addr)
            .map_err(|e| CallError::Failed { addr: addr.into(), message: e.to_string() })?
            .connect_timeout(self.connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(1))
            .keep_alive_timeout(Duration::from_secs(2))
            .keep_alive_while_idle(true);
        let channel = endpoint.connect_lazy();
        channels.insert(addr.to_owned(), channel.clone());
        Ok(channel)
    }

    /// A Raft-service client for `addr`.
    pub fn client(
        &self,
        addr: &str,
    ) -> Result<RaftClient<InterceptedService<Channel, AddSecret>>, CallError> {
        Ok(RaftClient::with_interceptor(self.channel(addr)?, self.creds.interceptor())
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE))
    }

    /// Runs one call to `addr` with a deadline, mapping transport failures.
    pub async fn call<T, F>(&self, addr: &str, timeout: Duration, fut: F) -> Result<T, CallError>
    where
        F: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        match tokio::time::timeout(timeout, fut).await {
            Err(_) => Err(CallError::Unreachable {
                addr: addr.into(),
                message: format!("no answer within {} ms", timeout.as_millis()),
                refused: false,
            }),
            Ok(Ok(resp)) => Ok(resp.into_inner()),
            Ok(Err(status)) => Err(map_status(addr, &status)),
        }
    }

    /// Forwards a write to the leader at `addr`, waiting at most `ttl`: on the
    /// write stream when no other write is using it, else (or when the leader does
    /// not serve the stream) as a unary call.
    pub async fn client_write(
        &self,
        addr: &str,
        mut msg: ClientWriteRequest,
        ttl: Duration,
    ) -> Result<ClientWriteReply, CallError> {
        let stream =
            self.writes.lock().unwrap_or_else(|e| e.into_inner()).entry(addr.to_owned()).or_default().clone();
        if let Ok(mut stream) = stream.try_lock()
            && !stream.is_unary()
        {
            let mut client = self.client(addr)?;
            let open = |requests| async move { client.write_stream(requests).await };
            match stream.exchange(ttl, msg, open).await {
                Ok(result) => return result.map_err(|e| stream_failed(addr, e)),
                Err(back) => msg = back,
            }
        }
        let mut client = self.client(addr)?;
        self.call(addr, ttl, client.client_write(msg)).await
    }

    /// The reachability of `node` as seen by this node's Raft RPCs.
    pub fn health(&self, node: RaftNodeId) -> Health {
        self.health.lock().unwrap_or_else(|e| e.into_inner()).get(&node).copied().unwrap_or_default()
    }

    /// `node` accepted an AppendEntries this leader sent at `sent`.
    fn acked(&self, node: RaftNodeId, sent: Instant) {
        let mut health = self.health.lock().unwrap_or_else(|e| e.into_inner());
        let h = health.entry(node).or_default();
        h.acked_sent = Some(h.acked_sent.map_or(sent, |a| a.max(sent)));
    }

    fn record(&self, node: RaftNodeId, result: Result<(), bool>) {
        let mut health = self.health.lock().unwrap_or_else(|e| e.into_inner());
        let h = health.entry(node).or_default();
        match result {
            Ok(()) => {
                h.last_ok = Some(Instant::now());
                h.refused_since = None;
            }
            Err(true) => {
                h.refused_since.get_or_insert_with(Instant::now);
            }
            Err(false) => {}
        }
    }
}

/// Maps a failed request on a stream to a call error.
fn stream_failed(addr: &str, e: StreamError) -> CallError {
    let unreachable = |message: String| CallError::Unreachable { addr: addr.into(), message, refused: false };
    match e {
        StreamError::Status(status) => map_status(addr, &status),
        StreamError::Late(ttl) => unreachable(format!("no answer within {} ms", ttl.as_millis())),
        StreamError::Closed => unreachable("the stream closed".into()),
    }
}

/// Maps a gRPC status to a call error; "unreachable" when the transport failed.
fn map_status(addr: &str, status: &tonic::Status) -> CallError {
    use tonic::Code;
    let refused = is_refused(status);
    let transport = refused
        || matches!(status.code(), Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled)
        || std::error::Error::source(status).is_some();
    if transport {
        CallError::Unreachable { addr: addr.into(), message: describe(status), refused }
    } else {
        CallError::Failed { addr: addr.into(), message: format!("{}: {}", status.code(), status.message()) }
    }
}

/// The status message followed by its innermost cause ("tcp connect error:
/// Connection refused (os error 111)").
fn describe(status: &tonic::Status) -> String {
    use std::error::Error;
    let mut root: Option<&(dyn Error + 'static)> = status.source();
    while let Some(next) = root.and_then(|e| e.source()) {
        root = Some(next);
    }
    match root.map(|e| e.to_string()) {
        Some(cause) if !status.message().contains(&cause) => format!("{}: {cause}", status.message()),
        _ => status.message().to_owned(),
    }
}

/// True when the status comes from a refused TCP connection.
fn is_refused(status: &tonic::Status) -> bool {
    std::error::Error::source(status).is_some_and(refused) || status.message().contains("Connection refused")
}

/// True when `e` or an error under it is a refused TCP connection.
pub fn refused(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(e);
    while let Some(e) = source {
        if e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused)
        {
            return true;
        }
        source = e.source();
    }
    false
}

/// openraft's factory of per-peer clients.
#[derive(Clone)]
pub struct Network {
    peers: std::sync::Arc<Peers>,
}

impl Network {
    /// A network over the shared peer channels.
    pub fn new(peers: std::sync::Arc<Peers>) -> Network {
        Network { peers }
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: RaftNodeId, node: &BasicNode) -> PeerClient {
        PeerClient { target, addr: node.addr.clone(), peers: self.peers.clone(), appends: OnStream::Closed }
    }
}

/// Raft RPCs to one peer.
pub struct PeerClient {
    target: RaftNodeId,
    addr: String,
    peers: std::sync::Arc<Peers>,
    /// AppendEntries to the peer.
    appends: OnStream<RaftPayload, RaftPayload>,
}

#[derive(Clone, Copy)]
enum Rpc {
    Append,
    Vote,
    Snapshot,
}

impl PeerClient {
    /// Sends one AppendEntries on the stream and waits for its reply; `Err` with the
    /// request when the peer takes unary calls only.
    async fn append_on_stream(
        &mut self,
        msg: RaftPayload,
        ttl: Duration,
    ) -> Result<Result<RaftPayload, CallError>, RaftPayload> {
        let mut client = match self.peers.client(&self.addr) {
            Ok(c) => c,
            Err(e) => return Ok(Err(e)),
        };
        let open = |requests| async move { client.append_stream(requests).await };
        let addr = &self.addr;
        self.appends.exchange(ttl, msg, open).await.map(|r| r.map_err(|e| stream_failed(addr, e)))
    }

    async fn rpc<Req, Resp, E>(
        &mut self,
        kind: Rpc,
        req: &Req,
        ttl: Duration,
    ) -> Result<Resp, RPCError<RaftNodeId, BasicNode, RaftError<RaftNodeId, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let payload = encode("raft request", req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let mut msg = RaftPayload { payload, sent_ms: super::fence::unix_ms() };
        if matches!(kind, Rpc::Append) && !self.appends.is_unary() {
            msg = match self.append_on_stream(msg, ttl).await {
                Ok(result) => return self.answered(result),
                Err(msg) => msg,
            };
        }
        let mut client =
            self.peers.client(&self.addr).map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))?;
        let request = tonic::Request::new(msg);
        let result = match kind {
            Rpc::Append => self.peers.call(&self.addr, ttl, client.append_entries(request)).await,
            Rpc::Vote => self.peers.call(&self.addr, ttl, client.vote(request)).await,
            Rpc::Snapshot => self.peers.call(&self.addr, ttl, client.install_snapshot(request)).await,
        };
        self.answered(result)
    }

    /// Records the outcome of a call in the peer's health and decodes the reply.
    #[allow(clippy::result_large_err)] // openraft's error type, as the trait returns it
    fn answered<Resp, E>(
        &self,
        result: Result<RaftPayload, CallError>,
    ) -> Result<Resp, RPCError<RaftNodeId, BasicNode, RaftError<RaftNodeId, E>>>
    where
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let reply = match result {
            Ok(r) => {
                self.peers.record(self.target, Ok(()));
                r
            }
            Err(e) => {
                let refused = matches!(e, CallError::Unreachable { refused: true, .. });
                self.peers.record(self.target, Err(refused));
                return Err(match e {
                    CallError::Unreachable { .. } => RPCError::Unreachable(Unreachable::new(&e)),
                    CallError::Failed { .. } => RPCError::Network(NetworkError::new(&e)),
                });
            }
        };
        let result: Result<Resp, RaftError<RaftNodeId, E>> =
            decode("raft reply", &reply.payload).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<RaftNodeId>, RPCError<RaftNodeId, BasicNode, RaftError<RaftNodeId>>>
    {
        let sent = Instant::now();
        let reply = self.rpc(Rpc::Append, &rpc, option.hard_ttl()).await;
        if matches!(reply, Ok(ref r) if !matches!(r, AppendEntriesResponse::HigherVote(_))) {
            self.peers.acked(self.target, sent);
        }
        reply
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<RaftNodeId>,
        RPCError<RaftNodeId, BasicNode, RaftError<RaftNodeId, InstallSnapshotError>>,
    > {
        self.rpc(Rpc::Snapshot, &rpc, option.hard_ttl()).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<RaftNodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<RaftNodeId>, RPCError<RaftNodeId, BasicNode, RaftError<RaftNodeId>>> {
        self.rpc(Rpc::Vote, &rpc, option.hard_ttl()).await
    }

    fn backoff(&self) -> Backoff {
        Backoff::new(std::iter::repeat(Duration::from_millis(200)))
    }
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use openraft::{CommittedLeaderId, LogId, Vote};
    use tokio_stream::{Stream, StreamExt};
    use tonic::{Request, Response, Status};

    use super::*;
    use crate::cluster::proto::raft_server::{Raft, RaftServer};
    use crate::cluster::proto::*;

    /// A peer that answers every AppendEntries with success and every forwarded
    /// write as written, on the streams or not (an older version), and counts how
    /// they came.
    #[derive(Default)]
    struct Peer {
        serves_stream: bool,
        unary: AtomicUsize,
        on_stream: Arc<AtomicUsize>,
        /// How long the first write on the stream waits before its answer.
        first_write_late: Duration,
        /// The AppendEntries stream answers its opening (the response headers) only
        /// once its first request arrived.
        headers_after_first: bool,
        /// The AppendEntries stream answers the first request (prev index 0) with
        /// success after this long, and every other with a conflict at once.
        first_append_late: Option<Duration>,
    }

    fn append_reply(reply: AppendEntriesResponse<RaftNodeId>) -> RaftPayload {
        let ok: Result<AppendEntriesResponse<RaftNodeId>, RaftError<RaftNodeId>> = Ok(reply);
        RaftPayload { payload: encode("reply", &ok).expect("encodes"), sent_ms: 0 }
    }

    /// Success for the AppendEntries after prev index 0, a conflict for any other.
    fn success_for_the_first(msg: &RaftPayload) -> RaftPayload {
        let rpc: AppendEntriesRequest<TypeConfig> = decode("request", &msg.payload).expect("decodes");
        match rpc.prev_log_id.map(|l| l.index) {
            Some(0) => success(),
            _ => append_reply(AppendEntriesResponse::Conflict),
        }
    }

    fn success() -> RaftPayload {
        append_reply(AppendEntriesResponse::Success)
    }

    /// A leader's answer to a forwarded write: its request bytes back as the
    /// outcome, so that each caller can tell its answer from another's.
    fn written(msg: &ClientWriteRequest) -> ClientWriteReply {
        let written = Written { outcome: msg.request.clone(), log_index: msg.timeout_ms };
        ClientWriteReply { result: Some(client_write_reply::Result::Written(written)) }
    }

    type Replies<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

    impl Peer {
        /// Answers each request on a stream with `answer`, counting them, the first
        /// after `first_late`; UNIMPLEMENTED when the peer serves no streams.
        fn replies<Req: Send + 'static, Resp: Send + 'static>(
            &self,
            request: Request<tonic::Streaming<Req>>,
            first_late: Duration,
            answer: fn(&Req) -> Resp,
        ) -> Result<Response<Replies<Resp>>, Status> {
            if !self.serves_stream {
                return Err(Status::unimplemented("not served"));
            }
            let counted = self.on_stream.clone();
            let replies = request.into_inner().then(move |msg| {
                let n = counted.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n == 0 {
                        tokio::time::sleep(first_late).await;
                    }
                    Ok(answer(&msg?))
                }
            });
            Ok(Response::new(Box::pin(replies)))
        }
    }

    #[tonic::async_trait]
    impl Raft for Peer {
        async fn append_entries(&self, _: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
            self.unary.fetch_add(1, Ordering::SeqCst);
            Ok(Response::new(success()))
        }
        type AppendStreamStream = Replies<RaftPayload>;
        async fn append_stream(
            &self,
            request: Request<tonic::Streaming<RaftPayload>>,
        ) -> Result<Response<Replies<RaftPayload>>, Status> {
            if let Some(late) = self.first_append_late {
                return self.replies(request, late, success_for_the_first);
            }
            if !self.headers_after_first {
                return self.replies(request, Duration::ZERO, |_| success());
            }
            let mut inbound = request.into_inner();
            inbound.message().await?.ok_or_else(|| Status::cancelled("no first request"))?;
            let counted = self.on_stream.clone();
            counted.fetch_add(1, Ordering::SeqCst);
            let rest = inbound.map(move |msg| {
                counted.fetch_add(1, Ordering::SeqCst);
                msg.map(|_| success())
            });
            Ok(Response::new(Box::pin(tokio_stream::once(Ok(success())).chain(rest))))
        }
        async fn vote(&self, _: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
            Err(Status::unimplemented("test"))
        }
        async fn install_snapshot(&self, _: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
            Err(Status::unimplemented("test"))
        }
        async fn client_write(
            &self,
            request: Request<ClientWriteRequest>,
        ) -> Result<Response<ClientWriteReply>, Status> {
            self.unary.fetch_add(1, Ordering::SeqCst);
            Ok(Response::new(written(request.get_ref())))
        }
        type WriteStreamStream = Replies<ClientWriteReply>;
        async fn write_stream(
            &self,
            request: Request<tonic::Streaming<ClientWriteRequest>>,
        ) -> Result<Response<Replies<ClientWriteReply>>, Status> {
            self.replies(request, self.first_write_late, written)
        }
        async fn join(&self, _: Request<JoinRequest>) -> Result<Response<JoinReply>, Status> {
            Err(Status::unimplemented("test"))
        }
        async fn leave(&self, _: Request<LeaveRequest>) -> Result<Response<LeaveReply>, Status> {
            Err(Status::unimplemented("test"))
        }
        async fn promote(&self, _: Request<LeaveRequest>) -> Result<Response<LeaveReply>, Status> {
            Err(Status::unimplemented("test"))
        }
        async fn status(&self, _: Request<StatusRequest>) -> Result<Response<StatusReply>, Status> {
            Err(Status::unimplemented("test"))
        }
        async fn transfer_leader(
            &self,
            _: Request<TransferRequest>,
        ) -> Result<Response<TransferReply>, Status> {
            Err(Status::unimplemented("test"))
        }
        async fn elect(&self, _: Request<ElectRequest>) -> Result<Response<ElectReply>, Status> {
            Err(Status::unimplemented("test"))
        }
    }

    /// Serves `peer` on a loopback port; its address.
    async fn serve(peer: Arc<Peer>) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        let svc = RaftServer::from_arc(peer);
        tokio::spawn(tonic::transport::Server::builder().add_service(svc).serve_with_incoming(incoming));
        addr
    }

    /// Sends `n` heartbeats (AppendEntries without entries) to `addr`.
    async fn send_appends(addr: &str, n: usize) {
        let peers = Arc::new(Peers::new(Duration::from_secs(2), Credentials::default()));
        let mut client = Network::new(peers).new_client(2, &BasicNode { addr: addr.into() }).await;
        for i in 0..n {
            let rpc = AppendEntriesRequest::<TypeConfig> {
                vote: Vote::new_committed(1, 1),
                prev_log_id: Some(LogId::new(CommittedLeaderId::new(1, 1), i as u64)),
                entries: vec![],
                leader_commit: None,
            };
            let reply = client.append_entries(rpc, RPCOption::new(Duration::from_secs(2))).await;
            assert!(matches!(reply, Ok(AppendEntriesResponse::Success)), "append {i}: {reply:?}");
        }
    }

    #[tokio::test]
    async fn append_entries_go_on_one_stream_to_a_peer_that_serves_it() {
        let peer = Arc::new(Peer { serves_stream: true, ..Peer::default() });
        send_appends(&serve(peer.clone()).await, 5).await;
        assert_eq!(peer.on_stream.load(Ordering::SeqCst), 5);
        assert_eq!(peer.unary.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_new_stream_carries_its_first_request_with_its_opening() {
        // one round trip to open a stream and get the first answer, as a unary call:
        // waiting for the response headers before sending would never get an answer here
        let peer = Arc::new(Peer { serves_stream: true, headers_after_first: true, ..Peer::default() });
        send_appends(&serve(peer.clone()).await, 3).await;
        assert_eq!(peer.on_stream.load(Ordering::SeqCst), 3);
        assert_eq!(peer.unary.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn append_entries_fall_back_to_unary_calls_for_a_peer_without_the_stream() {
        let peer = Arc::new(Peer::default());
        send_appends(&serve(peer.clone()).await, 5).await;
        assert_eq!(peer.unary.load(Ordering::SeqCst), 5, "every request answered, none lost");
        assert_eq!(peer.on_stream.load(Ordering::SeqCst), 0);
    }

    /// Forwards `n` writes from `writers` concurrent tasks to `addr`; each must get
    /// its own answer.
    async fn forward_writes(addr: &str, writers: u64, n: u64) {
        let peers = Arc::new(Peers::new(Duration::from_secs(2), Credentials::default()));
        let tasks: Vec<_> = (0..writers)
            .map(|w| {
                let (peers, addr) = (peers.clone(), addr.to_owned());
                tokio::spawn(async move {
                    for i in 0..n {
                        let request = format!("write {w}.{i}").into_bytes();
                        let msg = ClientWriteRequest { request: request.clone(), timeout_ms: w * 1000 + i };
                        let reply =
                            peers.client_write(&addr, msg, Duration::from_secs(2)).await.expect("answered");
                        let Some(client_write_reply::Result::Written(written)) = reply.result else {
                            panic!("write {w}.{i} answered {reply:?}")
                        };
                        assert_eq!((written.outcome, written.log_index), (request, w * 1000 + i));
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("writer");
        }
    }

    #[tokio::test]
    async fn forwarded_writes_share_one_stream_and_each_gets_its_own_answer() {
        let leader = Arc::new(Peer { serves_stream: true, ..Peer::default() });
        forward_writes(&serve(leader.clone()).await, 4, 25).await;
        let (on_stream, unary) =
            (leader.on_stream.load(Ordering::SeqCst), leader.unary.load(Ordering::SeqCst));
        assert_eq!(on_stream + unary, 100, "every write sent once");
        assert!(on_stream > 0, "the stream was never used");
    }

    #[tokio::test]
    async fn forwarded_writes_fall_back_to_unary_calls_for_a_leader_without_the_stream() {
        let leader = Arc::new(Peer::default());
        forward_writes(&serve(leader.clone()).await, 2, 10).await;
        assert_eq!(leader.unary.load(Ordering::SeqCst), 20);
        assert_eq!(leader.on_stream.load(Ordering::SeqCst), 0);
    }

    /// A leader whose first answer to a forwarded write comes after 300 ms; its address.
    async fn late_leader() -> String {
        let late = Duration::from_millis(300);
        serve(Arc::new(Peer { serves_stream: true, first_write_late: late, ..Peer::default() })).await
    }

    fn write(text: &str) -> ClientWriteRequest {
        ClientWriteRequest { request: text.as_bytes().to_vec(), timeout_ms: 1 }
    }

    #[tokio::test]
    async fn a_late_answer_on_a_stream_is_never_taken_for_the_next_request() {
        let addr = late_leader().await;
        let peers = Peers::new(Duration::from_secs(2), Credentials::default());
        let first = peers.client_write(&addr, write("first"), Duration::from_millis(100)).await;
        assert!(matches!(first, Err(CallError::Unreachable { .. })), "{first:?}");
        // On the same stream the next reply would be the first write's (answers come in order).
        let second =
            peers.client_write(&addr, write("second"), Duration::from_secs(2)).await.expect("answered");
        let Some(client_write_reply::Result::Written(w)) = second.result else { panic!("{second:?}") };
        assert_eq!(w.outcome, b"second", "the first write's answer taken for the second's");
    }

    #[tokio::test]
    async fn an_append_entries_openraft_stopped_waiting_for_never_acknowledges_the_next() {
        let late = Duration::from_millis(300);
        let peer = Arc::new(Peer { serves_stream: true, first_append_late: Some(late), ..Peer::default() });
        let addr = serve(peer.clone()).await;
        let peers = Arc::new(Peers::new(Duration::from_secs(2), Credentials::default()));
        let mut client = Network::new(peers).new_client(2, &BasicNode { addr }).await;
        let append = |index: u64| AppendEntriesRequest::<TypeConfig> {
            vote: Vote::new_committed(1, 1),
            prev_log_id: Some(LogId::new(CommittedLeaderId::new(1, 1), index)),
            entries: vec![],
            leader_commit: None,
        };
        let option = || RPCOption::new(Duration::from_secs(2));
        // openraft's own timeout fires first and drops the call
        let first = client.append_entries(append(0), option());
        assert!(tokio::time::timeout(Duration::from_millis(100), first).await.is_err(), "still waiting");
        // the peer does not hold this one: a success here would count entries as
        // replicated that the follower never got
        let second = client.append_entries(append(1), option()).await;
        assert!(matches!(second, Ok(AppendEntriesResponse::Conflict)), "{second:?}");
    }

    #[tokio::test]
    async fn an_answer_its_caller_stopped_waiting_for_is_never_taken_for_the_next_request() {
        // openraft times its AppendEntries itself and drops the call when its own
        // timeout fires first: the stream must not stay open with that answer on it
        let addr = late_leader().await;
        let peers = Peers::new(Duration::from_secs(2), Credentials::default());
        let abandoned = peers.client_write(&addr, write("first"), Duration::from_secs(2));
        assert!(tokio::time::timeout(Duration::from_millis(100), abandoned).await.is_err(), "still waiting");
        let second =
            peers.client_write(&addr, write("second"), Duration::from_secs(2)).await.expect("answered");
        let Some(client_write_reply::Result::Written(w)) = second.result else { panic!("{second:?}") };
        assert_eq!(w.outcome, b"second", "the abandoned write's answer taken for the second's");
    }
}
