//! The `tls` method (as Crossbar.io names it): the client proved who it is with a
//! certificate in the TLS handshake, verified against the listener's `client_ca`;
//! the certificate's subject CN is the authid. No challenge follows.
//!
//! ```toml
//! [realms.auth.tls]
//! role = "device"                          # optional: any verified certificate
//! [realms.auth.tls.principals."client01"]  # a CN with its own role
//! role = "backend"
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;

use super::error::AuthError;
use super::principal::{Context, Principal};
use crate::wamp::value::Dict;

/// The method's name in HELLO.Details.authmethods.
pub const METHOD: &str = "tls";

/// `[realms.auth.tls]`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsAuthConfig {
    /// Role of a verified certificate whose CN is not among `principals`; none:
    /// such certificates are refused.
    #[serde(default)]
    pub role: Option<String>,
    /// Roles by certificate CN.
    #[serde(default)]
    pub principals: BTreeMap<String, TlsPrincipal>,
}

/// One certificate CN.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsPrincipal {
    /// Its authrole.
    pub role: String,
}

/// Authenticates by the connection's client certificate; `Err` when there is none
/// or its CN has no role.
pub fn authenticate(cfg: &TlsAuthConfig, ctx: &Context) -> Result<Principal, AuthError> {
    let Some(cn) = &ctx.transport.client_cn else {
        return Err(AuthError::NoSuchPrincipal("no verified client certificate on this connection".into()));
    };
    let role = cfg.principals.get(cn).map(|p| p.role.clone()).or_else(|| cfg.role.clone());
    let Some(authrole) = role else {
        return Err(AuthError::NoSuchPrincipal(format!("no principal for certificate CN {cn:?}")));
    };
    Ok(Principal {
        authid: cn.clone(),
        authrole,
        authmethod: METHOD.into(),
        authprovider: "static".into(),
        authextra: Dict::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::principal::TransportInfo;
    use crate::ids::SessionId;

    fn ctx(cn: Option<&str>) -> Context {
        Context {
            realm: "r".into(),
            session: SessionId(1),
            now_ms: 0,
            transport: TransportInfo {
                tls: true,
                client_cn: cn.map(str::to_owned),
                ..TransportInfo::default()
            },
        }
    }

    #[test]
    fn certificate_cn_is_the_authid() {
        let mut cfg = TlsAuthConfig::default();
        cfg.principals.insert("client01".into(), TlsPrincipal { role: "backend".into() });
        let p = authenticate(&cfg, &ctx(Some("client01"))).expect("known CN");
        assert_eq!(
            (p.authid.as_str(), p.authrole.as_str(), p.authmethod.as_str()),
            ("client01", "backend", "tls")
        );
        assert!(authenticate(&cfg, &ctx(Some("stranger"))).is_err(), "unknown CN without a default role");
        assert!(authenticate(&cfg, &ctx(None)).is_err(), "no certificate");
        cfg.role = Some("device".into());
        assert_eq!(authenticate(&cfg, &ctx(Some("stranger"))).map(|p| p.authrole), Ok("device".into()));
    }
}
