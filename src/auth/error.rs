//! Why an authentication did not succeed, and the ABORT reason URI for each case.
//!
//! The URIs are the Advanced Profile's (`rfc/text/advanced/uris.md` in the spec):
//! a wrong secret is *denied*, a technical problem (an authenticator that cannot be
//! reached, a broken stored secret) *failed*. Messages never contain secrets, so they
//! can go into ABORT details and logs as they are.

use crate::wamp::errors;
use crate::wamp::value::Dict;

/// `wamp.error.no_matching_auth_method`: no method the client offered is enabled.
pub const NO_MATCHING_AUTH_METHOD: &str = "wamp.error.no_matching_auth_method";
/// `wamp.error.no_such_principal`: the authid is unknown.
pub const NO_SUCH_PRINCIPAL: &str = "wamp.error.no_such_principal";
/// `wamp.error.no_such_role`: the principal's role does not exist in the realm.
pub const NO_SUCH_ROLE: &str = "wamp.error.no_such_role";
/// `wamp.error.authentication_denied`: wrong ticket, signature or proof.
pub const AUTHENTICATION_DENIED: &str = "wamp.error.authentication_denied";
/// `wamp.error.authentication_failed`: rejected by a technical failure ("fail secure").
pub const AUTHENTICATION_FAILED: &str = "wamp.error.authentication_failed";
/// `wamp.error.authentication_required`: the client offered no credentials and
/// anonymous access is off.
pub const AUTHENTICATION_REQUIRED: &str = "wamp.error.authentication_required";

/// An authentication that ends in ABORT.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// None of the client's `authmethods` is enabled for this realm and transport.
    #[error("none of the offered authentication methods is accepted")]
    NoMatchingAuthMethod,
    /// The client sent no `authmethods` (or only `anonymous`) and anonymous access is off.
    #[error("authentication required")]
    Required,
    /// The authid (or public key) is not known.
    #[error("{0}")]
    NoSuchPrincipal(String),
    /// The principal's role is not defined in the realm (checked by the caller).
    #[error("{0}")]
    NoSuchRole(String),
    /// The credentials were checked and are wrong, or the client's request cannot be
    /// honoured (unsupported channel binding, malformed signature ...).
    #[error("{0}")]
    Denied(String),
    /// AUTHENTICATE came after the challenge expired.
    #[error("authentication timed out")]
    Timeout,
    /// A technical failure: the dynamic authenticator failed or answered nonsense.
    #[error("{0}")]
    Failed(String),
    /// The client broke the handshake's rules (e.g. a HELLO detail of the wrong type).
    #[error("{0}")]
    Protocol(String),
    /// An error raised by the dynamic authenticator, forwarded as it is.
    #[error("{}", message.as_deref().unwrap_or(uri))]
    Custom {
        /// The error URI the authenticator raised.
        uri: String,
        /// Its first positional argument, if it was a string.
        message: Option<String>,
    },
}

impl AuthError {
    /// The ABORT reason URI.
    pub fn uri(&self) -> &str {
        match self {
            AuthError::NoMatchingAuthMethod => NO_MATCHING_AUTH_METHOD,
            AuthError::Required => AUTHENTICATION_REQUIRED,
            AuthError::NoSuchPrincipal(_) => NO_SUCH_PRINCIPAL,
            AuthError::NoSuchRole(_) => NO_SUCH_ROLE,
            AuthError::Denied(_) | AuthError::Timeout => AUTHENTICATION_DENIED,
            AuthError::Failed(_) => AUTHENTICATION_FAILED,
            AuthError::Protocol(_) => errors::PROTOCOL_VIOLATION,
            AuthError::Custom { uri, .. } => uri,
        }
    }

    /// ABORT details: `{"message": ...}`.
    pub fn abort_details(&self) -> Dict {
        crate::dict! { "message" => self.to_string() }
    }

    pub(crate) fn denied(msg: impl Into<String>) -> Self {
        AuthError::Denied(msg.into())
    }

    pub(crate) fn failed(msg: impl Into<String>) -> Self {
        AuthError::Failed(msg.into())
    }

    pub(crate) fn no_principal(authid: &str) -> Self {
        AuthError::NoSuchPrincipal(format!("no principal with authid {authid:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_follow_the_spec() {
        assert_eq!(AuthError::NoMatchingAuthMethod.uri(), "wamp.error.no_matching_auth_method");
        assert_eq!(AuthError::no_principal("x").uri(), "wamp.error.no_such_principal");
        assert_eq!(AuthError::denied("x").uri(), "wamp.error.authentication_denied");
        assert_eq!(AuthError::failed("x").uri(), "wamp.error.authentication_failed");
        assert_eq!(AuthError::Timeout.uri(), "wamp.error.authentication_denied");
        assert_eq!(AuthError::Required.uri(), "wamp.error.authentication_required");
        let custom = AuthError::Custom { uri: "com.example.nope".into(), message: None };
        assert_eq!(custom.uri(), "com.example.nope");
        assert_eq!(custom.to_string(), "com.example.nope");
    }

    #[test]
    fn details_carry_the_message() {
        let d = AuthError::no_principal("joe").abort_details();
        assert_eq!(d.get("message").and_then(|v| v.as_str()), Some("no principal with authid \"joe\""));
    }
}
