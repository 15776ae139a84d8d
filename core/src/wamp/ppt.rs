//! Payload passthru mode: the `ppt_*` options a router forwards untouched, and how to
//! tell whether a message uses the mode. The payload itself (one binary item in the
//! arguments list) passes through like any other payload.

use super::value::{Dict, Value};

/// The options of the mode, forwarded from CALL/PUBLISH/YIELD to INVOCATION/EVENT/RESULT.
pub const KEYS: [&str; 4] = ["ppt_scheme", "ppt_serializer", "ppt_cipher", "ppt_keyid"];

/// The feature name peers announce.
pub const FEATURE: &str = "payload_passthru_mode";

/// True when `options` ask for payload passthru (a non-empty `ppt_scheme`).
pub fn in_use(options: &Dict) -> bool {
    options.get("ppt_scheme").and_then(Value::as_str).is_some_and(|s| !s.is_empty())
}

/// Copies the `ppt_*` options from `options` into `details`.
pub fn forward(options: &Dict, details: &mut Dict) {
    for k in KEYS {
        if let Some(v) = options.get(k) {
            details.insert(k.to_owned(), v.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dict;

    #[test]
    fn detects_and_forwards() {
        let opts = dict! { "ppt_scheme" => "mqtt", "ppt_serializer" => "json", "other" => 1u64 };
        assert!(in_use(&opts));
        assert!(!in_use(&dict! { "ppt_scheme" => "" }));
        let mut details = Dict::new();
        forward(&opts, &mut details);
        assert_eq!(details, dict! { "ppt_scheme" => "mqtt", "ppt_serializer" => "json" });
    }
}
