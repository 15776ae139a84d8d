//! The router's side of the dealer: it runs [`Dealer`]'s steps under one short lock,
//! carries out the [`Action`]s each returns (encode and queue for a session, send to
//! a node, wake the router's own call, end a trace span), runs the dealer's timers
//! on one task, and lets the dealer read the routing table through [`Registry`].
//!
//! No step awaits anything and no action runs under the lock: a step only moves
//! plain data, so the lock is held for microseconds.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use parking_lot::{Mutex, MutexGuard};
use tokio::sync::{Notify, oneshot};

use super::Router;
use super::outbox::TooLate;
use super::rpc::Violation;
use crate::dealer::{self, Action, Actions, Dealer, Registration, Registry, Reply};
use crate::ids::{CallId, IdSequence, NodeId, RegistrationId, SessionId};
use crate::observe::{metrics, spans};
use crate::wamp::uri::MatchPolicy;

/// The dealer of one router, and what runs it.
pub struct Dealing {
    dealer: Mutex<Dealer>,
    /// Call ids (unique on this node; also a call's id on the link).
    call_ids: IdSequence,
    /// The router's own calls waiting for their answer.
    waiters: DashMap<CallId, oneshot::Sender<Reply>>,
    /// Wakes the timer task when an earlier deadline was armed.
    timer_wake: Arc<Notify>,
    timer_started: AtomicBool,
}

impl Dealing {
    /// The dealing of node `node`, fencing remote invocations by the cluster's
    /// `lease` (see [`Dealer::with_lease`]).
    pub fn new(node: NodeId, lease: std::time::Duration) -> Dealing {
        Dealing {
            dealer: Mutex::new(Dealer::new(node, crate::ids::random_id()).with_lease(lease)),
            call_ids: IdSequence::default(),
            waiters: DashMap::new(),
            timer_wake: Arc::new(Notify::new()),
            timer_started: AtomicBool::new(false),
        }
    }

    /// The dealer, for reads (counts for status and drain).
    pub fn lock(&self) -> MutexGuard<'_, Dealer> {
        self.dealer.lock()
    }

    /// A fresh call id.
    pub fn next_call_id(&self) -> CallId {
        CallId(self.call_ids.next())
    }
}

/// The routing table and the sessions, as the dealer reads them.
struct View<'a>(&'a Router);

impl Registry for View<'_> {
    fn registration(
        &self,
        realm: &str,
        procedure: &str,
        exact_only: bool,
        found: &mut dyn FnMut(&Registration),
    ) {
        self.0.replica.read(|t| {
            let Some(r) = t.realm(realm) else { return };
            let reg = if exact_only {
                r.registrations.find(procedure, MatchPolicy::Exact)
            } else {
                r.registrations.lookup(procedure)
            };
            if let Some(reg) = reg {
                found(reg);
            }
        });
    }

    fn reachable(&self, node: NodeId) -> bool {
        self.0.reachable(node)
    }

    fn next_turn(&self, realm: &str, registration: RegistrationId) -> usize {
        self.0.realm(realm).map_or(0, |r| r.next_turn(registration))
    }

    fn awaits_registration(&self, session: SessionId, registration: RegistrationId) -> bool {
        super::handle::registers_in_flight()
            && self.0.session(session).is_some_and(|s| s.awaits_registration(registration))
    }

    fn lists_callee(&self, realm: &str, registration: RegistrationId, callee: SessionId) -> bool {
        let node = self.0.node;
        self.0.replica.read(|t| {
            t.realm(realm)
                .and_then(|r| r.registrations.get(registration))
                .is_some_and(|reg| reg.callees.iter().any(|c| c.session == callee && c.node == node))
        })
    }

    fn fenced(&self) -> bool {
        self.0.fenced()
    }
}

impl Router {
    /// Runs one dealer step and carries out its actions.
    pub fn deal(&self, step: impl FnOnce(&mut Dealer, &dyn Registry, Instant) -> Actions) {
        let actions = self.step(step);
        self.carry_out(actions);
    }

    /// Runs a dealer step under the lock, waking the timer task if it armed an
    /// earlier deadline.
    fn step<T>(&self, step: impl FnOnce(&mut Dealer, &dyn Registry, Instant) -> T) -> T {
        let mut d = self.dealing.lock();
        let out = step(&mut d, &View(self), Instant::now());
        self.wake_timer(&mut d);
        out
    }

    /// Runs a dealer step that may find a protocol violation by the session.
    pub fn deal_checked(
        &self,
        step: impl FnOnce(&mut Dealer, &dyn Registry, Instant) -> Result<Actions, dealer::Violation>,
    ) -> Result<(), Violation> {
        let actions = self.step(step);
        self.carry_out(actions.map_err(|v| Violation(v.message()))?);
        Ok(())
    }

    /// Calls `procedure` (an exact registration) in `realm` as the router itself and
    /// waits for the answer; the dealer answers `wamp.error.timeout` after `timeout`.
    pub async fn call_internal(
        &self,
        realm: &str,
        procedure: &str,
        args: crate::wamp::List,
        timeout: Duration,
    ) -> Reply {
        let id = self.dealing.next_call_id();
        let (tx, rx) = oneshot::channel();
        self.dealing.waiters.insert(id, tx);
        self.deal(|d, reg, now| d.handle_internal_call(id, realm, procedure, args, timeout, reg, now));
        match rx.await {
            Ok(reply) => reply,
            Err(_) => Err(dealer::Failure::new(crate::wamp::errors::CANCELED, "the router is shutting down")),
        }
    }

    /// Carries out a step's actions, in order.
    fn carry_out(&self, actions: Actions) {
        for action in actions {
            match action {
                Action::Send(to, msg) => {
                    if let Some(s) = self.session(to) {
                        s.send(&msg).ok();
                    }
                }
                Action::SendBy { session, invocation, by } => {
                    let Some(s) = self.session(session) else { continue };
                    let (router, request) = (self.this.clone(), invocation.request);
                    let too_late: TooLate = Box::new(move || {
                        if let Some(r) = router.upgrade() {
                            tracing::warn!(%session, %request, "an invocation was still queued when its caller's node could answer the call: dropped unsent");
                            r.deal(|d, _, now| d.handle_unwritten(session, request, now));
                        }
                    });
                    let message = crate::wamp::message::Message::Invocation(invocation);
                    s.send_by(&message, by, too_late).ok();
                }
                Action::Link(node, msg) => {
                    let call = match &msg {
                        crate::link::LinkMsg::Invoke { call, .. } => Some(*call),
                        _ => None,
                    };
                    if self.send_link(node, msg).is_err()
                        && let Some(call) = call
                    {
                        self.deal(|d, _, now| d.handle_unsent(node, call, now));
                    }
                }
                Action::Answer(id, reply) => {
                    if let Some((_, tx)) = self.dealing.waiters.remove(&id) {
                        tx.send(reply).ok();
                    }
                }
                Action::CallEnded { call, error, latency } => {
                    if let Some(latency) = latency {
                        metrics::call_latency(latency.as_secs_f64());
                    }
                    metrics::call_ended(error.as_deref());
                    spans::pending().end(spans::call_key(call.0), error.as_deref());
                }
                Action::ServedEnded { node, call, error } => {
                    spans::pending().end((node.0, call.0), error.as_deref());
                }
            }
        }
    }

    /// Starts the timer task on first use, and wakes it when a step armed a timer
    /// earlier than the one it sleeps for.
    fn wake_timer(&self, d: &mut Dealer) {
        if !d.take_wake() {
            return;
        }
        if !self.dealing.timer_started.swap(true, Ordering::SeqCst)
            && let Some(router) = self.arc()
        {
            tokio::spawn(run_timers(Arc::downgrade(&router), self.dealing.timer_wake.clone()));
        }
        self.dealing.timer_wake.notify_one();
    }
}

/// The dealer's timers: sleeps until the earliest deadline (or a wake-up), then
/// runs [`Dealer::handle_timeout`]. Ends with the router.
async fn run_timers(router: std::sync::Weak<Router>, wake: Arc<Notify>) {
    loop {
        let Some(r) = router.upgrade() else { return };
        let woken = wake.notified();
        let next = r.dealing.lock().next_deadline();
        match next {
            Some(at) if at <= Instant::now() => {
                r.deal(|d, _, now| d.handle_timeout(now));
                continue;
            }
            Some(at) => {
                drop(r);
                tokio::select! {
                    _ = tokio::time::sleep_until(tokio::time::Instant::from_std(at)) => {}
                    _ = woken => {}
                }
            }
            None => {
                drop(r);
                woken.await;
            }
        }
    }
}

impl Drop for Dealing {
    fn drop(&mut self) {
        // lets the timer task see that the router is gone
        self.timer_wake.notify_one();
    }
}
