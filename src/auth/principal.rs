//! The plain values around an authentication: what the client asked for in HELLO
//! ([`HelloAuth`]), what the router knows about the connection ([`Context`]), and who
//! the client turned out to be ([`Principal`]).

use super::config::TransportKind;
use super::error::AuthError;
use crate::dict;
use crate::ids::SessionId;
use crate::wamp::value::{Dict, Value};

/// The most `authmethods` entries looked at; the rest are ignored.
pub const MAX_AUTHMETHODS: usize = 16;
/// The longest authid accepted, in bytes.
pub const MAX_AUTHID_LEN: usize = 1024;

/// The authentication part of `HELLO.Details`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HelloAuth {
    /// `authid`, if the client named one.
    pub authid: Option<String>,
    /// `authmethods`, in the client's order of preference; non-strings are skipped.
    pub authmethods: Vec<String>,
    /// `authextra` (empty when absent).
    pub authextra: Dict,
}

impl HelloAuth {
    /// Reads `authid`, `authmethods` and `authextra` from `HELLO.Details`. A present
    /// key of the wrong type is a protocol violation.
    pub fn from_details(details: &Dict) -> Result<HelloAuth, AuthError> {
        let authid = match details.get("authid") {
            None | Some(Value::Null) => None,
            Some(Value::Str(s)) if s.len() <= MAX_AUTHID_LEN => Some(s.clone()),
            Some(Value::Str(_)) => {
                return Err(AuthError::Protocol("HELLO.Details.authid is too long".into()));
            }
            Some(_) => return Err(AuthError::Protocol("HELLO.Details.authid must be a string".into())),
        };
        let authmethods = match details.get("authmethods") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::List(l)) => {
                l.iter().filter_map(Value::as_str).take(MAX_AUTHMETHODS).map(str::to_owned).collect()
            }
            Some(_) => return Err(AuthError::Protocol("HELLO.Details.authmethods must be a list".into())),
        };
        let authextra = match details.get("authextra") {
            None | Some(Value::Null) => Dict::new(),
            Some(Value::Dict(d)) => d.clone(),
            Some(_) => return Err(AuthError::Protocol("HELLO.Details.authextra must be a dict".into())),
        };
        Ok(HelloAuth { authid, authmethods, authextra })
    }
}

/// What the TLS handshake established about the client (set by the transport,
/// read by the authentication methods).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsInfo {
    /// Subject CN of the verified client certificate, if one was presented.
    pub client_cn: Option<String>,
    /// Channel binding data of the connection.
    pub bindings: ChannelBindings,
}

/// TLS channel binding data of the connection, each 32 bytes when present.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChannelBindings {
    /// `tls-unique` (RFC 5929): the first Finished message; TLS 1.2 only.
    pub tls_unique: Option<Vec<u8>>,
    /// `tls-exporter` (RFC 9266): exporter label `EXPORTER-Channel-Binding`, no
    /// context, 32 bytes.
    pub tls_exporter: Option<Vec<u8>>,
    /// `tls-server-end-point` (RFC 5929): hash of the server certificate (SCRAM only).
    pub tls_server_end_point: Option<Vec<u8>>,
}

impl ChannelBindings {
    /// The binding data for a channel binding type name; `None` if the type is
    /// unknown or the connection does not provide it.
    pub fn get(&self, kind: &str) -> Option<&[u8]> {
        match kind {
            "tls-unique" => self.tls_unique.as_deref(),
            "tls-exporter" => self.tls_exporter.as_deref(),
            "tls-server-end-point" => self.tls_server_end_point.as_deref(),
            _ => None,
        }
    }
}

/// What the router knows about the connection.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TransportInfo {
    /// WebSocket or RawSocket.
    pub kind: TransportKind,
    /// True over TLS.
    pub tls: bool,
    /// The peer, Crossbar style (`tcp4:127.0.0.1:5555`, `unix`), for authenticator details.
    pub peer: Option<String>,
    /// TLS channel binding data.
    pub channel_bindings: ChannelBindings,
    /// Subject CN of the client's verified TLS certificate (authmethod `tls`).
    pub client_cn: Option<String>,
}

impl TransportInfo {
    /// The `transport` dict given to a dynamic authenticator.
    pub fn to_dict(&self) -> Dict {
        let mut d = dict! { "type" => self.kind.name(), "tls" => self.tls };
        if let Some(peer) = &self.peer {
            d.insert("peer".into(), peer.as_str().into());
        }
        d
    }
}

/// The session being authenticated.
#[derive(Clone, Debug, PartialEq)]
pub struct Context {
    /// The realm the client asked to join.
    pub realm: String,
    /// The id WELCOME will carry (WAMP-CRA binds its challenge to it).
    pub session: SessionId,
    /// Wall clock, milliseconds since the Unix epoch, when HELLO arrived.
    pub now_ms: u64,
    /// The connection.
    pub transport: TransportInfo,
}

/// An authenticated client, as WELCOME announces it.
#[derive(Clone, Debug, PartialEq)]
pub struct Principal {
    /// The authentication id.
    pub authid: String,
    /// The role, for authorization.
    pub authrole: String,
    /// The method that authenticated it (`anonymous`, `ticket`, `wampcra`, ...).
    pub authmethod: String,
    /// `static` (configuration) or `dynamic` (an authenticator procedure).
    pub authprovider: String,
    /// Sent to the client as `WELCOME.Details.authextra` (e.g. the SCRAM verifier).
    pub authextra: Dict,
}

impl Principal {
    /// The authentication keys of `WELCOME.Details`: `authid`, `authrole`,
    /// `authmethod`, `authprovider` and, when not empty, `authextra`.
    pub fn welcome_details(&self) -> Dict {
        let mut d = dict! {
            "authid" => self.authid.as_str(),
            "authrole" => self.authrole.as_str(),
            "authmethod" => self.authmethod.as_str(),
            "authprovider" => self.authprovider.as_str(),
        };
        if !self.authextra.is_empty() {
            d.insert("authextra".into(), Value::Dict(self.authextra.clone()));
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wamp::value::List;

    #[test]
    fn hello_details_are_read() {
        let methods: List = vec!["ticket".into(), Value::Int(3), "wampcra".into()];
        let details = dict! {
            "authid" => "joe",
            "authmethods" => methods,
            "authextra" => dict! { "pubkey" => "00" },
        };
        let h = HelloAuth::from_details(&details).expect("valid");
        assert_eq!(h.authid.as_deref(), Some("joe"));
        assert_eq!(h.authmethods, vec!["ticket", "wampcra"]);
        assert_eq!(h.authextra.len(), 1);
        assert_eq!(HelloAuth::from_details(&Dict::new()), Ok(HelloAuth::default()));
    }

    #[test]
    fn hello_details_of_wrong_type_violate() {
        for bad in [dict! { "authid" => 1i64 }, dict! { "authmethods" => "x" }, dict! { "authextra" => "x" }]
        {
            let e = HelloAuth::from_details(&bad);
            assert!(matches!(e, Err(AuthError::Protocol(_))), "{bad:?}");
        }
        let long = dict! { "authid" => "x".repeat(MAX_AUTHID_LEN + 1) };
        assert!(HelloAuth::from_details(&long).is_err());
    }

    #[test]
    fn welcome_details_omit_empty_authextra() {
        let mut p = Principal {
            authid: "a".into(),
            authrole: "r".into(),
            authmethod: "ticket".into(),
            authprovider: "static".into(),
            authextra: Dict::new(),
        };
        assert!(!p.welcome_details().contains_key("authextra"));
        p.authextra.insert("k".into(), "v".into());
        assert_eq!(p.welcome_details().len(), 5);
    }
}
