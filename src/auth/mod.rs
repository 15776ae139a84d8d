//! WAMP authentication, without I/O: each method is a small state machine that turns
//! HELLO into WELCOME, CHALLENGE or ABORT, and AUTHENTICATE into WELCOME or ABORT.
//!
//! Methods: [`anonymous`], [`ticket`], [`wampcra`] (salted secrets too),
//! [`cryptosign`] (Ed25519, `tls-unique`/`tls-exporter` channel binding, router
//! authentication) and [`scram`] (`wamp-scram` and Crossbar's `scram`, Argon2id and
//! PBKDF2). Any of them except anonymous can be decided by a [`dynamic`]
//! authenticator procedure instead of static principals; ticket also takes JSON Web
//! Tokens ([`jwt`]). The configuration is in
//! [`config`] (TOML shape documented there).
//!
//! # Driving a handshake
//!
//! ```text
//! at startup, per realm:   cfg.resolve_secrets()?; let auth = Authenticator::new(&cfg)?;
//! HELLO:                   let hello = HelloAuth::from_details(&hello.details)?;   // Err → ABORT
//!                          step = auth.hello(&hello, Context { realm, session, now_ms, transport })
//! loop on step:
//!   Step::Welcome(p)            WELCOME, details ⊇ p.welcome_details(); session is open
//!   Step::Challenge(c, pending) send CHALLENGE c; keep `pending`; on AUTHENTICATE a:
//!                                 step = pending.authenticate(&a, now_ms)
//!   Step::Authenticator(call, pending)
//!                               CALL call.procedure with call.args (on the realm's
//!                               internal session); on RESULT r:
//!                                 step = pending.authenticator_reply(Ok(dynamic::reply_value(&result)), now_ms)
//!                               on ERROR e:
//!                                 step = pending.authenticator_reply(Err(CallFailure::from_error(..)), now_ms)
//!   Step::Abort(e)              ABORT e.abort_details(), e.uri(); close
//! ```
//!
//! A [`Pending`] is consumed by each step, so a challenge is answered at most once;
//! AUTHENTICATE after [`AuthConfig::challenge_timeout_ms`] is refused. Verifying a
//! hashed ticket costs one KDF run (milliseconds): run `authenticate` off the
//! reactor (`spawn_blocking`) if tickets are stored as Argon2 hashes. The caller
//! checks that the principal's role exists (else [`AuthError::NoSuchRole`]).
//! Secrets never appear in `Debug` output or error messages.

pub mod anonymous;
pub mod config;
pub mod cryptosign;
pub mod dynamic;
pub mod encoding;
pub mod error;
mod flow;
pub mod jwt;
pub mod principal;
pub use junction_core::roles;
pub mod scram;
pub mod secret;
pub mod ticket;
pub mod tlscert;
pub mod wampcra;

#[cfg(test)]
mod testutil;

pub use config::{AuthConfig, TransportKind};
pub use dynamic::{AuthenticatorCall, AuthenticatorReply, CallFailure};
pub use error::AuthError;
pub use flow::{Authenticator, Pending, Step};
pub use principal::{ChannelBindings, Context, HelloAuth, Principal, TlsInfo, TransportInfo};
pub use secret::Secret;
