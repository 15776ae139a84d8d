//! The handshake as a state machine: [`Authenticator::hello`] picks a method and
//! returns a [`Step`]; a [`Pending`] authentication is fed AUTHENTICATE (or the dynamic
//! authenticator's reply) and returns the next [`Step`]. No I/O, no clock: time is
//! passed in.

use super::config::{AnonymousConfig, AuthConfig, AuthConfigError, TransportKind};
use super::dynamic::{AuthenticatorCall, AuthenticatorReply};
use super::error::AuthError;
use super::principal::{Context, HelloAuth, Principal, TransportInfo};
use super::{anonymous, cryptosign, scram, ticket, tlscert, wampcra};
use crate::wamp::message::{Authenticate, Challenge};
use crate::wamp::value::Dict;

/// What the session must do next.
#[derive(Debug)]
pub enum Step {
    /// Authenticated: send WELCOME with [`Principal::welcome_details`] merged in.
    Welcome(Principal),
    /// Send this CHALLENGE, then feed the client's AUTHENTICATE to the [`Pending`].
    Challenge(Challenge, Pending),
    /// Call the dynamic authenticator procedure, then feed its reply to the [`Pending`]
    /// with [`Pending::authenticator_reply`].
    Authenticator(AuthenticatorCall, Pending),
    /// Send ABORT with [`AuthError::uri`] and [`AuthError::abort_details`], close.
    Abort(AuthError),
}

/// What a method's handler returns to this module.
pub(crate) enum Next<P> {
    Welcome(Principal),
    Challenge(Dict, P),
    Call(AuthenticatorCall, P),
    Abort(AuthError),
    /// At HELLO only: this method cannot serve the client (e.g. unknown authid); try
    /// the client's next method, and report this error if none is left.
    Skip(AuthError),
}

/// Where a method is offered: on which transports, and whether only over TLS.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Availability {
    transports: Vec<TransportKind>,
    tls_only: bool,
}

impl Availability {
    pub(crate) fn new(transports: &[TransportKind], tls_only: bool) -> Self {
        Availability { transports: transports.to_vec(), tls_only }
    }

    fn allows(&self, t: &TransportInfo) -> bool {
        (self.transports.is_empty() || self.transports.contains(&t.kind)) && (t.tls || !self.tls_only)
    }
}

/// One realm's authentication methods, checked and ready for handshakes.
#[derive(Debug)]
pub struct Authenticator {
    anonymous: Option<(AnonymousConfig, Availability)>,
    ticket: Option<ticket::Method>,
    wampcra: Option<wampcra::Method>,
    cryptosign: Option<cryptosign::Method>,
    scram: Option<scram::Method>,
    tls: Option<tlscert::TlsAuthConfig>,
    timeout_ms: u64,
    /// Answer unknown authids like wrong secrets (`disclose_unknown_authids = false`).
    hide_unknown: bool,
}

impl Authenticator {
    /// Checks a realm's configuration (secrets already resolved). Errors name the
    /// offending key relative to `[realms.auth]`, never a secret value.
    pub fn new(cfg: &AuthConfig) -> Result<Authenticator, AuthConfigError> {
        Ok(Authenticator {
            anonymous: cfg
                .anonymous
                .as_ref()
                .map(|a| (a.clone(), Availability::new(&a.transports, a.tls_only))),
            ticket: cfg.ticket.as_ref().map(ticket::Method::new).transpose()?,
            wampcra: cfg.wampcra.as_ref().map(wampcra::Method::new).transpose()?,
            cryptosign: cfg.cryptosign.as_ref().map(cryptosign::Method::new).transpose()?,
            scram: cfg
                .scram
                .as_ref()
                .map(|s| scram::Method::new(s, cfg.disclose_unknown_authids))
                .transpose()?,
            tls: cfg.tls.clone(),
            timeout_ms: cfg.challenge_timeout_ms,
            hide_unknown: !cfg.disclose_unknown_authids,
        })
    }

    /// The method names this realm accepts, for logs and diagnostics.
    pub fn methods(&self) -> Vec<&'static str> {
        let mut m = Vec::new();
        let pairs = [
            (self.anonymous.is_some(), &["anonymous"][..]),
            (self.ticket.is_some(), &["ticket"]),
            (self.wampcra.is_some(), &["wampcra"]),
            (self.cryptosign.is_some(), &["cryptosign"]),
            (self.scram.is_some(), &[scram::METHOD_SPEC, scram::METHOD_CROSSBAR]),
            (self.tls.is_some(), &[tlscert::METHOD]),
        ];
        for (on, names) in pairs {
            if on {
                m.extend_from_slice(names);
            }
        }
        m
    }

    /// Re-reads the JWT key files of the ticket method if their content changed
    /// ([`super::jwt::Jwt::refresh`]); `None` without JWT tickets.
    pub fn refresh_jwt_keys(&self) -> Option<super::jwt::Refresh> {
        Some(self.ticket.as_ref()?.jwt()?.refresh())
    }

    /// The JWT key files of the ticket method (empty without JWT tickets).
    pub fn jwt_key_files(&self) -> Vec<std::path::PathBuf> {
        self.ticket.as_ref().and_then(|t| t.jwt()).map(|j| j.key_files()).unwrap_or_default()
    }

    /// Starts authenticating a HELLO. The client's `authmethods` are tried in its
    /// order; no `authmethods` means `["anonymous"]`.
    pub fn hello(&self, hello: &HelloAuth, ctx: Context) -> Step {
        let anonymous_only = hello.authmethods.iter().all(|m| m == anonymous::METHOD);
        let offered: Vec<&str> = if hello.authmethods.is_empty() {
            vec![anonymous::METHOD]
        } else {
            hello.authmethods.iter().map(String::as_str).collect()
        };
        let mut last_error = None;
        let mut unknown = None;
        for method in offered {
            let next = match self.try_method(method, hello, &ctx) {
                Some(Next::Skip(e)) => {
                    if matches!(e, AuthError::NoSuchPrincipal(_)) {
                        unknown = unknown.or(Some(method));
                    }
                    last_error = Some(e);
                    continue;
                }
                Some(next) => next,
                None => continue,
            };
            return self.step(next, ctx.clone(), ctx.now_ms);
        }
        if self.hide_unknown
            && let Some(method) = unknown
            && let Some(next) = self.decoy(method, hello, &ctx)
        {
            return self.step(next, ctx.clone(), ctx.now_ms);
        }
        Step::Abort(last_error.unwrap_or(if anonymous_only {
            AuthError::Required
        } else {
            AuthError::NoMatchingAuthMethod
        }))
    }

    /// `None` when `method` is unknown or not offered on this connection.
    fn try_method(&self, method: &str, hello: &HelloAuth, ctx: &Context) -> Option<Next<State>> {
        let t = &ctx.transport;
        Some(match method {
            anonymous::METHOD => {
                let (cfg, _) = self.anonymous.as_ref().filter(|(_, a)| a.allows(t))?;
                Next::Welcome(anonymous::principal(cfg))
            }
            ticket::METHOD => {
                let m = self.ticket.as_ref().filter(|m| m.availability.allows(t))?;
                map(m.hello(hello, ctx), State::Ticket)
            }
            wampcra::METHOD => {
                let m = self.wampcra.as_ref().filter(|m| m.availability.allows(t))?;
                map(m.hello(hello, ctx), State::WampCra)
            }
            cryptosign::METHOD => {
                let m = self.cryptosign.as_ref().filter(|m| m.availability.allows(t))?;
                map(m.hello(hello, ctx), State::Cryptosign)
            }
            scram::METHOD_SPEC | scram::METHOD_CROSSBAR => {
                let m = self.scram.as_ref().filter(|m| m.availability.allows(t))?;
                let dialect = scram::Dialect::from_method(method)?;
                map(m.hello(dialect, hello, ctx), State::Scram)
            }
            tlscert::METHOD => match tlscert::authenticate(self.tls.as_ref()?, ctx) {
                Ok(p) => Next::Welcome(p),
                Err(e) => Next::Skip(e),
            },
            _ => return None,
        })
    }

    /// What an unknown principal gets instead of `no_such_principal` when unknown
    /// authids are hidden: what a known one with a wrong secret would get (a CHALLENGE
    /// that no answer passes; for cryptosign, the refusal of a key not authorized).
    fn decoy(&self, method: &str, hello: &HelloAuth, ctx: &Context) -> Option<Next<State>> {
        let authid = hello.authid.as_deref();
        Some(match method {
            ticket::METHOD => map(self.ticket.as_ref()?.decoy(authid?), State::Ticket),
            wampcra::METHOD => map(self.wampcra.as_ref()?.decoy(authid?, ctx), State::WampCra),
            cryptosign::METHOD => Next::Abort(AuthError::denied(cryptosign::KEY_NOT_AUTHORIZED)),
            _ => return None,
        })
    }

    fn step(&self, next: Next<State>, ctx: Context, now_ms: u64) -> Step {
        Pending::step(next, ctx, now_ms, self.timeout_ms)
    }
}

fn map<P>(next: Next<P>, f: impl FnOnce(P) -> State) -> Next<State> {
    match next {
        Next::Welcome(p) => Next::Welcome(p),
        Next::Challenge(extra, p) => Next::Challenge(extra, f(p)),
        Next::Call(call, p) => Next::Call(call, f(p)),
        Next::Abort(e) => Next::Abort(e),
        Next::Skip(e) => Next::Skip(e),
    }
}

/// An authentication waiting for AUTHENTICATE or for the dynamic authenticator.
/// Each step consumes it, so a challenge can be answered once only.
#[derive(Debug)]
pub struct Pending {
    state: State,
    ctx: Context,
    expires_ms: u64,
    timeout_ms: u64,
}

#[derive(Debug)]
enum State {
    Ticket(ticket::Pending),
    WampCra(wampcra::Pending),
    Cryptosign(cryptosign::Pending),
    Scram(scram::Pending),
}

impl State {
    fn method(&self) -> &'static str {
        match self {
            State::Ticket(_) => ticket::METHOD,
            State::WampCra(_) => wampcra::METHOD,
            State::Cryptosign(_) => cryptosign::METHOD,
            State::Scram(p) => p.method(),
        }
    }
}

impl Pending {
    /// The authentication method in progress.
    pub fn method(&self) -> &'static str {
        self.state.method()
    }

    /// The context the authentication started with.
    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// Checks the client's AUTHENTICATE, received at `now_ms` (Unix milliseconds).
    pub fn authenticate(self, msg: &Authenticate, now_ms: u64) -> Step {
        if now_ms > self.expires_ms {
            return Step::Abort(AuthError::Timeout);
        }
        let Pending { state, ctx, timeout_ms, .. } = self;
        let next = match state {
            State::Ticket(p) => map(p.authenticate(msg, &ctx, now_ms), State::Ticket),
            State::WampCra(p) => map(p.authenticate(msg, &ctx), State::WampCra),
            State::Cryptosign(p) => map(p.authenticate(msg, &ctx), State::Cryptosign),
            State::Scram(p) => map(p.authenticate(msg, &ctx), State::Scram),
        };
        Pending::step(next, ctx, now_ms, timeout_ms)
    }

    /// Continues with the dynamic authenticator's reply, received at `now_ms`.
    pub fn authenticator_reply(self, reply: AuthenticatorReply, now_ms: u64) -> Step {
        let Pending { state, ctx, timeout_ms, .. } = self;
        let next = match state {
            State::Ticket(p) => map(p.reply(reply, &ctx), State::Ticket),
            State::WampCra(p) => map(p.reply(reply, &ctx), State::WampCra),
            State::Cryptosign(p) => map(p.reply(reply, &ctx), State::Cryptosign),
            State::Scram(p) => map(p.reply(reply, &ctx), State::Scram),
        };
        Pending::step(next, ctx, now_ms, timeout_ms)
    }

    fn step(next: Next<State>, ctx: Context, now_ms: u64, timeout_ms: u64) -> Step {
        let pending =
            |state| Pending { state, ctx, expires_ms: now_ms.saturating_add(timeout_ms), timeout_ms };
        match next {
            Next::Welcome(p) => Step::Welcome(p),
            Next::Challenge(extra, state) => {
                let auth_method = state.method().to_owned();
                Step::Challenge(Challenge { auth_method, extra }, pending(state))
            }
            Next::Call(call, state) => Step::Authenticator(call, pending(state)),
            Next::Abort(e) | Next::Skip(e) => Step::Abort(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    #[test]
    fn default_config_admits_anonymous() {
        let a = Authenticator::new(&AuthConfig::default()).expect("valid");
        assert_eq!(a.methods(), ["anonymous"]);
        for methods in [&[][..], &["anonymous"], &["ticket", "anonymous"]] {
            let p = expect_welcome(a.hello(&hello(methods, Some("ignored")), ctx()));
            assert_eq!((p.authrole.as_str(), p.authmethod.as_str()), ("anonymous", "anonymous"));
            assert_ne!(p.authid, "ignored");
        }
    }

    #[test]
    fn anonymous_off_or_restricted() {
        let a = Authenticator::new(&toml_auth("[ticket]\nauthenticator = \"x\"\n")).expect("valid");
        assert_eq!(
            expect_abort(a.hello(&hello(&[], None), ctx())).uri(),
            "wamp.error.authentication_required"
        );
        let e = expect_abort(a.hello(&hello(&["anonymous", "wampcra"], None), ctx()));
        assert_eq!(e.uri(), "wamp.error.no_matching_auth_method");
        let a =
            Authenticator::new(&toml_auth("[anonymous]\nrole = \"guest\"\ntransports = [\"rawsocket\"]\n"))
                .expect("valid");
        expect_abort(a.hello(&hello(&[], None), ctx()));
        let mut raw = ctx();
        raw.transport.kind = TransportKind::RawSocket;
        assert_eq!(expect_welcome(a.hello(&hello(&[], None), raw)).authrole, "guest");
    }

    #[test]
    fn client_order_decides() {
        let cfg = "[anonymous]\n[ticket.principals.joe]\nrole = \"user\"\nticket = \"t\"\n";
        let a = Authenticator::new(&toml_auth(cfg)).expect("valid");
        assert_eq!(a.methods(), ["anonymous", "ticket"]);
        expect_challenge(a.hello(&hello(&["ticket", "anonymous"], Some("joe")), ctx()));
        expect_welcome(a.hello(&hello(&["anonymous", "ticket"], Some("joe")), ctx()));
        // Unknown authid for ticket: falls through to anonymous.
        expect_welcome(a.hello(&hello(&["ticket", "anonymous"], Some("eve")), ctx()));
        let (c, pending) = expect_challenge(a.hello(&hello(&["bogus", "ticket"], Some("joe")), ctx()));
        assert_eq!((c.auth_method.as_str(), pending.method()), ("ticket", "ticket"));
        assert_eq!(pending.context().realm, "realm1");
    }
}
