//! Secrets in the configuration: a value that never shows in `Debug` output, may
//! come from the environment or a file, and — for tickets — may be stored hashed.
//!
//! In TOML a secret is either a string or a table naming where to read it:
//!
//! ```toml
//! ticket = "plain text or a hash"
//! ticket = { env = "JOE_TICKET" }            # read from an environment variable
//! ticket = { file = "/run/secrets/joe" }     # read from a file (one trailing newline dropped)
//! ```
//!
//! Stored ticket formats ([`StoredTicket`]): plain text, `pbkdf2:sha256:ITER:SALT_B64:HASH_B64`
//! (standard base64), or an Argon2 PHC string (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`).
//! [`hash_ticket_pbkdf2`] and [`hash_ticket_argon2`] produce the hashed forms.

use std::fmt;
use std::path::PathBuf;

use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use serde::Deserialize;

/// A secret that cannot be read, was never resolved, or a stored ticket that does
/// not parse. Messages name the variable, file or key, never the value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// The environment variable is unset or not Unicode.
    #[error("secret from environment variable {name}: {reason}")]
    Env { name: String, reason: String },
    /// The file cannot be read.
    #[error("secret from file {}: {reason}", path.display())]
    File { path: PathBuf, reason: String },
    /// The secret still names a variable or file (`what` is its key).
    #[error("{what}: secret not resolved (call resolve_secrets first)")]
    Unresolved { what: String },
    /// A `pbkdf2:sha256:` ticket is malformed; the message says how.
    #[error("{0}")]
    Pbkdf2Ticket(&'static str),
    /// An `$argon2` ticket is not a valid PHC string.
    #[error("argon2 ticket: {0}")]
    Argon2Ticket(String),
    /// Argon2 refused to hash.
    #[error("argon2: {0}")]
    Hash(String),
    /// The secret at `key` of the configuration is unusable.
    #[error("{key}: {source}")]
    At { key: String, source: Box<SecretError> },
}

impl SecretError {
    /// This error, located at configuration key `key`.
    pub fn at(self, key: impl Into<String>) -> SecretError {
        SecretError::At { key: key.into(), source: Box::new(self) }
    }
}

use super::encoding::{b64_decode_lenient, b64_encode, ct_eq, ct_eq_secret, pbkdf2_sha256, random_bytes};

/// A secret value, or where to read it from. `Debug` never prints the value.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "SecretRepr")]
pub struct Secret(Source);

#[derive(Clone, PartialEq, Eq)]
enum Source {
    Value(String),
    Env(String),
    File(PathBuf),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum SecretRepr {
    Value(String),
    Env { env: String },
    File { file: PathBuf },
}

impl From<SecretRepr> for Secret {
    fn from(r: SecretRepr) -> Self {
        Secret(match r {
            SecretRepr::Value(v) => Source::Value(v),
            SecretRepr::Env { env } => Source::Env(env),
            SecretRepr::File { file } => Source::File(file),
        })
    }
}

impl Secret {
    /// A secret given inline.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(Source::Value(value.into()))
    }

    /// Reads the secret from the environment variable or file it names (configuration
    /// time only: this is the one place in `auth` that does I/O). Inline secrets are
    /// returned as they are. The error names the variable or file, never the value.
    pub fn resolve(&self) -> Result<Secret, SecretError> {
        match &self.0 {
            Source::Value(_) => Ok(self.clone()),
            Source::Env(name) => std::env::var(name)
                .map(Secret::new)
                .map_err(|e| SecretError::Env { name: name.clone(), reason: e.to_string() }),
            Source::File(path) => std::fs::read_to_string(path)
                .map(|s| {
                    let s = s.strip_suffix('\n').unwrap_or(&s);
                    Secret::new(s.strip_suffix('\r').unwrap_or(s))
                })
                .map_err(|e| SecretError::File { path: path.clone(), reason: e.to_string() }),
        }
    }

    /// The value, once resolved; `None` while it still names an env var or file.
    pub fn expose(&self) -> Option<&str> {
        match &self.0 {
            Source::Value(v) => Some(v),
            _ => None,
        }
    }

    /// The resolved value, or an error naming `what` for a secret never resolved.
    pub(crate) fn require(&self, what: &str) -> Result<&str, SecretError> {
        self.expose().ok_or_else(|| SecretError::Unresolved { what: what.to_owned() })
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Source::Value(_) => f.write_str("Secret(<redacted>)"),
            Source::Env(name) => write!(f, "Secret(env:{name})"),
            Source::File(path) => write!(f, "Secret(file:{})", path.display()),
        }
    }
}

/// A ticket as stored in the configuration.
#[derive(Clone, PartialEq, Eq)]
pub enum StoredTicket {
    /// Plain text, compared in constant time.
    Plain(String),
    /// PBKDF2-HMAC-SHA256.
    Pbkdf2 {
        /// Iteration count.
        iterations: u32,
        /// Salt bytes.
        salt: Vec<u8>,
        /// Expected derived key; its length is the derived key length.
        hash: Vec<u8>,
    },
    /// An Argon2 PHC string (any variant the `argon2` crate verifies).
    Argon2(String),
}

/// Prefix of the PBKDF2 stored-ticket format.
pub const PBKDF2_PREFIX: &str = "pbkdf2:sha256:";

impl StoredTicket {
    /// Parses a stored ticket; errors describe the format problem, never the value.
    pub fn parse(s: &str) -> Result<StoredTicket, SecretError> {
        if let Some(rest) = s.strip_prefix(PBKDF2_PREFIX) {
            let mut parts = rest.split(':');
            let (Some(iter), Some(salt), Some(hash), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err(SecretError::Pbkdf2Ticket(
                    "pbkdf2 ticket must be pbkdf2:sha256:ITERATIONS:SALT_B64:HASH_B64",
                ));
            };
            let iterations = iter.parse::<u32>().ok().filter(|&i| i > 0);
            let iterations = iterations
                .ok_or(SecretError::Pbkdf2Ticket("pbkdf2 ticket: iterations must be a positive integer"))?;
            let salt = b64_decode_lenient(salt)
                .ok_or(SecretError::Pbkdf2Ticket("pbkdf2 ticket: salt is not base64"))?;
            let hash = b64_decode_lenient(hash)
                .ok_or(SecretError::Pbkdf2Ticket("pbkdf2 ticket: hash is not base64"))?;
            if hash.len() < 16 || hash.len() > 64 {
                return Err(SecretError::Pbkdf2Ticket("pbkdf2 ticket: hash must be 16 to 64 bytes"));
            }
            Ok(StoredTicket::Pbkdf2 { iterations, salt, hash })
        } else if s.starts_with("$argon2") {
            argon2::PasswordHash::new(s).map_err(|e| SecretError::Argon2Ticket(e.to_string()))?;
            Ok(StoredTicket::Argon2(s.to_owned()))
        } else {
            Ok(StoredTicket::Plain(s.to_owned()))
        }
    }

    /// True when `presented` matches. Plain tickets compare in constant time; hashed
    /// ones cost one run of their KDF.
    pub fn verify(&self, presented: &str) -> bool {
        match self {
            StoredTicket::Plain(expected) => ct_eq_secret(expected.as_bytes(), presented.as_bytes()),
            StoredTicket::Pbkdf2 { iterations, salt, hash } => {
                ct_eq(&pbkdf2_sha256(presented.as_bytes(), salt, *iterations, hash.len()), hash)
            }
            StoredTicket::Argon2(phc) => argon2::PasswordHash::new(phc)
                .is_ok_and(|h| Argon2::default().verify_password(presented.as_bytes(), &h).is_ok()),
        }
    }
}

impl fmt::Debug for StoredTicket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self {
            StoredTicket::Plain(_) => "plain",
            StoredTicket::Pbkdf2 { .. } => "pbkdf2",
            StoredTicket::Argon2(_) => "argon2",
        };
        write!(f, "StoredTicket({kind}, <redacted>)")
    }
}

/// Hashes a ticket into the `pbkdf2:sha256:...` format with a random 16-byte salt.
pub fn hash_ticket_pbkdf2(ticket: &str, iterations: u32) -> String {
    let salt = random_bytes::<16>();
    let hash = pbkdf2_sha256(ticket.as_bytes(), &salt, iterations.max(1), 32);
    format!("{PBKDF2_PREFIX}{}:{}:{}", iterations.max(1), b64_encode(&salt), b64_encode(&hash))
}

/// Hashes a ticket into an Argon2id PHC string with the `argon2` crate's default
/// parameters (19 MiB, 2 passes) and a random 16-byte salt.
pub fn hash_ticket_argon2(ticket: &str) -> Result<String, SecretError> {
    hash_ticket_argon2_with(ticket, argon2::Params::default())
}

/// [`hash_ticket_argon2`] with explicit Argon2id parameters.
pub fn hash_ticket_argon2_with(ticket: &str, params: argon2::Params) -> Result<String, SecretError> {
    let hasher = Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    hasher
        .hash_password_with_salt(ticket.as_bytes(), &random_bytes::<16>())
        .map(|h| h.to_string())
        .map_err(|e| SecretError::Hash(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `hashlib.pbkdf2_hmac("sha256", b"secret!!!", b"0123456789abcdef", 1000, 32)`,
    /// computed with Python's hashlib.
    const PY_PBKDF2: &str =
        "pbkdf2:sha256:1000:MDEyMzQ1Njc4OWFiY2RlZg==:1LVPUemxTRag+HBurfYT0muNL3xFuqj/1K7F5F4WuwY=";
    /// `argon2.low_level.hash_secret(b"secret!!!", b"somesaltsomesalt", time_cost=2,
    /// memory_cost=64, parallelism=1, hash_len=32, type=Type.ID)`, from Python's argon2-cffi.
    const PY_ARGON2: &str =
        "$argon2id$v=19$m=64,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$aPw1Cw5Z97CfgieR+anTHAnoL/iat/1EkcGU++G9mgs";

    #[test]
    fn debug_redacts() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
        let t = StoredTicket::parse("hunter2").map(|t| format!("{t:?}"));
        assert_eq!(t.as_deref(), Ok("StoredTicket(plain, <redacted>)"));
    }

    #[test]
    fn deserializes_inline_env_and_file() {
        #[derive(Deserialize)]
        struct T {
            a: Secret,
            b: Secret,
            c: Secret,
        }
        let t: T =
            toml::from_str("a = \"x\"\nb = { env = \"JUNCTION_TEST_NOPE\" }\nc = { file = \"/nope\" }")
                .expect("parses");
        assert_eq!(t.a.expose(), Some("x"));
        assert_eq!(format!("{:?}", t.b), "Secret(env:JUNCTION_TEST_NOPE)");
        assert!(t.b.resolve().is_err());
        assert!(t.c.resolve().is_err_and(|e| e.to_string().contains("/nope")));
    }

    #[test]
    fn resolves_from_file() {
        let path = std::env::temp_dir().join(format!("junction-secret-{}", std::process::id()));
        std::fs::write(&path, "s3cret\n").expect("write temp file");
        let s: Secret = Secret(Source::File(path.clone()));
        let resolved = s.resolve();
        std::fs::remove_file(&path).ok();
        assert_eq!(resolved.ok().as_ref().and_then(Secret::expose), Some("s3cret"));
    }

    #[test]
    fn plain_ticket() {
        let t = StoredTicket::parse("secret!!!").expect("plain");
        assert!(t.verify("secret!!!"));
        assert!(!t.verify("secret!!"));
        assert!(!t.verify(""));
    }

    #[test]
    fn pbkdf2_ticket_cross_checked_with_python() {
        let t = StoredTicket::parse(PY_PBKDF2).expect("pbkdf2");
        assert!(t.verify("secret!!!"));
        assert!(!t.verify("secret!!"));
        let own = StoredTicket::parse(&hash_ticket_pbkdf2("abc", 10)).expect("own format parses");
        assert!(own.verify("abc") && !own.verify("abd"));
    }

    #[test]
    fn argon2_ticket_cross_checked_with_python() {
        let t = StoredTicket::parse(PY_ARGON2).expect("argon2");
        assert!(t.verify("secret!!!"));
        assert!(!t.verify("secret!!"));
        let params = argon2::Params::new(64, 1, 1, None).expect("params");
        let own = hash_ticket_argon2_with("abc", params).expect("hash");
        let own = StoredTicket::parse(&own).expect("own format parses");
        assert!(own.verify("abc") && !own.verify("abd"));
    }

    #[test]
    fn malformed_stored_tickets_are_config_errors() {
        assert!(StoredTicket::parse("pbkdf2:sha256:x:AA==:AA==").is_err());
        assert!(StoredTicket::parse("pbkdf2:sha256:10:AA==").is_err());
        assert!(StoredTicket::parse("pbkdf2:sha256:10:!!:AAAAAAAAAAAAAAAAAAAAAA==").is_err());
        assert!(StoredTicket::parse("$argon2id$garbage").is_err());
    }
}
