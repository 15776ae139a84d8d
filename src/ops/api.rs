//! The admin API's own JSON document: where the web console finds the router. The
//! documents about the router (status, sessions, counters) are the router's, read
//! through [`crate::observe::status::StatusSource`].

use serde_json::{Value, json};

/// Where this node's clients connect, for the web console (`GET /api/console-config`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ConsoleConfig {
    /// `ws://HOST:PORT/PATH` (or `wss://`) of the WebSocket listener, with the bound
    /// host; the page puts its own host in place of an unspecified one (`0.0.0.0`).
    pub url: Option<String>,
    /// The realm the console joins unless told otherwise.
    pub realm: String,
    /// The authrole the admin procedures need.
    pub admin_role: String,
}

/// `GET /api/console-config`.
pub fn console_config(c: &ConsoleConfig) -> Value {
    json!({ "url": c.url, "realm": c.realm, "admin_role": c.admin_role })
}
