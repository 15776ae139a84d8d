//! Requests to a peer on one long-lived gRPC stream, a request and its reply at a
//! time ([`OnStream`]): the Raft AppendEntries of a replication client, and the
//! writes a follower forwards to the leader. A stream spares each request the
//! HTTP/2 stream set-up and teardown of a unary call (and the task the server
//! spawns for it).
//!
//! Any failure (including the deadline) closes the stream, and so does a caller
//! that stops waiting, so that a reply arriving late is never taken for the next
//! request's; the next request opens a new one, and travels with the opening (one
//! round trip, as a unary call). A reply taken for the wrong request would be an
//! AppendEntries acknowledged that the follower never got — the leader then counts
//! entries as committed that no quorum holds (seen once in the fault suite: the
//! old leader's committed entry overwritten by the new leader, and openraft's
//! assertion stopping that node at every start after). A peer
//! that does not serve the stream (an older version answering UNIMPLEMENTED) is sent
//! unary calls from then on: the request is handed back.

use std::future::Future;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};

/// Why a request on the stream got no reply.
#[derive(Debug)]
pub enum StreamError {
    /// Opening the stream, or the reply, failed with this status.
    Status(Status),
    /// No reply within the deadline.
    Late(Duration),
    /// The peer ended the stream.
    Closed,
}

/// The stream to one peer for one kind of request.
#[derive(Default)]
pub enum OnStream<Req, Resp> {
    /// Not open: the next request opens it.
    #[default]
    Closed,
    /// Open: requests go in, replies come out in order.
    Open { requests: mpsc::Sender<Req>, replies: Box<Streaming<Resp>> },
    /// The peer does not serve the stream: unary calls.
    Unary,
}

impl<Req: Clone, Resp> OnStream<Req, Resp> {
    /// True when requests go as unary calls.
    pub fn is_unary(&self) -> bool {
        matches!(self, OnStream::Unary)
    }

    /// Sends `msg` on the stream (opened with `open` first if needed) and waits for
    /// its reply, at most `ttl`. `Err(msg)` when the peer takes unary calls only.
    pub async fn exchange<F, Fut>(
        &mut self,
        ttl: Duration,
        msg: Req,
        open: F,
    ) -> Result<Result<Resp, StreamError>, Req>
    where
        F: FnOnce(ReceiverStream<Req>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<Streaming<Resp>>, Status>>,
    {
        let deadline = tokio::time::Instant::now() + ttl;
        // The stream is taken out while a request is on it and put back only once its
        // reply came: a caller that stops waiting (its future dropped, as openraft
        // does when its own timeout fires first) leaves it closed, not open with an
        // answer on it that the next request would take for its own.
        let (requests, mut replies, unsent) = match std::mem::take(self) {
            OnStream::Closed => {
                // the first request goes out with the stream's opening, not after the
                // response headers: a new stream costs one round trip, as a unary call
                // does (under load, when a missed deadline closed the stream, two
                // round trips per request kept missing it)
                let (requests, rx) = mpsc::channel(1);
                let again = msg.clone();
                if requests.send(msg).await.is_err() {
                    return Ok(Err(StreamError::Closed));
                }
                match tokio::time::timeout_at(deadline, open(ReceiverStream::new(rx))).await {
                    Err(_) => return Ok(Err(StreamError::Late(ttl))),
                    Ok(Ok(replies)) => (requests, Box::new(replies.into_inner()), None),
                    Ok(Err(status)) if status.code() == tonic::Code::Unimplemented => {
                        *self = OnStream::Unary;
                        return Err(again);
                    }
                    Ok(Err(status)) => return Ok(Err(StreamError::Status(status))),
                }
            }
            OnStream::Open { requests, replies } => (requests, replies, Some(msg)),
            OnStream::Unary => {
                *self = OnStream::Unary;
                return Err(msg);
            }
        };
        let exchange = async {
            if let Some(msg) = unsent {
                requests.send(msg).await.map_err(|_| StreamError::Closed)?;
            }
            match replies.message().await {
                Ok(Some(reply)) => Ok(reply),
                Ok(None) => Err(StreamError::Closed),
                Err(status) => Err(StreamError::Status(status)),
            }
        };
        let result = tokio::time::timeout_at(deadline, exchange).await.unwrap_or(Err(StreamError::Late(ttl)));
        if result.is_ok() {
            *self = OnStream::Open { requests, replies };
        }
        Ok(result)
    }
}
