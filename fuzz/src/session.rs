//! `session_sequence` target: up to three clients on one in-memory router, each fed a
//! sequence of messages chosen by the fuzzer input.
//!
//! Messages are built from a small vocabulary (URIs, ids, options and payloads that
//! collide often) so that subscriptions, registrations, calls, yields and errors meet
//! each other; ids the router handed out (subscriptions, registrations, invocations)
//! are remembered and reused. Raw fuzzer bytes are sent as frames too.
//!
//! Checked on every step:
//! * the session state machine ([`classify`]) and the router agree: a message that is a
//!   protocol violation on an established session closes it;
//! * everything the router queues decodes with the session's serializer;
//!
//! and at the end, once every client has left, no session is left on the router.

use std::sync::Arc;

use arbitrary::{Result, Unstructured};
use junction::config::Config;
use junction::dict;
use junction::ids::{NodeId, RegistrationId, RequestId, SessionId, SubscriptionId};
use junction::router::Router;
use junction::router::outbox::{OutboxReceiver, outbox};
use junction::router::session::{Flow, Session};
use junction::wamp::codec::Serializer;
use junction::wamp::message::*;
use junction::wamp::session::{Phase, Step, classify};
use junction::wamp::value::{Dict, List, Value};

/// Most operations run per input.
const MAX_OPS: usize = 64;
/// Clients per input.
const CLIENTS: usize = 3;

const URIS: [&str; 10] = [
    "a",
    "a.b",
    "a.b.c",
    "a..c",
    "",
    "com.x",
    "wamp.session.count",
    "wamp.session.list",
    "wamp.registration.list",
    "a.b.",
];
const REALMS: [&str; 3] = ["realm1", "realm1", "nope"];

struct Client {
    session: Session,
    rx: OutboxReceiver,
    ser: Serializer,
    phase: Phase,
}

impl Client {
    fn new(router: &Arc<Router>, ser: Serializer) -> Client {
        let (tx, rx) = outbox(64, 1 << 20);
        Client {
            session: Session::new(router.clone(), ser, tx, "fuzz"),
            rx,
            ser,
            phase: Phase::AwaitingHello,
        }
    }
}

/// Ids the router handed out, to aim requests at real state.
#[derive(Default)]
struct Seen {
    subscriptions: Vec<SubscriptionId>,
    registrations: Vec<RegistrationId>,
    /// (client, INVOCATION request id)
    invocations: Vec<(usize, RequestId)>,
}

/// Runs one fuzz input, on a current-thread runtime of its own: dropping it at the end
/// drops every task the input spawned (call timeouts), so inputs cannot leak state or
/// memory into each other. (A runtime reused across inputs ran out of 2 GB after 3.2
/// million inputs.)
pub fn session_sequence(data: &[u8]) {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_time().build() else {
        return;
    };
    rt.block_on(run(data));
}

async fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let router = Router::new(Config::default(), NodeId(1));
    let mut clients = Vec::with_capacity(CLIENTS);
    for i in 0..CLIENTS {
        clients.push(Client::new(&router, Serializer::ALL[i % 3]));
    }
    let mut seen = Seen::default();
    for _ in 0..MAX_OPS {
        if u.is_empty() {
            break;
        }
        let Ok(()) = step(&mut u, &router, &mut clients, &mut seen).await else { break };
    }
    for c in &mut clients {
        c.session.leave().await;
    }
    drain_all(&mut clients, &mut seen);
    assert_eq!(router.session_count(), 0, "sessions left behind after every client left");
    assert_eq!(router.admission.seated(), 0, "admission seats held after every client left");
}

async fn step(
    u: &mut Unstructured<'_>,
    router: &Arc<Router>,
    clients: &mut [Client],
    seen: &mut Seen,
) -> Result<()> {
    let who = u.choose_index(clients.len())?;
    let op = u.int_in_range(0..=19u8)?;
    let frame = match op {
        17 => {
            // Router-initiated close (shutdown).
            let c = &mut clients[who];
            if c.session.begin_close("wamp.close.system_shutdown") {
                c.phase = Phase::Closing;
            }
            drain_all(clients, seen);
            return Ok(());
        }
        18 => {
            // The transport drops.
            clients[who].session.leave().await;
            clients[who] = Client::new(router, clients[who].ser);
            drain_all(clients, seen);
            return Ok(());
        }
        19 => {
            let len = u.int_in_range(0..=64usize)?;
            u.bytes(len)?.to_vec()
        }
        _ => {
            let msg = message(u, op, who, seen)?;
            clients[who].ser.encode(&msg)
        }
    };
    let c = &mut clients[who];
    let expected = c.ser.decode(&frame).ok().map(|m| classify(c.phase, &m));
    let before = c.phase;
    let flow = c.session.on_frame(&bytes::Bytes::from(frame)).await;
    if before == Phase::Established && matches!(expected, Some(Step::Violation(_))) {
        assert_eq!(flow, Flow::Close, "violation {expected:?} did not close the session");
    }
    c.phase = match (flow, expected) {
        (Flow::Close, _) => Phase::AwaitingHello,
        (_, Some(Step::Leave | Step::Closed)) => Phase::AwaitingHello,
        _ => c.phase,
    };
    if flow == Flow::Close {
        c.session.leave().await;
        clients[who] = Client::new(router, clients[who].ser);
    }
    drain_all(clients, seen);
    Ok(())
}

/// Reads every queued frame: each must decode; WELCOME opens the session; ids are
/// remembered.
fn drain_all(clients: &mut [Client], seen: &mut Seen) {
    for (i, c) in clients.iter_mut().enumerate() {
        let mut batch = Vec::new();
        c.rx.drain_now(&mut batch);
        for frame in batch {
            let msg = match c.ser.decode(&frame) {
                Ok(m) => m,
                Err(e) => panic!("router output does not decode with {}: {e}", c.ser.name()),
            };
            match msg {
                Message::Welcome(_) => c.phase = Phase::Established,
                Message::Subscribed(s) => remember(&mut seen.subscriptions, s.subscription),
                Message::Registered(r) => remember(&mut seen.registrations, r.registration),
                Message::Invocation(inv) => remember(&mut seen.invocations, (i, inv.request)),
                _ => {}
            }
        }
    }
}

fn remember<T: PartialEq>(list: &mut Vec<T>, item: T) {
    if !list.contains(&item) {
        if list.len() >= 16 {
            list.remove(0);
        }
        list.push(item);
    }
}

fn message(u: &mut Unstructured<'_>, op: u8, who: usize, seen: &Seen) -> Result<Message> {
    Ok(match op {
        0 => Message::Hello(Hello { realm: (*u.choose(&REALMS)?).into(), details: hello_details(u)? }),
        1 => {
            Message::Subscribe(Subscribe { request: request(u)?, options: match_option(u)?, topic: uri(u)? })
        }
        2 => Message::Unsubscribe(Unsubscribe {
            request: request(u)?,
            subscription: pick(u, &seen.subscriptions)?.unwrap_or(SubscriptionId(u.int_in_range(0..=3)?)),
        }),
        3 => Message::Publish(Publish {
            request: request(u)?,
            options: publish_options(u)?,
            topic: uri(u)?,
            payload: payload(u)?,
        }),
        4 => {
            let mut options = match_option(u)?;
            if u.arbitrary()? {
                let invoke = *u.choose(&["single", "roundrobin", "random", "first", "last", "bogus"])?;
                options.insert("invoke".into(), invoke.into());
            }
            Message::Register(Register { request: request(u)?, options, procedure: uri(u)? })
        }
        5 => Message::Unregister(Unregister {
            request: request(u)?,
            registration: pick(u, &seen.registrations)?.unwrap_or(RegistrationId(u.int_in_range(0..=3)?)),
        }),
        6 => Message::Call(Call {
            request: request(u)?,
            options: call_options(u)?,
            procedure: uri(u)?,
            payload: payload(u)?,
        }),
        7 => Message::Yield(Yield {
            request: invocation(u, who, seen)?,
            options: if u.arbitrary()? {
                dict! { "progress" => true }
            } else {
                Dict::new()
            },
            payload: payload(u)?,
        }),
        8 | 9 => Message::Error(Error {
            request_type: if op == 8 {
                code::INVOCATION
            } else {
                *u.choose(&[code::CALL, code::SUBSCRIBE, 99])?
            },
            request: invocation(u, who, seen)?,
            details: Dict::new(),
            error: (*u.choose(&["com.err", "", "wamp.error.canceled"])?).into(),
            payload: payload(u)?,
        }),
        10 => Message::Cancel(Cancel {
            request: request(u)?,
            options: dict! { "mode" => *u.choose(&["kill", "skip", "killnowait"])? },
        }),
        11 => Message::Goodbye(Goodbye { details: Dict::new(), reason: "wamp.close.close_realm".into() }),
        12 => Message::Abort(Abort { details: Dict::new(), reason: "wamp.error.x".into() }),
        13 => Message::Authenticate(Authenticate { signature: "sig".into(), extra: Dict::new() }),
        14 => Message::Welcome(Welcome { session: SessionId(1), details: Dict::new() }),
        15 => Message::Event(Event {
            subscription: SubscriptionId(1),
            publication: junction::ids::PublicationId(1),
            details: Dict::new(),
            payload: Payload::default(),
        }),
        _ => Message::Interrupt(Interrupt { request: request(u)?, options: Dict::new() }),
    })
}

fn request(u: &mut Unstructured<'_>) -> Result<RequestId> {
    Ok(RequestId(u.int_in_range(0..=6)?))
}

fn invocation(u: &mut Unstructured<'_>, who: usize, seen: &Seen) -> Result<RequestId> {
    let mine: Vec<RequestId> = seen.invocations.iter().filter(|(c, _)| *c == who).map(|(_, r)| *r).collect();
    Ok(match pick(u, &mine)? {
        Some(r) => r,
        None => request(u)?,
    })
}

fn pick<T: Copy>(u: &mut Unstructured<'_>, from: &[T]) -> Result<Option<T>> {
    if from.is_empty() || !u.arbitrary::<bool>()? {
        return Ok(None);
    }
    Ok(Some(*u.choose(from)?))
}

fn uri(u: &mut Unstructured<'_>) -> Result<String> {
    Ok((*u.choose(&URIS)?).into())
}

fn hello_details(u: &mut Unstructured<'_>) -> Result<Dict> {
    let mut d = Dict::new();
    if u.arbitrary()? {
        let features = dict! { "progressive_call_results" => true, "call_canceling" => true };
        let roles = dict! {
            "caller" => dict! { "features" => features.clone() },
            "callee" => dict! { "features" => features },
            "publisher" => Dict::new(),
            "subscriber" => Dict::new(),
        };
        d.insert("roles".into(), roles.into());
    }
    if u.arbitrary()? {
        let methods: List = vec![(*u.choose(&["anonymous", "ticket", "wampcra", "cryptosign"])?).into()];
        d.insert("authmethods".into(), methods.into());
        d.insert("authid".into(), "joe".into());
    }
    Ok(d)
}

fn match_option(u: &mut Unstructured<'_>) -> Result<Dict> {
    Ok(match u.int_in_range(0..=4u8)? {
        0 => dict! { "match" => "prefix" },
        1 => dict! { "match" => "wildcard" },
        2 => dict! { "match" => "bogus" },
        3 => dict! { "match" => 5i64 },
        _ => Dict::new(),
    })
}

fn publish_options(u: &mut Unstructured<'_>) -> Result<Dict> {
    let mut d = Dict::new();
    for key in ["acknowledge", "exclude_me", "disclose_me", "retain"] {
        if u.arbitrary()? {
            d.insert(key.into(), Value::Bool(u.arbitrary()?));
        }
    }
    if u.arbitrary()? {
        let list: List = vec![Value::Int(u.int_in_range(0..=3)?), Value::from("x")];
        d.insert(
            (*u.choose(&["exclude", "eligible", "exclude_authid", "eligible_authrole"])?).into(),
            list.into(),
        );
    }
    Ok(d)
}

fn call_options(u: &mut Unstructured<'_>) -> Result<Dict> {
    let mut d = Dict::new();
    if u.arbitrary()? {
        d.insert("receive_progress".into(), Value::Bool(u.arbitrary()?));
    }
    if u.arbitrary()? {
        d.insert("timeout".into(), Value::Int(u.int_in_range(-1..=2000)?));
    }
    if u.arbitrary()? {
        d.insert("disclose_me".into(), Value::Bool(u.arbitrary()?));
    }
    Ok(d)
}

fn payload(u: &mut Unstructured<'_>) -> Result<Payload> {
    Ok(match u.int_in_range(0..=3u8)? {
        0 => Payload::default(),
        1 => {
            let n = u.int_in_range(0..=4)?;
            Payload::args(vec![Value::Int(u.arbitrary()?), Value::Bytes(u.bytes(n)?.to_vec())])
        }
        2 => Payload::new(Some(Vec::new()), Some(dict! { "k" => Value::Float(u.arbitrary()?) })),
        _ => Payload::new(None, Some(dict! { "s" => String::from_utf8_lossy(u.bytes(3)?).into_owned() })),
    })
}
