//! Every WAMP message of the Basic and Advanced Profile as a typed value.
//!
//! A message on the wire is a list whose first element is the message code
//! ([`code`]). [`Message::into_list`] / [`Message::from_list`] convert between the
//! typed form and that list of [`Value`]s; the codecs turn the list into bytes.
//! Decoding checks shapes and id ranges, so the router never sees a malformed message.

use super::value::{Dict, List, Value};
use crate::ids::{PublicationId, RegistrationId, RequestId, SessionId, SubscriptionId, valid_id};

/// Message type codes, as the spec numbers them.
pub mod code {
    pub const HELLO: u64 = 1;
    pub const WELCOME: u64 = 2;
    pub const ABORT: u64 = 3;
    pub const CHALLENGE: u64 = 4;
    pub const AUTHENTICATE: u64 = 5;
    pub const GOODBYE: u64 = 6;
    pub const ERROR: u64 = 8;
    pub const PUBLISH: u64 = 16;
    pub const PUBLISHED: u64 = 17;
    pub const SUBSCRIBE: u64 = 32;
    pub const SUBSCRIBED: u64 = 33;
    pub const UNSUBSCRIBE: u64 = 34;
    pub const UNSUBSCRIBED: u64 = 35;
    pub const EVENT: u64 = 36;
    pub const CALL: u64 = 48;
    pub const CANCEL: u64 = 49;
    pub const RESULT: u64 = 50;
    pub const REGISTER: u64 = 64;
    pub const REGISTERED: u64 = 65;
    pub const UNREGISTER: u64 = 66;
    pub const UNREGISTERED: u64 = 67;
    pub const INVOCATION: u64 = 68;
    pub const INTERRUPT: u64 = 69;
    pub const YIELD: u64 = 70;
}

pub use super::payload::{Arguments, Encoded, Payload};

/// `[HELLO, Realm|uri, Details|dict]`
#[derive(Clone, Debug, PartialEq)]
pub struct Hello {
    pub realm: String,
    pub details: Dict,
}

/// `[WELCOME, Session|id, Details|dict]`
#[derive(Clone, Debug, PartialEq)]
pub struct Welcome {
    pub session: SessionId,
    pub details: Dict,
}

/// `[ABORT, Details|dict, Reason|uri]`
#[derive(Clone, Debug, PartialEq)]
pub struct Abort {
    pub details: Dict,
    pub reason: String,
}

/// `[CHALLENGE, AuthMethod|string, Extra|dict]`
#[derive(Clone, Debug, PartialEq)]
pub struct Challenge {
    pub auth_method: String,
    pub extra: Dict,
}

/// `[AUTHENTICATE, Signature|string, Extra|dict]`
#[derive(Clone, Debug, PartialEq)]
pub struct Authenticate {
    pub signature: String,
    pub extra: Dict,
}

/// `[GOODBYE, Details|dict, Reason|uri]`
#[derive(Clone, Debug, PartialEq)]
pub struct Goodbye {
    pub details: Dict,
    pub reason: String,
}

/// `[ERROR, REQUEST.Type|int, REQUEST.Request|id, Details|dict, Error|uri, Arguments|list, ArgumentsKw|dict]`
#[derive(Clone, Debug, PartialEq)]
pub struct Error {
    pub request_type: u64,
    pub request: RequestId,
    pub details: Dict,
    pub error: String,
    pub payload: Payload,
}

/// `[PUBLISH, Request|id, Options|dict, Topic|uri, Arguments|list, ArgumentsKw|dict]`
#[derive(Clone, Debug, PartialEq)]
pub struct Publish {
    pub request: RequestId,
    pub options: Dict,
    pub topic: String,
    pub payload: Payload,
}

/// `[PUBLISHED, PUBLISH.Request|id, Publication|id]`
#[derive(Clone, Debug, PartialEq)]
pub struct Published {
    pub request: RequestId,
    pub publication: PublicationId,
}

/// `[SUBSCRIBE, Request|id, Options|dict, Topic|uri]`
#[derive(Clone, Debug, PartialEq)]
pub struct Subscribe {
    pub request: RequestId,
    pub options: Dict,
    pub topic: String,
}

/// `[SUBSCRIBED, SUBSCRIBE.Request|id, Subscription|id]`
#[derive(Clone, Debug, PartialEq)]
pub struct Subscribed {
    pub request: RequestId,
    pub subscription: SubscriptionId,
}

/// `[UNSUBSCRIBE, Request|id, SUBSCRIBED.Subscription|id]`
#[derive(Clone, Debug, PartialEq)]
pub struct Unsubscribe {
    pub request: RequestId,
    pub subscription: SubscriptionId,
}

/// `[UNSUBSCRIBED, UNSUBSCRIBE.Request|id]`, or with `Details|dict` when the router
/// revokes a subscription (request 0).
#[derive(Clone, Debug, PartialEq)]
pub struct Unsubscribed {
    pub request: RequestId,
    pub details: Option<Dict>,
}

/// `[EVENT, SUBSCRIBED.Subscription|id, PUBLISHED.Publication|id, Details|dict, Arguments|list, ArgumentsKw|dict]`
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub subscription: SubscriptionId,
    pub publication: PublicationId,
    pub details: Dict,
    pub payload: Payload,
}

/// `[CALL, Request|id, Options|dict, Procedure|uri, Arguments|list, ArgumentsKw|dict]`
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    pub request: RequestId,
    pub options: Dict,
    pub procedure: String,
    pub payload: Payload,
}

/// `[CANCEL, CALL.Request|id, Options|dict]`
#[derive(Clone, Debug, PartialEq)]
pub struct Cancel {
    pub request: RequestId,
    pub options: Dict,
}

/// `[RESULT, CALL.Request|id, Details|dict, YIELD.Arguments|list, YIELD.ArgumentsKw|dict]`
#[derive(Clone, Debug, PartialEq)]
pub struct CallResult {
    pub request: RequestId,
    pub details: Dict,
    pub payload: Payload,
}

/// `[REGISTER, Request|id, Options|dict, Procedure|uri]`
#[derive(Clone, Debug, PartialEq)]
pub struct Register {
    pub request: RequestId,
    pub options: Dict,
    pub procedure: String,
}

/// `[REGISTERED, REGISTER.Request|id, Registration|id]`
#[derive(Clone, Debug, PartialEq)]
pub struct Registered {
    pub request: RequestId,
    pub registration: RegistrationId,
}

/// `[UNREGISTER, Request|id, REGISTERED.Registration|id]`
#[derive(Clone, Debug, PartialEq)]
pub struct Unregister {
    pub request: RequestId,
    pub registration: RegistrationId,
}

/// `[UNREGISTERED, UNREGISTER.Request|id]`, or with `Details|dict` when the router
/// revokes a registration (request 0).
#[derive(Clone, Debug, PartialEq)]
pub struct Unregistered {
    pub request: RequestId,
    pub details: Option<Dict>,
}

/// `[INVOCATION, Request|id, REGISTERED.Registration|id, Details|dict, CALL.Arguments|list, CALL.ArgumentsKw|dict]`
#[derive(Clone, Debug, PartialEq)]
pub struct Invocation {
    pub request: RequestId,
    pub registration: RegistrationId,
    pub details: Dict,
    pub payload: Payload,
}

/// `[INTERRUPT, INVOCATION.Request|id, Options|dict]`
#[derive(Clone, Debug, PartialEq)]
pub struct Interrupt {
    pub request: RequestId,
    pub options: Dict,
}

/// `[YIELD, INVOCATION.Request|id, Options|dict, Arguments|list, ArgumentsKw|dict]`
#[derive(Clone, Debug, PartialEq)]
pub struct Yield {
    pub request: RequestId,
    pub options: Dict,
    pub payload: Payload,
}

/// Any WAMP message.
#[derive(Clone, Debug, PartialEq)]
pub enum Message {
    Hello(Hello),
    Welcome(Welcome),
    Abort(Abort),
    Challenge(Challenge),
    Authenticate(Authenticate),
    Goodbye(Goodbye),
    Error(Error),
    Publish(Publish),
    Published(Published),
    Subscribe(Subscribe),
    Subscribed(Subscribed),
    Unsubscribe(Unsubscribe),
    Unsubscribed(Unsubscribed),
    Event(Event),
    Call(Call),
    Cancel(Cancel),
    Result(CallResult),
    Register(Register),
    Registered(Registered),
    Unregister(Unregister),
    Unregistered(Unregistered),
    Invocation(Invocation),
    Interrupt(Interrupt),
    Yield(Yield),
}

/// Why a list could not be read as a WAMP message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// The top-level value is not a non-empty list starting with an integer code.
    #[error("message is not a list starting with a message type code")]
    NotAList,
    /// The code is not one the spec defines.
    #[error("unknown message type {0}")]
    UnknownType(u64),
    /// A required element is missing, or there are too many.
    #[error("message type {code}: wrong number of elements ({len})")]
    Arity { code: u64, len: usize },
    /// An element has the wrong type or an id is out of range.
    #[error("message type {code}: element {index} ({what}) is invalid")]
    Field { code: u64, index: usize, what: &'static str },
}

impl Message {
    /// The spec's type code of this message.
    pub fn code(&self) -> u64 {
        use Message::*;
        match self {
            Hello(_) => code::HELLO,
            Welcome(_) => code::WELCOME,
            Abort(_) => code::ABORT,
            Challenge(_) => code::CHALLENGE,
            Authenticate(_) => code::AUTHENTICATE,
            Goodbye(_) => code::GOODBYE,
            Error(_) => code::ERROR,
            Publish(_) => code::PUBLISH,
            Published(_) => code::PUBLISHED,
            Subscribe(_) => code::SUBSCRIBE,
            Subscribed(_) => code::SUBSCRIBED,
            Unsubscribe(_) => code::UNSUBSCRIBE,
            Unsubscribed(_) => code::UNSUBSCRIBED,
            Event(_) => code::EVENT,
            Call(_) => code::CALL,
            Cancel(_) => code::CANCEL,
            Result(_) => code::RESULT,
            Register(_) => code::REGISTER,
            Registered(_) => code::REGISTERED,
            Unregister(_) => code::UNREGISTER,
            Unregistered(_) => code::UNREGISTERED,
            Invocation(_) => code::INVOCATION,
            Interrupt(_) => code::INTERRUPT,
            Yield(_) => code::YIELD,
        }
    }

    /// The payload, for the message types that carry one.
    pub fn payload(&self) -> Option<&Payload> {
        use Message::*;
        match self {
            Error(m) => Some(&m.payload),
            Publish(m) => Some(&m.payload),
            Event(m) => Some(&m.payload),
            Call(m) => Some(&m.payload),
            Result(m) => Some(&m.payload),
            Invocation(m) => Some(&m.payload),
            Yield(m) => Some(&m.payload),
            _ => None,
        }
    }

    /// The message as the list that goes on the wire.
    pub fn into_list(self) -> List {
        use Message::*;
        let c = Value::from(self.code());
        match self {
            Hello(m) => vec![c, Value::Str(m.realm), Value::Dict(m.details)],
            Welcome(m) => vec![c, id(m.session.0), Value::Dict(m.details)],
            Abort(m) => vec![c, Value::Dict(m.details), Value::Str(m.reason)],
            Challenge(m) => vec![c, Value::Str(m.auth_method), Value::Dict(m.extra)],
            Authenticate(m) => vec![c, Value::Str(m.signature), Value::Dict(m.extra)],
            Goodbye(m) => vec![c, Value::Dict(m.details), Value::Str(m.reason)],
            Error(m) => with_payload(
                vec![
                    c,
                    Value::from(m.request_type),
                    id(m.request.0),
                    Value::Dict(m.details),
                    Value::Str(m.error),
                ],
                m.payload,
            ),
            Publish(m) => {
                with_payload(vec![c, id(m.request.0), Value::Dict(m.options), Value::Str(m.topic)], m.payload)
            }
            Published(m) => vec![c, id(m.request.0), id(m.publication.0)],
            Subscribe(m) => vec![c, id(m.request.0), Value::Dict(m.options), Value::Str(m.topic)],
            Subscribed(m) => vec![c, id(m.request.0), id(m.subscription.0)],
            Unsubscribe(m) => vec![c, id(m.request.0), id(m.subscription.0)],
            Unsubscribed(m) => with_details(vec![c, id(m.request.0)], m.details),
            Event(m) => with_payload(
                vec![c, id(m.subscription.0), id(m.publication.0), Value::Dict(m.details)],
                m.payload,
            ),
            Call(m) => with_payload(
                vec![c, id(m.request.0), Value::Dict(m.options), Value::Str(m.procedure)],
                m.payload,
            ),
            Cancel(m) => vec![c, id(m.request.0), Value::Dict(m.options)],
            Result(m) => with_payload(vec![c, id(m.request.0), Value::Dict(m.details)], m.payload),
            Register(m) => vec![c, id(m.request.0), Value::Dict(m.options), Value::Str(m.procedure)],
            Registered(m) => vec![c, id(m.request.0), id(m.registration.0)],
            Unregister(m) => vec![c, id(m.request.0), id(m.registration.0)],
            Unregistered(m) => with_details(vec![c, id(m.request.0)], m.details),
            Invocation(m) => with_payload(
                vec![c, id(m.request.0), id(m.registration.0), Value::Dict(m.details)],
                m.payload,
            ),
            Interrupt(m) => vec![c, id(m.request.0), Value::Dict(m.options)],
            Yield(m) => with_payload(vec![c, id(m.request.0), Value::Dict(m.options)], m.payload),
        }
    }

    /// Reads a message from the list that came off the wire.
    pub fn from_list(list: List) -> Result<Message, MessageError> {
        Message::read(list, None)
    }

    /// Reads a message from the elements before its payload and the payload as
    /// received (`elements`: how many list elements the payload took, 1 or 2).
    pub fn from_head(head: List, payload: Encoded, elements: usize) -> Result<Message, MessageError> {
        Message::read(head, Some((Payload::Encoded(payload), elements)))
    }

    /// The index of the first payload element in the list of a message of type
    /// `code`, for the types that carry one.
    pub fn payload_index(code: u64) -> Option<usize> {
        match code {
            code::ERROR => Some(5),
            code::PUBLISH | code::EVENT | code::CALL | code::INVOCATION => Some(4),
            code::RESULT | code::YIELD => Some(3),
            _ => None,
        }
    }

    fn read(list: List, tail: Option<(Payload, usize)>) -> Result<Message, MessageError> {
        let code = list.first().and_then(Value::as_u64).ok_or(MessageError::NotAList)?;
        let len = list.len() + tail.as_ref().map_or(0, |t| t.1);
        let tail = tail.map(|t| t.0);
        let mut r = Reader { code, len, items: list.into_iter().enumerate(), tail };
        r.items.next();
        let msg = match code {
            code::HELLO => {
                r.arity(3, 3)?;
                Message::Hello(Hello { realm: r.string("realm")?, details: r.dict("details")? })
            }
            code::WELCOME => {
                r.arity(3, 3)?;
                Message::Welcome(Welcome {
                    session: SessionId(r.id("session")?),
                    details: r.dict("details")?,
                })
            }
            code::ABORT => {
                r.arity(3, 3)?;
                Message::Abort(Abort { details: r.dict("details")?, reason: r.string("reason")? })
            }
            code::CHALLENGE => {
                r.arity(3, 3)?;
                Message::Challenge(Challenge {
                    auth_method: r.string("authmethod")?,
                    extra: r.dict("extra")?,
                })
            }
            code::AUTHENTICATE => {
                r.arity(3, 3)?;
                Message::Authenticate(Authenticate {
                    signature: r.string("signature")?,
                    extra: r.dict("extra")?,
                })
            }
            code::GOODBYE => {
                r.arity(3, 3)?;
                Message::Goodbye(Goodbye { details: r.dict("details")?, reason: r.string("reason")? })
            }
            code::ERROR => {
                r.arity(5, 7)?;
                Message::Error(Error {
                    request_type: r.uint("request type")?,
                    request: RequestId(r.id("request")?),
                    details: r.dict("details")?,
                    error: r.string("error")?,
                    payload: r.payload()?,
                })
            }
            code::PUBLISH => {
                r.arity(4, 6)?;
                Message::Publish(Publish {
                    request: RequestId(r.id("request")?),
                    options: r.dict("options")?,
                    topic: r.string("topic")?,
                    payload: r.payload()?,
                })
            }
            code::PUBLISHED => {
                r.arity(3, 3)?;
                Message::Published(Published {
                    request: RequestId(r.id("request")?),
                    publication: PublicationId(r.id("publication")?),
                })
            }
            code::SUBSCRIBE => {
                r.arity(4, 4)?;
                Message::Subscribe(Subscribe {
                    request: RequestId(r.id("request")?),
                    options: r.dict("options")?,
                    topic: r.string("topic")?,
                })
            }
            code::SUBSCRIBED => {
                r.arity(3, 3)?;
                Message::Subscribed(Subscribed {
                    request: RequestId(r.id("request")?),
                    subscription: SubscriptionId(r.id("subscription")?),
                })
            }
            code::UNSUBSCRIBE => {
                r.arity(3, 3)?;
                Message::Unsubscribe(Unsubscribe {
                    request: RequestId(r.id("request")?),
                    subscription: SubscriptionId(r.id("subscription")?),
                })
            }
            code::UNSUBSCRIBED => {
                r.arity(2, 3)?;
                Message::Unsubscribed(Unsubscribed {
                    request: RequestId(r.id_or_zero("request")?),
                    details: r.opt_dict("details")?,
                })
            }
            code::EVENT => {
                r.arity(4, 6)?;
                Message::Event(Event {
                    subscription: SubscriptionId(r.id("subscription")?),
                    publication: PublicationId(r.id("publication")?),
                    details: r.dict("details")?,
                    payload: r.payload()?,
                })
            }
            code::CALL => {
                r.arity(4, 6)?;
                Message::Call(Call {
                    request: RequestId(r.id("request")?),
                    options: r.dict("options")?,
                    procedure: r.string("procedure")?,
                    payload: r.payload()?,
                })
            }
            code::CANCEL => {
                r.arity(3, 3)?;
                Message::Cancel(Cancel { request: RequestId(r.id("request")?), options: r.dict("options")? })
            }
            code::RESULT => {
                r.arity(3, 5)?;
                Message::Result(CallResult {
                    request: RequestId(r.id("request")?),
                    details: r.dict("details")?,
                    payload: r.payload()?,
                })
            }
            code::REGISTER => {
                r.arity(4, 4)?;
                Message::Register(Register {
                    request: RequestId(r.id("request")?),
                    options: r.dict("options")?,
                    procedure: r.string("procedure")?,
                })
            }
            code::REGISTERED => {
                r.arity(3, 3)?;
                Message::Registered(Registered {
                    request: RequestId(r.id("request")?),
                    registration: RegistrationId(r.id("registration")?),
                })
            }
            code::UNREGISTER => {
                r.arity(3, 3)?;
                Message::Unregister(Unregister {
                    request: RequestId(r.id("request")?),
                    registration: RegistrationId(r.id("registration")?),
                })
            }
            code::UNREGISTERED => {
                r.arity(2, 3)?;
                Message::Unregistered(Unregistered {
                    request: RequestId(r.id_or_zero("request")?),
                    details: r.opt_dict("details")?,
                })
            }
            code::INVOCATION => {
                r.arity(4, 6)?;
                Message::Invocation(Invocation {
                    request: RequestId(r.id("request")?),
                    registration: RegistrationId(r.id("registration")?),
                    details: r.dict("details")?,
                    payload: r.payload()?,
                })
            }
            code::INTERRUPT => {
                r.arity(3, 3)?;
                Message::Interrupt(Interrupt {
                    request: RequestId(r.id("request")?),
                    options: r.dict("options")?,
                })
            }
            code::YIELD => {
                r.arity(3, 5)?;
                Message::Yield(Yield {
                    request: RequestId(r.id("request")?),
                    options: r.dict("options")?,
                    payload: r.payload()?,
                })
            }
            other => return Err(MessageError::UnknownType(other)),
        };
        Ok(msg)
    }
}

fn id(v: u64) -> Value {
    Value::from(v)
}

/// Appends args/kwargs the way the spec asks: kwargs force an (possibly empty) args list.
fn with_payload(mut list: List, p: Payload) -> List {
    let a = p.into_arguments();
    match (a.args, a.kwargs) {
        (None, None) => {}
        (Some(a), None) => list.push(Value::List(a)),
        (a, Some(k)) => {
            list.push(Value::List(a.unwrap_or_default()));
            list.push(Value::Dict(k));
        }
    }
    list
}

fn with_details(mut list: List, details: Option<Dict>) -> List {
    if let Some(d) = details {
        list.push(Value::Dict(d));
    }
    list
}

/// Walks the elements of a message list, producing typed fields or precise errors.
struct Reader {
    code: u64,
    len: usize,
    items: std::iter::Enumerate<std::vec::IntoIter<Value>>,
    /// The payload, when it was kept encoded rather than decoded into `items`.
    tail: Option<Payload>,
}

impl Reader {
    fn arity(&self, min: usize, max: usize) -> Result<(), MessageError> {
        if self.len < min || self.len > max {
            return Err(MessageError::Arity { code: self.code, len: self.len });
        }
        Ok(())
    }

    fn field(&self, index: usize, what: &'static str) -> MessageError {
        MessageError::Field { code: self.code, index, what }
    }

    fn next(&mut self, what: &'static str) -> Result<(usize, Value), MessageError> {
        let len = self.len;
        self.items.next().ok_or_else(|| self.field(len, what))
    }

    fn string(&mut self, what: &'static str) -> Result<String, MessageError> {
        match self.next(what)? {
            (_, Value::Str(s)) => Ok(s),
            (i, _) => Err(self.field(i, what)),
        }
    }

    fn dict(&mut self, what: &'static str) -> Result<Dict, MessageError> {
        match self.next(what)? {
            (_, Value::Dict(d)) => Ok(d),
            (i, _) => Err(self.field(i, what)),
        }
    }

    fn opt_dict(&mut self, what: &'static str) -> Result<Option<Dict>, MessageError> {
        match self.items.next() {
            None => Ok(None),
            Some((_, Value::Dict(d))) => Ok(Some(d)),
            Some((i, _)) => Err(self.field(i, what)),
        }
    }

    fn uint(&mut self, what: &'static str) -> Result<u64, MessageError> {
        let (i, v) = self.next(what)?;
        v.as_u64().ok_or_else(|| self.field(i, what))
    }

    fn id(&mut self, what: &'static str) -> Result<u64, MessageError> {
        let (i, v) = self.next(what)?;
        v.as_u64().filter(|&n| valid_id(n)).ok_or_else(|| self.field(i, what))
    }

    /// UNSUBSCRIBED/UNREGISTERED carry request 0 when the router revokes.
    fn id_or_zero(&mut self, what: &'static str) -> Result<u64, MessageError> {
        let (i, v) = self.next(what)?;
        v.as_u64().filter(|&n| n == 0 || valid_id(n)).ok_or_else(|| self.field(i, what))
    }

    fn payload(&mut self) -> Result<Payload, MessageError> {
        if let Some(p) = self.tail.take() {
            return Ok(p);
        }
        let args = match self.items.next() {
            None => None,
            Some((_, Value::List(l))) => Some(l),
            Some((i, _)) => return Err(self.field(i, "arguments")),
        };
        let kwargs = match self.items.next() {
            None => None,
            Some((_, Value::Dict(d))) => Some(d),
            Some((i, _)) => return Err(self.field(i, "keyword arguments")),
        };
        Ok(Payload::new(args, kwargs))
    }
}
