//! Which browser pages may open a WebSocket to the router: the `Origin` check of the
//! opening handshake (against cross-site WebSocket hijacking, where a page on another
//! site uses a visitor's network position or cookies).
//!
//! A request without `Origin` is not from a browser page and is accepted. One with an
//! `Origin` is accepted when its host is the host the request was sent to (the `Host`
//! header, ports aside: the admin console and pages served by the same machine), or
//! when it matches `[websocket] allowed_origins`: exact origins
//! (`https://app.example.com`), patterns with `*` for any run of characters
//! (`https://*.example.com`), or `*` for every origin.

/// True when a handshake with these `Origin` and `Host` headers may proceed.
pub fn allowed(origin: Option<&str>, host: Option<&str>, allowed_origins: &[String]) -> bool {
    let Some(origin) = origin.map(str::trim) else { return true };
    if let (Some(from), Some(to)) = (origin_host(origin), host.map(strip_port))
        && from.eq_ignore_ascii_case(to)
    {
        return true;
    }
    allowed_origins.iter().any(|pattern| glob(&pattern.to_ascii_lowercase(), &origin.to_ascii_lowercase()))
}

/// The host of an origin (`scheme://host[:port]`); `None` for `null` and the like.
fn origin_host(origin: &str) -> Option<&str> {
    let (_, rest) = origin.split_once("://")?;
    Some(strip_port(rest))
}

/// `host[:port]` or `[v6][:port]` without the port.
fn strip_port(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split_once(']').map_or(authority, |(h, _)| h);
    }
    authority.rsplit_once(':').map_or(authority, |(h, _)| h)
}

/// `*` matches any run of characters; everything else matches itself.
fn glob(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = text.strip_prefix(first) else { return false };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else { return rest.is_empty() };
    for part in middle {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn no_origin_and_same_host_are_accepted() {
        assert!(allowed(None, Some("router:8080"), &[]), "not a browser page");
        assert!(allowed(Some("http://router:9000"), Some("router:8080"), &[]), "same host, other port");
        assert!(allowed(Some("http://[::1]:9000"), Some("[::1]:8080"), &[]));
        assert!(allowed(Some("http://127.0.0.1:8090"), Some("127.0.0.1:8080"), &[]));
    }

    #[test]
    fn other_sites_need_the_allow_list() {
        assert!(!allowed(Some("https://evil.example"), Some("router:8080"), &[]));
        assert!(!allowed(Some("null"), Some("router:8080"), &[]));
        let l = list(&["https://app.example.com", "https://*.example.org"]);
        assert!(allowed(Some("https://app.example.com"), Some("router:8080"), &l));
        assert!(allowed(Some("https://APP.example.com"), Some("router:8080"), &l), "case-insensitive");
        assert!(!allowed(Some("http://app.example.com"), Some("router:8080"), &l), "scheme counts");
        assert!(allowed(Some("https://a.example.org"), Some("router:8080"), &l));
        assert!(!allowed(Some("https://example.org.evil.example"), Some("router:8080"), &l));
        assert!(allowed(Some("https://anything"), None, &list(&["*"])));
    }

    #[test]
    fn globs() {
        assert!(glob("a*c", "abbbc") && glob("*", "") && glob("a*", "a") && !glob("a*c", "ab"));
        assert!(glob("https://*.x.org", "https://a.b.x.org") && !glob("https://*.x.org", "https://x.org"));
    }
}
