//! SCRAM credentials: what the router stores per user (salt, KDF parameters,
//! `StoredKey`, `ServerKey`), and how a password becomes one.
//!
//! ```text
//! SaltedPassword = KDF(password, salt, iterations, memory)
//! ClientKey      = HMAC(SaltedPassword, "Client Key")
//! StoredKey      = SHA256(ClientKey)
//! ServerKey      = HMAC(SaltedPassword, "Server Key")
//! ```
//!
//! KDFs: `argon2id13` (the spec: the raw 32-byte Argon2id output, parallelism 1),
//! `pbkdf2` (PBKDF2-HMAC-SHA256, 32 bytes), and `argon2id-13`, Autobahn|Python's and
//! Crossbar.io's variant, where `SaltedPassword` is the *base64 text* (PHC alphabet,
//! no padding) of the Argon2id output. The router never runs the KDF during a
//! handshake: it only needs the stored keys.

use std::fmt;

use super::super::config::ScramPrincipal;
use super::super::secret::SecretError;

/// A SCRAM credential (configured, from an authenticator, or to derive) that
/// cannot be used; the message names the field, never a key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    /// `iterations` is 0.
    #[error("`iterations` must be positive")]
    Iterations,
    /// `memory` is missing or out of range for an Argon2 KDF.
    #[error("`memory` must be 8..={MAX_MEMORY_KIB} KiB for {kdf}")]
    Memory { kdf: String },
    /// The KDF is none of the supported ones.
    #[error("unknown kdf {0:?} (expected argon2id13, argon2id-13 or pbkdf2)")]
    UnknownKdf(String),
    /// A hex field is malformed; the message names it.
    #[error("{0}")]
    Field(&'static str),
    /// Argon2 refused the parameters or the input.
    #[error("{0}")]
    Argon2(String),
    /// A key of a static principal is not resolved.
    #[error(transparent)]
    Secret(#[from] SecretError),
}
use super::super::encoding::{b64_encode_no_pad, hex_array, hex_decode, hmac_sha256, pbkdf2_sha256, sha256};

/// The spec's Argon2id KDF name.
pub const KDF_ARGON2ID13: &str = "argon2id13";
/// Autobahn|Python's and Crossbar.io's Argon2id KDF name (base64 `SaltedPassword`).
pub const KDF_ARGON2ID_13_AUTOBAHN: &str = "argon2id-13";
/// PBKDF2-HMAC-SHA256.
pub const KDF_PBKDF2: &str = "pbkdf2";

/// Cost limits a credential must stay within (they bound the work a client is asked
/// to do, and catch typos).
const MAX_MEMORY_KIB: u32 = 4 * 1024 * 1024;

/// A user's stored SCRAM credential. `Debug` hides the keys.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// The KDF name, sent to the client as is.
    pub kdf: String,
    /// Iterations (time cost).
    pub iterations: u32,
    /// Argon2 memory cost in KiB (`None` for PBKDF2).
    pub memory: Option<u32>,
    /// The per-user salt.
    pub salt: Vec<u8>,
    /// `SHA256(ClientKey)`.
    pub stored_key: [u8; 32],
    /// `HMAC(SaltedPassword, "Server Key")`.
    pub server_key: [u8; 32],
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("kdf", &self.kdf)
            .field("iterations", &self.iterations)
            .field("memory", &self.memory)
            .finish_non_exhaustive()
    }
}

impl Credential {
    /// Checks and decodes the hex fields of a credential (static config or a dynamic
    /// authenticator's reply). Errors name the field, never a key.
    pub fn from_parts(
        kdf: &str,
        iterations: u32,
        memory: Option<u32>,
        salt_hex: &str,
        stored_key_hex: &str,
        server_key_hex: &str,
    ) -> Result<Credential, CredentialError> {
        check_params(kdf, iterations, memory)?;
        let salt = hex_decode(salt_hex)
            .filter(|s| !s.is_empty())
            .ok_or(CredentialError::Field("`salt` must be non-empty hex"))?;
        let stored_key = hex_array::<32>(stored_key_hex)
            .ok_or(CredentialError::Field("`stored_key` must be 32 bytes of hex"))?;
        let server_key = hex_array::<32>(server_key_hex)
            .ok_or(CredentialError::Field("`server_key` must be 32 bytes of hex"))?;
        let memory = if kdf == KDF_PBKDF2 { None } else { memory };
        Ok(Credential { kdf: kdf.to_owned(), iterations, memory, salt, stored_key, server_key })
    }

    /// From a static principal (secrets resolved).
    pub(crate) fn from_config(p: &ScramPrincipal) -> Result<Credential, CredentialError> {
        let stored = p.stored_key.require("stored_key")?;
        let server = p.server_key.require("server_key")?;
        Credential::from_parts(&p.kdf, p.iterations, p.memory, &p.salt, stored, server)
    }
}

fn check_params(kdf: &str, iterations: u32, memory: Option<u32>) -> Result<(), CredentialError> {
    if iterations == 0 {
        return Err(CredentialError::Iterations);
    }
    match kdf {
        KDF_PBKDF2 => Ok(()),
        KDF_ARGON2ID13 | KDF_ARGON2ID_13_AUTOBAHN => match memory {
            Some(m) if (8..=MAX_MEMORY_KIB).contains(&m) => Ok(()),
            _ => Err(CredentialError::Memory { kdf: kdf.to_owned() }),
        },
        other => Err(CredentialError::UnknownKdf(other.to_owned())),
    }
}

/// `SaltedPassword` for a KDF.
pub fn salted_password(
    password: &str,
    salt: &[u8],
    kdf: &str,
    iterations: u32,
    memory: Option<u32>,
) -> Result<Vec<u8>, CredentialError> {
    check_params(kdf, iterations, memory)?;
    if kdf == KDF_PBKDF2 {
        return Ok(pbkdf2_sha256(password.as_bytes(), salt, iterations, 32));
    }
    let params = argon2::Params::new(memory.unwrap_or(8), iterations, 1, Some(32))
        .map_err(|e| CredentialError::Argon2(e.to_string()))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut raw = [0u8; 32];
    argon
        .hash_password_into(password.as_bytes(), salt, &mut raw)
        .map_err(|e| CredentialError::Argon2(e.to_string()))?;
    Ok(if kdf == KDF_ARGON2ID_13_AUTOBAHN { b64_encode_no_pad(&raw).into_bytes() } else { raw.to_vec() })
}

/// `ClientKey` from `SaltedPassword`.
pub fn client_key(salted_password: &[u8]) -> [u8; 32] {
    hmac_sha256(salted_password, b"Client Key")
}

/// Derives the credential to store for `password` (for tools and tests).
pub fn derive_credential(
    password: &str,
    salt: &[u8],
    kdf: &str,
    iterations: u32,
    memory: Option<u32>,
) -> Result<Credential, CredentialError> {
    let salted = salted_password(password, salt, kdf, iterations, memory)?;
    Ok(Credential {
        kdf: kdf.to_owned(),
        iterations,
        memory: if kdf == KDF_PBKDF2 { None } else { memory },
        salt: salt.to_vec(),
        stored_key: sha256(&client_key(&salted)),
        server_key: hmac_sha256(&salted, b"Server Key"),
    })
}
