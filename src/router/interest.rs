//! Subscription interest, owned by each node and told to the others over the links
//! (cluster design v2): no consensus round, no lock across a network round trip.
//!
//! Every node keeps, per realm, a [`SubscriptionIndex`] of which nodes want which
//! (topic, match): its own interest (local subscribers, a SUBSCRIBE in progress, or
//! event history it keeps) and what the other nodes told it. A publication is sent
//! to the nodes the index names.
//!
//! - A node's first interest in a subscription goes to every node up (and every
//!   node whose link is up and that was sent the whole interest, see
//!   [`Interest::audience`]) as
//!   `Interest{on}` with a sequence number; SUBSCRIBED waits until each acknowledged
//!   it, its link went down, or [`ACK_LIMIT`] passed. So a publication that starts
//!   after SUBSCRIBED, on any node that was reachable, reaches the subscriber.
//! - Its last interest goes as `Interest{off}` — acknowledged the same way before
//!   UNSUBSCRIBED when some node listens for `wamp.subscription.on_delete` (which is
//!   decided on what every node applied). Otherwise it *lingers* first
//!   ([`LINGER`]): the other nodes keep the interest a while, and a subscriber
//!   coming back within it (a client reconnecting and resubscribing, per-request
//!   topics reused) is SUBSCRIBED with no round trip at all. A [`sweep`] withdraws
//!   what lingered longer, many interests per link batch instead of a batch per
//!   UNSUBSCRIBE. Interest held too long only costs events sent to a node that
//!   drops them; interest missing loses events, so withdrawing late is always safe.
//!   Lingering interest is part of the whole interest a link (re)connect sends, so
//!   every node keeps what it was told until it is withdrawn. At most
//!   [`MAX_LINGERING`] linger; past that, interest is withdrawn at once.
//! - Changes of one realm are made and sent under the realm's `membership` mutex
//!   (no await inside), so each link carries them in the order they happened: a
//!   leave racing a subscribe on the same node cannot leave the node without interest
//!   while it has a subscriber (the v1 "lost subscription").
//! - When a link (re)connects, the node sends its whole interest (`InterestSync`);
//!   when the stream from a node ends, or the cluster purges it, its interest is
//!   dropped. A background task sends the full interest to every node up that has
//!   not had it yet (new nodes, links never opened).
//! - Subscription ids are derived from (realm, uri, match) ([`derive_id`]), so they
//!   are the same everywhere without agreeing on them.
//! - Every change for another node goes through [`Pacing`]: while one that asked for
//!   an acknowledgement is unanswered, the changes after it wait and leave together
//!   when it is answered (a busy node's SUBSCRIBEs share link writes instead of one
//!   or two a write). A change that cannot be sent is not waited for, and marks its
//!   node as needing the whole interest again.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use dashmap::DashMap;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::Router;
use super::handle::lock;
use super::realm::Realm;
use crate::broker::SubscriptionIndex;
use crate::broker::index::derive_id;
use crate::ids::{NodeId, SubscriptionId};
use crate::link::pacing::{Pacing, acknowledged_under};
use crate::link::{LinkDown, LinkMsg};
use crate::wamp::uri::MatchPolicy;

/// How long SUBSCRIBED waits for the other nodes to acknowledge a new interest; a
/// node that has not answered by then is logged and not waited for.
pub const ACK_LIMIT: Duration = Duration::from_secs(2);

/// How often the full interest is offered to nodes that have not had it, and
/// lingering interest is swept.
const SYNC_EVERY: Duration = Duration::from_millis(500);

/// How long the other nodes keep this node's interest in a subscription after its
/// last local subscriber left (when nobody listens for `on_delete`): withdrawn by the
/// first [`sweep`] after this, so within `LINGER` + [`SYNC_EVERY`].
pub const LINGER: Duration = Duration::from_secs(2);

/// Interests lingering at most, per node: past this, interest is withdrawn at once.
pub const MAX_LINGERING: usize = 131_072;

/// Lingering interests withdrawn per sweep at most, so a sweep never fills a link's
/// queue (what is left goes in the next sweep).
pub const SWEEP_MAX: usize = 16_384;

/// Lingering interests withdrawn under one hold of a realm's `membership` mutex.
const SWEEP_STEP: usize = 512;

/// The nodes an interest change still waits for.
#[derive(Default)]
pub struct AckWait {
    seq: u64,
    pending: Mutex<HashSet<NodeId>>,
    done: Notify,
}

impl AckWait {
    fn acked(&self, node: NodeId) {
        let mut p = lock(&self.pending);
        if p.remove(&node) && p.is_empty() {
            self.done.notify_waiters();
        }
    }

    /// Waits until every node acknowledged, or `limit` passed; returns the nodes that
    /// did not answer.
    pub async fn wait(&self, limit: Duration) -> Vec<NodeId> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let done = self.done.notified();
            if lock(&self.pending).is_empty() {
                return Vec::new();
            }
            if tokio::time::timeout_at(deadline, done).await.is_err() {
                return lock(&self.pending).iter().copied().collect();
            }
        }
    }
}

/// SUBSCRIBEs of this node waiting for acknowledgements, by (realm, id): the wait,
/// and how many SUBSCRIBEs share it.
type Subscribing = HashMap<(String, SubscriptionId), (Arc<AckWait>, usize)>;

/// A subscription this node has no interest in any more that the other nodes still
/// hold for it (see [`LINGER`]).
struct Lingering {
    uri: String,
    policy: MatchPolicy,
    /// When the last local interest ended.
    since: Instant,
}

/// One realm's lingering interest, by subscription and in the order it began.
#[derive(Default)]
struct RealmLingering {
    by_id: HashMap<SubscriptionId, Lingering>,
    by_time: BTreeSet<(Instant, SubscriptionId)>,
}

/// Lingering interest by realm, then subscription.
#[derive(Default)]
struct Lingerings {
    realms: HashMap<String, RealmLingering>,
    count: usize,
}

impl Lingerings {
    /// Records `id` as lingering; false when [`MAX_LINGERING`] already do.
    fn insert(&mut self, realm: &str, id: SubscriptionId, l: Lingering) -> bool {
        let known = self.realms.get(realm).is_some_and(|r| r.by_id.contains_key(&id));
        if !known && self.count >= MAX_LINGERING {
            return false;
        }
        let r = self.realms.entry(realm.to_owned()).or_default();
        let since = l.since;
        match r.by_id.insert(id, l) {
            Some(old) => {
                r.by_time.remove(&(old.since, id));
            }
            None => self.count += 1,
        }
        r.by_time.insert((since, id));
        true
    }

    fn remove(&mut self, realm: &str, id: SubscriptionId) -> bool {
        let Some(r) = self.realms.get_mut(realm) else { return false };
        let Some(old) = r.by_id.remove(&id) else { return false };
        r.by_time.remove(&(old.since, id));
        self.count -= 1;
        if r.by_id.is_empty() {
            self.realms.remove(realm);
        }
        true
    }

    fn of(&self, realm: &str) -> impl Iterator<Item = &Lingering> {
        self.realms.get(realm).into_iter().flat_map(|r| r.by_id.values())
    }

    /// Takes up to `max` of `realm`'s interests that lingered since `cutoff` or
    /// before, oldest first.
    fn take_expired(&mut self, realm: &str, cutoff: Instant, max: usize) -> Vec<Lingering> {
        let Some(r) = self.realms.get_mut(realm) else { return Vec::new() };
        let mut out = Vec::new();
        while out.len() < max {
            match r.by_time.first() {
                Some(&(since, id)) if since <= cutoff => {
                    r.by_time.pop_first();
                    out.extend(r.by_id.remove(&id));
                }
                _ => break,
            }
        }
        self.count -= out.len();
        if r.by_id.is_empty() {
            self.realms.remove(realm);
        }
        out
    }
}

/// This node's view of every node's subscription interest.
#[derive(Default)]
pub struct Interest {
    realms: RwLock<HashMap<String, SubscriptionIndex>>,
    subscribing: Mutex<Subscribing>,
    /// Interest changes awaiting acknowledgements, by sequence number.
    waits: DashMap<u64, Arc<AckWait>>,
    seq: AtomicU64,
    /// Nodes that have this node's full interest (since their link last connected).
    synced: Mutex<HashSet<NodeId>>,
    /// The nodes whose whole interest this node received (over a stream still open).
    heard: Mutex<HashSet<NodeId>>,
    /// Interest of this node's that the others still hold (see [`LINGER`]); changed
    /// under the realm's `membership` mutex, like the rest of this node's interest.
    lingering: Mutex<Lingerings>,
    /// Changes held behind an unanswered one, per node; sends to other nodes happen
    /// under this lock, so they leave in the order they were offered.
    pacing: Mutex<Pacing>,
}

/// Milliseconds since the Unix epoch.
fn now_ms() -> u64 {
    super::now_ms()
}

impl Interest {
    /// Reads a realm's index (empty when no node has interest in it).
    pub fn read<R>(&self, realm: &str, f: impl FnOnce(&SubscriptionIndex) -> R) -> R {
        let realms = self.realms.read().unwrap_or_else(|e| e.into_inner());
        match realms.get(realm) {
            Some(idx) => f(idx),
            None => f(&SubscriptionIndex::default()),
        }
    }

    fn write<R>(&self, realm: &str, f: impl FnOnce(&mut SubscriptionIndex) -> R) -> R {
        let mut realms = self.realms.write().unwrap_or_else(|e| e.into_inner());
        f(realms.entry(realm.to_owned()).or_default())
    }

    /// True when `id` is this node's, or another subscription's id (a collision).
    pub fn collides(&self, realm: &str, id: SubscriptionId, uri: &str, policy: MatchPolicy) -> bool {
        self.read(realm, |idx| idx.get(id).is_some_and(|s| s.uri != uri || s.policy != policy))
    }

    /// Makes this node interested in `(uri, policy)` (the realm's `membership`
    /// mutex held). Returns the subscription id, whether the subscription is new
    /// cluster-wide as far as this node knows, and, when the interest is new to this
    /// node, the acknowledgements to wait for.
    pub fn gain(
        &self,
        router: &Router,
        realm: &Realm,
        uri: &str,
        policy: MatchPolicy,
    ) -> (SubscriptionId, bool, Option<Arc<AckWait>>) {
        let id = derive_id(&realm.name, uri, policy);
        let (known, mine) = self.read(&realm.name, |idx| {
            let s = idx.get(id);
            (s.is_some(), s.is_some_and(|s| s.nodes.contains(&router.node)))
        });
        if mine {
            return (id, false, None);
        }
        self.write(&realm.name, |idx| idx.add_interest(router.node, uri, policy, || id, now_ms()));
        if lock(&self.lingering).remove(&realm.name, id) {
            // every node still holds this interest: nothing to tell, nothing to wait for
            return (id, !known, None);
        }
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        let wait = Arc::new(AckWait { seq, ..AckWait::default() });
        // registered before anything is sent: an acknowledgement may come back at once
        self.waits.insert(seq, wait.clone());
        for node in self.audience(router) {
            lock(&wait.pending).insert(node);
            let msg =
                LinkMsg::Interest { realm: realm.name.clone(), topic: uri.to_owned(), policy, on: true, seq };
            // not sent: `transmit` stops the wait (registered above) for this node
            self.tell(router, node, msg).ok();
        }
        if lock(&wait.pending).is_empty() {
            self.waits.remove(&seq);
        }
        (id, !known, Some(wait))
    }

    /// Ends this node's interest in `id` (the realm's `membership` mutex held) unless
    /// a local subscriber, kept history or SUBSCRIBE in progress still needs it.
    pub fn release(&self, router: &Router, realm: &Realm, id: SubscriptionId) {
        self.withdraw(router, realm, id, false);
    }

    /// Like [`Interest::release`], asking the other nodes to acknowledge: UNSUBSCRIBED
    /// waits for them, so whether the subscription is gone cluster-wide
    /// (`on_delete`) is decided on what every reachable node has applied.
    pub fn release_acknowledged(
        &self,
        router: &Router,
        realm: &Realm,
        id: SubscriptionId,
    ) -> Option<Arc<AckWait>> {
        self.withdraw(router, realm, id, true)
    }

    fn withdraw(
        &self,
        router: &Router,
        realm: &Realm,
        id: SubscriptionId,
        ack: bool,
    ) -> Option<Arc<AckWait>> {
        if realm.has_local_interest(id) || realm.history(id).is_some() {
            return None;
        }
        if lock(&self.subscribing).contains_key(&(realm.name.clone(), id)) {
            return None;
        }
        let (uri, policy, mine) = self.read(&realm.name, |idx| {
            idx.get(id).map(|s| (s.uri.clone(), s.policy, s.nodes.contains(&router.node)))
        })?;
        self.write(&realm.name, |idx| idx.remove_interest(router.node, id));
        let mut lingering = lock(&self.lingering);
        // only what the other nodes hold may linger: interest of this node's, or
        // lingering already (an interest withdrawn before is withdrawn again)
        let held = lingering.remove(&realm.name, id) || mine;
        let change =
            |seq| LinkMsg::Interest { realm: realm.name.clone(), topic: uri.clone(), policy, on: false, seq };
        if !ack {
            let audience = self.audience(router);
            if audience.is_empty() {
                return None;
            }
            let since = Instant::now();
            if held && lingering.insert(&realm.name, id, Lingering { uri: uri.clone(), policy, since }) {
                return None;
            }
            for node in audience {
                self.tell(router, node, change(0)).ok();
            }
            return None;
        }
        drop(lingering);
        Some(self.announce(router, change))
    }

    /// Withdraws the interest that has lingered for [`LINGER`] at `now` (at most
    /// [`SWEEP_MAX`] of it): every node it went to is told `Interest{off}`.
    pub fn sweep(&self, router: &Router, now: Instant) {
        let Some(cutoff) = now.checked_sub(LINGER) else { return };
        let mut left = SWEEP_MAX;
        let names: Vec<String> = lock(&self.lingering).realms.keys().cloned().collect();
        for name in names {
            if left == 0 {
                return;
            }
            // a realm removed since (a reload): its interest is withdrawn all the same
            let realm = router.realm(&name);
            while left > 0 {
                // in steps, so SUBSCRIBEs and leaves of the realm wait for one step at most
                let _serial = realm.as_ref().map(|r| lock(&r.membership));
                let expired = lock(&self.lingering).take_expired(&name, cutoff, left.min(SWEEP_STEP));
                if expired.is_empty() {
                    break;
                }
                left -= expired.len();
                let audience = self.audience(router);
                for l in expired {
                    for &node in &audience {
                        let (realm, topic, policy) = (name.clone(), l.uri.clone(), l.policy);
                        self.tell(
                            router,
                            node,
                            LinkMsg::Interest { realm, topic, policy, on: false, seq: 0 },
                        )
                        .ok();
                    }
                }
            }
        }
    }

    /// Changes held behind an unanswered one (see [`Pacing`]).
    pub fn held(&self) -> usize {
        lock(&self.pacing).held()
    }

    /// How many interests linger (see [`LINGER`]).
    pub fn lingering(&self) -> usize {
        lock(&self.lingering).count
    }

    /// Sends a change (of interest, or a retained event) to every node up under a
    /// fresh sequence number and returns the acknowledgements to wait for.
    pub(super) fn announce(&self, router: &Router, change: impl Fn(u64) -> LinkMsg) -> Arc<AckWait> {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        let wait = Arc::new(AckWait { seq, ..AckWait::default() });
        // registered before anything is sent: an acknowledgement may come back at once
        self.waits.insert(seq, wait.clone());
        for node in self.audience(router) {
            lock(&wait.pending).insert(node);
            // not sent: `transmit` stops the wait (registered above) for this node
            self.tell(router, node, change(seq)).ok();
        }
        if lock(&wait.pending).is_empty() {
            self.waits.remove(&seq);
        }
        wait
    }

    /// Stops tracking a wait that is over (answered or timed out).
    pub fn finished(&self, wait: &AckWait) {
        self.waits.remove(&wait.seq);
    }

    /// Registers a SUBSCRIBE waiting on `wait` (or on the wait already in progress
    /// for `id`); the SUBSCRIBE calls [`Interest::subscribed`] when done.
    pub fn begin_subscribe(
        &self,
        realm: &str,
        id: SubscriptionId,
        wait: Option<Arc<AckWait>>,
    ) -> Option<Arc<AckWait>> {
        let mut s = lock(&self.subscribing);
        let key = (realm.to_owned(), id);
        match (s.get_mut(&key), wait) {
            (Some(entry), _) => {
                entry.1 += 1;
                Some(entry.0.clone())
            }
            (None, Some(w)) => {
                s.insert(key, (w.clone(), 1));
                Some(w)
            }
            (None, None) => None,
        }
    }

    /// A SUBSCRIBE registered with [`Interest::begin_subscribe`] ended (the realm's
    /// `membership` mutex held).
    pub fn end_subscribe(&self, realm: &str, id: SubscriptionId) {
        let mut s = lock(&self.subscribing);
        let key = (realm.to_owned(), id);
        if let Some(entry) = s.get_mut(&key) {
            entry.1 -= 1;
            if entry.1 == 0 {
                let seq = entry.0.seq;
                s.remove(&key);
                self.waits.remove(&seq);
            }
        }
    }

    /// Another node gained or lost interest; acknowledges when asked to.
    pub fn on_interest(&self, router: &Router, from: NodeId, m: Change) {
        let id = derive_id(&m.realm, &m.topic, m.policy);
        if m.on {
            if self.collides(&m.realm, id, &m.topic, m.policy) {
                tracing::warn!(realm = %m.realm, topic = %m.topic, %from, "subscription id collision: interest ignored");
            } else {
                self.write(&m.realm, |idx| idx.add_interest(from, &m.topic, m.policy, || id, now_ms()));
            }
        } else {
            self.write(&m.realm, |idx| idx.remove_interest(from, id));
        }
        if m.seq > 0 {
            router.send_link(from, LinkMsg::InterestAck { seq: m.seq }).ok();
        }
    }

    /// Another node acknowledged interest change `seq`: what was held behind it goes.
    pub fn on_ack(&self, router: &Router, from: NodeId, seq: u64) {
        self.settle(from, seq);
        let mut pacing = lock(&self.pacing);
        let released = pacing.acked(from, seq, Instant::now().into_std());
        self.transmit(router, &mut pacing, from, released).ok();
    }

    /// Change `seq` waits for `node` no more.
    fn settle(&self, node: NodeId, seq: u64) {
        if let Some(w) = self.waits.get(&seq).map(|w| w.clone()) {
            w.acked(node);
            if lock(&w.pending).is_empty() {
                self.waits.remove(&seq);
            }
        }
    }

    /// Tells `node` of a change, paced: sent now, or held until the change before it
    /// is answered. An error when it was to go now and could not.
    fn tell(&self, router: &Router, node: NodeId, msg: LinkMsg) -> Result<(), LinkDown> {
        let mut pacing = lock(&self.pacing);
        let now = pacing.offer(node, msg, Instant::now().into_std());
        self.transmit(router, &mut pacing, node, now)
    }

    /// Sends `msgs` to `node` in order (the pacing lock held). A change that could not
    /// be sent is not waited for, nothing after it is held for an answer, and the
    /// node needs the whole interest again; the error is the last change's. The wait
    /// stays registered (nodes after this one may not have been sent the change
    /// yet): whoever ends the wait removes it.
    fn transmit(
        &self,
        router: &Router,
        pacing: &mut Pacing,
        node: NodeId,
        msgs: Vec<LinkMsg>,
    ) -> Result<(), LinkDown> {
        let mut last = Ok(());
        let mut failed = false;
        for msg in msgs {
            let seq = acknowledged_under(&msg);
            last = router.send_link(node, msg);
            if last.is_err() {
                failed = true;
                if let Some(w) = seq.and_then(|seq| self.waits.get(&seq).map(|w| w.clone())) {
                    w.acked(node);
                }
            }
        }
        if failed {
            lock(&self.synced).remove(&node);
            let left = pacing.lost(node);
            debug_assert!(left.is_empty(), "everything held was just released");
        }
        last
    }

    /// Sends what was held too long behind an unanswered change.
    fn release_overdue(&self, router: &Router) {
        let mut pacing = lock(&self.pacing);
        for (node, msgs) in pacing.overdue(Instant::now().into_std()) {
            self.transmit(router, &mut pacing, node, msgs).ok();
        }
    }

    /// Another node's whole interest in `realm`.
    pub fn on_sync(&self, from: NodeId, realm: &str, entries: &[(String, MatchPolicy)]) {
        // under `heard`, so that a purge deciding whether to drop this node's interest
        // ([`Interest::drop_node_unless_heard`]) sees the sync whole or not at all
        let mut heard = lock(&self.heard);
        self.write(realm, |idx| idx.replace_node(realm, from, entries, now_ms()));
        heard.insert(from);
    }

    /// Drops `node`'s interest when the cluster purged it, unless a stream from it
    /// that is still open delivered its whole interest: that may be the node's next
    /// incarnation, already synced (a purge of the previous one applied late), and a
    /// stream of a node that is really gone ends by its keepalive, dropping the
    /// interest then. Checked and dropped under one lock with [`Interest::on_sync`].
    pub fn drop_node_unless_heard(&self, router: &Router, node: NodeId) {
        let heard = lock(&self.heard);
        if heard.contains(&node) {
            return;
        }
        self.remove_interest_of(node);
        drop(heard);
        self.forget_acks(router, node);
    }

    /// True once `node`'s whole interest arrived (and its stream did not end since).
    pub fn heard_from(&self, node: NodeId) -> bool {
        lock(&self.heard).contains(&node)
    }

    /// Forgets what `node` told this node, and stops waiting for its acknowledgements.
    pub fn drop_node(&self, router: &Router, node: NodeId) {
        {
            // under `heard`, like the sync: a sync on the node's next stream lands
            // before (and is dropped with this one's) or after, never half-way
            let mut heard = lock(&self.heard);
            heard.remove(&node);
            self.remove_interest_of(node);
        }
        self.forget_acks(router, node);
    }

    /// Removes every interest `node` told this node of.
    fn remove_interest_of(&self, node: NodeId) {
        let mut realms = self.realms.write().unwrap_or_else(|e| e.into_inner());
        for idx in realms.values_mut() {
            idx.remove_node(node);
        }
    }

    /// Stops waiting for `node`'s acknowledgements (its link is down), and marks it
    /// as needing the full interest again.
    pub fn forget_acks(&self, router: &Router, node: NodeId) {
        {
            let mut pacing = lock(&self.pacing);
            let held = pacing.lost(node);
            self.transmit(router, &mut pacing, node, held).ok();
        }
        lock(&self.synced).remove(&node);
        let waits: Vec<_> = self.waits.iter().map(|w| (*w.key(), w.value().clone())).collect();
        for (seq, w) in waits {
            w.acked(node);
            if lock(&w.pending).is_empty() {
                self.waits.remove(&seq);
            }
        }
    }

    /// Sends the whole interest again to every node it goes to (see
    /// [`Interest::audience`]): they dropped it when the cluster purged this node.
    pub fn resync_all(&self, router: &Router) {
        for node in self.audience(router) {
            self.forget_acks(router, node);
        }
    }

    /// Sends `node` this node's whole interest, realm by realm; true when it was queued.
    pub fn sync_to(&self, router: &Router, node: NodeId) -> bool {
        for realm in router.realms() {
            let _serial = lock(&realm.membership);
            let mut entries = self.read(&realm.name, |idx| idx.interest_of(router.node));
            // the lingering interest too: the node keeps it until a sweep withdraws it
            entries.extend(lock(&self.lingering).of(&realm.name).map(|l| (l.uri.clone(), l.policy)));
            if self.tell(router, node, LinkMsg::InterestSync { realm: realm.name.clone(), entries }).is_err()
            {
                return false;
            }
        }
        lock(&self.synced).insert(node);
        true
    }

    /// The nodes told of a change: every node up, and every node that was sent the
    /// whole interest since its link last connected. The replicated state may not
    /// count the latter up yet (a restarted node whose return is not applied here,
    /// a node purged while its link stayed up); as they count as synced, nothing
    /// would send them the whole interest again, so they must hear every change.
    fn audience(&self, router: &Router) -> Vec<NodeId> {
        let mut nodes = router.replica.peers(router.node);
        for &node in lock(&self.synced).iter() {
            if node != router.node && !nodes.contains(&node) {
                nodes.push(node);
            }
        }
        nodes
    }

    /// The nodes up that have not had this node's full interest yet.
    fn unsynced(&self, router: &Router) -> Vec<NodeId> {
        let synced = lock(&self.synced);
        router.replica.peers(router.node).into_iter().filter(|n| !synced.contains(n)).collect()
    }
}

/// An interest change from another node.
pub struct Change {
    /// The realm.
    pub realm: String,
    /// Topic or pattern.
    pub topic: String,
    /// Its match policy.
    pub policy: MatchPolicy,
    /// Gained (true) or lost.
    pub on: bool,
    /// Acknowledge under this number (0: no acknowledgement).
    pub seq: u64,
}

/// Offers the full interest to every node up that has not had it, and withdraws
/// the interest that lingered long enough, until the router is gone.
pub async fn keep_synced(router: std::sync::Weak<Router>) {
    loop {
        tokio::time::sleep(SYNC_EVERY).await;
        let Some(r) = router.upgrade() else { return };
        for node in r.interest.unsynced(&r) {
            r.interest.sync_to(&r, node);
        }
        r.interest.sweep(&r, Instant::now());
        r.interest.release_overdue(&r);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lingering(since: Instant) -> Lingering {
        Lingering { uri: "com.example.t".into(), policy: MatchPolicy::Exact, since }
    }

    #[test]
    fn lingering_interest_is_bounded_and_swept_oldest_first_in_bounded_steps() {
        let t0 = Instant::now();
        let mut l = Lingerings::default();
        for i in 0..MAX_LINGERING as u64 {
            assert!(l.insert("realm1", SubscriptionId(i), lingering(t0)));
        }
        assert!(!l.insert("realm1", SubscriptionId(u64::MAX), lingering(t0)), "past the bound");
        assert!(l.insert("realm1", SubscriptionId(0), lingering(t0)), "a refresh takes no room");
        assert_eq!(l.count, MAX_LINGERING);
        assert!(l.take_expired("realm1", t0 - Duration::from_millis(1), SWEEP_MAX).is_empty());
        let later = t0 + Duration::from_millis(5);
        assert!(l.insert("realm1", SubscriptionId(1), lingering(later)), "a refresh");
        assert_eq!(l.count, MAX_LINGERING);
        assert!(l.take_expired("realm1", t0, MAX_LINGERING).iter().all(|e| e.since == t0));
        assert_eq!(l.count, 1, "only the refreshed one is left");
        assert_eq!(l.take_expired("realm1", later, 1)[0].since, later);
        for i in 0..MAX_LINGERING as u64 {
            assert!(l.insert("realm1", SubscriptionId(i), lingering(t0 + Duration::from_nanos(i))));
        }
        let first = l.take_expired("realm1", t0 + Duration::from_secs(1), 3);
        let order: Vec<Instant> = first.iter().map(|e| e.since).collect();
        assert_eq!(order, [t0, t0 + Duration::from_nanos(1), t0 + Duration::from_nanos(2)], "oldest first");
        let end = t0 + Duration::from_secs(1);
        assert_eq!(l.take_expired("realm1", end, SWEEP_MAX).len(), SWEEP_MAX);
        assert_eq!(l.count, MAX_LINGERING - 3 - SWEEP_MAX);
        while !l.take_expired("realm1", end, SWEEP_MAX).is_empty() {}
        assert_eq!(l.count, 0);
        assert!(l.realms.is_empty());
    }
}
