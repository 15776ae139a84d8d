//! WAMP-Cryptosign tests, with the spec's test vectors (made with Autobahn|Python) and
//! public keys derived by PyNaCl.

use super::*;
use crate::auth::principal::ChannelBindings;
use crate::auth::testutil::*;
use crate::auth::{Authenticator, CallFailure};

/// `(channel_id, private_key, challenge, signature)` from
/// `rfc/text/advanced/authentication_cryptosign.md`, "Test Vectors".
const SPEC_VECTORS: [(Option<&str>, &str, &str, &str); 6] = [
    (
        None,
        "4d57d97a68f555696620a6d849c0ce582568518d729eb753dc7c732de2804510",
        "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        "b32675b221f08593213737bef8240e7c15228b07028e19595294678c90d11c0cae80a357331bfc5cc9fb71081464e6e75013517c2cf067ad566a6b7b728e5d03ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    ),
    (
        None,
        "d511fe78e23934b3dadb52fcd022974b80bd92bccc7c5cf404e46cc0a8a2f5cd",
        "b26c1f87c13fc1da14997f1b5a71995dff8fbe0a62fae8473c7bdbd05bfb607d",
        "d4209ad10d5aff6bfbc009d7e924795de138a63515efc7afc6b01b7fe5201372190374886a70207b042294af5bd64ce725cd8dceb344e6d11c09d1aaaf4d660fb26c1f87c13fc1da14997f1b5a71995dff8fbe0a62fae8473c7bdbd05bfb607d",
    ),
    (
        None,
        "6e1fde9cf9e2359a87420b65a87dc0c66136e66945196ba2475990d8a0c3a25b",
        "b05e6b8ad4d69abf74aa3be3c0ee40ae07d66e1895b9ab09285a2f1192d562d2",
        "7beb282184baadd08f166f16dd683b39cab53816ed81e6955def951cb2ddad1ec184e206746fd82bda075af03711d3d5658fc84a76196b0fa8d1ebc92ef9f30bb05e6b8ad4d69abf74aa3be3c0ee40ae07d66e1895b9ab09285a2f1192d562d2",
    ),
    (
        Some("62e935ae755f3d48f80d4d59f6121358c435722a67e859cc0caa8b539027f2ff"),
        "4d57d97a68f555696620a6d849c0ce582568518d729eb753dc7c732de2804510",
        "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        "9b6f41540c9b95b4b7b281c3042fa9c54cef43c842d62ea3fd6030fcb66e70b3e80d49d44c29d1635da9348d02ec93f3ed1ef227dfb59a07b580095c2b82f80f9d16ca518aa0c2b707f2b2a609edeca73bca8dd59817a633f35574ac6fd80d00",
    ),
    (
        Some("62e935ae755f3d48f80d4d59f6121358c435722a67e859cc0caa8b539027f2ff"),
        "d511fe78e23934b3dadb52fcd022974b80bd92bccc7c5cf404e46cc0a8a2f5cd",
        "b26c1f87c13fc1da14997f1b5a71995dff8fbe0a62fae8473c7bdbd05bfb607d",
        "305aaa3ac25e98f651427688b3fc43fe7d8a68a7ec1d7d61c61517c519bd4a427c3015599d83ca28b4c652333920223844ef0725eb5dc2febfd6af7677b73f01d0852a29b460fc92ec943242ac638a053bbacc200512b18b30d15083cbdc9282",
    ),
    (
        Some("62e935ae755f3d48f80d4d59f6121358c435722a67e859cc0caa8b539027f2ff"),
        "6e1fde9cf9e2359a87420b65a87dc0c66136e66945196ba2475990d8a0c3a25b",
        "b05e6b8ad4d69abf74aa3be3c0ee40ae07d66e1895b9ab09285a2f1192d562d2",
        "ee3c7644fd8070532bc1fde3d70d742267da545d8c8f03e63bda63f1ad4214f4d2c4bfdb4eb9526def42deeb7e31602a6ff99eba893e0a4ad4d45892ca75e608d2b75e24a189a7f78ca776ba36fc53f6c3e31c32f251f2c524f0a44202f2902d",
    ),
];

/// `nacl.signing.SigningKey(seed).verify_key` for the three seeds above.
const NACL_PUBKEYS: [(&str, &str); 3] = [
    (
        "4d57d97a68f555696620a6d849c0ce582568518d729eb753dc7c732de2804510",
        "1adfc8bfe1d35616e64dffbd900096f23b066f914c8c2ffbb66f6075b96e116d",
    ),
    (
        "d511fe78e23934b3dadb52fcd022974b80bd92bccc7c5cf404e46cc0a8a2f5cd",
        "6ed32739ff04a6074044ff0b0e3bfc7c856bc9d5f1d25efc57363bda0af3a8b0",
    ),
    (
        "6e1fde9cf9e2359a87420b65a87dc0c66136e66945196ba2475990d8a0c3a25b",
        "28e11f427b82b9a625ee7ac89a7d29326b505f2dc11dd88c1245f83b6da79a85",
    ),
];

const SEED: [u8; 32] = [7; 32];
const OTHER_SEED: [u8; 32] = [9; 32];
const CHANNEL: [u8; 32] = [0x5a; 32];

fn seed(hex: &str) -> [u8; 32] {
    hex_array::<32>(hex).expect("test seed")
}

fn auth_with(extra_config: &str) -> Authenticator {
    let cfg = toml_auth(&format!(
        "{extra_config}\n[cryptosign.principals.\"client01@example.com\"]\nrole = \"device\"\n\
         authorized_keys = [\"{}\"]\n",
        public_key_hex(&SEED)
    ));
    Authenticator::new(&cfg).expect("valid config")
}

fn hello_key(seed: &[u8; 32], authid: Option<&str>, more: Dict) -> HelloAuth {
    let mut extra = dict! { "pubkey" => public_key_hex(seed) };
    extra.extend(more);
    hello_extra(&["cryptosign"], authid, extra)
}

#[test]
fn spec_vectors_verify() {
    for (seed_hex, pubkey_hex) in NACL_PUBKEYS {
        assert_eq!(public_key_hex(&seed(seed_hex)), pubkey_hex);
    }
    for (channel, key, challenge, signature) in SPEC_VECTORS {
        let challenge = hex_array::<32>(challenge).expect("vector");
        let channel = channel.and_then(hex_decode);
        let expected = match &channel {
            Some(c) => xor(&challenge, c),
            None => challenge.to_vec(),
        };
        let pubkey = SigningKey::from_bytes(&seed(key)).verifying_key();
        assert_eq!(verify(&pubkey, &expected, signature), Ok(()));
        let extra = dict! { "challenge" => hex_encode(&challenge) };
        assert_eq!(client_sign(&seed(key), &extra, channel.as_deref()).as_deref(), Some(signature));
    }
}

#[test]
fn tampered_signatures_are_refused() {
    let (_, key, challenge, signature) = SPEC_VECTORS[1];
    let pubkey = SigningKey::from_bytes(&seed(key)).verifying_key();
    let expected = hex_decode(challenge).expect("vector");
    assert_eq!(verify(&pubkey, &expected, &signature[..128]), Ok(()), "bare 64-byte signature");
    let mut bad = signature.to_owned();
    bad.replace_range(0..2, if &signature[0..2] == "00" { "01" } else { "00" });
    assert_eq!(verify(&pubkey, &expected, &bad), Err("invalid signature"));
    let other = SPEC_VECTORS[2].2;
    assert!(verify(&pubkey, &hex_decode(other).unwrap_or_default(), signature).is_err());
    assert!(verify(&pubkey, &expected, &signature[..190]).is_err());
    assert!(verify(&pubkey, &expected, "zz").is_err());
    let wrong_key = SigningKey::from_bytes(&seed(SPEC_VECTORS[0].1)).verifying_key();
    assert_eq!(verify(&wrong_key, &expected, signature), Err("invalid signature"));
}

#[test]
fn full_flow_with_and_without_authid() {
    for authid in [Some("client01@example.com"), None] {
        let (c, pending) =
            expect_challenge(auth_with("").hello(&hello_key(&SEED, authid, Dict::new()), ctx()));
        assert_eq!(c.auth_method, "cryptosign");
        assert!(!c.extra.contains_key("channel_binding"));
        let sig = client_sign(&SEED, &c.extra, None).expect("signable");
        let p = expect_welcome(pending.authenticate(&authenticate(&sig), NOW));
        assert_eq!((p.authid.as_str(), p.authrole.as_str()), ("client01@example.com", "device"));
    }
}

#[test]
fn wrong_key_unknown_key_and_unknown_authid() {
    let a = auth_with("");
    let (c, pending) = expect_challenge(a.hello(&hello_key(&SEED, None, Dict::new()), ctx()));
    let sig = client_sign(&OTHER_SEED, &c.extra, None).expect("signable");
    assert_eq!(
        expect_abort(pending.authenticate(&authenticate(&sig), NOW)).uri(),
        "wamp.error.authentication_denied"
    );
    let e = expect_abort(a.hello(&hello_key(&OTHER_SEED, None, Dict::new()), ctx()));
    assert_eq!(e.uri(), "wamp.error.authentication_denied", "unknown authids are hidden by default");
    let wrong_key =
        expect_abort(a.hello(&hello_key(&OTHER_SEED, Some("client01@example.com"), Dict::new()), ctx()));
    assert_eq!(wrong_key.uri(), "wamp.error.authentication_denied");
    let e = expect_abort(a.hello(&hello_key(&SEED, Some("nobody"), Dict::new()), ctx()));
    assert_eq!(e, wrong_key, "an unknown authid is answered like a key it does not have");
    let disclosing = auth_with("disclose_unknown_authids = true");
    let e = expect_abort(disclosing.hello(&hello_key(&OTHER_SEED, None, Dict::new()), ctx()));
    assert_eq!(e.uri(), "wamp.error.no_such_principal");
    let e = expect_abort(disclosing.hello(&hello_key(&SEED, Some("nobody"), Dict::new()), ctx()));
    assert_eq!(e.uri(), "wamp.error.no_such_principal");
    let e = expect_abort(a.hello(&hello_extra(&["cryptosign"], None, Dict::new()), ctx()));
    assert_eq!(e.uri(), "wamp.error.authentication_denied");
    let e = expect_abort(a.hello(&hello_key(&SEED, None, Dict::new()).with_methods(&["ticket"]), ctx()));
    assert_eq!(e.uri(), "wamp.error.no_matching_auth_method");
}

#[test]
fn replay_of_an_old_signature_fails() {
    let a = auth_with("");
    let (c, first) = expect_challenge(a.hello(&hello_key(&SEED, None, Dict::new()), ctx()));
    let sig = client_sign(&SEED, &c.extra, None).expect("signable");
    expect_welcome(first.authenticate(&authenticate(&sig), NOW));
    let (_, second) = expect_challenge(a.hello(&hello_key(&SEED, None, Dict::new()), ctx()));
    expect_abort(second.authenticate(&authenticate(&sig), NOW));
}

fn tls_ctx(unique: Option<[u8; 32]>, exporter: Option<[u8; 32]>) -> Context {
    let mut c = ctx();
    c.transport.tls = true;
    c.transport.channel_bindings = ChannelBindings {
        tls_unique: unique.map(|d| d.to_vec()),
        tls_exporter: exporter.map(|d| d.to_vec()),
        tls_server_end_point: None,
    };
    c
}

#[test]
fn channel_binding() {
    let a = auth_with("");
    for kind in CHANNEL_BINDINGS {
        let ctx = tls_ctx(Some(CHANNEL), Some(CHANNEL));
        let (c, pending) =
            expect_challenge(a.hello(&hello_key(&SEED, None, dict! { "channel_binding" => kind }), ctx));
        assert_eq!(c.extra.get("channel_binding"), Some(&Value::from(kind)));
        let sig = client_sign(&SEED, &c.extra, Some(&CHANNEL)).expect("signable");
        expect_welcome(pending.authenticate(&authenticate(&sig), NOW));
        // Signing the bare challenge (a man in the middle relaying it) fails.
        let ctx = tls_ctx(Some(CHANNEL), Some(CHANNEL));
        let (c, pending) =
            expect_challenge(a.hello(&hello_key(&SEED, None, dict! { "channel_binding" => kind }), ctx));
        let sig = client_sign(&SEED, &c.extra, None).expect("signable");
        expect_abort(pending.authenticate(&authenticate(&sig), NOW));
    }
    let hello = hello_key(&SEED, None, dict! { "channel_binding" => "tls-unique" });
    let e = expect_abort(a.hello(&hello, tls_ctx(None, Some(CHANNEL))));
    assert_eq!(e.uri(), "wamp.error.authentication_denied");
    let hello = hello_key(&SEED, None, dict! { "channel_binding" => "tls-bogus" });
    expect_abort(a.hello(&hello, tls_ctx(Some(CHANNEL), None)));
}

#[test]
fn router_authentication() {
    let a = auth_with(&format!("[cryptosign]\nrouter_key = \"{}\"\n", hex_encode(&OTHER_SEED)));
    let client_challenge = [0x11u8; 32];
    let more = dict! { "challenge" => hex_encode(&client_challenge), "channel_binding" => "tls-exporter" };
    let (c, _) = expect_challenge(a.hello(&hello_key(&SEED, None, more), tls_ctx(None, Some(CHANNEL))));
    let router_pub = c.extra.get("pubkey").and_then(Value::as_str).expect("router pubkey");
    assert_eq!(router_pub, public_key_hex(&OTHER_SEED));
    let signed = c.extra.get("signature").and_then(Value::as_str).expect("router signature");
    let router_key = parse_pubkey(router_pub).expect("valid key");
    assert_eq!(verify(&router_key, &xor(&client_challenge, &CHANNEL), signed), Ok(()));
    let bad = dict! { "challenge" => "abcd" };
    expect_abort(a.hello(&hello_key(&SEED, None, bad), ctx()));
}

#[test]
fn dynamic_cryptosign() {
    let a = Authenticator::new(&toml_auth("[cryptosign]\nauthenticator = \"com.auth\"\n")).expect("valid");
    let (call, pending) = expect_call(a.hello(&hello_key(&SEED, None, Dict::new()), ctx()));
    let details = call.args[2].as_dict().expect("details");
    let pubkey = details.get("authextra").and_then(Value::as_dict).and_then(|e| e.get("pubkey"));
    assert_eq!(pubkey, Some(&Value::from(public_key_hex(&SEED))));
    let (c, pending) = expect_challenge(pending.authenticator_reply(Ok("device".into()), NOW));
    let sig = client_sign(&SEED, &c.extra, None).expect("signable");
    let p = expect_welcome(pending.authenticate(&authenticate(&sig), NOW));
    assert_eq!((p.authid, p.authprovider.as_str()), (public_key_hex(&SEED), "dynamic"));

    let (_, pending) = expect_call(a.hello(&hello_key(&SEED, None, Dict::new()), ctx()));
    let reply = dict! { "role" => "device", "pubkey" => public_key_hex(&OTHER_SEED) };
    expect_abort(pending.authenticator_reply(Ok(Value::Dict(reply)), NOW));
    let (_, pending) = expect_call(a.hello(&hello_key(&SEED, None, Dict::new()), ctx()));
    let failure = CallFailure::from_error("com.example.banned", &vec![]);
    assert_eq!(expect_abort(pending.authenticator_reply(Err(failure), NOW)).uri(), "com.example.banned");
}

#[test]
fn config_errors() {
    let bad = toml_auth("[cryptosign.principals.a]\nrole = \"r\"\nauthorized_keys = [\"abcd\"]\n");
    assert!(Authenticator::new(&bad).is_err_and(|e| e.to_string().contains("cryptosign.principals.a")));
    let bad = toml_auth("[cryptosign]\nrouter_key = \"00\"\n");
    assert!(Authenticator::new(&bad).is_err());
    let a = auth_with(&format!("[cryptosign]\nrouter_key = \"{}\"\n", hex_encode(&OTHER_SEED)));
    assert!(!format!("{a:?}").contains(&hex_encode(&OTHER_SEED)));
}

#[test]
fn one_key_two_authids_needs_an_authid() {
    let key = public_key_hex(&SEED);
    let cfg = toml_auth(&format!(
        "[cryptosign.principals.a]\nrole = \"r\"\nauthorized_keys = [\"{key}\"]\n\
         [cryptosign.principals.b]\nrole = \"r\"\nauthorized_keys = [\"{key}\"]\n"
    ));
    let a = Authenticator::new(&cfg).expect("valid");
    expect_abort(a.hello(&hello_key(&SEED, None, Dict::new()), ctx()));
    expect_challenge(a.hello(&hello_key(&SEED, Some("b"), Dict::new()), ctx()));
}

trait WithMethods {
    fn with_methods(self, methods: &[&str]) -> Self;
}

impl WithMethods for HelloAuth {
    fn with_methods(mut self, methods: &[&str]) -> Self {
        self.authmethods = methods.iter().map(|m| (*m).to_owned()).collect();
        self
    }
}
