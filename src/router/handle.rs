//! What the router knows about one connected session, shared between the session's
//! own connection task and every other task that routes messages to it.
//!
//! Lock order: a task holds at most one of these mutexes at a time, never across an
//! `.await`, and never while holding a realm lock.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use bytes::Bytes;

use super::outbox::{Outbox, PushError};
use crate::ids::{IdSequence, NodeId, RegistrationId, RequestId, SessionId, SubscriptionId};
use crate::wamp::Message;
use crate::wamp::codec::Serializer;
use crate::wamp::value::Dict;

/// Who is waiting for an invocation this session (as callee) has yet to answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PendingInvocation {
    /// A caller on this node.
    Local {
        /// The calling session.
        caller: SessionId,
        /// The caller's CALL request id.
        call: RequestId,
    },
    /// A caller on another node, which keeps the call under `call`.
    Remote {
        /// The caller's node.
        node: NodeId,
        /// The call's id on the link.
        call: u64,
    },
}

/// Where a call this session (as caller) is waiting on is being served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// By a callee on this node.
    Local {
        /// The session serving it.
        callee: SessionId,
        /// The INVOCATION request id on the callee's session.
        invocation: RequestId,
    },
    /// By a callee on another node.
    Remote {
        /// The callee's node.
        node: NodeId,
        /// The call's id on the link.
        call: u64,
    },
}

/// What the dealer keeps of a call so it can re-route it when the callee answers
/// `wamp.error.unavailable` (call rerouting). Kept only for registrations with more
/// than one callee: with a single callee there is nobody to re-route to.
#[derive(Clone, Debug, PartialEq)]
pub struct Reroute {
    /// The called procedure (a pattern-based registration may match it).
    pub procedure: String,
    /// CALL.Options.
    pub options: Dict,
    /// CALL arguments.
    pub payload: crate::wamp::message::Payload,
    /// Callees already invoked for this call, as (node, session).
    pub tried: Vec<(NodeId, SessionId)>,
}

/// A call this session (as caller) is waiting on.
#[derive(Clone, Debug, PartialEq)]
pub struct PendingCall {
    /// Where it is served.
    pub target: Target,
    /// The registration serving it (for progressive call invocations).
    pub registration: RegistrationId,
    /// The caller asked for progressive results.
    pub receive_progress: bool,
    /// More CALL chunks may follow (progressive call invocations).
    pub input_open: bool,
    /// Unique per call instance, so a stale timer never expires a later call that
    /// reuses the request id.
    pub token: u64,
    /// The caller is disclosed to the callee (for every chunk of a progressive call).
    pub disclose: bool,
    /// When the call was made (for the call latency histogram).
    pub started: std::time::Instant,
    /// When the call last made progress (started or got a progressive result): the
    /// dealer-side timeout runs from here.
    pub touched: tokio::time::Instant,
    /// The call itself, kept for re-routing (shared registrations only).
    pub reroute: Option<std::sync::Arc<Reroute>>,
}

/// An event the router publishes on a session's behalf when it ends.
#[derive(Clone, Debug, PartialEq)]
pub struct Testament {
    /// Topic to publish on.
    pub topic: String,
    /// Event args and kwargs.
    pub payload: crate::wamp::message::Payload,
    /// PUBLISH options (black/white listing, disclosure).
    pub options: Dict,
    /// `detached` (true) or `destroyed` (false) bucket.
    pub detached: bool,
}

/// Identity of a session, as WELCOME announced it.
#[derive(Clone, Debug, Default)]
pub struct Identity {
    pub authid: String,
    pub authrole: String,
    pub authmethod: String,
    pub authprovider: String,
}

/// A joined session.
pub struct SessionHandle {
    /// Global-scope session id.
    pub id: SessionId,
    /// The serializer frames for this session are encoded with.
    pub serializer: Serializer,
    /// Who the session is.
    pub identity: Identity,
    /// HELLO.Details.roles, to know which features the client announced.
    pub roles: Dict,
    /// Frames to the client.
    outbox: Outbox,
    /// Router-to-client request ids (INVOCATION, INTERRUPT).
    invocation_ids: IdSequence,
    /// Invocations sent to this session and not yet answered; `None` once the
    /// session has left, so no new invocation can slip in after the leave drained it.
    invocations: Mutex<Option<HashMap<RequestId, PendingInvocation>>>,
    /// Calls this session made that are still in flight.
    calls: Mutex<HashMap<RequestId, PendingCall>>,
    /// Subscriptions this session holds.
    subscriptions: Mutex<HashSet<SubscriptionId>>,
    /// Registrations this session holds.
    registrations: Mutex<HashSet<RegistrationId>>,
    /// REGISTERs committed or in flight but not yet answered (see [`SessionHandle::registered`]).
    registering: std::sync::atomic::AtomicUsize,
    /// Woken when a registration is added or a REGISTER ends.
    registrations_changed: tokio::sync::Notify,
    /// Testaments, in the order added.
    testaments: Mutex<Vec<Testament>>,
    /// Set when the session starts leaving (replicated testaments check it).
    left: std::sync::atomic::AtomicBool,
}

/// Locks a mutex, recovering the data if a panicking thread poisoned it.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl SessionHandle {
    /// A new handle for a session that is about to be welcomed.
    pub fn new(
        id: SessionId,
        serializer: Serializer,
        identity: Identity,
        roles: Dict,
        outbox: Outbox,
    ) -> Self {
        SessionHandle {
            id,
            serializer,
            identity,
            roles,
            outbox,
            invocation_ids: IdSequence::default(),
            invocations: Mutex::new(Some(HashMap::new())),
            calls: Mutex::default(),
            subscriptions: Mutex::default(),
            registrations: Mutex::default(),
            registering: std::sync::atomic::AtomicUsize::new(0),
            registrations_changed: tokio::sync::Notify::new(),
            testaments: Mutex::default(),
            left: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Encodes and queues a message.
    pub fn send(&self, msg: &Message) -> Result<(), PushError> {
        crate::observe::metrics::message_out(msg.code());
        self.outbox.push(Bytes::from(self.serializer.encode(msg)))
    }

    /// Asks the session's connection to end it with GOODBYE `reason` (meta API kill).
    pub fn kill(&self, reason: &str, message: &str) {
        self.outbox.kill(reason, message);
    }

    /// Queues a frame already encoded with this session's serializer.
    pub fn send_frame(&self, frame: Bytes) -> Result<(), PushError> {
        self.outbox.push(frame)
    }

    /// True when the client announced `feature` for `role` in HELLO.
    pub fn has_feature(&self, role: &str, feature: &str) -> bool {
        self.roles
            .get(role)
            .and_then(|r| r.as_dict())
            .and_then(|r| r.get("features"))
            .and_then(|f| f.as_dict())
            .and_then(|f| f.get(feature))
            .and_then(|v| v.as_bool())
            .unwrap_or(false)
    }

    /// Records a new invocation to this session and returns its request id, or
    /// `None` when the session has already left.
    pub fn start_invocation(&self, pending: PendingInvocation) -> Option<RequestId> {
        let mut invocations = lock(&self.invocations);
        let map = invocations.as_mut()?;
        let id = RequestId(self.invocation_ids.next());
        map.insert(id, pending);
        Some(id)
    }

    /// Removes an answered invocation. `Err(())` means the id was never issued (a
    /// protocol violation); `Ok(None)` means it was issued but is no longer pending
    /// (its caller left or it was canceled): the answer is discarded.
    #[allow(clippy::result_unit_err)]
    pub fn finish_invocation(&self, id: RequestId) -> Result<Option<PendingInvocation>, ()> {
        if let Some(p) = lock(&self.invocations).as_mut().and_then(|m| m.remove(&id)) {
            return Ok(Some(p));
        }
        if id.0 <= self.invocation_ids.current() { Ok(None) } else { Err(()) }
    }

    /// Takes every pending invocation and refuses new ones (the session is leaving).
    pub fn take_invocations(&self) -> Vec<(RequestId, PendingInvocation)> {
        lock(&self.invocations).take().map(|m| m.into_iter().collect()).unwrap_or_default()
    }

    /// Records a call in flight.
    pub fn start_call(&self, request: RequestId, call: PendingCall) {
        lock(&self.calls).insert(request, call);
    }

    /// Forgets a finished call (records its latency, ends its trace span).
    pub fn finish_call(&self, request: RequestId) -> Option<PendingCall> {
        self.end_call(request, None)
    }

    /// Forgets a call that ended in `error` (its span is marked failed).
    pub fn fail_call(&self, request: RequestId, error: &str) -> Option<PendingCall> {
        self.end_call(request, Some(error))
    }

    fn end_call(&self, request: RequestId, error: Option<&str>) -> Option<PendingCall> {
        let call = lock(&self.calls).remove(&request)?;
        crate::observe::metrics::call_finished(call.started);
        crate::observe::spans::pending().end(crate::observe::spans::call_key(call.token), error);
        Some(call)
    }

    /// How many calls this session has in flight (for `limits.max_pending_calls`).
    pub fn pending_calls(&self) -> usize {
        lock(&self.calls).len()
    }

    /// A call in flight, left in place.
    pub fn call(&self, request: RequestId) -> Option<PendingCall> {
        lock(&self.calls).get(&request).cloned()
    }

    /// Records progress on a call (a progressive result), restarting its timeout.
    pub fn touch_call(&self, request: RequestId) {
        if let Some(c) = lock(&self.calls).get_mut(&request) {
            c.touched = tokio::time::Instant::now();
        }
    }

    /// Marks a progressive call's input as finished.
    pub fn close_call_input(&self, request: RequestId) {
        if let Some(c) = lock(&self.calls).get_mut(&request) {
            c.input_open = false;
        }
    }

    /// An invocation still pending, left in place (for progressive results).
    #[allow(clippy::result_unit_err)]
    pub fn invocation(&self, id: RequestId) -> Result<Option<PendingInvocation>, ()> {
        if let Some(p) = lock(&self.invocations).as_ref().and_then(|m| m.get(&id).copied()) {
            return Ok(Some(p));
        }
        if id.0 <= self.invocation_ids.current() { Ok(None) } else { Err(()) }
    }

    /// Takes every call in flight (the session is leaving).
    pub fn take_calls(&self) -> Vec<(RequestId, PendingCall)> {
        lock(&self.calls).drain().collect()
    }

    /// Forgets an invocation whose caller is gone, so its late answer is discarded.
    pub fn forget_invocation(&self, id: RequestId) {
        if let Some(m) = lock(&self.invocations).as_mut() {
            m.remove(&id);
        }
    }

    /// How many subscriptions the session holds, and whether `id` is one of them.
    pub fn subscription_count(&self, id: Option<SubscriptionId>) -> (usize, bool) {
        let subs = lock(&self.subscriptions);
        (subs.len(), id.is_some_and(|id| subs.contains(&id)))
    }

    /// How many registrations the session holds or is committing.
    pub fn registration_count(&self) -> usize {
        lock(&self.registrations).len() + self.registering.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// How many testaments the session holds.
    pub fn testament_count(&self) -> usize {
        lock(&self.testaments).len()
    }

    /// Adds or removes a subscription of this session; returns whether it changed.
    pub fn set_subscribed(&self, id: SubscriptionId, on: bool) -> bool {
        let mut subs = lock(&self.subscriptions);
        if on { subs.insert(id) } else { subs.remove(&id) }
    }

    /// Adds or removes a registration of this session; returns whether it changed.
    pub fn set_registered(&self, id: RegistrationId, on: bool) -> bool {
        let changed = {
            let mut regs = lock(&self.registrations);
            if on { regs.insert(id) } else { regs.remove(&id) }
        };
        self.registrations_changed.notify_waiters();
        changed
    }

    /// True when the session holds registration `id`.
    pub fn holds_registration(&self, id: RegistrationId) -> bool {
        lock(&self.registrations).contains(&id)
    }

    /// A REGISTER of this session is being committed; ends when the guard drops.
    pub fn registering(&self) -> Registering<'_> {
        self.registering.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Registering(self)
    }

    /// True when an INVOCATION for `id` must wait: the registration is committed in
    /// the table (another node may already route calls to it) but this session has
    /// not been sent REGISTERED yet — a client must never see an INVOCATION first.
    pub fn awaits_registration(&self, id: RegistrationId) -> bool {
        self.registering.load(std::sync::atomic::Ordering::SeqCst) > 0
            && !lock(&self.registrations).contains(&id)
    }

    /// Waits until the session holds registration `id` (true), or no REGISTER is in
    /// flight any more or `timeout` passed without it (false).
    pub async fn registered(&self, id: RegistrationId, timeout: std::time::Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let changed = self.registrations_changed.notified();
            if lock(&self.registrations).contains(&id) {
                return true;
            }
            if self.registering.load(std::sync::atomic::Ordering::SeqCst) == 0 {
                return false;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return false;
            }
        }
    }

    /// Marks the session as leaving.
    pub fn mark_left(&self) {
        self.left.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// True once the session started leaving.
    pub fn has_left(&self) -> bool {
        self.left.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// True when the session holds testaments.
    pub fn has_testaments(&self) -> bool {
        !lock(&self.testaments).is_empty()
    }

    /// Adds a testament.
    pub fn add_testament(&self, t: Testament) {
        lock(&self.testaments).push(t);
    }

    /// Removes the testaments of one scope; returns how many.
    pub fn flush_testaments(&self, detached: bool) -> usize {
        let mut list = lock(&self.testaments);
        let before = list.len();
        list.retain(|t| t.detached != detached);
        before - list.len()
    }

    /// Takes all testaments, `detached` ones first (the session is ending).
    pub fn take_testaments(&self) -> Vec<Testament> {
        let mut list = std::mem::take(&mut *lock(&self.testaments));
        list.sort_by_key(|t| !t.detached);
        list
    }

    /// Takes the session's registrations (the node is draining: no new calls may
    /// reach it; it stays connected to finish the invocations it has).
    pub fn take_registrations(&self) -> Vec<RegistrationId> {
        lock(&self.registrations).drain().collect()
    }

    /// True while the session serves invocations.
    pub fn is_serving(&self) -> bool {
        lock(&self.invocations).as_ref().is_some_and(|m| !m.is_empty())
    }

    /// Takes all subscriptions and registrations (the session is leaving).
    pub fn take_routes(&self) -> (Vec<SubscriptionId>, Vec<RegistrationId>) {
        let subs = lock(&self.subscriptions).drain().collect();
        let regs = lock(&self.registrations).drain().collect();
        (subs, regs)
    }
}

/// Marks a REGISTER as in flight while it lives ([`SessionHandle::registering`]).
pub struct Registering<'a>(&'a SessionHandle);

impl Drop for Registering<'_> {
    fn drop(&mut self) {
        self.0.registering.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        self.0.registrations_changed.notify_waiters();
    }
}
