//! Listening sockets: bind, announce the bound address on stdout (so scripts and
//! tests can use port 0), and spawn one task per accepted connection.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpSocket, UnixListener};

use super::tls::Tls;
use crate::router::Router;

/// Which protocol a listener speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// WAMP over WebSocket.
    WebSocket,
    /// WAMP over RawSocket.
    RawSocket,
}

/// Connections the kernel queues for a listener before it accepts them (capped by
/// `net.core.somaxconn`). Tokio's default of 128 overflowed in a reconnect storm
/// (512 connection attempts at once): each dropped SYN is retried by the client a
/// second later, which was the lone node's p99 of a second.
pub const LISTEN_BACKLOG: u32 = 4096;

/// Binds `addr` with [`LISTEN_BACKLOG`].
pub fn bind_tcp(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Binds a TCP listener (TLS when `tls` is given) and spawns its accept loop.
/// Returns the bound address.
pub async fn spawn_tcp(
    router: Arc<Router>,
    addr: SocketAddr,
    kind: Kind,
    tls: Option<Arc<Tls>>,
) -> std::io::Result<SocketAddr> {
    let listener = bind_tcp(addr)?;
    let local = listener.local_addr()?;
    match (kind, tls.is_some()) {
        (Kind::WebSocket, false) => {
            println!("listening websocket ws://{local}{}", router.config.websocket.path)
        }
        (Kind::WebSocket, true) => {
            println!("listening websocket wss://{local}{}", router.config.websocket.path)
        }
        (Kind::RawSocket, false) => println!("listening rawsocket tcp://{local}"),
        (Kind::RawSocket, true) => println!("listening rawsocket tls://{local}"),
    }
    if let Some(t) = &tls {
        t.watch(if kind == Kind::WebSocket { "websocket" } else { "rawsocket" });
    }
    tokio::spawn(async move {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            if router.draining() {
                crate::observe::metrics::session_refused(crate::observe::metrics::Refused::Draining);
                continue;
            }
            if let Err(e) = stream.set_nodelay(true) {
                tracing::debug!(error = %e, "TCP_NODELAY not set");
            }
            if let Some(every) = router.config.limits.keepalive_interval() {
                // a dead peer host or a cut network: the kernel's probes find it
                let probes =
                    socket2::TcpKeepalive::new().with_time(every).with_interval(every).with_retries(2);
                if let Err(e) = socket2::SockRef::from(&stream).set_tcp_keepalive(&probes) {
                    tracing::debug!(error = %e, "TCP keepalive not set");
                }
            }
            tracing::trace!(%peer, "accepted");
            let accepted = super::Accepted::now(&router, Some(peer));
            tokio::spawn(connection(kind, router.clone(), stream, accepted, tls.clone()));
        }
    });
    Ok(local)
}

/// One accepted TCP connection, from its TLS handshake (when the listener has TLS)
/// to its end. This future is what every open connection holds for its whole life,
/// so what only a part of it needs is boxed and freed after use: the TLS and
/// WebSocket handshakes, the session loop (`transport::drive`, boxed where it is
/// started) and a HELLO's joining and authentication (`Session::on_frame`). Inline,
/// they made this task 13 KiB and an idle WebSocket session cost 23.2 KiB of router
/// memory; boxed, 15.9 KiB (`junction-bench sessions`, 5,000 sessions, 2026-12-05).
async fn connection(
    kind: Kind,
    router: Arc<Router>,
    stream: tokio::net::TcpStream,
    mut accepted: super::Accepted,
    tls: Option<Arc<Tls>>,
) {
    let Some(tls) = tls else {
        return serve(kind, router, stream, accepted).await;
    };
    let peer = accepted.peer;
    match tokio::time::timeout_at(accepted.deadline, Box::pin(tls.accept(stream))).await {
        Ok(Ok((stream, info))) => {
            accepted.tls = Some(Arc::new(info));
            Box::pin(serve(kind, router, stream, accepted)).await
        }
        Ok(Err(e)) => tracing::info!(?peer, error = %e, "TLS handshake failed"),
        Err(_) => tracing::info!(?peer, "TLS handshake timed out"),
    }
}

async fn serve<S>(kind: Kind, router: Arc<Router>, stream: S, accepted: super::Accepted)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    match kind {
        Kind::WebSocket => super::websocket::serve(router, stream, accepted).await,
        Kind::RawSocket => super::rawsocket::serve(router, stream, accepted).await,
    }
}

/// Binds a RawSocket listener on a Unix domain socket (replacing a stale socket file).
pub async fn spawn_unix(router: Arc<Router>, path: &Path) -> std::io::Result<()> {
    if path.exists() {
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    println!("listening rawsocket unix:{}", path.display());
    tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) if !router.draining() => {
                    let accepted = super::Accepted::now(&router, None);
                    tokio::spawn(super::rawsocket::serve(router.clone(), stream, accepted));
                }
                Ok(_) => {
                    // draining: the connection is dropped
                    crate::observe::metrics::session_refused(crate::observe::metrics::Refused::Draining);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn listen_backlog_queues_a_burst_of_connections_before_they_are_accepted() {
        let listener = bind_tcp("127.0.0.1:0".parse().expect("an address")).expect("binds");
        let addr = listener.local_addr().expect("bound");
        // nothing accepts: every connection waits in the kernel's queue
        let burst = (0..600)
            .map(|_| tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(addr)));
        let results = futures_util::future::join_all(burst).await;
        let connected = results.iter().filter(|r| matches!(r, Ok(Ok(_)))).count();
        assert_eq!(connected, 600, "a burst of 600 connections queued (tokio's default backlog queues 128)");
        drop(listener);
    }

    /// What an idle connection costs is mostly futures sized by their largest
    /// state: a long-lived one must not inline what only a handshake or a HELLO needs
    /// (inline, the connection task was 13 KiB in a release build). The bounds leave
    /// room for the compiler's layout to vary.
    #[tokio::test]
    async fn a_connection_task_holds_only_what_every_connection_needs_while_it_lives() {
        let listener = bind_tcp("127.0.0.1:0".parse().expect("an address")).expect("binds");
        let addr = listener.local_addr().expect("bound");
        let router = Router::new(crate::config::Config::default(), crate::ids::NodeId(1));
        for kind in [Kind::WebSocket, Kind::RawSocket] {
            let _client = tokio::net::TcpStream::connect(addr).await.expect("connects");
            let (stream, peer) = listener.accept().await.expect("accepted");
            let accepted = crate::transport::Accepted::now(&router, Some(peer));
            let task = connection(kind, router.clone(), stream, accepted, None);
            let size = std::mem::size_of_val(&task);
            assert!(size <= 4096, "{kind:?}: the connection task's future takes {size} bytes");
        }
        let (outbox, _rx) = crate::router::outbox::outbox(16, 1 << 16);
        let serializer = crate::wamp::codec::Serializer::MsgPack;
        let mut session = crate::router::session::Session::new(router, serializer, outbox, "websocket");
        let frame = bytes::Bytes::new();
        let size = std::mem::size_of_val(&session.on_frame(&frame));
        assert!(size <= 2048, "handling a frame takes {size} bytes in the session loop's future");
    }
}
