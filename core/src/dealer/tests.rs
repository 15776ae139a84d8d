//! The dealer's state machine on a virtual clock: one dealer, and two dealers wired
//! together as two nodes (their link frames handed from one to the other, no
//! sockets). Each test names the feature it covers.

use std::cell::Cell;
use std::collections::HashSet;
use std::time::{Duration, Instant};

use super::*;
use crate::dict;
use crate::ids::{CallId, NodeId, RegistrationId, RequestId, SessionId};
use crate::link::LinkMsg;
use crate::wamp::errors;
use crate::wamp::message::{self, Cancel, Error, Message, Payload, Yield, code};
use crate::wamp::uri::MatchPolicy;
use crate::wamp::value::{Dict, Value};

const N1: NodeId = NodeId(1);
const N2: NodeId = NodeId(2);
const REG: RegistrationId = RegistrationId(100);
const CALLER: SessionId = SessionId(11);

/// The routing table and the links, as the dealers see them.
struct Table {
    registration: Option<Registration>,
    down: HashSet<NodeId>,
    awaiting: HashSet<SessionId>,
    /// Callees this node's table does not list (yet, or any more).
    unlisted: HashSet<SessionId>,
    turn: Cell<usize>,
}

impl Registry for Table {
    fn registration(
        &self,
        _realm: &str,
        procedure: &str,
        exact_only: bool,
        found: &mut dyn FnMut(&Registration),
    ) {
        if let Some(r) = self
            .registration
            .as_ref()
            .filter(|r| r.uri == procedure || (!exact_only && r.policy != MatchPolicy::Exact))
        {
            found(r);
        }
    }
    fn reachable(&self, node: NodeId) -> bool {
        !self.down.contains(&node)
    }
    fn next_turn(&self, _realm: &str, _registration: RegistrationId) -> usize {
        self.turn.replace(self.turn.get() + 1)
    }
    fn awaits_registration(&self, session: SessionId, _registration: RegistrationId) -> bool {
        self.awaiting.contains(&session)
    }
    fn lists_callee(&self, _realm: &str, registration: RegistrationId, callee: SessionId) -> bool {
        !self.unlisted.contains(&callee)
            && self
                .registration
                .as_ref()
                .is_some_and(|r| r.id == registration && r.callees.iter().any(|c| c.session == callee))
    }
}

/// Two nodes' dealers, what each sent to its sessions, and the clock.
struct Net {
    nodes: [Dealer; 2],
    table: Table,
    sent: Vec<(NodeId, SessionId, Message)>,
    /// The deadlines of the messages sent with one ([`Action::SendBy`]).
    deadlines: Vec<(NodeId, SessionId, Instant)>,
    answers: Vec<(CallId, Reply)>,
    ended: Vec<(CallId, Option<String>)>,
    t0: Instant,
    /// The time of the step being run (link frames arrive at once).
    clock: Instant,
    next_call: u64,
    /// A node that reads no frames, and what was sent to it meanwhile (from, to,
    /// when, frame).
    paused: Option<NodeId>,
    queued: Vec<(NodeId, NodeId, Instant, LinkMsg)>,
}

fn features(canceling: bool) -> Features {
    Features { call_canceling: canceling, callee_progressive_invocations: true, ..Features::default() }
}

impl Net {
    /// Node 1 with the caller; callees are (node, session, announces call_canceling).
    fn new(invoke: InvokePolicy, callees: &[(NodeId, SessionId, bool)]) -> Net {
        let t0 = Instant::now();
        let mut nodes = [Dealer::new(N1, 7), Dealer::new(N2, 7)];
        let peer =
            |f| Peer { realm: "realm1".into(), authid: "alice".into(), authrole: "user".into(), features: f };
        nodes[0].session_joined(CALLER, peer(features(true)));
        for &(node, session, canceling) in callees {
            nodes[(node.0 - 1) as usize].session_joined(session, peer(features(canceling)));
        }
        let registration = Registration {
            id: REG,
            uri: "com.app.proc".into(),
            policy: MatchPolicy::Exact,
            invoke,
            created_ms: 0,
            callees: callees
                .iter()
                .map(|&(node, session, _)| Callee { node, session, disclose_caller: false })
                .collect(),
        };
        let table = Table {
            registration: Some(registration),
            down: HashSet::new(),
            awaiting: HashSet::new(),
            unlisted: HashSet::new(),
            turn: Cell::new(0),
        };
        Net {
            nodes,
            table,
            sent: Vec::new(),
            deadlines: Vec::new(),
            answers: Vec::new(),
            ended: Vec::new(),
            t0,
            clock: t0,
            next_call: 0,
            paused: None,
            queued: Vec::new(),
        }
    }

    /// Like [`Net::new`], with both dealers fencing by `lease`.
    fn fenced(lease: Duration, invoke: InvokePolicy, callees: &[(NodeId, SessionId, bool)]) -> Net {
        let mut net = Net::new(invoke, callees);
        net.nodes = net.nodes.map(|d| d.with_lease(lease));
        net
    }

    fn at(&mut self, ms: u64) -> Instant {
        self.clock = self.t0 + Duration::from_millis(ms);
        self.clock
    }

    /// Carries out the actions of node `node`, handing link frames to the other node
    /// (or queueing them while it is paused).
    fn run(&mut self, node: NodeId, actions: Actions) {
        for a in actions {
            match a {
                Action::Send(s, m) => self.sent.push((node, s, m)),
                Action::SendBy { session, invocation, by } => {
                    self.deadlines.push((node, session, by));
                    self.sent.push((node, session, Message::Invocation(invocation)));
                }
                Action::Answer(id, reply) => self.answers.push((id, reply)),
                Action::CallEnded { call, error, .. } => self.ended.push((call, error)),
                Action::ServedEnded { .. } => {}
                Action::Link(to, msg) if self.paused == Some(to) => {
                    self.queued.push((node, to, self.clock, msg))
                }
                Action::Link(to, msg) => self.deliver(node, to, msg),
            }
        }
    }

    /// Hands a link frame from `from` to `to` at the current time.
    fn deliver(&mut self, from: NodeId, to: NodeId, msg: LinkMsg) {
        let now = self.clock;
        let d = &mut self.nodes[(to.0 - 1) as usize];
        let out = match msg {
            LinkMsg::Invoke { realm, call, callee, registration, details, payload, start_within } => {
                let m = LinkInvoke { realm, call, callee, registration, details, payload, start_within };
                d.handle_link_invoke(from, m, &self.table, now)
            }
            LinkMsg::Yield { call, details, payload, progress } => {
                d.handle_link_yield(from, call, details, payload, progress, now)
            }
            LinkMsg::Error { call, error, details, payload } => {
                d.handle_link_error(from, call, error, details, payload, &self.table, now)
            }
            LinkMsg::Interrupt { call, mode, reason } => d.handle_link_interrupt(from, call, &mode, &reason),
            other => panic!("unexpected link frame {other:?}"),
        };
        self.run(to, out);
    }

    /// Node `node` stops reading its link (SIGSTOP): frames to it queue up.
    fn pause(&mut self, node: NodeId) {
        self.paused = Some(node);
    }

    /// The paused node reads what queued up, at `ms`: an invocation's fence has
    /// run down by the time the frame waited, as the wall-clock deadline does.
    fn resume(&mut self, ms: u64) {
        let now = self.at(ms);
        self.paused = None;
        for (from, to, sent, mut msg) in std::mem::take(&mut self.queued) {
            if let LinkMsg::Invoke { start_within: Some(left), .. } = &mut msg {
                *left = left.saturating_sub(now - sent);
            }
            self.deliver(from, to, msg);
        }
    }

    fn call(&mut self, request: u64, options: Dict, ms: u64) -> CallId {
        self.next_call += 1;
        let id = CallId(self.next_call);
        let m = message::Call {
            request: RequestId(request),
            options,
            procedure: "com.app.proc".into(),
            payload: Payload::args(vec![Value::from(request)]),
        };
        let now = self.at(ms);
        let out = self.nodes[0].handle_call(CALLER, id, m, None, 0, &self.table, now).expect("a valid call");
        self.run(N1, out);
        id
    }

    /// Takes what session `s` on `node` was sent.
    fn take(&mut self, node: NodeId, s: SessionId) -> Vec<Message> {
        let (mine, rest) =
            std::mem::take(&mut self.sent).into_iter().partition(|(n, to, _)| *n == node && *to == s);
        self.sent = rest;
        mine.into_iter().map(|(_, _, m)| m).collect()
    }

    /// The INVOCATION request id session `s` on `node` was sent last.
    fn invocation(&mut self, node: NodeId, s: SessionId) -> RequestId {
        match self.take(node, s).pop() {
            Some(Message::Invocation(i)) => i.request,
            other => panic!("expected an INVOCATION for {s}, got {other:?}"),
        }
    }

    fn yield_(&mut self, node: NodeId, s: SessionId, request: RequestId, progress: bool, ms: u64) {
        let options = if progress {
            dict! { "progress" => true }
        } else {
            Dict::new()
        };
        let now = self.at(ms);
        let out = self.nodes[(node.0 - 1) as usize]
            .handle_yield(s, Yield { request, options, payload: Payload::default() }, now)
            .expect("valid");
        self.run(node, out);
    }

    fn error(&mut self, node: NodeId, s: SessionId, request: RequestId, uri: &str) {
        let e = Error {
            request_type: code::INVOCATION,
            request,
            details: Dict::new(),
            error: uri.into(),
            payload: Payload::default(),
        };
        let now = self.t0;
        let out =
            self.nodes[(node.0 - 1) as usize].handle_invocation_error(s, e, &self.table, now).expect("valid");
        self.run(node, out);
    }

    fn cancel(&mut self, request: u64, mode: &str) {
        let now = self.t0;
        let out = self.nodes[0].handle_cancel(
            CALLER,
            Cancel { request: RequestId(request), options: dict! { "mode" => mode } },
            now,
        );
        self.run(N1, out);
    }

    fn tick(&mut self, node: NodeId, ms: u64) {
        let now = self.at(ms);
        let out = self.nodes[(node.0 - 1) as usize].handle_timeout(now);
        self.run(node, out);
    }
}

fn error_uri(m: &Message) -> Option<&str> {
    match m {
        Message::Error(e) => Some(e.error.as_str()),
        _ => None,
    }
}

fn is_result(m: &Message, progress: bool) -> bool {
    matches!(m, Message::Result(r) if r.details.contains_key("progress") == progress)
}

const A: SessionId = SessionId(21);
const B: SessionId = SessionId(22);

#[test]
fn a_local_call_is_invoked_and_answered_once() {
    let mut net = Net::new(InvokePolicy::Single, &[(N1, A, true)]);
    net.call(1, Dict::new(), 0);
    let inv = net.invocation(N1, A);
    net.yield_(N1, A, inv, false, 5);
    let got = net.take(N1, CALLER);
    assert_eq!(got.len(), 1);
    assert!(is_result(&got[0], false));
    assert!(
        net.nodes[0]
            .handle_yield(
                A,
                Yield { request: inv, options: Dict::new(), payload: Payload::default() },
                net.t0
            )
            .unwrap()
            .is_empty(),
        "a second YIELD is dropped"
    );
    assert_eq!(net.nodes[0].calls_in_flight(), 0);
    assert_eq!(net.ended, vec![(CallId(1), None)]);
}

#[test]
fn a_call_to_a_callee_on_another_node_goes_over_the_link_and_back() {
    let mut net = Net::new(InvokePolicy::Single, &[(N2, B, true)]);
    net.call(1, Dict::new(), 0);
    let inv = net.invocation(N2, B);
    net.yield_(N2, B, inv, false, 3);
    let got = net.take(N1, CALLER);
    assert!(is_result(&got[0], false), "{got:?}");
    assert!(!net.nodes[1].is_serving());
    assert_eq!(net.nodes[0].calls_in_flight(), 0);
}

#[test]
fn rerouting_moves_an_unavailable_callees_call_to_the_next_node() {
    let mut net = Net::new(InvokePolicy::First, &[(N1, A, true), (N2, B, true)]);
    net.call(1, Dict::new(), 0);
    let first = net.invocation(N1, A);
    net.error(N1, A, first, errors::UNAVAILABLE);
    let second = net.invocation(N2, B);
    assert!(net.take(N1, CALLER).is_empty(), "the caller is not told about the reroute");
    net.yield_(N2, B, second, false, 1);
    assert!(is_result(&net.take(N1, CALLER)[0], false));
}

#[test]
fn rerouting_runs_out_of_callees_with_no_available_callee() {
    let mut net = Net::new(InvokePolicy::RoundRobin, &[(N2, B, true), (N1, A, true)]);
    net.call(1, Dict::new(), 0);
    let first = net.invocation(N2, B);
    net.error(N2, B, first, errors::UNAVAILABLE);
    let second = net.invocation(N1, A);
    net.error(N1, A, second, errors::UNAVAILABLE);
    let got = net.take(N1, CALLER);
    assert_eq!(got.iter().filter_map(error_uri).collect::<Vec<_>>(), vec![errors::NO_AVAILABLE_CALLEE]);
}

#[test]
fn cancel_skip_answers_the_caller_and_leaves_the_callee_alone() {
    let mut net = Net::new(InvokePolicy::Single, &[(N1, A, true)]);
    net.call(1, Dict::new(), 0);
    let inv = net.invocation(N1, A);
    net.cancel(1, "skip");
    assert_eq!(net.take(N1, CALLER).iter().filter_map(error_uri).collect::<Vec<_>>(), vec![errors::CANCELED]);
    assert!(net.take(N1, A).is_empty(), "no INTERRUPT in skip mode");
    net.yield_(N1, A, inv, false, 1);
    assert!(net.take(N1, CALLER).is_empty(), "the late result is dropped");
}

#[test]
fn cancel_kill_waits_for_the_callees_answer() {
    let mut net = Net::new(InvokePolicy::Single, &[(N2, B, true)]);
    net.call(1, Dict::new(), 0);
    let inv = net.invocation(N2, B);
    net.cancel(1, "kill");
    assert!(matches!(net.take(N2, B).as_slice(), [Message::Interrupt(i)] if i.request == inv));
    assert!(net.take(N1, CALLER).is_empty(), "kill waits for the callee");
    net.error(N2, B, inv, errors::CANCELED);
    assert_eq!(net.take(N1, CALLER).iter().filter_map(error_uri).collect::<Vec<_>>(), vec![errors::CANCELED]);
}

#[test]
fn cancel_kill_of_a_callee_without_call_canceling_is_answered_by_its_node() {
    let mut net = Net::new(InvokePolicy::Single, &[(N2, B, false)]);
    net.call(1, Dict::new(), 0);
    net.invocation(N2, B);
    net.cancel(1, "kill");
    assert!(net.take(N2, B).is_empty(), "no INTERRUPT to a callee that cannot take it");
    assert_eq!(net.take(N1, CALLER).iter().filter_map(error_uri).collect::<Vec<_>>(), vec![errors::CANCELED]);
    assert!(!net.nodes[1].is_serving());
}

#[test]
fn cancel_killnowait_answers_at_once_and_interrupts() {
    let mut net = Net::new(InvokePolicy::Single, &[(N1, A, true)]);
    net.call(1, Dict::new(), 0);
    let inv = net.invocation(N1, A);
    net.cancel(1, "killnowait");
    assert_eq!(net.take(N1, CALLER).iter().filter_map(error_uri).collect::<Vec<_>>(), vec![errors::CANCELED]);
    assert!(matches!(net.take(N1, A).as_slice(), [Message::Interrupt(i)] if i.request == inv));
    net.error(N1, A, inv, errors::CANCELED);
    assert!(net.take(N1, CALLER).is_empty(), "answered once");
}

#[test]
fn call_timeout_fires_on_the_virtual_clock_and_restarts_on_progress() {
    let mut net = Net::new(InvokePolicy::Single, &[(N2, B, true)]);
    net.call(1, dict! { "timeout" => 100u64, "receive_progress" => true }, 0);
    let inv = net.invocation(N2, B);
    assert_eq!(net.nodes[0].next_deadline(), Some(net.at(100)));
    net.yield_(N2, B, inv, true, 60);
    assert!(is_result(&net.take(N1, CALLER)[0], true));
    net.tick(N1, 100);
    assert!(net.take(N1, CALLER).is_empty(), "progress at 60 ms moved the deadline to 160 ms");
    net.tick(N1, 159);
    assert!(net.take(N1, CALLER).is_empty());
    net.tick(N1, 160);
    assert_eq!(net.take(N1, CALLER).iter().filter_map(error_uri).collect::<Vec<_>>(), vec![errors::TIMEOUT]);
    assert!(
        matches!(net.take(N2, B).as_slice(), [Message::Interrupt(i)] if i.options.get("mode") == Some(&Value::from("killnowait")))
    );
    assert!(!net.nodes[1].is_serving(), "the remote invocation was dropped with the interrupt");
    assert_eq!(net.nodes[0].next_deadline(), None);
}

#[test]
fn progressive_results_reach_only_callers_that_asked_for_them() {
    let mut net = Net::new(InvokePolicy::Single, &[(N1, A, true)]);
    net.call(1, Dict::new(), 0);
    let inv = net.invocation(N1, A);
    net.yield_(N1, A, inv, true, 1);
    assert!(net.take(N1, CALLER).is_empty());
    net.yield_(N1, A, inv, false, 2);
    assert!(is_result(&net.take(N1, CALLER)[0], false));
}

#[test]
fn progressive_call_invocations_send_every_chunk_to_the_same_remote_callee() {
    let mut net = Net::new(InvokePolicy::RoundRobin, &[(N2, B, true), (N1, A, true)]);
    net.call(1, dict! { "progress" => true }, 0);
    let inv = net.invocation(N2, B);
    let chunk = |progress: bool| message::Call {
        request: RequestId(1),
        options: if progress {
            dict! { "progress" => true }
        } else {
            Dict::new()
        },
        procedure: "com.app.proc".into(),
        payload: Payload::default(),
    };
    let out = net.nodes[0].handle_call(CALLER, CallId(9), chunk(true), None, 0, &net.table, net.t0).unwrap();
    net.run(N1, out);
    let out =
        net.nodes[0].handle_call(CALLER, CallId(10), chunk(false), None, 0, &net.table, net.t0).unwrap();
    net.run(N1, out);
    let chunks = net.take(N2, B);
    assert_eq!(chunks.len(), 2);
    assert!(chunks.iter().all(|m| matches!(m, Message::Invocation(i) if i.request == inv)));
    assert!(net.take(N1, A).is_empty(), "no chunk went to the other callee");
    let again = net.nodes[0].handle_call(CALLER, CallId(11), chunk(false), None, 0, &net.table, net.t0);
    assert_eq!(again, Err(Violation::RequestReused), "the input is closed");
}

#[test]
fn losing_a_node_cancels_the_calls_it_serves_and_interrupts_what_it_asked_for() {
    let mut net = Net::new(InvokePolicy::Single, &[(N2, B, true)]);
    net.call(1, Dict::new(), 0);
    let inv = net.invocation(N2, B);
    let out = net.nodes[0].handle_node_lost(N2, net.t0);
    net.run(N1, out);
    let got = net.take(N1, CALLER);
    assert!(
        matches!(got.as_slice(), [Message::Error(e)] if e.error == errors::CANCELED && e.details.get("node") == Some(&Value::from(2u64)))
    );
    let out = net.nodes[1].handle_node_lost(N1, net.t0);
    assert!(
        matches!(out.as_slice(), [Action::ServedEnded { .. }, Action::Send(s, Message::Interrupt(i))] if *s == B && i.request == inv)
    );
    assert!(!net.nodes[1].is_serving());
}

#[test]
fn a_callee_leaving_mid_call_cancels_the_call_on_the_callers_node() {
    let mut net = Net::new(InvokePolicy::Single, &[(N2, B, true)]);
    net.call(1, Dict::new(), 0);
    net.invocation(N2, B);
    let out = net.nodes[1].session_left(B, net.t0);
    net.run(N2, out);
    let got = net.take(N1, CALLER);
    assert!(
        matches!(got.as_slice(), [Message::Error(e)] if e.error == errors::CANCELED && e.payload.arguments().args == Some(vec!["the callee left before answering".into()]))
    );
}

#[test]
fn a_caller_leaving_interrupts_its_callee() {
    let mut net = Net::new(InvokePolicy::Single, &[(N1, A, true)]);
    net.call(1, Dict::new(), 0);
    let inv = net.invocation(N1, A);
    let out = net.nodes[0].session_left(CALLER, net.t0);
    net.run(N1, out);
    assert!(matches!(net.take(N1, A).as_slice(), [Message::Interrupt(i)] if i.request == inv));
    assert_eq!(net.nodes[0].calls_in_flight(), 0);
    assert!(!net.nodes[0].is_serving());
}

#[test]
fn the_routers_own_call_is_answered_or_times_out() {
    let mut net = Net::new(InvokePolicy::Single, &[(N2, B, true)]);
    let out = net.nodes[0].handle_internal_call(
        CallId(50),
        "realm1",
        "com.app.proc",
        vec![],
        Duration::from_millis(10),
        &net.table,
        net.t0,
    );
    net.run(N1, out);
    let inv = net.invocation(N2, B);
    net.yield_(N2, B, inv, false, 1);
    assert!(matches!(net.answers.as_slice(), [(CallId(50), Ok(_))]));
    let out = net.nodes[0].handle_internal_call(
        CallId(51),
        "realm1",
        "com.app.proc",
        vec![],
        Duration::from_millis(10),
        &net.table,
        net.t0,
    );
    net.run(N1, out);
    net.tick(N1, 10);
    assert!(matches!(&net.answers[1], (CallId(51), Err(f)) if f.error == errors::TIMEOUT));
    let out = net.nodes[0].handle_internal_call(
        CallId(52),
        "realm1",
        "com.app.other",
        vec![],
        Duration::from_millis(10),
        &net.table,
        net.t0,
    );
    assert!(
        matches!(out.as_slice(), [Action::Answer(CallId(52), Err(f))] if f.error == errors::NO_SUCH_PROCEDURE)
    );
}

#[test]
fn an_invocation_waits_for_registered_and_fails_when_it_does_not_come() {
    let mut net = Net::new(InvokePolicy::Single, &[(N1, A, true)]);
    net.table.awaiting.insert(A);
    net.call(1, Dict::new(), 0);
    assert!(net.take(N1, A).is_empty(), "held until REGISTERED");
    net.table.awaiting.clear();
    let now = net.at(5);
    let out = net.nodes[0].handle_register_done(A, Some(REG), &net.table, now);
    net.run(N1, out);
    assert!(matches!(net.take(N1, A).as_slice(), [Message::Invocation(_)]));
    net.table.awaiting.insert(A);
    net.call(2, Dict::new(), 10);
    net.tick(N1, 10 + HOLD_LIMIT.as_millis() as u64);
    let got = net.take(N1, CALLER);
    assert!(matches!(got.as_slice(), [Message::Error(e)] if e.error == errors::CANCELED));
    assert!(net.take(N1, A).is_empty(), "the held INVOCATION never went out");
}

#[test]
fn answers_to_ids_never_issued_are_violations_and_late_ones_are_dropped() {
    let mut net = Net::new(InvokePolicy::Single, &[(N1, A, true)]);
    let y = |r| Yield { request: RequestId(r), options: Dict::new(), payload: Payload::default() };
    assert_eq!(net.nodes[0].handle_yield(A, y(1), net.t0), Err(Violation::UnknownYield));
    net.call(1, Dict::new(), 0);
    let inv = net.invocation(N1, A);
    net.cancel(1, "skip");
    assert_eq!(net.nodes[0].handle_yield(A, y(inv.0), net.t0), Ok(vec![]));
}

#[test]
fn disclose_me_tells_the_callee_who_calls() {
    let mut net = Net::new(InvokePolicy::Single, &[(N2, B, true)]);
    net.call(1, dict! { "disclose_me" => true }, 0);
    let got = net.take(N2, B);
    let Some(Message::Invocation(i)) = got.first() else { panic!("{got:?}") };
    assert_eq!(i.details.get("caller"), Some(&Value::from(CALLER.0)));
    assert_eq!(i.details.get("caller_authid"), Some(&Value::from("alice")));
}

const LEASE: Duration = Duration::from_millis(2000);

#[test]
fn fencing_a_lost_nodes_call_is_answered_only_once_its_invocation_can_no_longer_start() {
    let mut net = Net::fenced(LEASE, InvokePolicy::Single, &[(N2, B, true)]);
    net.pause(N2);
    net.call(1, Dict::new(), 0);
    let now = net.at(500);
    let out = net.nodes[0].handle_node_lost(N2, now);
    net.run(N1, out);
    assert!(net.take(N1, CALLER).is_empty(), "not answered before the lease has passed");
    assert_eq!(net.nodes[0].next_deadline(), Some(net.t0 + LEASE));
    net.tick(N1, 1999);
    assert!(net.take(N1, CALLER).is_empty());
    net.tick(N1, 2000);
    let got = net.take(N1, CALLER);
    assert!(matches!(got.as_slice(), [Message::Error(e)] if e.error == errors::CANCELED));
    net.resume(6000);
    assert!(net.take(N2, B).is_empty(), "the resumed node does not start the invocation");
    assert!(net.take(N1, CALLER).is_empty(), "the call is not answered twice");
    assert!(!net.nodes[1].is_serving());
}

#[test]
fn fencing_an_invoke_that_waited_beyond_its_fence_is_refused_and_the_call_answered() {
    let mut net = Net::fenced(LEASE, InvokePolicy::Single, &[(N2, B, true)]);
    net.pause(N2);
    net.call(1, Dict::new(), 0);
    net.resume(1600);
    assert!(net.take(N2, B).is_empty(), "three quarters of the lease passed: not started");
    let got = net.take(N1, CALLER);
    assert!(matches!(got.as_slice(), [Message::Error(e)] if e.error == errors::CANCELED));
}

#[test]
fn fencing_an_invoke_within_its_fence_runs_normally() {
    let mut net = Net::fenced(LEASE, InvokePolicy::Single, &[(N2, B, true)]);
    net.pause(N2);
    net.call(1, Dict::new(), 0);
    net.resume(1400);
    let inv = net.invocation(N2, B);
    net.yield_(N2, B, inv, false, 1500);
    let got = net.take(N1, CALLER);
    assert!(matches!(got.as_slice(), [m] if is_result(m, false)));
}

#[test]
fn fencing_an_invoke_does_not_start_after_the_calls_timeout() {
    let mut net = Net::fenced(LEASE, InvokePolicy::Single, &[(N2, B, true)]);
    net.pause(N2);
    net.call(1, dict! { "timeout" => 300u64 }, 0);
    net.tick(N1, 300);
    let got = net.take(N1, CALLER);
    assert!(matches!(got.as_slice(), [Message::Error(e)] if e.error == errors::TIMEOUT));
    net.resume(400);
    let started = net.take(N2, B);
    assert!(
        !started.iter().any(|m| matches!(m, Message::Invocation(_))),
        "an invocation that arrives after the call timed out is not started: {started:?}"
    );
}

#[test]
fn fencing_a_node_lost_long_after_the_invoke_answers_at_once() {
    let mut net = Net::fenced(LEASE, InvokePolicy::Single, &[(N2, B, true)]);
    net.call(1, Dict::new(), 0);
    net.invocation(N2, B);
    let now = net.at(2500);
    let out = net.nodes[0].handle_node_lost(N2, now);
    net.run(N1, out);
    let got = net.take(N1, CALLER);
    assert!(matches!(got.as_slice(), [Message::Error(e)] if e.error == errors::CANCELED));
}

#[test]
fn fencing_a_lost_node_found_gone_answers_its_calls_at_once() {
    let mut net = Net::fenced(LEASE, InvokePolicy::Single, &[(N2, B, true)]);
    net.call(1, Dict::new(), 0);
    net.invocation(N2, B);
    let now = net.at(100);
    let out = net.nodes[0].handle_node_lost(N2, now);
    net.run(N1, out);
    assert!(net.take(N1, CALLER).is_empty());
    let now = net.at(150);
    let out = net.nodes[0].handle_node_gone(N2, now);
    net.run(N1, out);
    let got = net.take(N1, CALLER);
    assert!(matches!(got.as_slice(), [Message::Error(e)] if e.error == errors::CANCELED));
    net.tick(N1, 2000);
    assert!(net.take(N1, CALLER).is_empty(), "answered once");
}

#[test]
fn a_node_starts_no_link_invocation_for_a_callee_its_table_no_longer_lists() {
    // node 2 reads the invocation only after the cluster purged its callees (it was
    // paused or cut off past its lease, and applied its own purge on resuming): node 1
    // answered the caller when it applied the purge, so node 2 must not start it
    let mut net = Net::new(InvokePolicy::Single, &[(N2, B, true)]);
    net.pause(N2);
    let call = net.call(1, Dict::new(), 0);
    if let Some(r) = net.table.registration.as_mut() {
        r.callees.clear();
    }
    let now = net.at(2000);
    let out = net.nodes[0].handle_node_lost(N2, now);
    net.run(N1, out);
    let told = net.take(N1, CALLER);
    assert_eq!(told.iter().filter_map(error_uri).collect::<Vec<_>>(), vec![errors::CANCELED]);
    net.resume(2100);
    assert!(net.take(N2, B).is_empty(), "the callee got an invocation whose caller was answered");
    assert!(!net.nodes[1].is_serving());
    assert_eq!(net.ended.iter().filter(|(c, _)| *c == call).count(), 1);
}

#[test]
fn a_link_invocation_for_a_registration_still_being_told_is_held_not_refused() {
    // node 1 applied the REGISTER before node 2 did: the callee awaits REGISTERED
    let mut net = Net::new(InvokePolicy::Single, &[(N2, B, true)]);
    net.table.awaiting.insert(B);
    net.table.unlisted.insert(B);
    net.call(1, Dict::new(), 0);
    assert!(net.take(N2, B).is_empty(), "held until REGISTERED");
    assert!(net.take(N1, CALLER).is_empty(), "not refused");
    net.table.awaiting.clear();
    net.table.unlisted.clear();
    let now = net.at(5);
    let out = net.nodes[1].handle_register_done(B, Some(REG), &net.table, now);
    net.run(N2, out);
    let inv = net.invocation(N2, B);
    net.yield_(N2, B, inv, false, 6);
    assert!(is_result(&net.take(N1, CALLER)[0], false));
}

#[test]
fn a_leaving_callee_gets_no_new_invocation_and_the_next_callee_serves() {
    // A is leaving (GOODBYE said or sent, its cleanup committing): a call goes to B
    let mut net = Net::new(InvokePolicy::First, &[(N1, A, true), (N2, B, true)]);
    net.nodes[0].session_leaving(A);
    net.call(1, Dict::new(), 0);
    assert!(net.take(N1, A).is_empty(), "an INVOCATION went to a leaving callee");
    let inv = net.invocation(N2, B);
    net.yield_(N2, B, inv, false, 1);
    assert!(is_result(&net.take(N1, CALLER)[0], false));
}

#[test]
fn a_leaving_callee_on_another_node_gets_no_invocation_and_the_call_is_answered() {
    let mut net = Net::new(InvokePolicy::Single, &[(N2, B, true)]);
    net.nodes[1].session_leaving(B);
    net.call(1, Dict::new(), 0);
    assert!(net.take(N2, B).is_empty(), "an INVOCATION went to a leaving callee");
    let told = net.take(N1, CALLER);
    assert_eq!(told.iter().filter_map(error_uri).collect::<Vec<_>>(), vec![errors::CANCELED]);
}

#[test]
fn an_invocation_still_queued_at_its_deadline_is_answered_canceled_once() {
    // node 2 queued the INVOCATION for its callee and was paused before writing it;
    // by the time it resumed, node 1 could answer the call on its own. The frame is
    // dropped unsent (the outbox's deadline) and the call answered canceled once.
    let lease = Duration::from_secs(2);
    let mut net = Net::fenced(lease, InvokePolicy::Single, &[(N2, B, true)]);
    let call = net.call(1, Dict::new(), 0);
    let request = net.invocation(N2, B);
    let (node, session, by) = *net.deadlines.last().expect("the invocation is sent with a deadline");
    assert_eq!((node, session), (N2, B));
    assert!(by <= net.t0 + fence_start(lease), "no later than node 1's fence");
    let now = net.at(1600);
    let out = net.nodes[1].handle_unwritten(B, request, now);
    net.run(N2, out);
    let told = net.take(N1, CALLER);
    assert_eq!(told.iter().filter_map(error_uri).collect::<Vec<_>>(), vec![errors::CANCELED]);
    assert!(!net.nodes[1].is_serving());
    // node 1 then declares node 2 down: the caller hears nothing more
    let now = net.at(2000);
    let out = net.nodes[0].handle_node_lost(N2, now);
    net.run(N1, out);
    assert!(net.take(N1, CALLER).is_empty());
    assert_eq!(net.ended.iter().filter(|(c, _)| *c == call).count(), 1);
}

#[test]
fn an_invocation_of_a_local_call_has_no_deadline() {
    let mut net = Net::fenced(Duration::from_secs(2), InvokePolicy::Single, &[(N1, A, true)]);
    net.call(1, Dict::new(), 0);
    net.invocation(N1, A);
    assert!(net.deadlines.is_empty());
}
