//! Keeps this node's callee entries in the routing table true to its sessions: an
//! entry whose session left (its cleanup did not commit) or never got the
//! registration (a REGISTER that committed after it was answered as failed) is
//! removed. An entry must look stale on two checks in a row, [`EVERY`] apart, so a
//! REGISTER or a leave in progress is not raced; its removal is then proposed,
//! and proposed again on the next checks until it commits. A stale entry is gone
//! within about `2 × EVERY` plus one commit, well inside `lease_ms + 1 s`.

use std::collections::HashSet;
use std::sync::Weak;
use std::time::Duration;

use super::Router;
use super::realm::Realm;
use crate::ids::{RegistrationId, SessionId};
use crate::table::Command;
use crate::table::reconcile::{Holder, stale_callees};

/// How often the entries are checked.
pub const EVERY: Duration = Duration::from_millis(500);

/// What `realm`'s local session `session` knows of `registration`.
fn holder(realm: &Realm, session: SessionId, registration: RegistrationId) -> Holder {
    match realm.session(session) {
        None => Holder::Gone,
        Some(s) if s.holds_registration(registration) => Holder::Holds,
        Some(s) if s.is_registering() => Holder::Registering,
        Some(_) => Holder::NotHeld,
    }
}

/// This node's stale callee entries, by realm.
fn stale(router: &Router) -> HashSet<(String, SessionId, RegistrationId)> {
    let mut out = HashSet::new();
    for realm in router.realms() {
        let found = router.replica.read(|t| {
            t.realm(&realm.name)
                .map(|rt| stale_callees(rt, router.node, |s, r| holder(realm, s, r)))
                .unwrap_or_default()
        });
        out.extend(found.into_iter().map(|(s, r)| (realm.name.clone(), s, r)));
    }
    out
}

/// Checks every [`EVERY`] until the router is gone.
pub async fn run(router: Weak<Router>) {
    let mut suspects = HashSet::new();
    loop {
        tokio::time::sleep(EVERY).await;
        let Some(r) = router.upgrade() else { return };
        let now = stale(&r);
        for (realm, session, registration) in now.intersection(&suspects) {
            let cmd =
                Command::Unregister { realm: realm.clone(), session: *session, registration: *registration };
            match r.replica.propose(cmd).await {
                Ok(_) => tracing::info!(%realm, %session, %registration, "stale callee entry removed"),
                Err(e) => {
                    tracing::warn!(%realm, %session, %registration, error = %e, "stale callee entry not removed yet")
                }
            }
        }
        suspects = now;
    }
}
