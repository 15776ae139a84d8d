//! Identifier newtypes, so a session id can never be passed where a request id is meant.
//!
//! WAMP ids are integers in `1..=2^53` (so they survive a JSON double). The spec gives
//! them three scopes: *global* (session and publication ids, random), *router*
//! (subscription and registration ids, assigned by the routing table) and *session*
//! (request ids, chosen by whichever side sends the request).

use serde::{Deserialize, Serialize};

/// Largest id the spec allows: 2^53.
pub const MAX_ID: u64 = 1 << 53;

/// True when `v` is a legal WAMP id.
pub fn valid_id(v: u64) -> bool {
    (1..=MAX_ID).contains(&v)
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default)]
        pub struct $name(pub u64);

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_type!(
    /// A session, global scope (random).
    SessionId
);
id_type!(
    /// A request (CALL, PUBLISH, SUBSCRIBE, INVOCATION ...), session scope.
    RequestId
);
id_type!(
    /// A subscription, router scope: every subscriber of the same topic and match policy shares it.
    SubscriptionId
);
id_type!(
    /// A registration, router scope: every callee of a shared registration shares it.
    RegistrationId
);
id_type!(
    /// A publication, global scope (random).
    PublicationId
);
id_type!(
    /// A cluster node (Raft node id).
    NodeId
);
id_type!(
    /// A call routed by this node's dealer: unique per node, and the call's id on the
    /// link to the node serving it. Never shown to clients.
    CallId
);
id_type!(
    /// A meta API question sent to another node, unique per node.
    QueryId
);

/// A random id in the global scope (`1..=2^53`).
pub fn random_id() -> u64 {
    use rand::RngExt;
    rand::rng().random_range(1..=MAX_ID)
}

/// A hasher for maps keyed by an id (a `u64` newtype) or a pair of ids: ids are random or
/// sequential, so a multiply-and-fold mixes them well enough, at a fraction of the
/// cost of the default SipHash. Not for keys a client chooses freely.
#[derive(Clone, Copy, Debug, Default)]
pub struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, n: u64) {
        let x = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 = x ^ (x >> 32);
    }
}

/// A `HashMap` keyed by ids, hashed with [`IdHasher`].
pub type IdMap<K, V> = std::collections::HashMap<K, V, std::hash::BuildHasherDefault<IdHasher>>;

/// Sequential ids for one session's router-to-client requests (INVOCATION, INTERRUPT ...).
/// Wraps back to 1 after 2^53, as the spec allows.
#[derive(Debug, Default)]
pub struct IdSequence(std::sync::atomic::AtomicU64);

impl IdSequence {
    /// The last id handed out (0 before the first).
    pub fn current(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The next id in `1..=2^53`.
    pub fn next(&self) -> u64 {
        use std::sync::atomic::Ordering;
        let mut cur = self.0.load(Ordering::Relaxed);
        loop {
            let next = if cur >= MAX_ID { 1 } else { cur + 1 };
            match self.0.compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return next,
                Err(actual) => cur = actual,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_are_in_range() {
        for _ in 0..1000 {
            assert!(valid_id(random_id()));
        }
    }

    #[test]
    fn sequence_starts_at_one_and_wraps() {
        let s = IdSequence::default();
        assert_eq!(s.next(), 1);
        assert_eq!(s.next(), 2);
        s.0.store(MAX_ID, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(s.next(), 1);
        assert!(!valid_id(0));
        assert!(!valid_id(MAX_ID + 1));
    }
}
