//! WAMP-CRA: challenge-response with a shared secret that never travels.
//!
//! The CHALLENGE carries `extra.challenge`, a JSON object (as a string) with `authid`,
//! `authrole`, `authmethod`, `authprovider`, a random `nonce`, the `timestamp` and the
//! `session` id. The client answers `base64(HMAC-SHA256(secret, challenge))`. With a
//! salted secret the CHALLENGE also carries `salt`, `iterations` and `keylen`, and the
//! client first derives its secret as [`derive_key`] does (Autobahn's `derive_key`:
//! the base64 text of PBKDF2-HMAC-SHA256 is the HMAC key). The router only ever
//! stores that derived key.

use std::collections::HashMap;

use super::config::{AuthConfigError, WampCraConfig};
use super::dynamic::{self, AuthenticatorReply, DynamicPrincipal};
use super::encoding::{
    b64_decode_lenient, b64_encode, ct_eq, hmac_sha256, iso8601_utc, pbkdf2_sha256, random_bytes,
};
use super::error::AuthError;
use super::flow::{Availability, Next};
use super::principal::{Context, HelloAuth, Principal};
use super::secret::Secret;
use crate::dict;
use crate::wamp::message::Authenticate;
use crate::wamp::value::{Dict, Value};

/// The method name.
pub const METHOD: &str = "wampcra";
/// Default PBKDF2 iterations for salted secrets (Autobahn's default).
pub const DEFAULT_ITERATIONS: u32 = 1000;
/// Default derived key length for salted secrets.
pub const DEFAULT_KEYLEN: u32 = 32;
/// Largest `keylen` accepted from configuration or an authenticator.
const MAX_KEYLEN: u32 = 1024;

/// The key a client derives from a password for a salted WAMP-CRA secret:
/// `base64(PBKDF2-HMAC-SHA256(password, salt, iterations, keylen))`, the salt taken
/// as UTF-8 text, as in Autobahn|Python's `derive_key`.
pub fn derive_key(password: &str, salt: &str, iterations: u32, keylen: u32) -> String {
    let keylen = usize::try_from(keylen.min(MAX_KEYLEN)).unwrap_or(32);
    b64_encode(&pbkdf2_sha256(password.as_bytes(), salt.as_bytes(), iterations.max(1), keylen))
}

/// The client's signature over `challenge`: `base64(HMAC-SHA256(key, challenge))`
/// (Autobahn's `compute_wcs`).
pub fn sign(key: &str, challenge: &str) -> String {
    b64_encode(&hmac_sha256(key.as_bytes(), challenge.as_bytes()))
}

/// The configured WAMP-CRA method of a realm.
#[derive(Debug)]
pub(crate) struct Method {
    pub(crate) availability: Availability,
    source: Source,
}

#[derive(Debug)]
enum Source {
    Static(HashMap<String, Credential>),
    Dynamic(String),
}

/// A principal's role and secret.
#[derive(Clone, Debug)]
struct Credential {
    role: String,
    key: Secret,
    salt: Option<Salt>,
}

#[derive(Clone, Debug, PartialEq)]
struct Salt {
    salt: String,
    iterations: u32,
    keylen: u32,
}

/// A WAMP-CRA authentication in progress.
#[derive(Debug)]
pub(crate) enum Pending {
    /// The authenticator is looking the principal up.
    AwaitReply { authid: Option<String> },
    /// CHALLENGE sent.
    Verify { principal: Principal, key: Secret, challenge: String },
}

impl Method {
    pub(crate) fn new(cfg: &WampCraConfig) -> Result<Method, AuthConfigError> {
        let source = match &cfg.authenticator {
            Some(_) if !cfg.principals.is_empty() => {
                return Err(AuthConfigError::Exclusive { method: "wampcra" });
            }
            Some(procedure) => Source::Dynamic(procedure.clone()),
            None => {
                let mut map = HashMap::new();
                for (authid, p) in &cfg.principals {
                    let what = format!("wampcra.principals.{authid}");
                    let key = Secret::new(p.secret.require(&format!("{what}.secret"))?);
                    let salt = salt(p.salt.as_deref(), p.iterations, p.keylen)
                        .map_err(|source| AuthConfigError::Salt { key: what.clone(), source })?;
                    map.insert(authid.clone(), Credential { role: p.role.clone(), key, salt });
                }
                Source::Static(map)
            }
        };
        Ok(Method { availability: Availability::new(&cfg.transports, cfg.tls_only), source })
    }

    pub(crate) fn hello(&self, hello: &HelloAuth, ctx: &Context) -> Next<Pending> {
        match &self.source {
            Source::Static(principals) => {
                let Some(authid) = hello.authid.as_deref() else {
                    return Next::Skip(AuthError::NoSuchPrincipal("WAMP-CRA requires an authid".into()));
                };
                match principals.get(authid) {
                    Some(c) => challenge(authid.to_owned(), c.clone(), "static", Dict::new(), ctx),
                    None => Next::Skip(AuthError::no_principal(authid)),
                }
            }
            Source::Dynamic(procedure) => {
                let call =
                    dynamic::call(procedure, ctx, hello.authid.as_deref(), METHOD, &hello.authextra, None);
                Next::Call(call, Pending::AwaitReply { authid: hello.authid.clone() })
            }
        }
    }
}

impl Method {
    /// The CHALLENGE an unknown `authid` gets when unknown authids are hidden: shaped
    /// like a known principal's (the first one's role and salt parameters), with a
    /// random key, so any signature is then refused as a wrong one.
    pub(crate) fn decoy(&self, authid: &str, ctx: &Context) -> Next<Pending> {
        let (role, salt) = match &self.source {
            Source::Static(principals) => {
                principals.values().next().map(|c| (c.role.clone(), c.salt.clone())).unwrap_or_default()
            }
            Source::Dynamic(_) => Default::default(),
        };
        let key = Secret::new(b64_encode(&random_bytes::<32>()));
        challenge(authid.to_owned(), Credential { role, key, salt }, "static", Dict::new(), ctx)
    }
}

/// Why a WAMP-CRA principal's salt parameters cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SaltError {
    /// `iterations` or `keylen` without `salt`.
    #[error("`iterations` and `keylen` need a `salt`")]
    Missing,
    /// `iterations` is 0 or `keylen` out of range.
    #[error("`iterations` must be positive and `keylen` 1..={MAX_KEYLEN}")]
    Range,
}

fn salt(salt: Option<&str>, iterations: Option<u32>, keylen: Option<u32>) -> Result<Option<Salt>, SaltError> {
    let Some(salt) = salt else {
        return match (iterations, keylen) {
            (None, None) => Ok(None),
            _ => Err(SaltError::Missing),
        };
    };
    let iterations = iterations.unwrap_or(DEFAULT_ITERATIONS);
    let keylen = keylen.unwrap_or(DEFAULT_KEYLEN);
    if iterations == 0 || keylen == 0 || keylen > MAX_KEYLEN {
        return Err(SaltError::Range);
    }
    Ok(Some(Salt { salt: salt.to_owned(), iterations, keylen }))
}

/// Builds the CHALLENGE for a known credential.
fn challenge(authid: String, c: Credential, provider: &str, authextra: Dict, ctx: &Context) -> Next<Pending> {
    let nonce = b64_encode(&random_bytes::<18>());
    let text = challenge_json(&authid, &c.role, provider, &nonce, ctx);
    let mut extra = dict! { "challenge" => text.as_str() };
    if let Some(s) = &c.salt {
        extra.insert("salt".into(), s.salt.as_str().into());
        extra.insert("iterations".into(), u64::from(s.iterations).into());
        extra.insert("keylen".into(), u64::from(s.keylen).into());
    }
    let principal = Principal {
        authid,
        authrole: c.role,
        authmethod: METHOD.into(),
        authprovider: provider.into(),
        authextra,
    };
    Next::Challenge(extra, Pending::Verify { principal, key: c.key, challenge: text })
}

/// The challenge string: a JSON object, as the spec defines it.
fn challenge_json(authid: &str, authrole: &str, provider: &str, nonce: &str, ctx: &Context) -> String {
    serde_json::json!({
        "authid": authid,
        "authrole": authrole,
        "authmethod": METHOD,
        "authprovider": provider,
        "nonce": nonce,
        "timestamp": iso8601_utc(ctx.now_ms),
        "session": ctx.session.0,
    })
    .to_string()
}

impl Pending {
    pub(crate) fn authenticate(self, msg: &Authenticate, _ctx: &Context) -> Next<Pending> {
        let Pending::Verify { principal, key, challenge } = self else {
            return Next::Abort(AuthError::Protocol(
                "AUTHENTICATE while the authenticator is deciding".into(),
            ));
        };
        let expected = hmac_sha256(key.expose().unwrap_or_default().as_bytes(), challenge.as_bytes());
        match b64_decode_lenient(&msg.signature) {
            Some(sig) if ct_eq(&sig, &expected) => Next::Welcome(principal),
            Some(_) => Next::Abort(AuthError::denied("invalid WAMP-CRA signature")),
            None => Next::Abort(AuthError::denied("WAMP-CRA signature is not base64")),
        }
    }

    pub(crate) fn reply(self, reply: AuthenticatorReply, ctx: &Context) -> Next<Pending> {
        let Pending::AwaitReply { authid } = self else {
            return Next::Abort(AuthError::failed("unexpected authenticator reply"));
        };
        match dynamic::parse_reply(reply, ctx).and_then(|p| dynamic_credential(p, authid.as_deref())) {
            Ok((authid, credential, extra)) => challenge(authid, credential, "dynamic", extra, ctx),
            Err(e) => Next::Abort(e),
        }
    }
}

fn dynamic_credential(
    p: DynamicPrincipal,
    hello_authid: Option<&str>,
) -> Result<(String, Credential, Dict), AuthError> {
    let authid = p.authid_or(hello_authid)?;
    let secret = p.str("secret").ok_or_else(|| AuthError::failed("authenticator returned no secret"))?;
    let key = Secret::new(secret);
    let salt = salt(p.str("salt"), p.u32("iterations")?, p.u32("keylen")?)
        .map_err(|e| AuthError::failed(format!("authenticator returned a bad salt: {e}")))?;
    let role = p.role.clone();
    Ok((authid, Credential { role, key, salt }, p.extra))
}

/// Reads `extra.challenge` and the salt parameters of a WAMP-CRA CHALLENGE and signs
/// it with `password`, as a client does (used by tests and tools).
pub fn client_sign(extra: &Dict, password: &str) -> Option<String> {
    let challenge = extra.get("challenge").and_then(Value::as_str)?;
    let key = match extra.get("salt").and_then(Value::as_str) {
        Some(salt) => {
            let iterations =
                extra.get("iterations").and_then(Value::as_u64).and_then(|v| u32::try_from(v).ok());
            let keylen = extra.get("keylen").and_then(Value::as_u64).and_then(|v| u32::try_from(v).ok());
            derive_key(
                password,
                salt,
                iterations.unwrap_or(DEFAULT_ITERATIONS),
                keylen.unwrap_or(DEFAULT_KEYLEN),
            )
        }
        None => password.to_owned(),
    };
    Some(sign(&key, challenge))
}

#[cfg(test)]
mod tests;
