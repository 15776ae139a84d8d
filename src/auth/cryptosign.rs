//! WAMP-Cryptosign: the client proves it holds the Ed25519 private key of a public
//! key the router knows.
//!
//! HELLO carries `authextra.pubkey` (hex, 32 bytes) and optionally `authid`,
//! `channel_binding` (`tls-unique` or `tls-exporter`) and `challenge` (a router
//! challenge, hex 32 bytes). The CHALLENGE carries 32 random bytes in hex; the client
//! signs them — XORed with the connection's 32-byte channel binding data when channel
//! binding is on — and answers with hex of the 64-byte signature followed by the
//! 32-byte signed message (96 bytes; a bare 64-byte signature is accepted too). When
//! the client sent a router challenge and the realm has a `router_key`, the CHALLENGE
//! also carries the router's `pubkey` and `signature` over that challenge (XORed with
//! the channel binding data likewise). Trustroots and certificates are not supported.
//!
//! Without an `authid` the principal is found by public key; a key listed under two
//! authids is refused.

use std::collections::HashMap;
use std::fmt;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use super::config::{AuthConfigError, CryptosignConfig};
use super::dynamic::{self, AuthenticatorReply, DynamicPrincipal};
use super::encoding::{hex_array, hex_decode, hex_encode, random_bytes, xor};
use super::error::AuthError;
use super::flow::{Availability, Next};
use super::principal::{Context, HelloAuth, Principal};
use crate::dict;
use crate::wamp::message::Authenticate;
use crate::wamp::value::{Dict, Value};

/// Why a public key the principal does not have is refused.
pub const KEY_NOT_AUTHORIZED: &str = "public key not authorized for this authid";

/// The method name.
pub const METHOD: &str = "cryptosign";
/// The channel binding types this method supports.
pub const CHANNEL_BINDINGS: [&str; 2] = ["tls-unique", "tls-exporter"];

/// The configured cryptosign method of a realm.
#[derive(Debug)]
pub(crate) struct Method {
    pub(crate) availability: Availability,
    source: Source,
    router_key: Option<RouterKey>,
}

#[derive(Debug)]
enum Source {
    Static { principals: HashMap<String, Entry>, by_key: HashMap<[u8; 32], Vec<String>> },
    Dynamic(String),
}

#[derive(Debug)]
struct Entry {
    role: String,
    keys: Vec<[u8; 32]>,
}

struct RouterKey(SigningKey);

impl fmt::Debug for RouterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RouterKey(public {})", hex_encode(self.0.verifying_key().as_bytes()))
    }
}

/// What HELLO fixed, whoever decides the principal.
#[derive(Clone, Debug)]
pub(crate) struct Prepared {
    pubkey: VerifyingKey,
    /// Channel binding type and data.
    binding: Option<(String, Vec<u8>)>,
    /// `pubkey` and `signature` answering the client's router challenge.
    router_extra: Dict,
}

/// A cryptosign authentication in progress.
#[derive(Debug)]
pub(crate) enum Pending {
    /// The authenticator is deciding.
    AwaitReply { authid: Option<String>, prepared: Prepared },
    /// CHALLENGE sent; the message the client must have signed.
    Verify { principal: Principal, pubkey: VerifyingKey, expected: Vec<u8> },
}

impl Method {
    pub(crate) fn new(cfg: &CryptosignConfig) -> Result<Method, AuthConfigError> {
        let router_key = match &cfg.router_key {
            Some(s) => {
                let seed =
                    hex_array::<32>(s.require("cryptosign.router_key")?).ok_or(AuthConfigError::RouterKey)?;
                Some(RouterKey(SigningKey::from_bytes(&seed)))
            }
            None => None,
        };
        let source = match &cfg.authenticator {
            Some(_) if !cfg.principals.is_empty() => {
                return Err(AuthConfigError::Exclusive { method: "cryptosign" });
            }
            Some(procedure) => Source::Dynamic(procedure.clone()),
            None => {
                let mut principals = HashMap::new();
                let mut by_key: HashMap<[u8; 32], Vec<String>> = HashMap::new();
                for (authid, p) in &cfg.principals {
                    let mut keys = Vec::new();
                    for k in &p.authorized_keys {
                        let key = parse_pubkey(k).ok_or_else(|| AuthConfigError::AuthorizedKey {
                            authid: authid.clone(),
                            key: k.clone(),
                        })?;
                        by_key.entry(key.to_bytes()).or_default().push(authid.clone());
                        keys.push(key.to_bytes());
                    }
                    principals.insert(authid.clone(), Entry { role: p.role.clone(), keys });
                }
                Source::Static { principals, by_key }
            }
        };
        Ok(Method { availability: Availability::new(&cfg.transports, cfg.tls_only), source, router_key })
    }

    pub(crate) fn hello(&self, hello: &HelloAuth, ctx: &Context) -> Next<Pending> {
        let extra = &hello.authextra;
        let Some(pubkey) = extra.get("pubkey").and_then(Value::as_str).and_then(parse_pubkey) else {
            return Next::Skip(AuthError::denied("WAMP-Cryptosign needs authextra.pubkey: 32 bytes, hex"));
        };
        let prepared = match self.prepare(pubkey, extra, ctx) {
            Ok(p) => p,
            Err(e) => return Next::Abort(e),
        };
        match &self.source {
            Source::Static { principals, by_key } => {
                let key = pubkey.to_bytes();
                let authid = match hello.authid.as_deref() {
                    Some(a) => a.to_owned(),
                    None => match by_key.get(&key).map(Vec::as_slice) {
                        Some([one]) => one.clone(),
                        Some(_) => {
                            return Next::Abort(AuthError::denied(
                                "public key is authorized for several authids",
                            ));
                        }
                        None => {
                            return Next::Skip(AuthError::NoSuchPrincipal(
                                "no principal for this public key".into(),
                            ));
                        }
                    },
                };
                match principals.get(&authid) {
                    Some(entry) if entry.keys.contains(&key) => {
                        let role = entry.role.clone();
                        challenge(principal(authid, role, "static", Dict::new()), prepared)
                    }
                    Some(_) => Next::Abort(AuthError::denied(KEY_NOT_AUTHORIZED)),
                    None => Next::Skip(AuthError::no_principal(&authid)),
                }
            }
            Source::Dynamic(procedure) => {
                let call = dynamic::call(procedure, ctx, hello.authid.as_deref(), METHOD, extra, None);
                Next::Call(call, Pending::AwaitReply { authid: hello.authid.clone(), prepared })
            }
        }
    }

    /// Checks the channel binding request and answers a router challenge.
    fn prepare(&self, pubkey: VerifyingKey, extra: &Dict, ctx: &Context) -> Result<Prepared, AuthError> {
        let binding = match extra.get("channel_binding") {
            None | Some(Value::Null) => None,
            Some(Value::Str(kind)) if CHANNEL_BINDINGS.contains(&kind.as_str()) => {
                match ctx.transport.channel_bindings.get(kind) {
                    Some(data) if data.len() == 32 => Some((kind.clone(), data.to_vec())),
                    _ => {
                        return Err(AuthError::denied(format!(
                            "channel binding {kind} is not available here"
                        )));
                    }
                }
            }
            Some(_) => return Err(AuthError::denied("unsupported channel binding type")),
        };
        let mut router_extra = Dict::new();
        if let (Some(key), Some(challenge)) = (&self.router_key, extra.get("challenge")) {
            let challenge = challenge
                .as_str()
                .and_then(hex_array::<32>)
                .ok_or_else(|| AuthError::denied("authextra.challenge must be 32 bytes, hex"))?;
            let message = bound(&challenge, binding.as_ref());
            let signature = key.0.sign(&message);
            let mut signed = signature.to_bytes().to_vec();
            signed.extend_from_slice(&message);
            router_extra.insert("pubkey".into(), hex_encode(key.0.verifying_key().as_bytes()).into());
            router_extra.insert("signature".into(), hex_encode(&signed).into());
        }
        Ok(Prepared { pubkey, binding, router_extra })
    }
}

fn parse_pubkey(hex: &str) -> Option<VerifyingKey> {
    VerifyingKey::from_bytes(&hex_array::<32>(hex)?).ok()
}

/// `challenge`, XORed with the channel binding data when there is one.
fn bound(challenge: &[u8; 32], binding: Option<&(String, Vec<u8>)>) -> Vec<u8> {
    match binding {
        Some((_, data)) => xor(challenge, data),
        None => challenge.to_vec(),
    }
}

fn principal(authid: String, authrole: String, provider: &str, authextra: Dict) -> Principal {
    Principal { authid, authrole, authmethod: METHOD.into(), authprovider: provider.into(), authextra }
}

fn challenge(principal: Principal, prepared: Prepared) -> Next<Pending> {
    challenge_with(principal, prepared, random_bytes::<32>())
}

fn challenge_with(principal: Principal, prepared: Prepared, challenge: [u8; 32]) -> Next<Pending> {
    let mut extra = dict! { "challenge" => hex_encode(&challenge) };
    if let Some((kind, _)) = &prepared.binding {
        extra.insert("channel_binding".into(), kind.as_str().into());
    }
    extra.extend(prepared.router_extra);
    let expected = bound(&challenge, prepared.binding.as_ref());
    Next::Challenge(extra, Pending::Verify { principal, pubkey: prepared.pubkey, expected })
}

impl Pending {
    pub(crate) fn authenticate(self, msg: &Authenticate, _ctx: &Context) -> Next<Pending> {
        let Pending::Verify { principal, pubkey, expected } = self else {
            return Next::Abort(AuthError::Protocol(
                "AUTHENTICATE while the authenticator is deciding".into(),
            ));
        };
        match verify(&pubkey, &expected, &msg.signature) {
            Ok(()) => Next::Welcome(principal),
            Err(why) => Next::Abort(AuthError::denied(why)),
        }
    }

    pub(crate) fn reply(self, reply: AuthenticatorReply, ctx: &Context) -> Next<Pending> {
        let Pending::AwaitReply { authid, prepared } = self else {
            return Next::Abort(AuthError::failed("unexpected authenticator reply"));
        };
        match dynamic::parse_reply(reply, ctx)
            .and_then(|p| dynamic_principal(p, authid.as_deref(), &prepared))
        {
            Ok(principal) => challenge(principal, prepared),
            Err(e) => Next::Abort(e),
        }
    }
}

fn dynamic_principal(
    p: DynamicPrincipal,
    authid: Option<&str>,
    prepared: &Prepared,
) -> Result<Principal, AuthError> {
    let hello_key = hex_encode(prepared.pubkey.as_bytes());
    if let Some(key) = p.str("pubkey")
        && !key.eq_ignore_ascii_case(&hello_key)
    {
        return Err(AuthError::denied(KEY_NOT_AUTHORIZED));
    }
    let authid = p.authid_or(authid).unwrap_or(hello_key);
    Ok(principal(authid, p.role, "dynamic", p.extra))
}

/// Checks a signed message: hex of signature (64 bytes) + message (32 bytes), or the
/// bare signature, over `expected`.
fn verify(pubkey: &VerifyingKey, expected: &[u8], signed_hex: &str) -> Result<(), &'static str> {
    let signed = hex_decode(signed_hex).ok_or("signature is not hex")?;
    let (sig, message) = match signed.len() {
        96 => signed.split_at(64),
        64 => (signed.as_slice(), expected),
        _ => return Err("signed message must be 96 bytes (signature and message)"),
    };
    if message != expected {
        return Err("signed message does not match the challenge");
    }
    let sig = Signature::from_slice(sig).map_err(|_| "malformed signature")?;
    pubkey.verify_strict(expected, &sig).map_err(|_| "invalid signature")
}

/// Signs a cryptosign CHALLENGE as a client does (for tests and tools): hex of
/// signature + message, the challenge XORed with `channel_data` when given.
pub fn client_sign(seed: &[u8; 32], extra: &Dict, channel_data: Option<&[u8]>) -> Option<String> {
    let challenge = extra.get("challenge").and_then(Value::as_str).and_then(hex_array::<32>)?;
    let message = match channel_data {
        Some(data) => xor(&challenge, data),
        None => challenge.to_vec(),
    };
    let key = SigningKey::from_bytes(seed);
    let mut signed = key.sign(&message).to_bytes().to_vec();
    signed.extend_from_slice(&message);
    Some(hex_encode(&signed))
}

/// The public key (hex) of an Ed25519 seed.
pub fn public_key_hex(seed: &[u8; 32]) -> String {
    hex_encode(SigningKey::from_bytes(seed).verifying_key().as_bytes())
}

#[cfg(test)]
mod tests;
