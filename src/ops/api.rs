//! The admin API's own JSON document: where the web console finds the router. The
//! documents about the router (status, sessions, counters) are the router's, read
//! through [`crate::observe::status::StatusSource`].
//!
//! The console joins the router on the node that served it: `/api/console-config`
//! answers that node's WebSocket URL as the browser can reach it, built from the
//! request's `Host` (the name and port the browser used for the admin server) and
//! the addresses the admin and WebSocket listeners are bound to ([`browser_url`]).

use std::net::{IpAddr, SocketAddr};

use serde_json::{Value, json};

/// Where this node's clients connect, for the web console (`GET /api/console-config`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ConsoleConfig {
    /// `ws://HOST:PORT/PATH` (or `wss://`) of the WebSocket listener, with the bound
    /// host (possibly unspecified, `0.0.0.0`); [`browser_url`] makes the URL a
    /// browser uses from it.
    pub url: Option<String>,
    /// The realm the console joins unless told otherwise.
    pub realm: String,
    /// The authrole the admin procedures need.
    pub admin_role: String,
}

/// `GET /api/console-config`: `url` is this node's WebSocket URL as seen from the
/// browser (see [`browser_url`]), `listen` the listener's bound URL.
pub fn console_config(c: &ConsoleConfig, host: Option<&str>, admin: Option<SocketAddr>) -> Value {
    let url = c.url.as_deref().map(|u| browser_url(u, host, admin).unwrap_or_else(|| u.to_owned()));
    json!({ "url": url, "listen": c.url, "realm": c.realm, "admin_role": c.admin_role })
}

/// The WebSocket URL a browser uses for the listener bound at `bound`
/// (`ws://ADDR/PATH`), given the `Host` header of its request to the admin server
/// and the admin server's bound address:
///
/// - host: the `Host` header's name when the listener is bound to an unspecified
///   address (`0.0.0.0`, `[::]`) or to the admin server's own address (the browser
///   reached this machine by that name); otherwise the listener's address;
/// - port: the listener's port, moved by as much as the `Host` port differs from
///   the admin server's bound port. A container publishing its ports under other
///   numbers (docker-compose: admin 8190→8090 and WebSocket 8180→8080 on the second
///   node) publishes both with the same offset; without a port mapping the offset
///   is 0. A `Host` without a port (a proxy on 80/443) leaves the port as bound.
///
/// `None` when `bound` is not a `ws[s]://IP:PORT[/PATH]` URL or there is no usable
/// `Host` (the caller answers the bound URL then).
pub fn browser_url(bound: &str, host: Option<&str>, admin: Option<SocketAddr>) -> Option<String> {
    let (scheme, rest) = bound.split_once("://")?;
    let (addr, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
    let ws: SocketAddr = addr.parse().ok()?;
    let (name, port) = split_host(host?)?;
    let same_ip = admin.is_some_and(|a| a.ip() == ws.ip());
    let name = if ws.ip().is_unspecified() || same_ip { name.to_owned() } else { host_literal(ws.ip()) };
    let port = match (port, admin) {
        (Some(seen), Some(admin)) => {
            let shifted = i32::from(ws.port()) + i32::from(seen) - i32::from(admin.port());
            u16::try_from(shifted).ok().filter(|p| *p != 0).unwrap_or(ws.port())
        }
        _ => ws.port(),
    };
    Some(format!("{scheme}://{name}:{port}{path}"))
}

/// `name[:port]` or `[v6][:port]` into the name (v6 in brackets) and the port.
fn split_host(host: &str) -> Option<(&str, Option<u16>)> {
    let host = host.trim();
    if host.starts_with('[') {
        let end = host.find(']')?;
        let port = host[end + 1..].strip_prefix(':').map(str::parse).transpose().ok()?;
        return Some((&host[..=end], port));
    }
    match host.rsplit_once(':') {
        Some((name, port)) => Some((name, Some(port.parse().ok()?))),
        None if host.is_empty() => None,
        None => Some((host, None)),
    }
}

fn host_literal(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(ip) => ip.to_string(),
        IpAddr::V6(ip) => format!("[{ip}]"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Option<SocketAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn a_published_port_moves_the_websocket_port_by_the_same_offset() {
        // docker-compose's second node: admin 8190 -> 8090, WebSocket 8180 -> 8080
        let url = browser_url("ws://0.0.0.0:8080/ws", Some("localhost:8190"), addr("0.0.0.0:8090"));
        assert_eq!(url.as_deref(), Some("ws://localhost:8180/ws"));
        let url = browser_url("ws://0.0.0.0:8080/ws", Some("localhost:8090"), addr("0.0.0.0:8090"));
        assert_eq!(url.as_deref(), Some("ws://localhost:8080/ws"));
    }

    #[test]
    fn the_browser_keeps_the_name_it_used_and_the_listener_its_port() {
        let url = browser_url("ws://127.0.0.1:41234/ws", Some("127.0.0.1:40000"), addr("127.0.0.1:40000"));
        assert_eq!(url.as_deref(), Some("ws://127.0.0.1:41234/ws"));
        let url = browser_url("wss://[::]:8443/wamp", Some("[::1]:8090"), addr("[::]:8090"));
        assert_eq!(url.as_deref(), Some("wss://[::1]:8443/wamp"));
        // a proxy in front of the admin server (no port): the listener's own port
        let url = browser_url("ws://0.0.0.0:8080/ws", Some("admin.example.com"), addr("0.0.0.0:8090"));
        assert_eq!(url.as_deref(), Some("ws://admin.example.com:8080/ws"));
    }

    #[test]
    fn a_listener_on_another_address_is_named_by_that_address() {
        let url = browser_url("ws://10.0.0.5:8080/ws", Some("localhost:8090"), addr("127.0.0.1:8090"));
        assert_eq!(url.as_deref(), Some("ws://10.0.0.5:8080/ws"));
    }

    #[test]
    fn without_a_usable_host_the_bound_url_is_answered() {
        let c = ConsoleConfig {
            url: Some("ws://0.0.0.0:8080/ws".into()),
            realm: "r".into(),
            admin_role: "a".into(),
        };
        assert_eq!(console_config(&c, None, addr("0.0.0.0:8090"))["url"], "ws://0.0.0.0:8080/ws");
        assert_eq!(console_config(&c, Some("h:x"), addr("0.0.0.0:8090"))["url"], "ws://0.0.0.0:8080/ws");
        let doc = console_config(&c, Some("h:8090"), addr("0.0.0.0:8090"));
        assert_eq!(doc["url"], "ws://h:8080/ws");
        assert_eq!(doc["listen"], "ws://0.0.0.0:8080/ws");
    }
}
