//! Ticket authentication: the client sends a ticket (password or token) in
//! AUTHENTICATE; the router checks it against the stored one (plain text compared in
//! constant time, or a PBKDF2/Argon2 hash: see [`super::secret::StoredTicket`]).
//!
//! Flow: HELLO (`authid` required with static principals) → CHALLENGE `ticket`, `{}`
//! → AUTHENTICATE with the ticket as signature → WELCOME or ABORT. With a dynamic
//! authenticator the ticket is handed to it after AUTHENTICATE.
//!
//! With `[realms.auth.ticket.jwt]` a ticket that is a JSON Web Token is verified as
//! one ([`super::jwt`]): the token's claims give the authid and authrole, and HELLO
//! needs no authid (if it has one, it must be the token's). Any other ticket goes
//! to the static principals or the dynamic authenticator as before.

use std::collections::HashMap;
use std::sync::Arc;

use super::config::{AuthConfigError, TicketConfig};
use super::dynamic::{self, AuthenticatorReply};
use super::encoding::{hex_encode, random_bytes};
use super::error::AuthError;
use super::flow::{Availability, Next};
use super::jwt::{self, Jwt};
use super::principal::{Context, HelloAuth, Principal};
use super::secret::StoredTicket;
use crate::wamp::message::Authenticate;
use crate::wamp::value::Dict;

/// The method name.
pub const METHOD: &str = "ticket";

/// The configured ticket method of a realm.
#[derive(Debug)]
pub(crate) struct Method {
    pub(crate) availability: Availability,
    source: Source,
    jwt: Option<Arc<Jwt>>,
}

#[derive(Debug)]
enum Source {
    Static(HashMap<String, Entry>),
    Dynamic(String),
}

#[derive(Clone, Debug)]
pub(crate) struct Entry {
    role: String,
    ticket: StoredTicket,
}

/// A ticket authentication in progress.
#[derive(Debug)]
pub(crate) enum Pending {
    /// CHALLENGE sent; the stored ticket to compare with.
    Verify { authid: String, entry: Entry },
    /// CHALLENGE sent; a JWT is verified, any other ticket compared with the static
    /// principal named in HELLO, if there is one.
    Token { authid: Option<String>, fallback: Option<Entry>, jwt: Arc<Jwt> },
    /// CHALLENGE sent; the authenticator will judge the ticket (a JWT, the verifier).
    AwaitTicket { procedure: String, authid: Option<String>, authextra: Dict, jwt: Option<Arc<Jwt>> },
    /// The authenticator was called with the ticket.
    AwaitReply { authid: Option<String> },
}

impl Method {
    pub(crate) fn new(cfg: &TicketConfig) -> Result<Method, AuthConfigError> {
        let source = match &cfg.authenticator {
            Some(_) if !cfg.principals.is_empty() => {
                return Err(AuthConfigError::Exclusive { method: "ticket" });
            }
            Some(procedure) => Source::Dynamic(procedure.clone()),
            None => {
                let mut map = HashMap::new();
                for (authid, p) in &cfg.principals {
                    let what = format!("ticket.principals.{authid}.ticket");
                    let stored =
                        StoredTicket::parse(p.ticket.require(&what)?).map_err(|e| e.at(what.as_str()))?;
                    map.insert(authid.clone(), Entry { role: p.role.clone(), ticket: stored });
                }
                Source::Static(map)
            }
        };
        let jwt = cfg.jwt.as_ref().map(Jwt::new).transpose()?.map(Arc::new);
        Ok(Method { availability: Availability::new(&cfg.transports, cfg.tls_only), source, jwt })
    }

    /// The JWT verifier, when JWT tickets are configured.
    pub(crate) fn jwt(&self) -> Option<&Jwt> {
        self.jwt.as_deref()
    }

    pub(crate) fn hello(&self, hello: &HelloAuth, _ctx: &Context) -> Next<Pending> {
        match (&self.source, &self.jwt) {
            // Any client may hold a token: no authid is required, none is unknown.
            (Source::Static(principals), Some(jwt)) => Next::Challenge(
                Dict::new(),
                Pending::Token {
                    authid: hello.authid.clone(),
                    fallback: hello.authid.as_deref().and_then(|a| principals.get(a)).cloned(),
                    jwt: jwt.clone(),
                },
            ),
            (Source::Static(principals), None) => {
                let Some(authid) = hello.authid.as_deref() else {
                    return Next::Skip(AuthError::NoSuchPrincipal(
                        "ticket authentication requires an authid".into(),
                    ));
                };
                match principals.get(authid) {
                    Some(entry) => Next::Challenge(
                        Dict::new(),
                        Pending::Verify { authid: authid.to_owned(), entry: entry.clone() },
                    ),
                    None => Next::Skip(AuthError::no_principal(authid)),
                }
            }
            (Source::Dynamic(procedure), _) => Next::Challenge(
                Dict::new(),
                Pending::AwaitTicket {
                    procedure: procedure.clone(),
                    authid: hello.authid.clone(),
                    authextra: hello.authextra.clone(),
                    jwt: self.jwt.clone(),
                },
            ),
        }
    }
}

impl Method {
    /// The CHALLENGE an unknown `authid` gets when unknown authids are hidden: the
    /// same as a known one's, after which any ticket is refused as a wrong one.
    pub(crate) fn decoy(&self, authid: &str) -> Next<Pending> {
        let ticket = StoredTicket::Plain(hex_encode(&random_bytes::<32>()));
        let entry = Entry { role: String::new(), ticket };
        Next::Challenge(Dict::new(), Pending::Verify { authid: authid.to_owned(), entry })
    }
}

impl Pending {
    pub(crate) fn authenticate(self, msg: &Authenticate, ctx: &Context, now_ms: u64) -> Next<Pending> {
        let is_jwt = || jwt::looks_like_jwt(&msg.signature);
        match self {
            Pending::Token { authid, jwt, .. } if is_jwt() => token(&jwt, authid, &msg.signature, now_ms),
            Pending::Token { authid: Some(authid), fallback: Some(entry), .. } => {
                Pending::Verify { authid, entry }.authenticate(msg, ctx, now_ms)
            }
            // Not a token, and no principal to compare it with: the answer a wrong
            // ticket gets, so authids cannot be probed.
            Pending::Token { .. } => Next::Abort(AuthError::denied("invalid ticket")),
            Pending::AwaitTicket { authid, jwt: Some(jwt), .. } if is_jwt() => {
                token(&jwt, authid, &msg.signature, now_ms)
            }
            Pending::Verify { authid, entry } => {
                if entry.ticket.verify(&msg.signature) {
                    Next::Welcome(principal(authid, entry.role, "static", Dict::new()))
                } else {
                    Next::Abort(AuthError::denied("invalid ticket"))
                }
            }
            Pending::AwaitTicket { procedure, authid, authextra, .. } => {
                let call = dynamic::call(
                    &procedure,
                    ctx,
                    authid.as_deref(),
                    METHOD,
                    &authextra,
                    Some(&msg.signature),
                );
                Next::Call(call, Pending::AwaitReply { authid })
            }
            Pending::AwaitReply { .. } => {
                Next::Abort(AuthError::Protocol("AUTHENTICATE while the authenticator is deciding".into()))
            }
        }
    }

    pub(crate) fn reply(self, reply: AuthenticatorReply, ctx: &Context) -> Next<Pending> {
        let Pending::AwaitReply { authid } = self else {
            return Next::Abort(AuthError::failed("unexpected authenticator reply"));
        };
        let result = dynamic::parse_reply(reply, ctx).and_then(|p| {
            let authid = p.authid_or(authid.as_deref())?;
            Ok(principal(authid, p.role, "dynamic", p.extra))
        });
        match result {
            Ok(p) => Next::Welcome(p),
            Err(e) => Next::Abort(e),
        }
    }
}

/// Verifies a JWT ticket; the authid HELLO named, if any, must be the token's.
fn token(jwt: &Jwt, hello_authid: Option<String>, ticket: &str, now_ms: u64) -> Next<Pending> {
    match jwt.verify(ticket, now_ms) {
        Ok(id) if hello_authid.as_deref().is_some_and(|a| a != id.authid) => {
            Next::Abort(AuthError::denied("invalid token: the authid in HELLO is not the token's"))
        }
        Ok(id) => Next::Welcome(principal(id.authid, id.authrole, "jwt", Dict::new())),
        Err(e) => Next::Abort(e),
    }
}

fn principal(authid: String, authrole: String, provider: &str, authextra: Dict) -> Principal {
    Principal { authid, authrole, authmethod: METHOD.into(), authprovider: provider.into(), authextra }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use crate::auth::{AuthConfig, Authenticator};
    use crate::wamp::value::Value;

    fn auth() -> Authenticator {
        let cfg: AuthConfig = toml_auth(
            r#"
            [ticket.principals.joe]
            role = "user"
            ticket = "secret!!!"
            [ticket.principals.ann]
            role = "admin"
            ticket = "pbkdf2:sha256:1000:MDEyMzQ1Njc4OWFiY2RlZg==:1LVPUemxTRag+HBurfYT0muNL3xFuqj/1K7F5F4WuwY="
            "#,
        );
        Authenticator::new(&cfg).expect("valid config")
    }

    #[test]
    fn success_plain_and_hashed() {
        for (authid, role) in [("joe", "user"), ("ann", "admin")] {
            let (challenge, pending) =
                expect_challenge(auth().hello(&hello(&["ticket"], Some(authid)), ctx()));
            assert_eq!(challenge.auth_method, "ticket");
            assert!(challenge.extra.is_empty());
            let p = expect_welcome(pending.authenticate(&authenticate("secret!!!"), NOW));
            assert_eq!(
                (p.authid.as_str(), p.authrole.as_str(), p.authmethod.as_str()),
                (authid, role, "ticket")
            );
            assert_eq!(p.authprovider, "static");
        }
    }

    #[test]
    fn wrong_ticket_is_denied() {
        let (_, pending) = expect_challenge(auth().hello(&hello(&["ticket"], Some("joe")), ctx()));
        let e = expect_abort(pending.authenticate(&authenticate("secret!!"), NOW));
        assert_eq!(e.uri(), "wamp.error.authentication_denied");
    }

    #[test]
    fn unknown_authid_is_answered_like_a_wrong_ticket() {
        let (known, pending) = expect_challenge(auth().hello(&hello(&["ticket"], Some("joe")), ctx()));
        let wrong = expect_abort(pending.authenticate(&authenticate("guess"), NOW));
        let (unknown, pending) = expect_challenge(auth().hello(&hello(&["ticket"], Some("eve")), ctx()));
        assert_eq!(unknown, known, "the same CHALLENGE");
        let e = expect_abort(pending.authenticate(&authenticate("guess"), NOW));
        assert_eq!(e, wrong, "the same ABORT");
        let e = expect_abort(auth().hello(&hello(&["ticket"], None), ctx()));
        assert_eq!(e.uri(), "wamp.error.no_such_principal", "no authid at all");
    }

    #[test]
    fn unknown_authid_disclosed_when_configured() {
        let cfg = toml_auth(
            "disclose_unknown_authids = true
[ticket.principals.joe]
role = \"user\"
ticket = \"t\"
",
        );
        let a = Authenticator::new(&cfg).expect("valid config");
        let e = expect_abort(a.hello(&hello(&["ticket"], Some("eve")), ctx()));
        assert_eq!(e.uri(), "wamp.error.no_such_principal");
    }

    #[test]
    fn method_not_offered() {
        let e = expect_abort(auth().hello(&hello(&["wampcra"], Some("joe")), ctx()));
        assert_eq!(e.uri(), "wamp.error.no_matching_auth_method");
        let e = expect_abort(auth().hello(&hello(&[], None), ctx()));
        assert_eq!(e.uri(), "wamp.error.authentication_required");
    }

    #[test]
    fn late_answer_times_out() {
        let (_, pending) = expect_challenge(auth().hello(&hello(&["ticket"], Some("joe")), ctx()));
        let e = expect_abort(pending.authenticate(&authenticate("secret!!!"), NOW + 30_001));
        assert_eq!(e.uri(), "wamp.error.authentication_denied");
    }

    #[test]
    fn transport_restrictions() {
        let cfg =
            toml_auth("[ticket]\ntls_only = true\n[ticket.principals.joe]\nrole = \"u\"\nticket = \"t\"\n");
        let a = Authenticator::new(&cfg).expect("valid");
        let e = expect_abort(a.hello(&hello(&["ticket"], Some("joe")), ctx()));
        assert_eq!(e.uri(), "wamp.error.no_matching_auth_method");
        let mut tls = ctx();
        tls.transport.tls = true;
        expect_challenge(a.hello(&hello(&["ticket"], Some("joe")), tls));
    }

    #[test]
    fn dynamic_ticket() {
        let a = Authenticator::new(&toml_auth("[ticket]\nauthenticator = \"com.auth\"\n")).expect("valid");
        let (_, pending) = expect_challenge(a.hello(&hello(&["ticket"], Some("joe")), ctx()));
        let (call, pending) = expect_call(pending.authenticate(&authenticate("tkt"), NOW));
        assert_eq!(call.procedure, "com.auth");
        let details = call.args[2].as_dict().expect("details");
        assert_eq!(details.get("ticket").and_then(Value::as_str), Some("tkt"));
        let p = expect_welcome(pending.authenticator_reply(Ok("user".into()), NOW));
        assert_eq!(
            (p.authid.as_str(), p.authrole.as_str(), p.authprovider.as_str()),
            ("joe", "user", "dynamic")
        );
    }

    #[test]
    fn dynamic_ticket_refused() {
        let a = Authenticator::new(&toml_auth("[ticket]\nauthenticator = \"com.auth\"\n")).expect("valid");
        let (_, pending) = expect_challenge(a.hello(&hello(&["ticket"], Some("joe")), ctx()));
        let (_, pending) = expect_call(pending.authenticate(&authenticate("tkt"), NOW));
        let failure = crate::auth::CallFailure::from_error("wamp.error.not_authorized", &vec!["nope".into()]);
        let e = expect_abort(pending.authenticator_reply(Err(failure), NOW));
        assert_eq!(e.uri(), "wamp.error.not_authorized");
    }

    #[test]
    fn config_errors() {
        let both = toml_auth(
            "[ticket]\nauthenticator = \"a\"\n[ticket.principals.j]\nrole = \"r\"\nticket = \"t\"\n",
        );
        assert!(Authenticator::new(&both).is_err());
        let bad = toml_auth("[ticket.principals.j]\nrole = \"r\"\nticket = \"pbkdf2:sha256:x\"\n");
        let e = Authenticator::new(&bad).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.starts_with("ticket.principals.j.ticket"), "{e}");
        let unresolved = toml_auth("[ticket.principals.j]\nrole = \"r\"\nticket = { env = \"X\" }\n");
        assert!(Authenticator::new(&unresolved).is_err());
    }

    #[test]
    fn replayed_pending_cannot_be_reused() {
        // A Pending is consumed by `authenticate`; a second AUTHENTICATE has nothing to
        // check against. A fresh challenge for the same authid works independently.
        let a = auth();
        let (_, first) = expect_challenge(a.hello(&hello(&["ticket"], Some("joe")), ctx()));
        expect_abort(first.authenticate(&authenticate("wrong"), NOW));
        let (_, second) = expect_challenge(a.hello(&hello(&["ticket"], Some("joe")), ctx()));
        expect_welcome(second.authenticate(&authenticate("secret!!!"), NOW));
    }
}
