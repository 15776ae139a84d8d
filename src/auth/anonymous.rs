//! Anonymous access: no credentials, a random authid, the configured role.
//!
//! As in Crossbar.io, an authid the client asks for is ignored: without credentials it
//! cannot claim an identity.

use super::config::AnonymousConfig;
use super::principal::Principal;
use crate::wamp::value::Dict;

/// The method name.
pub const METHOD: &str = "anonymous";

/// The principal of a new anonymous session.
pub fn principal(cfg: &AnonymousConfig) -> Principal {
    Principal {
        authid: random_authid(),
        authrole: cfg.role.clone(),
        authmethod: METHOD.into(),
        authprovider: "static".into(),
        authextra: Dict::new(),
    }
}

/// A random authid in Crossbar.io's style: six groups of four characters
/// (`XXXX-XXXX-...`) from an alphabet without look-alike characters.
pub fn random_authid() -> String {
    use rand::RngExt;
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ3456789";
    let mut rng = rand::rng();
    let mut s = String::with_capacity(29);
    for i in 0..24 {
        if i > 0 && i % 4 == 0 {
            s.push('-');
        }
        s.push(char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anonymous_principal() {
        let p = principal(&AnonymousConfig::default());
        assert_eq!((p.authrole.as_str(), p.authmethod.as_str()), ("anonymous", "anonymous"));
        assert_eq!(p.authid.len(), 29);
        assert_ne!(p.authid, principal(&AnonymousConfig::default()).authid);
    }
}
