//! WAMP-SCRAM tests: the RFC 7677 test vector (spec dialect), a vector from
//! Autobahn|Python 26.10 (`derive_scram_credential` + `AuthScram.on_challenge`,
//! Crossbar dialect), KDF outputs from argon2-cffi, and full flows with a client
//! written here.

use super::*;
use crate::auth::encoding::hex_encode;
use crate::auth::principal::ChannelBindings;
use crate::auth::testutil::*;
use crate::auth::{Authenticator, Step};

/// RFC 7677 §3.
const RFC_CLIENT_NONCE: &str = "rOprNGfwEbeRWgbNEkqO";
const RFC_SERVER_NONCE: &str = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
const RFC_SALT_B64: &str = "W22ZaJ0SNY7soEsUEjb6gQ==";
const RFC_PROOF: &str = "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
const RFC_VERIFIER: &str = "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

/// `derive_scram_credential("alice@example.com", "secret123", salt=bytes(range(16)))`.
const PY_STORED_KEY: &str = "492b4cab45b74fd90c33583434f92e7b0a16d450e750b599dd24524be3953f73";
const PY_SERVER_KEY: &str = "245c72c8531b34f9bd3814eaf9cc3a5044d387799bb2d9b71330ab9ed4b78b4d";
const PY_SALT: &str = "000102030405060708090a0b0c0d0e0f";
/// `AuthScram(authid="alice", password="secret123")` with client nonce 16 × 0xAA and a
/// server nonce of 16 × 0xAA + 16 × 0xBB.
const PY_CLIENT_NONCE: &str = "qqqqqqqqqqqqqqqqqqqqqg==";
const PY_SERVER_NONCE: &str = "qqqqqqqqqqqqqqqqqqqqqru7u7u7u7u7u7u7u7u7u7s=";
const PY_PROOF: &str = "juiZF39t5j3WKSFh92NzMwHIFSdTis//xbbgCwAFkpc=";
const PY_SERVER_SIGNATURE: &str = "MOQALgZuTm2WoUEqbviBSUimfusDbgmW0eblTKUACGQ=";

fn py_credential() -> Credential {
    Credential::from_parts(KDF_ARGON2ID_13_AUTOBAHN, 4096, Some(512), PY_SALT, PY_STORED_KEY, PY_SERVER_KEY)
        .expect("valid")
}

fn rfc_start() -> Start {
    Start {
        dialect: Dialect::Spec,
        authid: "user".into(),
        client_nonce: RFC_CLIENT_NONCE.into(),
        client_nonce_raw: b64_decode_lenient(RFC_CLIENT_NONCE).unwrap_or_default(),
        binding: None,
    }
}

fn owner(authid: &str) -> Principal {
    Principal {
        authid: authid.into(),
        authrole: "user".into(),
        authmethod: "x".into(),
        authprovider: "static".into(),
        authextra: Dict::new(),
    }
}

fn expect_verify(next: Next<Pending>) -> (Dict, Pending) {
    match next {
        Next::Challenge(extra, p) => (extra, p),
        _ => panic!("expected a challenge"),
    }
}

fn welcome_extra(next: Next<Pending>) -> Dict {
    match next {
        Next::Welcome(p) => p.authextra,
        Next::Abort(e) => panic!("expected WELCOME, got ABORT {e}"),
        _ => panic!("expected WELCOME"),
    }
}

#[test]
fn rfc7677_vector() {
    let salt = b64_decode(RFC_SALT_B64).expect("salt");
    let credential = derive_credential("pencil", &salt, KDF_PBKDF2, 4096, None).expect("derive");
    let msg = auth_message(&rfc_start(), &credential, RFC_SERVER_NONCE);
    assert_eq!(
        msg,
        format!(
            "n=user,r={RFC_CLIENT_NONCE},r={RFC_SERVER_NONCE},s={RFC_SALT_B64},i=4096,c=biws,r={RFC_SERVER_NONCE}"
        )
    );
    let (extra, pending) =
        expect_verify(challenge_with(rfc_start(), owner("user"), credential, RFC_SERVER_NONCE.into()));
    assert_eq!(extra.get("memory"), Some(&Value::Null));
    let msg = Authenticate { signature: RFC_PROOF.into(), extra: dict! { "nonce" => RFC_SERVER_NONCE } };
    let authextra = welcome_extra(pending.authenticate(&msg, &ctx()));
    assert_eq!(authextra.get("verifier"), Some(&Value::from(RFC_VERIFIER)));
}

#[test]
fn autobahn_vector() {
    let a = Authenticator::new(&toml_auth(&format!(
        "[scram.principals.alice]\nrole = \"user\"\nkdf = \"argon2id-13\"\niterations = 4096\nmemory = 512\n\
         salt = \"{PY_SALT}\"\nstored-key = \"{PY_STORED_KEY}\"\nserver-key = \"{PY_SERVER_KEY}\"\n"
    )))
    .expect("valid");
    // The real hello path (client nonce parsing), then a fixed server nonce.
    let hello = hello_extra(&["scram"], Some("alice"), dict! { "nonce" => PY_CLIENT_NONCE });
    let (c, _) = expect_challenge(a.hello(&hello, ctx()));
    assert_eq!(c.auth_method, "scram");
    let keys: Vec<&str> = c.extra.keys().map(String::as_str).collect();
    assert_eq!(keys, ["iterations", "kdf", "memory", "nonce", "salt"], "Autobahn rejects other keys");
    let nonce = c.extra.get("nonce").and_then(Value::as_str).and_then(b64_decode).expect("nonce");
    assert_eq!((nonce.len(), &nonce[..16]), (32, &[0xAA; 16][..]));

    let start =
        start(Dialect::Crossbar, "alice".into(), &dict! { "nonce" => PY_CLIENT_NONCE }, &ctx()).expect("ok");
    let (_, pending) =
        expect_verify(challenge_with(start, owner("alice"), py_credential(), PY_SERVER_NONCE.into()));
    let authextra = welcome_extra(pending.authenticate(&authenticate(PY_PROOF), &ctx()));
    assert_eq!(authextra.get("scram_server_signature"), Some(&Value::from(PY_SERVER_SIGNATURE)));
}

#[test]
fn kdfs_match_argon2_cffi() {
    // argon2.low_level.hash_secret_raw(b"pencil", b"saltsaltsaltsalt", time_cost=2,
    // memory_cost=64, parallelism=1, hash_len=32, type=Type.ID), then the SCRAM keys.
    let c = derive_credential("pencil", b"saltsaltsaltsalt", KDF_ARGON2ID13, 2, Some(64)).expect("derive");
    assert_eq!(hex_encode(&c.stored_key), "f6100ee7fd99047f566888a08ed45f61df54b93679cf8a09000179707126edae");
    assert_eq!(hex_encode(&c.server_key), "e3c4cf971cf8459f2d3f15251803b92bddd59605c2cd9486003446dec1980f4e");
    // Autobahn's _hash_argon2id13_secret: SaltedPassword is the base64 text.
    let sp =
        salted_password("pencil", b"saltsaltsaltsalt", KDF_ARGON2ID_13_AUTOBAHN, 2, Some(64)).expect("kdf");
    assert_eq!(sp, b"m9+GsEYlxLy5zVaYpdg+E4HlDUAF/mpGWxUeXYgilQA");
    let c = derive_credential("pencil", b"saltsaltsaltsalt", KDF_ARGON2ID_13_AUTOBAHN, 2, Some(64))
        .expect("derive");
    assert_eq!(hex_encode(&c.stored_key), "635475a7e11060537dab05ae2026a73631c8d93d693b930efb5450ac6a1a6e00");
    assert_eq!(hex_encode(&c.server_key), "2fb1028407732b0d201f209b2987016538edd217fcc4ab9797454c5f65fcb27f");
}

/// A SCRAM client: the proof and AUTHENTICATE extra for a CHALLENGE.
fn client_final(
    dialect: Dialect,
    authid: &str,
    client_nonce: &str,
    extra: &Dict,
    password: &str,
    cb: Option<(&str, &[u8])>,
) -> Authenticate {
    let s = |k: &str| extra.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
    let n = |k: &str| extra.get(k).and_then(Value::as_u64).and_then(|v| u32::try_from(v).ok());
    let salt = b64_decode(&s("salt")).unwrap_or_default();
    let salted =
        salted_password(password, &salt, &s("kdf"), n("iterations").unwrap_or(1), n("memory")).expect("kdf");
    let ck = client_key(&salted);
    let credential = Credential {
        kdf: s("kdf"),
        iterations: n("iterations").unwrap_or(1),
        memory: n("memory"),
        salt,
        stored_key: sha256(&ck),
        server_key: [0; 32],
    };
    let start = Start {
        dialect,
        authid: authid.into(),
        client_nonce: match dialect {
            Dialect::Spec => client_nonce.into(),
            Dialect::Crossbar => b64_encode(&b64_decode_lenient(client_nonce).unwrap_or_default()),
        },
        client_nonce_raw: Vec::new(),
        binding: cb.map(|(k, d)| (k.to_owned(), d.to_vec())),
    };
    let message = auth_message(&start, &credential, &s("nonce"));
    let proof = xor(&ck, &hmac_sha256(&credential.stored_key, message.as_bytes()));
    let mut out = dict! { "nonce" => s("nonce") };
    if let Some((kind, data)) = cb {
        out.insert("channel_binding".into(), kind.into());
        out.insert("cbind_data".into(), b64_encode(data).into());
    }
    Authenticate { signature: b64_encode(&proof), extra: out }
}

fn auth(extra_config: &str) -> Authenticator {
    let salt = [3u8; 16];
    let mut cfg = String::from(extra_config);
    for (authid, kdf, iterations, memory) in
        [("pia", KDF_PBKDF2, 16, None), ("ada", KDF_ARGON2ID13, 1, Some(8))]
    {
        let c = derive_credential("pw", &salt, kdf, iterations, memory).expect("derive");
        cfg += &format!(
            "[scram.principals.{authid}]\nrole = \"user\"\nkdf = \"{kdf}\"\niterations = {iterations}\n{}\
             salt = \"{}\"\nstored_key = \"{}\"\nserver_key = \"{}\"\n",
            memory.map(|m| format!("memory = {m}\n")).unwrap_or_default(),
            hex_encode(&salt),
            hex_encode(&c.stored_key),
            hex_encode(&c.server_key)
        );
    }
    Authenticator::new(&toml_auth(&cfg)).expect("valid")
}

fn run(a: &Authenticator, dialect: Dialect, authid: &str, password: &str) -> Step {
    let nonce = b64_encode(&[0x42; 16]);
    let hello = hello_extra(&[dialect.method()], Some(authid), dict! { "nonce" => nonce.as_str() });
    let (c, pending) = expect_challenge(a.hello(&hello, ctx()));
    let msg = client_final(dialect, authid, &nonce, &c.extra, password, None);
    pending.authenticate(&msg, NOW)
}

#[test]
fn full_flows_both_dialects_both_kdfs() {
    let a = auth("");
    for dialect in [Dialect::Spec, Dialect::Crossbar] {
        for authid in ["pia", "ada"] {
            let p = expect_welcome(run(&a, dialect, authid, "pw"));
            assert_eq!((p.authid.as_str(), p.authmethod.as_str()), (authid, dialect.method()));
            let key = if dialect == Dialect::Spec { "verifier" } else { "scram_server_signature" };
            assert!(p.authextra.contains_key(key));
            let e = expect_abort(run(&a, dialect, authid, "wrong"));
            assert_eq!(e.uri(), "wamp.error.authentication_denied");
        }
    }
}

#[test]
fn unknown_authid_missing_nonce_and_not_offered() {
    let a = auth("disclose_unknown_authids = true\n");
    let hello = hello_extra(&["wamp-scram"], Some("eve"), dict! { "nonce" => "AAAA" });
    assert_eq!(expect_abort(a.hello(&hello, ctx())).uri(), "wamp.error.no_such_principal");
    let hello = hello_extra(&["wamp-scram"], Some("pia"), Dict::new());
    assert_eq!(expect_abort(a.hello(&hello, ctx())).uri(), "wamp.error.authentication_denied");
    let hello = hello_extra(&["wamp-scram"], Some("pia"), dict! { "nonce" => "not base64!" });
    expect_abort(a.hello(&hello, ctx()));
    let hello = hello_extra(&["ticket"], Some("pia"), dict! { "nonce" => "AAAA" });
    assert_eq!(expect_abort(a.hello(&hello, ctx())).uri(), "wamp.error.no_matching_auth_method");
}

#[test]
fn hidden_unknown_authids_get_a_stable_mock_challenge() {
    let a = auth("");
    let hello = hello_extra(&["wamp-scram"], Some("eve"), dict! { "nonce" => "AAAA" });
    let (c1, pending) = expect_challenge(a.hello(&hello, ctx()));
    let (c2, _) = expect_challenge(a.hello(&hello, ctx()));
    assert_eq!(c1.extra.get("salt"), c2.extra.get("salt"));
    assert_eq!(
        c1.extra.get("kdf"),
        Some(&Value::from(KDF_ARGON2ID13)),
        "parameters of \"ada\", first by authid"
    );
    let msg = client_final(Dialect::Spec, "eve", "AAAA", &c1.extra, "pw", None);
    let e = expect_abort(pending.authenticate(&msg, NOW));
    assert_eq!(e, AuthError::denied("invalid SCRAM proof"));
}

#[test]
fn tampered_nonce_and_replayed_proof() {
    let a = auth("");
    let nonce = b64_encode(&[0x42; 16]);
    let hello = hello_extra(&["wamp-scram"], Some("pia"), dict! { "nonce" => nonce.as_str() });
    let (c, pending) = expect_challenge(a.hello(&hello, ctx()));
    let mut msg = client_final(Dialect::Spec, "pia", &nonce, &c.extra, "pw", None);
    msg.extra.insert("nonce".into(), format!("{nonce}AAAA").into());
    expect_abort(pending.authenticate(&msg, NOW));

    let (c, first) = expect_challenge(a.hello(&hello, ctx()));
    let msg = client_final(Dialect::Spec, "pia", &nonce, &c.extra, "pw", None);
    expect_welcome(first.authenticate(&msg, NOW));
    let (_, second) = expect_challenge(a.hello(&hello, ctx()));
    let mut replay = msg.clone();
    replay.extra.remove("nonce");
    assert_eq!(expect_abort(second.authenticate(&replay, NOW)).uri(), "wamp.error.authentication_denied");
}

#[test]
fn spec_channel_binding() {
    let a = auth("");
    let data = [0x77u8; 32];
    let mut tls = ctx();
    tls.transport.tls = true;
    tls.transport.channel_bindings =
        ChannelBindings { tls_exporter: Some(data.to_vec()), ..Default::default() };
    let nonce = "QUJDRA==";
    let hello = hello_extra(
        &["wamp-scram"],
        Some("pia"),
        dict! { "nonce" => nonce, "channel_binding" => "tls-exporter" },
    );
    let (c, pending) = expect_challenge(a.hello(&hello, tls.clone()));
    let msg = client_final(Dialect::Spec, "pia", nonce, &c.extra, "pw", Some(("tls-exporter", &data)));
    expect_welcome(pending.authenticate(&msg, NOW));

    let (c, pending) = expect_challenge(a.hello(&hello, tls.clone()));
    let msg = client_final(Dialect::Spec, "pia", nonce, &c.extra, "pw", Some(("tls-exporter", &[0u8; 32])));
    expect_abort(pending.authenticate(&msg, NOW));

    let plain = hello_extra(
        &["wamp-scram"],
        Some("pia"),
        dict! { "nonce" => nonce, "channel_binding" => "tls-unique" },
    );
    expect_abort(a.hello(&plain, tls));
}

#[test]
fn dynamic_scram() {
    let a = Authenticator::new(&toml_auth("[scram]\nauthenticator = \"com.auth\"\n")).expect("valid");
    let c = derive_credential("pw", &[5; 16], KDF_PBKDF2, 16, None).expect("derive");
    let reply = dict! {
        "role" => "user",
        "kdf" => "pbkdf2",
        "iterations" => 16i64,
        "salt" => hex_encode(&c.salt),
        "stored-key" => hex_encode(&c.stored_key),
        "server-key" => hex_encode(&c.server_key),
    };
    let nonce = "QUJDRA==";
    let hello = hello_extra(&["wamp-scram"], Some("pia"), dict! { "nonce" => nonce });
    let (call, pending) = expect_call(a.hello(&hello, ctx()));
    assert_eq!(call.args[1], Value::from("pia"));
    let (ch, pending) = expect_challenge(pending.authenticator_reply(Ok(Value::Dict(reply)), NOW));
    let msg = client_final(Dialect::Spec, "pia", nonce, &ch.extra, "pw", None);
    let p = expect_welcome(pending.authenticate(&msg, NOW));
    assert_eq!(p.authprovider, "dynamic");

    let (_, pending) = expect_call(a.hello(&hello, ctx()));
    let e = expect_abort(pending.authenticator_reply(Ok(Value::Dict(dict! { "role" => "user" })), NOW));
    assert_eq!(e.uri(), "wamp.error.authentication_failed");
}

#[test]
fn config_errors_and_redaction() {
    let base = "[scram.principals.p]\nrole = \"r\"\niterations = 1\nsalt = \"00\"\n";
    let keys = format!("stored_key = \"{}\"\nserver_key = \"{}\"\n", "ab".repeat(32), "cd".repeat(32));
    assert!(Authenticator::new(&toml_auth(&format!("{base}kdf = \"md5\"\n{keys}"))).is_err());
    assert!(Authenticator::new(&toml_auth(&format!("{base}kdf = \"argon2id13\"\n{keys}"))).is_err());
    assert!(
        Authenticator::new(&toml_auth(&format!(
            "{base}kdf = \"pbkdf2\"\nstored_key = \"ab\"\nserver_key = \"cd\"\n"
        )))
        .is_err()
    );
    let a = Authenticator::new(&toml_auth(&format!("{base}kdf = \"pbkdf2\"\n{keys}"))).expect("valid");
    assert!(!format!("{a:?}").contains(&"ab".repeat(32)));
}

#[test]
fn escaping() {
    assert_eq!(escape("a=b,c"), "a=3Db=2Cc");
}
