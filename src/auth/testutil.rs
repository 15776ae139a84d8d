//! Helpers for the authentication tests: a context, HELLO and AUTHENTICATE builders,
//! and matchers for [`Step`].

use super::config::AuthConfig;
use super::dynamic::AuthenticatorCall;
use super::error::AuthError;
use super::flow::{Pending, Step};
use super::principal::{Context, HelloAuth, Principal, TransportInfo};
use crate::ids::SessionId;
use crate::wamp::message::{Authenticate, Challenge};
use crate::wamp::value::Dict;

/// The wall clock of every test context.
pub const NOW: u64 = 1_403_454_985_448;

pub fn ctx() -> Context {
    Context {
        realm: "realm1".into(),
        session: SessionId(3_251_278_072_152_162),
        now_ms: NOW,
        transport: TransportInfo::default(),
    }
}

pub fn hello(methods: &[&str], authid: Option<&str>) -> HelloAuth {
    hello_extra(methods, authid, Dict::new())
}

pub fn hello_extra(methods: &[&str], authid: Option<&str>, authextra: Dict) -> HelloAuth {
    HelloAuth {
        authid: authid.map(str::to_owned),
        authmethods: methods.iter().map(|m| (*m).to_owned()).collect(),
        authextra,
    }
}

pub fn authenticate(signature: &str) -> Authenticate {
    Authenticate { signature: signature.into(), extra: Dict::new() }
}

/// Parses the `[realms.auth]` part of a config from TOML.
pub fn toml_auth(text: &str) -> AuthConfig {
    match toml::from_str(text) {
        Ok(cfg) => cfg,
        Err(e) => panic!("test config does not parse: {e}"),
    }
}

pub fn expect_challenge(step: Step) -> (Challenge, Pending) {
    match step {
        Step::Challenge(c, p) => (c, p),
        other => panic!("expected CHALLENGE, got {other:?}"),
    }
}

pub fn expect_welcome(step: Step) -> Principal {
    match step {
        Step::Welcome(p) => p,
        other => panic!("expected WELCOME, got {other:?}"),
    }
}

pub fn expect_abort(step: Step) -> AuthError {
    match step {
        Step::Abort(e) => e,
        other => panic!("expected ABORT, got {other:?}"),
    }
}

pub fn expect_call(step: Step) -> (AuthenticatorCall, Pending) {
    match step {
        Step::Authenticator(c, p) => (c, p),
        other => panic!("expected an authenticator call, got {other:?}"),
    }
}
