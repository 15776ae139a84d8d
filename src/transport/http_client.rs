//! A small HTTP/1.1 client (hyper) for webhooks and the CLI's admin API calls: one
//! connection per request, a JSON body, bounded in time and in the size of the
//! answer read.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;

/// The largest answer body read; a bigger one is an error.
pub const MAX_ANSWER: usize = 4 * 1024 * 1024;

/// Why a request got no HTTP answer.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// Nothing could be connected to at the address.
    #[error("{0}")]
    Connect(String),
    /// Sending or reading failed, or the answer is not HTTP.
    #[error("{0}")]
    Io(String),
    /// No complete answer within the time allowed.
    #[error("no answer within {0} ms")]
    Timeout(u128),
}

/// `POST`s `body` (JSON) to `http://{authority}{path}` with `headers`; returns the
/// status and body of the answer.
pub async fn post_json(
    authority: &str,
    path: &str,
    headers: &[(String, String)],
    body: Vec<u8>,
    timeout: Duration,
) -> Result<(u16, Bytes), HttpError> {
    request(hyper::Method::POST, authority, path, headers, Some(body), timeout).await
}

/// `method path` to `authority` (`HOST:PORT`, also the `Host`) with `headers` and,
/// when given, `body` as `application/json`; the status and body of the answer.
pub async fn request(
    method: hyper::Method,
    authority: &str,
    path: &str,
    headers: &[(String, String)],
    body: Option<Vec<u8>>,
    timeout: Duration,
) -> Result<(u16, Bytes), HttpError> {
    match tokio::time::timeout(timeout, send(method, authority, path, headers, body)).await {
        Ok(r) => r,
        Err(_) => Err(HttpError::Timeout(timeout.as_millis())),
    }
}

async fn send(
    method: hyper::Method,
    authority: &str,
    path: &str,
    headers: &[(String, String)],
    body: Option<Vec<u8>>,
) -> Result<(u16, Bytes), HttpError> {
    let io = |e: &dyn std::fmt::Display| HttpError::Io(e.to_string());
    let stream = tokio::net::TcpStream::connect(authority)
        .await
        .map_err(|e| HttpError::Connect(format!("{authority}: {e}")))?;
    stream.set_nodelay(true).ok();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| io(&e))?;
    let driver = tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "HTTP client connection");
        }
    });
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, authority)
        .header(hyper::header::ACCEPT, "application/json")
        .header(hyper::header::USER_AGENT, crate::router::AGENT);
    if body.is_some() {
        req = req.header(hyper::header::CONTENT_TYPE, "application/json");
    }
    for (k, v) in headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let req = req.body(Full::new(Bytes::from(body.unwrap_or_default()))).map_err(|e| io(&e))?;
    let answer = sender.send_request(req).await.map_err(|e| io(&e))?;
    let status = answer.status().as_u16();
    let body = Limited::new(answer.into_body(), MAX_ANSWER).collect().await.map_err(|e| io(&*e))?.to_bytes();
    driver.abort();
    Ok((status, body))
}
