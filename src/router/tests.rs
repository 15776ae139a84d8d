//! Router tests without sockets: sessions driven by encoded frames, their outboxes
//! read back and decoded. Covers the broker and dealer rules end to end in-process.

use std::sync::Arc;

use super::Router;
use super::outbox::{OutboxReceiver, outbox};
use super::session::{Flow, Session};
use crate::config::Config;
use crate::dict;
use crate::ids::{NodeId, RegistrationId, RequestId, SubscriptionId};
use crate::wamp::codec::Serializer;
use crate::wamp::errors;
use crate::wamp::message::*;
use crate::wamp::value::{Dict, Value};

struct Client {
    session: Session,
    rx: OutboxReceiver,
    ser: Serializer,
    id: crate::ids::SessionId,
}

impl Client {
    async fn join(router: &Arc<Router>, ser: Serializer) -> Client {
        let (tx, rx) = outbox(64, 1 << 20);
        let id = crate::ids::SessionId(0);
        let mut c = Client { session: Session::new(router.clone(), ser, tx, "test"), rx, ser, id };
        c.send(Message::Hello(Hello { realm: "realm1".into(), details: Dict::new() })).await;
        match c.next() {
            Some(Message::Welcome(w)) => c.id = w.session,
            other => panic!("expected WELCOME, got {other:?}"),
        }
        c
    }

    async fn send(&mut self, msg: Message) -> Flow {
        let bytes = self.ser.encode(&msg);
        self.session.on_frame(&bytes::Bytes::from(bytes)).await
    }

    fn next(&mut self) -> Option<Message> {
        let mut batch = Vec::new();
        self.rx.drain_now(&mut batch);
        assert!(batch.len() <= 1, "expected at most one queued message, got {}", batch.len());
        batch.first().map(|f| self.ser.decode(f).expect("router output decodes"))
    }
}

fn router() -> Arc<Router> {
    Router::new(Config::default(), NodeId(1))
}

fn rid(n: u64) -> RequestId {
    RequestId(n)
}

async fn subscribe(c: &mut Client, req: u64, topic: &str) -> SubscriptionId {
    c.send(Message::Subscribe(Subscribe { request: rid(req), options: Dict::new(), topic: topic.into() }))
        .await;
    match c.next() {
        Some(Message::Subscribed(s)) => s.subscription,
        other => panic!("expected SUBSCRIBED, got {other:?}"),
    }
}

async fn register(c: &mut Client, req: u64, procedure: &str) -> Option<Message> {
    c.send(Message::Register(Register {
        request: rid(req),
        options: Dict::new(),
        procedure: procedure.into(),
    }))
    .await;
    c.next()
}

fn call(req: u64, procedure: &str, payload: Payload) -> Message {
    Message::Call(Call { request: rid(req), options: Dict::new(), procedure: procedure.into(), payload })
}

fn error_uri(m: Option<Message>) -> String {
    match m {
        Some(Message::Error(e)) => e.error,
        other => panic!("expected ERROR, got {other:?}"),
    }
}

#[tokio::test]
async fn same_topic_same_subscription_and_exclude_me() {
    let r = router();
    let mut a = Client::join(&r, Serializer::Json).await;
    let mut b = Client::join(&r, Serializer::MsgPack).await;
    let sa = subscribe(&mut a, 1, "com.t").await;
    let sb = subscribe(&mut b, 1, "com.t").await;
    assert_eq!(sa, sb);
    let payload = Payload::new(Some(vec![Value::Bytes(vec![0, 1, 255])]), Some(dict! { "k" => 1u64 }));
    let publish = Publish {
        request: rid(2),
        options: dict! { "acknowledge" => true },
        topic: "com.t".into(),
        payload: payload.clone(),
    };
    a.send(Message::Publish(publish)).await;
    assert!(matches!(a.next(), Some(Message::Published(_))), "publisher excluded, acknowledged");
    match b.next() {
        Some(Message::Event(e)) => {
            assert_eq!(e.subscription, sb);
            assert_eq!(e.payload, payload);
        }
        other => panic!("expected EVENT, got {other:?}"),
    }
    let publish =
        Publish { request: rid(3), options: dict! { "exclude_me" => false }, topic: "com.t".into(), payload };
    a.send(Message::Publish(publish)).await;
    assert!(matches!(a.next(), Some(Message::Event(_))), "exclude_me=false delivers to the publisher");
}

#[tokio::test]
async fn unsubscribe_errors_and_stops_delivery() {
    let r = router();
    let mut a = Client::join(&r, Serializer::Cbor).await;
    let s = subscribe(&mut a, 1, "com.t").await;
    a.send(Message::Unsubscribe(Unsubscribe { request: rid(2), subscription: s })).await;
    assert!(matches!(a.next(), Some(Message::Unsubscribed(_))));
    a.send(Message::Unsubscribe(Unsubscribe { request: rid(3), subscription: s })).await;
    assert_eq!(error_uri(a.next()), errors::NO_SUCH_SUBSCRIPTION);
    let publish = Publish {
        request: rid(4),
        options: dict! { "exclude_me" => false },
        topic: "com.t".into(),
        payload: Payload::default(),
    };
    a.send(Message::Publish(publish)).await;
    assert!(a.next().is_none());
}

#[tokio::test]
async fn call_yield_and_error_uris() {
    let r = router();
    let mut callee = Client::join(&r, Serializer::MsgPack).await;
    let mut caller = Client::join(&r, Serializer::Json).await;
    let Some(Message::Registered(reg)) = register(&mut callee, 1, "com.add").await else {
        panic!("register")
    };
    assert_eq!(error_uri(register(&mut caller, 1, "com.add").await), errors::PROCEDURE_ALREADY_EXISTS);
    assert_eq!(error_uri(register(&mut caller, 2, "wamp.mine").await), errors::INVALID_URI);
    assert_eq!(error_uri(register(&mut caller, 3, "com..add").await), errors::INVALID_URI);
    caller.send(call(4, "com.nothing", Payload::default())).await;
    assert_eq!(error_uri(caller.next()), errors::NO_SUCH_PROCEDURE);

    let args = Payload::new(Some(vec![Value::Int(2), Value::Float(3.5)]), Some(dict! { "x" => "y" }));
    caller.send(call(5, "com.add", args.clone())).await;
    let Some(Message::Invocation(inv)) = callee.next() else { panic!("invocation") };
    assert_eq!((inv.registration, &inv.payload), (reg.registration, &args));
    callee
        .send(Message::Yield(Yield { request: inv.request, options: Dict::new(), payload: args.clone() }))
        .await;
    match caller.next() {
        Some(Message::Result(res)) => assert_eq!((res.request, res.payload), (rid(5), args)),
        other => panic!("expected RESULT, got {other:?}"),
    }

    caller.send(call(6, "com.add", Payload::default())).await;
    let Some(Message::Invocation(inv)) = callee.next() else { panic!("invocation") };
    let err = Error {
        request_type: code::INVOCATION,
        request: inv.request,
        details: Dict::new(),
        error: "com.app.oops".into(),
        payload: Payload::args(vec!["why".into()]),
    };
    callee.send(Message::Error(err)).await;
    match caller.next() {
        Some(Message::Error(e)) => {
            assert_eq!((e.request_type, e.request, e.error.as_str()), (code::CALL, rid(6), "com.app.oops"))
        }
        other => panic!("expected ERROR, got {other:?}"),
    }
    callee.send(Message::Unregister(Unregister { request: rid(7), registration: reg.registration })).await;
    assert!(matches!(callee.next(), Some(Message::Unregistered(_))));
    callee.send(Message::Unregister(Unregister { request: rid(8), registration: RegistrationId(999) })).await;
    assert_eq!(error_uri(callee.next()), errors::NO_SUCH_REGISTRATION);
}

#[tokio::test]
async fn callee_leaving_cancels_calls_in_flight() {
    let r = router();
    let mut callee = Client::join(&r, Serializer::Json).await;
    let mut caller = Client::join(&r, Serializer::Json).await;
    register(&mut callee, 1, "com.slow").await;
    caller.send(call(2, "com.slow", Payload::default())).await;
    assert!(matches!(callee.next(), Some(Message::Invocation(_))));
    callee.session.leave().await;
    assert_eq!(error_uri(caller.next()), errors::CANCELED);
    caller.send(call(3, "com.slow", Payload::default())).await;
    assert_eq!(error_uri(caller.next()), errors::NO_SUCH_PROCEDURE, "registration removed with the session");
}

#[tokio::test]
async fn violations_abort() {
    let r = router();
    let mut a = Client::join(&r, Serializer::Json).await;
    register(&mut a, 1, "com.p").await;
    let flow = a
        .send(Message::Yield(Yield { request: rid(77), options: Dict::new(), payload: Payload::default() }))
        .await;
    assert_eq!(flow, Flow::Close);
    match a.next() {
        Some(Message::Abort(m)) => assert_eq!(m.reason, errors::PROTOCOL_VIOLATION),
        other => panic!("expected ABORT, got {other:?}"),
    }
    let mut b = Client::join(&r, Serializer::Json).await;
    b.send(call(1, "com.p", Payload::default())).await;
    assert_eq!(error_uri(b.next()), errors::NO_SUCH_PROCEDURE, "the violator's registration is gone");
    let flow = b.send(Message::Hello(Hello { realm: "realm1".into(), details: Dict::new() })).await;
    assert_eq!(flow, Flow::Close);
    assert!(matches!(b.next(), Some(Message::Abort(_))));
    let (tx, mut rx) = outbox(4, 1 << 16);
    let mut raw = Session::new(r.clone(), Serializer::Json, tx, "test");
    assert_eq!(raw.on_frame(&bytes::Bytes::from_static(b"[1, garbage")).await, Flow::Close);
    let mut batch = Vec::new();
    rx.drain_now(&mut batch);
    assert!(String::from_utf8_lossy(&batch[0]).contains(errors::PROTOCOL_VIOLATION));
}

#[tokio::test]
async fn unknown_realm_aborts_and_goodbye_is_answered() {
    let r = router();
    let (tx, mut rx) = outbox(4, 1 << 16);
    let mut s = Session::new(r.clone(), Serializer::Json, tx, "test");
    let hello = Message::Hello(Hello { realm: "nope".into(), details: Dict::new() });
    assert_eq!(s.on_frame(&Serializer::Json.encode(&hello).into()).await, Flow::Close);
    let mut batch = Vec::new();
    rx.drain_now(&mut batch);
    assert!(String::from_utf8_lossy(&batch[0]).contains(errors::NO_SUCH_REALM));

    let mut a = Client::join(&r, Serializer::Json).await;
    a.send(Message::Goodbye(Goodbye { details: Dict::new(), reason: errors::NORMAL.into() })).await;
    match a.next() {
        Some(Message::Goodbye(g)) => assert_eq!(g.reason, errors::GOODBYE_AND_OUT),
        other => panic!("expected GOODBYE, got {other:?}"),
    }
    assert_eq!(r.session_count(), 0);
}

#[tokio::test]
async fn a_register_committed_without_the_session_hearing_of_it_becomes_its_own() {
    use crate::dealer::{Callee, InvokePolicy};
    use crate::table::Command;
    use crate::wamp::uri::MatchPolicy;
    let r = router();
    let mut c = Client::join(&r, Serializer::Json).await;
    // what a retried forwarded proposal leaves: the entry is committed, the session
    // never got REGISTERED for it
    let cmd = Command::Register {
        realm: "realm1".into(),
        callee: Callee { node: r.node, session: c.id, disclose_caller: false },
        procedure: "com.p".into(),
        policy: MatchPolicy::Exact,
        invoke: InvokePolicy::Single,
        now_ms: 1,
    };
    r.replica.propose(cmd).await.expect("committed");
    let committed =
        r.replica.read(|t| t.realm("realm1").and_then(|t| t.registrations.lookup("com.p")).map(|g| g.id));
    match register(&mut c, 1, "com.p").await {
        Some(Message::Registered(m)) => assert_eq!(Some(m.registration), committed),
        other => panic!("expected REGISTERED, got {other:?}"),
    }
    assert_eq!(
        error_uri(register(&mut c, 2, "com.p").await),
        errors::PROCEDURE_ALREADY_EXISTS,
        "a real duplicate"
    );
    c.send(Message::Goodbye(Goodbye { details: Dict::new(), reason: errors::NORMAL.into() })).await;
    let left = r.replica.read(|t| t.realm("realm1").and_then(|t| t.registrations.lookup("com.p")).is_some());
    assert!(!left, "the entry left with the session");
}

impl Client {
    /// The next frame, waiting for it.
    async fn next_waiting(&mut self) -> Message {
        let mut batch = Vec::new();
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), self.rx.recv_many(&mut batch, 1));
        assert_eq!(got.await.expect("a frame in time"), 1);
        self.ser.decode(&batch[0]).expect("router output decodes")
    }
}

fn bridge_identity() -> super::handle::Identity {
    super::handle::Identity {
        authid: "http".into(),
        authrole: "anonymous".into(),
        authmethod: "anonymous".into(),
        authprovider: "static".into(),
    }
}

/// Only the test's own sessions are left in the realm and the dealer.
fn bridge_sessions_gone(r: &Router, joined: usize) {
    assert_eq!(r.realm("realm1").expect("realm").sessions.len(), joined, "the bridge's session left");
    assert_eq!(r.dealing.lock().calls_in_flight(), 0, "no call left behind");
}

#[tokio::test]
async fn a_bridged_publish_is_delivered_and_its_session_leaves() {
    use super::bridge::{self, Answer};
    let r = router();
    let mut sub = Client::join(&r, Serializer::MsgPack).await;
    let s = subscribe(&mut sub, 1, "com.http").await;
    let payload = Payload::new(Some(vec![1u64.into()]), Some(dict! { "k" => "v" }));
    let answer =
        bridge::publish(&r, "realm1", bridge_identity(), "com.http".into(), payload.clone(), Dict::new());
    let Answer::Published(id) = answer.await else { panic!("published") };
    match sub.next() {
        Some(Message::Event(e)) => {
            assert_eq!((e.subscription, e.publication, e.payload), (s, id, payload));
        }
        other => panic!("expected EVENT, got {other:?}"),
    }
    let bad =
        bridge::publish(&r, "realm1", bridge_identity(), "wamp.x".into(), Payload::default(), Dict::new());
    assert!(matches!(bad.await, Answer::Error(uri, _) if uri == errors::INVALID_URI));
    let none =
        bridge::publish(&r, "nowhere", bridge_identity(), "com.x".into(), Payload::default(), Dict::new());
    assert!(matches!(none.await, Answer::Error(uri, _) if uri == errors::NO_SUCH_REALM));
    bridge_sessions_gone(&r, 1);
}

#[tokio::test]
async fn a_bridged_call_gets_the_final_result_and_a_dropped_one_is_canceled() {
    use super::bridge::{self, Answer};
    let r = router();
    let mut callee = Client::join(&r, Serializer::Json).await;
    assert!(matches!(register(&mut callee, 1, "com.add").await, Some(Message::Registered(_))));
    let timeout = std::time::Duration::from_secs(5);
    let args = Payload::args(vec![2u64.into(), 3u64.into()]);
    let options = dict! { "receive_progress" => true };
    let call = tokio::spawn({
        let (r, args) = (r.clone(), args.clone());
        async move {
            bridge::call(&r, "realm1", bridge_identity(), "com.add".into(), args, options, timeout).await
        }
    });
    let Message::Invocation(inv) = callee.next_waiting().await else { panic!("invocation") };
    assert_eq!(inv.payload, args);
    assert!(!crate::wamp::value::dict_bool(&inv.details, "receive_progress"), "no progressive results asked");
    let sum = Payload::args(vec![5u64.into()]);
    callee
        .send(Message::Yield(Yield { request: inv.request, options: Dict::new(), payload: sum.clone() }))
        .await;
    assert_eq!(call.await.expect("task"), Answer::Result(sum));
    bridge_sessions_gone(&r, 1);

    // the HTTP client goes away mid-call: the bridge's session leaves, the call ends
    let pending = tokio::spawn({
        let r = r.clone();
        async move {
            bridge::call(&r, "realm1", bridge_identity(), "com.add".into(), args, Dict::new(), timeout).await
        }
    });
    let Message::Invocation(_) = callee.next_waiting().await else { panic!("invocation") };
    pending.abort();
    assert!(pending.await.is_err_and(|e| e.is_cancelled()));
    bridge_sessions_gone(&r, 1);

    let missing = bridge::call(
        &r,
        "realm1",
        bridge_identity(),
        "com.none".into(),
        Payload::default(),
        Dict::new(),
        timeout,
    );
    assert!(matches!(missing.await, Answer::Error(uri, _) if uri == errors::NO_SUCH_PROCEDURE));
}

type Sent = tokio::sync::mpsc::UnboundedReceiver<(NodeId, crate::link::LinkMsg)>;

/// Runs `request` while node 2 acknowledges the interest change it sends there (if
/// any, within 5 s); what the request gave and the change: topic, and on or off.
async fn told_node2<T>(
    router: &Router,
    sent: &mut Sent,
    request: impl std::future::Future<Output = T>,
) -> (T, (String, bool)) {
    let node2 = async {
        let (topic, on, seq) = loop {
            if let (NodeId(2), crate::link::LinkMsg::Interest { topic, on, seq, .. }) =
                sent.recv().await.expect("links open")
            {
                break (topic, on, seq);
            }
        };
        router.interest.on_ack(router, NodeId(2), seq);
        (topic, on)
    };
    tokio::time::timeout(std::time::Duration::from_secs(5), async { tokio::join!(request, node2) })
        .await
        .expect("node 2 was told of the change")
}

#[tokio::test]
async fn interest_reaches_a_node_that_had_the_whole_interest_before_the_cluster_counts_it_up() {
    use crate::link::LinkHandler;
    // node 2 came back (a restart): its link is up and it was sent node 1's whole
    // interest, but the replicated state here does not count it up yet
    let (router, fake, mut sent) = node1_of(None, &[NodeId(2)]);
    let mut c = Client::join(&router, Serializer::Json).await;
    router.link_up(NodeId(2));
    // a new subscription: node 2 must hear of it, or it keeps the stale whole
    // interest with nothing left to send it again (it counts as synced)
    let (id, told) = told_node2(&router, &mut sent, subscribe(&mut c, 1, "com.example.t")).await;
    assert_eq!(told, ("com.example.t".to_owned(), true));
    // and of its end, once it lingered
    c.send(Message::Unsubscribe(Unsubscribe { request: rid(2), subscription: id })).await;
    assert!(matches!(c.next(), Some(Message::Unsubscribed(_))));
    let sweep =
        async { router.interest.sweep(&router, tokio::time::Instant::now() + super::interest::LINGER) };
    let (_, told) = told_node2(&router, &mut sent, sweep).await;
    assert_eq!(told, ("com.example.t".to_owned(), false));
    // once the cluster counts node 2 up it gets changes as before, once each
    *fake.up.lock().unwrap() = Some(vec![NodeId(1), NodeId(2)]);
    let (_, told) = told_node2(&router, &mut sent, subscribe(&mut c, 3, "com.example.u")).await;
    assert_eq!(told, ("com.example.u".to_owned(), true));
    assert!(sent.try_recv().is_err(), "nothing sent twice");
}

#[tokio::test]
async fn subscribes_made_while_an_interest_change_is_unanswered_leave_together_when_it_is_answered() {
    use crate::link::LinkHandler;
    let (router, mut sent) = linked_to_node2();
    let (mut a, mut b, mut c) = (
        Client::join(&router, Serializer::Json).await,
        Client::join(&router, Serializer::Json).await,
        Client::join(&router, Serializer::Json).await,
    );
    router.link_up(NodeId(2));
    assert!(matches!(sent.recv().await, Some((NodeId(2), crate::link::LinkMsg::InterestSync { .. }))));
    let interest = |m: Option<(NodeId, crate::link::LinkMsg)>| match m {
        Some((NodeId(2), crate::link::LinkMsg::Interest { topic, on: true, seq, .. })) => (topic, seq),
        other => panic!("expected a new interest for node 2, got {other:?}"),
    };
    let node2 = async {
        let (first, seq) = interest(sent.recv().await);
        // the other two SUBSCRIBEs are made while the first change is unanswered
        while router.interest.held() < 2 {
            tokio::task::yield_now().await;
        }
        assert!(sent.try_recv().is_err(), "held, not sent");
        router.interest.on_ack(&router, NodeId(2), seq);
        let (second, seq2) = interest(sent.try_recv().ok());
        let (third, seq3) = interest(sent.try_recv().ok());
        assert_eq!(router.interest.held(), 0);
        router.interest.on_ack(&router, NodeId(2), seq2);
        router.interest.on_ack(&router, NodeId(2), seq3);
        [first, second, third]
    };
    let subscribes = async {
        tokio::join!(subscribe(&mut a, 1, "com.example.a"), subscribe(&mut b, 1, "com.example.b"), async {
            // after b's change is made, so the order is known
            while router.interest.held() < 1 {
                tokio::task::yield_now().await;
            }
            subscribe(&mut c, 1, "com.example.c").await
        })
    };
    let limit = std::time::Duration::from_secs(5);
    let (ids, told) =
        tokio::time::timeout(limit, async { tokio::join!(subscribes, node2) }).await.expect("in time");
    assert_eq!(told, ["com.example.a", "com.example.b", "com.example.c"], "in the order they were made");
    assert!(ids.0 != ids.1 && ids.1 != ids.2, "three subscriptions, each SUBSCRIBED");
    assert!(sent.try_recv().is_err(), "nothing sent twice");
}

#[tokio::test]
async fn a_subscribe_whose_change_cannot_reach_one_node_waits_only_for_the_others() {
    use crate::link::LinkHandler;
    // nodes 2 and 3 count up, but the link to node 2 is down: SUBSCRIBED waits for
    // node 3's acknowledgement alone, not for the 2 s limit
    let (router, _, mut sent) = node1_of(Some(vec![NodeId(1), NodeId(2), NodeId(3)]), &[NodeId(3)]);
    let mut c = Client::join(&router, Serializer::Json).await;
    router.link_up(NodeId(3));
    let node3 = async {
        loop {
            if let Some((NodeId(3), crate::link::LinkMsg::Interest { seq, .. })) = sent.recv().await {
                router.interest.on_ack(&router, NodeId(3), seq);
                return;
            }
        }
    };
    let limit = super::interest::ACK_LIMIT / 2;
    let subscribed = async { tokio::join!(subscribe(&mut c, 1, "com.example.t"), node3) };
    assert!(
        tokio::time::timeout(limit, subscribed).await.is_ok(),
        "SUBSCRIBED waited for the node it could not tell"
    );
}

/// The node the next whole interest goes to (within 5 s).
async fn next_resync(sent: &mut Sent) -> Option<NodeId> {
    let next = async {
        loop {
            if let (to, crate::link::LinkMsg::InterestSync { .. }) = sent.recv().await.expect("links open") {
                return to;
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(5), next).await.ok()
}

#[tokio::test]
async fn a_purged_node_sends_its_whole_interest_again_to_every_node_it_went_to() {
    use crate::link::LinkHandler;
    // node 3's link is up and it was sent the whole interest, but the replicated
    // state counts only node 2 up
    let (router, fake, mut sent) = node1_of(Some(vec![NodeId(1), NodeId(2)]), &[NodeId(2), NodeId(3)]);
    let _c = Client::join(&router, Serializer::Json).await;
    router.link_up(NodeId(2));
    router.link_up(NodeId(3));
    while sent.try_recv().is_ok() {}
    tokio::spawn(super::purge::watch(router.clone()));
    tokio::spawn(super::interest::keep_synced(Arc::downgrade(&router)));
    // this node (incarnation 1) is purged: the others dropped its interest
    let downs = loop {
        if let Some(tx) = fake.downs.lock().unwrap().clone() {
            break tx;
        }
        tokio::task::yield_now().await;
    };
    let purge = crate::cluster::NodeDownEvent {
        node: 1,
        incarnation: 1,
        log_index: 9,
        testaments: Vec::new(),
        publisher: 2,
    };
    downs.send(purge).expect("the router follows purges");
    assert_eq!(next_resync(&mut sent).await, Some(NodeId(2)), "node 2, up, gets it whole again");
    // node 3 too, once the cluster counts it up
    *fake.up.lock().unwrap() = Some(vec![NodeId(1), NodeId(2), NodeId(3)]);
    assert_eq!(next_resync(&mut sent).await, Some(NodeId(3)));
}

/// Node 1 of a cluster whose replicated state counts `up` up (`None`: what it
/// counts before any node is known), with links to `linked`: the router, the cluster
/// it reads, and what it sends.
fn node1_of(
    up: Option<Vec<NodeId>>,
    linked: &[NodeId],
) -> (Arc<Router>, Arc<super::test_doubles::FakeCluster>, Sent) {
    use super::test_doubles::{FakeCluster, RecordingLinks};
    let fake = Arc::new(FakeCluster::default());
    *fake.up.lock().unwrap() = up;
    let replica = super::replica::Replica::new(Arc::default(), fake.clone());
    let router = Router::with_replica(Config::default(), NodeId(1), replica);
    let (links, sent) = RecordingLinks::new(linked);
    router.set_links(links);
    (router, fake, sent)
}

/// Node 1 of a cluster with node 2 up and linked; what it sends node 2.
fn linked_to_node2() -> (Arc<Router>, Sent) {
    let (router, _, sent) = node1_of(Some(vec![NodeId(1), NodeId(2)]), &[NodeId(2)]);
    (router, sent)
}

#[tokio::test]
async fn a_subscriber_back_within_the_linger_is_subscribed_without_a_round_trip() {
    use super::interest::LINGER;
    let (router, mut sent) = linked_to_node2();
    let mut c = Client::join(&router, Serializer::Json).await;
    let (id, told) = told_node2(&router, &mut sent, subscribe(&mut c, 1, "com.example.t")).await;
    assert_eq!(told, ("com.example.t".to_owned(), true));
    c.send(Message::Unsubscribe(Unsubscribe { request: rid(2), subscription: id })).await;
    assert!(matches!(c.next(), Some(Message::Unsubscribed(_))));
    assert!(sent.try_recv().is_err(), "the interest lingers: node 2 is told nothing yet");
    assert_eq!(router.interest.lingering(), 1);
    // back within the linger: node 2 still holds the interest
    assert_eq!(subscribe(&mut c, 3, "com.example.t").await, id);
    assert!(sent.try_recv().is_err(), "SUBSCRIBED with nothing sent and nothing waited for");
    assert_eq!(router.interest.lingering(), 0);
    router.interest.sweep(&router, tokio::time::Instant::now() + LINGER);
    assert!(sent.try_recv().is_err(), "a live interest is not swept");
    // the session leaves: the interest lingers again, and goes once it lingered long enough
    c.send(Message::Goodbye(Goodbye { details: Dict::new(), reason: errors::NORMAL.into() })).await;
    assert_eq!(router.interest.lingering(), 1);
    router.interest.sweep(&router, tokio::time::Instant::now() + LINGER / 2);
    assert!(sent.try_recv().is_err(), "withdrawn before it lingered for LINGER");
    router.interest.sweep(&router, tokio::time::Instant::now() + LINGER);
    match sent.try_recv() {
        Ok((NodeId(2), crate::link::LinkMsg::Interest { topic, on: false, seq: 0, .. })) => {
            assert_eq!(topic, "com.example.t")
        }
        other => panic!("expected the interest withdrawn, got {other:?}"),
    }
    assert!(sent.try_recv().is_err(), "withdrawn once");
    assert_eq!(router.interest.lingering(), 0);
}

#[tokio::test]
async fn lingering_interest_is_part_of_the_whole_interest_a_link_sends_again() {
    use crate::link::LinkHandler;
    let (router, mut sent) = linked_to_node2();
    let mut c = Client::join(&router, Serializer::Json).await;
    let (id, _) = told_node2(&router, &mut sent, subscribe(&mut c, 1, "com.example.t")).await;
    c.send(Message::Unsubscribe(Unsubscribe { request: rid(2), subscription: id })).await;
    // the link reconnects while the interest lingers: node 2 gets it whole again,
    // lingering interest included, so a subscriber back later need not tell it
    router.link_up(NodeId(2));
    match sent.try_recv() {
        Ok((NodeId(2), crate::link::LinkMsg::InterestSync { entries, .. })) => {
            let topics: Vec<&str> = entries.iter().map(|(t, _)| t.as_str()).collect();
            assert_eq!(topics, ["com.example.t"]);
        }
        other => panic!("expected the whole interest, got {other:?}"),
    }
}

#[tokio::test]
async fn a_lone_node_has_nobody_to_linger_for() {
    let router = router();
    let mut c = Client::join(&router, Serializer::Json).await;
    let id = subscribe(&mut c, 1, "com.example.t").await;
    c.send(Message::Unsubscribe(Unsubscribe { request: rid(2), subscription: id })).await;
    assert!(matches!(c.next(), Some(Message::Unsubscribed(_))));
    assert_eq!(router.interest.lingering(), 0);
}
