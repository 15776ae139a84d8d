//! Conversions between the link messages ([`LinkMsg`]) and the link's protobuf frames.
//! Payloads and details travel as MessagePack of the WAMP values: neutral to the
//! clients' serializers, compact, and binary-safe.

use crate::broker::retained::{RetainedEvent, Stamp};
use crate::ids::{CallId, NodeId, PublicationId, QueryId, RegistrationId, SessionId, SubscriptionId};
use crate::link::LinkMsg;
use crate::wamp::codec::DecodeError;
use crate::wamp::codec::neutral::{
    decode_dict, decode_payload_bytes, decode_payload_tagged, encode_dict, encode_payload,
    encode_payload_tagged,
};
use crate::wamp::uri::MatchPolicy;

use bytes::Bytes;

use super::pb;
// An invocation's fence crosses between nodes as wall-clock time: their monotonic
// clocks are unrelated; their wall clocks are kept within the fence's margin by NTP.
use crate::cluster::fence::unix_ms;

/// The protobuf frame for a link message.
pub fn to_frame(msg: &LinkMsg) -> pb::Frame {
    use pb::frame::Kind;
    let kind = match msg {
        LinkMsg::Event { realm, topic, subscriptions, publication, details, audience, payload } => {
            let (payload, payload_format) = encode_payload_tagged(payload);
            Kind::Event(pb::Event {
                realm: realm.clone(),
                topic: topic.clone(),
                subscriptions: subscriptions.iter().map(|s| s.0).collect(),
                publication: publication.0,
                payload,
                details: encode_dict(details),
                audience: encode_dict(audience),
                payload_format,
            })
        }
        LinkMsg::Invoke { realm, call, callee, registration, details, payload, start_within } => {
            let (payload, payload_format) = encode_payload_tagged(payload);
            Kind::Invoke(pb::Invoke {
                realm: realm.clone(),
                call: call.0,
                callee: callee.0,
                registration: registration.0,
                details: encode_dict(details),
                payload,
                start_by_ms: start_within.map_or(0, |d| unix_ms().saturating_add(d.as_millis() as u64)),
                payload_format,
            })
        }
        LinkMsg::Yield { call, details, payload, progress } => {
            let (payload, payload_format) = encode_payload_tagged(payload);
            Kind::Yield(pb::Yield {
                call: call.0,
                payload,
                progress: *progress,
                details: encode_dict(details),
                payload_format,
            })
        }
        LinkMsg::Interrupt { call, mode, reason } => {
            Kind::Interrupt(pb::Interrupt { call: call.0, mode: mode.clone(), reason: reason.clone() })
        }
        LinkMsg::Error { call, error, details, payload } => {
            let (payload, payload_format) = encode_payload_tagged(payload);
            Kind::Error(pb::Error {
                call: call.0,
                error: error.clone(),
                details: encode_dict(details),
                payload,
                payload_format,
            })
        }
        LinkMsg::Query { id, realm, op, payload } => Kind::Query(pb::Query {
            id: id.0,
            realm: realm.clone(),
            op: op.clone(),
            payload: encode_payload(payload),
        }),
        LinkMsg::Answer { id, error, payload } => {
            Kind::Answer(pb::Answer { id: id.0, error: error.clone(), payload: encode_payload(payload) })
        }
        LinkMsg::Interest { realm, topic, policy, on, seq } => Kind::Interest(pb::Interest {
            realm: realm.clone(),
            topic: topic.clone(),
            policy: policy.as_str().into(),
            on: *on,
            seq: *seq,
        }),
        LinkMsg::InterestAck { seq } => Kind::InterestAck(pb::InterestAck { seq: *seq }),
        LinkMsg::InterestSync { realm, entries } => Kind::InterestSync(pb::InterestSync {
            realm: realm.clone(),
            entries: entries
                .iter()
                .map(|(topic, policy)| pb::InterestEntry {
                    topic: topic.clone(),
                    policy: policy.as_str().into(),
                })
                .collect(),
        }),
        LinkMsg::Retained { realm, topic, event, seq } => Kind::Retained(pb::Retained {
            realm: realm.clone(),
            topic: topic.clone(),
            time_us: event.stamp.time_us,
            node: event.stamp.node.0,
            publication: event.publication,
            details: event.details.clone(),
            payload: event.payload.clone(),
            audience: event.audience.clone(),
            seq: *seq,
        }),
    };
    pb::Frame { kind: Some(kind) }
}

/// Why a frame from another node is not a link message.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The frame has no message in it.
    #[error("empty frame")]
    Empty,
    /// A dictionary or payload does not decode.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// An unknown match policy.
    #[error("unknown match policy {0:?}")]
    Policy(String),
}

fn policy(s: String) -> Result<MatchPolicy, FrameError> {
    MatchPolicy::parse(Some(&s)).ok_or(FrameError::Policy(s))
}

/// The link message in a protobuf frame.
pub fn from_frame(frame: pb::Frame) -> Result<LinkMsg, FrameError> {
    use pb::frame::Kind;
    Ok(match frame.kind.ok_or(FrameError::Empty)? {
        Kind::Event(e) => LinkMsg::Event {
            realm: e.realm,
            topic: e.topic,
            subscriptions: e.subscriptions.into_iter().map(SubscriptionId).collect(),
            publication: PublicationId(e.publication),
            details: decode_dict(&e.details)?,
            audience: decode_dict(&e.audience)?,
            payload: decode_payload_tagged(&Bytes::from(e.payload), e.payload_format)?,
        },
        Kind::Invoke(i) => LinkMsg::Invoke {
            realm: i.realm,
            call: CallId(i.call),
            callee: SessionId(i.callee),
            registration: RegistrationId(i.registration),
            details: decode_dict(&i.details)?,
            payload: decode_payload_tagged(&Bytes::from(i.payload), i.payload_format)?,
            start_within: (i.start_by_ms > 0)
                .then(|| std::time::Duration::from_millis(i.start_by_ms.saturating_sub(unix_ms()))),
        },
        Kind::Yield(y) => LinkMsg::Yield {
            call: CallId(y.call),
            details: decode_dict(&y.details)?,
            payload: decode_payload_tagged(&Bytes::from(y.payload), y.payload_format)?,
            progress: y.progress,
        },
        Kind::Interrupt(i) => LinkMsg::Interrupt { call: CallId(i.call), mode: i.mode, reason: i.reason },
        Kind::Error(e) => LinkMsg::Error {
            call: CallId(e.call),
            error: e.error,
            details: decode_dict(&e.details)?,
            payload: decode_payload_tagged(&Bytes::from(e.payload), e.payload_format)?,
        },
        Kind::Query(q) => LinkMsg::Query {
            id: QueryId(q.id),
            realm: q.realm,
            op: q.op,
            payload: decode_payload_bytes(&Bytes::from(q.payload))?,
        },
        Kind::Answer(a) => LinkMsg::Answer {
            id: QueryId(a.id),
            error: a.error,
            payload: decode_payload_bytes(&Bytes::from(a.payload))?,
        },
        Kind::Interest(i) => LinkMsg::Interest {
            realm: i.realm,
            topic: i.topic,
            policy: policy(i.policy)?,
            on: i.on,
            seq: i.seq,
        },
        Kind::InterestAck(a) => LinkMsg::InterestAck { seq: a.seq },
        Kind::InterestSync(s) => LinkMsg::InterestSync {
            realm: s.realm,
            entries: s
                .entries
                .into_iter()
                .map(|e| Ok::<_, FrameError>((e.topic, policy(e.policy)?)))
                .collect::<Result<_, _>>()?,
        },
        Kind::Retained(r) => LinkMsg::Retained {
            realm: r.realm,
            topic: r.topic,
            event: RetainedEvent {
                stamp: Stamp { time_us: r.time_us, node: NodeId(r.node) },
                publication: r.publication,
                details: r.details,
                payload: r.payload,
                audience: r.audience,
            },
            seq: r.seq,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dict;
    use crate::ids::RequestId;
    use crate::wamp::message::Payload;
    use crate::wamp::value::{Dict, Value};

    #[test]
    fn a_payload_from_a_json_client_crosses_the_link_as_the_json_it_came_in() {
        use crate::wamp::codec::Serializer;
        use crate::wamp::message::Message;
        let call = br#"[48, 1, {}, "p", [1, "x", 2.50], {"k": null}]"#;
        let Ok(Message::Call(c)) = Serializer::Json.decode_frame(&Bytes::from_static(call), usize::MAX)
        else {
            panic!("decodes")
        };
        let msg = LinkMsg::Yield {
            call: CallId(3),
            details: Dict::new(),
            payload: c.payload.clone(),
            progress: false,
        };
        let frame = to_frame(&msg);
        let Some(pb::frame::Kind::Yield(y)) = &frame.kind else { panic!("a yield") };
        assert_eq!((y.payload.as_slice(), y.payload_format), (&br#"[[1, "x", 2.50],{"k": null}]"#[..], 1));
        let Ok(LinkMsg::Yield { payload, .. }) = from_frame(frame) else { panic!("converts back") };
        assert_eq!(payload, c.payload);
        let result = Message::Result(crate::wamp::message::CallResult {
            request: RequestId(1),
            details: Dict::new(),
            payload,
        });
        assert_eq!(Serializer::Json.encode(&result), br#"[50,1,{},[1, "x", 2.50],{"k": null}]"#);
    }

    #[test]
    fn every_link_message_round_trips() {
        let payload = Payload::new(
            Some(vec![Value::Bytes(vec![0, 255]), Value::Float(1.5), Value::UInt(u64::MAX)]),
            Some(dict! { "a" => "b" }),
        );
        let msgs = vec![
            LinkMsg::Event {
                realm: "r".into(),
                topic: "t".into(),
                subscriptions: vec![SubscriptionId(1), SubscriptionId(2)],
                publication: PublicationId(9),
                details: dict! { "publisher" => 5u64 },
                audience: dict! { "exclude_authid" => Value::List(vec!["x".into()]) },
                payload: payload.clone(),
            },
            LinkMsg::Invoke {
                realm: "r".into(),
                call: CallId(5),
                callee: SessionId(7),
                registration: RegistrationId(3),
                details: dict! { "procedure" => "a.b" },
                payload: Payload::new(None, Some(dict! { "k" => 1u64 })),
                start_within: None,
            },
            LinkMsg::Yield {
                call: CallId(5),
                details: dict! { "ppt_scheme" => "mqtt" },
                payload: Payload::default(),
                progress: true,
            },
            LinkMsg::Interrupt { call: CallId(5), mode: "kill".into(), reason: "wamp.error.canceled".into() },
            LinkMsg::Query {
                id: QueryId(8),
                realm: "r".into(),
                op: "session.list".into(),
                payload: Payload::args(vec![Value::List(vec!["user".into()])]),
            },
            LinkMsg::Answer { id: QueryId(8), error: String::new(), payload: payload.clone() },
            LinkMsg::Retained {
                realm: "r".into(),
                topic: "t".into(),
                event: RetainedEvent {
                    stamp: Stamp { time_us: 1_700_000_000_000_000, node: NodeId(3) },
                    publication: 9,
                    details: encode_dict(&dict! { "publisher" => 5u64 }),
                    payload: encode_payload(&payload),
                    audience: Vec::new(),
                },
                seq: 4,
            },
            LinkMsg::Error { call: CallId(5), error: "com.err".into(), details: Dict::new(), payload },
        ];
        for m in msgs {
            assert_eq!(from_frame(to_frame(&m)).ok(), Some(m));
        }
    }

    #[test]
    fn malformed_payload_is_an_error() {
        let frame = pb::Frame {
            kind: Some(pb::frame::Kind::Yield(pb::Yield {
                call: 1,
                payload: vec![0xc1],
                progress: false,
                details: Vec::new(),
                payload_format: 0,
            })),
        };
        assert!(from_frame(frame).is_err());
        assert!(from_frame(pb::Frame { kind: None }).is_err());
    }
}
