//! What the router knows about one connected session, shared between the session's
//! own connection task and every other task that routes messages to it.
//!
//! Lock order: a task holds at most one of these mutexes at a time, never across an
//! `.await`, and never while holding a realm lock.

use std::collections::HashSet;
use std::sync::Mutex;

use bytes::Bytes;

use super::outbox::{Outbox, PushError};
use crate::ids::{RegistrationId, SessionId, SubscriptionId};
use crate::wamp::Message;
use crate::wamp::codec::Serializer;
use crate::wamp::value::Dict;

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
    /// Subscriptions this session holds.
    subscriptions: Mutex<HashSet<SubscriptionId>>,
    /// Registrations this session holds.
    registrations: Mutex<HashSet<RegistrationId>>,
    /// REGISTERs committed or in flight but not yet answered (see [`SessionHandle::awaits_registration`]).
    registering: std::sync::atomic::AtomicUsize,
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
            subscriptions: Mutex::default(),
            registrations: Mutex::default(),
            registering: std::sync::atomic::AtomicUsize::new(0),
            testaments: Mutex::default(),
            left: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Encodes and queues a message.
    pub fn send(&self, msg: &Message) -> Result<(), PushError> {
        self.outbox.push(self.encode(msg))
    }

    /// Encodes a message for this session, counting it as sent.
    fn encode(&self, msg: &Message) -> Bytes {
        crate::observe::metrics::message_out(msg.code());
        Bytes::from(self.serializer.encode(msg))
    }

    /// Encodes and queues a message that must leave the queue by `by`, or be dropped
    /// and `too_late` run ([`Outbox::push_by`]).
    pub fn send_by(
        &self,
        msg: &Message,
        by: std::time::Instant,
        too_late: super::outbox::TooLate,
    ) -> Result<(), PushError> {
        self.outbox.push_by(self.encode(msg), by, too_late)
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
        let mut regs = lock(&self.registrations);
        if on { regs.insert(id) } else { regs.remove(&id) }
    }

    /// True when the session holds registration `id`.
    pub fn holds_registration(&self, id: RegistrationId) -> bool {
        lock(&self.registrations).contains(&id)
    }

    /// True while a REGISTER of this session is being committed or answered.
    pub fn is_registering(&self) -> bool {
        self.registering.load(std::sync::atomic::Ordering::SeqCst) > 0
    }

    /// A REGISTER of this session is being committed; ends when the guard drops.
    pub fn registering(&self) -> Registering<'_> {
        REGISTERS_IN_FLIGHT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
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
        REGISTERS_IN_FLIGHT.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// REGISTERs in flight in this process: while there are none, no INVOCATION has
/// to wait for a REGISTERED, and the dealer need not look its callee up to know.
static REGISTERS_IN_FLIGHT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// True while some session of this process has a REGISTER in flight.
pub fn registers_in_flight() -> bool {
    REGISTERS_IN_FLIGHT.load(std::sync::atomic::Ordering::SeqCst) > 0
}
