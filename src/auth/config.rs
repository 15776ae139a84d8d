//! Per-realm authentication configuration, as it appears under `[realms.auth]` in the
//! TOML file. Plain data with `serde`; [`super::Authenticator::new`] checks it and
//! turns it into the form the handshake uses.
//!
//! ```toml
//! [[realms]]
//! name = "realm1"
//!
//! [realms.auth]
//! challenge_timeout_ms = 30000        # AUTHENTICATE must arrive within this time
//! disclose_unknown_authids = false    # false: an unknown authid is answered like a
//!                                     # wrong secret; true: wamp.error.no_such_principal
//! authenticator_realm = "auth"        # dynamic authenticators (below) register there,
//! authenticator_role = "authenticator"  # by this role only (required with them)
//!
//! # Anonymous access: enabled by this table. With no [realms.auth] section at all a
//! # realm admits anonymous clients as role "anonymous"; once [realms.auth] is given,
//! # anonymous access is off unless this table is present.
//! [realms.auth.anonymous]
//! role = "anonymous"
//! transports = ["websocket", "rawsocket"]   # optional, every method: default all
//! tls_only = false                          # optional, every method
//!
//! [realms.auth.ticket.principals.joe]
//! role = "user"
//! ticket = "pbkdf2:sha256:100000:SALT_B64:HASH_B64"  # or plain text, or "$argon2id$..."
//!
//! # Tickets that are JWTs (see `auth::jwt`); other tickets go to the principals above.
//! [realms.auth.ticket.jwt]
//! jwks_file = "/etc/junction/jwks.json"  # re-read when its content changes
//! issuer = "https://idp.example.com/"    # optional: `iss` must equal it
//! audience = "junction"                  # optional: `aud` must contain it
//! authid_claim = "sub"                   # default "sub"; dotted paths reach into objects
//! authrole_claim = "role"                # optional; a string or a list of strings
//! default_role = "user"                  # optional: when the token has no role claim
//! allowed_roles = ["user", "admin"]      # optional: the only roles a token may get
//! leeway_s = 60                          # clock skew tolerated on exp and nbf
//! require_exp = true                     # refuse tokens without exp
//! [[realms.auth.ticket.jwt.keys]]        # static keys, besides or instead of jwks_file
//! alg = "EdDSA"                          # RS256..RS512, PS256..PS512, ES256, ES384, EdDSA
//! kid = "k1"                             # optional
//! pem_file = "/etc/junction/jwt-k1.pem"  # or pem = "-----BEGIN PUBLIC KEY-----..."
//!
//! [realms.auth.wampcra.principals.peter]
//! role = "user"
//! secret = { env = "PETER_SECRET" }   # any secret: "inline", { env = "VAR" }, { file = "path" }
//! salt = "salt123"                    # optional: then `secret` is the derived key,
//! iterations = 1000                   #   base64(PBKDF2-HMAC-SHA256(password, salt,
//! keylen = 32                         #   iterations, keylen)), as Autobahn's derive_key
//!
//! [realms.auth.cryptosign]
//! router_key = { file = "/etc/junction/router.key" }  # optional: hex Ed25519 seed for
//!                                                     # router authentication
//! [realms.auth.cryptosign.principals."client01@example.com"]
//! role = "device"
//! authorized_keys = ["545efb0a2192db8d43f118e9bf9aee081466e1ef36c708b96ee6f62dddad9122"]
//!
//! # WAMP-SCRAM, offered as "wamp-scram" (the spec's flow) and "scram" (Crossbar.io's
//! # and Autobahn's). The fields are those of autobahn.wamp.auth.derive_scram_credential.
//! [realms.auth.scram]
//! hide_unknown = true                 # mock CHALLENGE for unknown authids (default:
//!                                     # not disclose_unknown_authids)
//! [realms.auth.scram.principals.alice]
//! role = "user"
//! kdf = "argon2id13"                  # "argon2id13", "argon2id-13" (Autobahn) or "pbkdf2"
//! iterations = 4096
//! memory = 512                        # KiB, Argon2 only
//! salt = "hex"
//! stored_key = "hex"                  # secrets: may also be { env = ... } / { file = ... }
//! server_key = "hex"
//!
//! # Any method can be dynamic instead: a WAMP procedure decides (see `auth::dynamic`),
//! # registered by a client in `authenticator_realm` (default: this realm) whose
//! # authrole is `authenticator_role` (only that role may register the procedure,
//! # and the router calls its exact URI only).
//! [realms.auth.ticket]
//! authenticator = "com.example.authenticate"
//! ```
//!
//! A method table that is present enables the method; `authenticator` and
//! `principals` are mutually exclusive. `Debug` output never shows a secret.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::scram::CredentialError;
use super::secret::{Secret, SecretError};
use super::wampcra::SaltError;

/// A `[realms.auth]` section that cannot be used; the message names the key
/// relative to `[realms.auth]`, never a secret value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthConfigError {
    /// A method has both a dynamic authenticator and static principals.
    #[error("{method}: `authenticator` and `principals` are mutually exclusive")]
    Exclusive { method: &'static str },
    /// A secret is unresolved, unreadable or malformed.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// A WAMP-CRA principal's salt parameters are inconsistent.
    #[error("{key}: {source}")]
    Salt { key: String, source: SaltError },
    /// `cryptosign.router_key` is not an Ed25519 seed.
    #[error("cryptosign.router_key: must be 32 bytes of hex (an Ed25519 seed)")]
    RouterKey,
    /// A Cryptosign principal's authorized key does not parse.
    #[error("cryptosign.principals.{authid}.authorized_keys: bad key {key:?}")]
    AuthorizedKey { authid: String, key: String },
    /// A SCRAM principal's credential is invalid.
    #[error("scram.principals.{authid}: {source}")]
    Scram { authid: String, source: CredentialError },
    /// `ticket.jwt` is inconsistent, or its keys cannot be read or parsed (the
    /// message names the key and file, never key material).
    #[error("ticket.jwt{key}: {message}")]
    Jwt { key: String, message: String },
}

/// Which kind of transport a client came in on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    /// WebSocket (`ws://` or `wss://`).
    #[default]
    WebSocket,
    /// RawSocket over TCP, TLS or a Unix socket.
    RawSocket,
}

impl TransportKind {
    /// The name used in the configuration and in authenticator details.
    pub fn name(self) -> &'static str {
        match self {
            TransportKind::WebSocket => "websocket",
            TransportKind::RawSocket => "rawsocket",
        }
    }
}

/// The authentication settings of one realm.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Anonymous access; `None` refuses it.
    pub anonymous: Option<AnonymousConfig>,
    /// Ticket authentication.
    pub ticket: Option<TicketConfig>,
    /// WAMP-CRA.
    pub wampcra: Option<WampCraConfig>,
    /// WAMP-Cryptosign.
    pub cryptosign: Option<CryptosignConfig>,
    /// WAMP-SCRAM (both `wamp-scram` and Crossbar's `scram`).
    pub scram: Option<ScramConfig>,
    /// TLS client-certificate authentication (`tls`).
    #[serde(default)]
    pub tls: Option<super::tlscert::TlsAuthConfig>,
    /// Milliseconds between CHALLENGE and the latest acceptable AUTHENTICATE.
    #[serde(default = "default_challenge_timeout_ms")]
    pub challenge_timeout_ms: u64,
    /// The realm where dynamic authenticators are registered (default: the realm
    /// being joined — its authenticator client must then be able to join it, e.g. by
    /// a static method).
    #[serde(default)]
    pub authenticator_realm: Option<String>,
    /// The only authrole that may register this realm's authenticator procedures in
    /// `authenticator_realm`; required when a method has an `authenticator`.
    #[serde(default)]
    pub authenticator_role: Option<String>,
    /// False (the default): an unknown authid is answered like a wrong secret (a
    /// CHALLENGE, then `wamp.error.authentication_denied`), so authids cannot be
    /// probed; true: `wamp.error.no_such_principal` at HELLO.
    #[serde(default)]
    pub disclose_unknown_authids: bool,
}

fn default_challenge_timeout_ms() -> u64 {
    30_000
}

impl Default for AuthConfig {
    /// No `[realms.auth]` section: anonymous access only, as role `anonymous`.
    fn default() -> Self {
        AuthConfig {
            anonymous: Some(AnonymousConfig::default()),
            ticket: None,
            wampcra: None,
            cryptosign: None,
            scram: None,
            tls: None,
            challenge_timeout_ms: default_challenge_timeout_ms(),
            authenticator_realm: None,
            authenticator_role: None,
            disclose_unknown_authids: false,
        }
    }
}

impl AuthConfig {
    /// The dynamic authenticator procedures of the enabled methods.
    pub fn authenticators(&self) -> Vec<String> {
        [
            self.ticket.as_ref().and_then(|m| m.authenticator.clone()),
            self.wampcra.as_ref().and_then(|m| m.authenticator.clone()),
            self.cryptosign.as_ref().and_then(|m| m.authenticator.clone()),
            self.scram.as_ref().and_then(|m| m.authenticator.clone()),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    /// Replaces every secret that names an environment variable or a file with its
    /// value. Call once at configuration time, before [`super::Authenticator::new`].
    pub fn resolve_secrets(&mut self) -> Result<(), SecretError> {
        fn each<'a, P: 'a>(
            principals: impl Iterator<Item = (&'a String, &'a mut P)>,
            what: &str,
            f: impl Fn(&mut P) -> Vec<(&'static str, &mut Secret)>,
        ) -> Result<(), SecretError> {
            for (authid, p) in principals {
                for (field, secret) in f(p) {
                    *secret = secret.resolve().map_err(|e| e.at(format!("{what}.{authid}.{field}")))?;
                }
            }
            Ok(())
        }
        if let Some(t) = &mut self.ticket {
            each(t.principals.iter_mut(), "ticket.principals", |p| vec![("ticket", &mut p.ticket)])?;
        }
        if let Some(c) = &mut self.wampcra {
            each(c.principals.iter_mut(), "wampcra.principals", |p| vec![("secret", &mut p.secret)])?;
        }
        if let Some(c) = &mut self.cryptosign
            && let Some(k) = &mut c.router_key
        {
            *k = k.resolve().map_err(|e| e.at("cryptosign.router_key"))?;
        }
        if let Some(s) = &mut self.scram {
            each(s.principals.iter_mut(), "scram.principals", |p| {
                vec![("stored_key", &mut p.stored_key), ("server_key", &mut p.server_key)]
            })?;
        }
        Ok(())
    }
}

/// Anonymous access.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnonymousConfig {
    /// The role anonymous sessions get.
    #[serde(default = "default_anonymous_role")]
    pub role: String,
    /// Transports this method is offered on; empty means all.
    #[serde(default)]
    pub transports: Vec<TransportKind>,
    /// Offer this method only over TLS.
    #[serde(default)]
    pub tls_only: bool,
}

fn default_anonymous_role() -> String {
    "anonymous".into()
}

impl Default for AnonymousConfig {
    fn default() -> Self {
        AnonymousConfig { role: default_anonymous_role(), transports: Vec::new(), tls_only: false }
    }
}

/// Ticket authentication.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TicketConfig {
    /// Transports this method is offered on; empty means all.
    #[serde(default)]
    pub transports: Vec<TransportKind>,
    /// Offer this method only over TLS (the ticket travels in clear otherwise).
    #[serde(default)]
    pub tls_only: bool,
    /// Dynamic authenticator procedure, instead of `principals`.
    pub authenticator: Option<String>,
    /// Static principals by authid.
    #[serde(default)]
    pub principals: BTreeMap<String, TicketPrincipal>,
    /// Tickets that are JSON Web Tokens, verified against public keys
    /// (`[realms.auth.ticket.jwt]`); a ticket that is not a JWT is checked against
    /// `principals` (or given to `authenticator`).
    #[serde(default)]
    pub jwt: Option<JwtConfig>,
}

/// JWT tickets: where the verification keys are, which claims are checked and how
/// they map to authid and authrole. See [`super::jwt`].
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// A JSON Web Key Set file (`{"keys": [...]}`); re-read when its content changes.
    pub jwks_file: Option<PathBuf>,
    /// Static public keys, besides or instead of `jwks_file`.
    #[serde(default)]
    pub keys: Vec<JwtKeyConfig>,
    /// The required `iss` claim; unset: not checked.
    pub issuer: Option<String>,
    /// The audience that the `aud` claim (a string or a list) must contain; unset:
    /// not checked.
    pub audience: Option<String>,
    /// The claim that becomes the authid (a dotted path reaches into objects).
    #[serde(default = "default_authid_claim")]
    pub authid_claim: String,
    /// The claim that holds the authrole: a string, or a list of strings of which
    /// the first one in `allowed_roles` (or the first one) is taken.
    pub authrole_claim: Option<String>,
    /// The authrole when the token has no `authrole_claim`.
    pub default_role: Option<String>,
    /// If not empty, the only authroles a token may map to.
    #[serde(default)]
    pub allowed_roles: Vec<String>,
    /// Seconds of clock skew tolerated on `exp` and `nbf`.
    #[serde(default = "default_leeway_s")]
    pub leeway_s: u64,
    /// Refuse tokens without an `exp` claim.
    #[serde(default = "default_true")]
    pub require_exp: bool,
}

fn default_authid_claim() -> String {
    "sub".into()
}

fn default_leeway_s() -> u64 {
    60
}

fn default_true() -> bool {
    true
}

/// A static JWT verification key (`[[realms.auth.ticket.jwt.keys]]`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtKeyConfig {
    /// The algorithm tokens signed with this key use: `RS256`, `RS384`, `RS512`,
    /// `PS256`, `PS384`, `PS512`, `ES256`, `ES384` or `EdDSA`.
    pub alg: String,
    /// The key id (`kid` in the token's header); unset: tried for tokens without one.
    pub kid: Option<String>,
    /// The public key, PEM (`-----BEGIN PUBLIC KEY-----`), inline...
    pub pem: Option<String>,
    /// ...or in a file, re-read when its content changes.
    pub pem_file: Option<PathBuf>,
}

/// A static ticket principal.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TicketPrincipal {
    /// The role the principal gets.
    pub role: String,
    /// The ticket: plain text, `pbkdf2:sha256:...` or an Argon2 PHC string.
    #[serde(alias = "secret")]
    pub ticket: Secret,
}

/// WAMP-CRA.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WampCraConfig {
    /// Transports this method is offered on; empty means all.
    #[serde(default)]
    pub transports: Vec<TransportKind>,
    /// Offer this method only over TLS.
    #[serde(default)]
    pub tls_only: bool,
    /// Dynamic authenticator procedure, instead of `principals`.
    pub authenticator: Option<String>,
    /// Static principals by authid.
    #[serde(default)]
    pub principals: BTreeMap<String, WampCraPrincipal>,
}

/// A static WAMP-CRA principal.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WampCraPrincipal {
    /// The role the principal gets.
    pub role: String,
    /// The shared secret; with `salt`, the derived key (base64 text) the client computes.
    pub secret: Secret,
    /// PBKDF2 salt sent in the CHALLENGE (the secret is then salted).
    pub salt: Option<String>,
    /// PBKDF2 iterations (default 1000, Autobahn's default).
    pub iterations: Option<u32>,
    /// PBKDF2 derived key length in bytes (default 32).
    pub keylen: Option<u32>,
}

/// WAMP-Cryptosign.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CryptosignConfig {
    /// Transports this method is offered on; empty means all.
    #[serde(default)]
    pub transports: Vec<TransportKind>,
    /// Offer this method only over TLS.
    #[serde(default)]
    pub tls_only: bool,
    /// Dynamic authenticator procedure, instead of `principals`.
    pub authenticator: Option<String>,
    /// The router's Ed25519 seed (hex, 32 bytes), to answer a client's router challenge.
    pub router_key: Option<Secret>,
    /// Static principals by authid.
    #[serde(default)]
    pub principals: BTreeMap<String, CryptosignPrincipal>,
}

/// A static WAMP-Cryptosign principal.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CryptosignPrincipal {
    /// The role the principal gets.
    pub role: String,
    /// Ed25519 public keys (hex, 32 bytes) allowed to authenticate as this authid.
    pub authorized_keys: Vec<String>,
}

/// WAMP-SCRAM.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScramConfig {
    /// Transports this method is offered on; empty means all.
    #[serde(default)]
    pub transports: Vec<TransportKind>,
    /// Offer this method only over TLS.
    #[serde(default)]
    pub tls_only: bool,
    /// Dynamic authenticator procedure, instead of `principals`.
    pub authenticator: Option<String>,
    /// Answer an unknown authid with a mock CHALLENGE (stable salt per authid) and
    /// fail at AUTHENTICATE, so the existence of authids does not leak. Unset: as
    /// `[realms.auth] disclose_unknown_authids` says (hidden by default).
    #[serde(default)]
    pub hide_unknown: Option<bool>,
    /// Static principals by authid.
    #[serde(default)]
    pub principals: BTreeMap<String, ScramPrincipal>,
}

/// A static WAMP-SCRAM principal (a credential as `derive_scram_credential` makes it).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScramPrincipal {
    /// The role the principal gets.
    pub role: String,
    /// `argon2id13`, `argon2id-13` or `pbkdf2`.
    pub kdf: String,
    /// KDF iterations (time cost).
    pub iterations: u32,
    /// Argon2 memory cost in KiB.
    pub memory: Option<u32>,
    /// The per-user salt, hex.
    pub salt: String,
    /// `StoredKey`, hex.
    #[serde(alias = "stored-key")]
    pub stored_key: Secret,
    /// `ServerKey`, hex.
    #[serde(alias = "server-key")]
    pub server_key: Secret,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Realm {
        #[serde(default)]
        auth: AuthConfig,
    }

    #[test]
    fn absent_section_means_anonymous_only() {
        let r: Realm = toml::from_str("").expect("parses");
        assert_eq!(r.auth, AuthConfig::default());
        assert!(r.auth.anonymous.is_some());
    }

    #[test]
    fn present_section_turns_anonymous_off() {
        let r: Realm = toml::from_str("[auth.ticket.principals.joe]\nrole = \"user\"\nticket = \"x\"\n")
            .expect("parses");
        assert!(r.auth.anonymous.is_none());
        assert_eq!(r.auth.challenge_timeout_ms, 30_000);
        let joe = &r.auth.ticket.as_ref().expect("ticket").principals["joe"];
        assert_eq!(joe.ticket.expose(), Some("x"));
    }

    #[test]
    fn module_doc_example_parses() {
        let doc = include_str!("config.rs");
        let toml_text: String = doc
            .lines()
            .skip_while(|l| !l.starts_with("//! ```toml"))
            .skip(1)
            .take_while(|l| !l.starts_with("//! ```"))
            .map(|l| format!("{}\n", l.trim_start_matches("//!").trim_start()))
            .collect();
        #[derive(Deserialize)]
        struct File {
            realms: Vec<Realm>,
        }
        // The example sets [realms.auth.ticket] twice (static, then dynamic) to show both.
        let toml_text = toml_text.replace("[realms.auth.ticket]\nauthenticator", "#");
        let f: File = toml::from_str(&toml_text).expect("doc example parses");
        let auth = &f.realms[0].auth;
        assert!(auth.anonymous.is_some() && auth.wampcra.is_some() && auth.cryptosign.is_some());
        assert_eq!(auth.scram.as_ref().map(|s| s.principals.len()), Some(1));
    }

    #[test]
    fn debug_redacts_secrets() {
        let r: Realm = toml::from_str("[auth.wampcra.principals.p]\nrole = \"r\"\nsecret = \"hunter2\"\n")
            .expect("parses");
        let dbg = format!("{:?}", r.auth);
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert!(dbg.contains("<redacted>"));
    }

    #[test]
    fn unknown_keys_are_rejected() {
        assert!(toml::from_str::<Realm>("[auth]\nanonymus = true\n").is_err());
        assert!(toml::from_str::<Realm>("[auth.ticket]\ntransports = [\"carrier-pigeon\"]\n").is_err());
    }
}
