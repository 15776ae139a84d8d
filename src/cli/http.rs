//! The admin API from the CLI (`junction session ...`): one blocking request, JSON
//! in and out, its failures sorted into unreachable (exit 3) and bad (exit 1).

use std::time::Duration;

/// How long the server may take to answer.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// An answer of the admin API.
#[derive(Debug)]
pub struct Answer {
    /// The HTTP status code.
    pub status: u16,
    /// The body (JSON for the API routes).
    pub body: String,
}

/// Why no answer came.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// Nothing answers at the address, or it did not answer in time.
    #[error("the admin API at {addr} is unreachable: {reason}")]
    Unreachable { addr: String, reason: String },
    /// The address is malformed or the answer is not HTTP.
    #[error("the admin API at {addr}: {reason}")]
    Bad { addr: String, reason: String },
}

/// `METHOD path` to `addr` (`IP:PORT` or `HOST:PORT`, sent as the `Host`), with
/// `Authorization: Bearer token` when a token is given and `body` as
/// `application/json` when there is one (through the router's own HTTP client,
/// `transport::http_client`, on a runtime of its own).
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> Result<Answer, HttpError> {
    use junction::transport::http_client::{self, HttpError as Client};
    let unreachable = |reason: String| HttpError::Unreachable { addr: addr.to_owned(), reason };
    let bad = |reason: String| HttpError::Bad { addr: addr.to_owned(), reason };
    let method = hyper::Method::from_bytes(method.as_bytes()).map_err(|e| bad(e.to_string()))?;
    let headers: Vec<(String, String)> =
        token.map(|t| ("Authorization".to_owned(), format!("Bearer {t}"))).into_iter().collect();
    let rt =
        tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| bad(e.to_string()))?;
    let answer = rt.block_on(http_client::request(
        method,
        addr,
        path,
        &headers,
        body.map(|b| b.as_bytes().to_vec()),
        IO_TIMEOUT,
    ));
    match answer {
        Ok((status, body)) => Ok(Answer { status, body: String::from_utf8_lossy(&body).into_owned() }),
        Err(Client::Connect(why)) => Err(unreachable(why)),
        Err(Client::Timeout(_)) => Err(unreachable(format!("no answer within {} s", IO_TIMEOUT.as_secs()))),
        Err(Client::Io(why)) => Err(bad(format!("the answer is not HTTP ({why})"))),
    }
}
