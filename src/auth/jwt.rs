//! JSON Web Tokens as tickets (`[realms.auth.ticket.jwt]`): the client sends a signed
//! JWT as its ticket; the router verifies the signature with a public key from a JWKS
//! file or from static PEM keys, checks `exp`, `nbf`, `iss` and `aud`, and maps claims
//! to the session's authid and authrole.
//!
//! Only asymmetric algorithms are accepted (RS256/384/512, PS256/384/512, ES256,
//! ES384, EdDSA); each key has one algorithm (its JWK `alg`, its key type's usual
//! one, or the configured `alg`), and a token is checked only with keys of its
//! header's `alg` — and, when the header names a `kid`, only with that key.
//!
//! The key files are read when the realm's authentication is built (a bad file is a
//! configuration error) and again by [`Jwt::refresh`] whenever their content
//! changes (the configuration watcher calls it); a file that turns bad leaves the
//! keys as they were. Refusals say why (expired, wrong issuer, signature does not
//! verify ...) but never carry key material.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, RwLock};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, Validation};
use serde_json::Value as Json;

use super::config::{AuthConfigError, JwtConfig, JwtKeyConfig};
use super::error::AuthError;
use super::principal::MAX_AUTHID_LEN;

/// The most keys one realm accepts (a token without `kid` may be tried against each
/// key of its algorithm).
pub const MAX_KEYS: usize = 64;
/// The largest accepted `leeway_s`.
pub const MAX_LEEWAY_S: u64 = 3600;
/// The longest token looked at, in bytes.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// The verifier of one realm's JWT tickets.
pub(crate) struct Jwt {
    rules: Rules,
    jwks_file: Option<PathBuf>,
    static_keys: Vec<JwtKeyConfig>,
    loaded: RwLock<Loaded>,
}

/// The claim checks and mappings.
#[derive(Debug)]
struct Rules {
    issuer: Option<String>,
    audience: Option<String>,
    authid_claim: String,
    authrole_claim: Option<String>,
    default_role: Option<String>,
    allowed_roles: Vec<String>,
    leeway_s: u64,
    require_exp: bool,
}

/// The keys in use and the file contents they came from.
struct Loaded {
    keys: Arc<Vec<Key>>,
    /// Each key file's content as last read, in the order [`Jwt::files`] lists them.
    contents: Vec<Option<Vec<u8>>>,
}

struct Key {
    kid: Option<String>,
    alg: Algorithm,
    key: DecodingKey,
    validation: Validation,
}

/// What [`Jwt::refresh`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Refresh {
    /// No key file changed since the keys were last read (or last refused).
    Unchanged,
    /// The keys were read again: this many are in use now.
    Reloaded(usize),
    /// A key file changed but cannot be used; the previous keys stay.
    Failed(String),
}

impl std::fmt::Debug for Jwt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys = self.keys();
        let keys: Vec<String> =
            keys.iter().map(|k| format!("{:?}/{}", k.alg, k.kid.as_deref().unwrap_or("-"))).collect();
        f.debug_struct("Jwt")
            .field("rules", &self.rules)
            .field("jwks_file", &self.jwks_file)
            .field("keys", &keys)
            .finish()
    }
}

fn err(key: impl Into<String>, message: impl Into<String>) -> AuthConfigError {
    AuthConfigError::Jwt { key: key.into(), message: message.into() }
}

impl Jwt {
    /// Checks the configuration and reads the keys.
    pub(crate) fn new(cfg: &JwtConfig) -> Result<Jwt, AuthConfigError> {
        if cfg.jwks_file.is_none() && cfg.keys.is_empty() {
            return Err(err("", "needs `jwks_file` or at least one [[keys]] entry"));
        }
        if cfg.authid_claim.is_empty() {
            return Err(err(".authid_claim", "must not be empty"));
        }
        if cfg.authrole_claim.as_deref().is_some_and(str::is_empty) {
            return Err(err(".authrole_claim", "must not be empty"));
        }
        if cfg.authrole_claim.is_none() && cfg.default_role.is_none() {
            return Err(err("", "needs `authrole_claim` or `default_role` (or both)"));
        }
        if let Some(role) = &cfg.default_role
            && !cfg.allowed_roles.is_empty()
            && !cfg.allowed_roles.contains(role)
        {
            return Err(err(".default_role", format!("{role:?} is not in allowed_roles")));
        }
        if cfg.leeway_s > MAX_LEEWAY_S {
            return Err(err(".leeway_s", format!("at most {MAX_LEEWAY_S} seconds")));
        }
        for (i, k) in cfg.keys.iter().enumerate() {
            if k.pem.is_some() == k.pem_file.is_some() {
                return Err(err(format!(".keys[{i}]"), "needs exactly one of `pem` and `pem_file`"));
            }
            parse_alg(&k.alg).map_err(|m| err(format!(".keys[{i}].alg"), m))?;
        }
        let jwt = Jwt {
            rules: Rules {
                issuer: cfg.issuer.clone(),
                audience: cfg.audience.clone(),
                authid_claim: cfg.authid_claim.clone(),
                authrole_claim: cfg.authrole_claim.clone(),
                default_role: cfg.default_role.clone(),
                allowed_roles: cfg.allowed_roles.clone(),
                leeway_s: cfg.leeway_s,
                require_exp: cfg.require_exp,
            },
            jwks_file: cfg.jwks_file.clone(),
            static_keys: cfg.keys.clone(),
            loaded: RwLock::new(Loaded { keys: Arc::new(Vec::new()), contents: Vec::new() }),
        };
        let contents = jwt.read_files().map_err(|(key, message)| err(key, message))?;
        let keys = jwt.parse(&contents).map_err(|(key, message)| err(key, message))?;
        *jwt.loaded.write().unwrap_or_else(|e| e.into_inner()) =
            Loaded { keys: Arc::new(keys), contents: contents.into_iter().map(Some).collect() };
        Ok(jwt)
    }

    /// The key files: the JWKS file first, then each `pem_file`, with their
    /// configuration keys.
    fn files(&self) -> Vec<(String, &PathBuf)> {
        let mut files: Vec<(String, &PathBuf)> =
            self.jwks_file.iter().map(|p| (".jwks_file".to_owned(), p)).collect();
        for (i, k) in self.static_keys.iter().enumerate() {
            if let Some(p) = &k.pem_file {
                files.push((format!(".keys[{i}].pem_file"), p));
            }
        }
        files
    }

    /// The key files' paths, for diagnostics.
    pub(crate) fn key_files(&self) -> Vec<PathBuf> {
        self.files().into_iter().map(|(_, p)| p.clone()).collect()
    }

    fn read_files(&self) -> Result<Vec<Vec<u8>>, (String, String)> {
        self.files()
            .into_iter()
            .map(|(key, path)| {
                std::fs::read(path).map_err(|e| (key, format!("cannot read {}: {e}", path.display())))
            })
            .collect()
    }

    /// Builds the keys from the files' contents (in [`Jwt::files`] order) and the
    /// inline PEM keys.
    fn parse(&self, contents: &[Vec<u8>]) -> Result<Vec<Key>, (String, String)> {
        let mut contents = contents.iter();
        let mut keys = Vec::new();
        if let Some(path) = &self.jwks_file {
            let text = contents.next().map(Vec::as_slice).unwrap_or_default();
            let at = |m: String| (".jwks_file".to_owned(), format!("{}: {m}", path.display()));
            let set: JwkSet =
                serde_json::from_slice(text).map_err(|e| at(format!("not a JSON Web Key Set: {e}")))?;
            for (i, jwk) in set.keys.iter().enumerate() {
                let kid = jwk.common.key_id.clone();
                let name = match &kid {
                    Some(kid) => format!("key {i} (kid {kid:?})"),
                    None => format!("key {i}"),
                };
                if let Some(key) = jwk_key(jwk).map_err(|m| at(format!("{name}: {m}")))? {
                    keys.push(key);
                }
            }
            if keys.is_empty() {
                return Err(at("no signature verification key in the set".into()));
            }
        }
        for (i, k) in self.static_keys.iter().enumerate() {
            let what = format!(".keys[{i}]");
            let alg = parse_alg(&k.alg).map_err(|m| (format!("{what}.alg"), m))?;
            let pem = match (&k.pem, &k.pem_file) {
                (Some(pem), _) => pem.as_bytes(),
                (None, Some(_)) => contents.next().map(Vec::as_slice).unwrap_or_default(),
                (None, None) => return Err((what, "needs `pem` or `pem_file`".into())),
            };
            let key = pem_key(alg, pem).map_err(|m| (what.clone(), m))?;
            keys.push(Key::new(k.kid.clone(), alg, key).map_err(|m| (what, m))?);
        }
        if keys.len() > MAX_KEYS {
            return Err((String::new(), format!("{} keys; at most {MAX_KEYS} are accepted", keys.len())));
        }
        Ok(keys)
    }

    fn keys(&self) -> Arc<Vec<Key>> {
        self.loaded.read().unwrap_or_else(|e| e.into_inner()).keys.clone()
    }

    /// Re-reads the key files and, if any changed, the keys. A file that cannot be
    /// read or parsed leaves the keys in use (and is reported once per content).
    pub(crate) fn refresh(&self) -> Refresh {
        let files = self.files();
        if files.is_empty() {
            return Refresh::Unchanged;
        }
        let now: Vec<Option<Vec<u8>>> = files.iter().map(|(_, p)| std::fs::read(p).ok()).collect();
        let mut loaded = self.loaded.write().unwrap_or_else(|e| e.into_inner());
        if now == loaded.contents {
            return Refresh::Unchanged;
        }
        loaded.contents = now.clone();
        if let Some(i) = now.iter().position(Option::is_none) {
            let (key, path) = &files[i];
            return Refresh::Failed(format!("ticket.jwt{key}: cannot read {}", path.display()));
        }
        let now: Vec<Vec<u8>> = now.into_iter().flatten().collect();
        match self.parse(&now) {
            Ok(keys) => {
                let n = keys.len();
                loaded.keys = Arc::new(keys);
                Refresh::Reloaded(n)
            }
            Err((key, message)) => Refresh::Failed(format!("ticket.jwt{key}: {message}")),
        }
    }

    /// Verifies `token` at `now_ms` (Unix milliseconds) and maps its claims.
    pub(crate) fn verify(&self, token: &str, now_ms: u64) -> Result<Identity, AuthError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(refused("token too long"));
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| refused("malformed token"))?;
        let keys = self.keys();
        let of_alg: Vec<&Key> = keys.iter().filter(|k| k.alg == header.alg).collect();
        if of_alg.is_empty() {
            return Err(refused(format!("no key for algorithm {:?}", header.alg)));
        }
        // A token that names its key is checked with that key (or, if no key has that
        // id, with the keys that have none); one that does not, with every key of its
        // algorithm.
        let candidates: Vec<&Key> = match &header.kid {
            Some(kid) => {
                let named: Vec<&Key> =
                    of_alg.iter().copied().filter(|k| k.kid.as_deref() == Some(kid.as_str())).collect();
                if named.is_empty() {
                    of_alg.into_iter().filter(|k| k.kid.is_none()).collect()
                } else {
                    named
                }
            }
            None => of_alg,
        };
        if candidates.is_empty() {
            return Err(refused("unknown key id"));
        }
        let mut last = refused("signature does not verify");
        for key in candidates {
            match jsonwebtoken::decode::<BTreeMap<String, Json>>(token, &key.key, &key.validation) {
                Ok(data) => return self.rules.check(&data.claims, now_ms),
                Err(e) => {
                    use jsonwebtoken::errors::ErrorKind as K;
                    last = match e.kind() {
                        K::InvalidSignature => refused("signature does not verify"),
                        K::InvalidAlgorithm => refused("algorithm not accepted"),
                        K::Base64(_) | K::Json(_) | K::Utf8(_) | K::InvalidToken => {
                            return Err(refused("malformed token"));
                        }
                        _ => refused("token not accepted"),
                    };
                }
            }
        }
        Err(last)
    }
}

/// A verified token's identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Identity {
    pub(crate) authid: String,
    pub(crate) authrole: String,
}

/// The refusal of a token: `wamp.error.authentication_denied`, like a wrong ticket.
fn refused(why: impl std::fmt::Display) -> AuthError {
    AuthError::denied(format!("invalid token: {why}"))
}

/// True when `ticket` has the shape of a JWS compact serialization: three base64url
/// parts, the first of them a JSON header with `alg`. Other tickets are checked as
/// ordinary ones.
pub(crate) fn looks_like_jwt(ticket: &str) -> bool {
    let b64url =
        |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    let parts: Vec<&str> = ticket.split('.').collect();
    ticket.len() <= MAX_TOKEN_LEN
        && parts.len() == 3
        && b64url(parts[0])
        && b64url(parts[1])
        && (parts[2].is_empty() || b64url(parts[2]))
        && jsonwebtoken::decode_header(ticket).is_ok()
}

impl Key {
    fn new(kid: Option<String>, alg: Algorithm, key: DecodingKey) -> Result<Key, String> {
        // Build a verifier once: a key that does not parse for its algorithm is a
        // configuration error now, not a refusal of every token later.
        let provider = jsonwebtoken::crypto::CryptoProvider::try_get_default()
            .ok_or_else(|| "no JWT crypto provider".to_owned())?;
        (provider.verifier_factory)(&alg, &key).map_err(|_| format!("not a valid {alg:?} public key"))?;
        let mut validation = Validation::new(alg);
        // exp, nbf, iss and aud are checked by `Rules::check` against the handshake's clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        Ok(Key { kid, alg, key, validation })
    }
}

fn parse_alg(name: &str) -> Result<Algorithm, String> {
    let alg = Algorithm::from_str(name).map_err(|_| format!("unknown algorithm {name:?}"))?;
    if alg.family() == AlgorithmFamily::Hmac {
        return Err(format!("{name}: symmetric (HMAC) keys are not accepted"));
    }
    Ok(alg)
}

fn pem_key(alg: Algorithm, pem: &[u8]) -> Result<DecodingKey, String> {
    let key = match alg.family() {
        AlgorithmFamily::Rsa => DecodingKey::from_rsa_pem(pem),
        AlgorithmFamily::Ec => DecodingKey::from_ec_pem(pem),
        AlgorithmFamily::Ed => DecodingKey::from_ed_pem(pem),
        AlgorithmFamily::Hmac => return Err("symmetric (HMAC) keys are not accepted".into()),
    };
    key.map_err(|_| format!("not a PEM {alg:?} public key"))
}

/// The key of one JWK; `None` for an encryption key (skipped).
fn jwk_key(jwk: &jsonwebtoken::jwk::Jwk) -> Result<Option<Key>, String> {
    if jwk.common.public_key_use == Some(PublicKeyUse::Encryption) {
        return Ok(None);
    }
    let inferred = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => Algorithm::ES256,
            EllipticCurve::P384 => Algorithm::ES384,
            _ => return Err("unsupported elliptic curve".into()),
        },
        AlgorithmParameters::OctetKeyPair(p) => match p.curve {
            EllipticCurve::Ed25519 => Algorithm::EdDSA,
            _ => return Err("unsupported curve".into()),
        },
        AlgorithmParameters::OctetKey(_) => return Err("symmetric keys are not accepted".into()),
        _ => return Err("unsupported key type".into()),
    };
    let alg = match jwk.common.key_algorithm {
        None => inferred,
        Some(KeyAlgorithm::RSA1_5 | KeyAlgorithm::RSA_OAEP | KeyAlgorithm::RSA_OAEP_256) => return Ok(None),
        Some(ka) => {
            let alg = Algorithm::try_from(ka).map_err(|_| format!("unsupported algorithm {ka}"))?;
            if alg.family() == AlgorithmFamily::Hmac {
                return Err("symmetric keys are not accepted".into());
            }
            if alg.family() != inferred.family() || (alg.family() == AlgorithmFamily::Ec && alg != inferred) {
                return Err(format!("algorithm {ka} does not fit the key type"));
            }
            alg
        }
    };
    let key = DecodingKey::from_jwk(jwk).map_err(|_| "malformed key parameters".to_owned())?;
    Key::new(jwk.common.key_id.clone(), alg, key).map(Some)
}

/// A claim by name; a name with dots that is not itself a claim is a path into
/// nested objects (`realm_access.roles`).
fn claim<'a>(claims: &'a BTreeMap<String, Json>, name: &str) -> Option<&'a Json> {
    if let Some(v) = claims.get(name) {
        return Some(v);
    }
    let mut parts = name.split('.');
    let mut v = claims.get(parts.next()?)?;
    for part in parts {
        v = v.as_object()?.get(part)?;
    }
    Some(v)
}

/// A NumericDate claim (seconds, possibly fractional); `Err` if present but not a number.
fn numeric_date(claims: &BTreeMap<String, Json>, name: &str) -> Result<Option<f64>, AuthError> {
    match claims.get(name) {
        None | Some(Json::Null) => Ok(None),
        Some(v) => v.as_f64().map(Some).ok_or_else(|| refused(format!("malformed {name} claim"))),
    }
}

impl Rules {
    fn check(&self, claims: &BTreeMap<String, Json>, now_ms: u64) -> Result<Identity, AuthError> {
        let now = now_ms as f64 / 1000.0;
        let leeway = self.leeway_s as f64;
        match numeric_date(claims, "exp")? {
            Some(exp) if now > exp + leeway => return Err(refused("token expired")),
            None if self.require_exp => return Err(refused("token has no exp claim")),
            _ => {}
        }
        if let Some(nbf) = numeric_date(claims, "nbf")?
            && nbf > now + leeway
        {
            return Err(refused("token not yet valid"));
        }
        if let Some(issuer) = &self.issuer
            && claims.get("iss").and_then(Json::as_str) != Some(issuer.as_str())
        {
            return Err(refused("wrong issuer"));
        }
        if let Some(audience) = &self.audience {
            let ok = match claims.get("aud") {
                Some(Json::String(a)) => a == audience,
                Some(Json::Array(l)) => l.iter().any(|a| a.as_str() == Some(audience.as_str())),
                _ => false,
            };
            if !ok {
                return Err(refused("wrong audience"));
            }
        }
        let authid = match claim(claims, &self.authid_claim) {
            Some(Json::String(s)) if !s.is_empty() && s.len() <= MAX_AUTHID_LEN => s.clone(),
            Some(Json::Number(n)) => n.to_string(),
            _ => return Err(refused(format!("no usable {:?} claim for the authid", self.authid_claim))),
        };
        Ok(Identity { authid, authrole: self.role(claims)? })
    }

    fn role(&self, claims: &BTreeMap<String, Json>) -> Result<String, AuthError> {
        let allowed = |r: &str| self.allowed_roles.is_empty() || self.allowed_roles.iter().any(|a| a == r);
        let candidates: Vec<&str> = match self.authrole_claim.as_deref().and_then(|c| claim(claims, c)) {
            None | Some(Json::Null) => Vec::new(),
            Some(Json::String(s)) => vec![s.as_str()],
            Some(Json::Array(l)) => l.iter().filter_map(Json::as_str).collect(),
            Some(_) => return Err(refused("malformed role claim")),
        };
        if candidates.is_empty() {
            return self.default_role.clone().ok_or_else(|| refused("token has no role"));
        }
        candidates
            .into_iter()
            .find(|r| !r.is_empty() && allowed(r))
            .map(str::to_owned)
            .ok_or_else(|| refused("role not allowed"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::testutil::*;
    use crate::auth::{AuthConfig, Authenticator};
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    /// A signing key made for the test, with its public half as PEM and as a JWK.
    struct TestKey {
        alg: Algorithm,
        enc: EncodingKey,
        public_pem: String,
        /// The public key's JWK parameters.
        jwk: Json,
    }

    impl TestKey {
        fn new(alg: Algorithm) -> TestKey {
            use base64::Engine;
            let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
            let (private_pem, public_pem, jwk) = match alg {
                Algorithm::EdDSA | Algorithm::ES256 => {
                    let which = if alg == Algorithm::EdDSA {
                        &rcgen::PKCS_ED25519
                    } else {
                        &rcgen::PKCS_ECDSA_P256_SHA256
                    };
                    let kp = rcgen::KeyPair::generate_for(which).expect("key pair");
                    // the raw public key: 32 bytes (Ed25519), 0x04 || x || y (P-256)
                    let raw = kp.public_key_raw();
                    let jwk = if alg == Algorithm::EdDSA {
                        json!({"kty": "OKP", "crv": "Ed25519", "x": b64(raw)})
                    } else {
                        json!({"kty": "EC", "crv": "P-256", "x": b64(&raw[1..33]), "y": b64(&raw[33..])})
                    };
                    (kp.serialize_pem(), kp.public_key_pem(), jwk)
                }
                _ => {
                    use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
                    use rsa::traits::PublicKeyParts;
                    let key = rsa::PrivateKey::new(&mut rand::rng(), 2048).expect("RSA key");
                    let private = key.to_pkcs8_pem(LineEnding::LF).expect("pem").to_string();
                    let public = key.to_public_key();
                    let jwk = json!({
                        "kty": "RSA",
                        "n": b64(&public.n_bytes()),
                        "e": b64(&public.e_bytes()),
                    });
                    (private, public.to_public_key_pem(LineEnding::LF).expect("pem"), jwk)
                }
            };
            let enc = match alg.family() {
                AlgorithmFamily::Ed => EncodingKey::from_ed_pem(private_pem.as_bytes()),
                AlgorithmFamily::Ec => EncodingKey::from_ec_pem(private_pem.as_bytes()),
                _ => EncodingKey::from_rsa_pem(private_pem.as_bytes()),
            }
            .expect("encoding key");
            TestKey { alg, enc, public_pem, jwk }
        }

        fn jwk(&self, kid: &str) -> Json {
            let mut jwk = self.jwk.clone();
            jwk["kid"] = kid.into();
            jwk["alg"] = format!("{:?}", self.alg).into();
            jwk
        }

        fn sign(&self, kid: Option<&str>, claims: &Json) -> String {
            let mut header = Header::new(self.alg);
            header.kid = kid.map(str::to_owned);
            jsonwebtoken::encode(&header, claims, &self.enc).expect("signs")
        }
    }

    const NOW_S: u64 = NOW / 1000;

    fn claims() -> Json {
        json!({"sub": "alice", "role": "user", "exp": NOW_S + 300, "iss": "idp", "aud": "junction"})
    }

    fn temp_file(name: &str, content: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!("junction-jwt-{}-{name}", std::process::id()));
        std::fs::write(&path, content).expect("write");
        path
    }

    fn cfg(extra: &str) -> JwtConfig {
        toml::from_str(&format!("authrole_claim = \"role\"\n{extra}")).expect("jwt config parses")
    }

    fn static_key(k: &TestKey, kid: Option<&str>) -> String {
        let kid = kid.map(|k| format!("kid = {k:?}\n")).unwrap_or_default();
        format!("[[keys]]\nalg = \"{:?}\"\n{kid}pem = '''\n{}'''\n", k.alg, k.public_pem)
    }

    fn jwks_file(name: &str, keys: &[(&TestKey, &str)]) -> PathBuf {
        let set = json!({"keys": keys.iter().map(|(k, kid)| k.jwk(kid)).collect::<Vec<_>>()});
        temp_file(name, &set.to_string())
    }

    fn denied(r: Result<Identity, AuthError>) -> String {
        match r {
            Err(e) => {
                assert_eq!(e.uri(), "wamp.error.authentication_denied");
                e.to_string()
            }
            Ok(id) => panic!("accepted: {id:?}"),
        }
    }

    #[test]
    fn each_algorithm_verifies() {
        for alg in [Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256] {
            let k = TestKey::new(alg);
            let jwt = Jwt::new(&cfg(&static_key(&k, None))).expect("valid");
            let id = jwt.verify(&k.sign(None, &claims()), NOW).expect("verifies");
            assert_eq!(id, Identity { authid: "alice".into(), authrole: "user".into() }, "{alg:?}");
            // and from a JWKS file
            let path = jwks_file(&format!("alg-{alg:?}"), &[(&k, "k1")]);
            let jwt = Jwt::new(&cfg(&format!("jwks_file = {path:?}\n"))).expect("valid");
            jwt.verify(&k.sign(Some("k1"), &claims()), NOW).expect("verifies with the JWK");
            let other = TestKey::new(alg);
            let e = denied(jwt.verify(&other.sign(Some("k1"), &claims()), NOW));
            assert_eq!(e, "invalid token: signature does not verify", "{alg:?}");
            std::fs::remove_file(path).ok();
        }
    }

    #[test]
    fn time_claims_with_leeway() {
        let k = TestKey::new(Algorithm::EdDSA);
        let jwt = Jwt::new(&cfg(&format!("leeway_s = 10\n{}", static_key(&k, None)))).expect("valid");
        let at = |exp: i64, nbf: Option<i64>| {
            let mut c = claims();
            c["exp"] = json!(NOW_S as i64 + exp);
            if let Some(nbf) = nbf {
                c["nbf"] = json!(NOW_S as i64 + nbf);
            }
            jwt.verify(&k.sign(None, &c), NOW)
        };
        assert_eq!(denied(at(-11, None)), "invalid token: token expired");
        at(-9, None).expect("within the leeway");
        assert_eq!(denied(at(300, Some(11))), "invalid token: token not yet valid");
        at(300, Some(9)).expect("within the leeway");
        let mut no_exp = claims();
        no_exp.as_object_mut().map(|c| c.remove("exp"));
        assert_eq!(denied(jwt.verify(&k.sign(None, &no_exp), NOW)), "invalid token: token has no exp claim");
        let lax = Jwt::new(&cfg(&format!("require_exp = false\n{}", static_key(&k, None)))).expect("valid");
        lax.verify(&k.sign(None, &no_exp), NOW).expect("exp not required");
        let mut bad = claims();
        bad["exp"] = json!("tomorrow");
        assert_eq!(denied(jwt.verify(&k.sign(None, &bad), NOW)), "invalid token: malformed exp claim");
    }

    #[test]
    fn issuer_and_audience() {
        let k = TestKey::new(Algorithm::ES256);
        let rules = format!("issuer = \"idp\"\naudience = \"junction\"\n{}", static_key(&k, None));
        let jwt = Jwt::new(&cfg(&rules)).expect("valid");
        jwt.verify(&k.sign(None, &claims()), NOW).expect("matches");
        let with = |key: &str, v: Json| {
            let mut c = claims();
            c[key] = v;
            jwt.verify(&k.sign(None, &c), NOW)
        };
        assert_eq!(denied(with("iss", json!("evil"))), "invalid token: wrong issuer");
        assert_eq!(denied(with("iss", Json::Null)), "invalid token: wrong issuer");
        assert_eq!(denied(with("aud", json!("other"))), "invalid token: wrong audience");
        assert_eq!(denied(with("aud", json!(["a", "b"]))), "invalid token: wrong audience");
        with("aud", json!(["a", "junction"])).expect("one of the audiences");
    }

    #[test]
    fn kid_selects_the_key() {
        let (k1, k2) = (TestKey::new(Algorithm::EdDSA), TestKey::new(Algorithm::EdDSA));
        let path = jwks_file("kid", &[(&k1, "k1"), (&k2, "k2")]);
        let jwt = Jwt::new(&cfg(&format!("jwks_file = {path:?}\n"))).expect("valid");
        jwt.verify(&k1.sign(Some("k1"), &claims()), NOW).expect("k1");
        jwt.verify(&k2.sign(Some("k2"), &claims()), NOW).expect("k2");
        jwt.verify(&k2.sign(None, &claims()), NOW).expect("no kid: every key of the algorithm");
        let e = denied(jwt.verify(&k1.sign(Some("k2"), &claims()), NOW));
        assert_eq!(e, "invalid token: signature does not verify", "k1's token under k2's id");
        assert_eq!(denied(jwt.verify(&k1.sign(Some("k3"), &claims()), NOW)), "invalid token: unknown key id");
        let es = TestKey::new(Algorithm::ES256);
        let e = denied(jwt.verify(&es.sign(Some("k1"), &claims()), NOW));
        assert_eq!(e, "invalid token: no key for algorithm ES256");
        assert_eq!(denied(jwt.verify("a.b.c", NOW)), "invalid token: malformed token");
        std::fs::remove_file(path).ok();
    }

    #[test]
    fn claims_map_to_authid_and_authrole() {
        let k = TestKey::new(Algorithm::EdDSA);
        let key = static_key(&k, None);
        let verify = |rules: &str, c: Json| {
            let jwt = Jwt::new(&toml::from_str(&format!("{rules}\n{key}")).expect("parses")).expect("valid");
            jwt.verify(&k.sign(None, &c), NOW)
        };
        let exp = NOW_S + 60;
        let id = verify(
            "authid_claim = \"email\"\nauthrole_claim = \"realm_access.roles\"\nallowed_roles = [\"admin\", \"user\"]",
            json!({"email": "a@example.com", "realm_access": {"roles": ["offline", "user"]}, "exp": exp}),
        )
        .expect("nested roles");
        assert_eq!(id, Identity { authid: "a@example.com".into(), authrole: "user".into() });
        let e = verify(
            "authrole_claim = \"roles\"\nallowed_roles = [\"admin\"]",
            json!({"sub": "x", "roles": ["user"], "exp": exp}),
        );
        assert_eq!(denied(e), "invalid token: role not allowed");
        let id =
            verify("authrole_claim = \"role\"\ndefault_role = \"guest\"", json!({"sub": "x", "exp": exp}))
                .expect("default role");
        assert_eq!(id.authrole, "guest");
        let id = verify("default_role = \"guest\"", json!({"sub": "x", "role": "admin", "exp": exp}))
            .expect("no role claim configured");
        assert_eq!(id.authrole, "guest");
        let e = verify("authrole_claim = \"role\"", json!({"sub": "x", "exp": exp}));
        assert_eq!(denied(e), "invalid token: token has no role");
        let e = verify("default_role = \"guest\"", json!({"name": "x", "exp": exp}));
        assert_eq!(denied(e), "invalid token: no usable \"sub\" claim for the authid");
    }

    #[test]
    fn config_errors() {
        let k = TestKey::new(Algorithm::EdDSA);
        let key = static_key(&k, None);
        let error = |text: &str| match Jwt::new(&toml::from_str(text).expect("parses")) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("accepted: {text}"),
        };
        assert!(error("default_role = \"r\"").contains("needs `jwks_file` or"));
        assert!(error(&key).contains("needs `authrole_claim` or `default_role`"));
        let e = error("default_role = \"r\"\n[[keys]]\nalg = \"HS256\"\npem = \"x\"\n");
        assert_eq!(e, "ticket.jwt.keys[0].alg: HS256: symmetric (HMAC) keys are not accepted");
        let e = error("default_role = \"r\"\n[[keys]]\nalg = \"ES256\"\npem = \"garbage\"\n");
        assert_eq!(e, "ticket.jwt.keys[0]: not a PEM ES256 public key");
        let e = error(&format!("default_role = \"r\"\nallowed_roles = [\"a\"]\n{key}"));
        assert!(e.contains("default_role"), "{e}");
        let e = error("default_role = \"r\"\njwks_file = \"/nonexistent/jwks.json\"\n");
        assert!(e.starts_with("ticket.jwt.jwks_file: cannot read /nonexistent/jwks.json"), "{e}");
        let path = temp_file("symmetric", r#"{"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "s"}]}"#);
        let e = error(&format!("default_role = \"r\"\njwks_file = {path:?}\n"));
        assert!(e.ends_with("key 0 (kid \"s\"): symmetric keys are not accepted"), "{e}");
        std::fs::remove_file(path).ok();
        // the realm's authentication refuses such a configuration as a whole
        let auth: AuthConfig = toml_auth("[ticket.jwt]\ndefault_role = \"r\"\n");
        assert!(Authenticator::new(&auth).is_err());
    }

    #[test]
    fn changed_key_file_is_reloaded() {
        let (old, new) = (TestKey::new(Algorithm::EdDSA), TestKey::new(Algorithm::ES256));
        let path = jwks_file("reload", &[(&old, "old")]);
        let jwt = Jwt::new(&cfg(&format!("jwks_file = {path:?}\n"))).expect("valid");
        assert_eq!(jwt.refresh(), Refresh::Unchanged);
        jwt.verify(&old.sign(Some("old"), &claims()), NOW).expect("old key");
        std::fs::write(&path, "{not json").expect("write");
        assert!(matches!(jwt.refresh(), Refresh::Failed(e) if e.contains("not a JSON Web Key Set")));
        assert_eq!(jwt.refresh(), Refresh::Unchanged, "a bad file is reported once");
        jwt.verify(&old.sign(Some("old"), &claims()), NOW).expect("the old keys stay");
        let mut jwk = new.jwk("new");
        if let Some(o) = jwk.as_object_mut() {
            o.remove("alg"); // inferred from the key type: ES256 for P-256
        }
        let set = json!({"keys": [jwk, {"kty": "RSA", "use": "enc", "n": "AQAB", "e": "AQAB"}]});
        std::fs::write(&path, set.to_string()).expect("write");
        assert_eq!(jwt.refresh(), Refresh::Reloaded(1));
        jwt.verify(&new.sign(Some("new"), &claims()), NOW).expect("new key");
        denied(jwt.verify(&old.sign(Some("old"), &claims()), NOW));
        std::fs::remove_file(path).ok();
    }

    #[test]
    fn tickets_that_are_not_jwts() {
        assert!(!looks_like_jwt("secret!!!"));
        assert!(!looks_like_jwt("a.b.c"), "no JSON header");
        assert!(!looks_like_jwt("pbkdf2:sha256:1000:x.y.z"));
        let k = TestKey::new(Algorithm::EdDSA);
        assert!(looks_like_jwt(&k.sign(None, &claims())));
    }

    fn authenticator(k: &TestKey) -> Authenticator {
        let text = format!(
            "[ticket.principals.joe]\nrole = \"user\"\nticket = \"secret!!!\"\n[ticket.jwt]\nauthrole_claim = \"role\"\n{}",
            static_key(k, None).replace("[[keys]]", "[[ticket.jwt.keys]]")
        );
        Authenticator::new(&toml_auth(&text)).expect("valid")
    }

    #[test]
    fn ticket_method_takes_tokens_and_falls_back_to_principals() {
        let k = TestKey::new(Algorithm::EdDSA);
        let a = authenticator(&k);
        let token = k.sign(None, &claims());
        // no authid in HELLO: the token names it
        let (_, pending) = expect_challenge(a.hello(&hello(&["ticket"], None), ctx()));
        let p = expect_welcome(pending.authenticate(&authenticate(&token), NOW));
        assert_eq!(
            (p.authid.as_str(), p.authrole.as_str(), p.authmethod.as_str(), p.authprovider.as_str()),
            ("alice", "user", "ticket", "jwt")
        );
        // the same authid is fine, another one is not
        let (_, pending) = expect_challenge(a.hello(&hello(&["ticket"], Some("alice")), ctx()));
        expect_welcome(pending.authenticate(&authenticate(&token), NOW));
        let (_, pending) = expect_challenge(a.hello(&hello(&["ticket"], Some("joe")), ctx()));
        let e = expect_abort(pending.authenticate(&authenticate(&token), NOW));
        assert_eq!(e.uri(), "wamp.error.authentication_denied");
        // an ordinary ticket goes to the principals
        let (_, pending) = expect_challenge(a.hello(&hello(&["ticket"], Some("joe")), ctx()));
        assert_eq!(
            expect_welcome(pending.authenticate(&authenticate("secret!!!"), NOW)).authprovider,
            "static"
        );
        for authid in [Some("joe"), Some("eve"), None] {
            let (_, pending) = expect_challenge(a.hello(&hello(&["ticket"], authid), ctx()));
            let e = expect_abort(pending.authenticate(&authenticate("guess"), NOW));
            assert_eq!(e.to_string(), "invalid ticket", "{authid:?}");
        }
        // an expired token is refused
        let mut expired = claims();
        expired["exp"] = json!(NOW_S - 61);
        let (_, pending) = expect_challenge(a.hello(&hello(&["ticket"], None), ctx()));
        let e = expect_abort(pending.authenticate(&authenticate(&k.sign(None, &expired)), NOW));
        assert_eq!(e.to_string(), "invalid token: token expired");
    }

    #[test]
    fn dynamic_authenticator_gets_what_is_not_a_token() {
        let k = TestKey::new(Algorithm::EdDSA);
        let text = format!(
            "[ticket]\nauthenticator = \"com.auth\"\n[ticket.jwt]\ndefault_role = \"device\"\n{}",
            static_key(&k, None).replace("[[keys]]", "[[ticket.jwt.keys]]")
        );
        let a = Authenticator::new(&toml_auth(&text)).expect("valid");
        let (_, pending) = expect_challenge(a.hello(&hello(&["ticket"], None), ctx()));
        let p = expect_welcome(pending.authenticate(&authenticate(&k.sign(None, &claims())), NOW));
        assert_eq!((p.authid.as_str(), p.authrole.as_str()), ("alice", "device"));
        let (_, pending) = expect_challenge(a.hello(&hello(&["ticket"], Some("joe")), ctx()));
        expect_call(pending.authenticate(&authenticate("opaque"), NOW));
    }
}
