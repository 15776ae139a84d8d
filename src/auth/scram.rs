//! WAMP-SCRAM (RFC 5802 / RFC 7677 with SHA-256, Argon2id or PBKDF2), in two
//! dialects selected by the method name the client offers:
//!
//! * `wamp-scram`, the spec's flow: HELLO `authextra.nonce` (base64) and optional
//!   `channel_binding`; CHALLENGE `nonce` (client nonce + server nonce), `salt`,
//!   `kdf`, `iterations`, `memory`; AUTHENTICATE `base64(ClientProof)` with `extra.nonce`,
//!   `channel_binding`, `cbind_data`; WELCOME `authextra.verifier` =
//!   `base64(ServerSignature)`. `AuthMessage` uses RFC 5802's syntax, `c=` carrying
//!   `base64("n,,")` or `base64("p=<type>,," + cbind data)`.
//! * `scram`, Crossbar.io's and Autobahn|Python's flow: the server nonce is
//!   `base64(client nonce bytes + 16 random bytes)`, `AuthMessage` has an empty `c=`,
//!   no channel binding, and WELCOME carries `authextra.scram_server_signature`.
//!   Autobahn's client supports the `argon2id-13` KDF only.
//!
//! The authid is used as given (SASLprep is the identity for printable ASCII); in
//! `wamp-scram` it is escaped (`=` → `=3D`, `,` → `=2C`) in `AuthMessage`.

mod credential;

use std::collections::HashMap;
use std::sync::OnceLock;

pub use credential::{
    Credential, CredentialError, KDF_ARGON2ID_13_AUTOBAHN, KDF_ARGON2ID13, KDF_PBKDF2, client_key,
    derive_credential, salted_password,
};

use super::config::{AuthConfigError, ScramConfig};
use super::dynamic::{self, AuthenticatorReply, DynamicPrincipal};
use super::encoding::{
    b64_decode, b64_decode_lenient, b64_encode, ct_eq, hmac_sha256, random_bytes, sha256, xor,
};
use super::error::AuthError;
use super::flow::{Availability, Next};
use super::principal::{Context, HelloAuth, Principal};
use crate::dict;
use crate::wamp::message::Authenticate;
use crate::wamp::value::{Dict, Value};

/// The spec's method name.
pub const METHOD_SPEC: &str = "wamp-scram";
/// Crossbar.io's and Autobahn's method name.
pub const METHOD_CROSSBAR: &str = "scram";
/// Longest client nonce accepted, in characters.
const MAX_NONCE_LEN: usize = 256;

/// Which message flow the client asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// `wamp-scram`.
    Spec,
    /// `scram`.
    Crossbar,
}

impl Dialect {
    /// The dialect of a method name.
    pub fn from_method(method: &str) -> Option<Dialect> {
        match method {
            METHOD_SPEC => Some(Dialect::Spec),
            METHOD_CROSSBAR => Some(Dialect::Crossbar),
            _ => None,
        }
    }

    /// The method name.
    pub fn method(self) -> &'static str {
        match self {
            Dialect::Spec => METHOD_SPEC,
            Dialect::Crossbar => METHOD_CROSSBAR,
        }
    }
}

/// The configured SCRAM method of a realm.
#[derive(Debug)]
pub(crate) struct Method {
    pub(crate) availability: Availability,
    source: Source,
    hide_unknown: bool,
    /// KDF parameters of mock challenges: those of the first principal by authid.
    mock: (String, u32, Option<u32>),
}

#[derive(Debug)]
enum Source {
    Static(HashMap<String, (String, Credential)>),
    Dynamic(String),
}

/// What HELLO fixed.
#[derive(Clone, Debug)]
pub(crate) struct Start {
    dialect: Dialect,
    authid: String,
    /// The client nonce as it goes into `AuthMessage`.
    client_nonce: String,
    /// The client nonce bytes (Crossbar's dialect builds the server nonce from them).
    client_nonce_raw: Vec<u8>,
    binding: Option<(String, Vec<u8>)>,
}

/// A SCRAM authentication in progress.
#[derive(Debug)]
pub(crate) enum Pending {
    /// The authenticator is looking the credential up.
    AwaitReply { start: Start },
    /// CHALLENGE sent.
    Verify(Box<Verify>),
    /// Mock challenge for an unknown authid: always fails.
    Mock { dialect: Dialect },
}

/// What checking the client's proof needs.
#[derive(Debug)]
pub(crate) struct Verify {
    start: Start,
    principal: Principal,
    credential: Credential,
    server_nonce: String,
}

impl Pending {
    pub(crate) fn method(&self) -> &'static str {
        match self {
            Pending::AwaitReply { start } => start.dialect.method(),
            Pending::Verify(v) => v.start.dialect.method(),
            Pending::Mock { dialect } => dialect.method(),
        }
    }
}

impl Method {
    pub(crate) fn new(cfg: &ScramConfig, disclose_unknown: bool) -> Result<Method, AuthConfigError> {
        let source = match &cfg.authenticator {
            Some(_) if !cfg.principals.is_empty() => {
                return Err(AuthConfigError::Exclusive { method: "scram" });
            }
            Some(procedure) => Source::Dynamic(procedure.clone()),
            None => {
                let mut map = HashMap::new();
                for (authid, p) in &cfg.principals {
                    let c = Credential::from_config(p)
                        .map_err(|source| AuthConfigError::Scram { authid: authid.clone(), source })?;
                    map.insert(authid.clone(), (p.role.clone(), c));
                }
                Source::Static(map)
            }
        };
        let mock = cfg
            .principals
            .values()
            .next()
            .map(|p| (p.kdf.clone(), p.iterations, p.memory))
            .unwrap_or_else(|| (KDF_ARGON2ID13.into(), 4096, Some(512)));
        Ok(Method {
            availability: Availability::new(&cfg.transports, cfg.tls_only),
            source,
            hide_unknown: cfg.hide_unknown.unwrap_or(!disclose_unknown),
            mock,
        })
    }

    pub(crate) fn hello(&self, dialect: Dialect, hello: &HelloAuth, ctx: &Context) -> Next<Pending> {
        let Some(authid) = hello.authid.clone() else {
            return Next::Skip(AuthError::NoSuchPrincipal("WAMP-SCRAM requires an authid".into()));
        };
        let start = match start(dialect, authid, &hello.authextra, ctx) {
            Ok(s) => s,
            Err(e) => return Next::Abort(e),
        };
        match &self.source {
            Source::Static(principals) => match principals.get(&start.authid) {
                Some((role, credential)) => {
                    let principal = principal(&start, role.clone(), "static", Dict::new());
                    challenge(start, principal, credential.clone())
                }
                None if self.hide_unknown => self.mock_challenge(start, ctx),
                None => Next::Skip(AuthError::no_principal(&start.authid)),
            },
            Source::Dynamic(procedure) => {
                let call = dynamic::call(
                    procedure,
                    ctx,
                    Some(&start.authid),
                    dialect.method(),
                    &hello.authextra,
                    None,
                );
                Next::Call(call, Pending::AwaitReply { start })
            }
        }
    }

    /// A CHALLENGE for an unknown authid that looks like a real one: the salt is
    /// stable per (realm, authid) for the life of the process.
    fn mock_challenge(&self, start: Start, ctx: &Context) -> Next<Pending> {
        static KEY: OnceLock<[u8; 32]> = OnceLock::new();
        let key = KEY.get_or_init(random_bytes::<32>);
        let salt = hmac_sha256(key, format!("{}\0{}", ctx.realm, start.authid).as_bytes());
        let (kdf, iterations, memory) = self.mock.clone();
        let credential = Credential {
            kdf,
            iterations,
            memory,
            salt: salt[..16].to_vec(),
            stored_key: [0; 32],
            server_key: [0; 32],
        };
        match challenge(start, principal_placeholder(), credential) {
            Next::Challenge(extra, Pending::Verify(v)) => {
                Next::Challenge(extra, Pending::Mock { dialect: v.start.dialect })
            }
            other => other,
        }
    }
}

/// Reads the client nonce and channel binding from HELLO.
fn start(dialect: Dialect, authid: String, extra: &Dict, ctx: &Context) -> Result<Start, AuthError> {
    let nonce = extra.get("nonce").and_then(Value::as_str).unwrap_or_default();
    let raw = Some(nonce)
        .filter(|n| n.len() <= MAX_NONCE_LEN)
        .and_then(b64_decode_lenient)
        .filter(|r| !r.is_empty());
    let Some(client_nonce_raw) = raw else {
        return Err(AuthError::denied("WAMP-SCRAM needs authextra.nonce: base64, at most 256 characters"));
    };
    let binding = match (dialect, extra.get("channel_binding")) {
        (Dialect::Crossbar, _) | (_, None | Some(Value::Null)) => None,
        (Dialect::Spec, Some(Value::Str(kind))) => match ctx.transport.channel_bindings.get(kind) {
            Some(data) => Some((kind.clone(), data.to_vec())),
            None => return Err(AuthError::denied(format!("channel binding {kind:?} is not supported here"))),
        },
        (Dialect::Spec, Some(_)) => {
            return Err(AuthError::denied("authextra.channel_binding must be a string"));
        }
    };
    let client_nonce = match dialect {
        Dialect::Spec => nonce.to_owned(),
        Dialect::Crossbar => b64_encode(&client_nonce_raw),
    };
    Ok(Start { dialect, authid, client_nonce, client_nonce_raw, binding })
}

fn principal(start: &Start, role: String, provider: &str, authextra: Dict) -> Principal {
    Principal {
        authid: start.authid.clone(),
        authrole: role,
        authmethod: start.dialect.method().into(),
        authprovider: provider.into(),
        authextra,
    }
}

fn principal_placeholder() -> Principal {
    Principal {
        authid: String::new(),
        authrole: String::new(),
        authmethod: String::new(),
        authprovider: String::new(),
        authextra: Dict::new(),
    }
}

fn challenge(start: Start, principal: Principal, credential: Credential) -> Next<Pending> {
    let server_nonce = match start.dialect {
        Dialect::Spec => format!("{}{}", start.client_nonce, b64_encode(&random_bytes::<16>())),
        Dialect::Crossbar => {
            let mut raw = start.client_nonce_raw.clone();
            raw.extend_from_slice(&random_bytes::<16>());
            b64_encode(&raw)
        }
    };
    challenge_with(start, principal, credential, server_nonce)
}

fn challenge_with(
    start: Start,
    principal: Principal,
    credential: Credential,
    server_nonce: String,
) -> Next<Pending> {
    let mut extra = dict! {
        "nonce" => server_nonce.as_str(),
        "salt" => b64_encode(&credential.salt),
        "kdf" => credential.kdf.as_str(),
        "iterations" => u64::from(credential.iterations),
    };
    // The spec sends `memory: null` for PBKDF2; Autobahn's client fails on a null.
    if let Some(m) = credential.memory {
        extra.insert("memory".into(), u64::from(m).into());
    } else if start.dialect == Dialect::Spec {
        extra.insert("memory".into(), Value::Null);
    }
    Next::Challenge(extra, Pending::Verify(Box::new(Verify { start, principal, credential, server_nonce })))
}

/// RFC 5802 `saslname` escaping.
fn escape(authid: &str) -> String {
    authid.replace('=', "=3D").replace(',', "=2C")
}

/// `AuthMessage` = client-first-bare "," server-first "," client-final-without-proof.
fn auth_message(start: &Start, credential: &Credential, server_nonce: &str) -> String {
    let (name, cbind) = match start.dialect {
        Dialect::Spec => {
            let mut input = match &start.binding {
                Some((kind, _)) => format!("p={kind},,").into_bytes(),
                None => b"n,,".to_vec(),
            };
            if let Some((_, data)) = &start.binding {
                input.extend_from_slice(data);
            }
            (escape(&start.authid), b64_encode(&input))
        }
        Dialect::Crossbar => (start.authid.clone(), String::new()),
    };
    format!(
        "n={name},r={},r={server_nonce},s={},i={},c={cbind},r={server_nonce}",
        start.client_nonce,
        b64_encode(&credential.salt),
        credential.iterations
    )
}

impl Pending {
    pub(crate) fn authenticate(self, msg: &Authenticate, _ctx: &Context) -> Next<Pending> {
        let Verify { start, mut principal, credential, server_nonce } = match self {
            Pending::Verify(v) => *v,
            Pending::Mock { .. } => return Next::Abort(AuthError::denied("invalid SCRAM proof")),
            Pending::AwaitReply { .. } => {
                return Next::Abort(AuthError::Protocol(
                    "AUTHENTICATE while the authenticator is deciding".into(),
                ));
            }
        };
        if start.dialect == Dialect::Spec
            && let Err(e) = check_final_extra(&start, &server_nonce, &msg.extra)
        {
            return Next::Abort(e);
        }
        let message = auth_message(&start, &credential, &server_nonce);
        let Some(proof) = b64_decode(&msg.signature).filter(|p| p.len() == 32) else {
            return Next::Abort(AuthError::denied("SCRAM proof must be 32 bytes, base64"));
        };
        let client_signature = hmac_sha256(&credential.stored_key, message.as_bytes());
        let client_key = xor(&proof, &client_signature);
        if !ct_eq(&sha256(&client_key), &credential.stored_key) {
            return Next::Abort(AuthError::denied("invalid SCRAM proof"));
        }
        let server_signature = b64_encode(&hmac_sha256(&credential.server_key, message.as_bytes()));
        let key = match start.dialect {
            Dialect::Spec => "verifier",
            Dialect::Crossbar => "scram_server_signature",
        };
        principal.authextra.insert(key.into(), server_signature.into());
        Next::Welcome(principal)
    }

    pub(crate) fn reply(self, reply: AuthenticatorReply, ctx: &Context) -> Next<Pending> {
        let Pending::AwaitReply { start } = self else {
            return Next::Abort(AuthError::failed("unexpected authenticator reply"));
        };
        match dynamic::parse_reply(reply, ctx).and_then(|p| dynamic_credential(&p).map(|c| (p, c))) {
            Ok((p, credential)) => {
                let mut start = start;
                if let Some(authid) = p.authid {
                    start.authid = authid;
                }
                let principal = principal(&start, p.role, "dynamic", p.extra);
                challenge(start, principal, credential)
            }
            Err(e) => Next::Abort(e),
        }
    }
}

/// The spec's checks on `AUTHENTICATE.Extra`: the nonce and channel binding echo
/// what was agreed, and `cbind_data` is this connection's.
fn check_final_extra(start: &Start, server_nonce: &str, extra: &Dict) -> Result<(), AuthError> {
    if let Some(n) = extra.get("nonce").filter(|v| **v != Value::Null)
        && n.as_str() != Some(server_nonce)
    {
        return Err(AuthError::denied("AUTHENTICATE nonce does not match the CHALLENGE"));
    }
    let kind = extra.get("channel_binding").and_then(Value::as_str);
    if kind != start.binding.as_ref().map(|(k, _)| k.as_str()) {
        return Err(AuthError::denied("AUTHENTICATE channel_binding does not match HELLO"));
    }
    if let Some((_, data)) = &start.binding {
        let sent = extra.get("cbind_data").and_then(Value::as_str).and_then(b64_decode_lenient);
        if sent.as_deref() != Some(data.as_slice()) {
            return Err(AuthError::denied("cbind_data does not match this connection"));
        }
    }
    Ok(())
}

fn dynamic_credential(p: &DynamicPrincipal) -> Result<Credential, AuthError> {
    let field = |a: &str, b: &str| p.str(a).or_else(|| p.str(b)).unwrap_or_default().to_owned();
    let kdf = p.str("kdf").unwrap_or_default();
    let iterations = p.u32("iterations")?.unwrap_or_default();
    Credential::from_parts(
        kdf,
        iterations,
        p.u32("memory")?,
        p.str("salt").unwrap_or_default(),
        &field("stored-key", "stored_key"),
        &field("server-key", "server_key"),
    )
    .map_err(|e| AuthError::failed(format!("authenticator returned a bad SCRAM credential: {e}")))
}

#[cfg(test)]
mod tests;
