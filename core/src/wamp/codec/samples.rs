//! Test fixtures: one realistic instance of every message type, plus payload variants.

use crate::dict;
use crate::ids::{MAX_ID, PublicationId, RegistrationId, RequestId, SessionId, SubscriptionId};
use crate::wamp::message::*;
use crate::wamp::value::{Dict, Value};

fn roles() -> Dict {
    dict! {
        "roles" => dict! {
            "caller" => dict! {"features" => dict! {"call_canceling" => true}},
            "subscriber" => dict! {},
        },
        "authmethods" => Value::List(vec!["ticket".into(), "anonymous".into()]),
        "authid" => "alice",
    }
}

fn nested_payload() -> Payload {
    Payload::Decoded(Arguments {
        args: Some(vec![
            Value::Int(-42),
            Value::UInt(u64::MAX),
            Value::Float(3.25),
            Value::Null,
            Value::Bool(false),
            Value::Str("héllo \"wörld\"\n".into()),
            Value::Bytes(vec![0, 1, 2, 254, 255]),
            Value::List(vec![Value::List(vec![]), Value::Dict(dict! {})]),
        ]),
        kwargs: Some(dict! {
            "nested" => dict! {"deep" => Value::List(vec![dict! {"x" => 1u64}.into()])},
            "empty" => "",
        }),
    })
}

fn kwargs_only() -> Payload {
    Payload::new(Some(vec![]), Some(dict! {"color" => "orange", "size" => 23u64}))
}

/// A PUBLISH whose only argument is binary.
pub fn publish_with_bytes() -> Message {
    Message::Publish(Publish {
        request: RequestId(7),
        options: dict! {},
        topic: "com.example.bin".into(),
        payload: Payload::args(vec![Value::Bytes(vec![0x00, 0x01, 0xff, 0x80])]),
    })
}

/// Every message type at least once.
pub fn all_messages() -> Vec<Message> {
    let opts = dict! {"acknowledge" => true, "exclude_me" => false};
    vec![
        Message::Hello(Hello { realm: "com.example.realm".into(), details: roles() }),
        Message::Welcome(Welcome { session: SessionId(MAX_ID), details: roles() }),
        Message::Abort(Abort {
            details: dict! {"message" => "The realm does not exist."},
            reason: "wamp.error.no_such_realm".into(),
        }),
        Message::Challenge(Challenge {
            auth_method: "wampcra".into(),
            extra: dict! {"challenge" => "{\"nonce\": \"LHRTC9zeOIrt_9U3\"}", "iterations" => 1000u64},
        }),
        Message::Authenticate(Authenticate {
            signature: "gir1mSx+deCDUV7wRM5SGIn/+R/ClqLZuH4m7FJeBVI=".into(),
            extra: dict! {},
        }),
        Message::Goodbye(Goodbye { details: dict! {}, reason: "wamp.close.close_realm".into() }),
        Message::Error(Error {
            request_type: code::CALL,
            request: RequestId(7_814_135),
            details: dict! {},
            error: "com.myapp.error.object_write_protected".into(),
            payload: nested_payload(),
        }),
        Message::Error(Error {
            request_type: code::SUBSCRIBE,
            request: RequestId(1),
            details: dict! {},
            error: "wamp.error.not_authorized".into(),
            payload: Payload::default(),
        }),
        Message::Publish(Publish {
            request: RequestId(239_714_735),
            options: opts.clone(),
            topic: "com.myapp.mytopic1".into(),
            payload: nested_payload(),
        }),
        Message::Publish(Publish {
            request: RequestId(2),
            options: dict! {},
            topic: "com.myapp.signal".into(),
            payload: Payload::default(),
        }),
        Message::Publish(Publish {
            request: RequestId(3),
            options: dict! {},
            topic: "com.myapp.kw".into(),
            payload: kwargs_only(),
        }),
        Message::Published(Published {
            request: RequestId(239_714_735),
            publication: PublicationId(4_429_313_566),
        }),
        Message::Subscribe(Subscribe {
            request: RequestId(713_845_233),
            options: dict! {"match" => "prefix"},
            topic: "com.myapp".into(),
        }),
        Message::Subscribed(Subscribed {
            request: RequestId(713_845_233),
            subscription: SubscriptionId(5_512_315_355),
        }),
        Message::Unsubscribe(Unsubscribe {
            request: RequestId(85_346_237),
            subscription: SubscriptionId(5_512_315_355),
        }),
        Message::Unsubscribed(Unsubscribed { request: RequestId(85_346_237), details: None }),
        Message::Unsubscribed(Unsubscribed {
            request: RequestId(0),
            details: Some(dict! {"subscription" => 5_512_315_355u64, "reason" => "wamp.error.x"}),
        }),
        Message::Event(Event {
            subscription: SubscriptionId(5_512_315_355),
            publication: PublicationId(4_429_313_566),
            details: dict! {"publisher" => 1234u64, "topic" => "com.myapp.a"},
            payload: nested_payload(),
        }),
        Message::Event(Event {
            subscription: SubscriptionId(1),
            publication: PublicationId(2),
            details: dict! {},
            payload: kwargs_only(),
        }),
        Message::Call(Call {
            request: RequestId(7_814_135),
            options: dict! {"timeout" => 1000u64, "receive_progress" => true},
            procedure: "com.myapp.echo".into(),
            payload: nested_payload(),
        }),
        Message::Cancel(Cancel { request: RequestId(7_814_135), options: dict! {"mode" => "kill"} }),
        Message::Result(CallResult {
            request: RequestId(7_814_135),
            details: dict! {"progress" => true},
            payload: Payload::args(vec![30u64.into()]),
        }),
        Message::Register(Register {
            request: RequestId(25_349_185),
            options: dict! {"invoke" => "roundrobin"},
            procedure: "com.myapp.myprocedure1".into(),
        }),
        Message::Registered(Registered {
            request: RequestId(25_349_185),
            registration: RegistrationId(2_103_333_224),
        }),
        Message::Unregister(Unregister {
            request: RequestId(788_923_562),
            registration: RegistrationId(2_103_333_224),
        }),
        Message::Unregistered(Unregistered { request: RequestId(788_923_562), details: None }),
        Message::Unregistered(Unregistered {
            request: RequestId(0),
            details: Some(dict! {"registration" => 2_103_333_224u64}),
        }),
        Message::Invocation(Invocation {
            request: RequestId(6_131_533),
            registration: RegistrationId(9_823_528),
            details: dict! {"caller" => 1234u64},
            payload: nested_payload(),
        }),
        Message::Interrupt(Interrupt {
            request: RequestId(6_131_533),
            options: dict! {"mode" => "killnowait"},
        }),
        Message::Yield(Yield {
            request: RequestId(6_131_533),
            options: dict! {},
            payload: Payload::new(
                Some(vec![Value::Float(-0.5)]),
                Some(dict! {"userid" => 123u64, "karma" => 10u64}),
            ),
        }),
    ]
}

/// Decodes a hex string from a test vector.
pub fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()).expect("hex"))
        .collect()
}

/// The messages of the wamp-proto `testsuite/singlemessage/basic` vectors used by the
/// codec tests, in this order: PUBLISH (args), PUBLISH (forward_for), EVENT (args),
/// HELLO (roles), CALL (args).
pub fn spec_messages() -> [Message; 5] {
    let forward_for = |session: u64, authid: &str, authrole: &str| {
        Value::List(vec![dict! {"session" => session, "authid" => authid, "authrole" => authrole}.into()])
    };
    [
        Message::Publish(Publish {
            request: RequestId(239_714_735),
            options: dict! {},
            topic: "com.myapp.mytopic1".into(),
            payload: Payload::args(vec!["Hello, world!".into()]),
        }),
        Message::Publish(Publish {
            request: RequestId(987_654_321),
            options: dict! {"forward_for" => forward_for(3_456_789_012, "client1", "frontend")},
            topic: "com.myapp.topic2".into(),
            payload: Payload::args(vec![42u64.into(), "test".into()]),
        }),
        Message::Event(Event {
            subscription: SubscriptionId(9_823_526),
            publication: PublicationId(112_233_445_566),
            details: dict! {},
            payload: Payload::args(vec!["Hello, event!".into()]),
        }),
        Message::Hello(Hello {
            realm: "com.example.realm".into(),
            details: dict! {"roles" => dict! {"subscriber" => dict! {}, "publisher" => dict! {}}},
        }),
        Message::Call(Call {
            request: RequestId(7_814_135),
            options: dict! {},
            procedure: "com.myapp.myprocedure1".into(),
            payload: Payload::args(vec!["Hello, world!".into()]),
        }),
    ]
}

/// The opaque (end-to-end encrypted) payload of the spec's "EVENT with transparent
/// payload" vector, carried as a binary fifth element instead of an args list.
pub const SPEC_E2EE_PAYLOAD: &str = "83a5636f6c6f72a4626c7565a473697a65a56c61726765a5636f756e741e";

/// Checks a decoded spec E2EE EVENT: the value has the binary payload where args would
/// be, which the typed message model rejects (payload passthru is not supported).
pub fn check_spec_e2ee(s: super::Serializer, bytes: &[u8]) {
    let v = s.decode_value(bytes).expect("E2EE vector is well-formed");
    let items = v.as_list().expect("a list");
    assert_eq!(items.get(4), Some(&Value::Bytes(hex(SPEC_E2EE_PAYLOAD))), "{}", s.name());
    assert_eq!(items.get(1).and_then(Value::as_u64), Some(5_647_382_910));
    let err = s.decode(bytes).expect_err("binary args are not a list");
    assert!(matches!(err, super::DecodeError::Message(MessageError::Field { index: 4, .. })));
}
