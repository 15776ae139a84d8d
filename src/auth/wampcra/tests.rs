//! WAMP-CRA tests, with signatures computed by Autobahn|Python 26.10
//! (`autobahn.wamp.auth.compute_wcs` and `derive_key`).

use super::*;
use crate::auth::testutil::*;
use crate::auth::{Authenticator, CallFailure, Step};
use crate::wamp::value::Value;

/// The spec's example challenge, as one string.
const SPEC_CHALLENGE: &str = r#"{"authid": "peter", "authrole": "user", "authmethod": "wampcra", "authprovider": "userdb", "nonce": "LHRTC9zeOIrt_9U3", "session": 3251278072152162, "timestamp": "2014-06-22T16:36:25.448Z"}"#;
/// `compute_wcs("secret1", SPEC_CHALLENGE)`.
const PY_SIG: &str = "YImxtZdZ8qzuTj4UnjVi7Gh3hZxzv+NfzdfRtakznHQ=";
/// `derive_key("secret1", "salt123", 1000, 32)`.
const PY_DERIVED: &str = "64xfzBvZhGDT7PB0bQwDeI8/WR1M9x6Cw5dt0yP9koc=";
/// `compute_wcs(derive_key("secret1", "salt123", 1000, 32), SPEC_CHALLENGE)`.
const PY_SALTED_SIG: &str = "zPy2102UkGTxm6F9ummKuz6h5/2F/yWSkN2b77h/EhQ=";
/// `derive_key("secret1", "salt123", 100, 16)`.
const PY_DERIVED_16: &str = "prq7+YkJ1/KlW1X0YczMHw==";

fn auth() -> Authenticator {
    let cfg = toml_auth(&format!(
        r#"
        [wampcra.principals.peter]
        role = "user"
        secret = "secret1"
        [wampcra.principals.sally]
        role = "admin"
        secret = "{PY_DERIVED}"
        salt = "salt123"
        iterations = 1000
        keylen = 32
        "#
    ));
    Authenticator::new(&cfg).expect("valid config")
}

fn pending_for(challenge: &str, key: &str) -> Pending {
    let principal = Principal {
        authid: "peter".into(),
        authrole: "user".into(),
        authmethod: METHOD.into(),
        authprovider: "userdb".into(),
        authextra: Dict::new(),
    };
    Pending::Verify { principal, key: Secret::new(key), challenge: challenge.into() }
}

fn verify(p: Pending, sig: &str) -> Next<Pending> {
    p.authenticate(&authenticate(sig), &ctx())
}

#[test]
fn autobahn_vectors() {
    assert_eq!(sign("secret1", SPEC_CHALLENGE), PY_SIG);
    assert_eq!(derive_key("secret1", "salt123", 1000, 32), PY_DERIVED);
    assert_eq!(derive_key("secret1", "salt123", 100, 16), PY_DERIVED_16);
    assert!(matches!(verify(pending_for(SPEC_CHALLENGE, "secret1"), PY_SIG), Next::Welcome(_)));
    assert!(matches!(verify(pending_for(SPEC_CHALLENGE, PY_DERIVED), PY_SALTED_SIG), Next::Welcome(_)));
}

#[test]
fn tampered_challenge_or_signature_is_denied() {
    let tampered = SPEC_CHALLENGE.replace("\"user\"", "\"admin\"");
    assert!(matches!(verify(pending_for(&tampered, "secret1"), PY_SIG), Next::Abort(AuthError::Denied(_))));
    let mut flipped = PY_SIG.to_owned();
    flipped.replace_range(0..1, "Z");
    assert!(matches!(verify(pending_for(SPEC_CHALLENGE, "secret1"), &flipped), Next::Abort(_)));
    assert!(matches!(verify(pending_for(SPEC_CHALLENGE, "secret1"), "not base64!"), Next::Abort(_)));
    assert!(matches!(verify(pending_for(SPEC_CHALLENGE, "secret1"), ""), Next::Abort(_)));
}

#[test]
fn challenge_has_the_spec_fields() {
    let (c, _) = expect_challenge(auth().hello(&hello(&["wampcra"], Some("peter")), ctx()));
    assert_eq!(c.auth_method, "wampcra");
    let text = c.extra.get("challenge").and_then(Value::as_str).expect("challenge string");
    let json: serde_json::Value = serde_json::from_str(text).expect("challenge is JSON");
    assert_eq!(json["authid"], "peter");
    assert_eq!(json["authrole"], "user");
    assert_eq!(json["authmethod"], "wampcra");
    assert_eq!(json["authprovider"], "static");
    assert_eq!(json["session"], 3_251_278_072_152_162u64);
    assert_eq!(json["timestamp"], "2014-06-22T16:36:25.448Z");
    assert!(json["nonce"].as_str().is_some_and(|n| n.len() >= 16));
    assert!(!c.extra.contains_key("salt"));
}

#[test]
fn full_flow_plain_and_salted() {
    for (authid, role) in [("peter", "user"), ("sally", "admin")] {
        let (c, pending) = expect_challenge(auth().hello(&hello(&["wampcra"], Some(authid)), ctx()));
        let sig = client_sign(&c.extra, "secret1").expect("signable");
        let p = expect_welcome(pending.authenticate(&authenticate(&sig), NOW));
        assert_eq!(
            (p.authid.as_str(), p.authrole.as_str(), p.authmethod.as_str()),
            (authid, role, "wampcra")
        );
    }
    let (c, _) = expect_challenge(auth().hello(&hello(&["wampcra"], Some("sally")), ctx()));
    assert_eq!(c.extra.get("salt"), Some(&Value::from("salt123")));
    assert_eq!(c.extra.get("iterations"), Some(&Value::Int(1000)));
    assert_eq!(c.extra.get("keylen"), Some(&Value::Int(32)));
}

#[test]
fn wrong_secret_is_denied() {
    let (c, pending) = expect_challenge(auth().hello(&hello(&["wampcra"], Some("peter")), ctx()));
    let sig = client_sign(&c.extra, "secret2").expect("signable");
    let e = expect_abort(pending.authenticate(&authenticate(&sig), NOW));
    assert_eq!(e.uri(), "wamp.error.authentication_denied");
}

#[test]
fn replayed_signature_fails_on_a_new_challenge() {
    let a = auth();
    let (c1, p1) = expect_challenge(a.hello(&hello(&["wampcra"], Some("peter")), ctx()));
    let sig = client_sign(&c1.extra, "secret1").expect("signable");
    expect_welcome(p1.authenticate(&authenticate(&sig), NOW));
    let (c2, p2) = expect_challenge(a.hello(&hello(&["wampcra"], Some("peter")), ctx()));
    assert_ne!(c1.extra.get("challenge"), c2.extra.get("challenge"), "nonce must differ");
    expect_abort(p2.authenticate(&authenticate(&sig), NOW));
}

#[test]
fn unknown_authid_and_method_not_offered() {
    let (c, pending) = expect_challenge(auth().hello(&hello(&["wampcra"], Some("eve")), ctx()));
    let text = c.extra.get("challenge").and_then(Value::as_str).expect("a challenge string");
    assert!(text.contains("\"authid\":\"eve\"") || text.contains("\"authid\": \"eve\""), "{text}");
    let e = expect_abort(pending.authenticate(&authenticate("c2lnbmF0dXJl"), NOW));
    assert_eq!(e.to_string(), "invalid WAMP-CRA signature", "answered like a wrong secret");
    let cfg = toml_auth(
        "disclose_unknown_authids = true\n[wampcra.principals.peter]\nrole = \"user\"\nsecret = \"s\"\n",
    );
    let disclosing = Authenticator::new(&cfg).expect("valid");
    let e = expect_abort(disclosing.hello(&hello(&["wampcra"], Some("eve")), ctx()));
    assert_eq!(e.uri(), "wamp.error.no_such_principal");
    let e = expect_abort(auth().hello(&hello(&["ticket", "cryptosign"], Some("peter")), ctx()));
    assert_eq!(e.uri(), "wamp.error.no_matching_auth_method");
}

#[test]
fn falls_through_to_the_next_offered_method() {
    let cfg = toml_auth(
        "[wampcra.principals.peter]\nrole = \"user\"\nsecret = \"s\"\n\
         [ticket.principals.eve]\nrole = \"guest\"\nticket = \"t\"\n",
    );
    let a = Authenticator::new(&cfg).expect("valid");
    let (c, _) = expect_challenge(a.hello(&hello(&["wampcra", "ticket"], Some("eve")), ctx()));
    assert_eq!(c.auth_method, "ticket");
}

#[test]
fn dynamic_wampcra() {
    let a = Authenticator::new(&toml_auth("[wampcra]\nauthenticator = \"com.auth\"\n")).expect("valid");
    let (call, pending) = expect_call(a.hello(&hello(&["wampcra"], Some("peter")), ctx()));
    assert_eq!(call.args[1], Value::from("peter"));
    let reply =
        dict! { "role" => "user", "secret" => PY_DERIVED, "salt" => "salt123", "iterations" => 1000i64 };
    let (c, pending) = expect_challenge(pending.authenticator_reply(Ok(Value::Dict(reply)), NOW));
    assert_eq!(c.extra.get("keylen"), Some(&Value::Int(32)));
    let sig = client_sign(&c.extra, "secret1").expect("signable");
    let p = expect_welcome(pending.authenticate(&authenticate(&sig), NOW));
    assert_eq!((p.authrole.as_str(), p.authprovider.as_str()), ("user", "dynamic"));
}

#[test]
fn dynamic_wampcra_failures() {
    let a = Authenticator::new(&toml_auth("[wampcra]\nauthenticator = \"com.auth\"\n")).expect("valid");
    let (_, pending) = expect_call(a.hello(&hello(&["wampcra"], Some("peter")), ctx()));
    let e = expect_abort(pending.authenticator_reply(Ok(Value::Dict(dict! { "role" => "user" })), NOW));
    assert_eq!(e.uri(), "wamp.error.authentication_failed");
    let (_, pending) = expect_call(a.hello(&hello(&["wampcra"], Some("peter")), ctx()));
    let failure = CallFailure::from_error("wamp.error.no_available_callee", &vec![]);
    let e = expect_abort(pending.authenticator_reply(Err(failure), NOW));
    assert_eq!(e.uri(), "wamp.error.authentication_failed");
    let (_, pending) = expect_call(a.hello(&hello(&["wampcra"], Some("peter")), ctx()));
    let step = pending.authenticate(&authenticate("x"), NOW);
    assert!(matches!(step, Step::Abort(AuthError::Protocol(_))));
}

#[test]
fn config_errors_and_redaction() {
    let bad = toml_auth("[wampcra.principals.p]\nrole = \"r\"\nsecret = \"s\"\niterations = 5\n");
    assert!(Authenticator::new(&bad).is_err_and(|e| e.to_string().starts_with("wampcra.principals.p")));
    let bad = toml_auth("[wampcra.principals.p]\nrole = \"r\"\nsecret = \"s\"\nsalt = \"x\"\nkeylen = 0\n");
    assert!(Authenticator::new(&bad).is_err());
    let (_, pending) = expect_challenge(auth().hello(&hello(&["wampcra"], Some("peter")), ctx()));
    assert!(!format!("{pending:?}").contains("secret1"));
}
