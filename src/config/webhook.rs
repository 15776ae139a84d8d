//! `[[webhooks]]`: services that speak HTTP, not WAMP, taking part in a realm.
//!
//! - `kind = "subscriber"`: the router POSTs every event of `topic` (with `match`)
//!   to `url`, retrying with backoff; events waiting beyond `queue` are dropped and
//!   counted.
//! - `kind = "callee"`: the router registers `procedure` and serves each call by
//!   POSTing the invocation to `url`; the HTTP answer becomes the RESULT or ERROR;
//!   at most `concurrency` requests at once (calls beyond wait in the dealer's
//!   queue as for any callee: they are answered by the call's own timeout).
//!
//! Each webhook is a session of the router's own in `realm` (authrole from
//! `authid`/`ticket` when the realm authenticates, else anonymous), so the realm's
//! authorization and the cluster's routing apply as to any client. Only `http://`
//! URLs: TLS to webhooks is absent (put a TLS-terminating proxy next to the node).

use std::collections::BTreeMap;

use serde::Deserialize;

/// What a webhook does.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum WebhookKind {
    /// Events of a topic are POSTed to the URL.
    Subscriber,
    /// Calls of a procedure are served by POSTing to the URL.
    Callee,
}

/// One `[[webhooks]]` entry.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// A name for logs and metrics (default: the topic or procedure).
    #[serde(default)]
    pub name: Option<String>,
    /// Subscriber or callee.
    pub kind: WebhookKind,
    /// The realm it takes part in.
    pub realm: String,
    /// The topic (subscriber).
    #[serde(default)]
    pub topic: Option<String>,
    /// The procedure (callee).
    #[serde(default)]
    pub procedure: Option<String>,
    /// Match policy of the topic or procedure: `exact`, `prefix`, `wildcard`.
    #[serde(default, rename = "match")]
    pub match_policy: Option<String>,
    /// Invocation policy of the registration (callee), default `roundrobin`.
    #[serde(default)]
    pub invoke: Option<String>,
    /// Where to POST: `http://host:port/path`.
    pub url: String,
    /// Extra request headers (e.g. `Authorization`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Time allowed for one HTTP request, milliseconds.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Subscriber: events waiting to be POSTed, at most; more are dropped.
    #[serde(default = "default_queue")]
    pub queue: usize,
    /// Subscriber: attempts after the first failed one.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Subscriber: first retry delay, doubled per attempt up to `backoff_max_ms`.
    #[serde(default = "default_backoff_ms")]
    pub backoff_ms: u64,
    /// Subscriber: longest retry delay.
    #[serde(default = "default_backoff_max_ms")]
    pub backoff_max_ms: u64,
    /// Callee: HTTP requests in flight at most.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// The session's authid, for a realm with ticket authentication.
    #[serde(default)]
    pub authid: Option<String>,
    /// Its ticket.
    #[serde(default)]
    pub ticket: Option<String>,
}

fn default_timeout_ms() -> u64 {
    10_000
}
fn default_queue() -> usize {
    1000
}
fn default_retries() -> u32 {
    5
}
fn default_backoff_ms() -> u64 {
    200
}
fn default_backoff_max_ms() -> u64 {
    10_000
}
fn default_concurrency() -> usize {
    16
}

impl WebhookConfig {
    /// The name used in logs and metrics.
    pub fn label(&self) -> String {
        self.name
            .clone()
            .or_else(|| self.topic.clone())
            .or_else(|| self.procedure.clone())
            .unwrap_or_default()
    }

    /// The URI the webhook subscribes to or registers.
    pub fn uri(&self) -> &str {
        match self.kind {
            WebhookKind::Subscriber => self.topic.as_deref().unwrap_or_default(),
            WebhookKind::Callee => self.procedure.as_deref().unwrap_or_default(),
        }
    }

    /// Checks what the types cannot: the URI for the kind, the URL's scheme, bounds.
    pub fn validate(&self, realms: &[String]) -> Result<(), String> {
        let what = format!("webhook {:?}", self.label());
        match (self.kind, &self.topic, &self.procedure) {
            (WebhookKind::Subscriber, Some(_), None) | (WebhookKind::Callee, None, Some(_)) => {}
            (WebhookKind::Subscriber, _, _) => {
                return Err(format!("{what}: a subscriber needs `topic` (only)"));
            }
            (WebhookKind::Callee, _, _) => return Err(format!("{what}: a callee needs `procedure` (only)")),
        }
        if !realms.contains(&self.realm) {
            return Err(format!("{what}: realm {:?} is not a configured realm", self.realm));
        }
        if let Some(m) = &self.match_policy
            && !matches!(m.as_str(), "exact" | "prefix" | "wildcard")
        {
            return Err(format!("{what}: match must be exact, prefix or wildcard, not {m:?}"));
        }
        if self.kind == WebhookKind::Subscriber && self.invoke.is_some() {
            return Err(format!("{what}: `invoke` is for callees"));
        }
        parse_http_url(&self.url).map_err(|e| format!("{what}: {e}"))?;
        if self.timeout_ms == 0 || self.queue == 0 || self.concurrency == 0 {
            return Err(format!("{what}: timeout_ms, queue and concurrency must be above 0"));
        }
        if self.authid.is_some() != self.ticket.is_some() {
            return Err(format!("{what}: `authid` and `ticket` go together"));
        }
        Ok(())
    }
}

/// An `http://` URL split into (host:port, path).
pub fn parse_http_url(url: &str) -> Result<(String, String), String> {
    let Some(rest) = url.strip_prefix("http://") else {
        return Err(format!("url {url:?} must start with http:// (TLS to webhooks is not supported)"));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains('@') {
        return Err(format!("url {url:?} needs a host (and no credentials in it)"));
    }
    let authority = if authority.contains(':') { authority.to_owned() } else { format!("{authority}:80") };
    Ok((authority, path.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_urls_are_plain_http_with_a_host() {
        assert_eq!(
            parse_http_url("http://127.0.0.1:9000/hook").unwrap(),
            ("127.0.0.1:9000".into(), "/hook".into())
        );
        assert_eq!(parse_http_url("http://svc").unwrap(), ("svc:80".into(), "/".into()));
        assert!(parse_http_url("https://svc/x").unwrap_err().contains("TLS"));
        assert!(parse_http_url("http://u:p@svc/").is_err());
    }
}
