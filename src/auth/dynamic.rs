//! The dynamic authenticator, as Crossbar.io has it: a WAMP procedure, registered by
//! an ordinary client, that decides who may join. Only the conversions live here; the
//! session makes the call.
//!
//! **Request.** `procedure(realm, authid, details)`, where `authid` is the one from
//! HELLO (or null) and `details` is
//! `{"session": id, "authmethod": m, "authextra": HELLO's authextra, "transport":
//! {"type": "websocket"|"rawsocket", "tls": bool, "peer": "..."}}`, plus `"ticket"`
//! for ticket authentication (the authenticator is called after AUTHENTICATE then;
//! for the other methods it is called at HELLO, before the CHALLENGE).
//!
//! **Reply.** A role string, or a dict:
//!
//! | key | methods | meaning |
//! |---|---|---|
//! | `role` | all | required: the authrole |
//! | `authid` | all | optional: the authid to assign (default: HELLO's) |
//! | `extra` | all | optional dict, sent as `WELCOME.Details.authextra` |
//! | `realm` | all | optional; must equal the realm joined (no redirection) |
//! | `secret`, `salt`, `iterations`, `keylen` | wampcra | the secret, as in the static config |
//! | `pubkey` | cryptosign | optional: must equal HELLO's `authextra.pubkey` |
//! | `kdf`, `iterations`, `memory`, `salt`, `stored-key`, `server-key` | scram | the credential (hex), as `derive_scram_credential` returns it |
//!
//! **Errors.** An application error the authenticator raises (e.g.
//! `wamp.error.not_authorized`) is forwarded as the ABORT reason with its first
//! argument as message; a failure to reach it (no such procedure, no callee, timeout,
//! canceled) is `wamp.error.authentication_failed`.

use std::fmt;

use super::error::AuthError;
use super::principal::Context;
use crate::dict;
use crate::wamp::message::Arguments;
use crate::wamp::value::{Dict, List, Value};

/// The call the session must make.
#[derive(Clone, PartialEq)]
pub struct AuthenticatorCall {
    /// The authenticator procedure URI.
    pub procedure: String,
    /// `[realm, authid, details]`.
    pub args: List,
}

impl fmt::Debug for AuthenticatorCall {
    /// The arguments may carry a ticket: they are left out.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthenticatorCall").field("procedure", &self.procedure).finish_non_exhaustive()
    }
}

/// Builds the authenticator call for `method`.
pub(crate) fn call(
    procedure: &str,
    ctx: &Context,
    authid: Option<&str>,
    method: &str,
    authextra: &Dict,
    ticket: Option<&str>,
) -> AuthenticatorCall {
    let mut details = dict! {
        "session" => ctx.session.0,
        "authmethod" => method,
        "authextra" => authextra.clone(),
        "transport" => ctx.transport.to_dict(),
    };
    if let Some(t) = ticket {
        details.insert("ticket".into(), t.into());
    }
    let authid = authid.map_or(Value::Null, Value::from);
    AuthenticatorCall {
        procedure: procedure.to_owned(),
        args: vec![ctx.realm.as_str().into(), authid, Value::Dict(details)],
    }
}

/// The authenticator's call ended in ERROR (or could not be made).
#[derive(Clone, Debug, PartialEq)]
pub struct CallFailure {
    /// The error URI.
    pub error: String,
    /// The first positional argument, if it is a string.
    pub message: Option<String>,
}

impl CallFailure {
    /// From an ERROR message's URI and positional arguments.
    pub fn from_error(error: &str, args: &List) -> Self {
        CallFailure {
            error: error.to_owned(),
            message: args.first().and_then(Value::as_str).map(str::to_owned),
        }
    }
}

/// What the call returned: the result value, or the failure.
pub type AuthenticatorReply = Result<Value, CallFailure>;

/// The value of a RESULT: its single positional argument, or its keyword arguments
/// as a dict when there are no positional ones; `Null` otherwise.
pub fn reply_value(result: &Arguments) -> Value {
    let kwargs = result.kwargs.as_ref().filter(|k| !k.is_empty());
    match (result.args.as_deref().unwrap_or_default(), kwargs) {
        ([one], _) => one.clone(),
        ([], Some(k)) => Value::Dict(k.clone()),
        _ => Value::Null,
    }
}

/// Errors raised by the router, not by the authenticator: the authenticator could not
/// be reached, so authentication failed for technical reasons.
const INFRASTRUCTURE_ERRORS: &[&str] = &[
    "wamp.error.no_such_procedure",
    "wamp.error.no_available_callee",
    "wamp.error.canceled",
    "wamp.error.timeout",
    "wamp.error.unavailable",
    "wamp.error.network_failure",
];

/// A principal as the authenticator described it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct DynamicPrincipal {
    pub(crate) authid: Option<String>,
    pub(crate) role: String,
    pub(crate) extra: Dict,
    /// The whole reply, for method-specific keys.
    pub(crate) fields: Dict,
}

impl DynamicPrincipal {
    /// The authid to assign: the authenticator's, else `fallback`.
    pub(crate) fn authid_or(&self, fallback: Option<&str>) -> Result<String, AuthError> {
        self.authid
            .clone()
            .or_else(|| fallback.map(str::to_owned))
            .ok_or_else(|| AuthError::NoSuchPrincipal("the authenticator assigned no authid".into()))
    }

    /// A string field of the reply.
    pub(crate) fn str(&self, key: &str) -> Option<&str> {
        self.fields.get(key).and_then(Value::as_str)
    }

    /// A non-negative integer field of the reply that fits in `u32`.
    pub(crate) fn u32(&self, key: &str) -> Result<Option<u32>, AuthError> {
        match self.fields.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| AuthError::failed(format!("authenticator returned an invalid {key:?}"))),
        }
    }
}

/// Interprets the authenticator's reply.
pub(crate) fn parse_reply(reply: AuthenticatorReply, ctx: &Context) -> Result<DynamicPrincipal, AuthError> {
    let value = reply.map_err(failure)?;
    let fields = match value {
        Value::Str(role) => dict! { "role" => role },
        Value::Dict(d) => d,
        _ => return Err(AuthError::failed("authenticator returned neither a role nor a dict")),
    };
    let role = match fields.get("role") {
        Some(Value::Str(r)) if !r.is_empty() => r.clone(),
        _ => return Err(AuthError::NoSuchRole("the authenticator assigned no role".into())),
    };
    let authid = match fields.get("authid") {
        None | Some(Value::Null) => None,
        Some(Value::Str(a)) if !a.is_empty() => Some(a.clone()),
        Some(_) => return Err(AuthError::failed("authenticator returned an invalid authid")),
    };
    let extra = match fields.get("extra") {
        None | Some(Value::Null) => Dict::new(),
        Some(Value::Dict(d)) => d.clone(),
        Some(_) => return Err(AuthError::failed("authenticator returned an extra that is not a dict")),
    };
    match fields.get("realm") {
        None | Some(Value::Null) => {}
        Some(Value::Str(r)) if *r == ctx.realm => {}
        Some(_) => return Err(AuthError::failed("authenticator tried to assign another realm")),
    }
    Ok(DynamicPrincipal { authid, role, extra, fields })
}

fn failure(f: CallFailure) -> AuthError {
    if INFRASTRUCTURE_ERRORS.contains(&f.error.as_str()) {
        AuthError::failed(format!("dynamic authenticator unavailable ({})", f.error))
    } else {
        AuthError::Custom { uri: f.error, message: f.message }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::principal::TransportInfo;
    use crate::ids::SessionId;

    fn ctx() -> Context {
        Context {
            realm: "realm1".into(),
            session: SessionId(7),
            now_ms: 0,
            transport: TransportInfo::default(),
        }
    }

    #[test]
    fn request_has_crossbar_shape() {
        let c = call("com.auth", &ctx(), Some("joe"), "ticket", &Dict::new(), Some("s3cret"));
        assert_eq!(c.args[0], Value::from("realm1"));
        assert_eq!(c.args[1], Value::from("joe"));
        let details = c.args[2].as_dict().expect("dict");
        assert_eq!(details.get("ticket"), Some(&Value::from("s3cret")));
        assert_eq!(details.get("session"), Some(&Value::Int(7)));
        assert!(details.get("transport").and_then(Value::as_dict).is_some());
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    #[test]
    fn replies() {
        let p = parse_reply(Ok("user".into()), &ctx()).expect("role string");
        assert_eq!((p.role.as_str(), p.authid.as_deref()), ("user", None));
        let d = dict! { "role" => "admin", "authid" => "root", "extra" => dict! { "a" => 1i64 } };
        let p = parse_reply(Ok(Value::Dict(d)), &ctx()).expect("dict");
        assert_eq!((p.role.as_str(), p.authid.as_deref(), p.extra.len()), ("admin", Some("root"), 1));
        assert_eq!(p.authid_or(Some("x")).as_deref(), Ok("root"));
    }

    #[test]
    fn bad_replies_fail_secure() {
        let cases = [
            (Value::Int(1), "wamp.error.authentication_failed"),
            (Value::Dict(dict! { "authid" => "x" }), "wamp.error.no_such_role"),
            (Value::Dict(dict! { "role" => "r", "extra" => 1i64 }), "wamp.error.authentication_failed"),
            (Value::Dict(dict! { "role" => "r", "realm" => "other" }), "wamp.error.authentication_failed"),
            (Value::Dict(dict! { "role" => "r", "authid" => 5i64 }), "wamp.error.authentication_failed"),
        ];
        for (v, uri) in cases {
            let e = parse_reply(Ok(v.clone()), &ctx()).err().map(|e| e.uri().to_owned());
            assert_eq!(e.as_deref(), Some(uri), "{v:?}");
        }
    }

    #[test]
    fn errors_are_forwarded_or_wrapped() {
        let raised = CallFailure::from_error("wamp.error.not_authorized", &vec!["go away".into()]);
        let e = parse_reply(Err(raised), &ctx()).err();
        assert_eq!(e.as_ref().map(AuthError::uri), Some("wamp.error.not_authorized"));
        assert_eq!(e.map(|e| e.to_string()).as_deref(), Some("go away"));
        let missing = CallFailure::from_error("wamp.error.no_such_procedure", &List::new());
        let e = parse_reply(Err(missing), &ctx()).err();
        assert_eq!(e.as_ref().map(AuthError::uri), Some("wamp.error.authentication_failed"));
    }

    #[test]
    fn result_value() {
        let result = |args: List, kwargs: Dict| Arguments { args: Some(args), kwargs: Some(kwargs) };
        assert_eq!(reply_value(&result(vec!["r".into()], Dict::new())), Value::from("r"));
        assert_eq!(
            reply_value(&result(List::new(), dict! { "role" => "r" })),
            Value::Dict(dict! { "role" => "r" })
        );
        assert_eq!(reply_value(&result(List::new(), Dict::new())), Value::Null);
        assert_eq!(reply_value(&Arguments::default()), Value::Null);
    }
}
